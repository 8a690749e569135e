/*
 * The native start sequence (ARCHITECTURE §4, steps 3 to 10). Each step
 * records what it created in struct controller, and controller_teardown
 * undoes exactly that, every step even when an earlier one failed.
 */
#include "common/proc.h"
#include "runtime/controller/controller.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/native.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "bpf/policy.h"
#include "ledger/budget.h"
#include "kernel/cgroup.h"
#include "runtime/controller/context.h"
#include "kernel/netns.h"
#include "kernel/uidpool.h"
#include "runtime/controller/state.h"
#include "sidecar/ca.h"

/* ---- users -------------------------------------------------------------------------- */

static int step_users(struct controller *c, struct bottle_err *err)
{
    int rc = uidpool_acquire(NULL, &c->ids, err);
    if (rc < 0)
        return rc;
    c->proxy_uid = c->ids.sidecar_uid;
    c->proxy_gid = c->ids.sidecar_gid;
    if (getenv("SUDO_UID") && *getenv("SUDO_UID")) {
        rc = native_user_from_env(&c->agent_uid, &c->agent_gid, err);
        if (rc < 0)
            return rc;
    } else {
        c->agent_uid = c->ids.agent_uid;
        c->agent_gid = c->ids.agent_gid;
    }
    if (c->agent_uid == c->proxy_uid || c->agent_gid == c->proxy_gid)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "the agent (uid %u, gid %u) and the sidecar (uid %u, gid %u) must not "
                            "share a user or group; run bottle as another user",
                            (unsigned)c->agent_uid, (unsigned)c->agent_gid, (unsigned)c->proxy_uid,
                            (unsigned)c->proxy_gid);
    return 0;
}

/* ---- state, CA, trust bundle, prompt ------------------------------------------------ */

/* Writes name (mode) below dir_fd: prefix (may be NULL) followed by the bytes of src. */
static int copy_file_to(const char *src, int dir_fd, const char *name, const struct buf *prefix,
                        mode_t mode, struct bottle_err *err)
{
    struct buf in = BUF_INIT, out = BUF_INIT;
    int rc = fs_read_file(src, 16u << 20, &in, err);
    if (rc == 0) {
        if (prefix && prefix->len)
            buf_append(&out, prefix->data, prefix->len);
        buf_append(&out, in.data ? in.data : "", in.len);
        rc = fs_write_atomic_at(dir_fd, name, out.data ? out.data : "", out.len, mode, err);
    }
    buf_free(&in);
    buf_free(&out);
    return rc;
}

/*
 * The directory name below dir_fd (created when missing), opened without
 * following a symlink, then given root:gid and mode through its descriptor.
 */
static int open_own_dir(int dir_fd, const char *parent, const char *name, gid_t gid, mode_t mode,
                        struct bottle_err *err)
{
    if (mkdirat(dir_fd, name, mode) < 0 && errno != EEXIST)
        return err_set(err, errno, "cannot create %s/%s: %s", parent, name, strerror(errno));
    int fd = fs_open_beneath(dir_fd, name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return err_set(err, -fd, "cannot open %s/%s: %s", parent, name, strerror(-fd));
    if (fchown(fd, 0, gid) < 0 || fchmod(fd, mode) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, e, "cannot set the owner of %s/%s: %s", parent, name, strerror(e));
    }
    return fd;
}

static int step_files(struct controller *c, struct bottle_err *err)
{
    const struct plan *plan = c->plan;
    c->bottle_dir = fs_join(c->st.path, "bottle");
    c->proxy_dir = fs_join(c->st.path, "proxy");
    c->ca_dir = fs_join(c->proxy_dir, "ca");
    int bottle_fd = -1, proxy_fd = -1, ca_fd = -1;
    int rc = bottle_fd = open_own_dir(c->st.dir_fd, c->st.path, "bottle", 0, 0755, err);
    if (rc >= 0)
        rc = proxy_fd = open_own_dir(c->st.dir_fd, c->st.path, "proxy", c->proxy_gid, 0750, err);
    if (rc >= 0) {
        char *cn = xasprintf("bottle %s CA", c->st.slug);
        rc = ca_mint_files(c->ca_dir, cn, err); /* in the private data home (state.h) */
        free(cn);
    }
    if (rc >= 0)
        rc = ca_fd = open_own_dir(proxy_fd, c->proxy_dir, "ca", c->proxy_gid, 0750, err);
    static const char *const ca_files[] = {"ca.pem", "ca-key.pem", "leaf-key.pem"};
    for (size_t i = 0; rc >= 0 && i < 3; i++)
        rc = controller_own_at(ca_fd, c->ca_dir, ca_files[i], c->proxy_gid, 0640, err);
    if (rc >= 0 && c->opts->upstream_ca) {
        X509 *x = ca_load_cert(c->opts->upstream_ca, err);
        if (!x) {
            rc = err_prefix(err, "--upstream-ca");
            rc = rc < 0 ? rc : -EINVAL;
        } else {
            X509_free(x);
            c->upstream_ca = fs_join(c->proxy_dir, "upstream-ca.pem");
            rc = copy_file_to(c->opts->upstream_ca, proxy_fd, "upstream-ca.pem", NULL, 0640, err);
            if (rc >= 0)
                rc = controller_own_at(proxy_fd, c->proxy_dir, "upstream-ca.pem", c->proxy_gid,
                                       0640, err);
        }
    }
    /* The bundle the agent trusts: the system roots plus the bottle CA. */
    if (rc >= 0) {
        struct buf roots = BUF_INIT;
        struct bottle_err ignored = {0};
        if (fs_read_file(CONTROLLER_SYSTEM_ROOTS, 16u << 20, &roots, &ignored) == 0 && roots.len &&
            roots.data[roots.len - 1] != '\n')
            buf_append_char(&roots, '\n');
        char *ca = fs_join(c->ca_dir, "ca.pem");
        rc = copy_file_to(ca, bottle_fd, "ca-bundle.pem", &roots, 0644, err);
        free(ca);
        buf_free(&roots);
    }
    if (rc >= 0) {
        const char *text = plan->prompt ? plan->prompt : "";
        rc = fs_write_atomic_at(bottle_fd, "prompt.md", text, strlen(text), 0644, err);
    }
    if (bottle_fd >= 0)
        close(bottle_fd);
    if (proxy_fd >= 0)
        close(proxy_fd);
    if (ca_fd >= 0)
        close(ca_fd);
    return rc < 0 ? rc : 0;
}

/* ---- network, cgroup, BPF ---------------------------------------------------------- */

static int step_kernel(struct controller *c, struct bottle_err *err)
{
    int rc = netns_create(c->st.slug, NULL, &c->nb, err);
    if (rc < 0)
        return rc;
    c->have_netns = true;
    rc = cgroup_bottle_create(c->st.slug, &c->cg, err);
    if (rc < 0)
        return rc;
    c->have_cgroup = true;
    /* Docker hands the limits to the engine, which applies them to the container's cgroup. */
    bool native = !c->plan->backend || strcmp(c->plan->backend, backend_native.name) == 0;
    if (native && (rc = limits_apply(&c->cg, &c->plan->limits, &c->limits, err)) < 0)
        return rc;
    struct bpf_policy_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.proxy_ip4 = c->nb.host_addr;
    cfg.proxy_port = CONTROLLER_PROXY_PORT;
    cfg.flags = BOTTLE_FLAG_LOOPBACK_OK;
    c->have_bpf = true; /* a failed install removes its own pins; destroy is then a no-op */
    return bpf_policy_install(c->st.slug, c->cg.agent_fd, c->cg.agent_id, &cfg, NULL, err);
}

/* ---- teardown ------------------------------------------------------------------------ */

static void note(struct controller *c, struct bottle_err *first, const struct bottle_err *e,
                 const char *what)
{
    if (!e->msg[0])
        return;
    controller_notice(c, "teardown: %s: %s", what, e->msg);
    if (!first->msg[0])
        *first = *e;
}

int controller_teardown(struct controller *c, bool keep_state, struct bottle_err *err)
{
    struct bottle_err first = {0}, e = {0};
    c->tearing_down = true;
    if (c->have_control) {
        control_server_close(&c->control); /* no operator acts on a bottle going away */
        c->have_control = false;
    }
    tty_relay_close(&c->tty); /* the terminal comes back first, whatever happens next */
    if (tty_relay_dropped(&c->tty) > 0)
        controller_notice(c,
                          "%s: %lu escape sequence(s) from the agent were kept from the terminal "
                          "(clipboard writes, terminal queries); the bottle's `terminal:` "
                          "settings can allow them",
                          c->st.slug, tty_relay_dropped(&c->tty));
    controller_agent_release(c, &e);
    note(c, &first, &e, "agent");
    if (c->have_cgroup && c->cg.agent_fd >= 0) {
        memset(&e, 0, sizeof(e));
        cgroup_kill(c->cg.agent_fd, &e);
        note(c, &first, &e, "cgroup kill");
    }
    controller_agent_audit(c);
    controller_sidecar_stop(c);
    if (c->events_fd >= 0) {
        controller_on_events(c); /* what the sidecar said last */
        if (c->events_fd >= 0)
            close(c->events_fd);
        c->events_fd = -1;
    }
    controller_ledger_final(c);
    controller_ledger_unregister(c);
    if (c->have_bpf) {
        memset(&e, 0, sizeof(e));
        bpf_policy_destroy(c->st.slug, &e);
        note(c, &first, &e, "BPF policy");
        c->have_bpf = false;
    }
    if (c->have_netns) {
        memset(&e, 0, sizeof(e));
        netns_destroy(&c->nb, &e);
        note(c, &first, &e, "network");
        c->have_netns = false;
    }
    limits_cgroups_close(&c->limits);
    if (c->have_cgroup) {
        cgroup_bottle_close(&c->cg);
        memset(&e, 0, sizeof(e));
        cgroup_bottle_remove(c->st.slug, 3000, &e);
        note(c, &first, &e, "cgroup");
        c->have_cgroup = false;
    }
    uidpool_release(&c->ids); /* the sidecar and the agent are gone: their ids are free */
    if (c->live_fd >= 0) {
        char *path = xasprintf("%s/%s.lock", STATE_LIVE_DIR, c->st.slug);
        unlink(path);
        free(path);
        close(c->live_fd);
        c->live_fd = -1;
    }
    if (keep_state) {
        state_close(&c->st);
    } else {
        memset(&e, 0, sizeof(e));
        state_remove(&c->st, &e);
        note(c, &first, &e, "state");
    }
    for (size_t i = 0; i < c->secret_env.len; i++)
        explicit_bzero(c->secret_env.items[i], strlen(c->secret_env.items[i]));
    strv_free(&c->secret_env);
    buf_free(&c->events_buf);
    ledger_close(c->ledger);
    c->ledger = NULL;
    free(c->ledger_path);
    c->ledger_path = NULL;
    free(c->bottle_dir);
    free(c->proxy_dir);
    free(c->ca_dir);
    free(c->upstream_ca);
    free(c->config_path);
    free(c->log_path);
    c->bottle_dir = c->proxy_dir = c->ca_dir = c->upstream_ca = c->config_path = c->log_path = NULL;
    if (first.msg[0] && err && !err->msg[0])
        *err = first;
    return first.msg[0] ? -(first.code ? first.code : EIO) : 0;
}

/* ---- the sequence -------------------------------------------------------------------- */

static int interrupted(const sigset_t *sigs, struct bottle_err *err)
{
    sigset_t pending;
    sigpending(&pending);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGWINCH && sigismember(sigs, s) && sigismember(&pending, s))
            return err_set(err, EINTR, "interrupted by signal %d while starting", s);
    return 0;
}

int controller_start(const struct plan *plan, const struct controller_options *opts,
                     int *agent_exit, struct bottle_err *err)
{
    /* The CLI says which files and how to trust them; this is the backstop. */
    if (!plan->project_trusted)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "refused: the plan uses project files that are not trusted (%s)",
                            plan->project_dir ? plan->project_dir : "?");
    struct controller c;
    memset(&c, 0, sizeof(c));
    c.plan = plan;
    c.opts = opts;
    state_init(&c.st);
    uidpool_lease_init(&c.ids);
    c.live_fd = -1;
    c.cg.agent_fd = c.cg.proxy_fd = -1;
    c.nb.fd = -1;
    c.control.listen_fd = -1;
    c.events_fd = -1;
    tty_relay_init(&c.tty);
    c.started = time(NULL);
    *agent_exit = 0;

    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGWINCH); /* window size changes go to the agent's terminal */
    sigprocmask(SIG_BLOCK, &sigs, &old);

    int rc = state_create(opts->home, plan->agent_name, plan->label, &c.st, err);
    if (rc < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return rc;
    }
    if (opts->started)
        opts->started(opts->arg, c.st.slug);
    rc = budget_ledger_choose(plan->ledger_path, c.st.home, &c.ledger_path, err);
    if (rc >= 0)
        rc = state_live_lock(c.st.slug, err);
    if (rc >= 0) {
        c.live_fd = rc;
        char pid[24];
        int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        rc = state_write_file(&c.st, CONTROLLER_PID_FILE, pid, (size_t)n, 0600, err);
    }
    if (rc == 0)
        rc = state_write_plan(&c.st, plan, err);
    if (rc == 0)
        rc = step_users(&c, err);
    if (rc == 0)
        rc = step_files(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = step_kernel(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = controller_ledger_register(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = controller_sidecar_start(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = controller_control_open(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = controller_step_agent(&c, err);
    bool ran = rc == 0;
    if (ran) {
        controller_audit(&c, "start", getuid(), "running");
        rc = controller_serve(&c, &sigs, agent_exit, err);
    }
    /*
     * A start failure says what failed; the state would only repeat it. An
     * agent that failed on its own keeps its state for a post-mortem; one an
     * operator ended (signal, stop, kill) does not.
     */
    bool keep = ran && (rc < 0 || (*agent_exit != 0 && !c.operator_ended));
    if (rc < 0 && !ran)
        err_prefix(err, "%s", c.st.slug ? c.st.slug : "start");
    struct bottle_err td = {0};
    int trc = controller_teardown(&c, keep, &td);
    if (rc == 0 && trc < 0) {
        *err = td;
        rc = trc;
    }
    /* Drop signals that arrived during teardown instead of dying of them. */
    struct timespec zero = {0, 0};
    while (sigtimedwait(&sigs, NULL, &zero) > 0)
        ;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
