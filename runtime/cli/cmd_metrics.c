/*
 * cmd_metrics — `bottle metrics`: the ledger's token usage, budgets and pools
 * and the live bottles' kernel byte counters in Prometheus' text format, for
 * a node exporter's textfile collector or a scrape through a wrapper.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "bpf/policy.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/home.h"
#include "common/json.h"
#include "ledger/budget.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/state.h"

static const char metrics_help[] =
    "usage: bottle metrics\n"
    "\n"
    "Prints, in Prometheus' text exposition format: tokens charged, requests and\n"
    "open reservations per bottle and per host from the ledger (every host that\n"
    "shares it), each live bottle's budgets (limit and left) and kernel byte\n"
    "counters, every budget pool's limit, spent and left, and whether the ledger\n"
    "answered (bottle_ledger_up). Exit code 0, 1 when the ledger cannot be read.\n";

/* A label value with \\, " and newlines escaped. */
static void label(struct buf *b, const char *name, const char *value, bool first)
{
    buf_printf(b, "%s%s=\"", first ? "" : ",", name);
    for (const char *p = value ? value : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            buf_append_char(b, '\\');
        if (*p == '\n')
            buf_append_str(b, "\\n");
        else
            buf_append_char(b, *p);
    }
    buf_append_char(b, '"');
}

static void header(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void groups(struct buf *b, struct ledger *lg, enum ledger_group by, const char *prefix)
{
    struct bottle_err err = {0};
    struct ledger_group_row *rows = NULL;
    size_t n = 0;
    if (ledger_usage_groups(lg, by, 0, &rows, &n, &err) < 0)
        return;
    static const char *const what[] = {"tokens_charged_total", "requests_total", "tokens_reserved"};
    static const char *const type[] = {"counter", "counter", "gauge"};
    static const char *const help[] = {"Tokens charged by the ledger (settled usage).",
                                       "Metered requests settled in the ledger.",
                                       "Tokens held by open reservations."};
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof(name), "%s_%s", prefix, what[k]);
        header(b, name, type[k], help[k]);
        for (size_t i = 0; i < n; i++) {
            buf_printf(b, "%s{", name);
            label(b, ledger_group_name(by), rows[i].key, true);
            label(b, "provider", rows[i].provider, false);
            int64_t v = k == 0   ? rows[i].charged_tokens
                        : k == 1 ? rows[i].requests
                                 : rows[i].reserved_tokens;
            buf_printf(b, "} %lld\n", (long long)v);
        }
    }
    ledger_group_rows_free(rows, n);
}

static void live_bottles(struct buf *b, struct ledger *lg, const char *home)
{
    struct buf limits = BUF_INIT, lefts = BUF_INIT, bytes = BUF_INIT;
    char *dir = fs_join(home, "state");
    DIR *d = opendir(dir);
    free(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!home_slug_valid(e->d_name) || !state_slug_live(e->d_name))
            continue;
        cJSON *plan = budget_read_plan(home, e->d_name);
        cJSON *doc = plan ? budget_bottle_json(lg, e->d_name, plan) : NULL;
        const cJSON *bud;
        cJSON_ArrayForEach(bud, cJSON_GetObjectItemCaseSensitive(doc, "budgets"))
        {
            const char *provider =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bud, "provider"));
            const char *counts =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bud, "counts"));
            buf_append_str(&limits, "bottle_budget_limit_tokens{");
            label(&limits, "bottle", e->d_name, true);
            label(&limits, "provider", provider, false);
            label(&limits, "counts", counts, false);
            buf_printf(&limits, "} %.0f\n", json_get_num(bud, "limit", 0));
            const cJSON *left = cJSON_GetObjectItemCaseSensitive(bud, "left");
            if (cJSON_IsNumber(left)) {
                buf_append_str(&lefts, "bottle_budget_left_tokens{");
                label(&lefts, "bottle", e->d_name, true);
                label(&lefts, "provider", provider, false);
                label(&lefts, "counts", counts, false);
                buf_printf(&lefts, "} %.0f\n", left->valuedouble);
            }
        }
        cJSON_Delete(doc);
        cJSON_Delete(plan);
        struct bottle_stats s;
        bool cut = false;
        struct bottle_err err = {0};
        if (bpf_policy_read_bottle(e->d_name, &s, &cut, &err) == 0) {
            buf_append_str(&bytes, "bottle_bytes_total{");
            label(&bytes, "bottle", e->d_name, true);
            buf_printf(&bytes, ",direction=\"out\"} %llu\n", (unsigned long long)s.tx_bytes);
            buf_append_str(&bytes, "bottle_bytes_total{");
            label(&bytes, "bottle", e->d_name, true);
            buf_printf(&bytes, ",direction=\"in\"} %llu\n", (unsigned long long)s.rx_bytes);
        }
    }
    if (d)
        closedir(d);
    header(b, "bottle_budget_limit_tokens", "gauge", "A live bottle's effective token budget.");
    buf_append_str(b, limits.data ? limits.data : "");
    header(b, "bottle_budget_left_tokens", "gauge",
           "What is left of it (limit minus settled usage and open reservations).");
    buf_append_str(b, lefts.data ? lefts.data : "");
    header(b, "bottle_bytes_total", "counter", "A live bottle's bytes through the kernel.");
    buf_append_str(b, bytes.data ? bytes.data : "");
    buf_free(&limits);
    buf_free(&lefts);
    buf_free(&bytes);
}

static void pools(struct buf *b, struct ledger *lg)
{
    cJSON *list = budget_pools_json(lg);
    static const char *const keys[] = {"limit", "spent", "left"};
    for (int k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof(name), "bottle_pool_%s_tokens", keys[k]);
        header(b, name, "gauge", "A budget pool, shared by its bottles on every host.");
        const cJSON *p;
        cJSON_ArrayForEach(p, list)
        {
            if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(p, keys[k])))
                continue;
            buf_printf(b, "%s{", name);
            label(b, "pool", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "pool")),
                  true);
            label(b, "provider",
                  cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "provider")), false);
            label(b, "period", cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "period")),
                  false);
            buf_printf(b, "} %.0f\n", json_get_num(p, keys[k], 0));
        }
    }
    cJSON_Delete(list);
}

int cmd_metrics(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(metrics_help, stdout);
            return 0;
        }
        fprintf(stderr, "bottle: metrics: unexpected argument '%s' (see 'bottle metrics --help')\n",
                argv[i]);
        return EXIT_USAGE;
    }
    char *home = NULL;
    struct bottle_err err = {0};
    if (home_path(&home, &err) < 0) {
        fprintf(stderr, "bottle: %s\n", err.msg);
        return err_exit_code(&err);
    }
    struct ledger *lg = budget_ledger_open(home, &err);
    int64_t ms = 0;
    bool up = lg && ledger_ping(lg, &ms, &err) == 0;
    struct buf b = BUF_INIT;
    header(&b, "bottle_ledger_up", "gauge", "1 when the ledger answered.");
    buf_printf(&b, "bottle_ledger_up %d\n", up ? 1 : 0);
    if (up) {
        groups(&b, lg, LEDGER_BY_BOTTLE, "bottle");
        groups(&b, lg, LEDGER_BY_HOST, "bottle_host");
        groups(&b, lg, LEDGER_BY_POOL, "bottle_pool");
        pools(&b, lg);
    }
    live_bottles(&b, up ? lg : NULL, home);
    fputs(b.data, stdout);
    buf_free(&b);
    ledger_close(lg);
    free(home);
    if (!up && err.msg[0]) {
        fprintf(stderr, "bottle: metrics: ledger: %s\n", err.msg);
        return EXIT_RUNTIME;
    }
    return 0;
}
