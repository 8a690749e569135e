/*
 * DLP bench: MB/s of dlp_scan_request over clean prose, an LLM-style JSON
 * body (with string escapes, so it is scanned through its unescaped view)
 * and a body with a credential every 4 KiB, with 1, 50 and 1000 known
 * secrets, and the detectors alone. Time is the thread's CPU time, so the
 * rates are per core even when the machine is shared. The first line after
 * the baseline is the architecture target: a 1 MB JSON body, the default
 * detectors and 50 known secrets at 1000 MB/s or more per core. Prints
 * numbers; asserts nothing. Then what the case, reversal, base32, double
 * base64, separator, sniffed-gzip and piece detectors cost on that case
 * (against an engine without them), and the response-side token
 * redaction's rate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "sidecar/dlp/dlp.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13; /* xorshift32: no short cycles in the low bits */
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static char *random_token(uint32_t *s, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *t = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        t[i] = a[rnd(s) % 64];
    t[n] = 0;
    return t;
}

static const char *words[] = {"the",    "agent",   "reads",    "a",       "file",   "and",
                              "writes", "tests",   "for",      "every",   "module", "in",
                              "this",   "repo",    "function", "return",  "value",  "error",
                              "build",  "sandbox", "proxy",    "request", "of",     "with"};

static void prose(struct buf *b, size_t size, uint32_t *s)
{
    while (b->len < size) {
        buf_append_str(b, words[rnd(s) % (sizeof(words) / sizeof(words[0]))]);
        buf_append_char(b, rnd(s) % 13 == 0 ? '.' : ' ');
        if (rnd(s) % 97 == 0)
            buf_append_char(b, '\n');
    }
}

static void json_body(struct buf *b, size_t size, uint32_t *s)
{
    buf_append_str(b, "{\"model\":\"m\",\"messages\":[");
    while (b->len < size) {
        buf_append_str(b, "{\"role\":\"user\",\"content\":\"");
        struct buf t = BUF_INIT;
        prose(&t, 2000, s);
        for (size_t i = 0; i < t.len; i++)
            buf_append_str(b, t.data[i] == '\n' ? "\\n" : (char[]){t.data[i], 0});
        buf_append_str(b, " \\\"quoted\\\" \\u00e9t\\u00e9\"},");
        buf_free(&t);
    }
    buf_append_str(b, "{\"role\":\"user\",\"content\":\"end\"}]}");
}

static void with_matches(struct buf *b, size_t size, uint32_t *s)
{
    while (b->len < size) {
        prose(b, b->len + 4096, s);
        char *t = random_token(s, 40);
        memcpy(t, "gh", 2);
        t[2] = 'p', t[3] = '_';
        for (size_t i = 4; i < 40; i++)
            if (t[i] == '-' || t[i] == '_')
                t[i] = 'x';
        buf_printf(b, " token %s ", t);
        free(t);
    }
}

/* MB/s of dlp_scan_request over body; prints a line unless label is NULL. */
static double run(const char *label, const struct dlp_engine *e, unsigned bits, const char *ctype,
                  const struct buf *body)
{
    struct http_header h[1] = {{{"Content-Type", 12}, {ctype, strlen(ctype)}}};
    struct dlp_request req = {"api.test", "/v1/messages", 12, h, 1, NULL, body->data, body->len};
    size_t matches = 0, rounds = 0;
    struct dlp_result warm; /* one scan untimed: the allocator's first growth is not the engine */
    dlp_result_init(&warm);
    dlp_scan_request(e, bits, &req, &warm);
    dlp_result_free(&warm);
    double t0 = now(), t;
    do {
        struct dlp_result r;
        dlp_result_init(&r);
        dlp_scan_request(e, bits, &req, &r);
        matches = r.n + r.dropped;
        dlp_result_free(&r);
        rounds++;
        t = now() - t0;
    } while (t < 0.4);
    double rate = (double)body->len * (double)rounds / t / 1e6;
    if (label)
        printf("%-44s %8.0f MB/s  (%zu matches per scan)\n", label, rate, matches);
    return rate;
}

/* A byte-sum loop over the same text: the machine's speed, to read the rest against. */
static double baseline_rate(const struct buf *text)
{
    size_t rounds = 0;
    volatile unsigned long sink = 0;
    double t0 = now(), t;
    do {
        unsigned long sum = 0;
        for (size_t i = 0; i < text->len; i++)
            sum += (unsigned char)text->data[i] ^ (i & 7);
        sink += sum;
        rounds++;
        t = now() - t0;
    } while (t < 0.4);
    return (double)text->len * (double)rounds / t / 1e6;
}

static void baseline(const struct buf *text)
{
    printf("%-44s %8.0f MB/s\n", "baseline: byte-sum loop (machine speed)", baseline_rate(text));
}

/*
 * What the encodings added to the engine (case, reversal, base32, double
 * base64, separators in hex, base32 and base64, sniffed gzip, pieces) cost
 * on the target case: its rate as a ratio to the byte-sum baseline, for an
 * engine built with basic_encodings (the value, base64, hex, percent and
 * JSON forms only) and for the sidecar's, measured in alternating rounds
 * next to the baseline (best of 5 each, so a busy machine shows less).
 */
static void encodings_cost(const struct strv *secrets, const struct buf *text,
                           const struct buf *json)
{
    struct dlp_config basic_cfg = {.basic_encodings = true}, full_cfg = {0};
    struct dlp_engine *basic = dlp_engine_new(&basic_cfg, secrets, NULL);
    struct dlp_engine *full = dlp_engine_new(&full_cfg, secrets, NULL);
    double best_basic = 0, best_full = 0;
    for (int round = 0; round < 5; round++) {
        double b = baseline_rate(text);
        double rb = run(NULL, basic, DLP_OUT_DEFAULT, "application/json", json) / b;
        double rf = run(NULL, full, DLP_OUT_DEFAULT, "application/json", json) / b;
        best_basic = rb > best_basic ? rb : best_basic;
        best_full = rf > best_full ? rf : best_full;
    }
    double cost = (best_basic - best_full) / best_basic * 100;
    printf("%-44s %8.3f x baseline\n", "target, basic encodings only", best_basic);
    printf("%-44s %8.3f x baseline  (cost %.1f %%, limit 10 %%: %s)\n",
           "target, every encoding (the sidecar's)", best_full, cost,
           cost <= 10 ? "met" : "NOT met");
    dlp_engine_free(basic);
    dlp_engine_free(full);
}

/*
 * The response side: tokens the sidecar injected, taken out of a response
 * body as it streams (dlp_echo_feed in 16 KiB pieces, what the sidecar does
 * with each body on a route with a token), over the 1 MiB JSON body, with 1
 * and 50 tokens; MB/s and the ratio to the byte-sum baseline, next to the
 * outbound target case's.
 */
static double echo_rate(const struct dlp_engine *tokens, const struct buf *body)
{
    struct buf out = BUF_INIT;
    size_t rounds = 0;
    double t0 = now(), t;
    do {
        struct dlp_echo *x = dlp_echo_new(tokens);
        for (size_t at = 0; at < body->len; at += 16384) {
            size_t n = body->len - at < 16384 ? body->len - at : 16384;
            buf_reset(&out);
            dlp_echo_feed(x, body->data + at, n, false, &out);
        }
        dlp_echo_feed(x, NULL, 0, true, &out);
        dlp_echo_free(x);
        rounds++;
        t = now() - t0;
    } while (t < 0.4);
    buf_free(&out);
    return (double)body->len * (double)rounds / t / 1e6;
}

static void echo_cost(const struct strv *one, const struct strv *fifty, const struct buf *text,
                      const struct buf *json, const struct dlp_engine *e50)
{
    struct dlp_config cfg = {0};
    struct dlp_engine *t1 = dlp_engine_new(&cfg, one, NULL);
    struct dlp_engine *t50 = dlp_engine_new(&cfg, fifty, NULL);
    double b = baseline_rate(text);
    double r1 = echo_rate(t1, json), r50 = echo_rate(t50, json);
    double out = run(NULL, e50, DLP_OUT_DEFAULT, "application/json", json);
    printf("%-44s %8.0f MB/s  (%.3f x baseline)\n", "response echo redaction, JSON, 1 token", r1,
           r1 / b);
    printf("%-44s %8.0f MB/s  (%.3f x baseline; outbound target case %.3f x)\n",
           "response echo redaction, JSON, 50 tokens", r50, r50 / b, out / b);
    dlp_engine_free(t1);
    dlp_engine_free(t50);
}

int main(void)
{
    uint32_t seed = 7;
    struct strv one = STRV_INIT, fifty = STRV_INIT, many = STRV_INIT;
    for (size_t i = 0; i < 1000; i++) {
        char *t = random_token(&seed, 43);
        if (i == 0)
            strv_push(&one, t);
        if (i < 50)
            strv_push(&fifty, t);
        strv_push(&many, t);
        free(t);
    }
    struct dlp_config cfg = {0};
    struct dlp_engine *e1 = dlp_engine_new(&cfg, &one, NULL);
    struct dlp_engine *e50 = dlp_engine_new(&cfg, &fifty, NULL);
    double t0 = now();
    struct dlp_engine *e1000 = dlp_engine_new(&cfg, &many, NULL);
    printf("%-44s %8.1f ms\n", "engine build, 1000 secrets", (now() - t0) * 1e3);
    struct buf text = BUF_INIT, json = BUF_INIT, hits = BUF_INIT;
    prose(&text, 8 << 20, &seed);
    json_body(&json, 1 << 20, &seed);
    with_matches(&hits, 1 << 20, &seed);
    unsigned dflt = DLP_OUT_DEFAULT;
    baseline(&text);
    /* The architecture target: a 1 MB JSON body, default detectors, 50 known secrets. */
    double target = run(NULL, e50, dflt, "application/json", &json);
    printf("%-44s %8.0f MB/s  (target >= 1000 MB/s per core: %s)\n",
           "target: JSON 1 MiB, default, 50 secrets", target, target >= 1000 ? "met" : "NOT met");
    encodings_cost(&fifty, &text, &json);
    echo_cost(&one, &fifty, &text, &json, e50);
    run("clean text 8 MiB, default, 1 secret", e1, dflt, "text/plain", &text);
    run("clean text 8 MiB, default, 1000 secrets", e1000, dflt, "text/plain", &text);
    run("clean text, token_patterns only", e1, DLP_OUT_TOKEN_PATTERNS, "text/plain", &text);
    run("clean text, known_secrets only, 1000", e1000, DLP_OUT_KNOWN_SECRETS, "text/plain", &text);
    run("clean text, default + entropy, 1000", e1000, dflt | DLP_OUT_ENTROPY, "text/plain", &text);
    run("JSON 1 MiB (escaped), default, 1 secret", e1, dflt, "application/json", &json);
    run("JSON 1 MiB (escaped), default, 1000 secrets", e1000, dflt, "application/json", &json);
    run("token every 4 KiB, default, 1 secret", e1, dflt, "text/plain", &hits);
    run("token every 4 KiB, default, 1000 secrets", e1000, dflt, "text/plain", &hits);
    buf_free(&text);
    buf_free(&json);
    buf_free(&hits);
    strv_free(&one);
    strv_free(&fifty);
    strv_free(&many);
    dlp_engine_free(e1);
    dlp_engine_free(e50);
    dlp_engine_free(e1000);
    return 0;
}
