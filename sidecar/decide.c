/* decide — the decision on a request head (see decide.h). */
#include "sidecar/decide.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/json.h"
#include "sidecar/logjson.h"
#include "sidecar/pool.h"
#include "sidecar/respond.h"
#include "sidecar/upstream.h"

static const struct http_limits limits = HTTP_LIMITS_DEFAULT;

/* strlcpy: src truncated to max - 1 bytes (no printf on the request path). */
static void str_copy(char *dst, size_t max, const char *src)
{
    size_t n = strnlen(src, max - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* "host:port" into dst, host cut at 250 bytes. */
static void host_port(char *dst, size_t max, const char *host, uint16_t port)
{
    char digits[6];
    size_t d = sizeof(digits);
    do
        digits[--d] = (char)('0' + port % 10);
    while ((port /= 10) && d);
    size_t h = strnlen(host, max - sizeof(digits) - 2 < 250 ? max - sizeof(digits) - 2 : 250);
    memcpy(dst, host, h);
    dst[h] = ':';
    memcpy(dst + h + 1, digits + d, sizeof(digits) - d);
    dst[h + 1 + sizeof(digits) - d] = '\0';
}

static void slice_copy(char *dst, size_t max, struct http_slice s)
{
    size_t n = s.len < max - 1 ? s.len : max - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

/* "/p?a=1&b=2" -> "/p?a=REDACTED&b=REDACTED": query values may carry secrets. */
static void redact_path(char *dst, size_t max, struct http_slice path)
{
    size_t o = 0;
    bool in_query = false, in_value = false;
    for (size_t i = 0; i < path.len && o + 10 < max; i++) {
        char ch = path.ptr[i];
        if (!in_query) {
            dst[o++] = ch;
            in_query = ch == '?';
            continue;
        }
        if (ch == '&') {
            in_value = false;
            dst[o++] = ch;
        } else if (ch == '=' && !in_value) {
            in_value = true;
            memcpy(dst + o, "=REDACTED", 9);
            o += 9;
        } else if (!in_value) {
            dst[o++] = ch;
        }
    }
    dst[o] = '\0';
}

static void request_begin(struct conn *c)
{
    struct http_request *req = &c->req;
    c->req_body = http_request_body(req);
    c->req_left = req->content_length > 0 ? (uint64_t)req->content_length : 0;
    c->req_done =
        c->req_body == HTTP_BODY_NONE || (c->req_body == HTTP_BODY_LENGTH && !c->req_left);
    http_chunked_init(&c->req_chunk, &limits);
    c->req_keep_alive = req->keep_alive;
    c->req_head_request = http_slice_eq(req->method, "HEAD");
    c->req_upgrade = req->upgrade_websocket;
    if (!req->keep_alive)
        c->close_after = true;
    slice_copy(c->log.method, sizeof(c->log.method), req->method);
    if (c->tunnel && req->form != HTTP_FORM_AUTHORITY)
        host_port(c->log.host, sizeof(c->log.host), c->peer.host, c->tunnel_port);
    else
        slice_copy(c->log.host, sizeof(c->log.host), req->authority);
    if (req->form == HTTP_FORM_AUTHORITY)
        c->log.path[0] = '\0';
    else
        redact_path(c->log.path, sizeof(c->log.path), req->path);
    if (c->cfg->log == CONFIG_LOG_FULL)
        logjson_capture(c, req);
}

/* ---- the proxy credential ------------------------------------------------- */

/* Longest Proxy-Authorization value looked at (base64 of user:secret). */
#define PROXY_CREDENTIAL_MAX 4096

/*
 * Proxy-Authorization: Basic <base64 of user:secret> against the config's
 * proxy_auth. Compared through config_proxy_auth_matches (digests, constant
 * time); no proxy_auth configured passes every request.
 */
static bool proxy_credential_ok(const struct conn *c)
{
    if (!c->cfg->proxy_auth)
        return true;
    const struct http_header *h =
        http_header_find(c->req.headers, c->req.n_headers, "Proxy-Authorization");
    if (!h || h->value.len < 6 || strncasecmp(h->value.ptr, "Basic ", 6) != 0)
        return false;
    const char *p = h->value.ptr + 6;
    size_t n = h->value.len - 6;
    while (n && *p == ' ') {
        p++;
        n--;
    }
    while (n && p[n - 1] == ' ')
        n--;
    if (n == 0 || n > PROXY_CREDENTIAL_MAX || n % 4)
        return false;
    unsigned char out[PROXY_CREDENTIAL_MAX / 4 * 3 + 1];
    int len = EVP_DecodeBlock(out, (const unsigned char *)p, (int)n);
    if (len < 0)
        return false;
    len -= (p[n - 1] == '=') + (p[n - 2] == '='); /* EVP_DecodeBlock counts the padding */
    bool ok = len > 0 && config_proxy_auth_matches(c->cfg, (const char *)out, (size_t)len);
    explicit_bzero(out, sizeof(out));
    return ok;
}

static void refuse_credential(struct conn *c, size_t head_len)
{
    c->cin.start += head_len;
    conn_refuse_proxy_auth(c, "this sidecar answers only its bottle: send the bottle's proxy "
                              "credential (Proxy-Authorization: Basic, as in the proxy URL "
                              "http://user:secret@host:port of the bottle's environment)");
}

/* ---- introspection --------------------------------------------------------- */

static void serve_introspection(struct conn *c, size_t head_len)
{
    struct http_request *req = &c->req;
    bool get = http_slice_eq(req->method, "GET") || http_slice_eq(req->method, "HEAD");
    bool allowlist = http_slice_eq(req->path, "/allowlist");
    c->cin.start += head_len;
    if (!c->req_done)
        c->close_after = true;
    if (!allowlist) {
        conn_refuse(c, 404, REASON_NOT_FOUND, "the introspection host answers GET /allowlist only");
        return;
    }
    if (!get) {
        conn_refuse(c, 405, REASON_METHOD_NOT_ALLOWED, "/allowlist answers GET only");
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *routes = cJSON_AddArrayToObject(doc, "routes");
    for (size_t i = 0; i < c->cfg->routes.len; i++)
        cJSON_AddItemToArray(routes, route_to_json(&c->cfg->routes.items[i], false));
    char *text = json_to_text(doc, true);
    cJSON_Delete(doc);
    c->log.decision = "local";
    c->log.reason = "introspection";
    conn_respond(c, 200, "application/json", text, strlen(text));
    free(text);
    conn_request_finish(c);
}

/* ---- CONNECT ----------------------------------------------------------------- */

static void handle_connect(struct conn *c, size_t head_len)
{
    struct http_request *req = &c->req;
    char host[HOST_NAME_MAX_LEN + 1];
    slice_copy(host, sizeof(host), req->host);
    c->close_after = false; /* a CONNECT's own Connection field says nothing about the tunnel */
    c->req_done = true;
    if (c->tunnel) {
        c->cin.start += head_len;
        conn_refuse(c, 400, HTTP_ERR_BAD_TARGET, "CONNECT inside an intercepted tunnel");
        return;
    }
    bool introspect = strcasecmp(host, PROXY_INTROSPECTION_HOST) == 0;
    struct policy_request preq = {
        .method = "CONNECT", .tls = true, .host = host, .port = req->port, .target = NULL};
    struct policy_result res = {0};
    if (!introspect) {
        if (policy_evaluate(&c->cfg->routes, &preq, &res) < 0) {
            c->cin.start += head_len;
            policy_result_free(&res);
            conn_refuse(c, 500, REASON_INTERNAL, "the policy could not be evaluated");
            return;
        }
        if (!res.allowed) {
            c->cin.start += head_len;
            c->close_after = true;
            conn_refuse(c, res.status, res.reason, res.message);
            policy_result_free(&res);
            return;
        }
    }
    c->cin.start += head_len;
    snprintf(c->peer.host, sizeof(c->peer.host), "%s",
             introspect ? PROXY_INTROSPECTION_HOST : res.host);
    c->peer.host_is_ip = !introspect && res.route && res.route->host_is_ip;
    c->tunnel = true;
    c->introspect = introspect;
    c->tunnel_port = req->port;
    policy_result_free(&res);
    buf_append_str(&c->cout, "HTTP/1.1 200 Connection established\r\n\r\n");
    c->log.status = 200;
    c->log.decision = introspect ? "local" : "allowed";
    c->log.reason = introspect ? "introspection" : REASON_ALLOWED;
    conn_request_finish(c);
    if (c->state == CONN_HEAD)
        c->state = CONN_TLS_ACCEPT;
}

/* ---- forwarded requests ---------------------------------------------------- */

static int run_hooks(struct conn *c, const struct route *route, const char *host, uint16_t port,
                     bool tls)
{
    struct proxy_hooks *h = &c->px->hooks;
    struct proxy_request_view view = {route, &c->req, host, port, tls};
    struct proxy_verdict v = {0};
    if (h->outbound_dlp && h->outbound_dlp(h->ctx, &view, &v) == 0 && v.reason) {
        conn_refuse(c, v.status ? v.status : 403, v.reason, v.message);
        return -EACCES;
    }
    memset(&v, 0, sizeof(v));
    if (h->budget_admit && h->budget_admit(h->ctx, &view, &v) == 0 && v.reason) {
        conn_refuse(c, v.status ? v.status : 429, v.reason, v.message);
        return -EACCES;
    }
    return 0;
}

/*
 * Strip the agent's credentials and the header the route injects; add the
 * route's. With body_len set the body was collected: its framing becomes a
 * Content-Length of *body_len (and an Expect the sidecar answered is dropped).
 */
static int write_forward_head(struct conn *c, const struct route *route, const size_t *body_len)
{
    const char *skip[8] = {"Authorization", "Proxy-Authorization"};
    size_t n_skip = 2;
    struct http_header add[3];
    memset(add, 0, sizeof(add));
    size_t n_add = 0;
    struct buf value = BUF_INIT;
    char length[24];
    size_t idx = (size_t)(route - c->cfg->routes.items);
    /* A real credential leaves only over verified TLS (the policy refuses the rest first). */
    const char *token = c->fwd.tls && c->cfg->route_tokens ? c->cfg->route_tokens[idx] : NULL;
    if (route->auth.kind == AUTH_SCHEME && token) {
        buf_printf(&value, "%s %s", route->auth.scheme, token);
        add[n_add++] = (struct http_header){{"Authorization", 13}, {value.data, value.len}};
    } else if (route->auth.kind == AUTH_HEADER && token) {
        skip[n_skip++] = route->auth.header;
        buf_append_str(&value, token);
        add[n_add++] = (struct http_header){{route->auth.header, strlen(route->auth.header)},
                                            {value.data, value.len}};
    }
    if (c->want & PROXY_WANT_WS_MESSAGES)
        skip[n_skip++] = "Sec-WebSocket-Extensions"; /* compressed frames could not be read */
    const struct http_header *ae =
        http_header_find(c->req.headers, c->req.n_headers, "Accept-Encoding");
    if ((c->want & PROXY_WANT_RESPONSE_FILTER) && ae && !http_slice_eq_ci(ae->value, "identity")) {
        /* a filtered body is decoded: only codings the sidecar decodes may come back */
        skip[n_skip++] = "Accept-Encoding";
        add[n_add++] = (struct http_header){{"Accept-Encoding", 15}, {"gzip, deflate, br", 17}};
    }
    if (body_len) {
        skip[n_skip++] = "Content-Length";
        skip[n_skip++] = "Transfer-Encoding";
        skip[n_skip++] = "Expect";
        int n = snprintf(length, sizeof(length), "%zu", *body_len);
        add[n_add++] = (struct http_header){{"Content-Length", 14}, {length, (size_t)n}};
    }
    int rc = http_request_write_head(&c->uout, &c->req, skip, n_skip, n_add ? add : NULL, n_add);
    if (value.data)
        explicit_bzero(value.data, value.cap);
    buf_free(&value);
    return rc;
}

/*
 * Sends the request to c->fwd: on the kept upstream when it fits, else on a
 * new one. body_len: the collected body (body) replaces the request's own.
 */
static void forward(struct conn *c, const char *body, const size_t *body_len)
{
    bool reuse = upstream_reusable(c, c->fwd.host, c->fwd.port, c->fwd.tls);
    if (!reuse)
        pool_release(c); /* another host's idle connection may serve someone else */
    c->up_idle = false;
    buf_reset(&c->uout);
    c->uout_off = 0;
    if (write_forward_head(c, c->fwd.route, body_len) < 0) {
        conn_refuse(c, 500, REASON_INTERNAL, "the forwarded request head could not be built");
        return;
    }
    if (body_len)
        buf_append(&c->uout, body, *body_len);
    c->log.decision = "allowed";
    c->log.reason = REASON_ALLOWED;
    if (reuse) {
        c->state = CONN_EXCHANGE;
        c->deadline_ms = (uint64_t)clock_mono_ms() + c->cfg->timeouts.io_ms;
    } else {
        upstream_open(c, c->fwd.host, c->fwd.is_ip, c->fwd.port, c->fwd.tls);
    }
}

/* The hooks want the body first: keep the head (re-parsed into c->hold), then collect. */
static void collect_body(struct conn *c, size_t head_len)
{
    buf_reset(&c->hold);
    buf_append(&c->hold, c->cin.data + c->cin.start, head_len);
    c->cin.start += head_len;
    http_request_reset(&c->req);
    if (http_parse_request(c->hold.data, c->hold.len, &c->req, &limits) != (ssize_t)head_len) {
        conn_refuse(c, 500, REASON_INTERNAL, "the request head could not be kept");
        return;
    }
    buf_reset(&c->body);
    if (c->req_body == HTTP_BODY_LENGTH && c->req_left > c->body_limit) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "the request body (%llu bytes) is larger than the %zu bytes that can be "
                 "inspected; it was not forwarded",
                 (unsigned long long)c->req_left, c->body_limit);
        conn_refuse(c, 413, REASON_BODY_TOO_LARGE, msg);
        return;
    }
    if (c->req_done) {
        decide_body_complete(c);
        return;
    }
    if (c->req.expect_continue)
        buf_append_str(&c->cout, "HTTP/1.1 100 Continue\r\n\r\n");
    c->state = CONN_BODY;
    c->deadline_ms = (uint64_t)clock_mono_ms() + c->cfg->timeouts.io_ms;
}

void decide_body_complete(struct conn *c)
{
    struct proxy_hooks *h = &c->px->hooks;
    struct proxy_request_view view = {c->fwd.route, &c->req, c->fwd.host, c->fwd.port, c->fwd.tls};
    struct proxy_verdict v = {0};
    struct buf repl = BUF_INIT;
    int rc = 0;
    if (h->request_body)
        rc = h->request_body(h->ctx, &view, &c->xs, c->body.data ? c->body.data : "", c->body.len,
                             &repl, &v);
    if (v.reason || rc < 0) {
        buf_free(&repl);
        if (v.reason)
            conn_refuse(c, v.status ? v.status : 403, v.reason, v.message);
        else
            conn_refuse(c, 500, REASON_INTERNAL, "the request body could not be inspected");
        return;
    }
    const struct buf *send = repl.len ? &repl : &c->body;
    if (c->req_body != HTTP_BODY_NONE || repl.len) {
        size_t len = send->len;
        forward(c, send->data ? send->data : "", &len);
    } else {
        forward(c, NULL, NULL);
    }
    buf_free(&repl);
    buf_free(&c->body);
}

/* Inside a tunnel the Host field must name the tunnel's host and port. */
static bool tunnel_host_matches(struct conn *c)
{
    char raw[HOST_NAME_MAX_LEN + 3];
    slice_copy(raw, sizeof(raw), c->req.host);
    char *norm = NULL;
    bool is_ip;
    struct bottle_err err = {0};
    if (host_normalize(raw, &norm, &is_ip, &err) < 0)
        return false;
    bool same = strcmp(norm, c->peer.host) == 0;
    free(norm);
    uint16_t port = c->req.port ? c->req.port : 443;
    return same && port == c->tunnel_port;
}

void decide_request(struct conn *c, size_t head_len)
{
    struct http_request *req = &c->req;
    request_begin(c);
    /* Requests inside a tunnel were let in with its CONNECT. */
    if (!c->tunnel && !proxy_credential_ok(c)) {
        refuse_credential(c, head_len);
        return;
    }
    if (req->form == HTTP_FORM_AUTHORITY) {
        handle_connect(c, head_len);
        return;
    }
    bool tls = c->tunnel;
    if (req->upgrade_websocket && !c->req_done) {
        /* The handshake has no body; bytes after it would be read as frames. */
        c->cin.start += head_len;
        c->close_after = true;
        conn_refuse(c, 400, REASON_UPGRADE_WITH_BODY,
                    "a WebSocket upgrade request cannot carry a body");
        c->cin.start = c->cin.end;
        return;
    }
    if (c->tunnel && req->form != HTTP_FORM_ORIGIN) {
        c->cin.start += head_len;
        conn_refuse(c, 400, HTTP_ERR_BAD_TARGET,
                    "requests inside a tunnel use origin-form targets (/path)");
        return;
    }
    if (!c->tunnel && req->form != HTTP_FORM_ABSOLUTE) {
        c->cin.start += head_len;
        conn_refuse(c, 400, REASON_NOT_A_PROXY_REQ,
                    "send absolute-URI requests (GET http://host/path) or CONNECT to the proxy");
        return;
    }
    if (c->tunnel && !tunnel_host_matches(c)) {
        c->cin.start += head_len;
        char msg[256];
        snprintf(msg, sizeof(msg), "the Host field does not name the tunnel's host %.200s",
                 c->peer.host);
        conn_refuse(c, 421, HTTP_ERR_HOST_MISMATCH, msg);
        return;
    }
    char host[sizeof(c->peer.host)];
    uint16_t port;
    if (c->tunnel) {
        str_copy(host, sizeof(host), c->peer.host);
        port = c->tunnel_port;
    } else {
        slice_copy(host, sizeof(host), req->host);
        port = req->port ? req->port : 80;
    }
    if (c->introspect || strcasecmp(host, PROXY_INTROSPECTION_HOST) == 0) {
        serve_introspection(c, head_len);
        return;
    }

    /* the decision: one matcher for CONNECT tunnels and plain HTTP alike */
    char method[24], target[8192 + 1];
    slice_copy(method, sizeof(method), req->method);
    slice_copy(target, sizeof(target), req->path);
    /* NUL-terminated copies of the fields, in one buffer the proxy reuses */
    struct policy_header headers[HTTP_HEADERS_MAX];
    struct buf *hb = &c->px->fields;
    size_t need = 1;
    for (size_t i = 0; i < req->n_headers; i++)
        need += req->headers[i].name.len + req->headers[i].value.len + 2;
    buf_reset(hb);
    buf_reserve(hb, need);
    char *o = hb->data;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct http_header *f = &req->headers[i];
        headers[i].name = o;
        memcpy(o, f->name.ptr, f->name.len);
        o += f->name.len;
        *o++ = '\0';
        headers[i].value = o;
        memcpy(o, f->value.ptr, f->value.len);
        o += f->value.len;
        *o++ = '\0';
    }
    struct policy_request preq = {.method = method,
                                  .tls = tls,
                                  .host = host,
                                  .port = port,
                                  .target = target,
                                  .headers = headers,
                                  .n_headers = req->n_headers};
    struct policy_result res = {0};
    int rc = policy_evaluate(&c->cfg->routes, &preq, &res);
    if (rc < 0 || !res.allowed) {
        c->cin.start += head_len;
        if (rc < 0)
            conn_refuse(c, 500, REASON_INTERNAL, "the policy could not be evaluated");
        else
            conn_refuse(c, res.status, res.reason, res.message);
        policy_result_free(&res);
        return;
    }
    const struct route *route = res.route;
    if (route->auth.kind != AUTH_NONE &&
        (strcasecmp(method, "TRACE") == 0 || strcasecmp(method, "TRACK") == 0)) {
        c->cin.start += head_len;
        conn_refuse(c, 405, REASON_TRACE_WITH_AUTH,
                    "TRACE echoes the request, and the credential this route injects with it");
        policy_result_free(&res);
        return;
    }
    if (run_hooks(c, route, res.host, port, tls) < 0) {
        c->cin.start += head_len;
        policy_result_free(&res);
        return;
    }
    c->fwd.route = route;
    str_copy(c->fwd.host, sizeof(c->fwd.host), res.host);
    c->fwd.port = port;
    c->fwd.tls = tls;
    c->fwd.is_ip = route->host_is_ip;
    policy_result_free(&res);
    struct proxy_hooks *h = &c->px->hooks;
    if (h->wants) {
        struct proxy_request_view view = {route, &c->req, c->fwd.host, port, tls};
        size_t limit = 0;
        c->want = h->wants(h->ctx, &view, &limit);
        c->body_limit = limit && limit < CONN_BODY_MAX ? limit : CONN_BODY_MAX;
        if (c->want & PROXY_WANT_REQUEST_BODY) {
            collect_body(c, head_len);
            return;
        }
    }
    c->cin.start += head_len; /* the head's slices stay valid: the bytes do not move */
    forward(c, NULL, NULL);
}

/* ---- control listener --------------------------------------------------------- */

static void metrics_text(struct conn *c, struct buf *b)
{
    const struct proxy_metrics *m = &c->px->metrics;
    buf_printf(b, "# TYPE bottle_proxy_connections_total counter\n");
    buf_printf(b, "bottle_proxy_connections_total %llu\n",
               (unsigned long long)m->connections_total);
    buf_printf(b, "# TYPE bottle_proxy_connections_open gauge\n");
    buf_printf(b, "bottle_proxy_connections_open %zu\n", c->px->n_conns);
    buf_printf(b, "# TYPE bottle_proxy_connections_max gauge\n");
    buf_printf(b, "bottle_proxy_connections_max %u\n", c->px->cfg->max_connections);
    buf_printf(b, "# TYPE bottle_proxy_connections_refused_total counter\n");
    buf_printf(b, "bottle_proxy_connections_refused_total %llu\n",
               (unsigned long long)m->connections_refused);
    buf_printf(b, "# TYPE bottle_proxy_requests_total counter\n");
    buf_printf(b, "bottle_proxy_requests_total %llu\n", (unsigned long long)m->requests_total);
    buf_printf(b, "bottle_proxy_requests_allowed_total %llu\n",
               (unsigned long long)m->requests_allowed);
    buf_printf(b, "bottle_proxy_requests_refused_total %llu\n",
               (unsigned long long)m->requests_refused);
    buf_printf(b, "# TYPE bottle_proxy_refusals_total counter\n");
    for (size_t i = 0; i < m->n_refusals; i++)
        buf_printf(b, "bottle_proxy_refusals_total{reason=\"%s\"} %llu\n", m->refusals[i].reason,
                   (unsigned long long)m->refusals[i].count);
    buf_printf(b, "# TYPE bottle_proxy_bytes_total counter\n");
    buf_printf(b, "bottle_proxy_bytes_total{direction=\"from_clients\"} %llu\n",
               (unsigned long long)m->bytes_from_clients);
    buf_printf(b, "bottle_proxy_bytes_total{direction=\"to_clients\"} %llu\n",
               (unsigned long long)m->bytes_to_clients);
    buf_printf(b, "bottle_proxy_bytes_total{direction=\"to_upstreams\"} %llu\n",
               (unsigned long long)m->bytes_to_upstreams);
    buf_printf(b, "bottle_proxy_bytes_total{direction=\"from_upstreams\"} %llu\n",
               (unsigned long long)m->bytes_from_upstreams);
    buf_printf(b, "# TYPE bottle_proxy_reloads_total counter\n");
    buf_printf(b, "bottle_proxy_reloads_total{result=\"ok\"} %llu\n",
               (unsigned long long)m->reloads_ok);
    buf_printf(b, "bottle_proxy_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)m->reloads_failed);
    buf_printf(b, "# TYPE bottle_proxy_upstream_connections_total counter\n");
    buf_printf(b, "bottle_proxy_upstream_connections_total{origin=\"new\"} %llu\n",
               (unsigned long long)m->upstream_connects);
    buf_printf(b, "bottle_proxy_upstream_connections_total{origin=\"pool\"} %llu\n",
               (unsigned long long)m->upstream_reused);
    buf_printf(b, "# TYPE bottle_proxy_tls_leaves_minted_total counter\n");
    buf_printf(b, "bottle_proxy_tls_leaves_minted_total %lu\n", c->px->tls.minted);
}

void decide_control(struct conn *c, size_t head_len)
{
    struct http_request *req = &c->req;
    request_begin(c);
    c->cin.start += head_len;
    if (!c->req_done)
        c->close_after = true;
    c->log.decision = "local";
    c->log.reason = "control";
    if (!http_slice_eq(req->method, "GET") && !http_slice_eq(req->method, "HEAD")) {
        conn_refuse(c, 405, REASON_METHOD_NOT_ALLOWED, "the control listener answers GET only");
        return;
    }
    struct buf b = BUF_INIT;
    if (http_slice_eq(req->path, "/healthz")) {
        buf_printf(&b, "{\"status\": \"ok\", \"bottle\": \"");
        json_escape_append(&b, c->cfg->bottle, strlen(c->cfg->bottle), 0);
        buf_printf(&b, "\", \"connections\": %zu, \"draining\": %s}\n", c->px->n_conns,
                   c->px->draining ? "true" : "false");
        conn_respond(c, 200, "application/json", b.data, b.len);
    } else if (http_slice_eq(req->path, "/metrics")) {
        metrics_text(c, &b);
        conn_respond(c, 200, "text/plain; version=0.0.4", b.data, b.len);
    } else {
        buf_free(&b);
        conn_refuse(c, 404, REASON_NOT_FOUND, "the control listener answers /healthz and /metrics");
        return;
    }
    buf_free(&b);
    conn_request_finish(c);
}
