/*
 * respond — what the sidecar answers itself and how an exchange ends: a
 * local answer (conn_respond), a refusal carrying its reason code in the
 * JSON shape agent CLIs show (conn_refuse), and finishing a request
 * (conn_request_finish: the log line, the counters, the hooks' exchange_end,
 * and the connection made ready for its next request or its close).
 *
 * It never reads from a socket and never decides whether a request may
 * pass: decide.c, upstream.c and conn.c call it with the outcome.
 */
#ifndef BOTTLE_SIDECAR_RESPOND_H
#define BOTTLE_SIDECAR_RESPOND_H

#include <stdbool.h>
#include <stddef.h>

#include "sidecar/proxy_types.h"

/* Queues a local answer with any body. */
void conn_respond(struct conn *c, int status, const char *content_type, const char *body,
                  size_t len);
/* Queues a local JSON answer (refusal or error) and finishes the request. */
void conn_refuse(struct conn *c, int status, const char *reason, const char *message);
/* The same as a 407 with Proxy-Authenticate: the proxy credential is missing or wrong. */
void conn_refuse_proxy_auth(struct conn *c, const char *message);
/*
 * A client connection accepted beyond the config's max_connections: a 503
 * with REASON_TOO_MANY_CONNECTIONS written at once, then fd is closed. It is
 * never read from and never becomes a struct conn, so a flood of idle
 * connections holds no descriptor of the sidecar.
 */
void respond_connection_limit(struct proxy *px, int fd);
/* Logs and counts the request, ends the exchange, and readies c for the next one or its close. */
void conn_request_finish(struct conn *c);
/*
 * Tells the hooks the exchange is over (exchange_end, once, only when they
 * keep state for it; complete: the whole response reached the client) and
 * ends a checked WebSocket relay (ws_end).
 */
void conn_exchange_end(struct conn *c, bool complete);

#endif
