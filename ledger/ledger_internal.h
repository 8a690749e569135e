/*
 * ledger_internal — what ledger.c, reserve.c and report.c share: the
 * connection, its prepared statements and the transaction runner. Only
 * the ledger module's own files include it; everyone else speaks ledger.h.
 */
#ifndef BOTTLE_LEDGER_INTERNAL_H
#define BOTTLE_LEDGER_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

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

struct ledger {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmts[ST_COUNT];
    uint64_t rng;      /* backoff jitter */
    int64_t busy_from; /* when the current wait began (clock_mono_ms) */
};

typedef int (*ledger_tx_body)(struct ledger *l, void *arg, struct bottle_err *err);

/* SQLite told us another connection holds the lock. */
bool ledger_is_busy(int rc);
/* Fills err from SQLite's message for rc; -EBUSY for busy/locked, -EIO otherwise. */
int ledger_db_fail(struct ledger *l, int rc, struct bottle_err *err, const char *what);
/* Wall-clock seconds, as stored in the tables. */
int64_t ledger_now_s(void);
/* The prepared statement id, reset and unbound. */
int ledger_stmt(struct ledger *l, enum stmt_id id, sqlite3_stmt **out, struct bottle_err *err);
void ledger_bind_text(sqlite3_stmt *s, int i, const char *v);
/* NULL binds SQL NULL: "no filter". */
void ledger_bind_filter(sqlite3_stmt *s, int i, const char *v);
/* One step: 0 done, 1 a row, < 0 with err set. */
int ledger_step(struct ledger *l, sqlite3_stmt *s, struct bottle_err *err);
int ledger_exec(struct ledger *l, const char *sql, struct bottle_err *err);
/* body inside BEGIN IMMEDIATE, retried on busy until the deadline. */
int ledger_run_tx(struct ledger *l, ledger_tx_body body, void *arg, struct bottle_err *err);
/* body inside a read transaction. */
int ledger_run_read(struct ledger *l, ledger_tx_body body, void *arg, struct bottle_err *err);

#endif
