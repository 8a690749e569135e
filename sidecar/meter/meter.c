/*
 * meter — see meter.h.
 *
 * Three layers, each fed what the one before produced: the content decoder
 * (identity, zlib for gzip and deflate, brotli) writes into a fixed 16 KiB
 * buffer; the body layer frames server-sent events (or collects a JSON
 * body); the usage layer reads one JSON document at a time. Only events
 * that can carry usage or the model name are handed to cJSON, so the many
 * small text deltas of a long stream cost a substring search each.
 *
 * Anthropic's message_delta usage is cumulative and a stream may carry
 * several (server tools): every field keeps its latest value, nothing is
 * summed. OpenAI's final usage chunk and Responses' response.completed carry
 * totals, taken whole.
 */
#include "sidecar/meter/meter.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "sidecar/decoder.h"

enum body_mode { BODY_NONE, BODY_SNIFF, BODY_SSE, BODY_JSON };

struct meter {
    enum meter_api api;
    enum body_mode mode;
    bool dead;  /* the rest is not looked at; usage unknown */
    bool final; /* the final usage was read */
    const char *why;
    struct decoder *dec; /* content decoding */
    /* server-sent events */
    struct buf line, data;
    size_t data_lines;
    bool pending_cr; /* the last byte was CR: a following LF belongs to it */
    /* JSON body; in sniff mode, the blank bytes before the first other one */
    struct buf body;
    /* what was read */
    bool have_usage;
    struct meter_usage usage;
    char model[METER_MODEL_MAX];
};

static void mark_unknown(struct meter *m, const char *why)
{
    if (!m->dead) {
        m->dead = true;
        m->why = why;
    }
    buf_free(&m->line);
    buf_free(&m->data);
    buf_free(&m->body);
}

/* ---- request paths ------------------------------------------------------------ */

static bool path_ends_with(const char *p, size_t n, const char *suffix)
{
    size_t s = strlen(suffix);
    return n >= s && memcmp(p + n - s, suffix, s) == 0;
}

enum meter_api meter_api_for_path(const char *path, size_t len)
{
    if (!path)
        return METER_API_NONE;
    const char *q = memchr(path, '?', len);
    size_t n = q ? (size_t)(q - path) : len;
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (path_ends_with(path, n, "/messages"))
        return METER_API_ANTHROPIC_MESSAGES;
    if (path_ends_with(path, n, "/completions"))
        return METER_API_OPENAI_CHAT;
    if (path_ends_with(path, n, "/responses"))
        return METER_API_OPENAI_RESPONSES;
    return METER_API_NONE;
}

const char *meter_api_name(enum meter_api api)
{
    switch (api) {
    case METER_API_ANTHROPIC_MESSAGES:
        return "anthropic_messages";
    case METER_API_OPENAI_CHAT:
        return "openai_chat";
    case METER_API_OPENAI_RESPONSES:
        return "openai_responses";
    case METER_API_NONE:
        break;
    }
    return "none";
}

/* ---- usage from JSON documents ---------------------------------------------------- */

static bool take_number(const cJSON *obj, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static void take_model(struct meter *m, const cJSON *obj)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "model");
    if (cJSON_IsString(v) && v->valuestring[0])
        snprintf(m->model, sizeof(m->model), "%s", v->valuestring);
}

/* Anthropic: fields are disjoint and cumulative; each present one replaces the last. */
static bool take_anthropic_usage(struct meter *m, const cJSON *u)
{
    if (!cJSON_IsObject(u))
        return false;
    bool any = take_number(u, "input_tokens", &m->usage.input_tokens);
    any |= take_number(u, "output_tokens", &m->usage.output_tokens);
    any |= take_number(u, "cache_creation_input_tokens", &m->usage.cache_creation_tokens);
    any |= take_number(u, "cache_read_input_tokens", &m->usage.cache_read_tokens);
    m->have_usage |= any;
    return any;
}

/* OpenAI: totals, with cached tokens counted inside the prompt's. Returns whether usage was read.
 */
static bool take_openai_usage(struct meter *m, const cJSON *u, bool responses)
{
    int64_t in = 0, out = 0, cached = 0;
    if (!cJSON_IsObject(u) || !take_number(u, responses ? "input_tokens" : "prompt_tokens", &in))
        return false;
    take_number(u, responses ? "output_tokens" : "completion_tokens", &out);
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(u, responses ? "input_tokens_details"
                                                                         : "prompt_tokens_details");
    if (cJSON_IsObject(details))
        take_number(details, "cached_tokens", &cached);
    if (cached > in)
        cached = in;
    m->usage = (struct meter_usage){in - cached, out, 0, cached};
    m->have_usage = true;
    return true;
}

static const char *json_type(const cJSON *doc)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static void read_anthropic(struct meter *m, const cJSON *doc)
{
    const char *type = json_type(doc);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(doc, "usage");
    if (strcmp(type, "message_start") == 0) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(doc, "message");
        take_model(m, msg);
        take_anthropic_usage(m, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
    } else if (strcmp(type, "message_delta") == 0) {
        /* A usage object without a count it knows is not the final usage. */
        m->final |= take_anthropic_usage(m, usage);
    } else if (strcmp(type, "message") == 0) {
        take_model(m, doc);
        m->final |= take_anthropic_usage(m, usage);
    }
}

static void read_openai_chat(struct meter *m, const cJSON *doc)
{
    if (!m->model[0] || cJSON_GetObjectItemCaseSensitive(doc, "usage"))
        take_model(m, doc);
    if (take_openai_usage(m, cJSON_GetObjectItemCaseSensitive(doc, "usage"), false))
        m->final = true;
}

static void read_openai_responses(struct meter *m, const cJSON *doc)
{
    const char *type = json_type(doc);
    const cJSON *resp = doc;
    bool terminal = true; /* a whole JSON body is the response itself */
    if (str_starts_with(type, "response.")) {
        resp = cJSON_GetObjectItemCaseSensitive(doc, "response");
        terminal = strcmp(type, "response.completed") == 0 ||
                   strcmp(type, "response.incomplete") == 0 || strcmp(type, "response.failed") == 0;
    }
    if (!cJSON_IsObject(resp))
        return;
    take_model(m, resp);
    if (terminal && take_openai_usage(m, cJSON_GetObjectItemCaseSensitive(resp, "usage"), true))
        m->final = true;
}

static void read_document(struct meter *m, const char *text, size_t len)
{
    cJSON *doc = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return;
    }
    switch (m->api) {
    case METER_API_ANTHROPIC_MESSAGES:
        read_anthropic(m, doc);
        break;
    case METER_API_OPENAI_CHAT:
        read_openai_chat(m, doc);
        break;
    case METER_API_OPENAI_RESPONSES:
        read_openai_responses(m, doc);
        break;
    case METER_API_NONE:
        break;
    }
    cJSON_Delete(doc);
}

/* ---- server-sent events ------------------------------------------------------------ */

static bool contains(const char *p, size_t n, const char *needle)
{
    return memmem(p, n, needle, strlen(needle)) != NULL;
}

static void sse_dispatch(struct meter *m)
{
    const char *d = m->data.data;
    size_t n = m->data.len;
    bool wanted =
        n && (contains(d, n, "\"usage\"") || (!m->model[0] && contains(d, n, "\"model\"")));
    if (wanted)
        read_document(m, d, n);
    buf_reset(&m->data);
    m->data_lines = 0;
}

static void sse_line(struct meter *m)
{
    const char *l = m->line.data;
    size_t n = m->line.len;
    if (n == 0) {
        if (m->data_lines)
            sse_dispatch(m);
        return;
    }
    if (l[0] == ':')
        return; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t name_len = colon ? (size_t)(colon - l) : n;
    if (name_len != 4 || memcmp(l, "data", 4) != 0)
        return; /* event, id, retry and unknown fields say nothing about usage */
    size_t v = colon ? name_len + 1 : n;
    if (v < n && l[v] == ' ')
        v++;
    if (m->data_lines++)
        buf_append_char(&m->data, '\n');
    buf_append(&m->data, l + v, n - v);
}

static void sse_end_line(struct meter *m)
{
    sse_line(m);
    buf_reset(&m->line);
}

static void sse_feed(struct meter *m, const char *p, size_t n)
{
    size_t i = 0;
    if (m->pending_cr && n) {
        m->pending_cr = false;
        if (p[0] == '\n')
            i = 1;
    }
    while (i < n && !m->dead) {
        size_t k = i;
        while (k < n && p[k] != '\n' && p[k] != '\r')
            k++;
        if (m->line.len + m->data.len + (k - i) > METER_EVENT_MAX) {
            mark_unknown(m, "an event is larger than the meter's limit");
            return;
        }
        buf_append(&m->line, p + i, k - i);
        if (k == n)
            return;
        i = k + 1;
        sse_end_line(m);
        if (p[k] == '\r') {
            if (i == n)
                m->pending_cr = true;
            else if (p[i] == '\n')
                i++;
        }
    }
}

/* ---- body ---------------------------------------------------------------------------- */

/* The decoder's sink: 1 stops decoding once the rest is not looked at. */
static int body_bytes(void *arg, const unsigned char *p, size_t n)
{
    struct meter *m = arg;
    if (m->dead)
        return 1;
    if (m->mode == BODY_SNIFF) {
        /*
         * Blank bytes decide nothing: they are kept, and once a byte that
         * decides arrives they go first to the chosen reader, so every split
         * of the body reads the same bytes in the same order.
         */
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
            i++;
        if (i == n) {
            if (m->body.len + n > METER_EVENT_MAX)
                mark_unknown(m, "the body is larger than the meter's limit");
            else
                buf_append(&m->body, p, n);
            return m->dead ? 1 : 0;
        }
        m->mode = (p[i] == '{' || p[i] == '[') ? BODY_JSON : BODY_SSE;
        if (m->mode == BODY_SSE && m->body.len) {
            struct buf blank = m->body;
            m->body = (struct buf)BUF_INIT;
            sse_feed(m, blank.data, blank.len);
            buf_free(&blank);
        }
    }
    if (m->mode == BODY_SSE) {
        sse_feed(m, (const char *)p, n);
    } else if (m->mode == BODY_JSON) {
        if (m->body.len + n > METER_EVENT_MAX)
            mark_unknown(m, "the body is larger than the meter's limit");
        else
            buf_append(&m->body, p, n);
    }
    return m->dead ? 1 : 0;
}

void meter_feed(struct meter *m, const void *data, size_t len)
{
    if (!m || m->dead || len == 0 || !m->dec)
        return;
    if (decoder_feed(m->dec, data, len) < 0)
        mark_unknown(m, decoder_error(m->dec));
}

/* ---- construction and results ------------------------------------------------------------ */

static enum body_mode body_mode_for(const char *ct, size_t n)
{
    char t[96];
    header_token(ct ? ct : "", ct ? n : 0, t, sizeof(t));
    if (!t[0])
        return BODY_SNIFF;
    if (strcmp(t, "text/event-stream") == 0)
        return BODY_SSE;
    if (strcmp(t, "application/json") == 0 || str_ends_with(t, "+json"))
        return BODY_JSON;
    return BODY_NONE;
}

struct meter *meter_new(enum meter_api api, const char *content_type, size_t content_type_len,
                        const char *content_encoding, size_t content_encoding_len)
{
    struct meter *m = xcalloc(1, sizeof(*m));
    m->api = api;
    m->mode = body_mode_for(content_type, content_type_len);
    enum content_coding coding = content_coding_for(content_encoding, content_encoding_len);
    if (api == METER_API_NONE)
        mark_unknown(m, "not a metered API");
    else if (m->mode == BODY_NONE)
        mark_unknown(m, "the content type is neither JSON nor an event stream");
    else if (coding == CODING_UNSUPPORTED)
        mark_unknown(m, "the content encoding is not supported");
    if (!m->dead) {
        m->dec = decoder_new(coding, METER_BROTLI_MEM_MAX, false, body_bytes, m);
        if (!m->dec)
            mark_unknown(m, "cannot start the content decoder");
    }
    return m;
}

void meter_peek(const struct meter *m, struct meter_result *out)
{
    memset(out, 0, sizeof(*out));
    out->have_usage = m->have_usage;
    out->usage = m->usage;
    snprintf(out->model, sizeof(out->model), "%s", m->model);
    if (m->dead) {
        out->status = METER_UNKNOWN;
        out->why = m->why;
    } else if (m->final) {
        out->status = METER_FOUND;
    } else {
        out->status = METER_INCOMPLETE;
        out->why = "the body ended without its final usage";
    }
}

void meter_finish(struct meter *m, struct meter_result *out)
{
    if (!m->dead && m->mode == BODY_JSON && m->body.len) {
        read_document(m, m->body.data, m->body.len);
        buf_reset(&m->body);
    } else if (!m->dead && m->mode == BODY_SSE) {
        /* A last event without its blank line: read it (it may be truncated JSON, then nothing). */
        if (m->line.len)
            sse_end_line(m);
        if (m->data_lines)
            sse_dispatch(m);
    }
    meter_peek(m, out);
}

void meter_free(struct meter *m)
{
    if (!m)
        return;
    decoder_free(m->dec);
    buf_free(&m->line);
    buf_free(&m->data);
    buf_free(&m->body);
    free(m);
}

/* ---- request estimate ------------------------------------------------------------------------ */

/* Base64 media: Anthropic {"type":"base64","data":...} sources and data: URLs (OpenAI). */
static void count_media(const cJSON *node, size_t *bytes, int64_t *count)
{
    if (cJSON_IsString(node)) {
        const char *s = node->valuestring;
        if (str_starts_with(s, "data:") && strstr(s, ";base64,")) {
            *bytes += strlen(s);
            (*count)++;
        }
        return;
    }
    if (cJSON_IsObject(node) && strcmp(json_type(node), "base64") == 0) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(node, "data");
        if (cJSON_IsString(d)) {
            *bytes += strlen(d->valuestring);
            (*count)++;
            return;
        }
    }
    for (const cJSON *c = node ? node->child : NULL; c; c = c->next)
        count_media(c, bytes, count);
}

static bool output_limit(enum meter_api api, const cJSON *doc, int64_t *out)
{
    switch (api) {
    case METER_API_ANTHROPIC_MESSAGES:
        return take_number(doc, "max_tokens", out);
    case METER_API_OPENAI_CHAT:
        return take_number(doc, "max_completion_tokens", out) ||
               take_number(doc, "max_tokens", out);
    case METER_API_OPENAI_RESPONSES:
        return take_number(doc, "max_output_tokens", out);
    case METER_API_NONE:
        break;
    }
    return false;
}

int meter_estimate_request(enum meter_api api, const char *body, size_t len,
                           struct meter_estimate *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    out->output_tokens = METER_DEFAULT_OUTPUT_TOKENS;
    out->input_tokens = (int64_t)((len + 3) / 4);
    out->total_tokens = out->input_tokens + out->output_tokens;
    cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return err_set(err, EINVAL, "meter: the %s request body is not a JSON object",
                       meter_api_name(api));
    }
    size_t media_bytes = 0;
    int64_t media = 0;
    count_media(doc, &media_bytes, &media);
    if (media_bytes > len)
        media_bytes = len;
    out->input_tokens = (int64_t)((len - media_bytes + 3) / 4) + media * METER_MEDIA_TOKENS;
    int64_t limit;
    if (output_limit(api, doc, &limit)) {
        out->output_tokens = limit;
        out->output_limit_given = true;
    }
    out->stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "stream"));
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    if (cJSON_IsString(model))
        snprintf(out->model, sizeof(out->model), "%s", model->valuestring);
    out->total_tokens = out->input_tokens + out->output_tokens;
    cJSON_Delete(doc);
    return 0;
}
