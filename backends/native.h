/*
 * native — the Linux backend: the agent runs in new mount, PID, UTS and IPC
 * namespaces, inside the bottle's network namespace and cgroup, on a root
 * filesystem built for it (the host's system directories read-only, the
 * workspace read-write, a private home and /tmp, its own /proc and a
 * minimal /dev, the bottle's files read-only at /bottle) and nothing else,
 * as an unprivileged user with no capabilities, no_new_privs and the
 * seccomp filter.
 *
 * The first process of the bottle is a tiny init (PID 1 of the new PID
 * namespace) that forwards signals to the agent, reaps orphans and exits
 * with the agent's status. It joins the cgroup at birth (clone3 with
 * CLONE_INTO_CGROUP), the v1 cgroups carrying the limits on a hybrid host
 * and the network namespace before anything of the agent runs; it is
 * non-dumpable. /tmp, /dev/shm and a tmpfs home have the tmpfs limit's
 * size. The runtime never follows a symlink in the workspace: every mount
 * target is created on a tmpfs of its own and mounts go onto file
 * descriptors.
 *
 * Launch from a single-threaded process (like fork in a threaded program):
 * the child allocates while it builds the seccomp filter. It must never run
 * the agent as uid 0.
 */
#ifndef BOTTLE_BACKENDS_NATIVE_H
#define BOTTLE_BACKENDS_NATIVE_H

#include <sys/types.h>

#include "backends/backend.h"
#include "common/buf.h"
#include "common/err.h"
#include "manifest/plan.h"

#define NATIVE_HOSTNAME     "bottle"
#define NATIVE_DEFAULT_HOME "/home/agent"

/* Checks a spec before anything runs: uid, workspace, paths, netns. */
int native_spec_check(const struct backend_spec *spec, struct bottle_err *err);

/*
 * Starts the bottle and returns the host pid of its init once the agent has
 * been exec'd; when anything fails before that, nothing is left running and
 * err says what, including errors from inside the bottle.
 */
int native_launch(const struct backend_spec *spec, pid_t *pid, struct bottle_err *err);
/* Waits for the init; the agent's exit code, or 128 + signal. */
int native_wait(pid_t pid, int *exit_code, struct bottle_err *err);
/* Sends sig to the agent (through the init); SIGKILLs the bottle after timeout_ms. */
int native_stop(pid_t pid, int sig, int timeout_ms, struct bottle_err *err);

/* The invoking user from SUDO_UID/SUDO_GID; refuses root and a missing caller. */
int native_user_from_env(uid_t *uid, gid_t *gid, struct bottle_err *err);

/*
 * The agent's environment from the plan, "NAME=value": literals as they
 * are, host variables (ENV_SRC_HOST) from getenv, and everything the plan
 * leaves to start time (runtime variables, placeholders, the canary) from
 * values ("NAME=value"). A runtime variable without a value is left out; a
 * secret without one, a missing host variable, or a value for a name the
 * plan does not have is an error. Nothing else from the host gets in.
 */
int native_env_from_plan(const struct plan *plan, const struct strv *values, struct strv *out,
                         struct bottle_err *err);

#endif
