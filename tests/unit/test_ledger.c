/*
 * ledger: migrations, budgets and reservations, totals, audit, and many
 * processes writing one file at once. Every test gets a fresh database in a
 * temporary directory.
 */
#include "testutil.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>

#include "common/buf.h"
#include "ledger/budget.h"
#include "ledger/ledger.h"

struct fixture {
    char *dir;
    char *path;
    struct ledger *l;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->path = xasprintf("%s/sub/bottle.db", f->dir);
    struct bottle_err err = {0};
    if (ledger_open(f->path, &f->l, &err) < 0)
        fail_msg("%s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->l);
    testutil_rm_rf(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

static void set_budget(struct ledger *l, enum ledger_scope scope, const char *name,
                       const char *provider, int64_t limit)
{
    struct ledger_budget b = {scope, name, provider, limit};
    struct bottle_err err = {0};
    if (ledger_budget_set(l, &b, &err) < 0)
        fail_msg("%s", err.msg);
}

static int64_t reserve_ok(struct ledger *l, const char *bottle, const char *agent,
                          const char *provider, int64_t tokens)
{
    struct ledger_subject who = {bottle, agent, provider};
    struct ledger_denial d;
    struct bottle_err err = {0};
    int64_t id = 0;
    int rc = ledger_reserve(l, &who, tokens, &id, &d, &err);
    if (rc != 0)
        fail_msg("reserve %lld for %s/%s: rc %d (%s, left %lld) %s", (long long)tokens, bottle,
                 agent, rc, ledger_scope_name(d.scope), (long long)d.left_tokens, err.msg);
    assert_true(id > 0);
    return id;
}

static void settle_ok(struct ledger *l, int64_t id, int64_t in, int64_t out, bool complete)
{
    struct ledger_record rec = {.model = "m", .request_id = "req", .complete = complete};
    rec.usage.input_tokens = in;
    rec.usage.output_tokens = out;
    struct bottle_err err = {0};
    if (ledger_settle(l, id, &rec, &err) < 0)
        fail_msg("settle %lld: %s", (long long)id, err.msg);
}

static int64_t spent(struct ledger *l, enum ledger_scope scope, const char *name,
                     const char *provider)
{
    int64_t v = -1;
    struct bottle_err err = {0};
    if (ledger_spent(l, scope, name, provider, &v, &err) < 0)
        fail_msg("%s", err.msg);
    return v;
}

static struct ledger_totals totals(struct ledger *l, const char *bottle, const char *agent,
                                   const char *provider, int64_t since)
{
    struct ledger_filter flt = {bottle, agent, provider, since};
    struct ledger_totals t;
    struct bottle_err err = {0};
    if (ledger_totals(l, &flt, &t, &err) < 0)
        fail_msg("%s", err.msg);
    return t;
}

/* ---- schema ------------------------------------------------------------------- */

static void test_open_twice_is_idempotent(void **state)
{
    struct fixture *f = *state;
    struct bottle_err err = {0};
    int v1 = ledger_schema_version(f->l, &err);
    assert_true(v1 >= 1);
    set_budget(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude", 100);
    ledger_close(f->l);
    f->l = NULL;
    assert_int_equal(ledger_open(f->path, &f->l, &err), 0);
    assert_int_equal(ledger_schema_version(f->l, &err), v1);
    /* The data survived and no migration ran twice: one row per version. */
    assert_int_equal(spent(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude"), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT COUNT(*), COUNT(DISTINCT version) FROM "
                                        "schema_version",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), v1);
    assert_int_equal(sqlite3_column_int(s, 1), v1);
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_newer_schema_is_refused(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "INSERT INTO schema_version VALUES(999, 0)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct ledger *l2 = NULL;
    struct bottle_err err = {0};
    assert_true(ledger_open(f->path, &l2, &err) < 0);
    assert_null(l2);
    assert_non_null(strstr(err.msg, "schema version 999 is newer"));
}

static void test_open_reports_unusable_path(void **state)
{
    (void)state;
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    assert_true(ledger_open("/proc/no-such-dir/bottle.db", &l, &err) < 0);
    assert_null(l);
    assert_non_null(strstr(err.msg, "/proc/no-such-dir"));
}

static void test_default_path_uses_bottle_home(void **state)
{
    struct fixture *f = *state;
    setenv("BOTTLE_HOME", f->dir, 1);
    char *p = NULL;
    struct bottle_err err = {0};
    assert_int_equal(ledger_default_path(&p, &err), 0);
    char *want = xasprintf("%s/bottle.db", f->dir);
    assert_string_equal(p, want);
    free(want);
    free(p);
    unsetenv("BOTTLE_HOME");
}

/* budget, usage and the dashboard read the ledger settings.yml names, as bottles write it. */
static void test_readers_follow_settings_ledger(void **state)
{
    struct fixture *f = *state;
    char *path = NULL;
    struct bottle_err err = {0};
    assert_int_equal(budget_ledger_path(f->dir, &path, &err), 0);
    char *want = xasprintf("%s/bottle.db", f->dir);
    assert_string_equal(path, want);
    free(want);
    free(path);
    char *custom = xasprintf("%s/elsewhere.db", f->dir);
    char *settings = xasprintf("%s/settings.yml", f->dir);
    char *text = xasprintf("shutdown: cutoff\nledger: %s\n", custom);
    testutil_write(settings, text);
    assert_int_equal(budget_ledger_path(f->dir, &path, &err), 0);
    assert_string_equal(path, custom);
    free(path);
    /* Not there yet: nothing to read, and no error. */
    assert_null(budget_ledger_open(f->dir, &err));
    assert_int_equal(err.msg[0], 0);
    struct ledger *w = NULL;
    assert_int_equal(ledger_open(custom, &w, &err), 0);
    set_budget(w, LEDGER_SCOPE_BOTTLE, "b9", "claude", 77);
    ledger_close(w);
    struct ledger *r = budget_ledger_open(f->dir, &err);
    assert_non_null(r);
    ledger_close(r);
    /* A broken settings.yml is an error naming the file, not a silent default. */
    testutil_write(settings, "ledger: [not, a, path]\n");
    assert_null(budget_ledger_open(f->dir, &err));
    assert_non_null(strstr(err.msg, "settings.yml"));
    free(text);
    free(settings);
    free(custom);
}

/* ---- reserve, settle, release ------------------------------------------------- */

static void test_reserve_settle_release_arithmetic(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", 1000);
    int64_t a = reserve_ok(f->l, "b1", "claude", "claude", 300);
    int64_t b = reserve_ok(f->l, "b1", "claude", "claude", 200);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 500);

    /* Real usage replaces the estimate. */
    settle_ok(f->l, a, 40, 60, true);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 100 + 200);
    /* A released reservation counts for nothing. */
    struct bottle_err err = {0};
    assert_int_equal(ledger_release(f->l, b, &err), 0);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 100);
    assert_int_equal(ledger_release(f->l, b, &err), -ENOENT);

    /* Settling twice is refused and counts once. */
    struct ledger_record rec = {.complete = true};
    rec.usage.output_tokens = 5;
    assert_int_equal(ledger_settle(f->l, a, &rec, &err), -EALREADY);
    assert_non_null(strstr(err.msg, "already settled"));
    assert_int_equal(ledger_settle(f->l, 9999, &rec, &err), -ENOENT);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 100);

    struct ledger_totals t = totals(f->l, "b1", NULL, NULL, 0);
    assert_int_equal(t.requests, 1);
    assert_int_equal(t.usage.input_tokens, 40);
    assert_int_equal(t.usage.output_tokens, 60);
    assert_int_equal(t.charged_tokens, 100);
    assert_int_equal(t.open_reservations, 0);
}

static void test_incomplete_is_charged_the_reservation(void **state)
{
    struct fixture *f = *state;
    int64_t a = reserve_ok(f->l, "b1", "claude", "claude", 500);
    settle_ok(f->l, a, 120, 30, false); /* interrupted: usage below the estimate */
    int64_t b = reserve_ok(f->l, "b1", "claude", "claude", 100);
    settle_ok(f->l, b, 100, 150, false); /* interrupted, yet past the estimate */
    struct ledger_totals t = totals(f->l, NULL, NULL, "claude", 0);
    assert_int_equal(t.requests, 2);
    assert_int_equal(t.incomplete, 2);
    assert_int_equal(t.usage.input_tokens, 220);
    assert_int_equal(t.usage.output_tokens, 180);
    assert_int_equal(t.charged_tokens, 500 + 250);
}

static void test_cache_tokens_count(void **state)
{
    struct fixture *f = *state;
    int64_t a = reserve_ok(f->l, "b1", "", "claude", 10);
    struct ledger_record rec = {.model = "claude-x", .complete = true};
    rec.usage = (struct ledger_usage){1, 2, 30, 400};
    struct bottle_err err = {0};
    assert_int_equal(ledger_settle(f->l, a, &rec, &err), 0);
    struct ledger_totals t = totals(f->l, "b1", NULL, NULL, 0);
    assert_int_equal(t.usage.cache_creation_tokens, 30);
    assert_int_equal(t.usage.cache_read_tokens, 400);
    assert_int_equal(t.charged_tokens, 433);
    rec.usage.input_tokens = -1;
    int64_t b = reserve_ok(f->l, "b1", "", "claude", 10);
    assert_int_equal(ledger_settle(f->l, b, &rec, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "out of range"));
    rec.usage.input_tokens = LEDGER_TOKENS_MAX + 1;
    assert_int_equal(ledger_settle(f->l, b, &rec, &err), -EINVAL);
    /* Nothing was charged by the refused settles. */
    assert_int_equal(totals(f->l, "b1", NULL, NULL, 0).charged_tokens, 433);
}

static void test_release_stale(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_GLOBAL, NULL, "codex", 1000);
    int64_t a = reserve_ok(f->l, "b1", "codex", "codex", 600);
    reserve_ok(f->l, "b2", "codex", "codex", 300);
    struct bottle_err err = {0};
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(ledger_release_stale(f->l, now - 3600, &err), 0);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_GLOBAL, NULL, "codex"), 900);
    assert_int_equal(ledger_release_stale(f->l, now + 2, &err), 2);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_GLOBAL, NULL, "codex"), 0);
    assert_int_equal(totals(f->l, NULL, NULL, NULL, 0).open_reservations, 0);
    /* The process was alive after all: its usage still lands, once. */
    settle_ok(f->l, a, 10, 20, true);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_GLOBAL, NULL, "codex"), 30);
}

/* ---- budgets: fit and does-not-fit at each scope -------------------------------- */

struct fit_case {
    const char *what;
    int64_t global, bottle, agent; /* -1: no budget at that scope */
    int64_t already;               /* settled for bottle b1 / agent a1 before */
    int64_t ask;
    int expect; /* 0 or LEDGER_DOES_NOT_FIT */
    enum ledger_scope scope;
    int64_t left;
};

static const struct fit_case fit_cases[] = {
    {"no budgets at all", -1, -1, -1, 100, 1000000, 0, 0, 0},
    {"fits every scope", 1000, 500, 300, 100, 100, 0, 0, 0},
    {"fits exactly", 1000, 500, 300, 100, 200, 0, 0, 0},
    {"global too small", 150, -1, -1, 100, 60, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_GLOBAL, 50},
    {"bottle too small", 1000, 120, -1, 100, 60, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_BOTTLE, 20},
    {"agent too small", 1000, 500, 101, 100, 2, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_AGENT, 1},
    {"all too small: agent told", 10, 10, 10, 100, 1, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_AGENT, 0},
    {"bottle and global: bottle told", 10, 10, -1, 100, 1, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_BOTTLE,
     0},
    {"zero budget", 0, -1, -1, 0, 1, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_GLOBAL, 0},
    {"zero ask on exhausted", 100, -1, -1, 100, 0, 0, 0, 0},
    {"largest ask", 1000, -1, -1, 0, LEDGER_TOKENS_MAX, LEDGER_DOES_NOT_FIT, LEDGER_SCOPE_GLOBAL,
     1000},
};

static void run_fit_case(struct ledger *l, const struct fit_case *c)
{
    if (c->global >= 0)
        set_budget(l, LEDGER_SCOPE_GLOBAL, NULL, "claude", c->global);
    if (c->bottle >= 0)
        set_budget(l, LEDGER_SCOPE_BOTTLE, "b1", "claude", c->bottle);
    if (c->agent >= 0)
        set_budget(l, LEDGER_SCOPE_AGENT, "a1", "claude", c->agent);
    /* Budgets of other bottles, agents and providers never apply. */
    set_budget(l, LEDGER_SCOPE_BOTTLE, "other", "claude", 0);
    set_budget(l, LEDGER_SCOPE_AGENT, "other", "claude", 0);
    set_budget(l, LEDGER_SCOPE_GLOBAL, NULL, "codex", 0);
    if (c->already) {
        int64_t id = reserve_ok(l, "b1", "a1", "claude", 0);
        settle_ok(l, id, c->already, 0, true);
    }
    struct ledger_subject who = {"b1", "a1", "claude"};
    struct ledger_denial d;
    memset(&d, 0, sizeof(d));
    struct bottle_err err = {0};
    int64_t id = 0;
    int rc = ledger_reserve(l, &who, c->ask, &id, &d, &err);
    if (rc != c->expect)
        fail_msg("%s: rc %d, want %d (%s)", c->what, rc, c->expect, err.msg);
    if (rc == 0) {
        assert_true(id > 0);
        return;
    }
    if (d.scope != c->scope || d.left_tokens != c->left)
        fail_msg("%s: told %s left %lld, want %s left %lld", c->what, ledger_scope_name(d.scope),
                 (long long)d.left_tokens, ledger_scope_name(c->scope), (long long)c->left);
    assert_string_equal(d.provider, "claude");
    assert_string_equal(d.name, c->scope == LEDGER_SCOPE_GLOBAL   ? ""
                                : c->scope == LEDGER_SCOPE_BOTTLE ? "b1"
                                                                  : "a1");
    assert_int_equal(d.spent_tokens, c->already);
    /* A refusal reserves nothing. */
    assert_int_equal(totals(l, NULL, NULL, NULL, 0).open_reservations, 0);
}

static void test_fit_at_each_scope(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(fit_cases) / sizeof(fit_cases[0]); i++) {
        void *st = NULL;
        setup(&st);
        run_fit_case(((struct fixture *)st)->l, &fit_cases[i]);
        teardown(&st);
    }
}

/* The bottle's own budgets decide; stored budgets of other scopes do not. */
static void test_reserve_in_given_budgets(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_GLOBAL, "", "claude", 10); /* ignored by reserve_in */
    struct ledger_budget mine[] = {{LEDGER_SCOPE_BOTTLE, "b1", "claude", 1000}};
    struct ledger_subject who = {"b1", "a", "claude"};
    struct ledger_denial d;
    struct bottle_err err = {0};
    int64_t id = 0;
    assert_int_equal(ledger_reserve_in(f->l, &who, 600, mine, 1, &id, &d, &err), 0);
    settle_ok(f->l, id, 300, 300, true);
    /* 600 spent of 1000: 500 does not fit, 400 does */
    assert_int_equal(ledger_reserve_in(f->l, &who, 500, mine, 1, &id, &d, &err),
                     LEDGER_DOES_NOT_FIT);
    assert_int_equal(d.scope, LEDGER_SCOPE_BOTTLE);
    assert_string_equal(d.name, "b1");
    assert_int_equal(d.limit_tokens, 1000);
    assert_int_equal(d.spent_tokens, 600);
    assert_int_equal(d.left_tokens, 400);
    assert_int_equal(ledger_reserve_in(f->l, &who, 400, mine, 1, &id, &d, &err), 0);
    /* an agent-wide budget counts the agent's other bottles too */
    struct ledger_budget agent[] = {{LEDGER_SCOPE_AGENT, "a", "claude", 1500}};
    struct ledger_subject other = {"b2", "a", "claude"};
    assert_int_equal(ledger_reserve_in(f->l, &other, 600, agent, 1, &id, &d, &err),
                     LEDGER_DOES_NOT_FIT);
    assert_int_equal(d.spent_tokens, 1000);
    assert_int_equal(ledger_reserve_in(f->l, &other, 500, agent, 1, &id, &d, &err), 0);
    /* no budgets: no check, still recorded as a reservation */
    assert_int_equal(ledger_reserve_in(f->l, &other, 100000, NULL, 0, &id, &d, &err), 0);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_AGENT, "a", "claude"), 101500);
    /* a named scope without a name is refused */
    struct ledger_budget bad[] = {{LEDGER_SCOPE_BOTTLE, "", "claude", 5}};
    assert_true(ledger_reserve_in(f->l, &who, 1, bad, 1, &id, &d, &err) < 0);
}

static void test_kernel_counters_kept(void **state)
{
    struct fixture *f = *state;
    struct bottle_err err = {0};
    char *text = NULL;
    assert_int_equal(ledger_kernel_get(f->l, "gone", &text, &err), -ENOENT);
    assert_null(text);
    assert_int_equal(ledger_kernel_put(f->l, "gone", "a", "{\"tx_bytes\": 1}", &err), 0);
    assert_int_equal(ledger_kernel_put(f->l, "gone", "a", "{\"tx_bytes\": 2}", &err), 0);
    assert_int_equal(ledger_kernel_get(f->l, "gone", &text, &err), 0);
    assert_string_equal(text, "{\"tx_bytes\": 2}"); /* the last write wins */
    free(text);
    assert_true(ledger_kernel_put(f->l, "", "a", "{}", &err) < 0);
}

static void test_budget_update_and_remove(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", 10);
    struct ledger_subject who = {"b1", NULL, "claude"};
    struct ledger_denial d;
    int64_t id;
    struct bottle_err err = {0};
    assert_int_equal(ledger_reserve(f->l, &who, 50, &id, &d, &err), LEDGER_DOES_NOT_FIT);
    set_budget(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", 50); /* replaced, not added */
    assert_int_equal(ledger_reserve(f->l, &who, 50, &id, &d, &err), 0);
    assert_int_equal(ledger_reserve(f->l, &who, 1, &id, &d, &err), LEDGER_DOES_NOT_FIT);
    assert_int_equal(ledger_budget_remove(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", &err), 0);
    assert_int_equal(ledger_reserve(f->l, &who, 1, &id, &d, &err), 0);

    struct ledger_budget bad = {LEDGER_SCOPE_BOTTLE, "", "claude", 5};
    assert_int_equal(ledger_budget_set(f->l, &bad, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "bottle budget needs a name"));
    bad = (struct ledger_budget){LEDGER_SCOPE_GLOBAL, NULL, "claude", -1};
    assert_int_equal(ledger_budget_set(f->l, &bad, &err), -EINVAL);
    assert_int_equal(ledger_reserve(f->l, &who, LEDGER_TOKENS_MAX + 1, &id, &d, &err), -EINVAL);
    assert_int_equal(ledger_reserve(f->l, &who, -1, &id, &d, &err), -EINVAL);
    who.provider = "";
    assert_int_equal(ledger_reserve(f->l, &who, 1, &id, &d, &err), -EINVAL);
}

/* ---- totals ----------------------------------------------------------------------- */

static void record(struct ledger *l, const char *bottle, const char *agent, const char *provider,
                   int64_t in, int64_t out, int64_t at)
{
    struct ledger_record rec = {{bottle, agent, provider}, "model", "rid",
                                {in, out, 0, 0},           true,    at};
    struct bottle_err err = {0};
    if (ledger_record_usage(l, &rec, &err) < 0)
        fail_msg("%s", err.msg);
}

static void test_totals_by_scope(void **state)
{
    struct fixture *f = *state;
    record(f->l, "b1", "claude", "claude", 10, 1, 1000);
    record(f->l, "b1", "claude", "claude", 20, 2, 2000);
    record(f->l, "b2", "claude", "claude", 40, 4, 3000);
    record(f->l, "b2", "codex", "codex", 80, 8, 4000);
    reserve_ok(f->l, "b2", "codex", "codex", 7);

    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.requests, 4);
    assert_int_equal(t.usage.input_tokens, 150);
    assert_int_equal(t.charged_tokens, 165);
    assert_int_equal(t.open_reservations, 1);
    assert_int_equal(t.reserved_tokens, 7);

    assert_int_equal(totals(f->l, "b1", NULL, NULL, 0).charged_tokens, 33);
    assert_int_equal(totals(f->l, "b2", NULL, NULL, 0).charged_tokens, 132);
    assert_int_equal(totals(f->l, NULL, "claude", NULL, 0).charged_tokens, 77);
    assert_int_equal(totals(f->l, NULL, NULL, "codex", 0).charged_tokens, 88);
    assert_int_equal(totals(f->l, NULL, NULL, "codex", 0).reserved_tokens, 7);
    assert_int_equal(totals(f->l, NULL, NULL, "claude", 0).reserved_tokens, 0);
    assert_int_equal(totals(f->l, "b2", "claude", "claude", 0).requests, 1);
    /* since is inclusive */
    t = totals(f->l, NULL, NULL, NULL, 2000);
    assert_int_equal(t.requests, 3);
    assert_int_equal(t.charged_tokens, 22 + 44 + 88);
    assert_int_equal(totals(f->l, "nobody", NULL, NULL, 0).requests, 0);

    assert_int_equal(spent(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude"), 77);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b2", "codex"), 88 + 7);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_AGENT, "claude", "claude"), 77);
}

/* ---- audit ------------------------------------------------------------------------- */

static void test_audit_insert_and_list(void **state)
{
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct ledger_audit a1 = {100, "b1", "cutoff", "cutoff", "budget claude exhausted", "budget"};
    struct ledger_audit a2 = {200, "b2", "freeze", "freeze", "operator request", "operator:root"};
    struct ledger_audit a3 = {0, "b1", "restore", NULL, NULL, "operator:root"};
    int64_t id1, id2, id3;
    assert_int_equal(ledger_audit_add(f->l, &a1, &id1, &err), 0);
    assert_int_equal(ledger_audit_add(f->l, &a2, &id2, &err), 0);
    assert_int_equal(ledger_audit_add(f->l, &a3, &id3, &err), 0);
    assert_true(id1 < id2 && id2 < id3);

    struct ledger_audit_entry *e;
    size_t n;
    assert_int_equal(ledger_audit_list(f->l, NULL, 0, &e, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(e[0].id, id3); /* newest first */
    assert_string_equal(e[0].action, "restore");
    assert_string_equal(e[0].policy, "");
    assert_true(e[0].at >= (int64_t)time(NULL) - 5);
    assert_string_equal(e[2].reason, "budget claude exhausted");
    assert_string_equal(e[2].who, "budget");
    assert_int_equal(e[2].at, 100);
    ledger_audit_free(e, n);

    assert_int_equal(ledger_audit_list(f->l, "b1", 0, &e, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(e[1].action, "cutoff");
    ledger_audit_free(e, n);
    assert_int_equal(ledger_audit_list(f->l, NULL, 1, &e, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].bottle, "b1");
    ledger_audit_free(e, n);

    struct ledger_audit bad = {0};
    assert_int_equal(ledger_audit_add(f->l, &bad, NULL, &err), -EINVAL);
}

/* ---- concurrency ---------------------------------------------------------------------- */

#define WORKERS        8
#define ROUNDS         500
#define TOKENS_PER_REQ 10

/* One worker: its own connection; exit code 0 and the number of refusals written to fd. */
static void worker(const char *path, int index, int wfd)
{
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    if (ledger_open(path, &l, &err) < 0)
        _exit(10);
    char bottle[16];
    snprintf(bottle, sizeof(bottle), "b%d", index % 4);
    struct ledger_subject who = {bottle, "agent", "claude"};
    int refused = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int64_t id;
        struct ledger_denial d;
        int rc = ledger_reserve(l, &who, TOKENS_PER_REQ, &id, &d, &err);
        if (rc == LEDGER_DOES_NOT_FIT) {
            refused++;
            continue;
        }
        if (rc < 0)
            _exit(11);
        struct ledger_record rec = {.model = "m", .complete = true};
        rec.usage.input_tokens = TOKENS_PER_REQ / 2;
        rec.usage.output_tokens = TOKENS_PER_REQ - TOKENS_PER_REQ / 2;
        if (ledger_settle(l, id, &rec, &err) < 0)
            _exit(12);
    }
    ledger_close(l);
    if (write(wfd, &refused, sizeof(refused)) != (ssize_t)sizeof(refused))
        _exit(13);
    _exit(0);
}

/* Runs the workers on f->path (the fixture's connection closed meanwhile); returns refusals. */
static int run_workers(struct fixture *f)
{
    ledger_close(f->l); /* a connection must not cross fork */
    f->l = NULL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[0]);
            worker(f->path, i, fds[1]);
        }
    }
    close(fds[1]);
    int refused = 0;
    for (int i = 0; i < WORKERS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("worker %d: status %d", i, status);
        int r = 0;
        assert_int_equal(read(fds[0], &r, sizeof(r)), (ssize_t)sizeof(r));
        refused += r;
    }
    close(fds[0]);
    struct bottle_err err = {0};
    if (ledger_open(f->path, &f->l, &err) < 0)
        fail_msg("%s", err.msg);
    return refused;
}

static void test_concurrent_writers_exact_totals(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude", (int64_t)WORKERS * ROUNDS * 10);
    assert_int_equal(run_workers(f), 0);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.requests, WORKERS * ROUNDS);
    assert_int_equal(t.charged_tokens, (int64_t)WORKERS * ROUNDS * TOKENS_PER_REQ);
    assert_int_equal(t.usage.input_tokens, (int64_t)WORKERS * ROUNDS * (TOKENS_PER_REQ / 2));
    assert_int_equal(t.open_reservations, 0);
    for (int b = 0; b < 4; b++) {
        char name[16];
        snprintf(name, sizeof(name), "b%d", b);
        assert_int_equal(totals(f->l, name, NULL, NULL, 0).requests, 2 * ROUNDS);
    }
}

static void test_concurrent_writers_never_overshoot(void **state)
{
    struct fixture *f = *state;
    const int64_t limit = (int64_t)WORKERS * ROUNDS * TOKENS_PER_REQ / 4 + 5;
    set_budget(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude", limit);
    int refused = run_workers(f);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    /* Every admitted request was settled at its estimate: exactly limit/10 fit. */
    assert_int_equal(t.charged_tokens, limit / TOKENS_PER_REQ * TOKENS_PER_REQ);
    assert_int_equal(t.requests, limit / TOKENS_PER_REQ);
    assert_int_equal(t.requests + refused, WORKERS * ROUNDS);
    assert_int_equal(t.open_reservations, 0);
}

/* Eight processes creating and migrating a new file at once, then writing to it. */
static void test_concurrent_open_of_new_file(void **state)
{
    struct fixture *f = *state;
    ledger_close(f->l);
    f->l = NULL;
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s%s", f->path, suffixes[i]);
        unlink(p);
        free(p);
    }
    assert_int_equal(run_workers(f), 0);
    struct bottle_err err = {0};
    assert_int_equal(ledger_schema_version(f->l, &err), 2);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.requests, WORKERS * ROUNDS);
    assert_int_equal(t.charged_tokens, (int64_t)WORKERS * ROUNDS * TOKENS_PER_REQ);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_twice_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test(test_open_reports_unusable_path),
        cmocka_unit_test_setup_teardown(test_kernel_counters_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_in_given_budgets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path_uses_bottle_home, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_follow_settings_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reserve_settle_release_arithmetic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_is_charged_the_reservation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_tokens_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_stale, setup, teardown),
        cmocka_unit_test(test_fit_at_each_scope),
        cmocka_unit_test_setup_teardown(test_budget_update_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_totals_by_scope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_insert_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_exact_totals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_never_overshoot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_open_of_new_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
