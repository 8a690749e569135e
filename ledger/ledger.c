/*
 * ledger — opening, migrating and the transactions every ledger call runs in
 * (see ledger.h; reservations are in reserve.c, reports in report.c).
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
#include "ledger/ledger_internal.h"

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

/* ---- errors, time, backoff ----------------------------------------------- */

bool ledger_is_busy(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
}

int ledger_db_fail(struct ledger *l, int rc, struct bottle_err *err, const char *what)
{
    if (ledger_is_busy(rc))
        return err_set(err, EBUSY, "ledger: %s: %s: database stayed busy for %d ms", l->path, what,
                       LEDGER_BUSY_TIMEOUT_MS);
    return err_set(err, EIO, "ledger: %s: %s: %s", l->path, what, sqlite3_errmsg(l->db));
}

int64_t ledger_now_s(void)
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
    int64_t now = clock_mono_ms();
    if (count == 0)
        l->busy_from = now;
    int64_t waited = now - l->busy_from;
    if (waited >= LEDGER_BUSY_TIMEOUT_MS)
        return 0;
    backoff_sleep(l, count);
    return 1;
}

/* ---- statements ------------------------------------------------------------ */

int ledger_stmt(struct ledger *l, enum stmt_id id, sqlite3_stmt **out, struct bottle_err *err)
{
    if (!l->stmts[id]) {
        int rc = sqlite3_prepare_v3(l->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &l->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return ledger_is_busy(rc) ? -EAGAIN : ledger_db_fail(l, rc, err, "prepare");
    }
    sqlite3_reset(l->stmts[id]);
    sqlite3_clear_bindings(l->stmts[id]);
    *out = l->stmts[id];
    return 0;
}

void ledger_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_TRANSIENT);
}

/* Like ledger_bind_text, but NULL stays NULL (a filter that matches everything). */
void ledger_bind_filter(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* One step: SQLITE_ROW/SQLITE_DONE, -EAGAIN when busy (the transaction reruns), or an error. */
int ledger_step(struct ledger *l, sqlite3_stmt *s, struct bottle_err *err)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc;
    sqlite3_reset(s);
    return ledger_is_busy(rc) ? -EAGAIN : ledger_db_fail(l, rc, err, "query");
}

int ledger_exec(struct ledger *l, const char *sql, struct bottle_err *err)
{
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    return ledger_is_busy(rc) ? -EAGAIN : ledger_db_fail(l, rc, err, sql);
}

/* ---- transactions ---------------------------------------------------------- */

/* A COMMIT that meets a busy database keeps the transaction open: try again, then give up. */
static int commit(struct ledger *l, int64_t deadline, struct bottle_err *err)
{
    int rc;
    for (int attempt = 0; (rc = ledger_exec(l, "COMMIT", err)) == -EAGAIN; attempt++) {
        if (clock_mono_ms() >= deadline) {
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
            return ledger_db_fail(l, SQLITE_BUSY, err, "commit");
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
static int run_tx_mode(struct ledger *l, bool write, ledger_tx_body body, void *arg,
                       struct bottle_err *err)
{
    int64_t deadline = clock_mono_ms() + LEDGER_BUSY_TIMEOUT_MS;
    for (int attempt = 0;; attempt++) {
        int rc = ledger_exec(l, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
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
            return ledger_db_fail(l, SQLITE_BUSY, err, "transaction");
        backoff_sleep(l, attempt);
    }
}

int ledger_run_tx(struct ledger *l, ledger_tx_body body, void *arg, struct bottle_err *err)
{
    return run_tx_mode(l, true, body, arg, err);
}

/* Reads: a deferred transaction sees one snapshot and, under WAL, waits for no writer. */
int ledger_run_read(struct ledger *l, ledger_tx_body body, void *arg, struct bottle_err *err)
{
    return run_tx_mode(l, false, body, arg, err);
}

/* ---- open and migrate ------------------------------------------------------ */

static int migrate_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    (void)arg;
    int rc = ledger_exec(l,
                         "CREATE TABLE IF NOT EXISTS schema_version ("
                         " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                         err);
    sqlite3_stmt *s;
    if (rc < 0 || (rc = ledger_stmt(l, ST_VERSION, &s, err)) < 0)
        return rc;
    if ((rc = ledger_step(l, s, err)) < 0)
        return rc;
    int version = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    if (version < 0 || version > LEDGER_SCHEMA_VERSION)
        return err_set(err, EPROTO, "ledger: %s: schema version %d is newer than this bottle (%d)",
                       l->path, version, LEDGER_SCHEMA_VERSION);
    for (int v = version; v < LEDGER_SCHEMA_VERSION; v++) {
        if ((rc = ledger_exec(l, migrations[v], err)) < 0)
            return rc;
        char *ins = xasprintf("INSERT INTO schema_version(version, applied_at) VALUES(%d, %lld)",
                              v + 1, (long long)ledger_now_s());
        rc = ledger_exec(l, ins, err);
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
        int rc = ledger_exec(l, "PRAGMA journal_mode=WAL", err);
        if (rc != -EAGAIN)
            return rc < 0 ? rc : ledger_exec(l, "PRAGMA synchronous=NORMAL", err);
        if (clock_mono_ms() >= deadline)
            return ledger_db_fail(l, SQLITE_BUSY, err, "journal_mode=WAL");
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
    if ((rc = ledger_exec(l, "PRAGMA foreign_keys=ON", err)) < 0)
        return rc;
    return ledger_run_tx(l, migrate_body, NULL, err);
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
    int rc = ledger_stmt(l, ST_VERSION, &s, err);
    if (rc < 0 || (rc = ledger_step(l, s, err)) < 0)
        return rc;
    *(int *)arg = sqlite3_column_int(s, 0);
    sqlite3_reset(s);
    return 0;
}

int ledger_schema_version(struct ledger *l, struct bottle_err *err)
{
    int version = 0;
    int rc = ledger_run_read(l, version_body, &version, err);
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
