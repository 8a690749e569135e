/*
 * dlp_types — the DLP engine's public types and constants, without
 * functions: its config, what a scan finds (struct dlp_match, struct
 * dlp_result), the request it reads, the verdict and redaction a policy
 * makes of a scan, and the stable reason codes and rule names.
 *
 * Every file of dlp/ may include it, and so may the sidecar. It includes
 * only common/buf.h and forward-declares the rest; it must never declare a
 * function, so the detectors reach these names without reaching up into
 * the engine.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_TYPES_H
#define BOTTLE_SIDECAR_DLP_DLP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct http_header;
struct dlp_engine;
struct dlp_stream;

/* Stable reason codes of DLP refusals (docs/dlp.md). */
#define DLP_REASON_BLOCKED       "dlp_blocked"
#define DLP_REASON_CRLF          "dlp_crlf_injection"
#define DLP_REASON_REDACT_FAILED "dlp_redaction_failed"
#define DLP_REASON_SUPERVISE     "dlp_supervise_unavailable"
#define DLP_REASON_TOO_LARGE     "dlp_too_large"
#define DLP_REASON_UNDECODABLE   "dlp_undecodable"
#define DLP_REASON_INJECTION     "dlp_injection"
/* A response on a route with a token whose body cannot be decoded to take echoed tokens out. */
#define DLP_REASON_UNREDACTABLE "dlp_response_unredactable"

/* Rule names of the detectors that are not token patterns. */
#define DLP_RULE_KNOWN_SECRET    "known_secret"
#define DLP_RULE_SECRET_FRAGMENT "known_secret_fragment"
#define DLP_RULE_SECRET_PARTIAL  "known_secret_partial"
#define DLP_RULE_SECRET_PIECES   "known_secret_pieces"
#define DLP_RULE_CRLF            "crlf_injection"
#define DLP_RULE_ENTROPY         "high_entropy"
#define DLP_RULE_INJECTION       "prompt_injection"

/* Shortest known secret the engine accepts; shorter ones are skipped. */
#define DLP_SECRET_MIN_LEN 8
/* Alphanumeric window of a secret that counts as a partial leak (pass 3). */
#define DLP_PARTIAL_MIN_LEN 12
/*
 * Shorter windows, from DLP_PIECE_MIN_LEN characters, are pieces: not a
 * leak alone, but recorded (struct dlp_piece) so the pieces of one secret
 * sent in several requests add up (dlp_recent_*, docs/dlp.md).
 */
#define DLP_PIECE_MIN_LEN  10
#define DLP_ENTROPY_WINDOW 64
#define DLP_ENTROPY_BITS   5.5

struct dlp_config {
    size_t max_decoded; /* cap on a body after content/transfer decoding; 0: 32 MiB */
    size_t max_matches; /* matches kept per result; 0: 64 */
    bool inbound_block; /* prompt injection in a response blocks instead of warning */
    /*
     * Only the value, base64, hex, percent and JSON forms, and no sniffed
     * gzip: the engine as it was before the case, reversal, base32, double
     * base64 and separator detectors (bench/dlp_bench.c measures their cost
     * against it). Never set by the sidecar.
     */
    bool basic_encodings;
};

enum dlp_kind {
    DLP_KIND_PATTERN = 0, /* token_patterns */
    DLP_KIND_SECRET,      /* known_secrets pass 1: a value or one of its encodings */
    DLP_KIND_FRAGMENT,    /* pass 2: separators injected into a whole value */
    DLP_KIND_PARTIAL,     /* pass 3: a 12-character window of a value */
    DLP_KIND_CRLF,
    DLP_KIND_ENTROPY,
    DLP_KIND_INJECTION,
};

enum dlp_severity { DLP_WARN = 0, DLP_BLOCK };

struct dlp_match {
    const char *rule; /* static string: a token rule name or DLP_RULE_* */
    enum dlp_kind kind;
    enum dlp_severity severity;
    bool structural;   /* nothing to redact: CRLF, fragment, partial */
    bool projected;    /* offset/length count characters of the alphanumeric projection */
    char location[64]; /* "host", "path", "query", "header:X-Foo", "body", "body:json", ... */
    size_t offset;     /* in the scanned representation named by location */
    size_t length;
    int secret; /* index of the known secret, -1 for other kinds */
};

/*
 * Part of a known secret found in a text, shorter than a partial leak: its
 * offset and length in the secret's alphanumeric projection. Never a value.
 */
struct dlp_piece {
    int secret;
    uint32_t offset, length;
};

#define DLP_PIECES_MAX 32 /* pieces kept per result */

struct dlp_result {
    struct dlp_match *matches;
    size_t n;
    size_t cap;
    struct dlp_piece pieces[DLP_PIECES_MAX];
    size_t n_pieces;
    size_t dropped;   /* matches over the cap, counted but not kept */
    bool too_large;   /* decoded body over the cap: not scanned, refuse */
    bool undecodable; /* unknown or corrupt content encoding: not scanned, refuse */
    uint64_t ops;     /* work done: bytes visited, table probes, verifications */
};

/* A request as the engine reads it. */
struct dlp_request {
    const char *host;   /* as the request named it */
    const char *target; /* origin-form "/path?query" */
    size_t target_len;
    const struct http_header *headers;
    size_t n_headers;
    const char *skip_header; /* the header the sidecar injects (never scanned), or NULL */
    const char *body;        /* de-chunked, still content-encoded */
    size_t body_len;
};

/* What a policy makes of a scan (dlp_verdict_for). */
enum dlp_action {
    DLP_PASS = 0, /* forward as is (warnings may be present) */
    DLP_REDACT,   /* forward the redacted request (dlp_check_request did it) */
    DLP_REFUSE,
};

struct dlp_verdict {
    enum dlp_action action;
    int status;         /* 0 when passing; 403 or 413 when refused */
    const char *reason; /* DLP_REASON_*, NULL when passing */
    char message[256];  /* "<rule> found in <location>[; ...]"; never a value */
};

/* What redaction writes and changes (dlp_redact_request). */
#define DLP_REDACT_MARK_PREFIX "[REDACTED:"

struct dlp_header_edit {
    size_t index; /* into dlp_request.headers */
    char *value;  /* replacement value */
};

struct dlp_redacted {
    char *target; /* replacement target, NULL when unchanged */
    struct dlp_header_edit *headers;
    size_t n_headers;
    bool body_changed;
    struct buf body; /* replacement body (content-encoded as the original) when body_changed */
};

/* The direction a stream is scanned in (dlp_stream_new). */
enum dlp_direction { DLP_OUTBOUND = 0, DLP_INBOUND };

#endif
