/*
 * native, the controller's side: checks, clone3 into the namespaces and the
 * cgroup, waiting for the agent's exec, wait and stop, the environment, and
 * the backend_native table.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/proc.h"
#include "backends/native.h"
#include "backends/native/native_internal.h"
#include "common/fs.h"
#include "kernel/cgroup.h"

/* Guest paths the bottle builds itself; a workspace may not sit on them. */
static const char *const reserved_guest_paths[] = {"/proc", "/dev", GUEST_BOTTLE_DIR, NULL};

static int path_check(const char *what, const char *path, struct bottle_err *err)
{
    if (!path || path[0] != '/')
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "native: %s '%s' is not an absolute path",
                            what, path ? path : "");
    if (strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../") ||
        str_ends_with(path, "/.") || str_ends_with(path, "/..") ||
        (strlen(path) > 1 && str_ends_with(path, "/")))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "native: %s '%s' is not normalized", what,
                            path);
    if (strlen(path) >= PATH_MAX / 2)
        return err_set_kind(err, ERR_KIND_USAGE, ENAMETOOLONG, "native: %s is too long", what);
    return 0;
}

int native_spec_check(const struct backend_spec *s, struct bottle_err *err)
{
    if (!s->argv || s->argv->len == 0)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "native: the agent has no command");
    if (s->uid == 0 || s->gid == 0)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "native: refusing to run the agent as root (uid %u gid %u); run "
                            "through sudo from a normal account or configure an unprivileged "
                            "user",
                            (unsigned)s->uid, (unsigned)s->gid);
    if (s->netns_fd < 0)
        return err_set(err, EINVAL, "native: the bottle has no network namespace");
    int rc = path_check("workspace", s->workspace, err);
    if (rc < 0)
        return rc;
    if (strcmp(s->workspace, "/") == 0)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "native: the workspace cannot be '/'; pick a project directory");
    char real[PATH_MAX];
    if (!realpath(s->workspace, real) || strcmp(real, s->workspace) != 0)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "native: workspace '%s' must be an existing directory given by its "
                            "real path (no symlinks)",
                            s->workspace);
    if (!fs_is_dir(s->workspace))
        return err_set_kind(err, ERR_KIND_USAGE, ENOTDIR,
                            "native: workspace '%s' is not a "
                            "directory",
                            s->workspace);
    for (const char *const *p = reserved_guest_paths; *p; p++)
        if (native_path_within(s->workspace, *p))
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                                "native: workspace '%s' lies on %s, which the bottle provides",
                                s->workspace, *p);
    const char *const homes[] = {s->bottle_home, s->config_home};
    for (size_t i = 0; i < 2; i++) {
        if (!homes[i])
            continue;
        char bh[PATH_MAX];
        const char *home = realpath(homes[i], bh) ? bh : homes[i];
        if (native_path_within(s->workspace, home) || native_path_within(home, s->workspace))
            return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                                "native: workspace '%s' overlaps %s (%s), which holds %s; pick "
                                "another workspace",
                                s->workspace, i == 0 ? "$BOTTLE_HOME" : "the manifests' home", home,
                                i == 0 ? "the bottles' keys" : "the manifests and settings");
    }
    const char *home = s->guest_home ? s->guest_home : NATIVE_DEFAULT_HOME;
    rc = path_check("home", home, err);
    if (rc < 0)
        return rc;
    if (strcmp(home, "/") == 0 || native_path_within(home, "/proc") ||
        native_path_within(home, "/dev"))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "native: '%s' cannot be the home", home);
    if (s->home_source && !fs_is_dir(s->home_source))
        return err_set(err, ENOTDIR, "native: home source '%s' is not a directory", s->home_source);
    if (s->bottle_dir && !fs_is_dir(s->bottle_dir))
        return err_set(err, ENOTDIR, "native: bottle directory '%s' is not a directory",
                       s->bottle_dir);
    return 0;
}

/*
 * clone3 into the namespaces and, when possible, straight into the cgroup
 * (*placed). Falls back to clone3 without the cgroup, then to clone (no
 * clone3: old kernels, valgrind); the caller moves the pid then.
 */
static pid_t clone_bottle(int cgroup_fd, bool *placed)
{
    const uint64_t ns = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = ns;
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
    }
    args.exit_signal = SIGCHLD;
    *placed = cgroup_fd >= 0;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid >= 0 || cgroup_fd < 0 || (errno != E2BIG && errno != EINVAL && errno != ENOSYS))
        return (pid_t)pid;
    *placed = false;
    if (errno != ENOSYS) {
        args.flags = ns;
        args.cgroup = 0;
        pid = syscall(SYS_clone3, &args, sizeof(args));
        if (pid >= 0 || errno != ENOSYS)
            return (pid_t)pid;
    }
    return (pid_t)syscall(SYS_clone, (unsigned long)ns | SIGCHLD, 0, 0, 0, 0);
}

static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

int native_launch(const struct backend_spec *spec, pid_t *out, struct bottle_err *err)
{
    int rc = native_spec_check(spec, err);
    if (rc < 0)
        return rc;
    static char *const no_env[] = {NULL};
    struct native_child child = {
        .spec = spec,
        .argv = spec->argv->items,
        .envp = spec->env && spec->env->len ? spec->env->items : no_env,
        .err_fd = -1,
        .gate_fd = -1,
    };
    int errp[2], gate[2] = {-1, -1};
    if (pipe2(errp, O_CLOEXEC) < 0)
        return err_set(err, errno, "native: pipe: %s", strerror(errno));

    /* With a cgroup the child waits at a gate until it is known to be placed. */
    bool gated = spec->cgroup_fd >= 0 || spec->n_join_cgroup_fds > 0;
    if (gated && pipe2(gate, O_CLOEXEC) < 0) {
        rc = err_set(err, errno, "native: pipe: %s", strerror(errno));
        goto fail_pipes;
    }
    child.gate_fd = gate[0];
    bool placed = false;
    pid_t pid = clone_bottle(spec->cgroup_fd, &placed);
    if (pid == 0) {
        close(errp[0]);
        if (gate[1] >= 0)
            close(gate[1]);
        child.err_fd = errp[1];
        native_child_main(&child);
    }
    if (pid < 0) {
        rc = err_set(err, errno, "native: clone into new namespaces: %s", strerror(errno));
        goto fail_pipes;
    }
    close(errp[1]);
    errp[1] = -1;
    if (gate[1] >= 0) {
        close(gate[0]);
        gate[0] = -1;
        struct bottle_err move_err = {0};
        bool moved =
            placed || spec->cgroup_fd < 0 || cgroup_move_pid(spec->cgroup_fd, pid, &move_err) == 0;
        /* The limits' v1 cgroups (hybrid hosts): joined before the init runs anything. */
        for (size_t i = 0; moved && i < spec->n_join_cgroup_fds; i++)
            moved = cgroup_move_pid(spec->join_cgroup_fds[i], pid, &move_err) == 0;
        if (!moved || write(gate[1], "g", 1) != 1) {
            kill(pid, SIGKILL);
            reap(pid);
            rc = err_set(err, move_err.code ? move_err.code : EIO,
                         "native: cannot place the bottle in its cgroup: %s", move_err.msg);
            goto fail_pipes;
        }
        close(gate[1]);
        gate[1] = -1;
    }

    /* EOF: the agent was exec'd. Text: what went wrong inside. */
    struct buf msg = BUF_INIT;
    char chunk[512];
    for (;;) {
        ssize_t n = read(errp[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        buf_append(&msg, chunk, (size_t)n);
    }
    close(errp[0]);
    if (msg.len > 0) {
        kill(pid, SIGKILL);
        reap(pid);
        rc = err_set(err, EIO, "%s", msg.data);
        buf_free(&msg);
        return rc;
    }
    buf_free(&msg);
    *out = pid;
    return 0;

fail_pipes:
    for (int i = 0; i < 2; i++) {
        if (errp[i] >= 0)
            close(errp[i]);
        if (gate[i] >= 0)
            close(gate[i]);
    }
    return rc;
}

int native_wait(pid_t pid, int *exit_code, struct bottle_err *err)
{
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return err_set(err, errno, "native: wait for the bottle: %s", strerror(errno));
    if (WIFEXITED(status))
        *exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        *exit_code = 128 + WTERMSIG(status);
    else
        *exit_code = 128;
    return 0;
}

int native_stop(pid_t pid, int sig, int timeout_ms, struct bottle_err *err)
{
    if (pid <= 0)
        return err_set(err, EINVAL, "native: no bottle to stop");
    if (proc_child_exited(pid))
        return 0;
    if (sig != 0 && kill(pid, sig) < 0 && errno != ESRCH)
        return err_set(err, errno, "native: cannot signal the bottle: %s", strerror(errno));
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (proc_child_exited(pid))
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* SIGKILL on PID 1 of the namespace takes every process of the bottle with it. */
    if (!proc_child_exited(pid) && kill(pid, SIGKILL) < 0 && errno != ESRCH)
        return err_set(err, errno, "native: cannot kill the bottle: %s", strerror(errno));
    return 0;
}

int native_user_from_env(uid_t *uid, gid_t *gid, struct bottle_err *err)
{
    const char *su = getenv("SUDO_UID"), *sg = getenv("SUDO_GID");
    if (!su || !sg || !*su || !*sg)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "native: cannot tell which user to run the agent as: start the "
                            "bottle with sudo from your account, or configure an unprivileged "
                            "user");
    char *end1 = NULL, *end2 = NULL;
    errno = 0;
    unsigned long u = strtoul(su, &end1, 10), g = strtoul(sg, &end2, 10);
    if (errno || *end1 || *end2 || u > UINT32_MAX - 1 || g > UINT32_MAX - 1)
        return err_set(err, EINVAL, "native: SUDO_UID/SUDO_GID are not numbers");
    if (u == 0 || g == 0)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "native: refusing to run the agent as root; run sudo from a normal "
                            "account");
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return 0;
}

/* The value given for name in values ("NAME=value"), or NULL. */
static const char *given_value(const struct strv *values, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; values && i < values->len; i++)
        if (strncmp(values->items[i], name, n) == 0 && values->items[i][n] == '=')
            return values->items[i] + n + 1;
    return NULL;
}

int native_env_from_plan(const struct plan *plan, const struct strv *values, struct strv *out,
                         struct bottle_err *err)
{
    struct strv env = STRV_INIT;
    for (size_t i = 0; values && i < values->len; i++) {
        const char *eq = strchr(values->items[i], '=');
        bool known = false;
        for (size_t j = 0; eq && j < plan->n_env && !known; j++)
            known =
                strlen(plan->env[j].name) == (size_t)(eq - values->items[i]) &&
                strncmp(plan->env[j].name, values->items[i], (size_t)(eq - values->items[i])) == 0;
        if (!known) {
            strv_free(&env);
            return err_set(err, EINVAL, "native: '%.*s' is not in the plan's environment",
                           eq ? (int)(eq - values->items[i]) : (int)strlen(values->items[i]),
                           values->items[i]);
        }
    }
    for (size_t i = 0; i < plan->n_env; i++) {
        const struct plan_env *e = &plan->env[i];
        const char *v = given_value(values, e->name);
        if (!v && e->source == ENV_SRC_HOST) {
            v = e->value ? getenv(e->value) : NULL;
            if (!v) {
                strv_free(&env);
                return err_set_kind(err, ERR_KIND_USAGE, ENOENT,
                                    "env '%s' takes the host variable '%s', which is not set",
                                    e->name, e->value ? e->value : "");
            }
        }
        if (!v && e->source != ENV_SRC_HOST && !e->secret)
            v = e->value;
        if (!v && e->secret) {
            strv_free(&env);
            return err_set(err, EINVAL, "native: no value was made for '%s'", e->name);
        }
        if (v)
            strv_push_owned(&env, xasprintf("%s=%s", e->name, v));
    }
    *out = env;
    return 0;
}

/* ---- the backend table -------------------------------------------------------- */

struct native_priv {
    const struct backend_spec *spec;
};

static int native_probe(struct bottle_err *err)
{
    if (geteuid() != 0)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "native: needs root to create namespaces; run with sudo");
    if (access("/proc/self/ns/net", F_OK) < 0 || access("/proc/self/ns/pid", F_OK) < 0)
        return err_set_kind(err, ERR_KIND_REFUSED, ENOTSUP,
                            "native: this kernel has no network or PID namespaces");
    return 0;
}

static int native_prepare(struct backend_bottle *b, const struct backend_spec *spec,
                          struct bottle_err *err)
{
    int rc = native_spec_check(spec, err);
    if (rc < 0)
        return rc;
    struct native_priv *p = xcalloc(1, sizeof(*p));
    p->spec = spec;
    b->backend = &backend_native;
    b->priv = p;
    b->pid = 0;
    b->exited = false;
    return 0;
}

static int native_backend_launch(struct backend_bottle *b, struct bottle_err *err)
{
    struct native_priv *p = b->priv;
    if (!p)
        return err_set(err, EINVAL, "native: launch before prepare");
    return native_launch(p->spec, &b->pid, err);
}

static int native_backend_wait(struct backend_bottle *b, int *exit_code, struct bottle_err *err)
{
    if (b->exited) {
        *exit_code = b->exit_code;
        return 0;
    }
    int rc = native_wait(b->pid, exit_code, err);
    if (rc == 0) {
        b->exited = true;
        b->exit_code = *exit_code;
    }
    return rc;
}

static int native_backend_stop(struct backend_bottle *b, int sig, int timeout_ms,
                               struct bottle_err *err)
{
    if (b->exited || b->pid <= 0)
        return 0;
    return native_stop(b->pid, sig, timeout_ms, err);
}

static void native_release(struct backend_bottle *b)
{
    if (!b)
        return;
    if (b->pid > 0 && !b->exited) {
        kill(b->pid, SIGKILL);
        reap(b->pid);
    }
    free(b->priv);
    b->priv = NULL;
    b->pid = 0;
}

static const char *const native_enforces[] = {
    "network: the agent reaches only its sidecar; BPF programs on the bottle's cgroup refuse "
    "every other connect, datagram and raw socket, and drop every other packet",
    "every byte in and out is counted in the kernel; cutoff and the host-wide kill switch stop "
    "traffic at once and abort open connections",
    "seccomp: no namespaces, mounts, BPF, ptrace, io_uring, keyrings or kernel modules; "
    "no_new_privs",
    "private network, PID, mount, IPC and UTS namespaces; the host's homes, $BOTTLE_HOME and "
    "the bottle's state are not mounted",
    "sidecar: only the routes, credentials injected (the agent holds placeholders), DLP, "
    "token metering and budgets",
    NULL,
};

static const char *const native_does_not[] = {
    "what a route allows: the sidecar forwards it",
    "what the agent writes to its workspace (it outlives the bottle; git settings excepted)",
    NULL,
};

const struct bottle_backend backend_native = {
    .name = "native",
    .probe = native_probe,
    .prepare = native_prepare,
    .launch = native_backend_launch,
    .wait = native_backend_wait,
    .stop = native_backend_stop,
    .release = native_release,
    .enforces = native_enforces,
    .does_not = native_does_not,
};
