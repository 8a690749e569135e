/*
 * store_pg — the PostgreSQL store: one database many hosts share, reached
 * through libpq (see store.h).
 *
 * Concurrency: write transactions run at READ COMMITTED. A reservation
 * first holds, with SELECT ... FOR UPDATE, the row of budget_lock keyed by
 * each budget it checks (scope, name, provider), in one order everywhere;
 * only then does it sum that budget's spending and insert. A second host
 * reserving against the same budget waits for the row and, since every
 * statement at READ COMMITTED sees what committed before it began, sums
 * the spending including the first host's reservation. Budgets nobody
 * checks take no lock. A deadlock or serialization failure reruns the
 * whole transaction with backoff, like a busy SQLite file.
 *
 * Connections: the URL is parsed with libpq; the password comes from
 * PGPASSWORD, a password file or a service file, never from the URL
 * (ledger_check_locator), and once a connection has used one it is kept in
 * memory for reconnects (a sidecar reconnects after dropping the uid that
 * could read the file). A lost connection is reconnected once at once;
 * after that the store is "down": calls fail with -ENOTCONN without trying
 * until a jittered backoff (250 ms doubling to 5 s) has passed. A COMMIT
 * whose answer was lost may have committed: the rerun is marked uncertain
 * (struct ledger_store), and reserve, settle and release find their first
 * try's effect instead of doing it twice.
 */
#include "ledger/store.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"

#define SCHEMA_VERSION   3
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS   5000
#define MIGRATION_LOCK   "7428301052"

/* The budget_lock statements, past the shared ones. */
enum { PG_LOCK_GET = ST_COUNT, PG_LOCK_ADD, PG_COUNT };

/* As store_sqlite.c's: $1 provider, $2 now, $3 name, $4 scope -> spent, period. */
#define SPENT_SUM(where)                                                                           \
    "WITH p AS (SELECT COALESCE((SELECT period FROM counter_period WHERE scope=$4 AND name=$3 "    \
    "AND provider=$1), 'total') AS period), s AS (SELECT CASE period WHEN 'day' THEN "             \
    "$2::bigint - $2::bigint % 86400 WHEN 'month' THEN extract(epoch FROM date_trunc('month', "    \
    "to_timestamp($2::bigint) AT TIME ZONE 'UTC'))::bigint ELSE 0 END AS since FROM p) "           \
    "SELECT (SELECT COALESCE(SUM(charged_tokens),0) FROM usage WHERE provider=$1 AND at >= "       \
    "(SELECT since FROM s)" where ") + (SELECT COALESCE(SUM(tokens),0) FROM reservation WHERE "    \
    "state='open' AND provider=$1" where "), (SELECT period FROM p)"

#define GROUP_BY(col)                                                                              \
    "SELECT k, provider, SUM(req), SUM(charged), SUM(reserved) FROM ("                             \
    "SELECT " col " AS k, provider, 1 AS req, charged_tokens AS charged, 0 AS reserved "           \
    "FROM usage WHERE at >= $1 UNION ALL SELECT " col ", provider, 0, 0, tokens "                  \
    "FROM reservation WHERE state='open') AS g GROUP BY k, provider ORDER BY k, provider"

static const char *const pg_sql[PG_COUNT] = {
    [ST_VERSION] = "SELECT COALESCE(MAX(version),0) FROM schema_version",
    [ST_SPENT_GLOBAL] = SPENT_SUM(""),
    [ST_SPENT_BOTTLE] = SPENT_SUM(" AND bottle=$3"),
    [ST_SPENT_AGENT] = SPENT_SUM(" AND agent=$3"),
    [ST_SPENT_POOL] = SPENT_SUM(" AND pool=$3"),
    [ST_PERIOD_GET] =
        "SELECT period FROM counter_period WHERE scope=$1 AND name=$2 AND provider=$3",
    [ST_PERIOD_SET] = "INSERT INTO counter_period(scope, name, provider, period, updated_at) "
                      "VALUES($1, $2, $3, $4, $5) ON CONFLICT(scope, name, provider) DO UPDATE "
                      "SET period=EXCLUDED.period, updated_at=EXCLUDED.updated_at",
    [ST_BUDGETS_FOR] = "SELECT scope, name, limit_tokens FROM budget WHERE provider=$1 AND "
                       "(scope=0 OR (scope=1 AND name=$2) OR (scope=2 AND name=$3)) "
                       "ORDER BY scope DESC",
    [ST_BUDGET_GET] = "SELECT limit_tokens FROM budget WHERE scope=$1 AND name=$2 AND provider=$3",
    [ST_BUDGET_SET] = "INSERT INTO budget(scope, name, provider, limit_tokens, updated_at) "
                      "VALUES($1, $2, $3, $4, $5) ON CONFLICT(scope, name, provider) "
                      "DO UPDATE SET limit_tokens=EXCLUDED.limit_tokens, "
                      "updated_at=EXCLUDED.updated_at",
    [ST_BUDGET_REMOVE] = "DELETE FROM budget WHERE scope=$1 AND name=$2 AND provider=$3",
    [ST_BUDGETS_SCOPE] = "SELECT name, provider, limit_tokens FROM budget WHERE scope=$1 "
                         "ORDER BY name, provider",
    [ST_RUN_POOL] = "SELECT pool FROM bottle_run WHERE bottle=$1",
    [ST_RUN_START] = "INSERT INTO bottle_run(bottle, host, agent, pool, started_at, ended_at) "
                     "VALUES($1, $2, $3, $4, $5, NULL) ON CONFLICT(bottle) DO UPDATE SET "
                     "host=EXCLUDED.host, agent=EXCLUDED.agent, pool=EXCLUDED.pool, "
                     "started_at=EXCLUDED.started_at, ended_at=NULL",
    [ST_RUN_END] = "UPDATE bottle_run SET ended_at=$2 WHERE bottle=$1",
    [ST_RESERVE] = "INSERT INTO reservation(created_at, bottle, agent, provider, tokens, state, "
                   "pid, host, pool, token) VALUES($1, $2, $3, $4, $5, 'open', $6, $7, $8, $9) "
                   "RETURNING id",
    [ST_RES_BY_TOKEN] = "SELECT id FROM reservation WHERE token=$1",
    [ST_RES_GET] = "SELECT state, tokens, bottle, agent, provider, host, pool FROM reservation "
                   "WHERE id=$1 FOR UPDATE",
    [ST_RES_CLOSE] = "UPDATE reservation SET state=$2, closed_at=$3 WHERE id=$1",
    [ST_RELEASE] = "UPDATE reservation SET state='released', closed_at=$2 "
                   "WHERE id=$1 AND state='open'",
    [ST_RELEASE_STALE] = "UPDATE reservation SET state='released', closed_at=$2 "
                         "WHERE state='open' AND created_at < $1",
    /* One statement closes and charges: a settle holding the row is waited for. */
    [ST_EXPIRE_CHARGE] =
        "WITH x AS (UPDATE reservation SET state='settled', closed_at=$2 "
        "WHERE state='open' AND created_at < $1 "
        "RETURNING id, bottle, agent, provider, tokens, host, pool) "
        "INSERT INTO usage(at, bottle, agent, provider, model, request_id, input_tokens, "
        "output_tokens, cache_creation_tokens, cache_read_tokens, charged_tokens, complete, "
        "reservation_id, host, pool, expired) "
        "SELECT $2, bottle, agent, provider, '', '', 0, 0, 0, 0, tokens, 0, id, host, pool, 1 "
        "FROM x",
    [ST_USAGE_INSERT] = "INSERT INTO usage(at, bottle, agent, provider, model, request_id, "
                        "input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, "
                        "charged_tokens, complete, reservation_id, host, pool) "
                        "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    [ST_USAGE_EXPIRED] = "SELECT expired FROM usage WHERE reservation_id=$1",
    [ST_USAGE_REPLACE] = "UPDATE usage SET at=$2, model=$3, request_id=$4, input_tokens=$5, "
                         "output_tokens=$6, cache_creation_tokens=$7, cache_read_tokens=$8, "
                         "charged_tokens=$9, complete=$10, expired=0 "
                         "WHERE reservation_id=$1 AND expired=1",
    [ST_TOTALS] = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN complete=0 THEN 1 ELSE 0 END),0), "
                  "COALESCE(SUM(input_tokens),0), COALESCE(SUM(output_tokens),0), "
                  "COALESCE(SUM(cache_creation_tokens),0), COALESCE(SUM(cache_read_tokens),0), "
                  "COALESCE(SUM(charged_tokens),0), COALESCE(SUM(expired),0) FROM usage "
                  "WHERE ($1::text IS NULL OR bottle=$1) AND ($2::text IS NULL OR agent=$2) "
                  "AND ($3::text IS NULL OR provider=$3) AND at >= $4 "
                  "AND ($5::text IS NULL OR host=$5) AND ($6::text IS NULL OR pool=$6)",
    [ST_TOTALS_OPEN] = "SELECT COUNT(*), COALESCE(SUM(tokens),0) FROM reservation "
                       "WHERE state='open' AND ($1::text IS NULL OR bottle=$1) "
                       "AND ($2::text IS NULL OR agent=$2) AND ($3::text IS NULL OR provider=$3) "
                       "AND ($4::text IS NULL OR host=$4) AND ($5::text IS NULL OR pool=$5)",
    [ST_AUDIT_INSERT] = "INSERT INTO audit(at, bottle, action, policy, reason, who) "
                        "VALUES($1, $2, $3, $4, $5, $6) RETURNING id",
    [ST_AUDIT_LIST] = "SELECT id, at, bottle, action, policy, reason, who FROM audit "
                      "WHERE ($1::text IS NULL OR bottle=$1) ORDER BY id DESC LIMIT $2",
    [ST_KERNEL_PUT] = "INSERT INTO kernel_final(bottle, agent, at, counters) "
                      "VALUES($1, $2, $3, $4) ON CONFLICT(bottle) DO UPDATE SET "
                      "agent=EXCLUDED.agent, at=EXCLUDED.at, counters=EXCLUDED.counters",
    [ST_KERNEL_GET] = "SELECT counters FROM kernel_final WHERE bottle=$1",
    [ST_PROVIDERS] = "SELECT provider FROM usage WHERE bottle=$1 UNION "
                     "SELECT provider FROM reservation WHERE bottle=$1 ORDER BY 1",
    [ST_GROUP_BOTTLE] = GROUP_BY("bottle"),
    [ST_GROUP_HOST] = GROUP_BY("host"),
    [ST_GROUP_POOL] = GROUP_BY("pool"),
    [ST_GROUP_AGENT] = GROUP_BY("agent"),
    [ST_RUNS] = "SELECT bottle, host, agent, pool, started_at, COALESCE(ended_at,0) "
                "FROM bottle_run ORDER BY started_at DESC, bottle",
    [ST_PING] = "SELECT 1",
    [PG_LOCK_GET] = "SELECT 1 FROM budget_lock WHERE scope=$1 AND name=$2 AND provider=$3 "
                    "FOR UPDATE",
    [PG_LOCK_ADD] = "INSERT INTO budget_lock(scope, name, provider) VALUES($1, $2, $3) "
                    "ON CONFLICT DO NOTHING",
};

/* The same three steps as store_sqlite.c's migrations, in PostgreSQL's words. Append only. */
static const char *const migrations[SCHEMA_VERSION] = {
    "CREATE TABLE reservation ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " created_at BIGINT NOT NULL, closed_at BIGINT,"
    " bottle TEXT NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,"
    " tokens BIGINT NOT NULL CHECK (tokens >= 0),"
    " state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')),"
    " pid BIGINT NOT NULL);"
    "CREATE INDEX reservation_open_bottle ON reservation(provider, bottle) WHERE state='open';"
    "CREATE INDEX reservation_open_agent ON reservation(provider, agent) WHERE state='open';"
    "CREATE INDEX reservation_open_age ON reservation(created_at) WHERE state='open';"
    "CREATE TABLE usage ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " at BIGINT NOT NULL,"
    " bottle TEXT NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,"
    " model TEXT NOT NULL, request_id TEXT NOT NULL,"
    " input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,"
    " cache_creation_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL,"
    " charged_tokens BIGINT NOT NULL CHECK (charged_tokens >= 0),"
    " complete INTEGER NOT NULL,"
    " reservation_id BIGINT UNIQUE REFERENCES reservation(id));"
    "CREATE INDEX usage_by_bottle ON usage(provider, bottle, charged_tokens);"
    "CREATE INDEX usage_by_agent ON usage(provider, agent, charged_tokens);"
    "CREATE INDEX usage_by_time ON usage(at);"
    "CREATE TABLE budget ("
    " scope INTEGER NOT NULL CHECK (scope IN (0, 1, 2)),"
    " name TEXT NOT NULL, provider TEXT NOT NULL,"
    " limit_tokens BIGINT NOT NULL CHECK (limit_tokens >= 0),"
    " updated_at BIGINT NOT NULL,"
    " PRIMARY KEY (scope, name, provider));"
    "CREATE TABLE audit ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " at BIGINT NOT NULL,"
    " bottle TEXT NOT NULL, action TEXT NOT NULL, policy TEXT NOT NULL,"
    " reason TEXT NOT NULL, who TEXT NOT NULL);"
    "CREATE INDEX audit_by_bottle ON audit(bottle, id);",
    "CREATE TABLE kernel_final ("
    " bottle TEXT PRIMARY KEY,"
    " agent TEXT NOT NULL,"
    " at BIGINT NOT NULL,"
    " counters TEXT NOT NULL);",
    "ALTER TABLE usage ADD COLUMN host TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN pool TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX usage_by_bottle;"
    "DROP INDEX usage_by_agent;"
    "CREATE INDEX usage_provider_at ON usage(provider, at) INCLUDE (charged_tokens);"
    "CREATE INDEX usage_bottle_at ON usage(provider, bottle, at) INCLUDE (charged_tokens);"
    "CREATE INDEX usage_agent_at ON usage(provider, agent, at) INCLUDE (charged_tokens);"
    "CREATE INDEX usage_pool_at ON usage(provider, pool, at) INCLUDE (charged_tokens);"
    "ALTER TABLE reservation ADD COLUMN host TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN pool TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN token TEXT UNIQUE;"
    "CREATE INDEX reservation_open_pool ON reservation(provider, pool) WHERE state='open';"
    "ALTER TABLE budget DROP CONSTRAINT budget_scope_check,"
    " ADD CONSTRAINT budget_scope_check CHECK (scope IN (0, 1, 2, 3));"
    "CREATE TABLE counter_period ("
    " scope INTEGER NOT NULL CHECK (scope IN (0, 1, 2, 3)),"
    " name TEXT NOT NULL, provider TEXT NOT NULL,"
    " period TEXT NOT NULL CHECK (period IN ('total', 'day', 'month')),"
    " updated_at BIGINT NOT NULL,"
    " PRIMARY KEY (scope, name, provider));"
    "CREATE TABLE bottle_run ("
    " bottle TEXT PRIMARY KEY,"
    " host TEXT NOT NULL, agent TEXT NOT NULL, pool TEXT NOT NULL,"
    " started_at BIGINT NOT NULL, ended_at BIGINT);"
    "CREATE TABLE budget_lock ("
    " scope INTEGER NOT NULL, name TEXT NOT NULL, provider TEXT NOT NULL,"
    " PRIMARY KEY (scope, name, provider));",
};

struct pg_store {
    struct ledger_store base;
    PGconn *conn;
    char **keys, **vals; /* connection parameters, NULL-ended */
    size_t n_params;
    bool retry; /* LEDGER_OPEN_RETRY */
    bool migrated;
    bool prepared[PG_COUNT];
    int n_args[PG_COUNT];
    int64_t down_until; /* monotonic ms: no attempt before */
    int64_t backoff_ms;
    char down_msg[256];
    uint64_t rng;
    int lose_replies; /* tests: COMMIT answers to throw away */
};

#define PG(s) ((struct pg_store *)(s))

/* ---- connection parameters ------------------------------------------------------- */

static const char *param_get(const struct pg_store *p, const char *key)
{
    for (size_t i = 0; i < p->n_params; i++)
        if (strcmp(p->keys[i], key) == 0)
            return p->vals[i];
    return NULL;
}

static void param_set(struct pg_store *p, const char *key, const char *val)
{
    for (size_t i = 0; i < p->n_params; i++)
        if (strcmp(p->keys[i], key) == 0) {
            free(p->vals[i]);
            p->vals[i] = xstrdup(val);
            return;
        }
    p->keys = xrealloc(p->keys, (p->n_params + 2) * sizeof(char *));
    p->vals = xrealloc(p->vals, (p->n_params + 2) * sizeof(char *));
    p->keys[p->n_params] = xstrdup(key);
    p->vals[p->n_params] = xstrdup(val);
    p->n_params++;
    p->keys[p->n_params] = p->vals[p->n_params] = NULL;
}

static void param_default(struct pg_store *p, const char *key, const char *val)
{
    if (!param_get(p, key))
        param_set(p, key, val);
}

static int parse_url(struct pg_store *p, const char *url, struct bottle_err *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (!opts) {
        int rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: %s: %s", url,
                              msg ? msg : "not a PostgreSQL URL");
        PQfreemem(msg);
        return rc;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val && *o->val)
            param_set(p, o->keyword, o->val);
    PQconninfoFree(opts);
    /*
     * A connection that cannot be made or that dies is noticed in seconds, not minutes: the
     * sidecar waits for the ledger on its event loop, so every wait is bounded.
     */
    param_default(p, "connect_timeout", "3");
    param_default(p, "tcp_user_timeout", "5000");
    param_default(p, "keepalives", "1");
    param_default(p, "keepalives_idle", "15");
    param_default(p, "keepalives_interval", "5");
    param_default(p, "keepalives_count", "3");
    param_default(p, "application_name", "bottle-ledger");
    /* No Kerberos unless asked for: the confined sidecar has no credentials cache to read. */
    param_default(p, "gssencmode", "disable");
    return 0;
}

/* ---- errors --------------------------------------------------------------------------- */

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static uint64_t next_random(struct pg_store *p)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return p->rng;
}

static void drop_conn(struct pg_store *p)
{
    if (p->conn)
        PQfinish(p->conn);
    p->conn = NULL;
    memset(p->prepared, 0, sizeof(p->prepared));
}

/* The server is away: no new attempt before the backoff has passed. */
static int mark_down(struct pg_store *p, const char *why, struct bottle_err *err)
{
    drop_conn(p);
    snprintf(p->down_msg, sizeof(p->down_msg), "%s", why);
    trim(p->down_msg);
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (p->backoff_ms > BACKOFF_MAX_MS)
        p->backoff_ms = BACKOFF_MAX_MS;
    int64_t wait =
        p->backoff_ms / 2 + (int64_t)(next_random(p) % (uint64_t)(p->backoff_ms / 2 + 1));
    p->down_until = clock_mono_ms() + wait;
    return err_set(err, ENOTCONN, "ledger: %s: unreachable: %s", p->base.where, p->down_msg);
}

static bool connection_state(const char *state)
{
    return state && (strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 ||
                     strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0);
}

/* A failed result: -EAGAIN (run again), -ENOTCONN (the connection is gone) or -EIO. */
static int result_fail(struct pg_store *p, PGresult *res, const char *what, struct bottle_err *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[512];
    snprintf(msg, sizeof(msg), "%s",
             res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                               : PQerrorMessage(p->conn));
    trim(msg);
    if (PQstatus(p->conn) != CONNECTION_OK || connection_state(state)) {
        drop_conn(p);
        return err_set(err, ENOTCONN, "ledger: %s: connection lost: %s", p->base.where, msg);
    }
    if (state &&
        (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0))
        return -EAGAIN;
    return err_set(err, EIO, "ledger: %s: %s: %s", p->base.where, what, msg);
}

static int simple(struct pg_store *p, const char *sql, struct bottle_err *err)
{
    if (!p->conn)
        return err_set(err, ENOTCONN, "ledger: %s: not connected", p->base.where);
    PGresult *res = PQexec(p->conn, sql);
    int rc = 0;
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = result_fail(p, res, sql, err);
    PQclear(res);
    return rc;
}

/* ---- statements ---------------------------------------------------------------------- */

static int count_args(const char *sql)
{
    int max = 0;
    for (const char *c = strchr(sql, '$'); c; c = strchr(c + 1, '$')) {
        int v = atoi(c + 1);
        if (v > max)
            max = v;
    }
    return max;
}

static int run_stmt(struct pg_store *p, int id, const struct store_arg *args, size_t n,
                    struct store_rows *rows, struct bottle_err *err)
{
    if (rows)
        memset(rows, 0, sizeof(*rows));
    if (!pg_sql[id])
        return 0;
    if (!p->conn)
        return err_set(err, ENOTCONN, "ledger: %s: not connected", p->base.where);
    char name[16];
    snprintf(name, sizeof(name), "bl%d", id);
    if (!p->prepared[id]) {
        PGresult *res = PQprepare(p->conn, name, pg_sql[id], 0, NULL);
        int rc = 0;
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = result_fail(p, res, "prepare", err);
        PQclear(res);
        if (rc < 0)
            return rc;
        p->prepared[id] = true;
        p->n_args[id] = count_args(pg_sql[id]);
    }
    int want = p->n_args[id];
    const char *values[16] = {0};
    char nums[16][24];
    for (int i = 0; i < want && i < 16; i++) {
        if ((size_t)i >= n || args[i].kind == SA_K_NULL)
            values[i] = NULL;
        else if (args[i].kind == SA_K_TEXT)
            values[i] = args[i].s;
        else {
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)args[i].i);
            values[i] = nums[i];
        }
    }
    PGresult *res = PQexecPrepared(p->conn, name, want, values, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = result_fail(p, res, "query", err);
        PQclear(res);
        return rc;
    }
    if (rows) {
        int nr = PQntuples(res), nc = PQnfields(res);
        const char *cells[16];
        for (int r = 0; r < nr; r++) {
            for (int c = 0; c < nc && c < 16; c++)
                cells[c] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
            store_rows_add(rows, (size_t)(nc < 16 ? nc : 16), cells);
        }
        rows->changed = strtoll(PQcmdTuples(res), NULL, 10);
    }
    PQclear(res);
    return 0;
}

static int pg_exec(struct ledger_store *s, enum store_stmt id, const struct store_arg *args,
                   size_t n, struct store_rows *rows, struct bottle_err *err)
{
    return run_stmt(PG(s), (int)id, args, n, rows, err);
}

static int pg_lock(struct ledger_store *s, enum ledger_scope scope, const char *name,
                   const char *provider, struct bottle_err *err)
{
    struct pg_store *p = PG(s);
    struct store_arg a[] = {SA_INT(scope), SA_TEXT(name), SA_TEXT(provider)};
    struct store_rows r;
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = run_stmt(p, PG_LOCK_GET, a, 3, &r, err);
        if (rc < 0)
            return rc;
        size_t held = r.n_rows;
        store_rows_free(&r);
        if (held)
            return 0;
        /* The first reservation against this budget: its row, then hold it. */
        if ((rc = run_stmt(p, PG_LOCK_ADD, a, 3, NULL, err)) < 0)
            return rc;
    }
    return err_set(err, EIO, "ledger: %s: cannot hold the %s budget's row", p->base.where,
                   ledger_scope_name(scope));
}

/* ---- connecting and migrating ------------------------------------------------------------ */

static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message; /* "relation already exists, skipping" and the like */
}

static int migrate(struct pg_store *p, struct bottle_err *err)
{
    int rc = simple(p,
                    "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ");"
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                    err);
    int64_t version = 0;
    if (rc == 0)
        rc = store_one_int(&p->base, ST_VERSION, NULL, 0, &version, err);
    if (rc == 0 && (version < 0 || version > SCHEMA_VERSION))
        rc = err_set(err, EPROTO, "ledger: %s: schema version %lld is newer than this bottle (%d)",
                     p->base.where, (long long)version, SCHEMA_VERSION);
    for (int v = (int)version; rc == 0 && v < SCHEMA_VERSION; v++) {
        if ((rc = simple(p, migrations[v], err)) < 0)
            break;
        char *ins = xasprintf("INSERT INTO schema_version(version, applied_at) VALUES(%d, %lld)",
                              v + 1, (long long)time(NULL));
        rc = simple(p, ins, err);
        free(ins);
    }
    if (rc == 0)
        rc = simple(p, "COMMIT", err);
    else if (p->conn)
        simple(p, "ROLLBACK", &(struct bottle_err){0});
    if (rc == 0)
        p->migrated = true;
    return rc;
}

/* Connects (and migrates a new database); a failure marks the store down. */
static int connect_now(struct pg_store *p, struct bottle_err *err)
{
    drop_conn(p);
    PGconn *c = PQconnectdbParams((const char *const *)p->keys, (const char *const *)p->vals, 0);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char why[256];
        snprintf(why, sizeof(why), "%s", c ? PQerrorMessage(c) : "out of memory");
        if (c)
            PQfinish(c);
        return mark_down(p, why, err);
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    /* Kept for reconnects: the file it came from may not be readable later. */
    const char *pw = PQpass(c);
    if (PQconnectionUsedPassword(c) && pw && *pw && !param_get(p, "password"))
        param_set(p, "password", pw);
    p->conn = c;
    /*
     * A client that vanishes mid-transaction frees its budget rows within seconds, and no
     * statement or lock wait holds a caller longer than the timeouts docs/budgets.md lists.
     */
    int rc = simple(p,
                    "SET idle_in_transaction_session_timeout = '5s';"
                    "SET lock_timeout = '10s'; SET statement_timeout = '10s'",
                    err);
    if (rc == 0 && !p->migrated)
        rc = migrate(p, err);
    if (rc == -ENOTCONN)
        return mark_down(p, err->msg, err);
    if (rc < 0) {
        drop_conn(p);
        return rc;
    }
    p->backoff_ms = 0;
    p->down_until = 0;
    return 0;
}

/* Connected, or a fresh attempt once the backoff allows it. */
static int ensure_conn(struct pg_store *p, struct bottle_err *err)
{
    if (p->conn && PQstatus(p->conn) == CONNECTION_OK)
        return 0;
    int64_t now = clock_mono_ms();
    if (now < p->down_until)
        return err_set(err, ENOTCONN, "ledger: %s: unreachable (%s); next attempt in %lld ms",
                       p->base.where, p->down_msg, (long long)(p->down_until - now));
    return connect_now(p, err);
}

/* ---- transactions ------------------------------------------------------------------------- */

static int pg_run(struct ledger_store *s, bool write, store_body body, void *arg,
                  struct bottle_err *err)
{
    struct pg_store *p = PG(s);
    int64_t deadline = clock_mono_ms() + LEDGER_BUSY_TIMEOUT_MS;
    bool reconnected = false;
    s->uncertain = false;
    for (int attempt = 0;; attempt++) {
        int rc = ensure_conn(p, err);
        if (rc < 0) {
            s->uncertain = false;
            return rc;
        }
        /* Reads need no transaction: each statement sees what committed before it. */
        rc = write ? simple(p, "BEGIN", err) : 0;
        if (rc == 0 && !write) {
            rc = body(s, arg, err);
            if (rc >= 0)
                return rc;
        } else if (rc == 0) {
            rc = body(s, arg, err);
            if (rc >= 0) {
                int body_rc = rc;
                rc = simple(p, "COMMIT", err);
                if (rc == 0 && write && p->lose_replies > 0) {
                    p->lose_replies--; /* as if the connection died with the answer on its way */
                    drop_conn(p);
                    rc = err_set(err, ENOTCONN, "ledger: %s: connection lost", s->where);
                }
                if (rc == 0) {
                    s->uncertain = false;
                    return body_rc;
                }
                if (rc == -ENOTCONN && write)
                    s->uncertain = true; /* it may have committed */
            } else if (p->conn) {
                simple(p, "ROLLBACK", &(struct bottle_err){0});
            }
        }
        if (rc == -ENOTCONN && !reconnected) {
            /* One fresh connection at once (a restarted server, a dropped idle connection). */
            reconnected = true;
            drop_conn(p);
            p->down_until = 0;
            continue;
        }
        if (rc == -ENOTCONN) {
            s->uncertain = false;
            if (p->conn)
                return rc;
            return p->down_until ? rc : mark_down(p, err->msg, err);
        }
        if (rc != -EAGAIN) {
            s->uncertain = false;
            return rc;
        }
        if (clock_mono_ms() >= deadline) {
            s->uncertain = false;
            return err_set(err, EBUSY, "ledger: %s: transaction kept conflicting for %d ms",
                           s->where, LEDGER_BUSY_TIMEOUT_MS);
        }
        unsigned cap = 100u << (attempt < 6 ? attempt : 6); /* us */
        struct timespec ts = {0, (long)(cap / 2 + next_random(p) % (cap / 2 + 1)) * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- open and close ------------------------------------------------------------------------- */

static void pg_close(struct ledger_store *s)
{
    struct pg_store *p = PG(s);
    if (!p)
        return;
    drop_conn(p);
    for (size_t i = 0; i < p->n_params; i++) {
        if (strcmp(p->keys[i], "password") == 0)
            memset(p->vals[i], 0, strlen(p->vals[i]));
        free(p->keys[i]);
        free(p->vals[i]);
    }
    free(p->keys);
    free(p->vals);
    free(p->base.where);
    free(p);
}

static int pg_open(const char *where, unsigned flags, struct ledger_store **out,
                   struct bottle_err *err)
{
    struct pg_store *p = xcalloc(1, sizeof(*p));
    p->base.ops = &store_pg_ops;
    p->base.where = xstrdup(where);
    p->retry = (flags & LEDGER_OPEN_RETRY) != 0;
    p->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)clock_mono_ms() ^ (uint64_t)(uintptr_t)p;
    p->rng |= 1;
    int rc = parse_url(p, where, err);
    if (rc == 0)
        rc = connect_now(p, err);
    if (rc == -ENOTCONN && p->retry)
        rc = 0; /* calls fail until the server answers */
    if (rc < 0) {
        pg_close(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}

void store_pg_lose_commit_replies(struct ledger_store *s, int n)
{
    if (s->ops == &store_pg_ops)
        PG(s)->lose_replies = n;
}

const struct store_ops store_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .run = pg_run,
    .exec = pg_exec,
    .lock = pg_lock,
};
