#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "common/json.h"
#include "manifest/node.h"
#include "manifest/route.h"

/* One allowlist for the whole decision table. */
static const char *const routes_json =
    "["
    "{\"host\": \"api.example.com\"},"
    "{\"host\": \"alt.example.com:8443\"},"
    "{\"host\": \"both.example.com\", \"metered\": \"default-port\"},"
    "{\"host\": \"both.example.com:8443\", \"metered\": \"named-port\"},"
    "{\"host\": \"both.example.com:443\", \"metered\": \"named-443\"},"
    "{\"host\": \"10.1.2.3\"},"
    "{\"host\": \"[2001:db8::1]:9000\"},"
    "{\"host\": \"git.example.com\", \"git\": {\"fetch\": true}},"
    "{\"host\": \"nogit.example.com\"},"
    "{\"host\": \"rules.example.com\", \"matches\": ["
    "  {\"paths\": [{\"value\": \"/api/v1/\"}, {\"type\": \"exact\", \"value\": \"/health\"}],"
    "   \"methods\": [\"GET\", \"post\"]},"
    "  {\"paths\": [{\"type\": \"regex\", \"value\": \"/repos/[a-z]+/issues\"}],"
    "   \"headers\": [{\"name\": \"X-Tenant\", \"value\": \"acme\"}]},"
    "  {\"methods\": [\"DELETE\"],"
    "   \"headers\": [{\"name\": \"X-Ver\", \"value\": \"v[0-9]+\", \"type\": \"regex\"}]},"
    "  {\"paths\": [{\"value\": \"/\"}], \"methods\": [\"OPTIONS\"]}"
    "]},"
    "{\"host\": \"bücher.example\"}"
    "]";

static void load_routes(const char *json_text, struct route_set *set)
{
    struct bottle_err err = {0};
    cJSON *json = json_parse(json_text, strlen(json_text), "routes", &err);
    if (!json)
        fail_msg("routes JSON: %s", err.msg);
    cJSON *wrapped = cJSON_CreateObject();
    cJSON_AddItemToObject(wrapped, "routes", json);
    struct node_doc doc;
    if (node_doc_from_json("routes.json", wrapped, &doc, &err) < 0)
        fail_msg("routes doc: %s", err.msg);
    const struct node *list = node_map_get(doc.root, "routes");
    for (size_t i = 0; i < list->n_items; i++) {
        struct route r;
        if (route_parse(list->items[i], true, DLP_POLICY_SUPERVISE, &r, &err) < 0)
            fail_msg("route %zu: %s", i, err.msg);
        route_set_push(set, &r);
    }
    node_doc_free(&doc);
    cJSON_Delete(wrapped);
}

struct decision_case {
    const char *method;
    bool tls;
    const char *host;
    uint16_t port;
    const char *target;
    struct policy_header headers[3];
    int status;
    const char *reason;
    const char *message; /* exact; NULL: not checked */
};

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, v                                                                                       \
    }
#define NOT_ALLOWED(h) "host '" h "' is not in this bottle's allowlist"
#define PUSH(h)        "git push (git-receive-pack) to host '" h "' is never allowed from a bottle"
#define FETCH(h)                                                                                   \
    "git clone/fetch (git-upload-pack) from host '" h "' is not enabled; set 'git: {fetch: "       \
    "true}' on its route to allow it"
#define AMBIGUOUS(m, p, why)                                                                       \
    m " '" p "' to host 'rules.example.com' matches none of its route's rules (path rules never "  \
      "match a path with " why ")"
#define NO_MATCH(m, p) m " '" p "' to host 'rules.example.com' matches none of its route's rules"

/* Columns: method, tls, host, port, target, headers, status, reason, message. */
/* clang-format off */
static const struct decision_case decision_cases[] = {
    /* host normalization */
    {"GET", true, "API.Example.COM.", 0, "/", {{0}}, 200, REASON_ALLOWED,
     "allowed by the route for host 'api.example.com'"},
    {"GET", true, "127.1", 0, "/", {{0}}, 400, REASON_INVALID_HOST,
     "invalid host '127.1': not a canonical dotted-quad IPv4 address (shortened, hex, octal and "
     "zero-padded forms are refused)"},
    {"GET", true, "api.example.com:443", 0, "/", {{0}}, 400, REASON_INVALID_HOST,
     "invalid host 'api.example.com:443': a port does not belong in the host name"},
    {"GET", true, "api_x.example.com", 0, "/", {{0}}, 400, REASON_INVALID_HOST, NULL},
    {"GET", true, "", 0, "/", {{0}}, 400, REASON_INVALID_HOST, "invalid host '': empty"},
    {"GET", true, "xn--bcher-kva.example", 0, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "BÜCHER.example", 0, "/", {{0}}, 200, REASON_ALLOWED,
     "allowed by the route for host 'xn--bcher-kva.example'"},
    /* host allowlist */
    {"GET", true, "evil.example", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     NOT_ALLOWED("evil.example")},
    {"GET", true, "sub.api.example.com", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     NOT_ALLOWED("sub.api.example.com")},
    {"GET", true, "example.com", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     NOT_ALLOWED("example.com")},
    /* ports: a route without a port serves the scheme's default port only */
    {"GET", false, "api.example.com", 0, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", false, "api.example.com", 80, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "api.example.com", 443, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", false, "api.example.com", 443, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     "port 443 of host 'api.example.com' is not in this bottle's allowlist"},
    {"GET", true, "api.example.com", 80, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     "port 80 of host 'api.example.com' is not in this bottle's allowlist"},
    {"GET", true, "api.example.com", 8443, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     "port 8443 of host 'api.example.com' is not in this bottle's allowlist"},
    {"GET", true, "alt.example.com", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     "port 443 of host 'alt.example.com' is not in this bottle's allowlist"},
    {"GET", true, "alt.example.com", 8443, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", false, "alt.example.com", 8443, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    /* IP literals reach only routes naming that address */
    {"GET", true, "10.1.2.3", 0, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "10.1.2.4", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     NOT_ALLOWED("10.1.2.4")},
    {"GET", true, "010.1.2.3", 0, "/", {{0}}, 400, REASON_INVALID_HOST, NULL},
    {"GET", true, "0xa.1.2.3", 0, "/", {{0}}, 400, REASON_INVALID_HOST, NULL},
    {"GET", true, "167838211", 0, "/", {{0}}, 400, REASON_INVALID_HOST, NULL},
    {"GET", true, "::ffff:10.1.2.3", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     NOT_ALLOWED("::ffff:10.1.2.3")},
    {"GET", true, "[2001:DB8:0::1]", 9000, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "2001:db8::1", 9000, "/", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "[2001:db8::1]", 0, "/", {{0}}, 403, REASON_HOST_NOT_ALLOWED,
     "port 443 of host '2001:db8::1' is not in this bottle's allowlist"},
    {"GET", true, "[fe80::1%eth0]", 9000, "/", {{0}}, 400, REASON_INVALID_HOST, NULL},
    /* git push is refused everywhere, in every spelling */
    {"GET", true, "git.example.com", 0, "/o/r.git/info/refs?service=git-receive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, PUSH("git.example.com")},
    {"POST", true, "git.example.com", 0, "/o/r.git/git-receive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"POST", true, "git.example.com", 0, "/o/r.git/git%2Dreceive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"POST", true, "git.example.com", 0, "/o/r.git/git%252dreceive%252Dpack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"POST", true, "git.example.com", 0, "/o/r.git/%67%69%74-receive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"POST", true, "git.example.com", 0, "/o/r.git/GIT-Receive-Pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"GET", true, "git.example.com", 0, "/o/r.git/info/refs?service=git%2dreceive%2Dpack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"GET", true, "git.example.com", 0, "/o/r.git/info/refs?x=1&service=git-receive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, NULL},
    {"POST", true, "api.example.com", 0, "/o/r.git/git-receive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, PUSH("api.example.com")},
    {"POST", false, "nogit.example.com", 0, "/git-receive-pack", {{0}},
     403, REASON_GIT_PUSH_BLOCKED, PUSH("nogit.example.com")},
    /* git fetch passes only with git.fetch */
    {"GET", true, "git.example.com", 0, "/o/r.git/info/refs?service=git-upload-pack", {{0}},
     200, REASON_ALLOWED, NULL},
    {"POST", true, "git.example.com", 0, "/o/r.git/git-upload-pack", {{0}},
     200, REASON_ALLOWED, NULL},
    {"GET", true, "nogit.example.com", 0, "/o/r.git/info/refs?service=git-upload-pack", {{0}},
     403, REASON_GIT_FETCH_NOT_ALLOWED, FETCH("nogit.example.com")},
    {"POST", true, "nogit.example.com", 0, "/o/r.git/git-upload-pack", {{0}},
     403, REASON_GIT_FETCH_NOT_ALLOWED, NULL},
    {"POST", true, "nogit.example.com", 0, "/o/r.git/git%2Dupload%2dpack", {{0}},
     403, REASON_GIT_FETCH_NOT_ALLOWED, NULL},
    {"GET", true, "nogit.example.com", 0, "/o/r.git/info/refs?SERVICE=git%2Dupload-pack", {{0}},
     403, REASON_GIT_FETCH_NOT_ALLOWED, NULL},
    {"GET", true, "nogit.example.com", 0, "/o/r.git/info/refs?%73ervice=GIT-UPLOAD-PACK", {{0}},
     403, REASON_GIT_FETCH_NOT_ALLOWED, NULL},
    {"GET", true, "nogit.example.com", 0, "/o/r.git/info/refs", {{0}},
     200, REASON_ALLOWED, NULL},
    {"GET", true, "nogit.example.com", 0, "/search?q=upload", {{0}},
     200, REASON_ALLOWED, NULL},
    /* matches: prefix on whole segments, exact, methods */
    {"GET", true, "rules.example.com", 0, "/api/v1/users", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1/users?limit=5", {{0}},
     200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/api/%761/users", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1x", {{0}},
     403, REASON_NO_MATCHING_RULE, NO_MATCH("GET", "/api/v1x")},
    {"GET", true, "rules.example.com", 0, "/api/v2/users", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/API/v1/users", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"POST", true, "rules.example.com", 0, "/health", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/health?full=1", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/health/deep", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"post", true, "rules.example.com", 0, "/health", {{0}},
     403, REASON_NO_MATCHING_RULE, NO_MATCH("post", "/health")},
    {"PUT", true, "rules.example.com", 0, "/api/v1/users", {{0}},
     403, REASON_NO_MATCHING_RULE, NO_MATCH("PUT", "/api/v1/users")},
    {"OPTIONS", true, "rules.example.com", 0, "/anything/at/all", {{0}},
     200, REASON_ALLOWED, NULL},
    /* paths the upstream could resolve differently never match a path rule */
    {"GET", true, "rules.example.com", 0, "/api/v1/../admin", {{0}},
     403, REASON_NO_MATCHING_RULE, AMBIGUOUS("GET", "/api/v1/../admin", "a '.' or '..' segment")},
    {"GET", true, "rules.example.com", 0, "/api/v1/%2e%2E/admin", {{0}},
     403, REASON_NO_MATCHING_RULE,
     AMBIGUOUS("GET", "/api/v1/%2e%2E/admin", "a '.' or '..' segment")},
    {"GET", true, "rules.example.com", 0, "/api/v1/./x", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1/..;/admin", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1%2F..%2Fadmin", {{0}},
     403, REASON_NO_MATCHING_RULE,
     AMBIGUOUS("GET", "/api/v1%2F..%2Fadmin", "an encoded '/' or '\\'")},
    {"GET", true, "rules.example.com", 0, "/api/v1/%5c..%5cadmin", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1/\\..\\admin", {{0}},
     403, REASON_NO_MATCHING_RULE, AMBIGUOUS("GET", "/api/v1/\\..\\admin", "a '\\'")},
    {"GET", true, "rules.example.com", 0, "/api/v1/%zz", {{0}},
     403, REASON_NO_MATCHING_RULE, AMBIGUOUS("GET", "/api/v1/%zz", "a malformed percent-escape")},
    {"GET", true, "rules.example.com", 0, "/api/v1/%00", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/api/v1/a..b/c.d", {{0}}, 200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "api/v1/users", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    /* regex paths (whole path) with a header */
    {"GET", true, "rules.example.com", 0, "/repos/abc/issues", {H("X-Tenant", "acme")},
     200, REASON_ALLOWED, NULL},
    {"PATCH", true, "rules.example.com", 0, "/repos/abc/issues?page=2", {H("x-tenant", "acme")},
     200, REASON_ALLOWED, NULL},
    {"GET", true, "rules.example.com", 0, "/repos/abc/issues", {{0}},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/repos/abc/issues", {H("X-Tenant", "ACME")},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/repos/abc/issues",
     {H("X-Tenant", "acme"), H("X-Tenant", "evil")}, 403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/repos/abc/issues/1", {H("X-Tenant", "acme")},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/x/repos/abc/issues", {H("X-Tenant", "acme")},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"GET", true, "rules.example.com", 0, "/repos/ABC/issues", {H("X-Tenant", "acme")},
     403, REASON_NO_MATCHING_RULE, NULL},
    /* methods with a regex header, any path */
    {"DELETE", true, "rules.example.com", 0, "/anything", {H("X-Other", "1"), H("X-VER", "v12")},
     200, REASON_ALLOWED, NULL},
    {"DELETE", true, "rules.example.com", 0, "/anything", {H("X-Ver", "v12x")},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"DELETE", true, "rules.example.com", 0, "/anything", {H("X-Ver", "xv12")},
     403, REASON_NO_MATCHING_RULE, NULL},
    {"DELETE", true, "rules.example.com", 0, "/anything", {{0}},
     403, REASON_NO_MATCHING_RULE, NO_MATCH("DELETE", "/anything")},
    /* a CONNECT (no target) is decided on host and port alone */
    {"CONNECT", true, "rules.example.com", 443, NULL, {{0}}, 200, REASON_ALLOWED, NULL},
    {"CONNECT", true, "evil.example", 443, NULL, {{0}}, 403, REASON_HOST_NOT_ALLOWED, NULL},
};
/* clang-format on */

static void test_decision_table(void **state)
{
    (void)state;
    struct route_set set = {0};
    load_routes(routes_json, &set);
    for (size_t i = 0; i < sizeof(decision_cases) / sizeof(decision_cases[0]); i++) {
        const struct decision_case *c = &decision_cases[i];
        size_t n_headers = 0;
        while (n_headers < 3 && c->headers[n_headers].name)
            n_headers++;
        struct policy_request req = {
            .method = c->method,
            .tls = c->tls,
            .host = c->host,
            .port = c->port,
            .target = c->target,
            .headers = c->headers,
            .n_headers = n_headers,
        };
        struct policy_result res;
        assert_int_equal(policy_evaluate(&set, &req, &res), 0);
        if (res.status != c->status || strcmp(res.reason, c->reason) != 0 ||
            res.allowed != (c->status == 200))
            fail_msg("case %zu (%s %s %s): got %d %s (%s), want %d %s", i, c->method, c->host,
                     c->target ? c->target : "(none)", res.status, res.reason, res.message,
                     c->status, c->reason);
        if (c->message && strcmp(res.message, c->message) != 0)
            fail_msg("case %zu: message\n  '%s'\nwant\n  '%s'", i, res.message, c->message);
        /* The route is reported whenever the host matched one. */
        bool host_matched = c->status == 200 || strcmp(c->reason, REASON_GIT_PUSH_BLOCKED) == 0 ||
                            strcmp(c->reason, REASON_GIT_FETCH_NOT_ALLOWED) == 0 ||
                            strcmp(c->reason, REASON_NO_MATCHING_RULE) == 0;
        if (host_matched != (res.route != NULL))
            fail_msg("case %zu: route %p", i, (const void *)res.route);
        if (strcmp(c->reason, REASON_INVALID_HOST) == 0)
            assert_null(res.host);
        else
            assert_non_null(res.host);
        policy_result_free(&res);
        assert_null(res.host);
    }
    route_set_free(&set);
}

static void test_named_port_wins_over_default(void **state)
{
    (void)state;
    struct route_set set = {0};
    load_routes(routes_json, &set);
    struct policy_request req = {
        .method = "GET", .tls = true, .host = "both.example.com", .target = "/"};
    struct policy_result res;
    const struct {
        bool tls;
        uint16_t port;
        const char *metered;
    } cases[] = {
        {true, 0, "named-443"},      {true, 443, "named-443"},   {false, 0, "default-port"},
        {false, 80, "default-port"}, {true, 8443, "named-port"}, {false, 8443, "named-port"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        req.tls = cases[i].tls;
        req.port = cases[i].port;
        assert_int_equal(policy_evaluate(&set, &req, &res), 0);
        assert_true(res.allowed);
        assert_non_null(res.route);
        assert_string_equal(res.route->metered, cases[i].metered);
        policy_result_free(&res);
    }
    route_set_free(&set);
}

static void test_empty_allowlist_and_bad_arguments(void **state)
{
    (void)state;
    struct route_set empty = {0};
    struct policy_request req = {
        .method = "GET", .tls = true, .host = "api.example.com", .target = "/"};
    struct policy_result res;
    assert_int_equal(policy_evaluate(&empty, &req, &res), 0);
    assert_false(res.allowed);
    assert_int_equal(res.status, 403);
    assert_string_equal(res.reason, REASON_HOST_NOT_ALLOWED);
    policy_result_free(&res);
    assert_int_equal(policy_evaluate(NULL, &req, &res), 0);
    assert_string_equal(res.reason, REASON_HOST_NOT_ALLOWED);
    policy_result_free(&res);

    req.host = NULL;
    assert_int_equal(policy_evaluate(&empty, &req, &res), 0);
    assert_int_equal(res.status, 400);
    assert_string_equal(res.reason, REASON_INVALID_HOST);
    policy_result_free(&res);
    assert_true(policy_evaluate(&empty, NULL, &res) < 0);
    assert_false(res.allowed);
    assert_true(policy_evaluate(&empty, &req, NULL) < 0);
    policy_result_free(NULL);
}

static void test_message_quotes_request_safely(void **state)
{
    (void)state;
    struct route_set set = {0};
    load_routes(routes_json, &set);
    char long_path[600];
    memset(long_path, 'a', sizeof(long_path));
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    struct policy_request req = {
        .method = "GET\x1b", .tls = true, .host = "rules.example.com", .target = long_path};
    struct policy_result res;
    assert_int_equal(policy_evaluate(&set, &req, &res), 0);
    assert_string_equal(res.reason, REASON_NO_MATCHING_RULE);
    assert_null(strchr(res.message, '\x1b'));
    assert_true(str_starts_with(res.message, "GET? '/aaa"));
    assert_non_null(strstr(res.message, "...' to host 'rules.example.com'"));
    policy_result_free(&res);
    route_set_free(&set);
}

static void test_route_set_find(void **state)
{
    (void)state;
    struct route_set set = {0};
    load_routes(routes_json, &set);
    const struct route *r = route_set_find(&set, "api.example.com", 0);
    assert_non_null(r);
    assert_string_equal(r->host, "api.example.com");
    assert_ptr_equal(route_set_find(&set, "api.example.com", 443), r);
    assert_ptr_equal(route_set_find(&set, "api.example.com", 80), r);
    assert_null(route_set_find(&set, "api.example.com", 8443));
    assert_null(route_set_find(&set, "alt.example.com", 0));
    assert_null(route_set_find(&set, "alt.example.com", 443));
    r = route_set_find(&set, "alt.example.com", 8443);
    assert_non_null(r);
    assert_int_equal(r->port, 8443);
    assert_string_equal(route_set_find(&set, "both.example.com", 443)->metered, "named-443");
    assert_string_equal(route_set_find(&set, "both.example.com", 80)->metered, "default-port");
    assert_string_equal(route_set_find(&set, "both.example.com", 0)->metered, "default-port");
    assert_null(route_set_find(&set, "API.example.com", 443)); /* callers pass normalized hosts */
    assert_null(route_set_find(&set, NULL, 443));
    assert_null(route_set_find(NULL, "api.example.com", 443));
    route_set_free(&set);
}

static void test_path_canonical(void **state)
{
    (void)state;
    const struct {
        const char *in;
        const char *out; /* NULL: refused */
        const char *why;
    } cases[] = {
        {"/a/b", "/a/b", NULL},
        {"/", "/", NULL},
        {"/%7euser/%41%2d%5F", "/~user/A-_", NULL},
        {"/a%3fb/%c3%bc", "/a%3Fb/%C3%BC", NULL},
        {"/a/..b/.c/", "/a/..b/.c/", NULL},
        {"/a/../b", NULL, "a '.' or '..' segment"},
        {"/a/..", NULL, "a '.' or '..' segment"},
        {"/a/.", NULL, "a '.' or '..' segment"},
        {"/%2E%2e/b", NULL, "a '.' or '..' segment"},
        {"/a/.%2E;x/b", NULL, "a '.' or '..' segment"},
        {"/a%2fb", NULL, "an encoded '/' or '\\'"},
        {"/a%5Cb", NULL, "an encoded '/' or '\\'"},
        {"/a\\b", NULL, "a '\\'"},
        {"/a b", NULL, "whitespace or a control character"},
        {"/a%0ab", NULL, "an encoded control character"},
        {"/a%", NULL, "a malformed percent-escape"},
        {"/a%4", NULL, "a malformed percent-escape"},
        {"/a%g1", NULL, "a malformed percent-escape"},
        {"", NULL, "no leading '/'"},
        {"a/b", NULL, "no leading '/'"},
        {"*", NULL, "no leading '/'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = "unset";
        char *out = route_path_canonical(cases[i].in, strlen(cases[i].in), &why);
        if (cases[i].out) {
            if (!out || strcmp(out, cases[i].out) != 0)
                fail_msg("'%s' -> '%s' (%s), want '%s'", cases[i].in, out ? out : "(null)", why,
                         cases[i].out);
            assert_null(why);
        } else {
            if (out)
                fail_msg("'%s' -> '%s', want refusal", cases[i].in, out);
            assert_string_equal(why, cases[i].why);
        }
        free(out);
    }
    /* Only the given length is read: a query after it does not count. */
    char *out = route_path_canonical("/a?b=..", 2, NULL);
    assert_string_equal(out, "/a");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_table),
        cmocka_unit_test(test_named_port_wins_over_default),
        cmocka_unit_test(test_empty_allowlist_and_bad_arguments),
        cmocka_unit_test(test_message_quotes_request_safely),
        cmocka_unit_test(test_route_set_find),
        cmocka_unit_test(test_path_canonical),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
