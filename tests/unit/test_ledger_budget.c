/*
 * Which ledger a bottle uses: under sudo, a `ledger:` path from the user's
 * settings.yml is honoured only inside the user's data home (root's
 * HOME_SUDO_ROOT/<uid>); a database URL is passed on; without sudo the
 * setting is the user's own business. settings.yml is read from the config
 * home, the ledger kept in the data home. Root only for the sudo cases.
 */
#include "testutil.h"

#include "common/home.h"
#include "ledger/budget.h"

static void test_url_detection(void **state)
{
    (void)state;
    assert_true(budget_ledger_is_url("postgresql://db.example/ledger"));
    assert_true(budget_ledger_is_url("postgres://db.example/ledger"));
    /* Any other scheme is no URL: under sudo it is checked as a path, so refused. */
    assert_false(budget_ledger_is_url("sqlite+file://x"));
    assert_false(budget_ledger_is_url("/var/lib/bottle/ledger.db"));
    assert_false(budget_ledger_is_url("://nothing"));
    assert_false(budget_ledger_is_url("1http://x"));
    assert_false(budget_ledger_is_url("dir/with://colon"));
    assert_false(budget_ledger_is_url(NULL));
}

static void test_without_sudo_the_setting_stands(void **state)
{
    (void)state;
    char *old = getenv("SUDO_UID") ? xstrdup(getenv("SUDO_UID")) : NULL;
    unsetenv("SUDO_UID");
    struct bottle_err err = {0};
    char *out = NULL;
    assert_int_equal(budget_ledger_choose(NULL, "/h", &out, &err), 0);
    assert_string_equal(out, "/h/bottle.db");
    free(out);
    assert_int_equal(budget_ledger_choose("/anywhere/l.db", "/h", &out, &err), 0);
    assert_string_equal(out, "/anywhere/l.db");
    free(out);
    if (old)
        setenv("SUDO_UID", old, 1);
    free(old);
}

static void test_sudo_confines_the_ledger(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    char *old = getenv("SUDO_UID") ? xstrdup(getenv("SUDO_UID")) : NULL;
    char *old_home = getenv("BOTTLE_HOME") ? xstrdup(getenv("BOTTLE_HOME")) : NULL;
    setenv("SUDO_UID", "4321", 1);
    const char *home = HOME_SUDO_ROOT "/4321";
    struct bottle_err err = {0};
    char *out = NULL;

    static const char *const refused[] = {
        "/tmp/x/l.db",                            /* anywhere the user points */
        "/home/someone/.bottle/l.db",             /* the user's own home, a path root follows */
        HOME_SUDO_ROOT "/4321/../1000/bottle.db", /* another user's ledger */
        HOME_SUDO_ROOT "/43210/bottle.db",        /* a prefix, not the directory */
        HOME_SUDO_ROOT "/4321",                   /* the directory itself */
        "relative.db",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        err_clear(&err);
        assert_int_equal(budget_ledger_choose(refused[i], home, &out, &err), -EPERM);
        assert_int_equal(err.kind, ERR_KIND_REFUSED);
        assert_non_null(strstr(err.msg, "not used under sudo"));
        assert_null(out);
    }
    assert_int_equal(budget_ledger_choose(HOME_SUDO_ROOT "/4321/team/l.db", home, &out, &err), 0);
    assert_string_equal(out, HOME_SUDO_ROOT "/4321/team/l.db");
    free(out);
    assert_int_equal(budget_ledger_choose("postgresql://db/ledger", home, &out, &err), 0);
    assert_string_equal(out, "postgresql://db/ledger");
    free(out);

    /* The readers (budget, usage, dashboard) take settings.yml from the config home. */
    char *cfg = testutil_mkdtemp();
    testutil_put(cfg, "settings.yml", "ledger: /tmp/elsewhere.db\n");
    setenv("BOTTLE_HOME", cfg, 1);
    err_clear(&err);
    assert_int_equal(budget_ledger_path(home, &out, &err), -EPERM);
    assert_null(out);
    testutil_put(cfg, "settings.yml", "shutdown: cutoff\n");
    assert_int_equal(budget_ledger_path(home, &out, &err), 0);
    assert_string_equal(out, HOME_SUDO_ROOT "/4321/bottle.db");
    free(out);
    testutil_rm_rf(cfg);
    free(cfg);

    if (old)
        setenv("SUDO_UID", old, 1);
    else
        unsetenv("SUDO_UID");
    if (old_home)
        setenv("BOTTLE_HOME", old_home, 1);
    else
        unsetenv("BOTTLE_HOME");
    free(old);
    free(old_home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_detection),
        cmocka_unit_test(test_without_sudo_the_setting_stands),
        cmocka_unit_test(test_sudo_confines_the_ledger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
