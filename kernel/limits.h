/*
 * limits — a bottle's resource limits on its agent cgroup: processes,
 * memory (with no swap) and CPU, through the cgroup controllers wherever
 * the host has them.
 *
 * A controller listed in the cgroup2 root's cgroup.controllers is enabled
 * down the subtree (root, bottle/, bottle/<slug>/) and its files are written
 * on bottle/<slug>/agent: pids.max, memory.max, memory.swap.max (0),
 * cpu.max. On a hybrid host a controller bound to a cgroup v1 hierarchy is
 * not available in cgroup2; there the limits go on <v1 mount>/bottle/<slug>
 * (pids.max, memory.limit_in_bytes with memory.memsw.limit_in_bytes or
 * memory.swappiness 0, cpu.cfs_quota_us) and the launcher puts the agent's
 * init into those cgroups before it runs. A limit whose controller the host
 * has nowhere is refused (ERR_KIND_REFUSED), never silently dropped; a
 * limit of `max` needs no controller.
 *
 * The sidecar's `proxy` cgroup is never limited. The v1 directories are
 * removed with the bottle by cgroup_bottle_remove. tmpfs sizes are mount
 * options, which the backends set.
 */
#ifndef BOTTLE_KERNEL_LIMITS_H
#define BOTTLE_KERNEL_LIMITS_H

#include <stddef.h>

#include "common/err.h"
#include "kernel/cgroup.h"
#include "kernel/platform.h"
#include "manifest/manifest.h"

#define LIMITS_CPU_PERIOD_US 100000u

/* The v1 cgroups limits_apply made; the agent's init must join each before it runs. */
struct limits_cgroups {
    int fds[3]; /* O_RDONLY|O_DIRECTORY; one per v1 hierarchy used */
    size_t n_fds;
};

/* Refuses (ERR_KIND_REFUSED) a limit whose controller ctrl says the host lacks. */
int limits_check(const struct platform_controller ctrl[CTRL_COUNT], const struct resource_limits *l,
                 struct bottle_err *err);

/*
 * Applies the limits to the bottle's agent cgroup (cg made by
 * cgroup_bottle_create). out receives the v1 cgroups to join, if any.
 * On failure nothing needs undoing beyond limits_cgroups_close and the
 * bottle's cgroup_bottle_remove.
 */
int limits_apply(const struct cgroup_bottle *cg, const struct resource_limits *l,
                 struct limits_cgroups *out, struct bottle_err *err);
/* Writes pid into every cgroup of lc (before the process runs anything). */
int limits_place(const struct limits_cgroups *lc, pid_t pid, struct bottle_err *err);
/* Closes the fds; the cgroups stay until cgroup_bottle_remove. Safe on a zeroed struct. */
void limits_cgroups_close(struct limits_cgroups *lc);

#endif
