/*
 * controller_budget — the controller's side of metering: the sidecar's
 * budget events, the bottle's shutdown policy (cutoff, freeze or kill) when
 * a budget runs out, the ledger's audit rows for every enforcement action,
 * and the bottle's final kernel counters kept in the ledger at teardown.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "common/log.h"
#include "ledger/budget.h"
#include "bpf/policy.h"
#include "runtime/controller/context.h"
#include "bpf/enforce.h"

#define EVENT_LINE_MAX 4096

static struct ledger *controller_ledger(struct controller *c)
{
    if (c->ledger || !c->ledger_path)
        return c->ledger;
    struct bottle_err err = {0};
    if (ledger_open(c->ledger_path, &c->ledger, &err) < 0) {
        log_warn("cannot open the ledger", "path", c->ledger_path, "error", err.msg, NULL);
        c->ledger = NULL;
    }
    return c->ledger;
}

static int register_body(struct controller *c, struct ledger *lg, struct bottle_err *err)
{
    const struct plan *p = c->plan;
    int rc = ledger_run_start(lg, c->st.slug, p->agent_name, p->pool, err);
    for (size_t i = 0; rc == 0 && i < p->n_pool_budgets; i++) {
        const struct plan_budget *b = &p->pool_budgets[i];
        struct ledger_budget lb = {LEDGER_SCOPE_POOL, p->pool, b->provider, (int64_t)b->tokens};
        enum ledger_period period;
        rc = ledger_budget_set(lg, &lb, err);
        if (rc == 0 && b->period && ledger_period_parse(b->period, &period) == 0)
            rc = ledger_period_set(lg, LEDGER_SCOPE_POOL, p->pool, b->provider, period, err);
    }
    /* A declared period belongs to the counter the budget is measured on (docs/budgets.md). */
    for (size_t i = 0; rc == 0 && i < p->n_budgets; i++) {
        const struct plan_budget *b = &p->budgets[i];
        enum ledger_period period;
        if (!b->period || ledger_period_parse(b->period, &period) < 0)
            continue;
        enum ledger_scope ls = budget_counting_scope(b->scope);
        rc = ledger_period_set(lg, ls, budget_counting_name(ls, c->st.slug, p->agent_name),
                               b->provider, period, err);
    }
    return rc;
}

int controller_ledger_register(struct controller *c, struct bottle_err *err)
{
    struct bottle_err e = {0};
    if (!c->ledger && c->ledger_path && ledger_open(c->ledger_path, &c->ledger, &e) < 0)
        c->ledger = NULL;
    int rc = c->ledger ? register_body(c, c->ledger, &e) : -EIO;
    if (rc == 0)
        return 0;
    if (c->plan->pool)
        return err_set(err, e.code ? e.code : EIO,
                       "budget pool %s: the ledger cannot record this bottle, and the pool's "
                       "limit cannot be kept without it: %s",
                       c->plan->pool, e.msg[0] ? e.msg : "no ledger");
    log_warn("cannot register the bottle in the ledger", "error", e.msg, NULL);
    return 0;
}

void controller_ledger_unregister(struct controller *c)
{
    struct bottle_err err = {0};
    if (c->ledger && ledger_run_end(c->ledger, c->st.slug, &err) < 0)
        log_warn("cannot mark the run ended in the ledger", "error", err.msg, NULL);
}

void controller_ledger_audit(struct controller *c, const char *action, const char *policy,
                             const char *reason, const char *who)
{
    struct ledger *lg = controller_ledger(c);
    if (!lg)
        return;
    struct ledger_audit a = {0, c->st.slug, action, policy, reason, who};
    struct bottle_err err = {0};
    if (ledger_audit_add(lg, &a, NULL, &err) < 0)
        log_warn("cannot write the audit row", "action", action, "error", err.msg, NULL);
}

/* Applies the plan's shutdown policy and records it. */
static void apply_policy(struct controller *c, const char *why)
{
    enum shutdown_policy p = c->plan->shutdown ? c->plan->shutdown : SHUTDOWN_CUTOFF;
    const char *policy = shutdown_policy_name(p);
    enum enforce_action a = p == SHUTDOWN_FREEZE ? ENFORCE_FREEZE
                            : p == SHUTDOWN_KILL ? ENFORCE_KILL
                                                 : ENFORCE_CUTOFF;
    int aborted = 0;
    struct bottle_err err = {0};
    int rc = enforce_apply(c->st.slug, a, &aborted, &err);
    if (a == ENFORCE_KILL)
        c->kill_at_ms = 0; /* the agent is gone; the loop tears the bottle down */
    controller_notice(c, "%s: %s; %s", c->st.slug, why,
                      rc == 0 ? (a == ENFORCE_CUTOFF
                                     ? "cut off: no more network traffic (bottle cutoff "
                                       "--restore undoes it)"
                                 : a == ENFORCE_FREEZE ? "frozen (bottle thaw resumes it)"
                                                       : "killed")
                              : err.msg);
    controller_audit(c, a == ENFORCE_CUTOFF ? "cutoff" : enforce_action_name(a), 0,
                     rc == 0 ? why : err.msg);
    controller_ledger_audit(c, enforce_action_name(a), policy, why, "budget");
}

static void on_event(struct controller *c, const char *line, size_t len)
{
    cJSON *ev = cJSON_ParseWithLength(line, len);
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "event"));
    if (kind && strcmp(kind, "budget_exhausted") == 0) {
        const char *provider =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "provider"));
        const char *scope = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "scope"));
        char why[256];
        snprintf(why, sizeof(why), "%s token budget exhausted (%s scope, %.0f of %.0f tokens)",
                 provider ? provider : "?", scope ? scope : "?", json_get_num(ev, "spent", 0),
                 json_get_num(ev, "limit", 0));
        if (c->tearing_down)
            log_info("budget exhausted as the bottle ends", "slug", c->st.slug, "why", why, NULL);
        else
            apply_policy(c, why);
    } else if (kind && strcmp(kind, "ready") == 0) {
        /* the sidecar's start-up signal, already seen by proxy_wait_ready */
    } else {
        log_warn("unknown event from the sidecar", "slug", c->st.slug, NULL);
    }
    cJSON_Delete(ev);
}

void controller_on_events(struct controller *c)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = read(c->events_fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0) { /* the sidecar is gone: nothing more will come */
                close(c->events_fd);
                c->events_fd = -1;
            }
            break;
        }
        buf_append(&c->events_buf, chunk, (size_t)n);
    }
    char *start = c->events_buf.data;
    size_t left = c->events_buf.len;
    char *nl;
    while (left && (nl = memchr(start, '\n', left))) {
        on_event(c, start, (size_t)(nl - start));
        left -= (size_t)(nl - start) + 1;
        start = nl + 1;
    }
    if (left > EVENT_LINE_MAX)
        left = 0; /* a line this long is not an event: drop it */
    memmove(c->events_buf.data, start, left);
    c->events_buf.len = left;
}

void controller_ledger_final(struct controller *c)
{
    if (!c->have_bpf)
        return;
    cJSON *obj = cJSON_CreateObject();
    struct bottle_err err = {0};
    if (bpf_policy_usage_json(c->st.slug, obj, &err) == 0) {
        json_add_str(obj, "slug", c->st.slug);
        json_add_bool(obj, "finished", true);
        char *text = json_to_text(obj, false);
        struct ledger *lg = controller_ledger(c);
        if (lg && ledger_kernel_put(lg, c->st.slug, c->plan->agent_name, text, &err) < 0)
            log_warn("cannot keep the kernel counters", "error", err.msg, NULL);
        free(text);
    }
    cJSON_Delete(obj);
}
