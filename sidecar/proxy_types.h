/*
 * proxy_types — the sidecar's types, and no functions: the proxy (struct
 * proxy, its metrics and epoll handles), one client connection (struct
 * conn, its states, buffers and endpoints), an idle upstream connection
 * (struct pool_entry), the hooks later modules fill (struct proxy_hooks,
 * with the views they see and the verdicts they give) and the reason codes
 * the sidecar adds to the matcher's.
 *
 * Every sidecar module and every hook module (dlp/, meter/) may include it.
 * It includes only the headers of the modules below the sidecar's core
 * (config, http, tls, ws) and forward-declares the rest. It must never
 * declare a function: the functions live in each module's own header, so
 * no header circle can form through the types.
 */
#ifndef BOTTLE_SIDECAR_PROXY_TYPES_H
#define BOTTLE_SIDECAR_PROXY_TYPES_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "sidecar/config.h"
#include "sidecar/http.h"
#include "sidecar/tls.h"
#include "sidecar/ws.h"

struct addrinfo;
struct route;

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
#define REASON_TRACE_WITH_AUTH    "trace_with_auth"

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
#define PROXY_WANT_REQUEST_BODY    0x1u /* collect the whole body before forwarding */
#define PROXY_WANT_RESPONSE        0x2u /* tap the response head and body as they pass */
#define PROXY_WANT_WS_MESSAGES     0x4u /* after a WebSocket 101: check each message first */
#define PROXY_WANT_RESPONSE_FILTER 0x8u /* with RESPONSE: the body goes through the filter */

/* ws_message's return when it rewrote the payload in place (same length): forward that. */
#define PROXY_WS_REWRITTEN 2

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
 *     With PROXY_WANT_RESPONSE_FILTER as well, response_head() may rewrite
 *     the head before it is forwarded: point resp's reason phrase and header
 *     values at memory of its own (valid until exchange_end) and drop fields.
 *     The body is then not relayed as it arrives: response_filter() gets each
 *     piece (after response_data) and appends what to forward instead to out,
 *     and is called once more with last set when the body is complete, to
 *     flush what it held back. The client gets the filtered body under the
 *     head's Content-Length when the rewritten head still has one (the filter
 *     must keep the length; one that does not ends the response), else
 *     chunked (until close for an HTTP/1.0 client). A non-zero return ends
 *     the response there, as response_data's does; a body cut short (the
 *     upstream closed, a framing error) never gets its last call.
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
 *     (1002), and the extension offer (compression) is never forwarded. It
 *     may rewrite a server's payload in place, keeping its length, and
 *     return PROXY_WS_REWRITTEN: the frames forwarded then carry the new
 *     bytes.
 */
struct proxy_hooks {
    int (*outbound_dlp)(void *ctx, const struct proxy_request_view *v, struct proxy_verdict *out);
    int (*budget_admit)(void *ctx, const struct proxy_request_view *v, struct proxy_verdict *out);
    unsigned (*wants)(void *ctx, const struct proxy_request_view *v, size_t *body_limit);
    int (*request_body)(void *ctx, const struct proxy_request_view *v, void **xs, const char *body,
                        size_t len, struct buf *replacement, struct proxy_verdict *out);
    int (*response_head)(void *ctx, void **xs, const struct route *route,
                         struct http_response *resp, struct proxy_verdict *out);
    int (*response_data)(void *ctx, void *xs, const char *p, size_t n);
    int (*response_filter)(void *ctx, void *xs, const char *p, size_t n, bool last,
                           struct buf *out);
    void (*exchange_end)(void *ctx, void *xs, bool complete);
    int (*ws_message)(void *ctx, const struct route *route, void **ws, bool from_client, int opcode,
                      char *p, size_t n, struct proxy_verdict *out);
    void (*ws_end)(void *ctx, void *ws);
    void *ctx;
};

#define PROXY_REASONS_MAX 64

struct proxy_metrics {
    uint64_t connections_total;
    /* Connections over max_connections, answered and closed at accept. */
    uint64_t connections_refused;
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

struct proxy_handle {
    int kind; /* PROXY_H_* */
    void *owner;
};

enum {
    PROXY_H_LISTEN = 1,
    PROXY_H_CONTROL,
    PROXY_H_SIGNAL,
    PROXY_H_RESOLVE,
    PROXY_H_CLIENT,
    PROXY_H_UPSTREAM,
    PROXY_H_POOL
};

#define CONN_BUF_SIZE 16384
#define CONN_BODY_BUF 65536 /* a response body read ahead of a slower client, at most */
#define CONN_HEAD_MAX (8192 + 65536 + 1024) /* request line + header block + slack */
#define CONN_LOG_PATH 512

enum conn_state {
    CONN_HEAD = 0,   /* waiting for (or parsing) a request head; idle between requests */
    CONN_TLS_ACCEPT, /* intercepting: client handshake after "200 Connection established" */
    CONN_RESOLVE,    /* upstream name being resolved off-loop */
    CONN_CONNECT,    /* upstream TCP connect in progress */
    CONN_UP_TLS,     /* upstream handshake */
    CONN_EXCHANGE,   /* request forwarded; bodies and response flowing */
    CONN_RELAY,      /* after a WebSocket 101: bytes both ways (frames checked with ws) */
    CONN_CLOSING,    /* flushing the last bytes to the client, then close */
    CONN_BODY,       /* collecting a request body for the exchange hooks */
};

/* How a filtered response body is framed for the client (struct conn.filter). */
enum { CONN_FILTER_NONE = 0, CONN_FILTER_LENGTH, CONN_FILTER_CHUNKED, CONN_FILTER_CLOSE };

/* A collected request body is bounded even when the hooks set no limit. */
#define CONN_BODY_MAX (64u << 20)
/* The client did not send the request body the hooks wait for in time. */
#define REASON_BODY_TIMEOUT "body_timeout"

/* A connection beyond the config's max_connections (503, then closed). */
#define REASON_TOO_MANY_CONNECTIONS "too_many_connections"
/* The config's proxy_auth credential is missing or wrong (407). */
#define REASON_PROXY_AUTH_REQUIRED "proxy_auth_required"

struct iobuf {
    char *data;
    size_t start, end, cap;
};

struct endpoint {
    int fd;
    SSL *ssl;
    bool eof;
    bool rd, wr; /* may read / write without waiting for an event (edge-triggered) */
    struct proxy_handle h;
};

/*
 * An idle upstream connection kept for reuse by any client connection
 * (pool_release). Reused only for the same host, port and TLS flag,
 * connected to the address that was checked for that host, under the same
 * config generation, before it expires, and only while the upstream has
 * sent nothing since its last response.
 */
struct pool_entry {
    struct pool_entry *next;
    struct proxy_handle h; /* PROXY_H_POOL */
    int fd;
    SSL *ssl;
    char host[256];
    uint16_t port;
    bool tls, dead;
    struct config_addr addr;
    uint64_t gen, expires_ms;
};

/*
 * A name resolution running on a thread of its own for one connection
 * (upstream.c starts it; the loop gets it back through the resolve pipe).
 */
struct resolve_job {
    struct conn *conn; /* NULL once the connection is gone (loop thread only) */
    int notify_fd;
    char host[HOST_NAME_MAX_LEN + 1];
    char port[8];
    struct addrinfo *res;
    int rc;
};

/* A relayed WebSocket whose messages the hooks check (PROXY_WANT_WS_MESSAGES). */
struct ws_relay {
    struct ws_dir c2u, u2c;
    void *state; /* the hooks' (ws_message, ws_end) */
};

/* One client connection and the request it serves (conn.h drives it). */
struct conn {
    struct conn *prev, *next, *ready_next;
    bool in_ready;
    struct proxy *px;
    uint64_t id;
    enum conn_state state;
    bool control;     /* accepted on the control listener */
    bool tunnel;      /* client side is an intercepted CONNECT tunnel */
    bool introspect;  /* the tunnel is to the introspection host */
    bool close_after; /* close once the current response is out */
    bool dead;
    struct endpoint cli, up;
    struct tls_peer peer; /* tunnel host (normalized) and SNI */
    uint16_t tunnel_port;
    struct iobuf cin, uin;     /* bytes read from the client / upstream */
    size_t c2u_ok, u2c_ok;     /* bytes at the front of cin / uin cleared for forwarding */
    struct buf cout, uout;     /* heads and local answers waiting to be written */
    size_t cout_off, uout_off; /* bytes of cout / uout already written */

    struct http_request req;
    struct http_response resp;
    struct config *cfg; /* the config this request started with */

    /* the request being served */
    bool req_head_request; /* HEAD: response has no body */
    bool req_upgrade;
    bool req_keep_alive;
    bool req_done, resp_head_done, resp_done, resp_started;
    enum http_body_kind req_body, resp_body;
    uint64_t req_left, resp_left;
    struct http_chunked req_chunk, resp_chunk;

    /* where an allowed request goes (kept while its body is collected) */
    struct {
        const struct route *route; /* in cfg */
        char host[256];
        uint16_t port;
        bool tls, is_ip;
    } fwd;

    /* exchange hooks (proxy_hooks) for the request being served */
    unsigned want;     /* PROXY_WANT_* */
    size_t body_limit; /* largest collected body */
    struct buf hold;   /* the request head, re-parsed here while the body is collected */
    struct buf body;   /* the collected body, de-chunked */
    void *xs;          /* the hooks' state for this exchange; exchange_end clears it */
    bool resp_bad;     /* response truncated, malformed or ended by a hook */
    uint8_t filter;    /* CONN_FILTER_*: the response body goes through response_filter */
    uint64_t filtered; /* bytes the filter gave for the client */
    struct buf fbuf;   /* the filter's output for one piece */
    bool xs_complete;  /* the whole response reached the client */
    struct ws_relay *ws;

    /* the upstream connection, kept for reuse */
    char up_host[256];
    uint16_t up_port;
    bool up_tls, up_is_ip, up_ready;
    bool up_idle;    /* between exchanges, response fully read: reusable */
    uint64_t up_gen; /* config generation it was connected under */
    struct config_addr up_addr;
    struct resolve_job *job;

    /* deadline for the current state; 0 = none */
    uint64_t deadline_ms;

    /* log fields of the request being served */
    struct {
        uint64_t start_ms;
        uint64_t in0, out0; /* counters when the request started */
        int status;
        const char *decision; /* "allowed", "refused", "local" */
        const char *reason;
        char method[24];
        char host[262];
        char path[CONN_LOG_PATH];
        struct buf headers; /* full logging only: redacted header JSON */
    } log;
    uint64_t bytes_in, bytes_out; /* client side, whole connection */
};

/* The loop and what every connection shares (proxy.h runs it). */
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

#endif
