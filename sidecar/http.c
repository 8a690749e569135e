#include "sidecar/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

/*
 * Heads are scanned once, byte by byte, for the rules that hold everywhere
 * (CRLF line ends, no NUL, size limits); each completed line is then checked
 * as a whole. Field semantics (framing, Host, Connection) are decided once
 * the empty line arrives. Errors therefore depend only on the bytes before
 * the point where they are found, so feeding a head in pieces gives exactly
 * the result of feeding it at once.
 */

enum { PHASE_FIRST_LINE = 0, PHASE_HEADERS, PHASE_DONE, PHASE_ERROR };

static const struct http_limits default_limits = HTTP_LIMITS_DEFAULT;

/* Offsets are kept in 32 bits; a head can never be near that long. */
#define LIMIT_CAP ((size_t)1 << 30)

/* ---- character classes --------------------------------------------------- */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * CHAR_TOKEN: tchar (RFC 9110 5.6.2). CHAR_VALUE: field-vchar, SP and HTAB,
 * what a field value or reason phrase may hold. CHAR_SPECIAL: CR, LF and NUL,
 * the bytes the head scanner must look at; it skips the rest in one loop.
 */
enum { CHAR_TOKEN = 1, CHAR_VALUE = 2, CHAR_SPECIAL = 4 };

static const uint8_t char_class[256] = {
    4, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 4, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2, /* 0x20 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, /* 0x30 */
    2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 0x40 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3, /* 0x50 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* 0x60 */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xb0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xd0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xf0 */
};

static bool is_tchar(unsigned char c)
{
    return char_class[c] & CHAR_TOKEN;
}

static bool is_value_char(unsigned char c)
{
    return char_class[c] & CHAR_VALUE;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* ---- slices -------------------------------------------------------------- */

bool http_slice_eq(struct http_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

static bool slices_eq_ci(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Internal compare against a string literal: the length is known at compile time. */
#define SLICE_IS_CI(s, lit) slices_eq_ci((s).ptr, (s).len, lit, sizeof(lit) - 1)

bool http_slice_eq_ci(struct http_slice s, const char *lit)
{
    return slices_eq_ci(s.ptr, s.len, lit, strlen(lit));
}

const struct http_header *http_header_find(const struct http_header *headers, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (http_slice_eq_ci(headers[i].name, name))
            return &headers[i];
    return NULL;
}

/* Next element of a comma-separated list, OWS trimmed; empty elements skipped. */
static bool list_next(struct http_slice *rest, struct http_slice *elem)
{
    while (rest->len > 0) {
        const char *p = rest->ptr;
        const char *comma = memchr(p, ',', rest->len);
        size_t n = comma ? (size_t)(comma - p) : rest->len;
        rest->ptr += comma ? n + 1 : n;
        rest->len -= comma ? n + 1 : n;
        while (n > 0 && is_ows((unsigned char)*p)) {
            p++;
            n--;
        }
        while (n > 0 && is_ows((unsigned char)p[n - 1]))
            n--;
        if (n > 0) {
            *elem = (struct http_slice){p, n};
            return true;
        }
    }
    return false;
}

bool http_list_has_token(struct http_slice value, const char *token)
{
    struct http_slice elem;
    while (list_next(&value, &elem))
        if (http_slice_eq_ci(elem, token))
            return true;
    return false;
}

static struct http_limits effective_limits(const struct http_limits *lim)
{
    struct http_limits l = lim ? *lim : default_limits;
    if (l.max_headers > HTTP_HEADERS_MAX)
        l.max_headers = HTTP_HEADERS_MAX;
    if (l.request_line_max > LIMIT_CAP)
        l.request_line_max = LIMIT_CAP;
    if (l.header_block_max > LIMIT_CAP)
        l.header_block_max = LIMIT_CAP;
    return l;
}

/* ---- the head scanner ---------------------------------------------------- */

typedef const char *(*first_line_fn)(const char *line, size_t n, void *msg);

/* One complete header line (CRLF excluded) into a span relative to its start. */
static const char *split_header_line(const char *p, size_t n, size_t base, struct http_scan *sc)
{
    if (is_ows((unsigned char)p[0]))
        return HTTP_ERR_OBS_FOLD;
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return HTTP_ERR_BAD_HEADER_NAME;
    size_t name_len = i++;
    while (i < n && is_ows((unsigned char)p[i]))
        i++;
    size_t end = n;
    while (end > i && is_ows((unsigned char)p[end - 1]))
        end--;
    for (size_t j = i; j < end; j++)
        if (!is_value_char((unsigned char)p[j]))
            return HTTP_ERR_BAD_HEADER_VALUE;
    size_t k = sc->n_spans++;
    sc->spans[k].name_off = (uint32_t)base;
    sc->spans[k].name_len = (uint32_t)name_len;
    sc->spans[k].value_off = (uint32_t)(base + i);
    sc->spans[k].value_len = (uint32_t)(end - i);
    return NULL;
}

/* Returns 1 when the empty line ending the head was seen, 0 for more, -1 on error. */
static int scan_head(struct http_scan *sc, const char *buf, size_t len,
                     const struct http_limits *lim, first_line_fn first_line, void *msg,
                     const char **error)
{
    const char *err = NULL;
    size_t pos;
    for (pos = sc->pos; pos < len; pos++) {
        if (pos == sc->line_start || buf[pos - 1] != '\r') {
            /* Ordinary bytes below the limit need no decision: skip them. */
            size_t stop = sc->phase == PHASE_FIRST_LINE ? sc->line_start + lim->request_line_max
                                                        : sc->head_start + lim->header_block_max;
            stop = stop < len ? stop : len;
            while (pos < stop && !(char_class[(unsigned char)buf[pos]] & CHAR_SPECIAL))
                pos++;
            if (pos == len)
                break;
        }
        unsigned char c = (unsigned char)buf[pos];
        if (c == '\n') {
            if (pos == sc->line_start || buf[pos - 1] != '\r') {
                err = HTTP_ERR_BARE_LF;
                break;
            }
        } else if (pos > sc->line_start && buf[pos - 1] == '\r') {
            err = HTTP_ERR_BARE_CR;
            break;
        } else if (c == '\0') {
            err = HTTP_ERR_NUL_BYTE;
            break;
        }
        if (sc->phase == PHASE_FIRST_LINE) {
            if (c != '\r' && c != '\n' && pos - sc->line_start >= lim->request_line_max) {
                err = HTTP_ERR_REQUEST_LINE_TOO_LONG;
                break;
            }
        } else if (pos - sc->head_start >= lim->header_block_max) {
            err = HTTP_ERR_HEADERS_TOO_LARGE;
            break;
        }
        if (c != '\n')
            continue;

        size_t n = pos - 1 - sc->line_start;
        const char *line = buf + sc->line_start;
        if (sc->phase == PHASE_FIRST_LINE) {
            err = first_line(line, n, msg);
            if (err)
                break;
            sc->phase = PHASE_HEADERS;
            sc->head_start = pos + 1;
        } else if (n == 0) {
            sc->phase = PHASE_DONE;
            sc->pos = pos + 1;
            return 1;
        } else if (sc->n_spans >= lim->max_headers) {
            err = HTTP_ERR_TOO_MANY_HEADERS;
            break;
        } else {
            err = split_header_line(line, n, sc->line_start, sc);
            if (err)
                break;
        }
        sc->line_start = pos + 1;
    }
    if (err) {
        sc->phase = PHASE_ERROR;
        *error = err;
        return -1;
    }
    sc->pos = pos;
    return 0;
}

static void spans_to_headers(const struct http_scan *sc, const char *buf,
                             struct http_header *headers, size_t *n_headers)
{
    for (size_t i = 0; i < sc->n_spans; i++) {
        headers[i].name = (struct http_slice){buf + sc->spans[i].name_off, sc->spans[i].name_len};
        headers[i].value =
            (struct http_slice){buf + sc->spans[i].value_off, sc->spans[i].value_len};
    }
    *n_headers = sc->n_spans;
}

/* ---- start lines --------------------------------------------------------- */

static int parse_version(const char *v, size_t n)
{
    if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && (v[7] == '0' || v[7] == '1'))
        return v[7] - '0';
    return -1;
}

/*
 * host [":" port] with host a name (letters, digits, '-', '.', '_'), a dotted
 * IPv4 address or a bracketed IPv6 address. No user info, no empty port.
 */
static bool parse_authority(const char *p, size_t n, bool require_port, struct http_slice *host,
                            uint16_t *port)
{
    size_t i;
    if (n == 0)
        return false;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', n);
        size_t hl = close ? (size_t)(close - p) - 1 : 0;
        char tmp[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (hl == 0 || hl >= sizeof(tmp))
            return false;
        memcpy(tmp, p + 1, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return false;
        *host = (struct http_slice){p + 1, hl};
        i = hl + 2;
    } else {
        for (i = 0; i < n && p[i] != ':'; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_')
                return false;
        }
        if (i == 0 || i > 254)
            return false;
        *host = (struct http_slice){p, i};
    }
    *port = 0;
    if (i == n)
        return !require_port;
    if (p[i] != ':' || n - i < 2 || n - i > 6)
        return false;
    unsigned v = 0;
    for (i++; i < n; i++) {
        if (!is_digit((unsigned char)p[i]))
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* A segment that is "." or ".." once %2e is read as a dot. */
static bool is_dot_segment(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            dots++;
        } else if (s[i] == '%' && i + 2 < n && s[i + 1] == '2' &&
                   lower((unsigned char)s[i + 2]) == 'e') {
            dots++;
            i += 2;
        } else {
            return false;
        }
    }
    return dots == 1 || dots == 2;
}

/*
 * "/path?query": visible ASCII except '#' (fragments are never sent) and '\'
 * (read as '/' by some servers), every '%' followed by two hex digits, and
 * no "." or ".." path segments, so the path the policy sees is the path the
 * upstream serves.
 */
static bool valid_path(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/')
        return false;
    bool in_query = false;
    size_t seg = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)p[i] : '/';
        if (i < n && (c < 0x21 || c > 0x7e || c == '#' || c == '\\'))
            return false;
        if (c == '%' && (i + 2 >= n || hex_value(p[i + 1]) < 0 || hex_value(p[i + 2]) < 0))
            return false;
        if (!in_query && (c == '/' || c == '?')) {
            if (is_dot_segment(p + seg, i - seg))
                return false;
            seg = i + 1;
            in_query = c == '?';
        }
    }
    return true;
}

static const char *parse_target(struct http_request *r)
{
    const char *t = r->target.ptr;
    size_t n = r->target.len;
    static const char root[] = "/";

    r->scheme = (struct http_slice){t, 0};
    if (http_slice_eq(r->method, "CONNECT")) {
        r->form = HTTP_FORM_AUTHORITY;
        r->authority = r->path = r->target;
        return parse_authority(t, n, true, &r->host, &r->port) ? NULL : HTTP_ERR_BAD_TARGET;
    }
    if (n == 1 && t[0] == '*') {
        r->form = HTTP_FORM_ASTERISK;
        r->path = r->target;
        return http_slice_eq(r->method, "OPTIONS") ? NULL : HTTP_ERR_BAD_TARGET;
    }
    if (t[0] == '/') {
        r->form = HTTP_FORM_ORIGIN;
        r->path = r->target;
        return valid_path(t, n) ? NULL : HTTP_ERR_BAD_TARGET;
    }
    size_t i = 0;
    while (i < n && (is_alpha((unsigned char)t[i]) ||
                     (i > 0 && (is_digit((unsigned char)t[i]) || t[i] == '+' || t[i] == '-' ||
                                t[i] == '.'))))
        i++;
    if (i == 0 || n - i < 3 || memcmp(t + i, "://", 3) != 0)
        return HTTP_ERR_BAD_TARGET;
    r->form = HTTP_FORM_ABSOLUTE;
    r->scheme = (struct http_slice){t, i};
    if (http_slice_eq_ci(r->scheme, "https"))
        return HTTP_ERR_HTTPS_REQUIRES_CONNECT;
    if (!http_slice_eq_ci(r->scheme, "http"))
        return HTTP_ERR_UNSUPPORTED_SCHEME;
    size_t a = i + 3, e = a;
    while (e < n && t[e] != '/' && t[e] != '?' && t[e] != '#')
        e++;
    r->authority = (struct http_slice){t + a, e - a};
    if (!parse_authority(t + a, e - a, false, &r->host, &r->port))
        return HTTP_ERR_BAD_TARGET;
    r->path = e == n ? (struct http_slice){root, 1} : (struct http_slice){t + e, n - e};
    return valid_path(r->path.ptr, r->path.len) ? NULL : HTTP_ERR_BAD_TARGET;
}

/* method SP request-target SP HTTP-version, single spaces. */
static const char *parse_request_line(const char *p, size_t n, void *msg)
{
    struct http_request *r = msg;
    const char *end = p + n;
    const char *sp1 = memchr(p, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == p || sp2 == sp1 + 1 || memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)))
        return HTTP_ERR_BAD_REQUEST_LINE;
    r->method = (struct http_slice){p, (size_t)(sp1 - p)};
    for (const char *m = p; m < sp1; m++)
        if (!(*m >= 'A' && *m <= 'Z') && !is_digit((unsigned char)*m) && *m != '-' && *m != '_')
            return HTTP_ERR_BAD_METHOD;
    r->version_minor = parse_version(sp2 + 1, (size_t)(end - sp2 - 1));
    if (r->version_minor < 0)
        return HTTP_ERR_BAD_VERSION;
    r->target = (struct http_slice){sp1 + 1, (size_t)(sp2 - sp1 - 1)};
    return parse_target(r);
}

/* HTTP-version SP 3DIGIT [SP reason-phrase]; a missing phrase is tolerated. */
static const char *parse_status_line(const char *p, size_t n, void *msg)
{
    struct http_response *r = msg;
    const char *sp = memchr(p, ' ', n);
    if (!sp)
        return HTTP_ERR_BAD_STATUS_LINE;
    r->version_minor = parse_version(p, (size_t)(sp - p));
    if (r->version_minor < 0)
        return HTTP_ERR_BAD_VERSION;
    const char *c = sp + 1;
    size_t rest = n - (size_t)(c - p);
    if (rest < 3 || !is_digit(c[0]) || !is_digit(c[1]) || !is_digit(c[2]) ||
        (rest > 3 && c[3] != ' '))
        return HTTP_ERR_BAD_STATUS_LINE;
    r->status_code = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
    if (r->status_code < 100 || r->status_code > 599)
        return HTTP_ERR_BAD_STATUS_LINE;
    r->reason_phrase = rest > 3 ? (struct http_slice){c + 4, rest - 4} : (struct http_slice){c, 0};
    for (size_t i = 0; i < r->reason_phrase.len; i++)
        if (!is_value_char((unsigned char)r->reason_phrase.ptr[i]))
            return HTTP_ERR_BAD_STATUS_LINE;
    return NULL;
}

/* ---- field semantics ----------------------------------------------------- */

struct fields {
    int64_t content_length;
    bool chunked;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool upgrade_websocket;
    bool expect_continue, expect_other;
    size_t n_host;
    struct http_slice host;
};

static bool parse_content_length(struct http_slice v, int64_t *out)
{
    uint64_t n = 0;
    if (v.len == 0)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (!is_digit((unsigned char)v.ptr[i]))
            return false;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
        if (n > INT64_MAX)
            return false;
    }
    *out = (int64_t)n;
    return true;
}

/*
 * A name that reads as a framing field once '_' is taken for '-': some
 * servers fold the two, so "Transfer_Encoding" could frame a body the proxy
 * never saw.
 */
static bool is_disguised_framing_field(struct http_slice name)
{
    static const char *const framing[] = {"content-length", "transfer-encoding"};
    if (!memchr(name.ptr, '_', name.len))
        return false;
    for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
        size_t n = strlen(framing[i]), j;
        for (j = 0; j < n && n == name.len; j++) {
            unsigned char c = lower((unsigned char)name.ptr[j]);
            if ((c == '_' ? '-' : c) != framing[i][j])
                break;
        }
        if (n == name.len && j == n)
            return true;
    }
    return false;
}

/*
 * Fields in order, then the one cross-field rule. Transfer-Encoding must be
 * exactly "chunked" (lower case: mixed case is a desync probe, no client
 * sends it), once, and never in HTTP/1.0.
 */
static const char *read_fields(const struct http_header *h, size_t n, int version_minor,
                               struct fields *f)
{
    memset(f, 0, sizeof(*f));
    f->content_length = -1;
    for (size_t i = 0; i < n; i++) {
        struct http_slice name = h[i].name, value = h[i].value, elem;
        if (is_disguised_framing_field(name))
            return HTTP_ERR_BAD_HEADER_NAME;
        if (SLICE_IS_CI(name, "content-length")) {
            int64_t v;
            if (!parse_content_length(value, &v))
                return HTTP_ERR_BAD_CONTENT_LENGTH;
            if (f->content_length >= 0)
                return v == f->content_length ? HTTP_ERR_DUPLICATE_CONTENT_LENGTH
                                              : HTTP_ERR_CONFLICTING_CONTENT_LEN;
            f->content_length = v;
        } else if (SLICE_IS_CI(name, "transfer-encoding")) {
            if (f->chunked || version_minor == 0 || !http_slice_eq(value, "chunked"))
                return HTTP_ERR_BAD_TRANSFER_ENCODING;
            f->chunked = true;
        } else if (SLICE_IS_CI(name, "host")) {
            if (f->n_host++)
                return HTTP_ERR_MULTIPLE_HOST;
            f->host = value;
        } else if (SLICE_IS_CI(name, "connection")) {
            while (list_next(&value, &elem)) {
                for (size_t j = 0; j < elem.len; j++)
                    if (!is_tchar((unsigned char)elem.ptr[j]))
                        return HTTP_ERR_BAD_CONNECTION;
                f->conn_close |= SLICE_IS_CI(elem, "close");
                f->conn_keep_alive |= SLICE_IS_CI(elem, "keep-alive");
                f->conn_upgrade |= SLICE_IS_CI(elem, "upgrade");
            }
        } else if (SLICE_IS_CI(name, "upgrade")) {
            f->upgrade_websocket |= http_list_has_token(value, "websocket");
        } else if (SLICE_IS_CI(name, "expect")) {
            if (SLICE_IS_CI(value, "100-continue"))
                f->expect_continue = true;
            else
                f->expect_other = true;
        }
    }
    if (f->content_length >= 0 && f->chunked)
        return HTTP_ERR_CL_AND_TE;
    return NULL;
}

static bool keep_alive(int version_minor, const struct fields *f)
{
    if (f->conn_close)
        return false;
    return version_minor == 1 || f->conn_keep_alive;
}

static const char *request_semantics(struct http_request *r)
{
    struct fields f;
    const char *err = read_fields(r->headers, r->n_headers, r->version_minor, &f);
    if (err)
        return err;
    r->content_length = f.content_length;
    r->chunked = f.chunked;
    if (r->form == HTTP_FORM_AUTHORITY) {
        if (f.chunked)
            return HTTP_ERR_BAD_TRANSFER_ENCODING;
        if (f.content_length > 0)
            return HTTP_ERR_BAD_CONTENT_LENGTH;
    }
    if (r->version_minor == 1 && f.expect_other) {
        r->error_status = 417;
        return HTTP_ERR_UNSUPPORTED_EXPECT;
    }
    r->expect_continue = r->version_minor == 1 && f.expect_continue;
    if (f.n_host == 0 && r->version_minor == 1)
        return HTTP_ERR_MISSING_HOST;
    if (f.n_host == 0 && (r->form == HTTP_FORM_ORIGIN || r->form == HTTP_FORM_ASTERISK))
        r->authority = r->host = (struct http_slice){r->target.ptr, 0};
    if (f.n_host) {
        struct http_slice host;
        uint16_t port;
        if (!parse_authority(f.host.ptr, f.host.len, false, &host, &port))
            return HTTP_ERR_BAD_HOST;
        if (r->form == HTTP_FORM_AUTHORITY) {
            /*
             * A CONNECT is routed on its target alone; clients disagree on
             * what its Host names (Node sends the proxy's address), so it is
             * only checked for syntax. Each request inside the tunnel must
             * name the tunnel's host, which the connection layer enforces.
             */
        } else if (r->form == HTTP_FORM_ABSOLUTE) {
            if (!slices_eq_ci(host.ptr, host.len, r->host.ptr, r->host.len) ||
                (port ? port : 80) != (r->port ? r->port : 80))
                return HTTP_ERR_HOST_MISMATCH;
        } else {
            r->authority = f.host;
            r->host = host;
            r->port = port;
        }
    }
    r->keep_alive = keep_alive(r->version_minor, &f);
    r->upgrade_websocket = r->version_minor == 1 && http_slice_eq(r->method, "GET") &&
                           f.conn_upgrade && f.upgrade_websocket;
    return NULL;
}

static const char *response_semantics(struct http_response *r, bool head_request)
{
    struct fields f;
    const char *err = read_fields(r->headers, r->n_headers, r->version_minor, &f);
    if (err)
        return err;
    r->content_length = f.content_length;
    r->chunked = f.chunked;
    r->keep_alive = keep_alive(r->version_minor, &f);
    r->upgrade_websocket = r->status_code == 101 && f.conn_upgrade && f.upgrade_websocket;
    if (r->status_code < 200 || r->status_code == 204) {
        /* These never carry content; one that claims to desyncs the connection. */
        if (f.chunked)
            return HTTP_ERR_BAD_TRANSFER_ENCODING;
        if (f.content_length > 0)
            return HTTP_ERR_BAD_CONTENT_LENGTH;
        r->body = HTTP_BODY_NONE;
    } else if (head_request || r->status_code == 304) {
        r->body = HTTP_BODY_NONE;
    } else if (f.chunked) {
        r->body = HTTP_BODY_CHUNKED;
    } else if (f.content_length >= 0) {
        r->body = HTTP_BODY_LENGTH;
    } else {
        r->body = HTTP_BODY_UNTIL_CLOSE;
        r->keep_alive = false;
    }
    return NULL;
}

/* ---- public parsers ------------------------------------------------------ */

/*
 * Header arrays are written before they are read (n_headers, n_spans), so a
 * reset clears only what precedes them: a few hundred bytes, not kilobytes.
 */
#define RESET_SIZE(type) (offsetof(type, scan) + offsetof(struct http_scan, spans))

void http_request_reset(struct http_request *req)
{
    memset(req, 0, RESET_SIZE(struct http_request));
    req->content_length = -1;
}

void http_response_reset(struct http_response *resp)
{
    memset(resp, 0, RESET_SIZE(struct http_response));
    resp->content_length = -1;
}

static int status_for(const char *err)
{
    if (strcmp(err, HTTP_ERR_REQUEST_LINE_TOO_LONG) == 0)
        return 414;
    if (strcmp(err, HTTP_ERR_HEADERS_TOO_LARGE) == 0 || strcmp(err, HTTP_ERR_TOO_MANY_HEADERS) == 0)
        return 431;
    return 400;
}

ssize_t http_parse_request(const char *buf, size_t len, struct http_request *out,
                           const struct http_limits *lim)
{
    struct http_limits l = effective_limits(lim);
    const char *err = NULL;
    if (out->scan.phase >= PHASE_DONE || out->scan.pos > len)
        http_request_reset(out);
    int rc = scan_head(&out->scan, buf, len, &l, parse_request_line, out, &err);
    if (rc == 0)
        return 0;
    if (rc > 0) {
        /* The start line was checked when it arrived; re-read it against this buffer. */
        parse_request_line(buf, out->scan.head_start - 2, out);
        spans_to_headers(&out->scan, buf, out->headers, &out->n_headers);
        err = request_semantics(out);
        if (!err)
            return (ssize_t)out->scan.pos;
        out->scan.phase = PHASE_ERROR;
    }
    out->error = err;
    if (!out->error_status)
        out->error_status = status_for(err);
    return -EBADMSG;
}

ssize_t http_parse_response(const char *buf, size_t len, bool head_request,
                            struct http_response *out, const struct http_limits *lim)
{
    struct http_limits l = effective_limits(lim);
    const char *err = NULL;
    if (out->scan.phase >= PHASE_DONE || out->scan.pos > len)
        http_response_reset(out);
    int rc = scan_head(&out->scan, buf, len, &l, parse_status_line, out, &err);
    if (rc == 0)
        return 0;
    if (rc > 0) {
        parse_status_line(buf, out->scan.head_start - 2, out);
        spans_to_headers(&out->scan, buf, out->headers, &out->n_headers);
        err = response_semantics(out, head_request);
        if (!err)
            return (ssize_t)out->scan.pos;
        out->scan.phase = PHASE_ERROR;
    }
    out->error = err;
    out->error_status = 502;
    return -EBADMSG;
}

enum http_body_kind http_request_body(const struct http_request *req)
{
    if (req->chunked)
        return HTTP_BODY_CHUNKED;
    return req->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
}

/* ---- chunked bodies ------------------------------------------------------ */

enum {
    CH_SIZE_START = 0,
    CH_SIZE,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_START,
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_VALUE_LF,
    CH_TRAILER_END_LF,
    CH_DONE,
    CH_ERROR,
};

void http_chunked_init(struct http_chunked *st, const struct http_limits *lim)
{
    memset(st, 0, sizeof(*st));
    st->lim = effective_limits(lim);
}

/* One framing byte (anything but chunk data); returns the error or NULL. */
static const char *chunked_byte(struct http_chunked *st, unsigned char c)
{
    if (st->state <= CH_EXT && ++st->line_len > st->lim.chunk_line_max && c != '\r')
        return HTTP_ERR_CHUNK_LINE_TOO_LONG;
    if (st->state >= CH_TRAILER_START && ++st->trailer_len > st->lim.trailer_block_max)
        return HTTP_ERR_TRAILERS_TOO_LARGE;
    int hex = hex_value(c);
    switch (st->state) {
    case CH_SIZE_START:
        if (hex < 0)
            return c == '\n' ? HTTP_ERR_BARE_LF : HTTP_ERR_BAD_CHUNK_SIZE;
        st->remaining = (uint64_t)hex;
        st->state = CH_SIZE;
        return NULL;
    case CH_SIZE:
        if (hex >= 0) {
            if (st->remaining > ((uint64_t)INT64_MAX - (uint64_t)hex) / 16)
                return HTTP_ERR_CHUNK_SIZE_TOO_LARGE;
            st->remaining = st->remaining * 16 + (uint64_t)hex;
        } else if (c == ';') {
            st->state = CH_EXT;
        } else if (c == '\r') {
            st->state = CH_SIZE_LF;
        } else {
            return c == '\n' ? HTTP_ERR_BARE_LF : HTTP_ERR_BAD_CHUNK_SIZE;
        }
        return NULL;
    case CH_EXT:
        if (c == '\r')
            st->state = CH_SIZE_LF;
        else if (c == '\n')
            return HTTP_ERR_BARE_LF;
        else if (c == '\0')
            return HTTP_ERR_NUL_BYTE;
        else if (!is_value_char(c))
            return HTTP_ERR_BAD_CHUNK_EXTENSION;
        return NULL;
    case CH_SIZE_LF:
        if (c != '\n')
            return HTTP_ERR_BARE_CR;
        st->line_len = 0;
        st->state = st->remaining ? CH_DATA : CH_TRAILER_START;
        return NULL;
    case CH_DATA_CR:
        st->state = CH_DATA_LF;
        return c == '\r' ? NULL : HTTP_ERR_MISSING_CHUNK_CRLF;
    case CH_DATA_LF:
        st->state = CH_SIZE_START;
        return c == '\n' ? NULL : HTTP_ERR_MISSING_CHUNK_CRLF;
    case CH_TRAILER_START:
        if (c == '\r') {
            st->state = CH_TRAILER_END_LF;
            return NULL;
        }
        if (!is_tchar(c))
            return c == '\n' ? HTTP_ERR_BARE_LF : c ? HTTP_ERR_BAD_TRAILER : HTTP_ERR_NUL_BYTE;
        if (++st->n_trailers > st->lim.max_headers)
            return HTTP_ERR_TRAILERS_TOO_LARGE;
        st->state = CH_TRAILER_NAME;
        return NULL;
    case CH_TRAILER_NAME:
        if (c == ':')
            st->state = CH_TRAILER_VALUE;
        else if (!is_tchar(c))
            return c == '\n' ? HTTP_ERR_BARE_LF : c ? HTTP_ERR_BAD_TRAILER : HTTP_ERR_NUL_BYTE;
        return NULL;
    case CH_TRAILER_VALUE:
        if (c == '\r')
            st->state = CH_TRAILER_VALUE_LF;
        else if (!is_value_char(c))
            return c == '\n' ? HTTP_ERR_BARE_LF : c ? HTTP_ERR_BAD_TRAILER : HTTP_ERR_NUL_BYTE;
        return NULL;
    case CH_TRAILER_VALUE_LF:
        st->state = CH_TRAILER_START;
        return c == '\n' ? NULL : HTTP_ERR_BARE_CR;
    case CH_TRAILER_END_LF:
        st->state = CH_DONE;
        return c == '\n' ? NULL : HTTP_ERR_BARE_CR;
    default:
        return HTTP_ERR_BAD_CHUNK_SIZE;
    }
}

int http_chunked_feed(struct http_chunked *st, const char *in, size_t len, size_t *consumed,
                      struct http_slice *data)
{
    size_t i = 0;
    *data = (struct http_slice){in, 0};
    while (i < len && st->state != CH_DONE && st->state != CH_ERROR) {
        if (st->state == CH_DATA) {
            size_t n = len - i;
            if (n > st->remaining)
                n = (size_t)st->remaining;
            *data = (struct http_slice){in + i, n};
            st->remaining -= n;
            if (st->remaining == 0)
                st->state = CH_DATA_CR;
            *consumed = i + n;
            return HTTP_CHUNKED_DATA;
        }
        const char *err = chunked_byte(st, (unsigned char)in[i++]);
        if (err) {
            st->error = err;
            st->state = CH_ERROR;
        }
    }
    *consumed = i;
    if (st->state == CH_ERROR)
        return HTTP_CHUNKED_ERROR;
    return st->state == CH_DONE ? HTTP_CHUNKED_DONE : HTTP_CHUNKED_MORE;
}

/* ---- serializing --------------------------------------------------------- */

static bool in_names(struct http_slice name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (http_slice_eq_ci(name, names[i]))
            return true;
    return false;
}

static bool named_by_connection(const struct http_header *h, size_t n, struct http_slice name)
{
    for (size_t i = 0; i < n; i++) {
        if (!http_slice_eq_ci(h[i].name, "connection"))
            continue;
        struct http_slice rest = h[i].value, elem;
        while (list_next(&rest, &elem))
            if (slices_eq_ci(elem.ptr, elem.len, name.ptr, name.len))
                return true;
    }
    return false;
}

static bool valid_field(const struct http_header *h)
{
    if (h->name.len == 0)
        return false;
    for (size_t i = 0; i < h->name.len; i++)
        if (!is_tchar((unsigned char)h->name.ptr[i]))
            return false;
    for (size_t i = 0; i < h->value.len; i++)
        if (!is_value_char((unsigned char)h->value.ptr[i]))
            return false;
    return true;
}

static void append_field(struct buf *out, struct http_slice name, struct http_slice value)
{
    buf_append(out, name.ptr, name.len);
    buf_append(out, ": ", 2);
    buf_append(out, value.ptr, value.len);
    buf_append(out, "\r\n", 2);
}

static void append_fields(struct buf *out, const struct http_header *h, size_t n, bool websocket,
                          const char *const *skip, size_t n_skip, const struct http_header *add,
                          size_t n_add)
{
    static const char *const hop_by_hop[] = {
        "connection", "proxy-connection", "proxy-authorization", "keep-alive", "te", "trailer"};
    static const char *const framing[] = {"content-length", "transfer-encoding", "host"};
    for (size_t i = 0; i < n; i++) {
        struct http_slice name = h[i].name;
        bool upgrade = http_slice_eq_ci(name, "upgrade");
        if (in_names(name, hop_by_hop, sizeof(hop_by_hop) / sizeof(hop_by_hop[0])) ||
            in_names(name, skip, n_skip) || (upgrade && !websocket))
            continue;
        if (!upgrade && !in_names(name, framing, sizeof(framing) / sizeof(framing[0])) &&
            named_by_connection(h, n, name))
            continue;
        append_field(out, name, h[i].value);
    }
    if (websocket)
        buf_append_str(out, "Connection: upgrade\r\n");
    for (size_t i = 0; i < n_add; i++)
        append_field(out, add[i].name, add[i].value);
}

static bool valid_fields(const struct http_header *add, size_t n_add)
{
    for (size_t i = 0; i < n_add; i++)
        if (!valid_field(&add[i]))
            return false;
    return true;
}

int http_request_write_head(struct buf *out, const struct http_request *req,
                            const char *const *skip, size_t n_skip, const struct http_header *add,
                            size_t n_add)
{
    if (!valid_fields(add, n_add))
        return -EINVAL;
    struct http_slice target = req->form == HTTP_FORM_ABSOLUTE ? req->path : req->target;
    buf_append(out, req->method.ptr, req->method.len);
    buf_append_char(out, ' ');
    buf_append(out, target.ptr, target.len);
    buf_append_str(out, " HTTP/1.1\r\n");
    append_fields(out, req->headers, req->n_headers, req->upgrade_websocket, skip, n_skip, add,
                  n_add);
    if (req->form == HTTP_FORM_ABSOLUTE && !http_header_find(req->headers, req->n_headers, "host"))
        append_field(out, (struct http_slice){"Host", 4}, req->authority);
    buf_append(out, "\r\n", 2);
    return 0;
}

int http_response_write_head(struct buf *out, const struct http_response *resp,
                             const char *const *skip, size_t n_skip, const struct http_header *add,
                             size_t n_add)
{
    if (!valid_fields(add, n_add))
        return -EINVAL;
    buf_printf(out, "HTTP/1.1 %03d ", resp->status_code);
    buf_append(out, resp->reason_phrase.ptr, resp->reason_phrase.len);
    buf_append(out, "\r\n", 2);
    append_fields(out, resp->headers, resp->n_headers, resp->upgrade_websocket, skip, n_skip, add,
                  n_add);
    buf_append(out, "\r\n", 2);
    return 0;
}
