/* budget — which ledger scope counts a budget, and a bottle's budgets and usage as JSON (see
 * budget.h). */
#include "ledger/budget.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "common/json.h"
#include "manifest/manifest.h"
#include "common/home.h"

#define PLAN_FILE_MAX (4u << 20)

enum ledger_scope budget_counting_scope(const char *plan_scope)
{
    if (plan_scope && strcmp(plan_scope, "settings") == 0)
        return LEDGER_SCOPE_GLOBAL;
    if (plan_scope && strcmp(plan_scope, "agent") == 0)
        return LEDGER_SCOPE_AGENT;
    return LEDGER_SCOPE_BOTTLE;
}

bool budget_ledger_is_url(const char *location)
{
    /* Only the URLs a store serves: anything else is a SQLite path, checked as one. */
    return location && ledger_is_url(location);
}

/* Whether path lies strictly inside dir, read as text: no "." or ".." components anywhere. */
static bool path_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(path, dir, n) != 0 || path[n] != '/' || !path[n + 1])
        return false;
    for (const char *p = path; (p = strchr(p, '/')); p++) {
        const char *c = p + 1;
        size_t len = strcspn(c, "/");
        if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
    }
    return true;
}

int budget_ledger_choose(const char *setting, const char *home, char **out, struct bottle_err *err)
{
    *out = NULL;
    if (!setting || !*setting) {
        *out = fs_join(home, LEDGER_FILE);
        return 0;
    }
    if (budget_ledger_is_url(setting) || !home_sudo_uid(NULL) ||
        (setting[0] == '/' && path_inside(setting, home))) {
        *out = xstrdup(setting);
        return 0;
    }
    return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                        "settings.yml: ledger '%s' is not used under sudo: root keeps a user's "
                        "ledger in %s; remove the key, point it inside that directory, or name a "
                        "database URL",
                        setting, home);
}

int budget_ledger_path(const char *home, char **out, struct bottle_err *err)
{
    char *config = NULL;
    *out = NULL;
    if (home_sudo_uid(NULL)) {
        if (home_config_path(&config, err) < 0)
            return -(err->code ? err->code : EINVAL);
    }
    struct manifest_index idx = {.home_dir = config ? config : (char *)home, .project_dir = NULL};
    struct settings st;
    int rc = manifest_index_load_settings(&idx, &st, err);
    free(config);
    if (rc < 0)
        return -(err->code ? err->code : EINVAL);
    rc = budget_ledger_choose(st.ledger_path, home, out, err);
    settings_free(&st);
    return rc;
}

struct ledger *budget_ledger_open(const char *home, struct bottle_err *err)
{
    struct ledger *lg = NULL;
    char *db = NULL;
    if (budget_ledger_path(home, &db, err) < 0)
        return NULL;
    /* A file not there yet is no ledger; a server is asked (and its absence reported). */
    if ((!ledger_is_url(db) && access(db, F_OK) != 0) || ledger_open(db, &lg, err) < 0)
        lg = NULL;
    free(db);
    return lg;
}

const char *budget_counting_name(enum ledger_scope scope, const char *slug, const char *agent)
{
    return scope == LEDGER_SCOPE_GLOBAL ? "" : scope == LEDGER_SCOPE_AGENT ? agent : slug;
}

cJSON *budget_read_plan(const char *home, const char *slug)
{
    char *file = xasprintf("%s/state/%s/plan.json", home, slug);
    struct buf text = BUF_INIT;
    struct bottle_err err = {0};
    cJSON *root = NULL;
    if (fs_read_file(file, PLAN_FILE_MAX, &text, &err) == 0)
        root = cJSON_ParseWithLength(text.data, text.len);
    free(file);
    buf_free(&text);
    return root;
}

/* One bottle's budgets as a JSON object; spent from the ledger when it opens. */
cJSON *budget_bottle_json(struct ledger *lg, const char *slug, const cJSON *plan)
{
    cJSON *out = cJSON_CreateObject();
    json_add_str(out, "slug", slug);
    const char *agent = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(plan, "agent"), "name"));
    json_add_str(out, "agent", agent ? agent : "");
    cJSON *list = cJSON_AddArrayToObject(out, "budgets");
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(plan, "budgets"))
    {
        const char *provider =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "provider"));
        const char *scope = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "scope"));
        const char *source = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "source"));
        const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(b, "tokens");
        if (!provider || !cJSON_IsNumber(tokens))
            continue;
        enum ledger_scope ls = budget_counting_scope(scope);
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "provider", provider);
        cJSON_AddNumberToObject(o, "limit", tokens->valuedouble);
        json_add_str(o, "declared_in", scope ? scope : "");
        json_add_str(o, "source", source ? source : "");
        json_add_str(o, "counts", ledger_scope_name(ls));
        int64_t spent = 0;
        struct bottle_err err = {0};
        const char *counted = budget_counting_name(ls, slug, agent ? agent : "");
        enum ledger_period period = LEDGER_PERIOD_TOTAL;
        if (lg && ledger_period_get(lg, ls, counted, provider, &period, &err) == 0)
            json_add_str(o, "period", ledger_period_name(period));
        if (lg && ledger_spent(lg, ls, counted, provider, &spent, &err) == 0) {
            int64_t left = (int64_t)tokens->valuedouble - spent;
            cJSON_AddNumberToObject(o, "spent", (double)spent);
            cJSON_AddNumberToObject(o, "left", (double)(left > 0 ? left : 0));
        } else {
            cJSON_AddNullToObject(o, "spent");
            cJSON_AddNullToObject(o, "left");
        }
        cJSON_AddItemToArray(list, o);
    }
    const char *pool = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(plan, "pool"), "name"));
    if (pool)
        json_add_str(out, "pool", pool);
    return out;
}

cJSON *budget_pools_json(struct ledger *lg)
{
    cJSON *list = cJSON_CreateArray();
    struct ledger_budget_row *rows = NULL;
    size_t n = 0;
    struct bottle_err err = {0};
    if (!lg || ledger_budgets_list(lg, LEDGER_SCOPE_POOL, &rows, &n, &err) < 0)
        return list;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "pool", rows[i].name);
        json_add_str(o, "provider", rows[i].provider);
        json_add_num(o, "limit", (double)rows[i].limit_tokens);
        enum ledger_period period = LEDGER_PERIOD_TOTAL;
        ledger_period_get(lg, LEDGER_SCOPE_POOL, rows[i].name, rows[i].provider, &period, &err);
        json_add_str(o, "period", ledger_period_name(period));
        int64_t spent = 0;
        if (ledger_spent(lg, LEDGER_SCOPE_POOL, rows[i].name, rows[i].provider, &spent, &err) ==
            0) {
            json_add_num(o, "spent", (double)spent);
            json_add_num(o, "left",
                         (double)(rows[i].limit_tokens > spent ? rows[i].limit_tokens - spent : 0));
        }
        cJSON_AddItemToArray(list, o);
    }
    ledger_budgets_free(rows, n);
    return list;
}

cJSON *budget_groups_json(struct ledger *lg, enum ledger_group by, int64_t since,
                          struct bottle_err *err)
{
    struct ledger_group_row *rows = NULL;
    size_t n = 0;
    if (ledger_usage_groups(lg, by, since, &rows, &n, err) < 0)
        return NULL;
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, ledger_group_name(by), rows[i].key);
        json_add_str(o, "provider", rows[i].provider);
        json_add_num(o, "requests", (double)rows[i].requests);
        json_add_num(o, "charged_tokens", (double)rows[i].charged_tokens);
        json_add_num(o, "reserved_tokens", (double)rows[i].reserved_tokens);
        cJSON_AddItemToArray(list, o);
    }
    ledger_group_rows_free(rows, n);
    return list;
}

cJSON *budget_tokens_json(const char *home, const char *slug, struct ledger *lg)
{
    cJSON *list = cJSON_CreateArray();
    if (!lg)
        return list;
    cJSON *plan = budget_read_plan(home, slug);
    cJSON *budgets = plan ? budget_bottle_json(lg, slug, plan) : NULL;
    struct strv providers = STRV_INIT;
    struct bottle_err err = {0};
    ledger_providers(lg, slug, &providers, &err);
    for (size_t i = 0; i < providers.len; i++) {
        struct ledger_filter f = {slug, NULL, providers.items[i], 0};
        struct ledger_totals t;
        if (ledger_totals(lg, &f, &t, &err) < 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "provider", providers.items[i]);
        json_add_num(o, "requests", (double)t.requests);
        json_add_num(o, "incomplete", (double)t.incomplete);
        json_add_num(o, "input_tokens", (double)t.usage.input_tokens);
        json_add_num(o, "output_tokens", (double)t.usage.output_tokens);
        json_add_num(o, "cache_creation_tokens", (double)t.usage.cache_creation_tokens);
        json_add_num(o, "cache_read_tokens", (double)t.usage.cache_read_tokens);
        json_add_num(o, "charged_tokens", (double)t.charged_tokens);
        json_add_num(o, "reserved_tokens", (double)t.reserved_tokens);
        const cJSON *b, *match = NULL;
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(budgets, "budgets"))
        {
            const char *p = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "provider"));
            if (p && strcmp(p, providers.items[i]) == 0)
                match = b;
        }
        cJSON_AddItemToObject(
            o, "budget",
            match ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(match, "limit"), 1)
                  : cJSON_CreateNull());
        cJSON_AddItemToObject(
            o, "left",
            match ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(match, "left"), 1)
                  : cJSON_CreateNull());
        cJSON_AddItemToArray(list, o);
    }
    strv_free(&providers);
    cJSON_Delete(budgets);
    cJSON_Delete(plan);
    return list;
}
