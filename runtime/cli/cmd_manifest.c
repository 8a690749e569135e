/*
 * `bottle list`, `bottle info` and `bottle policy test`: read-only views of
 * the manifests, through the same resolution and matcher as `bottle start`,
 * and of the bottles that run (`list active`: state directories, the
 * controllers' locks and their control sockets).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fs.h"
#include "common/home.h"
#include "common/json.h"
#include "manifest/plan.h"
#include "manifest/route.h"
#include "runtime/cli/args.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/control.h"
#include "runtime/controller/context.h"
#include "runtime/controller/state.h"

/* ---- list ------------------------------------------------------------------ */

static const char list_help[] =
    "usage: bottle list available [--format text|json]\n"
    "       bottle list active [--format text|json]\n"
    "\n"
    "available: the agents and bottles found in ./.bottle/ and $BOTTLE_HOME (default\n"
    "~/.bottle), with the file that defines each (the project directory wins).\n"
    "Files are not parsed here: a broken file is listed and fails only when used.\n"
    "active: bottles with a state directory in the data home (under sudo,\n"
    "/var/lib/bottle/<uid>/state/; else $BOTTLE_HOME/state/): slug, agent,\n"
    "backend, enforcement tier, when it started (local time) and its state:\n"
    "running, frozen, cut_off (from the bottle's controller), starting, or stale\n"
    "when no controller holds it any more (`bottle cleanup` removes it).\n";

static void list_names(const struct manifest_index *idx, bool agents, bool json, cJSON *doc)
{
    struct strv names = STRV_INIT;
    if (agents)
        manifest_index_agents(idx, &names);
    else
        manifest_index_bottles(idx, &names);
    cJSON *arr = json ? cJSON_AddArrayToObject(doc, agents ? "agents" : "bottles") : NULL;
    if (!json)
        printf("%s:\n", agents ? "agents" : "bottles");
    if (!json && names.len == 0)
        printf("  (none)\n");
    for (size_t i = 0; i < names.len; i++) {
        char *path = agents ? manifest_index_agent_path(idx, names.items[i])
                            : manifest_index_bottle_path(idx, names.items[i]);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            json_add_str(o, "name", names.items[i]);
            json_add_str(o, "file", path);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("  %-20s %s\n", names.items[i], path ? path : "");
        }
        free(path);
    }
    strv_free(&names);
}

struct active_row {
    char *slug, *agent, *backend, *tier, *state;
    time_t started;
};

static char *dup_or(const char *s, const char *dflt)
{
    return xstrdup(s && *s ? s : dflt);
}

/* What plan.json says, for a bottle whose controller does not answer. */
static void row_from_state(const char *dir, struct active_row *r)
{
    struct buf b = BUF_INIT;
    struct bottle_err ignored = {0};
    char *plan = fs_join(dir, "plan.json");
    cJSON *doc = NULL;
    if (fs_read_file(plan, 4u << 20, &b, &ignored) == 0)
        doc = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
    free(plan);
    buf_free(&b);
    r->agent = dup_or(json_get_str(cJSON_GetObjectItemCaseSensitive(doc, "agent"), "name"), "?");
    r->backend = dup_or(json_get_str(doc, "backend"), "?");
    r->tier = dup_or(
        json_get_str(cJSON_GetObjectItemCaseSensitive(doc, "enforcement"), "available"), "?");
    cJSON_Delete(doc);
    char *pid = fs_join(dir, CONTROLLER_PID_FILE);
    struct stat sb;
    r->started = stat(pid, &sb) == 0 ? sb.st_mtime : stat(dir, &sb) == 0 ? sb.st_mtime : 0;
    free(pid);
}

static void active_row(const char *home, const char *state_dir, const char *slug,
                       struct active_row *r)
{
    memset(r, 0, sizeof(*r));
    r->slug = xstrdup(slug);
    char *dir = fs_join(state_dir, slug);
    bool live = state_slug_live(slug);
    cJSON *st = NULL;
    struct bottle_err err = {0};
    if (live && control_simple(home, slug, "status", 2000, &st, &err) == 0) {
        r->agent = dup_or(json_get_str(st, "agent"), "?");
        r->backend = dup_or(json_get_str(st, "backend"), "?");
        r->tier = dup_or(json_get_str(st, "tier"), "?");
        r->state = dup_or(json_get_str(st, "state"), "running");
        struct tm tm;
        memset(&tm, 0, sizeof(tm));
        const char *started = json_get_str(st, "started");
        r->started = started && strptime(started, "%Y-%m-%dT%H:%M:%SZ", &tm) ? timegm(&tm) : 0;
        cJSON_Delete(st);
    } else {
        row_from_state(dir, r);
        /* A live controller that does not answer yet is still starting its bottle. */
        r->state = xstrdup(live ? "starting" : "stale");
    }
    free(dir);
}

static void active_row_free(struct active_row *r)
{
    free(r->slug);
    free(r->agent);
    free(r->backend);
    free(r->tier);
    free(r->state);
}

static int list_active(bool json)
{
    /* State is in the data home, which under sudo is not where the manifests are. */
    char *home = NULL;
    struct bottle_err err = {0};
    if (home_path(&home, &err) < 0)
        return cli_fail(&err);
    char *state = fs_join(home, "state");
    DIR *d = opendir(state);
    struct strv slugs = STRV_INIT;
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' || !home_slug_valid(de->d_name))
                continue;
            char *p = fs_join(state, de->d_name);
            if (fs_is_dir(p))
                strv_push(&slugs, de->d_name);
            free(p);
        }
        closedir(d);
    }
    qsort(slugs.items, slugs.len, sizeof(char *), (int (*)(const void *, const void *))strcmp);
    cJSON *doc = json ? cJSON_CreateObject() : NULL;
    cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "active") : NULL;
    if (!json && slugs.len == 0)
        printf("no active bottles\n");
    else if (!json)
        printf("%-28s %-14s %-8s %-12s %-19s %s\n", "SLUG", "AGENT", "BACKEND", "TIER", "STARTED",
               "STATE");
    for (size_t i = 0; i < slugs.len; i++) {
        struct active_row r;
        active_row(home, state, slugs.items[i], &r);
        char local[32] = "-", utc[32] = "";
        struct tm tm;
        if (r.started) {
            strftime(local, sizeof(local), "%Y-%m-%d %H:%M:%S", localtime_r(&r.started, &tm));
            strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&r.started, &tm));
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            json_add_str(o, "slug", r.slug);
            json_add_str(o, "agent", r.agent);
            json_add_str(o, "backend", r.backend);
            json_add_str(o, "tier", r.tier);
            json_add_str(o, "started", utc[0] ? utc : NULL);
            json_add_str(o, "state", r.state);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%-28s %-14s %-8s %-12s %-19s %s\n", r.slug, r.agent, r.backend, r.tier, local,
                   r.state);
        }
        active_row_free(&r);
    }
    if (json) {
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
        cJSON_Delete(doc);
    }
    free(state);
    free(home);
    strv_free(&slugs);
    return 0;
}

int cmd_list(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(list_help, stdout);
        return 0;
    }
    struct args a;
    args_init(&a, argc, argv);
    const char *what = NULL;
    bool json = false;
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 2) {
            if (what)
                return cli_usage_error("list", "unexpected argument '%s'", a.cur);
            what = a.cur;
        } else if (args_is(&a, "--format")) {
            const char *v = args_value(&a);
            if (!v || !cli_parse_format("list", v, &json))
                return EXIT_USAGE;
        } else if (args_is(&a, "--json")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            json = true;
        } else {
            return cli_usage_error("list", "unknown option '%s'", a.cur);
        }
    }
    if (!what)
        what = "available";
    if (strcmp(what, "available") != 0 && strcmp(what, "active") != 0)
        return cli_usage_error("list", "list 'available' or 'active', not '%s'", what);
    struct manifest_index idx;
    struct bottle_err err = {0};
    if (manifest_index_open(&idx, NULL, NULL, &err) < 0)
        return cli_fail(&err);
    if (strcmp(what, "active") == 0) {
        int rc = list_active(json);
        manifest_index_free(&idx);
        return rc;
    }
    cJSON *doc = json ? cJSON_CreateObject() : NULL;
    list_names(&idx, true, json, doc);
    list_names(&idx, false, json, doc);
    if (json) {
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
        cJSON_Delete(doc);
    }
    manifest_index_free(&idx);
    return 0;
}

/* ---- info ------------------------------------------------------------------ */

static const char info_help[] =
    "usage: bottle info <agent|bottle> [--format text|json]\n"
    "\n"
    "Shows an agent (its file, bottle and prompt) and/or a bottle resolved through\n"
    "its `extends` chain: lineage, provider, routes as the sidecar receives them,\n"
    "environment names, budgets, shutdown and enforcement. When a name is both an\n"
    "agent and a bottle, both are shown. Values of secrets are never printed.\n";

static cJSON *bottle_json(const struct bottle_def *b, const struct strv *lineage,
                          const struct route_set *routes)
{
    cJSON *o = cJSON_CreateObject();
    json_add_str(o, "name", b->name);
    json_add_str(o, "file", b->file);
    json_add_str_array(o, "lineage", lineage->items, lineage->len);
    json_add_str(o, "provider",
                 b->provider_declared && b->provider.template_name ? b->provider.template_name
                                                                   : "claude");
    cJSON *env = cJSON_AddArrayToObject(o, "env");
    for (size_t i = 0; i < b->n_env; i++)
        cJSON_AddItemToArray(env, cJSON_CreateString(b->env[i].name));
    cJSON *r = cJSON_AddArrayToObject(o, "routes");
    for (size_t i = 0; i < routes->len; i++)
        cJSON_AddItemToArray(r, route_to_json(&routes->items[i], true));
    cJSON *bud = cJSON_AddArrayToObject(o, "budgets");
    for (size_t i = 0; i < b->n_budgets; i++) {
        cJSON *e = cJSON_CreateObject();
        json_add_str(e, "provider", b->budgets[i].provider);
        json_add_num(e, "tokens", (double)b->budgets[i].tokens);
        json_add_str(e, "from", b->budgets[i].origin);
        cJSON_AddItemToArray(bud, e);
    }
    json_add_str(o, "shutdown",
                 b->shutdown != SHUTDOWN_UNSET ? shutdown_policy_name(b->shutdown) : NULL);
    json_add_str(o, "enforcement",
                 b->enforcement != TIER_UNSET ? enforcement_tier_name(b->enforcement) : NULL);
    json_add_bool(o, "supervise", b->supervise_declared ? b->supervise : true);
    json_add_str_array(o, "seccomp", b->seccomp.items, b->seccomp.len);
    return o;
}

static void bottle_text(const struct bottle_def *b, const struct strv *lineage,
                        const struct route_set *routes)
{
    printf("bottle %s (%s)\n", b->name, b->file);
    printf("  lineage:   ");
    for (size_t i = 0; i < lineage->len; i++)
        printf("%s%s", i ? " -> " : "", lineage->items[i]);
    printf("\n  provider:  %s\n", b->provider_declared && b->provider.template_name
                                      ? b->provider.template_name
                                      : "claude");
    printf("  routes:\n");
    if (routes->len == 0)
        printf("    (none)\n");
    for (size_t i = 0; i < routes->len; i++) {
        const struct route *r = &routes->items[i];
        printf("    - %s%s", r->host, r->provider ? " (provider)" : "");
        if (r->port)
            printf(" port %u", r->port);
        if (r->auth.token_ref)
            printf(", credential from $%s", r->auth.token_ref);
        if (r->metered)
            printf(", metered as %s", r->metered);
        if (r->git_fetch)
            printf(", git fetch");
        printf("\n");
    }
    printf("  env:      ");
    for (size_t i = 0; i < b->n_env; i++)
        printf(" %s", b->env[i].name);
    printf("%s\n", b->n_env ? "" : " (none)");
    for (size_t i = 0; i < b->n_budgets; i++)
        printf("  budget:    %s %llu tokens (from %s)\n", b->budgets[i].provider,
               (unsigned long long)b->budgets[i].tokens, b->budgets[i].origin);
    if (b->shutdown != SHUTDOWN_UNSET)
        printf("  shutdown:  %s\n", shutdown_policy_name(b->shutdown));
    if (b->enforcement != TIER_UNSET)
        printf("  enforce:   %s\n", enforcement_tier_name(b->enforcement));
}

/* Resolves a bottle and the routes the sidecar would enforce for it. */
static int resolve_bottle_routes(const struct manifest_index *idx, const char *name,
                                 struct bottle_def *b, struct strv *lineage,
                                 struct route_set *routes, struct bottle_err *err)
{
    int rc = bottle_resolve(idx, name, b, lineage, err);
    if (rc < 0)
        return rc;
    struct provider_out prov;
    rc = provider_apply(b->provider_declared ? &b->provider : NULL, b->file, &prov, err);
    if (rc < 0)
        return rc;
    plan_bottle_routes(b->provider.template_name ? b->provider.template_name : "claude", &prov, b,
                       routes, NULL);
    provider_out_free(&prov);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(info_help, stdout);
        return 0;
    }
    struct args a;
    args_init(&a, argc, argv);
    const char *name = NULL;
    bool json = false;
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 2) {
            if (name)
                return cli_usage_error("info", "unexpected argument '%s'", a.cur);
            name = a.cur;
        } else if (args_is(&a, "--format")) {
            const char *v = args_value(&a);
            if (!v || !cli_parse_format("info", v, &json))
                return EXIT_USAGE;
        } else if (args_is(&a, "--json")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            json = true;
        } else {
            return cli_usage_error("info", "unknown option '%s'", a.cur);
        }
    }
    if (!name)
        return cli_usage_error("info", "which agent or bottle?");
    struct manifest_index idx;
    struct bottle_err err = {0};
    if (manifest_index_open(&idx, NULL, NULL, &err) < 0)
        return cli_fail(&err);
    cli_note_untrusted(&idx);
    char *agent_path = manifest_index_agent_path(&idx, name);
    char *bottle_path = manifest_index_bottle_path(&idx, name);
    int rc = 0;
    cJSON *doc = cJSON_CreateObject();
    if (!agent_path && !bottle_path) {
        struct strv agents = STRV_INIT, bottles = STRV_INIT;
        manifest_index_agents(&idx, &agents);
        manifest_index_bottles(&idx, &bottles);
        struct buf b = BUF_INIT;
        buf_append_str(&b, "agents: ");
        for (size_t i = 0; i < agents.len; i++)
            buf_printf(&b, "%s%s", i ? ", " : "", agents.items[i]);
        buf_append_str(&b, agents.len ? "; bottles: " : "(none); bottles: ");
        for (size_t i = 0; i < bottles.len; i++)
            buf_printf(&b, "%s%s", i ? ", " : "", bottles.items[i]);
        if (!bottles.len)
            buf_append_str(&b, "(none)");
        const char *near = strv_closest(&agents, name);
        if (!near)
            near = strv_closest(&bottles, name);
        char hint[96] = "";
        if (near)
            snprintf(hint, sizeof(hint), " (did you mean '%.64s'?)", near);
        err_set_kind(&err, ERR_KIND_USAGE, ENOENT, "'%s' is neither an agent nor a bottle%s. %s",
                     name, hint, b.data);
        buf_free(&b);
        strv_free(&agents);
        strv_free(&bottles);
        rc = cli_fail(&err);
        goto out;
    }
    if (agent_path) {
        struct agent_def ag;
        memset(&ag, 0, sizeof(ag));
        if (manifest_index_load_agent(&idx, name, &ag, &err) < 0) {
            rc = cli_fail(&err);
            goto out;
        }
        if (json) {
            cJSON *o = cJSON_AddObjectToObject(doc, "agent");
            json_add_str(o, "name", ag.name);
            json_add_str(o, "file", ag.file);
            json_add_str(o, "bottle", ag.bottle);
            json_add_str_array(o, "skills", ag.skills.items, ag.skills.len);
            json_add_num(o, "prompt_bytes", (double)strlen(ag.prompt ? ag.prompt : ""));
        } else {
            printf("agent %s (%s)\n", ag.name, ag.file);
            printf("  bottle:    %s\n", ag.bottle ? ag.bottle : "(none: choose with --bottle)");
            printf("  prompt:    %zu bytes\n", strlen(ag.prompt ? ag.prompt : ""));
            for (size_t i = 0; i < ag.n_budgets; i++)
                printf("  budget:    %s %llu tokens\n", ag.budgets[i].provider,
                       (unsigned long long)ag.budgets[i].tokens);
        }
        agent_def_free(&ag);
    }
    if (bottle_path) {
        struct bottle_def b;
        memset(&b, 0, sizeof(b));
        struct strv lineage = STRV_INIT;
        struct route_set routes = {0};
        if (resolve_bottle_routes(&idx, name, &b, &lineage, &routes, &err) < 0) {
            bottle_def_free(&b);
            strv_free(&lineage);
            route_set_free(&routes);
            rc = cli_fail(&err);
            goto out;
        }
        if (json)
            cJSON_AddItemToObject(doc, "bottle", bottle_json(&b, &lineage, &routes));
        else
            bottle_text(&b, &lineage, &routes);
        bottle_def_free(&b);
        strv_free(&lineage);
        route_set_free(&routes);
    }
    if (json) {
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
    }
out:
    cJSON_Delete(doc);
    free(agent_path);
    free(bottle_path);
    manifest_index_free(&idx);
    return rc;
}

/* ---- policy test ------------------------------------------------------------- */

static const char policy_help[] =
    "usage: bottle policy test <bottle> <url> [--method M] [--header 'K: V']...\n"
    "                          [--format text|json]\n"
    "\n"
    "Asks the sidecar's own route matcher whether a request to <url> from inside\n"
    "<bottle> would be forwarded: host normalization, route by host and port, git\n"
    "smart-HTTP rules, then the route's `matches`. <url> is http:// or https://.\n"
    "Exit code 0 when it would pass, 3 when it would be refused (the reason code\n"
    "is the one the sidecar answers with), 2 for bad input.\n";

struct parsed_url {
    bool tls;
    char *host;
    uint16_t port;
    char *target;
};

static int parse_url(const char *url, struct parsed_url *u)
{
    memset(u, 0, sizeof(*u));
    const char *rest;
    if (strncasecmp(url, "https://", 8) == 0) {
        u->tls = true;
        rest = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else {
        return -1;
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0)
        return -1;
    char *authority = strndup(rest, alen);
    if (!authority || strchr(authority, '@')) {
        free(authority);
        return -1; /* userinfo is not something a proxy request carries */
    }
    char *host_part = authority;
    char *port_part = NULL;
    if (authority[0] == '[') {
        char *close = strchr(authority, ']');
        if (!close) {
            free(authority);
            return -1;
        }
        if (close[1] == ':')
            port_part = close + 2;
        else if (close[1] != '\0') {
            free(authority);
            return -1;
        }
        close[1] = '\0';
    } else {
        char *colon = strrchr(authority, ':');
        if (colon) {
            *colon = '\0';
            port_part = colon + 1;
        }
    }
    if (port_part) {
        char *end = NULL;
        long p = strtol(port_part, &end, 10);
        if (!*port_part || *end || p < 1 || p > 65535) {
            free(authority);
            return -1;
        }
        u->port = (uint16_t)p;
    }
    u->host = strdup(host_part);
    free(authority);
    const char *path = rest + alen;
    size_t plen = strcspn(path, "#");
    if (plen == 0)
        u->target = strdup("/");
    else if (path[0] == '?')
        u->target = xasprintf("/%.*s", (int)plen, path);
    else
        u->target = strndup(path, plen);
    return 0;
}

int cmd_policy(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(policy_help, stdout);
        return 0;
    }
    struct args a;
    args_init(&a, argc, argv);
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0;
    const char *method = "GET";
    bool json = false;
    struct policy_header *headers = calloc((size_t)argc + 1, sizeof(*headers));
    char **header_store = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_headers = 0;
    int rc = EXIT_USAGE;
    int kind;
    struct parsed_url u;
    memset(&u, 0, sizeof(u));
    struct manifest_index idx;
    memset(&idx, 0, sizeof(idx));
    struct bottle_def b;
    memset(&b, 0, sizeof(b));
    struct strv lineage = STRV_INIT;
    struct route_set routes = {0};
    struct policy_result res;
    memset(&res, 0, sizeof(res));

    while ((kind = args_next(&a)) != 0) {
        if (kind == 2) {
            if (n_pos >= 3) {
                cli_usage_error("policy", "unexpected argument '%s'", a.cur);
                goto out;
            }
            pos[n_pos++] = a.cur;
        } else if (args_is(&a, "--method")) {
            const char *v = args_value(&a);
            if (!v)
                goto out;
            for (const char *c = v; *c; c++)
                if (*c < 'A' || *c > 'Z') {
                    cli_usage_error("policy", "--method '%s' is not an upper-case HTTP method", v);
                    goto out;
                }
            if (!*v) {
                cli_usage_error("policy", "--method needs a value");
                goto out;
            }
            method = v;
        } else if (args_is(&a, "--header")) {
            const char *v = args_value(&a);
            if (!v)
                goto out;
            const char *colon = strchr(v, ':');
            if (!colon || colon == v) {
                cli_usage_error("policy", "--header wants 'Name: value', not '%s'", v);
                goto out;
            }
            char *name = strndup(v, (size_t)(colon - v));
            const char *value = colon + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            header_store[n_headers] = name;
            headers[n_headers].name = name;
            headers[n_headers].value = value;
            n_headers++;
        } else if (args_is(&a, "--format")) {
            const char *v = args_value(&a);
            if (!v || !cli_parse_format("policy", v, &json))
                goto out;
        } else if (args_is(&a, "--json")) {
            if (!args_no_value(&a))
                goto out;
            json = true;
        } else {
            cli_usage_error("policy", "unknown option '%s'", a.cur);
            goto out;
        }
    }
    if (n_pos != 3 || strcmp(pos[0], "test") != 0) {
        cli_usage_error("policy", "usage: bottle policy test <bottle> <url>");
        goto out;
    }
    if (parse_url(pos[2], &u) < 0) {
        cli_usage_error("policy", "'%s' is not an http:// or https:// URL", pos[2]);
        goto out;
    }
    struct bottle_err err = {0};
    if (manifest_index_open(&idx, NULL, NULL, &err) < 0 ||
        resolve_bottle_routes(&idx, pos[1], &b, &lineage, &routes, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    cli_note_untrusted(&idx);
    struct policy_request req = {
        .method = method,
        .tls = u.tls,
        .host = u.host,
        .port = u.port,
        .target = u.target,
        .headers = headers,
        .n_headers = n_headers,
    };
    if (policy_evaluate(&routes, &req, &res) < 0) {
        err_set(&err, EINVAL, "policy evaluation failed");
        rc = cli_fail(&err);
        goto out;
    }
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        json_add_bool(doc, "allowed", res.allowed);
        json_add_num(doc, "status", res.status);
        json_add_str(doc, "reason", res.reason);
        json_add_str(doc, "message", res.message);
        json_add_str(doc, "host", res.host);
        if (res.route)
            cJSON_AddItemToObject(doc, "route", route_to_json(res.route, true));
        else
            cJSON_AddNullToObject(doc, "route");
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
        cJSON_Delete(doc);
    } else if (res.allowed) {
        printf("allowed: %s %s%s", method, u.tls ? "https://" : "http://", res.host);
        printf(" via route '%s'", res.route ? res.route->host : "?");
        if (res.route && res.route->auth.token_ref)
            printf("; credential injected from $%s", res.route->auth.token_ref);
        if (res.route && res.route->metered)
            printf("; metered as %s", res.route->metered);
        printf("\n");
    } else {
        printf("refused: %d %s: %s\n", res.status, res.reason, res.message);
    }
    rc = res.allowed ? 0 : EXIT_REFUSED;
out:
    policy_result_free(&res);
    bottle_def_free(&b);
    strv_free(&lineage);
    route_set_free(&routes);
    manifest_index_free(&idx);
    free(u.host);
    free(u.target);
    for (size_t i = 0; i < n_headers; i++)
        free(header_store[i]);
    free(header_store);
    free(headers);
    return rc;
}
