/*
 * ledger: migrations, budgets and reservations, pools and periods, expiry,
 * totals, audit, and many processes (or hosts) writing one ledger at once.
 * The suite runs twice: on SQLite (a fresh file in a temporary directory
 * per test) and on PostgreSQL (a fresh database per test on a server this
 * binary starts with tests/fixtures/pg.sh and stops at the end).
 */
#include "testutil.h"

#include <libpq-fe.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "ledger/budget.h"
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"

struct fixture {
    char *dir;
    char *path;
    struct ledger *l;
    char *db; /* PostgreSQL: this test's database */
};

static bool on_pg;   /* the group running now */
static char *pg_dir; /* the server's directory (tests/fixtures/pg.sh) */
static int pg_seq;   /* database names */

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static char *pg_url(const char *db)
{
    char *file = xasprintf("%s/port", pg_dir);
    FILE *pf = fopen(file, "r");
    free(file);
    int port = 0;
    if (!pf || fscanf(pf, "%d", &port) != 1)
        fail_msg("no port in %s", pg_dir);
    fclose(pf);
    return xasprintf("postgresql:///%s?host=%s&port=%d&user=bottle", db, pg_dir, port);
}

/* One statement on the server's postgres database (or db); fails the test on error. */
static void pg_admin(const char *db, const char *sql)
{
    char *url = pg_url(db ? db : "postgres");
    PGconn *c = PQconnectdb(url);
    free(url);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("postgres: %s", PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static int pg_scalar(const char *db, const char *sql)
{
    char *url = pg_url(db);
    PGconn *c = PQconnectdb(url);
    free(url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    int v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    if (on_pg) {
        f->db = xasprintf("ledger_%d_%d", (int)getpid(), ++pg_seq);
        char *sql = xasprintf("CREATE DATABASE %s", f->db);
        pg_admin(NULL, sql);
        free(sql);
        f->path = pg_url(f->db);
    } else {
        f->path = xasprintf("%s/sub/bottle.db", f->dir);
    }
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
    if (f->db) {
        char *sql = xasprintf("DROP DATABASE %s WITH (FORCE)", f->db);
        pg_admin(NULL, sql);
        free(sql);
        free(f->db);
    }
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
    char host[16];
    snprintf(host, sizeof(host), "h%d", index);
    setenv("BOTTLE_HOST", host, 1); /* each worker a host of its own */
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
    assert_int_equal(ledger_schema_version(f->l, &err), 3);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.requests, WORKERS * ROUNDS);
    assert_int_equal(t.charged_tokens, (int64_t)WORKERS * ROUNDS * TOKENS_PER_REQ);
}

/* ---- pools, hosts and periods (both stores) ------------------------------------------ */

static void run_start(struct ledger *l, const char *bottle, const char *pool)
{
    struct bottle_err err = {0};
    if (ledger_run_start(l, bottle, "agent", pool, &err) < 0)
        fail_msg("%s", err.msg);
}

/* Bottles of one pool share its limit whatever else they are given; others do not count. */
static void test_pool_shared_budget(void **state)
{
    struct fixture *f = *state;
    run_start(f->l, "b1", "team");
    run_start(f->l, "b2", "team");
    run_start(f->l, "b3", "");
    set_budget(f->l, LEDGER_SCOPE_POOL, "team", "claude", 1000);
    struct ledger_budget own[] = {{LEDGER_SCOPE_BOTTLE, "b1", "claude", 100000}};
    struct ledger_budget own2[] = {{LEDGER_SCOPE_BOTTLE, "b2", "claude", 100000}};
    struct ledger_subject w1 = {"b1", "agent", "claude"}, w2 = {"b2", "agent", "claude"};
    struct ledger_subject w3 = {"b3", "agent", "claude"};
    struct ledger_denial d;
    struct bottle_err err = {0};
    int64_t id1, id2, id3;
    assert_int_equal(ledger_reserve_in(f->l, &w1, 600, own, 1, &id1, &d, &err), 0);
    assert_int_equal(ledger_reserve_in(f->l, &w2, 500, own2, 1, &id2, &d, &err),
                     LEDGER_DOES_NOT_FIT);
    assert_int_equal(d.scope, LEDGER_SCOPE_POOL);
    assert_string_equal(d.name, "team");
    assert_int_equal(d.left_tokens, 400);
    assert_int_equal(d.period, LEDGER_PERIOD_TOTAL);
    assert_int_equal(ledger_reserve_in(f->l, &w2, 400, own2, 1, &id2, &d, &err), 0);
    /* outside the pool: only its own budgets */
    assert_int_equal(ledger_reserve_in(f->l, &w3, 5000, NULL, 0, &id3, &d, &err), 0);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_POOL, "team", "claude"), 1000);
    /* the stored budgets path applies the pool too */
    assert_int_equal(ledger_reserve(f->l, &w1, 1, &id3, &d, &err), LEDGER_DOES_NOT_FIT);
    assert_int_equal(d.scope, LEDGER_SCOPE_POOL);
    /* real usage below the estimate frees the pool for the other bottle */
    settle_ok(f->l, id1, 50, 50, true);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_POOL, "team", "claude"), 500);
    assert_int_equal(ledger_reserve_in(f->l, &w2, 500, own2, 1, &id2, &d, &err), 0);
    /* usage by pool and by host, as the reports read it */
    struct ledger_group_row *g;
    size_t n;
    assert_int_equal(ledger_usage_groups(f->l, LEDGER_BY_POOL, 0, &g, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(g[0].key, "");
    assert_int_equal(g[0].reserved_tokens, 5000);
    assert_string_equal(g[1].key, "team");
    assert_int_equal(g[1].requests, 1);
    assert_int_equal(g[1].charged_tokens, 100);
    assert_int_equal(g[1].reserved_tokens, 900);
    ledger_group_rows_free(g, n);
    assert_int_equal(ledger_usage_groups(f->l, LEDGER_BY_HOST, 0, &g, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(g[0].key, ledger_host(f->l));
    ledger_group_rows_free(g, n);
    struct ledger_budget_row *pools;
    assert_int_equal(ledger_budgets_list(f->l, LEDGER_SCOPE_POOL, &pools, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(pools[0].name, "team");
    assert_int_equal(pools[0].limit_tokens, 1000);
    ledger_budgets_free(pools, n);
}

static void test_period_starts(void **state)
{
    (void)state;
    const int64_t t = 1773578096; /* 2026-03-15 12:34:56 UTC */
    assert_int_equal(ledger_period_start(LEDGER_PERIOD_DAY, t), 1773532800);
    assert_int_equal(ledger_period_start(LEDGER_PERIOD_MONTH, t), 1772323200);
    assert_int_equal(ledger_period_start(LEDGER_PERIOD_TOTAL, t), 0);
    assert_int_equal(ledger_period_start(LEDGER_PERIOD_DAY, 1772323200), 1772323200);
    enum ledger_period p;
    assert_int_equal(ledger_period_parse("month", &p), 0);
    assert_int_equal(p, LEDGER_PERIOD_MONTH);
    assert_int_equal(ledger_period_parse("week", &p), -EINVAL);
}

/* A daily budget counts today's usage only; open reservations count whenever they began. */
static void test_periods_reset_spending(void **state)
{
    struct fixture *f = *state;
    int64_t now = (int64_t)time(NULL);
    int64_t today = ledger_period_start(LEDGER_PERIOD_DAY, now);
    record(f->l, "b1", "a1", "claude", 700, 0, today - 3600); /* yesterday */
    record(f->l, "b1", "a1", "claude", 30, 0, today);
    reserve_ok(f->l, "b1", "a1", "claude", 20);
    set_budget(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude", 100);
    struct ledger_subject who = {"b1", "a1", "claude"};
    struct ledger_denial d;
    struct bottle_err err = {0};
    int64_t id;
    /* total: 750 spent, nothing fits */
    assert_int_equal(ledger_reserve(f->l, &who, 1, &id, &d, &err), LEDGER_DOES_NOT_FIT);
    assert_int_equal(d.period, LEDGER_PERIOD_TOTAL);
    assert_int_equal(
        ledger_period_set(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude", LEDGER_PERIOD_DAY, &err), 0);
    enum ledger_period p;
    assert_int_equal(ledger_period_get(f->l, LEDGER_SCOPE_GLOBAL, "", "claude", &p, &err), 0);
    assert_int_equal(p, LEDGER_PERIOD_DAY);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_GLOBAL, NULL, "claude"), 50);
    assert_int_equal(ledger_reserve(f->l, &who, 51, &id, &d, &err), LEDGER_DOES_NOT_FIT);
    assert_int_equal(d.period, LEDGER_PERIOD_DAY);
    assert_int_equal(d.left_tokens, 50);
    assert_int_equal(ledger_reserve(f->l, &who, 50, &id, &d, &err), 0);
    /* other scopes keep their own period: the bottle's is still total */
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 800);
    assert_int_equal(
        ledger_period_set(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", LEDGER_PERIOD_MONTH, &err), 0);
    int64_t month = ledger_period_start(LEDGER_PERIOD_MONTH, now);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"),
                     (today - 3600 >= month ? 700 : 0) + 100);
    assert_int_equal(ledger_period_set(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", 9, &err),
                     -EINVAL);
}

/* The rule for a dead sidecar's reservation: charged at its size, replaced by a late settle. */
static void test_expire_charges_then_late_settle_replaces(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", 1000);
    int64_t a = reserve_ok(f->l, "b1", "a1", "claude", 500);
    int64_t b = reserve_ok(f->l, "b1", "a1", "claude", 200);
    settle_ok(f->l, b, 10, 10, true);
    struct bottle_err err = {0};
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(ledger_expire_stale(f->l, now - 60, &err), 0); /* too young */
    assert_int_equal(ledger_expire_stale(f->l, now + 2, &err), 1);  /* only the open one */
    struct ledger_totals t = totals(f->l, "b1", NULL, NULL, 0);
    assert_int_equal(t.open_reservations, 0);
    assert_int_equal(t.requests, 2);
    assert_int_equal(t.expired, 1);
    assert_int_equal(t.incomplete, 1);
    assert_int_equal(t.charged_tokens, 520);
    /* what counts against the budget did not change */
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 520);
    /* the sidecar was alive after all: its usage replaces the charge, once */
    settle_ok(f->l, a, 40, 60, true);
    t = totals(f->l, "b1", NULL, NULL, 0);
    assert_int_equal(t.requests, 2);
    assert_int_equal(t.expired, 0);
    assert_int_equal(t.incomplete, 0);
    assert_int_equal(t.charged_tokens, 120);
    struct ledger_record rec = {.complete = true};
    rec.usage.output_tokens = 7;
    assert_int_equal(ledger_settle(f->l, a, &rec, &err), -EALREADY);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 120);
    assert_int_equal(ledger_expire_stale(f->l, now + 2, &err), 0);
}

/* Eight clients, each its own host, reserving against one pool: exactly the limit is admitted. */
static void test_concurrent_hosts_share_a_pool(void **state)
{
    struct fixture *f = *state;
    for (int b = 0; b < 4; b++) {
        char name[16];
        snprintf(name, sizeof(name), "b%d", b);
        run_start(f->l, name, "team");
    }
    const int64_t limit = (int64_t)WORKERS * ROUNDS * TOKENS_PER_REQ / 3 + 7;
    set_budget(f->l, LEDGER_SCOPE_POOL, "team", "claude", limit);
    int refused = run_workers(f);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.charged_tokens, limit / TOKENS_PER_REQ * TOKENS_PER_REQ);
    assert_int_equal(t.requests + refused, WORKERS * ROUNDS);
    assert_int_equal(t.open_reservations, 0);
    struct ledger_group_row *g;
    size_t n;
    struct bottle_err err = {0};
    assert_int_equal(ledger_usage_groups(f->l, LEDGER_BY_HOST, 0, &g, &n, &err), 0);
    assert_int_equal(n, WORKERS);
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += g[i].charged_tokens;
    assert_int_equal(sum, t.charged_tokens);
    ledger_group_rows_free(g, n);
}

static void test_url_password_refused(void **state)
{
    (void)state;
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    assert_int_equal(ledger_open("postgresql://bottle:secret@127.0.0.1:1/db", &l, &err), -EINVAL);
    assert_null(l);
    assert_non_null(strstr(err.msg, "PGPASSWORD"));
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(ledger_check_locator("postgres://h/db?sslmode=require&password=x", &err),
                     -EINVAL);
    assert_int_equal(ledger_check_locator("postgresql://bottle@db.example:5432/ledger", &err), 0);
    assert_int_equal(ledger_check_locator("/var/lib/bottle/x:y@z.db", &err), 0);
    assert_true(ledger_is_url("postgres://h/db"));
    assert_false(ledger_is_url("/tmp/postgresql://x"));
}

/* ---- PostgreSQL only ---------------------------------------------------------------- */

static void pg_cmd(const char *verb)
{
    const char *src = getenv("BOTTLE_SRC");
    char *cmd =
        xasprintf("sh %s/tests/fixtures/pg.sh %s %s >/dev/null", src ? src : ".", verb, pg_dir);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
    free(cmd);
}

static void test_pg_schema_once(void **state)
{
    struct fixture *f = *state;
    struct bottle_err err = {0};
    assert_int_equal(ledger_schema_version(f->l, &err), 3);
    assert_string_equal(ledger_store_name(f->l), "postgresql");
    ledger_close(f->l);
    f->l = NULL;
    assert_int_equal(ledger_open(f->path, &f->l, &err), 0);
    assert_int_equal(pg_scalar(f->db, "SELECT COUNT(*) FROM schema_version"), 3);
    assert_int_equal(pg_scalar(f->db, "SELECT COUNT(DISTINCT version) FROM schema_version"), 3);
    /* the same logical schema as SQLite's: the tables the documentation names */
    assert_int_equal(pg_scalar(f->db, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                      "table_schema='public' AND table_name IN ('usage', "
                                      "'reservation', 'budget', 'audit', 'kernel_final', "
                                      "'counter_period', 'bottle_run', 'budget_lock')"),
                     8);
    pg_admin(f->db, "INSERT INTO schema_version VALUES(999, 0)");
    struct ledger *l2 = NULL;
    assert_true(ledger_open(f->path, &l2, &err) < 0);
    assert_null(l2);
    assert_non_null(strstr(err.msg, "schema version 999 is newer"));
}

/* A COMMIT whose answer never arrives is retried without a second charge. */
static void test_pg_lost_replies_charge_once(void **state)
{
    struct fixture *f = *state;
    set_budget(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude", 1000);
    store_pg_lose_commit_replies(f->l->st, 1);
    int64_t a = reserve_ok(f->l, "b1", "a1", "claude", 300);
    assert_int_equal(totals(f->l, NULL, NULL, NULL, 0).open_reservations, 1);
    store_pg_lose_commit_replies(f->l->st, 1);
    settle_ok(f->l, a, 100, 20, true);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.requests, 1);
    assert_int_equal(t.charged_tokens, 120);
    int64_t b = reserve_ok(f->l, "b1", "a1", "claude", 50);
    store_pg_lose_commit_replies(f->l->st, 1);
    struct bottle_err err = {0};
    assert_int_equal(ledger_release(f->l, b, &err), 0);
    assert_int_equal(spent(f->l, LEDGER_SCOPE_BOTTLE, "b1", "claude"), 120);
    assert_int_equal(pg_scalar(f->db, "SELECT COUNT(*) FROM reservation"), 2);
}

/* The server stopped: calls fail fast with -ENOTCONN; after a restart they work, once each. */
static void test_pg_server_away(void **state)
{
    struct fixture *f = *state;
    int64_t a = reserve_ok(f->l, "b1", "a1", "claude", 300);
    pg_cmd("stop");
    struct ledger_subject who = {"b1", "a1", "claude"};
    struct ledger_denial d;
    struct bottle_err err = {0};
    int64_t id = 0;
    int rc = ledger_reserve(f->l, &who, 10, &id, &d, &err);
    assert_int_equal(rc, -ENOTCONN);
    assert_true(ledger_unreachable(rc));
    assert_non_null(strstr(err.msg, "unreachable"));
    struct ledger_record rec = {.model = "m", .complete = true};
    rec.usage.input_tokens = 70;
    assert_int_equal(ledger_settle(f->l, a, &rec, &err), -ENOTCONN);
    assert_non_null(strstr(err.msg, "next attempt"));
    /* opening while it is away: an error, unless asked to wait for it */
    struct ledger *l2 = NULL, *l3 = NULL;
    assert_int_equal(ledger_open(f->path, &l2, &err), -ENOTCONN);
    assert_int_equal(ledger_open_flags(f->path, LEDGER_OPEN_RETRY, &l3, &err), 0);
    assert_int_equal(ledger_reserve(l3, &who, 10, &id, &d, &err), -ENOTCONN);
    pg_cmd("resume");
    for (int i = 0; i < 200 && (rc = ledger_settle(f->l, a, &rec, &err)) == -ENOTCONN; i++)
        clock_sleep_ms(50);
    assert_int_equal(rc, 0);
    assert_int_equal(ledger_settle(f->l, a, &rec, &err), -EALREADY);
    for (int i = 0; i < 200 && (rc = ledger_reserve(l3, &who, 10, &id, &d, &err)) == -ENOTCONN; i++)
        clock_sleep_ms(50);
    assert_int_equal(rc, 0);
    ledger_close(l3);
    struct ledger_totals t = totals(f->l, NULL, NULL, NULL, 0);
    assert_int_equal(t.requests, 1);
    assert_int_equal(t.charged_tokens, 70);
    assert_int_equal(t.open_reservations, 1);
}

/* The server went away and came back between two calls: the connection is made again at once. */
static void test_pg_reconnects_after_restart(void **state)
{
    struct fixture *f = *state;
    reserve_ok(f->l, "b1", "a1", "claude", 1);
    pg_cmd("stop");
    pg_cmd("resume");
    reserve_ok(f->l, "b1", "a1", "claude", 2);
    assert_int_equal(totals(f->l, NULL, NULL, NULL, 0).reserved_tokens, 3);
}

static void test_pg_concurrent_open_of_new_database(void **state)
{
    struct fixture *f = *state;
    char *sql = xasprintf("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    ledger_close(f->l);
    f->l = NULL;
    pg_admin(f->db, sql);
    free(sql);
    assert_int_equal(run_workers(f), 0);
    struct bottle_err err = {0};
    assert_int_equal(ledger_schema_version(f->l, &err), 3);
    assert_int_equal(totals(f->l, NULL, NULL, NULL, 0).requests, WORKERS * ROUNDS);
}

/*
 * Over TCP the server wants the password: from PGPASSWORD or a password file, never the URL,
 * and kept for reconnects after the variable or file is gone (as after the sidecar's uid drop).
 */
static void test_pg_password_from_host(void **state)
{
    struct fixture *f = *state;
    char *file = xasprintf("%s/port", pg_dir);
    FILE *pf = fopen(file, "r");
    int port = 0;
    assert_non_null(pf);
    assert_int_equal(fscanf(pf, "%d", &port), 1);
    fclose(pf);
    free(file);
    file = xasprintf("%s/password", pg_dir);
    pf = fopen(file, "r");
    char pw[64] = "";
    assert_non_null(pf);
    assert_non_null(fgets(pw, sizeof(pw), pf));
    fclose(pf);
    free(file);
    pw[strcspn(pw, "\n")] = '\0';
    char *url = xasprintf("postgresql://bottle@127.0.0.1:%d/%s", port, f->db);
    char *passfile = xasprintf("%s/pgpass", f->dir);
    setenv("PGPASSFILE", passfile, 1); /* none there yet */
    unsetenv("PGPASSWORD");
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    assert_true(ledger_open(url, &l, &err) < 0);
    assert_non_null(strstr(err.msg, "password"));
    setenv("PGPASSWORD", pw, 1);
    assert_int_equal(ledger_open(url, &l, &err), 0);
    unsetenv("PGPASSWORD");
    reserve_ok(l, "b1", "a1", "claude", 5);
    pg_cmd("stop");
    pg_cmd("resume");
    reserve_ok(l, "b1", "a1", "claude", 6); /* reconnected with the password it had */
    ledger_close(l);
    char *line = xasprintf("127.0.0.1:%d:%s:bottle:%s\n", port, f->db, pw);
    testutil_write(passfile, line);
    chmod(passfile, 0600);
    assert_int_equal(ledger_open(url, &l, &err), 0);
    assert_int_equal(totals(l, NULL, NULL, NULL, 0).reserved_tokens, 11);
    ledger_close(l);
    unsetenv("PGPASSFILE");
    free(line);
    free(passfile);
    free(url);
}

/* No server to start: the PostgreSQL group is skipped, or failed under CI. */
static void test_pg_server_missing(void **state)
{
    (void)state;
    if (testutil_ci())
        fail_msg("no PostgreSQL server could be started (scripts/setup installs postgresql)");
    skip();
}

/* A binary that dies half way does not leave its server running. */
static void stop_pg_at_exit(void)
{
    if (!pg_dir)
        return;
    const char *src = getenv("BOTTLE_SRC");
    char *cmd =
        xasprintf("sh %s/tests/fixtures/pg.sh destroy %s >/dev/null 2>&1", src ? src : ".", pg_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not stop the server in %s\n", pg_dir);
    free(cmd);
}

static bool start_pg(void)
{
    const char *src = getenv("BOTTLE_SRC");
    char *cmd = xasprintf("sh %s/tests/fixtures/pg.sh start", src ? src : ".");
    FILE *p = popen(cmd, "r");
    free(cmd);
    char line[512] = "";
    if (!p)
        return false;
    bool got = fgets(line, sizeof(line), p) != NULL;
    if (pclose(p) != 0 || !got)
        return false;
    line[strcspn(line, " \n")] = '\0';
    pg_dir = xstrdup(line);
    atexit(stop_pg_at_exit);
    return true;
}

#define BOTH_STORES                                                                                \
    cmocka_unit_test_setup_teardown(test_kernel_counters_kept, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(test_reserve_in_given_budgets, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_reserve_settle_release_arithmetic, setup, teardown),  \
        cmocka_unit_test_setup_teardown(test_incomplete_is_charged_the_reservation, setup,         \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_cache_tokens_count, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_release_stale, setup, teardown),                      \
        cmocka_unit_test(test_fit_at_each_scope),                                                  \
        cmocka_unit_test_setup_teardown(test_budget_update_and_remove, setup, teardown),           \
        cmocka_unit_test_setup_teardown(test_totals_by_scope, setup, teardown),                    \
        cmocka_unit_test_setup_teardown(test_audit_insert_and_list, setup, teardown),              \
        cmocka_unit_test_setup_teardown(test_pool_shared_budget, setup, teardown),                 \
        cmocka_unit_test_setup_teardown(test_periods_reset_spending, setup, teardown),             \
        cmocka_unit_test_setup_teardown(test_expire_charges_then_late_settle_replaces, setup,      \
                                        teardown),                                                 \
        cmocka_unit_test_setup_teardown(test_concurrent_writers_exact_totals, setup, teardown),    \
        cmocka_unit_test_setup_teardown(test_concurrent_writers_never_overshoot, setup, teardown), \
        cmocka_unit_test_setup_teardown(test_concurrent_hosts_share_a_pool, setup, teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        cmocka_unit_test_setup_teardown(test_open_twice_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_is_refused, setup, teardown),
        cmocka_unit_test(test_open_reports_unusable_path),
        cmocka_unit_test_setup_teardown(test_default_path_uses_bottle_home, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_follow_settings_ledger, setup, teardown),
        cmocka_unit_test(test_url_password_refused),
        cmocka_unit_test(test_period_starts),
        BOTH_STORES,
        cmocka_unit_test_setup_teardown(test_concurrent_open_of_new_file, setup, teardown),
    };
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup_teardown(test_pg_schema_once, setup, teardown),
        BOTH_STORES,
        cmocka_unit_test_setup_teardown(test_pg_lost_replies_charge_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_server_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnects_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_password_from_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_concurrent_open_of_new_database, setup, teardown),
    };
    const struct CMUnitTest pg_missing[] = {cmocka_unit_test(test_pg_server_missing)};
    int failed = cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);
    on_pg = true;
    if (!start_pg())
        return failed + cmocka_run_group_tests_name("postgresql", pg_missing, NULL, NULL);
    failed += cmocka_run_group_tests_name("postgresql", pg_tests, NULL, NULL);
    return failed;
}
