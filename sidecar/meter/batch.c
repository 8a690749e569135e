/* batch — see batch.h. */
#include "sidecar/meter/batch.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "manifest/route.h"
#include "sidecar/decoder.h"
#include "sidecar/meter/meter.h"

/* ---- which endpoint ---------------------------------------------------------------- */

/* The path without its query and trailing slashes. */
static size_t path_length(const char *p, size_t n)
{
    const char *q = memchr(p, '?', n);
    if (q)
        n = (size_t)(q - p);
    while (n > 1 && p[n - 1] == '/')
        n--;
    return n;
}

static bool ends_with(const char *p, size_t n, const char *suffix)
{
    size_t s = strlen(suffix);
    return n >= s && memcmp(p + n - s, suffix, s) == 0;
}

/* The first occurrence of segment (e.g. "/batches") followed by the end or '/'. */
static const char *find_segment(const char *p, size_t n, const char *segment, size_t *rest)
{
    size_t s = strlen(segment);
    for (const char *at = memmem(p, n, segment, s); at;
         at = memmem(at + 1, n - (size_t)(at + 1 - p), segment, s)) {
        const char *after = at + s;
        if (after == p + n || *after == '/') {
            *rest = n - (size_t)(after - p);
            return after;
        }
    }
    return NULL;
}

/* One path segment, then suffix (e.g. "/msgbatch_1/results"). */
static bool one_segment_then(const char *rest, size_t n, const char *suffix)
{
    size_t s = strlen(suffix);
    if (n <= s + 1 || rest[0] != '/' || !ends_with(rest, n, suffix))
        return false;
    return memchr(rest + 1, '/', n - s - 1) == NULL;
}

/* A multipart upload whose "purpose" field is "batch" (the file is a batch's input). */
static bool purpose_is_batch(const char *body, size_t len)
{
    static const char field[] = "name=\"purpose\"";
    const char *f = body ? memmem(body, len, field, sizeof(field) - 1) : NULL;
    if (!f)
        return false;
    const char *end = body + len;
    const char *v = memmem(f, (size_t)(end - f), "\r\n\r\n", 4);
    if (!v)
        return false;
    v += 4;
    const char *e = v;
    while (e < end && *e != '\r' && *e != '\n')
        e++;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    return e - v == 5 && strncasecmp(v, "batch", 5) == 0;
}

enum meter_batch_kind meter_batch_kind_of(const struct http_request *req, const char *body,
                                          size_t len)
{
    const char *p = req->path.ptr;
    size_t n = path_length(p, req->path.len);
    bool post = http_slice_eq(req->method, "POST");
    bool read = http_slice_eq(req->method, "GET") || http_slice_eq(req->method, "HEAD");
    bool manage = read || http_slice_eq(req->method, "DELETE");
    /* A path the upstream might resolve differently (dot-segments, encoded '/') is no batch's. */
    const char *why = NULL;
    char *canonical = route_path_canonical(p, n, &why);
    if (!canonical)
        return METER_BATCH_NONE;
    free(canonical);
    size_t rn = 0;
    const char *rest = find_segment(p, n, "/messages/batches", &rn);
    if (!rest)
        rest = find_segment(p, n, "/batches", &rn);
    if (rest) {
        if (rn == 0)
            return post ? METER_BATCH_CREATE : manage ? METER_BATCH_MANAGE : METER_BATCH_NONE;
        if (read && one_segment_then(rest, rn, "/results"))
            return METER_BATCH_RESULTS;
        if (manage || (post && one_segment_then(rest, rn, "/cancel")))
            return METER_BATCH_MANAGE;
        return METER_BATCH_NONE;
    }
    rest = find_segment(p, n, "/files", &rn);
    if (rest && rn == 0 && post && purpose_is_batch(body, len))
        return METER_BATCH_UPLOAD;
    if (rest && read && one_segment_then(rest, rn, "/content"))
        return METER_BATCH_RESULTS;
    return METER_BATCH_NONE;
}

char *meter_batch_results_id(const char *path, size_t len)
{
    size_t n = path_length(path, len);
    const char *end = ends_with(path, n, "/results")   ? path + n - 8
                      : ends_with(path, n, "/content") ? path + n - 8
                                                       : NULL;
    if (!end)
        return NULL;
    const char *start = end;
    while (start > path && start[-1] != '/')
        start--;
    return start < end ? xstrndup(start, (size_t)(end - start)) : NULL;
}

/* ---- the worst case ------------------------------------------------------------------ */

static int64_t number(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e12
               ? (int64_t)v->valuedouble
               : -1;
}

/* A request's output limit in any of the three wire formats, or the estimator's default. */
static int64_t output_limit(const cJSON *params)
{
    static const char *const keys[] = {"max_tokens", "max_completion_tokens", "max_output_tokens"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        int64_t v = number(params, keys[i]);
        if (v >= 0)
            return v;
    }
    return METER_DEFAULT_OUTPUT_TOKENS;
}

void meter_batch_cost_of(enum meter_batch_kind kind, const char *path, size_t path_len,
                         const char *body, size_t len, struct meter_batch_cost *out)
{
    memset(out, 0, sizeof(*out));
    out->tokens = (int64_t)(len / 4); /* every byte of input, as the estimator counts it */
    size_t n = path_length(path, path_len);
    if (kind == METER_BATCH_CREATE && ends_with(path, n, "/messages/batches")) {
        cJSON *doc = body ? cJSON_ParseWithLength(body, len) : NULL;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "requests");
        const cJSON *r;
        if (!cJSON_IsArray(list))
            list = NULL;
        cJSON_ArrayForEach(r, list)
        {
            out->requests++;
            out->tokens += output_limit(cJSON_GetObjectItemCaseSensitive(r, "params"));
        }
        out->known = list != NULL;
        cJSON_Delete(doc);
        return;
    }
    if (kind != METER_BATCH_UPLOAD)
        return; /* an OpenAI batch names an uploaded file: its requests are not in this body */
    /* The file's JSONL lines ({"custom_id", "method", "url", "body": {...}}) inside the upload. */
    for (size_t pos = 0; body && pos < len;) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        if (end > pos && body[pos] == '{') {
            cJSON *line = cJSON_ParseWithLength(body + pos, end - pos);
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(line, "body");
            if (cJSON_IsObject(b)) {
                out->requests++;
                out->tokens += output_limit(b);
            }
            cJSON_Delete(line);
        }
        pos = end + 1;
    }
    out->known = out->requests > 0;
}

bool meter_batch_admit(enum meter_batch_kind kind, const struct config_budget *budget,
                       const char *scope_words, const struct http_request *req, const char *body,
                       size_t len, struct proxy_verdict *out)
{
    if ((kind != METER_BATCH_CREATE && kind != METER_BATCH_UPLOAD) || !budget)
        return true;
    struct meter_batch_cost cost;
    meter_batch_cost_of(kind, req->path.ptr, req->path.len, body, len, &cost);
    char what[72];
    if (cost.known)
        snprintf(what, sizeof(what),
                 "this batch of %" PRId64 " requests may spend %" PRId64 " tokens", cost.requests,
                 cost.tokens);
    else
        snprintf(what, sizeof(what), "a batch may spend what its requests do");
    out->status = 403;
    out->reason = REASON_BATCH_UNDER_BUDGET;
    snprintf(out->message, sizeof(out->message),
             "%.20s has a budget (%" PRIu64 " tokens %.30s); %s once answered, beyond any "
             "reservation: batches are refused under a budget",
             budget->provider, budget->tokens, scope_words, what);
    return false;
}

/* ---- results ------------------------------------------------------------------------- */

struct meter_batch_results {
    char *id;
    int status;
    struct decoder *dec;
    bool broken; /* the body could not be decoded: nothing is recorded */
    struct buf line;
    bool skipping; /* the current line is longer than METER_EVENT_MAX: not looked at */
    int64_t lines_with_usage;
    struct ledger_usage usage;
    char model[METER_MODEL_MAX];
};

static void take_model(struct meter_batch_results *r, const cJSON *obj)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "model");
    if (!r->model[0] && cJSON_IsString(m) && m->valuestring[0])
        snprintf(r->model, sizeof(r->model), "%s", m->valuestring);
}

/* OpenAI chat ("prompt_tokens") or responses ("input_tokens"): cached tokens move out of input. */
static bool add_openai(struct meter_batch_results *r, const cJSON *u)
{
    bool chat = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens") != NULL;
    int64_t in = number(u, chat ? "prompt_tokens" : "input_tokens");
    int64_t out = number(u, chat ? "completion_tokens" : "output_tokens");
    if (in < 0)
        return false;
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, chat ? "prompt_tokens_details"
                                                              : "input_tokens_details");
    int64_t cached = number(d, "cached_tokens");
    if (cached < 0)
        cached = 0;
    if (cached > in)
        cached = in;
    r->usage.input_tokens += in - cached;
    r->usage.cache_read_tokens += cached;
    r->usage.output_tokens += out > 0 ? out : 0;
    return true;
}

static bool add_anthropic(struct meter_batch_results *r, const cJSON *u)
{
    int64_t in = number(u, "input_tokens"), out = number(u, "output_tokens");
    if (in < 0 && out < 0)
        return false;
    int64_t cw = number(u, "cache_creation_input_tokens");
    int64_t cr = number(u, "cache_read_input_tokens");
    r->usage.input_tokens += in > 0 ? in : 0;
    r->usage.output_tokens += out > 0 ? out : 0;
    r->usage.cache_creation_tokens += cw > 0 ? cw : 0;
    r->usage.cache_read_tokens += cr > 0 ? cr : 0;
    return true;
}

/* One result: Anthropic {"result": {"message": {usage}}}, OpenAI {"response": {"body": {usage}}}.
 */
static void result_line(struct meter_batch_results *r, const char *p, size_t n)
{
    if (!memmem(p, n, "\"usage\"", 7))
        return;
    cJSON *doc = cJSON_ParseWithLength(p, n);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(doc, "result");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(res, "message");
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(doc, "response");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(resp, "body");
    bool added = false;
    if (cJSON_IsObject(msg)) {
        take_model(r, msg);
        added = add_anthropic(r, cJSON_GetObjectItemCaseSensitive(msg, "usage"));
    } else if (cJSON_IsObject(body)) {
        take_model(r, body);
        added = add_openai(r, cJSON_GetObjectItemCaseSensitive(body, "usage"));
    }
    r->lines_with_usage += added;
    cJSON_Delete(doc);
}

static int results_bytes(void *arg, const unsigned char *bytes, size_t n)
{
    struct meter_batch_results *r = arg;
    const char *p = (const char *)bytes;
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (!r->skipping && r->line.len + take > METER_EVENT_MAX) {
            r->skipping = true;
            buf_reset(&r->line);
        }
        if (!r->skipping)
            buf_append(&r->line, p, take);
        if (!nl)
            return 0;
        if (!r->skipping && r->line.len)
            result_line(r, r->line.data, r->line.len);
        buf_reset(&r->line);
        r->skipping = false;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

struct meter_batch_results *meter_batch_results_new(const char *id)
{
    struct meter_batch_results *r = xcalloc(1, sizeof(*r));
    r->id = xstrdup(id ? id : "");
    return r;
}

void meter_batch_results_head(struct meter_batch_results *r, const struct http_response *resp)
{
    if (!r)
        return;
    r->status = resp->status_code;
    const struct http_header *ce =
        http_header_find(resp->headers, resp->n_headers, "Content-Encoding");
    decoder_free(r->dec);
    r->dec = decoder_new(content_coding_for(ce ? ce->value.ptr : NULL, ce ? ce->value.len : 0),
                         METER_BROTLI_MEM_MAX, false, results_bytes, r);
    r->broken = r->dec == NULL;
}

void meter_batch_results_feed(struct meter_batch_results *r, const char *p, size_t n)
{
    if (r && r->dec && !r->broken && n && decoder_feed(r->dec, p, n) < 0)
        r->broken = true;
}

int64_t meter_batch_results_end(struct meter_batch_results *r, struct ledger *lg,
                                const struct ledger_subject *who, bool complete,
                                struct strv *recorded)
{
    if (!r)
        return 0;
    if (complete && !r->broken && !r->skipping && r->line.len)
        result_line(r, r->line.data, r->line.len); /* a last line without its newline */
    int64_t tokens = 0;
    bool ok = complete && !r->broken && r->status >= 200 && r->status < 300 &&
              r->lines_with_usage > 0 && lg;
    if (ok && recorded && strv_contains(recorded, r->id)) {
        log_info("batch results fetched again; recorded once", "batch", r->id, NULL);
        ok = false;
    }
    if (ok) {
        char request_id[160];
        snprintf(request_id, sizeof(request_id), "batch:%s", r->id);
        struct ledger_record rec;
        memset(&rec, 0, sizeof(rec));
        rec.who = *who;
        rec.model = r->model;
        rec.request_id = request_id;
        rec.usage = r->usage;
        rec.complete = true;
        struct bottle_err err = {0};
        if (ledger_record_usage(lg, &rec, &err) < 0) {
            log_warn("cannot record a batch's usage", "batch", r->id, "error", err.msg, NULL);
        } else {
            tokens = rec.usage.input_tokens + rec.usage.output_tokens +
                     rec.usage.cache_creation_tokens + rec.usage.cache_read_tokens;
            if (recorded)
                strv_push(recorded, r->id);
        }
    }
    decoder_free(r->dec);
    buf_free(&r->line);
    free(r->id);
    free(r);
    return tokens;
}
