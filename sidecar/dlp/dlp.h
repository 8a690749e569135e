/*
 * dlp — the sidecar's data-loss-prevention engine: finds credentials in what
 * the agent sends (token_patterns, known_secrets, entropy, CRLF injection)
 * and prompt-injection phrases in what comes back, decides what a route's
 * `dlp.outbound_on_match` policy makes of it, and redacts when asked to.
 *
 * The engine is built once from the known secrets (every token value the
 * sidecar holds, the canary, the provider placeholders) and is read-only
 * afterwards, so requests may share it. Scans allocate per request, bounded
 * by the decoded-size cap; nothing is kept between calls except in a
 * struct dlp_stream.
 *
 * It must never let a matched value out: reasons, messages, locations and
 * snippets name the rule and where it was found, never the value. Raw text
 * only leaves through dlp_snippet(), which redacts.
 */
#ifndef BOTTLE_SIDECAR_DLP_H
#define BOTTLE_SIDECAR_DLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/route.h"
#include "sidecar/http.h"

/* Stable reason codes of DLP refusals (docs/dlp.md). */
#define DLP_REASON_BLOCKED       "dlp_blocked"
#define DLP_REASON_CRLF          "dlp_crlf_injection"
#define DLP_REASON_REDACT_FAILED "dlp_redaction_failed"
#define DLP_REASON_SUPERVISE     "dlp_supervise_unavailable"
#define DLP_REASON_TOO_LARGE     "dlp_too_large"
#define DLP_REASON_UNDECODABLE   "dlp_undecodable"
#define DLP_REASON_INJECTION     "dlp_injection"

/* Rule names of the detectors that are not token patterns. */
#define DLP_RULE_KNOWN_SECRET    "known_secret"
#define DLP_RULE_SECRET_FRAGMENT "known_secret_fragment"
#define DLP_RULE_SECRET_PARTIAL  "known_secret_partial"
#define DLP_RULE_CRLF            "crlf_injection"
#define DLP_RULE_ENTROPY         "high_entropy"
#define DLP_RULE_INJECTION       "prompt_injection"

/* Shortest known secret the engine accepts; shorter ones are skipped. */
#define DLP_SECRET_MIN_LEN 8
/* Alphanumeric window of a secret that counts as a partial leak (pass 3). */
#define DLP_PARTIAL_MIN_LEN 12
#define DLP_ENTROPY_WINDOW  64
#define DLP_ENTROPY_BITS    5.5

struct dlp_config {
    size_t max_decoded; /* cap on a body after content/transfer decoding; 0: 32 MiB */
    size_t max_matches; /* matches kept per result; 0: 64 */
    bool inbound_block; /* prompt injection in a response blocks instead of warning */
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

struct dlp_result {
    struct dlp_match *matches;
    size_t n;
    size_t cap;
    size_t dropped;   /* matches over the cap, counted but not kept */
    bool too_large;   /* decoded body over the cap: not scanned, refuse */
    bool undecodable; /* unknown or corrupt content encoding: not scanned, refuse */
    uint64_t ops;     /* work done: bytes visited, table probes, verifications */
};

struct dlp_engine;

/*
 * Builds an engine. secrets may be NULL; values shorter than
 * DLP_SECRET_MIN_LEN are skipped (counted by dlp_engine_secret_count).
 * Returns NULL with err set on failure.
 */
struct dlp_engine *dlp_engine_new(const struct dlp_config *cfg, const struct strv *secrets,
                                  struct bottle_err *err);
void dlp_engine_free(struct dlp_engine *e);
/* Secrets accepted / skipped as too short. */
size_t dlp_engine_secret_count(const struct dlp_engine *e, size_t *skipped);

/* Every token_patterns rule name, NULL-terminated (docs/dlp.md lists them). */
const char *const *dlp_rule_names(void);

void dlp_result_init(struct dlp_result *r);
void dlp_result_reset(struct dlp_result *r);
void dlp_result_free(struct dlp_result *r);
/* The first match of block severity, or NULL. */
const struct dlp_match *dlp_result_first_block(const struct dlp_result *r);

/* ---- requests ------------------------------------------------------------- */

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

/*
 * Scans host, path, query, headers and the decoded body with the detectors
 * in `outbound` (DLP_OUT_* bits). CRLF in the target and header values is
 * checked whatever the bits say. Returns 0 (see res), or a negative errno.
 */
int dlp_scan_request(const struct dlp_engine *e, unsigned outbound, const struct dlp_request *req,
                     struct dlp_result *res);

/* Scans one piece of text as `location` (no decoding, no CRLF check). */
int dlp_scan_text(const struct dlp_engine *e, unsigned outbound, const char *location,
                  const char *text, size_t len, struct dlp_result *res);

/* Prompt-injection phrases (DLP_IN_* bits) in response text. */
int dlp_scan_inbound(const struct dlp_engine *e, unsigned inbound, const char *location,
                     const char *text, size_t len, struct dlp_result *res);

/* ---- policy --------------------------------------------------------------- */

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

/*
 * What a scan means under a policy: block -> refuse; redact -> DLP_REDACT
 * (the caller redacts and calls dlp_verdict_after_redaction); supervise ->
 * refuse, supervision being unavailable. Structural matches, too_large and
 * undecodable refuse under every policy. Warnings alone pass.
 */
void dlp_verdict_for(const struct dlp_result *res, enum dlp_policy policy, struct dlp_verdict *v);
/* After redaction: `first` is the original scan, `rescan` the redacted request's. */
void dlp_verdict_after_redaction(const struct dlp_result *first, const struct dlp_result *rescan,
                                 struct dlp_verdict *v);

/* ---- redaction ------------------------------------------------------------ */

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

/*
 * Replaces every redactable match (token patterns, exact known-secret values
 * and encodings) in the target, the headers and the body with
 * "[REDACTED:<rule>]" (percent-encoded brackets in the target), re-encoding
 * the body with its content encoding. Returns 0 or a negative errno.
 */
int dlp_redact_request(const struct dlp_engine *e, unsigned outbound, const struct dlp_request *req,
                       struct dlp_redacted *out);
void dlp_redacted_free(struct dlp_redacted *r);
/* req with the edits of r applied (slices point into req and r). */
void dlp_redacted_apply(const struct dlp_request *req, const struct dlp_redacted *r,
                        struct http_header *headers_out, struct dlp_request *out);

/*
 * The whole outbound check of one request under a route's dlp settings:
 * scan, policy, redaction and re-scan. On DLP_REDACT, *red holds what to
 * forward instead. res (may be NULL) receives the first scan.
 */
int dlp_check_request(const struct dlp_engine *e, const struct route_dlp *dlp,
                      const struct dlp_request *req, struct dlp_redacted *red,
                      struct dlp_verdict *v, struct dlp_result *res);

/*
 * A printable excerpt of text around m with every match of res that
 * overlaps it replaced by its marker and long alphanumeric runs masked; for
 * projected matches only the marker. Always NUL-terminates out.
 */
void dlp_snippet(const char *text, size_t len, const struct dlp_result *res,
                 const struct dlp_match *m, char *out, size_t outsize);

/* ---- streams (WebSocket frames, bodies scanned as they pass) -------------- */

enum dlp_direction { DLP_OUTBOUND = 0, DLP_INBOUND };

struct dlp_stream;

/*
 * A scan over a byte stream fed in pieces. A match straddling pieces is
 * found once, at its offset in the whole stream, as long as it is shorter
 * than the kept overlap (dlp_stream_overlap). detectors: DLP_OUT_* or
 * DLP_IN_* bits for the direction.
 */
struct dlp_stream *dlp_stream_new(const struct dlp_engine *e, enum dlp_direction dir,
                                  unsigned detectors, const char *location);
/* Appends the matches completed by this piece to res. Returns 0 or negative. */
int dlp_stream_feed(struct dlp_stream *s, const char *p, size_t n, struct dlp_result *res);
size_t dlp_stream_overlap(const struct dlp_stream *s);
void dlp_stream_free(struct dlp_stream *s);

#endif
