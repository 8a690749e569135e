/*
 * store — what the ledger's files and both stores share: scope, period and
 * grouping names, period arithmetic, and the result rows a store hands back
 * (see store.h). Calls no store and nothing of ledger.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"
#include "ledger/store.h"

/* ---- names and periods ------------------------------------------------------- */

const char *ledger_scope_name(enum ledger_scope scope)
{
    switch (scope) {
    case LEDGER_SCOPE_GLOBAL:
        return "global";
    case LEDGER_SCOPE_BOTTLE:
        return "bottle";
    case LEDGER_SCOPE_AGENT:
        return "agent";
    case LEDGER_SCOPE_POOL:
        return "pool";
    }
    return "unknown";
}

bool ledger_valid_scope(enum ledger_scope scope)
{
    return scope == LEDGER_SCOPE_GLOBAL || scope == LEDGER_SCOPE_BOTTLE ||
           scope == LEDGER_SCOPE_AGENT || scope == LEDGER_SCOPE_POOL;
}

const char *ledger_period_name(enum ledger_period period)
{
    switch (period) {
    case LEDGER_PERIOD_DAY:
        return "day";
    case LEDGER_PERIOD_MONTH:
        return "month";
    case LEDGER_PERIOD_DEFAULT:
    case LEDGER_PERIOD_TOTAL:
        break;
    }
    return "total";
}

int ledger_period_parse(const char *text, enum ledger_period *out)
{
    static const struct {
        const char *name;
        enum ledger_period p;
    } names[] = {
        {"total", LEDGER_PERIOD_TOTAL}, {"day", LEDGER_PERIOD_DAY}, {"month", LEDGER_PERIOD_MONTH}};
    for (size_t i = 0; text && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(text, names[i].name) == 0) {
            *out = names[i].p;
            return 0;
        }
    return -EINVAL;
}

int64_t ledger_period_start(enum ledger_period period, int64_t now)
{
    if (period != LEDGER_PERIOD_DAY && period != LEDGER_PERIOD_MONTH)
        return 0;
    time_t t = (time_t)now;
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (period == LEDGER_PERIOD_MONTH)
        tm.tm_mday = 1;
    return (int64_t)timegm(&tm);
}

int64_t ledger_now_s(void)
{
    return (int64_t)time(NULL);
}

const char *ledger_group_name(enum ledger_group by)
{
    static const char *const names[] = {"bottle", "host", "pool", "agent"};
    return (unsigned)by < 4 ? names[by] : "unknown";
}

bool ledger_unreachable(int rc)
{
    return rc == -ENOTCONN;
}

/* ---- rows ---------------------------------------------------------------------- */

int store_row_next(struct store_rows *r)
{
    if (r->cur >= r->n_rows)
        return 0;
    r->cur++;
    return 1;
}

static const char *cell(const struct store_rows *r, size_t col)
{
    if (r->cur == 0 || r->cur > r->n_rows || col >= r->n_cols)
        return NULL;
    return r->cells[(r->cur - 1) * r->n_cols + col];
}

int64_t store_int(const struct store_rows *r, size_t col)
{
    const char *c = cell(r, col);
    return c ? strtoll(c, NULL, 10) : 0;
}

const char *store_text(const struct store_rows *r, size_t col)
{
    const char *c = cell(r, col);
    return c ? c : "";
}

bool store_is_null(const struct store_rows *r, size_t col)
{
    return cell(r, col) == NULL;
}

void store_rows_add(struct store_rows *r, size_t n, const char *const *cells)
{
    if (r->n_rows == 0)
        r->n_cols = n;
    r->cells = xrealloc(r->cells, (r->n_rows + 1) * r->n_cols * sizeof(char *));
    for (size_t i = 0; i < r->n_cols; i++)
        r->cells[r->n_rows * r->n_cols + i] = i < n && cells[i] ? xstrdup(cells[i]) : NULL;
    r->n_rows++;
}

void store_rows_free(struct store_rows *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_rows * r->n_cols; i++)
        free(r->cells[i]);
    free(r->cells);
    memset(r, 0, sizeof(*r));
}

int store_one_int(struct ledger_store *s, enum store_stmt id, const struct store_arg *args,
                  size_t n, int64_t *out, struct bottle_err *err)
{
    struct store_rows r = {0};
    int rc = store_exec(s, id, args, n, &r, err);
    if (rc >= 0)
        *out = store_row_next(&r) ? store_int(&r, 0) : 0;
    store_rows_free(&r);
    return rc < 0 ? rc : 0;
}
