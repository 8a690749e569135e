/*
 * route — the egress route model, host normalization, and the one route
 * matcher. The CLI (`bottle policy test`), the manifest validator and the
 * sidecar all decide with policy_evaluate(); there is no second copy.
 *
 * Routes are parsed from a node tree (YAML manifest or the sidecar's JSON
 * config) and serialized back with route_to_json() in the same manifest
 * schema, every default made explicit. Token values never live here, only
 * the names of the host variables that hold them (token_ref).
 */
#ifndef BOTTLE_MANIFEST_ROUTE_H
#define BOTTLE_MANIFEST_ROUTE_H

#include <cjson/cJSON.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "manifest/node.h"

#define HOST_NAME_MAX_LEN 253

/* ---- host normalization ------------------------------------------------ */

/*
 * Normalizes a host name or IP literal: ASCII lowercase, one trailing dot
 * dropped, IDN labels converted to punycode (IDNA2008), LDH labels of 1-63
 * characters, 253 at most. IPv4 literals stay dotted-quad; IPv6 literals may
 * come bracketed or bare and are returned bare in canonical compressed form.
 * Anything else is an error. *out is allocated.
 */
int host_normalize(const char *in, char **out, bool *is_ip, struct bottle_err *err);

/*
 * Parses "host", "host:port", "[v6]" or "[v6]:port" and normalizes the host.
 * *port is 0 when no port was given.
 */
int host_port_parse(const char *in, char **host, uint16_t *port, bool *is_ip,
                    struct bottle_err *err);

/* ---- route model ------------------------------------------------------- */

enum match_type { MATCH_PREFIX = 0, MATCH_EXACT, MATCH_REGEX };

struct route_path_match {
    enum match_type type; /* prefix (default), exact, regex */
    char *value;
    regex_t *re; /* compiled (POSIX ERE, anchored to the whole path) when MATCH_REGEX */
};

struct route_header_match {
    char *name; /* compared case-insensitively */
    char *value;
    enum match_type type; /* exact (default) or regex */
    regex_t *re;          /* anchored to the whole value */
};

/* One `matches` entry: every given filter must hold (paths: any; methods: any; headers: all). */
struct route_match {
    struct route_path_match *paths;
    size_t n_paths;
    char **methods; /* upper-case */
    size_t n_methods;
    struct route_header_match *headers;
    size_t n_headers;
};

enum auth_kind { AUTH_NONE = 0, AUTH_SCHEME, AUTH_HEADER };

struct route_auth {
    enum auth_kind kind;
    char *scheme;    /* AUTH_SCHEME: "Bearer" or "token" -> "Authorization: <scheme> <token>" */
    char *header;    /* AUTH_HEADER: "<header>: <token>" */
    char *token_ref; /* name of the host environment variable that holds the token */
};

enum dlp_policy { DLP_POLICY_SUPERVISE = 0, DLP_POLICY_REDACT, DLP_POLICY_BLOCK };

#define DLP_OUT_TOKEN_PATTERNS 0x1u
#define DLP_OUT_KNOWN_SECRETS  0x2u
#define DLP_OUT_ENTROPY        0x4u
#define DLP_OUT_DEFAULT        (DLP_OUT_TOKEN_PATTERNS | DLP_OUT_KNOWN_SECRETS)
#define DLP_IN_NAIVE_INJECTION 0x1u
#define DLP_IN_DEFAULT         DLP_IN_NAIVE_INJECTION

struct route_dlp {
    unsigned outbound; /* DLP_OUT_* bits; 0 = outbound scanning off */
    unsigned inbound;  /* DLP_IN_* bits; 0 = inbound scanning off */
    enum dlp_policy on_match;
    bool inbound_block; /* inbound_on_match: block (else warn) */
};

struct route {
    char *host;    /* normalized */
    uint16_t port; /* 0: the scheme's default port (443 for TLS, 80 for plain HTTP) */
    bool host_is_ip;
    struct route_auth auth;
    struct route_match *matches; /* none: every request to the host passes this step */
    size_t n_matches;
    struct route_dlp dlp;
    bool git_fetch; /* smart-HTTP clone/fetch (git-upload-pack) allowed */
    char *metered;  /* budget key (provider name) or NULL */
    bool provider;  /* added by a provider template */
    char *file;     /* where it was declared (for messages), may be NULL */
    unsigned line, col;
};

struct route_set {
    struct route *items;
    size_t len;
};

/*
 * Parses one route mapping. Accepted keys: host, auth {scheme|header,
 * token_ref}, matches, dlp {outbound_detectors, inbound_detectors,
 * outbound_on_match, inbound_on_match}, git {fetch}, metered, and `provider` (only when
 * allow_internal is set: the sidecar config, never a manifest).
 * provider_default_on_match applies when outbound_on_match is not given.
 */
int route_parse(const struct node *n, bool allow_internal, enum dlp_policy default_on_match,
                struct route *out, struct bottle_err *err);
/*
 * Same, with messages naming the route as `what` (e.g. "egress.routes[2]"):
 * "egress.routes[2].auth: 'token_ref' is required when 'auth' is set".
 * route_parse() words them relative to the route ("auth: ...", and "route"
 * for the route itself). Either way they come through node_error, so they
 * start with "manifest: FILE:LINE:COL: ".
 */
int route_parse_at(const struct node *n, const char *what, bool allow_internal,
                   enum dlp_policy default_on_match, struct route *out, struct bottle_err *err);
void route_free(struct route *r);
/* Deep copy (regexes recompiled). */
void route_copy(struct route *dst, const struct route *src);

/* Manifest-schema JSON with every default explicit; include_internal adds `provider`. */
cJSON *route_to_json(const struct route *r, bool include_internal);

void route_set_push(struct route_set *set, struct route *r); /* takes ownership of *r's contents */
void route_set_free(struct route_set *set);
/*
 * Finds the route for a normalized host and a port. A non-zero port finds the
 * route naming that port, else a route without a port when the port is 80 or
 * 443. Port 0 finds only the route declared without a port. policy_evaluate()
 * is stricter: a route without a port serves only the request scheme's
 * default port.
 */
const struct route *route_set_find(const struct route_set *set, const char *host, uint16_t port);

const char *dlp_policy_name(enum dlp_policy p);

/* ---- the decision ------------------------------------------------------ */

struct policy_header {
    const char *name;
    const char *value;
};

struct policy_request {
    const char *method; /* e.g. "GET" */
    bool tls;           /* request arrived through a CONNECT tunnel / https URL */
    const char *host;   /* as the client named it (CONNECT host, URL host); not yet normalized */
    uint16_t port;      /* 0: default for the scheme */
    const char *target; /* origin-form path with query, e.g. "/a/b?x=1"; NULL for a
                           CONNECT, which is decided on host and port alone */
    const struct policy_header *headers;
    size_t n_headers;
};

/* Stable reason codes (docs/sidecar.md). */
#define REASON_ALLOWED               "allowed"
#define REASON_INVALID_HOST          "invalid_host"
#define REASON_HOST_NOT_ALLOWED      "host_not_allowed"
#define REASON_GIT_PUSH_BLOCKED      "git_push_blocked"
#define REASON_GIT_FETCH_NOT_ALLOWED "git_fetch_not_allowed"
#define REASON_NO_MATCHING_RULE      "no_matching_rule"
#define REASON_AUTH_REQUIRES_TLS     "auth_requires_tls"

struct policy_result {
    bool allowed;
    int status;                /* 200 when allowed, else the HTTP status to answer */
    const char *reason;        /* one of REASON_* */
    char message[256];         /* human sentence */
    const struct route *route; /* the route that matched the host, if any */
    char *host;                /* normalized host (allocated; free with policy_result_free) */
};

/*
 * Host normalization -> route by host and port -> git smart-HTTP rules ->
 * matches. Returns 0 (allowed or refused: see res->allowed) or a negative
 * value only on internal error.
 */
int policy_evaluate(const struct route_set *routes, const struct policy_request *req,
                    struct policy_result *res);
void policy_result_free(struct policy_result *res);

/*
 * The form path rules are compared against: escapes of unreserved characters
 * decoded, other escapes upper-cased. NULL (with *why set) for a path the
 * upstream might resolve differently (dot-segments, encoded '/' or '\',
 * malformed escapes, control characters), which no path rule matches.
 */
char *route_path_canonical(const char *path, size_t len, const char **why);

#endif
