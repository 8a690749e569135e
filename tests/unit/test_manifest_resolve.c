/*
 * extends resolution and bottle folding (manifest/resolve.c).
 */
#include "tests/unit/testutil.h"

#include "common/fs.h"
#include "manifest/manifest.h"

struct fixture {
    char *home;
    char *cwd;
    struct manifest_index idx;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->home = testutil_mkdtemp();
    f->cwd = testutil_mkdtemp();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    manifest_index_free(&f->idx);
    testutil_rm_rf(f->home);
    testutil_rm_rf(f->cwd);
    free(f->home);
    free(f->cwd);
    free(f);
    return 0;
}

static void open_index(struct fixture *f)
{
    struct bottle_err err = {0};
    assert_int_equal(manifest_index_open(&f->idx, f->home, f->cwd, &err), 0);
}

static const char *env_value(const struct bottle_def *b, const char *name)
{
    for (size_t i = 0; i < b->n_env; i++)
        if (strcmp(b->env[i].name, name) == 0)
            return b->env[i].value;
    return NULL;
}

static void test_two_parents_fold_and_child_wins(void **state)
{
    struct fixture *f = *state;
    testutil_put(
        f->home, "bottles/a.md",
        "---\nenv:\n  A: a\n  SHARED: from-a\nsupervise: false\nagent_provider:\n  template: "
        "codex\negress:\n  routes:\n    - host: a.example\ngit-gate:\n  repos:\n    r1:\n      "
        "url: https://a.example/r1.git\n---\n");
    testutil_put(
        f->home, "bottles/b.md",
        "---\nenv:\n  B: b\n  SHARED: from-b\negress:\n  routes:\n    - host: "
        "b.example\ngit-gate:\n  repos:\n    r2:\n      url: https://b.example/r2.git\n---\n");
    testutil_put(
        f->home, "bottles/child.md",
        "---\nextends: [a, b]\nenv:\n  SHARED: from-child\nbudget:\n  codex: 10\negress:\n  "
        "routes:\n    - host: c.example\n---\n");
    open_index(f);
    struct bottle_def b;
    struct strv lineage = STRV_INIT;
    struct bottle_err err = {0};
    assert_int_equal(bottle_resolve(&f->idx, "child", &b, &lineage, &err), 0);
    assert_string_equal(env_value(&b, "A"), "a");
    assert_string_equal(env_value(&b, "B"), "b");
    assert_string_equal(env_value(&b, "SHARED"), "from-child");
    /* Routes: parents concatenated in order, then the child's. */
    assert_int_equal(b.routes.len, 3);
    assert_string_equal(b.routes.items[0].host, "a.example");
    assert_string_equal(b.routes.items[1].host, "b.example");
    assert_string_equal(b.routes.items[2].host, "c.example");
    /* Repos united by name. */
    assert_int_equal(b.n_repos, 2);
    /* b declares neither supervise nor a provider: a's values survive the fold. */
    assert_true(b.supervise_declared);
    assert_false(b.supervise);
    assert_string_equal(b.provider.template_name, "codex");
    assert_int_equal(lineage.len, 3);
    assert_string_equal(lineage.items[0], "a");
    assert_string_equal(lineage.items[1], "b");
    assert_string_equal(lineage.items[2], "child");
    assert_string_equal(b.name, "child");
    strv_free(&lineage);
    bottle_def_free(&b);
}

static void test_last_parent_wins_for_scalars(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/a.md",
                 "---\nsupervise: false\nshutdown: kill\nterminal: {allow_osc52: true}\n---\n");
    testutil_put(f->home, "bottles/b.md",
                 "---\nsupervise: true\nshutdown: freeze\nterminal: {passthrough: true}\n---\n");
    testutil_put(f->home, "bottles/c.md", "---\nextends: [a, b]\n---\n");
    testutil_put(f->home, "bottles/d.md",
                 "---\nextends: [a, b]\nshutdown: cutoff\nterminal: {passthrough: false}\n---\n");
    open_index(f);
    struct bottle_def b;
    struct bottle_err err = {0};
    assert_int_equal(bottle_resolve(&f->idx, "c", &b, NULL, &err), 0);
    assert_true(b.supervise);
    assert_int_equal(b.shutdown, SHUTDOWN_FREEZE);
    /* terminal: each switch by itself; b's passthrough does not reset a's allow_osc52. */
    assert_true(b.terminal_passthrough);
    assert_true(b.terminal_allow_osc52);
    bottle_def_free(&b);
    assert_int_equal(bottle_resolve(&f->idx, "d", &b, NULL, &err), 0);
    assert_int_equal(b.shutdown, SHUTDOWN_CUTOFF);
    assert_false(b.terminal_passthrough);
    assert_true(b.terminal_allow_osc52);
    bottle_def_free(&b);
}

static void test_diamond_resolved_once(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/root.md",
                 "---\negress:\n  routes:\n    - host: root.example\n---\n");
    testutil_put(f->home, "bottles/left.md", "---\nextends: root\n---\n");
    testutil_put(f->home, "bottles/right.md", "---\nextends: root\n---\n");
    testutil_put(f->home, "bottles/top.md", "---\nextends: [left, right]\n---\n");
    open_index(f);
    struct bottle_def b;
    struct strv lineage = STRV_INIT;
    struct bottle_err err = {0};
    /* root's route reaches top through both sides; it is one declaration. */
    assert_int_equal(bottle_resolve(&f->idx, "top", &b, &lineage, &err), 0);
    assert_int_equal(b.routes.len, 1);
    assert_string_equal(b.routes.items[0].host, "root.example");
    strv_free(&lineage);
    bottle_def_free(&b);

    /* Without routes, the diamond resolves and the lineage lists root once. */
    testutil_put(f->home, "bottles/root.md", "---\nenv:\n  R: r\n---\n");
    struct strv lineage2 = STRV_INIT;
    assert_int_equal(bottle_resolve(&f->idx, "top", &b, &lineage2, &err), 0);
    assert_int_equal(lineage2.len, 4);
    assert_string_equal(lineage2.items[0], "root");
    assert_string_equal(lineage2.items[3], "top");
    assert_string_equal(env_value(&b, "R"), "r");
    strv_free(&lineage2);
    bottle_def_free(&b);
}

static void test_single_element_list_equals_string(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/p.md", "---\nenv:\n  P: p\n---\n");
    testutil_put(f->home, "bottles/s.md", "---\nextends: p\n---\n");
    testutil_put(f->home, "bottles/l.md", "---\nextends: [p]\n---\n");
    open_index(f);
    struct bottle_def s, l;
    struct bottle_err err = {0};
    assert_int_equal(bottle_resolve(&f->idx, "s", &s, NULL, &err), 0);
    assert_int_equal(bottle_resolve(&f->idx, "l", &l, NULL, &err), 0);
    assert_int_equal(s.n_env, l.n_env);
    assert_string_equal(env_value(&s, "P"), env_value(&l, "P"));
    bottle_def_free(&s);
    bottle_def_free(&l);
}

static void test_repos_inherit_clear_and_field_merge(void **state)
{
    struct fixture *f = *state;
    testutil_put(
        f->home, "bottles/p.md",
        "---\ngit-gate:\n  repos:\n    r:\n      url: https://h/r.git\n      key:\n        "
        "provider: static\n        path: /k1\n---\n");
    testutil_put(f->home, "bottles/inherit.md", "---\nextends: p\n---\n");
    testutil_put(f->home, "bottles/clear.md", "---\nextends: p\ngit-gate:\n  repos: {}\n---\n");
    testutil_put(
        f->home, "bottles/merge.md",
        "---\nextends: p\ngit-gate:\n  repos:\n    r:\n      key:\n        provider: static\n"
        "        path: /k2\n    s:\n      url: https://h/s.git\n---\n");
    open_index(f);
    struct bottle_def b;
    struct bottle_err err = {0};
    assert_int_equal(bottle_resolve(&f->idx, "inherit", &b, NULL, &err), 0);
    assert_int_equal(b.n_repos, 1);
    bottle_def_free(&b);
    assert_int_equal(bottle_resolve(&f->idx, "clear", &b, NULL, &err), 0);
    assert_int_equal(b.n_repos, 0);
    bottle_def_free(&b);
    assert_int_equal(bottle_resolve(&f->idx, "merge", &b, NULL, &err), 0);
    assert_int_equal(b.n_repos, 2);
    assert_string_equal(b.repos[0].name, "r");
    assert_string_equal(b.repos[0].url, "https://h/r.git"); /* kept from the parent */
    assert_string_equal(b.repos[0].key_path, "/k2");        /* overridden by the child */
    assert_string_equal(b.repos[1].name, "s");
    bottle_def_free(&b);
}

static void test_extends_errors(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/self.md", "---\nextends: self\n---\n");
    testutil_put(f->home, "bottles/x.md", "---\nextends: y\n---\n");
    testutil_put(f->home, "bottles/y.md", "---\nextends: [z]\n---\n");
    testutil_put(f->home, "bottles/z.md", "---\nextends: x\n---\n");
    testutil_put(f->home, "bottles/orphan.md",
                 "---\nenv:\n  A: b\nextends: [self, nowhere]\n---\n");
    open_index(f);
    struct bottle_def b;
    struct bottle_err err = {0};

    assert_true(bottle_resolve(&f->idx, "self", &b, NULL, &err) < 0);
    assert_int_equal(err_exit_code(&err), 2);
    assert_non_null(strstr(err.msg, "bottles/self.md:2:10: extends: bottle 'self' extends itself"));

    assert_true(bottle_resolve(&f->idx, "x", &b, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "extends cycle: x -> y -> z -> x"));

    err_clear(&err);
    testutil_put(f->home, "bottles/orphan.md", "---\nenv:\n  A: b\nextends: [nowhere]\n---\n");
    assert_true(bottle_resolve(&f->idx, "orphan", &b, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "bottles/orphan.md:4:"));
    assert_non_null(strstr(err.msg, "extends 'nowhere', which is not defined. Available "
                                    "bottles: orphan, self, x, y, z"));
    assert_int_equal(err_exit_code(&err), 2);
}

static void test_runtime_selection_fold(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/a.md",
                 "---\nenv:\n  K: a\negress:\n  routes:\n    - host: a.example\n---\n");
    testutil_put(f->home, "bottles/b.md",
                 "---\nenv:\n  K: b\negress:\n  routes:\n    - host: b.example\n---\n");
    testutil_put(f->home, "bottles/dup.md",
                 "---\negress:\n  routes:\n    - host: A.example.\n---\n");
    open_index(f);
    const char *names[] = {"a", "b"};
    struct bottle_def b;
    struct strv lineage = STRV_INIT;
    struct bottle_err err = {0};
    assert_int_equal(bottle_resolve_many(&f->idx, names, 2, &b, &lineage, &err), 0);
    assert_string_equal(env_value(&b, "K"), "b");
    assert_int_equal(b.routes.len, 2);
    assert_int_equal(lineage.len, 2);
    strv_free(&lineage);
    bottle_def_free(&b);

    const char *dups[] = {"a", "dup"};
    assert_true(bottle_resolve_many(&f->idx, dups, 2, &b, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "host 'a.example' is routed twice"));
    assert_int_equal(bottle_resolve_many(&f->idx, dups, 0, &b, NULL, &err), -EINVAL);
}

static void test_duplicate_route_from_parent(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/p.md",
                 "---\negress:\n  routes:\n    - host: same.example\n---\n");
    testutil_put(f->home, "bottles/c.md",
                 "---\nextends: p\negress:\n  routes:\n    - host: same.example\n---\n");
    open_index(f);
    struct bottle_def b;
    struct bottle_err err = {0};
    assert_true(bottle_resolve(&f->idx, "c", &b, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "bottles/c.md:5:"));
    assert_non_null(strstr(err.msg, "also at "));
    assert_non_null(strstr(err.msg, "bottles/p.md:4:"));
}

/* limits: per field, the last declaration wins; an undeclared field inherits. */
static void test_limits_inherit_and_override(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/a.md", "---\nlimits: {pids: 100, memory: 1G}\n---\n");
    testutil_put(f->home, "bottles/b.md", "---\nlimits: {memory: 2G, cpus: 1.5}\n---\n");
    testutil_put(f->home, "bottles/child.md", "---\nextends: [a, b]\nlimits: {tmpfs: 64M}\n---\n");
    testutil_put(f->home, "bottles/over.md", "---\nextends: child\nlimits: {pids: max}\n---\n");
    open_index(f);
    struct bottle_def b;
    struct bottle_err err = {0};
    assert_int_equal(bottle_resolve(&f->idx, "child", &b, NULL, &err), 0);
    assert_int_equal(b.limits.pids, 100);
    assert_int_equal(b.limits.memory, 2ull << 30);
    assert_int_equal(b.limits.cpu_milli, 1500);
    assert_int_equal(b.limits.tmpfs, 64ull << 20);
    bottle_def_free(&b);
    assert_int_equal(bottle_resolve(&f->idx, "over", &b, NULL, &err), 0);
    assert_int_equal(b.limits.pids, LIMIT_NONE);
    assert_int_equal(b.limits.memory, 2ull << 30);
    bottle_def_free(&b);
    /* The runtime selection folds the same way: b's memory over a's. */
    const char *names[] = {"a", "b"};
    assert_int_equal(bottle_resolve_many(&f->idx, names, 2, &b, NULL, &err), 0);
    assert_int_equal(b.limits.pids, 100);
    assert_int_equal(b.limits.memory, 2ull << 30);
    bottle_def_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_parents_fold_and_child_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_parent_wins_for_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diamond_resolved_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_element_list_equals_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repos_inherit_clear_and_field_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_extends_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_selection_fold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_route_from_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_inherit_and_override, setup, teardown),
    };
    return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
