/*
 * decide — what happens to one complete request head: introspection, the
 * policy decision (policy_evaluate, the one matcher), the hooks, stripping
 * the agent's credentials and injecting the route's, then handing the
 * rewritten head to the upstream side (upstream.c, or a kept connection).
 * Also the control listener's answers (/healthz, /metrics).
 *
 * It never reads or writes a socket: the head is in the connection's
 * buffer, and answers leave through respond.c.
 */
#ifndef BOTTLE_SIDECAR_DECIDE_H
#define BOTTLE_SIDECAR_DECIDE_H

#include <stddef.h>

#include "sidecar/proxy_types.h"

/* A complete request head: head_len bytes at c->cin.start, parsed into c->req. */
void decide_request(struct conn *c, size_t head_len);
/* The same on the control listener. */
void decide_control(struct conn *c, size_t head_len);
/* The request body the hooks asked for is complete (c->body): run request_body, forward. */
void decide_body_complete(struct conn *c);

#endif
