/*
 * The one route matcher. `bottle policy test`, the manifest validator and
 * the sidecar all call policy_evaluate(); nothing else decides whether a
 * request may leave a bottle.
 *
 * Order: host normalization -> route by host and port -> cleartext with a
 * credential -> git smart-HTTP -> `matches`. Every refusal carries a stable
 * reason code and a sentence that names the host.
 *
 * Choices worth knowing:
 * - Ports. A route without a port serves the request's default port (443
 *   over TLS, 80 otherwise). A request on any other port needs a route that
 *   names that port. A route that names a port wins over one that does not.
 * - IP literals are looked up like names, by their canonical text, so they
 *   only reach routes that name that exact address.
 * - Git. The git checks look at the path with every percent-escape decoded
 *   (repeatedly, so double encoding does not hide anything) and compare
 *   case-insensitively: a false positive only refuses a request. Push
 *   (`git-receive-pack`) is refused when it appears anywhere in the decoded
 *   path or query, whatever the route says. Fetch (`git-upload-pack`) is
 *   recognized in the decoded path or as the decoded value of a `service`
 *   query parameter, and passes only with git.fetch.
 * - Paths. Path rules compare against a canonical form of the request path
 *   (query removed, escapes of unreserved characters decoded, other escapes
 *   upper-cased), but the request itself is forwarded unchanged. Because the
 *   upstream may resolve a path differently from us, a path rule never
 *   matches a path that contains dot-segments (`.`, `..`, also as `%2e` or
 *   `..;`), an encoded `/` or `\`, a raw `\`, a control character or a
 *   malformed escape: such requests are refused instead of normalized.
 * - Prefix rules match whole segments, as in the Gateway API: `/api` matches
 *   `/api` and `/api/x` but not `/apikeys`; a trailing `/` on the rule is
 *   ignored. Regexes (paths and header values) must match the whole value.
 * - Headers. Every listed header must be present, and every occurrence of it
 *   must match, so a second copy cannot smuggle a different value past the
 *   rule.
 */
#include "manifest/route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"

/* Double encoding is undone this many times at most; more cannot change a %-free string. */
#define PCT_DECODE_ROUNDS 4
/* How much of a method or path a refusal message quotes. */
#define MSG_QUOTE_MAX 96

/* ---- route lookup -------------------------------------------------------- */

static const struct route *route_lookup(const struct route_set *set, const char *host,
                                        uint16_t port, uint16_t default_port, bool *host_known)
{
    const struct route *fallback = NULL;
    if (host_known)
        *host_known = false;
    for (size_t i = 0; set && i < set->len; i++) {
        const struct route *r = &set->items[i];
        if (!r->host || strcmp(r->host, host) != 0)
            continue;
        if (host_known)
            *host_known = true;
        if (r->port != 0 && r->port == port)
            return r;
        if (r->port == 0 && port == default_port && !fallback)
            fallback = r;
    }
    return fallback;
}

const struct route *route_set_find(const struct route_set *set, const char *host, uint16_t port)
{
    if (!host)
        return NULL;
    if (port == 0) {
        for (size_t i = 0; set && i < set->len; i++)
            if (set->items[i].port == 0 && set->items[i].host &&
                strcmp(set->items[i].host, host) == 0)
                return &set->items[i];
        return NULL;
    }
    const struct route *r = route_lookup(set, host, port, port, NULL);
    if (r && (r->port == port || port == 80 || port == 443))
        return r;
    return NULL;
}

/* ---- percent-decoding and path canonical form ----------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes every valid %XX (malformed escapes stay as they are); true if anything changed. */
static bool pct_decode_once(char *s)
{
    char *w = s;
    bool changed = false;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hex_value(r[1])) >= 0 && (lo = hex_value(r[2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            /* A decoded NUL would end the string early; keep a visible stand-in. */
            *w++ = c ? c : '?';
            r += 3;
            changed = true;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return changed;
}

static char *pct_decode_fully(const char *s, size_t len)
{
    char *out = xstrndup(s, len);
    for (int i = 0; i < PCT_DECODE_ROUNDS && pct_decode_once(out); i++)
        ;
    return out;
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* A segment the upstream may resolve as "." or "..": also "..;param" (servlet containers). */
static bool is_dot_segment(const char *seg, size_t len)
{
    const char *semi = memchr(seg, ';', len);
    if (semi)
        len = (size_t)(semi - seg);
    return (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.');
}

char *route_path_canonical(const char *path, size_t len, const char **why)
{
    static const char hex[] = "0123456789ABCDEF";
    struct buf b = BUF_INIT;
    const char *problem = NULL;
    for (size_t i = 0; i < len && !problem; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(path[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(path[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                problem = "a malformed percent-escape";
                break;
            }
            unsigned char v = (unsigned char)(hi * 16 + lo);
            i += 2;
            if (v == '/' || v == '\\')
                problem = "an encoded '/' or '\\'";
            else if (v < 0x20 || v == 0x7f)
                problem = "an encoded control character";
            else if (is_unreserved(v))
                buf_append_char(&b, (char)v);
            else {
                char esc[3] = {'%', hex[v >> 4], hex[v & 15]};
                buf_append(&b, esc, 3);
            }
        } else if (c == '\\') {
            problem = "a '\\'";
        } else if (c <= 0x20 || c == 0x7f) {
            problem = "whitespace or a control character";
        } else {
            buf_append_char(&b, (char)c);
        }
    }
    if (!problem && (b.len == 0 || b.data[0] != '/'))
        problem = "no leading '/'";
    for (size_t start = 1; !problem && start <= b.len;) {
        const char *seg = b.data + start;
        const char *slash = memchr(seg, '/', b.len - start);
        size_t seg_len = slash ? (size_t)(slash - seg) : b.len - start;
        if (is_dot_segment(seg, seg_len))
            problem = "a '.' or '..' segment";
        start += seg_len + 1;
    }
    if (problem) {
        buf_free(&b);
        if (why)
            *why = problem;
        return NULL;
    }
    if (why)
        *why = NULL;
    return buf_steal(&b);
}

/* ---- git smart-HTTP ------------------------------------------------------ */

static bool query_names_service(const char *query, const char *service)
{
    const char *p = query;
    while (p && *p) {
        size_t len = strcspn(p, "&;");
        const char *eq = memchr(p, '=', len);
        if (eq) {
            char *name = pct_decode_fully(p, (size_t)(eq - p));
            char *value = pct_decode_fully(eq + 1, len - (size_t)(eq - p) - 1);
            bool hit = strcasecmp(name, "service") == 0 && strcasecmp(value, service) == 0;
            free(name);
            free(value);
            if (hit)
                return true;
        }
        p = p[len] ? p + len + 1 : NULL;
    }
    return false;
}

enum git_kind { GIT_NONE, GIT_FETCH, GIT_PUSH };

static enum git_kind git_classify(const char *target)
{
    size_t path_len = strcspn(target, "?");
    const char *query = target[path_len] == '?' ? target + path_len + 1 : "";
    char *path = pct_decode_fully(target, path_len);
    char *query_decoded = pct_decode_fully(query, strlen(query));
    enum git_kind kind = GIT_NONE;
    if (strcasestr(path, "git-receive-pack") || strcasestr(query_decoded, "git-receive-pack"))
        kind = GIT_PUSH;
    else if (strcasestr(path, "git-upload-pack") || query_names_service(query, "git-upload-pack"))
        kind = GIT_FETCH;
    free(path);
    free(query_decoded);
    return kind;
}

/* ---- matches ------------------------------------------------------------- */

static bool regex_full_match(const regex_t *re, const char *s)
{
    return re && regexec(re, s, 0, NULL, 0) == 0;
}

static bool path_rule_matches(const struct route_path_match *m, const char *path)
{
    switch (m->type) {
    case MATCH_EXACT:
        return strcmp(path, m->value) == 0;
    case MATCH_REGEX:
        return regex_full_match(m->re, path);
    case MATCH_PREFIX:
        break;
    }
    size_t n = strlen(m->value);
    while (n > 0 && m->value[n - 1] == '/')
        n--;
    if (n == 0)
        return true; /* "/" covers every path */
    return strncmp(path, m->value, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool header_rule_matches(const struct route_header_match *h,
                                const struct policy_request *req)
{
    bool seen = false;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct policy_header *rh = &req->headers[i];
        if (!rh->name || strcasecmp(rh->name, h->name) != 0)
            continue;
        seen = true;
        const char *v = rh->value ? rh->value : "";
        bool ok = h->type == MATCH_REGEX ? regex_full_match(h->re, v) : strcmp(v, h->value) == 0;
        if (!ok)
            return false;
    }
    return seen;
}

/* canonical is NULL when the request path is ambiguous: then no path rule matches. */
static bool entry_matches(const struct route_match *m, const struct policy_request *req,
                          const char *canonical)
{
    if (m->n_paths > 0) {
        bool any = false;
        for (size_t i = 0; canonical && i < m->n_paths && !any; i++)
            any = path_rule_matches(&m->paths[i], canonical);
        if (!any)
            return false;
    }
    if (m->n_methods > 0) {
        bool any = false;
        for (size_t i = 0; req->method && i < m->n_methods && !any; i++)
            any = strcmp(req->method, m->methods[i]) == 0;
        if (!any)
            return false;
    }
    for (size_t i = 0; i < m->n_headers; i++)
        if (!header_rule_matches(&m->headers[i], req))
            return false;
    return true;
}

/* ---- the decision -------------------------------------------------------- */

/* Bounded, printable copy of request text for messages. */
static void quote_text(const char *in, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    size_t keep = outsz > 4 ? outsz - 4 : 0;
    size_t i = 0;
    for (; in && i < len && o < keep; i++) {
        unsigned char c = (unsigned char)in[i];
        out[o++] = (c < 0x20 || c == 0x7f || c == '\'') ? '?' : (char)c;
    }
    if (in && i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void refuse(struct policy_result *res, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(struct policy_result *res, int status, const char *reason, const char *fmt, ...)
{
    res->allowed = false;
    res->status = status;
    res->reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
}

static void refuse_no_match(struct policy_result *res, const struct policy_request *req,
                            const char *why_ambiguous)
{
    char method[32], path[MSG_QUOTE_MAX];
    const char *m = req->method ? req->method : "";
    quote_text(m, strlen(m), method, sizeof(method));
    quote_text(req->target, strcspn(req->target, "?"), path, sizeof(path));
    if (why_ambiguous)
        refuse(res, 403, REASON_NO_MATCHING_RULE,
               "%s '%s' to host '%s' matches none of its route's rules (path rules never "
               "match a path with %s)",
               method, path, res->host, why_ambiguous);
    else
        refuse(res, 403, REASON_NO_MATCHING_RULE,
               "%s '%s' to host '%s' matches none of its route's rules", method, path, res->host);
}

int policy_evaluate(const struct route_set *routes, const struct policy_request *req,
                    struct policy_result *res)
{
    if (!res)
        return -EINVAL;
    memset(res, 0, sizeof(*res));
    if (!req || !req->host) {
        refuse(res, 400, REASON_INVALID_HOST, "the request names no host");
        return req ? 0 : -EINVAL;
    }

    struct bottle_err err = {0};
    if (host_normalize(req->host, &res->host, NULL, &err) < 0) {
        refuse(res, 400, REASON_INVALID_HOST, "%s", err.msg);
        return 0;
    }

    uint16_t default_port = req->tls ? 443 : 80;
    uint16_t port = req->port ? req->port : default_port;
    bool host_known = false;
    const struct route *route = route_lookup(routes, res->host, port, default_port, &host_known);
    if (!route) {
        if (host_known)
            refuse(res, 403, REASON_HOST_NOT_ALLOWED,
                   "port %u of host '%s' is not in this bottle's allowlist", port, res->host);
        else
            refuse(res, 403, REASON_HOST_NOT_ALLOWED, "host '%s' is not in this bottle's allowlist",
                   res->host);
        return 0;
    }
    res->route = route;

    /*
     * A route with `auth` gets a real credential injected, and that leaves only
     * over verified TLS: a plain-HTTP request to it is refused, whatever the port.
     */
    if (!req->tls && route->auth.kind != AUTH_NONE) {
        refuse(res, 403, REASON_AUTH_REQUIRES_TLS,
               "host '%s' gets a credential injected, which is sent only over verified TLS; "
               "use https:// instead of http://",
               res->host);
        return 0;
    }

    /* No target: a CONNECT, decided on the host alone; each request inside is checked later. */
    if (req->target) {
        enum git_kind git = git_classify(req->target);
        if (git == GIT_PUSH) {
            refuse(res, 403, REASON_GIT_PUSH_BLOCKED,
                   "git push (git-receive-pack) to host '%s' is never allowed from a bottle",
                   res->host);
            return 0;
        }
        if (git == GIT_FETCH && !route->git_fetch) {
            refuse(res, 403, REASON_GIT_FETCH_NOT_ALLOWED,
                   "git clone/fetch (git-upload-pack) from host '%s' is not enabled; set "
                   "'git: {fetch: true}' on its route to allow it",
                   res->host);
            return 0;
        }
        if (route->n_matches > 0) {
            const char *why = NULL;
            char *canonical = route_path_canonical(req->target, strcspn(req->target, "?"), &why);
            bool any = false;
            bool path_rules = false;
            for (size_t i = 0; i < route->n_matches && !any; i++) {
                any = entry_matches(&route->matches[i], req, canonical);
                path_rules = path_rules || route->matches[i].n_paths > 0;
            }
            free(canonical);
            if (!any) {
                refuse_no_match(res, req, path_rules ? why : NULL);
                return 0;
            }
        }
    }

    res->allowed = true;
    res->status = 200;
    res->reason = REASON_ALLOWED;
    snprintf(res->message, sizeof(res->message), "allowed by the route for host '%s'", res->host);
    return 0;
}

void policy_result_free(struct policy_result *res)
{
    if (!res)
        return;
    free(res->host);
    res->host = NULL;
    res->route = NULL;
}
