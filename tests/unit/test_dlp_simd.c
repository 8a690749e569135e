#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "common/json.h"
#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_base.h"
#include "sidecar/dlp/dlp_rules.h"
#include "sidecar/dlp/dlp_simd.h"

/*
 * The vector filters (dlp_simd.c) must not change a result: every scan is
 * run on the portable path and on the vector path, and the hits, offsets,
 * lengths, secrets and counted work must be the same. On a CPU without
 * AVX2 both runs take the portable path and the comparison is trivial.
 *
 * Every credential here is fake: random characters behind the rules' own
 * prefixes, built at run time.
 */

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void append_random(struct buf *b, uint32_t *s, const char *alphabet, size_t n)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        buf_append_char(b, alphabet[rnd(s) % k]);
}

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

static const char *const alphabets[] = {
    ALNUM,
    ALNUM "-_",
    ALNUM "+/=",
    "0123456789abcdef",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
    ALNUM ".-_ \"':=>\\\n",
};

static const char *const words[] = {"the",    "agent", "reads", "a",      "file",  "sandbox",
                                    "secret", "AKIA",  "sk-",   "hooks.", "dapi",  "eyJ",
                                    "-----",  "SK",    "AC",    "sha",    "doing", "lin"};

/* One piece of text: prose, noise, a rule's prefix and a run, or a planted secret. */
static void append_piece(struct buf *b, uint32_t *s, const char *const *secrets, size_t n_secrets)
{
    uint32_t kind = rnd(s) % 10;
    if (kind < 3) {
        buf_append_str(b, words[rnd(s) % (sizeof(words) / sizeof(words[0]))]);
        buf_append_char(b, " \n.\"_-/"[rnd(s) % 7]);
    } else if (kind == 3) {
        size_t n = rnd(s) % 40;
        for (size_t i = 0; i < n; i++)
            buf_append_char(b, (char)(rnd(s) & 0xff));
    } else if (kind < 7) {
        const struct dlp_rule *r = &dlp_rules[rnd(s) % dlp_n_rules];
        size_t k = 0;
        while (r->prefix[k + 1] && rnd(s) % 2)
            k++;
        const char *pre = r->prefix[k];
        if (r->icase && rnd(s) % 2) { /* keywords in another case */
            for (const char *c = pre; *c; c++)
                buf_append_char(b, (char)((*c >= 'a' && *c <= 'z') ? *c - 32 : *c));
        } else {
            buf_append_str(b, pre);
        }
        if (r->icase)
            buf_append_str(b, (const char *[]){"=", " = \"", ":", ""}[rnd(s) % 4]);
        size_t lengths[] = {r->min, r->max, r->min - (r->min > 0), r->max + 1, rnd(s) % 100};
        append_random(b, s, alphabets[rnd(s) % (sizeof(alphabets) / sizeof(alphabets[0]))],
                      lengths[rnd(s) % 5] % 300);
    } else if (n_secrets) {
        const char *v = secrets[rnd(s) % n_secrets];
        size_t n = strlen(v), from = kind == 9 ? rnd(s) % n : 0;
        for (size_t i = from; i < n; i++) { /* whole, from a point, or with separators */
            buf_append_char(b, v[i]);
            if (kind == 8 && rnd(s) % 3 == 0)
                buf_append_char(b, "-. /"[rnd(s) % 4]);
        }
    }
}

static struct dlp_engine *engine_with(const char *const *secrets, size_t n)
{
    struct strv v = STRV_INIT;
    for (size_t i = 0; i < n; i++)
        strv_push(&v, secrets[i]);
    struct dlp_config cfg = {.max_matches = 100000};
    struct bottle_err err = {0};
    struct dlp_engine *e = dlp_engine_new(&cfg, &v, &err);
    assert_non_null(e);
    strv_free(&v);
    return e;
}

static void find_on(struct dlp_engine *e, bool simd, unsigned bits, const char *p, size_t len,
                    struct dlp_hits *h)
{
    dlp_engine_use_simd(e, simd);
    dlp_find_outbound(e, bits, p, len, h);
}

static void assert_same_hits(struct dlp_engine *e, unsigned bits, const char *p, size_t len)
{
    struct dlp_hits a = {0}, v = {0};
    find_on(e, false, bits, p, len, &a);
    find_on(e, true, bits, p, len, &v);
    if (a.n != v.n)
        fail_msg("portable path: %zu hits, vector path: %zu (text of %zu bytes)", a.n, v.n, len);
    for (size_t i = 0; i < a.n; i++) {
        const struct dlp_hit *x = &a.items[i], *y = &v.items[i];
        if (strcmp(x->rule, y->rule) || x->kind != y->kind || x->offset != y->offset ||
            x->length != y->length || x->secret != y->secret)
            fail_msg("hit %zu: %s at %zu+%zu (portable) vs %s at %zu+%zu (vector)", i, x->rule,
                     x->offset, x->length, y->rule, y->offset, y->length);
    }
    assert_int_equal(a.ops, v.ops);
    dlp_hits_free(&a);
    dlp_hits_free(&v);
}

static char **random_secrets(uint32_t *s, size_t n, size_t min_len, size_t spread)
{
    char **v = xcalloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        struct buf b = BUF_INIT;
        append_random(&b, s, i % 3 ? ALNUM : ALNUM "-_/+", min_len + rnd(s) % spread);
        v[i] = buf_steal(&b);
    }
    return v;
}

static void free_secrets(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Random texts with planted tokens and secrets: the same hits on both paths. */
static void test_paths_agree_on_random_text(void **state)
{
    (void)state;
    const struct {
        size_t n, min_len, spread; /* short secrets make the hashing step smaller than 4 */
    } sets[] = {{0, 0, 1}, {1, 40, 8}, {50, 43, 1}, {20, 8, 6}, {200, 12, 40}};
    for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        uint32_t s = 0x9e3779b9u + (uint32_t)k;
        char **secrets = random_secrets(&s, sets[k].n, sets[k].min_len, sets[k].spread);
        struct dlp_engine *e = engine_with((const char *const *)secrets, sets[k].n);
        for (int round = 0; round < 40; round++) {
            struct buf t = BUF_INIT;
            size_t size = round % 8 == 0 ? 200000 : (size_t)(rnd(&s) % 3000);
            while (t.len < size)
                append_piece(&t, &s, (const char *const *)secrets, sets[k].n);
            unsigned bits[] = {DLP_OUT_DEFAULT, DLP_OUT_TOKEN_PATTERNS, DLP_OUT_KNOWN_SECRETS};
            for (size_t b = 0; b < 3; b++)
                assert_same_hits(e, bits[b], t.data ? t.data : "", t.len);
            /* Every suffix start and every short length around the vector blocks. */
            for (size_t cut = 0; round == 1 && cut < 70 && cut < t.len; cut++) {
                size_t n = t.len - cut < 100 + cut ? t.len - cut : 100 + cut;
                assert_same_hits(e, DLP_OUT_DEFAULT, t.data + cut, n);
            }
            buf_free(&t);
        }
        dlp_engine_free(e);
        free_secrets(secrets, sets[k].n);
    }
}

/* A prefix at every position of a short text, every length from 0 to 80. */
static void test_paths_agree_at_every_offset(void **state)
{
    (void)state;
    uint32_t s = 12345;
    char **secrets = random_secrets(&s, 3, 43, 1);
    struct dlp_engine *e = engine_with((const char *const *)secrets, 3);
    for (size_t r = 0; r < dlp_n_rules; r++) {
        struct buf token = BUF_INIT;
        buf_append_str(&token, dlp_rules[r].prefix[0]);
        append_random(&token, &s, ALNUM, dlp_rules[r].min ? dlp_rules[r].min : 40);
        for (size_t len = 0; len <= 80; len++) {
            char text[96];
            for (size_t at = 0; at < len; at++) {
                size_t n = len - at < token.len ? len - at : token.len;
                memset(text, at % 2 ? 'x' : ' ', len);
                memcpy(text + at, token.data, n);
                assert_same_hits(e, DLP_OUT_DEFAULT, text, len);
            }
        }
        buf_free(&token);
    }
    dlp_engine_free(e);
    free_secrets(secrets, 3);
}

/* The whole request scan, JSON body included, gives the same result on both paths. */
static void test_paths_agree_on_requests(void **state)
{
    (void)state;
    uint32_t s = 777;
    char **secrets = random_secrets(&s, 50, 43, 1);
    struct dlp_engine *e = engine_with((const char *const *)secrets, 50);
    struct buf body = BUF_INIT;
    buf_append_str(&body, "{\"messages\":[{\"content\":\"");
    while (body.len < 300000) {
        struct buf piece = BUF_INIT;
        append_piece(&piece, &s, (const char *const *)secrets, 50);
        json_escape_append(&body, piece.data ? piece.data : "", piece.len, 0);
        buf_free(&piece);
    }
    buf_append_str(&body, "\"}]}");
    struct http_header h[1] = {{{"Content-Type", 12}, {"application/json", 16}}};
    struct dlp_request req = {"api.test", "/v1", 3, h, 1, NULL, body.data, body.len};
    struct dlp_result a, v;
    dlp_result_init(&a);
    dlp_result_init(&v);
    dlp_engine_use_simd(e, false);
    assert_int_equal(dlp_scan_request(e, DLP_OUT_DEFAULT, &req, &a), 0);
    dlp_engine_use_simd(e, true);
    assert_int_equal(dlp_scan_request(e, DLP_OUT_DEFAULT, &req, &v), 0);
    assert_true(a.n > 100); /* the planted values and tokens are there */
    assert_int_equal(a.n, v.n);
    assert_int_equal(a.ops, v.ops);
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.matches[i].rule, v.matches[i].rule);
        assert_string_equal(a.matches[i].location, v.matches[i].location);
        assert_int_equal(a.matches[i].offset, v.matches[i].offset);
        assert_int_equal(a.matches[i].length, v.matches[i].length);
        assert_int_equal(a.matches[i].secret, v.matches[i].secret);
    }
    dlp_result_free(&a);
    dlp_result_free(&v);
    buf_free(&body);
    dlp_engine_free(e);
    free_secrets(secrets, 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths_agree_on_random_text),
        cmocka_unit_test(test_paths_agree_at_every_offset),
        cmocka_unit_test(test_paths_agree_on_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
