/*
 * state: directory modes, slug format, label collisions, the slug lock and
 * plan.json. Runs in a temporary $BOTTLE_HOME; root is needed only to make
 * sure the modes hold when the runtime runs as root (the real case).
 */
#include "testutil.h"

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/fs.h"
#include "runtime/controller/state.h"

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

static mode_t mode_of(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) < 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return sb.st_mode & 07777;
}

static void test_dirs_and_slug_format(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct state_dir st;
    assert_int_equal(state_create(f->home, "claude", NULL, &st, &err), 0);

    /* <agent>-<5 base36> */
    assert_true(str_starts_with(st.slug, "claude-"));
    const char *suffix = st.slug + strlen("claude-");
    assert_int_equal(strlen(suffix), STATE_SLUG_RANDOM_LEN);
    for (const char *c = suffix; *c; c++)
        assert_true((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z'));

    char *expect = xasprintf("%s/state/%s", f->home, st.slug);
    assert_string_equal(st.path, expect);
    free(expect);
    assert_int_equal(mode_of(st.path), 0700);
    char *state_root = fs_join(f->home, "state");
    assert_int_equal(mode_of(state_root), 0700);
    free(state_root);

    char *run = NULL;
    assert_int_equal(state_run_dir(f->home, &run, &err), 0);
    assert_int_equal(mode_of(run), 0700);
    free(run);

    /* Another bottle of the same agent gets another slug. */
    struct state_dir st2;
    assert_int_equal(state_create(f->home, "claude", NULL, &st2, &err), 0);
    assert_string_not_equal(st.slug, st2.slug);

    char *path = xstrdup(st.path);
    assert_int_equal(state_remove(&st, &err), 0);
    assert_false(fs_is_dir(path));
    free(path);
    state_close(&st2);
}

static void test_label_collision(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct state_dir a, b;
    assert_int_equal(state_create(f->home, "codex", "review", &a, &err), 0);
    assert_string_equal(a.slug, "review");

    /* Live bottle holds the label. */
    bool active = false;
    assert_int_equal(state_slug_active(f->home, "review", &active, &err), 0);
    assert_true(active);
    assert_int_equal(state_create(f->home, "codex", "review", &b, &err), -EEXIST);
    assert_int_equal(err.kind, ERR_KIND_USAGE);
    assert_string_equal(err.msg, "label 'review' is already in use by a bottle; pick another or "
                                 "run 'bottle cleanup'");
    assert_null(b.path);

    /* A crashed bottle's state is kept and still holds the label. */
    state_close(&a);
    assert_int_equal(state_slug_active(f->home, "review", &active, &err), 0);
    assert_false(active);
    err_clear(&err);
    assert_int_equal(state_create(f->home, "codex", "review", &b, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "already in use"));

    /* Cleaned up: the label is free again. */
    char *stale = xasprintf("%s/state/review", f->home);
    testutil_rm_rf(stale);
    free(stale);
    assert_int_equal(state_create(f->home, "codex", "review", &b, &err), 0);
    assert_int_equal(state_remove(&b, &err), 0);
    assert_int_equal(state_slug_active(f->home, "review", &active, &err), 0);
    assert_false(active);
}

static void test_invalid_names(void **state)
{
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct state_dir st;
    static const char *const bad[] = {"", ".", "..", "a/b", "-x", "has space", "x\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(home_slug_valid(bad[i]));
        assert_int_equal(state_create(f->home, "a", bad[i], &st, &err), -EINVAL);
        assert_int_equal(err.kind, ERR_KIND_USAGE);
    }
    assert_true(home_slug_valid("dev-1.x_y"));
    char long_agent[80];
    memset(long_agent, 'a', 60);
    long_agent[60] = '\0';
    assert_int_equal(state_create(f->home, long_agent, NULL, &st, &err), -EINVAL);
}

static void test_plan_json(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct state_dir st;
    assert_int_equal(state_create(f->home, "generic", NULL, &st, &err), 0);

    struct plan p;
    memset(&p, 0, sizeof(p));
    p.agent_name = "generic";
    p.provider = "generic";
    p.cwd = "/work";
    p.backend = "native";
    strv_push(&p.argv, "/bin/true");
    assert_int_equal(state_write_plan(&st, &p, &err), 0);
    strv_free(&p.argv);

    char *path = fs_join(st.path, "plan.json");
    assert_int_equal(mode_of(path), 0600);
    struct buf text = BUF_INIT;
    assert_int_equal(fs_read_file(path, 1 << 20, &text, &err), 0);
    cJSON *doc = cJSON_Parse(text.data);
    assert_non_null(doc);
    cJSON *agent = cJSON_GetObjectItem(doc, "agent");
    assert_string_equal(cJSON_GetObjectItem(agent, "name")->valuestring, "generic");
    assert_string_equal(cJSON_GetObjectItem(doc, "cwd")->valuestring, "/work");
    cJSON_Delete(doc);
    buf_free(&text);
    free(path);

    assert_int_equal(state_write_file(&st, "../escape", "x", 1, 0600, &err), -EINVAL);
    assert_int_equal(state_remove(&st, &err), 0);
}

/* Root works only in a home no one else can change, and through descriptors: a swapped path
 * redirects nothing. */
static void test_symlink_swaps(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct state_dir st;
    char *victim = testutil_mkdtemp();
    testutil_put(victim, "keep", "precious");
    char *keep = fs_join(victim, "keep");

    /* A home inside a directory another user owns is refused before anything is created. */
    char *theirs = fs_join(f->home, "theirs");
    assert_int_equal(mkdir(theirs, 0755), 0);
    assert_int_equal(chown(theirs, 65534, 65534), 0);
    char *their_home = fs_join(theirs, "home");
    assert_int_equal(state_create(their_home, "a", NULL, &st, &err), -EPERM);
    assert_int_equal(err.kind, ERR_KIND_REFUSED);
    assert_int_equal(access(their_home, F_OK), -1);

    /* state/ or run/ planted as a symlink: refused, the target untouched. */
    char *h1 = fs_join(f->home, "h1");
    assert_int_equal(mkdir(h1, 0700), 0);
    char *state_link = fs_join(h1, "state");
    assert_int_equal(symlink(victim, state_link), 0);
    err_clear(&err);
    assert_int_equal(state_create(h1, "a", "lbl", &st, &err), -ELOOP);
    char *h2 = fs_join(f->home, "h2");
    assert_int_equal(mkdir(h2, 0700), 0);
    char *run_link = fs_join(h2, "run");
    assert_int_equal(symlink(victim, run_link), 0);
    err_clear(&err);
    assert_int_equal(state_create(h2, "a", "lbl", &st, &err), -ELOOP);
    char *planted_dir = fs_join(victim, "lbl");
    char *planted_lock = fs_join(victim, "lbl.lock");
    assert_int_equal(access(planted_dir, F_OK), -1);
    assert_int_equal(access(planted_lock, F_OK), -1);

    /* The state directory swapped for a symlink while the bottle runs. */
    char *h3 = fs_join(f->home, "h3");
    assert_int_equal(state_create(h3, "a", "lbl", &st, &err), 0);
    assert_int_equal(state_write_file(&st, "one", "1", 1, 0600, &err), 0);
    char *moved = xasprintf("%s.moved", st.path);
    assert_int_equal(rename(st.path, moved), 0);
    assert_int_equal(symlink(victim, st.path), 0);
    assert_int_equal(state_write_file(&st, "two", "2", 1, 0600, &err), 0);
    char *two_moved = fs_join(moved, "two");
    char *two_victim = fs_join(victim, "two");
    assert_int_equal(access(two_moved, F_OK), 0); /* written where the descriptor points */
    assert_int_equal(access(two_victim, F_OK), -1);
    err_clear(&err);
    assert_true(state_remove(&st, &err) < 0); /* the name is no longer its directory */
    struct buf b = BUF_INIT;
    assert_int_equal(fs_read_file(keep, 100, &b, &err), 0);
    assert_string_equal(b.data, "precious");
    buf_free(&b);

    testutil_rm_rf(victim);
    free(victim);
    free(keep);
    free(theirs);
    free(their_home);
    free(h1);
    free(h2);
    free(h3);
    free(state_link);
    free(run_link);
    free(planted_dir);
    free(planted_lock);
    free(moved);
    free(two_moved);
    free(two_victim);
}

static void test_home_default(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    char *old = getenv("BOTTLE_HOME") ? xstrdup(getenv("BOTTLE_HOME")) : NULL;
    char *old_sudo = getenv("SUDO_UID") ? xstrdup(getenv("SUDO_UID")) : NULL;
    unsetenv("SUDO_UID"); /* not under sudo: the data home is $BOTTLE_HOME or ~/.bottle */
    setenv("BOTTLE_HOME", "/some/where", 1);
    char *h = NULL;
    assert_int_equal(home_path(&h, &err), 0);
    assert_string_equal(h, "/some/where");
    free(h);
    unsetenv("BOTTLE_HOME");
    assert_int_equal(home_path(&h, &err), 0);
    assert_true(str_ends_with(h, "/.bottle"));
    free(h);
    if (old)
        setenv("BOTTLE_HOME", old, 1);
    if (old_sudo)
        setenv("SUDO_UID", old_sudo, 1);
    free(old);
    free(old_sudo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dirs_and_slug_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_swaps, setup, teardown),
        cmocka_unit_test(test_home_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
