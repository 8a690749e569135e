/*
 * `bottle start`: resolve, preflight, and (with --dry-run) print the plan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/docker/docker.h"
#include "common/fs.h"
#include "common/json.h"
#include "manifest/plan.h"
#include "manifest/trust.h"
#include "runtime/cli/args.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/controller.h"
#include "kernel/limits.h"
#include "kernel/platform.h"
#include "runtime/controller/state.h"

static const char start_help[] =
    "usage: bottle start <agent> [options] [-- <agent arguments>...]\n"
    "       bottle start --resume <slug> [<agent>] [options] [-- <agent arguments>...]\n"
    "\n"
    "Runs <agent> in a bottle. With --dry-run, resolves everything and prints the\n"
    "plan without touching the host.\n"
    "\n"
    "options:\n"
    "  --bottle NAME          use this bottle instead of the agent's `bottle:`;\n"
    "                         repeat to fold several, later ones win\n"
    "  --label L              name the bottle (slug) instead of <agent>-<random>\n"
    "  --resume SLUG          boot a Docker bottle from the snapshot 'bottle commit\n"
    "                         SLUG' made (image bottle-committed-SLUG:latest), with\n"
    "                         its saved home; agent, bottles and workspace default\n"
    "                         to the snapshot's, the slug to SLUG; policy comes from\n"
    "                         the manifests as they are now, never from the image\n"
    "  --budget PROVIDER=N    token budget for this run, overriding the files\n"
    "                         (repeatable)\n"
    "  --backend B            native (default), docker, smolmachines or apple\n"
    "  --enforcement TIER     require this tier instead of the manifest's:\n"
    "                         kernel, netns, unprivileged or proxy-only\n"
    "  --cwd DIR              the workspace mounted writable (default: .)\n"
    "  --resolve HOST:PORT:ADDR\n"
    "                         the sidecar connects to ADDR for HOST:PORT, even in\n"
    "                         a blocked network (repeatable; private upstreams)\n"
    "  --upstream-ca FILE     a PEM CA the sidecar also trusts for upstreams\n"
    "  --dry-run              print the plan and stop\n"
    "  --format text|json     plan format (default text; --json is the same as\n"
    "                         --format json)\n"
    "  --quiet                print no start banner (the bottle's name still goes\n"
    "                         to stdout)\n"
    "  -h, --help             this text\n"
    "\n"
    "Project files (./.bottle/) are used only once trusted ('bottle trust'); an\n"
    "untrusted or changed project is refused with exit code 3 (--dry-run shows it).\n"
    "Arguments after `--` are appended to the agent's command.\n"
    "Never waits for a terminal that is not there. Exit codes: 0 ok, 1 runtime\n"
    "failure, 2 usage or manifest error, 3 refused by the enforcement tier;\n"
    "otherwise the agent's own exit code.\n";

/*
 * --resume: the snapshot says which agent, bottles and workspace it ran
 * with; what the command line gives wins. Only names come from the image:
 * the policy is resolved from the manifests as they are now.
 */
static int resume_options(const char *cmd, const char *slug, struct plan_options *o,
                          struct docker_snapshot *snap, struct bottle_err *err)
{
    if (o->backend && strcmp(o->backend, "docker") != 0)
        return cli_usage_error(cmd,
                               "--resume boots a Docker snapshot; it cannot run with "
                               "--backend %s",
                               o->backend);
    o->backend = "docker";
    if (docker_snapshot_find(slug, snap, err) < 0)
        return cli_fail(err);
    if (!o->agent) {
        if (!snap->agent || !*snap->agent)
            return cli_usage_error(cmd, "the snapshot of '%s' does not name its agent; give one",
                                   slug);
        o->agent = snap->agent;
    }
    if (!o->cwd) {
        if (!snap->workspace || !fs_is_dir(snap->workspace))
            return cli_usage_error(cmd,
                                   "the workspace of the snapshot of '%s' (%s) is not a "
                                   "directory any more; pass --cwd",
                                   slug, snap->workspace ? snap->workspace : "");
        o->cwd = snap->workspace;
    }
    o->image = snap->ref;
    o->resume = slug;
    return 0;
}

static int parse_budget(const char *cmd, const char *spec, struct plan_budget_override *out,
                        char **provider_store)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1])
        return cli_usage_error(cmd, "--budget wants PROVIDER=TOKENS, not '%s'", spec);
    char *provider = strndup(spec, (size_t)(eq - spec));
    if (!provider || !manifest_name_valid(provider)) {
        free(provider);
        return cli_usage_error(cmd, "--budget: '%.*s' is not a provider name", (int)(eq - spec),
                               spec);
    }
    const char *num = eq + 1;
    for (const char *c = num; *c; c++)
        if (*c < '0' || *c > '9') {
            free(provider);
            return cli_usage_error(cmd, "--budget: '%s' is not a whole number of tokens", num);
        }
    errno = 0;
    unsigned long long v = strtoull(num, NULL, 10);
    if (errno || v == 0) {
        free(provider);
        return cli_usage_error(cmd, "--budget: tokens must be a positive number, not '%s'", num);
    }
    *provider_store = provider;
    out->provider = provider;
    out->tokens = v;
    return 0;
}

struct start_view {
    const struct plan *plan;
    const struct bottle_backend *backend; /* NULL: this build cannot run the plan's backend */
    bool quiet;
};

/* The enforcement lines of --dry-run and the banner: what holds and what does not. */
static void enforcement_text(const struct start_view *v, struct buf *b)
{
    if (!v->backend) {
        buf_printf(b,
                   "warning: backend '%s' cannot run bottles in this build; a real start "
                   "would fail\n",
                   v->plan->backend);
        return;
    }
    buf_printf(b, "  enforced (%s backend, %s tier):\n", v->backend->name,
               enforcement_tier_name(v->plan->tier_available));
    for (const char *const *l = v->backend->enforces; l && *l; l++)
        buf_printf(b, "    - %s\n", *l);
    buf_append_str(b, "  not enforced:\n");
    for (const char *const *l = v->backend->does_not; l && *l; l++)
        buf_printf(b, "    - %s\n", *l);
}

static void enforcement_json(const struct start_view *v, cJSON *doc)
{
    cJSON *o = cJSON_AddObjectToObject(doc, "enforcement_report");
    json_add_bool(o, "backend_available", v->backend != NULL);
    cJSON *yes = cJSON_AddArrayToObject(o, "enforced");
    cJSON *no = cJSON_AddArrayToObject(o, "not_enforced");
    for (const char *const *l = v->backend ? v->backend->enforces : NULL; l && *l; l++)
        cJSON_AddItemToArray(yes, cJSON_CreateString(*l));
    for (const char *const *l = v->backend ? v->backend->does_not : NULL; l && *l; l++)
        cJSON_AddItemToArray(no, cJSON_CreateString(*l));
}

/*
 * The bottle's name on stdout as soon as it has one (scripts read it), then,
 * unless --quiet, a few lines on stderr: backend and tier, routes, budgets,
 * DLP, and what this tier does not enforce.
 */
static void say_started(void *arg, const char *slug)
{
    const struct start_view *v = arg;
    printf("bottle: %s\n", slug);
    fflush(stdout);
    if (v->quiet)
        return;
    const struct plan *p = v->plan;
    struct buf b = BUF_INIT;
    buf_printf(&b, "  %s backend, %s enforcement tier\n", p->backend,
               enforcement_tier_name(p->tier_available));
    buf_append_str(&b, "  routes:");
    for (size_t i = 0; i < p->routes.len; i++)
        buf_printf(&b, "%s %s", i ? "," : "", p->routes.items[i].host);
    buf_append_str(&b, p->routes.len ? "\n" : " none (nothing leaves the bottle)\n");
    buf_append_str(&b, "  budgets:");
    for (size_t i = 0; i < p->n_budgets; i++)
        buf_printf(&b, "%s %s %llu tokens", i ? "," : "", p->budgets[i].provider,
                   (unsigned long long)p->budgets[i].tokens);
    buf_append_str(&b, p->n_budgets ? "\n" : " none\n");
    size_t dlp = 0;
    for (size_t i = 0; i < p->routes.len; i++)
        dlp += p->routes.items[i].dlp.outbound != 0;
    buf_printf(&b, "  dlp: outbound scanning on %zu of %zu routes\n", dlp, p->routes.len);
    for (const char *const *l = v->backend ? v->backend->does_not : NULL; l && *l; l++)
        buf_printf(&b, "  not enforced: %s\n", *l);
    fputs(b.data, stderr);
    buf_free(&b);
}

static void say_notice(void *arg, const char *text)
{
    (void)arg;
    fprintf(stderr, "bottle: %s\n", text);
}

int cmd_start(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(start_help, stdout);
        return 0;
    }
    const char *cmd = "start";
    struct args a;
    args_init(&a, argc, argv);
    struct plan_options o;
    memset(&o, 0, sizeof(o));
    const char **bottles = calloc((size_t)argc + 1, sizeof(char *));
    const char **resolves = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_resolves = 0;
    const char *upstream_ca = NULL;
    struct plan_budget_override *budgets = calloc((size_t)argc + 1, sizeof(*budgets));
    char **budget_names = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_bottles = 0, n_budgets = 0;
    bool dry_run = false, json = false, quiet = false;
    int rc = EXIT_USAGE;
    int kind;
    struct plan plan;
    memset(&plan, 0, sizeof(plan));
    struct platform_facts facts;
    memset(&facts, 0, sizeof(facts));
    bool probed = false;
    const char *resume = NULL;
    struct docker_snapshot snap;
    memset(&snap, 0, sizeof(snap));

    while ((kind = args_next(&a)) != 0) {
        const char *v;
        if (kind == 2) {
            if (o.agent) {
                cli_usage_error(cmd, "unexpected argument '%s' (agent arguments go after `--`)",
                                a.cur);
                goto out;
            }
            o.agent = a.cur;
        } else if (args_is(&a, "--bottle")) {
            if (!(v = args_value(&a)))
                goto out;
            bottles[n_bottles++] = v;
        } else if (args_is(&a, "--label")) {
            if (!(v = args_value(&a)))
                goto out;
            o.label = v;
        } else if (args_is(&a, "--resume")) {
            if (!(v = args_value(&a)))
                goto out;
            if (!home_slug_valid(v)) {
                cli_usage_error(cmd, "--resume wants a bottle's slug, not '%s'", v);
                goto out;
            }
            resume = v;
        } else if (args_is(&a, "--budget")) {
            if (!(v = args_value(&a)))
                goto out;
            if (parse_budget(cmd, v, &budgets[n_budgets], &budget_names[n_budgets]) != 0)
                goto out;
            n_budgets++;
        } else if (args_is(&a, "--backend")) {
            if (!(v = args_value(&a)))
                goto out;
            /* A backend this build cannot run is still known: --dry-run shows its plan. */
            const struct bottle_backend *be = NULL;
            struct bottle_err why = {0};
            if (backend_lookup(v, &be, &why) < 0 && why.kind == ERR_KIND_USAGE) {
                cli_usage_error(cmd, "--backend: %s", why.msg);
                goto out;
            }
            o.backend = v;
        } else if (args_is(&a, "--enforcement")) {
            if (!(v = args_value(&a)))
                goto out;
            if (enforcement_tier_parse(v, &o.tier_override) < 0) {
                cli_usage_error(cmd,
                                "--enforcement '%s' is not a tier; use kernel, netns, "
                                "unprivileged or proxy-only",
                                v);
                goto out;
            }
        } else if (args_is(&a, "--cwd")) {
            if (!(v = args_value(&a)))
                goto out;
            o.cwd = v;
        } else if (args_is(&a, "--resolve")) {
            if (!(v = args_value(&a)))
                goto out;
            const char *c1 = strchr(v, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c1 || c1 == v || !c2 || c2 == c1 + 1 || !c2[1]) {
                cli_usage_error(cmd, "--resolve wants HOST:PORT:ADDR, not '%s'", v);
                goto out;
            }
            resolves[n_resolves++] = v;
        } else if (args_is(&a, "--upstream-ca")) {
            if (!(v = args_value(&a)))
                goto out;
            upstream_ca = v;
        } else if (args_is(&a, "--format")) {
            if (!(v = args_value(&a)) || !cli_parse_format(cmd, v, &json))
                goto out;
        } else if (args_is(&a, "--json")) {
            if (!args_no_value(&a))
                goto out;
            json = true;
        } else if (args_is(&a, "--dry-run")) {
            if (!args_no_value(&a))
                goto out;
            dry_run = true;
        } else if (args_is(&a, "--quiet") || args_is(&a, "-q")) {
            if (!args_no_value(&a))
                goto out;
            quiet = true;
        } else {
            cli_usage_error(cmd, "unknown option '%s'", a.cur);
            goto out;
        }
    }
    struct bottle_err err = {0};
    if (resume && (rc = resume_options(cmd, resume, &o, &snap, &err)) != 0)
        goto out;
    rc = EXIT_USAGE;
    if (!o.agent) {
        cli_usage_error(cmd, "which agent? (see 'bottle list available')");
        goto out;
    }
    o.bottles = bottles;
    o.n_bottles = n_bottles;
    if (resume && n_bottles == 0) {
        o.bottles = (const char *const *)snap.bottles.items;
        o.n_bottles = snap.bottles.len;
    }
    o.budgets = budgets;
    o.n_budgets = n_budgets;
    o.extra_args = (const char *const *)(argv + a.rest_at);
    o.n_extra_args = (size_t)(argc - a.rest_at);

    platform_probe(&facts);
    probed = true;
    o.tier_available = facts.tier;
    o.tier_why = facts.tier_why;
    o.host_memory = facts.memory_bytes;

    struct manifest_index idx;
    if (manifest_index_open(&idx, NULL, NULL, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!dry_run && cli_refuse_untrusted(&idx, o.agent)) {
        manifest_index_free(&idx);
        rc = EXIT_REFUSED;
        goto out;
    }
    if (plan_build(&idx, &o, &plan, &err) < 0) {
        manifest_index_free(&idx);
        rc = cli_fail(&err);
        goto out;
    }
    manifest_index_free(&idx);
    if (resume && !plan.label)
        plan.label = xstrdup(resume); /* the snapshot's slug, already a valid one */
    /* A native bottle's limit this host cannot enforce: shown in the plan, refused at start
     * (the engine applies a Docker bottle's limits). */
    struct bottle_err unenforceable = {0};
    if (strcmp(plan.backend, backend_native.name) == 0 &&
        limits_check(facts.controllers, &plan.limits, &unenforceable) < 0)
        strv_push_owned(&plan.warnings, xasprintf("%s; start will refuse", unenforceable.msg));

    const struct bottle_backend *backend = NULL;
    struct bottle_err why = {0};
    bool have_backend = backend_lookup(plan.backend, &backend, &why) == 0;
    struct start_view view = {&plan, have_backend ? backend : NULL, quiet};
    if (dry_run) {
        if (json) {
            cJSON *doc = plan_to_json(&plan);
            enforcement_json(&view, doc);
            char *text = json_to_text(doc, true);
            fputs(text, stdout);
            free(text);
            cJSON_Delete(doc);
        } else {
            struct buf b = BUF_INIT;
            plan_to_text(&plan, &b);
            enforcement_text(&view, &b);
            fputs(b.data, stdout);
            buf_free(&b);
            fputs("dry run: nothing was started\n", stdout);
        }
        rc = 0;
        goto out;
    }

    if (!plan_tier_ok(&plan)) {
        fprintf(stderr,
                "bottle: refused: the bottle requires the '%s' enforcement tier, but this "
                "host offers '%s': %s\n",
                enforcement_tier_name(plan.tier_required),
                enforcement_tier_name(plan.tier_available), plan.tier_why);
        rc = EXIT_REFUSED;
        goto out;
    }
    if (unenforceable.msg[0]) {
        fprintf(stderr, "bottle: refused: %s\n", unenforceable.msg);
        rc = EXIT_REFUSED;
        goto out;
    }
    if (plan_check_host_values(&plan, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    if (!have_backend) {
        fprintf(stderr, "bottle: %s ('bottle start %s --dry-run' shows the plan)\n", why.msg,
                plan.agent_name);
        rc = EXIT_RUNTIME;
        goto out;
    }
    struct controller_options copts = {.resolve = resolves,
                                       .n_resolve = n_resolves,
                                       .upstream_ca = upstream_ca,
                                       .started = say_started,
                                       .notice = say_notice,
                                       .arg = &view};
    int agent_exit = 0;
    if (controller_start(&plan, &copts, &agent_exit, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    rc = agent_exit;
out:
    plan_free(&plan);
    docker_snapshot_free(&snap);
    if (probed)
        platform_facts_free(&facts);
    for (size_t i = 0; i < n_budgets; i++)
        free(budget_names[i]);
    free(budget_names);
    free(budgets);
    free(bottles);
    free(resolves);
    return rc;
}
