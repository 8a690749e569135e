#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "sidecar/http.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ------------------------------------------------------------- */

static void assert_slice(struct http_slice s, const char *want)
{
    char *got = strndup(s.ptr ? s.ptr : "", s.len);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* Same bytes at the same offset of their respective buffers. */
static void assert_same_slice(struct http_slice a, const char *abase, struct http_slice b,
                              const char *bbase, size_t len)
{
    assert_int_equal(a.len, b.len);
    if (a.len == 0)
        return;
    assert_memory_equal(a.ptr, b.ptr, a.len);
    /* Slices point into their buffer, or both at the same static string. */
    uintptr_t ao = (uintptr_t)a.ptr - (uintptr_t)abase, bo = (uintptr_t)b.ptr - (uintptr_t)bbase;
    if (ao < len || bo < len)
        assert_int_equal(ao, bo);
    else
        assert_ptr_equal(a.ptr, b.ptr);
}

static void assert_same_request(const struct http_request *a, const char *abuf,
                                const struct http_request *b, const char *bbuf, size_t len)
{
    assert_same_slice(a->method, abuf, b->method, bbuf, len);
    assert_same_slice(a->target, abuf, b->target, bbuf, len);
    assert_same_slice(a->scheme, abuf, b->scheme, bbuf, len);
    assert_same_slice(a->authority, abuf, b->authority, bbuf, len);
    assert_same_slice(a->host, abuf, b->host, bbuf, len);
    assert_same_slice(a->path, abuf, b->path, bbuf, len);
    assert_int_equal(a->form, b->form);
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->version_minor, b->version_minor);
    assert_int_equal(a->n_headers, b->n_headers);
    for (size_t i = 0; i < a->n_headers; i++) {
        assert_same_slice(a->headers[i].name, abuf, b->headers[i].name, bbuf, len);
        assert_same_slice(a->headers[i].value, abuf, b->headers[i].value, bbuf, len);
    }
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->chunked, b->chunked);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->upgrade_websocket, b->upgrade_websocket);
    assert_int_equal(a->expect_continue, b->expect_continue);
}

/*
 * Feeds raw one byte at a time, each call with a fresh copy of the prefix so
 * the buffer moves (and the old one is freed), with one struct carried
 * across calls (resume) or a fresh one every time (restart). The first
 * non-zero answer must be the all-at-once answer.
 */
static void check_request_incremental(const char *raw, size_t len, bool resume)
{
    struct http_request *full = calloc(1, sizeof(*full));
    struct http_request *r = calloc(1, sizeof(*r));
    assert_non_null(full);
    assert_non_null(r);
    ssize_t want = http_parse_request(raw, len, full, NULL);
    char *prev = NULL;
    ssize_t rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        char *copy = malloc(i);
        assert_non_null(copy);
        memcpy(copy, raw, i);
        if (!resume)
            http_request_reset(r);
        rc = http_parse_request(copy, i, r, NULL);
        free(prev);
        prev = copy;
    }
    assert_int_equal(rc, want);
    if (rc < 0) {
        assert_string_equal(r->error, full->error);
        assert_int_equal(r->error_status, full->error_status);
    } else if (rc > 0) {
        assert_same_request(full, raw, r, prev, len);
    }
    free(prev);
    free(r);
    free(full);
}

static ssize_t parse_req(const char *raw, size_t len, struct http_request *r)
{
    http_request_reset(r);
    ssize_t rc = http_parse_request(raw, len, r, NULL);
    check_request_incremental(raw, len, true);
    check_request_incremental(raw, len, false);
    return rc;
}

/* ---- request rejections -------------------------------------------------- */

struct reject_case {
    const char *name;
    const char *raw;
    size_t len;
    const char *error;
    int status;
};

#define REJECT(name, raw, error, status)                                                           \
    {                                                                                              \
        name, raw, sizeof(raw) - 1, error, status                                                  \
    }
#define H "Host: a.example\r\n"

static const struct reject_case request_rejects[] = {
    /* Content-Length */
    REJECT("CL.CL same", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
           "duplicate_content_length", 400),
    REJECT("CL.CL differ", "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
           "conflicting_content_length", 400),
    REJECT("CL list", "POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", "bad_content_length",
           400),
    REJECT("CL negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n",
           "bad_content_length", 400),
    REJECT("CL plus", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", "bad_content_length",
           400),
    REJECT("CL hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", "bad_content_length",
           400),
    REJECT("CL empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", "bad_content_length",
           400),
    REJECT("CL inner space", "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n",
           "bad_content_length", 400),
    REJECT("CL overflow", "POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n",
           "bad_content_length", 400),
    REJECT("CL underscore", "POST / HTTP/1.1\r\n" H "Content_Length: 5\r\n\r\n", "bad_header_name",
           400),
    /* CL + TE */
    REJECT("CL.TE",
           "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           "cl_and_te", 400),
    REJECT("TE.CL",
           "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
           "cl_and_te", 400),
    /* TE.TE and obfuscated Transfer-Encoding */
    REJECT("TE chunked gzip", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE gzip chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE gzip", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE twice",
           "POST / HTTP/1.1\r\n" H
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE list twice", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE empty element", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE mixed case", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE parameter", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE inner space", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chun ked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE vertical tab",
           "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \x0b"
           "chunked\r\n\r\n",
           "bad_header_value", 400),
    REJECT("TE space before colon", "POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n",
           "bad_header_name", 400),
    REJECT("TE underscore", "POST / HTTP/1.1\r\n" H "Transfer_Encoding: chunked\r\n\r\n",
           "bad_header_name", 400),
    REJECT("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("TE folded", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n chunked\r\n\r\n",
           "obs_fold", 400),
    /* line framing */
    REJECT("obs-fold", "GET / HTTP/1.1\r\n" H "X-A: one\r\n two\r\n\r\n", "obs_fold", 400),
    REJECT("obs-fold tab", "GET / HTTP/1.1\r\n" H "X-A: one\r\n\ttwo\r\n\r\n", "obs_fold", 400),
    REJECT("space before first field", "GET / HTTP/1.1\r\n " H "\r\n", "obs_fold", 400),
    REJECT("bare LF request line", "GET / HTTP/1.1\n" H "\r\n", "bare_lf", 400),
    REJECT("bare LF field", "GET / HTTP/1.1\r\nHost: a.example\n\r\n", "bare_lf", 400),
    REJECT("bare LF end", "GET / HTTP/1.1\r\n" H "\n", "bare_lf", 400),
    REJECT("bare LF first byte", "\nGET / HTTP/1.1\r\n" H "\r\n", "bare_lf", 400),
    REJECT("bare CR field", "GET / HTTP/1.1\r\nHost: a.example\rX-A: b\r\n\r\n", "bare_cr", 400),
    REJECT("bare CR end", "GET / HTTP/1.1\r\n" H "\r\r\n", "bare_cr", 400),
    REJECT("bare CR request line", "GET /\r HTTP/1.1\r\n" H "\r\n", "bare_cr", 400),
    REJECT("NUL in name", "GET / HTTP/1.1\r\n" H "X-\0A: b\r\n\r\n", "nul_byte", 400),
    REJECT("NUL in value", "GET / HTTP/1.1\r\n" H "X-A: b\0c\r\n\r\n", "nul_byte", 400),
    REJECT("NUL in target", "GET /\0 HTTP/1.1\r\n" H "\r\n", "nul_byte", 400),
    /* field syntax */
    REJECT("space before colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", "bad_header_name",
           400),
    REJECT("tab before colon", "GET / HTTP/1.1\r\n" H "X-A\t: b\r\n\r\n", "bad_header_name", 400),
    REJECT("empty name", "GET / HTTP/1.1\r\n" H ": b\r\n\r\n", "bad_header_name", 400),
    REJECT("no colon", "GET / HTTP/1.1\r\n" H "X-A b\r\n\r\n", "bad_header_name", 400),
    REJECT("separator in name", "GET / HTTP/1.1\r\n" H "X(A): b\r\n\r\n", "bad_header_name", 400),
    REJECT("non-ASCII name", "GET / HTTP/1.1\r\n" H "X-\xc3\xa9: b\r\n\r\n", "bad_header_name",
           400),
    REJECT("control in value", "GET / HTTP/1.1\r\n" H "X-A: b\x01c\r\n\r\n", "bad_header_value",
           400),
    REJECT("DEL in value", "GET / HTTP/1.1\r\n" H "X-A: b\x7f\r\n\r\n", "bad_header_value", 400),
    REJECT("bad Connection token", "GET / HTTP/1.1\r\n" H "Connection: close, a b\r\n\r\n",
           "bad_connection", 400),
    /* request line */
    REJECT("empty line first", "\r\nGET / HTTP/1.1\r\n" H "\r\n", "bad_request_line", 400),
    REJECT("double space", "GET  / HTTP/1.1\r\n" H "\r\n", "bad_request_line", 400),
    REJECT("trailing space", "GET / HTTP/1.1 \r\n" H "\r\n", "bad_request_line", 400),
    REJECT("HTTP/0.9", "GET /\r\n\r\n", "bad_request_line", 400),
    REJECT("tab separator", "GET\t/ HTTP/1.1\r\n" H "\r\n", "bad_request_line", 400),
    REJECT("HTTP/1.2", "GET / HTTP/1.2\r\n" H "\r\n", "bad_version", 400),
    REJECT("HTTP/2.0", "GET / HTTP/2.0\r\n" H "\r\n", "bad_version", 400),
    REJECT("lower-case version", "GET / http/1.1\r\n" H "\r\n", "bad_version", 400),
    REJECT("HTTP/1.10", "GET / HTTP/1.10\r\n" H "\r\n", "bad_version", 400),
    REJECT("lower-case method", "get / HTTP/1.1\r\n" H "\r\n", "bad_method", 400),
    REJECT("separator in method", "G(T / HTTP/1.1\r\n" H "\r\n", "bad_method", 400),
    /* targets */
    REJECT("CONNECT without port", "CONNECT a.example HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("CONNECT empty port", "CONNECT a.example: HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("CONNECT port 0", "CONNECT a.example:0 HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("CONNECT port 65536", "CONNECT a.example:65536 HTTP/1.1\r\n" H "\r\n", "bad_target",
           400),
    REJECT("CONNECT origin-form", "CONNECT /x HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("CONNECT absolute-form", "CONNECT http://a.example:80/ HTTP/1.1\r\n" H "\r\n",
           "bad_target", 400),
    REJECT("CONNECT user info", "CONNECT u@a.example:443 HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("authority-form GET", "GET a.example:443 HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("asterisk GET", "GET * HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("https absolute", "GET https://a.example/ HTTP/1.1\r\n" H "\r\n",
           "https_requires_connect", 400),
    REJECT("ftp absolute", "GET ftp://a.example/ HTTP/1.1\r\n" H "\r\n", "unsupported_scheme", 400),
    REJECT("user info", "GET http://a.example@b.example/ HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("fragment", "GET /x#frag HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("dot-dot segment", "GET /a/../b HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("dot segment", "GET /a/./b HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("encoded dot-dot", "GET /a/%2e%2E/b HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("trailing dot-dot", "GET http://a.example/a/.. HTTP/1.1\r\n" H "\r\n", "bad_target",
           400),
    REJECT("bad percent", "GET /a%zz HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("short percent", "GET /a%2 HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("backslash", "GET /a\\b HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("query without path", "GET http://a.example?x=1 HTTP/1.1\r\n" H "\r\n", "bad_target",
           400),
    REJECT("empty host", "GET http:///x HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("empty port", "GET http://a.example:/x HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("relative target", "GET x HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("bad IPv6", "GET http://[::g]/ HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    REJECT("IPv6 zone", "GET http://[fe80::1%25eth0]/ HTTP/1.1\r\n" H "\r\n", "bad_target", 400),
    /* Host */
    REJECT("missing Host", "GET / HTTP/1.1\r\n\r\n", "missing_host", 400),
    REJECT("missing Host CONNECT", "CONNECT a.example:443 HTTP/1.1\r\n\r\n", "missing_host", 400),
    REJECT("two Host", "GET / HTTP/1.1\r\n" H H "\r\n", "multiple_host", 400),
    REJECT("two Host differ", "GET / HTTP/1.1\r\n" H "Host: b.example\r\n\r\n", "multiple_host",
           400),
    REJECT("empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", "bad_host", 400),
    REJECT("Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "bad_host", 400),
    REJECT("Host bad port", "GET / HTTP/1.1\r\nHost: a.example:99999\r\n\r\n", "bad_host", 400),
    REJECT("Host user info", "GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n", "bad_host", 400),
    REJECT("absolute Host mismatch", "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
           "host_mismatch", 400),
    REJECT("absolute port mismatch",
           "GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "host_mismatch", 400),
    REJECT("absolute default port mismatch",
           "GET http://a.example/ HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", "host_mismatch", 400),
    REJECT("CONNECT with a malformed Host", "CONNECT a.example:443 HTTP/1.1\r\nHost: a b\r\n\r\n",
           "bad_host", 400),
    /* CONNECT bodies, Expect */
    REJECT("CONNECT chunked",
           "CONNECT a.example:443 HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n",
           "bad_transfer_encoding", 400),
    REJECT("CONNECT body", "CONNECT a.example:443 HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n",
           "bad_content_length", 400),
    REJECT("unknown Expect", "POST / HTTP/1.1\r\n" H "Expect: 200-ok\r\nContent-Length: 1\r\n\r\n",
           "unsupported_expect", 417),
};

static void test_request_rejections(void **state)
{
    (void)state;
    struct http_request r;
    for (size_t i = 0; i < sizeof(request_rejects) / sizeof(request_rejects[0]); i++) {
        const struct reject_case *c = &request_rejects[i];
        ssize_t rc = parse_req(c->raw, c->len, &r);
        if (rc >= 0 || !r.error || strcmp(r.error, c->error) != 0 || r.error_status != c->status)
            fail_msg("%s: want %s/%d, got rc=%zd %s/%d", c->name, c->error, c->status, rc,
                     r.error ? r.error : "(none)", r.error_status);
        assert_int_equal(rc, -EBADMSG);
    }
}

/* ---- limits -------------------------------------------------------------- */

static char *request_with_target(size_t target_len)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "GET /");
    for (size_t i = 1; i < target_len; i++)
        buf_append_char(&b, 'a');
    buf_append_str(&b, " HTTP/1.1\r\n" H "\r\n");
    return buf_steal(&b);
}

static void test_request_line_limit(void **state)
{
    (void)state;
    struct http_request r;
    /* "GET " + target + " HTTP/1.1" is exactly 8192 bytes: accepted. */
    char *ok = request_with_target(8192 - 13);
    http_request_reset(&r);
    assert_true(http_parse_request(ok, strlen(ok), &r, NULL) > 0);
    char *over = request_with_target(8192 - 12);
    http_request_reset(&r);
    assert_int_equal(parse_req(over, strlen(over), &r), -EBADMSG);
    assert_string_equal(r.error, "request_line_too_long");
    assert_int_equal(r.error_status, 414);
    /* Refused before the line ends: the client cannot make the proxy buffer more. */
    http_request_reset(&r);
    assert_int_equal(http_parse_request(over, 8193, &r, NULL), -EBADMSG);
    assert_string_equal(r.error, "request_line_too_long");
    /* A smaller configured limit applies. */
    struct http_limits lim = HTTP_LIMITS_DEFAULT;
    lim.request_line_max = 16;
    http_request_reset(&r);
    assert_int_equal(http_parse_request(S("GET /0123456 HTTP/1.1\r\n" H "\r\n"), &r, &lim),
                     -EBADMSG);
    assert_string_equal(r.error, "request_line_too_long");
    free(ok);
    free(over);
}

static char *request_with_headers(size_t n_headers, size_t value_len)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "GET / HTTP/1.1\r\n" H);
    for (size_t i = 1; i < n_headers; i++) {
        buf_printf(&b, "X-%04zu: ", i);
        for (size_t j = 0; j < value_len; j++)
            buf_append_char(&b, 'v');
        buf_append_str(&b, "\r\n");
    }
    buf_append_str(&b, "\r\n");
    return buf_steal(&b);
}

static void test_header_limits(void **state)
{
    (void)state;
    struct http_request r;
    char *hundred = request_with_headers(100, 1);
    assert_true(parse_req(hundred, strlen(hundred), &r) > 0);
    assert_int_equal(r.n_headers, 100);
    char *too_many = request_with_headers(101, 1);
    assert_int_equal(parse_req(too_many, strlen(too_many), &r), -EBADMSG);
    assert_string_equal(r.error, "too_many_headers");
    assert_int_equal(r.error_status, 431);

    /* 17 (Host) + 63 lines of 1024 + 2 (end) = 64531 bytes: fits; 64 lines do not. */
    char *big = request_with_headers(64, 1024 - 10);
    http_request_reset(&r);
    assert_true(http_parse_request(big, strlen(big), &r, NULL) > 0);
    char *too_big = request_with_headers(65, 1024 - 10);
    http_request_reset(&r);
    assert_int_equal(http_parse_request(too_big, strlen(too_big), &r, NULL), -EBADMSG);
    assert_string_equal(r.error, "headers_too_large");
    assert_int_equal(r.error_status, 431);

    /* Exactly at the block limit: the empty line's CRLF counts. */
    struct http_limits lim = HTTP_LIMITS_DEFAULT;
    lim.header_block_max = strlen(H) + 2;
    http_request_reset(&r);
    assert_true(http_parse_request(S("GET / HTTP/1.1\r\n" H "\r\n"), &r, &lim) > 0);
    lim.header_block_max--;
    http_request_reset(&r);
    assert_int_equal(http_parse_request(S("GET / HTTP/1.1\r\n" H "\r\n"), &r, &lim), -EBADMSG);
    assert_string_equal(r.error, "headers_too_large");
    lim = (struct http_limits)HTTP_LIMITS_DEFAULT;
    lim.max_headers = 1;
    http_request_reset(&r);
    assert_int_equal(http_parse_request(S("GET / HTTP/1.1\r\n" H "A: b\r\n\r\n"), &r, &lim),
                     -EBADMSG);
    assert_string_equal(r.error, "too_many_headers");
    free(hundred);
    free(too_many);
    free(big);
    free(too_big);
}

/* ---- valid requests ------------------------------------------------------ */

static void test_absolute_form(void **state)
{
    (void)state;
    struct http_request r;
    const char raw[] = "GET http://API.example.com:8080/v1/x?q=1&b={a|b} HTTP/1.1\r\n"
                       "Host: api.example.com:8080\r\n"
                       "X-Empty:\r\n"
                       "X-Pad: \t spaced value \t\r\n"
                       "X-Latin: caf\xe9\r\n"
                       "\r\n"
                       "BODY";
    assert_int_equal(parse_req(raw, sizeof(raw) - 1, &r), sizeof(raw) - 1 - 4);
    assert_null(r.error);
    assert_slice(r.method, "GET");
    assert_int_equal(r.form, HTTP_FORM_ABSOLUTE);
    assert_slice(r.scheme, "http");
    assert_slice(r.authority, "API.example.com:8080");
    assert_slice(r.host, "API.example.com");
    assert_int_equal(r.port, 8080);
    assert_slice(r.path, "/v1/x?q=1&b={a|b}");
    assert_int_equal(r.version_minor, 1);
    assert_int_equal(r.n_headers, 4);
    assert_slice(r.headers[1].name, "X-Empty");
    assert_slice(r.headers[1].value, "");
    assert_slice(r.headers[2].value, "spaced value");
    assert_slice(r.headers[3].value, "caf\xe9");
    assert_int_equal(r.content_length, -1);
    assert_false(r.chunked);
    assert_true(r.keep_alive);
    assert_int_equal(http_request_body(&r), HTTP_BODY_NONE);
    assert_ptr_equal(http_header_find(r.headers, r.n_headers, "x-pad"), &r.headers[2]);
    assert_null(http_header_find(r.headers, r.n_headers, "x-none"));

    /* No path: "/"; IPv6 literal host. */
    assert_true(parse_req(S("GET http://a.example HTTP/1.1\r\nHost: a.example:80\r\n\r\n"), &r) >
                0);
    assert_slice(r.path, "/");
    assert_int_equal(r.port, 0);
    assert_true(parse_req(S("HEAD http://[::1]:8080/x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), &r) >
                0);
    assert_slice(r.host, "::1");
    assert_slice(r.authority, "[::1]:8080");
    assert_int_equal(r.port, 8080);
    /* HTTP/1.0 without Host. */
    assert_true(parse_req(S("GET HTTP://a.example/ HTTP/1.0\r\n\r\n"), &r) > 0);
    assert_slice(r.scheme, "HTTP");
    assert_slice(r.host, "a.example");
    assert_false(r.keep_alive);
}

static void test_connect_and_origin_form(void **state)
{
    (void)state;
    struct http_request r;
    assert_true(parse_req(S("CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
                            "Proxy-Connection: keep-alive\r\n\r\n"),
                          &r) > 0);
    assert_int_equal(r.form, HTTP_FORM_AUTHORITY);
    assert_slice(r.host, "api.example.com");
    assert_int_equal(r.port, 443);
    assert_slice(r.authority, "api.example.com:443");
    /* A Host without a port means 443 for CONNECT. */
    assert_true(parse_req(S("CONNECT a.example:443 HTTP/1.1\r\nHost: A.EXAMPLE\r\n\r\n"), &r) > 0);
    assert_true(parse_req(S("CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n"
                            "Content-Length: 0\r\n\r\n"),
                          &r) > 0);
    assert_slice(r.host, "2001:db8::1");

    assert_true(parse_req(S("POST /v1/messages?beta=true HTTP/1.1\r\n"
                            "Host: api.example.com:8443\r\nContent-Length: 12\r\n\r\n"),
                          &r) > 0);
    assert_int_equal(r.form, HTTP_FORM_ORIGIN);
    assert_slice(r.path, "/v1/messages?beta=true");
    assert_slice(r.host, "api.example.com");
    assert_int_equal(r.port, 8443);
    assert_int_equal(r.content_length, 12);
    assert_int_equal(http_request_body(&r), HTTP_BODY_LENGTH);
    /* Dots inside segments and in the query are fine; "//" is a path. */
    assert_true(parse_req(S("GET //a/.x/..y/b.?p=../.. HTTP/1.1\r\n" H "\r\n"), &r) > 0);
    assert_true(parse_req(S("OPTIONS * HTTP/1.1\r\n" H "\r\n"), &r) > 0);
    assert_int_equal(r.form, HTTP_FORM_ASTERISK);
    assert_true(parse_req(S("M-SEARCH / HTTP/1.1\r\n" H "\r\n"), &r) > 0);
    assert_slice(r.method, "M-SEARCH");
    /* HTTP/1.0 origin-form without Host: host is left to the tunnel. */
    assert_true(parse_req(S("GET / HTTP/1.0\r\n\r\n"), &r) > 0);
    assert_int_equal(r.host.len, 0);
}

static void test_framing_fields(void **state)
{
    (void)state;
    struct http_request r;
    assert_true(
        parse_req(S("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \t chunked \t\r\n\r\n"), &r) > 0);
    assert_true(r.chunked);
    assert_int_equal(r.content_length, -1);
    assert_int_equal(http_request_body(&r), HTTP_BODY_CHUNKED);
    assert_true(parse_req(S("POST / HTTP/1.1\r\n" H "content-length: 0007\r\n\r\n"), &r) > 0);
    assert_int_equal(r.content_length, 7);
    assert_true(parse_req(S("POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775807\r\n\r\n"),
                          &r) > 0);
    assert_int_equal(r.content_length, INT64_MAX);
    assert_true(parse_req(S("POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n"), &r) > 0);
    assert_int_equal(http_request_body(&r), HTTP_BODY_NONE);
}

struct flags_case {
    const char *raw;
    size_t len;
    bool keep_alive, websocket, expect_continue;
};

#define FLAGS(raw, ka, ws, ec)                                                                     \
    {                                                                                              \
        raw, sizeof(raw) - 1, ka, ws, ec                                                           \
    }

static const struct flags_case flags_cases[] = {
    FLAGS("GET / HTTP/1.1\r\n" H "\r\n", true, false, false),
    FLAGS("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n", false, false, false),
    FLAGS("GET / HTTP/1.1\r\n" H "Connection: Keep-Alive, CLOSE\r\n\r\n", false, false, false),
    FLAGS("GET / HTTP/1.1\r\n" H "Connection: keep-alive\r\nConnection: close\r\n\r\n", false,
          false, false),
    FLAGS("GET / HTTP/1.0\r\n\r\n", false, false, false),
    FLAGS("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, false, false),
    FLAGS("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false, false, false),
    FLAGS("GET / HTTP/1.1\r\n" H "Proxy-Connection: close\r\n\r\n", true, false, false),
    FLAGS("GET /ws HTTP/1.1\r\n" H "Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
          true, true, false),
    FLAGS("GET /ws HTTP/1.1\r\n" H "Upgrade: websocket\r\n\r\n", true, false, false),
    FLAGS("POST /ws HTTP/1.1\r\n" H "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n", true,
          false, false),
    FLAGS("GET / HTTP/1.1\r\n" H "Connection: upgrade\r\nUpgrade: h2c\r\n\r\n", true, false, false),
    FLAGS("PUT / HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n", true, false,
          true),
    FLAGS("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", false, false,
          false),
};

static void test_connection_flags(void **state)
{
    (void)state;
    struct http_request r;
    for (size_t i = 0; i < sizeof(flags_cases) / sizeof(flags_cases[0]); i++) {
        const struct flags_case *c = &flags_cases[i];
        if (parse_req(c->raw, c->len, &r) <= 0)
            fail_msg("case %zu refused: %s", i, r.error);
        if (r.keep_alive != c->keep_alive || r.upgrade_websocket != c->websocket ||
            r.expect_continue != c->expect_continue)
            fail_msg("case %zu: keep_alive=%d websocket=%d expect=%d", i, r.keep_alive,
                     r.upgrade_websocket, r.expect_continue);
    }
}

static void test_pipelined_requests(void **state)
{
    (void)state;
    const char raw[] = "POST /a HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello"
                       "POST /b HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n"
                       "GET /c HTTP/1.1\r\n" H "Connection: close\r\n\r\n"
                       "GET /d HTT";
    size_t len = sizeof(raw) - 1, off = 0;
    struct http_request r;
    http_request_reset(&r);

    ssize_t n = http_parse_request(raw + off, len - off, &r, NULL);
    assert_true(n > 0);
    assert_slice(r.path, "/a");
    off += (size_t)n + (size_t)r.content_length;

    n = http_parse_request(raw + off, len - off, &r, NULL);
    assert_true(n > 0);
    assert_slice(r.path, "/b");
    assert_true(r.chunked);
    off += (size_t)n;
    struct http_chunked ch;
    http_chunked_init(&ch, NULL);
    size_t used;
    struct http_slice data;
    assert_int_equal(http_chunked_feed(&ch, raw + off, len - off, &used, &data), HTTP_CHUNKED_DATA);
    assert_slice(data, "abc");
    off += used;
    assert_int_equal(http_chunked_feed(&ch, raw + off, len - off, &used, &data), HTTP_CHUNKED_DONE);
    off += used;

    n = http_parse_request(raw + off, len - off, &r, NULL);
    assert_true(n > 0);
    assert_slice(r.path, "/c");
    assert_false(r.keep_alive);
    off += (size_t)n;
    assert_int_equal(http_parse_request(raw + off, len - off, &r, NULL), 0);
    assert_slice((struct http_slice){raw + off, len - off}, "GET /d HTT");
}

/* A caller that shortens the buffer between calls starts over instead of reading stale state. */
static void test_reset_on_shorter_buffer(void **state)
{
    (void)state;
    struct http_request r;
    http_request_reset(&r);
    assert_int_equal(http_parse_request(S("GET / HTTP/1.1\r\nHost: a"), &r, NULL), 0);
    assert_int_equal(http_parse_request(S("PUT / HT"), &r, NULL), 0);
    assert_true(http_parse_request(S("PUT / HTTP/1.1\r\n" H "\r\n"), &r, NULL) > 0);
    assert_slice(r.method, "PUT");
}

/* ---- responses ----------------------------------------------------------- */

static ssize_t parse_resp(const char *raw, size_t len, bool head, struct http_response *r)
{
    http_response_reset(r);
    ssize_t want = http_parse_response(raw, len, head, r, NULL);
    /* One byte at a time gives the same answer. */
    struct http_response *inc = calloc(1, sizeof(*inc));
    assert_non_null(inc);
    ssize_t rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++)
        rc = http_parse_response(raw, i, head, inc, NULL);
    assert_int_equal(rc, want);
    if (rc < 0)
        assert_string_equal(inc->error, r->error);
    else if (rc > 0)
        assert_int_equal(inc->body, r->body);
    free(inc);
    return want;
}

static const struct reject_case response_rejects[] = {
    REJECT("short code", "HTTP/1.1 20 OK\r\n\r\n", "bad_status_line", 502),
    REJECT("code 600", "HTTP/1.1 600 Odd\r\n\r\n", "bad_status_line", 502),
    REJECT("code 099", "HTTP/1.1 099 Odd\r\n\r\n", "bad_status_line", 502),
    REJECT("no space after code", "HTTP/1.1 200OK\r\n\r\n", "bad_status_line", 502),
    REJECT("no code", "HTTP/1.1\r\n\r\n", "bad_status_line", 502),
    REJECT("control in phrase", "HTTP/1.1 200 O\x01K\r\n\r\n", "bad_status_line", 502),
    REJECT("HTTP/2", "HTTP/2 200 OK\r\n\r\n", "bad_version", 502),
    REJECT("HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", "bad_version", 502),
    REJECT("CL.CL", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
           "duplicate_content_length", 502),
    REJECT("CL.CL differ", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "conflicting_content_length", 502),
    REJECT("CL.TE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           "cl_and_te", 502),
    REJECT("TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           "bad_transfer_encoding", 502),
    REJECT("TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           "bad_transfer_encoding", 502),
    REJECT("204 chunked", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
           "bad_transfer_encoding", 502),
    REJECT("204 with length", "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
           "bad_content_length", 502),
    REJECT("obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", "obs_fold", 502),
    REJECT("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", "bare_lf", 502),
    REJECT("NUL", "HTTP/1.1 200 OK\r\nX-A: \0\r\n\r\n", "nul_byte", 502),
};

static void test_response_rejections(void **state)
{
    (void)state;
    struct http_response r;
    for (size_t i = 0; i < sizeof(response_rejects) / sizeof(response_rejects[0]); i++) {
        const struct reject_case *c = &response_rejects[i];
        ssize_t rc = parse_resp(c->raw, c->len, false, &r);
        if (rc >= 0 || !r.error || strcmp(r.error, c->error) != 0 || r.error_status != c->status)
            fail_msg("%s: want %s, got rc=%zd %s", c->name, c->error, rc,
                     r.error ? r.error : "(none)");
    }
}

struct body_case {
    const char *raw;
    size_t len;
    bool head;
    enum http_body_kind body;
    bool keep_alive;
};

#define BODY(raw, head, body, ka)                                                                  \
    {                                                                                              \
        raw, sizeof(raw) - 1, head, body, ka                                                       \
    }

static const struct body_case body_cases[] = {
    BODY("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, HTTP_BODY_LENGTH, true),
    BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, HTTP_BODY_CHUNKED, true),
    BODY("HTTP/1.1 200 OK\r\n\r\n", false, HTTP_BODY_UNTIL_CLOSE, false),
    BODY("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", false,
         HTTP_BODY_LENGTH, true),
    BODY("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, HTTP_BODY_LENGTH, false),
    BODY("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false, HTTP_BODY_NONE, true),
    BODY("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", false, HTTP_BODY_NONE, true),
    BODY("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, HTTP_BODY_NONE, true),
    BODY("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true, HTTP_BODY_NONE, true),
    BODY("HTTP/1.1 100 Continue\r\n\r\n", false, HTTP_BODY_NONE, true),
    BODY("HTTP/1.1 200\r\nContent-Length: 1\r\nConnection: close\r\n\r\n", false, HTTP_BODY_LENGTH,
         false),
};

static void test_response_bodies(void **state)
{
    (void)state;
    struct http_response r;
    for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
        const struct body_case *c = &body_cases[i];
        if (parse_resp(c->raw, c->len, c->head, &r) != (ssize_t)c->len)
            fail_msg("case %zu refused: %s", i, r.error);
        if (r.body != c->body || r.keep_alive != c->keep_alive)
            fail_msg("case %zu: body=%d keep_alive=%d", i, r.body, r.keep_alive);
    }
    assert_true(parse_resp(S("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             "Upgrade: websocket\r\n\r\n"),
                           false, &r) > 0);
    assert_true(r.upgrade_websocket);
    assert_int_equal(r.status_code, 101);
    assert_slice(r.reason_phrase, "Switching Protocols");
    assert_true(parse_resp(S("HTTP/1.1 404 \r\n\r\n"), false, &r) > 0);
    assert_int_equal(r.status_code, 404);
    assert_slice(r.reason_phrase, "");
}

/* ---- chunked bodies ------------------------------------------------------ */

struct chunked_run {
    int rc;
    size_t consumed;
    struct buf data;
    const char *error;
};

/* Feeds raw[0..len) in pieces cut at the given offsets (ascending), collecting the data. */
static void chunked_run(const char *raw, size_t len, const size_t *cuts, size_t n_cuts,
                        const struct http_limits *lim, struct chunked_run *out)
{
    struct http_chunked st;
    http_chunked_init(&st, lim);
    out->rc = HTTP_CHUNKED_MORE;
    out->consumed = 0;
    out->data = (struct buf)BUF_INIT;
    out->error = NULL;
    size_t start = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t end = k < n_cuts ? cuts[k] : len;
        /* Each piece lives in its own allocation so reads past it are caught. */
        char *piece = malloc(end - start + 1);
        assert_non_null(piece);
        memcpy(piece, raw + start, end - start);
        size_t off = 0;
        while (out->rc != HTTP_CHUNKED_DONE && out->rc != HTTP_CHUNKED_ERROR) {
            size_t used = 0;
            struct http_slice data;
            out->rc = http_chunked_feed(&st, piece + off, end - start - off, &used, &data);
            assert_true(used <= end - start - off);
            if (data.len) {
                assert_int_equal(out->rc, HTTP_CHUNKED_DATA);
                assert_true(data.ptr >= piece + off && data.ptr + data.len <= piece + off + used);
                buf_append(&out->data, data.ptr, data.len);
            }
            off += used;
            out->consumed += used;
            if (out->rc == HTTP_CHUNKED_MORE)
                break;
        }
        free(piece);
        start = end;
        if (out->rc == HTTP_CHUNKED_DONE || out->rc == HTTP_CHUNKED_ERROR)
            break;
    }
    out->error = st.error;
}

static const char chunked_sample[] = "4;name=value\r\nWiki\r\n"
                                     "05\r\npedia\r\n"
                                     "E;a=\"quoted\";b\r\n in\r\n\r\nchunks.\r\n"
                                     "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                                     "0;last\r\n"
                                     "X-Checksum: abc\r\nX-Empty:\r\n"
                                     "\r\n"
                                     "NEXT REQUEST";
static const char chunked_decoded[] = "Wikipedia in\r\n\r\nchunks.abcdefghijklmnopqrstuvwxyz";

static void expect_sample_decoded(const struct chunked_run *run)
{
    assert_int_equal(run->rc, HTTP_CHUNKED_DONE);
    assert_int_equal(run->consumed, sizeof(chunked_sample) - 1 - strlen("NEXT REQUEST"));
    assert_int_equal(run->data.len, sizeof(chunked_decoded) - 1);
    assert_memory_equal(run->data.data, chunked_decoded, run->data.len);
}

static void test_chunked_every_split(void **state)
{
    (void)state;
    size_t len = sizeof(chunked_sample) - 1;
    struct chunked_run run;
    chunked_run(chunked_sample, len, NULL, 0, NULL, &run);
    expect_sample_decoded(&run);
    buf_free(&run.data);
    for (size_t cut = 0; cut <= len; cut++) {
        chunked_run(chunked_sample, len, &cut, 1, NULL, &run);
        expect_sample_decoded(&run);
        buf_free(&run.data);
    }
    for (size_t a = 1; a < len; a += 3)
        for (size_t b = a; b < len; b += 5) {
            size_t cuts[2] = {a, b};
            chunked_run(chunked_sample, len, cuts, 2, NULL, &run);
            expect_sample_decoded(&run);
            buf_free(&run.data);
        }
    size_t *all = calloc(len, sizeof(size_t));
    assert_non_null(all);
    for (size_t i = 0; i < len; i++)
        all[i] = i + 1;
    chunked_run(chunked_sample, len, all, len - 1, NULL, &run);
    expect_sample_decoded(&run);
    buf_free(&run.data);
    free(all);
}

struct chunked_case {
    const char *name;
    const char *raw;
    size_t len;
    int rc;
    const char *error; /* for ERROR */
};

#define CHUNK(name, raw, rc, error)                                                                \
    {                                                                                              \
        name, raw, sizeof(raw) - 1, rc, error                                                      \
    }

static const struct chunked_case chunked_cases[] = {
    CHUNK("empty body", "0\r\n\r\n", HTTP_CHUNKED_DONE, NULL),
    CHUNK("upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", HTTP_CHUNKED_DONE, NULL),
    CHUNK("largest size", "7fffffffffffffff\r\n", HTTP_CHUNKED_MORE, NULL),
    CHUNK("leading zeros", "00000000000000000000001\r\nx\r\n0\r\n\r\n", HTTP_CHUNKED_DONE, NULL),
    CHUNK("extension on last", "0;x=y\r\n\r\n", HTTP_CHUNKED_DONE, NULL),
    CHUNK("minus", "-5\r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("plus", "+5\r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("leading space", " 5\r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("trailing space", "5 \r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("space before ext", "5 ;a\r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("tab", "5\t\r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("non-hex", "g\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("empty size", "\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_size"),
    CHUNK("bare LF after size", "5\nhello\r\n", HTTP_CHUNKED_ERROR, "bare_lf"),
    CHUNK("bare CR after size", "5\rhello\r\n", HTTP_CHUNKED_ERROR, "bare_cr"),
    CHUNK("2^63", "8000000000000000\r\n", HTTP_CHUNKED_ERROR, "chunk_size_too_large"),
    CHUNK("2^64", "10000000000000000\r\n", HTTP_CHUNKED_ERROR, "chunk_size_too_large"),
    CHUNK("huge", "ffffffffffffffffffff\r\n", HTTP_CHUNKED_ERROR, "chunk_size_too_large"),
    CHUNK("data too long", "5\r\nhelloX\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "missing_chunk_crlf"),
    CHUNK("data LF only", "5\r\nhello\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "missing_chunk_crlf"),
    CHUNK("data CR only", "5\r\nhello\r0\r\n\r\n", HTTP_CHUNKED_ERROR, "missing_chunk_crlf"),
    CHUNK("control in ext", "1;a\x01\r\nx\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_chunk_extension"),
    CHUNK("NUL in ext", "1;a\0\r\nx\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "nul_byte"),
    CHUNK("bare LF in ext", "1;a\nx\r\n0\r\n\r\n", HTTP_CHUNKED_ERROR, "bare_lf"),
    CHUNK("trailer fold", "0\r\nX-A: b\r\n c\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_trailer"),
    CHUNK("trailer space in name", "0\r\nX A: b\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_trailer"),
    CHUNK("trailer no colon", "0\r\nX-A\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_trailer"),
    CHUNK("trailer control", "0\r\nX-A: \x01\r\n\r\n", HTTP_CHUNKED_ERROR, "bad_trailer"),
    CHUNK("trailer NUL", "0\r\nX-A: \0\r\n\r\n", HTTP_CHUNKED_ERROR, "nul_byte"),
    CHUNK("trailer bare LF", "0\r\nX-A: b\n\r\n", HTTP_CHUNKED_ERROR, "bare_lf"),
    CHUNK("trailer bare CR", "0\r\nX-A: b\rc\r\n\r\n", HTTP_CHUNKED_ERROR, "bare_cr"),
    CHUNK("end bare LF", "0\r\n\n", HTTP_CHUNKED_ERROR, "bare_lf"),
    CHUNK("end bare CR", "0\r\n\rX", HTTP_CHUNKED_ERROR, "bare_cr"),
};

static void test_chunked_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chunked_cases) / sizeof(chunked_cases[0]); i++) {
        const struct chunked_case *c = &chunked_cases[i];
        struct chunked_run whole, bytes;
        chunked_run(c->raw, c->len, NULL, 0, NULL, &whole);
        size_t *all = calloc(c->len + 1, sizeof(size_t));
        assert_non_null(all);
        for (size_t k = 0; k + 1 < c->len; k++)
            all[k] = k + 1;
        chunked_run(c->raw, c->len, all, c->len ? c->len - 1 : 0, NULL, &bytes);
        free(all);
        if (whole.rc != c->rc || (c->error && (!whole.error || strcmp(whole.error, c->error))))
            fail_msg("%s: want %d %s, got %d %s", c->name, c->rc, c->error ? c->error : "",
                     whole.rc, whole.error ? whole.error : "");
        assert_int_equal(bytes.rc, whole.rc);
        assert_int_equal(bytes.consumed, whole.consumed);
        assert_int_equal(bytes.data.len, whole.data.len);
        if (c->error)
            assert_string_equal(bytes.error, c->error);
        buf_free(&whole.data);
        buf_free(&bytes.data);
    }
}

static void test_chunked_limits(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    struct chunked_run run;
    /* Extensions up to the line limit pass; one byte more does not. */
    buf_append_str(&b, "1;");
    for (size_t i = 2; i < 4096; i++)
        buf_append_char(&b, 'e');
    buf_append_str(&b, "\r\nx\r\n0\r\n\r\n");
    chunked_run(b.data, b.len, NULL, 0, NULL, &run);
    assert_int_equal(run.rc, HTTP_CHUNKED_DONE);
    buf_free(&run.data);
    buf_reset(&b);
    buf_append_str(&b, "1;");
    for (size_t i = 2; i < 4097; i++)
        buf_append_char(&b, 'e');
    buf_append_str(&b, "\r\nx\r\n0\r\n\r\n");
    chunked_run(b.data, b.len, NULL, 0, NULL, &run);
    assert_int_equal(run.rc, HTTP_CHUNKED_ERROR);
    assert_string_equal(run.error, "chunk_line_too_long");
    assert_int_equal(run.consumed, 4097);
    buf_free(&run.data);
    /* Endless leading zeros are bounded by the same limit. */
    buf_reset(&b);
    for (size_t i = 0; i < 5000; i++)
        buf_append_char(&b, '0');
    chunked_run(b.data, b.len, NULL, 0, NULL, &run);
    assert_string_equal(run.error, "chunk_line_too_long");
    buf_free(&run.data);
    /* Trailers: by size and by count. */
    struct http_limits lim = HTTP_LIMITS_DEFAULT;
    lim.trailer_block_max = 12;
    chunked_run(S("0\r\nX-A: 1234\r\n\r\n"), NULL, 0, &lim, &run);
    assert_string_equal(run.error, "trailers_too_large");
    buf_free(&run.data);
    chunked_run(S("0\r\nX-A: 123\r\n\r\n"), NULL, 0, &lim, &run);
    assert_int_equal(run.rc, HTTP_CHUNKED_DONE);
    buf_free(&run.data);
    lim = (struct http_limits)HTTP_LIMITS_DEFAULT;
    lim.max_headers = 2;
    chunked_run(S("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), NULL, 0, &lim, &run);
    assert_string_equal(run.error, "trailers_too_large");
    buf_free(&run.data);
    buf_free(&b);
}

static void test_chunked_after_end(void **state)
{
    (void)state;
    struct http_chunked st;
    http_chunked_init(&st, NULL);
    size_t used;
    struct http_slice data;
    assert_int_equal(http_chunked_feed(&st, S("0\r\n\r\nGET"), &used, &data), HTTP_CHUNKED_DONE);
    assert_int_equal(used, 5);
    assert_int_equal(data.len, 0);
    assert_int_equal(http_chunked_feed(&st, S("GET"), &used, &data), HTTP_CHUNKED_DONE);
    assert_int_equal(used, 0);
    http_chunked_init(&st, NULL);
    assert_int_equal(http_chunked_feed(&st, S("z"), &used, &data), HTTP_CHUNKED_ERROR);
    assert_int_equal(http_chunked_feed(&st, S("0\r\n\r\n"), &used, &data), HTTP_CHUNKED_ERROR);
    assert_int_equal(used, 0);
    assert_string_equal(st.error, "bad_chunk_size");
}

/* ---- serializing --------------------------------------------------------- */

static void expect_written(const char *raw, size_t len, const char *const *skip, size_t n_skip,
                           const struct http_header *add, size_t n_add, const char *want)
{
    struct http_request r;
    http_request_reset(&r);
    if (http_parse_request(raw, len, &r, NULL) <= 0)
        fail_msg("refused: %s", r.error);
    struct buf out = BUF_INIT;
    assert_int_equal(http_request_write_head(&out, &r, skip, n_skip, add, n_add), 0);
    assert_string_equal(out.data, want);
    /* What we send parses back to the same request. */
    struct http_request again;
    http_request_reset(&again);
    assert_int_equal(http_parse_request(out.data, out.len, &again, NULL), (ssize_t)out.len);
    assert_int_equal(again.content_length, r.content_length);
    assert_int_equal(again.chunked, r.chunked);
    buf_free(&out);
}

static void test_write_request_head(void **state)
{
    (void)state;
    static const char *const skip[] = {"authorization"};
    const struct http_header add[] = {
        {{S("Authorization")}, {S("Bearer injected")}},
    };
    expect_written(S("GET http://api.example.com/v1/x?y=1 HTTP/1.1\r\n"
                     "Host: api.example.com\r\n"
                     "Connection: keep-alive, X-Hop\r\n"
                     "X-Hop: 1\r\n"
                     "Proxy-Connection: keep-alive\r\n"
                     "Proxy-Authorization: Basic YTpi\r\n"
                     "Keep-Alive: 300\r\n"
                     "TE: trailers\r\n"
                     "Trailer: X-Sum\r\n"
                     "Upgrade: h2c\r\n"
                     "Authorization: Bearer agent\r\n"
                     "Accept: */*\r\n\r\n"),
                   skip, 1, add, 1,
                   "GET /v1/x?y=1 HTTP/1.1\r\n"
                   "Host: api.example.com\r\n"
                   "Accept: */*\r\n"
                   "Authorization: Bearer injected\r\n\r\n");
    /* Connection cannot remove the fields that frame the body. */
    expect_written(S("POST /x HTTP/1.1\r\nHost: a.example\r\n"
                     "Connection: content-length, host, transfer-encoding, x-a\r\n"
                     "X-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                   NULL, 0, NULL, 0,
                   "POST /x HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* A WebSocket upgrade keeps Upgrade and says so in Connection. */
    expect_written(S("GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n\r\n"),
                   NULL, 0, NULL, 0,
                   "GET /ws HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nConnection: upgrade\r\n\r\n");
    /* HTTP/1.0 absolute-form without Host gets one from the target. */
    expect_written(S("GET http://a.example:8080/ HTTP/1.0\r\nAccept: */*\r\n\r\n"), NULL, 0, NULL,
                   0, "GET / HTTP/1.1\r\nAccept: */*\r\nHost: a.example:8080\r\n\r\n");

    struct http_request r;
    http_request_reset(&r);
    assert_true(http_parse_request(S("GET / HTTP/1.1\r\n" H "\r\n"), &r, NULL) > 0);
    struct buf out = BUF_INIT;
    const struct http_header bad[] = {
        {{S("X-A")}, {S("ok\r\nX-Injected: 1")}},
        {{S("X A")}, {S("v")}},
        {{S("")}, {S("v")}},
    };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(http_request_write_head(&out, &r, NULL, 0, &bad[i], 1), -EINVAL);
        assert_int_equal(out.len, 0);
    }
    buf_free(&out);
}

static void test_write_response_head(void **state)
{
    (void)state;
    struct http_response r;
    http_response_reset(&r);
    assert_true(http_parse_response(S("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                      "Content-Length: 2\r\nKeep-Alive: timeout=5\r\n"
                                      "Set-Cookie: a=b\r\n\r\n"),
                                    false, &r, NULL) > 0);
    struct buf out = BUF_INIT;
    static const char *const skip[] = {"set-cookie"};
    const struct http_header add[] = {{{S("X-Bottle")}, {S("1")}}};
    assert_int_equal(http_response_write_head(&out, &r, skip, 1, add, 1), 0);
    assert_string_equal(out.data, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bottle: 1\r\n\r\n");
    buf_free(&out);
}

static void test_list_tokens(void **state)
{
    (void)state;
    struct http_slice v = {S(" , a ,B,\tkeep-alive ,")};
    assert_true(http_list_has_token(v, "a"));
    assert_true(http_list_has_token(v, "b"));
    assert_true(http_list_has_token(v, "Keep-Alive"));
    assert_false(http_list_has_token(v, "keep"));
    assert_false(http_list_has_token((struct http_slice){"", 0}, "a"));
    assert_true(http_slice_eq_ci((struct http_slice){S("HoSt")}, "host"));
    assert_false(http_slice_eq((struct http_slice){S("HoSt")}, "host"));
}

/* A CONNECT is routed on its target; its Host (Node sends the proxy's) is not compared. */
static void test_connect_host_not_compared(void **state)
{
    (void)state;
    static const char req[] = "CONNECT a.example:443 HTTP/1.1\r\nHost: 10.0.0.1:3128\r\n\r\n";
    struct http_request r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(http_parse_request(req, sizeof(req) - 1, &r, NULL), (int)(sizeof(req) - 1));
    assert_true(http_slice_eq(r.host, "a.example"));
    assert_int_equal(r.port, 443);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_host_not_compared),
        cmocka_unit_test(test_request_rejections),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_connect_and_origin_form),
        cmocka_unit_test(test_framing_fields),
        cmocka_unit_test(test_connection_flags),
        cmocka_unit_test(test_pipelined_requests),
        cmocka_unit_test(test_reset_on_shorter_buffer),
        cmocka_unit_test(test_response_rejections),
        cmocka_unit_test(test_response_bodies),
        cmocka_unit_test(test_chunked_every_split),
        cmocka_unit_test(test_chunked_cases),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_after_end),
        cmocka_unit_test(test_write_request_head),
        cmocka_unit_test(test_write_response_head),
        cmocka_unit_test(test_list_tokens),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
