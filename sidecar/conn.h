/*
 * conn — the state machine of one client connection and its byte pumps in
 * both directions: it parses request heads and hands them to the decision
 * (decide.c), steps the upstream side (upstream.c), forwards bodies and
 * responses with the hooks' taps, relays WebSockets and keeps the
 * deadlines. Private to the sidecar. It never makes the policy decision
 * and never resolves or connects; local answers go through respond.c.
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

/* A connection on accepted fd (control: on the control listener); NULL when epoll refuses it. */
struct conn *conn_new(struct proxy *px, int fd, bool control);
/* Closes the client side and hands an idle upstream to the pool; freed by conn_free_dead. */
void conn_close(struct conn *c);
/* Frees a closed connection once the turn of the loop that closed it is over. */
void conn_free_dead(struct conn *c);
/* Moves bytes and steps the state machine until nothing progresses (or the turn is used up). */
void conn_run(struct conn *c);
/* Acts on the deadline of c's state when now is past it. */
void conn_timeout(struct conn *c, uint64_t now);
/* Is the connection between requests with nothing buffered (drain closes those)? */
bool conn_idle(const struct conn *c);

#endif
