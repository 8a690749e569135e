/*
 * meter: usage from each API's JSON and SSE responses, fed whole, split at
 * every byte and one byte at a time, plain and gzip/deflate/br encoded
 * (compressed here, with zlib and brotlienc); interrupted streams,
 * cumulative message_delta, oversized events, SSE framing, the API from the
 * path, and the request estimator.
 */
#include "testutil.h"

#include <brotli/encode.h>
#include <zlib.h>

#include "common/buf.h"
#include "sidecar/meter/meter.h"

/* ---- fixtures ---------------------------------------------------------------------- */

static const char anthropic_sse[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\","
    "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,"
    "\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":120,"
    "\"cache_read_input_tokens\":3000,\"output_tokens\":2}}}\n"
    "\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\","
    "\"text\":\"\"}}\n"
    "\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n"
    "\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"The \\\"usage\\\" of words\"}}\n"
    "\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n"
    "\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n"
    "\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n"
    "\n";

/* Server tools: two message_deltas, cumulative. Summing would give 135 output tokens. */
static const char anthropic_cumulative_sse[] =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-1\","
    "\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\r\n"
    "\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":2000,"
    "\"cache_read_input_tokens\":50,\"output_tokens\":40}}\r\n"
    "\r\n"
    "event: message_delta\r\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},"
    "\"usage\":{\"output_tokens\":95,\"server_tool_use\":{\"web_search_requests\":1}}}\r\n"
    "\r\n"
    "event: message_stop\r\n"
    "data: {\"type\":\"message_stop\"}\r\n"
    "\r\n";

static const char openai_chat_sse[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
    "\"finish_reason\":null}],\"usage\":null}\n"
    "\n"
    ": keep-alive comment\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},"
    "\"finish_reason\":\"stop\"}],\"usage\":null}\n"
    "\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":1200,"
    "\"completion_tokens\":34,\"total_tokens\":1234,"
    "\"prompt_tokens_details\":{\"cached_tokens\":1024}}}\n"
    "\n"
    "data: [DONE]\n"
    "\n";

static const char openai_responses_sse[] =
    "event: response.created\n"
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\","
    "\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-5-codex\","
    "\"usage\":null}}\n"
    "\n"
    "event: response.output_text.delta\n"
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\","
    "\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n"
    "\n"
    "event: response.completed\n"
    "data: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":"
    "\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-5-codex\","
    "\"usage\":{\"input_tokens\":5000,\"input_tokens_details\":{\"cached_tokens\":4096},"
    "\"output_tokens\":300,\"output_tokens_details\":{\"reasoning_tokens\":256},"
    "\"total_tokens\":5300}}}\n"
    "\n";

static const char anthropic_json[] =
    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-1\","
    "\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}],\"stop_reason\":\"end_turn\","
    "\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":7,"
    "\"cache_read_input_tokens\":0,\"output_tokens\":6}}";

static const char openai_chat_json[] =
    "{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"created\":2,\"model\":"
    "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hello\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,"
    "\"completion_tokens\":10,\"total_tokens\":29,\"prompt_tokens_details\":"
    "{\"cached_tokens\":3}}}\n";

static const char openai_responses_json[] =
    "{\"id\":\"resp_2\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-5\","
    "\"output\":[],\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":0},"
    "\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":64},"
    "\"total_tokens\":123}}";

struct fixture_case {
    const char *name;
    enum meter_api api;
    const char *content_type;
    const char *body;
    const char *model;
    struct meter_usage usage;
    const char *final_marker; /* the body is FOUND once its prefix holds this whole */
};

static const struct fixture_case cases[] = {
    {"anthropic sse",
     METER_API_ANTHROPIC_MESSAGES,
     "text/event-stream; charset=utf-8",
     anthropic_sse,
     "claude-sonnet-4-5",
     {472, 15, 120, 3000},
     "{\"output_tokens\":15}}"},
    {"anthropic sse cumulative",
     METER_API_ANTHROPIC_MESSAGES,
     "text/event-stream",
     anthropic_cumulative_sse,
     "claude-opus-4-1",
     {2000, 95, 0, 50},
     "\"output_tokens\":40}}"},
    {"openai chat sse",
     METER_API_OPENAI_CHAT,
     "text/event-stream",
     openai_chat_sse,
     "gpt-4o-2024-08-06",
     {176, 34, 0, 1024},
     "\"cached_tokens\":1024}}}"},
    {"openai responses sse",
     METER_API_OPENAI_RESPONSES,
     "text/event-stream",
     openai_responses_sse,
     "gpt-5-codex",
     {904, 300, 0, 4096},
     "\"total_tokens\":5300}}}"},
    {"anthropic json",
     METER_API_ANTHROPIC_MESSAGES,
     "application/json",
     anthropic_json,
     "claude-opus-4-1",
     {12, 6, 7, 0},
     NULL},
    {"openai chat json",
     METER_API_OPENAI_CHAT,
     "application/json; charset=utf-8",
     openai_chat_json,
     "gpt-4o-mini",
     {16, 10, 0, 3},
     NULL},
    {"openai responses json",
     METER_API_OPENAI_RESPONSES,
     "application/json",
     openai_responses_json,
     "gpt-5",
     {36, 87, 0, 0},
     NULL},
};

#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* ---- helpers ------------------------------------------------------------------------- */

/* Feeds data in pieces ending at the given cut points, then finishes. */
static void run_meter(const struct fixture_case *c, const char *encoding, const void *data,
                      size_t len, const size_t *cuts, size_t n_cuts, struct meter_result *out)
{
    struct meter *m = meter_new(c->api, c->content_type, strlen(c->content_type), encoding,
                                encoding ? strlen(encoding) : 0);
    size_t off = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        meter_feed(m, (const char *)data + off, end - off);
        off = end;
    }
    meter_finish(m, out);
    meter_free(m);
}

static void expect_found(const struct fixture_case *c, const struct meter_result *r,
                         const char *how)
{
    if (r->status != METER_FOUND)
        fail_msg("%s (%s): status %d: %s", c->name, how, r->status, r->why ? r->why : "");
    if (memcmp(&r->usage, &c->usage, sizeof(r->usage)) != 0)
        fail_msg("%s (%s): usage in %lld out %lld cc %lld cr %lld", c->name, how,
                 (long long)r->usage.input_tokens, (long long)r->usage.output_tokens,
                 (long long)r->usage.cache_creation_tokens, (long long)r->usage.cache_read_tokens);
    assert_true(r->have_usage);
    assert_string_equal(r->model, c->model);
}

static void expect_every_split(const struct fixture_case *c, const char *encoding, const void *data,
                               size_t len)
{
    struct meter_result r;
    run_meter(c, encoding, data, len, NULL, 0, &r);
    expect_found(c, &r, "whole");
    for (size_t cut = 0; cut <= len; cut++) {
        run_meter(c, encoding, data, len, &cut, 1, &r);
        char how[64];
        snprintf(how, sizeof(how), "%s split at %zu", encoding ? encoding : "plain", cut);
        expect_found(c, &r, how);
    }
    size_t *cuts = malloc(len * sizeof(*cuts));
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    run_meter(c, encoding, data, len, cuts, len, &r);
    expect_found(c, &r, "one byte at a time");
    free(cuts);
}

static void zlib_encode(const char *in, size_t len, int window_bits, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_reserve(out, deflateBound(&z, len));
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out->data;
    z.avail_out = (uInt)out->cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    out->len = z.total_out;
    deflateEnd(&z);
}

static void br_encode(const char *in, size_t len, struct buf *out)
{
    size_t n = BrotliEncoderMaxCompressedSize(len);
    buf_reserve(out, n);
    assert_true(BrotliEncoderCompress(9, 18, BROTLI_MODE_TEXT, len, (const uint8_t *)in, &n,
                                      (uint8_t *)out->data));
    out->len = n;
}

enum { ENC_GZIP, ENC_ZLIB, ENC_RAW_DEFLATE, ENC_BR, ENC_COUNT };
static const char *const enc_header[ENC_COUNT] = {"gzip", "deflate", "Deflate", " br "};

static void encode(int enc, const char *in, size_t len, struct buf *out)
{
    buf_reset(out);
    if (enc == ENC_BR)
        br_encode(in, len, out);
    else
        zlib_encode(in, len, enc == ENC_GZIP ? 15 + 16 : enc == ENC_ZLIB ? 15 : -15, out);
}

/* ---- every API, every split, every encoding ----------------------------------------------- */

static void test_every_split_plain(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++)
        expect_every_split(&cases[i], NULL, cases[i].body, strlen(cases[i].body));
}

static void test_every_split_encoded(void **state)
{
    (void)state;
    struct buf enc = BUF_INIT;
    for (size_t i = 0; i < N_CASES; i++) {
        for (int e = 0; e < ENC_COUNT; e++) {
            encode(e, cases[i].body, strlen(cases[i].body), &enc);
            assert_true(enc.len < strlen(cases[i].body) || strlen(cases[i].body) < 400);
            expect_every_split(&cases[i], enc_header[e], enc.data, enc.len);
        }
    }
    buf_free(&enc);
}

/* A body larger than the decode buffer, so decoding loops within one feed. */
static void test_large_compressed_stream(void **state)
{
    (void)state;
    const struct fixture_case *c = &cases[0];
    struct buf body = BUF_INIT;
    const char *first_end = strstr(c->body, "event: content_block_start");
    buf_append(&body, c->body, (size_t)(first_end - c->body));
    for (int i = 0; i < 3000; i++)
        buf_printf(&body,
                   "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
                   "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"chunk %d\"}}\n\n",
                   i);
    buf_append_str(&body, first_end);
    struct buf enc = BUF_INIT;
    struct meter_result r;
    for (int e = 0; e < ENC_COUNT; e++) {
        encode(e, body.data, body.len, &enc);
        run_meter(c, enc_header[e], enc.data, enc.len, NULL, 0, &r);
        expect_found(c, &r, enc_header[e]);
        size_t cuts[] = {1, 2, 3, enc.len / 3, enc.len / 2, enc.len - 1};
        run_meter(c, enc_header[e], enc.data, enc.len, cuts, 6, &r);
        expect_found(c, &r, enc_header[e]);
    }
    buf_free(&enc);
    buf_free(&body);
}

/* ---- interrupted streams ---------------------------------------------------------------- */

static void test_interrupted_streams_are_incomplete(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const struct fixture_case *c = &cases[i];
        size_t len = strlen(c->body);
        size_t found_at = len; /* JSON bodies: only the whole document */
        while (found_at > 0 && c->body[found_at - 1] == '\n')
            found_at--;
        if (c->final_marker) {
            const char *p = strstr(c->body, c->final_marker);
            assert_non_null(p);
            found_at = (size_t)(p - c->body) + strlen(c->final_marker);
        }
        for (size_t cut = 0; cut < len; cut++) {
            struct meter_result r;
            run_meter(c, NULL, c->body, cut, NULL, 0, &r);
            enum meter_status want = cut >= found_at ? METER_FOUND : METER_INCOMPLETE;
            if (r.status != want)
                fail_msg("%s cut at %zu: status %d, want %d", c->name, cut, r.status, want);
            if (want == METER_INCOMPLETE)
                assert_non_null(r.why);
        }
    }
}

static void test_interrupted_compressed_stream(void **state)
{
    (void)state;
    const struct fixture_case *c = &cases[0];
    const char *cut_at = strstr(c->body, "event: message_delta");
    struct buf enc = BUF_INIT;
    for (int e = 0; e < ENC_COUNT; e++) {
        /* The stream breaks off before message_delta: the encoder's output is cut short too. */
        encode(e, c->body, (size_t)(cut_at - c->body), &enc);
        struct meter_result r;
        run_meter(c, enc_header[e], enc.data, enc.len - 4, NULL, 0, &r);
        assert_int_equal(r.status, METER_INCOMPLETE);
        /* message_start was read: its input and cache counts are known. */
        assert_true(r.have_usage);
        assert_int_equal(r.usage.input_tokens, 472);
        assert_int_equal(r.usage.cache_read_tokens, 3000);
        assert_int_equal(r.usage.output_tokens, 2);
    }
    buf_free(&enc);
}

static void test_peek_follows_the_stream(void **state)
{
    (void)state;
    const char *body = anthropic_cumulative_sse;
    struct meter *m = meter_new(METER_API_ANTHROPIC_MESSAGES, "text/event-stream", 17, NULL, 0);
    struct meter_result r;
    meter_peek(m, &r);
    assert_int_equal(r.status, METER_INCOMPLETE);
    assert_false(r.have_usage);
    const char *second = strstr(body, "event: message_delta");
    meter_feed(m, body, (size_t)(second - body));
    meter_peek(m, &r);
    assert_int_equal(r.status, METER_INCOMPLETE);
    assert_int_equal(r.usage.input_tokens, 10);
    const char *third = strstr(second + 1, "event: message_delta");
    meter_feed(m, second, (size_t)(third - second));
    meter_peek(m, &r);
    assert_int_equal(r.status, METER_FOUND);
    assert_int_equal(r.usage.output_tokens, 40);
    meter_feed(m, third, strlen(third));
    meter_finish(m, &r);
    assert_int_equal(r.status, METER_FOUND);
    assert_int_equal(r.usage.output_tokens, 95); /* the latest, not 1 + 40 + 95 */
    assert_int_equal(r.usage.input_tokens, 2000);
    meter_free(m);
}

/* ---- bounds ------------------------------------------------------------------------------- */

static void test_oversized_event_is_unknown(void **state)
{
    (void)state;
    struct buf big = BUF_INIT;
    buf_append_str(&big, "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"");
    while (big.len <= METER_EVENT_MAX)
        buf_append_str(&big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    buf_append_str(&big, "\"}}\n\n");
    /* The usage after it would be readable, but the meter stopped looking. */
    buf_append_str(&big, "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}\n\n");
    struct meter_result r;
    struct fixture_case c = cases[0];
    size_t cuts[] = {100, METER_EVENT_MAX / 2, METER_EVENT_MAX + 10};
    run_meter(&c, NULL, big.data, big.len, cuts, 3, &r);
    assert_int_equal(r.status, METER_UNKNOWN);
    assert_non_null(strstr(r.why, "larger than"));
    assert_false(r.have_usage);

    /* A JSON body over the limit. */
    c = cases[4];
    run_meter(&c, NULL, big.data + 6, big.len - 6, NULL, 0, &r);
    assert_int_equal(r.status, METER_UNKNOWN);
    buf_free(&big);
}

/* Many events, each under the limit, add up to far more than it: fine. */
static void test_long_stream_of_small_events(void **state)
{
    (void)state;
    struct buf body = BUF_INIT;
    buf_append_str(&body, "data: {\"type\":\"message_start\",\"message\":{\"model\":\"m\","
                          "\"usage\":{\"input_tokens\":3}}}\n\n");
    char text[1000];
    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    while (body.len < 3 * METER_EVENT_MAX)
        buf_printf(&body, "data: {\"type\":\"content_block_delta\",\"text\":\"%s\"}\n\n", text);
    buf_append_str(&body, "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n");
    struct meter_result r;
    run_meter(&cases[0], NULL, body.data, body.len, NULL, 0, &r);
    assert_int_equal(r.status, METER_FOUND);
    assert_int_equal(r.usage.input_tokens, 3);
    assert_int_equal(r.usage.output_tokens, 9);
    buf_free(&body);
}

/* ---- SSE framing ---------------------------------------------------------------------------- */

struct framing_case {
    const char *name;
    const char *body;
    enum meter_status status;
    int64_t output_tokens;
};

static const struct framing_case framing_cases[] = {
    {"CR line ends", "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\r\r",
     METER_FOUND, 7},
    {"CRLF line ends", "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\r\n\r\n",
     METER_FOUND, 7},
    {"mixed line ends",
     ": hi\r\nevent: x\r\rdata:{\"type\":\"message_delta\",\n"
     "data: \"usage\":{\"output_tokens\":8}}\r\n\n",
     METER_FOUND, 8},
    {"multi-line data",
     "data: {\"type\":\"message_delta\",\ndata: \"usage\":\ndata: "
     "{\"output_tokens\":11}}\n\n",
     METER_FOUND, 11},
    {"multi-line data, CRLF",
     "data: {\"type\":\"message_delta\",\r\ndata: \"usage\":"
     "{\"output_tokens\":12}}\r\n\r\n",
     METER_FOUND, 12},
    {"no space after colon",
     "data:{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n", METER_FOUND, 4},
    {"comment only", ": {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n",
     METER_INCOMPLETE, 0},
    {"other field name", "datum: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n",
     METER_INCOMPLETE, 0},
    {"last event without blank line",
     "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}}", METER_FOUND, 6},
    {"broken json", "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}\n\n",
     METER_INCOMPLETE, 0},
    {"usage in another event type",
     "data: {\"type\":\"content_block_delta\",\"usage\":{\"output_tokens\":6}}\n\n",
     METER_INCOMPLETE, 0},
};

static void test_sse_framing(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(framing_cases) / sizeof(framing_cases[0]); i++) {
        const struct framing_case *fc = &framing_cases[i];
        struct fixture_case c = {
            fc->name, METER_API_ANTHROPIC_MESSAGES, "text/event-stream", fc->body, "", {0, 0, 0, 0},
            NULL};
        size_t len = strlen(fc->body);
        for (size_t cut = 0; cut <= len; cut++) {
            struct meter_result r;
            run_meter(&c, NULL, fc->body, len, &cut, 1, &r);
            if (r.status != fc->status || r.usage.output_tokens != fc->output_tokens)
                fail_msg("%s split at %zu: status %d output %lld", fc->name, cut, r.status,
                         (long long)r.usage.output_tokens);
        }
    }
}

/* ---- terminal events and missing usage ---------------------------------------------------- */

struct terminal_case {
    const char *name;
    enum meter_api api;
    const char *body;
    enum meter_status status;
    int64_t input_tokens, output_tokens;
    const char *model;
};

static const struct terminal_case terminal_cases[] = {
    {"responses: incomplete (max_output_tokens) still reports usage", METER_API_OPENAI_RESPONSES,
     "data: {\"type\":\"response.incomplete\",\"response\":{\"model\":\"gpt-5\",\"usage\":"
     "{\"input_tokens\":9,\"output_tokens\":64}}}\n\n",
     METER_FOUND, 9, 64, "gpt-5"},
    {"responses: failed without usage", METER_API_OPENAI_RESPONSES,
     "data: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}"
     "\n\ndata: {\"type\":\"response.failed\",\"response\":{\"model\":\"gpt-5\","
     "\"usage\":null}}\n\n",
     METER_INCOMPLETE, 0, 0, "gpt-5"},
    {"responses: usage only on a non-terminal event", METER_API_OPENAI_RESPONSES,
     "data: {\"type\":\"response.in_progress\",\"response\":{\"model\":\"gpt-5\",\"usage\":"
     "{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
     METER_INCOMPLETE, 0, 0, "gpt-5"},
    {"chat: stream without include_usage", METER_API_OPENAI_CHAT,
     "data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],"
     "\"usage\":null}\n\ndata: [DONE]\n\n",
     METER_INCOMPLETE, 0, 0, "gpt-4o"},
    {"chat: cached tokens never exceed the prompt", METER_API_OPENAI_CHAT,
     "data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
     "\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":50}}}\n\n",
     METER_FOUND, 0, 1, "m"},
    {"anthropic: message_delta without counts is not final", METER_API_ANTHROPIC_MESSAGES,
     "data: {\"type\":\"message_delta\",\"usage\":{}}\n\n", METER_INCOMPLETE, 0, 0, ""},
    {"anthropic: negative and absurd counts are ignored", METER_API_ANTHROPIC_MESSAGES,
     "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":-4,\"output_tokens\":"
     "1e300}}\n\n",
     METER_INCOMPLETE, 0, 0, ""},
};

static void test_terminal_events(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(terminal_cases) / sizeof(terminal_cases[0]); i++) {
        const struct terminal_case *tc = &terminal_cases[i];
        struct fixture_case c = {tc->name, tc->api, "text/event-stream", tc->body, "", {0}, NULL};
        struct meter_result r;
        run_meter(&c, NULL, tc->body, strlen(tc->body), NULL, 0, &r);
        if (r.status != tc->status || r.usage.input_tokens != tc->input_tokens ||
            r.usage.output_tokens != tc->output_tokens || strcmp(r.model, tc->model) != 0)
            fail_msg("%s: status %d in %lld out %lld model '%s'", tc->name, r.status,
                     (long long)r.usage.input_tokens, (long long)r.usage.output_tokens, r.model);
    }
}

/* ---- content types and encodings ---------------------------------------------------------------
 */

static void test_content_type_and_encoding(void **state)
{
    (void)state;
    struct meter_result r;
    struct fixture_case c = cases[4];
    /* No Content-Type: the body says what it is. */
    c.content_type = "";
    run_meter(&c, NULL, c.body, strlen(c.body), NULL, 0, &r);
    assert_int_equal(r.status, METER_FOUND);
    c = cases[0];
    c.content_type = "";
    run_meter(&c, NULL, c.body, strlen(c.body), NULL, 0, &r);
    assert_int_equal(r.status, METER_FOUND);
    c.content_type = "Text/Event-Stream";
    run_meter(&c, NULL, c.body, strlen(c.body), NULL, 0, &r);
    assert_int_equal(r.status, METER_FOUND);

    c.content_type = "text/html";
    run_meter(&c, NULL, c.body, strlen(c.body), NULL, 0, &r);
    assert_int_equal(r.status, METER_UNKNOWN);
    assert_non_null(strstr(r.why, "content type"));
    c = cases[0];
    run_meter(&c, "zstd", c.body, strlen(c.body), NULL, 0, &r);
    assert_int_equal(r.status, METER_UNKNOWN);
    assert_non_null(strstr(r.why, "encoding"));
    run_meter(&c, "gzip", c.body, strlen(c.body), NULL, 0, &r); /* says gzip, is not */
    assert_int_equal(r.status, METER_UNKNOWN);
    assert_non_null(strstr(r.why, "gzip"));
    run_meter(&c, "br", "\xff\xff\xff\xff\xff\xff", 6, NULL, 0, &r);
    assert_int_equal(r.status, METER_UNKNOWN);
    c.api = METER_API_NONE;
    run_meter(&c, NULL, c.body, strlen(c.body), NULL, 0, &r);
    assert_int_equal(r.status, METER_UNKNOWN);

    /* An error body has no usage. */
    c = cases[4];
    const char *error = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}";
    run_meter(&c, NULL, error, strlen(error), NULL, 0, &r);
    assert_int_equal(r.status, METER_INCOMPLETE);
    assert_false(r.have_usage);
}

/*
 * No Content-Type: the meter sniffs the body, and what it reads may not
 * depend on where the body is split. Blank bytes before the first other one
 * decide nothing, whether they come alone in a piece or inside a larger one.
 * Every body here is fed whole, cut once at every byte, one byte at a time,
 * and at 200 random sets of cuts; each result must equal the whole body's.
 */
static void same_result(const char *what, const char *how, const struct meter_result *a,
                        const struct meter_result *b)
{
    if (a->status != b->status || a->have_usage != b->have_usage ||
        memcmp(&a->usage, &b->usage, sizeof(a->usage)) != 0 || strcmp(a->model, b->model) != 0)
        fail_msg("%s (%s): status %d/%d, usage %d/%d, in %lld/%lld out %lld/%lld", what, how,
                 a->status, b->status, a->have_usage, b->have_usage,
                 (long long)a->usage.input_tokens, (long long)b->usage.input_tokens,
                 (long long)a->usage.output_tokens, (long long)b->usage.output_tokens);
}

static void test_sniff_split_invariance(void **state)
{
    (void)state;
    char *bodies[8];
    size_t nb = 0;
    struct fixture_case c = cases[0]; /* Anthropic SSE */
    c.content_type = "";
    bodies[nb++] = xasprintf("%s", cases[0].body);
    bodies[nb++] = xasprintf("\n\n%s", cases[0].body);
    bodies[nb++] = xasprintf(" \r\n \t%s", cases[0].body);
    /* "  data" names no field: no usage, however the blanks arrive */
    bodies[nb++] =
        xasprintf("  data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n");
    bodies[nb++] = xasprintf("\r\n\r\n%s", cases[4].body);
    bodies[nb++] = xasprintf(" \t %s", cases[4].body);
    bodies[nb++] = xasprintf("\r");
    bodies[nb++] = xasprintf("   \n   ");
    uint64_t seed = 0x5eed;
    for (size_t b = 0; b < nb; b++) {
        const char *body = bodies[b];
        size_t len = strlen(body);
        struct fixture_case bc = c;
        if (b == 4 || b == 5) { /* Anthropic JSON */
            bc = cases[4];
            bc.content_type = "";
        }
        struct meter_result whole, r;
        run_meter(&bc, NULL, body, len, NULL, 0, &whole);
        if (b == 1 || b == 2 || b == 4 || b == 5)
            assert_int_equal(whole.status, METER_FOUND);
        if (b == 3)
            assert_false(whole.have_usage);
        char how[64];
        for (size_t cut = 0; cut <= len; cut++) {
            run_meter(&bc, NULL, body, len, &cut, 1, &r);
            snprintf(how, sizeof(how), "split at %zu", cut);
            same_result(bc.name, how, &whole, &r);
        }
        size_t *cuts = malloc((len + 1) * sizeof(*cuts));
        for (size_t i = 0; i < len; i++)
            cuts[i] = i;
        run_meter(&bc, NULL, body, len, cuts, len, &r);
        same_result(bc.name, "one byte at a time", &whole, &r);
        for (int round = 0; round < 200; round++) {
            size_t n = 0;
            for (size_t i = 0; i < len; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                if ((seed >> 33) % 7 == 0)
                    cuts[n++] = i;
            }
            run_meter(&bc, NULL, body, len, cuts, n, &r);
            snprintf(how, sizeof(how), "random cuts, round %d", round);
            same_result(bc.name, how, &whole, &r);
        }
        free(cuts);
        free(bodies[b]);
    }
}

/* ---- API from the path -------------------------------------------------------------------------
 */

static void test_api_for_path(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        enum meter_api api;
    } t[] = {
        {"/v1/messages", METER_API_ANTHROPIC_MESSAGES},
        {"/v1/messages?beta=true", METER_API_ANTHROPIC_MESSAGES},
        {"/v1/messages/", METER_API_ANTHROPIC_MESSAGES},
        {"/v1/messages/count_tokens", METER_API_NONE},
        {"/v1/messages/batches", METER_API_NONE},
        {"/v1/chat/completions", METER_API_OPENAI_CHAT},
        {"/openai/deployments/x/chat/completions?api-version=1", METER_API_OPENAI_CHAT},
        {"/v1/completions", METER_API_OPENAI_CHAT},
        {"/v1/responses", METER_API_OPENAI_RESPONSES},
        {"/backend-api/codex/responses", METER_API_OPENAI_RESPONSES},
        {"/v1/responses/resp_123", METER_API_NONE},
        {"/v1/models", METER_API_NONE},
        {"/", METER_API_NONE},
        {"", METER_API_NONE},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        enum meter_api got = meter_api_for_path(t[i].path, strlen(t[i].path));
        if (got != t[i].api)
            fail_msg("%s: %s, want %s", t[i].path, meter_api_name(got), meter_api_name(t[i].api));
    }
    assert_int_equal(meter_api_for_path(NULL, 0), METER_API_NONE);
}

/* ---- request estimate
 * ------------------------------------------------------------------------------ */

static void test_estimate_request(void **state)
{
    (void)state;
    struct meter_estimate e;
    struct bottle_err err = {0};
    const char *a = "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":1024,\"stream\":true,"
                    "\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}]}";
    assert_int_equal(meter_estimate_request(METER_API_ANTHROPIC_MESSAGES, a, strlen(a), &e, &err),
                     0);
    assert_int_equal(e.output_tokens, 1024);
    assert_true(e.output_limit_given);
    assert_true(e.stream);
    assert_int_equal(e.input_tokens, (int64_t)(strlen(a) + 3) / 4);
    assert_int_equal(e.total_tokens, e.input_tokens + 1024);
    assert_string_equal(e.model, "claude-sonnet-4-5");

    /* A base64 image counts as METER_MEDIA_TOKENS, not as its bytes. */
    struct buf img = BUF_INIT;
    buf_append_str(&img, "{\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":[{"
                         "\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                         "\"image/png\",\"data\":\"");
    size_t before = img.len;
    for (int i = 0; i < 4000; i++)
        buf_append_str(&img, "QUJD");
    size_t media = img.len - before;
    buf_append_str(&img, "\"}}]}]}");
    assert_int_equal(
        meter_estimate_request(METER_API_ANTHROPIC_MESSAGES, img.data, img.len, &e, &err), 0);
    assert_int_equal(e.input_tokens, (int64_t)(img.len - media + 3) / 4 + METER_MEDIA_TOKENS);

    const char *chat = "{\"model\":\"gpt-4o\",\"max_tokens\":50,\"max_completion_tokens\":70,"
                       "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                       "\"image_url\":{\"url\":\"data:image/png;base64,QUJDQUJD\"}}]}]}";
    assert_int_equal(meter_estimate_request(METER_API_OPENAI_CHAT, chat, strlen(chat), &e, &err),
                     0);
    assert_int_equal(e.output_tokens, 70);
    assert_int_equal(e.input_tokens,
                     (int64_t)(strlen(chat) - strlen("data:image/png;base64,QUJDQUJD") + 3) / 4 +
                         METER_MEDIA_TOKENS);
    const char *chat_old = "{\"max_tokens\":50,\"messages\":[]}";
    assert_int_equal(
        meter_estimate_request(METER_API_OPENAI_CHAT, chat_old, strlen(chat_old), &e, &err), 0);
    assert_int_equal(e.output_tokens, 50);

    const char *resp = "{\"model\":\"gpt-5-codex\",\"input\":\"hi\",\"max_output_tokens\":2048}";
    assert_int_equal(
        meter_estimate_request(METER_API_OPENAI_RESPONSES, resp, strlen(resp), &e, &err), 0);
    assert_int_equal(e.output_tokens, 2048);
    assert_false(e.stream);
    const char *nolimit = "{\"model\":\"gpt-5-codex\",\"input\":\"hi\",\"stream\":true}";
    assert_int_equal(
        meter_estimate_request(METER_API_OPENAI_RESPONSES, nolimit, strlen(nolimit), &e, &err), 0);
    assert_int_equal(e.output_tokens, METER_DEFAULT_OUTPUT_TOKENS);
    assert_false(e.output_limit_given);

    const char *bad = "not json at all, 40 bytes of it.........";
    assert_int_equal(
        meter_estimate_request(METER_API_ANTHROPIC_MESSAGES, bad, strlen(bad), &e, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a JSON object"));
    assert_int_equal(e.input_tokens, 10);
    assert_int_equal(e.total_tokens, 10 + METER_DEFAULT_OUTPUT_TOKENS);
    buf_free(&img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split_plain),
        cmocka_unit_test(test_every_split_encoded),
        cmocka_unit_test(test_large_compressed_stream),
        cmocka_unit_test(test_interrupted_streams_are_incomplete),
        cmocka_unit_test(test_interrupted_compressed_stream),
        cmocka_unit_test(test_peek_follows_the_stream),
        cmocka_unit_test(test_oversized_event_is_unknown),
        cmocka_unit_test(test_long_stream_of_small_events),
        cmocka_unit_test(test_sse_framing),
        cmocka_unit_test(test_terminal_events),
        cmocka_unit_test(test_content_type_and_encoding),
        cmocka_unit_test(test_sniff_split_invariance),
        cmocka_unit_test(test_api_for_path),
        cmocka_unit_test(test_estimate_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
