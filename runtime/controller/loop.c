/*
 * The run step of the native controller (ARCHITECTURE §4 step 9): one poll
 * loop over a signalfd, a pidfd for the agent's init, one for the sidecar
 * and the control socket, and the handlers of the control protocol. Nothing
 * in the loop blocks on a peer; a grace period (forwarded signal, stop) is a
 * deadline the loop checks, never a sleep. Another fd (a terminal relay) is
 * one more entry in the pollfd array built in controller_serve.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/proc.h"
#include "backends/native.h"
#include "common/clock.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "manifest/manifest.h"
#include "bpf/policy.h"
#include "kernel/cgroup.h"
#include "bpf/policy.h"
#include "bpf/enforce.h"
#include "runtime/controller/control.h"
#include "runtime/controller/context.h"

static int pidfd_for(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* ---- state of the bottle -------------------------------------------------------------- */

static bool agent_frozen(const struct controller *c)
{
    bool frozen = false;
    struct bottle_err ignored = {0};
    return c->have_cgroup && c->cg.agent_fd >= 0 &&
           cgroup_frozen(c->cg.agent_fd, &frozen, &ignored) == 0 && frozen;
}

static bool cut_off(const struct controller *c)
{
    struct bpf_policy_pins *p = NULL;
    struct bottle_err ignored = {0};
    bool on = false;
    if (bpf_policy_open_pinned(c->st.slug, &p, &ignored) < 0)
        return false;
    bpf_policy_cutoff_state(p, &on, &ignored);
    bpf_policy_close(p);
    return on;
}

static const char *bottle_state(const struct controller *c)
{
    if (agent_frozen(c))
        return "frozen";
    return cut_off(c) ? "cut_off" : "running";
}

static void add_status(const struct controller *c, cJSON *resp)
{
    char started[32];
    struct tm tm;
    strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&c->started, &tm));
    json_add_str(resp, "slug", c->st.slug);
    json_add_str(resp, "agent", c->plan->agent_name);
    json_add_str(resp, "backend", c->plan->backend ? c->plan->backend : "native");
    json_add_str(resp, "tier", enforcement_tier_name(c->plan->tier_available));
    json_add_str(resp, "started", started);
    json_add_str(resp, "state", bottle_state(c));
    cJSON *pids = cJSON_AddObjectToObject(resp, "pids");
    json_add_num(pids, "controller", (double)getpid());
    json_add_num(pids, "agent", (double)c->agent_pid);
    json_add_num(pids, "sidecar", (double)c->proxy_pid);
    pid_t *list = NULL;
    size_t n = 0;
    struct bottle_err ignored = {0};
    if (c->have_cgroup && cgroup_list_pids(c->cg.agent_path, &list, &n, &ignored) == 0)
        json_add_num(resp, "processes", (double)n);
    free(list);
}

/* ---- actions ------------------------------------------------------------------------- */

/* Ends the bottle: SIGKILL to the agent's whole cgroup; the loop then tears it down. */
static int kill_bottle(struct controller *c, struct bottle_err *err)
{
    if (!c->have_cgroup || c->cg.agent_fd < 0)
        return err_set(err, ESRCH, "the bottle has no agent cgroup");
    int rc = cgroup_kill(c->cg.agent_fd, err);
    if (rc == 0 && c->agent_pid > 0)
        kill(c->agent_pid, SIGKILL);
    return rc;
}

/* Sends sig to the agent (through its init) and arms the SIGKILL deadline. */
static void signal_agent(struct controller *c, int sig, int grace_ms)
{
    if (c->agent_pid <= 0)
        return;
    c->operator_ended = true;
    if (agent_frozen(c)) {
        struct bottle_err ignored = {0};
        cgroup_thaw(c->cg.agent_fd, 2000, &ignored); /* a frozen agent cannot act on it */
    }
    controller_agent_signal(c, sig);
    long long at = clock_mono_ms() + grace_ms;
    if (!c->kill_at_ms || at < c->kill_at_ms)
        c->kill_at_ms = at;
}

static int handle_cutoff(struct controller *c, const cJSON *req, cJSON *resp,
                         struct bottle_err *err)
{
    bool restore = json_get_bool(req, "restore", false);
    int aborted = 0;
    struct bottle_err e = {0};
    int rc = enforce_cutoff(c->st.slug, restore, &aborted, &e);
    if (rc < 0) {
        *err = e;
        return rc;
    }
    if (!restore)
        json_add_num(resp, "aborted", aborted);
    if (aborted < 0)
        json_add_str(resp, "warning", e.msg);
    json_add_str(resp, "state", bottle_state(c));
    return 0;
}

static int control_handler(void *ctx, const char *cmd, const cJSON *req, cJSON *resp,
                           uid_t peer_uid, struct bottle_err *err)
{
    struct controller *c = ctx;
    int rc = 0;
    const char *action = cmd;
    if (!strcmp(cmd, "status")) {
        add_status(c, resp);
        return 0; /* a read: not an action */
    } else if (!strcmp(cmd, "usage")) {
        json_add_str(resp, "slug", c->st.slug);
        return bpf_policy_usage_json(c->st.slug, resp, err);
    } else if (!strcmp(cmd, "cutoff")) {
        action = json_get_bool(req, "restore", false) ? "cutoff-restore" : "cutoff";
        rc = handle_cutoff(c, req, resp, err);
    } else if (!strcmp(cmd, "freeze") || !strcmp(cmd, "thaw")) {
        bool freeze = !strcmp(cmd, "freeze");
        rc = !c->have_cgroup ? err_set(err, ESRCH, "the bottle has no agent cgroup")
             : freeze        ? cgroup_freeze(c->cg.agent_fd, 5000, err)
                             : cgroup_thaw(c->cg.agent_fd, 5000, err);
        if (rc == 0)
            json_add_str(resp, "state", bottle_state(c));
    } else if (!strcmp(cmd, "kill")) {
        c->operator_ended = true;
        rc = kill_bottle(c, err);
    } else if (!strcmp(cmd, "stop")) {
        double t = json_get_num(req, "timeout", CONTROLLER_STOP_GRACE_MS / 1000.0);
        if (t < 0 || t > 3600)
            return err_set(err, EINVAL, "\"timeout\" must be between 0 and 3600 seconds");
        signal_agent(c, SIGTERM, (int)(t * 1000));
        json_add_bool(resp, "stopping", true);
    } else {
        return err_set(err, EINVAL,
                       "unknown command '%s'; one of: status, usage, cutoff, freeze, thaw, "
                       "stop, kill",
                       cmd);
    }
    controller_audit(c, action, peer_uid, rc == 0 ? "ok" : err->msg);
    if (rc == 0) {
        char who[32];
        snprintf(who, sizeof(who), "operator:%u", (unsigned)peer_uid);
        controller_ledger_audit(c, action, "operator", "control socket", who);
    }
    return rc;
}

int controller_control_open(struct controller *c, struct bottle_err *err)
{
    char *path = control_socket_path(c->st.home, c->st.slug);
    int rc = control_server_open(&c->control, path, control_handler, c, err);
    free(path);
    c->have_control = true; /* close is safe after a failed open */
    return rc;
}

/* ---- the loop ------------------------------------------------------------------------ */

enum {
    FD_SIGNAL,
    FD_AGENT,
    FD_SIDECAR,
    FD_EVENTS,
    FD_TTY,
    FD_CONTROL = FD_TTY + TTY_RELAY_FDS,
    FD_MAX = FD_CONTROL + CONTROL_POLLFDS_MAX
};

static void on_signal(struct controller *c, int sfd)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGWINCH) {
            struct bottle_err ignored = {0};
            tty_relay_winch(&c->tty, &ignored);
            continue;
        }
        char name[16];
        snprintf(name, sizeof(name), "%u", si.ssi_signo);
        controller_audit(c, "signal", si.ssi_uid, name);
        signal_agent(c, (int)si.ssi_signo, CONTROLLER_STOP_GRACE_MS);
    }
}

static void on_sidecar_exit(struct controller *c)
{
    waitpid(c->proxy_pid, NULL, 0);
    c->proxy_pid = 0;
    controller_notice(c, "%s: the sidecar exited; the bottle has no egress now", c->st.slug);
    controller_audit(c, "sidecar-exited", 0, "no egress");
}

int controller_serve(struct controller *c, const sigset_t *sigs, int *exit_code,
                     struct bottle_err *err)
{
    int sfd = signalfd(-1, sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        return err_set(err, errno, "signalfd: %s", strerror(errno));
    int agent_fd = pidfd_for(c->agent_pid);
    bool tty_open = c->tty.active;
    int proxy_fd = c->proxy_pid > 0 ? pidfd_for(c->proxy_pid) : -1;
    for (;;) {
        if (agent_fd < 0 && proc_child_exited(c->agent_pid))
            break;
        struct pollfd fds[FD_MAX];
        fds[FD_SIGNAL] = (struct pollfd){.fd = sfd, .events = POLLIN};
        fds[FD_AGENT] = (struct pollfd){.fd = agent_fd, .events = POLLIN};
        fds[FD_SIDECAR] = (struct pollfd){.fd = c->proxy_pid > 0 ? proxy_fd : -1, .events = POLLIN};
        fds[FD_EVENTS] = (struct pollfd){.fd = c->events_fd, .events = POLLIN};
        for (size_t i = 0; i < TTY_RELAY_FDS; i++)
            fds[FD_TTY + i] = (struct pollfd){.fd = -1};
        if (tty_open)
            tty_relay_fds(&c->tty, fds + FD_TTY, TTY_RELAY_FDS);
        size_t n = FD_CONTROL;
        if (c->have_control)
            n += control_server_pollfds(&c->control, fds + FD_CONTROL);
        /* Without pidfds (kernels before 5.3) the exits are polled instead. */
        int timeout = agent_fd < 0 || (c->proxy_pid > 0 && proxy_fd < 0) ? 100 : 1000;
        if (c->kill_at_ms) {
            long long left = c->kill_at_ms - clock_mono_ms();
            timeout = left <= 0 ? 0 : left < timeout ? (int)left : timeout;
        }
        int r = poll(fds, n, timeout);
        if (r < 0 && errno != EINTR) {
            err_set(err, errno, "poll: %s", strerror(errno));
            break;
        }
        if (r > 0 && fds[FD_AGENT].revents)
            break;
        if (r > 0 && fds[FD_SIGNAL].revents)
            on_signal(c, sfd);
        if (r > 0 && fds[FD_EVENTS].revents && c->events_fd >= 0)
            controller_on_events(c);
        if (r > 0 && tty_open) {
            struct bottle_err terr = {0};
            if (tty_relay_on_readable(&c->tty, fds + FD_TTY, TTY_RELAY_FDS, &terr) != 0)
                tty_open = false; /* the agent closed its terminal; its exit comes next */
        }
        if (c->proxy_pid > 0 &&
            (proxy_fd < 0 ? proc_child_exited(c->proxy_pid) : (r > 0 && fds[FD_SIDECAR].revents)))
            on_sidecar_exit(c);
        if (r > 0 && c->have_control)
            control_server_dispatch(&c->control, fds + FD_CONTROL, n - FD_CONTROL);
        if (c->kill_at_ms && clock_mono_ms() >= c->kill_at_ms && !proc_child_exited(c->agent_pid)) {
            struct bottle_err ignored = {0};
            kill_bottle(c, &ignored);
            controller_audit(c, "kill", 0, "grace period over");
            c->kill_at_ms = 0;
        }
    }
    if (agent_fd >= 0)
        close(agent_fd);
    if (proxy_fd >= 0)
        close(proxy_fd);
    close(sfd);
    if (err->msg[0])
        return -(err->code ? err->code : EIO);
    return controller_agent_wait(c, exit_code, err);
}
