#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "common/err.h"
#include "manifest/node.h"

static int parse(const char *yaml, unsigned first_line, struct node_doc *doc,
                 struct bottle_err *err)
{
    return yaml_parse_doc("t.yml", yaml, strlen(yaml), first_line, doc, err);
}

/* ---- strict YAML: every rejection class, with its exact text ------------------ */

struct reject_case {
    const char *name;
    const char *yaml;
    unsigned first_line;
    const char *msg;
};

static const struct reject_case yaml_rejects[] = {
    {"anchor", "a: &x 1\n", 1,
     "manifest: t.yml:1:4: anchors are not allowed ('&x'); write the value out"},
    {"anchor on mapping", "a: &m\n  b: 1\n", 1,
     "manifest: t.yml:1:4: anchors are not allowed ('&m'); write the value out"},
    {"alias", "a: 1\nb: *x\n", 1,
     "manifest: t.yml:2:4: aliases are not allowed ('*x'); write the value out"},
    {"core tag", "a: !!str 1\n", 1,
     "manifest: t.yml:1:4: tags are not allowed ('tag:yaml.org,2002:str'); remove the tag"},
    {"local tag", "a: !env HOME\n", 1,
     "manifest: t.yml:1:4: tags are not allowed ('!env'); remove the tag"},
    {"non-specific tag", "a: ! x\n", 1,
     "manifest: t.yml:1:4: tags are not allowed ('!'); remove the tag"},
    {"tag on list", "a: !!seq [1]\n", 1,
     "manifest: t.yml:1:4: tags are not allowed ('tag:yaml.org,2002:seq'); remove the tag"},
    {"tag directive", "%TAG !e! tag:example.com,2000:\n---\na: 1\n", 1,
     "manifest: t.yml:1:1: tags are not allowed (%TAG directive)"},
    {"duplicate key", "a: 1\nb: 2\na: 3\n", 1,
     "manifest: t.yml:3:1: duplicate key 'a' (first defined at line 1)"},
    {"duplicate nested key", "a:\n  x: 1\n  x: 2\n", 1,
     "manifest: t.yml:3:3: duplicate key 'x' (first defined at line 2)"},
    {"duplicate key shifted", "a: 1\na: 2\n", 5,
     "manifest: t.yml:6:1: duplicate key 'a' (first defined at line 5)"},
    {"list as key", "? [a]\n: 1\n", 1,
     "manifest: t.yml:1:3: keys must be plain strings, found a list used as a key"},
    {"mapping as key", "{{a: 1}: 2}\n", 1,
     "manifest: t.yml:1:2: keys must be plain strings, found a mapping used as a key"},
    {"empty key", "\"\": 1\n", 1, "manifest: t.yml:1:1: empty keys are not allowed"},
    {"multiple documents", "a: 1\n---\nb: 2\n", 1,
     "manifest: t.yml:2:1: multiple documents are not allowed; remove the extra '---' or '...' "
     "line"},
    {"list root", "- a\n- b\n", 1,
     "manifest: t.yml:1:1: the document must be a mapping of keys to values, found a list"},
    {"scalar root", "hello\n", 3,
     "manifest: t.yml:3:1: the document must be a mapping of keys to values, found a string"},
    {"syntax error", "a: [1, 2\n", 1,
     "manifest: t.yml:2:1: invalid YAML: did not find expected ',' or ']' while parsing a flow "
     "sequence"},
    {"bad indentation", "a: 1\n b: 2\n", 1,
     "manifest: t.yml:2:3: invalid YAML: mapping values are not allowed in this context"},
    {"NUL escape", "a: \"x\\0y\"\n", 1,
     "manifest: t.yml:1:4: NUL characters are not allowed in values"},
};

static void test_yaml_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(yaml_rejects) / sizeof(yaml_rejects[0]); i++) {
        const struct reject_case *c = &yaml_rejects[i];
        struct node_doc doc = {0};
        struct bottle_err err = {0};
        int rc = parse(c->yaml, c->first_line, &doc, &err);
        if (rc >= 0)
            fail_msg("case '%s' was accepted", c->name);
        if (strcmp(err.msg, c->msg) != 0)
            fail_msg("case '%s':\n  got:  %s\n  want: %s", c->name, err.msg, c->msg);
        assert_int_equal(err.kind, ERR_KIND_MANIFEST);
        assert_int_equal(err_exit_code(&err), 2);
        assert_null(doc.root);
        assert_null(doc.file);
    }
}

static void test_yaml_size_limits(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "a: ");
    for (int i = 0; i < 100; i++)
        buf_append_char(&b, '[');
    for (int i = 0; i < 100; i++)
        buf_append_char(&b, ']');
    struct node_doc doc = {0};
    struct bottle_err err = {0};
    assert_true(parse(b.data, 1, &doc, &err) < 0);
    assert_string_equal(err.msg,
                        "manifest: t.yml:1:67: nesting deeper than 64 levels is not allowed");
    buf_free(&b);

    /* Key count is bounded too (the duplicate check is quadratic). */
    for (int i = 0; i <= 10000; i++)
        buf_printf(&b, "k%d: %d\n", i, i);
    assert_true(parse(b.data, 1, &doc, &err) < 0);
    assert_string_equal(err.msg, "manifest: t.yml:10001:1: more than 10000 keys in one mapping");
    buf_free(&b);
}

/* ---- positive parses ------------------------------------------------------------ */

static void test_yaml_tree_and_positions(void **state)
{
    (void)state;
    const char *yaml = "name: dev\n"
                       "quoted: \"true\"\n"
                       "flag: true\n"
                       "count: 42\n"
                       "nothing:\n"
                       "tilde: ~\n"
                       "word: null\n"
                       "list:\n"
                       "  - one\n"
                       "  - 'two'\n"
                       "map: {k: v}\n"
                       "block: |\n"
                       "  line\n";
    struct node_doc doc = {0};
    struct bottle_err err = {0};
    assert_int_equal(parse(yaml, 10, &doc, &err), 0);
    assert_string_equal(doc.file, "t.yml");
    const struct node *root = doc.root;
    assert_int_equal(root->kind, NODE_MAP);
    assert_int_equal(root->n_pairs, 10);
    assert_int_equal(root->pos.line, 10);
    assert_int_equal(root->pos.col, 1);

    const struct node_pair *p = node_map_pair(root, "quoted");
    assert_non_null(p);
    assert_int_equal(p->key_pos.line, 11);
    assert_int_equal(p->key_pos.col, 1);
    assert_int_equal(p->value->kind, NODE_SCALAR);
    assert_false(p->value->plain);
    assert_string_equal(p->value->scalar, "true");
    assert_int_equal(p->value->pos.line, 11);
    assert_int_equal(p->value->pos.col, 9);

    const struct node *flag = node_map_get(root, "flag");
    assert_true(flag->plain);
    assert_int_equal(node_map_get(root, "nothing")->kind, NODE_NULL);
    assert_int_equal(node_map_get(root, "tilde")->kind, NODE_NULL);
    assert_int_equal(node_map_get(root, "word")->kind, NODE_NULL);
    const struct node *list = node_map_get(root, "list");
    assert_int_equal(list->kind, NODE_SEQ);
    assert_int_equal(list->n_items, 2);
    assert_string_equal(list->items[1]->scalar, "two");
    assert_int_equal(list->items[1]->pos.line, 19);
    assert_int_equal(list->items[1]->pos.col, 5);
    assert_int_equal(node_map_get(root, "map")->kind, NODE_MAP);
    assert_string_equal(node_map_get(root, "block")->scalar, "line\n");
    assert_null(node_map_get(root, "missing"));
    assert_null(node_map_get(NULL, "x"));

    bool b = false;
    assert_int_equal(node_get_bool(flag, "flag", &b, &err), 0);
    assert_true(b);
    uint64_t n = 0;
    assert_int_equal(node_get_u64(node_map_get(root, "count"), "count", &n, &err), 0);
    assert_int_equal(n, 42);
    char *s = NULL;
    assert_int_equal(node_get_string(p->value, "quoted", false, &s, &err), 0);
    assert_string_equal(s, "true");
    free(s);
    assert_int_equal(node_get_string(node_map_get(root, "nothing"), "nothing", true, &s, &err), 0);
    assert_string_equal(s, "");
    free(s);
    char **items = NULL;
    size_t count = 0;
    assert_int_equal(node_get_string_list(list, "list", &items, &count, &err), 2);
    assert_int_equal(count, 2);
    assert_string_equal(items[0], "one");
    assert_string_equal(items[1], "two");
    assert_null(items[2]);
    free(items[0]);
    free(items[1]);
    free(items);
    node_doc_free(&doc);
    node_doc_free(&doc); /* second free is a no-op */
    node_doc_free(NULL);
}

static void test_yaml_empty_documents(void **state)
{
    (void)state;
    const char *empties[] = {"", "\n\n", "# only a comment\n", "~\n", "---\n", "null"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct node_doc doc = {0};
        struct bottle_err err = {0};
        assert_int_equal(parse(empties[i], 1, &doc, &err), 0);
        assert_non_null(doc.root);
        assert_int_equal(doc.root->kind, NODE_NULL);
        node_doc_free(&doc);
    }
}

/* ---- frontmatter ---------------------------------------------------------------- */

static void test_frontmatter_split_ok(void **state)
{
    (void)state;
    const char *cases[][3] = {
        /* text, yaml, body */
        {"---\na: 1\n---\nbody\n", "a: 1\n", "body\n"},
        {"---\r\na: 1\r\n---\r\nbody", "a: 1\r\n", "body"},
        {"\xEF\xBB\xBF---\na: 1\n---\n", "a: 1\n", ""},
        {"---\n---\nprompt", "", "prompt"},
        {"---  \na: 1\n--- \nx", "a: 1\n", "x"},
        {"---\na: 1\n---", "a: 1\n", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *yaml, *body;
        size_t ylen, blen;
        unsigned first = 0;
        struct bottle_err err = {0};
        assert_int_equal(frontmatter_split("f.md", cases[i][0], strlen(cases[i][0]), &yaml, &ylen,
                                           &first, &body, &blen, &err),
                         0);
        assert_int_equal(first, 2);
        assert_int_equal(ylen, strlen(cases[i][1]));
        assert_memory_equal(yaml, cases[i][1], ylen);
        assert_int_equal(blen, strlen(cases[i][2]));
        assert_memory_equal(body, cases[i][2], blen);
    }
}

static void test_frontmatter_split_rejects(void **state)
{
    (void)state;
    const char *missing = "manifest: f.md:1:1: missing frontmatter: the file must start with a "
                          "'---' line, then the YAML settings, then a closing '---' line";
    const char *unterminated = "manifest: f.md:1:1: unterminated frontmatter: no closing '---' "
                               "line after the opening one";
    const char *cases[][2] = {
        {"", missing},
        {"a: 1\n", missing},
        {"# Title\n---\na: 1\n---\n", missing},
        {"----\na: 1\n----\n", missing},
        {"---\na: 1\n", unterminated},
        {"---\na: 1\n----\nbody\n", unterminated},
        {"---", unterminated},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *yaml, *body;
        size_t ylen, blen;
        unsigned first;
        struct bottle_err err = {0};
        assert_true(frontmatter_split("f.md", cases[i][0], strlen(cases[i][0]), &yaml, &ylen,
                                      &first, &body, &blen, &err) < 0);
        assert_string_equal(err.msg, cases[i][1]);
        assert_int_equal(err.kind, ERR_KIND_MANIFEST);
    }
}

/* ---- typed reads: wrong types name what was expected and what was found ------------ */

enum getter { GET_STRING, GET_STRING_OR_EMPTY, GET_BOOL, GET_U64, GET_LIST, GET_MAP, GET_SEQ };

struct getter_case {
    enum getter getter;
    const char *yaml; /* value of key `v` */
    const char *msg;
};

static const struct getter_case getter_rejects[] = {
    {GET_STRING, "v: 5",
     "manifest: t.yml:1:4: v: expected a string, found a number (quote it to use it as text: "
     "\"5\")"},
    {GET_STRING, "v: 1.5e3",
     "manifest: t.yml:1:4: v: expected a string, found a number (quote it to use it as text: "
     "\"1.5e3\")"},
    {GET_STRING, "v: 0x1F",
     "manifest: t.yml:1:4: v: expected a string, found a number (quote it to use it as text: "
     "\"0x1F\")"},
    {GET_STRING, "v: false",
     "manifest: t.yml:1:4: v: expected a string, found a boolean (quote it to use it as text: "
     "\"false\")"},
    {GET_STRING, "v: [a]", "manifest: t.yml:1:4: v: expected a string, found a list"},
    {GET_STRING, "v: {a: b}", "manifest: t.yml:1:4: v: expected a string, found a mapping"},
    {GET_STRING, "v:", "manifest: t.yml:1:3: v: must not be empty"},
    {GET_STRING, "v: ''", "manifest: t.yml:1:4: v: must not be empty"},
    {GET_STRING_OR_EMPTY, "v: 7",
     "manifest: t.yml:1:4: v: expected a string, found a number (quote it to use it as text: "
     "\"7\")"},
    {GET_BOOL, "v: yes", "manifest: t.yml:1:4: v: expected true or false, found a string"},
    {GET_BOOL, "v: \"true\"", "manifest: t.yml:1:4: v: expected true or false, found a string"},
    {GET_BOOL, "v: 1", "manifest: t.yml:1:4: v: expected true or false, found a number"},
    {GET_BOOL, "v:", "manifest: t.yml:1:3: v: expected true or false, found an empty value"},
    {GET_U64, "v: -1", "manifest: t.yml:1:4: v: expected a whole number, found a number"},
    {GET_U64, "v: 1.5", "manifest: t.yml:1:4: v: expected a whole number, found a number"},
    {GET_U64, "v: \"5\"", "manifest: t.yml:1:4: v: expected a whole number, found a string"},
    {GET_U64, "v: true", "manifest: t.yml:1:4: v: expected a whole number, found a boolean"},
    {GET_U64, "v: 18446744073709551616",
     "manifest: t.yml:1:4: v: number 18446744073709551616 is too large"},
    {GET_LIST, "v: a", "manifest: t.yml:1:4: v: expected a list of strings, found a string"},
    {GET_LIST, "v: [a, '']", "manifest: t.yml:1:8: v[1]: must not be empty"},
    {GET_LIST, "v: [a, [b]]", "manifest: t.yml:1:8: v[1]: expected a string, found a list"},
    {GET_MAP, "v: [a]", "manifest: t.yml:1:4: v: expected a mapping, found a list"},
    {GET_MAP, "v:", "manifest: t.yml:1:3: v: expected a mapping, found an empty value"},
    {GET_SEQ, "v: {}", "manifest: t.yml:1:4: v: expected a list, found a mapping"},
};

static int run_getter(enum getter g, const struct node *n, struct bottle_err *err)
{
    char *s = NULL;
    bool b;
    uint64_t u;
    char **items = NULL;
    size_t count = 0;
    int rc = -1;
    switch (g) {
    case GET_STRING:
        rc = node_get_string(n, "v", false, &s, err);
        break;
    case GET_STRING_OR_EMPTY:
        rc = node_get_string(n, "v", true, &s, err);
        break;
    case GET_BOOL:
        rc = node_get_bool(n, "v", &b, err);
        break;
    case GET_U64:
        rc = node_get_u64(n, "v", &u, err);
        break;
    case GET_LIST:
        rc = node_get_string_list(n, "v", &items, &count, err);
        break;
    case GET_MAP:
        rc = node_want_map(n, "v", err);
        break;
    case GET_SEQ:
        rc = node_want_seq(n, "v", err);
        break;
    }
    free(s);
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
    return rc;
}

static void test_typed_getters_reject(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(getter_rejects) / sizeof(getter_rejects[0]); i++) {
        const struct getter_case *c = &getter_rejects[i];
        struct node_doc doc = {0};
        struct bottle_err err = {0};
        assert_int_equal(parse(c->yaml, 1, &doc, &err), 0);
        int rc = run_getter(c->getter, node_map_get(doc.root, "v"), &err);
        if (rc >= 0)
            fail_msg("'%s' was accepted", c->yaml);
        if (strcmp(err.msg, c->msg) != 0)
            fail_msg("'%s':\n  got:  %s\n  want: %s", c->yaml, err.msg, c->msg);
        node_doc_free(&doc);
    }
}

static void test_check_keys_lists_accepted_sorted(void **state)
{
    (void)state;
    static const char *const allowed[] = {"routes", "log", "auth", NULL};
    struct node_doc doc = {0};
    struct bottle_err err = {0};
    assert_int_equal(parse("log: off\n  # c\nfoo: 1\n", 1, &doc, &err), 0);
    assert_true(node_check_keys(doc.root, "egress", allowed, &err) < 0);
    assert_string_equal(err.msg,
                        "manifest: t.yml:3:1: unknown key 'foo' in egress; accepted: auth, log, "
                        "routes");
    node_doc_free(&doc);
    assert_int_equal(parse("log: off\nroutes: []\n", 1, &doc, &err), 0);
    assert_int_equal(node_check_keys(doc.root, "egress", allowed, &err), 0);
    node_doc_free(&doc);
}

/* ---- JSON ------------------------------------------------------------------------ */

static void test_json_tree(void **state)
{
    (void)state;
    const char *text = "{\"s\":\"true\",\"n\":8080,\"f\":1.5,\"b\":false,\"z\":null,"
                       "\"l\":[\"a\",{\"k\":\"v\"}]}";
    cJSON *j = cJSON_Parse(text);
    struct node_doc doc = {0};
    struct bottle_err err = {0};
    assert_int_equal(node_doc_from_json("cfg.json", j, &doc, &err), 0);
    const struct node *s = node_map_get(doc.root, "s");
    assert_false(s->plain);
    assert_string_equal(s->scalar, "true");
    assert_int_equal(s->pos.line, 0);
    bool b = true;
    assert_true(node_get_bool(s, "s", &b, &err) < 0);
    assert_string_equal(err.msg, "manifest: cfg.json: s: expected true or false, found a string");
    uint64_t port = 0;
    assert_int_equal(node_get_u64(node_map_get(doc.root, "n"), "n", &port, &err), 0);
    assert_int_equal(port, 8080);
    assert_string_equal(node_map_get(doc.root, "f")->scalar, "1.5");
    assert_int_equal(node_get_bool(node_map_get(doc.root, "b"), "b", &b, &err), 0);
    assert_false(b);
    assert_int_equal(node_map_get(doc.root, "z")->kind, NODE_NULL);
    const struct node *l = node_map_get(doc.root, "l");
    assert_int_equal(l->kind, NODE_SEQ);
    assert_int_equal(l->items[1]->kind, NODE_MAP);
    node_doc_free(&doc);
    cJSON_Delete(j);
}

static void test_json_rejects(void **state)
{
    (void)state;
    const char *cases[][2] = {
        {"[1, 2]", "manifest: cfg.json: the document must be a JSON object, found a list"},
        {"\"x\"", "manifest: cfg.json: the document must be a JSON object, found a string"},
        {"{\"a\": 1, \"a\": 2}", "manifest: cfg.json: duplicate key 'a'"},
        {"{\"\": 1}", "manifest: cfg.json: empty keys are not allowed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *j = cJSON_Parse(cases[i][0]);
        assert_non_null(j);
        struct node_doc doc = {0};
        struct bottle_err err = {0};
        assert_true(node_doc_from_json("cfg.json", j, &doc, &err) < 0);
        assert_string_equal(err.msg, cases[i][1]);
        assert_null(doc.root);
        cJSON_Delete(j);
    }
}

static void test_node_error_formats(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct node_pos at = {"bottles/dev.md", 12, 5};
    assert_true(node_error(&err, &at, "egress.routes[0].auth: '%s' is required", "token_ref") < 0);
    assert_string_equal(err.msg,
                        "manifest: bottles/dev.md:12:5: egress.routes[0].auth: 'token_ref' is "
                        "required");
    assert_int_equal(err.kind, ERR_KIND_MANIFEST);
    struct node_pos nowhere = {"cfg.json", 0, 0};
    node_error(&err, &nowhere, "bad");
    assert_string_equal(err.msg, "manifest: cfg.json: bad");
    node_error(&err, NULL, "bad");
    assert_string_equal(err.msg, "manifest: bad");
    assert_string_equal(node_kind_name(NODE_NULL), "null");
    assert_string_equal(node_kind_name(NODE_SCALAR), "scalar");
    assert_string_equal(node_kind_name(NODE_SEQ), "sequence");
    assert_string_equal(node_kind_name(NODE_MAP), "mapping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_rejects),
        cmocka_unit_test(test_yaml_size_limits),
        cmocka_unit_test(test_yaml_tree_and_positions),
        cmocka_unit_test(test_yaml_empty_documents),
        cmocka_unit_test(test_frontmatter_split_ok),
        cmocka_unit_test(test_frontmatter_split_rejects),
        cmocka_unit_test(test_typed_getters_reject),
        cmocka_unit_test(test_check_keys_lists_accepted_sorted),
        cmocka_unit_test(test_json_tree),
        cmocka_unit_test(test_json_rejects),
        cmocka_unit_test(test_node_error_formats),
    };
    return cmocka_run_group_tests_name("node", tests, NULL, NULL);
}
