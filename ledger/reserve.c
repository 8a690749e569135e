/*
 * reserve — budgets, periods, bottle runs, reservations, settlement, release
 * and expiry (see ledger.h). Speaks to the store through store.h only.
 *
 * A reservation is one transaction: find the bottle's pool, hold the
 * counter of every budget to check (store_lock: a row lock on PostgreSQL,
 * the file's write lock on SQLite), sum each budget's spending over its
 * period, and insert the reservation only when the estimate fits them all.
 * Two hosts checking the same budget therefore take turns; neither can
 * read the spending the other is about to change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"
#include "ledger/store.h"

#define SWEEP_EVERY_MS 60000

/* ---- budgets and periods ---------------------------------------------------------- */

struct budget_op {
    const struct ledger_budget *b;
    bool remove;
};

static const char *scope_key(enum ledger_scope scope, const char *name)
{
    return scope == LEDGER_SCOPE_GLOBAL ? "" : name;
}

static int period_store(struct ledger_store *s, enum ledger_scope scope, const char *name,
                        const char *provider, enum ledger_period period, struct bottle_err *err)
{
    struct store_arg a[] = {SA_INT(scope), SA_TEXT(scope_key(scope, name)), SA_TEXT(provider),
                            SA_TEXT(ledger_period_name(period)), SA_INT(ledger_now_s())};
    return store_exec(s, ST_PERIOD_SET, a, 5, NULL, err);
}

static int budget_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    const struct budget_op *op = arg;
    const struct ledger_budget *b = op->b;
    struct store_arg a[] = {SA_INT(b->scope), SA_TEXT(scope_key(b->scope, b->name)),
                            SA_TEXT(b->provider), SA_INT(b->limit_tokens), SA_INT(ledger_now_s())};
    return store_exec(s, op->remove ? ST_BUDGET_REMOVE : ST_BUDGET_SET, a, op->remove ? 3 : 5, NULL,
                      err);
}

static int budget_check(const struct ledger_budget *b, struct bottle_err *err)
{
    if (!ledger_valid_scope(b->scope))
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
    return store_run(l->st, true, budget_body, &op, err);
}

int ledger_budget_remove(struct ledger *l, enum ledger_scope scope, const char *name,
                         const char *provider, struct bottle_err *err)
{
    struct ledger_budget b = {scope, name, provider, 0};
    int rc = budget_check(&b, err);
    if (rc < 0)
        return rc;
    struct budget_op op = {&b, true};
    return store_run(l->st, true, budget_body, &op, err);
}

struct budget_get_op {
    enum ledger_scope scope;
    const char *name, *provider;
    int64_t limit;
    bool found;
};

static int budget_get_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct budget_get_op *op = arg;
    struct store_arg a[] = {SA_INT(op->scope), SA_TEXT(scope_key(op->scope, op->name)),
                            SA_TEXT(op->provider)};
    struct store_rows r;
    int rc = store_exec(s, ST_BUDGET_GET, a, 3, &r, err);
    if (rc < 0)
        return rc;
    op->found = store_row_next(&r);
    op->limit = op->found ? store_int(&r, 0) : 0;
    store_rows_free(&r);
    return 0;
}

int ledger_budget_get(struct ledger *l, enum ledger_scope scope, const char *name,
                      const char *provider, int64_t *limit, struct bottle_err *err)
{
    struct budget_get_op op = {scope, name, provider, 0, false};
    int rc = store_run(l->st, false, budget_get_body, &op, err);
    if (rc < 0)
        return rc;
    if (!op.found)
        return -ENOENT;
    *limit = op.limit;
    return 0;
}

struct period_op {
    enum ledger_scope scope;
    const char *name, *provider;
    enum ledger_period period;
};

static int period_get_in(struct ledger_store *s, enum ledger_scope scope, const char *name,
                         const char *provider, enum ledger_period *out, struct bottle_err *err)
{
    struct store_arg a[] = {SA_INT(scope), SA_TEXT(scope_key(scope, name)), SA_TEXT(provider)};
    struct store_rows r;
    int rc = store_exec(s, ST_PERIOD_GET, a, 3, &r, err);
    if (rc < 0)
        return rc;
    *out = LEDGER_PERIOD_TOTAL;
    if (store_row_next(&r) && ledger_period_parse(store_text(&r, 0), out) < 0)
        *out = LEDGER_PERIOD_TOTAL;
    store_rows_free(&r);
    return 0;
}

static int period_set_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct period_op *op = arg;
    return period_store(s, op->scope, op->name, op->provider, op->period, err);
}

static int period_get_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct period_op *op = arg;
    return period_get_in(s, op->scope, op->name, op->provider, &op->period, err);
}

int ledger_period_set(struct ledger *l, enum ledger_scope scope, const char *name,
                      const char *provider, enum ledger_period period, struct bottle_err *err)
{
    struct ledger_budget b = {scope, name, provider, 0};
    int rc = budget_check(&b, err);
    if (rc < 0)
        return rc;
    if ((unsigned)period > LEDGER_PERIOD_MONTH)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: unknown budget period %d",
                            (int)period);
    struct period_op op = {scope, name, provider,
                           period == LEDGER_PERIOD_DEFAULT ? LEDGER_PERIOD_TOTAL : period};
    return store_run(l->st, true, period_set_body, &op, err);
}

int ledger_period_get(struct ledger *l, enum ledger_scope scope, const char *name,
                      const char *provider, enum ledger_period *period, struct bottle_err *err)
{
    struct period_op op = {scope, name, provider, LEDGER_PERIOD_TOTAL};
    int rc = store_run(l->st, false, period_get_body, &op, err);
    if (rc == 0)
        *period = op.period;
    return rc;
}

/* ---- spending -------------------------------------------------------------------------- */

enum store_stmt ledger_spent_stmt(enum ledger_scope scope)
{
    switch (scope) {
    case LEDGER_SCOPE_BOTTLE:
        return ST_SPENT_BOTTLE;
    case LEDGER_SCOPE_AGENT:
        return ST_SPENT_AGENT;
    case LEDGER_SCOPE_POOL:
        return ST_SPENT_POOL;
    case LEDGER_SCOPE_GLOBAL:
        break;
    }
    return ST_SPENT_GLOBAL;
}

int ledger_spent_in(struct ledger_store *s, enum ledger_scope scope, const char *name,
                    const char *provider, int64_t *spent, enum ledger_period *period,
                    struct bottle_err *err)
{
    struct store_arg a[] = {SA_TEXT(provider), SA_INT(ledger_now_s()),
                            SA_TEXT(scope_key(scope, name)), SA_INT(scope)};
    struct store_rows r;
    int rc = store_exec(s, ledger_spent_stmt(scope), a, 4, &r, err);
    if (rc < 0)
        return rc;
    enum ledger_period p = LEDGER_PERIOD_TOTAL;
    *spent = 0;
    if (store_row_next(&r)) {
        *spent = store_int(&r, 0);
        if (ledger_period_parse(store_text(&r, 1), &p) < 0)
            p = LEDGER_PERIOD_TOTAL;
    }
    store_rows_free(&r);
    if (period)
        *period = p;
    return 0;
}

struct spent_op {
    enum ledger_scope scope;
    const char *name, *provider;
    int64_t spent;
};

static int spent_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct spent_op *op = arg;
    return ledger_spent_in(s, op->scope, op->name, op->provider, &op->spent, NULL, err);
}

int ledger_spent(struct ledger *l, enum ledger_scope scope, const char *name, const char *provider,
                 int64_t *spent, struct bottle_err *err)
{
    if (!ledger_valid_scope(scope))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: unknown scope %d", (int)scope);
    struct spent_op op = {scope, name, provider, 0};
    int rc = store_run(l->st, false, spent_body, &op, err);
    if (rc == 0)
        *spent = op.spent;
    return rc;
}

/* ---- bottle runs ------------------------------------------------------------------------ */

struct run_op {
    const char *bottle, *agent, *pool, *host;
    bool end;
};

static int run_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    const struct run_op *op = arg;
    if (op->end) {
        struct store_arg a[] = {SA_TEXT(op->bottle), SA_INT(ledger_now_s())};
        return store_exec(s, ST_RUN_END, a, 2, NULL, err);
    }
    struct store_arg a[] = {SA_TEXT(op->bottle), SA_TEXT(op->host), SA_TEXT(op->agent),
                            SA_TEXT(op->pool), SA_INT(ledger_now_s())};
    return store_exec(s, ST_RUN_START, a, 5, NULL, err);
}

int ledger_run_start(struct ledger *l, const char *bottle, const char *agent, const char *pool,
                     struct bottle_err *err)
{
    if (str_is_empty(bottle))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: a run needs a bottle");
    struct run_op op = {bottle, agent, pool, l->host, false};
    return store_run(l->st, true, run_body, &op, err);
}

int ledger_run_end(struct ledger *l, const char *bottle, struct bottle_err *err)
{
    struct run_op op = {bottle, NULL, NULL, NULL, true};
    return store_run(l->st, true, run_body, &op, err);
}

/* ---- reserve ------------------------------------------------------------------------------ */

struct check {
    enum ledger_scope scope;
    char name[LEDGER_NAME_MAX];
    int64_t limit;
};

#define MAX_CHECKS 8

struct reserve_op {
    struct ledger *l;
    const struct ledger_subject *who;
    int64_t tokens;
    int64_t id;
    struct ledger_denial *denied;
    const struct ledger_budget *given; /* ledger_reserve_in: these instead of the stored ones */
    size_t n_given;
    const char *token;
};

/* Checks one budget; fills the denial when the estimate does not fit. */
static int check_budget(struct ledger_store *s, struct reserve_op *op, const struct check *c,
                        struct bottle_err *err)
{
    int64_t spent;
    enum ledger_period period;
    int rc = ledger_spent_in(s, c->scope, c->name, op->who->provider, &spent, &period, err);
    if (rc < 0 || op->tokens <= c->limit - spent) /* no overflow: both are >= 0 */
        return rc;
    struct ledger_denial *d = op->denied;
    d->scope = c->scope;
    snprintf(d->name, sizeof(d->name), "%s", c->name);
    snprintf(d->provider, sizeof(d->provider), "%s", op->who->provider);
    d->limit_tokens = c->limit;
    d->spent_tokens = spent;
    d->left_tokens = c->limit > spent ? c->limit - spent : 0;
    d->period = period;
    return LEDGER_DOES_NOT_FIT;
}

static void add_check(struct check *cs, size_t *n, enum ledger_scope scope, const char *name,
                      int64_t limit)
{
    if (*n >= MAX_CHECKS)
        return;
    cs[*n].scope = scope;
    snprintf(cs[*n].name, sizeof(cs[*n].name), "%s", scope_key(scope, name));
    cs[*n].limit = limit;
    (*n)++;
}

/* The budgets to check, most specific first (agent, bottle, global), the pool's last. */
static int collect_checks(struct ledger_store *s, struct reserve_op *op, const char *pool,
                          struct check *cs, size_t *n, struct bottle_err *err)
{
    *n = 0;
    struct store_rows r;
    int rc;
    if (op->given) {
        for (size_t i = 0; i < op->n_given; i++)
            add_check(cs, n, op->given[i].scope, op->given[i].name, op->given[i].limit_tokens);
    } else {
        struct store_arg a[] = {SA_TEXT(op->who->provider), SA_TEXT(op->who->bottle),
                                SA_TEXT(op->who->agent)}; /* "" matches no agent budget */
        if ((rc = store_exec(s, ST_BUDGETS_FOR, a, 3, &r, err)) < 0)
            return rc;
        while (store_row_next(&r))
            add_check(cs, n, (enum ledger_scope)store_int(&r, 0), store_text(&r, 1),
                      store_int(&r, 2));
        store_rows_free(&r);
    }
    if (*pool) {
        struct store_arg a[] = {SA_INT(LEDGER_SCOPE_POOL), SA_TEXT(pool),
                                SA_TEXT(op->who->provider)};
        if ((rc = store_exec(s, ST_BUDGET_GET, a, 3, &r, err)) < 0)
            return rc;
        if (store_row_next(&r))
            add_check(cs, n, LEDGER_SCOPE_POOL, pool, store_int(&r, 0));
        store_rows_free(&r);
    }
    return 0;
}

static int cmp_check(const void *a, const void *b)
{
    const struct check *x = a, *y = b;
    if (x->scope != y->scope)
        return (int)x->scope - (int)y->scope;
    return strcmp(x->name, y->name);
}

/* Takes the counters in one order everywhere, so two reservations never wait for each other. */
static int lock_checks(struct ledger_store *s, const struct check *cs, size_t n,
                       const char *provider, struct bottle_err *err)
{
    struct check sorted[MAX_CHECKS];
    memcpy(sorted, cs, n * sizeof(*cs));
    qsort(sorted, n, sizeof(*sorted), cmp_check);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cmp_check(&sorted[i - 1], &sorted[i]) == 0)
            continue;
        int rc = store_lock(s, sorted[i].scope, sorted[i].name, provider, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int reserve_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct reserve_op *op = arg;
    int rc;
    if (s->uncertain) { /* the first try may have committed: it is found by its token */
        struct store_arg t[] = {SA_TEXT(op->token)};
        int64_t id = 0;
        if ((rc = store_one_int(s, ST_RES_BY_TOKEN, t, 1, &id, err)) < 0)
            return rc;
        if (id > 0) {
            op->id = id;
            return 0;
        }
    }
    char pool[LEDGER_NAME_MAX] = "";
    struct store_arg b[] = {SA_TEXT(op->who->bottle)};
    struct store_rows r;
    if ((rc = store_exec(s, ST_RUN_POOL, b, 1, &r, err)) < 0)
        return rc;
    if (store_row_next(&r))
        snprintf(pool, sizeof(pool), "%s", store_text(&r, 0));
    store_rows_free(&r);
    struct check cs[MAX_CHECKS];
    size_t n;
    if ((rc = collect_checks(s, op, pool, cs, &n, err)) < 0 ||
        (rc = lock_checks(s, cs, n, op->who->provider, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = check_budget(s, op, &cs[i], err)) != 0)
            return rc;
    struct store_arg a[] = {SA_INT(ledger_now_s()),  SA_TEXT(op->who->bottle),
                            SA_TEXT(op->who->agent), SA_TEXT(op->who->provider),
                            SA_INT(op->tokens),      SA_INT(getpid()),
                            SA_TEXT(op->l->host),    SA_TEXT(pool),
                            SA_TEXT(op->token)};
    return store_one_int(s, ST_RESERVE, a, 9, &op->id, err);
}

static int subject_check(const struct ledger_subject *who, struct bottle_err *err)
{
    if (!who || str_is_empty(who->bottle) || str_is_empty(who->provider))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "ledger: usage needs a bottle and a provider");
    return 0;
}

/* Every minute at most: reservations open past the timeout are charged (ledger_expire_stale). */
static void maybe_sweep(struct ledger *l)
{
    int64_t now = clock_mono_ms();
    if (now < l->next_sweep_ms)
        return;
    l->next_sweep_ms = now + SWEEP_EVERY_MS;
    struct bottle_err ignored = {0};
    ledger_expire_stale(l, ledger_now_s() - LEDGER_RESERVATION_TIMEOUT_S, &ignored);
}

static int reserve_run(struct ledger *l, const struct ledger_subject *who, int64_t tokens,
                       const struct ledger_budget *given, size_t n, int64_t *id,
                       struct ledger_denial *denied, struct bottle_err *err)
{
    char token[33];
    ledger_new_token(l, token);
    struct ledger_denial scratch;
    struct reserve_op op = {l, who, tokens, 0, denied ? denied : &scratch, given, n, token};
    int rc = store_run(l->st, true, reserve_body, &op, err);
    if (rc == 0) {
        *id = op.id;
        maybe_sweep(l);
    }
    return rc;
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
    return reserve_run(l, who, tokens, NULL, 0, id, denied, err);
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
    if (n > MAX_CHECKS - 1)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: at most %d budgets at once",
                            MAX_CHECKS - 1);
    for (size_t i = 0; i < n; i++)
        if (!ledger_valid_scope(budgets[i].scope) || budgets[i].limit_tokens < 0 ||
            (budgets[i].scope != LEDGER_SCOPE_GLOBAL && str_is_empty(budgets[i].name)))
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: budget %zu is not valid", i);
    static const struct ledger_budget none;
    return reserve_run(l, who, tokens, n ? budgets : &none, n, id, denied, err);
}

/* ---- settle ---------------------------------------------------------------------------------- */

static int64_t usage_sum(const struct ledger_usage *u)
{
    return u->input_tokens + u->output_tokens + u->cache_creation_tokens + u->cache_read_tokens;
}

struct row_subject {
    const char *bottle, *agent, *provider, *host, *pool;
};

static int insert_usage(struct ledger_store *s, const struct row_subject *who,
                        const struct ledger_record *rec, int64_t charged, int64_t reservation,
                        struct bottle_err *err)
{
    struct store_arg a[] = {SA_INT(rec->at ? rec->at : ledger_now_s()),
                            SA_TEXT(who->bottle),
                            SA_TEXT(who->agent),
                            SA_TEXT(who->provider),
                            SA_TEXT(rec->model),
                            SA_TEXT(rec->request_id),
                            SA_INT(rec->usage.input_tokens),
                            SA_INT(rec->usage.output_tokens),
                            SA_INT(rec->usage.cache_creation_tokens),
                            SA_INT(rec->usage.cache_read_tokens),
                            SA_INT(charged),
                            SA_INT(rec->complete ? 1 : 0),
                            reservation > 0 ? SA_INT(reservation) : SA_NULL,
                            SA_TEXT(who->host),
                            SA_TEXT(who->pool)};
    return store_exec(s, ST_USAGE_INSERT, a, 15, NULL, err);
}

/* An expired reservation settled at last: its real usage replaces the charge, once. */
static int replace_expired(struct ledger_store *s, int64_t id, const struct ledger_record *rec,
                           int64_t charged, struct bottle_err *err)
{
    struct store_arg a[] = {SA_INT(id),
                            SA_INT(rec->at ? rec->at : ledger_now_s()),
                            SA_TEXT(rec->model),
                            SA_TEXT(rec->request_id),
                            SA_INT(rec->usage.input_tokens),
                            SA_INT(rec->usage.output_tokens),
                            SA_INT(rec->usage.cache_creation_tokens),
                            SA_INT(rec->usage.cache_read_tokens),
                            SA_INT(charged),
                            SA_INT(rec->complete ? 1 : 0)};
    struct store_rows r;
    int rc = store_exec(s, ST_USAGE_REPLACE, a, 10, &r, err);
    int64_t changed = r.changed;
    store_rows_free(&r);
    if (rc < 0)
        return rc;
    if (changed == 0) {
        if (s->uncertain) /* the first try replaced it and its answer was lost */
            return 0;
        return err_set(err, EALREADY, "ledger: reservation %lld is already settled", (long long)id);
    }
    return 0;
}

struct settle_op {
    int64_t id;
    const struct ledger_record *rec;
};

static int settle_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    const struct settle_op *op = arg;
    struct store_arg a[] = {SA_INT(op->id)};
    struct store_rows r;
    int rc = store_exec(s, ST_RES_GET, a, 1, &r, err);
    if (rc < 0)
        return rc;
    if (!store_row_next(&r)) {
        store_rows_free(&r);
        return err_set(err, ENOENT, "ledger: no reservation %lld", (long long)op->id);
    }
    bool settled = strcmp(store_text(&r, 0), "settled") == 0;
    int64_t reserved = store_int(&r, 1);
    struct row_subject who = {store_text(&r, 2), store_text(&r, 3), store_text(&r, 4),
                              store_text(&r, 5), store_text(&r, 6)};
    int64_t charged = usage_sum(&op->rec->usage);
    if (!op->rec->complete && charged < reserved)
        charged = reserved;
    if (settled) {
        rc = replace_expired(s, op->id, op->rec, charged, err);
        store_rows_free(&r);
        return rc;
    }
    rc = insert_usage(s, &who, op->rec, charged, op->id, err);
    store_rows_free(&r);
    if (rc < 0)
        return rc;
    struct store_arg c[] = {SA_INT(op->id), SA_TEXT("settled"), SA_INT(ledger_now_s())};
    return store_exec(s, ST_RES_CLOSE, c, 3, NULL, err);
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
    return store_run(l->st, true, settle_body, &op, err);
}

/* ---- release and expiry ------------------------------------------------------------------ */

enum release_kind { RELEASE_ONE, RELEASE_STALE, EXPIRE_STALE };

struct release_op {
    enum release_kind kind;
    int64_t id;         /* RELEASE_ONE */
    int64_t older_than; /* the others */
    int64_t changed;
};

static int release_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct release_op *op = arg;
    struct store_rows r;
    int rc;
    if (op->kind == EXPIRE_STALE) {
        struct store_arg a[] = {SA_INT(op->older_than), SA_INT(ledger_now_s())};
        if ((rc = store_exec(s, ST_EXPIRE_CHARGE, a, 2, &r, err)) < 0)
            return rc;
        op->changed = r.changed;
        store_rows_free(&r);
        return store_exec(s, ST_EXPIRE_CLOSE, a, 2, NULL, err);
    }
    struct store_arg a[] = {SA_INT(op->kind == RELEASE_ONE ? op->id : op->older_than),
                            SA_INT(ledger_now_s())};
    rc = store_exec(s, op->kind == RELEASE_ONE ? ST_RELEASE : ST_RELEASE_STALE, a, 2, &r, err);
    op->changed = r.changed;
    store_rows_free(&r);
    if (rc == 0 && op->kind == RELEASE_ONE && op->changed == 0 && s->uncertain) {
        /* The first try released it and its answer was lost: released is released. */
        struct store_rows g;
        struct store_arg b[] = {SA_INT(op->id)};
        if ((rc = store_exec(s, ST_RES_GET, b, 1, &g, err)) < 0)
            return rc;
        if (store_row_next(&g) && strcmp(store_text(&g, 0), "released") == 0)
            op->changed = 1;
        store_rows_free(&g);
    }
    return rc;
}

int ledger_release(struct ledger *l, int64_t id, struct bottle_err *err)
{
    struct release_op op = {RELEASE_ONE, id, 0, 0};
    if (id <= 0)
        return err_set(err, ENOENT, "ledger: no reservation %lld", (long long)id);
    int rc = store_run(l->st, true, release_body, &op, err);
    if (rc == 0 && op.changed == 0)
        return err_set(err, ENOENT, "ledger: no open reservation %lld", (long long)id);
    return rc;
}

int ledger_release_stale(struct ledger *l, int64_t older_than, struct bottle_err *err)
{
    struct release_op op = {RELEASE_STALE, 0, older_than, 0};
    int rc = store_run(l->st, true, release_body, &op, err);
    return rc < 0 ? rc : (int)op.changed;
}

int ledger_expire_stale(struct ledger *l, int64_t older_than, struct bottle_err *err)
{
    struct release_op op = {EXPIRE_STALE, 0, older_than, 0};
    int rc = store_run(l->st, true, release_body, &op, err);
    return rc < 0 ? rc : (int)op.changed;
}

/* ---- usage without a reservation ------------------------------------------------------------ */

struct record_op {
    struct ledger *l;
    const struct ledger_record *rec;
};

static int record_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    const struct record_op *op = arg;
    const struct ledger_record *rec = op->rec;
    char pool[LEDGER_NAME_MAX] = "";
    struct store_arg b[] = {SA_TEXT(rec->who.bottle)};
    struct store_rows r;
    int rc = store_exec(s, ST_RUN_POOL, b, 1, &r, err);
    if (rc < 0)
        return rc;
    if (store_row_next(&r))
        snprintf(pool, sizeof(pool), "%s", store_text(&r, 0));
    store_rows_free(&r);
    struct row_subject who = {rec->who.bottle, rec->who.agent, rec->who.provider, op->l->host,
                              pool};
    return insert_usage(s, &who, rec, usage_sum(&rec->usage), 0, err);
}

int ledger_record_usage(struct ledger *l, const struct ledger_record *rec, struct bottle_err *err)
{
    int rc = subject_check(&rec->who, err);
    if (rc == 0)
        rc = usage_check(&rec->usage, err);
    if (rc < 0)
        return rc;
    struct record_op op = {l, rec};
    return store_run(l->st, true, record_body, &op, err);
}
