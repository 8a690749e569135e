/*
 * controller — runs one bottle on the native backend from a resolved plan:
 * state directory, per-bottle CA and trust bundle, network namespace and
 * veth, cgroups, BPF policy, the sidecar (bottle-proxy) and the agent, then
 * tears all of it down when the agent exits, on SIGINT/SIGTERM/SIGHUP, or
 * when any step fails.
 *
 * The controller never prints: failures come back in struct bottle_err,
 * and what the person at the terminal should see while the bottle runs
 * (its name once started, a dead sidecar, a budget action, a teardown step
 * that failed) goes to the callbacks in controller_options.
 *
 * Users and groups. Each bottle takes a slot of the id pool (kernel/uidpool.h)
 * for as long as it lives: the sidecar runs as the slot's sidecar id, and the
 * agent as the invoking user under sudo (SUDO_UID/SUDO_GID), else as the
 * slot's agent id, so no two bottles share a sidecar or an agent id. The
 * sidecar's files (config, CA key, leaf key) are root-owned, group the
 * sidecar's gid, mode 0640 under a 0750 directory inside the 0700 state
 * directory, so the sidecar (which reads them as root and then drops to its
 * id) can read them again on a reload, while the agent and every other
 * bottle's sidecar never can; the state directory is not mounted in the
 * bottle at all. The state directory lives in the data home (common/home.h):
 * under sudo, root's /var/lib/bottle/<uid>, never the caller's ~/.bottle.
 *
 * Liveness. A running controller holds a record lock on /run/bottle/live/<slug>.lock
 * (host-wide, whatever the data home; state_live_lock) and an flock on
 * <data home>/run/<slug>.lock, and serves <data home>/run/<slug>.sock
 * (control.h); `bottle cleanup` only touches slugs whose host-wide lock
 * nobody holds.
 *
 * Never called from a multi-threaded process: the sidecar and the agent are
 * forked (clone3) from the calling thread.
 */
#ifndef BOTTLE_CONTROLLER_CONTROLLER_H
#define BOTTLE_CONTROLLER_CONTROLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "manifest/plan.h"

#define CONTROLLER_PROXY_PORT   3128
#define CONTROLLER_SYSTEM_ROOTS "/etc/ssl/certs/ca-certificates.crt"
/* The same roots as an OpenSSL hashed directory (c_rehash links). */
#define CONTROLLER_SYSTEM_ROOTS_DIR "/etc/ssl/certs"
#define CONTROLLER_SAFE_PATH        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Environment override for the sidecar binary (tests, packaging). */
#define CONTROLLER_PROXY_ENV "BOTTLE_PROXY_BIN"

struct controller_options {
    const char *home;           /* $BOTTLE_HOME; NULL: home_path() */
    const char *const *resolve; /* --resolve HOST:PORT:ADDR, in order */
    size_t n_resolve;
    const char *upstream_ca;    /* --upstream-ca FILE; NULL: none */
    int proxy_ready_timeout_ms; /* 0: 5000 */
    /* Called once the bottle has its slug (NULL: nothing is said). */
    void (*started)(void *arg, const char *slug);
    /* A line for the operator while the bottle runs or is torn down (NULL: logged). */
    void (*notice)(void *arg, const char *text);
    void *arg;
};

/*
 * Runs the bottle to completion. Returns 0 when the agent ran (its exit code
 * in *agent_exit, 128 + signal when killed) and a negative errno with err
 * filled when the bottle could not be started; either way, nothing of the
 * bottle is left on the host except its state directory after a failure or
 * a non-zero exit.
 */
int controller_start(const struct plan *plan, const struct controller_options *opts,
                     int *agent_exit, struct bottle_err *err);

#endif
