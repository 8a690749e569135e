/*
 * conn — one client connection of bottle-proxy and everything it drives:
 * the request parser, the decision, the upstream connection (reused across
 * requests to the same upstream when the response allows it) and the byte
 * pumps in both directions. Private to the sidecar.
 *
 * Bytes are forwarded straight from the buffer they were read into: a body
 * byte is copied once (socket to buffer) and written from there, and a
 * side stops reading while the other side cannot take more (backpressure).
 * Heads are re-serialized into small output buffers.
 */
#ifndef BOTTLE_SIDECAR_CONN_H
#define BOTTLE_SIDECAR_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "sidecar/proxy_types.h"

/* conn.c */
struct conn *conn_new(struct proxy *px, int fd, bool control);
void conn_close(struct conn *c);
void conn_run(struct conn *c);
void conn_timeout(struct conn *c, uint64_t now);
/* Is the connection between requests with nothing buffered (drain closes those)? */
bool conn_idle(const struct conn *c);

/* decide.c: a complete request head (n bytes at cin.start) */
void decide_request(struct conn *c, size_t head_len);
void decide_control(struct conn *c, size_t head_len);
/* The request body the hooks asked for is complete (c->body): run request_body, forward. */
void decide_body_complete(struct conn *c);

/* upstream.c */
void upstream_open(struct conn *c, const char *host, bool is_ip, uint16_t port, bool tls);
bool upstream_reusable(const struct conn *c, const char *host, uint16_t port, bool tls);
void upstream_step(struct conn *c);
void upstream_resolved(struct proxy *px, struct resolve_job *job);

#endif
