/*
 * docker — the agent in a Docker container, under the same kernel policy as
 * a native bottle. The container runs with --network none and
 * --cgroup-parent set to the bottle's agent cgroup, where the BPF programs
 * are already attached; its first process only waits (docker-init and
 * `sleep infinity`). Once it runs, the bottle's veth moves into its network
 * namespace, and only then is the agent started with `docker exec`, so the
 * agent never runs before its one route exists. seccomp comes from the
 * generated Docker profile; every capability is dropped, no_new_privs is
 * set and the user is never root.
 *
 * The docker CLI is always run from an argv array; the agent's variables go
 * through the CLI's environment (`-e NAME`), not its argv. This backend
 * never decides policy and never prints, except an image build's own output.
 *
 * A bind mount's source path shows in the container's /proc/self/mountinfo,
 * so the bottle's files (under $BOTTLE_HOME on the host) are copied to
 * DOCKER_FILES_DIR/<slug> and bound from there; the workspace is bound at
 * its own path, which the agent sees anyway.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/proc.h"
#include "backends/docker/docker.h"
#include "backends/docker/docker_internal.h"
#include "common/fs.h"
#include "common/json.h"
#include "manifest/plan.h"
#include "kernel/cgroup.h"
#include "kernel/seccomp.h"

#define DOCKER_DEFAULT_HOME "/home/agent"
#define DOCKER_FILES_MAX    (64u << 20) /* bytes of the bottle's files, at most */

struct docker_priv {
    const struct backend_spec *spec;
    struct docker_cli cli;
    char *image;
    char *name;
    char *cgroup_parent; /* /bottle/<slug>/agent */
    char *cgroup2_mount;
    char *leaf;   /* the container's cgroup2 path, below cgroup_parent */
    char *tmpdir; /* holds the seccomp profile until the container exists */
    char *seccomp_path;
    char *files_dir; /* DOCKER_FILES_DIR/<slug>: the copy of the bottle's files */
    bool created;
    pid_t init_pid;
    bool reaped;
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- checks ------------------------------------------------------------------------- */

/* Paths end up inside --mount's comma-separated value: keep them plain. */
static int check_path(const char *what, const char *path, struct bottle_err *err)
{
    if (!path || path[0] != '/')
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "docker: %s must be an absolute path",
                            what);
    if (strpbrk(path, ",\"\n="))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "docker: %s '%s' holds a comma, quote, '=' or newline", what, path);
    return 0;
}

static bool path_within(const char *inner, const char *outer)
{
    size_t n = strlen(outer);
    while (n > 1 && outer[n - 1] == '/')
        n--;
    return strncmp(inner, outer, n) == 0 && (inner[n] == '\0' || inner[n] == '/');
}

static int spec_check(const struct backend_spec *spec, struct bottle_err *err)
{
    if (!spec->slug || !*spec->slug)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "docker: the spec has no slug");
    if (!spec->argv || spec->argv->len == 0)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "docker: the agent has no command");
    if (spec->uid == 0 || spec->gid == 0)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "docker: refusing to run the agent as root (uid %u, gid %u)",
                            (unsigned)spec->uid, (unsigned)spec->gid);
    if (spec->netns_fd < 0)
        return err_set_kind(err, ERR_KIND_REFUSED, EINVAL,
                            "docker: no network namespace with the bottle's veth was given");
    if (spec->cgroup_fd < 0)
        return err_set_kind(err, ERR_KIND_REFUSED, EINVAL,
                            "docker: no agent cgroup was given; the BPF policy could not cover "
                            "the container");
    int rc = check_path("the workspace", spec->workspace, err);
    if (rc == 0 && strcmp(spec->workspace, "/") == 0)
        rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL, "docker: the workspace cannot be /");
    if (rc == 0 && spec->bottle_dir)
        rc = check_path("the bottle directory", spec->bottle_dir, err);
    if (rc == 0 && spec->home_source)
        rc = check_path("the home directory", spec->home_source, err);
    if (rc == 0 && spec->guest_home)
        rc = check_path("the guest home", spec->guest_home, err);
    const char *const homes[] = {spec->bottle_home, spec->config_home};
    for (size_t i = 0; rc == 0 && i < 2; i++)
        if (homes[i] &&
            (path_within(spec->workspace, homes[i]) || path_within(homes[i], spec->workspace)))
            rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                              "docker: the workspace %s overlaps %s %s", spec->workspace,
                              i == 0 ? "$BOTTLE_HOME" : "the manifests' home", homes[i]);
    if (rc == 0 && !fs_is_dir(spec->workspace))
        rc = err_set_kind(err, ERR_KIND_USAGE, ENOENT, "docker: the workspace %s does not exist",
                          spec->workspace);
    for (size_t i = 0; rc == 0 && spec->guard && i < spec->guard->len; i++)
        if (strpbrk(spec->guard->items[i].rel, ",\"\n="))
            rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                              "docker: the workspace path '%s' holds a comma, quote, '=' or "
                              "newline; it cannot be kept read-only",
                              spec->guard->items[i].rel);
    return rc;
}

/* ---- probe and prepare --------------------------------------------------------------- */

static int docker_probe(struct bottle_err *err)
{
    struct docker_cli cli;
    int rc = docker_cli_init(&cli, err);
    if (rc == 0)
        rc = docker_cli_probe(&cli, err);
    docker_cli_free(&cli);
    return rc;
}

/* --cgroup-parent keeps its meaning only with the cgroupfs driver. */
static int check_cgroup_driver(const struct docker_cli *cli, struct bottle_err *err)
{
    static const char *const args[] = {"info", "--format", "{{.CgroupDriver}}", NULL};
    struct buf out = BUF_INIT;
    int rc = docker_cli_run(cli, args, false, &out, err);
    if (rc == 0 && strcmp(out.data ? out.data : "", "cgroupfs") != 0)
        rc = err_set_kind(err, ERR_KIND_REFUSED, ENOTSUP,
                          "docker: the engine uses the '%s' cgroup driver; the bottle needs "
                          "'cgroupfs' (dockerd --exec-opt native.cgroupdriver=cgroupfs)",
                          out.data ? out.data : "");
    buf_free(&out);
    return rc;
}

/* A container of that name is a crashed bottle's: never reuse or remove it here. */
static int check_name_free(const struct docker_priv *p, struct bottle_err *err)
{
    const char *args[] = {"container", "inspect", "--format", "{{.Id}}", p->name, NULL};
    struct bottle_err ignored = {0};
    if (docker_cli_run(&p->cli, args, false, NULL, &ignored) == 0)
        return err_set_kind(err, ERR_KIND_USAGE, EEXIST,
                            "docker: a container named %s already exists (a bottle that "
                            "crashed?); remove it with 'docker rm -f %s' or 'bottle cleanup'",
                            p->name, p->name);
    return 0;
}

static int write_seccomp(struct docker_priv *p, struct bottle_err *err)
{
    cJSON *doc = seccomp_profile_docker_json(p->spec->seccomp_extra, err);
    if (!doc)
        return err_prefix(err, "docker: seccomp profile");
    char templ[] = "/tmp/bottle-docker-XXXXXX";
    const char *dir = mkdtemp(templ);
    if (!dir) {
        cJSON_Delete(doc);
        return err_set(err, errno, "docker: cannot make a temporary directory: %s",
                       strerror(errno));
    }
    p->tmpdir = xstrdup(dir);
    p->seccomp_path = fs_join(dir, "seccomp.json");
    char *text = json_to_text(doc, false);
    cJSON_Delete(doc);
    int rc = fs_write_atomic(p->seccomp_path, text, strlen(text), 0600, err);
    free(text);
    return rc;
}

/* A slug names one directory below DOCKER_FILES_DIR, never another place. */
static bool slug_is_name(const char *slug)
{
    return slug && *slug && slug[0] != '.' && !strchr(slug, '/');
}

/* Removes a staged copy of a bottle's files (regular files in one directory). */
static void remove_files_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        int fd = dirfd(d);
        for (struct dirent *de; (de = readdir(d));)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                unlinkat(fd, de->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

/* The bottle's files, copied where their path says nothing about the host. */
static int stage_files(struct docker_priv *p, struct bottle_err *err)
{
    const char *src = p->spec->bottle_dir;
    if (!slug_is_name(p->spec->slug))
        return err_set(err, EINVAL, "docker: '%s' is not a bottle's slug", p->spec->slug);
    int rc = fs_mkdir_p(DOCKER_FILES_DIR, 0755, err);
    if (rc < 0)
        return err_prefix(err, "docker: the bottle's files");
    p->files_dir = fs_join(DOCKER_FILES_DIR, p->spec->slug);
    remove_files_dir(p->files_dir); /* a crashed bottle's, never a running one's (name check) */
    if (mkdir(p->files_dir, 0755) < 0 || chmod(p->files_dir, 0755) < 0)
        return err_set(err, errno, "docker: cannot create %s: %s", p->files_dir, strerror(errno));
    DIR *d = opendir(src);
    if (!d)
        return err_set(err, errno, "docker: cannot list %s: %s", src, strerror(errno));
    size_t total = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *from = fs_join(src, de->d_name);
        char *to = fs_join(p->files_dir, de->d_name);
        struct stat sb;
        struct buf data = BUF_INIT;
        if (lstat(from, &sb) < 0 || !S_ISREG(sb.st_mode))
            rc = err_set(err, EINVAL, "docker: %s is not a regular file", from);
        else if ((rc = fs_read_file(from, DOCKER_FILES_MAX - total, &data, err)) == 0) {
            total += data.len;
            rc = fs_write_atomic(to, data.data ? data.data : "", data.len, sb.st_mode & 0755, err);
        }
        buf_free(&data);
        free(from);
        free(to);
    }
    closedir(d);
    return rc;
}

/* A home to restore needs an image `bottle commit` made. */
static int check_snapshot_image(const struct docker_priv *p, struct bottle_err *err)
{
    char *format = xasprintf("{{index .Config.Labels \"%s\"}}", DOCKER_LABEL_SNAP_ARCHIVE);
    const char *args[] = {"image", "inspect", "--format", format, p->image, NULL};
    struct buf out = BUF_INIT;
    int rc = docker_cli_run(&p->cli, args, false, &out, err);
    if (rc == 0 && strcmp(out.data ? out.data : "", DOCKER_SNAPSHOT_ARCHIVE) != 0)
        rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                          "docker: image %s is not a bottle snapshot (no %s label); there is no "
                          "home to restore from it",
                          p->image, DOCKER_LABEL_SNAP_ARCHIVE);
    buf_free(&out);
    free(format);
    return rc;
}

static void docker_release(struct backend_bottle *b);

static int docker_prepare(struct backend_bottle *b, const struct backend_spec *spec,
                          struct bottle_err *err)
{
    memset(b, 0, sizeof(*b));
    b->backend = &backend_docker;
    int rc = spec_check(spec, err);
    if (rc < 0)
        return rc;
    struct docker_priv *p = xcalloc(1, sizeof(*p));
    p->spec = spec;
    b->priv = p;
    p->name = xasprintf("%s%s", DOCKER_NAME_PREFIX, spec->slug);
    rc = docker_cli_init(&p->cli, err);
    if (rc == 0)
        rc = docker_cli_probe(&p->cli, err);
    if (rc == 0)
        rc = check_cgroup_driver(&p->cli, err);
    if (rc == 0)
        rc = check_name_free(p, err);
    if (rc == 0)
        rc = docker_cgroup_parent(spec->cgroup_fd, &p->cgroup_parent, &p->cgroup2_mount, err);
    if (rc == 0 && !spec->no_seccomp)
        rc = write_seccomp(p, err);
    if (rc == 0 && spec->bottle_dir)
        rc = stage_files(p, err);
    if (rc == 0)
        rc = docker_image_resolve(&p->cli, spec, &p->image, err);
    if (rc == 0 && spec->restore_home)
        rc = check_snapshot_image(p, err);
    if (rc < 0) {
        struct bottle_err keep = *err;
        docker_release(b);
        *err = keep;
    }
    return rc;
}

/* ---- launch -------------------------------------------------------------------------- */

static void push_mount(struct strv *argv, const char *src, const char *dst, bool ro)
{
    strv_push(argv, "--mount");
    strv_push_owned(argv,
                    xasprintf("type=bind,source=%s,target=%s%s", src, dst, ro ? ",readonly" : ""));
}

/*
 * The bottle's limits as the engine's flags: it applies them to the container's own cgroup
 * (in cgroup2, or in each v1 hierarchy on a hybrid host). --memory-swap equal to --memory
 * leaves no swap. /dev/shm is the container's IPC tmpfs: --shm-size.
 */
void docker_limit_args(const struct resource_limits *l, struct strv *argv)
{
    uint64_t tmpfs = l && l->tmpfs != LIMIT_UNSET ? l->tmpfs : LIMITS_DEFAULT_TMPFS;
    if (l && l->pids != LIMIT_UNSET && l->pids != LIMIT_NONE) {
        strv_push(argv, "--pids-limit");
        strv_push_owned(argv, xasprintf("%llu", (unsigned long long)l->pids));
    }
    if (l && l->memory != LIMIT_UNSET && l->memory != LIMIT_NONE) {
        strv_push(argv, "--memory");
        strv_push_owned(argv, xasprintf("%llu", (unsigned long long)l->memory));
        strv_push(argv, "--memory-swap");
        strv_push_owned(argv, xasprintf("%llu", (unsigned long long)l->memory));
    }
    if (l && l->cpu_milli != LIMIT_UNSET && l->cpu_milli != LIMIT_NONE) {
        char cpus[24];
        limits_format_cpus(l->cpu_milli, cpus, sizeof(cpus));
        strv_push(argv, "--cpus");
        strv_push(argv, cpus);
    }
    strv_push(argv, "--shm-size");
    strv_push_owned(argv, xasprintf("%llu", (unsigned long long)tmpfs));
}

static void run_args(const struct docker_priv *p, struct strv *argv)
{
    const struct backend_spec *s = p->spec;
    const char *home = s->guest_home ? s->guest_home : DOCKER_DEFAULT_HOME;
    uint64_t tmpfs =
        s->limits && s->limits->tmpfs != LIMIT_UNSET ? s->limits->tmpfs : LIMITS_DEFAULT_TMPFS;
    strv_push(argv, "run");
    strv_push(argv, "--detach");
    strv_push(argv, "--pull");
    strv_push(argv, "never");
    strv_push(argv, "--name");
    strv_push(argv, p->name);
    strv_push(argv, "--label");
    strv_push_owned(argv, xasprintf("%s=%s", DOCKER_LABEL_SLUG, s->slug));
    strv_push(argv, "--label");
    strv_push_owned(argv, xasprintf("%s=%s", DOCKER_LABEL_HOME, home));
    strv_push(argv, "--hostname");
    strv_push(argv, "bottle");
    strv_push(argv, "--network");
    strv_push(argv, "none");
    strv_push(argv, "--cgroup-parent");
    strv_push(argv, p->cgroup_parent);
    strv_push(argv, "--cap-drop");
    strv_push(argv, "ALL");
    strv_push(argv, "--security-opt");
    strv_push(argv, "no-new-privileges");
    strv_push(argv, "--security-opt");
    if (p->seccomp_path)
        strv_push_owned(argv, xasprintf("seccomp=%s", p->seccomp_path));
    else
        strv_push(argv, "seccomp=unconfined");
    strv_push(argv, "--ipc");
    strv_push(argv, "private");
    docker_limit_args(s->limits, argv);
    strv_push(argv, "--user");
    strv_push_owned(argv, xasprintf("%u:%u", (unsigned)s->uid, (unsigned)s->gid));
    strv_push(argv, "--read-only");
    strv_push(argv, "--tmpfs");
    strv_push_owned(
        argv, xasprintf("/tmp:rw,nosuid,nodev,mode=1777,size=%llu", (unsigned long long)tmpfs));
    if (s->home_source) {
        push_mount(argv, s->home_source, home, false);
    } else {
        strv_push(argv, "--tmpfs");
        strv_push_owned(argv,
                        xasprintf("%s:rw,nosuid,nodev,mode=0700,uid=%u,gid=%u,size=%llu", home,
                                  (unsigned)s->uid, (unsigned)s->gid, (unsigned long long)tmpfs));
    }
    push_mount(argv, s->workspace, s->workspace, false);
    /* Git settings and workspace.read_only, each over itself (guard.h), parents first. */
    for (size_t i = 0; s->guard && i < s->guard->len; i++) {
        const struct guard_path *g = &s->guard->items[i];
        char *path = fs_join(s->workspace, g->rel);
        push_mount(argv, path, path, g->kind == GUARD_READ_ONLY);
        free(path);
    }
    if (p->files_dir)
        push_mount(argv, p->files_dir, GUEST_BOTTLE_DIR, true);
    strv_push(argv, "--workdir");
    strv_push(argv, s->workspace);
    strv_push(argv, "--init");
    strv_push(argv, "--entrypoint");
    strv_push(argv, DOCKER_IDLE_PROGRAM);
    strv_push(argv, p->image);
    strv_push(argv, DOCKER_IDLE_ARG);
}

/* The container's last log lines, for an error message. */
static void container_logs(const struct docker_priv *p, char *out, size_t len)
{
    const char *args[] = {"logs", "--tail", "5", p->name, NULL};
    struct buf b = BUF_INIT;
    struct bottle_err ignored = {0};
    out[0] = '\0';
    if (docker_cli_run(&p->cli, args, false, &b, &ignored) == 0 && b.len)
        snprintf(out, len, "%s", b.data);
    buf_free(&b);
}

static int inspect_pid(struct docker_priv *p, struct bottle_err *err)
{
    const char *args[] = {"inspect", "--format", "{{.State.Pid}}", p->name, NULL};
    struct buf out = BUF_INIT;
    int rc = docker_cli_run(&p->cli, args, false, &out, err);
    long pid = rc == 0 && out.data ? strtol(out.data, NULL, 10) : 0;
    buf_free(&out);
    if (rc < 0)
        return rc;
    if (pid <= 0) {
        char logs[512];
        container_logs(p, logs, sizeof(logs));
        return err_set(err, ECHILD, "docker: the container %s stopped at once%s%s", p->name,
                       logs[0] ? ": " : "", logs);
    }
    p->init_pid = (pid_t)pid;
    return 0;
}

static int adopt_network(struct docker_priv *p, struct bottle_err *err)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/ns/net", (long)p->init_pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "docker: cannot open the container's network namespace: %s",
                       strerror(errno));
    /* The pid could have been reused between inspect and open: check it again. */
    char *leaf = NULL;
    int rc = docker_cgroup_check_pid(p->init_pid, p->cgroup_parent, &leaf, err);
    if (rc == 0 && strcmp(leaf, p->leaf) != 0)
        rc = err_set(err, ESRCH, "docker: the container's init went away while starting");
    free(leaf);
    if (rc == 0)
        rc = docker_net_adopt(p->spec->netns_fd, fd, err);
    close(fd);
    return rc;
}

struct exec_child {
    const char *path;
    char **argv;
    char **envp;
    const int *stdio;
    bool new_session;
};

static void exec_child_main(const struct exec_child *c)
{
    proc_reset_signals(true);
    for (int i = 0; i < 3; i++)
        if (c->stdio[i] >= 0 && c->stdio[i] != i && dup2(c->stdio[i], i) < 0)
            _exit(126);
    if (c->new_session) {
        setsid();
        if (isatty(0))
            ioctl(0, TIOCSCTTY, 0);
    }
    syscall(SYS_close_range, 3u, ~0u, 0u);
    execve(c->path, c->argv, c->envp);
    dprintf(2, "bottle: cannot run %s: %s\n", c->path, strerror(errno));
    _exit(127);
}

void docker_exec_args(const struct docker_cli *cli, const struct backend_spec *s,
                      const char *container, bool tty, struct strv *argv, struct strv *envp)
{
    strv_push(argv, cli->path);
    strv_push(argv, "exec");
    strv_push(argv, "--interactive");
    if (tty)
        strv_push(argv, "--tty");
    strv_push(argv, "--user");
    strv_push_owned(argv, xasprintf("%u:%u", (unsigned)s->uid, (unsigned)s->gid));
    strv_push(argv, "--workdir");
    strv_push(argv, s->workspace);
    strv_copy(envp, &cli->env);
    for (size_t i = 0; s->env && i < s->env->len; i++) {
        const char *kv = s->env->items[i];
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
            continue;
        char *name = xstrndup(kv, (size_t)(eq - kv));
        strv_push(argv, "--env");
        /* Values stay out of argv, except for the few names the CLI reads itself. */
        if (docker_cli_reads_name(name)) {
            strv_push(argv, kv);
        } else {
            strv_push(argv, name);
            strv_push(envp, kv);
        }
        free(name);
    }
    strv_push(argv, container);
    for (size_t i = 0; i < s->argv->len; i++)
        strv_push(argv, s->argv->items[i]);
}

/*
 * A snapshot's home, unpacked into the fresh home by the agent's user inside
 * the bottle: whatever the archive holds, it can only write what the agent
 * itself could.
 */
static int restore_home(const struct docker_priv *p, struct bottle_err *err)
{
    const struct backend_spec *s = p->spec;
    const char *home = s->guest_home ? s->guest_home : DOCKER_DEFAULT_HOME;
    char *user = xasprintf("%u:%u", (unsigned)s->uid, (unsigned)s->gid);
    const char *args[] = {"exec", "--user", user, p->name,
                          "tar",  "-x",     "-f", DOCKER_SNAPSHOT_ARCHIVE,
                          "-C",   home,     NULL};
    int rc = docker_cli_run_io(&p->cli, args, -1, -1, 0, 0, NULL, err);
    free(user);
    if (rc < 0)
        return err_prefix(err, "docker: restoring the snapshot's home into %s", home);
    return 0;
}

static int start_agent(struct backend_bottle *b, struct docker_priv *p, struct bottle_err *err)
{
    const struct backend_spec *s = p->spec;
    struct strv argv = STRV_INIT, envp = STRV_INIT;
    int in = s->stdio[0] >= 0 ? s->stdio[0] : 0;
    docker_exec_args(&p->cli, s, p->name, isatty(in), &argv, &envp);
    static char *empty[] = {NULL};
    struct exec_child c = {p->cli.path, argv.items, envp.len ? envp.items : empty, s->stdio,
                           s->new_session};
    pid_t pid = fork();
    if (pid == 0)
        exec_child_main(&c);
    int rc = 0;
    if (pid < 0)
        rc = err_set(err, errno, "docker: fork: %s", strerror(errno));
    else
        b->pid = pid;
    if (envp.items)
        for (size_t i = 0; i < envp.len; i++)
            explicit_bzero(envp.items[i], strlen(envp.items[i]));
    strv_free(&argv);
    strv_free(&envp);
    return rc;
}

static int docker_launch(struct backend_bottle *b, struct bottle_err *err)
{
    struct docker_priv *p = b->priv;
    if (!p)
        return err_set(err, EINVAL, "docker: launch before prepare");
    struct strv args = STRV_INIT;
    run_args(p, &args);
    p->created = true; /* a failed run may still leave the container: release removes it */
    int rc = docker_cli_run(&p->cli, (const char *const *)args.items, false, NULL, err);
    strv_free(&args);
    if (p->seccomp_path) {
        unlink(p->seccomp_path);
        rmdir(p->tmpdir);
    }
    if (rc == 0)
        rc = inspect_pid(p, err);
    if (rc == 0)
        rc = docker_cgroup_check_pid(p->init_pid, p->cgroup_parent, &p->leaf, err);
    if (rc == 0)
        rc = adopt_network(p, err);
    if (rc == 0 && p->spec->restore_home)
        rc = restore_home(p, err);
    if (rc == 0)
        rc = start_agent(b, p, err);
    return rc;
}

/* ---- wait, stop, release ---------------------------------------------------------- */

static bool agent_exited(struct backend_bottle *b)
{
    if (b->exited)
        return true;
    return proc_child_exited(b->pid);
}

static int docker_wait(struct backend_bottle *b, int *exit_code, struct bottle_err *err)
{
    struct docker_priv *p = b->priv;
    if (b->exited) {
        *exit_code = b->exit_code;
        return 0;
    }
    if (b->pid <= 0)
        return err_set(err, ECHILD, "docker: the agent was not started");
    int st = 0;
    pid_t r;
    while ((r = waitpid(b->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return err_set(err, errno, "docker: waitpid: %s", strerror(errno));
    b->exited = true;
    if (p)
        p->reaped = true;
    b->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    *exit_code = b->exit_code;
    return 0;
}

/* Pids of the container's cgroup2 leaf. */
static size_t leaf_pids(const struct docker_priv *p, pid_t *pids, size_t max)
{
    if (!p->leaf)
        return 0;
    char *path = xasprintf("%s%s/cgroup.procs", p->cgroup2_mount, p->leaf);
    FILE *f = fopen(path, "re");
    free(path);
    size_t n = 0;
    long v;
    while (f && n < max && fscanf(f, "%ld", &v) == 1)
        pids[n++] = (pid_t)v;
    if (f)
        fclose(f);
    return n;
}

static pid_t parent_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    long ppid = 0;
    if (!close_paren || sscanf(close_paren + 1, " %*c %ld", &ppid) != 1)
        return 0;
    return (pid_t)ppid;
}

/*
 * Signals the exec'd agent: the processes of the container whose parent is
 * outside it (the engine's shim), other than the container's own init.
 */
static void signal_agent(const struct docker_priv *p, int sig)
{
    pid_t pids[1024];
    size_t n = leaf_pids(p, pids, 1024);
    for (size_t i = 0; i < n; i++) {
        if (pids[i] == p->init_pid)
            continue;
        pid_t parent = parent_of(pids[i]);
        bool inside = false;
        for (size_t j = 0; j < n && !inside; j++)
            inside = pids[j] == parent;
        if (!inside)
            kill(pids[i], sig);
    }
}

static void kill_container(const struct docker_priv *p)
{
    if (p->leaf) {
        char *path = xasprintf("%s%s/cgroup.kill", p->cgroup2_mount, p->leaf);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        free(path);
        if (fd >= 0) {
            ssize_t w = write(fd, "1", 1);
            (void)w;
            close(fd);
        }
    }
    if (p->created) {
        const char *args[] = {"kill", p->name, NULL};
        struct bottle_err ignored = {0};
        docker_cli_run(&p->cli, args, false, NULL, &ignored);
    }
}

static int docker_stop(struct backend_bottle *b, int sig, int timeout_ms, struct bottle_err *err)
{
    struct docker_priv *p = b->priv;
    if (!p || b->pid <= 0 || agent_exited(b))
        return 0;
    if (sig == SIGKILL) {
        kill_container(p);
        return 0;
    }
    signal_agent(p, sig);
    if (timeout_ms < 0)
        return 0; /* the caller keeps its own deadline */
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (agent_exited(b))
            return 0;
        sleep_ms(20);
    }
    if (!agent_exited(b))
        kill_container(p);
    (void)err;
    return 0;
}

static void docker_release(struct backend_bottle *b)
{
    struct docker_priv *p = b ? b->priv : NULL;
    if (!p)
        return;
    if (b->pid > 0 && !p->reaped && !b->exited) {
        kill_container(p);
        kill(b->pid, SIGKILL);
        while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        p->reaped = true;
    }
    if (p->created && p->cli.path) {
        const char *args[] = {"rm", "--force", "--volumes", p->name, NULL};
        struct bottle_err ignored = {0};
        docker_cli_run(&p->cli, args, false, NULL, &ignored);
    }
    if (p->cgroup_parent && p->created)
        docker_cgroup_v1_cleanup(p->cgroup_parent);
    if (p->seccomp_path)
        unlink(p->seccomp_path);
    if (p->tmpdir)
        rmdir(p->tmpdir);
    if (p->files_dir)
        remove_files_dir(p->files_dir);
    docker_cli_free(&p->cli);
    free(p->image);
    free(p->name);
    free(p->cgroup_parent);
    free(p->cgroup2_mount);
    free(p->leaf);
    free(p->tmpdir);
    free(p->seccomp_path);
    free(p->files_dir);
    free(p);
    b->priv = NULL;
}

static const char *const docker_enforces[] = {
    "network: the container's only interface leads to the sidecar; the bottle's BPF programs "
    "on its cgroup parent refuse every other connect, datagram and raw socket",
    "every byte in and out is counted in the kernel; cutoff and the host-wide kill switch stop "
    "traffic at once and abort open connections",
    "seccomp: the same denials as a Docker profile; all capabilities dropped; no_new_privs; "
    "a read-only root",
    "sidecar: only the routes, credentials injected (the agent holds placeholders), DLP, "
    "token metering and budgets",
    NULL,
};

static const char *const docker_does_not[] = {
    "what a route allows: the sidecar forwards it",
    "what the agent writes to its workspace (it outlives the bottle; git settings excepted)",
    "the Docker daemon itself: whoever can reach its socket on the host controls the container",
    NULL,
};

const struct bottle_backend backend_docker = {
    .name = "docker",
    .probe = docker_probe,
    .prepare = docker_prepare,
    .launch = docker_launch,
    .wait = docker_wait,
    .stop = docker_stop,
    .release = docker_release,
    .enforces = docker_enforces,
    .does_not = docker_does_not,
};

int docker_remove_slug(const char *slug, struct bottle_err *err)
{
    struct docker_cli cli;
    struct bottle_err ignored = {0};
    if (docker_cli_init(&cli, &ignored) < 0)
        return 0;
    char *name = xasprintf("%s%s", DOCKER_NAME_PREFIX, slug);
    char *label = xasprintf("{{index .Config.Labels \"%s\"}}", DOCKER_LABEL_SLUG);
    const char *inspect[] = {"container", "inspect", "--format", label, name, NULL};
    struct buf out = BUF_INIT;
    int rc = 0;
    if (docker_cli_run(&cli, inspect, false, &out, &ignored) == 0 && out.data &&
        strcmp(out.data, slug) == 0) {
        const char *rm[] = {"rm", "--force", "--volumes", name, NULL};
        rc = docker_cli_run(&cli, rm, false, NULL, err);
    }
    char *parent = xasprintf("/%s/%s/agent", CGROUP_BOTTLE_DIR, slug);
    docker_cgroup_v1_cleanup(parent);
    free(parent);
    if (slug_is_name(slug)) {
        char *files = fs_join(DOCKER_FILES_DIR, slug);
        remove_files_dir(files);
        free(files);
    }
    buf_free(&out);
    free(label);
    free(name);
    docker_cli_free(&cli);
    return rc;
}
