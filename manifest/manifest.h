/*
 * manifest — agents, bottles and host settings: loading, validation,
 * `extends` resolution, provider templates, and the resolved plan.
 *
 * Files are Markdown with YAML frontmatter, found under $BOTTLE_HOME and
 * ./.bottle/ (docs/manifest.md). Loading is strict and reports
 * "manifest: file:line:col: message". This module decides what a bottle is;
 * it never touches the host (no cgroups, no sockets, no processes).
 */
#ifndef BOTTLE_MANIFEST_MANIFEST_H
#define BOTTLE_MANIFEST_MANIFEST_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/node.h"
#include "manifest/route.h"

/* ---- shared enums ------------------------------------------------------ */

enum shutdown_policy { SHUTDOWN_UNSET = 0, SHUTDOWN_CUTOFF, SHUTDOWN_FREEZE, SHUTDOWN_KILL };

/* Ordered: a higher tier enforces strictly more. */
enum enforcement_tier {
    TIER_UNSET = 0,
    TIER_PROXY_ONLY,
    TIER_UNPRIVILEGED,
    TIER_NETNS,
    TIER_KERNEL,
};

const char *shutdown_policy_name(enum shutdown_policy p);
int shutdown_policy_parse(const char *s, enum shutdown_policy *out);
const char *enforcement_tier_name(enum enforcement_tier t);
int enforcement_tier_parse(const char *s, enum enforcement_tier *out);

enum egress_log_level {
    EGRESS_LOG_UNSET = 0,
    EGRESS_LOG_OFF,
    EGRESS_LOG_REQUESTS,
    EGRESS_LOG_FULL
};
const char *egress_log_name(enum egress_log_level l);

/* ---- resource limits (limits.c) ------------------------------------------- */

/* A field at LIMIT_UNSET was not declared (a default applies); LIMIT_NONE is `max`. */
#define LIMIT_UNSET 0
#define LIMIT_NONE  UINT64_MAX

#define LIMITS_DEFAULT_PIDS       4096
#define LIMITS_DEFAULT_MEMORY_CAP (8ull << 30) /* half of the host's memory, at most this */
#define LIMITS_DEFAULT_TMPFS      (1ull << 30)

/* What the agent may use; the sidecar is never limited by these. */
struct resource_limits {
    uint64_t pids;      /* processes and threads */
    uint64_t memory;    /* bytes; the agent gets no swap */
    uint64_t cpu_milli; /* thousandths of a CPU */
    uint64_t tmpfs;     /* bytes, for each of /tmp, /dev/shm and a tmpfs home; never LIMIT_NONE */
};

/* Validates a `limits:` mapping into out (undeclared keys stay LIMIT_UNSET). */
int limits_parse(const struct node *n, struct resource_limits *out, struct bottle_err *err);
/* Declared fields of later replace those of acc. */
void limits_fold(struct resource_limits *acc, const struct resource_limits *later);
/* Declared values, defaults for the rest (memory: half of host_memory, capped). */
void limits_effective(const struct resource_limits *declared, uint64_t host_memory,
                      struct resource_limits *out);
/* "512M", "8G", "1000000" (bytes when no binary unit divides), "max". */
void limits_format_bytes(uint64_t bytes, char *out, size_t len);
/* "0.5", "2", "max". */
void limits_format_cpus(uint64_t milli, char *out, size_t len);

/* ---- parsed files -------------------------------------------------------- */

struct env_entry {
    char *name;
    char *value;        /* literal value, or the host variable's name when from_host */
    bool from_host;     /* declared as "$HOST_VAR": copied from the host at start */
    unsigned line, col; /* where the value was declared (0 when not from a file) */
};

struct budget_entry {
    char *provider; /* budget key, e.g. "claude" */
    uint64_t tokens;
    char *origin; /* name of the agent/bottle/file that declared it */
    char *period; /* "day", "month", "total"; NULL when not declared */
};

/* A named pool in settings.yml: bottles that name it share its limits, on every host. */
struct settings_pool {
    char *name;
    struct budget_entry *budgets;
    size_t n_budgets;
};

struct git_user {
    char *name;
    char *email;
};

struct git_repo {
    char *name;
    char *url;          /* NULL when not declared (field-merge) */
    char *key_provider; /* key.provider */
    char *key_path;     /* key.path */
};

struct agent_provider {
    char *template_name;                      /* claude | codex | generic; NULL when not declared */
    struct strv command;                      /* generic: the command to run */
    char *auth_token;                         /* host variable holding the provider credential */
    unsigned auth_token_line, auth_token_col; /* where auth_token was declared */
    char *dockerfile;
    unsigned dockerfile_line, dockerfile_col;
    struct strv startup_args;
};

struct bottle_def {
    char *name;
    char *file;
    struct strv extends;
    unsigned extends_line, extends_col; /* where `extends` was declared (0 when absent) */
    struct env_entry *env;
    size_t n_env;
    bool provider_declared;
    struct agent_provider provider;
    struct git_user git_user;
    bool repos_declared;
    struct git_repo *repos;
    size_t n_repos;
    struct route_set routes;
    enum egress_log_level egress_log;
    bool supervise_declared;
    bool supervise;
    struct budget_entry *budgets;
    size_t n_budgets;
    enum shutdown_policy shutdown;
    enum enforcement_tier enforcement;
    struct strv seccomp;   /* extra denied syscalls */
    struct strv read_only; /* workspace.read_only: paths relative to the workspace */
    /* terminal: what of the agent's output the relay lets through to a host terminal */
    bool terminal_passthrough_declared, terminal_passthrough;
    bool terminal_allow_osc52_declared, terminal_allow_osc52;
    struct resource_limits limits;
    char *body;
    char *budget_pool; /* settings.yml pool this bottle's spending also counts against */
};

struct agent_def {
    char *name;
    char *file;
    char *bottle; /* NULL when the agent is portable */
    struct strv skills;
    struct git_user git_user;
    struct budget_entry *budgets;
    size_t n_budgets;
    char *prompt; /* the Markdown body, trimmed */
};

struct settings {
    char *file; /* NULL when there is no settings.yml */
    struct budget_entry *budgets;
    size_t n_budgets;
    enum shutdown_policy shutdown;
    enum enforcement_tier enforcement;
    char *ledger_path;
    struct settings_pool *pools;
    size_t n_pools;
    unsigned sidecar_max_connections; /* sidecar.max_connections; 0: the sidecar's default */
};

/* The largest sidecar.max_connections a settings file may ask for. */
#define SETTINGS_MAX_CONNECTIONS_MAX 65536

/* Parse one file's text (tests call these directly). name is the file stem. */
int agent_parse(const char *file, const char *name, const char *text, size_t len,
                struct agent_def *out, struct bottle_err *err);
int bottle_parse(const char *file, const char *name, const char *text, size_t len,
                 struct bottle_def *out, struct bottle_err *err);
int settings_parse(const char *file, const char *text, size_t len, struct settings *out,
                   struct bottle_err *err);
void agent_def_free(struct agent_def *a);
void bottle_def_free(struct bottle_def *b);
void settings_free(struct settings *s);
void bottle_def_copy(struct bottle_def *dst, const struct bottle_def *src);

/* Valid entity name: ^[a-z][a-z0-9-]*$ (also the file stem). */
bool manifest_name_valid(const char *name);

/* ---- the index: where manifests live ------------------------------------ */

struct project_files;
struct trust_report;
struct credential_uses;

/*
 * A project's files (project_dir) are read once, when the index opens, and
 * every load takes them from that copy: what trust_evaluate checked is what
 * is parsed (manifest/trust.h). Project bottles always pass the project
 * rules (project_bottle_check), whatever their trust state.
 */
struct manifest_index {
    char *home_dir;                      /* $BOTTLE_HOME (default ~/.bottle) */
    char *project_dir;                   /* ./.bottle, when it exists */
    struct project_files *project;       /* its files; NULL without project_dir */
    struct trust_report *trust;          /* whether the user trusts them; NULL likewise */
    struct credential_uses *credentials; /* where the user's own files send credentials */
};

int manifest_index_open(struct manifest_index *idx, const char *bottle_home, const char *cwd,
                        struct bottle_err *err);
void manifest_index_free(struct manifest_index *idx);
/* Sorted names found on disk; content is not read (a broken file still lists). */
void manifest_index_agents(const struct manifest_index *idx, struct strv *out);
void manifest_index_bottles(const struct manifest_index *idx, struct strv *out);
/* Path of the file that defines the name (project dir wins for agents and bottles), or NULL. */
char *manifest_index_agent_path(const struct manifest_index *idx, const char *name);
char *manifest_index_bottle_path(const struct manifest_index *idx, const char *name);
int manifest_index_load_agent(const struct manifest_index *idx, const char *name,
                              struct agent_def *out, struct bottle_err *err);
int manifest_index_load_bottle(const struct manifest_index *idx, const char *name,
                               struct bottle_def *out, struct bottle_err *err);
/* settings.yml from $BOTTLE_HOME only; a missing file gives empty settings. */
int manifest_index_load_settings(const struct manifest_index *idx, struct settings *out,
                                 struct bottle_err *err);

/* ---- resolution ---------------------------------------------------------- */

/*
 * Resolves one bottle through its extends graph (parents folded left to
 * right, then the child on top). lineage receives every bottle involved,
 * root first, each once.
 */
int bottle_resolve(const struct manifest_index *idx, const char *name, struct bottle_def *out,
                   struct strv *lineage, struct bottle_err *err);
/*
 * Resolves each named bottle and folds them in order (later wins): the
 * `bottle start --bottle a --bottle b` selection. Duplicate route hosts across
 * the selection are an error.
 */
int bottle_resolve_many(const struct manifest_index *idx, const char *const *names, size_t n,
                        struct bottle_def *out, struct strv *lineage, struct bottle_err *err);
/* Folds `later` into `acc` with the parent-fold rules. */
void bottle_fold(struct bottle_def *acc, const struct bottle_def *later);
/* Merges budget entries by provider, later wins (origin kept with the value). */
void budget_merge(struct budget_entry **items, size_t *n, const struct budget_entry *src,
                  size_t n_src);

#endif
