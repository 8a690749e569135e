/* config — JSON config, token descriptor, refcounted snapshots (see config.h). */
#include "sidecar/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "manifest/node.h"

#define CONFIG_FILE_MAX (4u << 20)

/* ---- tokens ----------------------------------------------------------------- */

static bool token_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* A value goes into a header field: visible ASCII and spaces only. */
static bool token_value_ok(const char *s, size_t n)
{
    if (n == 0 || n > CONFIG_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

int config_tokens_read_fd(int fd, struct config_tokens *out, struct bottle_err *err)
{
    struct buf b = BUF_INIT;
    char chunk[4096];
    int rc = 0;
    memset(out, 0, sizeof(*out));
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set_kind(err, ERR_KIND_USAGE, errno, "--token-fd %d: cannot read: %s", fd,
                              strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > (1u << 20)) {
            rc = err_set_kind(err, ERR_KIND_USAGE, EFBIG, "--token-fd %d: more than 1 MiB", fd);
            break;
        }
        buf_append(&b, chunk, (size_t)n);
    }
    close(fd);
    unsigned line = 0;
    for (size_t pos = 0; rc == 0 && pos < b.len;) {
        line++;
        char *nl = memchr(b.data + pos, '\n', b.len - pos);
        size_t end = nl ? (size_t)(nl - b.data) : b.len;
        const char *s = b.data + pos;
        size_t n = end - pos;
        pos = end + 1;
        if (n == 0)
            continue;
        const char *eq = memchr(s, '=', n);
        if (!eq || !token_name_ok(s, (size_t)(eq - s)) ||
            !token_value_ok(eq + 1, n - (size_t)(eq - s) - 1)) {
            rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                              "--token-fd %d: line %u: expected NAME=VALUE with a name of "
                              "letters, digits and '_' and a non-empty printable value",
                              fd, line);
            break;
        }
        out->items = xrealloc(out->items, (out->len + 1) * sizeof(*out->items));
        out->items[out->len].name = xstrndup(s, (size_t)(eq - s));
        out->items[out->len].value = xstrndup(eq + 1, n - (size_t)(eq - s) - 1);
        out->len++;
    }
    if (b.data)
        explicit_bzero(b.data, b.cap);
    buf_free(&b);
    if (rc < 0)
        config_tokens_free(out);
    return rc;
}

const char *config_tokens_get(const struct config_tokens *t, const char *name)
{
    for (size_t i = t ? t->len : 0; i > 0; i--) /* the last line for a name wins */
        if (strcmp(t->items[i - 1].name, name) == 0)
            return t->items[i - 1].value;
    return NULL;
}

static void secret_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void config_tokens_free(struct config_tokens *t)
{
    for (size_t i = 0; i < t->len; i++) {
        free(t->items[i].name);
        secret_free(t->items[i].value);
    }
    free(t->items);
    memset(t, 0, sizeof(*t));
}

/* ---- addresses ------------------------------------------------------------- */

static int parse_ip(const char *host, uint16_t port, struct config_addr *out)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        out->len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        out->len = sizeof(*v6);
        return 0;
    }
    return -EINVAL;
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5)
        return -EINVAL;
    unsigned long v = strtoul(s, &end, 10);
    if (v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* Splits "[v6]" or "v4" off text up to the last ':' into host (brackets removed). */
static int split_host_port(const char *text, char *host, size_t host_max, const char **port)
{
    const char *colon;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        if ((size_t)(close - text - 1) >= host_max)
            return -EINVAL;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        *port = close + 2;
        return 0;
    }
    colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= host_max)
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    *port = colon + 1;
    return 0;
}

int config_parse_addr(const char *text, struct config_addr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_text;
    uint16_t port;
    if (split_host_port(text, host, sizeof(host), &port_text) < 0 ||
        parse_port(port_text, &port) < 0)
        return -EINVAL;
    return parse_ip(host, port, out);
}

/* "host:port:addr", addr an IP literal (IPv6 bare or bracketed). */
static int parse_override(const char *text, struct config_override *o, struct bottle_err *err)
{
    const char *c1 = strchr(text, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char port_text[8];
    uint16_t port;
    if (!c1 || !c2 || (size_t)(c2 - c1 - 1) >= sizeof(port_text))
        return -EINVAL;
    memcpy(port_text, c1 + 1, (size_t)(c2 - c1 - 1));
    port_text[c2 - c1 - 1] = '\0';
    if (parse_port(port_text, &port) < 0 || port == 0)
        return -EINVAL;
    char addr[INET6_ADDRSTRLEN + 3];
    snprintf(addr, sizeof(addr), "%s", c2 + 1);
    size_t an = strlen(addr);
    char *a = addr;
    if (an > 2 && addr[0] == '[' && addr[an - 1] == ']') {
        addr[an - 1] = '\0';
        a = addr + 1;
    }
    if (parse_ip(a, port, &o->addr) < 0)
        return -EINVAL;
    char *name = xstrndup(text, (size_t)(c1 - text));
    bool is_ip;
    int rc = host_normalize(name, &o->host, &is_ip, err);
    free(name);
    if (rc < 0)
        return rc;
    o->port = port;
    o->text = xstrdup(text);
    return 0;
}

/* ---- the file -------------------------------------------------------------- */

static int cfg_fail(struct bottle_err *err, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfg_fail(struct bottle_err *err, const char *file, const char *fmt, ...)
{
    char msg[BOTTLE_ERR_MSG_MAX - 300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "config: %s: %s", file, msg);
}

static int check_keys(const cJSON *obj, const char *what, const char *const *allowed,
                      const char *file, struct bottle_err *err)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(it->string, allowed[i]) == 0;
        if (!known) {
            struct buf list = BUF_INIT;
            for (size_t i = 0; allowed[i]; i++)
                buf_printf(&list, "%s%s", i ? ", " : "", allowed[i]);
            int rc = cfg_fail(err, file, "%s'%s' is not a known key (known: %s)", what, it->string,
                              list.data);
            buf_free(&list);
            return rc;
        }
    }
    return 0;
}

/* A string member: required or not, never empty. */
static int get_string(const cJSON *obj, const char *key, const char *what, bool required,
                      char **out, const char *file, struct bottle_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v) {
        if (required)
            return cfg_fail(err, file, "'%s%s' is required", what, key);
        return 0;
    }
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return cfg_fail(err, file, "'%s%s' must be a non-empty string", what, key);
    *out = xstrdup(v->valuestring);
    return 0;
}

static int parse_tls(const cJSON *tls, struct config *c, struct bottle_err *err)
{
    static const char *const keys[] = {"ca_cert",     "ca_key",   "leaf_key",
                                       "trust_store", "extra_ca", NULL};
    if (!tls)
        return cfg_fail(err, c->file, "'tls' is required (ca_cert, ca_key, leaf_key)");
    if (!cJSON_IsObject(tls))
        return cfg_fail(err, c->file, "'tls' must be an object");
    int rc = check_keys(tls, "tls: ", keys, c->file, err);
    if (rc == 0)
        rc = get_string(tls, "ca_cert", "tls.", true, &c->ca_cert, c->file, err);
    if (rc == 0)
        rc = get_string(tls, "ca_key", "tls.", true, &c->ca_key, c->file, err);
    if (rc == 0)
        rc = get_string(tls, "leaf_key", "tls.", true, &c->leaf_key, c->file, err);
    if (rc == 0)
        rc = get_string(tls, "trust_store", "tls.", false, &c->trust_store, c->file, err);
    if (rc == 0)
        rc = get_string(tls, "extra_ca", "tls.", false, &c->extra_ca, c->file, err);
    return rc;
}

static int parse_timeouts(const cJSON *t, struct config *c, struct bottle_err *err)
{
    static const char *const keys[] = {"header_ms", "idle_ms",  "connect_ms", "handshake_ms",
                                       "io_ms",     "drain_ms", NULL};
    unsigned *slots[] = {&c->timeouts.header_ms,    &c->timeouts.idle_ms, &c->timeouts.connect_ms,
                         &c->timeouts.handshake_ms, &c->timeouts.io_ms,   &c->timeouts.drain_ms};
    if (!t)
        return 0;
    if (!cJSON_IsObject(t))
        return cfg_fail(err, c->file, "'timeouts' must be an object");
    int rc = check_keys(t, "timeouts: ", keys, c->file, err);
    for (size_t i = 0; rc == 0 && keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, keys[i]);
        if (!v)
            continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 86400000.0 ||
            v->valuedouble != (double)(unsigned)v->valuedouble)
            return cfg_fail(err, c->file,
                            "'timeouts.%s' must be a whole number of milliseconds from 1 to "
                            "86400000",
                            keys[i]);
        *slots[i] = (unsigned)v->valuedouble;
    }
    return rc;
}

/* A whole number member within [min, max]: its value, 0 when absent, or a negative error. */
static long parse_whole_value(const cJSON *v, const char *key, long min, long max, const char *file,
                              struct bottle_err *err)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)min || v->valuedouble > (double)max ||
        v->valuedouble != (double)(long)v->valuedouble)
        return cfg_fail(err, file, "'%s' must be a whole number from %ld to %ld", key, min, max);
    return (long)v->valuedouble;
}

static int parse_whole(const cJSON *obj, const char *key, long min, long max, const char *file,
                       struct bottle_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v ? (int)parse_whole_value(v, key, min, max, file, err) : 0;
}

static int parse_budget_scope(const char *text, enum config_budget_scope *out)
{
    static const char *const names[] = {"run", "agent", "global"};
    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (enum config_budget_scope)i;
            return 0;
        }
    return -EINVAL;
}

static int parse_budgets(const cJSON *list, struct config *c, struct bottle_err *err)
{
    static const char *const keys[] = {"provider", "tokens", "scope", "source", NULL};
    if (!list)
        return 0;
    if (!cJSON_IsArray(list))
        return cfg_fail(err, c->file, "'budgets' must be an array");
    c->budgets = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*c->budgets));
    for (const cJSON *b = list->child; b; b = b->next) {
        char what[40];
        snprintf(what, sizeof(what), "budgets[%zu].", c->n_budgets);
        struct config_budget *cb = &c->budgets[c->n_budgets++];
        char *scope = NULL;
        if (!cJSON_IsObject(b))
            return cfg_fail(err, c->file, "'%s' must be an object", what);
        int rc = check_keys(b, what, keys, c->file, err);
        if (rc == 0)
            rc = get_string(b, "provider", what, true, &cb->provider, c->file, err);
        if (rc == 0)
            rc = get_string(b, "scope", what, true, &scope, c->file, err);
        if (rc == 0 && parse_budget_scope(scope, &cb->scope) < 0)
            rc = cfg_fail(err, c->file, "'%sscope' must be run, agent or global", what);
        free(scope);
        if (rc == 0)
            rc = get_string(b, "source", what, false, &cb->source, c->file, err);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "tokens");
        if (rc == 0 && !t)
            rc = cfg_fail(err, c->file, "'%stokens' is required", what);
        if (rc == 0 && (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 1e15 ||
                        t->valuedouble != (double)(uint64_t)t->valuedouble))
            rc = cfg_fail(err, c->file, "'%stokens' must be a whole number from 0", what);
        if (rc < 0)
            return rc;
        cb->tokens = (uint64_t)t->valuedouble;
        for (size_t i = 0; i + 1 < c->n_budgets; i++)
            if (strcmp(c->budgets[i].provider, cb->provider) == 0)
                return cfg_fail(err, c->file, "'%sprovider': a second budget for '%s'", what,
                                cb->provider);
    }
    return 0;
}

static int parse_secrets(const cJSON *list, struct config *c, struct bottle_err *err)
{
    if (!list)
        return 0;
    if (!cJSON_IsArray(list))
        return cfg_fail(err, c->file, "'secrets' must be an array of strings");
    c->secrets = xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*c->secrets));
    for (const cJSON *s = list->child; s; s = s->next) {
        if (!cJSON_IsString(s) || strlen(s->valuestring) < 8)
            return cfg_fail(err, c->file,
                            "'secrets[%zu]' must be a string of at least 8 characters",
                            c->n_secrets);
        c->secrets[c->n_secrets++] = xstrdup(s->valuestring);
    }
    return 0;
}

static int parse_routes(const cJSON *routes, const struct config_tokens *tokens, struct config *c,
                        struct bottle_err *err)
{
    if (!routes)
        return 0; /* no routes: every request is refused */
    if (!cJSON_IsArray(routes))
        return cfg_fail(err, c->file, "'routes' must be an array of routes");
    size_t n = (size_t)cJSON_GetArraySize(routes);
    c->route_tokens = xcalloc(n + 1, sizeof(*c->route_tokens));
    size_t i = 0;
    for (const cJSON *item = routes->child; item; item = item->next, i++) {
        char what[32];
        snprintf(what, sizeof(what), "routes[%zu]", i);
        struct node_doc doc = {0};
        struct route r = {0};
        int rc = node_doc_from_json(c->file, item, &doc, err);
        if (rc == 0)
            rc = route_parse_at(doc.root, what, true, DLP_POLICY_SUPERVISE, &r, err);
        node_doc_free(&doc);
        if (rc < 0) {
            route_free(&r);
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "config: %s", err->msg);
        }
        if (r.auth.kind != AUTH_NONE) {
            const char *value = config_tokens_get(tokens, r.auth.token_ref);
            if (!value) {
                rc = cfg_fail(err, c->file,
                              "%s.auth.token_ref: no value for '%s' was passed on the token "
                              "descriptor (--token-fd)",
                              what, r.auth.token_ref);
                route_free(&r);
                return rc;
            }
            c->route_tokens[i] = xstrdup(value);
        }
        for (size_t j = 0; j < c->routes.len; j++)
            if (strcmp(c->routes.items[j].host, r.host) == 0 && c->routes.items[j].port == r.port) {
                rc = cfg_fail(err, c->file, "%s: host '%s' is already routed by routes[%zu]", what,
                              r.host, j);
                route_free(&r);
                return rc;
            }
        route_set_push(&c->routes, &r);
    }
    return 0;
}

static int parse_overrides(const cJSON *list, struct config *c, struct bottle_err *err)
{
    if (!list)
        return 0;
    if (!cJSON_IsArray(list))
        return cfg_fail(err, c->file, "'resolve' must be an array of \"host:port:addr\" strings");
    size_t n = (size_t)cJSON_GetArraySize(list);
    c->overrides = xcalloc(n + 1, sizeof(*c->overrides));
    size_t i = 0;
    for (const cJSON *it = list->child; it; it = it->next, i++) {
        struct bottle_err sub = {0};
        if (!cJSON_IsString(it) || parse_override(it->valuestring, &c->overrides[i], &sub) < 0)
            return cfg_fail(err, c->file,
                            "resolve[%zu]: expected \"host:port:addr\" with a port from 1 to "
                            "65535 and an IP address%s%s",
                            i, sub.msg[0] ? ": " : "", sub.msg);
        c->n_overrides = i + 1;
    }
    return 0;
}

/* The digest the proxy credential is compared by: both sides hash, so no length leaks. */
static void credential_digest(const char *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32); /* cannot happen with a built-in digest; fails every comparison */
}

/* {"token_ref": NAME, "user": USER}: the credential the proxy listener requires. */
static int parse_proxy_auth(const cJSON *pa, const struct config_tokens *tokens, struct config *c,
                            struct bottle_err *err)
{
    static const char *const keys[] = {"token_ref", "user", NULL};
    if (!pa)
        return 0;
    if (!cJSON_IsObject(pa))
        return cfg_fail(err, c->file, "'proxy_auth' must be an object (token_ref, user)");
    char *ref = NULL;
    int rc = check_keys(pa, "proxy_auth: ", keys, c->file, err);
    if (rc == 0)
        rc = get_string(pa, "token_ref", "proxy_auth.", true, &ref, c->file, err);
    if (rc == 0)
        rc = get_string(pa, "user", "proxy_auth.", false, &c->proxy_auth_user, c->file, err);
    if (rc == 0 && !c->proxy_auth_user)
        c->proxy_auth_user = xstrdup(CONFIG_PROXY_AUTH_USER);
    if (rc == 0 && (strchr(c->proxy_auth_user, ':') ||
                    !token_value_ok(c->proxy_auth_user, strlen(c->proxy_auth_user))))
        rc = cfg_fail(err, c->file,
                      "'proxy_auth.user' must be printable ASCII without ':' (it is the part "
                      "before the colon of a Basic credential)");
    const char *secret = rc == 0 ? config_tokens_get(tokens, ref) : NULL;
    if (rc == 0 && !secret)
        rc = cfg_fail(err, c->file,
                      "proxy_auth.token_ref: no value for '%s' was passed on the token "
                      "descriptor (--token-fd)",
                      ref);
    if (rc == 0 && strlen(secret) < 16)
        rc = cfg_fail(err, c->file,
                      "proxy_auth.token_ref: the value of '%s' is shorter than 16 characters; a "
                      "proxy credential must not be guessable",
                      ref);
    if (rc == 0) {
        struct buf both = BUF_INIT;
        buf_printf(&both, "%s:%s", c->proxy_auth_user, secret);
        credential_digest(both.data, both.len, c->proxy_auth_digest);
        explicit_bzero(both.data, both.cap);
        buf_free(&both);
        c->proxy_auth = true;
    }
    free(ref);
    return rc;
}

bool config_proxy_auth_matches(const struct config *c, const char *credential, size_t len)
{
    unsigned char got[32];
    credential_digest(credential, len, got);
    bool same = CRYPTO_memcmp(got, c->proxy_auth_digest, sizeof(got)) == 0;
    return same && c->proxy_auth;
}

static int parse_root(const cJSON *root, const struct config_tokens *tokens, struct config *c,
                      struct bottle_err *err)
{
    static const char *const keys[] = {
        "listen",    "control",    "bottle",          "agent",      "routes",  "tls",
        "resolve",   "log",        "ledger",          "timeouts",   "budgets", "secrets",
        "events_fd", "scan_limit", "max_connections", "proxy_auth", NULL};
    if (!cJSON_IsObject(root))
        return cfg_fail(err, c->file, "the top level must be an object");
    int rc = check_keys(root, "", keys, c->file, err);
    if (rc == 0)
        rc = get_string(root, "listen", "", true, &c->listen_text, c->file, err);
    if (rc == 0 && config_parse_addr(c->listen_text, &c->listen) < 0)
        rc = cfg_fail(err, c->file, "'listen': '%s' is not IP:PORT (IPv6 as [addr]:port)",
                      c->listen_text);
    if (rc == 0)
        rc = get_string(root, "control", "", false, &c->control_text, c->file, err);
    if (rc == 0 && c->control_text && config_parse_addr(c->control_text, &c->control) < 0)
        rc = cfg_fail(err, c->file, "'control': '%s' is not IP:PORT (IPv6 as [addr]:port)",
                      c->control_text);
    if (rc == 0)
        rc = get_string(root, "bottle", "", false, &c->bottle, c->file, err);
    if (rc == 0 && !c->bottle)
        c->bottle = xstrdup("standalone");
    if (rc == 0)
        rc = get_string(root, "agent", "", false, &c->agent, c->file, err);
    if (rc == 0 && !c->agent)
        c->agent = xstrdup("standalone");
    if (rc == 0)
        rc = get_string(root, "ledger", "", false, &c->ledger, c->file, err);
    if (rc == 0)
        rc = parse_budgets(cJSON_GetObjectItemCaseSensitive(root, "budgets"), c, err);
    if (rc == 0)
        rc = parse_secrets(cJSON_GetObjectItemCaseSensitive(root, "secrets"), c, err);
    if (rc == 0)
        rc = parse_whole(root, "events_fd", 3, 65535, c->file, err);
    if (rc > 0) {
        c->events_fd = rc;
        rc = 0;
    }
    if (rc == 0)
        rc = parse_whole(root, "scan_limit", 1024, 1024L * 1024 * 1024, c->file, err);
    if (rc > 0) {
        c->scan_limit = (size_t)rc;
        rc = 0;
    }
    if (rc == 0)
        rc = parse_whole(root, "max_connections", 1, CONFIG_MAX_CONNECTIONS_MAX, c->file, err);
    if (rc > 0) {
        c->max_connections = (unsigned)rc;
        rc = 0;
    }
    if (rc == 0)
        rc = parse_proxy_auth(cJSON_GetObjectItemCaseSensitive(root, "proxy_auth"), tokens, c, err);
    char *log = NULL;
    if (rc == 0)
        rc = get_string(root, "log", "", false, &log, c->file, err);
    if (rc == 0 && log) {
        if (strcmp(log, "off") == 0)
            c->log = CONFIG_LOG_OFF;
        else if (strcmp(log, "requests") == 0)
            c->log = CONFIG_LOG_REQUESTS;
        else if (strcmp(log, "full") == 0)
            c->log = CONFIG_LOG_FULL;
        else
            rc = cfg_fail(err, c->file, "'log' must be off, requests or full, found '%s'", log);
    }
    free(log);
    if (rc == 0)
        rc = parse_tls(cJSON_GetObjectItemCaseSensitive(root, "tls"), c, err);
    if (rc == 0)
        rc = parse_timeouts(cJSON_GetObjectItemCaseSensitive(root, "timeouts"), c, err);
    if (rc == 0)
        rc = parse_overrides(cJSON_GetObjectItemCaseSensitive(root, "resolve"), c, err);
    if (rc == 0)
        rc = parse_routes(cJSON_GetObjectItemCaseSensitive(root, "routes"), tokens, c, err);
    return rc;
}

int config_parse(const char *file, const char *text, size_t len, const struct config_tokens *tokens,
                 struct config **out, struct bottle_err *err)
{
    struct config *c = xcalloc(1, sizeof(*c));
    c->refs = 1;
    c->file = xstrdup(file);
    c->log = CONFIG_LOG_REQUESTS;
    c->events_fd = -1;
    c->scan_limit = CONFIG_SCAN_LIMIT_DEFAULT;
    c->max_connections = CONFIG_MAX_CONNECTIONS_DEFAULT;
    c->timeouts = (struct config_timeouts){30000, 120000, 10000, 10000, 600000, 30000};
    struct bottle_err jerr = {0};
    cJSON *root = json_parse(text, len, file, &jerr);
    int rc = root ? parse_root(root, tokens, c, err)
                  : err_set_kind(err, ERR_KIND_USAGE, EINVAL, "config: %s", jerr.msg);
    cJSON_Delete(root);
    if (rc < 0) {
        config_unref(c);
        *out = NULL;
        return rc;
    }
    *out = c;
    return 0;
}

int config_load(const char *path, const struct config_tokens *tokens, struct config **out,
                struct bottle_err *err)
{
    struct buf text = BUF_INIT;
    int rc = fs_read_file(path, CONFIG_FILE_MAX, &text, err);
    if (rc < 0) {
        buf_free(&text);
        *out = NULL;
        return err_set_kind(err, ERR_KIND_USAGE, -rc, "config: %s", err->msg);
    }
    rc = config_parse(path, text.data, text.len, tokens, out, err);
    buf_free(&text);
    return rc;
}

struct config *config_ref(struct config *c)
{
    if (c)
        c->refs++;
    return c;
}

void config_unref(struct config *c)
{
    if (!c || --c->refs > 0)
        return;
    for (size_t i = 0; c->route_tokens && i < c->routes.len; i++)
        secret_free(c->route_tokens[i]);
    free(c->route_tokens);
    route_set_free(&c->routes);
    for (size_t i = 0; i < c->n_overrides; i++) {
        free(c->overrides[i].host);
        free(c->overrides[i].text);
    }
    free(c->overrides);
    free(c->file);
    free(c->listen_text);
    free(c->control_text);
    free(c->bottle);
    free(c->agent);
    free(c->ledger);
    for (size_t i = 0; i < c->n_budgets; i++) {
        free(c->budgets[i].provider);
        free(c->budgets[i].source);
    }
    free(c->budgets);
    for (size_t i = 0; i < c->n_secrets; i++)
        secret_free(c->secrets[i]);
    free(c->secrets);
    free(c->ca_cert);
    free(c->ca_key);
    free(c->leaf_key);
    free(c->trust_store);
    free(c->extra_ca);
    free(c->proxy_auth_user);
    explicit_bzero(c->proxy_auth_digest, sizeof(c->proxy_auth_digest));
    free(c);
}

const struct config_override *config_find_override(const struct config *c, const char *host,
                                                   uint16_t port)
{
    for (size_t i = 0; i < c->n_overrides; i++)
        if (c->overrides[i].port == port && strcmp(c->overrides[i].host, host) == 0)
            return &c->overrides[i];
    return NULL;
}

const char *config_log_name(enum config_log l)
{
    return l == CONFIG_LOG_OFF ? "off" : l == CONFIG_LOG_FULL ? "full" : "requests";
}

const char *config_budget_scope_name(enum config_budget_scope s)
{
    return s == CONFIG_BUDGET_AGENT ? "agent" : s == CONFIG_BUDGET_GLOBAL ? "global" : "run";
}

const struct config_budget *config_find_budget(const struct config *c, const char *provider)
{
    for (size_t i = 0; provider && i < c->n_budgets; i++)
        if (strcmp(c->budgets[i].provider, provider) == 0)
            return &c->budgets[i];
    return NULL;
}
