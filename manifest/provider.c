/*
 * provider — the built-in agent provider templates: the command each runs,
 * the provider-owned egress routes (metered, credential injected, DLP
 * redacting by default) and the placeholder variables the agent sees instead
 * of real credentials.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest/plan.h"

const char *const provider_template_names[] = {"claude", "codex", "generic", NULL};

static void add_env(struct provider_out *out, const char *name, const char *value, bool secret)
{
    out->env = xrealloc(out->env, (out->n_env + 1) * sizeof(*out->env));
    struct plan_env *e = &out->env[out->n_env++];
    e->name = xstrdup(name);
    e->value = value ? xstrdup(value) : NULL;
    e->source = ENV_SRC_PROVIDER;
    e->secret = secret;
}

static void add_route(struct provider_out *out, const char *host, const char *token_ref,
                      const char *metered, const char *path_prefix, const char *file)
{
    struct route r;
    memset(&r, 0, sizeof(r));
    r.host = xstrdup(host);
    r.auth.kind = AUTH_SCHEME;
    r.auth.scheme = xstrdup("Bearer");
    r.auth.token_ref = xstrdup(token_ref);
    r.dlp.outbound = DLP_OUT_DEFAULT;
    r.dlp.inbound = DLP_IN_DEFAULT;
    r.dlp.on_match = DLP_POLICY_REDACT;
    r.metered = xstrdup(metered);
    r.provider = true;
    r.file = file ? xstrdup(file) : NULL;
    if (path_prefix) {
        r.matches = xcalloc(1, sizeof(*r.matches));
        r.n_matches = 1;
        r.matches[0].paths = xcalloc(1, sizeof(*r.matches[0].paths));
        r.matches[0].n_paths = 1;
        r.matches[0].paths[0].type = MATCH_PREFIX;
        r.matches[0].paths[0].value = xstrdup(path_prefix);
    }
    route_set_push(&out->routes, &r);
}

int provider_apply(const struct agent_provider *p, const char *bottle_file,
                   struct provider_out *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *tmpl = p && p->template_name ? p->template_name : "claude";

    if (strcmp(tmpl, "claude") == 0) {
        const char *ref = p && p->auth_token ? p->auth_token : "CLAUDE_CODE_OAUTH_TOKEN";
        strv_push(&out->command, "claude");
        add_route(out, "api.anthropic.com", ref, "claude", NULL, bottle_file);
        add_env(out, "CLAUDE_CODE_OAUTH_TOKEN", NULL, true);
        add_env(out, "DISABLE_TELEMETRY", "1", false);
        add_env(out, "DISABLE_ERROR_REPORTING", "1", false);
        add_env(out, "DISABLE_AUTOUPDATER", "1", false);
        add_env(out, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1", false);
        out->prompt_append_file = true;
    } else if (strcmp(tmpl, "codex") == 0) {
        const char *ref = p && p->auth_token ? p->auth_token : "OPENAI_API_KEY";
        strv_push(&out->command, "codex");
        add_route(out, "api.openai.com", ref, "codex", NULL, bottle_file);
        add_route(out, "chatgpt.com", ref, "codex", "/backend-api/", bottle_file);
        add_env(out, "OPENAI_API_KEY", NULL, true);
        out->prompt_as_message = true;
    } else if (strcmp(tmpl, "generic") == 0) {
        if (!p || p->command.len == 0) {
            provider_out_free(out);
            return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                                "manifest: %s: agent_provider.command is required for the "
                                "generic template",
                                bottle_file ? bottle_file : "?");
        }
        strv_copy(&out->command, &p->command);
    } else {
        provider_out_free(out);
        return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                            "manifest: %s: agent_provider.template '%s' is not known; "
                            "accepted: claude, codex, generic",
                            bottle_file ? bottle_file : "?", tmpl);
    }
    if (p)
        strv_copy(&out->command, &p->startup_args);
    return 0;
}

void provider_out_free(struct provider_out *out)
{
    if (!out)
        return;
    strv_free(&out->command);
    route_set_free(&out->routes);
    for (size_t i = 0; i < out->n_env; i++) {
        free(out->env[i].name);
        free(out->env[i].value);
    }
    free(out->env);
    out->env = NULL;
    out->n_env = 0;
}

static const char *const canary_words[] = {
    "AMBER",  "BASALT",  "CEDAR",   "DELTA",  "EMBER",    "FJORD",  "GRANITE", "HARBOR",
    "INDIGO", "JUNIPER", "KESTREL", "LUMEN",  "MERIDIAN", "NIMBUS", "OSPREY",  "PRAIRIE",
    "QUARTZ", "RAVEN",   "SIERRA",  "TUNDRA", "UMBER",    "VERTEX", "WILLOW",  "ZEPHYR",
};

static unsigned random_below(unsigned n)
{
    unsigned v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
            v = (unsigned)getpid() * 2654435761u;
        close(fd);
    }
    return v % n;
}

char *canary_name_random(void)
{
    unsigned n = sizeof(canary_words) / sizeof(canary_words[0]);
    unsigned a = random_below(n);
    unsigned b = random_below(n - 1);
    if (b >= a)
        b++;
    return xasprintf("%s_%s_SECRET", canary_words[a], canary_words[b]);
}
