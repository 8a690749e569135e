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
 *
 * This is what the sidecar uses; the types are in dlp_types.h. Inside dlp/
 * the layers run one way: dlp_hook.c over the engine (dlp.c, with
 * dlp_redact.c, dlp_stream.c, dlp_echo.c and dlp_recent.c on top of it),
 * the engine over the detectors (dlp_rules.c, dlp_secrets.c, dlp_simd.c),
 * the detectors over dlp_base.c (character classes, hits, request
 * accessors) and dlp_decode.c, and everything over dlp_types.h. A detector
 * never calls the engine.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_H
#define BOTTLE_SIDECAR_DLP_DLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/route.h"
#include "sidecar/dlp/dlp_types.h"
#include "sidecar/http.h"

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

/* ---- tokens echoed back (dlp_echo.c) ------------------------------------- */

/*
 * What a token the sidecar injected becomes in a response: a mark of the
 * same length, "[REDACTED:token" then '*' up to its last byte, "]" (shorter
 * values: "[REDACTED" and '*', or only '*' under 10 bytes).
 */
#define DLP_ECHO_MARK "[REDACTED:token]"
void dlp_echo_mark(char *dst, size_t n);
/*
 * Overwrites every token variant the engine (built from the real tokens)
 * finds in p[0, n) with its mark; returns how many.
 */
size_t dlp_echo_redact(const struct dlp_engine *tokens, char *p, size_t n);

/* The same over a stream fed in pieces (a response body). */
struct dlp_echo;
struct dlp_echo *dlp_echo_new(const struct dlp_engine *tokens);
/*
 * Appends to out what of the stream can go: everything fed so far, marked,
 * but the last bytes a token variant could still begin in, held back until
 * more is fed or last is set. Returns the variants marked by this call.
 */
size_t dlp_echo_feed(struct dlp_echo *x, const char *p, size_t n, bool last, struct buf *out);
uint64_t dlp_echo_count(const struct dlp_echo *x);
void dlp_echo_free(struct dlp_echo *x);

/* ---- pieces across requests (dlp_recent.c) ------------------------------- */

#define DLP_RECENT_PER_ROUTE  64               /* pieces kept per route */
#define DLP_RECENT_ROUTES     64               /* routes with a window */
#define DLP_RECENT_MAX_AGE_MS (15 * 60 * 1000) /* a piece is forgotten after this */

struct dlp_recent;
/* A window of recent pieces; max_age_ms 0: DLP_RECENT_MAX_AGE_MS. */
struct dlp_recent *dlp_recent_new(uint64_t max_age_ms);
void dlp_recent_free(struct dlp_recent *r);
/*
 * Adds the pieces a scan found in one request to route `key` (res->pieces)
 * to the pieces of the route's recent requests. When one secret's pieces
 * then cover DLP_PARTIAL_MIN_LEN characters or more, fills v (refuse, 403
 * dlp_blocked, rule known_secret_pieces) and returns true, recording
 * nothing: the request does not leave. Otherwise records them and returns
 * false.
 */
bool dlp_recent_check(struct dlp_recent *r, const char *key, const struct dlp_result *res,
                      uint64_t now_ms, struct dlp_verdict *v);

/* ---- inside dlp/: for dlp_stream.c and dlp_redact.c ----------------------- */

struct dlp_hits;
/* Runs the outbound detectors named by bits (DLP_OUT_*) over one text, into h. */
void dlp_find_outbound(const struct dlp_engine *e, unsigned bits, const char *p, size_t len,
                       struct dlp_hits *h);

#endif
