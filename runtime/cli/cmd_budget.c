/* cmd_budget — `bottle budget`: token budgets of bottles, from their plans and the ledger. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "common/home.h"
#include "common/json.h"
#include "ledger/budget.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/state.h"

static const char budget_help[] =
    "usage: bottle budget [<bottle>] [--format text|json]\n"
    "\n"
    "The token budgets of a bottle (every live bottle when none is named): for\n"
    "each metered provider, the limit, where it was declared (--budget, the\n"
    "agent, a bottle, a parent bottle or settings.yml; the most specific wins),\n"
    "whose usage counts against it, what is spent (settled usage plus open\n"
    "reservations, from the ledger) and what is left. Then every budget pool the\n"
    "ledger holds, shared by the bottles naming it on every host: its limit,\n"
    "period, spent and left.\n"
    "\n"
    "  --format json, --json\n"
    "           one JSON document: {\"bottles\": [{\"slug\", \"budgets\": [...]}],\n"
    "           \"pools\": [{\"pool\", \"provider\", \"limit\", \"period\", \"spent\", "
    "\"left\"}]}\n";

static void print_text(const cJSON *doc)
{
    const cJSON *bottle;
    printf("%-20s %-10s %12s %12s %12s  %s\n", "BOTTLE", "PROVIDER", "LIMIT", "SPENT", "LEFT",
           "DECLARED IN (COUNTS)");
    cJSON_ArrayForEach(bottle, cJSON_GetObjectItemCaseSensitive(doc, "bottles"))
    {
        const char *slug = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(bottle, "slug"));
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
    const cJSON *pools = cJSON_GetObjectItemCaseSensitive(doc, "pools");
    if (cJSON_GetArraySize(pools) == 0)
        return;
    printf("\n%-20s %-10s %12s %12s %12s  %s\n", "POOL", "PROVIDER", "LIMIT", "SPENT", "LEFT",
           "PERIOD");
    const cJSON *p;
    cJSON_ArrayForEach(p, pools)
    {
        const cJSON *spent = cJSON_GetObjectItemCaseSensitive(p, "spent");
        const cJSON *left = cJSON_GetObjectItemCaseSensitive(p, "left");
        char s[24] = "?", l[24] = "?";
        if (cJSON_IsNumber(spent))
            snprintf(s, sizeof(s), "%.0f", spent->valuedouble);
        if (cJSON_IsNumber(left))
            snprintf(l, sizeof(l), "%.0f", left->valuedouble);
        printf("%-20s %-10s %12.0f %12s %12s  %s\n",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "pool")),
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "provider")),
               cJSON_GetObjectItemCaseSensitive(p, "limit")->valuedouble, s, l,
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "period")));
    }
}

static void add_bottle(cJSON *list, struct ledger *lg, const char *home, const char *slug)
{
    cJSON *plan = budget_read_plan(home, slug);
    if (!plan)
        return;
    cJSON_AddItemToArray(list, budget_bottle_json(lg, slug, plan));
    cJSON_Delete(plan);
}

int cmd_budget(int argc, char **argv)
{
    bool json = false;
    const char *slug = NULL;
    int f;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(budget_help, stdout);
            return 0;
        } else if ((f = cli_format_option("budget", argc, argv, &i, &json)) != 0) {
            if (f < 0)
                return EXIT_USAGE;
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
            rc = cli_no_bottle(slug);
        }
    } else {
        char *dir = fs_join(home, "state");
        DIR *d = opendir(dir);
        free(dir);
        for (struct dirent *e; d && (e = readdir(d));)
            if (home_slug_valid(e->d_name) && state_slug_live(e->d_name))
                add_bottle(list, lg, home, e->d_name);
        if (d)
            closedir(d);
    }
    cJSON_AddItemToObject(doc, "pools", budget_pools_json(lg));
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
