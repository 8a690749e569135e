/*
 * dlp_decode — turning a request body into the text the detectors read:
 * content encodings under a size cap, URL and form decoding, JSON string
 * escapes, multipart parts and header parameters; and the inverse steps
 * redaction needs.
 *
 * Plain codecs: it knows nothing of the engine, rules or secrets, and never
 * decodes past the cap it is given.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_DECODE_H
#define BOTTLE_SIDECAR_DLP_DLP_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

enum dlp_decode_rc { DLP_DECODE_OK = 0, DLP_DECODE_TOO_LARGE, DLP_DECODE_BAD };
/* Undoes a Content-Encoding list (gzip, x-gzip, deflate, br, identity). */
enum dlp_decode_rc dlp_content_decode(const char *enc, const char *p, size_t n, size_t cap,
                                      struct buf *out);
/*
 * A body no coding was named for that starts with gzip's magic bytes (1f 8b
 * 08) or a zlib header: *compressed is set and what decodes of it, up to
 * cap, is put in out (a truncated or corrupt stream is decoded as far as it
 * goes: DLP_DECODE_BAD with the bytes decoded so far). Not compressed:
 * DLP_DECODE_OK, out untouched.
 */
enum dlp_decode_rc dlp_sniff_decode(const char *p, size_t n, size_t cap, struct buf *out,
                                    bool *compressed);
/* Re-applies it (for a redacted body). Returns 0 or negative. */
int dlp_content_encode(const char *enc, const char *p, size_t n, struct buf *out);
/* %XX (and '+' as space when form) decoding; invalid escapes are kept as they are. */
void dlp_url_decode(const char *p, size_t n, bool form, struct buf *out);
/* Percent-encodes everything outside unreserved characters (for the target). */
void dlp_url_encode(const char *p, size_t n, struct buf *out);
/* The JSON text with the escapes inside its strings decoded (quotes and structure kept). */
void dlp_json_view(const char *p, size_t n, struct buf *out);
/* Unescapes one JSON string body (without quotes). */
void dlp_json_unescape(const char *p, size_t n, struct buf *out);
/* Finds the end quote of the string body starting at p[i]; returns its index or n. */
size_t dlp_json_string_end(const char *p, size_t n, size_t i);

struct dlp_part {
    size_t start, end; /* content range in the body */
    char name[48];
};
/* Parts of a multipart body; returns the count (at most max). */
size_t dlp_multipart_parts(const char *boundary, const char *p, size_t n, struct dlp_part *parts,
                           size_t max);
/* Parameter of a header value (`boundary`, `charset`) into out; false when absent. */
bool dlp_header_param(const char *value, size_t len, const char *param, char *out, size_t outsize);

#endif
