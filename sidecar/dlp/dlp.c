/*
 * dlp — the engine's life cycle, results, and the request scan: which parts
 * of a request are read, in which representations, under which location
 * names, and what a policy makes of the result. The detectors live in
 * dlp_rules.c and dlp_secrets.c (over dlp_base.c's classes and hit list),
 * decoding in dlp_decode.c, redaction in dlp_redact.c, streams in
 * dlp_stream.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_base.h"
#include "sidecar/dlp/dlp_decode.h"
#include "sidecar/dlp/dlp_rules.h"
#include "sidecar/dlp/dlp_secrets.h"
#include "sidecar/dlp/dlp_simd.h"

#define DEFAULT_MAX_DECODED ((size_t)32 << 20)
#define DEFAULT_MAX_MATCHES 64
#define MULTIPART_MAX_PARTS 64

/* ---- engine --------------------------------------------------------------- */

struct dlp_engine *dlp_engine_new(const struct dlp_config *cfg, const struct strv *secrets,
                                  struct bottle_err *err)
{
    struct dlp_engine *e = xcalloc(1, sizeof(*e));
    if (cfg)
        e->cfg = *cfg;
    if (!e->cfg.max_decoded)
        e->cfg.max_decoded = DEFAULT_MAX_DECODED;
    if (!e->cfg.max_matches)
        e->cfg.max_matches = DEFAULT_MAX_MATCHES;
    dlp_classes_init(e->cls);
    int rc = dlp_starts_build(e);
    if (rc == 0)
        rc = dlp_secrets_build(e, secrets);
    dlp_simd_init(e);
    if (rc < 0) {
        err_set(err, -rc, "dlp: cannot build the engine");
        dlp_engine_free(e);
        return NULL;
    }
    return e;
}

void dlp_engine_free(struct dlp_engine *e)
{
    if (!e)
        return;
    dlp_secrets_free(e);
    free(e->starts);
    free(e);
}

size_t dlp_engine_secret_count(const struct dlp_engine *e, size_t *skipped)
{
    if (skipped)
        *skipped = e->n_skipped;
    return e->n_secrets;
}

/* ---- results --------------------------------------------------------------- */

void dlp_result_init(struct dlp_result *r)
{
    memset(r, 0, sizeof(*r));
}

void dlp_result_reset(struct dlp_result *r)
{
    struct dlp_match *m = r->matches;
    size_t cap = r->cap;
    memset(r, 0, sizeof(*r));
    r->matches = m;
    r->cap = cap;
}

void dlp_result_free(struct dlp_result *r)
{
    free(r->matches);
    memset(r, 0, sizeof(*r));
}

const struct dlp_match *dlp_result_first_block(const struct dlp_result *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->matches[i].severity == DLP_BLOCK)
            return &r->matches[i];
    return NULL;
}

/* Runs the outbound detectors named by bits over one text. */
void dlp_find_outbound(const struct dlp_engine *e, unsigned bits, const char *p, size_t len,
                       struct dlp_hits *h)
{
    if (bits & DLP_OUT_TOKEN_PATTERNS)
        dlp_find_patterns(e, p, len, h);
    if (bits & DLP_OUT_KNOWN_SECRETS) {
        dlp_find_secret_values(e, p, len, h);
        dlp_find_secret_fragments(e, p, len, h);
    }
    if (bits & DLP_OUT_ENTROPY)
        dlp_find_entropy(e, p, len, h);
}

static void scan_repr(const struct dlp_engine *e, unsigned bits, const char *loc, const char *p,
                      size_t len, struct dlp_result *res)
{
    struct dlp_hits h = {0};
    dlp_find_outbound(e, bits, p, len, &h);
    dlp_emit(e, res, loc, &h, 0);
    dlp_hits_free(&h);
}

int dlp_scan_text(const struct dlp_engine *e, unsigned outbound, const char *location,
                  const char *text, size_t len, struct dlp_result *res)
{
    scan_repr(e, outbound, location, text, len, res);
    return 0;
}

int dlp_scan_inbound(const struct dlp_engine *e, unsigned inbound, const char *location,
                     const char *text, size_t len, struct dlp_result *res)
{
    if (!(inbound & DLP_IN_NAIVE_INJECTION))
        return 0;
    struct dlp_hits h = {0};
    dlp_find_injection(text, len, &h);
    dlp_emit(e, res, location, &h, 0);
    dlp_hits_free(&h);
    return 0;
}

/* ---- locations ------------------------------------------------------------ */

/*
 * A name taken from the request (header, form field, part) goes into a
 * location only when it is short, plain, and holds nothing the detectors
 * find: a location must never carry a value.
 */
static void location_with_name(const struct dlp_engine *e, const char *kind, const char *name,
                               size_t len, char *out, size_t size)
{
    bool plain = len > 0 && len <= 40;
    for (size_t i = 0; plain && i < len; i++)
        plain = (e->cls[(unsigned char)name[i]] & (CC_ALNUM | CC_UNDER | CC_DASH | CC_DOT)) != 0;
    if (plain) {
        struct dlp_hits h = {0};
        dlp_find_outbound(e, DLP_OUT_TOKEN_PATTERNS | DLP_OUT_KNOWN_SECRETS, name, len, &h);
        plain = h.n == 0;
        dlp_hits_free(&h);
    }
    if (plain)
        snprintf(out, size, "%s:%.*s", kind, (int)len, name);
    else
        snprintf(out, size, "%s:(name withheld)", kind);
}

/* ---- request parts -------------------------------------------------------- */

static bool has_any(const char *p, size_t n, const char *set)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] && strchr(set, p[i]))
            return true;
    return false;
}

static void scan_crlf(const struct dlp_engine *e, const char *loc, const char *p, size_t n,
                      struct dlp_result *res)
{
    struct dlp_hits h = {0};
    dlp_find_crlf(p, n, &h);
    dlp_emit(e, res, loc, &h, 0);
    dlp_hits_free(&h);
}

/* Raw, then decoded when it has escapes (form: '+' is a space too). */
static void scan_url_part(const struct dlp_engine *e, unsigned bits, const char *loc, const char *p,
                          size_t n, bool form, struct dlp_result *res)
{
    scan_repr(e, bits, loc, p, n, res);
    if (!has_any(p, n, form ? "%+" : "%"))
        return;
    struct buf d = BUF_INIT;
    dlp_url_decode(p, n, form, &d);
    scan_repr(e, bits, loc, d.data, d.len, res);
    buf_free(&d);
}

static void scan_target(const struct dlp_engine *e, unsigned bits, const char *t, size_t n,
                        struct dlp_result *res)
{
    const char *q = memchr(t, '?', n);
    size_t plen = q ? (size_t)(q - t) : n;
    scan_crlf(e, "path", t, plen, res);
    scan_url_part(e, bits, "path", t, plen, false, res);
    if (q) {
        scan_crlf(e, "query", q + 1, n - plen - 1, res);
        scan_url_part(e, bits, "query", q + 1, n - plen - 1, true, res);
    }
}

static void scan_headers(const struct dlp_engine *e, unsigned bits, const struct dlp_request *r,
                         struct dlp_result *res)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        const struct http_header *h = &r->headers[i];
        if (r->skip_header && strlen(r->skip_header) == h->name.len &&
            strncasecmp(r->skip_header, h->name.ptr, h->name.len) == 0)
            continue;
        char loc[64];
        location_with_name(e, "header", h->name.ptr, h->name.len, loc, sizeof(loc));
        scan_crlf(e, loc, h->value.ptr, h->value.len, res);
        scan_repr(e, bits, "header-name", h->name.ptr, h->name.len, res);
        scan_repr(e, bits, loc, h->value.ptr, h->value.len, res);
    }
}

static void scan_form(const struct dlp_engine *e, unsigned bits, const char *p, size_t n,
                      struct dlp_result *res)
{
    for (size_t i = 0; i < n;) {
        const char *amp = memchr(p + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - p) : n;
        const char *eq = memchr(p + i, '=', end - i);
        size_t kend = eq ? (size_t)(eq - p) : end, vstart = eq ? kend + 1 : end;
        struct buf k = BUF_INIT, v = BUF_INIT;
        dlp_url_decode(p + i, kend - i, true, &k);
        dlp_url_decode(p + vstart, end - vstart, true, &v);
        char loc[64];
        location_with_name(e, "body:form", k.data ? k.data : "", k.len, loc, sizeof(loc));
        scan_repr(e, bits, loc, k.data ? k.data : "", k.len, res);
        scan_repr(e, bits, loc, v.data ? v.data : "", v.len, res);
        buf_free(&k);
        buf_free(&v);
        i = end + 1;
    }
}

/* Body matches take the name of the multipart part they fall in. */
static void label_parts(const struct dlp_engine *e, const char *boundary, const char *p, size_t n,
                        struct dlp_result *res, size_t from)
{
    struct dlp_part parts[MULTIPART_MAX_PARTS];
    size_t np = dlp_multipart_parts(boundary, p, n, parts, MULTIPART_MAX_PARTS);
    for (size_t i = from; i < res->n; i++) {
        struct dlp_match *m = &res->matches[i];
        if (m->projected)
            continue;
        for (size_t k = 0; k < np; k++)
            if (m->offset >= parts[k].start && m->offset < parts[k].end)
                location_with_name(e, "body:part", parts[k].name, strlen(parts[k].name),
                                   m->location, sizeof(m->location));
    }
}

/* The body after its content codings; *p points into the request when there are none. */
static enum dlp_decode_rc decoded_body(const struct dlp_engine *e, const struct dlp_request *r,
                                       struct buf *store, const char **p, size_t *n)
{
    char enc[128];
    dlp_header_value(r, "content-encoding", enc, sizeof(enc));
    *p = r->body;
    *n = r->body_len;
    if (!enc[0])
        return *n > e->cfg.max_decoded ? DLP_DECODE_TOO_LARGE : DLP_DECODE_OK;
    enum dlp_decode_rc rc =
        dlp_content_decode(enc, r->body, r->body_len, e->cfg.max_decoded, store);
    *p = store->data ? store->data : "";
    *n = store->len;
    return rc;
}

/*
 * A body (or a multipart part) that is gzip or zlib data though no coding
 * says so: what it decodes to is scanned too, as "body:gzip". Over the
 * decoded-size cap it is refused as too large, like a named coding.
 */
static void scan_sniffed(const struct dlp_engine *e, unsigned bits, const char *p, size_t n,
                         struct dlp_result *res)
{
    if (e->cfg.basic_encodings)
        return;
    struct buf inner = BUF_INIT;
    bool compressed;
    enum dlp_decode_rc rc = dlp_sniff_decode(p, n, e->cfg.max_decoded, &inner, &compressed);
    if (compressed && rc == DLP_DECODE_TOO_LARGE)
        res->too_large = true;
    else if (compressed && inner.len)
        scan_repr(e, bits, "body:gzip", inner.data, inner.len, res);
    buf_free(&inner);
}

static void scan_body(const struct dlp_engine *e, unsigned bits, const struct dlp_request *r,
                      struct dlp_result *res)
{
    char boundary[72];
    struct buf store = BUF_INIT;
    const char *p;
    size_t n;
    enum dlp_decode_rc rc = decoded_body(e, r, &store, &p, &n);
    if (rc != DLP_DECODE_OK) {
        res->too_large = rc == DLP_DECODE_TOO_LARGE;
        res->undecodable = rc == DLP_DECODE_BAD;
        buf_free(&store);
        return;
    }
    size_t from = res->n;
    enum dlp_body_kind kind = dlp_body_kind(r, p, n, boundary, sizeof(boundary));
    if (kind == DLP_BODY_JSON && memchr(p, '\\', n)) {
        /* One pass over the unescaped view: it holds everything the raw text does. */
        struct buf view = BUF_INIT;
        dlp_json_view(p, n, &view);
        scan_repr(e, bits, "body:json", view.data ? view.data : "", view.len, res);
        buf_free(&view);
    } else {
        scan_repr(e, bits, "body", p, n, res);
    }
    if (kind == DLP_BODY_MULTIPART) {
        label_parts(e, boundary, p, n, res, from);
        struct dlp_part parts[MULTIPART_MAX_PARTS];
        size_t np = dlp_multipart_parts(boundary, p, n, parts, MULTIPART_MAX_PARTS);
        for (size_t k = 0; k < np; k++)
            scan_sniffed(e, bits, p + parts[k].start, parts[k].end - parts[k].start, res);
    } else if (kind == DLP_BODY_FORM && has_any(p, n, "%+"))
        scan_form(e, bits, p, n, res);
    scan_sniffed(e, bits, p, n, res);
    buf_free(&store);
}

int dlp_scan_request(const struct dlp_engine *e, unsigned outbound, const struct dlp_request *req,
                     struct dlp_result *res)
{
    if (!e || !req || !res)
        return -EINVAL;
    if (req->host)
        scan_repr(e, outbound, "host", req->host, strlen(req->host), res);
    if (req->target)
        scan_target(e, outbound, req->target, req->target_len, res);
    scan_headers(e, outbound, req, res);
    if (req->body_len && outbound)
        scan_body(e, outbound, req, res);
    return 0;
}

/* ---- verdicts ------------------------------------------------------------- */

static void refuse(struct dlp_verdict *v, int status, const char *reason)
{
    v->action = DLP_REFUSE;
    v->status = status;
    v->reason = reason;
}

static const struct dlp_match *first_structural(const struct dlp_result *res)
{
    for (size_t i = 0; i < res->n; i++)
        if (res->matches[i].severity == DLP_BLOCK && res->matches[i].structural)
            return &res->matches[i];
    return NULL;
}

void dlp_verdict_for(const struct dlp_result *res, enum dlp_policy policy, struct dlp_verdict *v)
{
    memset(v, 0, sizeof(*v));
    if (res->too_large) {
        refuse(v, 413, DLP_REASON_TOO_LARGE);
        snprintf(v->message, sizeof(v->message), "request body too large to scan once decoded");
        return;
    }
    if (res->undecodable) {
        refuse(v, 403, DLP_REASON_UNDECODABLE);
        snprintf(v->message, sizeof(v->message),
                 "request body has a content encoding that cannot be decoded for scanning");
        return;
    }
    const struct dlp_match *m = first_structural(res);
    const struct dlp_match *first = m ? m : dlp_result_first_block(res);
    if (!first)
        return;
    snprintf(v->message, sizeof(v->message), "%s found in %s", first->rule, first->location);
    if (first->kind == DLP_KIND_INJECTION) { /* inbound: the outbound policy does not apply */
        refuse(v, 403, DLP_REASON_INJECTION);
    } else if (m) {
        refuse(v, 403, m->kind == DLP_KIND_CRLF ? DLP_REASON_CRLF : DLP_REASON_BLOCKED);
    } else if (policy == DLP_POLICY_REDACT) {
        v->action = DLP_REDACT;
    } else if (policy == DLP_POLICY_SUPERVISE) {
        refuse(v, 403, DLP_REASON_SUPERVISE);
        size_t n = strlen(v->message);
        snprintf(v->message + n, sizeof(v->message) - n,
                 "; supervision is not available, so the request is refused");
    } else {
        refuse(v, 403, DLP_REASON_BLOCKED);
    }
}

void dlp_verdict_after_redaction(const struct dlp_result *first, const struct dlp_result *rescan,
                                 struct dlp_verdict *v)
{
    dlp_verdict_for(first, DLP_POLICY_REDACT, v);
    if (v->action != DLP_REDACT)
        return;
    if (rescan->too_large || rescan->undecodable || dlp_result_first_block(rescan)) {
        refuse(v, 403, DLP_REASON_REDACT_FAILED);
        size_t n = strlen(v->message);
        snprintf(v->message + n, sizeof(v->message) - n,
                 "; redaction could not remove all matches");
    }
}

/* ---- snippets ------------------------------------------------------------- */

static const struct dlp_match *covering(const struct dlp_result *res, const struct dlp_match *m,
                                        size_t i)
{
    for (size_t k = 0; k < res->n; k++) {
        const struct dlp_match *x = &res->matches[k];
        if (!x->projected && strcmp(x->location, m->location) == 0 && i >= x->offset &&
            i < x->offset + x->length)
            return x;
    }
    return i >= m->offset && i < m->offset + m->length ? m : NULL;
}

void dlp_snippet(const char *text, size_t len, const struct dlp_result *res,
                 const struct dlp_match *m, char *out, size_t outsize)
{
    struct buf b = BUF_INIT;
    size_t from = m->offset > 24 ? m->offset - 24 : 0, to = m->offset + m->length + 24;
    if (m->projected || m->offset > len)
        from = to = 0;
    to = to < len ? to : len;
    if (m->projected)
        buf_printf(&b, "%s%s]", DLP_REDACT_MARK_PREFIX, m->rule);
    for (size_t i = from; i < to;) {
        const struct dlp_match *x = covering(res, m, i);
        if (x) {
            buf_printf(&b, "%s%s]", DLP_REDACT_MARK_PREFIX, x->rule);
            i = x->offset + x->length;
            continue;
        }
        size_t run = 0;
        while (
            i + run < len && (unsigned char)text[i + run] < 128 &&
            (unsigned char)text[i + run] > 32 && !covering(res, m, i + run) &&
            strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", text[i + run]))
            run++;
        if (run >= DLP_PARTIAL_MIN_LEN) { /* could be part of a secret: masked */
            buf_append_str(&b, "***");
            i += run;
            continue;
        }
        unsigned char c = (unsigned char)text[i];
        buf_append_char(&b, c >= 32 && c < 127 ? (char)c : '.');
        i++;
    }
    snprintf(out, outsize, "%s", b.data ? b.data : "");
    buf_free(&b);
}
