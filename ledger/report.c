/*
 * report — totals, usage by host, bottle, pool or agent, the audit trail,
 * final kernel counters, stored budgets and a bottle's providers (see
 * ledger.h). Speaks to the store through store.h only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"
#include "ledger/store.h"

/* ---- totals ------------------------------------------------------------------ */

struct totals_op {
    const struct ledger_filter *f;
    struct ledger_totals *out;
};

static int totals_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct totals_op *op = arg;
    const struct ledger_filter *f = op->f;
    struct ledger_totals *t = op->out;
    struct store_arg a[] = {SA_FILTER(f->bottle),
                            SA_FILTER(f->agent),
                            SA_FILTER(f->provider),
                            SA_INT(f->since),
                            SA_NULL,
                            SA_NULL};
    struct store_rows r;
    int rc = store_exec(s, ST_TOTALS, a, 6, &r, err);
    if (rc < 0)
        return rc;
    if (store_row_next(&r)) {
        t->requests = store_int(&r, 0);
        t->incomplete = store_int(&r, 1);
        t->usage.input_tokens = store_int(&r, 2);
        t->usage.output_tokens = store_int(&r, 3);
        t->usage.cache_creation_tokens = store_int(&r, 4);
        t->usage.cache_read_tokens = store_int(&r, 5);
        t->charged_tokens = store_int(&r, 6);
        t->expired = store_int(&r, 7);
    }
    store_rows_free(&r);
    struct store_arg o[] = {SA_FILTER(f->bottle), SA_FILTER(f->agent), SA_FILTER(f->provider),
                            SA_NULL, SA_NULL};
    if ((rc = store_exec(s, ST_TOTALS_OPEN, o, 5, &r, err)) < 0)
        return rc;
    if (store_row_next(&r)) {
        t->open_reservations = store_int(&r, 0);
        t->reserved_tokens = store_int(&r, 1);
    }
    store_rows_free(&r);
    return 0;
}

int ledger_totals(struct ledger *l, const struct ledger_filter *f, struct ledger_totals *out,
                  struct bottle_err *err)
{
    static const struct ledger_filter all = {0};
    struct ledger_totals t = {0};
    struct totals_op op = {f ? f : &all, &t};
    int rc = store_run(l->st, false, totals_body, &op, err);
    if (rc == 0)
        *out = t;
    return rc;
}

/* ---- usage grouped across hosts ------------------------------------------------- */

struct groups_op {
    enum ledger_group by;
    int64_t since;
    struct ledger_group_row *rows;
    size_t n;
};

static int groups_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    static const enum store_stmt ids[] = {ST_GROUP_BOTTLE, ST_GROUP_HOST, ST_GROUP_POOL,
                                          ST_GROUP_AGENT};
    struct groups_op *op = arg;
    ledger_group_rows_free(op->rows, op->n); /* a rerun starts over */
    op->rows = NULL;
    op->n = 0;
    struct store_arg a[] = {SA_INT(op->since)};
    struct store_rows r;
    int rc = store_exec(s, ids[op->by], a, 1, &r, err);
    if (rc < 0)
        return rc;
    op->rows = xcalloc(r.n_rows + 1, sizeof(*op->rows));
    while (store_row_next(&r)) {
        struct ledger_group_row *g = &op->rows[op->n++];
        g->key = xstrdup(store_text(&r, 0));
        g->provider = xstrdup(store_text(&r, 1));
        g->requests = store_int(&r, 2);
        g->charged_tokens = store_int(&r, 3);
        g->reserved_tokens = store_int(&r, 4);
    }
    store_rows_free(&r);
    return 0;
}

int ledger_usage_groups(struct ledger *l, enum ledger_group by, int64_t since,
                        struct ledger_group_row **out, size_t *n, struct bottle_err *err)
{
    if ((unsigned)by > LEDGER_BY_AGENT)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: unknown grouping %d", (int)by);
    struct groups_op op = {by, since, NULL, 0};
    int rc = store_run(l->st, false, groups_body, &op, err);
    if (rc < 0) {
        ledger_group_rows_free(op.rows, op.n);
        return rc;
    }
    *out = op.rows;
    *n = op.n;
    return 0;
}

void ledger_group_rows_free(struct ledger_group_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) {
        free(rows[i].key);
        free(rows[i].provider);
    }
    free(rows);
}

/* ---- stored budgets ----------------------------------------------------------------- */

struct budgets_op {
    enum ledger_scope scope;
    struct ledger_budget_row *rows;
    size_t n;
};

static int budgets_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct budgets_op *op = arg;
    ledger_budgets_free(op->rows, op->n);
    op->rows = NULL;
    op->n = 0;
    struct store_arg a[] = {SA_INT(op->scope)};
    struct store_rows r;
    int rc = store_exec(s, ST_BUDGETS_SCOPE, a, 1, &r, err);
    if (rc < 0)
        return rc;
    op->rows = xcalloc(r.n_rows + 1, sizeof(*op->rows));
    while (store_row_next(&r)) {
        struct ledger_budget_row *b = &op->rows[op->n++];
        b->name = xstrdup(store_text(&r, 0));
        b->provider = xstrdup(store_text(&r, 1));
        b->limit_tokens = store_int(&r, 2);
    }
    store_rows_free(&r);
    return 0;
}

int ledger_budgets_list(struct ledger *l, enum ledger_scope scope, struct ledger_budget_row **out,
                        size_t *n, struct bottle_err *err)
{
    struct budgets_op op = {scope, NULL, 0};
    int rc = store_run(l->st, false, budgets_body, &op, err);
    if (rc < 0) {
        ledger_budgets_free(op.rows, op.n);
        return rc;
    }
    *out = op.rows;
    *n = op.n;
    return 0;
}

void ledger_budgets_free(struct ledger_budget_row *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++) {
        free(rows[i].name);
        free(rows[i].provider);
    }
    free(rows);
}

/* ---- audit ------------------------------------------------------------------------- */

struct audit_add_op {
    const struct ledger_audit *a;
    int64_t id;
};

static int audit_add_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct audit_add_op *op = arg;
    struct store_arg a[] = {SA_INT(op->a->at ? op->a->at : ledger_now_s()),
                            SA_TEXT(op->a->bottle),
                            SA_TEXT(op->a->action),
                            SA_TEXT(op->a->policy),
                            SA_TEXT(op->a->reason),
                            SA_TEXT(op->a->who)};
    return store_one_int(s, ST_AUDIT_INSERT, a, 6, &op->id, err);
}

int ledger_audit_add(struct ledger *l, const struct ledger_audit *a, int64_t *id,
                     struct bottle_err *err)
{
    if (str_is_empty(a->action))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: an audit entry needs an action");
    struct audit_add_op op = {a, 0};
    int rc = store_run(l->st, true, audit_add_body, &op, err);
    if (rc == 0 && id)
        *id = op.id;
    return rc;
}

struct audit_list_op {
    const char *bottle;
    size_t limit;
    struct ledger_audit_entry *items;
    size_t n;
};

static int audit_list_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct audit_list_op *op = arg;
    ledger_audit_free(op->items, op->n); /* a rerun starts over */
    op->items = NULL;
    op->n = 0;
    struct store_arg a[] = {SA_FILTER(op->bottle),
                            SA_INT(op->limit ? (int64_t)op->limit : ((int64_t)1 << 62))};
    struct store_rows r;
    int rc = store_exec(s, ST_AUDIT_LIST, a, 2, &r, err);
    if (rc < 0)
        return rc;
    op->items = xcalloc(r.n_rows + 1, sizeof(*op->items));
    while (store_row_next(&r)) {
        struct ledger_audit_entry *e = &op->items[op->n++];
        e->id = store_int(&r, 0);
        e->at = store_int(&r, 1);
        e->bottle = xstrdup(store_text(&r, 2));
        e->action = xstrdup(store_text(&r, 3));
        e->policy = xstrdup(store_text(&r, 4));
        e->reason = xstrdup(store_text(&r, 5));
        e->who = xstrdup(store_text(&r, 6));
    }
    store_rows_free(&r);
    return 0;
}

int ledger_audit_list(struct ledger *l, const char *bottle, size_t limit,
                      struct ledger_audit_entry **out, size_t *n, struct bottle_err *err)
{
    struct audit_list_op op = {bottle, limit, NULL, 0};
    int rc = store_run(l->st, false, audit_list_body, &op, err);
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

static int kernel_put_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct kernel_op *op = arg;
    struct store_arg a[] = {SA_TEXT(op->bottle), SA_TEXT(op->agent), SA_INT(ledger_now_s()),
                            SA_TEXT(op->counters)};
    return store_exec(s, ST_KERNEL_PUT, a, 4, NULL, err);
}

int ledger_kernel_put(struct ledger *l, const char *bottle, const char *agent, const char *counters,
                      struct bottle_err *err)
{
    if (str_is_empty(bottle) || str_is_empty(counters))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: kernel counters need a bottle");
    struct kernel_op op = {bottle, agent, counters, NULL};
    return store_run(l->st, true, kernel_put_body, &op, err);
}

static int kernel_get_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct kernel_op *op = arg;
    struct store_arg a[] = {SA_TEXT(op->bottle)};
    struct store_rows r;
    int rc = store_exec(s, ST_KERNEL_GET, a, 1, &r, err);
    if (rc < 0)
        return rc;
    free(op->out);
    op->out = store_row_next(&r) ? xstrdup(store_text(&r, 0)) : NULL;
    store_rows_free(&r);
    return 0;
}

int ledger_kernel_get(struct ledger *l, const char *bottle, char **counters, struct bottle_err *err)
{
    struct kernel_op op = {bottle, NULL, NULL, NULL};
    int rc = store_run(l->st, false, kernel_get_body, &op, err);
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

static int providers_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    struct providers_op *op = arg;
    struct store_arg a[] = {SA_TEXT(op->bottle)};
    struct store_rows r;
    int rc = store_exec(s, ST_PROVIDERS, a, 1, &r, err);
    if (rc < 0)
        return rc;
    strv_free(op->out); /* a rerun starts over */
    while (store_row_next(&r))
        strv_push(op->out, store_text(&r, 0));
    store_rows_free(&r);
    return 0;
}

int ledger_providers(struct ledger *l, const char *bottle, struct strv *out, struct bottle_err *err)
{
    struct providers_op op = {bottle, out};
    return store_run(l->st, false, providers_body, &op, err);
}
