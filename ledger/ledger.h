/*
 * ledger — the host's record of LLM token usage, token budgets, budget
 * reservations and enforcement actions: $BOTTLE_HOME/bottle.db, SQLite in
 * WAL mode, shared by every bottle's sidecar and the runtime.
 *
 * The API is a small repository so another store (a server database) can
 * implement it later: nothing here exposes SQL or SQLite types. Every write
 * is one BEGIN IMMEDIATE transaction; a busy or locked database is waited
 * for with jittered exponential backoff, up to LEDGER_BUSY_TIMEOUT_MS, and
 * the whole transaction is retried — a write is never silently dropped.
 *
 * Budgets are token limits for one provider (a route's `metered` key, such
 * as "claude") at one scope: the whole host (global), one bottle, or one
 * agent. What a budget has spent is the settled usage in its scope plus the
 * reservations still open in it. ledger_reserve checks every budget that
 * applies to a request and takes the reservation in the same transaction,
 * so concurrent requests from many processes cannot overshoot a budget.
 *
 * A connection belongs to one process: open it after fork, never before.
 * This module never prints and never deletes usage or audit rows.
 */
#ifndef BOTTLE_LEDGER_LEDGER_H
#define BOTTLE_LEDGER_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define LEDGER_FILE            "bottle.db"
#define LEDGER_BUSY_TIMEOUT_MS 30000
#define LEDGER_NAME_MAX        128
/* The largest token count one call takes; sums of them cannot overflow. */
#define LEDGER_TOKENS_MAX ((int64_t)1 << 50)

/* ledger_reserve's answer when the estimate does not fit a budget. */
#define LEDGER_DOES_NOT_FIT 1

struct ledger;

enum ledger_scope {
    LEDGER_SCOPE_GLOBAL = 0, /* every bottle on the host; name is "" */
    LEDGER_SCOPE_BOTTLE,     /* one bottle, by slug */
    LEDGER_SCOPE_AGENT,      /* one agent, across bottles */
};

struct ledger_usage {
    int64_t input_tokens; /* not read from or written to a cache */
    int64_t output_tokens;
    int64_t cache_creation_tokens;
    int64_t cache_read_tokens;
};

/* Who a request is charged to. agent may be NULL or "" (no agent scope). */
struct ledger_subject {
    const char *bottle;
    const char *agent;
    const char *provider;
};

/* One metered exchange. NULL strings are stored as "". */
struct ledger_record {
    struct ledger_subject who; /* ignored by ledger_settle: the reservation's subject is used */
    const char *model;
    const char *request_id;
    struct ledger_usage usage;
    bool complete; /* false: the response ended without its final usage */
    int64_t at;    /* unix seconds; 0 means now */
};

struct ledger_budget {
    enum ledger_scope scope;
    const char *name; /* bottle slug or agent name; ignored (and "") for global */
    const char *provider;
    int64_t limit_tokens;
};

/* The budget a reservation did not fit; the most specific one when several. */
struct ledger_denial {
    enum ledger_scope scope;
    char name[LEDGER_NAME_MAX];
    char provider[LEDGER_NAME_MAX];
    int64_t limit_tokens;
    int64_t spent_tokens; /* settled usage plus open reservations */
    int64_t left_tokens;  /* limit - spent, never below 0 */
};

/* What ledger_totals sums; NULL members and since 0 match everything. */
struct ledger_filter {
    const char *bottle;
    const char *agent;
    const char *provider;
    int64_t since; /* unix seconds, inclusive */
};

struct ledger_totals {
    int64_t requests;   /* usage rows */
    int64_t incomplete; /* of which recorded without final usage */
    struct ledger_usage usage;
    int64_t charged_tokens;    /* what counted against budgets */
    int64_t open_reservations; /* reservations not yet settled or released */
    int64_t reserved_tokens;   /* their tokens (not filtered by since) */
};

struct ledger_audit {
    int64_t at; /* unix seconds; 0 means now on insert */
    const char *bottle;
    const char *action; /* cutoff, freeze, kill, restore, ... */
    const char *policy;
    const char *reason;
    const char *who; /* "budget", "operator:<user>", ... */
};

struct ledger_audit_entry {
    int64_t id;
    int64_t at;
    char *bottle, *action, *policy, *reason, *who;
};

/* $BOTTLE_HOME/bottle.db (allocated); $BOTTLE_HOME defaults to ~/.bottle. */
int ledger_default_path(char **out, struct bottle_err *err);

/*
 * Opens (creating it 0600, and its directory 0700) and migrates the ledger.
 * path NULL: ledger_default_path(). Migrations are idempotent and safe when
 * several processes open the same new file at once.
 */
int ledger_open(const char *path, struct ledger **out, struct bottle_err *err);
void ledger_close(struct ledger *l);
/* The highest migration applied (ledger.c's LEDGER_SCHEMA_VERSION after open). */
int ledger_schema_version(struct ledger *l, struct bottle_err *err);

/* Sets (inserts or replaces) a budget, or removes it. limit_tokens >= 0. */
int ledger_budget_set(struct ledger *l, const struct ledger_budget *b, struct bottle_err *err);
int ledger_budget_remove(struct ledger *l, enum ledger_scope scope, const char *name,
                         const char *provider, struct bottle_err *err);

/*
 * Reserves tokens against every budget applying to who (global, the bottle,
 * the agent; same provider) in one transaction. Returns 0 with *id set,
 * LEDGER_DOES_NOT_FIT with *denied filled (the agent's budget before the
 * bottle's before the global one), or a negative error.
 */
int ledger_reserve(struct ledger *l, const struct ledger_subject *who, int64_t tokens, int64_t *id,
                   struct ledger_denial *denied, struct bottle_err *err);
/*
 * Same, but checks exactly the n budgets given (the bottle's effective
 * budgets from its plan) instead of the stored ones; their spending is
 * still what the ledger holds for each scope. n 0: reserves without a check.
 */
int ledger_reserve_in(struct ledger *l, const struct ledger_subject *who, int64_t tokens,
                      const struct ledger_budget *budgets, size_t n, int64_t *id,
                      struct ledger_denial *denied, struct bottle_err *err);
/*
 * Turns a reservation into a usage row attributed to the reservation's
 * subject. Charged: the usage's sum; when rec->complete is false, at least
 * the reservation. A released (stale) reservation can still be settled;
 * settling twice is -EALREADY, an unknown id -ENOENT.
 */
int ledger_settle(struct ledger *l, int64_t id, const struct ledger_record *rec,
                  struct bottle_err *err);
/* Gives an open reservation back (request refused or failed before upstream answered). */
int ledger_release(struct ledger *l, int64_t id, struct bottle_err *err);
/* Releases open reservations created before older_than (unix seconds); returns how many. */
int ledger_release_stale(struct ledger *l, int64_t older_than, struct bottle_err *err);

/* A usage row with no reservation behind it. */
int ledger_record_usage(struct ledger *l, const struct ledger_record *rec, struct bottle_err *err);

int ledger_totals(struct ledger *l, const struct ledger_filter *f, struct ledger_totals *out,
                  struct bottle_err *err);
/* Settled plus open-reserved tokens of one budget scope, whether or not a budget is set. */
int ledger_spent(struct ledger *l, enum ledger_scope scope, const char *name, const char *provider,
                 int64_t *spent, struct bottle_err *err);

int ledger_audit_add(struct ledger *l, const struct ledger_audit *a, int64_t *id,
                     struct bottle_err *err);
/* Newest first; bottle NULL: every bottle; limit 0: no limit. Free with ledger_audit_free. */
int ledger_audit_list(struct ledger *l, const char *bottle, size_t limit,
                      struct ledger_audit_entry **out, size_t *n, struct bottle_err *err);
void ledger_audit_free(struct ledger_audit_entry *entries, size_t n);

const char *ledger_scope_name(enum ledger_scope scope);

/*
 * A finished bottle's last kernel counters (a JSON object as `bottle usage
 * --json` prints them), kept so usage answers after the bottle is gone.
 * get: -ENOENT when none were kept; *counters is allocated.
 */
int ledger_kernel_put(struct ledger *l, const char *bottle, const char *agent, const char *counters,
                      struct bottle_err *err);
int ledger_kernel_get(struct ledger *l, const char *bottle, char **counters,
                      struct bottle_err *err);

/* The providers a bottle has usage or reservations for, sorted, into out. */
struct strv;
int ledger_providers(struct ledger *l, const char *bottle, struct strv *out,
                     struct bottle_err *err);

#endif
