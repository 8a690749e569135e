/*
 * decoder — incremental Content-Encoding decoding of a response body as it
 * passes: identity, gzip (x-gzip), deflate (zlib-wrapped or raw, told by its
 * first two bytes) and br. Input may be split anywhere; decoded bytes go to
 * a sink through a fixed 16 KiB buffer, so memory is that buffer plus the
 * decompressor's state (brotli's bounded by br_mem_max).
 *
 * Used by the meter (usage in responses) and inbound DLP (prompt injection
 * in responses); request bodies are decoded whole by the DLP engine.
 */
#ifndef BOTTLE_SIDECAR_DECODER_H
#define BOTTLE_SIDECAR_DECODER_H

#include <stdbool.h>
#include <stddef.h>

enum content_coding {
    CODING_IDENTITY = 0,
    CODING_GZIP,
    CODING_DEFLATE,
    CODING_BR,
    CODING_UNSUPPORTED, /* anything else, stacked codings included */
};

/* The coding a Content-Encoding value names (NULL or empty: identity). */
enum content_coding content_coding_for(const char *value, size_t len);

/* Lowercased first token of a header value (before ';', blanks trimmed) into out. */
void header_token(const char *value, size_t len, char *out, size_t cap);

/* Receives decoded bytes; a non-zero return stops the decoder for good. */
typedef int (*decoder_sink)(void *arg, const unsigned char *p, size_t n);

struct decoder;

/*
 * NULL for CODING_UNSUPPORTED or when the decompressor cannot start. gzip
 * bodies may hold several members, decoded one after the other (as clients
 * do). Bytes after the end of a compressed stream are ignored, or with
 * strict an error: a scanner must not let through what it did not decode.
 */
struct decoder *decoder_new(enum content_coding coding, size_t br_mem_max, bool strict,
                            decoder_sink sink, void *arg);
/*
 * Decodes the next piece of the body. Returns 0, 1 when the sink stopped
 * it, or -1 once the input does not decode (decoder_error says how).
 */
int decoder_feed(struct decoder *d, const void *p, size_t n);
/* Why decoding failed, or NULL. */
const char *decoder_error(const struct decoder *d);
void decoder_free(struct decoder *d);

#endif
