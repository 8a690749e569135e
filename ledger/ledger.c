/*
 * ledger — see ledger.h.
 *
 * Concurrency: every write runs in BEGIN IMMEDIATE, which takes the write
 * lock up front, so a transaction never has to upgrade a read lock (the
 * case SQLite answers with an immediate SQLITE_BUSY). Waiting for the lock
 * is our busy handler's job: jittered exponential backoff from 50 us to
 * 5 ms, so eight writers on two cores take turns quickly instead of
 * sleeping in SQLite's default steps of up to 100 ms. Anything that still
 * comes back BUSY or LOCKED rolls back and reruns the whole transaction
 * until the deadline; only then does the caller get -EBUSY.
 *
 * WAL with synchronous=NORMAL: a committed transaction survives a crash of
 * the process; a power loss may lose the last few. Usage is accounting, not
 * money, and a sidecar commits several times per request.
 */
#include "ledger/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/home.h"

#define LEDGER_SCHEMA_VERSION 2
#define BACKOFF_MIN_US        50
#define BACKOFF_MAX_US        5000

enum stmt_id {
    ST_SPENT_GLOBAL,
    ST_SPENT_BOTTLE,
    ST_SPENT_AGENT,
    ST_BUDGETS_FOR,
    ST_RESERVE,
    ST_RES_GET,
    ST_RES_CLOSE,
    ST_RELEASE,
    ST_RELEASE_STALE,
    ST_USAGE_INSERT,
    ST_BUDGET_SET,
    ST_BUDGET_REMOVE,
    ST_TOTALS,
    ST_TOTALS_OPEN,
    ST_AUDIT_INSERT,
    ST_AUDIT_LIST,
    ST_VERSION,
    ST_COUNT
};

#define USAGE_SUM(where)                                                                           \
    "SELECT (SELECT COALESCE(SUM(charged_tokens),0) FROM usage WHERE " where ") + "                \
    "(SELECT COALESCE(SUM(tokens),0) FROM reservation WHERE state='open' AND " where ")"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_SPENT_GLOBAL] = USAGE_SUM("provider=?1"),
    [ST_SPENT_BOTTLE] = USAGE_SUM("provider=?1 AND bottle=?2"),
    [ST_SPENT_AGENT] = USAGE_SUM("provider=?1 AND agent=?2"),
    [ST_BUDGETS_FOR] = "SELECT scope, name, limit_tokens FROM budget WHERE provider=?1 AND "
                       "(scope=0 OR (scope=1 AND name=?2) OR (scope=2 AND name=?3)) "
                       "ORDER BY scope DESC",
    [ST_RESERVE] = "INSERT INTO reservation(created_at, bottle, agent, provider, tokens, state, "
                   "pid) VALUES(?1, ?2, ?3, ?4, ?5, 'open', ?6)",
    [ST_RES_GET] = "SELECT state, tokens, bottle, agent, provider FROM reservation WHERE id=?1",
    [ST_RES_CLOSE] = "UPDATE reservation SET state=?2, closed_at=?3 WHERE id=?1",
    [ST_RELEASE] = "UPDATE reservation SET state='released', closed_at=?2 "
                   "WHERE id=?1 AND state='open'",
    [ST_RELEASE_STALE] = "UPDATE reservation SET state='released', closed_at=?2 "
                         "WHERE state='open' AND created_at < ?1",
    [ST_USAGE_INSERT] = "INSERT INTO usage(at, bottle, agent, provider, model, request_id, "
                        "input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, "
                        "charged_tokens, complete, reservation_id) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [ST_BUDGET_SET] = "INSERT INTO budget(scope, name, provider, limit_tokens, updated_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, name, provider) "
                      "DO UPDATE SET limit_tokens=excluded.limit_tokens, "
                      "updated_at=excluded.updated_at",
    [ST_BUDGET_REMOVE] = "DELETE FROM budget WHERE scope=?1 AND name=?2 AND provider=?3",
    [ST_TOTALS] = "SELECT COUNT(*), COALESCE(SUM(complete=0),0), COALESCE(SUM(input_tokens),0), "
                  "COALESCE(SUM(output_tokens),0), COALESCE(SUM(cache_creation_tokens),0), "
                  "COALESCE(SUM(cache_read_tokens),0), COALESCE(SUM(charged_tokens),0) "
                  "FROM usage WHERE (?1 IS NULL OR bottle=?1) AND (?2 IS NULL OR agent=?2) "
                  "AND (?3 IS NULL OR provider=?3) AND at >= ?4",
    [ST_TOTALS_OPEN] = "SELECT COUNT(*), COALESCE(SUM(tokens),0) FROM reservation "
                       "WHERE state='open' AND (?1 IS NULL OR bottle=?1) "
                       "AND (?2 IS NULL OR agent=?2) AND (?3 IS NULL OR provider=?3)",
    [ST_AUDIT_INSERT] = "INSERT INTO audit(at, bottle, action, policy, reason, who) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_AUDIT_LIST] = "SELECT id, at, bottle, action, policy, reason, who FROM audit "
                      "WHERE (?1 IS NULL OR bottle=?1) ORDER BY id DESC LIMIT ?2",
    [ST_VERSION] = "SELECT COALESCE(MAX(version),0) FROM schema_version",
};

/* Migration n brings the schema from version n-1 to n. Append only. */
static const char *const migrations[LEDGER_SCHEMA_VERSION] = {
    "CREATE TABLE usage ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " bottle TEXT NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,"
    " model TEXT NOT NULL, request_id TEXT NOT NULL,"
    " input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
    " cache_creation_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,"
    " charged_tokens INTEGER NOT NULL CHECK (charged_tokens >= 0),"
    " complete INTEGER NOT NULL,"
    " reservation_id INTEGER UNIQUE REFERENCES reservation(id));"
    "CREATE INDEX usage_by_bottle ON usage(provider, bottle, charged_tokens);"
    "CREATE INDEX usage_by_agent ON usage(provider, agent, charged_tokens);"
    "CREATE INDEX usage_by_time ON usage(at);"
    "CREATE TABLE reservation ("
    " id INTEGER PRIMARY KEY,"
    " created_at INTEGER NOT NULL, closed_at INTEGER,"
    " bottle TEXT NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,"
    " tokens INTEGER NOT NULL CHECK (tokens >= 0),"
    " state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')),"
    " pid INTEGER NOT NULL);"
    "CREATE INDEX reservation_open_bottle ON reservation(provider, bottle) WHERE state='open';"
    "CREATE INDEX reservation_open_agent ON reservation(provider, agent) WHERE state='open';"
    "CREATE INDEX reservation_open_age ON reservation(created_at) WHERE state='open';"
    "CREATE TABLE budget ("
    " scope INTEGER NOT NULL CHECK (scope IN (0, 1, 2)),"
    " name TEXT NOT NULL, provider TEXT NOT NULL,"
    " limit_tokens INTEGER NOT NULL CHECK (limit_tokens >= 0),"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (scope, name, provider));"
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " bottle TEXT NOT NULL, action TEXT NOT NULL, policy TEXT NOT NULL,"
    " reason TEXT NOT NULL, who TEXT NOT NULL);"
    "CREATE INDEX audit_by_bottle ON audit(bottle, id);",
    "CREATE TABLE kernel_final ("
    " bottle TEXT PRIMARY KEY,"
    " agent TEXT NOT NULL,"
    " at INTEGER NOT NULL,"
    " counters TEXT NOT NULL);",
};

struct ledger {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmts[ST_COUNT];
    uint64_t rng;              /* backoff jitter */
    struct timespec busy_from; /* when the current wait began */
};

/* ---- errors, time, backoff ----------------------------------------------- */

static bool is_busy(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

static int db_fail(struct ledger *l, int rc, struct bottle_err *err, const char *what)
{
    if (is_busy(rc))
        return err_set(err, EBUSY, "ledger: %s: %s: database stayed busy for %d ms", l->path, what,
                       LEDGER_BUSY_TIMEOUT_MS);
    return err_set(err, EIO, "ledger: %s: %s: %s", l->path, what, sqlite3_errmsg(l->db));
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static uint64_t next_random(struct ledger *l)
{
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return l->rng;
}

static void backoff_sleep(struct ledger *l, int attempt)
{
    unsigned cap = BACKOFF_MIN_US << (attempt < 7 ? attempt : 7);
    if (cap > BACKOFF_MAX_US)
        cap = BACKOFF_MAX_US;
    unsigned us = cap / 2 + (unsigned)(next_random(l) % (cap / 2 + 1));
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* SQLite's busy handler: keep waiting, with backoff, until the timeout. */
static int busy_handler(void *arg, int count)
{
    struct ledger *l = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (count == 0)
        l->busy_from = now;
    int64_t waited =
        (now.tv_sec - l->busy_from.tv_sec) * 1000 + (now.tv_nsec - l->busy_from.tv_nsec) / 1000000;
    if (waited >= LEDGER_BUSY_TIMEOUT_MS)
        return 0;
    backoff_sleep(l, count);
    return 1;
}

/* ---- statements ------------------------------------------------------------ */

static int stmt_get(struct ledger *l, enum stmt_id id, sqlite3_stmt **out, struct bottle_err *err)
{
    if (!l->stmts[id]) {
        int rc = sqlite3_prepare_v3(l->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &l->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return is_busy(rc) ? -EAGAIN : db_fail(l, rc, err, "prepare");
    }
    sqlite3_reset(l->stmts[id]);
    sqlite3_clear_bindings(l->stmts[id]);
    *out = l->stmts[id];
    return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

/* Like bind_text, but NULL stays NULL (a filter that matches everything). */
static void bind_filter(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* One step: SQLITE_ROW/SQLITE_DONE, -EAGAIN when busy (the transaction reruns), or an error. */
static int step(struct ledger *l, sqlite3_stmt *s, struct bottle_err *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc;
    sqlite3_reset(s);
    return is_busy(rc) ? -EAGAIN : db_fail(l, rc, err, "query");
}

static int exec_sql(struct ledger *l, const char *sql, struct bottle_err *err)
{
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    return is_busy(rc) ? -EAGAIN : db_fail(l, rc, err, sql);
}

/* ---- transactions ---------------------------------------------------------- */

typedef int (*tx_body)(struct ledger *l, void *arg, struct bottle_err *err);

/* A COMMIT that meets a busy database keeps the transaction open: try again, then give up. */
static int commit(struct ledger *l, int64_t deadline, struct bottle_err *err)
{
    int rc;
    for (int attempt = 0; (rc = exec_sql(l, "COMMIT", err)) == -EAGAIN; attempt++) {
        if (clock_mono_ms() >= deadline) {
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
            return db_fail(l, SQLITE_BUSY, err, "commit");
        }
        backoff_sleep(l, attempt);
    }
    if (rc < 0)
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/*
 * Runs body in a transaction (BEGIN IMMEDIATE when it writes) and commits. body returns >= 0
 * (committed and passed on), -EAGAIN (busy: everything reruns after a backoff) or another negative
 * error (rolled back).
 */
static int run_tx_mode(struct ledger *l, bool write, tx_body body, void *arg,
                       struct bottle_err *err)
{
    int64_t deadline = clock_mono_ms() + LEDGER_BUSY_TIMEOUT_MS;
    for (int attempt = 0;; attempt++) {
        int rc = exec_sql(l, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
        if (rc == 0) {
            rc = body(l, arg, err);
            if (rc >= 0) {
                int crc = commit(l, deadline, err);
                return crc < 0 ? crc : rc;
            }
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (rc != -EAGAIN)
            return rc;
        if (clock_mono_ms() >= deadline)
            return db_fail(l, SQLITE_BUSY, err, "transaction");
        backoff_sleep(l, attempt);
    }
}

static int run_tx(struct ledger *l, tx_body body, void *arg, struct bottle_err *err)
{
    return run_tx_mode(l, true, body, arg, err);
}

/* Reads: a deferred transaction sees one snapshot and, under WAL, waits for no writer. */
static int run_read(struct ledger *l, tx_body body, void *arg, struct bottle_err *err)
{
    return run_tx_mode(l, false, body, arg, err);
}

/* ---- open and migrate ------------------------------------------------------ */

static int migrate_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    (void)arg;
    int rc = exec_sql(l,
                      "CREATE TABLE IF NOT EXISTS schema_version ("
                      " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                      err);
    sqlite3_stmt *s;
    if (rc < 0 || (rc = stmt_get(l, ST_VERSION, &s, err)) < 0)
        return rc;
    if ((rc = step(l, s, err)) < 0)
        return rc;
    int version = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    if (version < 0 || version > LEDGER_SCHEMA_VERSION)
        return err_set(err, EPROTO, "ledger: %s: schema version %d is newer than this bottle (%d)",
                       l->path, version, LEDGER_SCHEMA_VERSION);
    for (int v = version; v < LEDGER_SCHEMA_VERSION; v++) {
        if ((rc = exec_sql(l, migrations[v], err)) < 0)
            return rc;
        char *ins = xasprintf("INSERT INTO schema_version(version, applied_at) VALUES(%d, %lld)",
                              v + 1, (long long)now_s());
        rc = exec_sql(l, ins, err);
        free(ins);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* journal_mode=WAL needs a moment alone with the file; wait for it like a transaction. */
static int enable_wal(struct ledger *l, struct bottle_err *err)
{
    int64_t deadline = clock_mono_ms() + LEDGER_BUSY_TIMEOUT_MS;
    for (int attempt = 0;; attempt++) {
        int rc = exec_sql(l, "PRAGMA journal_mode=WAL", err);
        if (rc != -EAGAIN)
            return rc < 0 ? rc : exec_sql(l, "PRAGMA synchronous=NORMAL", err);
        if (clock_mono_ms() >= deadline)
            return db_fail(l, SQLITE_BUSY, err, "journal_mode=WAL");
        backoff_sleep(l, attempt);
    }
}

static int create_file(const char *path, struct bottle_err *err)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        rc = fs_mkdir_p(dir, 0700, err);
    }
    free(dir);
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, errno, "ledger: cannot create %s: %s", path, strerror(errno));
    close(fd);
    return 0;
}

int ledger_default_path(char **out, struct bottle_err *err)
{
    char *home = NULL;
    int rc = home_path(&home, err);
    if (rc < 0)
        return rc;
    *out = fs_join(home, LEDGER_FILE);
    free(home);
    return 0;
}

static int open_db(struct ledger *l, struct bottle_err *err)
{
    int rc = sqlite3_open_v2(l->path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return err_set(err, EIO, "ledger: cannot open %s: %s", l->path,
                       l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(l->db, 1);
    sqlite3_busy_handler(l->db, busy_handler, l);
    if ((rc = enable_wal(l, err)) < 0)
        return rc;
    if ((rc = exec_sql(l, "PRAGMA foreign_keys=ON", err)) < 0)
        return rc;
    return run_tx(l, migrate_body, NULL, err);
}

int ledger_open(const char *path, struct ledger **out, struct bottle_err *err)
{
    struct ledger *l = xcalloc(1, sizeof(*l));
    int rc = path ? (l->path = xstrdup(path), 0) : ledger_default_path(&l->path, err);
    if (rc == 0)
        rc = create_file(l->path, err);
    l->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)clock_mono_ms() ^ (uint64_t)(uintptr_t)l;
    l->rng |= 1;
    if (rc == 0)
        rc = open_db(l, err);
    if (rc < 0) {
        ledger_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

void ledger_close(struct ledger *l)
{
    if (!l)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(l->stmts[i]);
    sqlite3_close(l->db);
    free(l->path);
    free(l);
}

static int version_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_VERSION, &s, err);
    if (rc < 0 || (rc = step(l, s, err)) < 0)
        return rc;
    *(int *)arg = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    return 0;
}

int ledger_schema_version(struct ledger *l, struct bottle_err *err)
{
    int version = 0;
    int rc = run_read(l, version_body, &version, err);
    return rc < 0 ? rc : version;
}

const char *ledger_scope_name(enum ledger_scope scope)
{
    switch (scope) {
    case LEDGER_SCOPE_GLOBAL:
        return "global";
    case LEDGER_SCOPE_BOTTLE:
        return "bottle";
    case LEDGER_SCOPE_AGENT:
        return "agent";
    }
    return "unknown";
}

/* ---- budgets ---------------------------------------------------------------- */

struct budget_op {
    const struct ledger_budget *b;
    bool remove;
};

static bool valid_scope(enum ledger_scope scope)
{
    return scope == LEDGER_SCOPE_GLOBAL || scope == LEDGER_SCOPE_BOTTLE ||
           scope == LEDGER_SCOPE_AGENT;
}

static int budget_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    const struct budget_op *op = arg;
    const struct ledger_budget *b = op->b;
    sqlite3_stmt *s;
    int rc = stmt_get(l, op->remove ? ST_BUDGET_REMOVE : ST_BUDGET_SET, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int(s, 1, (int)b->scope);
    bind_text(s, 2, b->scope == LEDGER_SCOPE_GLOBAL ? "" : b->name);
    bind_text(s, 3, b->provider);
    if (!op->remove) {
        sqlite3_bind_int64(s, 4, b->limit_tokens);
        sqlite3_bind_int64(s, 5, now_s());
    }
    rc = step(l, s, err);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

static int budget_check(const struct ledger_budget *b, struct bottle_err *err)
{
    if (!valid_scope(b->scope))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: unknown budget scope %d",
                            (int)b->scope);
    if (str_is_empty(b->provider))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: a budget needs a provider");
    if (b->scope != LEDGER_SCOPE_GLOBAL && str_is_empty(b->name))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: a %s budget needs a name",
                            ledger_scope_name(b->scope));
    if (b->limit_tokens < 0)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "ledger: budget limit must be 0 or more tokens, not %lld",
                            (long long)b->limit_tokens);
    return 0;
}

int ledger_budget_set(struct ledger *l, const struct ledger_budget *b, struct bottle_err *err)
{
    int rc = budget_check(b, err);
    if (rc < 0)
        return rc;
    struct budget_op op = {b, false};
    return run_tx(l, budget_body, &op, err);
}

int ledger_budget_remove(struct ledger *l, enum ledger_scope scope, const char *name,
                         const char *provider, struct bottle_err *err)
{
    struct ledger_budget b = {scope, name, provider, 0};
    int rc = budget_check(&b, err);
    if (rc < 0)
        return rc;
    struct budget_op op = {&b, true};
    return run_tx(l, budget_body, &op, err);
}

static int spent_in(struct ledger *l, enum ledger_scope scope, const char *name,
                    const char *provider, int64_t *spent, struct bottle_err *err)
{
    static const enum stmt_id ids[] = {ST_SPENT_GLOBAL, ST_SPENT_BOTTLE, ST_SPENT_AGENT};
    sqlite3_stmt *s;
    int rc = stmt_get(l, ids[scope], &s, err);
    if (rc < 0)
        return rc;
    bind_text(s, 1, provider);
    if (scope != LEDGER_SCOPE_GLOBAL)
        bind_text(s, 2, name);
    if ((rc = step(l, s, err)) < 0)
        return rc;
    *spent = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return 0;
}

struct spent_op {
    enum ledger_scope scope;
    const char *name, *provider;
    int64_t spent;
};

static int spent_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct spent_op *op = arg;
    return spent_in(l, op->scope, op->name, op->provider, &op->spent, err);
}

int ledger_spent(struct ledger *l, enum ledger_scope scope, const char *name, const char *provider,
                 int64_t *spent, struct bottle_err *err)
{
    if (!valid_scope(scope))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: unknown scope %d", (int)scope);
    struct spent_op op = {scope, name, provider, 0};
    int rc = run_read(l, spent_body, &op, err);
    if (rc == 0)
        *spent = op.spent;
    return rc;
}

/* ---- reserve, settle, release --------------------------------------------- */

struct reserve_op {
    const struct ledger_subject *who;
    int64_t tokens;
    int64_t id;
    struct ledger_denial *denied;
    const struct ledger_budget *given; /* ledger_reserve_in: these instead of the stored ones */
    size_t n_given;
};

/* Checks one budget; fills the denial when the estimate does not fit. */
static int check_budget(struct ledger *l, struct reserve_op *op, enum ledger_scope scope,
                        const char *name, int64_t limit, struct bottle_err *err)
{
    int64_t spent;
    int rc = spent_in(l, scope, name, op->who->provider, &spent, err);
    if (rc < 0 || op->tokens <= limit - spent) /* no overflow: both are >= 0 */
        return rc;
    struct ledger_denial *d = op->denied;
    d->scope = scope;
    snprintf(d->name, sizeof(d->name), "%s", name);
    snprintf(d->provider, sizeof(d->provider), "%s", op->who->provider);
    d->limit_tokens = limit;
    d->spent_tokens = spent;
    d->left_tokens = limit > spent ? limit - spent : 0;
    return LEDGER_DOES_NOT_FIT;
}

/* Budgets come most specific first (agent, bottle, global): the first refusal is the one told. */
static int check_budgets(struct ledger *l, struct reserve_op *op, struct bottle_err *err)
{
    if (op->given) {
        for (size_t i = 0; i < op->n_given; i++) {
            const struct ledger_budget *b = &op->given[i];
            int rc = check_budget(l, op, b->scope, b->scope == LEDGER_SCOPE_GLOBAL ? "" : b->name,
                                  b->limit_tokens, err);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_BUDGETS_FOR, &s, err);
    if (rc < 0)
        return rc;
    bind_text(s, 1, op->who->provider);
    bind_text(s, 2, op->who->bottle);
    bind_text(s, 3, op->who->agent); /* "" matches no agent budget: those need a name */
    struct {
        enum ledger_scope scope;
        char name[LEDGER_NAME_MAX];
        int64_t limit;
    } found[3];
    size_t n = 0;
    while (n < 3 && (rc = step(l, s, err)) == SQLITE_ROW) {
        found[n].scope = (enum ledger_scope)sqlite3_column_int(s, 0);
        snprintf(found[n].name, sizeof(found[n].name), "%s",
                 (const char *)sqlite3_column_text(s, 1));
        found[n++].limit = sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        rc = check_budget(l, op, found[i].scope, found[i].name, found[i].limit, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int reserve_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct reserve_op *op = arg;
    int rc = check_budgets(l, op, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    if ((rc = stmt_get(l, ST_RESERVE, &s, err)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, now_s());
    bind_text(s, 2, op->who->bottle);
    bind_text(s, 3, op->who->agent);
    bind_text(s, 4, op->who->provider);
    sqlite3_bind_int64(s, 5, op->tokens);
    sqlite3_bind_int64(s, 6, (int64_t)getpid());
    rc = step(l, s, err);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    op->id = sqlite3_last_insert_rowid(l->db);
    return 0;
}

static int subject_check(const struct ledger_subject *who, struct bottle_err *err)
{
    if (!who || str_is_empty(who->bottle) || str_is_empty(who->provider))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "ledger: usage needs a bottle and a provider");
    return 0;
}

int ledger_reserve(struct ledger *l, const struct ledger_subject *who, int64_t tokens, int64_t *id,
                   struct ledger_denial *denied, struct bottle_err *err)
{
    int rc = subject_check(who, err);
    if (rc < 0)
        return rc;
    if (tokens < 0 || tokens > LEDGER_TOKENS_MAX)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: cannot reserve %lld tokens",
                            (long long)tokens);
    struct ledger_denial scratch;
    struct reserve_op op = {who, tokens, 0, denied ? denied : &scratch, NULL, 0};
    rc = run_tx(l, reserve_body, &op, err);
    if (rc == 0)
        *id = op.id;
    return rc;
}

int ledger_reserve_in(struct ledger *l, const struct ledger_subject *who, int64_t tokens,
                      const struct ledger_budget *budgets, size_t n, int64_t *id,
                      struct ledger_denial *denied, struct bottle_err *err)
{
    int rc = subject_check(who, err);
    if (rc < 0)
        return rc;
    if (tokens < 0 || tokens > LEDGER_TOKENS_MAX)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: cannot reserve %lld tokens",
                            (long long)tokens);
    for (size_t i = 0; i < n; i++)
        if (!valid_scope(budgets[i].scope) || budgets[i].limit_tokens < 0 ||
            (budgets[i].scope != LEDGER_SCOPE_GLOBAL && str_is_empty(budgets[i].name)))
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: budget %zu is not valid", i);
    static const struct ledger_budget none;
    struct ledger_denial scratch;
    struct reserve_op op = {who, tokens, 0, denied ? denied : &scratch, n ? budgets : &none, n};
    rc = run_tx(l, reserve_body, &op, err);
    if (rc == 0)
        *id = op.id;
    return rc;
}

static int64_t usage_sum(const struct ledger_usage *u)
{
    return u->input_tokens + u->output_tokens + u->cache_creation_tokens + u->cache_read_tokens;
}

static int insert_usage(struct ledger *l, const struct ledger_subject *who,
                        const struct ledger_record *rec, int64_t charged, int64_t reservation,
                        struct bottle_err *err)
{
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_USAGE_INSERT, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, rec->at ? rec->at : now_s());
    bind_text(s, 2, who->bottle);
    bind_text(s, 3, who->agent);
    bind_text(s, 4, who->provider);
    bind_text(s, 5, rec->model);
    bind_text(s, 6, rec->request_id);
    sqlite3_bind_int64(s, 7, rec->usage.input_tokens);
    sqlite3_bind_int64(s, 8, rec->usage.output_tokens);
    sqlite3_bind_int64(s, 9, rec->usage.cache_creation_tokens);
    sqlite3_bind_int64(s, 10, rec->usage.cache_read_tokens);
    sqlite3_bind_int64(s, 11, charged);
    sqlite3_bind_int(s, 12, rec->complete ? 1 : 0);
    if (reservation > 0)
        sqlite3_bind_int64(s, 13, reservation);
    else
        sqlite3_bind_null(s, 13);
    rc = step(l, s, err);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

struct settle_op {
    int64_t id;
    const struct ledger_record *rec;
};

static int settle_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    const struct settle_op *op = arg;
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_RES_GET, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->id);
    if ((rc = step(l, s, err)) < 0)
        return rc;
    if (rc == SQLITE_DONE)
        return err_set(err, ENOENT, "ledger: no reservation %lld", (long long)op->id);
    if (strcmp((const char *)sqlite3_column_text(s, 0), "settled") == 0) {
        sqlite3_reset(s);
        return err_set(err, EALREADY, "ledger: reservation %lld is already settled",
                       (long long)op->id);
    }
    int64_t reserved = sqlite3_column_int64(s, 1);
    char *bottle = xstrdup((const char *)sqlite3_column_text(s, 2));
    char *agent = xstrdup((const char *)sqlite3_column_text(s, 3));
    char *provider = xstrdup((const char *)sqlite3_column_text(s, 4));
    sqlite3_reset(s);
    struct ledger_subject who = {bottle, agent, provider};
    int64_t charged = usage_sum(&op->rec->usage);
    if (!op->rec->complete && charged < reserved)
        charged = reserved;
    rc = insert_usage(l, &who, op->rec, charged, op->id, err);
    free(bottle);
    free(agent);
    free(provider);
    if (rc < 0 || (rc = stmt_get(l, ST_RES_CLOSE, &s, err)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->id);
    bind_text(s, 2, "settled");
    sqlite3_bind_int64(s, 3, now_s());
    rc = step(l, s, err);
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

static int usage_check(const struct ledger_usage *u, struct bottle_err *err)
{
    const int64_t v[] = {u->input_tokens, u->output_tokens, u->cache_creation_tokens,
                         u->cache_read_tokens};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        if (v[i] < 0 || v[i] > LEDGER_TOKENS_MAX)
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                                "ledger: token count %lld is out of range (0 to %lld)",
                                (long long)v[i], (long long)LEDGER_TOKENS_MAX);
    return 0;
}

int ledger_settle(struct ledger *l, int64_t id, const struct ledger_record *rec,
                  struct bottle_err *err)
{
    int rc = usage_check(&rec->usage, err);
    if (rc < 0)
        return rc;
    struct settle_op op = {id, rec};
    return run_tx(l, settle_body, &op, err);
}

struct release_op {
    int64_t id;         /* one reservation, or 0 */
    int64_t older_than; /* with id 0 */
    int changed;
};

static int release_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct release_op *op = arg;
    sqlite3_stmt *s;
    int rc = stmt_get(l, op->id ? ST_RELEASE : ST_RELEASE_STALE, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->id ? op->id : op->older_than);
    sqlite3_bind_int64(s, 2, now_s());
    rc = step(l, s, err);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    op->changed = sqlite3_changes(l->db);
    return 0;
}

int ledger_release(struct ledger *l, int64_t id, struct bottle_err *err)
{
    struct release_op op = {id, 0, 0};
    if (id <= 0)
        return err_set(err, ENOENT, "ledger: no reservation %lld", (long long)id);
    int rc = run_tx(l, release_body, &op, err);
    if (rc == 0 && op.changed == 0)
        return err_set(err, ENOENT, "ledger: no open reservation %lld", (long long)id);
    return rc;
}

int ledger_release_stale(struct ledger *l, int64_t older_than, struct bottle_err *err)
{
    struct release_op op = {0, older_than, 0};
    int rc = run_tx(l, release_body, &op, err);
    return rc < 0 ? rc : op.changed;
}

struct record_op {
    const struct ledger_record *rec;
};

static int record_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    const struct ledger_record *rec = ((struct record_op *)arg)->rec;
    return insert_usage(l, &rec->who, rec, usage_sum(&rec->usage), 0, err);
}

int ledger_record_usage(struct ledger *l, const struct ledger_record *rec, struct bottle_err *err)
{
    int rc = subject_check(&rec->who, err);
    if (rc == 0)
        rc = usage_check(&rec->usage, err);
    if (rc < 0)
        return rc;
    struct record_op op = {rec};
    return run_tx(l, record_body, &op, err);
}

/* ---- totals ------------------------------------------------------------------ */

struct totals_op {
    const struct ledger_filter *f;
    struct ledger_totals *out;
};

static void bind_filter_subject(sqlite3_stmt *s, const struct ledger_filter *f)
{
    bind_filter(s, 1, f->bottle);
    bind_filter(s, 2, f->agent);
    bind_filter(s, 3, f->provider);
}

static int totals_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct totals_op *op = arg;
    struct ledger_totals *t = op->out;
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_TOTALS, &s, err);
    if (rc < 0)
        return rc;
    bind_filter_subject(s, op->f);
    sqlite3_bind_int64(s, 4, op->f->since);
    if ((rc = step(l, s, err)) < 0)
        return rc;
    t->requests = sqlite3_column_int64(s, 0);
    t->incomplete = sqlite3_column_int64(s, 1);
    t->usage.input_tokens = sqlite3_column_int64(s, 2);
    t->usage.output_tokens = sqlite3_column_int64(s, 3);
    t->usage.cache_creation_tokens = sqlite3_column_int64(s, 4);
    t->usage.cache_read_tokens = sqlite3_column_int64(s, 5);
    t->charged_tokens = sqlite3_column_int64(s, 6);
    sqlite3_reset(s);
    if ((rc = stmt_get(l, ST_TOTALS_OPEN, &s, err)) < 0)
        return rc;
    bind_filter_subject(s, op->f);
    if ((rc = step(l, s, err)) < 0)
        return rc;
    t->open_reservations = sqlite3_column_int64(s, 0);
    t->reserved_tokens = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    return 0;
}

int ledger_totals(struct ledger *l, const struct ledger_filter *f, struct ledger_totals *out,
                  struct bottle_err *err)
{
    static const struct ledger_filter all = {0};
    struct ledger_totals t = {0};
    struct totals_op op = {f ? f : &all, &t};
    int rc = run_read(l, totals_body, &op, err);
    if (rc == 0)
        *out = t;
    return rc;
}

/* ---- audit ------------------------------------------------------------------- */

struct audit_add_op {
    const struct ledger_audit *a;
    int64_t id;
};

static int audit_add_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct audit_add_op *op = arg;
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_AUDIT_INSERT, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->a->at ? op->a->at : now_s());
    bind_text(s, 2, op->a->bottle);
    bind_text(s, 3, op->a->action);
    bind_text(s, 4, op->a->policy);
    bind_text(s, 5, op->a->reason);
    bind_text(s, 6, op->a->who);
    rc = step(l, s, err);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    op->id = sqlite3_last_insert_rowid(l->db);
    return 0;
}

int ledger_audit_add(struct ledger *l, const struct ledger_audit *a, int64_t *id,
                     struct bottle_err *err)
{
    if (str_is_empty(a->action))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: an audit entry needs an action");
    struct audit_add_op op = {a, 0};
    int rc = run_tx(l, audit_add_body, &op, err);
    if (rc == 0 && id)
        *id = op.id;
    return rc;
}

struct audit_list_op {
    const char *bottle;
    size_t limit;
    struct ledger_audit_entry *items;
    size_t n, cap;
};

static char *column_dup(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);
    return xstrdup(t ? t : "");
}

static int audit_list_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct audit_list_op *op = arg;
    ledger_audit_free(op->items, op->n); /* a rerun starts over */
    op->items = NULL;
    op->n = op->cap = 0;
    sqlite3_stmt *s;
    int rc = stmt_get(l, ST_AUDIT_LIST, &s, err);
    if (rc < 0)
        return rc;
    bind_filter(s, 1, op->bottle);
    sqlite3_bind_int64(s, 2, op->limit ? (int64_t)op->limit : -1);
    while ((rc = step(l, s, err)) == SQLITE_ROW) {
        if (op->n == op->cap) {
            op->cap = op->cap ? op->cap * 2 : 16;
            op->items = xrealloc(op->items, op->cap * sizeof(*op->items));
        }
        struct ledger_audit_entry *e = &op->items[op->n++];
        e->id = sqlite3_column_int64(s, 0);
        e->at = sqlite3_column_int64(s, 1);
        e->bottle = column_dup(s, 2);
        e->action = column_dup(s, 3);
        e->policy = column_dup(s, 4);
        e->reason = column_dup(s, 5);
        e->who = column_dup(s, 6);
    }
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

int ledger_audit_list(struct ledger *l, const char *bottle, size_t limit,
                      struct ledger_audit_entry **out, size_t *n, struct bottle_err *err)
{
    struct audit_list_op op = {bottle, limit, NULL, 0, 0};
    int rc = run_read(l, audit_list_body, &op, err);
    if (rc < 0) {
        ledger_audit_free(op.items, op.n);
        return rc;
    }
    *out = op.items;
    *n = op.n;
    return 0;
}

void ledger_audit_free(struct ledger_audit_entry *entries, size_t n)
{
    for (size_t i = 0; i < n && entries; i++) {
        free(entries[i].bottle);
        free(entries[i].action);
        free(entries[i].policy);
        free(entries[i].reason);
        free(entries[i].who);
    }
    free(entries);
}

/* ---- final kernel counters -------------------------------------------------- */

struct kernel_op {
    const char *bottle, *agent, *counters;
    char *out;
};

static int kernel_sql(struct ledger *l, const char *sql, sqlite3_stmt **s, struct bottle_err *err)
{
    int rc = sqlite3_prepare_v2(l->db, sql, -1, s, NULL);
    if (rc == SQLITE_OK)
        return 0;
    return is_busy(rc) ? -EAGAIN : db_fail(l, rc, err, "prepare");
}

static int kernel_put_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct kernel_op *op = arg;
    sqlite3_stmt *s;
    int rc = kernel_sql(l,
                        "INSERT OR REPLACE INTO kernel_final (bottle, agent, at, counters) "
                        "VALUES (?1, ?2, ?3, ?4)",
                        &s, err);
    if (rc < 0)
        return rc;
    bind_text(s, 1, op->bottle);
    bind_text(s, 2, op->agent);
    sqlite3_bind_int64(s, 3, now_s());
    bind_text(s, 4, op->counters);
    rc = step(l, s, err);
    sqlite3_finalize(s);
    return rc < 0 ? rc : 0;
}

int ledger_kernel_put(struct ledger *l, const char *bottle, const char *agent, const char *counters,
                      struct bottle_err *err)
{
    if (str_is_empty(bottle) || str_is_empty(counters))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: kernel counters need a bottle");
    struct kernel_op op = {bottle, agent, counters, NULL};
    return run_tx(l, kernel_put_body, &op, err);
}

static int kernel_get_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct kernel_op *op = arg;
    sqlite3_stmt *s;
    int rc = kernel_sql(l, "SELECT counters FROM kernel_final WHERE bottle = ?1", &s, err);
    if (rc < 0)
        return rc;
    bind_text(s, 1, op->bottle);
    rc = step(l, s, err);
    free(op->out);
    op->out = rc == SQLITE_ROW ? column_dup(s, 0) : NULL;
    sqlite3_finalize(s);
    return rc < 0 ? rc : 0;
}

int ledger_kernel_get(struct ledger *l, const char *bottle, char **counters, struct bottle_err *err)
{
    struct kernel_op op = {bottle, NULL, NULL, NULL};
    int rc = run_read(l, kernel_get_body, &op, err);
    *counters = rc == 0 ? op.out : NULL;
    if (rc < 0)
        free(op.out);
    return rc < 0 ? rc : op.out ? 0 : -ENOENT;
}

/* ---- providers of a bottle --------------------------------------------------- */

struct providers_op {
    const char *bottle;
    struct strv *out;
};

static int providers_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct providers_op *op = arg;
    sqlite3_stmt *s;
    int rc = kernel_sql(l,
                        "SELECT provider FROM usage WHERE bottle = ?1 UNION "
                        "SELECT provider FROM reservation WHERE bottle = ?1 ORDER BY 1",
                        &s, err);
    if (rc < 0)
        return rc;
    bind_text(s, 1, op->bottle);
    strv_free(op->out); /* a rerun starts over */
    while ((rc = step(l, s, err)) == SQLITE_ROW)
        strv_push(op->out, (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return rc < 0 ? rc : 0;
}

int ledger_providers(struct ledger *l, const char *bottle, struct strv *out, struct bottle_err *err)
{
    struct providers_op op = {bottle, out};
    return run_read(l, providers_body, &op, err);
}
