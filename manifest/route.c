/*
 * The route model: parsing one route from a node tree, serializing it back
 * in the manifest schema, copying and freeing it.
 *
 * Parsing is strict: a key that is not part of the schema, a rule that could
 * never match, or a regex that does not compile is an error that names the
 * place, never something silently ignored. Token values are never seen
 * here, only the names of the host variables that hold them.
 */
#include "manifest/route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/json.h"

/* The sidecar's own introspection host; no route may claim it. */
#define ROUTE_RESERVED_HOST "_bottle.local"

struct detector_name {
    const char *name;
    unsigned bit;
};

static const struct detector_name outbound_detectors[] = {
    {"token_patterns", DLP_OUT_TOKEN_PATTERNS},
    {"known_secrets", DLP_OUT_KNOWN_SECRETS},
    {"entropy", DLP_OUT_ENTROPY},
    {NULL, 0},
};

static const struct detector_name inbound_detectors[] = {
    {"naive_injection_detection", DLP_IN_NAIVE_INJECTION},
    {NULL, 0},
};

/* Headers that decide framing or routing; a credential may not be injected as one. */
static const char *const forbidden_auth_headers[] = {
    "host",    "content-length", "transfer-encoding", "connection", "upgrade", "te",
    "trailer", "keep-alive",     "proxy-connection",  "expect",     NULL,
};

const char *dlp_policy_name(enum dlp_policy p)
{
    switch (p) {
    case DLP_POLICY_SUPERVISE:
        return "supervise";
    case DLP_POLICY_REDACT:
        return "redact";
    case DLP_POLICY_BLOCK:
        return "block";
    }
    return "supervise";
}

/* ---- small validators ------------------------------------------------------ */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* An RFC 9110 token: header names and methods. */
static bool is_http_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_tchar(*s))
            return false;
    return true;
}

static bool is_env_name(const char *s)
{
    if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return false;
    return true;
}

static bool is_budget_key(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return false;
    return true;
}

/* Label of a child for messages: "key" at the top of an unlabeled route, else "base.key". */
static char *child_what(const char *base, const char *key)
{
    return base ? xasprintf("%s.%s", base, key) : xstrdup(key);
}

static char *item_what(const char *base, size_t i)
{
    return xasprintf("%s[%zu]", base, i);
}

/* A present, non-null value; null stands for "the default" (as route_to_json writes it). */
static const struct node *optional_value(const struct node *map, const char *key)
{
    const struct node *v = node_map_get(map, key);
    return v && v->kind != NODE_NULL ? v : NULL;
}

/* Any scalar as text: header values such as `2` or `true` are strings on the wire. */
static int scalar_text(const struct node *n, const char *what, char **out, struct bottle_err *err)
{
    *out = NULL;
    if (!n || n->kind != NODE_SCALAR || n->scalar[0] == '\0')
        return node_error(err, n ? &n->pos : NULL, "%s: expected a non-empty string", what);
    *out = xstrdup(n->scalar);
    return 0;
}

/* The pattern anchored to the whole value; NULL if it does not compile. */
static regex_t *regex_anchored(const char *pattern)
{
    char *anchored = xasprintf("^(%s)$", pattern);
    regex_t *re = xmalloc(sizeof(*re));
    if (regcomp(re, anchored, REG_EXTENDED | REG_NOSUB) != 0) {
        free(re);
        re = NULL;
    }
    free(anchored);
    return re;
}

/* Compiles the pattern as written first, so a mistake is reported in the author's own terms. */
static int regex_compile(const char *pattern, const struct node *at, const char *what,
                         regex_t **out, struct bottle_err *err)
{
    regex_t probe;
    int rc = regcomp(&probe, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &probe, why, sizeof(why));
        return node_error(err, &at->pos, "%s: regex '%s' does not compile: %s", what, pattern, why);
    }
    regfree(&probe);
    *out = regex_anchored(pattern);
    if (!*out)
        return node_error(err, &at->pos, "%s: regex '%s' cannot be anchored to the whole value",
                          what, pattern);
    return 0;
}

static void regex_free(regex_t *re)
{
    if (re) {
        regfree(re);
        free(re);
    }
}

static int match_type_parse(const struct node *map, const char *base, bool allow_prefix,
                            enum match_type *out, struct bottle_err *err)
{
    const struct node *v = optional_value(map, "type");
    *out = allow_prefix ? MATCH_PREFIX : MATCH_EXACT;
    if (!v)
        return 0;
    char *what = child_what(base, "type");
    char *s = NULL;
    int rc = node_get_string(v, what, false, &s, err);
    if (rc == 0) {
        if (allow_prefix && strcmp(s, "prefix") == 0)
            *out = MATCH_PREFIX;
        else if (strcmp(s, "exact") == 0)
            *out = MATCH_EXACT;
        else if (strcmp(s, "regex") == 0)
            *out = MATCH_REGEX;
        else
            rc = node_error(err, &v->pos, "%s: must be %s, found '%s'", what,
                            allow_prefix ? "prefix, exact or regex" : "exact or regex", s);
    }
    free(s);
    free(what);
    return rc;
}

static const char *match_type_name(enum match_type t)
{
    switch (t) {
    case MATCH_EXACT:
        return "exact";
    case MATCH_REGEX:
        return "regex";
    case MATCH_PREFIX:
        break;
    }
    return "prefix";
}

/* ---- matches ---------------------------------------------------------------- */

static int path_value_check(const struct node *v, const char *what, const char *value,
                            struct bottle_err *err)
{
    if (value[0] != '/')
        return node_error(err, &v->pos, "%s: '%s' must start with '/'", what, value);
    if (strpbrk(value, "?#"))
        return node_error(err, &v->pos,
                          "%s: '%s' must not contain '?' or '#' (paths are matched without "
                          "the query)",
                          what, value);
    const char *why = NULL;
    char *canonical = route_path_canonical(value, strlen(value), &why);
    if (!canonical)
        return node_error(err, &v->pos, "%s: '%s' can never match: it contains %s", what, value,
                          why);
    int rc = 0;
    if (strcmp(canonical, value) != 0)
        rc = node_error(err, &v->pos, "%s: write '%s' as '%s' (requests are compared in that form)",
                        what, value, canonical);
    free(canonical);
    return rc;
}

static int path_parse(const struct node *n, const char *what, struct route_path_match *out,
                      struct bottle_err *err)
{
    static const char *const keys[] = {"type", "value", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    if (rc == 0)
        rc = match_type_parse(n, what, true, &out->type, err);
    if (rc < 0)
        return rc;
    const struct node *v = optional_value(n, "value");
    if (!v)
        return node_error(err, &n->pos, "%s: 'value' is required", what);
    char *vwhat = child_what(what, "value");
    rc = node_get_string(v, vwhat, false, &out->value, err);
    if (rc == 0 && out->type == MATCH_REGEX)
        rc = regex_compile(out->value, v, vwhat, &out->re, err);
    else if (rc == 0)
        rc = path_value_check(v, vwhat, out->value, err);
    free(vwhat);
    return rc;
}

static int header_parse(const struct node *n, const char *what, struct route_header_match *out,
                        struct bottle_err *err)
{
    static const char *const keys[] = {"name", "value", "type", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    if (rc == 0)
        rc = match_type_parse(n, what, false, &out->type, err);
    if (rc < 0)
        return rc;
    const struct node *name = optional_value(n, "name");
    const struct node *value = optional_value(n, "value");
    if (!name)
        return node_error(err, &n->pos, "%s: 'name' is required", what);
    if (!value)
        return node_error(err, &n->pos, "%s: 'value' is required", what);
    char *nwhat = child_what(what, "name");
    char *vwhat = child_what(what, "value");
    rc = node_get_string(name, nwhat, false, &out->name, err);
    if (rc == 0 && !is_http_token(out->name))
        rc = node_error(err, &name->pos, "%s: '%s' is not a valid header name", nwhat, out->name);
    if (rc == 0)
        rc = scalar_text(value, vwhat, &out->value, err);
    if (rc == 0 && out->type == MATCH_REGEX)
        rc = regex_compile(out->value, value, vwhat, &out->re, err);
    free(nwhat);
    free(vwhat);
    return rc;
}

static int nonempty_seq(const struct node *n, const char *what, struct bottle_err *err)
{
    int rc = node_want_seq(n, what, err);
    if (rc == 0 && n->n_items == 0)
        rc = node_error(err, &n->pos, "%s: must not be empty (leave the key out instead)", what);
    return rc;
}

static int match_entry_parse(const struct node *n, const char *what, struct route_match *m,
                             struct bottle_err *err)
{
    static const char *const keys[] = {"paths", "methods", "headers", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    if (rc < 0)
        return rc;
    if (n->n_pairs == 0)
        return node_error(err, &n->pos,
                          "%s: an empty entry would match every request; give it paths, "
                          "methods or headers",
                          what);

    const struct node *paths = node_map_get(n, "paths");
    if (paths) {
        char *pwhat = child_what(what, "paths");
        rc = nonempty_seq(paths, pwhat, err);
        if (rc == 0) {
            m->paths = xcalloc(paths->n_items, sizeof(*m->paths));
            for (size_t i = 0; i < paths->n_items && rc == 0; i++) {
                char *iw = item_what(pwhat, i);
                m->n_paths = i + 1;
                rc = path_parse(paths->items[i], iw, &m->paths[i], err);
                free(iw);
            }
        }
        free(pwhat);
        if (rc < 0)
            return rc;
    }

    const struct node *methods = node_map_get(n, "methods");
    if (methods) {
        char *mwhat = child_what(what, "methods");
        rc = nonempty_seq(methods, mwhat, err);
        if (rc == 0)
            rc = node_get_string_list(methods, mwhat, &m->methods, &m->n_methods, err);
        for (size_t i = 0; rc >= 0 && i < m->n_methods; i++) {
            if (!is_http_token(m->methods[i])) {
                char *iw = item_what(mwhat, i);
                rc = node_error(err, &methods->items[i]->pos, "%s: '%s' is not an HTTP method", iw,
                                m->methods[i]);
                free(iw);
                break;
            }
            for (char *c = m->methods[i]; *c; c++)
                if (*c >= 'a' && *c <= 'z')
                    *c = (char)(*c - 'a' + 'A');
        }
        free(mwhat);
        if (rc < 0)
            return rc;
    }

    const struct node *headers = node_map_get(n, "headers");
    if (headers) {
        char *hwhat = child_what(what, "headers");
        rc = nonempty_seq(headers, hwhat, err);
        if (rc == 0) {
            m->headers = xcalloc(headers->n_items, sizeof(*m->headers));
            for (size_t i = 0; i < headers->n_items && rc == 0; i++) {
                char *iw = item_what(hwhat, i);
                m->n_headers = i + 1;
                rc = header_parse(headers->items[i], iw, &m->headers[i], err);
                free(iw);
            }
        }
        free(hwhat);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int matches_parse(const struct node *n, const char *what, struct route *r,
                         struct bottle_err *err)
{
    int rc = node_want_seq(n, what, err);
    if (rc < 0)
        return rc;
    if (n->n_items == 0)
        return 0;
    r->matches = xcalloc(n->n_items, sizeof(*r->matches));
    for (size_t i = 0; i < n->n_items && rc == 0; i++) {
        char *iw = item_what(what, i);
        r->n_matches = i + 1;
        rc = match_entry_parse(n->items[i], iw, &r->matches[i], err);
        free(iw);
    }
    return rc;
}

/* ---- auth, dlp, git ---------------------------------------------------------- */

static int auth_parse(const struct node *n, const char *what, struct route_auth *a,
                      struct bottle_err *err)
{
    static const char *const keys[] = {"scheme", "header", "token_ref", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    if (rc < 0)
        return rc;
    const struct node *scheme = optional_value(n, "scheme");
    const struct node *header = optional_value(n, "header");
    const struct node *token_ref = optional_value(n, "token_ref");
    if (scheme && header)
        return node_error(err, &n->pos, "%s: set either 'scheme' or 'header', not both", what);
    if (!scheme && !header)
        return node_error(err, &n->pos,
                          "%s: one of 'scheme' (Bearer or token) or 'header' is required", what);
    if (!token_ref)
        return node_error(err, &n->pos, "%s: 'token_ref' is required when 'auth' is set", what);

    char *sub = child_what(what, scheme ? "scheme" : "header");
    if (scheme) {
        a->kind = AUTH_SCHEME;
        rc = node_get_string(scheme, sub, false, &a->scheme, err);
        if (rc == 0 && strcmp(a->scheme, "Bearer") != 0 && strcmp(a->scheme, "token") != 0)
            rc = node_error(err, &scheme->pos, "%s: must be Bearer or token, found '%s'", sub,
                            a->scheme);
    } else {
        a->kind = AUTH_HEADER;
        rc = node_get_string(header, sub, false, &a->header, err);
        if (rc == 0 && !is_http_token(a->header))
            rc = node_error(err, &header->pos, "%s: '%s' is not a valid header name", sub,
                            a->header);
        for (size_t i = 0; rc == 0 && forbidden_auth_headers[i]; i++)
            if (strcasecmp(a->header, forbidden_auth_headers[i]) == 0)
                rc = node_error(err, &header->pos,
                                "%s: '%s' cannot carry a credential (it controls message "
                                "framing or routing)",
                                sub, a->header);
    }
    free(sub);
    if (rc < 0)
        return rc;

    sub = child_what(what, "token_ref");
    rc = node_get_string(token_ref, sub, false, &a->token_ref, err);
    if (rc == 0 && !is_env_name(a->token_ref))
        rc = node_error(err, &token_ref->pos,
                        "%s: '%s' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                        sub, a->token_ref);
    free(sub);
    return rc;
}

static int detectors_parse(const struct node *n, const char *what,
                           const struct detector_name *names, unsigned *out, struct bottle_err *err)
{
    if (n->kind == NODE_SCALAR && n->plain && strcmp(n->scalar, "false") == 0) {
        *out = 0;
        return 0;
    }
    struct buf valid = BUF_INIT;
    for (size_t k = 0; names[k].name; k++)
        buf_printf(&valid, "%s%s", k ? ", " : "", names[k].name);
    int rc = 0;
    if (n->kind != NODE_SEQ || n->n_items == 0)
        rc = node_error(err, &n->pos, "%s: must be false or a non-empty list of: %s", what,
                        valid.data);
    unsigned bits = 0;
    for (size_t i = 0; rc == 0 && i < n->n_items; i++) {
        char *iw = item_what(what, i);
        char *s = NULL;
        rc = node_get_string(n->items[i], iw, false, &s, err);
        unsigned bit = 0;
        for (size_t k = 0; rc == 0 && names[k].name; k++)
            if (strcmp(names[k].name, s) == 0)
                bit = names[k].bit;
        if (rc == 0 && bit == 0)
            rc = node_error(err, &n->items[i]->pos,
                            "%s: '%s' is not a detector name; valid names: %s", iw, s, valid.data);
        else if (rc == 0 && (bits & bit))
            rc = node_error(err, &n->items[i]->pos, "%s: '%s' is listed twice", iw, s);
        bits |= bit;
        free(s);
        free(iw);
    }
    buf_free(&valid);
    if (rc == 0)
        *out = bits;
    return rc;
}

static int dlp_parse(const struct node *n, const char *what, struct route_dlp *d,
                     struct bottle_err *err)
{
    static const char *const keys[] = {"outbound_detectors", "inbound_detectors",
                                       "outbound_on_match", "inbound_on_match", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    const struct node *v;
    if (rc == 0 && (v = optional_value(n, "outbound_detectors"))) {
        char *sub = child_what(what, "outbound_detectors");
        rc = detectors_parse(v, sub, outbound_detectors, &d->outbound, err);
        free(sub);
    }
    if (rc == 0 && (v = optional_value(n, "inbound_detectors"))) {
        char *sub = child_what(what, "inbound_detectors");
        rc = detectors_parse(v, sub, inbound_detectors, &d->inbound, err);
        free(sub);
    }
    if (rc == 0 && (v = optional_value(n, "outbound_on_match"))) {
        char *sub = child_what(what, "outbound_on_match");
        char *s = NULL;
        rc = node_get_string(v, sub, false, &s, err);
        if (rc == 0 && strcmp(s, "block") == 0)
            d->on_match = DLP_POLICY_BLOCK;
        else if (rc == 0 && strcmp(s, "redact") == 0)
            d->on_match = DLP_POLICY_REDACT;
        else if (rc == 0 && strcmp(s, "supervise") == 0)
            d->on_match = DLP_POLICY_SUPERVISE;
        else if (rc == 0)
            rc = node_error(err, &v->pos, "%s: must be block, redact or supervise, found '%s'", sub,
                            s);
        free(s);
        free(sub);
    }
    if (rc == 0 && (v = optional_value(n, "inbound_on_match"))) {
        char *sub = child_what(what, "inbound_on_match");
        char *s = NULL;
        rc = node_get_string(v, sub, false, &s, err);
        if (rc == 0 && (strcmp(s, "warn") == 0 || strcmp(s, "block") == 0))
            d->inbound_block = strcmp(s, "block") == 0;
        else if (rc == 0)
            rc = node_error(err, &v->pos, "%s: must be warn or block, found '%s'", sub, s);
        free(s);
        free(sub);
    }
    return rc;
}

static int git_parse(const struct node *n, const char *what, bool *fetch, struct bottle_err *err)
{
    static const char *const keys[] = {"fetch", NULL};
    int rc = node_want_map(n, what, err);
    if (rc == 0)
        rc = node_check_keys(n, what, keys, err);
    const struct node *v;
    if (rc == 0 && (v = optional_value(n, "fetch"))) {
        char *sub = child_what(what, "fetch");
        rc = node_get_bool(v, sub, fetch, err);
        free(sub);
    }
    return rc;
}

/* ---- the route ---------------------------------------------------------------- */

static int host_parse(const struct node *n, const char *what, struct route *r,
                      struct bottle_err *err)
{
    char *text = NULL;
    int rc = node_get_string(n, what, false, &text, err);
    if (rc < 0)
        return rc;
    struct bottle_err herr = {0};
    rc = host_port_parse(text, &r->host, &r->port, &r->host_is_ip, &herr);
    free(text);
    if (rc < 0)
        return node_error(err, &n->pos, "%s: %s", what, herr.msg);
    if (strcmp(r->host, ROUTE_RESERVED_HOST) == 0)
        return node_error(err, &n->pos, "%s: '%s' is reserved for the sidecar's own endpoint", what,
                          ROUTE_RESERVED_HOST);
    return 0;
}

int route_parse_at(const struct node *n, const char *what, bool allow_internal,
                   enum dlp_policy default_on_match, struct route *out, struct bottle_err *err)
{
    static const char *const keys[] = {"host", "auth", "matches", "dlp", "git", "metered", NULL};
    static const char *const internal_keys[] = {"host", "auth",    "matches",  "dlp",
                                                "git",  "metered", "provider", NULL};
    const char *self = what ? what : "route";
    memset(out, 0, sizeof(*out));
    out->dlp.outbound = DLP_OUT_DEFAULT;
    out->dlp.inbound = DLP_IN_DEFAULT;
    out->dlp.on_match = default_on_match;

    int rc = node_want_map(n, self, err);
    if (rc == 0)
        rc = node_check_keys(n, self, allow_internal ? internal_keys : keys, err);
    if (rc < 0)
        return rc;
    if (n->pos.file)
        out->file = xstrdup(n->pos.file);
    out->line = n->pos.line;
    out->col = n->pos.col;

    const struct node *v = optional_value(n, "host");
    char *sub = child_what(what, "host");
    if (!v)
        rc = node_error(err, &n->pos, "%s: 'host' is required", self);
    else
        rc = host_parse(v, sub, out, err);
    free(sub);

    static const char *const blocks[] = {"auth",    "matches",  "dlp", "git",
                                         "metered", "provider", NULL};
    for (size_t i = 0; rc == 0 && blocks[i]; i++) {
        if (!(v = optional_value(n, blocks[i])))
            continue;
        sub = child_what(what, blocks[i]);
        switch (i) {
        case 0:
            rc = auth_parse(v, sub, &out->auth, err);
            break;
        case 1:
            rc = matches_parse(v, sub, out, err);
            break;
        case 2:
            rc = dlp_parse(v, sub, &out->dlp, err);
            break;
        case 3:
            rc = git_parse(v, sub, &out->git_fetch, err);
            break;
        case 4:
            rc = node_get_string(v, sub, false, &out->metered, err);
            if (rc == 0 && !is_budget_key(out->metered))
                rc = node_error(err, &v->pos,
                                "%s: '%s' is not a budget key (lowercase letters, digits and "
                                "'-', starting with a letter)",
                                sub, out->metered);
            break;
        default:
            rc = node_get_bool(v, sub, &out->provider, err);
            break;
        }
        free(sub);
    }
    if (rc < 0)
        route_free(out);
    return rc;
}

int route_parse(const struct node *n, bool allow_internal, enum dlp_policy default_on_match,
                struct route *out, struct bottle_err *err)
{
    return route_parse_at(n, NULL, allow_internal, default_on_match, out, err);
}

/* ---- ownership ------------------------------------------------------------------ */

static void match_free(struct route_match *m)
{
    for (size_t i = 0; i < m->n_paths; i++) {
        free(m->paths[i].value);
        regex_free(m->paths[i].re);
    }
    free(m->paths);
    for (size_t i = 0; i < m->n_methods; i++)
        free(m->methods[i]);
    free(m->methods);
    for (size_t i = 0; i < m->n_headers; i++) {
        free(m->headers[i].name);
        free(m->headers[i].value);
        regex_free(m->headers[i].re);
    }
    free(m->headers);
}

void route_free(struct route *r)
{
    if (!r)
        return;
    free(r->host);
    free(r->auth.scheme);
    free(r->auth.header);
    free(r->auth.token_ref);
    for (size_t i = 0; i < r->n_matches; i++)
        match_free(&r->matches[i]);
    free(r->matches);
    free(r->metered);
    free(r->file);
    memset(r, 0, sizeof(*r));
}

static char *strdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void match_copy(struct route_match *dst, const struct route_match *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src->n_paths) {
        dst->paths = xcalloc(src->n_paths, sizeof(*dst->paths));
        dst->n_paths = src->n_paths;
        for (size_t i = 0; i < src->n_paths; i++) {
            dst->paths[i].type = src->paths[i].type;
            dst->paths[i].value = xstrdup(src->paths[i].value);
            if (src->paths[i].type == MATCH_REGEX)
                dst->paths[i].re = regex_anchored(src->paths[i].value);
        }
    }
    if (src->n_methods) {
        dst->methods = xcalloc(src->n_methods + 1, sizeof(*dst->methods));
        dst->n_methods = src->n_methods;
        for (size_t i = 0; i < src->n_methods; i++)
            dst->methods[i] = xstrdup(src->methods[i]);
    }
    if (src->n_headers) {
        dst->headers = xcalloc(src->n_headers, sizeof(*dst->headers));
        dst->n_headers = src->n_headers;
        for (size_t i = 0; i < src->n_headers; i++) {
            dst->headers[i].name = xstrdup(src->headers[i].name);
            dst->headers[i].value = xstrdup(src->headers[i].value);
            dst->headers[i].type = src->headers[i].type;
            if (src->headers[i].type == MATCH_REGEX)
                dst->headers[i].re = regex_anchored(src->headers[i].value);
        }
    }
}

void route_copy(struct route *dst, const struct route *src)
{
    memset(dst, 0, sizeof(*dst));
    if (!src)
        return;
    dst->host = strdup_or_null(src->host);
    dst->port = src->port;
    dst->host_is_ip = src->host_is_ip;
    dst->auth.kind = src->auth.kind;
    dst->auth.scheme = strdup_or_null(src->auth.scheme);
    dst->auth.header = strdup_or_null(src->auth.header);
    dst->auth.token_ref = strdup_or_null(src->auth.token_ref);
    if (src->n_matches) {
        dst->matches = xcalloc(src->n_matches, sizeof(*dst->matches));
        dst->n_matches = src->n_matches;
        for (size_t i = 0; i < src->n_matches; i++)
            match_copy(&dst->matches[i], &src->matches[i]);
    }
    dst->dlp = src->dlp;
    dst->git_fetch = src->git_fetch;
    dst->metered = strdup_or_null(src->metered);
    dst->provider = src->provider;
    dst->file = strdup_or_null(src->file);
    dst->line = src->line;
    dst->col = src->col;
}

void route_set_push(struct route_set *set, struct route *r)
{
    set->items = xrealloc(set->items, (set->len + 1) * sizeof(*set->items));
    set->items[set->len++] = *r;
    memset(r, 0, sizeof(*r));
}

void route_set_free(struct route_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->len; i++)
        route_free(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->len = 0;
}

/* ---- serialization ---------------------------------------------------------------- */

static cJSON *detectors_json(unsigned bits, const struct detector_name *names)
{
    if (bits == 0)
        return cJSON_CreateFalse();
    cJSON *arr = cJSON_CreateArray();
    for (size_t k = 0; names[k].name; k++)
        if (bits & names[k].bit)
            cJSON_AddItemToArray(arr, cJSON_CreateString(names[k].name));
    return arr;
}

static cJSON *match_json(const struct route_match *m)
{
    cJSON *o = cJSON_CreateObject();
    if (m->n_paths) {
        cJSON *paths = cJSON_AddArrayToObject(o, "paths");
        for (size_t i = 0; i < m->n_paths; i++) {
            cJSON *p = cJSON_CreateObject();
            json_add_str(p, "type", match_type_name(m->paths[i].type));
            json_add_str(p, "value", m->paths[i].value);
            cJSON_AddItemToArray(paths, p);
        }
    }
    if (m->n_methods)
        json_add_str_array(o, "methods", m->methods, m->n_methods);
    if (m->n_headers) {
        cJSON *headers = cJSON_AddArrayToObject(o, "headers");
        for (size_t i = 0; i < m->n_headers; i++) {
            cJSON *h = cJSON_CreateObject();
            json_add_str(h, "name", m->headers[i].name);
            json_add_str(h, "value", m->headers[i].value);
            json_add_str(h, "type", match_type_name(m->headers[i].type));
            cJSON_AddItemToArray(headers, h);
        }
    }
    return o;
}

cJSON *route_to_json(const struct route *r, bool include_internal)
{
    cJSON *o = cJSON_CreateObject();
    if (r->port) {
        char *hp = r->host_is_ip && strchr(r->host, ':') ? xasprintf("[%s]:%u", r->host, r->port)
                                                         : xasprintf("%s:%u", r->host, r->port);
        json_add_str(o, "host", hp);
        free(hp);
    } else {
        json_add_str(o, "host", r->host);
    }

    if (r->auth.kind == AUTH_NONE) {
        cJSON_AddNullToObject(o, "auth");
    } else {
        cJSON *a = cJSON_AddObjectToObject(o, "auth");
        if (r->auth.kind == AUTH_SCHEME)
            json_add_str(a, "scheme", r->auth.scheme);
        else
            json_add_str(a, "header", r->auth.header);
        json_add_str(a, "token_ref", r->auth.token_ref);
    }

    cJSON *matches = cJSON_AddArrayToObject(o, "matches");
    for (size_t i = 0; i < r->n_matches; i++)
        cJSON_AddItemToArray(matches, match_json(&r->matches[i]));

    cJSON *dlp = cJSON_AddObjectToObject(o, "dlp");
    cJSON_AddItemToObject(dlp, "outbound_detectors",
                          detectors_json(r->dlp.outbound, outbound_detectors));
    cJSON_AddItemToObject(dlp, "inbound_detectors",
                          detectors_json(r->dlp.inbound, inbound_detectors));
    json_add_str(dlp, "outbound_on_match", dlp_policy_name(r->dlp.on_match));
    if (r->dlp.inbound_block) /* warn, the default, is left out */
        json_add_str(dlp, "inbound_on_match", "block");

    cJSON *git = cJSON_AddObjectToObject(o, "git");
    json_add_bool(git, "fetch", r->git_fetch);
    json_add_str(o, "metered", r->metered);
    if (include_internal)
        json_add_bool(o, "provider", r->provider);
    return o;
}
