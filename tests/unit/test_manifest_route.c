#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "common/json.h"
#include "manifest/node.h"
#include "manifest/route.h"

/* Parses one route from JSON text; returns route_parse's result, err filled on failure. */
static int parse_json_route(const char *text, bool internal, enum dlp_policy dflt,
                            struct route *out, struct bottle_err *err)
{
    cJSON *json = json_parse(text, strlen(text), "route", err);
    if (!json)
        fail_msg("test JSON does not parse: %s: %s", text, err->msg);
    cJSON *wrapped = cJSON_CreateObject();
    cJSON_AddItemToObject(wrapped, "route", json);
    struct node_doc doc;
    if (node_doc_from_json("routes.json", wrapped, &doc, err) < 0)
        fail_msg("test JSON: %s", err->msg);
    int rc = route_parse(node_map_get(doc.root, "route"), internal, dflt, out, err);
    node_doc_free(&doc);
    cJSON_Delete(wrapped);
    return rc;
}

static char *route_text(const struct route *r, bool internal)
{
    cJSON *j = route_to_json(r, internal);
    char *s = json_to_text(j, false);
    cJSON_Delete(j);
    return s;
}

/* ---- accepted routes ------------------------------------------------------ */

static void test_minimal_route_defaults(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct route r;
    assert_int_equal(
        parse_json_route("{\"host\": \"API.example.com.\"}", false, DLP_POLICY_SUPERVISE, &r, &err),
        0);
    assert_string_equal(r.host, "api.example.com");
    assert_int_equal(r.port, 0);
    assert_false(r.host_is_ip);
    assert_int_equal(r.auth.kind, AUTH_NONE);
    assert_null(r.auth.token_ref);
    assert_int_equal(r.n_matches, 0);
    assert_int_equal(r.dlp.outbound, DLP_OUT_DEFAULT);
    assert_int_equal(r.dlp.inbound, DLP_IN_DEFAULT);
    assert_int_equal(r.dlp.on_match, DLP_POLICY_SUPERVISE);
    assert_false(r.git_fetch);
    assert_null(r.metered);
    assert_false(r.provider);
    assert_string_equal(r.file, "routes.json");
    char *text = route_text(&r, false);
    assert_string_equal(text, "{\"host\":\"api.example.com\",\"auth\":null,\"matches\":[],"
                              "\"dlp\":{\"outbound_detectors\":[\"token_patterns\","
                              "\"known_secrets\"],\"inbound_detectors\":"
                              "[\"naive_injection_detection\"],\"outbound_on_match\":"
                              "\"supervise\"},\"git\":{\"fetch\":false},\"metered\":null}\n");
    free(text);
    text = route_text(&r, true);
    assert_true(str_ends_with(text, "\"metered\":null,\"provider\":false}\n"));
    free(text);
    route_free(&r);
    assert_null(r.host);
    route_free(&r); /* freeing twice is a no-op */
    route_free(NULL);
}

static void test_default_on_match_and_explicit_nulls(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct route r;
    assert_int_equal(
        parse_json_route("{\"host\": \"a.example\"}", true, DLP_POLICY_REDACT, &r, &err), 0);
    assert_int_equal(r.dlp.on_match, DLP_POLICY_REDACT);
    route_free(&r);
    assert_int_equal(parse_json_route("{\"host\": \"a.example\", \"dlp\": {\"outbound_on_match\": "
                                      "\"block\"}}",
                                      true, DLP_POLICY_REDACT, &r, &err),
                     0);
    assert_int_equal(r.dlp.on_match, DLP_POLICY_BLOCK);
    assert_int_equal(r.dlp.outbound, DLP_OUT_DEFAULT);
    assert_false(r.dlp.inbound_block);
    route_free(&r);
    assert_int_equal(parse_json_route("{\"host\": \"a.example\", \"dlp\": {\"inbound_on_match\": "
                                      "\"block\"}}",
                                      true, DLP_POLICY_REDACT, &r, &err),
                     0);
    assert_true(r.dlp.inbound_block);
    char *bt = route_text(&r, false);
    assert_non_null(strstr(bt, "\"outbound_on_match\":\"redact\",\"inbound_on_match\":\"block\"}"));
    free(bt);
    route_free(&r);
    /* null is "the default", as route_to_json writes it */
    assert_int_equal(parse_json_route("{\"host\": \"a.example\", \"auth\": null, \"matches\": [], "
                                      "\"dlp\": null, \"git\": null, \"metered\": null}",
                                      false, DLP_POLICY_SUPERVISE, &r, &err),
                     0);
    assert_int_equal(r.auth.kind, AUTH_NONE);
    assert_int_equal(r.n_matches, 0);
    assert_null(r.metered);
    route_free(&r);
    /* detectors switched off, outbound restricted, git fetch, metered, provider */
    assert_int_equal(
        parse_json_route("{\"host\": \"[::1]:8080\", \"dlp\": {\"outbound_detectors\": "
                         "[\"entropy\"], \"inbound_detectors\": false}, \"git\": "
                         "{\"fetch\": true}, \"metered\": \"claude-2\", "
                         "\"provider\": true}",
                         true, DLP_POLICY_SUPERVISE, &r, &err),
        0);
    assert_string_equal(r.host, "::1");
    assert_int_equal(r.port, 8080);
    assert_true(r.host_is_ip);
    assert_int_equal(r.dlp.outbound, DLP_OUT_ENTROPY);
    assert_int_equal(r.dlp.inbound, 0);
    assert_true(r.git_fetch);
    assert_string_equal(r.metered, "claude-2");
    assert_true(r.provider);
    route_free(&r);
}

static void test_auth_and_matches_parse(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct route r;
    const char *text =
        "{\"host\": \"gitea.example\", \"auth\": {\"scheme\": \"token\", \"token_ref\": "
        "\"GITEA_TOKEN\"}, \"matches\": [{\"paths\": [{\"value\": \"/api/v1/\"}, {\"type\": "
        "\"regex\", \"value\": \"/r/[0-9]+\"}], \"methods\": [\"get\", \"Post\"], \"headers\": "
        "[{\"name\": \"X-A\", \"value\": \"1\"}, {\"name\": \"X-B\", \"value\": \"b.*\", "
        "\"type\": \"regex\"}]}]}";
    assert_int_equal(parse_json_route(text, false, DLP_POLICY_SUPERVISE, &r, &err), 0);
    assert_int_equal(r.auth.kind, AUTH_SCHEME);
    assert_string_equal(r.auth.scheme, "token");
    assert_string_equal(r.auth.token_ref, "GITEA_TOKEN");
    assert_int_equal(r.n_matches, 1);
    const struct route_match *m = &r.matches[0];
    assert_int_equal(m->n_paths, 2);
    assert_int_equal(m->paths[0].type, MATCH_PREFIX);
    assert_null(m->paths[0].re);
    assert_int_equal(m->paths[1].type, MATCH_REGEX);
    assert_non_null(m->paths[1].re);
    assert_int_equal(m->n_methods, 2);
    assert_string_equal(m->methods[0], "GET");
    assert_string_equal(m->methods[1], "POST");
    assert_int_equal(m->n_headers, 2);
    assert_int_equal(m->headers[0].type, MATCH_EXACT);
    assert_int_equal(m->headers[1].type, MATCH_REGEX);
    assert_non_null(m->headers[1].re);
    route_free(&r);

    assert_int_equal(parse_json_route("{\"host\": \"a.example\", \"auth\": {\"header\": "
                                      "\"x-api-key\", \"token_ref\": \"_KEY1\"}}",
                                      false, DLP_POLICY_SUPERVISE, &r, &err),
                     0);
    assert_int_equal(r.auth.kind, AUTH_HEADER);
    assert_string_equal(r.auth.header, "x-api-key");
    assert_null(r.auth.scheme);
    route_free(&r);
}

/* ---- rejected routes -------------------------------------------------------- */

struct reject_case {
    const char *json;
    bool internal;
    const char *msg; /* after "manifest: routes.json: " */
};

#define NOT_QUAD                                                                                   \
    "not a canonical dotted-quad IPv4 address (shortened, hex, octal and zero-padded forms are "   \
    "refused)"
#define ROUTE_KEYS "auth, dlp, git, host, matches, metered"
#define M0         "{\"host\": \"a.example\", \"matches\": [{"
#define P0         M0 "\"paths\": [{"
#define H0         M0 "\"headers\": [{"
#define D0         "{\"host\": \"a.example\", \"dlp\": {"
#define A0         "{\"host\": \"a.example\", \"auth\": {"
#define OUT_NAMES  "token_patterns, known_secrets, entropy"

/* clang-format off */
static const struct reject_case reject_cases[] = {
    {"\"a.example\"", false, "route: expected a mapping, found a string"},
    {"{}", false, "route: 'host' is required"},
    {"{\"host\": null}", false, "route: 'host' is required"},
    {"{\"host\": \"a.example\", \"role\": \"x\"}", false,
     "unknown key 'role' in route; accepted: " ROUTE_KEYS},
    {"{\"host\": \"a.example\", \"provider\": true}", false,
     "unknown key 'provider' in route; accepted: " ROUTE_KEYS},
    {"{\"host\": \"a.example\", \"token\": \"x\"}", true,
     "unknown key 'token' in route; accepted: " ROUTE_KEYS ", provider"},
    {"{\"host\": 5}", false,
     "host: expected a string, found a number (quote it to use it as text: \"5\")"},
    {"{\"host\": \"\"}", false, "host: must not be empty"},
    {"{\"host\": \"127.1\"}", false, "host: invalid host '127.1': " NOT_QUAD},
    {"{\"host\": \"a_b.example\"}", false,
     "host: invalid host 'a_b.example': '_' is allowed only as the first character of a label"},
    {"{\"host\": \"a.example:0\"}", false,
     "host: invalid port in 'a.example:0': expected a decimal number from 1 to 65535"},
    {"{\"host\": \"_bottle.local\"}", false,
     "host: '_bottle.local' is reserved for the sidecar's own endpoint"},
    {"{\"host\": \"_Bottle.Local.:443\"}", false,
     "host: '_bottle.local' is reserved for the sidecar's own endpoint"},
    /* auth */
    {"{\"host\": \"a.example\", \"auth\": \"Bearer\"}", false,
     "auth: expected a mapping, found a string"},
    {A0 "\"scheme\": \"Bearer\"}}", false, "auth: 'token_ref' is required when 'auth' is set"},
    {A0 "\"token_ref\": \"T\"}}", false,
     "auth: one of 'scheme' (Bearer or token) or 'header' is required"},
    {A0 "\"scheme\": \"Bearer\", \"header\": \"X-Key\", \"token_ref\": \"T\"}}", false,
     "auth: set either 'scheme' or 'header', not both"},
    {A0 "\"scheme\": \"bearer\", \"token_ref\": \"T\"}}", false,
     "auth.scheme: must be Bearer or token, found 'bearer'"},
    {A0 "\"scheme\": \"Basic\", \"token_ref\": \"T\"}}", false,
     "auth.scheme: must be Bearer or token, found 'Basic'"},
    {A0 "\"header\": \"X Key\", \"token_ref\": \"T\"}}", false,
     "auth.header: 'X Key' is not a valid header name"},
    {A0 "\"header\": \"X-Key:\", \"token_ref\": \"T\"}}", false,
     "auth.header: 'X-Key:' is not a valid header name"},
    {A0 "\"header\": \"Host\", \"token_ref\": \"T\"}}", false,
     "auth.header: 'Host' cannot carry a credential (it controls message framing or routing)"},
    {A0 "\"header\": \"transfer-encoding\", \"token_ref\": \"T\"}}", false,
     "auth.header: 'transfer-encoding' cannot carry a credential (it controls message framing or "
     "routing)"},
    {A0 "\"scheme\": \"Bearer\", \"token_ref\": \"1TOKEN\"}}", false,
     "auth.token_ref: '1TOKEN' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"},
    {A0 "\"scheme\": \"Bearer\", \"token_ref\": \"MY-TOKEN\"}}", false,
     "auth.token_ref: 'MY-TOKEN' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"},
    {A0 "\"scheme\": \"Bearer\", \"token_ref\": \"\"}}", false,
     "auth.token_ref: must not be empty"},
    {A0 "\"scheme\": \"Bearer\", \"token_ref\": \"T\", \"value\": \"s3cret\"}}", false,
     "unknown key 'value' in auth; accepted: header, scheme, token_ref"},
    /* matches */
    {"{\"host\": \"a.example\", \"matches\": {}}", false,
     "matches: expected a list, found a mapping"},
    {M0 "}]}", false,
     "matches[0]: an empty entry would match every request; give it paths, methods or headers"},
    {"{\"host\": \"a.example\", \"matches\": [{\"methods\": [\"GET\"]}, {}]}", false,
     "matches[1]: an empty entry would match every request; give it paths, methods or headers"},
    {"{\"host\": \"a.example\", \"matches\": [\"GET\"]}", false,
     "matches[0]: expected a mapping, found a string"},
    {M0 "\"path\": [{\"value\": \"/\"}]}]}", false,
     "unknown key 'path' in matches[0]; accepted: headers, methods, paths"},
    {M0 "\"paths\": []}]}", false,
     "matches[0].paths: must not be empty (leave the key out instead)"},
    {M0 "\"paths\": [\"/api\"]}]}", false,
     "matches[0].paths[0]: expected a mapping, found a string"},
    {P0 "\"type\": \"glob\", \"value\": \"/x\"}]}]}", false,
     "matches[0].paths[0].type: must be prefix, exact or regex, found 'glob'"},
    {P0 "\"type\": \"prefix\"}]}]}", false, "matches[0].paths[0]: 'value' is required"},
    {P0 "\"value\": \"/x\", \"case\": true}]}]}", false,
     "unknown key 'case' in matches[0].paths[0]; accepted: type, value"},
    {P0 "\"value\": \"api/\"}]}]}", false, "matches[0].paths[0].value: 'api/' must start with '/'"},
    {P0 "\"type\": \"exact\", \"value\": \"health\"}]}]}", false,
     "matches[0].paths[0].value: 'health' must start with '/'"},
    {P0 "\"value\": \"/a?b=1\"}]}]}", false,
     "matches[0].paths[0].value: '/a?b=1' must not contain '?' or '#' (paths are matched without "
     "the query)"},
    {P0 "\"value\": \"/a/../b\"}]}]}", false,
     "matches[0].paths[0].value: '/a/../b' can never match: it contains a '.' or '..' segment"},
    {P0 "\"value\": \"/a%2Fb\"}]}]}", false,
     "matches[0].paths[0].value: '/a%2Fb' can never match: it contains an encoded '/' or '\\'"},
    {P0 "\"value\": \"/%7euser/%c3%bc\"}]}]}", false,
     "matches[0].paths[0].value: write '/%7euser/%c3%bc' as '/~user/%C3%BC' (requests are "
     "compared in that form)"},
    {P0 "\"type\": \"regex\", \"value\": \"/a(\"}]}]}", false,
     "matches[0].paths[0].value: regex '/a(' does not compile: Unmatched ( or \\("},
    {"{\"host\": \"a.example\", \"matches\": [{\"methods\": [\"GET\"]}, {\"paths\": [{\"value\": "
     "\"/ok\"}, {\"type\": \"regex\", \"value\": \"[z-a]\"}]}]}", false,
     "matches[1].paths[1].value: regex '[z-a]' does not compile: Invalid range end"},
    {M0 "\"methods\": []}]}", false,
     "matches[0].methods: must not be empty (leave the key out instead)"},
    {M0 "\"methods\": [\"GET\", \"GET X\"]}]}", false,
     "matches[0].methods[1]: 'GET X' is not an HTTP method"},
    {M0 "\"methods\": [1]}]}", false,
     "matches[0].methods[0]: expected a string, found a number (quote it to use it as text: "
     "\"1\")"},
    {M0 "\"methods\": \"GET\"}]}", false, "matches[0].methods: expected a list, found a string"},
    {M0 "\"headers\": []}]}", false,
     "matches[0].headers: must not be empty (leave the key out instead)"},
    {H0 "\"name\": \"X-A\"}]}]}", false, "matches[0].headers[0]: 'value' is required"},
    {H0 "\"value\": \"1\"}]}]}", false, "matches[0].headers[0]: 'name' is required"},
    {H0 "\"name\": \"X:A\", \"value\": \"1\"}]}]}", false,
     "matches[0].headers[0].name: 'X:A' is not a valid header name"},
    {H0 "\"name\": \"X-A\", \"value\": \"\"}]}]}", false,
     "matches[0].headers[0].value: expected a non-empty string"},
    {H0 "\"name\": \"X-A\", \"value\": \"1\", \"type\": \"prefix\"}]}]}", false,
     "matches[0].headers[0].type: must be exact or regex, found 'prefix'"},
    {H0 "\"name\": \"X-A\", \"value\": \"[\", \"type\": \"regex\"}]}]}", false,
     "matches[0].headers[0].value: regex '[' does not compile: Invalid regular expression"},
    {H0 "\"name\": \"X-A\", \"value\": \"1\", \"op\": \"eq\"}]}]}", false,
     "unknown key 'op' in matches[0].headers[0]; accepted: name, type, value"},
    /* dlp */
    {"{\"host\": \"a.example\", \"dlp\": false}", false, "dlp: expected a mapping, found a boolean"},
    {D0 "\"outbound_detectors\": true}}", false,
     "dlp.outbound_detectors: must be false or a non-empty list of: " OUT_NAMES},
    {D0 "\"outbound_detectors\": []}}", false,
     "dlp.outbound_detectors: must be false or a non-empty list of: " OUT_NAMES},
    {D0 "\"outbound_detectors\": \"false\"}}", false,
     "dlp.outbound_detectors: must be false or a non-empty list of: " OUT_NAMES},
    {D0 "\"outbound_detectors\": [\"regex\"]}}", false,
     "dlp.outbound_detectors[0]: 'regex' is not a detector name; valid names: " OUT_NAMES},
    {D0 "\"outbound_detectors\": [\"entropy\", \"entropy\"]}}", false,
     "dlp.outbound_detectors[1]: 'entropy' is listed twice"},
    {D0 "\"outbound_detectors\": [false]}}", false,
     "dlp.outbound_detectors[0]: expected a string, found a boolean (quote it to use it as text: "
     "\"false\")"},
    {D0 "\"inbound_detectors\": [\"token_patterns\"]}}", false,
     "dlp.inbound_detectors[0]: 'token_patterns' is not a detector name; valid names: "
     "naive_injection_detection"},
    {D0 "\"outbound_on_match\": \"allow\"}}", false,
     "dlp.outbound_on_match: must be block, redact or supervise, found 'allow'"},
    {D0 "\"detectors\": false}}", false,
     "unknown key 'detectors' in dlp; accepted: inbound_detectors, inbound_on_match, "
     "outbound_detectors, outbound_on_match"},
    {D0 "\"inbound_on_match\": \"redact\"}}", false,
     "dlp.inbound_on_match: must be warn or block, found 'redact'"},
    /* git, metered, provider */
    {"{\"host\": \"a.example\", \"git\": true}", false, "git: expected a mapping, found a boolean"},
    {"{\"host\": \"a.example\", \"git\": {\"fetch\": \"yes\"}}", false,
     "git.fetch: expected true or false, found a string"},
    {"{\"host\": \"a.example\", \"git\": {\"push\": true}}", false,
     "unknown key 'push' in git; accepted: fetch"},
    {"{\"host\": \"a.example\", \"metered\": \"Claude\"}", false,
     "metered: 'Claude' is not a budget key (lowercase letters, digits and '-', starting with a "
     "letter)"},
    {"{\"host\": \"a.example\", \"metered\": \"-x\"}", false,
     "metered: '-x' is not a budget key (lowercase letters, digits and '-', starting with a "
     "letter)"},
    {"{\"host\": \"a.example\", \"metered\": \"\"}", false, "metered: must not be empty"},
    {"{\"host\": \"a.example\", \"metered\": true}", false,
     "metered: expected a string, found a boolean (quote it to use it as text: \"true\")"},
    {"{\"host\": \"a.example\", \"provider\": \"yes\"}", true,
     "provider: expected true or false, found a string"},
};
/* clang-format on */

static void test_rejections(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
        const struct reject_case *c = &reject_cases[i];
        struct bottle_err err = {0};
        struct route r;
        memset(&r, 0x5a, sizeof(r));
        int rc = parse_json_route(c->json, c->internal, DLP_POLICY_SUPERVISE, &r, &err);
        if (rc != -EINVAL)
            fail_msg("case %zu accepted: %s", i, c->json);
        char *want = xasprintf("manifest: routes.json: %s", c->msg);
        if (strcmp(err.msg, want) != 0)
            fail_msg("case %zu: %s\n  got  '%s'\n  want '%s'", i, c->json, err.msg, want);
        free(want);
        assert_int_equal(err_exit_code(&err), EXIT_USAGE);
        /* Nothing is left allocated in a refused route. */
        assert_null(r.host);
        assert_null(r.matches);
        assert_null(r.file);
    }
}

static const char *const dev_md = "name: dev\n"
                                  "egress:\n"
                                  "  routes:\n"
                                  "    - host: api.example.com\n"
                                  "    - host: gitea.example.com\n"
                                  "      auth:\n"
                                  "        scheme: Bearer\n"
                                  "      metered: claude\n";

static void test_yaml_positions_and_labels(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct node_doc doc;
    assert_int_equal(yaml_parse_doc("bottles/dev.md", dev_md, strlen(dev_md), 2, &doc, &err), 0);
    const struct node *routes = node_map_get(node_map_get(doc.root, "egress"), "routes");
    assert_non_null(routes);
    struct route r;
    assert_int_equal(
        route_parse_at(routes->items[0], "egress.routes[0]", false, DLP_POLICY_SUPERVISE, &r, &err),
        0);
    assert_string_equal(r.file, "bottles/dev.md");
    assert_int_equal(r.line, 5);
    assert_int_equal(r.col, 7);
    route_free(&r);

    assert_int_equal(
        route_parse_at(routes->items[1], "egress.routes[1]", false, DLP_POLICY_SUPERVISE, &r, &err),
        -EINVAL);
    assert_string_equal(err.msg, "manifest: bottles/dev.md:8:9: egress.routes[1].auth: "
                                 "'token_ref' is required when 'auth' is set");
    assert_int_equal(route_parse(routes->items[1], false, DLP_POLICY_SUPERVISE, &r, &err), -EINVAL);
    assert_string_equal(err.msg, "manifest: bottles/dev.md:8:9: auth: 'token_ref' is required "
                                 "when 'auth' is set");
    node_doc_free(&doc);

    /* Labels also reach the route itself and unknown keys. */
    const char *yaml = "r:\n  host: a.example\n  role: x\n";
    assert_int_equal(yaml_parse_doc("b.md", yaml, strlen(yaml), 1, &doc, &err), 0);
    assert_int_equal(route_parse_at(node_map_get(doc.root, "r"), "egress.routes[3]", false,
                                    DLP_POLICY_SUPERVISE, &r, &err),
                     -EINVAL);
    assert_string_equal(err.msg, "manifest: b.md:3:3: unknown key 'role' in egress.routes[3]; "
                                 "accepted: " ROUTE_KEYS);
    node_doc_free(&doc);

    /* A plain YAML number is still a header value. */
    yaml = "r:\n  host: a.example\n  matches:\n    - headers: [{name: X-Ver, value: 2}]\n";
    assert_int_equal(yaml_parse_doc("b.md", yaml, strlen(yaml), 1, &doc, &err), 0);
    assert_int_equal(
        route_parse(node_map_get(doc.root, "r"), false, DLP_POLICY_SUPERVISE, &r, &err), 0);
    assert_string_equal(r.matches[0].headers[0].value, "2");
    route_free(&r);
    node_doc_free(&doc);
}

/* ---- serialization and ownership ----------------------------------------------- */

static const char *const round_trip_routes[] = {
    "{\"host\": \"a.example\"}",
    "{\"host\": \"A.example:8443\", \"provider\": true, \"metered\": \"codex\"}",
    "{\"host\": \"10.0.0.1:80\"}",
    "{\"host\": \"2001:db8::1\"}",
    "{\"host\": \"[2001:db8::1]:9000\", \"git\": {\"fetch\": true}}",
    "{\"host\": \"bücher.example\", \"auth\": {\"header\": \"X-Api-Key\", \"token_ref\": \"K\"}}",
    "{\"host\": \"g.example\", \"auth\": {\"scheme\": \"Bearer\", \"token_ref\": \"G_TOKEN\"}, "
    "\"dlp\": {\"outbound_detectors\": false, \"inbound_detectors\": false, "
    "\"outbound_on_match\": \"redact\"}}",
    "{\"host\": \"m.example\", \"dlp\": {\"outbound_detectors\": [\"entropy\", "
    "\"token_patterns\"]}, \"matches\": [{\"paths\": [{\"value\": \"/api/\"}, {\"type\": "
    "\"exact\", \"value\": \"/x\"}, {\"type\": \"regex\", \"value\": \"/r/(a|b)+\"}]}, "
    "{\"methods\": [\"get\", \"DELETE\"]}, {\"headers\": [{\"name\": \"X-A\", \"value\": "
    "\"v\"}, {\"name\": \"X-B\", \"value\": \"^b[0-9]*$\", \"type\": \"regex\"}], \"paths\": "
    "[{\"value\": \"/\"}]}]}",
};

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(round_trip_routes) / sizeof(round_trip_routes[0]); i++) {
        struct bottle_err err = {0};
        struct route a, b;
        if (parse_json_route(round_trip_routes[i], true, DLP_POLICY_SUPERVISE, &a, &err) < 0)
            fail_msg("case %zu: %s", i, err.msg);
        char *text_a = route_text(&a, true);
        /* Read back with a different default: every default was written out. */
        if (parse_json_route(text_a, true, DLP_POLICY_BLOCK, &b, &err) < 0)
            fail_msg("case %zu: %s does not parse back: %s", i, text_a, err.msg);
        char *text_b = route_text(&b, true);
        assert_string_equal(text_a, text_b);
        assert_string_equal(a.host, b.host);
        assert_int_equal(a.port, b.port);
        assert_int_equal(a.host_is_ip, b.host_is_ip);
        assert_int_equal(a.auth.kind, b.auth.kind);
        assert_int_equal(a.n_matches, b.n_matches);
        assert_int_equal(a.dlp.outbound, b.dlp.outbound);
        assert_int_equal(a.dlp.inbound, b.dlp.inbound);
        assert_int_equal(a.dlp.on_match, b.dlp.on_match);
        assert_int_equal(a.git_fetch, b.git_fetch);
        assert_int_equal(a.provider, b.provider);
        free(text_a);
        free(text_b);
        route_free(&a);
        route_free(&b);
    }
}

static void test_to_json_shapes(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct route r;
    assert_int_equal(parse_json_route(round_trip_routes[7], false, DLP_POLICY_SUPERVISE, &r, &err),
                     0);
    char *text = route_text(&r, false);
    assert_string_equal(
        text,
        "{\"host\":\"m.example\",\"auth\":null,\"matches\":[{\"paths\":[{\"type\":\"prefix\","
        "\"value\":\"/api/\"},{\"type\":\"exact\",\"value\":\"/x\"},{\"type\":\"regex\","
        "\"value\":\"/r/(a|b)+\"}]},{\"methods\":[\"GET\",\"DELETE\"]},{\"paths\":[{\"type\":"
        "\"prefix\",\"value\":\"/\"}],\"headers\":[{\"name\":\"X-A\",\"value\":\"v\",\"type\":"
        "\"exact\"},{\"name\":\"X-B\",\"value\":\"^b[0-9]*$\",\"type\":\"regex\"}]}],\"dlp\":"
        "{\"outbound_detectors\":[\"token_patterns\",\"entropy\"],\"inbound_detectors\":"
        "[\"naive_injection_detection\"],\"outbound_on_match\":\"supervise\"},\"git\":"
        "{\"fetch\":false},\"metered\":null}\n");
    free(text);
    route_free(&r);

    const char *in[] = {"{\"host\": \"[::1]:8080\"}", "{\"host\": \"[::1]\"}",
                        "{\"host\": \"10.0.0.1:81\"}", "{\"host\": \"a.example:1\"}"};
    const char *want[] = {"{\"host\":\"[::1]:8080\",", "{\"host\":\"::1\",",
                          "{\"host\":\"10.0.0.1:81\",", "{\"host\":\"a.example:1\","};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(parse_json_route(in[i], false, DLP_POLICY_SUPERVISE, &r, &err), 0);
        text = route_text(&r, false);
        if (!str_starts_with(text, want[i]))
            fail_msg("%s -> %s", in[i], text);
        free(text);
        route_free(&r);
    }
    /* Auth is written with the key it was declared with, never a token value. */
    assert_int_equal(parse_json_route(round_trip_routes[6], false, DLP_POLICY_SUPERVISE, &r, &err),
                     0);
    text = route_text(&r, false);
    assert_non_null(strstr(text, "\"auth\":{\"scheme\":\"Bearer\",\"token_ref\":\"G_TOKEN\"}"));
    assert_non_null(strstr(text, "\"dlp\":{\"outbound_detectors\":false,\"inbound_detectors\":"
                                 "false,\"outbound_on_match\":\"redact\"}"));
    free(text);
    route_free(&r);
}

static void test_copy_and_set_ownership(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct route orig, copy;
    assert_int_equal(
        parse_json_route(round_trip_routes[7], true, DLP_POLICY_SUPERVISE, &orig, &err), 0);
    route_copy(&copy, &orig);
    char *text_orig = route_text(&orig, true);
    route_free(&orig);
    char *text_copy = route_text(&copy, true);
    assert_string_equal(text_orig, text_copy);
    free(text_orig);
    free(text_copy);
    assert_string_equal(copy.file, "routes.json");

    /* The copy's regexes are its own and still work after the original is gone. */
    struct route_set set = {0};
    route_set_push(&set, &copy);
    assert_null(copy.host);
    assert_null(copy.matches);
    struct route other;
    assert_int_equal(
        parse_json_route("{\"host\": \"o.example\"}", false, DLP_POLICY_SUPERVISE, &other, &err),
        0);
    route_set_push(&set, &other);
    assert_int_equal(set.len, 2);
    struct policy_request req = {
        .method = "PUT", .tls = true, .host = "m.example", .target = "/r/abab"};
    struct policy_result res;
    assert_int_equal(policy_evaluate(&set, &req, &res), 0);
    assert_true(res.allowed);
    assert_ptr_equal(res.route, &set.items[0]);
    policy_result_free(&res);
    req.target = "/r/abc";
    assert_int_equal(policy_evaluate(&set, &req, &res), 0);
    assert_string_equal(res.reason, REASON_NO_MATCHING_RULE);
    policy_result_free(&res);
    struct policy_header hdrs[] = {{"X-A", "v"}, {"X-B", "b12"}};
    req.target = "/r/abc";
    req.headers = hdrs;
    req.n_headers = 2;
    assert_int_equal(policy_evaluate(&set, &req, &res), 0);
    assert_true(res.allowed);
    policy_result_free(&res);
    route_set_free(&set);
    assert_null(set.items);
    assert_int_equal(set.len, 0);
    route_set_free(&set);

    /* Copying an empty route gives an empty route. */
    struct route empty = {0};
    route_copy(&copy, &empty);
    assert_null(copy.host);
    route_free(&copy);
}

static void test_dlp_policy_name(void **state)
{
    (void)state;
    assert_string_equal(dlp_policy_name(DLP_POLICY_SUPERVISE), "supervise");
    assert_string_equal(dlp_policy_name(DLP_POLICY_REDACT), "redact");
    assert_string_equal(dlp_policy_name(DLP_POLICY_BLOCK), "block");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_route_defaults),
        cmocka_unit_test(test_default_on_match_and_explicit_nulls),
        cmocka_unit_test(test_auth_and_matches_parse),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_yaml_positions_and_labels),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_to_json_shapes),
        cmocka_unit_test(test_copy_and_set_ownership),
        cmocka_unit_test(test_dlp_policy_name),
    };
    return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
