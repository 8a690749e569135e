/*
 * confine — bottle-proxy's confinement of itself, once its setup is done:
 * the identity drop (no capabilities, the sidecar's uid and gid, no way
 * back to uid 0, no_new_privs) and a seccomp allowlist of exactly the
 * system calls the running proxy makes.
 *
 * The allowlist covers the event loop, its sockets, the resolver threads
 * (glibc's getaddrinfo: files, DNS, netlink for address sorting), config
 * reloads, the upstream trust store and the SQLite ledger. Everything else
 * kills the whole process: a proxy that tries something it never does has
 * been subverted or has hit a gap in the list, and in both cases the bottle
 * losing its egress is the safe outcome. A few calls libraries probe and
 * handle failing get an errno instead (see confine.c).
 *
 * This module must never widen the list at runtime and never be skipped
 * silently: the caller either applies it or was told not to (--no-seccomp).
 */
#ifndef BOTTLE_SIDECAR_CONFINE_H
#define BOTTLE_SIDECAR_CONFINE_H

#include "common/err.h"

/*
 * Drops every capability from the bounding set (when root), then to gid and
 * uid (either may be -1: keep), checks that uid 0 cannot be regained and
 * sets no_new_privs. Call it after the listeners are bound and the keys
 * are loaded.
 */
int confine_drop_privileges(long uid, long gid, struct bottle_err *err);

/*
 * Loads the sidecar's seccomp allowlist into the calling process (every
 * thread, with no_new_privs). Irreversible; call it when setup is complete,
 * before the event loop starts.
 */
int confine_apply(struct bottle_err *err);

#endif
