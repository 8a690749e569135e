/*
 * limits — see limits.h. The cgroup2 path enables controllers top-down and
 * writes the agent's files; the v1 path makes one cgroup per hierarchy the
 * bottle needs.
 */
#include "kernel/limits.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "kernel/platform.h"

static int write_file(const char *dir, const char *file, const char *text, struct bottle_err *err)
{
    char *path = fs_join(dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0) {
        rc = err_set(err, errno, "limits: cannot open %s: %s", path, strerror(errno));
    } else {
        size_t len = strlen(text);
        ssize_t n = write(fd, text, len);
        if (n != (ssize_t)len)
            rc = err_set(err, n < 0 ? errno : EIO, "limits: cannot write '%s' to %s: %s", text,
                         path, n < 0 ? strerror(errno) : "short write");
        close(fd);
    }
    free(path);
    return rc;
}

static bool file_exists(const char *dir, const char *file)
{
    char *path = fs_join(dir, file);
    bool ok = access(path, F_OK) == 0;
    free(path);
    return ok;
}

static bool needed(const struct resource_limits *l, enum platform_controller_id id)
{
    uint64_t v = id == CTRL_PIDS ? l->pids : id == CTRL_MEMORY ? l->memory : l->cpu_milli;
    return v != LIMIT_UNSET && v != LIMIT_NONE;
}

static const char *limit_key(enum platform_controller_id id)
{
    return id == CTRL_CPU ? "cpus" : platform_controller_name(id);
}

/* "+name" into dir/cgroup.subtree_control unless it is there already. */
static int enable_in(const char *dir, const char *name, struct bottle_err *err)
{
    char *path = fs_join(dir, "cgroup.subtree_control");
    struct buf have = BUF_INIT;
    int rc = fs_read_file(path, 4096, &have, err);
    free(path);
    bool on = false;
    for (const char *p = have.data; rc == 0 && p && *p && !on;) {
        size_t n = strcspn(p, " \n");
        on = n == strlen(name) && strncmp(p, name, n) == 0;
        p += n;
        p += strspn(p, " \n");
    }
    buf_free(&have);
    if (rc < 0 || on)
        return rc;
    char *add = xasprintf("+%s", name);
    rc = write_file(dir, "cgroup.subtree_control", add, err);
    free(add);
    return rc;
}

static int apply_v2(const struct cgroup_bottle *cg, enum platform_controller_id id,
                    const struct resource_limits *l, struct bottle_err *err)
{
    const char *name = platform_controller_name(id);
    char *bottle_root = xstrndup(cg->path, strlen(cg->path) - strlen(cg->slug) - 1);
    char *mount = xstrndup(bottle_root, strlen(bottle_root) - strlen(CGROUP_BOTTLE_DIR) - 1);
    int rc = enable_in(mount, name, err);
    if (rc == 0)
        rc = enable_in(bottle_root, name, err);
    if (rc == 0)
        rc = enable_in(cg->path, name, err);
    free(mount);
    free(bottle_root);
    if (rc < 0)
        return err_prefix(err, "limits: cannot enable the %s controller for the bottle", name);
    char text[64];
    switch (id) {
    case CTRL_PIDS:
        snprintf(text, sizeof(text), "%llu", (unsigned long long)l->pids);
        return write_file(cg->agent_path, "pids.max", text, err);
    case CTRL_MEMORY:
        snprintf(text, sizeof(text), "%llu", (unsigned long long)l->memory);
        rc = write_file(cg->agent_path, "memory.max", text, err);
        /* Without swap accounting (swapaccount=0) the file is absent and nothing swaps per
         * cgroup to limit; with it, the agent gets none. */
        if (rc == 0 && file_exists(cg->agent_path, "memory.swap.max"))
            rc = write_file(cg->agent_path, "memory.swap.max", "0", err);
        return rc;
    case CTRL_CPU:
        snprintf(text, sizeof(text), "%llu %u", (unsigned long long)l->cpu_milli * 100,
                 LIMITS_CPU_PERIOD_US);
        return write_file(cg->agent_path, "cpu.max", text, err);
    case CTRL_COUNT:
        break;
    }
    return 0;
}

/* <mount>/bottle/<slug>, created; its path in *dir. */
static int make_v1_dir(const char *mount, const char *slug, char **dir, struct bottle_err *err)
{
    char *root = fs_join(mount, CGROUP_BOTTLE_DIR);
    *dir = fs_join(root, slug);
    int rc = 0;
    if (mkdir(root, 0755) < 0 && errno != EEXIST)
        rc = err_set(err, errno, "limits: cannot create %s: %s", root, strerror(errno));
    else if (mkdir(*dir, 0755) < 0 && errno != EEXIST)
        rc = err_set(err, errno, "limits: cannot create %s: %s", *dir, strerror(errno));
    free(root);
    return rc;
}

static int apply_v1(const char *dir, enum platform_controller_id id,
                    const struct resource_limits *l, struct bottle_err *err)
{
    char text[32];
    int rc;
    switch (id) {
    case CTRL_PIDS:
        snprintf(text, sizeof(text), "%llu", (unsigned long long)l->pids);
        return write_file(dir, "pids.max", text, err);
    case CTRL_MEMORY:
        snprintf(text, sizeof(text), "%llu", (unsigned long long)l->memory);
        rc = write_file(dir, "memory.limit_in_bytes", text, err);
        /* memsw counts memory plus swap: the same value leaves no room for swap. Without
         * swap accounting, swappiness 0 keeps this cgroup's memory out of swap. */
        if (rc == 0 && file_exists(dir, "memory.memsw.limit_in_bytes"))
            rc = write_file(dir, "memory.memsw.limit_in_bytes", text, err);
        else if (rc == 0)
            rc = write_file(dir, "memory.swappiness", "0", err);
        return rc;
    case CTRL_CPU:
        snprintf(text, sizeof(text), "%u", LIMITS_CPU_PERIOD_US);
        rc = write_file(dir, "cpu.cfs_period_us", text, err);
        snprintf(text, sizeof(text), "%llu", (unsigned long long)l->cpu_milli * 100);
        return rc < 0 ? rc : write_file(dir, "cpu.cfs_quota_us", text, err);
    case CTRL_COUNT:
        break;
    }
    return 0;
}

int limits_check(const struct platform_controller ctrl[CTRL_COUNT], const struct resource_limits *l,
                 struct bottle_err *err)
{
    for (int id = 0; id < CTRL_COUNT; id++)
        if (needed(l, id) && ctrl[id].where == CTRL_MISSING)
            return err_set_kind(err, ERR_KIND_REFUSED, ENOTSUP,
                                "limits: this host has no %s controller (neither in cgroup2 nor "
                                "in a cgroup v1 hierarchy), so limits.%s cannot be enforced; set "
                                "'limits.%s: max' in the bottle to run without it",
                                platform_controller_name(id), limit_key(id), limit_key(id));
    return 0;
}

int limits_apply(const struct cgroup_bottle *cg, const struct resource_limits *l,
                 struct limits_cgroups *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    struct platform_controller ctrl[CTRL_COUNT];
    platform_controllers(ctrl);
    /* Refuse before touching anything: a limit the host cannot enforce is never dropped. */
    int rc = limits_check(ctrl, l, err);
    struct strv v1_dirs = STRV_INIT;
    for (int id = 0; id < CTRL_COUNT && rc == 0; id++) {
        if (!needed(l, id))
            continue;
        if (ctrl[id].where == CTRL_IN_V2) {
            rc = apply_v2(cg, id, l, err);
            continue;
        }
        char *dir = NULL;
        rc = make_v1_dir(ctrl[id].v1_mount, cg->slug, &dir, err);
        if (rc == 0)
            rc = apply_v1(dir, id, l, err);
        if (rc == 0 && !strv_contains(&v1_dirs, dir))
            strv_push(&v1_dirs, dir);
        free(dir);
    }
    for (size_t i = 0; rc == 0 && i < v1_dirs.len; i++) {
        int fd = open(v1_dirs.items[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            rc = err_set(err, errno, "limits: cannot open %s: %s", v1_dirs.items[i],
                         strerror(errno));
        else
            out->fds[out->n_fds++] = fd;
    }
    strv_free(&v1_dirs);
    platform_controllers_free(ctrl);
    if (rc < 0)
        limits_cgroups_close(out);
    return rc;
}

int limits_place(const struct limits_cgroups *lc, pid_t pid, struct bottle_err *err)
{
    for (size_t i = 0; lc && i < lc->n_fds; i++) {
        int rc = cgroup_move_pid(lc->fds[i], pid, err);
        if (rc < 0)
            return err_prefix(err, "limits: cannot put the bottle in its limits' cgroup");
    }
    return 0;
}

void limits_cgroups_close(struct limits_cgroups *lc)
{
    if (!lc)
        return;
    for (size_t i = 0; i < lc->n_fds; i++)
        if (lc->fds[i] >= 0)
            close(lc->fds[i]);
    memset(lc, 0, sizeof(*lc));
}
