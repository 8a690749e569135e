#include "tests/unit/testutil.h"

#include <brotli/encode.h>
#include <zlib.h>

#include "common/buf.h"
#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_hook.h"

/*
 * Tokens echoed back: an upstream that reflects the request hands back the
 * real token the sidecar injected, raw or encoded (Basic credentials in
 * base64, hex, percent, JSON escapes, upper-cased). Every form is replaced
 * by a mark of the same length in response heads, in bodies fed in pieces
 * split anywhere (plain and gzip/br-encoded), and in WebSocket messages;
 * a body that cannot be decoded is refused or cut, never passed.
 *
 * The token is fake, built at run time.
 */

#define B64STD "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

static char *token;
static struct dlp_engine *tokens;
static struct route route;

static char *fake(const char *prefix, const char *alphabet, size_t n, unsigned seed)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, prefix);
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (seed + 1) * 0x9e3779b1u ^ (uint32_t)(i + 1) * 0x85ebca77u;
        x ^= x >> 15;
        x *= 0x2c1b3c6du;
        x ^= x >> 12;
        x ^= x >> 15;
        buf_append_char(&b, alphabet[x % k]);
    }
    return buf_steal(&b);
}

static int group_setup(void **state)
{
    (void)state;
    /* an access-key-like token: '/' and '+' have percent and JSON-escaped forms */
    token = fake("tok-", B64STD, 60, 7);
    struct strv v = STRV_INIT;
    strv_push(&v, token);
    struct dlp_config cfg = {0};
    tokens = dlp_engine_new(&cfg, &v, NULL);
    assert_non_null(tokens);
    strv_free(&v);
    route.host = "echo.test";
    route.auth.kind = AUTH_SCHEME;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    dlp_engine_free(tokens);
    free(token);
    return 0;
}

static char *base64(const char *s, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        v |= i + 1 < n ? (uint32_t)(unsigned char)s[i + 1] << 8 : 0;
        v |= i + 2 < n ? (uint32_t)(unsigned char)s[i + 2] : 0;
        buf_append_char(&b, a[(v >> 18) & 63]);
        buf_append_char(&b, a[(v >> 12) & 63]);
        buf_append_char(&b, i + 1 < n ? a[(v >> 6) & 63] : '=');
        buf_append_char(&b, i + 2 < n ? a[v & 63] : '=');
    }
    return buf_steal(&b);
}

/* A body an echo endpoint could give: the token in each form it could take. */
static char *echo_body(void)
{
    char *basic_in = xasprintf("user:%s", token), *basic = base64(basic_in, strlen(basic_in));
    struct buf hex = BUF_INIT, up = BUF_INIT, pct = BUF_INIT, json = BUF_INIT;
    for (const char *p = token; *p; p++) {
        buf_printf(&hex, "%02x", (unsigned char)*p);
        buf_append_char(&up, *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p);
        if (*p == '/' || *p == '+') /* as urllib.parse.quote(safe="") writes them */
            buf_printf(&pct, "%%%02X", (unsigned char)*p);
        else
            buf_append_char(&pct, *p);
        if (*p == '/') /* as writers that escape '/' do */
            buf_append_str(&json, "\\/");
        else
            buf_append_char(&json, *p);
    }
    char *body = xasprintf(
        "{\"headers\": {\"authorization\": \"Bearer %s\", \"x-basic\": \"Basic %s\"},\n"
        " \"hex\": \"%s\", \"upper\": \"%s\", \"query\": \"?k=%s&x=1\", \"json\": \"%s\"}\n",
        token, basic, hex.data, up.data, pct.data, json.data);
    free(basic_in), free(basic);
    buf_free(&hex), buf_free(&up), buf_free(&pct), buf_free(&json);
    return body;
}

/* No 12 characters of the token's random part, case folded, are left in text. */
static void assert_no_token(const char *what, const char *text, size_t n)
{
    char *t = xstrndup(text, n);
    for (size_t i = 0; i < n; i++)
        t[i] = (char)(t[i] >= 'A' && t[i] <= 'Z' ? t[i] + 32 : t[i]);
    char *low = xstrdup(token);
    for (char *p = low; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    size_t len = strlen(low);
    for (size_t i = strlen("tok-"); i + 12 <= len; i++)
        if (memmem(t, n, low + i, 12))
            fail_msg("%s: 12 characters of the token at its offset %zu are left", what, i);
    free(t), free(low);
}

static void test_mark(void **state)
{
    (void)state;
    char m[64];
    const struct {
        size_t n;
        const char *want;
    } cases[] = {
        {5, "*****"},
        {10, "[REDACTED]"},
        {15, "[REDACTED*****]"},
        {16, "[REDACTED:token]"},
        {20, "[REDACTED:token****]"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(m, 0, sizeof(m));
        dlp_echo_mark(m, cases[i].n);
        assert_string_equal(m, cases[i].want);
    }
}

static void test_redact_every_form(void **state)
{
    (void)state;
    char *body = echo_body();
    size_t n = strlen(body);
    char *copy = xstrdup(body);
    size_t k = dlp_echo_redact(tokens, copy, n);
    assert_true(k >= 6);
    assert_int_equal(strlen(copy), n); /* same length */
    assert_no_token("whole", copy, n);
    assert_non_null(strstr(copy, "Bearer [REDACTED:token***"));
    assert_non_null(strstr(copy, "\"headers\": {\"authorization\": "));
    free(copy), free(body);
}

/* The stream gives what the whole-text redaction gives, wherever the body is cut. */
static void test_stream_every_split(void **state)
{
    (void)state;
    char *body = echo_body();
    size_t n = strlen(body);
    char *want = xstrdup(body);
    dlp_echo_redact(tokens, want, n);
    for (size_t cut = 0; cut <= n; cut++) {
        struct dlp_echo *x = dlp_echo_new(tokens);
        struct buf out = BUF_INIT;
        dlp_echo_feed(x, body, cut, false, &out);
        size_t early = out.len;
        assert_true(early <= cut);
        assert_no_token("first piece", out.data ? out.data : "", out.len);
        dlp_echo_feed(x, body + cut, n - cut, false, &out);
        dlp_echo_feed(x, NULL, 0, true, &out);
        if (out.len != n || memcmp(out.data, want, n) != 0)
            fail_msg("cut at %zu: the stream differs from the whole redaction", cut);
        buf_free(&out);
        dlp_echo_free(x);
    }
    /* byte by byte */
    struct dlp_echo *x = dlp_echo_new(tokens);
    struct buf out = BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        dlp_echo_feed(x, body + i, 1, false, &out);
        assert_no_token("so far", out.data ? out.data : "", out.len);
    }
    dlp_echo_feed(x, NULL, 0, true, &out);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, want, n);
    assert_true(dlp_echo_count(x) >= 6);
    buf_free(&out);
    dlp_echo_free(x);
    free(want), free(body);
}

/*
 * An event stream is not delayed: a piece that does not end in the start of
 * a token form goes out whole at once; one that does is held from there.
 */
static void test_stream_holds_only_a_cut_token(void **state)
{
    (void)state;
    struct dlp_echo *x = dlp_echo_new(tokens);
    struct buf out = BUF_INIT;
    const char *ev = "event: content_block_delta\ndata: {\"delta\":{\"text\":\"hello\"}}\n\n";
    for (int i = 0; i < 20; i++) {
        size_t before = out.len;
        dlp_echo_feed(x, ev, strlen(ev), false, &out);
        assert_int_equal(out.len - before, strlen(ev));
    }
    /* a piece ending in the first 20 characters of the token: those wait */
    char *cut = xasprintf("data: {\"k\": \"%.20s", token);
    size_t before = out.len;
    dlp_echo_feed(x, cut, strlen(cut), false, &out);
    assert_int_equal(out.len - before, strlen(cut) - 20);
    /* the rest of it arrives: marked whole */
    char *rest = xasprintf("%s\"}\n\n", token + 20);
    dlp_echo_feed(x, rest, strlen(rest), false, &out);
    assert_no_token("after the rest", out.data, out.len);
    assert_non_null(strstr(out.data, "{\"k\": \"[REDACTED:token"));
    dlp_echo_feed(x, NULL, 0, true, &out);
    assert_int_equal(out.len, 20 * strlen(ev) + strlen(cut) + strlen(rest));
    free(cut), free(rest);
    buf_free(&out);
    dlp_echo_free(x);
}

/* ---- the hook: heads, encoded bodies, WebSocket messages ----------------------------- */

static struct http_header hdr(const char *n, const char *v)
{
    return (struct http_header){{n, strlen(n)}, {v, strlen(v)}};
}

static void zip(const char *p, size_t n, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_reserve(out, deflateBound(&z, (uLong)n) + 1);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)(out->cap - 1);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len = z.total_out;
    deflateEnd(&z);
}

static const struct http_header *find(const struct http_response *r, const char *name)
{
    return http_header_find(r->headers, r->n_headers, name);
}

static void test_head(void **state)
{
    (void)state;
    char *bearer = xasprintf("Bearer %s", token), *name = xasprintf("X-%s", token);
    struct http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.status_code = 400;
    resp.reason_phrase = (struct http_slice){token, strlen(token)};
    resp.body = HTTP_BODY_NONE;
    resp.headers[0] = hdr("Content-Type", "text/plain");
    resp.headers[1] = hdr("X-Echo-Authorization", bearer);
    resp.headers[2] = hdr(name, "1");
    resp.headers[3] = hdr("Content-Length", "0");
    resp.n_headers = 4;
    struct dlp_echo_response *r = NULL;
    struct proxy_verdict v;
    memset(&v, 0, sizeof(v));
    assert_int_equal(dlp_echo_start(tokens, &route, &resp, &r, &v), 0);
    assert_non_null(r);                  /* no body, but the head's new values live in it */
    assert_int_equal(resp.n_headers, 3); /* the field named by the token is gone */
    assert_null(find(&resp, name));
    const struct http_header *h = find(&resp, "X-Echo-Authorization");
    assert_non_null(h);
    assert_int_equal(h->value.len, strlen(bearer));
    assert_memory_equal(h->value.ptr, "Bearer [REDACTED:token", 22);
    assert_no_token("reason", resp.reason_phrase.ptr, resp.reason_phrase.len);
    assert_no_token("header", h->value.ptr, h->value.len);
    dlp_echo_response_free(r);
    free(bearer), free(name);
}

/* Runs a body through dlp_echo_start/dlp_echo_body in pieces of step; returns the output. */
static int run_body(struct http_response *resp, const char *body, size_t n, size_t step,
                    struct buf *out, struct proxy_verdict *v)
{
    struct dlp_echo_response *r = NULL;
    memset(v, 0, sizeof(*v));
    if (dlp_echo_start(tokens, &route, resp, &r, v))
        return -1;
    int rc = 0;
    for (size_t at = 0; at < n && rc == 0; at += step)
        rc = dlp_echo_body(r, body + at, n - at < step ? n - at : step, false, out);
    if (rc == 0)
        rc = dlp_echo_body(r, NULL, 0, true, out);
    dlp_echo_response_free(r);
    return rc;
}

static void test_bodies(void **state)
{
    (void)state;
    char *body = echo_body();
    size_t n = strlen(body);
    struct proxy_verdict v;
    /* identity: the length is kept, so is Content-Length */
    for (size_t step = 1; step <= n; step += step < 8 ? 1 : 61) {
        struct http_response resp;
        memset(&resp, 0, sizeof(resp));
        resp.body = HTTP_BODY_LENGTH;
        resp.content_length = (int64_t)n;
        resp.headers[0] = hdr("Content-Length", "999");
        resp.n_headers = 1;
        struct buf out = BUF_INIT;
        assert_int_equal(run_body(&resp, body, n, step, &out, &v), 0);
        assert_int_equal(out.len, n);
        assert_no_token("identity", out.data, out.len);
        assert_non_null(find(&resp, "Content-Length"));
        buf_free(&out);
    }
    /* gzip and br: decoded for the client; coding and length go */
    struct buf gz = BUF_INIT, br = BUF_INIT;
    zip(body, n, &gz);
    size_t bn = BrotliEncoderMaxCompressedSize(n);
    buf_reserve(&br, bn);
    assert_true(BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, n, (const uint8_t *)body, &bn,
                                      (uint8_t *)br.data));
    br.len = bn;
    const struct {
        const char *coding;
        struct buf *data;
    } enc[] = {{"gzip", &gz}, {"br", &br}};
    for (size_t e = 0; e < 2; e++)
        for (size_t step = 1; step <= enc[e].data->len; step += step < 8 ? 1 : 29) {
            struct http_response resp;
            memset(&resp, 0, sizeof(resp));
            resp.body = HTTP_BODY_CHUNKED;
            resp.headers[0] = hdr("Content-Encoding", enc[e].coding);
            resp.headers[1] = hdr("Content-Type", "application/json");
            resp.headers[2] = hdr("Content-Length", "12");
            resp.n_headers = 3;
            struct buf out = BUF_INIT;
            assert_int_equal(run_body(&resp, enc[e].data->data, enc[e].data->len, step, &out, &v),
                             0);
            assert_int_equal(out.len, n);
            assert_no_token(enc[e].coding, out.data, out.len);
            assert_null(find(&resp, "Content-Encoding"));
            assert_null(find(&resp, "Content-Length"));
            assert_non_null(find(&resp, "Content-Type"));
            buf_free(&out);
        }
    /* a coding the sidecar does not decode: refused whole */
    struct http_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.body = HTTP_BODY_LENGTH;
    resp.headers[0] = hdr("Content-Encoding", "zstd");
    resp.n_headers = 1;
    struct buf out = BUF_INIT;
    assert_int_equal(run_body(&resp, "x", 1, 1, &out, &v), -1);
    assert_int_equal(v.status, 502);
    assert_string_equal(v.reason, DLP_REASON_UNREDACTABLE);
    /* corrupt gzip: the body is cut where it stops decoding */
    memset(&resp, 0, sizeof(resp));
    resp.body = HTTP_BODY_LENGTH;
    resp.headers[0] = hdr("Content-Encoding", "gzip");
    resp.n_headers = 1;
    struct buf bad = BUF_INIT;
    buf_append(&bad, gz.data, gz.len / 2);
    buf_append_str(&bad, "this is not deflate data at all, not at all");
    assert_int_equal(run_body(&resp, bad.data, bad.len, 7, &out, &v), 1);
    assert_no_token("cut", out.data ? out.data : "", out.len);
    buf_free(&out), buf_free(&bad), buf_free(&gz), buf_free(&br);
    free(body);
}

static void test_websocket_message(void **state)
{
    (void)state;
    char *msg = xasprintf("{\"echo\": \"Authorization: Bearer %s\"}", token);
    size_t n = strlen(msg);
    assert_int_equal(dlp_echo_ws(tokens, &route, msg, n), 1);
    assert_int_equal(strlen(msg), n);
    assert_no_token("message", msg, n);
    assert_non_null(strstr(msg, "Bearer [REDACTED:token"));
    assert_int_equal(dlp_echo_ws(tokens, &route, msg, n), 0); /* a clean one is left alone */
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mark),
        cmocka_unit_test(test_redact_every_form),
        cmocka_unit_test(test_stream_every_split),
        cmocka_unit_test(test_stream_holds_only_a_cut_token),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_websocket_message),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
