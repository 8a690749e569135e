/*
 * `bottle doctor`: what this host can enforce, and why not more.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "bpf/probe.h"
#include "common/home.h"
#include "common/json.h"
#include "ledger/budget.h"
#include "runtime/cli/args.h"
#include "runtime/cli/cli.h"
#include "runtime/cli/cmd_kernel.h"
#include "kernel/platform.h"

static const char doctor_help[] =
    "usage: bottle doctor [--format text|json]\n"
    "\n"
    "Reports the platform facts that decide the enforcement tier: OS and kernel,\n"
    "the cgroup2 mount (from /proc/self/mountinfo), bpffs, whether a cgroup BPF\n"
    "program loads, kernel BTF, the seccomp API level and actions, the Landlock ABI,\n"
    "network namespaces, and the backend CLIs on PATH (docker, smolvm, container).\n"
    "It ends with the best tier available and what is missing for a higher one.\n"
    "As root it also loads and attaches each policy program to a temporary cgroup\n"
    "(removed again) and checks that established sockets can be destroyed.\n"
    "It also checks the ledger settings.yml names (SQLite file or PostgreSQL\n"
    "server): that it opens and answers, its schema version and round trip.\n"
    "Nothing else on the host changes. Exit code 0.\n";

/* The ledger bottles started here would use: opens, migrates and answers a round trip. */
static cJSON *ledger_check(void)
{
    cJSON *o = cJSON_CreateObject();
    char *home = NULL, *where = NULL;
    struct bottle_err err = {0};
    struct ledger *lg = NULL;
    int64_t ms = 0;
    int rc = home_path(&home, &err);
    if (rc == 0)
        rc = budget_ledger_path(home, &where, &err);
    if (rc == 0) {
        json_add_str(o, "store", ledger_is_url(where) ? "postgresql" : "sqlite");
        json_add_str(o, "where", where);
        if (!ledger_is_url(where) && access(where, F_OK) != 0) { /* doctor creates nothing */
            json_add_bool(o, "ok", true);
            json_add_str(o, "note", "not created yet: the first bottle started creates it");
            free(where);
            free(home);
            return o;
        }
        rc = ledger_open(where, &lg, &err);
    }
    if (rc == 0)
        rc = ledger_ping(lg, &ms, &err);
    json_add_bool(o, "ok", rc == 0);
    if (rc == 0) {
        json_add_num(o, "schema_version", (double)ledger_schema_version(lg, &err));
        json_add_num(o, "round_trip_ms", (double)ms);
        json_add_str(o, "host", ledger_host(lg));
    } else {
        json_add_str(o, "error", err.msg);
    }
    ledger_close(lg);
    free(where);
    free(home);
    return o;
}

static void ledger_check_text(const cJSON *o, struct buf *b)
{
    const char *where = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "where"));
    const char *store = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "store"));
    const char *note = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "note"));
    if (note)
        buf_printf(b, "ledger: %s %s: %s\n", store, where, note);
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok")))
        buf_printf(b, "ledger: %s %s: ok (schema %.0f, %.0f ms round trip, rows from host %s)\n",
                   store, where, json_get_num(o, "schema_version", 0),
                   json_get_num(o, "round_trip_ms", 0),
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "host")));
    else
        buf_printf(b, "ledger: %s %s: FAILED: %s (metered routes are refused until it answers)\n",
                   store ? store : "?", where ? where : "?",
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "error")));
}

int cmd_doctor(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(doctor_help, stdout);
        return 0;
    }
    struct args a;
    args_init(&a, argc, argv);
    bool json = false;
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 1 && args_is(&a, "--format")) {
            const char *v = args_value(&a);
            if (!v || !cli_parse_format("doctor", v, &json))
                return EXIT_USAGE;
        } else if (kind == 1 && args_is(&a, "--json")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            json = true;
        } else {
            return cli_usage_error("doctor", "unexpected argument '%s'", a.cur);
        }
    }
    struct platform_facts f;
    platform_probe(&f);
    if (json) {
        cJSON *doc = platform_facts_json(&f);
        if (f.tier == TIER_KERNEL)
            bpf_probe_report(NULL, doc);
        cJSON_AddItemToObject(doc, "ledger", ledger_check());
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
        cJSON_Delete(doc);
    } else {
        /* The tier is the verdict: it stays the last line, after the BPF details. */
        struct buf b = BUF_INIT, bpf = BUF_INIT;
        platform_facts_text(&f, &b);
        if (f.tier == TIER_KERNEL)
            bpf_probe_report(&bpf, NULL);
        cJSON *lc = ledger_check();
        ledger_check_text(lc, &bpf);
        cJSON_Delete(lc);
        char *tier = b.len ? strstr(b.data, "tier: ") : NULL;
        while (tier && tier != b.data && tier[-1] != '\n')
            tier = strstr(tier + 1, "tier: ");
        if (tier && bpf.len) {
            fwrite(b.data, 1, (size_t)(tier - b.data), stdout);
            fputs(bpf.data, stdout);
            fputs(tier, stdout);
        } else {
            fputs(b.data, stdout);
            if (bpf.len)
                fputs(bpf.data, stdout);
        }
        buf_free(&b);
        buf_free(&bpf);
    }
    platform_facts_free(&f);
    return 0;
}
