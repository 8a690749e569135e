/*
 * The resolved plan (manifest/plan.c, manifest/provider.c): golden JSON for
 * the examples, budget scopes, provider routes, environment rules.
 */
#include "tests/unit/testutil.h"

#include "common/fs.h"
#include "common/json.h"
#include "manifest/plan.h"

static const char *fake_env(const char *name)
{
    if (strcmp(name, "CLAUDE_CODE_OAUTH_TOKEN") == 0)
        return "sk-ant-oat01-REAL-SECRET-VALUE";
    if (strcmp(name, "HOST_THING") == 0)
        return "host-thing-value";
    return NULL;
}

static char *src_path(const char *rel)
{
    const char *src = getenv("BOTTLE_SRC");
    return fs_join(src ? src : ".", rel);
}

static void base_opts(struct plan_options *o, const char *agent)
{
    memset(o, 0, sizeof(*o));
    o->agent = agent;
    o->cwd = "/";
    o->tier_available = TIER_KERNEL;
    o->tier_why = "all layers are available";
    o->canary_name = "AMBER_BASALT_SECRET";
    o->host_getenv = fake_env;
    o->host_memory = 16ull << 30;
}

static char *plan_json_for(const char *home, const struct plan_options *o)
{
    struct manifest_index idx;
    struct bottle_err err = {0};
    assert_int_equal(manifest_index_open(&idx, home, "/", &err), 0);
    struct plan p;
    if (plan_build(&idx, o, &p, &err) < 0)
        fail_msg("plan_build: %s", err.msg);
    cJSON *doc = plan_to_json(&p);
    char *text = json_to_text(doc, true);
    cJSON_Delete(doc);
    plan_free(&p);
    manifest_index_free(&idx);
    /* Make paths independent of where the tree is checked out. */
    struct buf out = BUF_INIT;
    size_t hl = strlen(home);
    for (const char *c = text; *c;) {
        if (strncmp(c, home, hl) == 0) {
            buf_append_str(&out, "$BOTTLE_HOME");
            c += hl;
        } else {
            buf_append_char(&out, *c++);
        }
    }
    free(text);
    return buf_steal(&out);
}

static void check_golden(const char *agent)
{
    char *home = src_path("examples");
    char *golden_rel = xasprintf("tests/fixtures/golden/plan-%s.json", agent);
    char *golden = src_path(golden_rel);
    struct plan_options o;
    base_opts(&o, agent);
    char *got = plan_json_for(home, &o);
    /* Secret values never appear; the plan holds names only. */
    assert_null(strstr(got, "REAL-SECRET-VALUE"));
    assert_null(strstr(got, "host-thing-value"));
    if (getenv("UPDATE_GOLDEN")) {
        struct bottle_err err = {0};
        assert_int_equal(fs_write_atomic(golden, got, strlen(got), 0644, &err), 0);
    }
    struct buf want = BUF_INIT;
    struct bottle_err err = {0};
    if (fs_read_file(golden, 1 << 20, &want, &err) < 0)
        fail_msg("%s (run with UPDATE_GOLDEN=1 to create it)", err.msg);
    if (strcmp(want.data, got) != 0) {
        fprintf(stderr, "--- got ---\n%s", got);
        fail_msg("plan for '%s' differs from %s", agent, golden_rel);
    }
    cJSON *parsed = json_parse(got, strlen(got), "plan", &err);
    assert_non_null(parsed);
    assert_int_equal(json_get_num(parsed, "version", 0), PLAN_SCHEMA_VERSION);
    cJSON_Delete(parsed);
    buf_free(&want);
    free(got);
    free(golden);
    free(golden_rel);
    free(home);
}

static void test_golden_claude(void **state)
{
    (void)state;
    check_golden("claude");
}

static void test_golden_codex(void **state)
{
    (void)state;
    check_golden("codex");
}

static void test_golden_curl(void **state)
{
    (void)state;
    check_golden("curl");
}

/* ---- hand-made manifests ---------------------------------------------------- */

struct fixture {
    char *home;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->home = testutil_mkdtemp();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rm_rf(f->home);
    free(f->home);
    free(f);
    return 0;
}

static int build(struct fixture *f, const struct plan_options *o, struct plan *p,
                 struct bottle_err *err)
{
    struct manifest_index idx;
    assert_int_equal(manifest_index_open(&idx, f->home, "/", err), 0);
    int rc = plan_build(&idx, o, p, err);
    manifest_index_free(&idx);
    return rc;
}

static const struct plan_budget *budget_for(const struct plan *p, const char *provider)
{
    for (size_t i = 0; i < p->n_budgets; i++)
        if (strcmp(p->budgets[i].provider, provider) == 0)
            return &p->budgets[i];
    return NULL;
}

static void test_budget_scopes(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "settings.yml",
                 "budget:\n  claude: 1\n  codex: 2\n  other: 3\n  more: 4\n");
    testutil_put(f->home, "bottles/parent.md", "---\nbudget:\n  codex: 20\n  other: 30\n---\n");
    testutil_put(f->home, "bottles/child.md", "---\nextends: parent\nbudget:\n  other: 300\n---\n");
    testutil_put(f->home, "agents/a.md",
                 "---\nbottle: child\nbudget:\n  claude: 1000\n  codex: 2000\n---\n");
    struct plan_options o;
    base_opts(&o, "a");
    struct plan_budget_override cli[] = {{"claude", 7}};
    o.budgets = cli;
    o.n_budgets = 1;
    struct plan p;
    struct bottle_err err = {0};
    assert_int_equal(build(f, &o, &p, &err), 0);
    const struct plan_budget *b = budget_for(&p, "claude");
    assert_int_equal(b->tokens, 7);
    assert_string_equal(b->scope, "cli");
    b = budget_for(&p, "codex");
    assert_int_equal(b->tokens, 2000);
    assert_string_equal(b->scope, "agent");
    b = budget_for(&p, "other");
    assert_int_equal(b->tokens, 300);
    assert_string_equal(b->scope, "bottle");
    assert_string_equal(b->source, "child");
    b = budget_for(&p, "more");
    assert_int_equal(b->tokens, 4);
    assert_string_equal(b->scope, "settings");
    plan_free(&p);

    /* The parent's value shows with scope "parent" when the child is silent. */
    testutil_put(f->home, "bottles/child.md", "---\nextends: parent\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: child\n---\n");
    o.n_budgets = 0;
    assert_int_equal(build(f, &o, &p, &err), 0);
    b = budget_for(&p, "other");
    assert_int_equal(b->tokens, 30);
    assert_string_equal(b->scope, "parent");
    assert_string_equal(b->source, "parent");
    plan_free(&p);
}

/* budget_pool: the pool's limits from settings.yml, periods carried with each budget. */
static void test_budget_pool_and_periods(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "settings.yml",
                 "budget:\n  claude: {tokens: 100, period: day}\n"
                 "pools:\n  team:\n    claude: {tokens: 5000, period: month}\n    codex: 9\n");
    testutil_put(f->home, "bottles/parent.md", "---\nbudget_pool: team\n---\n");
    testutil_put(f->home, "bottles/child.md", "---\nextends: parent\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: child\n---\n");
    struct plan_options o;
    base_opts(&o, "a");
    struct plan p;
    struct bottle_err err = {0};
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_string_equal(p.pool, "team");
    assert_int_equal(p.n_pool_budgets, 2);
    assert_string_equal(p.pool_budgets[0].provider, "claude");
    assert_int_equal(p.pool_budgets[0].tokens, 5000);
    assert_string_equal(p.pool_budgets[0].period, "month");
    assert_null(p.pool_budgets[1].period);
    const struct plan_budget *b = budget_for(&p, "claude");
    assert_string_equal(b->scope, "settings");
    assert_string_equal(b->period, "day");
    plan_free(&p);
    /* A pool this host does not declare: joined all the same, with a warning. */
    testutil_put(f->home, "bottles/parent.md", "---\nbudget_pool: elsewhere\n---\n");
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_string_equal(p.pool, "elsewhere");
    assert_int_equal(p.n_pool_budgets, 0);
    bool warned = false;
    for (size_t i = 0; i < p.warnings.len; i++)
        warned |= strstr(p.warnings.items[i], "budget_pool 'elsewhere'") != NULL;
    assert_true(warned);
    plan_free(&p);
}

static void test_settings_in_project_dir_ignored(void **state)
{
    struct fixture *f = *state;
    char *project = testutil_mkdtemp();
    char *pdir = fs_join(project, ".bottle");
    struct bottle_err err = {0};
    assert_int_equal(fs_mkdir_p(pdir, 0700, &err), 0);
    char *psettings = fs_join(pdir, "settings.yml");
    testutil_write(psettings, "budget:\n  claude: 999999999\nshutdown: kill\n");
    testutil_put(f->home, "settings.yml", "budget:\n  claude: 5\n");
    testutil_put(f->home, "bottles/b.md", "---\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: b\n---\n");
    struct manifest_index idx;
    assert_int_equal(manifest_index_open(&idx, f->home, project, &err), 0);
    struct plan_options o;
    base_opts(&o, "a");
    struct plan p;
    assert_int_equal(plan_build(&idx, &o, &p, &err), 0);
    assert_int_equal(budget_for(&p, "claude")->tokens, 5);
    assert_int_equal(p.shutdown, SHUTDOWN_CUTOFF);
    assert_string_equal(p.shutdown_scope, "default");
    plan_free(&p);
    manifest_index_free(&idx);
    testutil_rm_rf(project);
    free(psettings);
    free(pdir);
    free(project);
}

static void test_provider_route_wins(void **state)
{
    struct fixture *f = *state;
    testutil_put(
        f->home, "bottles/b.md",
        "---\negress:\n  routes:\n    - host: api.anthropic.com\n      auth:\n        scheme: "
        "token\n        token_ref: MINE\n    - host: other.example\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: b\n---\n");
    struct plan_options o;
    base_opts(&o, "a");
    struct plan p;
    struct bottle_err err = {0};
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_int_equal(p.routes.len, 2);
    assert_string_equal(p.routes.items[0].host, "api.anthropic.com");
    assert_true(p.routes.items[0].provider);
    assert_string_equal(p.routes.items[0].auth.token_ref, "CLAUDE_CODE_OAUTH_TOKEN");
    assert_int_equal(p.routes.items[0].dlp.on_match, DLP_POLICY_REDACT);
    assert_string_equal(p.routes.items[0].metered, "claude");
    assert_string_equal(p.routes.items[1].host, "other.example");
    assert_int_equal(p.routes.items[1].dlp.on_match, DLP_POLICY_SUPERVISE);
    assert_int_equal(p.warnings.len, 1);
    assert_non_null(strstr(p.warnings.items[0], "replaced by the claude provider's route"));
    plan_free(&p);
}

static void test_env_rules(void **state)
{
    struct fixture *f = *state;
    testutil_put(
        f->home, "bottles/b.md",
        "---\nenv:\n  FROM_HOST: $HOST_THING\n  MISSING: $NOT_SET_ANYWHERE\n  LIT: v\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: b\n---\nprompt text\n");
    struct plan_options o;
    base_opts(&o, "a");
    struct plan p;
    struct bottle_err err = {0};
    assert_int_equal(build(f, &o, &p, &err), 0);
    bool saw_host = false, saw_canary = false, saw_placeholder = false;
    for (size_t i = 0; i < p.n_env; i++) {
        if (strcmp(p.env[i].name, "FROM_HOST") == 0) {
            saw_host = true;
            assert_int_equal(p.env[i].source, ENV_SRC_HOST);
            assert_string_equal(p.env[i].value, "HOST_THING");
        }
        if (strcmp(p.env[i].name, "AMBER_BASALT_SECRET") == 0)
            saw_canary = p.env[i].source == ENV_SRC_CANARY && p.env[i].secret;
        if (strcmp(p.env[i].name, "CLAUDE_CODE_OAUTH_TOKEN") == 0)
            saw_placeholder = p.env[i].secret && p.env[i].value == NULL;
    }
    assert_true(saw_host);
    assert_true(saw_canary);
    assert_true(saw_placeholder);
    bool warned = false;
    for (size_t i = 0; i < p.warnings.len; i++)
        warned = warned || strstr(p.warnings.items[i], "NOT_SET_ANYWHERE") != NULL;
    assert_true(warned);
    /* The prompt goes to a file the agent is told about. */
    assert_string_equal(p.argv.items[1], "--append-system-prompt-file");
    plan_free(&p);

    testutil_put(f->home, "bottles/b.md", "---\nenv:\n  HTTPS_PROXY: http://elsewhere:1\n---\n");
    assert_true(build(f, &o, &p, &err) < 0);
    assert_int_equal(err_exit_code(&err), 2);
    assert_non_null(strstr(err.msg, "env: 'HTTPS_PROXY' is set by bottle (runtime)"));
    testutil_put(f->home, "bottles/b.md", "---\nenv:\n  CLAUDE_CODE_OAUTH_TOKEN: mine\n---\n");
    assert_true(build(f, &o, &p, &err) < 0);
    assert_non_null(strstr(err.msg, "'CLAUDE_CODE_OAUTH_TOKEN' is set by bottle (provider)"));
}

static void test_selection_and_extra_args(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/x.md",
                 "---\nagent_provider:\n  template: generic\n  command: [echo, hi]\n---\n");
    testutil_put(f->home, "bottles/y.md", "---\nenv:\n  Y: y\n---\n");
    testutil_put(f->home, "agents/portable.md", "---\n---\n");
    struct plan_options o;
    base_opts(&o, "portable");
    struct plan p;
    struct bottle_err err = {0};
    assert_true(build(f, &o, &p, &err) < 0);
    assert_non_null(strstr(err.msg, "has no 'bottle' field and no bottle was selected"));
    assert_int_equal(err_exit_code(&err), 2);

    const char *sel[] = {"x", "y"};
    const char *extra[] = {"--flag", "two words"};
    o.bottles = sel;
    o.n_bottles = 2;
    o.extra_args = extra;
    o.n_extra_args = 2;
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_int_equal(p.argv.len, 4);
    assert_string_equal(p.argv.items[0], "echo");
    assert_string_equal(p.argv.items[3], "two words");
    assert_string_equal(p.provider, "generic");
    assert_int_equal(p.routes.len, 0);
    assert_int_equal(p.lineage.len, 2);
    plan_free(&p);

    o.label = "Bad_Label";
    assert_true(build(f, &o, &p, &err) < 0);
    assert_non_null(strstr(err.msg, "--label 'Bad_Label' is not valid"));
}

static void test_tier_refusal_is_reported(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/b.md", "---\nenforcement: kernel\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: b\n---\n");
    struct plan_options o;
    base_opts(&o, "a");
    o.tier_available = TIER_NETNS;
    o.tier_why = "cgroup BPF programs cannot be loaded";
    struct plan p;
    struct bottle_err err = {0};
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_false(plan_tier_ok(&p));
    assert_non_null(strstr(p.warnings.items[p.warnings.len - 1], "'kernel' is required"));
    plan_free(&p);
    /* Opting down explicitly is allowed. */
    o.tier_override = TIER_PROXY_ONLY;
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_true(plan_tier_ok(&p));
    assert_string_equal(p.tier_required_scope, "cli");
    plan_free(&p);
}

/* The limits in the plan: defaults from the host's memory, declared values, text and JSON. */
static void test_limits_in_plan(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->home, "bottles/small.md", "---\nlimits: {pids: 64, cpus: 0.5}\n---\n");
    testutil_put(f->home, "bottles/huge.md", "---\nlimits: {memory: 64G}\n---\n");
    testutil_put(f->home, "agents/a.md", "---\nbottle: small\n---\n");
    testutil_put(f->home, "agents/b.md", "---\nbottle: huge\n---\n");
    struct plan_options o;
    base_opts(&o, "a");
    o.host_memory = 6ull << 30;
    struct plan p;
    struct bottle_err err = {0};
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_int_equal(p.limits.pids, 64);
    assert_int_equal(p.limits.memory, 3ull << 30);
    assert_int_equal(p.limits.cpu_milli, 500);
    assert_int_equal(p.limits.tmpfs, LIMITS_DEFAULT_TMPFS);
    struct buf text = BUF_INIT;
    plan_to_text(&p, &text);
    assert_non_null(strstr(text.data, "limits       pids 64 (bottle), memory 3G without swap "
                                      "(default), cpus 0.5 (bottle), tmpfs 1G each (default)"));
    buf_free(&text);
    cJSON *doc = plan_to_json(&p);
    cJSON *l = cJSON_GetObjectItem(doc, "limits");
    assert_int_equal(json_get_num(cJSON_GetObjectItem(l, "pids"), "value", 0), 64);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(l, "pids"), "scope"), "bottle");
    assert_true(json_get_num(cJSON_GetObjectItem(l, "cpus"), "value", 0) == 0.5);
    assert_int_equal(json_get_num(cJSON_GetObjectItem(l, "memory"), "value", 0), 3ull << 30);
    assert_string_equal(json_get_str(cJSON_GetObjectItem(l, "memory"), "scope"), "default");
    assert_int_equal(json_get_num(l, "swap", -1), 0);
    cJSON_Delete(doc);
    plan_free(&p);

    /* More than the host has: a warning, the value kept. */
    base_opts(&o, "b");
    o.host_memory = 6ull << 30;
    assert_int_equal(build(f, &o, &p, &err), 0);
    assert_int_equal(p.limits.memory, 64ull << 30);
    assert_true(strv_contains(&p.warnings,
                              "limits.memory 64G is more than this host's memory (6G); it limits "
                              "nothing"));
    plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_claude),
        cmocka_unit_test(test_golden_codex),
        cmocka_unit_test(test_golden_curl),
        cmocka_unit_test_setup_teardown(test_limits_in_plan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_pool_and_periods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_in_project_dir_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_provider_route_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selection_and_extra_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tier_refusal_is_reported, setup, teardown),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
