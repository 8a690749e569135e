/*
 * plan — from manifests, settings and flags to the resolved plan.
 */
#include "manifest/plan.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"

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

static void budget_offer(struct plan *p, const char *provider, uint64_t tokens, const char *scope,
                         const char *source)
{
    for (size_t i = 0; i < p->n_budgets; i++)
        if (strcmp(p->budgets[i].provider, provider) == 0)
            return; /* a more specific scope already set it */
    p->budgets = xrealloc(p->budgets, (p->n_budgets + 1) * sizeof(*p->budgets));
    struct plan_budget *b = &p->budgets[p->n_budgets++];
    b->provider = xstrdup(provider);
    b->tokens = tokens;
    b->scope = scope;
    b->source = xstrdup(source ? source : "");
}

static void compute_budgets(struct plan *p, const struct plan_options *o,
                            const struct agent_def *agent, const struct bottle_def *bottle,
                            const struct settings *st)
{
    /* Most specific first: cli, agent, the selected bottle(s), their parents, settings. */
    for (size_t i = 0; i < o->n_budgets; i++)
        budget_offer(p, o->budgets[i].provider, o->budgets[i].tokens, "cli", "--budget");
    for (size_t i = 0; i < agent->n_budgets; i++)
        budget_offer(p, agent->budgets[i].provider, agent->budgets[i].tokens, "agent", agent->name);
    for (size_t i = 0; i < bottle->n_budgets; i++) {
        const struct budget_entry *b = &bottle->budgets[i];
        if (b->origin && strv_contains(&p->bottles, b->origin))
            budget_offer(p, b->provider, b->tokens, "bottle", b->origin);
    }
    for (size_t i = 0; i < bottle->n_budgets; i++) {
        const struct budget_entry *b = &bottle->budgets[i];
        if (!b->origin || !strv_contains(&p->bottles, b->origin))
            budget_offer(p, b->provider, b->tokens, "parent", b->origin);
    }
    for (size_t i = 0; i < st->n_budgets; i++)
        budget_offer(p, st->budgets[i].provider, st->budgets[i].tokens, "settings",
                     st->file ? st->file : "settings.yml");
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
    }
    free(p->budgets);
    free(p->backend);
    free(p->tier_why);
    strv_free(&p->seccomp);
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
        cJSON_AddItemToArray(budgets, b);
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
        buf_printf(out, "    - %s: %llu tokens (%s: %s)\n", p->budgets[i].provider,
                   (unsigned long long)p->budgets[i].tokens, p->budgets[i].scope,
                   p->budgets[i].source);
    buf_printf(out, "  environment (%zu names; values are not shown):\n   ", p->n_env);
    for (size_t i = 0; i < p->n_env; i++)
        buf_printf(out, " %s", p->env[i].name);
    buf_append_char(out, '\n');
    for (size_t i = 0; i < p->warnings.len; i++)
        buf_printf(out, "warning: %s\n", p->warnings.items[i]);
}
