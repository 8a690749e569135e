/* dlp_base — character classes, hits, request accessors (see dlp_base.h). */
#include "sidecar/dlp/dlp_base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sidecar/dlp/dlp_decode.h"
#include "sidecar/http.h"

/* ---- character classes ------------------------------------------------------ */

void dlp_classes_init(uint16_t cls[256])
{
    memset(cls, 0, 256 * sizeof(cls[0]));
    for (int c = 0; c < 256; c++) {
        if (c >= 'A' && c <= 'Z')
            cls[c] |= CC_UPPER;
        if (c >= 'a' && c <= 'z')
            cls[c] |= CC_LOWER;
        if (c >= '0' && c <= '9')
            cls[c] |= CC_DIGIT | CC_HEXL | CC_HEXU;
        if (c >= 'a' && c <= 'f')
            cls[c] |= CC_HEXL;
        if (c >= 'A' && c <= 'F')
            cls[c] |= CC_HEXU;
    }
    cls['_'] |= CC_UNDER;
    cls['-'] |= CC_DASH;
    cls['+'] |= CC_PLUS;
    cls['/'] |= CC_PLUS;
    cls['.'] |= CC_DOT;
}

/* ---- hits ------------------------------------------------------------------- */

void dlp_hits_push(struct dlp_hits *h, const char *rule, enum dlp_kind kind, size_t off, size_t len,
                   int secret)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->items = xrealloc(h->items, h->cap * sizeof(*h->items));
    }
    h->items[h->n++] = (struct dlp_hit){rule, kind, off, len, secret};
}

void dlp_hits_free(struct dlp_hits *h)
{
    free(h->items);
    memset(h, 0, sizeof(*h));
}

void dlp_pieces_add(struct dlp_piece *list, size_t *n, const struct dlp_piece *p)
{
    for (size_t i = 0; i < *n; i++)
        if (list[i].secret == p->secret && list[i].offset == p->offset &&
            list[i].length == p->length)
            return;
    if (*n < DLP_PIECES_MAX)
        list[(*n)++] = *p;
}

static enum dlp_severity severity_of(const struct dlp_engine *e, enum dlp_kind k)
{
    if (k == DLP_KIND_ENTROPY)
        return DLP_WARN;
    if (k == DLP_KIND_INJECTION)
        return e->cfg.inbound_block ? DLP_BLOCK : DLP_WARN;
    return DLP_BLOCK;
}

void dlp_emit(const struct dlp_engine *e, struct dlp_result *res, const char *location,
              const struct dlp_hits *h, size_t base)
{
    res->ops += h->ops;
    for (size_t i = 0; i < h->n_pieces; i++)
        dlp_pieces_add(res->pieces, &res->n_pieces, &h->pieces[i]);
    for (size_t i = 0; i < h->n; i++) {
        const struct dlp_hit *x = &h->items[i];
        if (res->n >= e->cfg.max_matches) {
            res->dropped++;
            continue;
        }
        if (res->n == res->cap) {
            res->cap = res->cap ? res->cap * 2 : 8;
            res->matches = xrealloc(res->matches, res->cap * sizeof(*res->matches));
        }
        struct dlp_match *m = &res->matches[res->n++];
        memset(m, 0, sizeof(*m));
        m->rule = x->rule;
        m->kind = x->kind;
        m->severity = severity_of(e, x->kind);
        m->structural =
            x->kind == DLP_KIND_CRLF || x->kind == DLP_KIND_FRAGMENT || x->kind == DLP_KIND_PARTIAL;
        m->projected = x->kind == DLP_KIND_FRAGMENT || x->kind == DLP_KIND_PARTIAL;
        snprintf(m->location, sizeof(m->location), "%s", location);
        m->offset = base + x->offset;
        m->length = x->length;
        m->secret = x->secret;
    }
}

/* ---- request accessors ------------------------------------------------------ */

const struct http_header *dlp_find_header(const struct dlp_request *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->n_headers; i++)
        if (r->headers[i].name.len == n && strncasecmp(r->headers[i].name.ptr, name, n) == 0)
            return &r->headers[i];
    return NULL;
}

void dlp_header_value(const struct dlp_request *r, const char *name, char *out, size_t size)
{
    const struct http_header *h = dlp_find_header(r, name);
    snprintf(out, size, "%.*s", h ? (int)h->value.len : 0, h ? h->value.ptr : "");
}

enum dlp_body_kind dlp_body_kind(const struct dlp_request *r, const char *body, size_t n,
                                 char *boundary, size_t bsize)
{
    char ct[256];
    dlp_header_value(r, "content-type", ct, sizeof(ct));
    if (strncasecmp(ct, "multipart/", 10) == 0 &&
        dlp_header_param(ct, strlen(ct), "boundary", boundary, bsize))
        return DLP_BODY_MULTIPART;
    if (strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
        return DLP_BODY_FORM;
    size_t i = 0;
    while (i < n && strchr(" \t\r\n", body[i]) && body[i])
        i++;
    if (strcasestr(ct, "json") || (!ct[0] && i < n && (body[i] == '{' || body[i] == '[')))
        return DLP_BODY_JSON;
    return DLP_BODY_OTHER;
}
