/* conn — per-connection state machine and byte pumps (see conn.h). */
#include "sidecar/conn.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "sidecar/decide.h"
#include "sidecar/io.h"
#include "sidecar/logjson.h"
#include "sidecar/pool.h"
#include "sidecar/respond.h"
#include "sidecar/upstream.h"

static const struct http_limits limits = HTTP_LIMITS_DEFAULT;

/* Turns through the pumps before a busy connection yields to the others. */
#define CONN_TURNS 32

/* ---- lifecycle --------------------------------------------------------------- */

struct conn *conn_new(struct proxy *px, int fd, bool control)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->px = px;
    c->id = ++px->next_conn_id;
    c->control = control;
    c->cli.fd = fd;
    c->cli.rd = c->cli.wr = true;
    c->up.fd = -1;
    c->cli.h = (struct proxy_handle){PROXY_H_CLIENT, c};
    c->up.h = (struct proxy_handle){PROXY_H_UPSTREAM, c};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = &c->cli.h};
    if (epoll_ctl(px->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(c);
        return NULL;
    }
    c->next = px->conns;
    if (px->conns)
        px->conns->prev = c;
    px->conns = c;
    px->n_conns++;
    px->metrics.connections_total++;
    c->deadline_ms = (uint64_t)clock_mono_ms() + px->cfg->timeouts.idle_ms;
    return c;
}

void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    struct proxy *px = c->px;
    c->dead = true;
    conn_exchange_end(c, false);
    if (c->job) { /* a name still being resolved: its answer must find no connection */
        c->job->conn = NULL;
        c->job = NULL;
    }
    pool_release(c); /* an idle upstream goes to the pool */
    if (c->cli.ssl)
        SSL_free(c->cli.ssl);
    if (c->cli.fd >= 0)
        close(c->cli.fd);
    c->cli.ssl = NULL;
    c->cli.fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        px->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    px->n_conns--;
    config_unref(c->cfg);
    c->cfg = NULL;
    c->next = px->graveyard; /* freed after this turn of the loop */
    px->graveyard = c;
}

void conn_free_dead(struct conn *c)
{
    free(c->cin.data);
    free(c->uin.data);
    buf_free(&c->cout);
    buf_free(&c->uout);
    buf_free(&c->hold);
    buf_free(&c->body);
    buf_free(&c->fbuf);
    buf_free(&c->log.headers);
    free(c);
}

bool conn_idle(const struct conn *c)
{
    return c->state == CONN_HEAD && iobuf_len(&c->cin) == 0 && c->cout.len == 0 && !c->cfg;
}

/* ---- pumps ------------------------------------------------------------------- */

/* Writes out (a head or local answer) from *off, then the cleared bytes of src. */
static bool flush_side(struct conn *c, struct endpoint *ep, struct buf *out, size_t *off,
                       struct iobuf *src, size_t *ok, uint64_t *counter, uint64_t *metric)
{
    bool progress = false;
    if (!ep->wr)
        return false;
    while (out->len) {
        ssize_t w = ep_write(ep, out->data + *off, out->len - *off);
        if (w == -EAGAIN) {
            ep->wr = false;
            return progress;
        }
        if (w <= 0) {
            conn_close(c);
            return true;
        }
        *off += (size_t)w;
        if (*off == out->len) {
            *off = 0;
            out->len = 0;
            out->data[0] = '\0';
        }
        *counter += (uint64_t)w;
        progress = true;
    }
    while (*ok) {
        ssize_t w = ep_write(ep, src->data + src->start, *ok);
        if (w == -EAGAIN) {
            ep->wr = false;
            return progress;
        }
        if (w <= 0) {
            conn_close(c);
            return true;
        }
        src->start += (size_t)w;
        *ok -= (size_t)w;
        *counter += (uint64_t)w;
        *metric += (uint64_t)w;
        progress = true;
    }
    return progress;
}

/*
 * Reads what the side has, up to the buffer's room: a TLS side yields one
 * record per call, and a head and body that arrive together should leave
 * together (coalesce). Ends at EAGAIN, which also clears the readiness flag.
 */
static bool read_side(struct conn *c, struct endpoint *ep, struct iobuf *b, size_t max_cap,
                      uint64_t *counter)
{
    bool got = false;
    (void)c;
    for (int i = 0; i < 8; i++) {
        if (ep->fd < 0 || ep->eof || (!ep->rd && !(ep->ssl && SSL_has_pending(ep->ssl))))
            break;
        iobuf_reserve(b, 1, max_cap);
        if (b->end == b->cap)
            break; /* full: the other side has to take bytes first */
        ssize_t r = ep_read(ep, b->data + b->end, b->cap - b->end);
        if (r == -EAGAIN) {
            ep->rd = false;
            break;
        }
        if (r <= 0) {
            ep->eof = true;
            return true;
        }
        b->end += (size_t)r;
        *counter += (uint64_t)r;
        got = true;
    }
    return got;
}

/* Shows body bytes to the response tap; true when the hook ends the response. */
static bool tap_says_stop(struct conn *c, const char *p, size_t n)
{
    struct proxy_hooks *h = &c->px->hooks;
    return n && h->response_data && h->response_data(h->ctx, c->xs, p, n) != 0;
}

/*
 * Clears the next body bytes of a message for forwarding; returns -1 on a
 * framing error, 2 when tap (the response tap's connection, or NULL) ended
 * the body before the bytes it was shown.
 */
static int clear_body(struct conn *tap, enum http_body_kind kind, struct iobuf *b, size_t *ok,
                      uint64_t *left, struct http_chunked *ch, bool *done)
{
    size_t avail = iobuf_len(b) - *ok;
    if (*done || avail == 0)
        return 0;
    if (kind == HTTP_BODY_LENGTH) {
        size_t take = avail < *left ? avail : (size_t)*left;
        if (tap && tap_says_stop(tap, b->data + b->start + *ok, take)) {
            *done = true;
            return 2;
        }
        *ok += take;
        *left -= take;
        *done = *left == 0;
    } else if (kind == HTTP_BODY_CHUNKED) {
        const char *p = b->data + b->start + *ok;
        while (avail) {
            size_t used = 0;
            struct http_slice data;
            int r = http_chunked_feed(ch, p, avail, &used, &data);
            if (r == HTTP_CHUNKED_ERROR)
                return -1;
            if (tap && tap_says_stop(tap, data.ptr, data.len)) {
                *ok += (size_t)(data.ptr - p); /* the chunk's size line, not its data */
                *done = true;
                return 2;
            }
            *ok += used;
            p += used;
            avail -= used;
            if (r == HTTP_CHUNKED_DONE) {
                *done = true;
                break;
            }
            if (r == HTTP_CHUNKED_MORE)
                break;
        }
    } else if (kind == HTTP_BODY_UNTIL_CLOSE) {
        if (tap && tap_says_stop(tap, b->data + b->start + *ok, avail)) {
            *done = true;
            return 2;
        }
        *ok += avail;
    } else {
        *done = true;
    }
    return 1;
}

/* Upstream body bytes handed to the response filter per call: bounds what one call can give. */
#define FILTER_PIECE 16384

/*
 * A filtered response body (PROXY_WANT_RESPONSE_FILTER): each piece read
 * from the upstream is shown to the tap, then goes through response_filter,
 * and what the filter gives back is framed for the client into cout. It
 * stops while cout holds a full buffer: the client is slower. Returns -1 on
 * a framing error, 2 when a hook ended the body, 1 otherwise.
 */
static int filter_body(struct conn *c)
{
    struct proxy_hooks *h = &c->px->hooks;
    while (!c->resp_done && c->cout.len < CONN_BODY_BUF) {
        size_t avail = iobuf_len(&c->uin), used = 0;
        const char *p = c->uin.data + c->uin.start;
        struct http_slice data = {p, 0};
        bool last = false;
        if (avail > FILTER_PIECE)
            avail = FILTER_PIECE;
        if (c->resp_body == HTTP_BODY_LENGTH) {
            used = avail < c->resp_left ? avail : (size_t)c->resp_left;
            data.len = used;
            c->resp_left -= used;
            last = c->resp_left == 0;
        } else if (c->resp_body == HTTP_BODY_CHUNKED) {
            int r = http_chunked_feed(&c->resp_chunk, p, avail, &used, &data);
            if (r == HTTP_CHUNKED_ERROR)
                return -1;
            last = r == HTTP_CHUNKED_DONE;
        } else { /* until close: everything was read once the upstream closed */
            used = data.len = avail;
            last = c->up.eof && used == iobuf_len(&c->uin);
        }
        if (!used && !last)
            break;
        buf_reset(&c->fbuf);
        if (tap_says_stop(c, data.ptr, data.len) ||
            h->response_filter(h->ctx, c->xs, data.ptr, data.len, last, &c->fbuf) != 0 ||
            (c->filter == CONN_FILTER_LENGTH && /* more than the client was promised */
             c->filtered + c->fbuf.len > (uint64_t)c->resp.content_length)) {
            c->resp_done = true;
            return 2;
        }
        c->uin.start += used;
        if (c->fbuf.len && c->filter == CONN_FILTER_CHUNKED)
            buf_printf(&c->cout, "%zx\r\n", c->fbuf.len);
        buf_append(&c->cout, c->fbuf.data, c->fbuf.len);
        if (c->fbuf.len && c->filter == CONN_FILTER_CHUNKED)
            buf_append_str(&c->cout, "\r\n");
        c->filtered += c->fbuf.len;
        c->px->metrics.bytes_to_clients += c->fbuf.len;
        if (last) {
            if (c->filter == CONN_FILTER_CHUNKED)
                buf_append_str(&c->cout, "0\r\n\r\n");
            c->resp_done = true;
            if (c->filter == CONN_FILTER_LENGTH && c->filtered != (uint64_t)c->resp.content_length)
                return 2;
        }
    }
    return 1;
}

/*
 * The head of a filtered response: the client's framing is the sidecar's
 * (the filter may change the body), chosen from what the hooks left of the
 * head. A body the upstream framed by length whose Content-Length the hooks
 * kept keeps it; otherwise chunked, or until close for an HTTP/1.0 client.
 */
static void filter_head(struct conn *c, const struct http_response *r, const char **skip,
                        size_t *n_skip, struct http_header *add, size_t *n_add)
{
    static const struct http_header chunked = {{"Transfer-Encoding", 17}, {"chunked", 7}};
    c->filter = CONN_FILTER_NONE;
    c->filtered = 0;
    if (!(c->want & PROXY_WANT_RESPONSE_FILTER) || !c->px->hooks.response_filter ||
        r->body == HTTP_BODY_NONE)
        return;
    bool kept = http_header_find(r->headers, r->n_headers, "Content-Length") != NULL;
    if (r->body == HTTP_BODY_LENGTH && kept)
        c->filter = CONN_FILTER_LENGTH;
    else if (c->req.version_minor >= 1)
        c->filter = CONN_FILTER_CHUNKED;
    else
        c->filter = CONN_FILTER_CLOSE;
    if (c->filter == CONN_FILTER_LENGTH)
        return;
    skip[(*n_skip)++] = "Content-Length";
    skip[(*n_skip)++] = "Transfer-Encoding";
    if (c->filter == CONN_FILTER_CHUNKED)
        add[(*n_add)++] = chunked;
    else
        c->close_after = true;
}

/* The hooks see a response head before it is forwarded; false when they refused it. */
static bool response_head_hook(struct conn *c, struct http_response *r)
{
    struct proxy_hooks *h = &c->px->hooks;
    if (!(c->want & PROXY_WANT_RESPONSE) || !h->response_head)
        return true;
    struct proxy_verdict v;
    memset(&v, 0, sizeof(v));
    if (h->response_head(h->ctx, &c->xs, c->fwd.route, r, &v) == 0 || !v.reason)
        return true;
    c->resp_bad = true;
    conn_refuse(c, v.status ? v.status : 502, v.reason, v.message);
    return false;
}

/* After a 101: check the frames both ways when the hooks ask for it, else relay bytes. */
static void relay_start(struct conn *c)
{
    c->state = CONN_RELAY;
    if (!(c->want & PROXY_WANT_WS_MESSAGES) || !c->px->hooks.ws_message)
        return;
    struct ws_relay *ws = xcalloc(1, sizeof(*ws));
    size_t max = c->body_limit ? c->body_limit : CONN_BODY_MAX;
    ws_dir_init(&ws->c2u, true, max);
    ws_dir_init(&ws->u2c, false, max);
    c->ws = ws;
}

static void conn_response_head(struct conn *c, size_t n)
{
    struct http_response *r = &c->resp;
    if (r->status_code >= 100 && r->status_code < 200 && r->status_code != 101) {
        http_response_write_head(&c->cout, r, NULL, 0, NULL, 0);
        c->uin.start += n;
        http_response_reset(r);
        return;
    }
    if (r->status_code == 101) {
        if (!c->req_upgrade || !r->upgrade_websocket) {
            conn_refuse(c, 502, REASON_UPSTREAM_PROTOCOL,
                        "the upstream switched protocols without a WebSocket upgrade");
            return;
        }
        if (!response_head_hook(c, r))
            return;
        http_response_write_head(&c->cout, r, NULL, 0, NULL, 0);
        c->uin.start += n;
        c->log.status = 101;
        c->resp_started = true;
        relay_start(c);
        return;
    }
    if (!response_head_hook(c, r))
        return;
    c->resp_body = r->body;
    c->resp_left = r->content_length > 0 ? (uint64_t)r->content_length : 0;
    http_chunked_init(&c->resp_chunk, &limits);
    if (!r->keep_alive || !c->req_keep_alive || r->body == HTTP_BODY_UNTIL_CLOSE || c->px->draining)
        c->close_after = true;
    static const struct http_header conn_close_hdr = {{"Connection", 10}, {"close", 5}};
    const char *skip[2];
    struct http_header add[2];
    size_t n_skip = 0, n_add = 0;
    filter_head(c, r, skip, &n_skip, add, &n_add);
    if (c->close_after)
        add[n_add++] = conn_close_hdr;
    http_response_write_head(&c->cout, r, skip, n_skip, n_add ? add : NULL, n_add);
    c->uin.start += n;
    c->resp_head_done = c->resp_started = true;
    c->log.status = r->status_code;
    c->resp_done = r->body == HTTP_BODY_NONE || (r->body == HTTP_BODY_LENGTH && c->resp_left == 0);
    if (c->resp_done && c->filter == CONN_FILTER_CHUNKED)
        buf_append_str(&c->cout, "0\r\n\r\n"); /* an empty body, chunked */
}

static bool step_exchange(struct conn *c)
{
    bool progress = false;
    if (!c->req_done) {
        size_t before = c->c2u_ok;
        if (clear_body(NULL, c->req_body, &c->cin, &c->c2u_ok, &c->req_left, &c->req_chunk,
                       &c->req_done) < 0) {
            conn_refuse(c, 400, c->req_chunk.error ? c->req_chunk.error : "bad_chunk_size",
                        "the request body's chunked framing is invalid");
            return true;
        }
        progress |= c->c2u_ok != before;
        if (c->cli.eof && !c->req_done && iobuf_len(&c->cin) == c->c2u_ok) {
            conn_close(c); /* the client gave up mid-body */
            return true;
        }
    }
    while (!c->resp_head_done && iobuf_len(&c->uin) > 0 && c->state == CONN_EXCHANGE) {
        ssize_t n = http_parse_response(c->uin.data + c->uin.start, iobuf_len(&c->uin),
                                        c->req_head_request, &c->resp, &limits);
        if (n == 0)
            break;
        if (n < 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "the upstream's response was refused by the parser (%s)",
                     c->resp.error);
            conn_refuse(c, 502, REASON_UPSTREAM_PROTOCOL, msg);
            return true;
        }
        conn_response_head(c, (size_t)n);
        progress = true;
        if (c->dead || c->state != CONN_EXCHANGE)
            return true;
    }
    if (c->resp_head_done && !c->resp_done) {
        size_t before = c->u2c_ok, taken = c->uin.start;
        struct conn *tap = (c->want & PROXY_WANT_RESPONSE) ? c : NULL;
        int r = c->filter ? filter_body(c)
                          : clear_body(tap, c->resp_body, &c->uin, &c->u2c_ok, &c->resp_left,
                                       &c->resp_chunk, &c->resp_done);
        progress |= c->uin.start != taken;
        if (r < 0) {
            c->close_after = true; /* cut the stream: the client sees a truncated body */
            c->log.reason = REASON_UPSTREAM_PROTOCOL;
            c->resp_done = true;
            c->resp_bad = true;
            c->req_done = c->req_done && false;
        } else if (r == 2) {
            c->close_after = true; /* a hook ended the response: what was sent stays sent */
            c->resp_bad = true;
            progress = true;
        }
        progress |= c->u2c_ok != before;
    }
    /* (a filtered body that runs to the close ends in filter_body, with the filter's last call) */
    if (c->up.eof && !c->resp_done && iobuf_len(&c->uin) == c->u2c_ok &&
        !(c->filter && c->resp_body == HTTP_BODY_UNTIL_CLOSE)) {
        if (!c->resp_started) {
            conn_refuse(c, 502, REASON_UPSTREAM_CLOSED,
                        "the upstream closed the connection before answering");
            return true;
        }
        if (c->resp_body != HTTP_BODY_UNTIL_CLOSE) {
            c->close_after = true; /* truncated */
            c->resp_bad = true;
        }
        c->resp_done = true;
        progress = true;
    }
    if (c->resp_done && c->u2c_ok == 0 && (!c->xs || c->cout.len == 0)) {
        c->xs_complete = !c->resp_bad;
        if (!c->req_done)
            c->close_after = true; /* the request stream cannot be resynchronized */
        /* The upstream stays for the next request (here or pooled) only when it is clean. */
        if (c->req_done && !c->resp_bad && c->resp.keep_alive &&
            c->resp_body != HTTP_BODY_UNTIL_CLOSE && iobuf_len(&c->uin) == 0 && !c->up.eof &&
            c->c2u_ok == 0 && c->uout.len == 0)
            c->up_idle = true;
        else
            pool_drop(c);
        conn_request_finish(c);
        return true;
    }
    return progress;
}

static void body_too_large(struct conn *c)
{
    char msg[160];
    snprintf(msg, sizeof(msg),
             "the request body is larger than the %zu bytes that can be inspected; it was not "
             "forwarded",
             c->body_limit);
    conn_refuse(c, 413, REASON_BODY_TOO_LARGE, msg);
    c->cin.start = c->cin.end; /* the rest of the body is never read */
}

/* Moves request body bytes from cin into c->body (de-chunked) until the body is complete. */
static bool step_body(struct conn *c)
{
    bool progress = false;
    while (!c->req_done && iobuf_len(&c->cin) > 0) {
        const char *p = c->cin.data + c->cin.start;
        size_t avail = iobuf_len(&c->cin);
        if (c->req_body == HTTP_BODY_LENGTH) {
            size_t take = avail < c->req_left ? avail : (size_t)c->req_left;
            if (c->body.len + take > c->body_limit) {
                body_too_large(c);
                return true;
            }
            buf_append(&c->body, p, take);
            c->cin.start += take;
            c->req_left -= take;
            c->req_done = c->req_left == 0;
        } else {
            size_t used = 0;
            struct http_slice data = {NULL, 0};
            int r = http_chunked_feed(&c->req_chunk, p, avail, &used, &data);
            if (r == HTTP_CHUNKED_ERROR) {
                conn_refuse(c, 400, c->req_chunk.error ? c->req_chunk.error : "bad_chunk_size",
                            "the request body's chunked framing is invalid");
                c->cin.start = c->cin.end;
                return true;
            }
            if (data.len && c->body.len + data.len > c->body_limit) {
                body_too_large(c);
                return true;
            }
            buf_append(&c->body, data.ptr, data.len);
            c->cin.start += used;
            c->req_done = r == HTTP_CHUNKED_DONE;
            if (r == HTTP_CHUNKED_MORE) {
                progress = true;
                break;
            }
        }
        progress = true;
    }
    if (!c->req_done) {
        if (c->cli.eof) {
            conn_close(c); /* the client gave up mid-body */
            return true;
        }
        return progress;
    }
    decide_body_complete(c);
    return true;
}

static bool step_head(struct conn *c)
{
    size_t avail = iobuf_len(&c->cin);
    if (avail == 0) {
        if (c->cli.eof) {
            conn_close(c);
            return true;
        }
        return false;
    }
    if (!c->cfg) { /* first bytes of a request: it runs under today's config */
        c->cfg = config_ref(c->px->cfg);
        c->log.start_ms = (uint64_t)clock_mono_ms();
        c->log.in0 = c->bytes_in - avail;
        c->log.out0 = c->bytes_out;
        c->deadline_ms = c->log.start_ms + c->cfg->timeouts.header_ms;
    }
    ssize_t n = http_parse_request(c->cin.data + c->cin.start, avail, &c->req, &limits);
    if (n == 0) {
        if (c->cli.eof)
            conn_close(c);
        return c->cli.eof;
    }
    if (n < 0) {
        snprintf(c->log.method, sizeof(c->log.method), "-");
        c->close_after = true;
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the request was refused by the sidecar's HTTP parser (%s); it was not "
                 "forwarded",
                 c->req.error);
        conn_refuse(c, c->req.error_status ? c->req.error_status : 400, c->req.error, msg);
        c->cin.start = c->cin.end; /* nothing after a refused head can be trusted */
        return true;
    }
    if (c->control)
        decide_control(c, (size_t)n);
    else
        decide_request(c, (size_t)n);
    return true;
}

static bool step_tls_accept(struct conn *c)
{
    if (c->cout.len)
        return false;
    if (!c->cli.ssl) {
        if (iobuf_len(&c->cin) > 0) {
            snprintf(c->log.method, sizeof(c->log.method), "CONNECT");
            conn_refuse(c, 400, REASON_DATA_BEFORE_TUNNEL,
                        "bytes arrived before the tunnel was established");
            return true;
        }
        iobuf_release_if_empty(&c->cin);
        c->cli.ssl = tls_server_new(&c->px->tls, &c->peer);
        if (!c->cli.ssl || SSL_set_fd(c->cli.ssl, c->cli.fd) != 1) {
            conn_close(c);
            return true;
        }
        c->deadline_ms = (uint64_t)clock_mono_ms() + c->px->cfg->timeouts.handshake_ms;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(c->cli.ssl);
    if (r == 1) {
        c->state = CONN_HEAD;
        c->deadline_ms = (uint64_t)clock_mono_ms() + c->px->cfg->timeouts.idle_ms;
        return true;
    }
    if (ep_ssl_result(c->cli.ssl, r) == -EAGAIN)
        return false;
    ERR_clear_error();
    if (c->peer.sni_mismatch) {
        snprintf(c->log.method, sizeof(c->log.method), "TLS");
        c->cfg = config_ref(c->px->cfg);
        c->log.start_ms = (uint64_t)clock_mono_ms();
        c->log.decision = "refused";
        c->log.reason = REASON_SNI_MISMATCH;
        snprintf(c->log.path, sizeof(c->log.path), "sni=%.200s", c->peer.sni);
        logjson_count_refusal(c->px, REASON_SNI_MISMATCH);
        conn_request_finish(c);
    } else {
        log_debug("client TLS handshake failed", "conn", c->peer.host, NULL);
    }
    conn_close(c);
    return true;
}

static bool step_closing(struct conn *c)
{
    if (c->cout.len || c->u2c_ok)
        return false;
    if (!c->cli.eof) {
        /* Lingering close: stop sending, then read until the client closes, so the
         * kernel does not answer unread bytes with a reset that eats our answer. */
        if (c->cli.ssl && SSL_is_init_finished(c->cli.ssl)) {
            SSL_shutdown(c->cli.ssl);
            SSL_free(c->cli.ssl);
            c->cli.ssl = NULL;
        }
        shutdown(c->cli.fd, SHUT_WR);
        char sink[4096];
        for (int i = 0; i < 16; i++) {
            ssize_t r = recv(c->cli.fd, sink, sizeof(sink), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                conn_close(c);
                return true;
            }
            if (r < 0)
                return false;
        }
        return false;
    }
    conn_close(c);
    return true;
}

/* Unread bytes a checked direction keeps waiting while its output is this full. */
#define WS_OUT_HIGH CONN_BODY_BUF

/*
 * Ends a checked WebSocket: the client gets a close frame with the reason
 * (1008 policy, 1002 protocol), the upstream connection is closed.
 */
static void ws_shut(struct conn *c, uint16_t code, const char *reason, const char *message)
{
    char text[124];
    snprintf(text, sizeof(text), "%s: %s", reason, message);
    ws_close_frame(&c->cout, code, text);
    c->log.decision = "refused";
    c->log.reason = reason;
    logjson_count_refusal(c->px, reason);
    log_warn("WebSocket closed", "host", c->fwd.host, "reason", reason, "what", message, NULL);
    pool_drop(c);              /* drops what the upstream sent or was to be sent */
    c->cin.start = c->cin.end; /* nothing more from the client is looked at */
    c->c2u_ok = 0;
    c->close_after = true;
    conn_request_finish(c);
}

/* Frames of one direction from in, checked unit by unit, into out. False: closed. */
static bool ws_pump(struct conn *c, bool from_client, uint64_t *metric)
{
    struct ws_relay *ws = c->ws;
    struct ws_dir *d = from_client ? &ws->c2u : &ws->u2c;
    struct iobuf *in = from_client ? &c->cin : &c->uin;
    struct buf *out = from_client ? &c->uout : &c->cout;
    struct proxy_hooks *h = &c->px->hooks;
    while (iobuf_len(in) && out->len < WS_OUT_HIGH) {
        size_t used = 0;
        enum ws_unit u =
            ws_dir_feed(d, (const unsigned char *)in->data + in->start, iobuf_len(in), &used);
        in->start += used;
        if (u == WS_UNIT_NONE)
            continue;
        if (u == WS_UNIT_ERROR) {
            ws_shut(c, 1002, REASON_WS_PROTOCOL, d->error);
            return false;
        }
        const struct buf *payload = u == WS_UNIT_MESSAGE ? &d->msg : &d->ctl;
        int op = u == WS_UNIT_MESSAGE ? d->msg_opcode : d->ctl_opcode;
        struct proxy_verdict v;
        memset(&v, 0, sizeof(v));
        char empty[1] = "";
        int rc = h->ws_message(h->ctx, c->fwd.route, &ws->state, from_client, op,
                               payload->data ? payload->data : empty, payload->len, &v);
        if (rc != 0 && v.reason) {
            ws_shut(c, 1008, v.reason, v.message);
            return false;
        }
        if (rc == PROXY_WS_REWRITTEN)
            ws_dir_rewrite(d, u);
        size_t before = out->len;
        ws_dir_release(d, u, out);
        *metric += out->len - before;
    }
    return true;
}

static bool step_relay(struct conn *c)
{
    if (c->ws) {
        size_t up = c->uout.len, down = c->cout.len;
        if (!ws_pump(c, true, &c->px->metrics.bytes_to_upstreams) ||
            !ws_pump(c, false, &c->px->metrics.bytes_to_clients))
            return true;
        bool progress = c->uout.len != up || c->cout.len != down;
        bool cli_done = c->cli.eof && iobuf_len(&c->cin) == 0 && c->uout.len == 0;
        bool up_done = c->up.eof && iobuf_len(&c->uin) == 0 && c->cout.len == 0;
        if (cli_done || up_done) {
            c->xs_complete = up_done;
            conn_request_finish(c);
            conn_close(c);
            return true;
        }
        return progress;
    }
    c->c2u_ok = iobuf_len(&c->cin);
    c->u2c_ok = iobuf_len(&c->uin);
    if ((c->cli.eof && c->c2u_ok == 0) || (c->up.eof && c->u2c_ok == 0 && c->cout.len == 0)) {
        c->xs_complete = c->up.eof && c->u2c_ok == 0 && c->cout.len == 0;
        conn_request_finish(c);
        conn_close(c);
        return true;
    }
    return false;
}

static bool step(struct conn *c)
{
    switch (c->state) {
    case CONN_HEAD:
        return step_head(c);
    case CONN_TLS_ACCEPT:
        return step_tls_accept(c);
    case CONN_RESOLVE:
    case CONN_CONNECT:
    case CONN_UP_TLS: {
        enum conn_state before = c->state;
        upstream_step(c);
        return c->dead || c->state != before;
    }
    case CONN_EXCHANGE:
        return step_exchange(c);
    case CONN_RELAY:
        return step_relay(c);
    case CONN_CLOSING:
        return step_closing(c);
    case CONN_BODY:
        return step_body(c);
    }
    return false;
}

static bool client_reads_wanted(const struct conn *c)
{
    switch (c->state) {
    case CONN_HEAD:
        return true;
    case CONN_RESOLVE:
    case CONN_CONNECT:
    case CONN_UP_TLS:
    case CONN_EXCHANGE:
    case CONN_RELAY:
    case CONN_BODY:
        return true;
    default:
        return false;
    }
}

/*
 * A head waiting in out and a small body cleared behind it leave in one
 * write (one TLS record, one segment) instead of two.
 */
static void coalesce(struct buf *out, size_t off, struct iobuf *src, size_t *ok, uint64_t *metric)
{
    if (!out->len || off || !*ok || out->len + *ok > CONN_BUF_SIZE)
        return;
    buf_append(out, src->data + src->start, *ok);
    src->start += *ok;
    *metric += *ok;
    *ok = 0;
}

void conn_run(struct conn *c)
{
    struct proxy *px = c->px;
    uint64_t now = (uint64_t)clock_mono_ms();
    for (int turn = 0; turn < CONN_TURNS; turn++) {
        bool progress = false, moved = false;
        if (c->dead)
            return;
        /* toward the client */
        if (!ep_handshaking(&c->cli) && (c->cout.len || c->u2c_ok)) {
            coalesce(&c->cout, c->cout_off, &c->uin, &c->u2c_ok, &px->metrics.bytes_to_clients);
            moved |= flush_side(c, &c->cli, &c->cout, &c->cout_off, &c->uin, &c->u2c_ok,
                                &c->bytes_out, &px->metrics.bytes_to_clients);
            if (c->dead)
                return;
        }
        /* toward the upstream */
        if ((c->state == CONN_EXCHANGE || c->state == CONN_RELAY) && (c->uout.len || c->c2u_ok)) {
            uint64_t sink = 0;
            coalesce(&c->uout, c->uout_off, &c->cin, &c->c2u_ok, &px->metrics.bytes_to_upstreams);
            moved |= flush_side(c, &c->up, &c->uout, &c->uout_off, &c->cin, &c->c2u_ok, &sink,
                                &px->metrics.bytes_to_upstreams);
            if (c->dead)
                return;
        }
        if (client_reads_wanted(c) && !ep_handshaking(&c->cli)) {
            size_t max = c->state == CONN_HEAD ? CONN_HEAD_MAX : CONN_BUF_SIZE;
            uint64_t before = c->bytes_in;
            moved |= read_side(c, &c->cli, &c->cin, max, &c->bytes_in);
            px->metrics.bytes_from_clients += c->bytes_in - before;
        }
        if (c->state == CONN_EXCHANGE || c->state == CONN_RELAY) {
            uint64_t got = 0;
            moved |= read_side(
                c, &c->up, &c->uin,
                c->resp_head_done || c->state == CONN_RELAY ? CONN_BODY_BUF : CONN_HEAD_MAX, &got);
            px->metrics.bytes_from_upstreams += got;
        } else if (c->up.fd >= 0 && c->up_ready && c->up.rd && c->state == CONN_HEAD) {
            /* A kept upstream that speaks or closes between requests is not reusable. */
            char probe;
            ssize_t r = recv(c->up.fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
            if (r >= 0 || (errno != EAGAIN && errno != EINTR))
                pool_drop(c);
        }
        progress = moved;
        progress |= step(c);
        if (c->dead)
            return;
        if (moved && (c->state == CONN_EXCHANGE || c->state == CONN_RELAY || c->state == CONN_BODY))
            c->deadline_ms = now + (c->cfg ? c->cfg : px->cfg)->timeouts.io_ms;
        if (!progress)
            break;
        if (turn == CONN_TURNS - 1 && !c->in_ready) {
            c->in_ready = true;
            c->ready_next = px->ready;
            px->ready = c;
        }
    }
    /* Empty buffers go back after every turn: idle connections and quiet streams stay
     * small. (A half-parsed head is never empty; parsed heads are not read again.) */
    iobuf_release_if_empty(&c->cin);
    iobuf_release_if_empty(&c->uin);
}

void conn_timeout(struct conn *c, uint64_t now)
{
    if (c->dead || !c->deadline_ms || now < c->deadline_ms)
        return;
    switch (c->state) {
    case CONN_HEAD:
        if (iobuf_len(&c->cin) == 0 && !c->cfg) {
            conn_close(c);
            return;
        }
        snprintf(c->log.method, sizeof(c->log.method), "-");
        c->close_after = true;
        conn_refuse(c, 408, REASON_HEADER_TIMEOUT, "the request head did not arrive in time");
        c->cin.start = c->cin.end;
        break;
    case CONN_RESOLVE:
    case CONN_CONNECT:
    case CONN_UP_TLS:
        conn_refuse(c, 504, REASON_UPSTREAM_TIMEOUT, "the upstream did not answer in time");
        break;
    case CONN_BODY:
        conn_refuse(c, 408, REASON_BODY_TIMEOUT, "the request body did not arrive in time");
        c->cin.start = c->cin.end;
        break;
    case CONN_EXCHANGE:
        if (!c->resp_started) {
            conn_refuse(c, 504, REASON_UPSTREAM_TIMEOUT, "the upstream did not answer in time");
            break;
        }
        conn_request_finish(c);
        conn_close(c);
        return;
    default:
        conn_close(c);
        return;
    }
    conn_run(c);
}
