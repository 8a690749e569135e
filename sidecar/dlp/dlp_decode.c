/*
 * dlp_decode — turning a request body into the text the detectors read:
 * content encodings (gzip, deflate, br) under a size cap so a compression
 * bomb costs at most the cap, URL and form decoding, JSON string escapes,
 * and multipart parts. Also the inverse steps redaction needs.
 */
#include <brotli/decode.h>
#include <brotli/encode.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "sidecar/dlp/dlp_decode.h"

/* ---- content encodings ---------------------------------------------------- */

/* windowBits: 15 + 32 accepts zlib and gzip headers; -15 is raw deflate. */
static enum dlp_decode_rc inflate_bits(const char *p, size_t n, size_t cap, int bits,
                                       struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, bits) != Z_OK)
        return DLP_DECODE_BAD;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    int rc = Z_OK;
    char chunk[16384];
    while (rc != Z_STREAM_END) {
        z.next_out = (Bytef *)chunk;
        z.avail_out = sizeof(chunk);
        rc = inflate(&z, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && !(rc == Z_BUF_ERROR && z.avail_in == 0))
            break;
        size_t got = sizeof(chunk) - z.avail_out;
        if (out->len + got > cap) {
            inflateEnd(&z);
            return DLP_DECODE_TOO_LARGE;
        }
        buf_append(out, chunk, got);
        if (rc == Z_BUF_ERROR || (got == 0 && z.avail_in == 0 && rc != Z_STREAM_END))
            break;
        if (rc == Z_STREAM_END && z.avail_in > 0 && bits > 0) { /* concatenated gzip members */
            inflateReset(&z);
            rc = Z_OK;
        }
    }
    inflateEnd(&z);
    return rc == Z_STREAM_END ? DLP_DECODE_OK : DLP_DECODE_BAD;
}

static enum dlp_decode_rc brotli_decode(const char *p, size_t n, size_t cap, struct buf *out)
{
    BrotliDecoderState *st = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!st)
        return DLP_DECODE_BAD;
    const uint8_t *in = (const uint8_t *)p;
    size_t avail_in = n;
    BrotliDecoderResult rc = BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT;
    enum dlp_decode_rc ret = DLP_DECODE_BAD;
    uint8_t chunk[16384];
    while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT) {
        uint8_t *next = chunk;
        size_t avail_out = sizeof(chunk);
        rc = BrotliDecoderDecompressStream(st, &avail_in, &in, &avail_out, &next, NULL);
        size_t got = sizeof(chunk) - avail_out;
        if (out->len + got > cap) {
            ret = DLP_DECODE_TOO_LARGE;
            break;
        }
        buf_append(out, chunk, got);
    }
    if (rc == BROTLI_DECODER_RESULT_SUCCESS)
        ret = avail_in == 0 ? DLP_DECODE_OK : DLP_DECODE_BAD;
    BrotliDecoderDestroyInstance(st);
    return ret;
}

static enum dlp_decode_rc decode_one(const char *name, size_t nlen, const char *p, size_t n,
                                     size_t cap, struct buf *out)
{
    if ((nlen == 4 && strncasecmp(name, "gzip", 4) == 0) ||
        (nlen == 6 && strncasecmp(name, "x-gzip", 6) == 0))
        return inflate_bits(p, n, cap, 15 + 32, out);
    if (nlen == 7 && strncasecmp(name, "deflate", 7) == 0) {
        enum dlp_decode_rc rc = inflate_bits(p, n, cap, 15 + 32, out);
        if (rc == DLP_DECODE_BAD) { /* some clients send raw deflate without the zlib header */
            buf_reset(out);
            rc = inflate_bits(p, n, cap, -15, out);
        }
        return rc;
    }
    if (nlen == 2 && strncasecmp(name, "br", 2) == 0)
        return brotli_decode(p, n, cap, out);
    if (nlen == 8 && strncasecmp(name, "identity", 8) == 0) {
        if (n > cap)
            return DLP_DECODE_TOO_LARGE;
        buf_append(out, p, n);
        return DLP_DECODE_OK;
    }
    return DLP_DECODE_BAD;
}

/* Splits "gzip, br" into names; returns the count (at most max). */
static size_t coding_names(const char *enc, const char *names[], size_t lens[], size_t max)
{
    size_t k = 0;
    for (const char *s = enc; *s && k < max + 1;) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if (e > s) {
            if (k < max) {
                names[k] = s;
                lens[k] = (size_t)(e - s);
            }
            k++;
        }
        s = e;
    }
    return k;
}

enum dlp_decode_rc dlp_content_decode(const char *enc, const char *p, size_t n, size_t cap,
                                      struct buf *out)
{
    const char *names[4];
    size_t lens[4];
    size_t k = enc ? coding_names(enc, names, lens, 4) : 0;
    if (k > 4)
        return DLP_DECODE_BAD;
    struct buf cur = BUF_INIT;
    buf_append(&cur, p, n);
    for (size_t i = k; i-- > 0;) { /* codings were applied in the order listed */
        struct buf next = BUF_INIT;
        enum dlp_decode_rc rc = decode_one(names[i], lens[i], cur.data, cur.len, cap, &next);
        buf_free(&cur);
        if (rc != DLP_DECODE_OK) {
            buf_free(&next);
            return rc;
        }
        cur = next;
    }
    if (cur.len > cap) {
        buf_free(&cur);
        return DLP_DECODE_TOO_LARGE;
    }
    buf_append(out, cur.data, cur.len);
    buf_free(&cur);
    return DLP_DECODE_OK;
}

enum dlp_decode_rc dlp_sniff_decode(const char *p, size_t n, size_t cap, struct buf *out,
                                    bool *compressed)
{
    const unsigned char *u = (const unsigned char *)p;
    *compressed = false;
    if (n < 3)
        return DLP_DECODE_OK;
    bool gzip = u[0] == 0x1f && u[1] == 0x8b && u[2] == 8;
    bool zlib = (u[0] & 0x0f) == 8 && (u[0] >> 4) <= 7 && ((unsigned)u[0] << 8 | u[1]) % 31 == 0 &&
                !(u[1] & 0x20); /* deflate, a window up to 32 KiB, no preset dictionary */
    if (!gzip && !zlib)
        return DLP_DECODE_OK;
    *compressed = true;
    return inflate_bits(p, n, cap, 15 + 32, out);
}

static int deflate_bits(const char *p, size_t n, int bits, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    buf_reserve(out, deflateBound(&z, (uLong)n) + 1);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out->data + out->len;
    z.avail_out = (uInt)(out->cap - out->len - 1);
    int rc = deflate(&z, Z_FINISH);
    out->len += z.total_out;
    out->data[out->len] = 0;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -EIO;
}

static int encode_one(const char *name, size_t nlen, const char *p, size_t n, struct buf *out)
{
    if ((nlen == 4 && strncasecmp(name, "gzip", 4) == 0) ||
        (nlen == 6 && strncasecmp(name, "x-gzip", 6) == 0))
        return deflate_bits(p, n, 15 + 16, out);
    if (nlen == 7 && strncasecmp(name, "deflate", 7) == 0)
        return deflate_bits(p, n, 15, out);
    if (nlen == 2 && strncasecmp(name, "br", 2) == 0) {
        size_t size = BrotliEncoderMaxCompressedSize(n) + 16;
        buf_reserve(out, size + 1);
        if (!BrotliEncoderCompress(BROTLI_DEFAULT_QUALITY, BROTLI_DEFAULT_WINDOW,
                                   BROTLI_MODE_GENERIC, n, (const uint8_t *)p, &size,
                                   (uint8_t *)out->data + out->len))
            return -EIO;
        out->len += size;
        out->data[out->len] = 0;
        return 0;
    }
    if (nlen == 8 && strncasecmp(name, "identity", 8) == 0) {
        buf_append(out, p, n);
        return 0;
    }
    return -EINVAL;
}

int dlp_content_encode(const char *enc, const char *p, size_t n, struct buf *out)
{
    const char *names[4];
    size_t lens[4];
    size_t k = enc ? coding_names(enc, names, lens, 4) : 0;
    if (k > 4)
        return -EINVAL;
    struct buf cur = BUF_INIT;
    buf_append(&cur, p, n);
    for (size_t i = 0; i < k; i++) {
        struct buf next = BUF_INIT;
        int rc = encode_one(names[i], lens[i], cur.data, cur.len, &next);
        buf_free(&cur);
        if (rc < 0) {
            buf_free(&next);
            return rc;
        }
        cur = next;
    }
    buf_append(out, cur.data, cur.len);
    buf_free(&cur);
    return 0;
}

/* ---- URL and form --------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

void dlp_url_decode(const char *p, size_t n, bool form, struct buf *out)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 &&
            (lo = hexval(p[i + 2])) >= 0) {
            buf_append_char(out, (char)(hi * 16 + lo));
            i += 2;
        } else {
            buf_append_char(out, form && p[i] == '+' ? ' ' : p[i]);
        }
    }
}

void dlp_url_encode(const char *p, size_t n, struct buf *out)
{
    static const char d[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            (c && strchr("-._~", c))) {
            buf_append_char(out, (char)c);
        } else {
            buf_append_char(out, '%');
            buf_append_char(out, d[c >> 4]);
            buf_append_char(out, d[c & 15]);
        }
    }
}

/* ---- JSON ----------------------------------------------------------------- */

/* The first '"' not escaped: preceded by an even number of backslashes. */
size_t dlp_json_string_end(const char *p, size_t n, size_t i)
{
    while (i < n) {
        const char *q = memchr(p + i, '"', n - i);
        if (!q)
            return n;
        size_t at = (size_t)(q - p), bs = 0;
        while (at - bs > i && p[at - bs - 1] == '\\')
            bs++;
        if (bs % 2 == 0)
            return at;
        i = at + 1;
    }
    return n;
}

static void put_utf8(struct buf *out, unsigned cp)
{
    if (cp < 0x80) {
        buf_append_char(out, (char)cp);
    } else if (cp < 0x800) {
        buf_append_char(out, (char)(0xc0 | (cp >> 6)));
        buf_append_char(out, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        buf_append_char(out, (char)(0xe0 | (cp >> 12)));
        buf_append_char(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_append_char(out, (char)(0x80 | (cp & 0x3f)));
    } else {
        buf_append_char(out, (char)(0xf0 | (cp >> 18)));
        buf_append_char(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
        buf_append_char(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
        buf_append_char(out, (char)(0x80 | (cp & 0x3f)));
    }
}

static int hex4(const char *p, size_t n, size_t i)
{
    if (i + 4 > n)
        return -1;
    int v = 0;
    for (size_t k = 0; k < 4; k++) {
        int d = hexval(p[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* One escape at p[i] == '\\'; returns the index of its last byte. */
static size_t unescape_at(const char *p, size_t n, size_t i, struct buf *out)
{
    if (i + 1 >= n) {
        buf_append_char(out, '\\');
        return i;
    }
    char c = p[i + 1];
    const char *from = "bfnrt\"\\/", *to = "\b\f\n\r\t\"\\/";
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        buf_append_char(out, to[k - from]);
        return i + 1;
    }
    int cp = c == 'u' ? hex4(p, n, i + 2) : -1;
    if (cp < 0) { /* not an escape: keep the bytes */
        buf_append_char(out, '\\');
        return i;
    }
    size_t last = i + 5;
    if (cp >= 0xd800 && cp < 0xdc00 && last + 2 < n && p[last + 1] == '\\' && p[last + 2] == 'u') {
        int lo = hex4(p, n, last + 3);
        if (lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            last += 6;
        }
    }
    put_utf8(out, (unsigned)cp);
    return last;
}

void dlp_json_unescape(const char *p, size_t n, struct buf *out)
{
    buf_reserve(out, n);
    size_t from = 0;
    for (const char *q = memchr(p, '\\', n); q; q = memchr(p + from, '\\', n - from)) {
        size_t i = (size_t)(q - p);
        buf_append(out, p + from, i - from);
        from = unescape_at(p, n, i, out) + 1;
        if (from >= n)
            break;
    }
    if (from < n)
        buf_append(out, p + from, n - from);
}

void dlp_json_view(const char *p, size_t n, struct buf *out)
{
    buf_reserve(out, n);
    size_t from = 0;
    for (const char *q = memchr(p, '"', n); q; q = memchr(p + from, '"', n - from)) {
        size_t start = (size_t)(q - p) + 1, end = dlp_json_string_end(p, n, start);
        buf_append(out, p + from, start - from);
        dlp_json_unescape(p + start, end - start, out);
        from = end < n ? end + 1 : n;
        if (end < n)
            buf_append_char(out, '"');
    }
    if (from < n)
        buf_append(out, p + from, n - from);
}

/* ---- header parameters and multipart --------------------------------------- */

bool dlp_header_param(const char *value, size_t len, const char *param, char *out, size_t outsize)
{
    size_t plen = strlen(param);
    for (size_t i = 0; i + plen < len; i++) {
        if (strncasecmp(value + i, param, plen) != 0 || value[i + plen] != '=' ||
            (i > 0 && value[i - 1] != ';' && value[i - 1] != ' ' && value[i - 1] != '\t'))
            continue;
        size_t s = i + plen + 1, e;
        bool quoted = s < len && value[s] == '"';
        s += quoted;
        for (e = s; e < len && (quoted ? value[e] != '"' : value[e] != ';' && value[e] != ' ');)
            e++;
        if (e - s == 0 || e - s >= outsize)
            return false;
        memcpy(out, value + s, e - s);
        out[e - s] = 0;
        return true;
    }
    return false;
}

/* The part's name from its Content-Disposition, within its header block [h, e). */
static void part_name(const char *p, size_t h, size_t e, char *name, size_t size)
{
    name[0] = 0;
    for (size_t i = h; i < e;) {
        const char *nl = memchr(p + i, '\n', e - i);
        size_t end = nl ? (size_t)(nl - p) : e;
        if (end - i > 20 && strncasecmp(p + i, "content-disposition:", 20) == 0)
            dlp_header_param(p + i + 20, end - i - 20, "name", name, size);
        i = end + 1;
    }
}

size_t dlp_multipart_parts(const char *boundary, const char *p, size_t n, struct dlp_part *parts,
                           size_t max)
{
    char delim[80];
    int dl = snprintf(delim, sizeof(delim), "--%s", boundary);
    if (dl <= 2 || (size_t)dl >= sizeof(delim))
        return 0;
    size_t count = 0;
    const char *at = memmem(p, n, delim, (size_t)dl);
    while (at && count < max) {
        size_t h = (size_t)(at - p) + (size_t)dl;
        if (h + 2 <= n && p[h] == '-' && p[h + 1] == '-')
            break;
        const char *blank = memmem(p + h, n - h, "\r\n\r\n", 4);
        if (!blank)
            break;
        size_t start = (size_t)(blank - p) + 4;
        const char *next = memmem(p + start, n - start, delim, (size_t)dl);
        size_t end = next ? (size_t)(next - p) : n;
        if (end >= start + 2 && next && p[end - 2] == '\r' && p[end - 1] == '\n')
            end -= 2;
        parts[count].start = start;
        parts[count].end = end < start ? start : end;
        part_name(p, h, start, parts[count].name, sizeof(parts[count].name));
        count++;
        at = next;
    }
    return count;
}
