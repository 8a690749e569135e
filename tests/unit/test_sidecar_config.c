/* bottle-proxy config: validation messages, defaults, overrides, tokens from a descriptor. */
#include "testutil.h"

#include <arpa/inet.h>

#include "sidecar/config.h"
#include "sidecar/proxy.h"

#define TLS "\"tls\": {\"ca_cert\": \"c\", \"ca_key\": \"k\", \"leaf_key\": \"l\"}"

static struct config_tokens tokens(void)
{
    static struct config_token items[] = {{"API_TOKEN", "secret-value"},
                                          {"PROXY_SECRET", "0123456789abcdef-proxy"},
                                          {"SHORT_SECRET", "guessable"}};
    return (struct config_tokens){items, 3};
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *want; /* substring of the error message */
    } cases[] = {
        {"[]", "the top level must be an object"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"bogus\": 1}", "'bogus' is not a known key"},
        {"{" TLS "}", "'listen' is required"},
        {"{\"listen\": \"localhost:80\", " TLS "}", "'listen': 'localhost:80' is not IP:PORT"},
        {"{\"listen\": \"127.0.0.1:99999\", " TLS "}", "is not IP:PORT"},
        {"{\"listen\": \"127.0.0.1:1\"}", "'tls' is required"},
        {"{\"listen\": \"127.0.0.1:1\", \"tls\": {\"ca_cert\": \"c\"}}",
         "'tls.ca_key' is required"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"log\": \"loud\"}",
         "'log' must be off, requests or full"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"resolve\": [\"a.test:443\"]}",
         "resolve[0]: expected \"host:port:addr\""},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"resolve\": [\"a.test:443:nothost\"]}",
         "resolve[0]"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"timeouts\": {\"idle_ms\": 0}}",
         "'timeouts.idle_ms' must be a whole number"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"routes\": {}}", "'routes' must be an array"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"routes\": [{\"host\": \"a.test\", \"auth\": "
         "{\"scheme\": \"Bearer\", \"token_ref\": \"MISSING\"}}]}",
         "routes[0].auth.token_ref: no value for 'MISSING'"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"routes\": [{\"host\": \"a.test\", \"auth\": "
         "{\"scheme\": \"Basic\", \"token_ref\": \"API_TOKEN\"}}]}",
         "must be Bearer or token"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"routes\": [{\"host\": \"a.test\"}, "
         "{\"host\": \"A.test.\"}]}",
         "routes[1]: host 'a.test' is already routed by routes[0]"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"routes\": [{\"hots\": \"a.test\"}]}",
         "routes[0]"},
        {"{\"listen\": ", "config: "},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"budgets\": {}}", "'budgets' must be an array"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"budgets\": [{\"provider\": \"claude\", "
         "\"tokens\": 5, \"scope\": \"planet\"}]}",
         "'budgets[0].scope' must be run, agent or global"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"budgets\": [{\"provider\": \"claude\", "
         "\"tokens\": -1, \"scope\": \"run\"}]}",
         "'budgets[0].tokens' must be a whole number"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"budgets\": [{\"provider\": \"claude\", "
         "\"scope\": \"run\"}]}",
         "'budgets[0].tokens' is required"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"budgets\": [{\"provider\": \"c\", "
         "\"tokens\": 1, \"scope\": \"run\"}, {\"provider\": \"c\", \"tokens\": 2, "
         "\"scope\": \"agent\"}]}",
         "a second budget for 'c'"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"secrets\": [\"short\"]}",
         "'secrets[0]' must be a string of at least 8 characters"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"events_fd\": 1}",
         "'events_fd' must be a whole number from 3"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"scan_limit\": 1.5}",
         "'scan_limit' must be a whole number"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"max_connections\": 0}",
         "'max_connections' must be a whole number from 1 to 65536"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"max_connections\": 70000}",
         "'max_connections' must be a whole number from 1 to 65536"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"proxy_auth\": \"PROXY_SECRET\"}",
         "'proxy_auth' must be an object"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"proxy_auth\": {}}",
         "'proxy_auth.token_ref' is required"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS ", \"proxy_auth\": {\"token_ref\": \"NOPE\"}}",
         "proxy_auth.token_ref: no value for 'NOPE'"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS
         ", \"proxy_auth\": {\"token_ref\": \"SHORT_SECRET\"}}",
         "shorter than 16 characters"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS
         ", \"proxy_auth\": {\"token_ref\": \"PROXY_SECRET\", \"user\": \"a:b\"}}",
         "'proxy_auth.user' must be printable ASCII without ':'"},
        {"{\"listen\": \"127.0.0.1:1\", " TLS
         ", \"proxy_auth\": {\"token_ref\": \"PROXY_SECRET\", \"realm\": \"x\"}}",
         "proxy_auth: 'realm' is not a known key"},
    };
    struct config_tokens t = tokens();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bottle_err err = {0};
        struct config *c = NULL;
        int rc = config_parse("cfg.json", cases[i].json, strlen(cases[i].json), &t, &c, &err);
        if (rc >= 0 || c)
            fail_msg("case %zu accepted: %s", i, cases[i].json);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].want, err.msg);
        assert_int_equal(err_exit_code(&err), 2);
    }
}

static void test_config_valid(void **state)
{
    (void)state;
    const char *json =
        "{\"listen\": \"127.0.0.1:8080\", \"control\": \"[::1]:0\", \"bottle\": \"dev\", " TLS
        ", \"log\": \"full\", \"ledger\": \"/tmp/l.db\", \"resolve\": [\"API.test:8443:[::1]\", "
        "\"b.test:80:10.0.0.2\"], \"timeouts\": {\"header_ms\": 500},"
        "\"routes\": [{\"host\": \"api.test:8443\", \"auth\": {\"header\": \"X-Api-Key\", "
        "\"token_ref\": \"API_TOKEN\"}}, {\"host\": \"plain.test\"}]}";
    struct config_tokens t = tokens();
    struct bottle_err err = {0};
    struct config *c = NULL;
    if (config_parse("cfg.json", json, strlen(json), &t, &c, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(c->bottle, "dev");
    assert_int_equal(c->log, CONFIG_LOG_FULL);
    assert_string_equal(c->ledger, "/tmp/l.db");
    assert_int_equal(c->listen.sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&c->listen.sa)->sin_port), 8080);
    assert_int_equal(c->control.sa.ss_family, AF_INET6);
    assert_int_equal(c->timeouts.header_ms, 500);
    assert_int_equal(c->timeouts.idle_ms, 120000); /* default kept */
    assert_int_equal(c->routes.len, 2);
    assert_string_equal(c->route_tokens[0], "secret-value");
    assert_null(c->route_tokens[1]);
    const struct config_override *o = config_find_override(c, "api.test", 8443);
    assert_non_null(o);
    assert_int_equal(o->addr.sa.ss_family, AF_INET6);
    assert_null(config_find_override(c, "api.test", 443));
    assert_non_null(config_find_override(c, "b.test", 80));
    /* a snapshot outlives the proxy's reference while a request holds it */
    struct config *held = config_ref(c);
    config_unref(c);
    assert_string_equal(held->bottle, "dev");
    config_unref(held);
}

static void test_config_metering_keys(void **state)
{
    (void)state;
    static const char json[] =
        "{\"listen\": \"127.0.0.1:1\", " TLS ", \"agent\": \"claude\", \"ledger\": \"/l.db\", "
        "\"budgets\": [{\"provider\": \"claude\", \"tokens\": 1000, \"scope\": \"agent\", "
        "\"source\": \"claude\"}, {\"provider\": \"codex\", \"tokens\": 0, \"scope\": \"global\"}],"
        "\"secrets\": [\"CANARY_VALUE_1234\"], \"events_fd\": 7, \"scan_limit\": 4096}";
    struct config_tokens t = tokens();
    struct bottle_err err = {0};
    struct config *c = NULL;
    assert_int_equal(config_parse("cfg.json", json, strlen(json), &t, &c, &err), 0);
    assert_string_equal(c->agent, "claude");
    assert_string_equal(c->ledger, "/l.db");
    assert_int_equal(c->n_budgets, 2);
    const struct config_budget *b = config_find_budget(c, "claude");
    assert_non_null(b);
    assert_int_equal(b->tokens, 1000);
    assert_string_equal(config_budget_scope_name(b->scope), "agent");
    assert_string_equal(b->source, "claude");
    b = config_find_budget(c, "codex");
    assert_non_null(b);
    assert_int_equal(b->tokens, 0);
    assert_string_equal(config_budget_scope_name(b->scope), "global");
    assert_null(config_find_budget(c, "other"));
    assert_int_equal(c->n_secrets, 1);
    assert_string_equal(c->secrets[0], "CANARY_VALUE_1234");
    assert_int_equal(c->events_fd, 7);
    assert_int_equal(c->scan_limit, 4096);
    config_unref(c);

    static const char bare[] = "{\"listen\": \"127.0.0.1:1\", " TLS "}";
    assert_int_equal(config_parse("cfg.json", bare, strlen(bare), &t, &c, &err), 0);
    assert_string_equal(c->agent, "standalone");
    assert_null(c->ledger);
    assert_int_equal(c->n_budgets, 0);
    assert_int_equal(c->events_fd, -1);
    assert_int_equal(c->scan_limit, CONFIG_SCAN_LIMIT_DEFAULT);
    assert_int_equal(c->max_connections, CONFIG_MAX_CONNECTIONS_DEFAULT);
    assert_false(c->proxy_auth);
    assert_false(config_proxy_auth_matches(c, "", 0)); /* nothing configured matches nothing */
    config_unref(c);

    static const char capped[] = "{\"listen\": \"127.0.0.1:1\", " TLS ", \"max_connections\": 3}";
    assert_int_equal(config_parse("cfg.json", capped, strlen(capped), &t, &c, &err), 0);
    assert_int_equal(c->max_connections, 3);
    config_unref(c);
}

/* The proxy credential: only user:secret matches; the secret never stays in the config. */
static void test_config_proxy_auth(void **state)
{
    (void)state;
    static const char json[] =
        "{\"listen\": \"127.0.0.1:1\", " TLS ", \"proxy_auth\": {\"token_ref\": \"PROXY_SECRET\"}}";
    struct config_tokens t = tokens();
    struct bottle_err err = {0};
    struct config *c = NULL;
    if (config_parse("cfg.json", json, strlen(json), &t, &c, &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(c->proxy_auth);
    assert_string_equal(c->proxy_auth_user, CONFIG_PROXY_AUTH_USER);
    static const char good[] = "bottle:0123456789abcdef-proxy";
    assert_true(config_proxy_auth_matches(c, good, strlen(good)));
    static const char *const bad[] = {
        "bottle:0123456789abcdef-proxz", /* one character off */
        "bottle:0123456789abcdef-prox",  /* a prefix */
        "bottle:0123456789abcdef-proxy-and-more",
        "other:0123456789abcdef-proxy", /* the secret under another user */
        "0123456789abcdef-proxy",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (config_proxy_auth_matches(c, bad[i], strlen(bad[i])))
            fail_msg("'%s' matched", bad[i]);
    /* The config holds a digest, not the secret. */
    assert_null(memmem(c, sizeof(*c), "0123456789abcdef", 16));
    config_unref(c);

    static const char named[] =
        "{\"listen\": \"127.0.0.1:1\", " TLS ", \"proxy_auth\": {\"token_ref\": \"PROXY_SECRET\", "
        "\"user\": \"agent\"}}";
    assert_int_equal(config_parse("cfg.json", named, strlen(named), &t, &c, &err), 0);
    static const char as_agent[] = "agent:0123456789abcdef-proxy";
    assert_true(config_proxy_auth_matches(c, as_agent, strlen(as_agent)));
    assert_false(config_proxy_auth_matches(c, good, strlen(good)));
    config_unref(c);
}

static void test_tokens_from_fd(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    const char *text = "A_TOKEN=one\n\nB=two words\nA_TOKEN=three\n";
    assert_int_equal(write(p[1], text, strlen(text)), (ssize_t)strlen(text));
    close(p[1]);
    struct config_tokens t;
    struct bottle_err err = {0};
    assert_int_equal(config_tokens_read_fd(p[0], &t, &err), 0);
    assert_int_equal(t.len, 3);
    assert_string_equal(config_tokens_get(&t, "A_TOKEN"), "three"); /* last wins */
    assert_string_equal(config_tokens_get(&t, "B"), "two words");
    assert_null(config_tokens_get(&t, "C"));
    config_tokens_free(&t);

    static const char *const bad[] = {"NOEQUALS\n", "1BAD=x\n", "EMPTY=\n", "CTL=a\rb\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pipe(p), 0);
        assert_true(write(p[1], bad[i], strlen(bad[i])) > 0);
        close(p[1]);
        memset(&err, 0, sizeof(err));
        assert_true(config_tokens_read_fd(p[0], &t, &err) < 0);
        assert_non_null(strstr(err.msg, "line 1: expected NAME=VALUE"));
        assert_int_equal(t.len, 0);
    }
}

/* Reason codes are part of the interface: distinct, snake_case, documented. */
static void test_reason_codes(void **state)
{
    (void)state;
    static const char *const codes[] = {
        REASON_HOST_NOT_ALLOWED,
        REASON_GIT_PUSH_BLOCKED,
        REASON_GIT_FETCH_NOT_ALLOWED,
        REASON_NO_MATCHING_RULE,
        REASON_INVALID_HOST,
        REASON_SNI_MISMATCH,
        REASON_UPSTREAM_BLOCKED,
        REASON_UPSTREAM_RESOLVE,
        REASON_UPSTREAM_CONNECT,
        REASON_UPSTREAM_TLS,
        REASON_UPSTREAM_TIMEOUT,
        REASON_UPSTREAM_PROTOCOL,
        REASON_UPSTREAM_CLOSED,
        REASON_HEADER_TIMEOUT,
        REASON_NOT_A_PROXY_REQ,
        REASON_DATA_BEFORE_TUNNEL,
        REASON_NOT_FOUND,
        REASON_METHOD_NOT_ALLOWED,
        REASON_RESOLVER_BUSY,
        REASON_INTERNAL,
        HTTP_ERR_HOST_MISMATCH,
        REASON_AUTH_REQUIRES_TLS,
        REASON_TOO_MANY_CONNECTIONS,
        REASON_PROXY_AUTH_REQUIRED,
    };
    const char *src = getenv("BOTTLE_SRC");
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/sidecar.md", src ? src : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot read %s", path);
    static char doc[1 << 20];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    doc[n] = '\0';
    fclose(f);
    size_t count = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < count; i++) {
        assert_true(strspn(codes[i], "abcdefghijklmnopqrstuvwxyz_") == strlen(codes[i]));
        for (size_t j = i + 1; j < count; j++)
            if (strcmp(codes[i], codes[j]) == 0)
                fail_msg("reason code %s used twice", codes[i]);
        char quoted[64];
        snprintf(quoted, sizeof(quoted), "`%s`", codes[i]);
        if (!strstr(doc, quoted))
            fail_msg("reason code %s is not listed in docs/sidecar.md", codes[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_errors),        cmocka_unit_test(test_config_valid),
        cmocka_unit_test(test_config_metering_keys), cmocka_unit_test(test_tokens_from_fd),
        cmocka_unit_test(test_reason_codes),         cmocka_unit_test(test_config_proxy_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
