/*
 * config — bottle-proxy's configuration: the JSON file the runtime writes
 * from the plan, and the token values passed on an inherited descriptor.
 *
 * A loaded config is immutable and reference-counted: a reload builds a new
 * one and swaps it in, while every request in flight keeps the one it
 * started with. Token values live only in memory (never argv, never a
 * file); a route whose token_ref has no value is a config error. This
 * module never opens sockets and never logs.
 */
#ifndef BOTTLE_SIDECAR_CONFIG_H
#define BOTTLE_SIDECAR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"
#include "manifest/route.h"

/* Longest token value accepted on the token descriptor. */
#define CONFIG_TOKEN_MAX 8192

struct config_token {
    char *name;
    char *value;
};

struct config_tokens {
    struct config_token *items;
    size_t len;
};

/* Reads "NAME=VALUE\n" lines until EOF; the descriptor is closed. */
int config_tokens_read_fd(int fd, struct config_tokens *out, struct bottle_err *err);
const char *config_tokens_get(const struct config_tokens *t, const char *name);
/* Wipes the values before freeing them. */
void config_tokens_free(struct config_tokens *t);

struct config_addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

/* "host:port:addr": connections to host:port go to addr, and addr may be a blocked network. */
struct config_override {
    char *host; /* normalized */
    uint16_t port;
    struct config_addr addr;
    char *text; /* as written, for messages */
};

enum config_log { CONFIG_LOG_OFF = 0, CONFIG_LOG_REQUESTS, CONFIG_LOG_FULL };

struct config_timeouts {
    unsigned header_ms;    /* first byte of a head to its end */
    unsigned idle_ms;      /* keep-alive connection without a request */
    unsigned connect_ms;   /* upstream TCP connect */
    unsigned handshake_ms; /* either TLS handshake */
    unsigned io_ms;        /* an exchange with no byte moving either way */
    unsigned drain_ms;     /* SIGTERM: longest wait for requests in flight */
};

/* Where a budget's spending is counted (docs/budgets.md). */
enum config_budget_scope {
    CONFIG_BUDGET_RUN = 0, /* this bottle run (its slug) */
    CONFIG_BUDGET_AGENT,   /* every run of this agent */
    CONFIG_BUDGET_GLOBAL,  /* every bottle on this host */
};

/* One effective token budget, as the plan resolved it. */
struct config_budget {
    char *provider;
    uint64_t tokens;
    enum config_budget_scope scope;
    char *source; /* where it was declared, for messages */
};

struct config {
    int refs;
    char *file;
    char *listen_text;
    struct config_addr listen;
    char *control_text; /* NULL: no control listener */
    struct config_addr control;
    char *bottle;
    char *agent;  /* the agent's name; "standalone" when not given */
    char *ledger; /* SQLite ledger for metering; NULL: metered routes are refused */
    struct config_budget *budgets;
    size_t n_budgets;
    char **secrets; /* known non-token secrets (canary, placeholders) for DLP; NULL-ended */
    size_t n_secrets;
    int events_fd;     /* inherited descriptor for budget events to the runtime; -1: none */
    size_t scan_limit; /* largest request body scanned (bytes) */
    struct route_set routes;
    char **route_tokens; /* route_tokens[i]: the credential of routes.items[i], or NULL */
    char *ca_cert, *ca_key, *leaf_key, *trust_store, *extra_ca;
    struct config_override *overrides;
    size_t n_overrides;
    enum config_log log;
    struct config_timeouts timeouts;
    unsigned max_connections; /* client connections open at once; more are refused */
    /*
     * Proxy credential (`proxy_auth`): when set, every request on the proxy
     * listener must carry `Proxy-Authorization: Basic` of "user:secret", the
     * secret passed on the token descriptor. Only its SHA-256 is kept here.
     */
    bool proxy_auth;
    char *proxy_auth_user;
    unsigned char proxy_auth_digest[32];
};

/* Parses and validates FILE; every error names the file and the key. */
int config_load(const char *path, const struct config_tokens *tokens, struct config **out,
                struct bottle_err *err);
/* Same, from text already read (unit tests). */
int config_parse(const char *file, const char *text, size_t len, const struct config_tokens *tokens,
                 struct config **out, struct bottle_err *err);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

const struct config_override *config_find_override(const struct config *c, const char *host,
                                                   uint16_t port);
/* "127.0.0.1:8080" or "[::1]:8080"; port 0 lets the kernel choose. */
int config_parse_addr(const char *text, struct config_addr *out);
const char *config_log_name(enum config_log l);
const char *config_budget_scope_name(enum config_budget_scope s);
/* The effective budget for provider, or NULL. */
const struct config_budget *config_find_budget(const struct config *c, const char *provider);

/* Default for scan_limit: 8 MiB. */
#define CONFIG_SCAN_LIMIT_DEFAULT (8u << 20)
/* Default for max_connections, and the largest value accepted. */
#define CONFIG_MAX_CONNECTIONS_DEFAULT 512u
#define CONFIG_MAX_CONNECTIONS_MAX     65536u
/* The user name of the proxy credential when `proxy_auth` names none. */
#define CONFIG_PROXY_AUTH_USER "bottle"

/* Whether "user:secret" (len bytes) is the configured proxy credential; constant time. */
bool config_proxy_auth_matches(const struct config *c, const char *credential, size_t len);

#endif
