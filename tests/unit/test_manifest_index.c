#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "manifest/manifest.h"

/* A home ($BOTTLE_HOME) and a project (cwd with .bottle/) under one temp root. */
struct fixture {
    char *root;
    char *home;    /* <root>/home */
    char *cwd;     /* <root>/work */
    char *project; /* <root>/work/.bottle */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->root = testutil_mkdtemp();
    f->home = fs_join(f->root, "home");
    f->cwd = fs_join(f->root, "work");
    f->project = fs_join(f->cwd, ".bottle");
    struct bottle_err err = {0};
    assert_int_equal(fs_mkdir_p(f->home, 0755, &err), 0);
    assert_int_equal(fs_mkdir_p(f->project, 0755, &err), 0);

    testutil_put(f->home, "agents/coder.md", "---\nbottle: dev\n---\nHome coder.\n");
    testutil_put(f->home, "agents/reviewer.md", "---\n---\nReview.\n");
    testutil_put(f->home, "agents/broken.md", "---\nbottle: dev\nwat: 1\n---\n");
    testutil_put(f->home, "agents/Bad-Name.md", "---\n---\n");
    testutil_put(f->home, "agents/notes.txt", "not a manifest");
    testutil_put(f->home, "agents/.hidden.md", "---\n---\n");
    testutil_put(f->home, "agents/folder.md/x", "a directory named like a manifest");
    testutil_put(f->home, "bottles/dev.md", "---\nsupervise: false\n---\nHome dev.\n");
    testutil_put(f->home, "bottles/base.md", "---\n---\n");
    testutil_put(f->home, "settings.yml", "budget: {claude: 1000}\nshutdown: kill\n");

    testutil_put(f->project, "agents/coder.md", "---\nbottle: local\n---\nProject coder.\n");
    testutil_put(f->project, "agents/helper.md", "---\n---\n");
    testutil_put(f->project, "bottles/dev.md", "---\nsupervise: true\n---\nProject dev.\n");
    testutil_put(f->project, "bottles/local.md", "---\n---\n");
    /* Host settings never come from a project. */
    testutil_put(f->project, "settings.yml", "budget: {claude: 999999999}\n");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rm_rf(f->root);
    free(f->root);
    free(f->home);
    free(f->cwd);
    free(f->project);
    free(f);
    return 0;
}

static void open_index(const struct fixture *f, struct manifest_index *idx)
{
    struct bottle_err err = {0};
    assert_int_equal(manifest_index_open(idx, f->home, f->cwd, &err), 0);
}

static void assert_names(const struct strv *v, const char *const *want, size_t n)
{
    if (v->len != n) {
        for (size_t i = 0; i < v->len; i++)
            print_error("  have: %s\n", v->items[i]);
        fail_msg("expected %zu names, found %zu", n, v->len);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v->items[i], want[i]);
}

static void test_open_dirs(void **state)
{
    struct fixture *f = *state;
    struct manifest_index idx;
    open_index(f, &idx);
    assert_string_equal(idx.home_dir, f->home);
    assert_string_equal(idx.project_dir, f->project);
    manifest_index_free(&idx);
    manifest_index_free(&idx);
    manifest_index_free(NULL);

    /* No .bottle in the cwd: no project dir. */
    struct bottle_err err = {0};
    assert_int_equal(manifest_index_open(&idx, f->home, f->home, &err), 0);
    assert_null(idx.project_dir);
    manifest_index_free(&idx);

    /* $BOTTLE_HOME, then $HOME/.bottle. */
    char *old_bh = getenv("BOTTLE_HOME") ? strdup(getenv("BOTTLE_HOME")) : NULL;
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *old_sudo = getenv("SUDO_USER") ? strdup(getenv("SUDO_USER")) : NULL;
    unsetenv("SUDO_USER");
    setenv("BOTTLE_HOME", f->home, 1);
    assert_int_equal(manifest_index_open(&idx, NULL, f->cwd, &err), 0);
    assert_string_equal(idx.home_dir, f->home);
    manifest_index_free(&idx);
    unsetenv("BOTTLE_HOME");
    setenv("HOME", f->root, 1);
    assert_int_equal(manifest_index_open(&idx, NULL, f->cwd, &err), 0);
    char *want = fs_join(f->root, ".bottle");
    assert_string_equal(idx.home_dir, want);
    free(want);
    manifest_index_free(&idx);

    /* Run from $HOME where ~/.bottle is the home dir: listed once, as home. */
    assert_int_equal(manifest_index_open(&idx, f->project, f->cwd, &err), 0);
    assert_null(idx.project_dir);
    manifest_index_free(&idx);

    if (old_bh)
        setenv("BOTTLE_HOME", old_bh, 1);
    if (old_home)
        setenv("HOME", old_home, 1);
    if (old_sudo)
        setenv("SUDO_USER", old_sudo, 1);
    free(old_bh);
    free(old_home);
    free(old_sudo);
}

static void test_listing_reads_names_only(void **state)
{
    struct fixture *f = *state;
    struct manifest_index idx;
    open_index(f, &idx);
    struct strv agents;
    manifest_index_agents(&idx, &agents);
    /* broken.md still lists: content is not read. Bad-Name, .hidden, notes.txt and the
     * folder are skipped; coder (in both dirs) appears once. */
    static const char *const want_agents[] = {"broken", "coder", "helper", "reviewer"};
    assert_names(&agents, want_agents, 4);
    strv_free(&agents);

    struct strv bottles;
    manifest_index_bottles(&idx, &bottles);
    static const char *const want_bottles[] = {"base", "dev", "local"};
    assert_names(&bottles, want_bottles, 3);
    strv_free(&bottles);
    manifest_index_free(&idx);

    /* A missing home lists nothing and is not an error. */
    char *nowhere = fs_join(f->root, "no-such-home");
    struct bottle_err err = {0};
    assert_int_equal(manifest_index_open(&idx, nowhere, f->root, &err), 0);
    manifest_index_agents(&idx, &agents);
    assert_int_equal(agents.len, 0);
    strv_free(&agents);
    manifest_index_free(&idx);
    free(nowhere);
}

static void test_paths_project_wins(void **state)
{
    struct fixture *f = *state;
    struct manifest_index idx;
    open_index(f, &idx);
    char *p = manifest_index_agent_path(&idx, "coder");
    char *want = fs_join(f->project, "agents/coder.md");
    assert_string_equal(p, want);
    free(p);
    free(want);
    p = manifest_index_agent_path(&idx, "reviewer");
    want = fs_join(f->home, "agents/reviewer.md");
    assert_string_equal(p, want);
    free(p);
    free(want);
    p = manifest_index_bottle_path(&idx, "dev");
    want = fs_join(f->project, "bottles/dev.md");
    assert_string_equal(p, want);
    free(p);
    free(want);
    assert_null(manifest_index_agent_path(&idx, "nobody"));
    assert_null(manifest_index_agent_path(&idx, "../agents/coder"));
    assert_null(manifest_index_agent_path(&idx, "Bad-Name"));
    assert_null(manifest_index_bottle_path(&idx, "coder"));
    manifest_index_free(&idx);
}

static void test_load_agent_and_bottle(void **state)
{
    struct fixture *f = *state;
    struct manifest_index idx;
    open_index(f, &idx);
    struct bottle_err err = {0};
    struct agent_def a;
    assert_int_equal(manifest_index_load_agent(&idx, "coder", &a, &err), 0);
    assert_string_equal(a.bottle, "local");
    assert_string_equal(a.prompt, "Project coder.");
    char *want = fs_join(f->project, "agents/coder.md");
    assert_string_equal(a.file, want);
    free(want);
    agent_def_free(&a);

    struct bottle_def b;
    assert_int_equal(manifest_index_load_bottle(&idx, "dev", &b, &err), 0);
    assert_true(b.supervise_declared);
    assert_true(b.supervise);
    assert_string_equal(b.name, "dev");
    assert_string_equal(b.body, "Project dev.\n");
    bottle_def_free(&b);
    assert_int_equal(manifest_index_load_bottle(&idx, "base", &b, &err), 0);
    bottle_def_free(&b);
    manifest_index_free(&idx);
}

static void test_load_errors(void **state)
{
    struct fixture *f = *state;
    struct manifest_index idx;
    open_index(f, &idx);
    struct bottle_err err = {0};
    struct agent_def a;
    struct bottle_def b;

    assert_true(manifest_index_load_agent(&idx, "nobody", &a, &err) < 0);
    assert_string_equal(err.msg,
                        "agent 'nobody' not defined. Available: broken, coder, helper, reviewer");
    assert_int_equal(err.kind, ERR_KIND_MANIFEST);
    assert_int_equal(err.code, ENOENT);
    assert_true(manifest_index_load_agent(&idx, "../bottles/dev", &a, &err) < 0);
    assert_string_equal(err.msg, "agent '../bottles/dev' not defined. Available: broken, coder, "
                                 "helper, reviewer");
    assert_true(manifest_index_load_bottle(&idx, "prod", &b, &err) < 0);
    assert_string_equal(err.msg, "bottle 'prod' not defined. Available: base, dev, local");
    assert_int_equal(err.kind, ERR_KIND_MANIFEST);

    /* A broken file errors only when it is the one loaded, naming its path and position. */
    assert_true(manifest_index_load_agent(&idx, "broken", &a, &err) < 0);
    char *want = xasprintf("manifest: %s/agents/broken.md:3:1: unknown key 'wat' in agent; "
                           "accepted: bottle, budget, color, description, git-gate, model, name, "
                           "skills, tools",
                           f->home);
    assert_string_equal(err.msg, want);
    free(want);

    /* Files over 1 MiB are refused before parsing. */
    struct buf big = BUF_INIT;
    buf_append_str(&big, "---\n---\n");
    while (big.len <= 1024 * 1024)
        buf_append_str(&big, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n");
    testutil_put(f->home, "bottles/huge.md", big.data);
    buf_free(&big);
    assert_true(manifest_index_load_bottle(&idx, "huge", &b, &err) < 0);
    want =
        xasprintf("manifest: %s/bottles/huge.md: cannot read: larger than 1048576 bytes", f->home);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.kind, ERR_KIND_MANIFEST);
    free(want);
    manifest_index_free(&idx);

    /* No agents anywhere. */
    char *empty = fs_join(f->root, "empty-home");
    assert_int_equal(manifest_index_open(&idx, empty, f->root, &err), 0);
    assert_true(manifest_index_load_agent(&idx, "coder", &a, &err) < 0);
    assert_string_equal(err.msg, "agent 'coder' not defined. Available: (none)");
    assert_true(manifest_index_load_bottle(&idx, "dev", &b, &err) < 0);
    assert_string_equal(err.msg, "bottle 'dev' not defined. Available: (none)");
    manifest_index_free(&idx);
    free(empty);
}

static void test_settings_home_only(void **state)
{
    struct fixture *f = *state;
    struct manifest_index idx;
    open_index(f, &idx);
    struct bottle_err err = {0};
    struct settings s;
    assert_int_equal(manifest_index_load_settings(&idx, &s, &err), 0);
    char *want = fs_join(f->home, "settings.yml");
    assert_string_equal(s.file, want);
    free(want);
    assert_int_equal(s.n_budgets, 1);
    assert_int_equal(s.budgets[0].tokens, 1000); /* not the project's 999999999 */
    assert_int_equal(s.shutdown, SHUTDOWN_KILL);
    settings_free(&s);
    manifest_index_free(&idx);

    /* Missing settings.yml: empty settings, no file. */
    char *bare = fs_join(f->root, "bare-home");
    assert_int_equal(manifest_index_open(&idx, bare, f->cwd, &err), 0);
    assert_int_equal(manifest_index_load_settings(&idx, &s, &err), 0);
    assert_null(s.file);
    assert_int_equal(s.n_budgets, 0);
    settings_free(&s);
    manifest_index_free(&idx);
    free(bare);

    /* A broken settings.yml is an error with its path and position. */
    testutil_put(f->home, "settings.yml", "budget: {claude: 0}\n");
    open_index(f, &idx);
    assert_true(manifest_index_load_settings(&idx, &s, &err) < 0);
    want = xasprintf("manifest: %s/settings.yml:1:18: budget.claude: must be a positive number "
                     "of tokens, found 0",
                     f->home);
    assert_string_equal(err.msg, want);
    free(want);
    manifest_index_free(&idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_dirs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing_reads_names_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_project_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_agent_and_bottle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_home_only, setup, teardown),
    };
    return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
