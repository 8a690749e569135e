/*
 * ledger — the record of LLM token usage, token budgets, budget
 * reservations and enforcement actions, shared by every bottle's sidecar
 * and the runtime. Two stores (ledger/store.h): $BOTTLE_HOME/bottle.db,
 * SQLite in WAL mode, one host (the default); or a PostgreSQL database named
 * by a postgresql:// URL, shared by every host that names it.
 *
 * Nothing here exposes SQL or a store's types. Every write is one
 * transaction; a busy database (a locked SQLite file, a PostgreSQL deadlock)
 * is waited for with jittered exponential backoff, up to
 * LEDGER_BUSY_TIMEOUT_MS, and the whole transaction is retried — a write is
 * never silently dropped. A PostgreSQL server that cannot be reached makes
 * calls fail with -ENOTCONN (ledger_unreachable), reconnecting with backoff.
 *
 * Budgets are token limits for one provider (a route's `metered` key, such
 * as "claude") at one scope: every bottle sharing the ledger (global), one
 * bottle, one agent, or one named pool. What a budget has spent is the
 * settled usage in its scope since its period began (ledger_period_start)
 * plus the reservations still open in it. ledger_reserve checks every
 * budget that applies to a request and takes the reservation in the same
 * transaction (holding each budget's counter on PostgreSQL), so concurrent
 * requests from many processes and hosts cannot overshoot a budget.
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
/*
 * A reservation still open this long after it was taken is charged at its
 * size (ledger_expire_stale): its sidecar died, or lost the ledger for
 * longer than any response takes. A late settlement replaces the charge.
 */
#define LEDGER_RESERVATION_TIMEOUT_S 900
/* ledger_open_flags: a server that cannot be reached now is not an error (calls fail with
 * -ENOTCONN until it can be, reconnecting with backoff). */
#define LEDGER_OPEN_RETRY 1u

struct ledger;

enum ledger_scope {
    LEDGER_SCOPE_GLOBAL = 0, /* every bottle on the host; name is "" */
    LEDGER_SCOPE_BOTTLE,     /* one bottle, by slug */
    LEDGER_SCOPE_AGENT,      /* one agent, across bottles */
    LEDGER_SCOPE_POOL,       /* one named pool of bottles, across hosts */
};

/* What a budget's spending is counted over; it starts again at each period's start (UTC). */
enum ledger_period {
    LEDGER_PERIOD_DEFAULT = 0, /* as set for the scope (ledger_period_set); total when unset */
    LEDGER_PERIOD_TOTAL,       /* everything, never reset */
    LEDGER_PERIOD_DAY,         /* since 00:00 UTC today */
    LEDGER_PERIOD_MONTH,       /* since 00:00 UTC on the 1st of this month */
};

struct ledger_usage {
    int64_t input_tokens; /* not read from or written to a cache */
    int64_t output_tokens;
    int64_t cache_creation_tokens;
    int64_t cache_read_tokens;
};

/*
 * Who a request is charged to. agent may be NULL or "" (no agent scope).
 * The pool is the one the bottle was started in (ledger_run_start).
 */
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
    const char *name; /* bottle slug, agent or pool name; ignored (and "") for global */
    const char *provider;
    int64_t limit_tokens;
};

/* The budget a reservation did not fit; the most specific one when several. */
struct ledger_denial {
    enum ledger_scope scope;
    char name[LEDGER_NAME_MAX];
    char provider[LEDGER_NAME_MAX];
    int64_t limit_tokens;
    int64_t spent_tokens;      /* settled usage plus open reservations */
    int64_t left_tokens;       /* limit - spent, never below 0 */
    enum ledger_period period; /* the period spent was counted over (never DEFAULT) */
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
    int64_t expired;           /* usage rows charged by ledger_expire_stale, not settled */
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
 * path NULL: ledger_default_path(); a postgresql:// (or postgres://) URL:
 * that PostgreSQL database, whose password may not be in the URL (libpq
 * finds it in PGPASSWORD, a password file or a service file). Migrations
 * are idempotent and safe when several processes open the same new ledger
 * at once.
 */
int ledger_open(const char *path, struct ledger **out, struct bottle_err *err);
/* Same, with LEDGER_OPEN_RETRY (or 0). */
int ledger_open_flags(const char *path, unsigned flags, struct ledger **out,
                      struct bottle_err *err);
void ledger_close(struct ledger *l);
/* true for a locator PostgreSQL serves (postgresql:// or postgres://). */
bool ledger_is_url(const char *path);
/* Refuses a URL that carries a password (user:password@ or password=): -EINVAL, err set. */
int ledger_check_locator(const char *path, struct bottle_err *err);
/* "sqlite" or "postgresql". */
const char *ledger_store_name(const struct ledger *l);
/* The path or URL, never with a password. */
const char *ledger_where(const struct ledger *l);
/* The name rows written through l carry: $BOTTLE_HOST, else the host name. */
const char *ledger_host(const struct ledger *l);
/* true for the error of a server that cannot be reached (rc -ENOTCONN). */
bool ledger_unreachable(int rc);
/* One round trip; *ms its duration. */
int ledger_ping(struct ledger *l, int64_t *ms, struct bottle_err *err);
/* The highest migration applied (ledger.c's LEDGER_SCHEMA_VERSION after open). */
int ledger_schema_version(struct ledger *l, struct bottle_err *err);

/* Sets (inserts or replaces) a budget, or removes it. limit_tokens >= 0. */
int ledger_budget_set(struct ledger *l, const struct ledger_budget *b, struct bottle_err *err);
int ledger_budget_remove(struct ledger *l, enum ledger_scope scope, const char *name,
                         const char *provider, struct bottle_err *err);

/*
 * Reserves tokens against every budget applying to who (global, the bottle,
 * the agent, the bottle's pool; same provider) in one transaction. Returns
 * 0 with *id set, LEDGER_DOES_NOT_FIT with *denied filled (the agent's
 * budget before the bottle's before the global one, the pool's last), or a
 * negative error. A reply lost on the way back is not a second reservation:
 * the retry finds the first by its token.
 */
int ledger_reserve(struct ledger *l, const struct ledger_subject *who, int64_t tokens, int64_t *id,
                   struct ledger_denial *denied, struct bottle_err *err);
/*
 * Same, but checks the n budgets given (the bottle's effective budgets from
 * its plan) instead of the stored ones, and the stored budget of the pool
 * the bottle was started in; their spending is still what the ledger holds
 * for each scope, over each scope's period. n 0: only the pool's.
 */
int ledger_reserve_in(struct ledger *l, const struct ledger_subject *who, int64_t tokens,
                      const struct ledger_budget *budgets, size_t n, int64_t *id,
                      struct ledger_denial *denied, struct bottle_err *err);
/*
 * Turns a reservation into a usage row attributed to the reservation's
 * subject. Charged: the usage's sum; when rec->complete is false, at least
 * the reservation. A released (stale) reservation can still be settled,
 * and an expired one settled replaces its charge; settling twice is
 * -EALREADY (a retry after a lost reply charges once), an unknown id -ENOENT.
 */
int ledger_settle(struct ledger *l, int64_t id, const struct ledger_record *rec,
                  struct bottle_err *err);
/* Gives an open reservation back (request refused or failed before upstream answered). */
int ledger_release(struct ledger *l, int64_t id, struct bottle_err *err);
/* Releases open reservations created before older_than (unix seconds); returns how many. */
int ledger_release_stale(struct ledger *l, int64_t older_than, struct bottle_err *err);
/*
 * The rule for reservations whose sidecar died: every reservation still
 * open that was created before older_than is charged at its size, as an
 * incomplete usage row marked expired (so what counts as spent does not
 * change), and closed. A later ledger_settle of one replaces that charge
 * with the real usage, once. Returns how many. ledger_reserve runs it for
 * LEDGER_RESERVATION_TIMEOUT_S at most once a minute per connection.
 */
int ledger_expire_stale(struct ledger *l, int64_t older_than, struct bottle_err *err);

/* A usage row with no reservation behind it. */
int ledger_record_usage(struct ledger *l, const struct ledger_record *rec, struct bottle_err *err);

int ledger_totals(struct ledger *l, const struct ledger_filter *f, struct ledger_totals *out,
                  struct bottle_err *err);
/*
 * Settled (in the scope's current period) plus open-reserved tokens of one
 * budget scope, whether or not a budget is set.
 */
int ledger_spent(struct ledger *l, enum ledger_scope scope, const char *name, const char *provider,
                 int64_t *spent, struct bottle_err *err);

/*
 * The period a scope's spending is counted over, shared by every host on
 * the ledger: set by the runtime from the budget's declaration. Unset means
 * total. get answers TOTAL when none was set.
 */
int ledger_period_set(struct ledger *l, enum ledger_scope scope, const char *name,
                      const char *provider, enum ledger_period period, struct bottle_err *err);
int ledger_period_get(struct ledger *l, enum ledger_scope scope, const char *name,
                      const char *provider, enum ledger_period *period, struct bottle_err *err);
/* When the period holding now (unix seconds) began: 0 for total. */
int64_t ledger_period_start(enum ledger_period period, int64_t now);
const char *ledger_period_name(enum ledger_period period);
/* "total", "day", "month" -> 0 and *out; -EINVAL otherwise. */
int ledger_period_parse(const char *text, enum ledger_period *out);

/* A stored budget's limit: 0, or -ENOENT when none is set. */
int ledger_budget_get(struct ledger *l, enum ledger_scope scope, const char *name,
                      const char *provider, int64_t *limit, struct bottle_err *err);

/*
 * A bottle run, as the runtime registers it: its host (ledger_host), agent
 * and pool ("" or NULL: none). Reservations of the bottle count against the
 * pool's stored budgets (scope POOL) besides the budgets checked for them.
 */
int ledger_run_start(struct ledger *l, const char *bottle, const char *agent, const char *pool,
                     struct bottle_err *err);
int ledger_run_end(struct ledger *l, const char *bottle, struct bottle_err *err);

/* Usage grouped by one column, for reports across hosts. */
enum ledger_group { LEDGER_BY_BOTTLE, LEDGER_BY_HOST, LEDGER_BY_POOL, LEDGER_BY_AGENT };
struct ledger_group_row {
    char *key; /* bottle, host, pool or agent ("" when none) */
    char *provider;
    int64_t requests;
    int64_t charged_tokens; /* since */
    int64_t reserved_tokens;
};
/* Rows sorted by key and provider; usage since (unix seconds) plus open reservations. */
int ledger_usage_groups(struct ledger *l, enum ledger_group by, int64_t since,
                        struct ledger_group_row **out, size_t *n, struct bottle_err *err);
void ledger_group_rows_free(struct ledger_group_row *rows, size_t n);
const char *ledger_group_name(enum ledger_group by);

/* Every stored budget of one scope (pools, for instance). Free with ledger_budgets_free. */
struct ledger_budget_row {
    char *name, *provider;
    int64_t limit_tokens;
};
int ledger_budgets_list(struct ledger *l, enum ledger_scope scope, struct ledger_budget_row **out,
                        size_t *n, struct bottle_err *err);
void ledger_budgets_free(struct ledger_budget_row *rows, size_t n);

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
