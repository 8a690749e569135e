/*
 * meter — reads LLM token usage out of responses as they pass through the
 * sidecar, and estimates a request's tokens before it is forwarded.
 *
 * A meter is fed the response body exactly as it leaves the upstream, after
 * de-chunking and before any other change: still content-encoded (gzip,
 * deflate, br), split at arbitrary places. It decodes incrementally, frames
 * server-sent events or collects a JSON body, and keeps the usage the wire
 * format reports. It only observes: the caller forwards the bytes itself,
 * and no input ever makes the meter hold, alter or refuse them.
 *
 * Memory per stream is bounded: one SSE event or one JSON body of at most
 * METER_EVENT_MAX bytes (beyond it the usage is unknown and the rest is not
 * looked at), a fixed decode buffer, and the decompressor's own state (for
 * br at most METER_BROTLI_MEM_MAX).
 *
 * Counts are normalized so they add up without overlap: input_tokens are
 * the prompt tokens neither written to nor read from a prompt cache. OpenAI
 * reports cached tokens inside its prompt count; the meter moves them to
 * cache_read_tokens. Anthropic's counts are already disjoint.
 */
#ifndef BOTTLE_SIDECAR_METER_METER_H
#define BOTTLE_SIDECAR_METER_METER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define METER_EVENT_MAX      (1024 * 1024)
#define METER_BROTLI_MEM_MAX (24 * 1024 * 1024)
#define METER_MODEL_MAX      128
/* The estimator's output guess when the request sets no limit of its own. */
#define METER_DEFAULT_OUTPUT_TOKENS 8192
/* The estimator's guess for one base64 image or document in a request. */
#define METER_MEDIA_TOKENS 1600

enum meter_api {
    METER_API_NONE = 0,           /* not a metered endpoint */
    METER_API_ANTHROPIC_MESSAGES, /* POST /v1/messages */
    METER_API_OPENAI_CHAT,        /* POST /v1/chat/completions (and legacy /v1/completions) */
    METER_API_OPENAI_RESPONSES,   /* POST /v1/responses */
};

enum meter_status {
    METER_FOUND,      /* the response's final usage was read */
    METER_INCOMPLETE, /* the body ended without final usage (interrupted stream, error body) */
    METER_UNKNOWN,    /* the body could not be read: too large, undecodable, not JSON or SSE */
};

struct meter_usage {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_creation_tokens;
    int64_t cache_read_tokens;
};

struct meter_result {
    enum meter_status status;
    bool have_usage;          /* some usage was seen, final or not (e.g. message_start) */
    struct meter_usage usage; /* the latest value of each field */
    char model[METER_MODEL_MAX];
    const char *why; /* static text when status is not METER_FOUND */
};

struct meter;

/*
 * The wire format of a request, from its path (query ignored). The path is
 * what decides: providers serve each other's formats (Anthropic answers
 * OpenAI-style /v1/chat/completions, gateways serve all three), so the
 * route's provider names the budget, not the format. Token counting,
 * batches and model listings are METER_API_NONE: nothing to meter.
 */
enum meter_api meter_api_for_path(const char *path, size_t len);
const char *meter_api_name(enum meter_api api);

/*
 * A meter for one response. content_type and content_encoding are the
 * header values (NULL or len 0 when absent). Never fails: a body the meter
 * cannot read ends as METER_UNKNOWN.
 */
struct meter *meter_new(enum meter_api api, const char *content_type, size_t content_type_len,
                        const char *content_encoding, size_t content_encoding_len);
/* Observes the next bytes of the body. */
void meter_feed(struct meter *m, const void *data, size_t len);
/* What has been seen so far (for a mid-stream budget check); status as if it ended now. */
void meter_peek(const struct meter *m, struct meter_result *out);
/* The body ended (completely or not): reads a buffered JSON body and fills out. */
void meter_finish(struct meter *m, struct meter_result *out);
void meter_free(struct meter *m);

struct meter_estimate {
    int64_t input_tokens;  /* (body bytes - base64 media bytes) / 4, plus media */
    int64_t output_tokens; /* the request's output limit, or METER_DEFAULT_OUTPUT_TOKENS */
    int64_t total_tokens;
    bool output_limit_given;
    bool stream;
    char model[METER_MODEL_MAX];
};

/*
 * Estimates the tokens a request may use, for admission before forwarding.
 * A body that is not a JSON object still gets a byte-based estimate in *out
 * and returns -EINVAL with the reason in err.
 */
int meter_estimate_request(enum meter_api api, const char *body, size_t len,
                           struct meter_estimate *out, struct bottle_err *err);

#endif
