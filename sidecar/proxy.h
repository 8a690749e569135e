/*
 * proxy — bottle-proxy's event loop: listeners, connections, signals,
 * timers, metrics and the hooks later modules fill (outbound DLP, budget
 * admission).
 *
 * One thread runs an epoll loop over non-blocking sockets and non-blocking
 * OpenSSL; each connection is one struct with explicit states (conn.h). The
 * only other threads are short-lived name resolutions, which never touch a
 * connection. The proxy owns the current config and swaps it on SIGHUP;
 * connections hold a reference for the request they are serving.
 */
#ifndef BOTTLE_SIDECAR_PROXY_H
#define BOTTLE_SIDECAR_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/route.h"
#include "sidecar/config.h"
#include "sidecar/http.h"
#include "sidecar/tls.h"

/* The host that answers introspection requests instead of being forwarded. */
#define PROXY_INTROSPECTION_HOST "_bottle.local"

/* Reason codes the sidecar adds to the matcher's (docs/sidecar.md). */
#define REASON_SNI_MISMATCH       "sni_mismatch"
#define REASON_UPSTREAM_BLOCKED   "upstream_blocked"
#define REASON_UPSTREAM_RESOLVE   "upstream_resolve_failed"
#define REASON_UPSTREAM_CONNECT   "upstream_connect_failed"
#define REASON_UPSTREAM_TLS       "upstream_tls_failed"
#define REASON_UPSTREAM_TIMEOUT   "upstream_timeout"
#define REASON_UPSTREAM_PROTOCOL  "upstream_protocol_error"
#define REASON_UPSTREAM_CLOSED    "upstream_closed"
#define REASON_HEADER_TIMEOUT     "header_timeout"
#define REASON_NOT_A_PROXY_REQ    "not_a_proxy_request"
#define REASON_DATA_BEFORE_TUNNEL "data_before_tunnel"
#define REASON_NOT_FOUND          "not_found"
#define REASON_METHOD_NOT_ALLOWED "method_not_allowed"
#define REASON_RESOLVER_BUSY      "resolver_busy"
#define REASON_INTERNAL           "internal_error"
#define REASON_WS_PROTOCOL        "websocket_protocol_error"
#define REASON_UPGRADE_WITH_BODY  "upgrade_with_body"

/* What a hook says about a request: pass (reason NULL) or refuse with status and reason. */
struct proxy_verdict {
    int status;
    const char *reason;
    char message[256];
};

struct proxy_request_view {
    const struct route *route;
    const struct http_request *req; /* slices valid only during the call */
    const char *host;               /* normalized */
    uint16_t port;
    bool tls;
};

/* What the exchange hooks need to see of a request (proxy_hooks.wants). */
#define PROXY_WANT_REQUEST_BODY 0x1u /* collect the whole body before forwarding */
#define PROXY_WANT_RESPONSE     0x2u /* tap the response head and body as they pass */
#define PROXY_WANT_WS_MESSAGES  0x4u /* after a WebSocket 101: check each message first */

/* Reason for a request body larger than the limit the hooks asked for. */
#define REASON_BODY_TOO_LARGE "body_too_large"

/*
 * Filled by later modules (outbound DLP, metering, budget admission); NULL
 * members pass every request. The contract, per forwarded request:
 *
 *  1. outbound_dlp, then budget_admit, on the request head (after the route
 *     decision, before anything is forwarded).
 *  2. wants() says what else the hooks need, and the largest request body
 *     they accept (*body_limit; 0 means no limit of theirs).
 *  3. With PROXY_WANT_REQUEST_BODY the sidecar collects the whole request
 *     body, de-chunked, before it forwards a byte of the request; a body over
 *     the limit is refused with 413 REASON_BODY_TOO_LARGE, never forwarded
 *     unscanned. request_body() then sees it and may refuse (out->reason set)
 *     or replace it (replacement non-empty: forwarded instead, with
 *     Content-Length). A request without a body gets request_body(len 0).
 *     request_body may set *xs, the hooks' state for this exchange.
 *  4. With PROXY_WANT_RESPONSE, response_head() sees the response head
 *     before it is forwarded and may refuse it (out->reason set: the client
 *     gets that refusal instead, the upstream connection is closed); it may
 *     set *xs. response_data() then sees the body as it passes (de-chunked,
 *     still content-encoded), never delaying it. response_data returning
 *     non-zero ends the response there: the piece it was given and the rest
 *     are not forwarded, and the client connection is closed.
 *  5. exchange_end() is called exactly once for every exchange whose *xs is
 *     non-NULL: complete is true only when the whole response reached the
 *     client. It is also called when the request is refused or fails after
 *     request_body (upstream errors, timeouts, client gone).
 *  6. With PROXY_WANT_WS_MESSAGES and a 101 answer, the sidecar reads the
 *     WebSocket frames both ways and forwards none before ws_message() has
 *     seen the message or control frame it belongs to, whole and unmasked
 *     (*ws: the hooks' state for this connection, freed by ws_end). A
 *     non-zero return with out->reason set closes the WebSocket: the client
 *     gets a close frame (1008, the reason and message), the upstream
 *     connection is closed. Frames the sidecar cannot read close it too
 *     (1002), and the extension offer (compression) is never forwarded.
 */
struct proxy_hooks {
    int (*outbound_dlp)(void *ctx, const struct proxy_request_view *v, struct proxy_verdict *out);
    int (*budget_admit)(void *ctx, const struct proxy_request_view *v, struct proxy_verdict *out);
    unsigned (*wants)(void *ctx, const struct proxy_request_view *v, size_t *body_limit);
    int (*request_body)(void *ctx, const struct proxy_request_view *v, void **xs, const char *body,
                        size_t len, struct buf *replacement, struct proxy_verdict *out);
    int (*response_head)(void *ctx, void **xs, const struct route *route,
                         const struct http_response *resp, struct proxy_verdict *out);
    int (*response_data)(void *ctx, void *xs, const char *p, size_t n);
    void (*exchange_end)(void *ctx, void *xs, bool complete);
    int (*ws_message)(void *ctx, const struct route *route, void **ws, bool from_client, int opcode,
                      const char *p, size_t n, struct proxy_verdict *out);
    void (*ws_end)(void *ctx, void *ws);
    void *ctx;
};

#define PROXY_REASONS_MAX 64

struct proxy_metrics {
    uint64_t connections_total;
    uint64_t requests_total;
    uint64_t requests_allowed;
    uint64_t requests_refused;
    uint64_t bytes_from_clients;
    uint64_t bytes_to_clients;
    uint64_t bytes_to_upstreams;
    uint64_t bytes_from_upstreams;
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    uint64_t upstream_connects; /* new upstream connections */
    uint64_t upstream_reused;   /* requests sent on a pooled upstream connection */
    struct {
        const char *reason; /* static string */
        uint64_t count;
    } refusals[PROXY_REASONS_MAX];
    size_t n_refusals;
};

struct conn;
struct pool_entry;

struct proxy_handle {
    int kind; /* PROXY_H_* */
    void *owner;
};

struct proxy {
    int epfd;
    int listen_fd;
    int control_fd;
    int signal_fd;
    int resolve_pipe[2];
    struct proxy_handle listen_h, control_h, signal_h, resolve_h;
    char *config_path;
    struct config *cfg; /* current; requests keep their own reference */
    const struct config_tokens *tokens;
    struct tls_state tls;
    struct proxy_hooks hooks;
    struct proxy_metrics metrics;
    struct conn *conns; /* doubly linked */
    size_t n_conns;
    struct conn *ready;     /* connections with work left after their turn */
    struct conn *graveyard; /* closed during this turn; freed after it */
    unsigned resolvers_running;
    uint64_t next_conn_id;
    bool draining;
    uint64_t drain_deadline_ms;
    uint16_t listen_port, control_port; /* as bound (port 0 in the config picks one) */
    struct buf scratch;                 /* log lines and small responses; reused */
    struct buf fields;                  /* a request's header fields for the decision; reused */
    struct pool_entry *pool;            /* idle upstream connections, newest first */
    struct pool_entry *pool_dead;       /* taken or closed during this turn; freed after it */
    size_t n_pooled;
    uint64_t cfg_gen; /* bumped by every reload */
};

/*
 * Sets up TLS, listeners, signals (SIGHUP, SIGTERM, SIGINT through a
 * signalfd; the caller has blocked them) from cfg, which the proxy takes.
 */
int proxy_init(struct proxy *px, const char *config_path, struct config *cfg,
               const struct config_tokens *tokens, struct bottle_err *err);
/* Runs until SIGTERM/SIGINT and the drain that follows. Returns 0 or a negative errno. */
int proxy_run(struct proxy *px);
void proxy_free(struct proxy *px);

/* Re-reads the config file; on failure keeps the current one. Returns 0 or negative. */
int proxy_reload(struct proxy *px);

void proxy_count_refusal(struct proxy *px, const char *reason);

#endif
