/*
 * pool — idle upstream connections kept for reuse by any client connection,
 * and the two ways a connection lets go of its upstream: into the pool when
 * that is safe (pool_release), or closed (pool_drop). A request to the same
 * host, port and TLS flag takes a pooled connection back (pool_take).
 *
 * A pooled connection is reused only when it is connected to the address
 * that was checked for its host, under the same config generation, before
 * it expires, and while the upstream has sent nothing since its last
 * response. The pool never resolves, connects or handshakes (upstream.c
 * does) and never answers a client.
 */
#ifndef BOTTLE_SIDECAR_POOL_H
#define BOTTLE_SIDECAR_POOL_H

#include <stdbool.h>

#include "sidecar/proxy_types.h"

/*
 * Closes c's upstream connection, whatever its state, and drops what was
 * read from it or queued for it; a name resolution in flight is forgotten.
 */
void pool_drop(struct conn *c);
/* Keeps c's idle upstream connection in the pool when that is safe, else drops it. */
void pool_release(struct conn *c);
/*
 * Moves a pooled connection to c->up_host:up_port:up_tls into c->up (addr:
 * the address it must be connected to, or NULL). False when there is none.
 */
bool pool_take(struct conn *c, const struct config_addr *addr);
/* The upstream of a pooled connection spoke or closed: it is not reusable. */
void pool_event(struct proxy *px, struct pool_entry *e);
/* Closes every pooled connection (reload, drain, exit) or only the expired ones. */
void pool_flush(struct proxy *px, bool expired_only);
/* Frees entries closed during this turn of the loop. */
void pool_bury(struct proxy *px);

#endif
