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

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "sidecar/config.h"
#include "sidecar/http.h"
#include "sidecar/proxy.h"
#include "sidecar/tls.h"
#include "sidecar/ws.h"

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

/* A collected request body is bounded even when the hooks set no limit. */
#define CONN_BODY_MAX (64u << 20)
/* The client did not send the request body the hooks wait for in time. */
#define REASON_BODY_TIMEOUT "body_timeout"

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
 * (upstream_release). Reused only for the same host, port and TLS flag,
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

#define POOL_MAX     256   /* idle upstream connections kept, all hosts */
#define POOL_PER_KEY 32    /* per host, port and TLS flag */
#define POOL_IDLE_MS 15000 /* longest idle time (the config's idle timeout if shorter) */

struct resolve_job;

/* A relayed WebSocket whose messages the hooks check (PROXY_WANT_WS_MESSAGES). */
struct ws_relay {
    struct ws_dir c2u, u2c;
    void *state; /* the hooks' (ws_message, ws_end) */
};

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

/* conn.c */
struct conn *conn_new(struct proxy *px, int fd, bool control);
void conn_close(struct conn *c);
void conn_run(struct conn *c);
void conn_timeout(struct conn *c, uint64_t now);
/* Is the connection between requests with nothing buffered (drain closes those)? */
bool conn_idle(const struct conn *c);
/* Queues a local JSON answer (refusal or error) and finishes the request. */
void conn_refuse(struct conn *c, int status, const char *reason, const char *message);
/* Queues a local answer with any body. */
void conn_respond(struct conn *c, int status, const char *content_type, const char *body,
                  size_t len);
void conn_request_finish(struct conn *c);
void iobuf_reserve(struct iobuf *b, size_t want_free, size_t max_cap);

/* decide.c: a complete request head (n bytes at cin.start) */
void decide_request(struct conn *c, size_t head_len);
void decide_control(struct conn *c, size_t head_len);
/* The request body the hooks asked for is complete (c->body): run request_body, forward. */
void decide_body_complete(struct conn *c);

/* upstream.c */
void upstream_open(struct conn *c, const char *host, bool is_ip, uint16_t port, bool tls);
void upstream_close(struct conn *c);
/* Keeps an idle upstream connection in the pool when that is safe, else closes it. */
void upstream_release(struct conn *c);
/* The upstream of a pooled connection spoke or closed: it is not reusable. */
void upstream_pool_event(struct proxy *px, struct pool_entry *e);
/* Closes every pooled connection (reload, drain, exit) or only the expired ones. */
void upstream_pool_flush(struct proxy *px, bool expired_only);
/* Frees entries closed during this turn of the loop. */
void upstream_pool_bury(struct proxy *px);
bool upstream_reusable(const struct conn *c, const char *host, uint16_t port, bool tls);
void upstream_step(struct conn *c);
void upstream_resolved(struct proxy *px, struct resolve_job *job);

/* logjson.c */
void logjson_request(struct conn *c);
void logjson_capture(struct conn *c, const struct http_request *req);
void logjson_event(struct proxy *px, const char *event, const char *k1, const char *v1,
                   const char *k2, const char *v2);

#endif
