/* budget — see budget.h. */
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
#include "runtime/controller/controller.h"
#include "common/home.h"

#define PLAN_FILE_MAX (4u << 20)

static const char budget_help[] =
    "usage: bottle budget [<bottle>] [--json]\n"
    "\n"
    "The token budgets of a bottle (every live bottle when none is named): for\n"
    "each metered provider, the limit, where it was declared (--budget, the\n"
    "agent, a bottle, a parent bottle or settings.yml; the most specific wins),\n"
    "whose usage counts against it, what is spent (settled usage plus open\n"
    "reservations, from the ledger) and what is left.\n"
    "\n"
    "  --json   one JSON document: {\"bottles\": [{\"bottle\", \"budgets\": [...]}]}\n";

enum ledger_scope budget_counting_scope(const char *plan_scope)
{
    if (plan_scope && strcmp(plan_scope, "settings") == 0)
        return LEDGER_SCOPE_GLOBAL;
    if (plan_scope && strcmp(plan_scope, "agent") == 0)
        return LEDGER_SCOPE_AGENT;
    return LEDGER_SCOPE_BOTTLE;
}

int budget_ledger_path(const char *home, char **out, struct bottle_err *err)
{
    struct manifest_index idx = {.home_dir = (char *)home, .project_dir = NULL};
    struct settings st;
    *out = NULL;
    if (manifest_index_load_settings(&idx, &st, err) < 0)
        return -(err->code ? err->code : EINVAL);
    *out = st.ledger_path ? xstrdup(st.ledger_path) : fs_join(home, LEDGER_FILE);
    settings_free(&st);
    return 0;
}

struct ledger *budget_ledger_open(const char *home, struct bottle_err *err)
{
    struct ledger *lg = NULL;
    char *db = NULL;
    if (budget_ledger_path(home, &db, err) < 0)
        return NULL;
    if (access(db, F_OK) != 0 || ledger_open(db, &lg, err) < 0)
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
static cJSON *bottle_budgets(struct ledger *lg, const char *slug, const cJSON *plan)
{
    cJSON *out = cJSON_CreateObject();
    json_add_str(out, "bottle", slug);
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
        if (lg && ledger_spent(lg, ls, budget_counting_name(ls, slug, agent ? agent : ""), provider,
                               &spent, &err) == 0) {
            int64_t left = (int64_t)tokens->valuedouble - spent;
            cJSON_AddNumberToObject(o, "spent", (double)spent);
            cJSON_AddNumberToObject(o, "left", (double)(left > 0 ? left : 0));
        } else {
            cJSON_AddNullToObject(o, "spent");
            cJSON_AddNullToObject(o, "left");
        }
        cJSON_AddItemToArray(list, o);
    }
    return out;
}

static void print_text(const cJSON *doc)
{
    const cJSON *bottle;
    printf("%-20s %-10s %12s %12s %12s  %s\n", "BOTTLE", "PROVIDER", "LIMIT", "SPENT", "LEFT",
           "DECLARED IN (COUNTS)");
    cJSON_ArrayForEach(bottle, cJSON_GetObjectItemCaseSensitive(doc, "bottles"))
    {
        const char *slug = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bottle, "bottle"));
        const cJSON *b;
        bool any = false;
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(bottle, "budgets"))
        {
            const cJSON *spent = cJSON_GetObjectItemCaseSensitive(b, "spent");
            const cJSON *left = cJSON_GetObjectItemCaseSensitive(b, "left");
            char s[24] = "?", l[24] = "?";
            if (cJSON_IsNumber(spent))
                snprintf(s, sizeof(s), "%.0f", spent->valuedouble);
            if (cJSON_IsNumber(left))
                snprintf(l, sizeof(l), "%.0f", left->valuedouble);
            const char *source =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "source"));
            printf("%-20s %-10s %12.0f %12s %12s  %s %s (%s)\n", slug,
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "provider")),
                   cJSON_GetObjectItemCaseSensitive(b, "limit")->valuedouble, s, l,
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "declared_in")),
                   source ? source : "",
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "counts")));
            any = true;
        }
        if (!any)
            printf("%-20s %-10s %12s\n", slug, "-", "no budget");
    }
}

static void add_bottle(cJSON *list, struct ledger *lg, const char *home, const char *slug)
{
    cJSON *plan = budget_read_plan(home, slug);
    if (!plan)
        return;
    cJSON_AddItemToArray(list, bottle_budgets(lg, slug, plan));
    cJSON_Delete(plan);
}

int cmd_budget(int argc, char **argv)
{
    bool json = false;
    const char *slug = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(budget_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] != '-' && !slug) {
            slug = argv[i];
        } else {
            fprintf(stderr,
                    "bottle: budget: unexpected argument '%s' (see 'bottle budget --help')\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    if (slug && !home_slug_valid(slug)) {
        fprintf(stderr, "bottle: budget: '%s' is not a bottle name\n", slug);
        return EXIT_USAGE;
    }
    char *home = NULL;
    struct bottle_err err = {0};
    if (home_path(&home, &err) < 0) {
        fprintf(stderr, "bottle: %s\n", err.msg);
        return err_exit_code(&err);
    }
    struct ledger *lg = budget_ledger_open(home, &err);
    if (!lg && err.msg[0])
        fprintf(stderr, "bottle: budget: spending unknown: %s\n", err.msg);
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(doc, "bottles");
    int rc = 0;
    if (slug) {
        add_bottle(list, lg, home, slug);
        if (cJSON_GetArraySize(list) == 0) {
            fprintf(stderr, "bottle: budget: no bottle '%s' (its state is gone or never was)\n",
                    slug);
            rc = EXIT_FAILURE;
        }
    } else {
        char *dir = fs_join(home, "state");
        DIR *d = opendir(dir);
        free(dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (home_slug_valid(e->d_name) && controller_slug_live(e->d_name))
                add_bottle(list, lg, home, e->d_name);
        if (d)
            closedir(d);
    }
    if (rc == 0) {
        if (json) {
            char *text = json_to_text(doc, true);
            puts(text);
            free(text);
        } else {
            print_text(doc);
        }
    }
    cJSON_Delete(doc);
    ledger_close(lg);
    free(home);
    return rc;
}

cJSON *budget_tokens_json(const char *home, const char *slug, struct ledger *lg)
{
    cJSON *list = cJSON_CreateArray();
    if (!lg)
        return list;
    cJSON *plan = budget_read_plan(home, slug);
    cJSON *budgets = plan ? bottle_budgets(lg, slug, plan) : NULL;
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
