/*
 * dlp_redact — the redact policy: every value a detector can point at
 * (token patterns, known secrets and their encodings) is replaced by
 * "[REDACTED:<rule>]" in the representation it was found in, and that
 * representation is encoded back (JSON string escapes, percent-encoding,
 * the content encoding). The caller re-scans the result; what redaction
 * cannot reach (the host, header names, fragments) makes the re-scan fail,
 * and the request is refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/json.h"
#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_base.h"
#include "sidecar/dlp/dlp_decode.h"

static int hit_cmp(const void *a, const void *b)
{
    const struct dlp_hit *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Appends p with its redactable matches replaced; returns how many were. */
static size_t redact_text(const struct dlp_engine *e, unsigned bits, const char *p, size_t n,
                          bool url, struct buf *out)
{
    struct dlp_hits h = {0};
    dlp_find_outbound(e, bits & (DLP_OUT_TOKEN_PATTERNS | DLP_OUT_KNOWN_SECRETS), p, n, &h);
    size_t done = 0, at = 0;
    if (h.n > 1)
        qsort(h.items, h.n, sizeof(*h.items), hit_cmp);
    for (size_t i = 0; i < h.n; i++) {
        const struct dlp_hit *x = &h.items[i];
        if (x->kind != DLP_KIND_PATTERN && x->kind != DLP_KIND_SECRET)
            continue;
        if (x->offset + x->length <= at) /* inside a match already replaced */
            continue;
        if (x->offset > at)
            buf_append(out, p + at, x->offset - at);
        buf_printf(out, url ? "%%5BREDACTED:%s%%5D" : DLP_REDACT_MARK_PREFIX "%s]", x->rule);
        at = x->offset + x->length;
        done++;
    }
    if (at < n)
        buf_append(out, p + at, n - at);
    dlp_hits_free(&h);
    return done;
}

/*
 * One URL component (path segment, query or form field): redacted as sent,
 * or, when only its decoded form holds a match, decoded, redacted and
 * percent-encoded again.
 */
static size_t redact_url_piece(const struct dlp_engine *e, unsigned bits, const char *p, size_t n,
                               bool form, struct buf *out)
{
    size_t mark = out->len;
    size_t done = redact_text(e, bits, p, n, true, out);
    if (done || (!memchr(p, '%', n) && !(form && memchr(p, '+', n))))
        return done;
    struct buf d = BUF_INIT, r = BUF_INIT;
    dlp_url_decode(p, n, form, &d);
    done = redact_text(e, bits, d.data ? d.data : "", d.len, false, &r);
    if (done) {
        out->len = mark;
        dlp_url_encode(r.data, r.len, out);
    }
    buf_free(&d);
    buf_free(&r);
    return done;
}

/* Splits at sep (and '=' when kv), redacting each piece. */
static size_t redact_url_pieces(const struct dlp_engine *e, unsigned bits, const char *p, size_t n,
                                char sep, bool form, struct buf *out)
{
    size_t done = 0;
    for (size_t i = 0; i <= n;) {
        size_t end = i;
        while (end < n && p[end] != sep && !(form && p[end] == '='))
            end++;
        done += redact_url_piece(e, bits, p + i, end - i, form, out);
        if (end < n)
            buf_append_char(out, p[end]);
        i = end + 1;
    }
    return done;
}

static size_t redact_target(const struct dlp_engine *e, unsigned bits, const char *t, size_t n,
                            struct buf *out)
{
    const char *q = memchr(t, '?', n);
    size_t plen = q ? (size_t)(q - t) : n;
    size_t done = redact_url_pieces(e, bits, t, plen, '/', false, out);
    if (q) {
        buf_append_char(out, '?');
        done += redact_url_pieces(e, bits, q + 1, n - plen - 1, '&', true, out);
    }
    return done;
}

/*
 * JSON: each string literal redacted as sent when it has no escapes, else
 * unescaped, redacted and escaped again. A literal with escapes is always
 * redacted through its unescaped value, which is what the scan read: a
 * value written plainly would otherwise be redacted and the same value
 * with an escape in it (`\u0074ok-...`) kept, failing the re-scan.
 */
static size_t redact_json(const struct dlp_engine *e, unsigned bits, const char *p, size_t n,
                          struct buf *out)
{
    size_t done = 0, from = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '"')
            continue;
        size_t start = i + 1, end = dlp_json_string_end(p, n, start), k = 0;
        buf_append(out, p + from, start - from);
        if (!memchr(p + start, '\\', end - start)) {
            k = redact_text(e, bits, p + start, end - start, false, out);
        } else {
            struct buf u = BUF_INIT, r = BUF_INIT;
            dlp_json_unescape(p + start, end - start, &u);
            k = redact_text(e, bits, u.data ? u.data : "", u.len, false, &r);
            if (k)
                json_escape_append(out, r.data, r.len, 0);
            else
                buf_append(out, p + start, end - start);
            buf_free(&u);
            buf_free(&r);
        }
        done += k;
        from = end;
        i = end;
    }
    if (from < n)
        buf_append(out, p + from, n - from);
    return done;
}

static size_t redact_body_text(const struct dlp_engine *e, unsigned bits,
                               const struct dlp_request *req, const char *p, size_t n,
                               struct buf *out)
{
    char boundary[72];
    switch (dlp_body_kind(req, p, n, boundary, sizeof(boundary))) {
    case DLP_BODY_JSON: {
        struct buf j = BUF_INIT;
        size_t done = redact_json(e, bits, p, n, &j);
        done += redact_text(e, bits, j.data ? j.data : "", j.len, false, out);
        buf_free(&j);
        return done;
    }
    case DLP_BODY_FORM:
        return redact_url_pieces(e, bits, p, n, '&', true, out);
    default:
        return redact_text(e, bits, p, n, false, out);
    }
}

static int redact_body(const struct dlp_engine *e, unsigned bits, const struct dlp_request *req,
                       struct dlp_redacted *out)
{
    char enc[128];
    dlp_header_value(req, "content-encoding", enc, sizeof(enc));
    struct buf body = BUF_INIT, red = BUF_INIT;
    if (dlp_content_decode(enc, req->body, req->body_len, e->cfg.max_decoded, &body) !=
        DLP_DECODE_OK) {
        buf_free(&body);
        return 0; /* the scan already refuses it */
    }
    int rc = 0;
    if (redact_body_text(e, bits, req, body.data ? body.data : "", body.len, &red) > 0) {
        rc = dlp_content_encode(enc, red.data ? red.data : "", red.len, &out->body);
        out->body_changed = rc == 0;
    }
    buf_free(&body);
    buf_free(&red);
    return rc;
}

int dlp_redact_request(const struct dlp_engine *e, unsigned outbound, const struct dlp_request *req,
                       struct dlp_redacted *out)
{
    memset(out, 0, sizeof(*out));
    struct buf b = BUF_INIT;
    if (req->target && redact_target(e, outbound, req->target, req->target_len, &b) > 0)
        out->target = buf_steal(&b);
    buf_free(&b);
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_header *h = &req->headers[i];
        if (req->skip_header && strlen(req->skip_header) == h->name.len &&
            strncasecmp(req->skip_header, h->name.ptr, h->name.len) == 0)
            continue;
        if (redact_text(e, outbound, h->value.ptr, h->value.len, false, &b) == 0) {
            buf_reset(&b);
            continue;
        }
        out->headers = xrealloc(out->headers, (out->n_headers + 1) * sizeof(*out->headers));
        out->headers[out->n_headers++] = (struct dlp_header_edit){i, buf_steal(&b)};
    }
    buf_free(&b);
    if (req->body_len)
        return redact_body(e, outbound, req, out);
    return 0;
}

void dlp_redacted_free(struct dlp_redacted *r)
{
    if (!r)
        return;
    free(r->target);
    for (size_t i = 0; i < r->n_headers; i++)
        free(r->headers[i].value);
    free(r->headers);
    buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

void dlp_redacted_apply(const struct dlp_request *req, const struct dlp_redacted *r,
                        struct http_header *headers_out, struct dlp_request *out)
{
    *out = *req;
    if (r->target) {
        out->target = r->target;
        out->target_len = strlen(r->target);
    }
    for (size_t i = 0; i < req->n_headers; i++)
        headers_out[i] = req->headers[i];
    for (size_t i = 0; i < r->n_headers; i++) {
        struct http_header *h = &headers_out[r->headers[i].index];
        h->value.ptr = r->headers[i].value;
        h->value.len = strlen(r->headers[i].value);
    }
    out->headers = headers_out;
    if (r->body_changed) {
        out->body = r->body.data ? r->body.data : "";
        out->body_len = r->body.len;
    }
}

int dlp_check_request(const struct dlp_engine *e, const struct route_dlp *dlp,
                      const struct dlp_request *req, struct dlp_redacted *red,
                      struct dlp_verdict *v, struct dlp_result *res)
{
    struct dlp_result first, again;
    dlp_result_init(&first);
    dlp_result_init(&again);
    memset(red, 0, sizeof(*red));
    int rc = dlp_scan_request(e, dlp->outbound, req, &first);
    if (rc == 0)
        dlp_verdict_for(&first, dlp->on_match, v);
    if (rc == 0 && v->action == DLP_REDACT)
        rc = dlp_redact_request(e, dlp->outbound, req, red);
    if (rc == 0 && v->action == DLP_REDACT) {
        struct http_header *hs = xcalloc(req->n_headers + 1, sizeof(*hs));
        struct dlp_request r2;
        dlp_redacted_apply(req, red, hs, &r2);
        rc = dlp_scan_request(e, dlp->outbound, &r2, &again);
        free(hs);
        if (rc == 0)
            dlp_verdict_after_redaction(&first, &again, v);
    }
    if (rc < 0 || v->action != DLP_REDACT)
        dlp_redacted_free(red);
    dlp_result_free(&again);
    if (res) {
        dlp_result_free(res);
        *res = first;
    } else {
        dlp_result_free(&first);
    }
    return rc;
}
