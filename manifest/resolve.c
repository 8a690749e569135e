/*
 * resolve — `extends` graphs and bottle folding.
 *
 * Parents are resolved independently (each once, even in a diamond), folded
 * left to right, and the child is merged on top. The same fold serves
 * `bottle start --bottle a --bottle b`. Only declared values override: a
 * later bottle that never mentions `supervise` does not reset it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "manifest/manifest.h"

static void set_str(char **dst, const char *src)
{
    if (!src)
        return;
    free(*dst);
    *dst = xstrdup(src);
}

static void merge_env(struct bottle_def *acc, const struct bottle_def *later)
{
    for (size_t i = 0; i < later->n_env; i++) {
        const struct env_entry *e = &later->env[i];
        size_t j;
        for (j = 0; j < acc->n_env; j++)
            if (strcmp(acc->env[j].name, e->name) == 0)
                break;
        if (j == acc->n_env) {
            acc->env = xrealloc(acc->env, (acc->n_env + 1) * sizeof(*acc->env));
            acc->env[j].name = xstrdup(e->name);
            acc->env[j].value = NULL;
            acc->n_env++;
        }
        free(acc->env[j].value);
        acc->env[j].value = xstrdup(e->value);
        acc->env[j].from_host = e->from_host;
    }
}

void budget_merge(struct budget_entry **items, size_t *n, const struct budget_entry *src,
                  size_t n_src)
{
    for (size_t i = 0; i < n_src; i++) {
        size_t j;
        for (j = 0; j < *n; j++)
            if (strcmp((*items)[j].provider, src[i].provider) == 0)
                break;
        if (j == *n) {
            *items = xrealloc(*items, (*n + 1) * sizeof(**items));
            (*items)[j].provider = xstrdup(src[i].provider);
            (*items)[j].origin = NULL;
            (*items)[j].period = NULL;
            (*n)++;
        }
        (*items)[j].tokens = src[i].tokens;
        free((*items)[j].origin);
        (*items)[j].origin = xstrdup_or_null(src[i].origin);
        free((*items)[j].period); /* the later declaration replaces the whole budget */
        (*items)[j].period = xstrdup_or_null(src[i].period);
    }
}

static void repo_free_fields(struct git_repo *r)
{
    free(r->name);
    free(r->url);
    free(r->key_provider);
    free(r->key_path);
}

static void merge_repos(struct bottle_def *acc, const struct bottle_def *later, bool child)
{
    if (!later->repos_declared)
        return;
    if (child && later->n_repos == 0) {
        /* An explicitly empty `repos` in the child clears what it inherited. */
        for (size_t i = 0; i < acc->n_repos; i++)
            repo_free_fields(&acc->repos[i]);
        free(acc->repos);
        acc->repos = NULL;
        acc->n_repos = 0;
        acc->repos_declared = true;
        return;
    }
    for (size_t i = 0; i < later->n_repos; i++) {
        const struct git_repo *r = &later->repos[i];
        size_t j;
        for (j = 0; j < acc->n_repos; j++)
            if (strcmp(acc->repos[j].name, r->name) == 0)
                break;
        if (j == acc->n_repos) {
            acc->repos = xrealloc(acc->repos, (acc->n_repos + 1) * sizeof(*acc->repos));
            memset(&acc->repos[j], 0, sizeof(acc->repos[j]));
            acc->repos[j].name = xstrdup(r->name);
            acc->n_repos++;
        }
        set_str(&acc->repos[j].url, r->url);
        set_str(&acc->repos[j].key_provider, r->key_provider);
        set_str(&acc->repos[j].key_path, r->key_path);
    }
    acc->repos_declared = true;
}

static void provider_free_fields(struct agent_provider *p)
{
    free(p->template_name);
    strv_free(&p->command);
    free(p->auth_token);
    free(p->dockerfile);
    strv_free(&p->startup_args);
    memset(p, 0, sizeof(*p));
}

static bool route_declared_in(const struct route_set *set, const struct route *r)
{
    if (!r->file || r->line == 0)
        return false;
    for (size_t i = 0; i < set->len; i++) {
        const struct route *q = &set->items[i];
        if (q->file && strcmp(q->file, r->file) == 0 && q->line == r->line && q->col == r->col)
            return true;
    }
    return false;
}

static void merge_one(struct bottle_def *acc, const struct bottle_def *later, bool child)
{
    merge_env(acc, later);
    if (later->provider_declared) {
        provider_free_fields(&acc->provider);
        acc->provider.template_name = xstrdup_or_null(later->provider.template_name);
        strv_copy(&acc->provider.command, &later->provider.command);
        acc->provider.auth_token = xstrdup_or_null(later->provider.auth_token);
        acc->provider.dockerfile = xstrdup_or_null(later->provider.dockerfile);
        strv_copy(&acc->provider.startup_args, &later->provider.startup_args);
        acc->provider_declared = true;
    }
    if (later->git_user.name && *later->git_user.name)
        set_str(&acc->git_user.name, later->git_user.name);
    if (later->git_user.email && *later->git_user.email)
        set_str(&acc->git_user.email, later->git_user.email);
    merge_repos(acc, later, child);
    for (size_t i = 0; i < later->routes.len; i++) {
        /* A route reached through both sides of a diamond is one declaration. */
        if (route_declared_in(&acc->routes, &later->routes.items[i]))
            continue;
        struct route copy;
        route_copy(&copy, &later->routes.items[i]);
        route_set_push(&acc->routes, &copy);
    }
    if (later->egress_log != EGRESS_LOG_UNSET)
        acc->egress_log = later->egress_log;
    if (later->supervise_declared) {
        acc->supervise = later->supervise;
        acc->supervise_declared = true;
    }
    budget_merge(&acc->budgets, &acc->n_budgets, later->budgets, later->n_budgets);
    if (later->shutdown != SHUTDOWN_UNSET)
        acc->shutdown = later->shutdown;
    if (later->budget_pool) {
        free(acc->budget_pool);
        acc->budget_pool = xstrdup(later->budget_pool);
    }
    if (later->enforcement != TIER_UNSET)
        acc->enforcement = later->enforcement;
    for (size_t i = 0; i < later->seccomp.len; i++)
        if (!strv_contains(&acc->seccomp, later->seccomp.items[i]))
            strv_push(&acc->seccomp, later->seccomp.items[i]);
    for (size_t i = 0; i < later->read_only.len; i++)
        if (!strv_contains(&acc->read_only, later->read_only.items[i]))
            strv_push(&acc->read_only, later->read_only.items[i]);
    if (later->terminal_passthrough_declared) {
        acc->terminal_passthrough = later->terminal_passthrough;
        acc->terminal_passthrough_declared = true;
    }
    if (later->terminal_allow_osc52_declared) {
        acc->terminal_allow_osc52 = later->terminal_allow_osc52;
        acc->terminal_allow_osc52_declared = true;
    }
    limits_fold(&acc->limits, &later->limits);
}

void bottle_fold(struct bottle_def *acc, const struct bottle_def *later)
{
    merge_one(acc, later, false);
}

/* ---- graph resolution ---------------------------------------------------- */

struct resolved {
    char *name;
    struct bottle_def def;
    struct strv lineage;
};

struct resolver {
    const struct manifest_index *idx;
    struct resolved *cache;
    size_t n_cache;
    struct strv stack; /* the current extends chain, for cycle reports */
};

static struct resolved *cache_find(struct resolver *rs, const char *name)
{
    for (size_t i = 0; i < rs->n_cache; i++)
        if (strcmp(rs->cache[i].name, name) == 0)
            return &rs->cache[i];
    return NULL;
}

static void lineage_add(struct strv *dst, const struct strv *src)
{
    for (size_t i = 0; i < src->len; i++)
        if (!strv_contains(dst, src->items[i]))
            strv_push(dst, src->items[i]);
}

static int extends_error(struct bottle_err *err, const struct bottle_def *b, const char *fmt,
                         const char *a1, const char *a2)
{
    char msg[768];
    snprintf(msg, sizeof(msg), fmt, a1, a2);
    struct node_pos pos = {b ? b->file : "?", b ? b->extends_line : 0, b ? b->extends_col : 0};
    return node_error(err, &pos, "extends: %s", msg);
}

/* Checks for duplicate host:port among the final routes. */
static int check_duplicate_routes(const struct bottle_def *b, struct bottle_err *err)
{
    for (size_t i = 0; i < b->routes.len; i++) {
        const struct route *r = &b->routes.items[i];
        for (size_t j = 0; j < i; j++) {
            const struct route *q = &b->routes.items[j];
            if (strcmp(q->host, r->host) != 0 || q->port != r->port)
                continue;
            struct node_pos pos = {r->file ? r->file : b->file, r->line, r->col};
            return node_error(err, &pos,
                              "egress.routes: host '%s' is routed twice (also at %s:%u:%u); "
                              "keep one route per host",
                              r->host, q->file ? q->file : "?", q->line, q->col);
        }
    }
    return 0;
}

static int resolve_one(struct resolver *rs, const char *name, const struct bottle_def *from,
                       struct resolved **out, struct bottle_err *err)
{
    struct resolved *hit = cache_find(rs, name);
    if (hit) {
        *out = hit;
        return 0;
    }
    if (strv_contains(&rs->stack, name)) {
        struct buf chain = BUF_INIT;
        for (size_t i = 0; i < rs->stack.len; i++)
            buf_printf(&chain, "%s -> ", rs->stack.items[i]);
        buf_append_str(&chain, name);
        int rc =
            extends_error(err, from, "bottle '%s' is in an extends cycle: %s", name, chain.data);
        buf_free(&chain);
        return rc;
    }

    struct bottle_def def;
    memset(&def, 0, sizeof(def));
    int rc = manifest_index_load_bottle(rs->idx, name, &def, err);
    if (rc < 0) {
        if (from && err && err->code == ENOENT) {
            /* Re-word a missing parent against the file that named it. */
            struct strv avail = STRV_INIT;
            manifest_index_bottles(rs->idx, &avail);
            struct buf list = BUF_INIT;
            for (size_t i = 0; i < avail.len; i++)
                buf_printf(&list, "%s%s", i ? ", " : "", avail.items[i]);
            char *what = xasprintf("bottle '%s' extends '%%s', which is not defined. "
                                   "Available bottles: %%s",
                                   from->name);
            rc = extends_error(err, from, what, name, list.len ? list.data : "(none)");
            free(what);
            buf_free(&list);
            strv_free(&avail);
        }
        return rc;
    }

    for (size_t i = 0; i < def.extends.len; i++) {
        if (strcmp(def.extends.items[i], def.name) == 0) {
            rc = extends_error(err, &def,
                               "bottle '%s' extends itself; remove the "
                               "self-reference%s",
                               def.name, "");
            bottle_def_free(&def);
            return rc;
        }
    }

    strv_push(&rs->stack, name);
    struct bottle_def acc;
    memset(&acc, 0, sizeof(acc));
    struct strv lineage = STRV_INIT;
    for (size_t i = 0; i < def.extends.len; i++) {
        struct resolved *parent = NULL;
        rc = resolve_one(rs, def.extends.items[i], &def, &parent, err);
        if (rc < 0)
            break;
        lineage_add(&lineage, &parent->lineage);
        if (i == 0) {
            bottle_def_copy(&acc, &parent->def);
        } else {
            bottle_fold(&acc, &parent->def);
        }
    }
    free(rs->stack.items[--rs->stack.len]);
    rs->stack.items[rs->stack.len] = NULL;
    if (rc < 0) {
        bottle_def_free(&acc);
        bottle_def_free(&def);
        strv_free(&lineage);
        return rc;
    }

    struct bottle_def result;
    if (def.extends.len == 0) {
        result = def; /* take ownership */
        memset(&def, 0, sizeof(def));
    } else {
        merge_one(&acc, &def, true);
        free(acc.name);
        acc.name = xstrdup(def.name);
        free(acc.file);
        acc.file = xstrdup(def.file);
        free(acc.body);
        acc.body = xstrdup_or_null(def.body);
        strv_free(&acc.extends);
        strv_copy(&acc.extends, &def.extends);
        acc.extends_line = def.extends_line;
        acc.extends_col = def.extends_col;
        result = acc;
        bottle_def_free(&def);
    }
    strv_push(&lineage, name);

    rc = check_duplicate_routes(&result, err);
    if (rc < 0) {
        bottle_def_free(&result);
        strv_free(&lineage);
        return rc;
    }

    rs->cache = xrealloc(rs->cache, (rs->n_cache + 1) * sizeof(*rs->cache));
    struct resolved *slot = &rs->cache[rs->n_cache++];
    slot->name = xstrdup(name);
    slot->def = result;
    slot->lineage = lineage;
    *out = slot;
    return 0;
}

static void resolver_free(struct resolver *rs)
{
    for (size_t i = 0; i < rs->n_cache; i++) {
        free(rs->cache[i].name);
        bottle_def_free(&rs->cache[i].def);
        strv_free(&rs->cache[i].lineage);
    }
    free(rs->cache);
    strv_free(&rs->stack);
}

int bottle_resolve_many(const struct manifest_index *idx, const char *const *names, size_t n,
                        struct bottle_def *out, struct strv *lineage, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "no bottle selected");
    struct resolver rs = {.idx = idx};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct resolved *r = NULL;
        rc = resolve_one(&rs, names[i], NULL, &r, err);
        if (rc < 0)
            break;
        if (lineage)
            lineage_add(lineage, &r->lineage);
        if (i == 0)
            bottle_def_copy(out, &r->def);
        else
            bottle_fold(out, &r->def);
    }
    if (rc == 0 && n > 1) {
        /* The runtime fold can bring the same host twice from two bottles. */
        rc = check_duplicate_routes(out, err);
    }
    if (rc < 0) {
        bottle_def_free(out);
        memset(out, 0, sizeof(*out));
    }
    resolver_free(&rs);
    return rc;
}

int bottle_resolve(const struct manifest_index *idx, const char *name, struct bottle_def *out,
                   struct strv *lineage, struct bottle_err *err)
{
    const char *names[] = {name};
    return bottle_resolve_many(idx, names, 1, out, lineage, err);
}
