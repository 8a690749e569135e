/*
 * context — the controller's context (struct controller) and what its files
 * share: the start sequence (controller.c), the sidecar step (sidecar.c),
 * the agent step (agent.c), the wait loop (loop.c) and metering
 * (metering.c). `bottle cleanup` tears a crashed bottle down through the
 * same struct. Never prints: operator-facing lines go through
 * controller_notice.
 */
#ifndef BOTTLE_CONTROLLER_CONTEXT_H
#define BOTTLE_CONTROLLER_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>

#include "backends/backend.h"
#include "common/buf.h"
#include "kernel/cgroup.h"
#include "kernel/limits.h"
#include "runtime/controller/control.h"
#include "runtime/controller/controller.h"
#include "ledger/ledger.h"
#include "kernel/netns.h"
#include "kernel/uidpool.h"
#include "runtime/controller/state.h"
#include "runtime/controller/tty.h"

/* In the state directory: the controller's pid, for `bottle stop`. */
#define CONTROLLER_PID_FILE "controller.pid"
/* In the state directory: one line per operator action (control socket, signals). */
#define CONTROLLER_ACTIONS_LOG "actions.log"
/* How long a forwarded SIGINT/SIGTERM/SIGHUP or a stop waits before SIGKILL. */
#define CONTROLLER_STOP_GRACE_MS 5000
/* Longest token value passed to the sidecar (its own limit). */
#define CONTROLLER_TOKEN_MAX 8192

struct controller {
    const struct plan *plan;
    const struct controller_options *opts;
    struct state_dir st;
    int live_fd;
    struct uidpool_lease ids; /* the bottle's sidecar and agent ids (uidpool.h) */
    uid_t agent_uid, proxy_uid;
    gid_t agent_gid, proxy_gid;
    char *bottle_dir;  /* <state>/bottle: read-only at /bottle in the agent */
    char *proxy_dir;   /* <state>/proxy: the sidecar's files, 0750 root:<sidecar gid> */
    char *ca_dir;      /* <state>/proxy/ca */
    char *upstream_ca; /* copy of --upstream-ca */
    char *config_path;
    char *log_path;
    struct netns_bottle nb;
    bool have_netns;
    struct cgroup_bottle cg;
    bool have_cgroup;
    struct limits_cgroups limits; /* v1 cgroups the agent joins (native, hybrid hosts) */
    bool have_bpf;
    uint16_t proxy_port;
    pid_t proxy_pid;
    pid_t agent_pid;
    time_t started;
    struct control_server control;
    bool have_control;
    long long kill_at_ms;   /* CLOCK_MONOTONIC deadline to SIGKILL the bottle; 0: none */
    bool operator_ended;    /* a signal, stop or kill ended the agent: no state to keep */
    struct strv secret_env; /* "NAME=value" of the canary and the placeholders, made at start */
    char *ledger_path;      /* the host's ledger (settings `ledger`, else $BOTTLE_HOME/bottle.db) */
    struct ledger *ledger;  /* opened on first audit; NULL when it cannot be */
    int events_fd;          /* read end of the sidecar's events pipe; -1: none */
    struct buf events_buf;  /* a partial event line */
    bool tearing_down;      /* late budget events are logged, not acted on */
    const struct bottle_backend *backend; /* NULL: native (the agent is agent_pid) */
    struct backend_bottle bb;             /* the backend's handle when backend is set */
    struct tty_relay tty;                 /* relays host terminals to the agent (tty.h) */
    struct guard_list guard;              /* workspace paths kept read-only (backends/guard.h) */
    bool have_guard;
};

/* 40 hex digits of randomness for 20 bytes (out holds 2 * bytes + 1). */
void controller_random_hex(char *out, size_t bytes);
/* Sleeps ms; false when a signal cut the sleep short. */
bool controller_sleep_ms(long ms);
/* Root-owned, group gid, mode: what the sidecar reads and the agent never can. */
int controller_own_for_proxy(const char *path, gid_t gid, mode_t mode, struct bottle_err *err);
/* The same for name below dir_fd (dir names it in messages), following no symlink. */
int controller_own_at(int dir_fd, const char *dir, const char *name, gid_t gid, mode_t mode,
                      struct bottle_err *err);
/* One line for the operator (opts->notice), or a warning in the log. */
void controller_notice(struct controller *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The sidecar step: config, tokens, bottle-proxy started and listening (sidecar.c). */
int controller_sidecar_start(struct controller *c, struct bottle_err *err);
/* Stops the sidecar (SIGTERM, then SIGKILL after 3 s) and reaps it. */
void controller_sidecar_stop(struct controller *c);
/* "A.1:port": where the agent reaches the sidecar (allocated). */
char *controller_proxy_listen(const struct controller *c);

/* The agent step: environment, terminal and backend (controller_agent.c). */
int controller_step_agent(struct controller *c, struct bottle_err *err);
/* Forwards sig to the agent and returns at once (the wait loop keeps the kill deadline). */
void controller_agent_signal(struct controller *c, int sig);
/* The agent's exit code (128 + signal when killed). */
int controller_agent_wait(struct controller *c, int *exit_code, struct bottle_err *err);
/* Kills what is left of the agent and frees the backend's handle (teardown). */
void controller_agent_release(struct controller *c, struct bottle_err *err);
/* Once nothing of the agent runs: what it planted that no mount could stop (guard_audit). */
void controller_agent_audit(struct controller *c);

/* In the sidecar: the descriptor its budget events are written to. */
#define CONTROLLER_EVENTS_FD 4

/* Reads the sidecar's events and applies the bottle's shutdown policy on budget exhaustion. */
void controller_on_events(struct controller *c);
/* Records an enforcement action in the ledger's audit table (best effort, logged on failure). */
void controller_ledger_audit(struct controller *c, const char *action, const char *policy,
                             const char *reason, const char *who);
/* Writes the bottle's final kernel counters to the ledger (teardown). */
void controller_ledger_final(struct controller *c);
/*
 * Registers the run in the ledger (host, agent, budget pool), stores the
 * pool's limits from settings.yml and the periods its budgets declare.
 * Fails only for a bottle with a pool: without the ledger its limit could
 * not be kept.
 */
int controller_ledger_register(struct controller *c, struct bottle_err *err);
/* Marks the run ended in the ledger (teardown; best effort). */
void controller_ledger_unregister(struct controller *c);

/* Opens the bottle's control socket (c->control); see control.h. */
int controller_control_open(struct controller *c, struct bottle_err *err);
/*
 * The run step: waits for the agent while serving the control socket,
 * forwarding the signals in sigs (blocked by the caller) and noticing a dead
 * sidecar. The agent's exit code in *exit_code (128 + signal when killed).
 */
int controller_serve(struct controller *c, const sigset_t *sigs, int *exit_code,
                     struct bottle_err *err);
/* Appends one line to the state directory's actions log and logs it. */
void controller_audit(struct controller *c, const char *action, uid_t by, const char *result);

/* Undoes whatever c holds, every step even after a failure; first error in err. */
int controller_teardown(struct controller *c, bool keep_state, struct bottle_err *err);

#endif
