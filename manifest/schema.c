/*
 * schema — validates one agent, bottle or settings file into its struct.
 *
 * Every key is checked against a closed list; every value against its type,
 * with "expected X, found Y" and the dotted path of the value in the error.
 * This file reads one file's text and nothing else: resolving `extends`,
 * checking that named bottles or skills exist, and provider templates happen
 * later, on the parsed structs.
 */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "manifest/manifest.h"

/* ---- enum helpers ----------------------------------------------------------- */

const char *shutdown_policy_name(enum shutdown_policy p)
{
    switch (p) {
    case SHUTDOWN_CUTOFF:
        return "cutoff";
    case SHUTDOWN_FREEZE:
        return "freeze";
    case SHUTDOWN_KILL:
        return "kill";
    case SHUTDOWN_UNSET:
        break;
    }
    return "unset";
}

int shutdown_policy_parse(const char *s, enum shutdown_policy *out)
{
    static const enum shutdown_policy all[] = {SHUTDOWN_CUTOFF, SHUTDOWN_FREEZE, SHUTDOWN_KILL};
    for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, shutdown_policy_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

const char *enforcement_tier_name(enum enforcement_tier t)
{
    switch (t) {
    case TIER_KERNEL:
        return "kernel";
    case TIER_NETNS:
        return "netns";
    case TIER_UNPRIVILEGED:
        return "unprivileged";
    case TIER_PROXY_ONLY:
        return "proxy-only";
    case TIER_UNSET:
        break;
    }
    return "unset";
}

int enforcement_tier_parse(const char *s, enum enforcement_tier *out)
{
    static const enum enforcement_tier all[] = {TIER_KERNEL, TIER_NETNS, TIER_UNPRIVILEGED,
                                                TIER_PROXY_ONLY};
    for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, enforcement_tier_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

const char *egress_log_name(enum egress_log_level l)
{
    switch (l) {
    case EGRESS_LOG_OFF:
        return "off";
    case EGRESS_LOG_REQUESTS:
        return "requests";
    case EGRESS_LOG_FULL:
        return "full";
    case EGRESS_LOG_UNSET:
        break;
    }
    return "unset";
}

static int egress_log_parse(const char *s, enum egress_log_level *out)
{
    static const enum egress_log_level all[] = {EGRESS_LOG_OFF, EGRESS_LOG_REQUESTS,
                                                EGRESS_LOG_FULL};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(s, egress_log_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- name rules ----------------------------------------------------------------- */

bool manifest_name_valid(const char *name)
{
    if (!name || !(*name >= 'a' && *name <= 'z'))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return true;
}

static bool env_name_valid(const char *s)
{
    if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

/* Repository and skill names become path components: no '/', no leading dot. */
static bool component_name_valid(const char *s)
{
    if (!s || !*s || *s == '.' || *s == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

#define NAME_RULE "use lowercase letters, digits and '-', starting with a letter"

/* ---- shared pieces ----------------------------------------------------------------- */

/* Parses the frontmatter (or, for settings, the whole text) into doc. */
static int load_doc(const char *file, const char *text, size_t len, bool frontmatter,
                    struct node_doc *doc, const char **body, size_t *body_len,
                    struct bottle_err *err)
{
    const char *yaml = text;
    size_t yaml_len = len;
    unsigned first_line = 1;
    *body = NULL;
    *body_len = 0;
    if (frontmatter) {
        int rc =
            frontmatter_split(file, text, len, &yaml, &yaml_len, &first_line, body, body_len, err);
        if (rc < 0)
            return rc;
    }
    return yaml_parse_doc(file, yaml, yaml_len, first_line, doc, err);
}

static int get_strv(const struct node *n, const char *what, struct strv *out,
                    struct bottle_err *err)
{
    char **items;
    size_t count;
    int rc = node_get_string_list(n, what, &items, &count, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < count; i++)
        strv_push_owned(out, items[i]);
    free(items);
    return 0;
}

static int get_enum_string(const struct node *n, const char *what, char **out,
                           struct bottle_err *err)
{
    return node_get_string(n, what, false, out, err);
}

static int parse_shutdown(const struct node *n, enum shutdown_policy *out, struct bottle_err *err)
{
    char *s;
    int rc = get_enum_string(n, "shutdown", &s, err);
    if (rc < 0)
        return rc;
    if (shutdown_policy_parse(s, out) < 0)
        rc = node_error(err, &n->pos,
                        "shutdown: unknown policy '%s'; accepted: cutoff, freeze, kill", s);
    free(s);
    return rc;
}

static int parse_enforcement(const struct node *n, enum enforcement_tier *out,
                             struct bottle_err *err)
{
    char *s;
    int rc = get_enum_string(n, "enforcement", &s, err);
    if (rc < 0)
        return rc;
    if (enforcement_tier_parse(s, out) < 0)
        rc = node_error(err, &n->pos,
                        "enforcement: unknown tier '%s'; accepted: kernel, netns, unprivileged, "
                        "proxy-only",
                        s);
    free(s);
    return rc;
}

static void budgets_free(struct budget_entry *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i].provider);
        free(items[i].origin);
        free(items[i].period);
    }
    free(items);
}

/* A budget's value: a number of tokens, or {tokens: N, period: day | month | total}. */
static int parse_budget_value(const struct node *v, const char *what, uint64_t *tokens,
                              char **period, struct bottle_err *err)
{
    static const char *const keys[] = {"tokens", "period", NULL};
    const struct node *t = v;
    int rc = 0;
    *period = NULL;
    if (v->kind == NODE_MAP) {
        if ((rc = node_check_keys(v, what, keys, err)) < 0)
            return rc;
        t = node_map_get(v, "tokens");
        if (!t)
            return node_error(err, &v->pos, "%s: needs tokens", what);
        const struct node *p = node_map_get(v, "period");
        if (p) {
            char *w = xasprintf("%s.period", what);
            rc = node_get_string(p, w, false, period, err);
            free(w);
            if (rc == 0 && strcmp(*period, "day") != 0 && strcmp(*period, "month") != 0 &&
                strcmp(*period, "total") != 0)
                rc = node_error(err, &p->pos, "%s.period: '%s'; accepted: day, month, total", what,
                                *period);
            if (rc < 0) {
                free(*period);
                *period = NULL;
                return rc;
            }
        }
    }
    rc = node_get_u64(t, what, tokens, err);
    if (rc == 0 && *tokens == 0)
        rc = node_error(err, &t->pos, "%s: must be a positive number of tokens, found 0", what);
    if (rc < 0) {
        free(*period);
        *period = NULL;
    }
    return rc;
}

static int parse_budget(const struct node *n, const char *origin, struct budget_entry **items,
                        size_t *count, struct bottle_err *err)
{
    int rc = node_want_map(n, "budget", err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n->n_pairs; i++) {
        const struct node_pair *p = &n->pairs[i];
        if (!manifest_name_valid(p->key))
            return node_error(err, &p->key_pos,
                              "budget: '%s' is not a valid provider name; " NAME_RULE, p->key);
        char *what = xasprintf("budget.%s", p->key);
        uint64_t tokens = 0;
        char *period = NULL;
        rc = parse_budget_value(p->value, what, &tokens, &period, err);
        free(what);
        if (rc < 0)
            return rc;
        *items = xrealloc(*items, (*count + 1) * sizeof(**items));
        struct budget_entry *b = &(*items)[(*count)++];
        b->provider = xstrdup(p->key);
        b->tokens = tokens;
        b->origin = xstrdup(origin);
        b->period = period;
    }
    return 0;
}

static int parse_git_user(const struct node *n, const char *what, struct git_user *out,
                          struct bottle_err *err)
{
    static const char *const keys[] = {"name", "email", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    const struct node *name = node_map_get(n, "name");
    const struct node *email = node_map_get(n, "email");
    if (rc == 0 && name) {
        char *w = xasprintf("%s.name", what);
        rc = node_get_string(name, w, false, &out->name, err);
        free(w);
    }
    if (rc == 0 && email) {
        char *w = xasprintf("%s.email", what);
        rc = node_get_string(email, w, false, &out->email, err);
        free(w);
    }
    return rc;
}

static void git_user_free(struct git_user *u)
{
    free(u->name);
    free(u->email);
    u->name = u->email = NULL;
}

/* ---- bottle ------------------------------------------------------------------------ */

static int parse_extends(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    b->extends_line = n->pos.line;
    b->extends_col = n->pos.col;
    if (n->kind == NODE_SEQ && n->n_items == 0)
        return node_error(err, &n->pos,
                          "extends: the list is empty; name at least one bottle or remove the key");
    if (n->kind == NODE_MAP ||
        (n->kind == NODE_SCALAR && n->plain && strcmp(node_describe(n), "a string") != 0))
        return node_error(err, &n->pos,
                          "extends: expected a bottle name or a list of bottle names, found %s",
                          node_describe(n));
    if (n->kind == NODE_SCALAR || n->kind == NODE_NULL) {
        char *s;
        int rc = node_get_string(n, "extends", false, &s, err);
        if (rc < 0)
            return rc;
        strv_push_owned(&b->extends, s);
    } else {
        for (size_t i = 0; i < n->n_items; i++) {
            const struct node *it = n->items[i];
            char *what = xasprintf("extends[%zu]", i);
            char *s = NULL;
            int rc = node_get_string(it, what, false, &s, err);
            free(what);
            if (rc < 0)
                return rc;
            strv_push_owned(&b->extends, s);
        }
    }
    for (size_t i = 0; i < b->extends.len; i++) {
        if (manifest_name_valid(b->extends.items[i]))
            continue;
        const struct node *at = n->kind == NODE_SEQ ? n->items[i] : n;
        if (n->kind == NODE_SEQ)
            return node_error(err, &at->pos,
                              "extends[%zu]: '%s' is not a valid bottle name; " NAME_RULE, i,
                              b->extends.items[i]);
        return node_error(err, &at->pos, "extends: '%s' is not a valid bottle name; " NAME_RULE,
                          b->extends.items[i]);
    }
    return 0;
}

static int parse_env(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    int rc = node_want_map(n, "env", err);
    if (rc < 0)
        return rc;
    b->env = xcalloc(n->n_pairs ? n->n_pairs : 1, sizeof(*b->env));
    for (size_t i = 0; i < n->n_pairs; i++) {
        const struct node_pair *p = &n->pairs[i];
        if (!env_name_valid(p->key))
            return node_error(err, &p->key_pos,
                              "env: '%s' is not a valid variable name; use letters, digits and "
                              "'_', not starting with a digit",
                              p->key);
        char *what = xasprintf("env.%s", p->key);
        char *value = NULL;
        if (p->value->kind == NODE_NULL)
            rc = node_error(err, &p->value->pos,
                            "%s: expected a string, found an empty value (write \"\" for an "
                            "empty string)",
                            what);
        else
            rc = node_get_string(p->value, what, true, &value, err);
        free(what);
        if (rc < 0)
            return rc;
        struct env_entry *e = &b->env[b->n_env++];
        e->name = xstrdup(p->key);
        e->line = p->value->pos.line;
        e->col = p->value->pos.col;
        if (value[0] == '$' && env_name_valid(value + 1)) {
            e->value = xstrdup(value + 1);
            e->from_host = true;
            free(value);
        } else {
            e->value = value;
            e->from_host = false;
        }
    }
    return 0;
}

static int parse_provider_settings(const struct node *n, struct agent_provider *p,
                                   struct bottle_err *err)
{
    static const char *const keys[] = {"startup_args", NULL};
    int rc = node_want_map(n, "agent_provider.settings", err);
    if (rc == 0)
        rc = node_check_keys(n, "agent_provider.settings", keys, err);
    const struct node *args = node_map_get(n, "startup_args");
    if (rc == 0 && args)
        rc = get_strv(args, "agent_provider.settings.startup_args", &p->startup_args, err);
    return rc;
}

static int parse_provider(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    static const char *const keys[] = {"template",   "command",  "auth_token",
                                       "dockerfile", "settings", NULL};
    struct agent_provider *p = &b->provider;
    int rc = node_want_map(n, "agent_provider", err);
    if (rc == 0)
        rc = node_check_keys(n, "agent_provider", keys, err);
    if (rc < 0)
        return rc;
    b->provider_declared = true;

    const struct node *tmpl = node_map_get(n, "template");
    if (!tmpl)
        return node_error(err, &n->pos,
                          "agent_provider.template: is required; accepted: claude, codex, "
                          "generic");
    rc = node_get_string(tmpl, "agent_provider.template", false, &p->template_name, err);
    if (rc < 0)
        return rc;
    bool generic = strcmp(p->template_name, "generic") == 0;
    if (!generic && strcmp(p->template_name, "claude") != 0 &&
        strcmp(p->template_name, "codex") != 0)
        return node_error(err, &tmpl->pos,
                          "agent_provider.template: unknown template '%s'; accepted: claude, "
                          "codex, generic",
                          p->template_name);

    const struct node_pair *command = node_map_pair(n, "command");
    if (command && !generic)
        return node_error(err, &command->key_pos,
                          "agent_provider.command: only allowed with template 'generic'; the "
                          "'%s' template runs its own command",
                          p->template_name);
    if (!command && generic)
        return node_error(err, &n->pos,
                          "agent_provider.command: is required with template 'generic'");
    if (command) {
        rc = get_strv(command->value, "agent_provider.command", &p->command, err);
        if (rc == 0 && p->command.len == 0)
            rc = node_error(err, &command->value->pos,
                            "agent_provider.command: must not be empty; give the program and "
                            "its arguments");
        if (rc < 0)
            return rc;
    }

    const struct node_pair *auth = node_map_pair(n, "auth_token");
    if (auth && generic)
        return node_error(err, &auth->key_pos,
                          "agent_provider.auth_token: not allowed with template 'generic'; "
                          "declare an egress route with 'auth' instead");
    if (auth) {
        p->auth_token_line = auth->value->pos.line;
        p->auth_token_col = auth->value->pos.col;
        rc = node_get_string(auth->value, "agent_provider.auth_token", false, &p->auth_token, err);
        if (rc == 0 && !env_name_valid(p->auth_token))
            rc = node_error(err, &auth->value->pos,
                            "agent_provider.auth_token: '%s' is not a valid environment variable "
                            "name",
                            p->auth_token);
        if (rc < 0)
            return rc;
    }

    const struct node *dockerfile = node_map_get(n, "dockerfile");
    if (dockerfile) {
        p->dockerfile_line = dockerfile->pos.line;
        p->dockerfile_col = dockerfile->pos.col;
        rc = node_get_string(dockerfile, "agent_provider.dockerfile", false, &p->dockerfile, err);
        if (rc < 0)
            return rc;
    }
    const struct node *settings = node_map_get(n, "settings");
    if (settings)
        return parse_provider_settings(settings, p, err);
    return 0;
}

static int parse_repo(const struct node_pair *pair, struct git_repo *r, struct bottle_err *err)
{
    static const char *const keys[] = {"url", "key", NULL};
    static const char *const key_keys[] = {"provider", "path", NULL};
    char *what = xasprintf("git-gate.repos.%s", pair->key);
    char *key_what = xasprintf("%s.key", what);
    const struct node *n = pair->value;
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    const struct node *url = node_map_get(n, "url");
    if (rc == 0 && url) {
        char *w = xasprintf("%s.url", what);
        rc = node_get_string(url, w, false, &r->url, err);
        free(w);
    }
    const struct node *key = node_map_get(n, "key");
    if (rc == 0 && key) {
        rc = node_want_map(key, key_what, err);
        if (rc == 0)
            rc = node_check_keys(key, key_what, key_keys, err);
        const struct node *provider = node_map_get(key, "provider");
        const struct node *path = node_map_get(key, "path");
        if (rc == 0 && !provider)
            rc = node_error(err, &key->pos, "%s.provider: is required; accepted: static", key_what);
        if (rc == 0 && !path)
            rc = node_error(err, &key->pos, "%s.path: is required", key_what);
        if (rc == 0) {
            char *w = xasprintf("%s.provider", key_what);
            rc = node_get_string(provider, w, false, &r->key_provider, err);
            if (rc == 0 && strcmp(r->key_provider, "static") != 0)
                rc = node_error(err, &provider->pos,
                                "%s: unknown key provider '%s'; accepted: static", w,
                                r->key_provider);
            free(w);
        }
        if (rc == 0) {
            char *w = xasprintf("%s.path", key_what);
            rc = node_get_string(path, w, false, &r->key_path, err);
            free(w);
        }
    }
    free(key_what);
    free(what);
    return rc;
}

static int parse_repos(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    int rc = node_want_map(n, "git-gate.repos", err);
    if (rc < 0)
        return rc;
    b->repos_declared = true;
    b->repos = xcalloc(n->n_pairs ? n->n_pairs : 1, sizeof(*b->repos));
    for (size_t i = 0; i < n->n_pairs; i++) {
        const struct node_pair *p = &n->pairs[i];
        if (!component_name_valid(p->key))
            return node_error(err, &p->key_pos,
                              "git-gate.repos: '%s' is not a valid repository name; use letters, "
                              "digits, '.', '_' and '-', not starting with '.' or '-'",
                              p->key);
        struct git_repo *r = &b->repos[b->n_repos++];
        r->name = xstrdup(p->key);
        rc = parse_repo(p, r, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_bottle_git(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    static const char *const keys[] = {"user", "repos", NULL};
    int rc = node_want_map(n, "git-gate", err);
    if (rc == 0)
        rc = node_check_keys(n, "git-gate", keys, err);
    const struct node *user = node_map_get(n, "user");
    if (rc == 0 && user)
        rc = parse_git_user(user, "git-gate.user", &b->git_user, err);
    const struct node *repos = node_map_get(n, "repos");
    if (rc == 0 && repos)
        rc = parse_repos(repos, b, err);
    return rc;
}

static bool routes_collide(const struct route *a, const struct route *b)
{
    return strcmp(a->host, b->host) == 0 && a->port == b->port;
}

static int parse_routes(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    int rc = node_want_seq(n, "egress.routes", err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n->n_items; i++) {
        const struct node *item = n->items[i];
        struct route r;
        memset(&r, 0, sizeof(r));
        char *what = xasprintf("egress.routes[%zu]", i);
        rc = route_parse_at(item, what, false, DLP_POLICY_SUPERVISE, &r, err);
        free(what);
        if (rc < 0)
            return rc;
        if (!r.file) {
            r.file = xstrdup(b->file);
            r.line = item->pos.line;
            r.col = item->pos.col;
        }
        for (size_t j = 0; j < b->routes.len; j++) {
            const struct route *q = &b->routes.items[j];
            if (!routes_collide(q, &r))
                continue;
            struct node_pos pos = {b->file, r.line, r.col};
            char port[16] = "";
            if (r.port)
                snprintf(port, sizeof(port), ":%u", (unsigned)r.port);
            rc = node_error(err, &pos,
                            "egress.routes[%zu]: host '%s%s' is already routed by "
                            "egress.routes[%zu] (line %u); keep one route per host",
                            i, r.host, port, j, q->line);
            route_free(&r);
            return rc;
        }
        route_set_push(&b->routes, &r);
    }
    return 0;
}

static int parse_egress(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    static const char *const keys[] = {"routes", "log", NULL};
    int rc = node_want_map(n, "egress", err);
    if (rc == 0)
        rc = node_check_keys(n, "egress", keys, err);
    const struct node *routes = node_map_get(n, "routes");
    if (rc == 0 && routes)
        rc = parse_routes(routes, b, err);
    const struct node *log = node_map_get(n, "log");
    if (rc == 0 && log) {
        char *s;
        rc = get_enum_string(log, "egress.log", &s, err);
        if (rc == 0 && egress_log_parse(s, &b->egress_log) < 0)
            rc = node_error(err, &log->pos,
                            "egress.log: unknown level '%s'; accepted: off, requests, full", s);
        free(s);
    }
    return rc;
}

static int parse_seccomp(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    struct strv names = STRV_INIT;
    int rc = get_strv(n, "seccomp", &names, err);
    for (size_t i = 0; rc == 0 && i < names.len; i++) {
        const char *s = names.items[i];
        if (seccomp_syscall_resolve_name(s) == __NR_SCMP_ERROR) {
            rc = node_error(err, &n->items[i]->pos,
                            "seccomp[%zu]: unknown system call '%s' on this architecture", i, s);
            break;
        }
        if (!strv_contains(&b->seccomp, s))
            strv_push(&b->seccomp, s);
    }
    strv_free(&names);
    return rc;
}

/*
 * A workspace path: relative, normalized (no empty, "." or ".." part; one
 * trailing '/' is dropped) and plain enough for a Docker --mount value.
 */
static const char *workspace_path_problem(char *path)
{
    size_t n = strlen(path);
    if (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    if (path[0] == '/')
        return "must be relative to the workspace";
    if (n > 1024)
        return "is longer than 1024 characters";
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ',' || *p == '"' || *p == '=')
            return "holds a control character, ',', '\"' or '='";
    const char *part = path;
    for (;;) {
        size_t len = strcspn(part, "/");
        if (len == 0 || (len == 1 && part[0] == '.') ||
            (len == 2 && part[0] == '.' && part[1] == '.'))
            return "is not a normalized path inside the workspace (no empty, '.' or '..' parts)";
        if (!part[len])
            return NULL;
        part += len + 1;
    }
}

static int parse_workspace(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    static const char *const keys[] = {"read_only", NULL};
    int rc = node_want_map(n, "workspace", err);
    if (rc == 0)
        rc = node_check_keys(n, "workspace", keys, err);
    const struct node *ro = node_map_get(n, "read_only");
    if (rc < 0 || !ro)
        return rc;
    rc = node_want_seq(ro, "workspace.read_only", err);
    for (size_t i = 0; rc == 0 && i < ro->n_items; i++) {
        char *what = xasprintf("workspace.read_only[%zu]", i);
        char *path = NULL;
        rc = node_get_string(ro->items[i], what, false, &path, err);
        const char *problem = rc == 0 ? workspace_path_problem(path) : NULL;
        if (problem)
            rc = node_error(err, &ro->items[i]->pos, "%s: '%s' %s", what, path, problem);
        if (rc == 0 && !strv_contains(&b->read_only, path))
            strv_push(&b->read_only, path);
        free(path);
        free(what);
    }
    return rc;
}

static int parse_terminal(const struct node *n, struct bottle_def *b, struct bottle_err *err)
{
    static const char *const keys[] = {"passthrough", "allow_osc52", NULL};
    int rc = node_want_map(n, "terminal", err);
    if (rc == 0)
        rc = node_check_keys(n, "terminal", keys, err);
    const struct node *v = node_map_get(n, "passthrough");
    if (rc == 0 && v &&
        (rc = node_get_bool(v, "terminal.passthrough", &b->terminal_passthrough, err)) == 0)
        b->terminal_passthrough_declared = true;
    v = node_map_get(n, "allow_osc52");
    if (rc == 0 && v &&
        (rc = node_get_bool(v, "terminal.allow_osc52", &b->terminal_allow_osc52, err)) == 0)
        b->terminal_allow_osc52_declared = true;
    return rc;
}

static int bottle_fields(const struct node *root, struct bottle_def *b, struct bottle_err *err)
{
    static const char *const keys[] = {
        "extends",   "env",      "agent_provider", "git-gate",    "egress",
        "supervise", "budget",   "shutdown",       "enforcement", "seccomp",
        "workspace", "terminal", "budget_pool",    "limits",      NULL};
    int rc = node_check_keys(root, "bottle", keys, err);
    if (rc < 0)
        return rc;
    const struct node *v;
    if ((v = node_map_get(root, "extends")) && (rc = parse_extends(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "env")) && (rc = parse_env(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "agent_provider")) && (rc = parse_provider(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "git-gate")) && (rc = parse_bottle_git(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "egress")) && (rc = parse_egress(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "supervise"))) {
        rc = node_get_bool(v, "supervise", &b->supervise, err);
        if (rc < 0)
            return rc;
        b->supervise_declared = true;
    }
    if ((v = node_map_get(root, "budget")) &&
        (rc = parse_budget(v, b->name, &b->budgets, &b->n_budgets, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "shutdown")) && (rc = parse_shutdown(v, &b->shutdown, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "enforcement")) &&
        (rc = parse_enforcement(v, &b->enforcement, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "seccomp")) && (rc = parse_seccomp(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "workspace")) && (rc = parse_workspace(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "terminal")) && (rc = parse_terminal(v, b, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "budget_pool"))) {
        if ((rc = node_get_string(v, "budget_pool", false, &b->budget_pool, err)) < 0)
            return rc;
        if (!manifest_name_valid(b->budget_pool))
            return node_error(err, &v->pos,
                              "budget_pool: '%s' is not a valid pool name; " NAME_RULE,
                              b->budget_pool);
    }
    if ((v = node_map_get(root, "limits")) && (rc = limits_parse(v, &b->limits, err)) < 0)
        return rc;
    return 0;
}

int bottle_parse(const char *file, const char *name, const char *text, size_t len,
                 struct bottle_def *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    out->name = xstrdup(name ? name : "");
    out->file = xstrdup(file ? file : "<input>");
    out->supervise = true;

    struct node_doc doc = {0};
    const char *body;
    size_t body_len;
    int rc = load_doc(out->file, text, len, true, &doc, &body, &body_len, err);
    if (rc == 0)
        rc = bottle_fields(doc.root, out, err);
    if (rc == 0)
        out->body = xstrndup(body, body_len);
    node_doc_free(&doc);
    if (rc < 0)
        bottle_def_free(out);
    return rc;
}

void bottle_def_free(struct bottle_def *b)
{
    if (!b)
        return;
    free(b->name);
    free(b->file);
    strv_free(&b->extends);
    for (size_t i = 0; i < b->n_env; i++) {
        free(b->env[i].name);
        free(b->env[i].value);
    }
    free(b->env);
    free(b->provider.template_name);
    strv_free(&b->provider.command);
    free(b->provider.auth_token);
    free(b->provider.dockerfile);
    strv_free(&b->provider.startup_args);
    git_user_free(&b->git_user);
    for (size_t i = 0; i < b->n_repos; i++) {
        free(b->repos[i].name);
        free(b->repos[i].url);
        free(b->repos[i].key_provider);
        free(b->repos[i].key_path);
    }
    free(b->repos);
    route_set_free(&b->routes);
    budgets_free(b->budgets, b->n_budgets);
    strv_free(&b->seccomp);
    strv_free(&b->read_only);
    free(b->body);
    free(b->budget_pool);
    memset(b, 0, sizeof(*b));
}

void bottle_def_copy(struct bottle_def *dst, const struct bottle_def *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->name = xstrdup_or_null(src->name);
    dst->file = xstrdup_or_null(src->file);
    strv_copy(&dst->extends, &src->extends);
    dst->extends_line = src->extends_line;
    dst->extends_col = src->extends_col;
    if (src->n_env) {
        dst->env = xcalloc(src->n_env, sizeof(*dst->env));
        for (size_t i = 0; i < src->n_env; i++) {
            dst->env[i].name = xstrdup(src->env[i].name);
            dst->env[i].value = xstrdup_or_null(src->env[i].value);
            dst->env[i].from_host = src->env[i].from_host;
            dst->env[i].line = src->env[i].line;
            dst->env[i].col = src->env[i].col;
        }
        dst->n_env = src->n_env;
    }
    dst->provider_declared = src->provider_declared;
    dst->provider.template_name = xstrdup_or_null(src->provider.template_name);
    strv_copy(&dst->provider.command, &src->provider.command);
    dst->provider.auth_token = xstrdup_or_null(src->provider.auth_token);
    dst->provider.dockerfile = xstrdup_or_null(src->provider.dockerfile);
    strv_copy(&dst->provider.startup_args, &src->provider.startup_args);
    dst->git_user.name = xstrdup_or_null(src->git_user.name);
    dst->git_user.email = xstrdup_or_null(src->git_user.email);
    dst->repos_declared = src->repos_declared;
    if (src->n_repos) {
        dst->repos = xcalloc(src->n_repos, sizeof(*dst->repos));
        for (size_t i = 0; i < src->n_repos; i++) {
            dst->repos[i].name = xstrdup_or_null(src->repos[i].name);
            dst->repos[i].url = xstrdup_or_null(src->repos[i].url);
            dst->repos[i].key_provider = xstrdup_or_null(src->repos[i].key_provider);
            dst->repos[i].key_path = xstrdup_or_null(src->repos[i].key_path);
        }
        dst->n_repos = src->n_repos;
    }
    for (size_t i = 0; i < src->routes.len; i++) {
        struct route r;
        route_copy(&r, &src->routes.items[i]);
        route_set_push(&dst->routes, &r);
    }
    dst->egress_log = src->egress_log;
    dst->supervise_declared = src->supervise_declared;
    dst->supervise = src->supervise;
    if (src->n_budgets) {
        dst->budgets = xcalloc(src->n_budgets, sizeof(*dst->budgets));
        for (size_t i = 0; i < src->n_budgets; i++) {
            dst->budgets[i].provider = xstrdup_or_null(src->budgets[i].provider);
            dst->budgets[i].tokens = src->budgets[i].tokens;
            dst->budgets[i].origin = xstrdup_or_null(src->budgets[i].origin);
            dst->budgets[i].period = xstrdup_or_null(src->budgets[i].period);
        }
        dst->n_budgets = src->n_budgets;
    }
    dst->shutdown = src->shutdown;
    dst->enforcement = src->enforcement;
    strv_copy(&dst->seccomp, &src->seccomp);
    strv_copy(&dst->read_only, &src->read_only);
    dst->terminal_passthrough_declared = src->terminal_passthrough_declared;
    dst->terminal_passthrough = src->terminal_passthrough;
    dst->terminal_allow_osc52_declared = src->terminal_allow_osc52_declared;
    dst->terminal_allow_osc52 = src->terminal_allow_osc52;
    dst->limits = src->limits;
    dst->body = xstrdup_or_null(src->body);
    dst->budget_pool = xstrdup_or_null(src->budget_pool);
}

/* ---- agent ----------------------------------------------------------------------- */

static int parse_agent_git(const struct node *n, struct agent_def *a, struct bottle_err *err)
{
    static const char *const keys[] = {"user", NULL};
    int rc = node_want_map(n, "git-gate", err);
    if (rc < 0)
        return rc;
    const struct node_pair *repos = node_map_pair(n, "repos");
    if (repos)
        return node_error(err, &repos->key_pos,
                          "git-gate.repos: repos belong in bottles, not agents; move this block "
                          "to the agent's bottle");
    rc = node_check_keys(n, "git-gate", keys, err);
    const struct node *user = node_map_get(n, "user");
    if (rc == 0 && user)
        rc = parse_git_user(user, "git-gate.user", &a->git_user, err);
    return rc;
}

static int parse_skills(const struct node *n, struct agent_def *a, struct bottle_err *err)
{
    int rc = get_strv(n, "skills", &a->skills, err);
    for (size_t i = 0; rc == 0 && i < a->skills.len; i++)
        if (!component_name_valid(a->skills.items[i]))
            rc = node_error(err, &n->items[i]->pos,
                            "skills[%zu]: '%s' is not a valid skill name; use letters, digits, "
                            "'.', '_' and '-', not starting with '.' or '-'",
                            i, a->skills.items[i]);
    return rc;
}

static int agent_fields(const struct node *root, struct agent_def *a, struct bottle_err *err)
{
    /* name..color: Claude Code subagent fields, accepted so one file serves both. */
    static const char *const keys[] = {"bottle",      "skills", "git-gate", "budget", "name",
                                       "description", "tools",  "model",    "color",  NULL};
    int rc = node_check_keys(root, "agent", keys, err);
    if (rc < 0)
        return rc;
    const struct node *v;
    if ((v = node_map_get(root, "bottle"))) {
        rc = node_get_string(v, "bottle", false, &a->bottle, err);
        if (rc == 0 && !manifest_name_valid(a->bottle))
            rc = node_error(err, &v->pos, "bottle: '%s' is not a valid bottle name; " NAME_RULE,
                            a->bottle);
        if (rc < 0)
            return rc;
    }
    if ((v = node_map_get(root, "skills")) && (rc = parse_skills(v, a, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "git-gate")) && (rc = parse_agent_git(v, a, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "budget")) &&
        (rc = parse_budget(v, a->name, &a->budgets, &a->n_budgets, err)) < 0)
        return rc;
    return 0;
}

static char *trim_dup(const char *s, size_t len)
{
    static const char ws[] = " \t\r\n\v\f";
    while (len > 0 && strchr(ws, s[0]) && s[0])
        s++, len--;
    while (len > 0 && strchr(ws, s[len - 1]) && s[len - 1])
        len--;
    return xstrndup(s, len);
}

int agent_parse(const char *file, const char *name, const char *text, size_t len,
                struct agent_def *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    out->name = xstrdup(name ? name : "");
    out->file = xstrdup(file ? file : "<input>");

    struct node_doc doc = {0};
    const char *body;
    size_t body_len;
    int rc = load_doc(out->file, text, len, true, &doc, &body, &body_len, err);
    if (rc == 0)
        rc = agent_fields(doc.root, out, err);
    if (rc == 0)
        out->prompt = trim_dup(body, body_len);
    node_doc_free(&doc);
    if (rc < 0)
        agent_def_free(out);
    return rc;
}

void agent_def_free(struct agent_def *a)
{
    if (!a)
        return;
    free(a->name);
    free(a->file);
    free(a->bottle);
    strv_free(&a->skills);
    git_user_free(&a->git_user);
    budgets_free(a->budgets, a->n_budgets);
    free(a->prompt);
    memset(a, 0, sizeof(*a));
}

/* ---- settings.yml ----------------------------------------------------------------- */

/* `pools:` name -> {provider: tokens | {tokens, period}}. */
static int parse_pools(const struct node *n, struct settings *s, struct bottle_err *err)
{
    int rc = node_want_map(n, "pools", err);
    for (size_t i = 0; rc == 0 && i < n->n_pairs; i++) {
        const struct node_pair *p = &n->pairs[i];
        if (!manifest_name_valid(p->key))
            return node_error(err, &p->key_pos, "pools: '%s' is not a valid pool name; " NAME_RULE,
                              p->key);
        s->pools = xrealloc(s->pools, (s->n_pools + 1) * sizeof(*s->pools));
        struct settings_pool *pool = &s->pools[s->n_pools++];
        memset(pool, 0, sizeof(*pool));
        pool->name = xstrdup(p->key);
        char *origin = xasprintf("pool %s", p->key);
        rc = parse_budget(p->value, origin, &pool->budgets, &pool->n_budgets, err);
        free(origin);
    }
    return rc;
}

/*
 * A PostgreSQL URL in `ledger:` may not carry its password: settings.yml is
 * a file, and the password belongs in PGPASSWORD or a libpq password or
 * service file.
 */
static bool ledger_url_has_password(const char *url)
{
    if (strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0)
        return false;
    const char *auth = strstr(url, "://") + 3;
    size_t host_len = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', host_len);
    bool has_password = at && memchr(auth, ':', (size_t)(at - auth));
    for (const char *q = strchr(auth, '?'); q && !has_password; q = strchr(q + 1, '&'))
        has_password = strncmp(q + 1, "password=", 9) == 0;
    return has_password;
}

/* sidecar: {max_connections: N}: how the bottle's egress sidecar is sized. */
static int parse_sidecar_settings(const struct node *n, struct settings *s, struct bottle_err *err)
{
    static const char *const keys[] = {"max_connections", NULL};
    int rc = node_want_map(n, "sidecar", err);
    if (rc == 0)
        rc = node_check_keys(n, "sidecar", keys, err);
    const struct node *v = rc == 0 ? node_map_get(n, "max_connections") : NULL;
    uint64_t max = 0;
    if (v && (rc = node_get_u64(v, "sidecar.max_connections", &max, err)) == 0 &&
        (max == 0 || max > SETTINGS_MAX_CONNECTIONS_MAX))
        rc = node_error(err, &v->pos, "sidecar.max_connections: must be from 1 to %d, found %llu",
                        SETTINGS_MAX_CONNECTIONS_MAX, (unsigned long long)max);
    if (rc == 0)
        s->sidecar_max_connections = (unsigned)max;
    return rc;
}

static int settings_fields(const struct node *root, struct settings *s, struct bottle_err *err)
{
    static const char *const keys[] = {"budget", "shutdown", "enforcement", "ledger",
                                       "pools",  "sidecar",  NULL};
    int rc = node_check_keys(root, "settings", keys, err);
    if (rc < 0)
        return rc;
    const struct node *v;
    if ((v = node_map_get(root, "budget")) &&
        (rc = parse_budget(v, "settings", &s->budgets, &s->n_budgets, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "shutdown")) && (rc = parse_shutdown(v, &s->shutdown, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "enforcement")) &&
        (rc = parse_enforcement(v, &s->enforcement, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "ledger")) &&
        (rc = node_get_string(v, "ledger", false, &s->ledger_path, err)) < 0)
        return rc;
    if (s->ledger_path && ledger_url_has_password(s->ledger_path))
        return node_error(err, &v->pos,
                          "ledger: the URL carries a password; give it in PGPASSWORD, a password "
                          "file (~/.pgpass, PGPASSFILE) or a service file instead");
    if ((v = node_map_get(root, "pools")) && (rc = parse_pools(v, s, err)) < 0)
        return rc;
    if ((v = node_map_get(root, "sidecar")) && (rc = parse_sidecar_settings(v, s, err)) < 0)
        return rc;
    return 0;
}

int settings_parse(const char *file, const char *text, size_t len, struct settings *out,
                   struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    out->file = xstrdup(file ? file : "settings.yml");
    struct node_doc doc = {0};
    const char *body;
    size_t body_len;
    int rc = load_doc(out->file, text, len, false, &doc, &body, &body_len, err);
    if (rc == 0)
        rc = settings_fields(doc.root, out, err);
    node_doc_free(&doc);
    if (rc < 0)
        settings_free(out);
    return rc;
}

void settings_free(struct settings *s)
{
    if (!s)
        return;
    free(s->file);
    budgets_free(s->budgets, s->n_budgets);
    free(s->ledger_path);
    for (size_t i = 0; i < s->n_pools; i++) {
        free(s->pools[i].name);
        budgets_free(s->pools[i].budgets, s->pools[i].n_budgets);
    }
    free(s->pools);
    memset(s, 0, sizeof(*s));
}
