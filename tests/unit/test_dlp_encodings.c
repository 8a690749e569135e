#include "tests/unit/testutil.h"

#include <zlib.h>

#include "common/buf.h"
#include "sidecar/dlp/dlp.h"

/*
 * The ways a known secret was seen leaving a bottle past the first
 * detectors: upper- or lower-cased, reversed, as base32, as hex with
 * separators, as base64 of base64, gzip-compressed without a
 * Content-Encoding, and in pieces shorter than a partial leak sent in
 * several requests. Each is checked for the three kinds of secret the
 * sidecar holds (the canary, a provider placeholder, a real token), and
 * against an engine built with only the basic encodings, which must miss
 * it: the test shows the detector is what finds it.
 *
 * Every secret here is fake, built at run time from a fixed sequence.
 */

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define HEXL  "0123456789abcdef"
#define B64U  ALNUM "-_"

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
        x *= 0x297a2d39u;
        x ^= x >> 15;
        buf_append_char(&b, alphabet[x % k]);
    }
    return buf_steal(&b);
}

enum { CANARY, PLACEHOLDER, TOKEN, N_SECRETS };
static char *secrets[N_SECRETS];
static const char *const kinds[N_SECRETS] = {"canary", "placeholder", "token"};
static struct dlp_engine *full, *basic;

static struct dlp_engine *build(bool basic_only)
{
    struct strv v = STRV_INIT;
    for (size_t i = 0; i < N_SECRETS; i++)
        strv_push(&v, secrets[i]);
    /* a second placeholder: the shared prefix is structure, not secret material */
    strv_push_owned(&v, fake("bottle-placeholder-", HEXL, 32, 9));
    struct dlp_config cfg = {.max_decoded = 1 << 20, .basic_encodings = basic_only};
    struct bottle_err err = {0};
    struct dlp_engine *e = dlp_engine_new(&cfg, &v, &err);
    assert_non_null(e);
    strv_free(&v);
    return e;
}

static int group_setup(void **state)
{
    (void)state;
    secrets[CANARY] = fake("", HEXL, 40, 1);
    secrets[PLACEHOLDER] = fake("bottle-placeholder-", HEXL, 32, 2);
    char *t = fake("sk-ant-api03-", B64U, 93, 3);
    secrets[TOKEN] = xasprintf("%sAA", t);
    free(t);
    full = build(false);
    basic = build(true);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SECRETS; i++)
        free(secrets[i]);
    dlp_engine_free(full);
    dlp_engine_free(basic);
    return 0;
}

static struct http_header hdr(const char *n, const char *v)
{
    return (struct http_header){{n, strlen(n)}, {v, strlen(v)}};
}

/* Scans body as a POST with the given content type (NULL: none) and encoding (NULL: none). */
static void scan_body(const struct dlp_engine *e, const char *ctype, const char *enc,
                      const char *body, size_t len, struct dlp_result *r)
{
    struct http_header hs[2];
    size_t n = 0;
    if (ctype)
        hs[n++] = hdr("Content-Type", ctype);
    if (enc)
        hs[n++] = hdr("Content-Encoding", enc);
    struct dlp_request req = {"api.test", "/upload", 7, hs, n, NULL, body, len};
    dlp_result_init(r);
    assert_int_equal(dlp_scan_request(e, DLP_OUT_DEFAULT, &req, r), 0);
}

/* The rule the scan of text blocks on for secret k, or NULL. */
static const char *blocking_rule(const struct dlp_engine *e, const char *text, size_t len, int k)
{
    struct dlp_result r;
    scan_body(e, "text/plain", NULL, text, len, &r);
    const char *rule = NULL;
    for (size_t i = 0; i < r.n && !rule; i++)
        if (r.matches[i].severity == DLP_BLOCK && r.matches[i].secret == k)
            rule = r.matches[i].rule;
    dlp_result_free(&r);
    return rule;
}

/*
 * text carries secret k: the sidecar's engine blocks it with rule; the basic
 * one does not find it with that rule (nor at all, unless only_rule: 12
 * characters of a hex secret may keep their case in a mixed-case copy).
 */
static void expect_found_with(const char *what, int k, const char *text, size_t len,
                              const char *rule, bool only_rule)
{
    const char *got = blocking_rule(full, text, len, k);
    if (!got || strcmp(got, rule) != 0)
        fail_msg("%s (%s): expected %s, got %s", what, kinds[k], rule, got ? got : "nothing");
    got = blocking_rule(basic, text, len, k);
    if (got && (!only_rule || strcmp(got, rule) == 0))
        fail_msg("%s (%s): the basic engine finds it too (%s): the test proves nothing", what,
                 kinds[k], got);
}

static void expect_found(const char *what, int k, const char *text, size_t len, const char *rule)
{
    expect_found_with(what, k, text, len, rule, false);
}

/* ---- encodings ------------------------------------------------------------------- */

static char *mapped(const char *s, int how)
{
    struct buf b = BUF_INIT;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        char c = how == 2 ? s[n - 1 - i] : s[i];
        if (how == 0 && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        if (how == 1 && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (how == 3 && i % 2 && c >= 'a' && c <= 'z') /* mixed case */
            c = (char)(c - 32);
        buf_append_char(&b, c);
    }
    return buf_steal(&b);
}

static void test_case_and_reversal(void **state)
{
    (void)state;
    for (int k = 0; k < N_SECRETS; k++) {
        char *up = mapped(secrets[k], 0), *rev = mapped(secrets[k], 2),
             *mix = mapped(secrets[k], 3);
        char *t1 = xasprintf("export X=%s\n", up), *t2 = xasprintf("echo '%s' | rev\n", rev);
        char *t3 = xasprintf("value: %s;", mix);
        expect_found("upper-cased", k, t1, strlen(t1), DLP_RULE_KNOWN_SECRET);
        expect_found("reversed", k, t2, strlen(t2), DLP_RULE_KNOWN_SECRET);
        if (strcmp(mix, secrets[k]) != 0) /* mixed case: found by the folded projection */
            expect_found_with("mixed case", k, t3, strlen(t3), DLP_RULE_SECRET_FRAGMENT, true);
        free(up), free(rev), free(mix), free(t1), free(t2), free(t3);
    }
    /* the token has upper-case letters of its own: lower-cased it is found too */
    char *low = mapped(secrets[TOKEN], 1), *t = xasprintf("k=%s", low);
    expect_found("lower-cased", TOKEN, t, strlen(t), DLP_RULE_KNOWN_SECRET);
    free(low), free(t);
}

static char *base32(const char *s, size_t n, bool pad)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    struct buf b = BUF_INIT;
    for (size_t bit = 0; bit < 8 * n; bit += 5) {
        unsigned v = 0;
        for (size_t k = bit; k < bit + 5; k++)
            v = (v << 1) | (k / 8 < n ? ((unsigned char)s[k / 8] >> (7 - k % 8)) & 1 : 0);
        buf_append_char(&b, a[v]);
    }
    while (pad && b.len % 8)
        buf_append_char(&b, '=');
    return buf_steal(&b);
}

static char *base64(const char *s, size_t n)
{
    static const char a[] = ALNUM "+/";
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

/* s with sep inserted every `every` characters (line wrapping when sep is "\n"). */
static char *wrapped(const char *s, size_t every, const char *sep)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; s[i]; i++) {
        if (i && i % every == 0)
            buf_append_str(&b, sep);
        buf_append_char(&b, s[i]);
    }
    return buf_steal(&b);
}

static void test_base32(void **state)
{
    (void)state;
    for (int k = 0; k < N_SECRETS; k++) {
        /* alone (`base32 <<<$X`, with its newline), and inside a larger blob at every alignment */
        for (size_t align = 0; align < 6; align++) {
            char *blob = xasprintf("%.*s%s\n", (int)align, "hello", secrets[k]);
            char *enc = base32(blob, strlen(blob), true), *text = xasprintf("data=%s", enc);
            char what[48];
            snprintf(what, sizeof(what), "base32 after %zu bytes", align);
            expect_found(what, k, text, strlen(text), DLP_RULE_KNOWN_SECRET);
            free(blob), free(enc), free(text);
        }
        /* lower-cased, or wrapped at 76 columns as base32(1) does: the whole form, with separators
         */
        char *enc = base32(secrets[k], strlen(secrets[k]), true), *low = mapped(enc, 1);
        char *text = xasprintf("b32: %s", low);
        expect_found("base32 lower-cased", k, text, strlen(text), DLP_RULE_SECRET_FRAGMENT);
        free(text);
        char *wrap = wrapped(low, 20, "\n");
        text = xasprintf("b32:\n%s\n", wrap);
        expect_found("base32 wrapped", k, text, strlen(text), DLP_RULE_SECRET_FRAGMENT);
        free(text), free(wrap), free(enc), free(low);
    }
}

static void test_hex_with_separators(void **state)
{
    (void)state;
    const char *seps[] = {":", " ", "-"};
    for (int k = 0; k < N_SECRETS; k++)
        for (size_t i = 0; i < 3; i++)
            for (int upper = 0; upper < 2; upper++) {
                struct buf hex = BUF_INIT;
                for (const char *p = secrets[k]; *p; p++)
                    buf_printf(&hex, upper ? "%02X" : "%02x", (unsigned char)*p);
                char *sep = wrapped(hex.data, 2, seps[i]), *text = xasprintf("bytes %s end", sep);
                char what[48];
                snprintf(what, sizeof(what), "hex, '%s' between bytes, upper %d", seps[i], upper);
                expect_found(what, k, text, strlen(text), DLP_RULE_SECRET_FRAGMENT);
                free(sep), free(text);
                buf_free(&hex);
            }
}

static void test_double_base64(void **state)
{
    (void)state;
    for (int k = 0; k < N_SECRETS; k++)
        for (size_t a = 0; a < 3; a++)
            for (size_t b = 0; b < 3; b++) {
                /* `printf %s $X | base64 | base64`, inside blobs at each alignment */
                char *inner_text = xasprintf("%.*s%s", (int)a, "xy", secrets[k]);
                char *inner = base64(inner_text, strlen(inner_text));
                char *outer_text = xasprintf("%.*s%s\n", (int)b, "uv", inner);
                char *outer = base64(outer_text, strlen(outer_text));
                char *text = xasprintf("{\"blob\":\"%s\"}", outer);
                char what[48];
                snprintf(what, sizeof(what), "base64 of base64, alignments %zu %zu", a, b);
                expect_found(what, k, text, strlen(text), DLP_RULE_KNOWN_SECRET);
                free(inner_text), free(inner), free(outer_text), free(outer), free(text);
            }
}

/* ---- compressed without a Content-Encoding ---------------------------------------- */

static void zip(const char *p, size_t n, int bits, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_reserve(out, deflateBound(&z, (uLong)n) + 1);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)(out->cap - 1);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len = z.total_out;
    deflateEnd(&z);
}

static void expect_in_gzip(const char *what, int k, const char *ctype, const char *body, size_t len)
{
    struct dlp_result r;
    scan_body(full, ctype, NULL, body, len, &r);
    bool found = false;
    for (size_t i = 0; i < r.n; i++) /* the value, or (the token) its rule's pattern */
        found |= r.matches[i].severity == DLP_BLOCK &&
                 strcmp(r.matches[i].location, "body:gzip") == 0 &&
                 (r.matches[i].secret == k || r.matches[i].kind == DLP_KIND_PATTERN);
    if (!found)
        fail_msg("%s (%s): not found", what, kinds[k]);
    dlp_result_free(&r);
    scan_body(basic, ctype, NULL, body, len, &r);
    assert_null(dlp_result_first_block(&r));
    dlp_result_free(&r);
}

static void test_sniffed_gzip(void **state)
{
    (void)state;
    for (int k = 0; k < N_SECRETS; k++) {
        char *text = xasprintf("log line one\nthe value is %s\nlog line three\n", secrets[k]);
        struct buf z = BUF_INIT;
        zip(text, strlen(text), 31, &z); /* gzip */
        expect_in_gzip("gzip", k, "application/octet-stream", z.data, z.len);
        expect_in_gzip("gzip, no content type", k, NULL, z.data, z.len);
        /* truncated: what decodes is scanned */
        struct buf big = BUF_INIT, zb = BUF_INIT;
        buf_append_str(&big, text);
        for (int i = 0; i < 4000; i++)
            buf_printf(&big, "filler %d %x\n", i, i * 2654435761u);
        zip(big.data, big.len, 31, &zb);
        expect_in_gzip("truncated gzip", k, NULL, zb.data, zb.len / 2);
        buf_reset(&z);
        zip(text, strlen(text), 15, &z); /* zlib */
        expect_in_gzip("zlib", k, NULL, z.data, z.len);
        /* a gzip file in a multipart upload */
        buf_reset(&z);
        zip(text, strlen(text), 31, &z);
        struct buf mp = BUF_INIT;
        buf_append_str(&mp, "--b\r\nContent-Disposition: form-data; name=\"file\"; "
                            "filename=\"x.gz\"\r\n\r\n");
        buf_append(&mp, z.data, z.len);
        buf_append_str(&mp, "\r\n--b--\r\n");
        expect_in_gzip("gzip in a multipart part", k, "multipart/form-data; boundary=b", mp.data,
                       mp.len);
        buf_free(&mp), buf_free(&z), buf_free(&big), buf_free(&zb);
        free(text);
    }
    /* A bomb over the decoded-size cap is refused, as with a named coding. */
    size_t n = (size_t)2 << 20;
    char *zeros = xcalloc(1, n);
    struct buf z = BUF_INIT;
    zip(zeros, n, 31, &z);
    struct dlp_result r;
    scan_body(full, NULL, NULL, z.data, z.len, &r);
    assert_true(r.too_large);
    dlp_result_free(&r);
    free(zeros);
    buf_free(&z);
    /* Text that only starts like zlib decodes to nothing and is not refused. */
    scan_body(full, "text/plain", NULL, "HKello world", 12, &r);
    assert_int_equal(r.n, 0);
    assert_false(r.too_large || r.undecodable);
    dlp_result_free(&r);
}

/* ---- pieces across requests --------------------------------------------------------- */

/* Scans one request with text in its query; the pieces land in r. */
static void scan_query(const char *text, struct dlp_result *r)
{
    char *target = xasprintf("/collect?v=%s", text);
    struct dlp_request req = {"api.test", target, strlen(target), NULL, 0, NULL, NULL, 0};
    dlp_result_init(r);
    assert_int_equal(dlp_scan_request(full, DLP_OUT_DEFAULT, &req, r), 0);
    free(target);
}

static void test_pieces_across_requests(void **state)
{
    (void)state;
    for (int k = 0; k < N_SECRETS; k++) {
        /* the secret's alphanumerics, in 10-character pieces, one request each */
        struct buf proj = BUF_INIT;
        for (const char *p = secrets[k]; *p; p++)
            if (strchr(ALNUM, *p))
                buf_append_char(&proj, *p);
        /* skip the placeholder's public prefix: pieces of it are no secret */
        size_t from = k == PLACEHOLDER ? strlen("bottleplaceholder") : 0;
        struct dlp_recent *recent = dlp_recent_new(0);
        size_t refused_at = 0, sent = 0;
        for (size_t at = from; at + 10 <= proj.len && !refused_at; at += 10) {
            char piece[11];
            memcpy(piece, proj.data + at, 10);
            piece[10] = 0;
            struct dlp_result r;
            scan_query(piece, &r);
            if (r.n != 0) /* alone a piece is no match */
                fail_msg("%s: a 10-character piece matched %s", kinds[k], r.matches[0].rule);
            assert_int_equal(r.n_pieces, 1);
            assert_int_equal(r.pieces[0].secret, k);
            assert_int_equal(r.pieces[0].offset, at);
            assert_int_equal(r.pieces[0].length, 10);
            struct dlp_verdict v;
            /* the first piece goes to another route: its window is another window */
            const char *route = sent == 0 ? "other.test:443" : "api.test:443";
            if (dlp_recent_check(recent, route, &r, 1000 + sent, &v)) {
                refused_at = sent + 1;
                assert_int_equal(v.action, DLP_REFUSE);
                assert_int_equal(v.status, 403);
                assert_string_equal(v.reason, DLP_REASON_BLOCKED);
                assert_non_null(strstr(v.message, DLP_RULE_SECRET_PIECES));
            }
            sent++;
            dlp_result_free(&r);
        }
        if (refused_at != 3)
            fail_msg("%s: the pieces were refused at request %zu, not the third (the second to "
                     "the route)",
                     kinds[k], refused_at);
        /* The same piece again and again adds nothing; nine characters are no piece. */
        dlp_recent_free(recent);
        recent = dlp_recent_new(0);
        for (int i = 0; i < 5; i++) {
            char piece[11];
            memcpy(piece, proj.data + from, 10);
            piece[10] = 0;
            struct dlp_result r;
            struct dlp_verdict v;
            scan_query(piece, &r);
            assert_false(dlp_recent_check(recent, "api.test:443", &r, 1000, &v));
            dlp_result_free(&r);
            piece[9] = 0;
            scan_query(piece, &r);
            assert_int_equal(r.n_pieces, 0);
            dlp_result_free(&r);
        }
        /* Pieces older than the window's age are forgotten. */
        dlp_recent_free(recent);
        recent = dlp_recent_new(60000);
        for (size_t i = 0; i < 2; i++) {
            char piece[11];
            memcpy(piece, proj.data + from + 10 * i, 10);
            piece[10] = 0;
            struct dlp_result r;
            struct dlp_verdict v;
            scan_query(piece, &r);
            assert_false(dlp_recent_check(recent, "api.test:443", &r, 1000 + 61000 * i, &v));
            dlp_result_free(&r);
        }
        dlp_recent_free(recent);
        buf_free(&proj);
    }
    /* Two pieces in one request add up too. */
    char *t = xasprintf("a=%.10s&b=%.10s", secrets[CANARY], secrets[CANARY] + 20);
    struct dlp_result r;
    scan_query(t, &r);
    assert_int_equal(r.n_pieces, 2);
    struct dlp_recent *recent = dlp_recent_new(0);
    struct dlp_verdict v;
    assert_true(dlp_recent_check(recent, "api.test:443", &r, 1, &v));
    dlp_recent_free(recent);
    dlp_result_free(&r);
    free(t);
    /* The public prefix the placeholders share makes no piece. */
    scan_query("bottle-placeholder-", &r);
    assert_int_equal(r.n_pieces, 0);
    dlp_result_free(&r);
}

/* ---- redaction and streams ---------------------------------------------------------- */

/* Under the redact policy the new pass-1 forms are redacted, and the re-scan is clean. */
static void test_redact_new_forms(void **state)
{
    (void)state;
    const char *tok = secrets[TOKEN];
    char *up = mapped(tok, 0), *rev = mapped(tok, 2), *b32 = base32(tok, strlen(tok), true);
    char *b64 = base64(tok, strlen(tok)), *bb = base64(b64, strlen(b64));
    char *body =
        xasprintf("{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\",\"d\":\"%s\"}", up, rev, b32, bb);
    struct http_header hs[1] = {hdr("Content-Type", "application/json")};
    struct dlp_request req = {"api.test", "/v1", 3, hs, 1, NULL, body, strlen(body)};
    struct route_dlp d = {DLP_OUT_DEFAULT, 0, DLP_POLICY_REDACT, false};
    struct dlp_redacted red;
    struct dlp_verdict v;
    assert_int_equal(dlp_check_request(full, &d, &req, &red, &v, NULL), 0);
    assert_int_equal(v.action, DLP_REDACT);
    assert_true(red.body_changed);
    char *out = xstrndup(red.body.data, red.body.len);
    assert_null(strstr(out, up));
    assert_null(strstr(out, rev));
    assert_null(strstr(out, b32));
    assert_null(strstr(out, bb));
    assert_non_null(strstr(out, "[REDACTED:known_secret]"));
    free(out);
    dlp_redacted_free(&red);
    free(up), free(rev), free(b32), free(b64), free(bb), free(body);
}

/* A stream (WebSocket messages) finds the new forms wherever the messages are cut. */
static void test_streams_find_new_forms(void **state)
{
    (void)state;
    const char *can = secrets[CANARY];
    char *up = mapped(can, 0), *b32 = base32(can, strlen(can), true);
    char *text = xasprintf("first %s then %s end", up, b32);
    size_t n = strlen(text);
    struct dlp_result whole;
    dlp_result_init(&whole);
    dlp_scan_text(full, DLP_OUT_DEFAULT, "ws", text, n, &whole);
    assert_int_equal(whole.n, 2);
    for (size_t cut = 0; cut <= n; cut++) {
        struct dlp_stream *st = dlp_stream_new(full, DLP_OUTBOUND, DLP_OUT_DEFAULT, "ws");
        struct dlp_result r;
        dlp_result_init(&r);
        dlp_stream_feed(st, text, cut, &r);
        dlp_stream_feed(st, text + cut, n - cut, &r);
        for (size_t i = 0; i < whole.n; i++) {
            bool found = false;
            for (size_t j = 0; j < r.n; j++)
                found |= r.matches[j].offset == whole.matches[i].offset &&
                         strcmp(r.matches[j].rule, whole.matches[i].rule) == 0;
            if (!found)
                fail_msg("cut %zu: match %zu missing", cut, i);
        }
        dlp_result_free(&r);
        dlp_stream_free(st);
    }
    dlp_result_free(&whole);
    free(up), free(b32), free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_and_reversal),   cmocka_unit_test(test_base32),
        cmocka_unit_test(test_hex_with_separators), cmocka_unit_test(test_double_base64),
        cmocka_unit_test(test_sniffed_gzip),        cmocka_unit_test(test_pieces_across_requests),
        cmocka_unit_test(test_redact_new_forms),    cmocka_unit_test(test_streams_find_new_forms),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
