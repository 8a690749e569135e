/*
 * cgroup — see cgroup.h. Linux only: cgroup2 directories, clone3 and bpffs.
 */
#include "kernel/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/home.h"
#include "common/fs.h"
#include "kernel/platform.h"

#define BPFFS_DEFAULT_MOUNT "/sys/fs/bpf"
#define CGROUP_AGENT        "agent"
#define CGROUP_PROXY        "proxy"

int cgroup2_mount_point(char **mount_point, struct bottle_err *err)
{
    *mount_point = NULL;
    struct bottle_err probe = {0};
    if (platform_find_cgroup2(mount_point, &probe) == 0)
        return 0;
    if (geteuid() != 0)
        return err_set(err, ENOENT,
                       "cgroup: no cgroup2 hierarchy is mounted (%s); run as root "
                       "so bottle can mount one",
                       probe.msg);
    /* No cgroup2 anywhere: mount the single v2 hierarchy privately for bottle. */
    int rc = fs_mkdir_p(CGROUP2_PRIVATE_MOUNT, 0700, err);
    if (rc < 0)
        return rc;
    if (mount("cgroup2", CGROUP2_PRIVATE_MOUNT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
            0 &&
        errno != EBUSY)
        return err_set(err, errno, "cgroup: cannot mount cgroup2 at %s: %s", CGROUP2_PRIVATE_MOUNT,
                       strerror(errno));
    if (platform_find_cgroup2(mount_point, &probe) < 0)
        return err_set(err, ENOENT, "cgroup: mounted cgroup2 at %s but cannot find it: %s",
                       CGROUP2_PRIVATE_MOUNT, probe.msg);
    return 0;
}

int cgroup_root_path(char **path, struct bottle_err *err)
{
    char *mount = NULL;
    *path = NULL;
    int rc = cgroup2_mount_point(&mount, err);
    if (rc < 0)
        return rc;
    *path = fs_join(mount, CGROUP_BOTTLE_DIR);
    free(mount);
    return 0;
}

int cgroup_id_from_fd(int dir_fd, uint64_t *id, struct bottle_err *err)
{
    struct stat st;
    if (fstat(dir_fd, &st) < 0)
        return err_set(err, errno, "cgroup: cannot stat cgroup directory: %s", strerror(errno));
    *id = (uint64_t)st.st_ino;
    return 0;
}

int cgroup_id_from_path(const char *path, uint64_t *id, struct bottle_err *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return err_set(err, errno, "cgroup: cannot stat %s: %s", path, strerror(errno));
    *id = (uint64_t)st.st_ino;
    return 0;
}

int cgroup_level_from_fd(int dir_fd, unsigned *level, struct bottle_err *err)
{
    char link[64], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", dir_fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 0)
        return err_set(err, errno, "cgroup: cannot resolve the cgroup fd: %s", strerror(errno));
    path[n] = '\0';
    char *mount = NULL;
    int rc = cgroup2_mount_point(&mount, err);
    if (rc < 0)
        return rc;
    size_t mlen = strlen(mount);
    if (strncmp(path, mount, mlen) != 0 || (path[mlen] != '/' && path[mlen] != '\0')) {
        rc = err_set(err, EINVAL, "cgroup: %s is not below the cgroup2 mount %s", path, mount);
        free(mount);
        return rc;
    }
    free(mount);
    unsigned depth = 0;
    for (const char *p = path + mlen; *p; p++) {
        if (*p == '/' && p[1] && p[1] != '/')
            depth++;
    }
    *level = depth;
    return 0;
}

static int open_dir(const char *path, struct bottle_err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cgroup: cannot open %s: %s", path, strerror(errno));
    return fd;
}

int cgroup_create_child(int dir_fd, const char *name, struct bottle_err *err)
{
    if (mkdirat(dir_fd, name, 0755) < 0 && errno != EEXIST)
        return err_set(err, errno, "cgroup: cannot create child cgroup '%s': %s", name,
                       strerror(errno));
    int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cgroup: cannot open child cgroup '%s': %s", name,
                       strerror(errno));
    return fd;
}

void cgroup_bottle_close(struct cgroup_bottle *cg)
{
    if (!cg)
        return;
    if (cg->agent_fd > 0)
        close(cg->agent_fd);
    if (cg->proxy_fd > 0)
        close(cg->proxy_fd);
    free(cg->slug);
    free(cg->path);
    free(cg->agent_path);
    free(cg->proxy_path);
    memset(cg, 0, sizeof(*cg));
    cg->agent_fd = -1;
    cg->proxy_fd = -1;
}

static int bottle_fill(const char *slug, struct cgroup_bottle *cg, struct bottle_err *err)
{
    memset(cg, 0, sizeof(*cg));
    cg->agent_fd = -1;
    cg->proxy_fd = -1;
    if (!home_slug_valid(slug))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "cgroup: invalid bottle name '%s'",
                            slug ? slug : "");
    char *root = NULL;
    int rc = cgroup_root_path(&root, err);
    if (rc < 0)
        return rc;
    cg->slug = xstrdup(slug);
    cg->path = fs_join(root, slug);
    cg->agent_path = fs_join(cg->path, CGROUP_AGENT);
    cg->proxy_path = fs_join(cg->path, CGROUP_PROXY);
    free(root);
    return 0;
}

static int bottle_open_fds(struct cgroup_bottle *cg, struct bottle_err *err)
{
    cg->agent_fd = open_dir(cg->agent_path, err);
    if (cg->agent_fd < 0)
        return cg->agent_fd;
    cg->proxy_fd = open_dir(cg->proxy_path, err);
    if (cg->proxy_fd < 0)
        return cg->proxy_fd;
    int rc = cgroup_id_from_fd(cg->agent_fd, &cg->agent_id, err);
    if (rc == 0)
        rc = cgroup_id_from_fd(cg->proxy_fd, &cg->proxy_id, err);
    return rc;
}

int cgroup_bottle_create(const char *slug, struct cgroup_bottle *cg, struct bottle_err *err)
{
    int rc = bottle_fill(slug, cg, err);
    if (rc < 0)
        goto fail;
    char *root = xstrndup(cg->path, strlen(cg->path) - strlen(slug) - 1);
    if (mkdir(root, 0755) < 0 && errno != EEXIST) {
        rc = err_set(err, errno, "cgroup: cannot create %s: %s", root, strerror(errno));
        free(root);
        goto fail;
    }
    free(root);
    if (mkdir(cg->path, 0755) < 0) {
        rc = err_set(err, errno, "cgroup: cannot create %s: %s", cg->path,
                     errno == EEXIST ? "a bottle with this name exists" : strerror(errno));
        goto fail;
    }
    if (mkdir(cg->agent_path, 0755) < 0 || mkdir(cg->proxy_path, 0755) < 0) {
        rc = err_set(err, errno, "cgroup: cannot create the cgroups of %s: %s", slug,
                     strerror(errno));
        rmdir(cg->agent_path);
        rmdir(cg->path);
        goto fail;
    }
    rc = bottle_open_fds(cg, err);
    if (rc < 0) {
        rmdir(cg->agent_path);
        rmdir(cg->proxy_path);
        rmdir(cg->path);
        goto fail;
    }
    return 0;
fail:
    cgroup_bottle_close(cg);
    return rc;
}

int cgroup_bottle_open(const char *slug, struct cgroup_bottle *cg, struct bottle_err *err)
{
    int rc = bottle_fill(slug, cg, err);
    if (rc == 0)
        rc = bottle_open_fds(cg, err);
    if (rc < 0)
        cgroup_bottle_close(cg);
    return rc;
}

static int write_at(int dir_fd, const char *file, const char *text, struct bottle_err *err)
{
    int fd = openat(dir_fd, file, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cgroup: cannot open %s: %s", file, strerror(errno));
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)len)
        return err_set(err, n < 0 ? saved : EIO, "cgroup: cannot write %s: %s", file,
                       n < 0 ? strerror(saved) : "short write");
    return 0;
}

int cgroup_move_pid(int dir_fd, pid_t pid, struct bottle_err *err)
{
    char text[32];
    snprintf(text, sizeof(text), "%d\n", (int)pid);
    return write_at(dir_fd, "cgroup.procs", text, err);
}

/* Value of "key N" in cgroup.events, or -1. */
static int events_value(int events_fd, const char *key)
{
    char text[512];
    ssize_t n = pread(events_fd, text, sizeof(text) - 1, 0);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    size_t klen = strlen(key);
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return atoi(line + klen + 1);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* Waits until cgroup.events shows key == want; the kernel signals changes as POLLPRI. */
static int wait_events(int dir_fd, const char *key, int want, int timeout_ms,
                       struct bottle_err *err)
{
    int fd = openat(dir_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cgroup: cannot open cgroup.events: %s", strerror(errno));
    long long deadline = clock_mono_ms() + timeout_ms;
    int rc = 0;
    for (;;) {
        int v = events_value(fd, key);
        if (v == want)
            break;
        long long left = deadline - clock_mono_ms();
        if (left <= 0) {
            rc = err_set(err, ETIMEDOUT, "cgroup: '%s' did not become %d within %d ms", key, want,
                         timeout_ms);
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLPRI};
        /* Wake up at least every 10 ms: a change can land between read and poll. */
        poll(&p, 1, left < 10 ? (int)left : 10);
    }
    close(fd);
    return rc;
}

int cgroup_frozen(int dir_fd, bool *frozen, struct bottle_err *err)
{
    *frozen = false;
    int fd = openat(dir_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cgroup: cannot open cgroup.events: %s", strerror(errno));
    int v = events_value(fd, "frozen");
    close(fd);
    if (v < 0)
        return err_set(err, EIO, "cgroup: cgroup.events has no frozen state");
    *frozen = v == 1;
    return 0;
}

int cgroup_freeze(int dir_fd, int timeout_ms, struct bottle_err *err)
{
    int rc = write_at(dir_fd, "cgroup.freeze", "1", err);
    return rc < 0 ? rc : wait_events(dir_fd, "frozen", 1, timeout_ms, err);
}

int cgroup_thaw(int dir_fd, int timeout_ms, struct bottle_err *err)
{
    int rc = write_at(dir_fd, "cgroup.freeze", "0", err);
    return rc < 0 ? rc : wait_events(dir_fd, "frozen", 0, timeout_ms, err);
}

int cgroup_kill(int dir_fd, struct bottle_err *err)
{
    return write_at(dir_fd, "cgroup.kill", "1", err);
}

int cgroup_wait_empty(int dir_fd, int timeout_ms, struct bottle_err *err)
{
    return wait_events(dir_fd, "populated", 0, timeout_ms, err);
}

/* ---- spawning --------------------------------------------------------------- */

static pid_t spawn_clone3(int dir_fd, int (*fn)(void *), void *arg)
{
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)dir_fd;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0)
        _exit(fn(arg));
    return (pid_t)pid;
}

static pid_t spawn_fork_move(int dir_fd, int (*fn)(void *), void *arg, struct bottle_err *err)
{
    int gate[2];
    if (pipe2(gate, O_CLOEXEC) < 0)
        return err_set(err, errno, "cgroup: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(gate[0]);
        close(gate[1]);
        return err_set(err, saved, "cgroup: fork: %s", strerror(saved));
    }
    if (pid == 0) {
        char go = 0;
        close(gate[1]);
        /* Run only once the parent placed us; EOF without the byte means it failed. */
        ssize_t n;
        do {
            n = read(gate[0], &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            _exit(127);
        close(gate[0]);
        _exit(fn(arg));
    }
    close(gate[0]);
    int rc = cgroup_move_pid(dir_fd, pid, err);
    if (rc < 0) {
        close(gate[1]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return rc;
    }
    ssize_t n = write(gate[1], "g", 1);
    close(gate[1]);
    if (n != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return err_set(err, EIO, "cgroup: cannot release the child");
    }
    return pid;
}

pid_t cgroup_spawn_into(int dir_fd, unsigned flags, int (*fn)(void *), void *arg,
                        struct bottle_err *err)
{
    if (!(flags & CGROUP_SPAWN_NO_CLONE3)) {
        pid_t pid = spawn_clone3(dir_fd, fn, arg);
        if (pid > 0)
            return pid;
        /* ENOSYS: no clone3; E2BIG/EINVAL: no CLONE_INTO_CGROUP. Anything else is real. */
        if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
            return err_set(err, errno, "cgroup: clone3 into cgroup: %s", strerror(errno));
    }
    return spawn_fork_move(dir_fd, fn, arg, err);
}

/* ---- listing and removal ------------------------------------------------------- */

static void collect_pids(const char *path, pid_t **pids, size_t *n, size_t *cap, int depth)
{
    char *procs = fs_join(path, "cgroup.procs");
    FILE *f = fopen(procs, "re");
    free(procs);
    if (f) {
        int pid;
        while (fscanf(f, "%d", &pid) == 1) {
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 16;
                *pids = xrealloc(*pids, *cap * sizeof(**pids));
            }
            (*pids)[(*n)++] = pid;
        }
        fclose(f);
    }
    if (depth >= 32)
        return;
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        char *child = fs_join(path, e->d_name);
        collect_pids(child, pids, n, cap, depth + 1);
        free(child);
    }
    closedir(d);
}

int cgroup_list_pids(const char *path, pid_t **pids, size_t *n, struct bottle_err *err)
{
    size_t cap = 0;
    *pids = NULL;
    *n = 0;
    if (!fs_is_dir(path))
        return err_set(err, ENOENT, "cgroup: %s does not exist", path);
    collect_pids(path, pids, n, &cap, 0);
    return 0;
}

/* rmdir children first; cgroupfs refuses to remove a directory with child cgroups. */
static int remove_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        char *child = fs_join(path, e->d_name);
        int r = depth < 32 ? remove_tree(child, depth + 1) : -ELOOP;
        if (r < 0 && rc == 0)
            rc = r;
        free(child);
    }
    closedir(d);
    if (rmdir(path) < 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}

/*
 * <v1 mount>/bottle/<slug> in every cgroup v1 hierarchy: the bottle's limits on a hybrid host
 * (kernel/limits.c) and the engine's copies of Docker's --cgroup-parent. The processes are gone
 * once the v2 subtree is empty, but a v1 cgroup can stay busy a moment longer.
 */
static int remove_v1(const char *slug, struct bottle_err *err)
{
    struct strv mounts = STRV_INIT;
    platform_cgroup1_mounts(&mounts);
    int rc = 0;
    for (size_t i = 0; i < mounts.len; i++) {
        char *root = fs_join(mounts.items[i], CGROUP_BOTTLE_DIR);
        char *dir = fs_join(root, slug);
        int r = remove_tree(dir, 0);
        for (int tries = 0; r == -EBUSY && tries < 100; tries++) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            r = remove_tree(dir, 0);
        }
        if (r < 0 && rc == 0)
            rc = err_set(err, -r, "cgroup: cannot remove %s: %s", dir, strerror(-r));
        rmdir(root); /* kept while another bottle uses it */
        free(dir);
        free(root);
    }
    strv_free(&mounts);
    return rc;
}

int cgroup_bottle_remove(const char *slug, int timeout_ms, struct bottle_err *err)
{
    if (!home_slug_valid(slug))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "cgroup: invalid bottle name '%s'",
                            slug ? slug : "");
    char *root = NULL;
    int rc = cgroup_root_path(&root, err);
    if (rc < 0)
        return rc;
    char *path = fs_join(root, slug);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT
                 ? remove_v1(slug, err)
                 : err_set(err, errno, "cgroup: cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    /* cgroup.kill covers the whole subtree; the wait does too ("populated"). */
    rc = cgroup_kill(fd, err);
    if (rc == 0)
        rc = cgroup_wait_empty(fd, timeout_ms, err);
    close(fd);
    if (rc < 0) {
        err_prefix(err, "cannot empty bottle %s", slug);
        goto out;
    }
    rc = remove_tree(path, 0);
    if (rc < 0) {
        rc = err_set(err, -rc, "cgroup: cannot remove %s: %s", path, strerror(-rc));
        goto out;
    }
    /* Another bottle may live there: ENOTEMPTY/EBUSY just means keep it. */
    rmdir(root);
    rc = remove_v1(slug, err);
out:
    free(path);
    free(root);
    return rc;
}

/* ---- bpffs ------------------------------------------------------------------ */

int bpffs_ensure_mounted(char **mount_point, struct bottle_err *err)
{
    *mount_point = NULL;
    struct bottle_err probe_err;
    err_clear(&probe_err);
    if (platform_find_bpffs(mount_point, &probe_err) == 0)
        return 0;
    /* Only mount when nothing at all is mounted there. */
    if (mkdir(BPFFS_DEFAULT_MOUNT, 0700) < 0 && errno != EEXIST)
        return err_set(err, errno, "bpffs: cannot create %s: %s", BPFFS_DEFAULT_MOUNT,
                       strerror(errno));
    if (mount("bpf", BPFFS_DEFAULT_MOUNT, "bpf", 0, "mode=0700") < 0) {
        int saved = errno;
        if (saved == EBUSY && platform_find_bpffs(mount_point, &probe_err) == 0)
            return 0;
        return err_set(err, saved, "bpffs: cannot mount bpf at %s: %s (run as root)",
                       BPFFS_DEFAULT_MOUNT, strerror(saved));
    }
    *mount_point = xstrdup(BPFFS_DEFAULT_MOUNT);
    return 0;
}

static int mkdir_0700(const char *path, struct bottle_err *err)
{
    if (mkdir(path, 0700) < 0) {
        if (errno != EEXIST)
            return err_set(err, errno, "bpffs: cannot create %s: %s", path, strerror(errno));
        return 0;
    }
    /* mkdir honours the umask; the pins must never be readable by others. */
    if (chmod(path, 0700) < 0)
        return err_set(err, errno, "bpffs: cannot chmod %s: %s", path, strerror(errno));
    return 0;
}

int bpffs_root_dir(bool create, char **path, struct bottle_err *err)
{
    char *mount = NULL;
    *path = NULL;
    int rc;
    if (create) {
        rc = bpffs_ensure_mounted(&mount, err);
    } else {
        rc = platform_find_bpffs(&mount, err);
        if (rc < 0)
            err_set(err, ENOENT, "bpffs: not mounted (no bottle has been started)");
    }
    if (rc < 0)
        return rc;
    char *root = fs_join(mount, CGROUP_BOTTLE_DIR);
    free(mount);
    if (create && (rc = mkdir_0700(root, err)) < 0) {
        free(root);
        return rc;
    }
    *path = root;
    return 0;
}

int bpffs_bottle_dir(const char *slug, bool create, char **path, struct bottle_err *err)
{
    *path = NULL;
    if (!home_slug_valid(slug))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "bpffs: invalid bottle name '%s'",
                            slug ? slug : "");
    char *root = NULL;
    int rc = bpffs_root_dir(create, &root, err);
    if (rc < 0)
        return rc;
    char *dir = fs_join(root, slug);
    free(root);
    if (create && (rc = mkdir_0700(dir, err)) < 0) {
        free(dir);
        return rc;
    }
    *path = dir;
    return 0;
}
