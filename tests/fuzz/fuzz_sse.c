/*
 * libFuzzer target for the response meter: content decoding, SSE framing and
 * usage extraction. Besides "no crash, no sanitizer report" it checks what
 * the sidecar relies on: the result does not depend on where the body is
 * split (whole, in pieces, one byte at a time), and a body the fuzzer gave
 * in plain text gives the same result once gzip-, deflate- or br-encoded
 * here. The first input byte picks the API, the content type, the encoding
 * path and the piece size.
 */
#include <brotli/encode.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"
#include "sidecar/meter/meter.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static const char *const content_types[4] = {"text/event-stream", "application/json", "",
                                             "text/plain"};

static void run(enum meter_api api, const char *ct, const char *ce, const uint8_t *data,
                size_t size, size_t step, struct meter_result *out)
{
    struct meter *m = meter_new(api, ct, strlen(ct), ce, ce ? strlen(ce) : 0);
    struct meter_result mid;
    for (size_t off = 0; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        /* A private copy per piece: the meter must not keep pointers into what it was fed. */
        uint8_t *piece = malloc(n);
        CHECK(piece);
        memcpy(piece, data + off, n);
        meter_feed(m, piece, n);
        free(piece);
        meter_peek(m, &mid);
        CHECK(mid.status != METER_FOUND || mid.have_usage);
    }
    meter_finish(m, out);
    meter_free(m);
    CHECK(out->status == METER_FOUND || out->why != NULL);
    CHECK(out->usage.input_tokens >= 0 && out->usage.output_tokens >= 0);
    CHECK(out->usage.cache_creation_tokens >= 0 && out->usage.cache_read_tokens >= 0);
    CHECK(memchr(out->model, '\0', sizeof(out->model)) != NULL);
}

/* Undecodable input may be noticed at different points; then only the verdict must agree. */
static void same_result(const struct meter_result *a, const struct meter_result *b)
{
    CHECK(a->status == b->status);
    if (a->status == METER_UNKNOWN)
        return;
    CHECK(a->have_usage == b->have_usage);
    CHECK(memcmp(&a->usage, &b->usage, sizeof(a->usage)) == 0);
    CHECK(strcmp(a->model, b->model) == 0);
}

static bool zlib_encode(const uint8_t *in, size_t len, int bits, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    buf_reserve(out, deflateBound(&z, len));
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)out->cap;
    bool ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
    out->len = z.total_out;
    deflateEnd(&z);
    return ok;
}

static bool encode(int which, const uint8_t *in, size_t len, struct buf *out, const char **ce)
{
    if (which == 3) {
        size_t n = BrotliEncoderMaxCompressedSize(len);
        buf_reserve(out, n ? n : 16);
        n = out->cap;
        *ce = "br";
        bool ok =
            BrotliEncoderCompress(5, 16, BROTLI_MODE_GENERIC, len, in, &n, (uint8_t *)out->data);
        out->len = n;
        return ok;
    }
    static const int bits[3] = {15 + 16, 15, -15};
    static const char *const names[3] = {"gzip", "deflate", "deflate"};
    *ce = names[which];
    return zlib_encode(in, len, bits[which], out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    enum meter_api api = (enum meter_api)(1 + data[0] % 3);
    const char *ct = content_types[(data[0] >> 2) & 3];
    int enc = (data[0] >> 4) & 7; /* 0-3: encode here; 4: feed as gzip raw; else plain */
    size_t step = (size_t)data[1] % 17 + 1;
    data += 2;
    size -= 2;

    struct meter_result whole, pieces, bytes;
    const char *raw_ce = enc == 4 ? "gzip" : NULL;
    run(api, ct, raw_ce, data, size, size ? size : 1, &whole);
    run(api, ct, raw_ce, data, size, step, &pieces);
    run(api, ct, raw_ce, data, size, 1, &bytes);
    same_result(&whole, &pieces);
    same_result(&whole, &bytes);

    if (enc < 4) {
        struct buf out = BUF_INIT;
        const char *ce = NULL;
        if (encode(enc, data, size, &out, &ce)) {
            struct meter_result encoded;
            run(api, ct, ce, (const uint8_t *)out.data, out.len, step, &encoded);
            /* Decoding is exact, so the encoded body reads like the plain one. */
            same_result(&whole, &encoded);
        }
        buf_free(&out);
    }
    return 0;
}
