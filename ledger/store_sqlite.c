/*
 * store_sqlite — the SQLite store: one file per host, $BOTTLE_HOME/bottle.db
 * by default (see store.h).
 *
 * Concurrency: every write runs in BEGIN IMMEDIATE, which takes the write
 * lock up front, so a transaction never has to upgrade a read lock (the
 * case SQLite answers with an immediate SQLITE_BUSY), and a reservation's
 * check and insert are never interleaved with another writer's: the file
 * lock is every budget's lock. Waiting for the lock is our busy handler's
 * job: jittered exponential backoff from 50 us to 5 ms, so eight writers on
 * two cores take turns quickly instead of sleeping in SQLite's default
 * steps of up to 100 ms. Anything that still comes back BUSY or LOCKED
 * rolls back and reruns the whole transaction until the deadline; only
 * then does the caller get -EBUSY.
 *
 * WAL with synchronous=NORMAL: a committed transaction survives a crash of
 * the process; a power loss may lose the last few. Usage is accounting, not
 * money, and a sidecar commits several times per request.
 */
#include "ledger/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"

#define SCHEMA_VERSION 3
#define BACKOFF_MIN_US 50
#define BACKOFF_MAX_US 5000

/*
 * One scope's spending in its current period, and that period: ?1 provider, ?2 now, ?3 name
 * ("" for global), ?4 scope. A day starts at 00:00 UTC (Unix time has no leap seconds), a month
 * at 00:00 UTC on the 1st; ledger_period_start says the same in C.
 */
#define SPENT_SUM(where)                                                                           \
    "WITH p AS (SELECT COALESCE((SELECT period FROM counter_period WHERE scope=?4 AND name=?3 "    \
    "AND provider=?1), 'total') AS period), s AS (SELECT CASE period WHEN 'day' THEN ?2 - ?2 % "   \
    "86400 WHEN 'month' THEN CAST(strftime('%s', ?2, 'unixepoch', 'start of month') AS INTEGER) "  \
    "ELSE 0 END AS since FROM p) SELECT (SELECT COALESCE(SUM(charged_tokens),0) FROM usage "       \
    "WHERE provider=?1 AND at >= (SELECT since FROM s)" where                                      \
    ") + (SELECT COALESCE(SUM(tokens),0) FROM reservation WHERE state='open' AND "                 \
    "provider=?1" where "), (SELECT period FROM p)"

#define GROUP_BY(col)                                                                              \
    "SELECT k, provider, SUM(req), SUM(charged), SUM(reserved) FROM ("                             \
    "SELECT " col " AS k, provider, 1 AS req, charged_tokens AS charged, 0 AS reserved "           \
    "FROM usage WHERE at >= ?1 UNION ALL SELECT " col ", provider, 0, 0, tokens "                  \
    "FROM reservation WHERE state='open') AS g GROUP BY k, provider ORDER BY k, provider"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_VERSION] = "SELECT COALESCE(MAX(version),0) FROM schema_version",
    [ST_SPENT_GLOBAL] = SPENT_SUM(""),
    [ST_SPENT_BOTTLE] = SPENT_SUM(" AND bottle=?3"),
    [ST_SPENT_AGENT] = SPENT_SUM(" AND agent=?3"),
    [ST_SPENT_POOL] = SPENT_SUM(" AND pool=?3"),
    [ST_PERIOD_GET] =
        "SELECT period FROM counter_period WHERE scope=?1 AND name=?2 AND provider=?3",
    [ST_PERIOD_SET] = "INSERT INTO counter_period(scope, name, provider, period, updated_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, name, provider) DO UPDATE "
                      "SET period=excluded.period, updated_at=excluded.updated_at",
    [ST_BUDGETS_FOR] = "SELECT scope, name, limit_tokens FROM budget WHERE provider=?1 AND "
                       "(scope=0 OR (scope=1 AND name=?2) OR (scope=2 AND name=?3)) "
                       "ORDER BY scope DESC",
    [ST_BUDGET_GET] = "SELECT limit_tokens FROM budget WHERE scope=?1 AND name=?2 AND provider=?3",
    [ST_BUDGET_SET] = "INSERT INTO budget(scope, name, provider, limit_tokens, updated_at) "
                      "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(scope, name, provider) "
                      "DO UPDATE SET limit_tokens=excluded.limit_tokens, "
                      "updated_at=excluded.updated_at",
    [ST_BUDGET_REMOVE] = "DELETE FROM budget WHERE scope=?1 AND name=?2 AND provider=?3",
    [ST_BUDGETS_SCOPE] = "SELECT name, provider, limit_tokens FROM budget WHERE scope=?1 "
                         "ORDER BY name, provider",
    [ST_RUN_POOL] = "SELECT pool FROM bottle_run WHERE bottle=?1",
    [ST_RUN_START] = "INSERT INTO bottle_run(bottle, host, agent, pool, started_at, ended_at) "
                     "VALUES(?1, ?2, ?3, ?4, ?5, NULL) ON CONFLICT(bottle) DO UPDATE SET "
                     "host=excluded.host, agent=excluded.agent, pool=excluded.pool, "
                     "started_at=excluded.started_at, ended_at=NULL",
    [ST_RUN_END] = "UPDATE bottle_run SET ended_at=?2 WHERE bottle=?1",
    [ST_RESERVE] = "INSERT INTO reservation(created_at, bottle, agent, provider, tokens, state, "
                   "pid, host, pool, token) VALUES(?1, ?2, ?3, ?4, ?5, 'open', ?6, ?7, ?8, ?9) "
                   "RETURNING id",
    [ST_RES_BY_TOKEN] = "SELECT id FROM reservation WHERE token=?1",
    [ST_RES_GET] = "SELECT state, tokens, bottle, agent, provider, host, pool FROM reservation "
                   "WHERE id=?1",
    [ST_RES_CLOSE] = "UPDATE reservation SET state=?2, closed_at=?3 WHERE id=?1",
    [ST_RELEASE] = "UPDATE reservation SET state='released', closed_at=?2 "
                   "WHERE id=?1 AND state='open'",
    [ST_RELEASE_STALE] = "UPDATE reservation SET state='released', closed_at=?2 "
                         "WHERE state='open' AND created_at < ?1",
    [ST_EXPIRE_CHARGE] = "INSERT INTO usage(at, bottle, agent, provider, model, request_id, "
                         "input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, "
                         "charged_tokens, complete, reservation_id, host, pool, expired) "
                         "SELECT ?2, bottle, agent, provider, '', '', 0, 0, 0, 0, tokens, 0, id, "
                         "host, pool, 1 FROM reservation WHERE state='open' AND created_at < ?1",
    [ST_EXPIRE_CLOSE] = "UPDATE reservation SET state='settled', closed_at=?2 "
                        "WHERE state='open' AND created_at < ?1",
    [ST_USAGE_INSERT] = "INSERT INTO usage(at, bottle, agent, provider, model, request_id, "
                        "input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, "
                        "charged_tokens, complete, reservation_id, host, pool) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [ST_USAGE_EXPIRED] = "SELECT expired FROM usage WHERE reservation_id=?1",
    [ST_USAGE_REPLACE] = "UPDATE usage SET at=?2, model=?3, request_id=?4, input_tokens=?5, "
                         "output_tokens=?6, cache_creation_tokens=?7, cache_read_tokens=?8, "
                         "charged_tokens=?9, complete=?10, expired=0 "
                         "WHERE reservation_id=?1 AND expired=1",
    [ST_TOTALS] = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN complete=0 THEN 1 ELSE 0 END),0), "
                  "COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0), "
                  "COALESCE(SUM(cache_creation_tokens),0), COALESCE(SUM(cache_read_tokens),0), "
                  "COALESCE(SUM(charged_tokens),0), COALESCE(SUM(expired),0) "
                  "FROM usage WHERE (?1 IS NULL OR bottle=?1) AND (?2 IS NULL OR agent=?2) "
                  "AND (?3 IS NULL OR provider=?3) AND at >= ?4 AND (?5 IS NULL OR host=?5) "
                  "AND (?6 IS NULL OR pool=?6)",
    [ST_TOTALS_OPEN] = "SELECT COUNT(*), COALESCE(SUM(tokens),0) FROM reservation "
                       "WHERE state='open' AND (?1 IS NULL OR bottle=?1) "
                       "AND (?2 IS NULL OR agent=?2) AND (?3 IS NULL OR provider=?3) "
                       "AND (?4 IS NULL OR host=?4) AND (?5 IS NULL OR pool=?5)",
    [ST_AUDIT_INSERT] = "INSERT INTO audit(at, bottle, action, policy, reason, who) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
    [ST_AUDIT_LIST] = "SELECT id, at, bottle, action, policy, reason, who FROM audit "
                      "WHERE (?1 IS NULL OR bottle=?1) ORDER BY id DESC LIMIT ?2",
    [ST_KERNEL_PUT] = "INSERT INTO kernel_final(bottle, agent, at, counters) "
                      "VALUES(?1, ?2, ?3, ?4) ON CONFLICT(bottle) DO UPDATE SET "
                      "agent=excluded.agent, at=excluded.at, counters=excluded.counters",
    [ST_KERNEL_GET] = "SELECT counters FROM kernel_final WHERE bottle=?1",
    [ST_PROVIDERS] = "SELECT provider FROM usage WHERE bottle=?1 UNION "
                     "SELECT provider FROM reservation WHERE bottle=?1 ORDER BY 1",
    [ST_GROUP_BOTTLE] = GROUP_BY("bottle"),
    [ST_GROUP_HOST] = GROUP_BY("host"),
    [ST_GROUP_POOL] = GROUP_BY("pool"),
    [ST_GROUP_AGENT] = GROUP_BY("agent"),
    [ST_RUNS] = "SELECT bottle, host, agent, pool, started_at, COALESCE(ended_at,0) "
                "FROM bottle_run ORDER BY started_at DESC, bottle",
    [ST_PING] = "SELECT 1",
};

/* Migration n brings the schema from version n-1 to n. Append only; store_pg.c mirrors them. */
static const char *const migrations[SCHEMA_VERSION] = {
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
    /* 3: hosts, pools, periods, expired charges and reservation tokens. */
    "ALTER TABLE usage ADD COLUMN host TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE usage ADD COLUMN pool TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE usage ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX usage_by_bottle;"
    "DROP INDEX usage_by_agent;"
    "CREATE INDEX usage_provider_at ON usage(provider, at, charged_tokens);"
    "CREATE INDEX usage_bottle_at ON usage(provider, bottle, at, charged_tokens);"
    "CREATE INDEX usage_agent_at ON usage(provider, agent, at, charged_tokens);"
    "CREATE INDEX usage_pool_at ON usage(provider, pool, at, charged_tokens);"
    "ALTER TABLE reservation ADD COLUMN host TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE reservation ADD COLUMN pool TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE reservation ADD COLUMN token TEXT;"
    "CREATE UNIQUE INDEX reservation_token ON reservation(token);"
    "CREATE INDEX reservation_open_pool ON reservation(provider, pool) WHERE state='open';"
    "CREATE TABLE budget_v3 ("
    " scope INTEGER NOT NULL CHECK (scope IN (0, 1, 2, 3)),"
    " name TEXT NOT NULL, provider TEXT NOT NULL,"
    " limit_tokens INTEGER NOT NULL CHECK (limit_tokens >= 0),"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (scope, name, provider));"
    "INSERT INTO budget_v3 SELECT scope, name, provider, limit_tokens, updated_at FROM budget;"
    "DROP TABLE budget;"
    "ALTER TABLE budget_v3 RENAME TO budget;"
    "CREATE TABLE counter_period ("
    " scope INTEGER NOT NULL CHECK (scope IN (0, 1, 2, 3)),"
    " name TEXT NOT NULL, provider TEXT NOT NULL,"
    " period TEXT NOT NULL CHECK (period IN ('total', 'day', 'month')),"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (scope, name, provider));"
    "CREATE TABLE bottle_run ("
    " bottle TEXT PRIMARY KEY,"
    " host TEXT NOT NULL, agent TEXT NOT NULL, pool TEXT NOT NULL,"
    " started_at INTEGER NOT NULL, ended_at INTEGER);",
};

struct sqlite_store {
    struct ledger_store base;
    sqlite3 *db;
    sqlite3_stmt *stmts[ST_COUNT];
    uint64_t rng;      /* backoff jitter */
    int64_t busy_from; /* when the current wait began (clock_mono_ms) */
};

#define SQ(s) ((struct sqlite_store *)(s))

/* ---- errors and backoff ----------------------------------------------------- */

static bool is_busy(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

static int db_fail(struct sqlite_store *q, int rc, struct bottle_err *err, const char *what)
{
    if (is_busy(rc))
        return err_set(err, EBUSY, "ledger: %s: %s: database stayed busy for %d ms", q->base.where,
                       what, LEDGER_BUSY_TIMEOUT_MS);
    return err_set(err, EIO, "ledger: %s: %s: %s", q->base.where, what, sqlite3_errmsg(q->db));
}

static uint64_t next_random(struct sqlite_store *q)
{
    q->rng ^= q->rng << 13;
    q->rng ^= q->rng >> 7;
    q->rng ^= q->rng << 17;
    return q->rng;
}

static void backoff_sleep(struct sqlite_store *q, int attempt)
{
    unsigned cap = BACKOFF_MIN_US << (attempt < 7 ? attempt : 7);
    if (cap > BACKOFF_MAX_US)
        cap = BACKOFF_MAX_US;
    unsigned us = cap / 2 + (unsigned)(next_random(q) % (cap / 2 + 1));
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* SQLite's busy handler: keep waiting, with backoff, until the timeout. */
static int busy_handler(void *arg, int count)
{
    struct sqlite_store *q = arg;
    int64_t now = clock_mono_ms();
    if (count == 0)
        q->busy_from = now;
    int64_t waited = now - q->busy_from;
    if (waited >= LEDGER_BUSY_TIMEOUT_MS)
        return 0;
    backoff_sleep(q, count);
    return 1;
}

static int exec_sql(struct sqlite_store *q, const char *sql, struct bottle_err *err)
{
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    return is_busy(rc) ? -EAGAIN : db_fail(q, rc, err, sql);
}

/* ---- statements ---------------------------------------------------------------- */

static int sq_exec(struct ledger_store *s, enum store_stmt id, const struct store_arg *args,
                   size_t n, struct store_rows *rows, struct bottle_err *err)
{
    struct sqlite_store *q = SQ(s);
    if (rows)
        memset(rows, 0, sizeof(*rows));
    if (!stmt_sql[id])
        return 0;
    if (!q->stmts[id]) {
        int rc = sqlite3_prepare_v3(q->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &q->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return is_busy(rc) ? -EAGAIN : db_fail(q, rc, err, "prepare");
    }
    sqlite3_stmt *st = q->stmts[id];
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int count = sqlite3_bind_parameter_count(st);
    for (size_t i = 0; i < n && (int)i < count; i++) {
        if (args[i].kind == SA_K_INT)
            sqlite3_bind_int64(st, (int)i + 1, args[i].i);
        else if (args[i].kind == SA_K_TEXT)
            sqlite3_bind_text(st, (int)i + 1, args[i].s, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, (int)i + 1);
    }
    int rc;
    int cols = sqlite3_column_count(st);
    const char *cells[16];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!rows)
            continue;
        for (int c = 0; c < cols && c < 16; c++)
            cells[c] = (const char *)sqlite3_column_text(st, c);
        store_rows_add(rows, (size_t)(cols < 16 ? cols : 16), cells);
    }
    if (rc != SQLITE_DONE) {
        sqlite3_reset(st);
        if (rows)
            store_rows_free(rows);
        return is_busy(rc) ? -EAGAIN : db_fail(q, rc, err, "query");
    }
    if (rows)
        rows->changed = sqlite3_changes(q->db);
    sqlite3_reset(st);
    return 0;
}

static int sq_lock(struct ledger_store *s, enum ledger_scope scope, const char *name,
                   const char *provider, struct bottle_err *err)
{
    /* BEGIN IMMEDIATE holds the whole file: nothing more to take. */
    (void)s, (void)scope, (void)name, (void)provider, (void)err;
    return 0;
}

/* ---- transactions ---------------------------------------------------------------- */

/* A COMMIT that meets a busy database keeps the transaction open: try again, then give up. */
static int commit(struct sqlite_store *q, int64_t deadline, struct bottle_err *err)
{
    int rc;
    for (int attempt = 0; (rc = exec_sql(q, "COMMIT", err)) == -EAGAIN; attempt++) {
        if (clock_mono_ms() >= deadline) {
            sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
            return db_fail(q, SQLITE_BUSY, err, "commit");
        }
        backoff_sleep(q, attempt);
    }
    if (rc < 0)
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/*
 * Runs body in a transaction (BEGIN IMMEDIATE when it writes) and commits. body returns >= 0
 * (committed and passed on), -EAGAIN (busy: everything reruns after a backoff) or another negative
 * error (rolled back).
 */
static int sq_run(struct ledger_store *s, bool write, store_body body, void *arg,
                  struct bottle_err *err)
{
    struct sqlite_store *q = SQ(s);
    int64_t deadline = clock_mono_ms() + LEDGER_BUSY_TIMEOUT_MS;
    for (int attempt = 0;; attempt++) {
        int rc = exec_sql(q, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
        if (rc == 0) {
            rc = body(s, arg, err);
            if (rc >= 0) {
                int crc = commit(q, deadline, err);
                return crc < 0 ? crc : rc;
            }
            sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        }
        if (rc != -EAGAIN)
            return rc;
        if (clock_mono_ms() >= deadline)
            return db_fail(q, SQLITE_BUSY, err, "transaction");
        backoff_sleep(q, attempt);
    }
}

/* ---- open and migrate -------------------------------------------------------------- */

static int migrate_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct sqlite_store *q = SQ(s);
    (void)arg;
    int rc = exec_sql(q,
                      "CREATE TABLE IF NOT EXISTS schema_version ("
                      " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                      err);
    int64_t version = 0;
    if (rc < 0 || (rc = store_one_int(s, ST_VERSION, NULL, 0, &version, err)) < 0)
        return rc;
    if (version < 0 || version > SCHEMA_VERSION)
        return err_set(err, EPROTO,
                       "ledger: %s: schema version %lld is newer than this bottle (%d)", s->where,
                       (long long)version, SCHEMA_VERSION);
    for (int v = (int)version; v < SCHEMA_VERSION; v++) {
        if ((rc = exec_sql(q, migrations[v], err)) < 0)
            return rc;
        char *ins = xasprintf("INSERT INTO schema_version(version, applied_at) VALUES(%d, %lld)",
                              v + 1, (long long)time(NULL));
        rc = exec_sql(q, ins, err);
        free(ins);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* journal_mode=WAL needs a moment alone with the file; wait for it like a transaction. */
static int enable_wal(struct sqlite_store *q, struct bottle_err *err)
{
    int64_t deadline = clock_mono_ms() + LEDGER_BUSY_TIMEOUT_MS;
    for (int attempt = 0;; attempt++) {
        int rc = exec_sql(q, "PRAGMA journal_mode=WAL", err);
        if (rc != -EAGAIN)
            return rc < 0 ? rc : exec_sql(q, "PRAGMA synchronous=NORMAL", err);
        if (clock_mono_ms() >= deadline)
            return db_fail(q, SQLITE_BUSY, err, "journal_mode=WAL");
        backoff_sleep(q, attempt);
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

static void sq_close(struct ledger_store *s)
{
    struct sqlite_store *q = SQ(s);
    if (!q)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(q->stmts[i]);
    sqlite3_close(q->db);
    free(q->base.where);
    free(q);
}

static int sq_open(const char *where, unsigned flags, struct ledger_store **out,
                   struct bottle_err *err)
{
    (void)flags; /* a file is there or not: nothing to wait for */
    struct sqlite_store *q = xcalloc(1, sizeof(*q));
    q->base.ops = &store_sqlite_ops;
    q->base.where = xstrdup(where);
    q->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)clock_mono_ms() ^ (uint64_t)(uintptr_t)q;
    q->rng |= 1;
    int rc = create_file(where, err);
    if (rc == 0) {
        int src = sqlite3_open_v2(where, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (src != SQLITE_OK)
            rc = err_set(err, EIO, "ledger: cannot open %s: %s", where,
                         q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(src));
    }
    if (rc == 0) {
        sqlite3_extended_result_codes(q->db, 1);
        sqlite3_busy_handler(q->db, busy_handler, q);
        rc = enable_wal(q, err);
    }
    if (rc == 0)
        rc = exec_sql(q, "PRAGMA foreign_keys=ON", err);
    if (rc == 0)
        rc = sq_run(&q->base, true, migrate_body, NULL, err);
    if (rc < 0) {
        sq_close(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .run = sq_run,
    .exec = sq_exec,
    .lock = sq_lock,
};
