/*
 * Batch APIs on a metered route (sidecar/meter/batch.c): which endpoint a
 * request is, a batch's worst case, the refusal under a budget, and the
 * usage of fetched results (Anthropic and OpenAI JSONL, gzip, any split),
 * recorded once per batch.
 */
#include "testutil.h"

#include <zlib.h>

#include "ledger/ledger.h"
#include "sidecar/meter/batch.h"

/* A parsed request head for method and path (the slices point into static text). */
static struct http_request request(const char *method, const char *path)
{
    struct http_request r;
    memset(&r, 0, sizeof(r));
    r.method = (struct http_slice){method, strlen(method)};
    r.path = (struct http_slice){path, strlen(path)};
    return r;
}

static const char upload[] = "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                             "batch\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; "
                             "filename=\"in.jsonl\"\r\n\r\n"
                             "{\"custom_id\": \"a\", \"body\": {\"max_tokens\": 64000}}\n"
                             "{\"custom_id\": \"b\", \"body\": {\"max_completion_tokens\": 100}}\n"
                             "{\"custom_id\": \"c\", \"body\": {}}\n\r\n--b--\r\n";

static void test_kind_of(void **state)
{
    (void)state;
    static const char fine_tune[] =
        "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n--b--\r\n";
    static const struct {
        const char *method, *path, *body;
        enum meter_batch_kind want;
    } cases[] = {
        {"POST", "/v1/messages/batches", "", METER_BATCH_CREATE},
        {"POST", "/v1/messages/batches/?beta=true", "", METER_BATCH_CREATE},
        {"POST", "/gateway/anthropic/v1/messages/batches", "", METER_BATCH_CREATE},
        {"GET", "/v1/messages/batches", "", METER_BATCH_MANAGE},
        {"GET", "/v1/messages/batches/msgbatch_1", "", METER_BATCH_MANAGE},
        {"DELETE", "/v1/messages/batches/msgbatch_1", "", METER_BATCH_MANAGE},
        {"POST", "/v1/messages/batches/msgbatch_1/cancel", "", METER_BATCH_MANAGE},
        {"GET", "/v1/messages/batches/msgbatch_1/results", "", METER_BATCH_RESULTS},
        {"POST", "/v1/messages/batches/msgbatch_1/results", "", METER_BATCH_NONE},
        {"POST", "/v1/messages/batches/msgbatch_1/other", "", METER_BATCH_NONE},
        {"PUT", "/v1/messages/batches", "", METER_BATCH_NONE},
        {"POST", "/v1/batches", "", METER_BATCH_CREATE},
        {"GET", "/v1/batches/batch_1", "", METER_BATCH_MANAGE},
        {"POST", "/v1/batches/batch_1/cancel", "", METER_BATCH_MANAGE},
        {"POST", "/v1/files", upload, METER_BATCH_UPLOAD},
        {"POST", "/v1/files", fine_tune, METER_BATCH_NONE},
        {"POST", "/v1/files", "", METER_BATCH_NONE},
        {"GET", "/v1/files/file-9/content", "", METER_BATCH_RESULTS},
        {"GET", "/v1/files/file-9", "", METER_BATCH_NONE},
        {"POST", "/v1/messages", "", METER_BATCH_NONE},
        {"POST", "/v1/batchesx", "", METER_BATCH_NONE},
        {"POST", "/v1/messages/batches/../../messages", "", METER_BATCH_NONE},
        {"POST", "/v1/messages/batches/x/%2e%2e/cancel", "", METER_BATCH_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_request r = request(cases[i].method, cases[i].path);
        enum meter_batch_kind got = meter_batch_kind_of(&r, cases[i].body, strlen(cases[i].body));
        if (got != cases[i].want)
            fail_msg("%s %s: kind %d, want %d", cases[i].method, cases[i].path, got, cases[i].want);
    }
    char *id = meter_batch_results_id("/v1/messages/batches/msgbatch_7/results?x=1", 43);
    assert_string_equal(id, "msgbatch_7");
    free(id);
    id = meter_batch_results_id("/v1/files/file-9/content", 24);
    assert_string_equal(id, "file-9");
    free(id);
}

/* The attack: 200 requests x max_tokens 64000, under a 100000-token budget. */
static void test_refused_under_budget(void **state)
{
    (void)state;
    struct buf body = BUF_INIT;
    buf_append_str(&body, "{\"requests\": [");
    for (int i = 0; i < 200; i++)
        buf_printf(&body,
                   "%s{\"custom_id\": \"r%d\", \"params\": {\"model\": \"m\", \"max_tokens\": "
                   "64000, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}}",
                   i ? ", " : "", i);
    buf_append_str(&body, "]}");
    struct meter_batch_cost cost;
    meter_batch_cost_of(METER_BATCH_CREATE, "/v1/messages/batches", 20, body.data, body.len, &cost);
    assert_true(cost.known);
    assert_int_equal(cost.requests, 200);
    assert_int_equal(cost.tokens, 200 * 64000 + (int64_t)(body.len / 4));

    struct config_budget budget = {.provider = "claude", .tokens = 100000};
    struct http_request r = request("POST", "/v1/messages/batches");
    struct proxy_verdict v;
    memset(&v, 0, sizeof(v));
    assert_false(meter_batch_admit(METER_BATCH_CREATE, &budget, "for this bottle", &r, body.data,
                                   body.len, &v));
    assert_int_equal(v.status, 403);
    assert_string_equal(v.reason, REASON_BATCH_UNDER_BUDGET);
    assert_non_null(strstr(v.message, "claude has a budget (100000 tokens for this bottle)"));
    char want[64];
    snprintf(want, sizeof(want), "200 requests may spend %lld tokens", (long long)cost.tokens);
    if (!strstr(v.message, want))
        fail_msg("'%s' not in '%s'", want, v.message);
    /* No budget: forwarded. */
    memset(&v, 0, sizeof(v));
    assert_true(meter_batch_admit(METER_BATCH_CREATE, NULL, "", &r, body.data, body.len, &v));
    assert_null(v.reason);
    buf_free(&body);

    /* OpenAI: the upload holds the requests; the create names a file. */
    meter_batch_cost_of(METER_BATCH_UPLOAD, "/v1/files", 9, upload, strlen(upload), &cost);
    assert_true(cost.known);
    assert_int_equal(cost.requests, 3);
    assert_int_equal(cost.tokens, 64000 + 100 + 8192 + (int64_t)(strlen(upload) / 4));
    static const char create[] =
        "{\"input_file_id\": \"file-1\", \"endpoint\": \"/v1/chat/completions\"}";
    meter_batch_cost_of(METER_BATCH_CREATE, "/v1/batches", 11, create, strlen(create), &cost);
    assert_false(cost.known);
    r = request("POST", "/v1/batches");
    memset(&v, 0, sizeof(v));
    assert_false(
        meter_batch_admit(METER_BATCH_CREATE, &budget, "", &r, create, strlen(create), &v));
    assert_string_equal(v.reason, REASON_BATCH_UNDER_BUDGET);
    /* Managing and reading results are never refused here. */
    memset(&v, 0, sizeof(v));
    assert_true(meter_batch_admit(METER_BATCH_MANAGE, &budget, "", &r, "", 0, &v));
    assert_true(meter_batch_admit(METER_BATCH_RESULTS, &budget, "", &r, "", 0, &v));
}

static const char anthropic_results[] =
    "{\"custom_id\":\"a\",\"result\":{\"type\":\"succeeded\",\"message\":{\"model\":\"claude-x\","
    "\"usage\":{\"input_tokens\":10,\"output_tokens\":20,\"cache_creation_input_tokens\":3,"
    "\"cache_read_input_tokens\":4}}}}\n"
    "{\"custom_id\":\"b\",\"result\":{\"type\":\"errored\",\"error\":{\"type\":\"x\"}}}\n"
    "{\"custom_id\":\"c\",\"result\":{\"type\":\"succeeded\",\"message\":{\"model\":\"claude-x\","
    "\"usage\":{\"input_tokens\":1,\"output_tokens\":2}}}}";

static const char openai_results[] =
    "{\"id\":\"batch_req_1\",\"custom_id\":\"a\",\"response\":{\"status_code\":200,\"body\":"
    "{\"model\":\"gpt-x\",\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":5,"
    "\"prompt_tokens_details\":{\"cached_tokens\":4}}}},\"error\":null}\n"
    "{\"id\":\"batch_req_2\",\"custom_id\":\"b\",\"response\":{\"status_code\":200,\"body\":"
    "{\"model\":\"gpt-x\",\"usage\":{\"input_tokens\":9,\"output_tokens\":3,"
    "\"input_tokens_details\":{\"cached_tokens\":2}}}},\"error\":null}\n";

struct fixture {
    char *dir;
    struct ledger *lg;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    f->dir = xstrdup("/tmp/bottle-batch-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *path = xasprintf("%s/l.db", f->dir);
    struct bottle_err err = {0};
    if (ledger_open(path, &f->lg, &err) < 0)
        fail_msg("%s", err.msg);
    free(path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->lg);
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f->dir);
    free(f);
    return 0;
}

static struct ledger_totals totals(struct ledger *lg, const char *bottle)
{
    struct ledger_filter flt = {.bottle = bottle};
    struct ledger_totals t;
    struct bottle_err err = {0};
    assert_int_equal(ledger_totals(lg, &flt, &t, &err), 0);
    return t;
}

static struct http_response response(int status, const char *encoding)
{
    struct http_response r;
    memset(&r, 0, sizeof(r));
    r.status_code = status;
    if (encoding) {
        r.headers[0] = (struct http_header){{"Content-Encoding", 16}, {encoding, strlen(encoding)}};
        r.n_headers = 1;
    }
    return r;
}

/* Feeds body to a results reader step bytes at a time and ends it; the tokens recorded. */
static int64_t fetch(struct fixture *f, const char *bottle, const char *id, int status,
                     const char *encoding, const char *body, size_t len, size_t step, bool complete,
                     struct strv *recorded)
{
    struct meter_batch_results *r = meter_batch_results_new(id);
    struct http_response resp = response(status, encoding);
    meter_batch_results_head(r, &resp);
    for (size_t off = 0; off < len; off += step)
        meter_batch_results_feed(r, body + off, len - off < step ? len - off : step);
    struct ledger_subject who = {bottle, "agent", "claude"};
    return meter_batch_results_end(r, f->lg, &who, complete, recorded);
}

static void test_results_recorded(void **state)
{
    struct fixture *f = *state;
    struct strv recorded = STRV_INIT;
    /* Anthropic, split byte by byte: the same sum as whole. */
    int64_t t = fetch(f, "b1", "msgbatch_1", 200, NULL, anthropic_results,
                      strlen(anthropic_results), 1, true, &recorded);
    assert_int_equal(t, 10 + 20 + 3 + 4 + 1 + 2);
    struct ledger_totals tt = totals(f->lg, "b1");
    assert_int_equal(tt.requests, 1);
    assert_int_equal(tt.usage.input_tokens, 11);
    assert_int_equal(tt.usage.output_tokens, 22);
    assert_int_equal(tt.usage.cache_creation_tokens, 3);
    assert_int_equal(tt.usage.cache_read_tokens, 4);
    assert_int_equal(tt.charged_tokens, 40);
    /* Fetched again through this sidecar: recorded once. */
    assert_int_equal(fetch(f, "b1", "msgbatch_1", 200, NULL, anthropic_results,
                           strlen(anthropic_results), 4096, true, &recorded),
                     0);
    assert_int_equal(totals(f->lg, "b1").requests, 1);

    /* OpenAI chat and responses lines, gzip-encoded, split in 7-byte pieces. */
    unsigned char gz[4096];
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (unsigned char *)openai_results;
    z.avail_in = (uInt)strlen(openai_results);
    z.next_out = gz;
    z.avail_out = sizeof(gz);
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t gz_len = sizeof(gz) - z.avail_out;
    deflateEnd(&z);
    t = fetch(f, "b2", "file-out", 200, "gzip", (const char *)gz, gz_len, 7, true, &recorded);
    assert_int_equal(t, 17 + 5 + 9 + 3);
    tt = totals(f->lg, "b2");
    assert_int_equal(tt.usage.input_tokens, 13 + 7);
    assert_int_equal(tt.usage.cache_read_tokens, 4 + 2);
    assert_int_equal(tt.usage.output_tokens, 8);

    /* Nothing recorded: an error answer, a cut transfer, a body without usage. */
    assert_int_equal(fetch(f, "b3", "x1", 404, NULL, anthropic_results, strlen(anthropic_results),
                           64, true, &recorded),
                     0);
    assert_int_equal(fetch(f, "b3", "x2", 200, NULL, anthropic_results, strlen(anthropic_results),
                           64, false, &recorded),
                     0);
    static const char none[] = "{\"custom_id\": \"a\", \"body\": {\"max_tokens\": 5}}\n";
    assert_int_equal(fetch(f, "b3", "x3", 200, NULL, none, strlen(none), 64, true, &recorded), 0);
    assert_int_equal(totals(f->lg, "b3").requests, 0);
    strv_free(&recorded);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_of),
        cmocka_unit_test(test_refused_under_budget),
        cmocka_unit_test_setup_teardown(test_results_recorded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
