/*
 * plan — from manifests, settings and flags to the resolved plan.
 */
#include "manifest/plan.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "manifest/trust.h"

const struct plan_git_guard plan_git_guards[] = {
    {".git/config", false, true},          {".git/hooks", true, true},
    {".git/info/attributes", false, true}, {".git/commondir", false, false},
    {".gitmodules", false, false},         {NULL, false, false},
};

/* Variables bottle sets itself; a manifest may not override them. */
static const char *const runtime_env_names[] = {
    "PATH",
    "HOME",
    "TERM",
    "LANG",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "SSL_CERT_FILE",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "BOTTLE_SLUG",
    NULL,
};

const char *env_source_name(enum env_source s)
{
    switch (s) {
    case ENV_SRC_RUNTIME:
        return "runtime";
    case ENV_SRC_PROVIDER:
        return "provider";
    case ENV_SRC_CANARY:
        return "canary";
    case ENV_SRC_MANIFEST:
        return "manifest";
    case ENV_SRC_HOST:
        return "host";
    }
    return "?";
}

static struct plan_env *env_push(struct plan *p, const char *name, const char *value,
                                 enum env_source src, bool secret)
{
    p->env = xrealloc(p->env, (p->n_env + 1) * sizeof(*p->env));
    struct plan_env *e = &p->env[p->n_env++];
    e->name = xstrdup(name);
    e->value = value ? xstrdup(value) : NULL;
    e->source = src;
    e->secret = secret;
    return e;
}

static const struct plan_env *env_find(const struct plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_env; i++)
        if (strcmp(p->env[i].name, name) == 0)
            return &p->env[i];
    return NULL;
}

static const char *host_get(const struct plan_options *o, const char *name)
{
    return o->host_getenv ? o->host_getenv(name) : getenv(name);
}

static bool label_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return s[n - 1] != '-';
}

/* ---- budgets ------------------------------------------------------------- */

static void budget_add(struct plan_budget **list, size_t *n, const char *provider, uint64_t tokens,
                       const char *scope, const char *source, const char *period)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*list)[i].provider, provider) == 0)
            return; /* a more specific scope already set it */
    *list = xrealloc(*list, (*n + 1) * sizeof(**list));
    struct plan_budget *b = &(*list)[(*n)++];
    b->provider = xstrdup(provider);
    b->tokens = tokens;
    b->scope = scope;
    b->source = xstrdup(source ? source : "");
    b->period = xstrdup_or_null(period);
}

static void budget_offer(struct plan *p, const char *provider, uint64_t tokens, const char *scope,
                         const char *source, const char *period)
{
    budget_add(&p->budgets, &p->n_budgets, provider, tokens, scope, source, period);
}

/* budget_pool: the pool's limits as this host's settings.yml declares them. */
static void compute_pool(struct plan *p, const struct bottle_def *bottle, const struct settings *st)
{
    if (!bottle->budget_pool)
        return;
    p->pool = xstrdup(bottle->budget_pool);
    for (size_t i = 0; i < st->n_pools; i++) {
        const struct settings_pool *pool = &st->pools[i];
        if (strcmp(pool->name, p->pool) != 0)
            continue;
        for (size_t j = 0; j < pool->n_budgets; j++)
            budget_add(&p->pool_budgets, &p->n_pool_budgets, pool->budgets[j].provider,
                       pool->budgets[j].tokens, "pool", pool->name, pool->budgets[j].period);
        return;
    }
    strv_push_owned(&p->warnings,
                    xasprintf("budget_pool '%s' is not in this host's settings.yml pools: its "
                              "limits are the ones another host stored in the shared ledger",
                              p->pool));
}

static void compute_budgets(struct plan *p, const struct plan_options *o,
                            const struct agent_def *agent, const struct bottle_def *bottle,
                            const struct settings *st)
{
    /* Most specific first: cli, agent, the selected bottle(s), their parents, settings. */
    for (size_t i = 0; i < o->n_budgets; i++)
        budget_offer(p, o->budgets[i].provider, o->budgets[i].tokens, "cli", "--budget", NULL);
    for (size_t i = 0; i < agent->n_budgets; i++)
        budget_offer(p, agent->budgets[i].provider, agent->budgets[i].tokens, "agent", agent->name,
                     agent->budgets[i].period);
    for (size_t i = 0; i < bottle->n_budgets; i++) {
        const struct budget_entry *b = &bottle->budgets[i];
        if (b->origin && strv_contains(&p->bottles, b->origin))
            budget_offer(p, b->provider, b->tokens, "bottle", b->origin, b->period);
    }
    for (size_t i = 0; i < bottle->n_budgets; i++) {
        const struct budget_entry *b = &bottle->budgets[i];
        if (!b->origin || !strv_contains(&p->bottles, b->origin))
            budget_offer(p, b->provider, b->tokens, "parent", b->origin, b->period);
    }
    for (size_t i = 0; i < st->n_budgets; i++)
        budget_offer(p, st->budgets[i].provider, st->budgets[i].tokens, "settings",
                     st->file ? st->file : "settings.yml", st->budgets[i].period);
    compute_pool(p, bottle, st);
}

/* ---- routes --------------------------------------------------------------- */

int plan_bottle_routes(const char *provider, const struct provider_out *prov,
                       const struct bottle_def *bottle, struct route_set *routes,
                       struct strv *warnings)
{
    /* Provider routes first; they win over a manifest route for the same host. */
    for (size_t i = 0; i < prov->routes.len; i++) {
        struct route copy;
        route_copy(&copy, &prov->routes.items[i]);
        route_set_push(routes, &copy);
    }
    for (size_t i = 0; i < bottle->routes.len; i++) {
        const struct route *r = &bottle->routes.items[i];
        const struct route *owner = NULL;
        for (size_t j = 0; j < prov->routes.len; j++) {
            const struct route *q = &prov->routes.items[j];
            if (strcmp(q->host, r->host) == 0 && q->port == r->port)
                owner = q;
        }
        if (owner) {
            if (warnings)
                strv_push_owned(warnings,
                                xasprintf("the route for '%s' in %s:%u is replaced by the %s "
                                          "provider's route",
                                          r->host, r->file ? r->file : "?", r->line, provider));
            continue;
        }
        struct route copy;
        route_copy(&copy, r);
        route_set_push(routes, &copy);
    }
    return 0;
}

int plan_routes_for_bottle(const struct bottle_def *bottle, struct route_set *routes,
                           struct strv *warnings, struct bottle_err *err)
{
    struct provider_out prov;
    int rc = provider_apply(bottle->provider_declared ? &bottle->provider : NULL, bottle->file,
                            &prov, err);
    if (rc < 0)
        return rc;
    const char *name = bottle->provider_declared && bottle->provider.template_name
                           ? bottle->provider.template_name
                           : "claude";
    plan_bottle_routes(name, &prov, bottle, routes, warnings);
    provider_out_free(&prov);
    return 0;
}

static void assemble_routes(struct plan *p, struct provider_out *prov,
                            const struct bottle_def *bottle)
{
    plan_bottle_routes(p->provider, prov, bottle, &p->routes, &p->warnings);
    for (size_t i = 0; i < p->routes.len; i++) {
        const char *ref = p->routes.items[i].auth.token_ref;
        if (!ref)
            continue;
        bool seen = false;
        for (size_t j = 0; j < p->n_token_refs; j++)
            seen = seen || strcmp(p->token_refs[j].name, ref) == 0;
        if (seen)
            continue;
        p->token_refs = xrealloc(p->token_refs, (p->n_token_refs + 1) * sizeof(*p->token_refs));
        p->token_refs[p->n_token_refs].name = xstrdup(ref);
        p->token_refs[p->n_token_refs].set = false;
        p->n_token_refs++;
    }
}

/* ---- environment ----------------------------------------------------------- */

static int assemble_env(struct plan *p, const struct plan_options *o, struct provider_out *prov,
                        const struct bottle_def *bottle, struct bottle_err *err)
{
    for (const char *const *n = runtime_env_names; *n; n++)
        env_push(p, *n, NULL, ENV_SRC_RUNTIME, false);
    if (p->prompt && *p->prompt)
        env_push(p, "BOTTLE_PROMPT_FILE", GUEST_PROMPT_PATH, ENV_SRC_RUNTIME, false);
    for (size_t i = 0; i < prov->n_env; i++)
        env_push(p, prov->env[i].name, prov->env[i].value, ENV_SRC_PROVIDER, prov->env[i].secret);
    env_push(p, p->canary_name, NULL, ENV_SRC_CANARY, true);
    for (size_t i = 0; i < bottle->n_env; i++) {
        const struct env_entry *e = &bottle->env[i];
        const struct plan_env *clash = env_find(p, e->name);
        if (clash)
            return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                                "manifest: %s: env: '%s' is set by bottle (%s) and cannot be "
                                "overridden",
                                bottle->file, e->name, env_source_name(clash->source));
        if (e->from_host) {
            env_push(p, e->name, e->value, ENV_SRC_HOST, false);
            if (!host_get(o, e->value))
                strv_push_owned(&p->warnings,
                                xasprintf("env '%s' takes the host variable '%s', which is not "
                                          "set; start will refuse",
                                          e->name, e->value));
        } else {
            env_push(p, e->name, e->value, ENV_SRC_MANIFEST, false);
        }
    }
    return 0;
}

/* ---- project files ----------------------------------------------------------- */

static void project_file_push(struct plan *p, const char *path, const char *state)
{
    p->project_files =
        xrealloc(p->project_files, (p->n_project_files + 1) * sizeof(*p->project_files));
    p->project_files[p->n_project_files].path = xstrdup(path);
    p->project_files[p->n_project_files].state = state;
    p->n_project_files++;
}

static void describe_project(struct plan *p, const struct manifest_index *idx)
{
    enum trust_state state = manifest_index_trust(idx);
    p->project_trust = trust_state_name(state);
    p->project_trusted = state == TRUST_NONE || state == TRUST_TRUSTED;
    if (state == TRUST_NONE)
        return;
    p->project_dir = xstrdup(idx->project->dir);
    p->project_trusted_at = xstrdup_or_null(idx->trust->trusted_at);
    for (size_t i = 0; i < idx->project->len; i++) {
        const char *rel = idx->project->items[i].rel;
        const char *st = strv_contains(&idx->trust->added, rel)     ? "new"
                         : strv_contains(&idx->trust->changed, rel) ? "changed"
                                                                    : "trusted";
        project_file_push(p, rel, st);
    }
    for (size_t i = 0; i < idx->trust->removed.len; i++)
        project_file_push(p, idx->trust->removed.items[i], "removed");
    if (!p->project_trusted) {
        char *cmd = trust_command(idx->project->root);
        strv_push_owned(
            &p->warnings,
            xasprintf("the project files in %s are %s; start will refuse until "
                      "you review them and run '%s'",
                      idx->project->dir,
                      state == TRUST_CHANGED ? "changed since you trusted them" : "not trusted",
                      cmd));
        free(cmd);
    }
}

/* ---- build ------------------------------------------------------------------ */

static int select_bottles(struct plan *p, const struct plan_options *o,
                          const struct agent_def *agent, struct bottle_err *err)
{
    if (o->n_bottles > 0) {
        for (size_t i = 0; i < o->n_bottles; i++)
            strv_push(&p->bottles, o->bottles[i]);
        return 0;
    }
    if (agent->bottle) {
        strv_push(&p->bottles, agent->bottle);
        return 0;
    }
    return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                        "manifest: %s: agent '%s' has no 'bottle' field and no bottle was "
                        "selected; pass --bottle NAME or add 'bottle: <name>' to the agent",
                        agent->file, agent->name);
}

/* path as written in a manifest: absolute as is, else relative to the manifest's directory. */
static char *relative_to_file(const char *path, const char *file)
{
    if (path[0] == '/' || !file)
        return xstrdup(path);
    const char *slash = strrchr(file, '/');
    if (!slash)
        return xstrdup(path);
    return xasprintf("%.*s/%s", (int)(slash - file), file, path);
}

int plan_build(const struct manifest_index *idx, const struct plan_options *o, struct plan *p,
               struct bottle_err *err)
{
    memset(p, 0, sizeof(*p));
    struct agent_def agent;
    struct bottle_def bottle;
    struct settings st;
    struct provider_out prov;
    memset(&agent, 0, sizeof(agent));
    memset(&bottle, 0, sizeof(bottle));
    memset(&st, 0, sizeof(st));
    memset(&prov, 0, sizeof(prov));
    int rc;

    if (o->label && !label_valid(o->label)) {
        rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                          "--label '%s' is not valid: use 1-32 of a-z, 0-9 and '-', starting "
                          "with a letter or digit",
                          o->label);
        goto out;
    }
    rc = manifest_index_load_agent(idx, o->agent, &agent, err);
    if (rc < 0)
        goto out;
    rc = select_bottles(p, o, &agent, err);
    if (rc < 0)
        goto out;
    rc = bottle_resolve_many(idx, (const char *const *)p->bottles.items, p->bottles.len, &bottle,
                             &p->lineage, err);
    if (rc < 0)
        goto out;
    rc = manifest_index_load_settings(idx, &st, err);
    if (rc < 0)
        goto out;
    rc =
        provider_apply(bottle.provider_declared ? &bottle.provider : NULL, bottle.file, &prov, err);
    if (rc < 0)
        goto out;

    p->agent_name = xstrdup(agent.name);
    p->agent_file = xstrdup(agent.file);
    p->prompt = xstrdup(agent.prompt ? agent.prompt : "");
    strv_copy(&p->skills, &agent.skills);
    p->provider = xstrdup(bottle.provider_declared && bottle.provider.template_name
                              ? bottle.provider.template_name
                              : "claude");
    p->label = o->label ? xstrdup(o->label) : NULL;
    p->canary_name = o->canary_name ? xstrdup(o->canary_name) : canary_name_random();
    p->backend = xstrdup(o->backend ? o->backend : "native");
    p->ledger_path = st.ledger_path ? xstrdup(st.ledger_path) : NULL;
    p->sidecar_max_connections = st.sidecar_max_connections;
    if (bottle.provider_declared && bottle.provider.dockerfile)
        p->dockerfile = relative_to_file(bottle.provider.dockerfile, bottle.file);
    p->image = o->image ? xstrdup(o->image) : NULL;
    p->resume = o->resume ? xstrdup(o->resume) : NULL;

    if (o->cwd) {
        char real[PATH_MAX];
        if (!realpath(o->cwd, real) || !fs_is_dir(real)) {
            rc = err_set_kind(err, ERR_KIND_USAGE, ENOTDIR, "--cwd %s: not a directory", o->cwd);
            goto out;
        }
        p->cwd = xstrdup(real);
    } else {
        char here[PATH_MAX];
        p->cwd = xstrdup(getcwd(here, sizeof(here)) ? here : "/");
    }

    /* argv: template command (with startup args), the prompt, then `--` arguments. */
    strv_copy(&p->argv, &prov.command);
    bool have_prompt = p->prompt[0] != '\0';
    if (have_prompt && prov.prompt_append_file) {
        strv_push(&p->argv, "--append-system-prompt-file");
        strv_push(&p->argv, GUEST_PROMPT_PATH);
    }
    if (have_prompt && prov.prompt_as_message && o->n_extra_args == 0)
        strv_push(&p->argv, "Read and follow the instructions in " GUEST_PROMPT_PATH ".");
    for (size_t i = 0; i < o->n_extra_args; i++)
        strv_push(&p->argv, o->extra_args[i]);

    assemble_routes(p, &prov, &bottle);
    for (size_t i = 0; i < p->n_token_refs; i++) {
        p->token_refs[i].set = host_get(o, p->token_refs[i].name) != NULL;
        if (!p->token_refs[i].set)
            strv_push_owned(&p->warnings,
                            xasprintf("token reference '%s' is not set in the host environment; "
                                      "start will refuse",
                                      p->token_refs[i].name));
    }
    rc = assemble_env(p, o, &prov, &bottle, err);
    if (rc < 0)
        goto out;
    compute_budgets(p, o, &agent, &bottle, &st);

    if (bottle.shutdown != SHUTDOWN_UNSET) {
        p->shutdown = bottle.shutdown;
        p->shutdown_scope = "bottle";
    } else if (st.shutdown != SHUTDOWN_UNSET) {
        p->shutdown = st.shutdown;
        p->shutdown_scope = "settings";
    } else {
        p->shutdown = SHUTDOWN_CUTOFF;
        p->shutdown_scope = "default";
    }

    if (o->tier_override != TIER_UNSET) {
        p->tier_required = o->tier_override;
        p->tier_required_scope = "cli";
    } else if (bottle.enforcement != TIER_UNSET) {
        p->tier_required = bottle.enforcement;
        p->tier_required_scope = "bottle";
    } else if (st.enforcement != TIER_UNSET) {
        p->tier_required = st.enforcement;
        p->tier_required_scope = "settings";
    } else {
        p->tier_required = TIER_KERNEL;
        p->tier_required_scope = "default";
    }
    p->tier_available = o->tier_available;
    p->tier_why = xstrdup(o->tier_why ? o->tier_why : "");
    if (!plan_tier_ok(p))
        strv_push_owned(&p->warnings,
                        xasprintf("enforcement tier '%s' is required but only '%s' is "
                                  "available here; start will refuse: %s",
                                  enforcement_tier_name(p->tier_required),
                                  enforcement_tier_name(p->tier_available), p->tier_why));

    p->supervise = bottle.supervise_declared ? bottle.supervise : true;
    p->egress_log = bottle.egress_log != EGRESS_LOG_UNSET ? bottle.egress_log : EGRESS_LOG_REQUESTS;
    strv_copy(&p->seccomp, &bottle.seccomp);
    strv_copy(&p->read_only, &bottle.read_only);
    describe_project(p, idx);
    p->terminal_passthrough = bottle.terminal_passthrough;
    p->terminal_allow_osc52 = bottle.terminal_allow_osc52;
    p->limits_declared = bottle.limits;
    limits_effective(&bottle.limits, o->host_memory, &p->limits);
    if (p->limits.memory != LIMIT_NONE && o->host_memory && p->limits.memory > o->host_memory) {
        char want[32], have[32];
        limits_format_bytes(p->limits.memory, want, sizeof(want));
        limits_format_bytes(o->host_memory, have, sizeof(have));
        strv_push_owned(&p->warnings, xasprintf("limits.memory %s is more than this host's "
                                                "memory (%s); it limits nothing",
                                                want, have));
    }
    p->git_user.name = agent.git_user.name    ? xstrdup(agent.git_user.name)
                       : bottle.git_user.name ? xstrdup(bottle.git_user.name)
                                              : NULL;
    p->git_user.email = agent.git_user.email    ? xstrdup(agent.git_user.email)
                        : bottle.git_user.email ? xstrdup(bottle.git_user.email)
                                                : NULL;
    if (bottle.n_repos) {
        p->repos = xcalloc(bottle.n_repos, sizeof(*p->repos));
        p->n_repos = bottle.n_repos;
        for (size_t i = 0; i < bottle.n_repos; i++) {
            p->repos[i].name = xstrdup(bottle.repos[i].name);
            p->repos[i].url = bottle.repos[i].url ? xstrdup(bottle.repos[i].url) : NULL;
            p->repos[i].key_provider =
                bottle.repos[i].key_provider ? xstrdup(bottle.repos[i].key_provider) : NULL;
            p->repos[i].key_path =
                bottle.repos[i].key_path ? xstrdup(bottle.repos[i].key_path) : NULL;
        }
    }
    rc = 0;
out:
    agent_def_free(&agent);
    bottle_def_free(&bottle);
    settings_free(&st);
    provider_out_free(&prov);
    if (rc < 0) {
        plan_free(p);
        memset(p, 0, sizeof(*p));
    }
    return rc;
}

bool plan_tier_ok(const struct plan *p)
{
    return p->tier_available >= p->tier_required;
}

int plan_check_host_values(const struct plan *p, struct bottle_err *err)
{
    for (size_t i = 0; i < p->n_token_refs; i++)
        if (!getenv(p->token_refs[i].name))
            return err_set_kind(err, ERR_KIND_USAGE, ENOENT,
                                "token reference '%s' is not set in the host environment; "
                                "export it before starting the bottle",
                                p->token_refs[i].name);
    for (size_t i = 0; i < p->n_env; i++)
        if (p->env[i].source == ENV_SRC_HOST && !getenv(p->env[i].value))
            return err_set_kind(err, ERR_KIND_USAGE, ENOENT,
                                "env '%s' takes the host variable '%s', which is not set",
                                p->env[i].name, p->env[i].value);
    return 0;
}

void plan_free(struct plan *p)
{
    if (!p)
        return;
    free(p->agent_name);
    free(p->agent_file);
    free(p->prompt);
    strv_free(&p->skills);
    strv_free(&p->bottles);
    strv_free(&p->lineage);
    free(p->provider);
    strv_free(&p->argv);
    free(p->cwd);
    for (size_t i = 0; i < p->n_env; i++) {
        free(p->env[i].name);
        free(p->env[i].value);
    }
    free(p->env);
    route_set_free(&p->routes);
    for (size_t i = 0; i < p->n_token_refs; i++)
        free(p->token_refs[i].name);
    free(p->token_refs);
    for (size_t i = 0; i < p->n_budgets; i++) {
        free(p->budgets[i].provider);
        free(p->budgets[i].source);
        free(p->budgets[i].period);
    }
    free(p->budgets);
    for (size_t i = 0; i < p->n_pool_budgets; i++) {
        free(p->pool_budgets[i].provider);
        free(p->pool_budgets[i].source);
        free(p->pool_budgets[i].period);
    }
    free(p->pool_budgets);
    free(p->pool);
    free(p->backend);
    free(p->tier_why);
    strv_free(&p->seccomp);
    strv_free(&p->read_only);
    free(p->project_dir);
    free(p->project_trusted_at);
    for (size_t i = 0; i < p->n_project_files; i++)
        free(p->project_files[i].path);
    free(p->project_files);
    free(p->git_user.name);
    free(p->git_user.email);
    for (size_t i = 0; i < p->n_repos; i++) {
        free(p->repos[i].name);
        free(p->repos[i].url);
        free(p->repos[i].key_provider);
        free(p->repos[i].key_path);
    }
    free(p->repos);
    free(p->canary_name);
    free(p->label);
    free(p->ledger_path);
    free(p->dockerfile);
    free(p->image);
    free(p->resume);
    strv_free(&p->warnings);
    memset(p, 0, sizeof(*p));
}

/* ---- output ----------------------------------------------------------------- */

/* One limit: {value, scope}; value null means no limit (`max`). */
static void limit_json(cJSON *parent, const char *name, uint64_t value, uint64_t declared,
                       double scale)
{
    cJSON *o = cJSON_AddObjectToObject(parent, name);
    if (value == LIMIT_NONE)
        cJSON_AddNullToObject(o, "value");
    else
        json_add_num(o, "value", (double)value / scale);
    json_add_str(o, "scope", declared != LIMIT_UNSET ? "bottle" : "default");
}

static void limits_to_json(const struct plan *p, cJSON *o)
{
    const struct resource_limits *l = &p->limits, *d = &p->limits_declared;
    limit_json(o, "pids", l->pids, d->pids, 1);
    limit_json(o, "memory", l->memory, d->memory, 1);
    json_add_num(o, "swap", 0);
    limit_json(o, "cpus", l->cpu_milli, d->cpu_milli, 1000);
    limit_json(o, "tmpfs", l->tmpfs, d->tmpfs, 1);
}

cJSON *plan_to_json(const struct plan *p)
{
    cJSON *doc = cJSON_CreateObject();
    json_add_num(doc, "version", PLAN_SCHEMA_VERSION);
    cJSON *agent = cJSON_AddObjectToObject(doc, "agent");
    json_add_str(agent, "name", p->agent_name);
    json_add_str(agent, "file", p->agent_file);
    json_add_num(agent, "prompt_bytes", (double)strlen(p->prompt ? p->prompt : ""));
    json_add_str_array(agent, "skills", p->skills.items, p->skills.len);
    cJSON *bottles = cJSON_AddObjectToObject(doc, "bottles");
    json_add_str_array(bottles, "selected", p->bottles.items, p->bottles.len);
    json_add_str_array(bottles, "lineage", p->lineage.items, p->lineage.len);
    json_add_str(doc, "label", p->label);
    json_add_str(doc, "provider", p->provider);
    json_add_str_array(doc, "argv", p->argv.items, p->argv.len);
    json_add_str(doc, "cwd", p->cwd);
    cJSON *env = cJSON_AddArrayToObject(doc, "env");
    for (size_t i = 0; i < p->n_env; i++) {
        cJSON *e = cJSON_CreateObject();
        json_add_str(e, "name", p->env[i].name);
        json_add_str(e, "source", env_source_name(p->env[i].source));
        if (p->env[i].source == ENV_SRC_HOST)
            json_add_str(e, "host_variable", p->env[i].value);
        cJSON_AddItemToArray(env, e);
    }
    cJSON *routes = cJSON_AddArrayToObject(doc, "routes");
    for (size_t i = 0; i < p->routes.len; i++)
        cJSON_AddItemToArray(routes, route_to_json(&p->routes.items[i], true));
    cJSON *refs = cJSON_AddArrayToObject(doc, "token_refs");
    for (size_t i = 0; i < p->n_token_refs; i++) {
        cJSON *r = cJSON_CreateObject();
        json_add_str(r, "name", p->token_refs[i].name);
        json_add_bool(r, "set", p->token_refs[i].set);
        cJSON_AddItemToArray(refs, r);
    }
    cJSON *budgets = cJSON_AddArrayToObject(doc, "budgets");
    for (size_t i = 0; i < p->n_budgets; i++) {
        cJSON *b = cJSON_CreateObject();
        json_add_str(b, "provider", p->budgets[i].provider);
        json_add_num(b, "tokens", (double)p->budgets[i].tokens);
        json_add_str(b, "scope", p->budgets[i].scope);
        json_add_str(b, "source", p->budgets[i].source);
        if (p->budgets[i].period)
            json_add_str(b, "period", p->budgets[i].period);
        cJSON_AddItemToArray(budgets, b);
    }
    if (p->pool) {
        cJSON *pool = cJSON_AddObjectToObject(doc, "pool");
        json_add_str(pool, "name", p->pool);
        cJSON *limits = cJSON_AddArrayToObject(pool, "budgets");
        for (size_t i = 0; i < p->n_pool_budgets; i++) {
            cJSON *b = cJSON_CreateObject();
            json_add_str(b, "provider", p->pool_budgets[i].provider);
            json_add_num(b, "tokens", (double)p->pool_budgets[i].tokens);
            if (p->pool_budgets[i].period)
                json_add_str(b, "period", p->pool_budgets[i].period);
            cJSON_AddItemToArray(limits, b);
        }
    }
    cJSON *sd = cJSON_AddObjectToObject(doc, "shutdown");
    json_add_str(sd, "policy", shutdown_policy_name(p->shutdown));
    json_add_str(sd, "scope", p->shutdown_scope);
    json_add_str(doc, "backend", p->backend);
    json_add_str(doc, "dockerfile", p->dockerfile);
    json_add_str(doc, "image", p->image);
    json_add_str(doc, "resume", p->resume);
    cJSON *enf = cJSON_AddObjectToObject(doc, "enforcement");
    json_add_str(enf, "required", enforcement_tier_name(p->tier_required));
    json_add_str(enf, "required_scope", p->tier_required_scope);
    json_add_str(enf, "available", enforcement_tier_name(p->tier_available));
    json_add_bool(enf, "ok", plan_tier_ok(p));
    json_add_str(enf, "why", p->tier_why);
    json_add_bool(doc, "supervise", p->supervise);
    json_add_str(doc, "egress_log", egress_log_name(p->egress_log));
    cJSON *sc = cJSON_AddObjectToObject(doc, "seccomp");
    json_add_str_array(sc, "extra_denied", p->seccomp.items, p->seccomp.len);
    cJSON *ws = cJSON_AddObjectToObject(doc, "workspace");
    json_add_str_array(ws, "read_only", p->read_only.items, p->read_only.len);
    cJSON *guards = cJSON_AddArrayToObject(ws, "git_read_only");
    for (const struct plan_git_guard *g = plan_git_guards; g->path; g++)
        cJSON_AddItemToArray(guards, cJSON_CreateString(g->path));
    cJSON *proj = cJSON_AddObjectToObject(doc, "project");
    json_add_str(proj, "dir", p->project_dir);
    json_add_str(proj, "trust", p->project_trust ? p->project_trust : "none");
    json_add_str(proj, "trusted_at", p->project_trusted_at);
    cJSON *pfiles = cJSON_AddArrayToObject(proj, "files");
    for (size_t i = 0; i < p->n_project_files; i++) {
        cJSON *f = cJSON_CreateObject();
        json_add_str(f, "path", p->project_files[i].path);
        json_add_str(f, "state", p->project_files[i].state);
        cJSON_AddItemToArray(pfiles, f);
    }
    cJSON *term = cJSON_AddObjectToObject(doc, "terminal");
    json_add_bool(term, "passthrough", p->terminal_passthrough);
    json_add_bool(term, "allow_osc52", p->terminal_allow_osc52);
    limits_to_json(p, cJSON_AddObjectToObject(doc, "limits"));
    cJSON *git = cJSON_AddObjectToObject(doc, "git");
    cJSON *user = cJSON_AddObjectToObject(git, "user");
    json_add_str(user, "name", p->git_user.name);
    json_add_str(user, "email", p->git_user.email);
    cJSON *repos = cJSON_AddArrayToObject(git, "repos");
    for (size_t i = 0; i < p->n_repos; i++) {
        cJSON *r = cJSON_CreateObject();
        json_add_str(r, "name", p->repos[i].name);
        json_add_str(r, "url", p->repos[i].url);
        cJSON_AddItemToArray(repos, r);
    }
    json_add_str_array(doc, "warnings", p->warnings.items, p->warnings.len);
    return doc;
}

static void text_list(struct buf *out, const char *label, const struct strv *v)
{
    buf_printf(out, "  %-12s ", label);
    if (v->len == 0)
        buf_append_str(out, "(none)");
    for (size_t i = 0; i < v->len; i++)
        buf_printf(out, "%s%s", i ? ", " : "", v->items[i]);
    buf_append_char(out, '\n');
}

static const char *limit_scope(uint64_t declared)
{
    return declared != LIMIT_UNSET ? "bottle" : "default";
}

static void limits_to_text(const struct plan *p, struct buf *out)
{
    const struct resource_limits *l = &p->limits, *d = &p->limits_declared;
    char pids[24], mem[32], cpus[24], tmpfs[32];
    if (l->pids == LIMIT_NONE)
        snprintf(pids, sizeof(pids), "max");
    else
        snprintf(pids, sizeof(pids), "%llu", (unsigned long long)l->pids);
    limits_format_bytes(l->memory, mem, sizeof(mem));
    limits_format_cpus(l->cpu_milli, cpus, sizeof(cpus));
    limits_format_bytes(l->tmpfs, tmpfs, sizeof(tmpfs));
    buf_printf(out,
               "  %-12s pids %s (%s), memory %s without swap (%s), cpus %s (%s), tmpfs %s each "
               "(%s)\n",
               "limits", pids, limit_scope(d->pids), mem, limit_scope(d->memory), cpus,
               limit_scope(d->cpu_milli), tmpfs, limit_scope(d->tmpfs));
}

void plan_to_text(const struct plan *p, struct buf *out)
{
    buf_printf(out, "bottle plan for agent '%s' (%s)\n", p->agent_name, p->agent_file);
    text_list(out, "bottles", &p->bottles);
    text_list(out, "lineage", &p->lineage);
    buf_printf(out, "  %-12s %s\n", "provider", p->provider);
    buf_printf(out, "  %-12s", "command");
    for (size_t i = 0; i < p->argv.len; i++)
        buf_printf(out, " %s", p->argv.items[i]);
    buf_append_char(out, '\n');
    buf_printf(out, "  %-12s %s\n", "workspace", p->cwd);
    buf_printf(out, "  %-12s %s\n", "backend", p->backend);
    if (p->image)
        buf_printf(out, "  %-12s %s%s%s%s\n", "image", p->image, p->resume ? " (snapshot of '" : "",
                   p->resume ? p->resume : "", p->resume ? "', its saved home restored)" : "");
    buf_printf(out, "  %-12s required %s (%s), available %s%s\n", "enforcement",
               enforcement_tier_name(p->tier_required), p->tier_required_scope,
               enforcement_tier_name(p->tier_available), plan_tier_ok(p) ? "" : "  ** REFUSED **");
    buf_printf(out, "  %-12s %s (%s)\n", "shutdown", shutdown_policy_name(p->shutdown),
               p->shutdown_scope);
    buf_printf(out, "  %-12s %s\n", "supervise", p->supervise ? "yes" : "no");
    buf_printf(out, "  %-12s %s\n", "terminal",
               p->terminal_passthrough   ? "passthrough (no escape filter)"
               : p->terminal_allow_osc52 ? "filtered, clipboard writes (OSC 52) allowed"
                                         : "filtered");
    limits_to_text(p, out);
    buf_printf(out, "  egress routes (%zu):\n", p->routes.len);
    for (size_t i = 0; i < p->routes.len; i++) {
        const struct route *r = &p->routes.items[i];
        buf_printf(out, "    - %s", r->host);
        if (r->port)
            buf_printf(out, ":%u", r->port);
        if (r->auth.kind != AUTH_NONE)
            buf_printf(out, "  credential from $%s", r->auth.token_ref);
        if (r->metered)
            buf_printf(out, "  metered as %s", r->metered);
        if (r->git_fetch)
            buf_append_str(out, "  git fetch");
        if (r->n_matches)
            buf_printf(out, "  %zu match rule(s)", r->n_matches);
        buf_printf(out, "  dlp on match: %s", dlp_policy_name(r->dlp.on_match));
        if (r->provider)
            buf_append_str(out, "  (provider)");
        buf_append_char(out, '\n');
    }
    buf_printf(out, "  budgets (%zu):\n", p->n_budgets);
    for (size_t i = 0; i < p->n_budgets; i++)
        buf_printf(out, "    - %s: %llu tokens%s%s (%s: %s)\n", p->budgets[i].provider,
                   (unsigned long long)p->budgets[i].tokens, p->budgets[i].period ? " per " : "",
                   p->budgets[i].period ? p->budgets[i].period : "", p->budgets[i].scope,
                   p->budgets[i].source);
    buf_printf(out, "  %-12s", "read-only");
    for (const struct plan_git_guard *g = plan_git_guards; g->path; g++)
        buf_printf(out, "%s %s", g == plan_git_guards ? "" : ",", g->path);
    buf_append_str(out, " (of each repository)");
    for (size_t i = 0; i < p->read_only.len; i++)
        buf_printf(out, "%s %s", i ? "," : ";", p->read_only.items[i]);
    buf_append_char(out, '\n');
    if (p->project_dir) {
        buf_printf(out, "  %-12s %s: %s", "project", p->project_dir, p->project_trust);
        if (p->project_trusted_at)
            buf_printf(out, " (trusted %s)", p->project_trusted_at);
        buf_printf(out, "%s\n", p->project_trusted ? "" : "  ** START WILL REFUSE **");
        for (size_t i = 0; i < p->n_project_files; i++)
            buf_printf(out, "    - %-8s %s\n", p->project_files[i].state, p->project_files[i].path);
    }
    if (p->pool) {
        buf_printf(out, "  budget pool: %s (shared by every bottle naming it, on every host)\n",
                   p->pool);
        for (size_t i = 0; i < p->n_pool_budgets; i++)
            buf_printf(out, "    - %s: %llu tokens%s%s\n", p->pool_budgets[i].provider,
                       (unsigned long long)p->pool_budgets[i].tokens,
                       p->pool_budgets[i].period ? " per " : "",
                       p->pool_budgets[i].period ? p->pool_budgets[i].period : "");
    }
    buf_printf(out, "  environment (%zu names; values are not shown):\n   ", p->n_env);
    for (size_t i = 0; i < p->n_env; i++)
        buf_printf(out, " %s", p->env[i].name);
    buf_append_char(out, '\n');
    for (size_t i = 0; i < p->warnings.len; i++)
        buf_printf(out, "warning: %s\n", p->warnings.items[i]);
}
