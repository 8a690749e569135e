/* meter_hook — see meter_hook.h. */
#include "sidecar/meter/meter_hook.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "ledger/ledger.h"
#include "sidecar/meter/batch.h"
#include "sidecar/meter/meter.h"

/* A ledger server that cannot be reached: metered requests wait for it (503). */
#define REASON_LEDGER_UNAVAILABLE "ledger_unavailable"

/* A settlement the ledger could not take yet: sent again once it answers. */
struct pending_settle {
    int64_t reservation;
    struct ledger_record rec;
    char *model, *request_id;
};

struct meter_hook {
    struct ledger *lg;    /* NULL: metered requests are refused */
    struct strv reported; /* providers whose exhaustion the runtime was told of */
    struct pending_settle *pending;
    size_t n_pending;
    struct strv batches; /* batches whose results this sidecar recorded (batch.h) */
};

struct meter_exchange {
    int64_t reservation;
    enum meter_api api;
    struct meter *meter;
    struct meter_batch_results *batch; /* fetching a batch's results: no reservation */
    int status;
    char provider[64];
    char request_id[128];
};

int meter_hook_open(const struct config *cfg, struct meter_hook **out, struct bottle_err *err)
{
    struct meter_hook *mh = xcalloc(1, sizeof(*mh));
    *out = mh;
    if (!cfg->ledger)
        return 0;
    /* A ledger server away at start is waited for: metered requests are refused meanwhile. */
    int rc = ledger_open_flags(cfg->ledger, LEDGER_OPEN_RETRY, &mh->lg, err);
    if (rc < 0) {
        mh->lg = NULL;
        return rc;
    }
    return 0;
}

/* Sends the settlements the ledger missed, oldest first; stops at the first that cannot go. */
static void flush_pending(struct meter_hook *mh)
{
    size_t done = 0;
    for (; mh->lg && done < mh->n_pending; done++) {
        struct pending_settle *p = &mh->pending[done];
        struct bottle_err err = {0};
        int rc = ledger_settle(mh->lg, p->reservation, &p->rec, &err);
        if (ledger_unreachable(rc))
            break;
        if (rc < 0 && rc != -EALREADY)
            log_warn("ledger settle failed; the reservation stays charged", "error", err.msg, NULL);
        free(p->model);
        free(p->request_id);
    }
    mh->n_pending -= done;
    memmove(mh->pending, mh->pending + done, mh->n_pending * sizeof(*mh->pending));
}

static void keep_pending(struct meter_hook *mh, int64_t reservation,
                         const struct ledger_record *rec)
{
    mh->pending = xrealloc(mh->pending, (mh->n_pending + 1) * sizeof(*mh->pending));
    struct pending_settle *p = &mh->pending[mh->n_pending++];
    p->reservation = reservation;
    p->rec = *rec;
    p->model = xstrdup(rec->model);
    p->request_id = xstrdup(rec->request_id);
    p->rec.model = p->model;
    p->rec.request_id = p->request_id;
}

void meter_hook_close(struct meter_hook *mh)
{
    if (!mh)
        return;
    flush_pending(mh);
    for (size_t i = 0; i < mh->n_pending; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%" PRId64, mh->pending[i].reservation);
        log_warn("settlement not written; the reservation is charged at its size after the "
                 "reservation timeout",
                 "reservation", id, NULL);
        free(mh->pending[i].model);
        free(mh->pending[i].request_id);
    }
    free(mh->pending);
    ledger_close(mh->lg);
    strv_free(&mh->reported);
    strv_free(&mh->batches);
    free(mh);
}

unsigned meter_hook_wants(const struct proxy_request_view *v)
{
    return v->route && v->route->metered ? PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE : 0;
}

/* The bottle's effective budget for provider as the ledger counts it; false when none. */
static bool effective_budget(const struct config *cfg, const char *provider,
                             struct ledger_budget *out)
{
    const struct config_budget *b = config_find_budget(cfg, provider);
    if (!b)
        return false;
    out->provider = provider;
    out->limit_tokens = (int64_t)b->tokens;
    switch (b->scope) {
    case CONFIG_BUDGET_GLOBAL:
        out->scope = LEDGER_SCOPE_GLOBAL;
        out->name = "";
        break;
    case CONFIG_BUDGET_AGENT:
        out->scope = LEDGER_SCOPE_AGENT;
        out->name = cfg->agent;
        break;
    default:
        out->scope = LEDGER_SCOPE_BOTTLE;
        out->name = cfg->bottle;
        break;
    }
    return true;
}

static const char *scope_words(enum ledger_scope s)
{
    return s == LEDGER_SCOPE_GLOBAL  ? "for every bottle sharing the ledger"
           : s == LEDGER_SCOPE_AGENT ? "for this agent"
           : s == LEDGER_SCOPE_POOL  ? "for this bottle's pool"
                                     : "for this bottle";
}

static const char *period_words(enum ledger_period p)
{
    return p == LEDGER_PERIOD_DAY ? " today (UTC)" : p == LEDGER_PERIOD_MONTH ? " this month" : "";
}

/*
 * Tells the runtime a budget ran out (one JSON line; never blocks the proxy),
 * once per exhaustion: again only after a request of that provider fit.
 */
static void emit_exhausted(struct meter_hook *mh, const struct config *cfg,
                           const struct ledger_budget *b, int64_t spent)
{
    if (strv_contains(&mh->reported, b->provider))
        return;
    log_warn("token budget exhausted", "bottle", cfg->bottle, "provider", b->provider, "scope",
             ledger_scope_name(b->scope), NULL);
    if (cfg->events_fd < 0) {
        strv_push(&mh->reported, b->provider);
        return;
    }
    char line[512];
    int n = snprintf(line, sizeof(line),
                     "{\"event\":\"budget_exhausted\",\"bottle\":\"%s\",\"provider\":\"%s\","
                     "\"scope\":\"%s\",\"limit\":%" PRId64 ",\"spent\":%" PRId64 "}\n",
                     cfg->bottle, b->provider, ledger_scope_name(b->scope), b->limit_tokens, spent);
    if (n > 0 && (size_t)n < sizeof(line) && write(cfg->events_fd, line, (size_t)n) == n)
        strv_push(&mh->reported, b->provider); /* told: not again until a request fits */
    else
        log_warn("cannot tell the runtime; trying again on the next refusal", "error",
                 strerror(errno), NULL);
}

/* A request of provider fit its budget: a later exhaustion is news again. */
static void forget_reported(struct meter_hook *mh, const char *provider)
{
    for (size_t i = 0; i < mh->reported.len; i++)
        if (strcmp(mh->reported.items[i], provider) == 0) {
            free(mh->reported.items[i]);
            mh->reported.items[i] = mh->reported.items[--mh->reported.len];
            mh->reported.items[mh->reported.len] = NULL;
            return;
        }
}

static void refuse(struct proxy_verdict *out, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(struct proxy_verdict *out, int status, const char *reason, const char *fmt, ...)
{
    out->status = status;
    out->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof(out->message), fmt, ap);
    va_end(ap);
}

/* What a metered route may forward without a reservation; anything else is charged. */
static bool free_request(const struct http_request *req)
{
    if (http_slice_eq(req->method, "GET") || http_slice_eq(req->method, "HEAD"))
        return true;
    const char *p = req->path.ptr;
    size_t n = req->path.len;
    const char *q = memchr(p, '?', n);
    if (q)
        n = (size_t)(q - p);
    static const char suffix[] = "/count_tokens";
    return n >= sizeof(suffix) - 1 &&
           memcmp(p + n - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) == 0;
}

/* A batch endpoint (batch.h): refused under a budget, or forwarded with no reservation. */
static int batch_admit(const struct config *cfg, const struct proxy_request_view *v,
                       enum meter_batch_kind kind, const char *provider, const char *body,
                       size_t len, struct meter_exchange **xs, struct proxy_verdict *out)
{
    struct ledger_budget b;
    bool has = effective_budget(cfg, provider, &b);
    if (!meter_batch_admit(kind, config_find_budget(cfg, provider), has ? scope_words(b.scope) : "",
                           v->req, body, len, out))
        return 0;
    if (kind == METER_BATCH_RESULTS) {
        char *id = meter_batch_results_id(v->req->path.ptr, v->req->path.len);
        struct meter_exchange *x = xcalloc(1, sizeof(*x));
        x->batch = meter_batch_results_new(id);
        snprintf(x->provider, sizeof(x->provider), "%s", provider);
        free(id);
        *xs = x;
    }
    return 0;
}

int meter_hook_admit(struct meter_hook *mh, const struct config *cfg,
                     const struct proxy_request_view *v, const char *body, size_t len,
                     struct meter_exchange **xs, struct proxy_verdict *out)
{
    *xs = NULL;
    const char *provider = v->route ? v->route->metered : NULL;
    if (!provider)
        return 0;
    enum meter_api api = meter_api_for_path(v->req->path.ptr, v->req->path.len);
    enum meter_batch_kind batch =
        api == METER_API_NONE ? meter_batch_kind_of(v->req, body, len) : METER_BATCH_NONE;
    if (batch == METER_BATCH_MANAGE)
        return 0; /* listing, retrieving, cancelling, deleting batches: nothing is generated */
    if (api == METER_API_NONE && batch == METER_BATCH_NONE && free_request(v->req))
        return 0; /* reads, token counting, model lists: nothing is spent */
    if (!mh || !mh->lg) {
        refuse(out, 503, REASON_METERING_UNAVAILABLE,
               "this route is metered and the sidecar has no ledger to account with");
        return 0;
    }
    if (batch != METER_BATCH_NONE)
        return batch_admit(cfg, v, batch, provider, body, len, xs, out);
    struct meter_estimate est;
    struct bottle_err err = {0};
    int64_t tokens;
    if (meter_estimate_request(api, body, len, &est, &err) == 0)
        tokens = est.total_tokens;
    else /* not JSON the estimator reads: the upstream will refuse it; reserve generously */
        tokens = (int64_t)(len / 4) + METER_DEFAULT_OUTPUT_TOKENS;
    struct ledger_budget b;
    bool has = effective_budget(cfg, provider, &b);
    struct ledger_subject who = {cfg->bottle, cfg->agent, provider};
    struct ledger_denial d;
    int64_t id = 0;
    flush_pending(mh);
    int rc = ledger_reserve_in(mh->lg, &who, tokens, has ? &b : NULL, has ? 1 : 0, &id, &d, &err);
    if (rc == LEDGER_DOES_NOT_FIT) {
        refuse(out, 429, REASON_BUDGET_EXHAUSTED,
               "%s token budget exhausted: %" PRId64 " of %" PRId64
               " tokens left %s%s, this request needs about %" PRId64,
               provider, d.left_tokens, d.limit_tokens, scope_words(d.scope),
               period_words(d.period), tokens);
        struct ledger_budget told = {d.scope, d.name, provider, d.limit_tokens};
        emit_exhausted(mh, cfg, &told, d.spent_tokens);
        return 0;
    }
    if (ledger_unreachable(rc)) {
        log_warn("ledger unreachable; metered request refused", "error", err.msg, NULL);
        refuse(out, 503, REASON_LEDGER_UNAVAILABLE,
               "the ledger cannot be reached, so this metered request cannot be accounted; "
               "unmetered routes keep working and metered ones resume when it answers");
        return 0;
    }
    if (rc < 0) {
        log_warn("ledger reservation failed", "error", err.msg, NULL);
        refuse(out, 503, REASON_METERING_UNAVAILABLE, "the ledger cannot account for this request");
        return 0;
    }
    forget_reported(mh, provider);
    struct meter_exchange *x = xcalloc(1, sizeof(*x));
    x->reservation = id;
    x->api = api;
    snprintf(x->provider, sizeof(x->provider), "%s", provider);
    *xs = x;
    return 0;
}

void meter_hook_response_head(struct meter_exchange *x, const struct http_response *resp)
{
    if (!x)
        return;
    x->status = resp->status_code;
    if (x->batch) {
        meter_batch_results_head(x->batch, resp);
        return;
    }
    const struct http_header *ct = http_header_find(resp->headers, resp->n_headers, "Content-Type");
    const struct http_header *ce =
        http_header_find(resp->headers, resp->n_headers, "Content-Encoding");
    const struct http_header *rid = http_header_find(resp->headers, resp->n_headers, "request-id");
    if (!rid)
        rid = http_header_find(resp->headers, resp->n_headers, "x-request-id");
    if (rid)
        snprintf(x->request_id, sizeof(x->request_id), "%.*s", (int)rid->value.len, rid->value.ptr);
    meter_free(x->meter);
    x->meter = NULL;
    if (x->api == METER_API_NONE)
        return; /* an endpoint the meter cannot read: the reservation is what is charged */
    x->meter = meter_new(x->api, ct ? ct->value.ptr : NULL, ct ? ct->value.len : 0,
                         ce ? ce->value.ptr : NULL, ce ? ce->value.len : 0);
}

void meter_hook_response_data(struct meter_exchange *x, const char *p, size_t n)
{
    if (x && x->meter)
        meter_feed(x->meter, p, n);
    else if (x && x->batch)
        meter_batch_results_feed(x->batch, p, n);
}

void meter_hook_end(struct meter_hook *mh, const struct config *cfg, struct meter_exchange *x,
                    bool complete)
{
    if (!x)
        return;
    if (x->batch) {
        struct ledger_subject who = {cfg->bottle, cfg->agent, x->provider};
        meter_batch_results_end(x->batch, mh ? mh->lg : NULL, &who, complete,
                                mh ? &mh->batches : NULL);
        x->batch = NULL;
        x->reservation = 0; /* nothing was reserved: below, only the budget check */
    }
    struct meter_result res;
    memset(&res, 0, sizeof(res));
    res.status = METER_INCOMPLETE;
    if (x->meter)
        meter_finish(x->meter, &res);
    struct ledger_record rec;
    memset(&rec, 0, sizeof(rec));
    rec.model = res.model;
    rec.request_id = x->request_id;
    bool answered_error = x->status >= 400 && complete;
    if (answered_error) {
        rec.complete = true; /* the provider refused it: nothing was generated */
    } else {
        rec.complete = complete && res.status == METER_FOUND;
        if (res.have_usage)
            memcpy(&rec.usage, &res.usage, sizeof(rec.usage));
    }
    struct bottle_err err = {0};
    int rc = mh && mh->lg && x->reservation ? ledger_settle(mh->lg, x->reservation, &rec, &err) : 0;
    if (ledger_unreachable(rc)) /* kept, and sent again once the ledger answers */
        keep_pending(mh, x->reservation, &rec);
    else if (rc < 0 && rc != -EALREADY) /* already settled: a retry whose answer was lost */
        log_warn("ledger settle failed; the reservation stays charged", "error", err.msg, NULL);
    struct ledger_budget b;
    int64_t spent = 0;
    if (mh && mh->lg && effective_budget(cfg, x->provider, &b) &&
        ledger_spent(mh->lg, b.scope, b.name, b.provider, &spent, &err) == 0 &&
        spent >= b.limit_tokens)
        emit_exhausted(mh, cfg, &b, spent);
    meter_free(x->meter);
    free(x);
}
