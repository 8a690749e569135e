/*
 * http — the sidecar's strict HTTP/1.1 message parser.
 *
 * Owns the framing decisions of bottle-proxy: request and response heads,
 * Content-Length / Transfer-Encoding rules, the chunked body decoder, and
 * re-serializing a request head without its hop-by-hop fields. Anything the
 * parser is not sure about is refused with a stable reason code, because a
 * proxy that frames a message differently from the upstream is a request
 * smuggling hole (docs/sidecar.md, "Request parsing").
 *
 * It never allocates, never copies the message, never blocks and never logs:
 * every slice points into the caller's buffer. Parsing is incremental: the
 * caller keeps appending bytes to one buffer and calls again with the same
 * struct; only the new bytes are examined.
 */
#ifndef BOTTLE_SIDECAR_HTTP_H
#define BOTTLE_SIDECAR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"

/* ---- limits -------------------------------------------------------------- */

/* Header fields kept per message; http_limits.max_headers is clamped to it. */
#define HTTP_HEADERS_MAX 100

struct http_limits {
    size_t request_line_max;  /* request or status line, CRLF excluded (8 KiB) */
    size_t header_block_max;  /* header lines plus the empty line, CRLFs included (64 KiB) */
    size_t max_headers;       /* header fields (100) */
    size_t chunk_line_max;    /* chunk-size line with its extensions, CRLF excluded (4 KiB) */
    size_t trailer_block_max; /* trailer lines plus the final empty line (8 KiB) */
};

#define HTTP_LIMITS_DEFAULT                                                                        \
    {                                                                                              \
        8192, 65536, HTTP_HEADERS_MAX, 4096, 8192                                                  \
    }

/* ---- reason codes (stable: logged, tested, listed in docs/sidecar.md) ---- */

#define HTTP_ERR_BAD_REQUEST_LINE         "bad_request_line"
#define HTTP_ERR_REQUEST_LINE_TOO_LONG    "request_line_too_long"
#define HTTP_ERR_HEADERS_TOO_LARGE        "headers_too_large"
#define HTTP_ERR_TOO_MANY_HEADERS         "too_many_headers"
#define HTTP_ERR_BARE_LF                  "bare_lf"
#define HTTP_ERR_BARE_CR                  "bare_cr"
#define HTTP_ERR_NUL_BYTE                 "nul_byte"
#define HTTP_ERR_OBS_FOLD                 "obs_fold"
#define HTTP_ERR_BAD_HEADER_NAME          "bad_header_name"
#define HTTP_ERR_BAD_HEADER_VALUE         "bad_header_value"
#define HTTP_ERR_DUPLICATE_CONTENT_LENGTH "duplicate_content_length"
#define HTTP_ERR_CONFLICTING_CONTENT_LEN  "conflicting_content_length"
#define HTTP_ERR_BAD_CONTENT_LENGTH       "bad_content_length"
#define HTTP_ERR_BAD_TRANSFER_ENCODING    "bad_transfer_encoding"
#define HTTP_ERR_CL_AND_TE                "cl_and_te"
#define HTTP_ERR_BAD_VERSION              "bad_version"
#define HTTP_ERR_BAD_METHOD               "bad_method"
#define HTTP_ERR_BAD_TARGET               "bad_target"
#define HTTP_ERR_HTTPS_REQUIRES_CONNECT   "https_requires_connect"
#define HTTP_ERR_UNSUPPORTED_SCHEME       "unsupported_scheme"
#define HTTP_ERR_BAD_HOST                 "bad_host"
#define HTTP_ERR_MISSING_HOST             "missing_host"
#define HTTP_ERR_MULTIPLE_HOST            "multiple_host"
#define HTTP_ERR_HOST_MISMATCH            "host_mismatch"
#define HTTP_ERR_BAD_CONNECTION           "bad_connection"
#define HTTP_ERR_UNSUPPORTED_EXPECT       "unsupported_expect"
#define HTTP_ERR_BAD_STATUS_LINE          "bad_status_line"
#define HTTP_ERR_BAD_CHUNK_SIZE           "bad_chunk_size"
#define HTTP_ERR_CHUNK_SIZE_TOO_LARGE     "chunk_size_too_large"
#define HTTP_ERR_CHUNK_LINE_TOO_LONG      "chunk_line_too_long"
#define HTTP_ERR_BAD_CHUNK_EXTENSION      "bad_chunk_extension"
#define HTTP_ERR_MISSING_CHUNK_CRLF       "missing_chunk_crlf"
#define HTTP_ERR_BAD_TRAILER              "bad_trailer"
#define HTTP_ERR_TRAILERS_TOO_LARGE       "trailers_too_large"

/* ---- slices and fields --------------------------------------------------- */

/* Bytes inside the caller's buffer (or a static string); not NUL-terminated. */
struct http_slice {
    const char *ptr;
    size_t len;
};

struct http_header {
    struct http_slice name;  /* as sent; compare case-insensitively */
    struct http_slice value; /* leading and trailing SP/HTAB removed */
};

/* Resumable scan position; private to http.c. All zero means "start". */
struct http_scan {
    uint8_t phase;
    size_t pos;
    size_t line_start;
    size_t head_start;
    size_t n_spans;
    struct {
        uint32_t name_off, name_len, value_off, value_len;
    } spans[HTTP_HEADERS_MAX]; /* last: resets stop before it */
};

/* ---- requests ------------------------------------------------------------ */

enum http_target_form {
    HTTP_FORM_ORIGIN = 0, /* /path?query (inside a TLS tunnel) */
    HTTP_FORM_ABSOLUTE,   /* http://host[:port]/path?query */
    HTTP_FORM_AUTHORITY,  /* host:port, CONNECT only */
    HTTP_FORM_ASTERISK,   /* *, OPTIONS only */
};

struct http_request {
    struct http_slice method; /* upper-case letters, digits, '-' and '_' */
    struct http_slice target; /* as sent */
    enum http_target_form form;
    struct http_slice scheme;    /* "http" (as sent) for absolute-form, else empty */
    struct http_slice authority; /* host[:port] of the target, else of the Host header */
    struct http_slice host;      /* authority's host, IPv6 brackets removed; may be empty */
    uint16_t port;               /* port named in the authority; 0 = the scheme's default */
    struct http_slice path; /* "/path?query" for origin/absolute ("/" when empty), else target */
    int version_minor;      /* 0 or 1 */
    size_t n_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* connection stays open after this exchange */
    bool upgrade_websocket; /* GET + Connection: upgrade + Upgrade: websocket */
    bool expect_continue;   /* HTTP/1.1 with Expect: 100-continue */
    const char *error;      /* reason code (HTTP_ERR_*) when parsing failed, else NULL */
    int error_status;       /* status to answer: 400, 414, 417 or 431 */
    struct http_scan scan;  /* private; kept last but one so resets stay small */
    struct http_header headers[HTTP_HEADERS_MAX];
};

/*
 * Parses a request head from buf[0..len).
 * Returns > 0: the head is complete and is that many bytes long (the body or
 * the next pipelined request starts there); 0: need more bytes; < 0
 * (-EBADMSG): the request is refused, out->error and out->error_status say
 * why. lim may be NULL for the defaults.
 *
 * out must be zeroed or passed through http_request_reset() before its first
 * use. Incremental use: after a 0, call again with the same bytes plus more (the
 * buffer may have moved) and the same struct; only new bytes are examined. A
 * call made after a complete head or an error starts a new message, so a
 * pipelined request is parsed with http_parse_request(buf + n, len - n, out).
 * Call http_request_reset() to abandon a half-parsed head.
 */
ssize_t http_parse_request(const char *buf, size_t len, struct http_request *out,
                           const struct http_limits *lim);
void http_request_reset(struct http_request *req);

/* ---- responses ----------------------------------------------------------- */

enum http_body_kind {
    HTTP_BODY_NONE = 0,    /* 1xx, 204, 304, a response to HEAD, or an empty request */
    HTTP_BODY_LENGTH,      /* content_length bytes */
    HTTP_BODY_CHUNKED,     /* http_chunked_feed() */
    HTTP_BODY_UNTIL_CLOSE, /* response without framing: read to EOF */
};

struct http_response {
    int version_minor;
    int status_code; /* 100..599 */
    struct http_slice reason_phrase;
    size_t n_headers;
    int64_t content_length; /* -1 when absent */
    bool chunked;
    enum http_body_kind body;
    bool keep_alive;
    bool upgrade_websocket; /* 101 with Upgrade: websocket */
    const char *error;      /* reason code when parsing failed, else NULL */
    int error_status;       /* 502: what the sidecar answers its client */
    struct http_scan scan;
    struct http_header headers[HTTP_HEADERS_MAX];
};

/* Same contract as http_parse_request; head_request: the request was HEAD. */
ssize_t http_parse_response(const char *buf, size_t len, bool head_request,
                            struct http_response *out, const struct http_limits *lim);
void http_response_reset(struct http_response *resp);

/* How a parsed request's body is framed (never UNTIL_CLOSE for requests). */
enum http_body_kind http_request_body(const struct http_request *req);

/* ---- chunked bodies ------------------------------------------------------ */

struct http_chunked {
    uint8_t state;
    uint64_t remaining; /* data bytes left in the current chunk */
    size_t line_len;    /* bytes of the current chunk-size line */
    size_t trailer_len; /* bytes of trailer section so far */
    size_t n_trailers;  /* trailer fields seen */
    struct http_limits lim;
    const char *error; /* reason code once feeding failed */
};

enum http_chunked_result {
    HTTP_CHUNKED_ERROR = -1, /* st->error says why; the stream is unusable */
    HTTP_CHUNKED_MORE = 0,   /* everything consumed; feed more */
    HTTP_CHUNKED_DATA = 1,   /* *data holds body bytes; feed the rest of the input */
    HTTP_CHUNKED_DONE = 2,   /* last chunk and trailers complete */
};

void http_chunked_init(struct http_chunked *st, const struct http_limits *lim);

/*
 * Decodes in[0..len). *consumed is how many input bytes were used; *data is
 * the body bytes found (a slice of in, possibly empty). Stops after each run
 * of data so the caller can forward it, and at the end of the body: bytes
 * after *consumed on DONE belong to the next message.
 */
int http_chunked_feed(struct http_chunked *st, const char *in, size_t len, size_t *consumed,
                      struct http_slice *data);

/* ---- helpers ------------------------------------------------------------- */

bool http_slice_eq(struct http_slice s, const char *lit);    /* exact */
bool http_slice_eq_ci(struct http_slice s, const char *lit); /* ASCII case-insensitive */
/* The first header called name (case-insensitive), or NULL. */
const struct http_header *http_header_find(const struct http_header *headers, size_t n,
                                           const char *name);
/* Whether a comma-separated field value contains token (case-insensitive). */
bool http_list_has_token(struct http_slice value, const char *token);

/*
 * Appends the head to forward upstream: "METHOD origin-target HTTP/1.1",
 * the request's headers minus hop-by-hop ones (Connection and the fields it
 * names, Proxy-Connection, Proxy-Authorization, Keep-Alive, TE, Trailer,
 * Upgrade unless this is a WebSocket upgrade) minus the names in skip, then
 * the add headers, then a Host for an absolute-form request that had none,
 * and the empty line. Content-Length, Transfer-Encoding and Host are never
 * dropped because Connection named them: the body framing must not change.
 * Returns 0, or -EINVAL (nothing appended) when an add header is not a valid
 * field: a name that is not a token or a value with a control character.
 */
int http_request_write_head(struct buf *out, const struct http_request *req,
                            const char *const *skip, size_t n_skip, const struct http_header *add,
                            size_t n_add);

/* Same filtering for a response head ("HTTP/1.1 code phrase"). */
int http_response_write_head(struct buf *out, const struct http_response *resp,
                             const char *const *skip, size_t n_skip, const struct http_header *add,
                             size_t n_add);

#endif
