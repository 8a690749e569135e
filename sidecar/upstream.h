/*
 * upstream — reaching the upstream of an allowed request: resolve the name
 * off the loop, refuse addresses in blocked networks unless a resolve
 * override or the route names the address, connect to exactly the address
 * that was checked (no second resolution, so no DNS rebinding), and run the
 * verified TLS handshake. A request first takes an idle connection to the
 * same upstream from the pool when there is one (pool.c).
 *
 * It never forwards a byte of the request and never runs a connection:
 * failures become refusals (respond.c), and a finished resolution goes back
 * to the loop, which runs the connection (proxy.c).
 */
#ifndef BOTTLE_SIDECAR_UPSTREAM_H
#define BOTTLE_SIDECAR_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "sidecar/proxy_types.h"

/*
 * Starts reaching host:port for c (CONN_RESOLVE, CONN_CONNECT, or straight
 * to CONN_EXCHANGE on a pooled connection). The caller closed any previous
 * upstream first; the request head may already be in c->uout.
 */
void upstream_open(struct conn *c, const char *host, bool is_ip, uint16_t port, bool tls);
/* Advances a connect or a TLS handshake (CONN_CONNECT, CONN_UP_TLS). */
void upstream_step(struct conn *c);
/*
 * Takes a finished resolution from the resolve pipe and connects to its
 * checked answer (or refuses). Returns the connection for the loop to run,
 * or NULL when it is gone or no longer waiting for this answer.
 */
struct conn *upstream_resolved(struct proxy *px, struct resolve_job *job);
/* Is c's kept upstream connection idle and to host:port:tls under this config? */
bool upstream_reusable(const struct conn *c, const char *host, uint16_t port, bool tls);

#endif
