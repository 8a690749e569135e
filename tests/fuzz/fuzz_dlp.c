/*
 * libFuzzer target for the DLP engine: request scans with every content
 * type and content encoding, the redact policy, snippets and streams.
 * Besides "no crash, no sanitizer report" it checks what the sidecar relies
 * on: no verdict message, location or snippet carries 12 characters of a
 * known secret; a redacted request the engine lets through re-scans clean;
 * a stream fed in pieces finds every match the whole text has, at the same
 * offset; and the response-side redaction of echoed tokens, whole or as a
 * stream, keeps the length and leaves no variant behind. The first input
 * byte picks the content type, the encoding, the policy and the piece size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "sidecar/dlp/dlp.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Fixed fake secrets: the corpus can learn them from the comparisons. */
static const char *const secrets[] = {"FuzzSecretValue0123456789abcdef", "short-key-9",
                                      "p/l+a\"c\\e-holder_0123456789"};
static const char *const projections[] = {"FuzzSecretValue0123456789abcdef", "shortkey9",
                                          "placeholder0123456789"};

static struct dlp_engine *engine(void)
{
    static struct dlp_engine *e;
    if (!e) {
        struct strv v = STRV_INIT;
        for (size_t i = 0; i < 3; i++)
            strv_push(&v, secrets[i]);
        struct dlp_config cfg = {.max_decoded = 1 << 20, .max_matches = 256};
        e = dlp_engine_new(&cfg, &v, NULL);
        strv_free(&v);
    }
    return e;
}

static void check_no_value(const char *s)
{
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(projections[k]);
        for (size_t i = 0; i + 12 <= n; i++)
            CHECK(!memmem(s, strlen(s), projections[k] + i, 12));
    }
}

static void fuzz_request(const uint8_t *data, size_t size, uint8_t mode)
{
    static const char *const ctypes[] = {"text/plain", "application/json",
                                         "application/x-www-form-urlencoded",
                                         "multipart/form-data; boundary=b"};
    static const char *const encs[] = {"", "gzip", "deflate", "br"};
    static const enum dlp_policy pols[] = {DLP_POLICY_BLOCK, DLP_POLICY_REDACT,
                                           DLP_POLICY_SUPERVISE, DLP_POLICY_REDACT};
    const char *text = (const char *)data;
    size_t split = size / 3;
    struct http_header hs[3] = {
        {{"Content-Type", 12}, {ctypes[mode & 3], strlen(ctypes[mode & 3])}},
        {{"Content-Encoding", 16}, {encs[(mode >> 2) & 3], strlen(encs[(mode >> 2) & 3])}},
        {{"X-Data", 6}, {text, split < 64 ? split : 64}},
    };
    struct dlp_request req = {"api.test", text, split, hs, 3, NULL, text + split, size - split};
    struct route_dlp d = {DLP_OUT_DEFAULT | (mode & 0x10 ? DLP_OUT_ENTROPY : 0), 0,
                          pols[(mode >> 5) & 3]};
    struct dlp_redacted red;
    struct dlp_verdict v;
    struct dlp_result r;
    dlp_result_init(&r);
    CHECK(dlp_check_request(engine(), &d, &req, &red, &v, &r) == 0);
    check_no_value(v.message);
    for (size_t i = 0; i < r.n; i++) {
        char snip[256];
        check_no_value(r.matches[i].location);
        if (strcmp(r.matches[i].location, "header:X-Data") == 0) {
            dlp_snippet(hs[2].value.ptr, hs[2].value.len, &r, &r.matches[i], snip, sizeof(snip));
            check_no_value(snip);
        }
    }
    if (v.action == DLP_REDACT) {
        struct http_header h2[3];
        struct dlp_request r2;
        struct dlp_result again;
        dlp_result_init(&again);
        dlp_redacted_apply(&req, &red, h2, &r2);
        CHECK(dlp_scan_request(engine(), d.outbound, &r2, &again) == 0);
        CHECK(!dlp_result_first_block(&again) && !again.too_large && !again.undecodable);
        dlp_result_free(&again);
    }
    dlp_redacted_free(&red);
    dlp_result_free(&r);
}

/* Every match of the whole text is found by the stream, same rule and offset. */
static void fuzz_stream(const uint8_t *data, size_t size, size_t step)
{
    const unsigned bits = DLP_OUT_DEFAULT;
    struct dlp_result whole, parts;
    dlp_result_init(&whole);
    dlp_result_init(&parts);
    dlp_scan_text(engine(), bits, "ws", (const char *)data, size, &whole);
    struct dlp_stream *s = dlp_stream_new(engine(), DLP_OUTBOUND, bits, "ws");
    for (size_t off = 0; off < size; off += step)
        CHECK(dlp_stream_feed(s, (const char *)data + off, size - off < step ? size - off : step,
                              &parts) == 0);
    if (size <= dlp_stream_overlap(s) && !whole.dropped && !parts.dropped) {
        for (size_t i = 0; i < whole.n; i++) {
            const struct dlp_match *m = &whole.matches[i];
            bool found = m->projected;
            for (size_t k = 0; k < parts.n && !found; k++)
                found = parts.matches[k].offset == m->offset &&
                        strcmp(parts.matches[k].rule, m->rule) == 0;
            CHECK(found);
        }
    }
    dlp_stream_free(s);
    dlp_result_free(&whole);
    dlp_result_free(&parts);
}

/*
 * Tokens echoed back: the text redacted whole and as a stream fed in pieces
 * keeps its length, and neither leaves a variant a second pass would find.
 * The pieces ever released before the end hold no whole variant either.
 */
static void fuzz_echo(const uint8_t *data, size_t size, size_t step)
{
    char *whole = malloc(size + 1);
    CHECK(whole);
    memcpy(whole, data, size);
    dlp_echo_redact(engine(), whole, size);
    CHECK(dlp_echo_redact(engine(), whole, size) == 0);
    struct dlp_echo *x = dlp_echo_new(engine());
    struct buf out = BUF_INIT;
    for (size_t off = 0; off < size; off += step) {
        dlp_echo_feed(x, (const char *)data + off, size - off < step ? size - off : step, false,
                      &out);
        struct buf copy = BUF_INIT;
        buf_append(&copy, out.data ? out.data : "", out.len);
        CHECK(dlp_echo_redact(engine(), copy.data ? copy.data : (char *)"", copy.len) == 0);
        buf_free(&copy);
    }
    dlp_echo_feed(x, NULL, 0, true, &out);
    CHECK(out.len == size);
    CHECK(dlp_echo_redact(engine(), out.data ? out.data : (char *)"", out.len) == 0);
    buf_free(&out);
    dlp_echo_free(x);
    free(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || !engine())
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    fuzz_request(data, size, mode);
    fuzz_stream(data, size, (size_t)(mode & 0x0f) * 7 + 1);
    fuzz_echo(data, size, (size_t)(mode & 0x0f) * 7 + 1);
    struct dlp_result r;
    dlp_result_init(&r);
    dlp_scan_inbound(engine(), DLP_IN_NAIVE_INJECTION, "response", (const char *)data, size, &r);
    for (size_t i = 0; i < r.n; i++)
        CHECK(r.matches[i].offset + r.matches[i].length <= size);
    dlp_result_free(&r);
    return 0;
}
