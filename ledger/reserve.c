/* reserve — budgets, reservations, settlement and release (see ledger.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"

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
    int rc = ledger_stmt(l, op->remove ? ST_BUDGET_REMOVE : ST_BUDGET_SET, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int(s, 1, (int)b->scope);
    ledger_bind_text(s, 2, b->scope == LEDGER_SCOPE_GLOBAL ? "" : b->name);
    ledger_bind_text(s, 3, b->provider);
    if (!op->remove) {
        sqlite3_bind_int64(s, 4, b->limit_tokens);
        sqlite3_bind_int64(s, 5, ledger_now_s());
    }
    rc = ledger_step(l, s, err);
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
    return ledger_run_tx(l, budget_body, &op, err);
}

int ledger_budget_remove(struct ledger *l, enum ledger_scope scope, const char *name,
                         const char *provider, struct bottle_err *err)
{
    struct ledger_budget b = {scope, name, provider, 0};
    int rc = budget_check(&b, err);
    if (rc < 0)
        return rc;
    struct budget_op op = {&b, true};
    return ledger_run_tx(l, budget_body, &op, err);
}

static int spent_in(struct ledger *l, enum ledger_scope scope, const char *name,
                    const char *provider, int64_t *spent, struct bottle_err *err)
{
    static const enum stmt_id ids[] = {ST_SPENT_GLOBAL, ST_SPENT_BOTTLE, ST_SPENT_AGENT};
    sqlite3_stmt *s;
    int rc = ledger_stmt(l, ids[scope], &s, err);
    if (rc < 0)
        return rc;
    ledger_bind_text(s, 1, provider);
    if (scope != LEDGER_SCOPE_GLOBAL)
        ledger_bind_text(s, 2, name);
    if ((rc = ledger_step(l, s, err)) < 0)
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
    int rc = ledger_run_read(l, spent_body, &op, err);
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
    int rc = ledger_stmt(l, ST_BUDGETS_FOR, &s, err);
    if (rc < 0)
        return rc;
    ledger_bind_text(s, 1, op->who->provider);
    ledger_bind_text(s, 2, op->who->bottle);
    ledger_bind_text(s, 3, op->who->agent); /* "" matches no agent budget: those need a name */
    struct {
        enum ledger_scope scope;
        char name[LEDGER_NAME_MAX];
        int64_t limit;
    } found[3];
    size_t n = 0;
    while (n < 3 && (rc = ledger_step(l, s, err)) == SQLITE_ROW) {
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
    if ((rc = ledger_stmt(l, ST_RESERVE, &s, err)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, ledger_now_s());
    ledger_bind_text(s, 2, op->who->bottle);
    ledger_bind_text(s, 3, op->who->agent);
    ledger_bind_text(s, 4, op->who->provider);
    sqlite3_bind_int64(s, 5, op->tokens);
    sqlite3_bind_int64(s, 6, (int64_t)getpid());
    rc = ledger_step(l, s, err);
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
    rc = ledger_run_tx(l, reserve_body, &op, err);
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
    rc = ledger_run_tx(l, reserve_body, &op, err);
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
    int rc = ledger_stmt(l, ST_USAGE_INSERT, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, rec->at ? rec->at : ledger_now_s());
    ledger_bind_text(s, 2, who->bottle);
    ledger_bind_text(s, 3, who->agent);
    ledger_bind_text(s, 4, who->provider);
    ledger_bind_text(s, 5, rec->model);
    ledger_bind_text(s, 6, rec->request_id);
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
    rc = ledger_step(l, s, err);
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
    int rc = ledger_stmt(l, ST_RES_GET, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->id);
    if ((rc = ledger_step(l, s, err)) < 0)
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
    if (rc < 0 || (rc = ledger_stmt(l, ST_RES_CLOSE, &s, err)) < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->id);
    ledger_bind_text(s, 2, "settled");
    sqlite3_bind_int64(s, 3, ledger_now_s());
    rc = ledger_step(l, s, err);
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
    return ledger_run_tx(l, settle_body, &op, err);
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
    int rc = ledger_stmt(l, op->id ? ST_RELEASE : ST_RELEASE_STALE, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->id ? op->id : op->older_than);
    sqlite3_bind_int64(s, 2, ledger_now_s());
    rc = ledger_step(l, s, err);
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
    int rc = ledger_run_tx(l, release_body, &op, err);
    if (rc == 0 && op.changed == 0)
        return err_set(err, ENOENT, "ledger: no open reservation %lld", (long long)id);
    return rc;
}

int ledger_release_stale(struct ledger *l, int64_t older_than, struct bottle_err *err)
{
    struct release_op op = {0, older_than, 0};
    int rc = ledger_run_tx(l, release_body, &op, err);
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
    return ledger_run_tx(l, record_body, &op, err);
}
