/*
 * enforce — the actions that stop or pause a running bottle, shared by the
 * operator commands, the dashboard and the automatic budget trigger:
 * cutoff (kernel flag plus aborting established sockets), restore,
 * freeze, thaw and kill. Each works from the bottle's pins and cgroups, so
 * it needs no live controller; each needs root.
 */
#ifndef BOTTLE_BPF_ENFORCE_H
#define BOTTLE_BPF_ENFORCE_H

#include <stdbool.h>

#include "common/err.h"

enum enforce_action {
    ENFORCE_CUTOFF = 0,
    ENFORCE_RESTORE,
    ENFORCE_FREEZE,
    ENFORCE_THAW,
    ENFORCE_KILL,
};

const char *enforce_action_name(enum enforce_action a);
/* "cutoff", "restore", "freeze", "thaw", "kill" → action; -EINVAL otherwise. */
int enforce_action_parse(const char *name, enum enforce_action *out);

/*
 * Applies a to the bottle slug. For cutoff, *aborted (when non-NULL) gets
 * the number of established TCP connections aborted; a cutoff whose socket
 * abort is not supported still cuts new traffic and returns 0 with
 * *aborted = -1.
 */
int enforce_apply(const char *slug, enum enforce_action a, int *aborted, struct bottle_err *err);

/*
 * The cutoff flag on (restore: off). On, the bottle's established TCP
 * connections are aborted too: *aborted gets how many, or -1 when socket
 * destroy is not available here (err says so, the cutoff holds, 0 is
 * returned) or failed (a negative error; the flag is set all the same).
 */
int enforce_cutoff(const char *slug, bool restore, int *aborted, struct bottle_err *err);

/* Aborts the established TCP connections of the bottle's agent cgroup; returns how many. */
int enforce_abort_connections(const char *slug, struct bottle_err *err);

/* Whether the bottle's agent cgroup is frozen. */
int enforce_frozen(const char *slug, bool *frozen, struct bottle_err *err);

#endif
