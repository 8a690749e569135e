/* report — totals, the audit trail, final kernel counters and a bottle's providers (see ledger.h).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"

/* ---- totals ------------------------------------------------------------------ */

struct totals_op {
    const struct ledger_filter *f;
    struct ledger_totals *out;
};

static void bind_filter_subject(sqlite3_stmt *s, const struct ledger_filter *f)
{
    ledger_bind_filter(s, 1, f->bottle);
    ledger_bind_filter(s, 2, f->agent);
    ledger_bind_filter(s, 3, f->provider);
}

static int totals_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct totals_op *op = arg;
    struct ledger_totals *t = op->out;
    sqlite3_stmt *s;
    int rc = ledger_stmt(l, ST_TOTALS, &s, err);
    if (rc < 0)
        return rc;
    bind_filter_subject(s, op->f);
    sqlite3_bind_int64(s, 4, op->f->since);
    if ((rc = ledger_step(l, s, err)) < 0)
        return rc;
    t->requests = sqlite3_column_int64(s, 0);
    t->incomplete = sqlite3_column_int64(s, 1);
    t->usage.input_tokens = sqlite3_column_int64(s, 2);
    t->usage.output_tokens = sqlite3_column_int64(s, 3);
    t->usage.cache_creation_tokens = sqlite3_column_int64(s, 4);
    t->usage.cache_read_tokens = sqlite3_column_int64(s, 5);
    t->charged_tokens = sqlite3_column_int64(s, 6);
    sqlite3_reset(s);
    if ((rc = ledger_stmt(l, ST_TOTALS_OPEN, &s, err)) < 0)
        return rc;
    bind_filter_subject(s, op->f);
    if ((rc = ledger_step(l, s, err)) < 0)
        return rc;
    t->open_reservations = sqlite3_column_int64(s, 0);
    t->reserved_tokens = sqlite3_column_int64(s, 1);
    sqlite3_reset(s);
    return 0;
}

int ledger_totals(struct ledger *l, const struct ledger_filter *f, struct ledger_totals *out,
                  struct bottle_err *err)
{
    static const struct ledger_filter all = {0};
    struct ledger_totals t = {0};
    struct totals_op op = {f ? f : &all, &t};
    int rc = ledger_run_read(l, totals_body, &op, err);
    if (rc == 0)
        *out = t;
    return rc;
}

/* ---- audit ------------------------------------------------------------------- */

struct audit_add_op {
    const struct ledger_audit *a;
    int64_t id;
};

static int audit_add_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct audit_add_op *op = arg;
    sqlite3_stmt *s;
    int rc = ledger_stmt(l, ST_AUDIT_INSERT, &s, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(s, 1, op->a->at ? op->a->at : ledger_now_s());
    ledger_bind_text(s, 2, op->a->bottle);
    ledger_bind_text(s, 3, op->a->action);
    ledger_bind_text(s, 4, op->a->policy);
    ledger_bind_text(s, 5, op->a->reason);
    ledger_bind_text(s, 6, op->a->who);
    rc = ledger_step(l, s, err);
    sqlite3_reset(s);
    if (rc < 0)
        return rc;
    op->id = sqlite3_last_insert_rowid(l->db);
    return 0;
}

int ledger_audit_add(struct ledger *l, const struct ledger_audit *a, int64_t *id,
                     struct bottle_err *err)
{
    if (str_is_empty(a->action))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: an audit entry needs an action");
    struct audit_add_op op = {a, 0};
    int rc = ledger_run_tx(l, audit_add_body, &op, err);
    if (rc == 0 && id)
        *id = op.id;
    return rc;
}

struct audit_list_op {
    const char *bottle;
    size_t limit;
    struct ledger_audit_entry *items;
    size_t n, cap;
};

static char *column_dup(sqlite3_stmt *s, int i)
{
    const char *t = (const char *)sqlite3_column_text(s, i);
    return xstrdup(t ? t : "");
}

static int audit_list_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct audit_list_op *op = arg;
    ledger_audit_free(op->items, op->n); /* a rerun starts over */
    op->items = NULL;
    op->n = op->cap = 0;
    sqlite3_stmt *s;
    int rc = ledger_stmt(l, ST_AUDIT_LIST, &s, err);
    if (rc < 0)
        return rc;
    ledger_bind_filter(s, 1, op->bottle);
    sqlite3_bind_int64(s, 2, op->limit ? (int64_t)op->limit : -1);
    while ((rc = ledger_step(l, s, err)) == SQLITE_ROW) {
        if (op->n == op->cap) {
            op->cap = op->cap ? op->cap * 2 : 16;
            op->items = xrealloc(op->items, op->cap * sizeof(*op->items));
        }
        struct ledger_audit_entry *e = &op->items[op->n++];
        e->id = sqlite3_column_int64(s, 0);
        e->at = sqlite3_column_int64(s, 1);
        e->bottle = column_dup(s, 2);
        e->action = column_dup(s, 3);
        e->policy = column_dup(s, 4);
        e->reason = column_dup(s, 5);
        e->who = column_dup(s, 6);
    }
    sqlite3_reset(s);
    return rc < 0 ? rc : 0;
}

int ledger_audit_list(struct ledger *l, const char *bottle, size_t limit,
                      struct ledger_audit_entry **out, size_t *n, struct bottle_err *err)
{
    struct audit_list_op op = {bottle, limit, NULL, 0, 0};
    int rc = ledger_run_read(l, audit_list_body, &op, err);
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

static int kernel_sql(struct ledger *l, const char *sql, sqlite3_stmt **s, struct bottle_err *err)
{
    int rc = sqlite3_prepare_v2(l->db, sql, -1, s, NULL);
    if (rc == SQLITE_OK)
        return 0;
    return ledger_is_busy(rc) ? -EAGAIN : ledger_db_fail(l, rc, err, "prepare");
}

static int kernel_put_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct kernel_op *op = arg;
    sqlite3_stmt *s;
    int rc = kernel_sql(l,
                        "INSERT OR REPLACE INTO kernel_final (bottle, agent, at, counters) "
                        "VALUES (?1, ?2, ?3, ?4)",
                        &s, err);
    if (rc < 0)
        return rc;
    ledger_bind_text(s, 1, op->bottle);
    ledger_bind_text(s, 2, op->agent);
    sqlite3_bind_int64(s, 3, ledger_now_s());
    ledger_bind_text(s, 4, op->counters);
    rc = ledger_step(l, s, err);
    sqlite3_finalize(s);
    return rc < 0 ? rc : 0;
}

int ledger_kernel_put(struct ledger *l, const char *bottle, const char *agent, const char *counters,
                      struct bottle_err *err)
{
    if (str_is_empty(bottle) || str_is_empty(counters))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "ledger: kernel counters need a bottle");
    struct kernel_op op = {bottle, agent, counters, NULL};
    return ledger_run_tx(l, kernel_put_body, &op, err);
}

static int kernel_get_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct kernel_op *op = arg;
    sqlite3_stmt *s;
    int rc = kernel_sql(l, "SELECT counters FROM kernel_final WHERE bottle = ?1", &s, err);
    if (rc < 0)
        return rc;
    ledger_bind_text(s, 1, op->bottle);
    rc = ledger_step(l, s, err);
    free(op->out);
    op->out = rc == SQLITE_ROW ? column_dup(s, 0) : NULL;
    sqlite3_finalize(s);
    return rc < 0 ? rc : 0;
}

int ledger_kernel_get(struct ledger *l, const char *bottle, char **counters, struct bottle_err *err)
{
    struct kernel_op op = {bottle, NULL, NULL, NULL};
    int rc = ledger_run_read(l, kernel_get_body, &op, err);
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

static int providers_body(struct ledger *l, void *arg, struct bottle_err *err)
{
    struct providers_op *op = arg;
    sqlite3_stmt *s;
    int rc = kernel_sql(l,
                        "SELECT provider FROM usage WHERE bottle = ?1 UNION "
                        "SELECT provider FROM reservation WHERE bottle = ?1 ORDER BY 1",
                        &s, err);
    if (rc < 0)
        return rc;
    ledger_bind_text(s, 1, op->bottle);
    strv_free(op->out); /* a rerun starts over */
    while ((rc = ledger_step(l, s, err)) == SQLITE_ROW)
        strv_push(op->out, (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return rc < 0 ? rc : 0;
}

int ledger_providers(struct ledger *l, const char *bottle, struct strv *out, struct bottle_err *err)
{
    struct providers_op op = {bottle, out};
    return ledger_run_read(l, providers_body, &op, err);
}
