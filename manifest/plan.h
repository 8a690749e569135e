/*
 * plan — the resolved plan for one bottle: everything `bottle start` will do,
 * computed from the manifests, provider templates, settings and flags, before
 * anything on the host changes. Its JSON form (plan_to_json) is stable and
 * documented in docs/cli.md; it never holds a secret value, only names.
 */
#ifndef BOTTLE_MANIFEST_PLAN_H
#define BOTTLE_MANIFEST_PLAN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/manifest.h"
#include "manifest/route.h"

#define PLAN_SCHEMA_VERSION 1

/* Where the bottle sees bottle-provided files (read-only). */
#define GUEST_BOTTLE_DIR  "/bottle"
#define GUEST_PROMPT_PATH "/bottle/prompt.md"
#define GUEST_CA_BUNDLE   "/bottle/ca-bundle.pem"

enum env_source {
    ENV_SRC_RUNTIME = 0, /* set by bottle: proxy, CA bundle, PATH, HOME... */
    ENV_SRC_PROVIDER,    /* provider template (placeholders, telemetry switches) */
    ENV_SRC_CANARY,      /* the per-bottle canary */
    ENV_SRC_MANIFEST,    /* literal value from the bottle's `env` */
    ENV_SRC_HOST,        /* `env: {X: $HOST_VAR}`: copied from the host at start */
};

const char *env_source_name(enum env_source s);

struct plan_env {
    char *name;
    char *value; /* literal, template value or host variable name; NULL: made at start */
    enum env_source source;
    bool secret; /* placeholder or canary: the value is generated at start */
};

struct plan_budget {
    char *provider;
    uint64_t tokens;
    const char *scope; /* cli | agent | bottle | parent | settings | pool */
    char *source;      /* the name of the agent, bottle or file it came from */
    char *period;      /* day | month | total as declared; NULL: not declared */
};

struct plan_token_ref {
    char *name;
    bool set; /* present in the host environment */
};

/*
 * What every repository of the workspace (the workspace itself and each
 * <workspace>/<dir> holding .git) keeps read-only inside a bottle, so that
 * nothing the agent plants there runs when git runs on the host. A missing
 * entry is created empty first when create is set (inside .git only, where
 * git itself would create it); others are protected when they exist.
 * Terminated by {NULL}. docs/manifest.md, "workspace".
 */
struct plan_git_guard {
    const char *path; /* relative to the repository's top */
    bool dir;
    bool create;
};
extern const struct plan_git_guard plan_git_guards[];

/* A project file (./.bottle/) and its trust state: trusted, new, changed or removed. */
struct plan_project_file {
    char *path;
    const char *state;
};

struct plan {
    char *agent_name;
    char *agent_file;
    char *prompt;
    struct strv skills;
    struct strv bottles; /* the selection, in order */
    struct strv lineage; /* every bottle involved, root first */
    char *provider;      /* claude | codex | generic */
    struct strv argv;
    char *cwd;
    struct plan_env *env;
    size_t n_env;
    struct route_set routes;
    struct plan_token_ref *token_refs;
    size_t n_token_refs;
    struct plan_budget *budgets;
    size_t n_budgets;
    enum shutdown_policy shutdown;
    const char *shutdown_scope;
    char *backend;
    char *dockerfile; /* agent_provider.dockerfile, absolute; NULL: none */
    char *image;      /* docker: run this image instead of building dockerfile; NULL: none */
    char *resume;     /* --resume: the slug whose snapshot (image) this bottle boots from */
    enum enforcement_tier tier_required;
    const char *tier_required_scope;
    enum enforcement_tier tier_available;
    char *tier_why;
    bool supervise;
    enum egress_log_level egress_log;
    struct strv seccomp;
    struct strv read_only;                  /* workspace.read_only, relative to the workspace */
    bool terminal_passthrough;              /* the relay filters nothing */
    bool terminal_allow_osc52;              /* clipboard writes reach the host terminal */
    struct resource_limits limits;          /* effective: defaults filled in */
    struct resource_limits limits_declared; /* from the bottles; LIMIT_UNSET: the default */
    struct git_user git_user;
    struct git_repo *repos;
    size_t n_repos;
    char *canary_name;
    char *label;
    char *ledger_path;
    char *project_dir;         /* ./.bottle when it holds files; NULL: none */
    const char *project_trust; /* trusted | untrusted | changed | none */
    bool project_trusted;      /* none or trusted: start may use the plan */
    char *project_trusted_at;
    struct plan_project_file *project_files;
    size_t n_project_files;
    unsigned sidecar_max_connections; /* settings sidecar.max_connections; 0: its default */
    struct strv warnings;
    char *pool; /* budget_pool: the settings.yml pool the bottle counts against; NULL: none */
    struct plan_budget *pool_budgets; /* that pool's limits from this host's settings.yml */
    size_t n_pool_budgets;
};

struct plan_budget_override {
    const char *provider;
    uint64_t tokens;
};

struct plan_options {
    const char *agent;
    const char *const *bottles; /* --bottle, in order; none: the agent's `bottle:` */
    size_t n_bottles;
    const char *label;
    const struct plan_budget_override *budgets; /* --budget */
    size_t n_budgets;
    const char *backend;           /* NULL: the platform default */
    const char *cwd;               /* workspace; NULL: the current directory */
    const char *const *extra_args; /* after `--` */
    size_t n_extra_args;
    enum enforcement_tier tier_override; /* --enforcement (opting down), TIER_UNSET if none */
    enum enforcement_tier tier_available;
    const char *tier_why;
    const char *canary_name; /* NULL: pick one at random */
    const char *image;       /* docker: the image to run (a snapshot, with --resume) */
    const char *resume;      /* --resume SLUG */
    uint64_t host_memory;    /* bytes of memory on this host (the default memory limit) */
    /* Looks a host variable up; NULL means getenv. */
    const char *(*host_getenv)(const char *name);
};

int plan_build(const struct manifest_index *idx, const struct plan_options *opts, struct plan *out,
               struct bottle_err *err);
void plan_free(struct plan *p);
cJSON *plan_to_json(const struct plan *p);
void plan_to_text(const struct plan *p, struct buf *out);
/* True when the available tier satisfies the required one. */
bool plan_tier_ok(const struct plan *p);
/* The first missing token reference or host variable, as an error (names only). */
int plan_check_host_values(const struct plan *p, struct bottle_err *err);

/* ---- provider templates (provider.c) ------------------------------------- */

struct provider_out {
    struct strv command;     /* argv before startup args, prompt args and extra args */
    struct route_set routes; /* provider-owned routes (provider = true) */
    struct plan_env *env;    /* placeholders and switches */
    size_t n_env;
    bool prompt_append_file; /* claude: --append-system-prompt-file */
    bool prompt_as_message;  /* codex: a first message pointing at the prompt file */
};

/*
 * The routes the sidecar enforces for a resolved bottle: the provider's
 * routes first, then the bottle's own (a bottle route for a provider host is
 * dropped, with a warning when warnings is given).
 */
int plan_bottle_routes(const char *provider, const struct provider_out *prov,
                       const struct bottle_def *bottle, struct route_set *routes,
                       struct strv *warnings);
/*
 * The same for a resolved bottle alone: applies its provider template and
 * assembles the routes (policy test, info, the matcher's tests).
 */
int plan_routes_for_bottle(const struct bottle_def *bottle, struct route_set *routes,
                           struct strv *warnings, struct bottle_err *err);
/* Known template names, NULL-terminated. */
extern const char *const provider_template_names[];
int provider_apply(const struct agent_provider *p, const char *bottle_file,
                   struct provider_out *out, struct bottle_err *err);
void provider_out_free(struct provider_out *out);
/* A canary variable name: two distinct words joined by '_' plus "_SECRET". */
char *canary_name_random(void);

#endif
