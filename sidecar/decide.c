/*
 * decide — what happens to one complete request head: introspection, the
 * policy decision (policy_evaluate, the one matcher), the hooks, stripping
 * the agent's credentials and injecting the route's, then handing the
 * rewritten head to the upstream side. Also the control listener's answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "sidecar/conn.h"

static const struct http_limits limits = HTTP_LIMITS_DEFAULT;

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
        snprintf(c->log.host, sizeof(c->log.host), "%.250s:%u", c->peer.host, c->tunnel_port);
    else
        slice_copy(c->log.host, sizeof(c->log.host), req->authority);
    if (req->form == HTTP_FORM_AUTHORITY)
        c->log.path[0] = '\0';
    else
        redact_path(c->log.path, sizeof(c->log.path), req->path);
    if (c->cfg->log == CONFIG_LOG_FULL)
        logjson_capture(c, req);
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

/* Strip the agent's credentials and the header the route injects; add the route's. */
static int write_forward_head(struct conn *c, const struct route *route)
{
    const char *skip[3] = {"Authorization", "Proxy-Authorization", NULL};
    size_t n_skip = 2;
    struct http_header add;
    memset(&add, 0, sizeof(add));
    size_t n_add = 0;
    struct buf value = BUF_INIT;
    size_t idx = (size_t)(route - c->cfg->routes.items);
    const char *token = c->cfg->route_tokens ? c->cfg->route_tokens[idx] : NULL;
    if (route->auth.kind == AUTH_SCHEME && token) {
        buf_printf(&value, "%s %s", route->auth.scheme, token);
        add = (struct http_header){{"Authorization", 13}, {value.data, value.len}};
        n_add = 1;
    } else if (route->auth.kind == AUTH_HEADER && token) {
        skip[n_skip++] = route->auth.header;
        buf_append_str(&value, token);
        add = (struct http_header){{route->auth.header, strlen(route->auth.header)},
                                   {value.data, value.len}};
        n_add = 1;
    }
    int rc = http_request_write_head(&c->uout, &c->req, skip, n_skip, n_add ? &add : NULL, n_add);
    if (value.data)
        explicit_bzero(value.data, value.cap);
    buf_free(&value);
    return rc;
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
    if (req->form == HTTP_FORM_AUTHORITY) {
        handle_connect(c, head_len);
        return;
    }
    bool tls = c->tunnel;
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
        snprintf(host, sizeof(host), "%s", c->peer.host);
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
    struct policy_header headers[HTTP_HEADERS_MAX];
    struct buf hb = BUF_INIT;
    size_t offs[HTTP_HEADERS_MAX][2];
    for (size_t i = 0; i < req->n_headers; i++) {
        offs[i][0] = hb.len;
        buf_append(&hb, req->headers[i].name.ptr, req->headers[i].name.len);
        buf_append_char(&hb, '\0');
        offs[i][1] = hb.len;
        buf_append(&hb, req->headers[i].value.ptr, req->headers[i].value.len);
        buf_append_char(&hb, '\0');
    }
    for (size_t i = 0; i < req->n_headers; i++)
        headers[i] = (struct policy_header){hb.data + offs[i][0], hb.data + offs[i][1]};
    struct policy_request preq = {.method = method,
                                  .tls = tls,
                                  .host = host,
                                  .port = port,
                                  .target = target,
                                  .headers = headers,
                                  .n_headers = req->n_headers};
    struct policy_result res = {0};
    int rc = policy_evaluate(&c->cfg->routes, &preq, &res);
    buf_free(&hb);
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
    if (run_hooks(c, route, res.host, port, tls) < 0) {
        c->cin.start += head_len;
        policy_result_free(&res);
        return;
    }
    bool reuse = upstream_reusable(c, res.host, port, tls);
    if (!reuse)
        upstream_close(c);
    buf_reset(&c->uout);
    if (write_forward_head(c, route) < 0) {
        c->cin.start += head_len;
        policy_result_free(&res);
        conn_refuse(c, 500, REASON_INTERNAL, "the forwarded request head could not be built");
        return;
    }
    c->cin.start += head_len;
    c->log.decision = "allowed";
    c->log.reason = REASON_ALLOWED;
    bool is_ip = route->host_is_ip;
    if (reuse) {
        c->state = CONN_EXCHANGE;
        c->deadline_ms = proxy_now_ms() + c->cfg->timeouts.io_ms;
    } else {
        upstream_open(c, res.host, is_ip, port, tls);
    }
    policy_result_free(&res);
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
        json_escape_into(&b, c->cfg->bottle, strlen(c->cfg->bottle));
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
