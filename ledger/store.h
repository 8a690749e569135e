/*
 * store — what a ledger store does for reserve.c and report.c: run a
 * transaction, run one of the ledger's statements with its arguments and
 * hand back its rows, and lock a budget's counter for the rest of the
 * transaction. Two stores implement it: SQLite (store_sqlite.c, one file
 * per host, the default) and PostgreSQL through libpq (store_pg.c, one
 * database shared by many hosts).
 *
 * Both hold the same tables (docs/budgets.md, "The schema") and answer the
 * same statements: each store has its own SQL text for each enum store_stmt,
 * with the same numbered parameters and the same result columns. Extra
 * arguments a store's SQL does not use are ignored. A statement a store
 * does not need has no SQL there and does nothing (returns no rows).
 *
 * Errors: -EAGAIN from a statement means "the transaction must run again"
 * (a busy SQLite file, a PostgreSQL deadlock); the runner rolls back and
 * reruns the body. -ENOTCONN means the server cannot be reached; the
 * runner reconnects once, and otherwise the caller gets -ENOTCONN.
 */
#ifndef BOTTLE_LEDGER_STORE_H
#define BOTTLE_LEDGER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "ledger/ledger.h"

enum store_stmt {
    ST_VERSION,       /* -> highest schema version */
    ST_SPENT_GLOBAL,  /* provider, now, name, scope -> settled in the period + open reserved, period
                       */
    ST_SPENT_BOTTLE,  /* same, for one bottle */
    ST_SPENT_AGENT,   /* same, for one agent */
    ST_SPENT_POOL,    /* same, for one pool */
    ST_PERIOD_GET,    /* scope, name, provider -> period */
    ST_PERIOD_SET,    /* scope, name, provider, period, now */
    ST_BUDGETS_FOR,   /* provider, bottle, agent -> scope, name, limit (most specific first) */
    ST_BUDGET_GET,    /* scope, name, provider -> limit */
    ST_BUDGET_SET,    /* scope, name, provider, limit, now */
    ST_BUDGET_REMOVE, /* scope, name, provider */
    ST_BUDGETS_SCOPE, /* scope -> name, provider, limit (every stored budget of a scope) */
    ST_RUN_POOL,      /* bottle -> pool */
    ST_RUN_START,     /* bottle, host, agent, pool, now */
    ST_RUN_END,       /* bottle, now */
    ST_RESERVE,       /* created, bottle, agent, provider, tokens, pid, host, pool, token -> id */
    ST_RES_BY_TOKEN,  /* token -> id */
    ST_RES_GET,       /* id -> state, tokens, bottle, agent, provider, host, pool (row locked) */
    ST_RES_CLOSE,     /* id, state, now */
    ST_RELEASE,       /* id, now (open only) */
    ST_RELEASE_STALE, /* older_than, now */
    ST_EXPIRE_CHARGE, /* older_than, now: usage rows for expiring reservations */
    ST_EXPIRE_CLOSE,  /* older_than, now: closes them */
    ST_USAGE_INSERT,  /* at, bottle, agent, provider, model, request_id, in, out, cache w, */
                      /* cache r, charged, complete, reservation, host, pool */
    ST_USAGE_EXPIRED, /* reservation -> expired */
    ST_USAGE_REPLACE, /* reservation, at, model, request_id, in, out, cache w, cache r, */
                      /* charged, complete */
    ST_TOTALS,        /* bottle, agent, provider, since, host, pool -> requests, incomplete, */
                      /* in, out, cache w, cache r, charged, expired */
    ST_TOTALS_OPEN,   /* bottle, agent, provider, host, pool -> count, tokens */
    ST_AUDIT_INSERT,  /* at, bottle, action, policy, reason, who -> id */
    ST_AUDIT_LIST,    /* bottle, limit -> id, at, bottle, action, policy, reason, who */
    ST_KERNEL_PUT,    /* bottle, agent, now, counters */
    ST_KERNEL_GET,    /* bottle -> counters */
    ST_PROVIDERS,     /* bottle -> provider */
    ST_GROUP_BOTTLE,  /* since -> key, provider, requests, charged, reserved */
    ST_GROUP_HOST,    /* same, by host */
    ST_GROUP_POOL,    /* same, by pool */
    ST_GROUP_AGENT,   /* same, by agent */
    ST_RUNS,          /* -> bottle, host, agent, pool, started_at, ended_at (0: running) */
    ST_PING,          /* -> 1 */
    ST_COUNT
};

enum store_arg_kind { SA_K_NULL, SA_K_INT, SA_K_TEXT };

struct store_arg {
    enum store_arg_kind kind;
    int64_t i;
    const char *s;
};

static inline struct store_arg SA_INT(int64_t v) {
    return (struct store_arg){SA_K_INT, v, NULL};
}

/* NULL is stored as "". */
static inline struct store_arg
SA_TEXT(const char *v) {
    return (struct store_arg){SA_K_TEXT, 0, v ? v : ""};
}

/* NULL stays SQL NULL: a filter that matches everything. */
static inline struct store_arg
SA_FILTER(const char *v) {
    return (struct store_arg){v ? SA_K_TEXT : SA_K_NULL, 0, v};
}

#define SA_NULL ((struct store_arg){SA_K_NULL, 0, NULL})

/* A statement's result: every row, as text (NULL cells are NULL). */
struct store_rows {
    size_t n_rows, n_cols;
    char **cells;    /* n_rows * n_cols */
    int64_t changed; /* rows a write changed */
    size_t cur;      /* store_row_next moves it */
};

struct ledger_store;
typedef int (*store_body)(struct ledger_store *s, void *arg, struct bottle_err *err);

struct store_ops {
    const char *name; /* "sqlite", "postgresql" */
    /* Opens where (a path or a URL), creates and migrates the schema. */
    int (*open)(const char *where, unsigned flags, struct ledger_store **out,
                struct bottle_err *err);
    void (*close)(struct ledger_store *s);
    /* body in a transaction (write: takes the write path), committed when it returns >= 0. */
    int (*run)(struct ledger_store *s, bool write, store_body body, void *arg,
               struct bottle_err *err);
    /* One statement inside run; rows may be NULL when the result is not wanted. */
    int (*exec)(struct ledger_store *s, enum store_stmt id, const struct store_arg *args, size_t n,
                struct store_rows *rows, struct bottle_err *err);
    /* Holds the counter of one budget until the transaction ends (a no-op where every
     * write transaction is alone). */
    int (*lock)(struct ledger_store *s, enum ledger_scope scope, const char *name,
                const char *provider, struct bottle_err *err);
};

/* What every store's connection starts with. */
struct ledger_store {
    const struct store_ops *ops;
    char *where;    /* the path, or the URL without a password: for messages */
    bool uncertain; /* this run repeats a transaction whose COMMIT got no answer */
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/*
 * Tests only: the next n write transactions on a PostgreSQL store commit,
 * but their answer is thrown away as if the connection had died on the way.
 */
void store_pg_lose_commit_replies(struct ledger_store *s, int n);

/* The store for a ledger locator: PostgreSQL for postgresql:// and postgres:// URLs. */
const struct store_ops *store_for(const char *where);

static inline int store_run(struct ledger_store *s, bool write, store_body body, void *arg,
                            struct bottle_err *err)
{
    return s->ops->run(s, write, body, arg, err);
}

static inline int store_exec(struct ledger_store *s, enum store_stmt id,
                             const struct store_arg *args, size_t n, struct store_rows *rows,
                             struct bottle_err *err)
{
    return s->ops->exec(s, id, args, n, rows, err);
}

static inline int store_lock(struct ledger_store *s, enum ledger_scope scope, const char *name,
                             const char *provider, struct bottle_err *err)
{
    return s->ops->lock(s, scope, name, provider, err);
}

/* Rows: 1 and the next row, or 0 when there is none. */
int store_row_next(struct store_rows *r);
/* The current row's column i; 0 or "" for NULL. */
int64_t store_int(const struct store_rows *r, size_t col);
const char *store_text(const struct store_rows *r, size_t col);
bool store_is_null(const struct store_rows *r, size_t col);
void store_rows_free(struct store_rows *r);
/* Appends one row of n cells (copied) to r; stores fill their results with it. */
void store_rows_add(struct store_rows *r, size_t n, const char *const *cells);

/* A statement returning one integer (0 when no row). */
int store_one_int(struct ledger_store *s, enum store_stmt id, const struct store_arg *args,
                  size_t n, int64_t *out, struct bottle_err *err);

#endif
