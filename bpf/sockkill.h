/*
 * sockkill — aborting a bottle's established TCP connections with the
 * socket-destroy iterator (sockkill.bpf.c). Loads the iterator for one walk
 * and unloads it; pins nothing.
 */
#ifndef BOTTLE_BPF_SOCKKILL_H
#define BOTTLE_BPF_SOCKKILL_H

#include <stdint.h>

#include "common/err.h"

/*
 * Aborts (ECONNABORTED) every established TCP socket created in cgroup_id or
 * a descendant, in the network namespace netns_fd (-1: the caller's). The
 * calling thread enters that namespace for the walk and returns to its own.
 * -ENOTSUP with "socket destroy unavailable: ..." when the kernel cannot.
 */
int bpf_sockkill_run(uint64_t cgroup_id, int netns_fd, unsigned *destroyed, struct bottle_err *err);
/* Loads (and unloads) the iterator to learn whether socket destroy works here. */
int bpf_sockkill_probe(struct bottle_err *err);

#endif
