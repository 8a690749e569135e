/* respond — local answers and the end of an exchange (see respond.h). */
#include "sidecar/respond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"
#include "sidecar/logjson.h"
#include "sidecar/pool.h"

static void ws_relay_end(struct conn *c)
{
    struct ws_relay *ws = c->ws;
    if (!ws)
        return;
    c->ws = NULL;
    if (ws->state && c->px->hooks.ws_end)
        c->px->hooks.ws_end(c->px->hooks.ctx, ws->state);
    ws_dir_free(&ws->c2u);
    ws_dir_free(&ws->u2c);
    free(ws);
}

void conn_exchange_end(struct conn *c, bool complete)
{
    void *xs = c->xs;
    c->xs = NULL;
    if (xs && c->px->hooks.exchange_end)
        c->px->hooks.exchange_end(c->px->hooks.ctx, xs, complete);
    ws_relay_end(c);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

/* extra: header lines ("Name: value\r\n") the answer carries; "" for none. */
static void respond_with(struct conn *c, int status, const char *content_type, const char *extra,
                         const char *body, size_t len)
{
    buf_printf(&c->cout,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\n%s%s\r\n",
               status, status_text(status), content_type, len, extra,
               c->close_after ? "Connection: close\r\n" : "");
    if (!c->req_head_request)
        buf_append(&c->cout, body, len);
    c->log.status = status;
}

void conn_respond(struct conn *c, int status, const char *content_type, const char *body,
                  size_t len)
{
    respond_with(c, status, content_type, "", body, len);
}

/*
 * The sidecar's own fields (reason, message) plus an "error" object in the
 * shape Anthropic's and OpenAI's clients read, so an agent CLI shows the
 * user why it was refused instead of a bare status.
 */
static void refusal_body(struct buf *b, const char *reason, const char *message)
{
    buf_reset(b);
    buf_append_str(b, "{\"type\": \"error\", \"error\": {\"type\": \"");
    json_escape_append(b, reason, strlen(reason), 0);
    buf_append_str(b, "\", \"code\": \"");
    json_escape_append(b, reason, strlen(reason), 0);
    buf_append_str(b, "\", \"message\": \"bottle: ");
    json_escape_append(b, message, strlen(message), 0);
    buf_append_str(b, "\"}, \"reason\": \"");
    json_escape_append(b, reason, strlen(reason), 0);
    buf_append_str(b, "\", \"message\": \"");
    json_escape_append(b, message, strlen(message), 0);
    buf_append_str(b, "\"}\n");
}

static void refuse_with(struct conn *c, int status, const char *reason, const char *message,
                        const char *extra)
{
    struct proxy *px = c->px;
    /* A request whose body was not read, or a broken stream, cannot be followed by another. */
    if (!c->req_done || status == 400 || status >= 500 || c->req.error)
        c->close_after = true;
    if (c->resp_started) {
        /* Bytes of the real response already went out: all we can do is cut the stream. */
        c->close_after = true;
        c->log.decision = "refused";
        c->log.reason = reason;
        logjson_count_refusal(px, reason);
        pool_drop(c);
        conn_request_finish(c);
        return;
    }
    struct buf *b = &px->scratch;
    refusal_body(b, reason, message);
    c->req_head_request = false;
    respond_with(c, status, "application/json", extra, b->data, b->len);
    c->log.decision = "refused";
    c->log.reason = reason;
    logjson_count_refusal(px, reason);
    if (c->up.fd >= 0 && (!c->up_ready || c->state != CONN_HEAD))
        pool_drop(c);
    conn_request_finish(c);
}

void conn_refuse(struct conn *c, int status, const char *reason, const char *message)
{
    refuse_with(c, status, reason, message, "");
}

void conn_refuse_proxy_auth(struct conn *c, const char *message)
{
    refuse_with(c, 407, REASON_PROXY_AUTH_REQUIRED, message,
                "Proxy-Authenticate: Basic realm=\"bottle\"\r\n");
}

/* Refused connections logged: the 1st, 10th, 100th... so a flood cannot flood the log too. */
static bool power_of_ten(uint64_t n)
{
    while (n >= 10 && n % 10 == 0)
        n /= 10;
    return n == 1;
}

void respond_connection_limit(struct proxy *px, int fd)
{
    char msg[200];
    snprintf(msg, sizeof(msg),
             "this bottle already has %u connections open to the sidecar, its limit "
             "(settings: sidecar.max_connections); close idle connections and try again",
             px->cfg->max_connections);
    struct buf *b = &px->scratch;
    refusal_body(b, REASON_TOO_MANY_CONNECTIONS, msg);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 503 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                     status_text(503), b->len);
    /* One attempt each, never waiting: a fresh socket's buffer takes this whole. */
    if (n > 0 && write(fd, head, (size_t)n) == n)
        (void)!write(fd, b->data, b->len);
    /* What the client already sent is read and dropped: closing on unread bytes would
     * send a reset, which may reach the client before it has read the answer. */
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 4 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
    px->metrics.connections_refused++;
    logjson_count_refusal(px, REASON_TOO_MANY_CONNECTIONS);
    if (power_of_ten(px->metrics.connections_refused)) {
        char limit[24], refused[24];
        snprintf(limit, sizeof(limit), "%u", px->cfg->max_connections);
        snprintf(refused, sizeof(refused), "%llu",
                 (unsigned long long)px->metrics.connections_refused);
        logjson_event(px, "connection_limit", "max_connections", limit, "refused_total", refused);
    }
}

void conn_request_finish(struct conn *c)
{
    struct proxy *px = c->px;
    if (c->log.method[0]) {
        logjson_request(c);
        px->metrics.requests_total++;
        if (c->log.decision && strcmp(c->log.decision, "refused") == 0)
            px->metrics.requests_refused++;
        else
            px->metrics.requests_allowed++;
    }
    conn_exchange_end(c, c->xs_complete);
    c->xs_complete = c->resp_bad = false;
    if (c->want) {
        c->want = 0;
        buf_free(&c->hold);
        buf_free(&c->body);
    }
    memset(c->log.method, 0, sizeof(c->log.method));
    c->log.decision = NULL;
    c->log.reason = NULL;
    c->log.status = 0;
    config_unref(c->cfg);
    c->cfg = NULL;
    c->req_done = c->resp_done = c->resp_head_done = c->resp_started = false;
    c->req_upgrade = c->req_head_request = false;
    c->req_body = c->resp_body = HTTP_BODY_NONE;
    c->c2u_ok = c->u2c_ok = 0;
    http_request_reset(&c->req);
    http_response_reset(&c->resp);
    if (c->close_after || px->draining) {
        c->close_after = true;
        c->state = CONN_CLOSING;
        c->deadline_ms = (uint64_t)clock_mono_ms() + 5000;
        if (c->up.fd >= 0)
            pool_release(c);
    } else {
        c->state = CONN_HEAD;
        c->deadline_ms = (uint64_t)clock_mono_ms() + px->cfg->timeouts.idle_ms;
    }
}
