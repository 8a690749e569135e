/* hooks — see hooks.h. */
#include "sidecar/hooks.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sidecar/logjson.h"
#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_hook.h"
#include "sidecar/meter/meter_hook.h"

struct hooks {
    struct proxy *px;
    struct meter_hook *meter;
    struct dlp_engine *dlp;
    struct dlp_recent *recent; /* pieces of secrets in recent requests, per route */
    struct dlp_engine *tokens; /* the real tokens only: taken out of what comes back */
};

/* Per-exchange state of every check. */
struct hooks_exchange {
    struct meter_exchange *meter;
    struct dlp_response *inbound;
    struct dlp_echo_response *echo;
};

/* A route whose requests carry a token the sidecar injects: what comes back is filtered. */
static bool injects_token(const struct hooks *h, const struct route *r)
{
    return h->tokens && r && r->auth.kind != AUTH_NONE;
}

static unsigned hooks_wants(void *ctx, const struct proxy_request_view *v, size_t *body_limit)
{
    struct hooks *h = ctx;
    unsigned w = meter_hook_wants(v);
    if (v->route && v->route->dlp.outbound && h->dlp)
        w |= PROXY_WANT_REQUEST_BODY;
    if (v->route && v->route->dlp.inbound && h->dlp)
        w |= PROXY_WANT_RESPONSE;
    if (v->route && (v->route->dlp.outbound || v->route->dlp.inbound) && h->dlp &&
        v->req->upgrade_websocket)
        w |= PROXY_WANT_WS_MESSAGES;
    if (injects_token(h, v->route))
        w |= PROXY_WANT_RESPONSE | PROXY_WANT_RESPONSE_FILTER |
             (v->req->upgrade_websocket ? PROXY_WANT_WS_MESSAGES : 0);
    if (w & (PROXY_WANT_REQUEST_BODY | PROXY_WANT_WS_MESSAGES))
        *body_limit = h->px->cfg->scan_limit; /* a WebSocket message too */
    return w;
}

/* Headers the sidecar strips or replaces before forwarding are not the agent's to leak. */
static bool stripped_header(const struct route *r, const struct http_header *hd)
{
    return http_slice_eq_ci(hd->name, "Authorization") ||
           http_slice_eq_ci(hd->name, "Proxy-Authorization") ||
           (r->auth.kind == AUTH_HEADER && r->auth.header &&
            http_slice_eq_ci(hd->name, r->auth.header));
}

/*
 * Outbound DLP over the whole request: refuses (out), passes, or hands back
 * a redacted body. A match the policy would redact in the request head is
 * refused: only bodies can be replaced.
 */
static void hooks_outbound_dlp(struct hooks *h, const struct proxy_request_view *v,
                               const char *body, size_t len, struct buf *replacement,
                               struct proxy_verdict *out)
{
    const struct http_request *req = v->req;
    struct http_header *kept = xcalloc(req->n_headers + 1, sizeof(*kept));
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers; i++)
        if (!stripped_header(v->route, &req->headers[i]))
            kept[n++] = req->headers[i];
    struct dlp_request dr = {v->host, req->path.ptr, req->path.len, kept, n, NULL, body, len};
    struct dlp_redacted red;
    memset(&red, 0, sizeof(red));
    struct dlp_verdict verdict;
    memset(&verdict, 0, sizeof(verdict));
    struct dlp_result first;
    dlp_result_init(&first);
    if (dlp_check_request(h->dlp, &v->route->dlp, &dr, &red, &verdict, &first) < 0) {
        /* A request that could not be checked does not leave. */
        verdict.action = DLP_REFUSE;
        verdict.status = 500;
        verdict.reason = REASON_INTERNAL;
        snprintf(verdict.message, sizeof(verdict.message),
                 "outbound DLP could not check this request");
    } else if (verdict.action == DLP_REDACT && !red.body_changed && !red.target && !red.n_headers) {
        verdict.action = DLP_REFUSE;
        verdict.status = 403;
        verdict.reason = DLP_REASON_REDACT_FAILED;
    } else if (verdict.action == DLP_REDACT && (red.target || red.n_headers)) {
        verdict.action = DLP_REFUSE;
        verdict.status = 403;
        verdict.reason = DLP_REASON_REDACT_FAILED;
        size_t m = strlen(verdict.message);
        snprintf(verdict.message + m, sizeof(verdict.message) - m,
                 "; only a body can be redacted, this is in the request head");
    }
    if (verdict.action != DLP_REFUSE)
        dlp_hook_pieces(h->recent, v->route, &first, &verdict);
    dlp_result_free(&first);
    if (verdict.action == DLP_REFUSE) {
        out->status = verdict.status ? verdict.status : 403;
        out->reason = verdict.reason ? verdict.reason : DLP_REASON_BLOCKED;
        snprintf(out->message, sizeof(out->message), "%s", verdict.message);
    } else if (verdict.action == DLP_REDACT && red.body_changed) {
        buf_append(replacement, red.body.data, red.body.len);
        log_info("outbound secrets redacted", "host", v->host, "what", verdict.message, NULL);
    }
    dlp_redacted_free(&red);
    free(kept);
}

/* Longest request body excerpt in a full log. */
#define LOG_BODY_MAX 2048

/*
 * Full logging: an excerpt of the body as forwarded, through the DLP
 * redactor; when a match survives redaction the excerpt is withheld.
 */
static void log_body(struct hooks *h, const struct proxy_request_view *v, const char *body,
                     size_t len)
{
    if (h->px->cfg->log != CONFIG_LOG_FULL || !len || !h->dlp)
        return;
    const struct http_request *req = v->req;
    const struct http_header *ce =
        http_header_find(req->headers, req->n_headers, "Content-Encoding");
    char *text = NULL;
    if (ce && !http_slice_eq_ci(ce->value, "identity")) {
        text = xasprintf("(%zu bytes, content-encoded)", len);
    } else {
        struct dlp_request dr = {v->host, "/", 1, req->headers, req->n_headers, NULL, body, len};
        struct dlp_redacted red;
        memset(&red, 0, sizeof(red));
        const char *p = body;
        size_t n = len;
        int rrc = dlp_redact_request(h->dlp, DLP_OUT_DEFAULT, &dr, &red);
        if (rrc == 0 && red.body_changed) {
            p = red.body.data;
            n = red.body.len;
        }
        struct dlp_result res;
        dlp_result_init(&res);
        struct dlp_request again = dr;
        again.headers = NULL;
        again.n_headers = 0;
        again.body = p;
        again.body_len = n;
        int src = dlp_scan_request(h->dlp, DLP_OUT_DEFAULT, &again, &res);
        if (rrc < 0 || src < 0 || res.n) {
            text = xasprintf("(withheld: %zu bytes the redactor could not clean)", len);
        } else {
            size_t m = n < LOG_BODY_MAX ? n : LOG_BODY_MAX;
            text = xmalloc(m + 4);
            for (size_t i = 0; i < m; i++)
                text[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.';
            memcpy(text + m, n > m ? "..." : "", n > m ? 4 : 1);
        }
        dlp_result_free(&res);
        dlp_redacted_free(&red);
    }
    logjson_event(h->px, "request_body", "host", v->host, "body", text);
    free(text);
}

static int hooks_request_body(void *ctx, const struct proxy_request_view *v, void **xs,
                              const char *body, size_t len, struct buf *replacement,
                              struct proxy_verdict *out)
{
    struct hooks *h = ctx;
    if (v->route && v->route->dlp.outbound && h->dlp) {
        hooks_outbound_dlp(h, v, body, len, replacement, out);
        if (out->reason)
            return 0; /* refused for a leak: nothing is reserved */
        if (replacement->len) {
            body = replacement->data;
            len = replacement->len;
        }
    }
    struct meter_exchange *mx = NULL;
    meter_hook_admit(h->meter, h->px->cfg, v, body, len, &mx, out);
    if (!out->reason)
        log_body(h, v, body, len);
    if (mx) {
        struct hooks_exchange *x = xcalloc(1, sizeof(*x));
        x->meter = mx;
        *xs = x;
    }
    return 0;
}

static int hooks_response_head(void *ctx, void **xs, const struct route *route,
                               struct http_response *resp, struct proxy_verdict *out)
{
    struct hooks *h = ctx;
    struct hooks_exchange *x = *xs;
    struct dlp_response *inbound = NULL;
    struct dlp_echo_response *echo = NULL;
    /* the meter and the injection scan read the head as the upstream sent it */
    if (x && x->meter)
        meter_hook_response_head(x->meter, resp);
    if (dlp_response_start(h->dlp, route, resp, &inbound, out))
        return 1;
    if (injects_token(h, route) && dlp_echo_start(h->tokens, route, resp, &echo, out)) {
        dlp_response_free(inbound);
        return 1;
    }
    if ((inbound || echo) && !x)
        x = *xs = xcalloc(1, sizeof(*x));
    if (x) {
        x->inbound = inbound;
        x->echo = echo;
    }
    return 0;
}

static int hooks_response_filter(void *ctx, void *xs, const char *p, size_t n, bool last,
                                 struct buf *out)
{
    (void)ctx;
    struct hooks_exchange *x = xs;
    return dlp_echo_body(x ? x->echo : NULL, p, n, last, out);
}

static int hooks_response_data(void *ctx, void *xs, const char *p, size_t n)
{
    (void)ctx;
    struct hooks_exchange *x = xs;
    if (!x)
        return 0;
    if (dlp_response_data(x->inbound, p, n))
        return 1; /* an injection the route blocks: nothing more of it is metered or sent */
    if (x->meter)
        meter_hook_response_data(x->meter, p, n);
    return 0;
}

static void hooks_exchange_end(void *ctx, void *xs, bool complete)
{
    struct hooks *h = ctx;
    struct hooks_exchange *x = xs;
    if (!x)
        return;
    if (x->meter)
        meter_hook_end(h->meter, h->px->cfg, x->meter, complete);
    dlp_response_free(x->inbound);
    dlp_echo_response_free(x->echo);
    free(x);
}

static int hooks_ws_message(void *ctx, const struct route *route, void **ws, bool from_client,
                            int opcode, char *p, size_t n, struct proxy_verdict *out)
{
    struct hooks *h = ctx;
    (void)opcode; /* text, binary and control payloads are all scanned as bytes */
    int rc = dlp_ws_message(h->dlp, route, (struct dlp_ws **)ws, from_client, p, n, out);
    if (rc == 0 && !from_client && injects_token(h, route) && dlp_echo_ws(h->tokens, route, p, n))
        return PROXY_WS_REWRITTEN;
    return rc;
}

static void hooks_ws_end(void *ctx, void *ws)
{
    (void)ctx;
    dlp_ws_free(ws);
}

/* Every value the agent must not send: the real tokens, the canary and the placeholders. */
static int build_dlp(struct hooks *h, const struct config *cfg, const struct config_tokens *tokens,
                     struct bottle_err *err)
{
    struct strv secrets = STRV_INIT;
    for (size_t i = 0; tokens && i < tokens->len; i++)
        if (tokens->items[i].value && tokens->items[i].value[0])
            strv_push(&secrets, tokens->items[i].value);
    for (size_t i = 0; i < cfg->n_secrets; i++)
        strv_push(&secrets, cfg->secrets[i]);
    struct dlp_config dc;
    memset(&dc, 0, sizeof(dc));
    h->dlp = dlp_engine_new(&dc, &secrets, err);
    h->recent = dlp_recent_new(0);
    struct strv values = STRV_INIT;
    for (size_t i = 0; tokens && i < tokens->len; i++)
        if (tokens->items[i].value && tokens->items[i].value[0])
            strv_push(&values, tokens->items[i].value);
    if (h->dlp && values.len) {
        h->tokens = dlp_engine_new(&dc, &values, err);
        if (!h->tokens) {
            dlp_engine_free(h->dlp);
            h->dlp = NULL;
        }
    }
    for (size_t i = 0; i < values.len; i++)
        memset(values.items[i], 0, strlen(values.items[i]));
    strv_free(&values);
    for (size_t i = 0; i < secrets.len; i++)
        memset(secrets.items[i], 0, strlen(secrets.items[i]));
    strv_free(&secrets);
    return h->dlp ? 0 : -(err->code ? err->code : EINVAL);
}

int hooks_install(struct proxy *px, const struct config *cfg, const struct config_tokens *tokens,
                  struct hooks **out, struct bottle_err *err)
{
    struct hooks *h = xcalloc(1, sizeof(*h));
    h->px = px;
    int rc = build_dlp(h, cfg, tokens, err);
    if (rc == 0)
        rc = meter_hook_open(cfg, &h->meter, err);
    if (rc < 0) {
        hooks_free(h);
        *out = NULL;
        return rc;
    }
    px->hooks.wants = hooks_wants;
    px->hooks.request_body = hooks_request_body;
    px->hooks.response_head = hooks_response_head;
    px->hooks.response_data = hooks_response_data;
    px->hooks.response_filter = hooks_response_filter;
    px->hooks.exchange_end = hooks_exchange_end;
    px->hooks.ws_message = hooks_ws_message;
    px->hooks.ws_end = hooks_ws_end;
    px->hooks.ctx = h;
    *out = h;
    return 0;
}

void hooks_free(struct hooks *h)
{
    if (!h)
        return;
    meter_hook_close(h->meter);
    dlp_engine_free(h->dlp);
    dlp_engine_free(h->tokens);
    dlp_recent_free(h->recent);
    free(h);
}
