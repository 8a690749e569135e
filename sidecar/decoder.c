/* decoder — see decoder.h. */
#include "sidecar/decoder.h"

#include <brotli/decode.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"

#define DECODE_CHUNK 16384
#define TRAILING     "data follows the end of the compressed stream"

struct decoder {
    enum content_coding coding;
    decoder_sink sink;
    void *arg;
    bool stopped; /* by the sink or an error */
    bool strict;  /* bytes after the end of the compressed stream are an error */
    bool ended;   /* the compressed stream (a gzip member) ended */
    const char *error;
    z_stream z;
    bool z_ready;
    unsigned char zhead[2]; /* deflate: the first bytes, until zlib or raw is known */
    size_t zhead_len;
    BrotliDecoderState *br;
    size_t br_mem, br_mem_max;
    unsigned char *out; /* DECODE_CHUNK bytes; identity needs none */
};

void header_token(const char *v, size_t n, char *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    while (i < n && v[i] != ';' && o + 1 < cap)
        out[o++] = (char)((v[i] >= 'A' && v[i] <= 'Z') ? v[i++] + 32 : v[i++]);
    while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    if (cap)
        out[o] = '\0';
}

enum content_coding content_coding_for(const char *value, size_t len)
{
    char t[32];
    header_token(value ? value : "", value ? len : 0, t, sizeof(t));
    if (!t[0] || strcmp(t, "identity") == 0)
        return CODING_IDENTITY;
    if (strcmp(t, "gzip") == 0 || strcmp(t, "x-gzip") == 0)
        return CODING_GZIP;
    if (strcmp(t, "deflate") == 0)
        return CODING_DEFLATE;
    if (strcmp(t, "br") == 0)
        return CODING_BR;
    return CODING_UNSUPPORTED;
}

static int fail(struct decoder *d, const char *why)
{
    d->stopped = true;
    d->error = why;
    return -1;
}

/* Hands decoded bytes to the sink; 1 when it stops the decoder. */
static int emit(struct decoder *d, size_t n)
{
    if (n && d->sink(d->arg, d->out, n) != 0) {
        d->stopped = true;
        return 1;
    }
    return 0;
}

static void *br_alloc(void *opaque, size_t size)
{
    struct decoder *d = opaque;
    if (size > d->br_mem_max - d->br_mem)
        return NULL;
    size_t *p = malloc(sizeof(max_align_t) + size);
    if (!p)
        return NULL;
    *p = size;
    d->br_mem += size;
    return (char *)p + sizeof(max_align_t);
}

static void br_free(void *opaque, void *ptr)
{
    struct decoder *d = opaque;
    if (!ptr)
        return;
    size_t *p = (size_t *)(void *)((char *)ptr - sizeof(max_align_t));
    d->br_mem -= *p;
    free(p);
}

static int decode_br(struct decoder *d, const unsigned char *p, size_t n)
{
    const uint8_t *next_in = p;
    size_t avail_in = n;
    for (;;) {
        uint8_t *next_out = d->out;
        size_t avail_out = DECODE_CHUNK;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(d->br, &avail_in, &next_in, &avail_out, &next_out, NULL);
        if (emit(d, DECODE_CHUNK - avail_out))
            return 1;
        if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT)
            return 0;
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            d->ended = true;
            return avail_in && d->strict ? fail(d, TRAILING) : 0;
        }
        if (r == BROTLI_DECODER_RESULT_ERROR)
            return fail(d, "the br body does not decode");
    }
}

/* deflate is zlib-wrapped by the standard and raw in some servers: the first two bytes tell. */
static bool zlib_header(const unsigned char h[2])
{
    return (h[0] & 0x0f) == 8 && (h[0] >> 4) <= 7 && ((h[0] << 8) | h[1]) % 31 == 0;
}

static int start_inflate(struct decoder *d)
{
    int bits = d->coding == CODING_GZIP ? 15 + 16 : zlib_header(d->zhead) ? 15 : -15;
    if (inflateInit2(&d->z, bits) != Z_OK)
        return fail(d, "cannot start the zlib decoder");
    d->z_ready = true;
    return 0;
}

static int inflate_some(struct decoder *d, const unsigned char *p, size_t n)
{
    d->z.next_in = (Bytef *)(uintptr_t)p;
    d->z.avail_in = (uInt)n;
    do {
        d->z.next_out = d->out;
        d->z.avail_out = DECODE_CHUNK;
        int rc = inflate(&d->z, Z_NO_FLUSH);
        if (emit(d, DECODE_CHUNK - d->z.avail_out))
            return 1;
        if (rc == Z_STREAM_END) {
            if (d->coding == CODING_GZIP && d->z.avail_in > 0) {
                inflateReset(&d->z); /* another member follows (RFC 1952 2.2) */
                continue;
            }
            d->ended = true;
            return d->z.avail_in && d->strict ? fail(d, TRAILING) : 0;
        }
        if (rc == Z_BUF_ERROR && d->z.avail_out != 0)
            return 0; /* wants more input */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return fail(d, d->coding == CODING_GZIP ? "the gzip body does not decode"
                                                    : "the deflate body does not decode");
    } while (d->z.avail_in > 0 || d->z.avail_out == 0);
    return 0;
}

static int decode_zlib(struct decoder *d, const unsigned char *p, size_t n)
{
    if (!d->z_ready && d->coding == CODING_DEFLATE) {
        while (n && d->zhead_len < 2) {
            d->zhead[d->zhead_len++] = *p++;
            n--;
        }
        if (d->zhead_len < 2)
            return 0;
        int rc = start_inflate(d);
        if (rc == 0)
            rc = inflate_some(d, d->zhead, 2);
        if (rc || d->stopped)
            return rc;
    } else if (!d->z_ready && start_inflate(d) < 0) {
        return -1;
    }
    if (n && d->ended && d->coding == CODING_GZIP) {
        inflateReset(&d->z); /* the next gzip member */
        d->ended = false;
    }
    return n ? inflate_some(d, p, n) : 0;
}

/* zlib takes uInt lengths: larger pieces go in slices. */
#define ZLIB_SLICE (1u << 30)

int decoder_feed(struct decoder *d, const void *data, size_t len)
{
    if (d->error)
        return -1;
    const unsigned char *p = data;
    while (len && !d->stopped) {
        if (d->ended && d->coding != CODING_GZIP)
            return d->strict ? fail(d, TRAILING) : 0;
        size_t n = len < ZLIB_SLICE ? len : ZLIB_SLICE;
        int rc = 0;
        switch (d->coding) {
        case CODING_IDENTITY:
            rc = d->sink(d->arg, p, n) != 0 ? 1 : 0;
            d->stopped = rc == 1;
            break;
        case CODING_GZIP:
        case CODING_DEFLATE:
            rc = decode_zlib(d, p, n);
            break;
        case CODING_BR:
            rc = decode_br(d, p, n);
            break;
        case CODING_UNSUPPORTED:
            rc = fail(d, "the content encoding is not supported");
            break;
        }
        if (rc)
            return rc;
        p += n;
        len -= n;
    }
    return 0;
}

const char *decoder_error(const struct decoder *d)
{
    return d->error;
}

struct decoder *decoder_new(enum content_coding coding, size_t br_mem_max, bool strict,
                            decoder_sink sink, void *arg)
{
    if (coding == CODING_UNSUPPORTED)
        return NULL;
    struct decoder *d = xcalloc(1, sizeof(*d));
    d->coding = coding;
    d->sink = sink;
    d->arg = arg;
    d->br_mem_max = br_mem_max;
    d->strict = strict;
    if (coding == CODING_BR) {
        d->br = BrotliDecoderCreateInstance(br_alloc, br_free, d);
        if (!d->br) {
            free(d);
            return NULL;
        }
    }
    if (coding != CODING_IDENTITY)
        d->out = xmalloc(DECODE_CHUNK);
    return d;
}

void decoder_free(struct decoder *d)
{
    if (!d)
        return;
    if (d->z_ready)
        inflateEnd(&d->z);
    if (d->br)
        BrotliDecoderDestroyInstance(d->br);
    free(d->out);
    free(d);
}
