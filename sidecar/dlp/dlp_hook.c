/* dlp_hook — see dlp_hook.h. */
#include "sidecar/dlp/dlp_hook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "sidecar/decoder.h"

/* Brotli state a scanned response may use, like the meter's. */
#define RESPONSE_BR_MEM_MAX (24 * 1024 * 1024)
/* Warnings logged per response or WebSocket direction; more are counted. */
#define WARN_MAX 8

struct dlp_response {
    const struct route *route;
    struct dlp_stream *stream;
    struct decoder *dec;
    struct dlp_result res;
    unsigned warned;
    bool blocked;
};

struct dlp_ws {
    struct dlp_stream *out; /* the client's messages: outbound detectors */
    struct dlp_stream *in;  /* the server's: inbound */
    unsigned warned;
};

void dlp_hook_pieces(struct dlp_recent *recent, const struct route *route,
                     const struct dlp_result *res, struct dlp_verdict *v)
{
    if (!recent || !route || !res->n_pieces)
        return;
    char key[280];
    snprintf(key, sizeof(key), "%s:%u", route->host, (unsigned)route->port);
    if (dlp_recent_check(recent, key, res, (uint64_t)clock_mono_ms(), v))
        log_warn("DLP pieces across requests", "host", route->host, "what", v->message, NULL);
}

static void warn_match(const struct route *route, const struct dlp_match *m, unsigned *warned)
{
    if (++*warned > WARN_MAX)
        return;
    char what[160];
    snprintf(what, sizeof(what), "%s found in %s", m->rule, m->location);
    log_warn("DLP warning", "host", route->host, "what", what, NULL);
}

static void refuse(struct proxy_verdict *v, int status, const char *reason, const char *msg)
{
    v->status = status;
    v->reason = reason;
    snprintf(v->message, sizeof(v->message), "%s", msg);
}

/*
 * Injection matches in res: with the route's block, fills v and returns 1;
 * otherwise logs them as warnings.
 */
static int judge_inbound(const struct route *route, const struct dlp_result *res, unsigned *warned,
                         struct proxy_verdict *v)
{
    for (size_t i = 0; i < res->n; i++) {
        const struct dlp_match *m = &res->matches[i];
        if (route->dlp.inbound_block) {
            char msg[200];
            snprintf(msg, sizeof(msg), "%s found in %s", m->rule, m->location);
            refuse(v, 502, DLP_REASON_INJECTION, msg);
            return 1;
        }
        warn_match(route, m, warned);
    }
    return 0;
}

static int response_sink(void *arg, const unsigned char *p, size_t n)
{
    struct dlp_response *r = arg;
    dlp_result_reset(&r->res);
    if (dlp_stream_feed(r->stream, (const char *)p, n, &r->res) < 0) {
        r->blocked = r->route->dlp.inbound_block; /* not scanned: blocks only when told to */
        return 1;
    }
    struct proxy_verdict v;
    memset(&v, 0, sizeof(v));
    if (judge_inbound(r->route, &r->res, &r->warned, &v)) {
        log_warn("response cut", "host", r->route->host, "reason", v.reason, "what", v.message,
                 NULL);
        r->blocked = true;
        return 1;
    }
    return 0;
}

int dlp_response_start(const struct dlp_engine *e, const struct route *route,
                       const struct http_response *resp, struct dlp_response **out,
                       struct proxy_verdict *v)
{
    *out = NULL;
    if (!e || !route || !route->dlp.inbound)
        return 0;
    struct dlp_result res;
    dlp_result_init(&res);
    for (size_t i = 0; i < resp->n_headers; i++) {
        const struct http_header *h = &resp->headers[i];
        char loc[64];
        snprintf(loc, sizeof(loc), "response-header:%.*s",
                 (int)(h->name.len < 40 ? h->name.len : 40), h->name.ptr);
        dlp_scan_inbound(e, route->dlp.inbound, loc, h->value.ptr, h->value.len, &res);
    }
    unsigned warned = 0;
    int rc = judge_inbound(route, &res, &warned, v);
    dlp_result_free(&res);
    if (rc)
        return 1;
    const struct http_header *ce =
        http_header_find(resp->headers, resp->n_headers, "Content-Encoding");
    enum content_coding coding =
        ce ? content_coding_for(ce->value.ptr, ce->value.len) : CODING_IDENTITY;
    struct dlp_response *r = xcalloc(1, sizeof(*r));
    r->route = route;
    r->warned = warned;
    dlp_result_init(&r->res);
    r->dec = decoder_new(coding, RESPONSE_BR_MEM_MAX, true, response_sink, r);
    if (!r->dec) {
        dlp_response_free(r);
        if (route->dlp.inbound_block) {
            refuse(v, 502, DLP_REASON_UNDECODABLE,
                   "the response's content encoding cannot be decoded to be scanned");
            return 1;
        }
        log_warn("response not scanned", "host", route->host, "why",
                 "its content encoding cannot be decoded", NULL);
        return 0;
    }
    r->stream = dlp_stream_new(e, DLP_INBOUND, route->dlp.inbound, "response");
    *out = r;
    return 0;
}

int dlp_response_data(struct dlp_response *r, const char *p, size_t n)
{
    if (!r || !r->dec)
        return 0;
    if (r->blocked)
        return 1;
    if (decoder_feed(r->dec, p, n) >= 0)
        return r->blocked ? 1 : 0;
    const char *why = decoder_error(r->dec);
    decoder_free(r->dec);
    r->dec = NULL;
    if (r->route->dlp.inbound_block) {
        log_warn("response cut", "host", r->route->host, "reason", DLP_REASON_UNDECODABLE, "why",
                 why, NULL);
        r->blocked = true;
        return 1;
    }
    log_warn("response scan stopped", "host", r->route->host, "why", why, NULL);
    return 0;
}

void dlp_response_free(struct dlp_response *r)
{
    if (!r)
        return;
    decoder_free(r->dec);
    dlp_stream_free(r->stream);
    dlp_result_free(&r->res);
    free(r);
}

/* An outbound match in a client's message: every policy closes the WebSocket. */
static int judge_outbound(const struct route *route, const struct dlp_result *res, unsigned *warned,
                          struct proxy_verdict *v)
{
    struct dlp_verdict dv;
    memset(&dv, 0, sizeof(dv));
    dlp_verdict_for(res, route->dlp.on_match, &dv);
    if (dv.action == DLP_PASS) {
        for (size_t i = 0; i < res->n; i++)
            warn_match(route, &res->matches[i], warned);
        return 0;
    }
    if (dv.action == DLP_REDACT) {
        dv.reason = DLP_REASON_BLOCKED;
        size_t m = strlen(dv.message);
        snprintf(dv.message + m, sizeof(dv.message) - m,
                 "; a WebSocket message cannot be redacted");
    }
    refuse(v, dv.status ? dv.status : 403, dv.reason ? dv.reason : DLP_REASON_BLOCKED, dv.message);
    return 1;
}

int dlp_ws_message(const struct dlp_engine *e, const struct route *route, struct dlp_ws **wsp,
                   bool from_client, const char *p, size_t n, struct proxy_verdict *v)
{
    if (!e || !route)
        return 0;
    unsigned bits = from_client ? route->dlp.outbound : route->dlp.inbound;
    if (!bits)
        return 0;
    struct dlp_ws *ws = *wsp;
    if (!ws)
        ws = *wsp = xcalloc(1, sizeof(*ws));
    struct dlp_stream **s = from_client ? &ws->out : &ws->in;
    if (!*s)
        *s = dlp_stream_new(e, from_client ? DLP_OUTBOUND : DLP_INBOUND, bits,
                            from_client ? "ws:client" : "ws:server");
    struct dlp_result res;
    dlp_result_init(&res);
    int rc = dlp_stream_feed(*s, p, n, &res);
    if (rc < 0)
        refuse(v, 500, DLP_REASON_UNDECODABLE, "the message could not be scanned");
    else if (from_client)
        rc = judge_outbound(route, &res, &ws->warned, v);
    else
        rc = judge_inbound(route, &res, &ws->warned, v);
    dlp_result_free(&res);
    return rc < 0 ? 1 : rc;
}

void dlp_ws_free(struct dlp_ws *ws)
{
    if (!ws)
        return;
    dlp_stream_free(ws->out);
    dlp_stream_free(ws->in);
    free(ws);
}

/* ---- tokens echoed back ------------------------------------------------------ */

/* Brotli state a redacted response may use. */
#define ECHO_BR_MEM_MAX (24 * 1024 * 1024)

struct dlp_echo_response {
    const struct route *route;
    struct dlp_echo *echo;
    struct decoder *dec; /* a content-encoded body: decoded, then marked */
    struct buf *out;     /* where the decoder's sink writes during dlp_echo_body */
    struct strv owned;   /* header values the head now points at */
    size_t in_head;      /* variants marked in the head */
};

/* A copy of s with its token variants marked, kept in r; NULL when it has none. */
static const char *marked_copy(const struct dlp_engine *tokens, struct dlp_echo_response *r,
                               struct http_slice s)
{
    if (!s.len)
        return NULL;
    char *copy = xstrndup(s.ptr, s.len);
    size_t n = dlp_echo_redact(tokens, copy, s.len);
    if (!n) {
        free(copy);
        return NULL;
    }
    r->in_head += n;
    strv_push_owned(&r->owned, copy);
    return copy;
}

static void drop_header(struct http_response *resp, size_t i)
{
    memmove(&resp->headers[i], &resp->headers[i + 1],
            (resp->n_headers - i - 1) * sizeof(resp->headers[0]));
    resp->n_headers--;
}

static int echo_sink(void *arg, const unsigned char *p, size_t n)
{
    struct dlp_echo_response *r = arg;
    dlp_echo_feed(r->echo, (const char *)p, n, false, r->out);
    return 0;
}

int dlp_echo_start(const struct dlp_engine *tokens, const struct route *route,
                   struct http_response *resp, struct dlp_echo_response **out,
                   struct proxy_verdict *v)
{
    *out = NULL;
    if (!tokens || !route)
        return 0;
    struct dlp_echo_response *r = xcalloc(1, sizeof(*r));
    r->route = route;
    const char *p = marked_copy(tokens, r, resp->reason_phrase);
    if (p)
        resp->reason_phrase.ptr = p;
    for (size_t i = 0; i < resp->n_headers;) {
        struct http_header *h = &resp->headers[i];
        char *name = xstrndup(h->name.ptr, h->name.len);
        size_t in_name = dlp_echo_redact(tokens, name, h->name.len);
        free(name);
        if (in_name) { /* a mark is no header name: the field goes */
            r->in_head += in_name;
            drop_header(resp, i);
            continue;
        }
        if ((p = marked_copy(tokens, r, h->value)) != NULL)
            h->value.ptr = p;
        i++;
    }
    if (r->in_head)
        log_warn("token echoed back", "host", route->host, "what",
                 "a token the sidecar injected was in the response head; redacted", NULL);
    if (resp->body == HTTP_BODY_NONE) { /* kept only while the head points into it */
        if (r->in_head)
            *out = r;
        else
            dlp_echo_response_free(r);
        return 0;
    }
    const struct http_header *ce =
        http_header_find(resp->headers, resp->n_headers, "Content-Encoding");
    enum content_coding coding =
        ce ? content_coding_for(ce->value.ptr, ce->value.len) : CODING_IDENTITY;
    if (coding == CODING_UNSUPPORTED) {
        dlp_echo_response_free(r);
        refuse(v, 502, DLP_REASON_UNREDACTABLE,
               "the response's content encoding cannot be decoded, so a token echoed in it "
               "could not be redacted");
        return 1;
    }
    if (coding != CODING_IDENTITY) {
        r->dec = decoder_new(coding, ECHO_BR_MEM_MAX, true, echo_sink, r);
        if (!r->dec) {
            dlp_echo_response_free(r);
            refuse(v, 502, DLP_REASON_UNREDACTABLE,
                   "the response's content decoder could not start, so it could not be redacted");
            return 1;
        }
        /* the client gets the decoded body: its coding and length no longer apply */
        for (size_t i = 0; i < resp->n_headers;)
            if (http_slice_eq_ci(resp->headers[i].name, "Content-Encoding") ||
                http_slice_eq_ci(resp->headers[i].name, "Content-Length"))
                drop_header(resp, i);
            else
                i++;
    }
    r->echo = dlp_echo_new(tokens);
    *out = r;
    return 0;
}

int dlp_echo_body(struct dlp_echo_response *r, const char *p, size_t n, bool last, struct buf *out)
{
    if (!r || !r->echo) {
        buf_append(out, p, n);
        return 0;
    }
    if (r->dec) {
        r->out = out;
        int rc = n ? decoder_feed(r->dec, p, n) : 0;
        r->out = NULL;
        if (rc < 0) {
            log_warn("response cut", "host", r->route->host, "reason", DLP_REASON_UNREDACTABLE,
                     "why", decoder_error(r->dec), NULL);
            return 1;
        }
        if (last)
            dlp_echo_feed(r->echo, NULL, 0, true, out);
        return 0;
    }
    dlp_echo_feed(r->echo, p, n, last, out);
    return 0;
}

void dlp_echo_response_free(struct dlp_echo_response *r)
{
    if (!r)
        return;
    uint64_t n = dlp_echo_count(r->echo);
    if (n) {
        char what[96];
        snprintf(what, sizeof(what), "%llu tokens the sidecar injected redacted in the body",
                 (unsigned long long)n);
        log_warn("token echoed back", "host", r->route->host, "what", what, NULL);
    }
    decoder_free(r->dec);
    dlp_echo_free(r->echo);
    strv_free(&r->owned);
    free(r);
}

size_t dlp_echo_ws(const struct dlp_engine *tokens, const struct route *route, char *p, size_t n)
{
    size_t k = dlp_echo_redact(tokens, p, n);
    if (k)
        log_warn("token echoed back", "host", route ? route->host : "", "what",
                 "a token the sidecar injected was in a WebSocket message; redacted", NULL);
    return k;
}
