/*
 * project — the rules every bottle from a project directory obeys, trusted
 * or not (see trust.h): no host variable reaches the agent's environment
 * through it, no credential goes to a host the user's own files do not
 * already send it to, and its Dockerfile is one of the files trust covers.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"
#include "manifest/plan.h"
#include "manifest/trust.h"

/*
 * Credentials the shipped examples (examples/bottles/) send beyond the
 * provider templates' defaults; tests/unit/test_manifest_trust.c checks
 * that the examples and this table agree.
 */
static const struct {
    const char *token_ref, *host;
    uint16_t port;
} shipped_uses[] = {
    {"EXAMPLE_API_TOKEN", "api.example.test", 0},
};

static void use_add(struct credential_uses *u, const char *ref, const char *host, uint16_t port,
                    const char *origin)
{
    if (credential_uses_allow(u, ref, host, port))
        return;
    u->items = xrealloc(u->items, (u->len + 1) * sizeof(*u->items));
    struct credential_use *c = &u->items[u->len++];
    c->token_ref = xstrdup(ref);
    c->host = xstrdup(host);
    c->port = port;
    c->origin = xstrdup(origin ? origin : "built-in");
}

static void add_routes(struct credential_uses *u, const struct route_set *routes,
                       const char *origin)
{
    for (size_t i = 0; i < routes->len; i++) {
        const struct route *r = &routes->items[i];
        if (r->auth.token_ref)
            use_add(u, r->auth.token_ref, r->host, r->port, origin);
    }
}

static void add_template(struct credential_uses *u, const struct agent_provider *p,
                         const char *origin)
{
    struct provider_out prov;
    struct bottle_err ignored = {0};
    if (provider_apply(p, origin, &prov, &ignored) == 0)
        add_routes(u, &prov.routes, origin);
    provider_out_free(&prov);
}

void credential_uses_add_bottle(struct credential_uses *uses, const struct bottle_def *b)
{
    add_routes(uses, &b->routes, b->file);
    if (b->provider_declared && b->provider.auth_token)
        add_template(uses, &b->provider, b->file);
}

void credential_uses_collect(const char *home, struct credential_uses *out)
{
    memset(out, 0, sizeof(*out));
    for (const char *const *t = provider_template_names; *t; t++) {
        if (strcmp(*t, "generic") == 0)
            continue;
        struct agent_provider p;
        memset(&p, 0, sizeof(p));
        p.template_name = (char *)*t;
        add_template(out, &p, NULL);
    }
    for (size_t i = 0; i < sizeof(shipped_uses) / sizeof(shipped_uses[0]); i++)
        use_add(out, shipped_uses[i].token_ref, shipped_uses[i].host, shipped_uses[i].port,
                "examples");
    if (!home)
        return;
    char *dir = fs_join(home, "bottles");
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n <= 3 || !str_ends_with(de->d_name, ".md"))
            continue;
        char *stem = xstrndup(de->d_name, n - 3);
        char *path = fs_join(dir, de->d_name);
        struct buf text = BUF_INIT;
        struct bottle_err ignored = {0};
        struct bottle_def b;
        if (manifest_name_valid(stem) &&
            fs_read_file(path, PROJECT_MANIFEST_MAX, &text, &ignored) == 0 &&
            bottle_parse(path, stem, text.data ? text.data : "", text.len, &b, &ignored) == 0) {
            credential_uses_add_bottle(out, &b);
            bottle_def_free(&b);
        }
        buf_free(&text);
        free(path);
        free(stem);
    }
    if (d)
        closedir(d);
    free(dir);
}

bool credential_uses_allow(const struct credential_uses *uses, const char *token_ref,
                           const char *host, uint16_t port)
{
    for (size_t i = 0; i < uses->len; i++) {
        const struct credential_use *c = &uses->items[i];
        if (strcmp(c->token_ref, token_ref) == 0 && strcmp(c->host, host) == 0 && c->port == port)
            return true;
    }
    return false;
}

void credential_uses_free(struct credential_uses *uses)
{
    if (!uses)
        return;
    for (size_t i = 0; i < uses->len; i++) {
        free(uses->items[i].token_ref);
        free(uses->items[i].host);
        free(uses->items[i].origin);
    }
    free(uses->items);
    memset(uses, 0, sizeof(*uses));
}

/* ---- the rules ---------------------------------------------------------------------- */

static int refuse_at(struct bottle_err *err, const char *file, unsigned line, unsigned col,
                     const char *what)
{
    if (line)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM, "manifest: %s:%u:%u: %s", file, line, col,
                            what);
    return err_set_kind(err, ERR_KIND_REFUSED, EPERM, "manifest: %s: %s", file, what);
}

/* "github.com:443, api.github.com" — where the user's files send ref. */
static char *known_hosts(const struct credential_uses *uses, const char *ref)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < uses->len; i++) {
        const struct credential_use *c = &uses->items[i];
        if (strcmp(c->token_ref, ref) != 0)
            continue;
        buf_printf(&b, "%s%s", b.len ? ", " : "", c->host);
        if (c->port)
            buf_printf(&b, ":%u", c->port);
    }
    char *out = xstrdup(b.data ? b.data : "");
    buf_free(&b);
    return out;
}

static int refuse_credential(const struct credential_uses *uses, const char *file, unsigned line,
                             unsigned col, const char *what, const char *ref, const struct route *r,
                             struct bottle_err *err)
{
    char *hosts = known_hosts(uses, ref);
    char port[16] = "";
    if (r->port)
        snprintf(port, sizeof(port), ":%u", r->port);
    char *msg = xasprintf(
        "%s: a project file sends the credential $%s to '%s%s', where none of your own files "
        "send it (%s%s); declare it in a bottle under $BOTTLE_HOME/bottles/ instead",
        what, ref, r->host, port, *hosts ? "they send it to " : "no bottle of yours uses it",
        hosts);
    int rc = refuse_at(err, file, line, col, msg);
    free(msg);
    free(hosts);
    return rc;
}

/* True when path, relative to the directory of rel (inside .bottle/), stays inside .bottle/. */
static bool stays_inside(const char *rel, const char *path)
{
    if (path[0] == '/')
        return false;
    int depth = 0;
    for (const char *p = rel; *p; p++)
        depth += *p == '/';
    char *copy = xstrdup(path);
    char *save = NULL;
    bool ok = true;
    for (char *c = strtok_r(copy, "/", &save); c && ok; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, "..") == 0)
            ok = --depth >= 0;
        else if (strcmp(c, ".") != 0)
            depth++;
    }
    free(copy);
    return ok;
}

int project_bottle_check(const struct bottle_def *b, const char *rel,
                         const struct credential_uses *uses, struct bottle_err *err)
{
    for (size_t i = 0; i < b->n_env; i++) {
        const struct env_entry *e = &b->env[i];
        if (!e->from_host)
            continue;
        char *msg = xasprintf("env.%s: a project file cannot copy the host variable '$%s' into "
                              "the agent's environment; give a literal value, or declare it in "
                              "a bottle under $BOTTLE_HOME/bottles/",
                              e->name, e->value);
        int rc = refuse_at(err, b->file, e->line, e->col, msg);
        free(msg);
        return rc;
    }
    for (size_t i = 0; i < b->routes.len; i++) {
        const struct route *r = &b->routes.items[i];
        if (!r->auth.token_ref || credential_uses_allow(uses, r->auth.token_ref, r->host, r->port))
            continue;
        char *what = xasprintf("egress.routes[%zu].auth.token_ref", i);
        int rc = refuse_credential(uses, b->file, r->line, r->col, what, r->auth.token_ref, r, err);
        free(what);
        return rc;
    }
    if (b->provider_declared && b->provider.auth_token) {
        struct provider_out prov;
        int rc = provider_apply(&b->provider, b->file, &prov, err);
        for (size_t i = 0; rc == 0 && i < prov.routes.len; i++) {
            const struct route *r = &prov.routes.items[i];
            if (!credential_uses_allow(uses, r->auth.token_ref, r->host, r->port))
                rc = refuse_credential(uses, b->file, b->provider.auth_token_line,
                                       b->provider.auth_token_col, "agent_provider.auth_token",
                                       r->auth.token_ref, r, err);
        }
        provider_out_free(&prov);
        if (rc < 0)
            return rc;
    }
    if (b->provider_declared && b->provider.dockerfile &&
        !stays_inside(rel, b->provider.dockerfile))
        return refuse_at(err, b->file, b->provider.dockerfile_line, b->provider.dockerfile_col,
                         "agent_provider.dockerfile: a project file's Dockerfile must lie inside "
                         "its .bottle/ directory, where `bottle trust` covers it");
    return 0;
}
