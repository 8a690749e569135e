/*
 * uidpool — a user and group id of its own for each bottle's sidecar and
 * agent, allocated from a range no account uses, the way systemd's
 * DynamicUser does it.
 *
 * Slot n of the pool owns two ids: UIDPOOL_BASE + 2n for the sidecar and
 * UIDPOOL_BASE + 2n + 1 for the agent (each used as both uid and gid). The
 * default range is 6553600..6561791 (4096 slots, 100 * 65536 upwards): above
 * the ids useradd hands out and systemd's DynamicUser range (61184..65519),
 * and below 2^31. A controller owns its slot by holding a lock on
 * UIDPOOL_LOCK_DIR/<n>.lock (an open-file-description lock on a close-on-exec
 * descriptor) for as long as it lives, so the kernel releases the slot when
 * the controller exits, however it exits; teardown releases it once the
 * sidecar and the agent are gone. A slot is skipped (never handed out) when
 * either of its ids
 *   - names a user or group (getpwuid / getgrgid, so NSS sources count),
 *   - falls in a subordinate range of /etc/subuid or /etc/subgid,
 *   - is the real, effective, saved or filesystem uid or gid of a running
 *     process (a crashed bottle's sidecar or agent that outlived its
 *     controller, a container that uses the range).
 * The process scan runs once per allocation, under the pool lock
 * (UIDPOOL_LOCK_DIR/pool.lock), so two bottles never share an id, and a
 * bottle never gets the id of a process that is still running.
 *
 * Never creates accounts: the ids have no name. What the agent writes in its
 * workspace keeps the agent's id after the bottle ends (chown it, or run
 * under sudo, where the agent is the invoking user).
 */
#ifndef BOTTLE_KERNEL_UIDPOOL_H
#define BOTTLE_KERNEL_UIDPOOL_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"

#define UIDPOOL_BASE     6553600u
#define UIDPOOL_SLOTS    4096u
#define UIDPOOL_LOCK_DIR "/run/bottle/uids"

struct uidpool_options {
    const char *lock_dir; /* NULL: UIDPOOL_LOCK_DIR */
    unsigned base;        /* 0: UIDPOOL_BASE */
    unsigned slots;       /* 0: UIDPOOL_SLOTS */
    const char *subuid;   /* NULL: /etc/subuid */
    const char *subgid;   /* NULL: /etc/subgid */
};

struct uidpool_lease {
    int fd; /* holds the slot's record lock; -1: none */
    unsigned slot;
    uid_t sidecar_uid;
    gid_t sidecar_gid;
    uid_t agent_uid;
    gid_t agent_gid;
};

/* A lease holding nothing (fd -1), safe for uidpool_release. */
void uidpool_lease_init(struct uidpool_lease *l);

/* Takes the first free slot. EAGAIN (runtime error) when every slot is taken or skipped. */
int uidpool_acquire(const struct uidpool_options *opts, struct uidpool_lease *out,
                    struct bottle_err *err);

/* Releases the slot (closes its lock). Idempotent. */
void uidpool_release(struct uidpool_lease *l);

/* Whether id lies in the pool's range (opts NULL: the defaults). */
bool uidpool_in_range(const struct uidpool_options *opts, unsigned id);

#endif
