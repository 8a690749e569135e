/* logjson — log lines and refusal counters (see logjson.h). */
#include "sidecar/logjson.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"

static void add_str(struct buf *b, const char *key, const char *value)
{
    buf_printf(b, ",\"%s\":", key);
    if (!value) {
        buf_append_str(b, "null");
        return;
    }
    buf_append_char(b, '"');
    json_escape_append(b, value, strlen(value), 0);
    buf_append_char(b, '"');
}

static void begin_line(struct buf *b, const char *bottle)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    buf_reset(b);
    buf_printf(b, "{\"ts\":\"%s.%03ldZ\"", when, ts.tv_nsec / 1000000);
    add_str(b, "bottle", bottle);
}

static void end_line(struct buf *b)
{
    buf_append_str(b, "}\n");
    size_t off = 0;
    while (off < b->len) { /* stderr is a log pipe or file: one write per line */
        ssize_t w = write(STDERR_FILENO, b->data + off, b->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void logjson_request(struct conn *c)
{
    struct proxy *px = c->px;
    const struct config *cfg = c->cfg ? c->cfg : px->cfg;
    if (cfg->log == CONFIG_LOG_OFF)
        return;
    struct buf *b = &px->scratch;
    begin_line(b, cfg->bottle);
    buf_printf(b, ",\"conn\":%llu", (unsigned long long)c->id);
    add_str(b, "method", c->log.method);
    add_str(b, "host", c->log.host[0] ? c->log.host : NULL);
    add_str(b, "path", c->log.path[0] ? c->log.path : NULL);
    buf_printf(b, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%llu",
               c->log.status, (unsigned long long)(c->bytes_in - c->log.in0),
               (unsigned long long)(c->bytes_out - c->log.out0),
               (unsigned long long)((uint64_t)clock_mono_ms() - c->log.start_ms));
    add_str(b, "decision", c->log.decision ? c->log.decision : "refused");
    add_str(b, "reason", c->log.reason);
    if (cfg->log == CONFIG_LOG_FULL && c->log.headers.len) {
        buf_append_str(b, ",\"headers\":{");
        buf_append(b, c->log.headers.data, c->log.headers.len);
        buf_append_char(b, '}');
    }
    end_line(b);
    buf_reset(&c->log.headers);
}

static bool is_credential_header(struct http_slice name)
{
    static const char *const names[] = {"authorization", "proxy-authorization", "cookie",
                                        "x-api-key", "api-key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (http_slice_eq_ci(name, names[i]))
            return true;
    return false;
}

static bool holds_token(const struct proxy *px, struct http_slice v)
{
    for (size_t i = 0; px->tokens && i < px->tokens->len; i++) {
        const char *t = px->tokens->items[i].value;
        size_t n = strlen(t);
        if (n && n <= v.len && memmem(v.ptr, v.len, t, n))
            return true;
    }
    return false;
}

void logjson_capture(struct conn *c, const struct http_request *req)
{
    struct buf *b = &c->log.headers;
    buf_reset(b);
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (i)
            buf_append_char(b, ',');
        buf_append_char(b, '"');
        json_escape_append(b, h->name.ptr, h->name.len, 0);
        buf_append_str(b, "\":\"");
        if (is_credential_header(h->name) || holds_token(c->px, h->value))
            buf_append_str(b, "[redacted]");
        else
            json_escape_append(b, h->value.ptr, h->value.len, 0);
        buf_append_char(b, '"');
    }
}

void logjson_event(struct proxy *px, const char *event, const char *k1, const char *v1,
                   const char *k2, const char *v2)
{
    if (px->cfg && px->cfg->log == CONFIG_LOG_OFF)
        return;
    struct buf *b = &px->scratch;
    begin_line(b, px->cfg ? px->cfg->bottle : NULL);
    add_str(b, "event", event);
    if (k1)
        add_str(b, k1, v1);
    if (k2)
        add_str(b, k2, v2);
    end_line(b);
}

void logjson_count_refusal(struct proxy *px, const char *reason)
{
    struct proxy_metrics *m = &px->metrics;
    if (!reason)
        return;
    for (size_t i = 0; i < m->n_refusals; i++)
        if (strcmp(m->refusals[i].reason, reason) == 0) {
            m->refusals[i].count++;
            return;
        }
    if (m->n_refusals < PROXY_REASONS_MAX) {
        /* Reason codes are static strings (REASON_*, HTTP_ERR_*): keeping the pointer is safe. */
        m->refusals[m->n_refusals].reason = reason;
        m->refusals[m->n_refusals].count = 1;
        m->n_refusals++;
    }
}
