/*
 * The exchange hooks of bottle-proxy (proxy.h, struct proxy_hooks): a proxy
 * runs in-process on loopback in front of a fake plain-HTTP upstream, and
 * each test drives one clause of the contract through a real socket.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

#include "sidecar/ca.h"
#include "sidecar/proxy.h"

/* ---- fake upstream ------------------------------------------------------------ */

static int up_listen = -1, dead_fd = -1;
static uint16_t up_port, dead_port;
static atomic_int up_conns, up_requests;
static pthread_mutex_t up_mu = PTHREAD_MUTEX_INITIALIZER;
static char up_last[65536]; /* the last request as the upstream received it */
static size_t up_last_len;

static bool read_exact(int fd, char *p, size_t n)
{
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *up_serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char head[16384];
    for (;;) {
        size_t n = 0;
        char *end = NULL;
        while (!end) {
            if (n == sizeof(head) - 1)
                goto out;
            ssize_t r = recv(fd, head + n, sizeof(head) - 1 - n, 0);
            if (r <= 0)
                goto out;
            n += (size_t)r;
            head[n] = '\0';
            end = strstr(head, "\r\n\r\n");
        }
        size_t hl = (size_t)(end + 4 - head), cl = 0;
        const char *p = strcasestr(head, "\r\nContent-Length:");
        if (p && p < end)
            cl = strtoul(p + 17, NULL, 10);
        p = strcasestr(head, "\r\nTransfer-Encoding: chunked");
        if (p && p < end) { /* the body (these tests' chunks) ends with the last chunk */
            while (!memmem(head + hl, n - hl, "0\r\n\r\n", 5)) {
                if (n == sizeof(head) - 1)
                    goto out;
                ssize_t r = recv(fd, head + n, sizeof(head) - 1 - n, 0);
                if (r <= 0)
                    goto out;
                n += (size_t)r;
            }
            cl = n - hl;
        }
        char req[sizeof(up_last)];
        size_t have = n < hl + cl ? n : hl + cl;
        if (hl + cl > sizeof(req))
            goto out;
        memcpy(req, head, have);
        if (have < hl + cl && !read_exact(fd, req + have, hl + cl - have))
            goto out;
        pthread_mutex_lock(&up_mu);
        memcpy(up_last, req, hl + cl);
        up_last_len = hl + cl;
        pthread_mutex_unlock(&up_mu);
        atomic_fetch_add(&up_requests, 1);
        char out[512];
        if (strncmp(req + strcspn(req, " ") + 1, "/chunked", 8) == 0) {
            const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
            if (!send_all(fd, r, strlen(r)))
                goto out;
        } else if (strncmp(req + strcspn(req, " ") + 1, "/slow", 5) == 0) {
            const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789";
            if (!send_all(fd, r, strlen(r)))
                goto out;
            usleep(300000);
            char rest[90];
            memset(rest, 'r', sizeof(rest));
            if (!send_all(fd, rest, sizeof(rest)))
                goto out;
        } else if (strncmp(req + strcspn(req, " ") + 1, "/close", 6) == 0) {
            /* no framing: the body runs to the close */
            static char body[150000];
            memset(body, 'c', sizeof(body));
            const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            send_all(fd, h, strlen(h));
            send_all(fd, body, sizeof(body));
            goto out;
        } else if (strncmp(req + strcspn(req, " ") + 1, "/big", 4) == 0) {
            static char body[200000];
            memset(body, 'b', sizeof(body));
            int k = snprintf(out, sizeof(out), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                             sizeof(body));
            if (!send_all(fd, out, (size_t)k) || !send_all(fd, body, sizeof(body)))
                goto out;
        } else {
            /* "received " and nine digits: a fixed length */
            int k = snprintf(out, sizeof(out),
                             "HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\nreceived %09zu", cl);
            if (!send_all(fd, out, (size_t)k))
                goto out;
        }
    }
out:
    close(fd);
    return NULL;
}

static void *up_accept(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(up_listen, NULL, NULL);
        if (fd < 0)
            return NULL;
        atomic_fetch_add(&up_conns, 1);
        pthread_t t;
        pthread_create(&t, NULL, up_serve, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
}

static int bind_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        abort();
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- hooks under test ------------------------------------------------------------ */

struct hook_ctx {
    unsigned want;
    size_t limit;
    const char *refuse;  /* request_body refuses with this reason */
    const char *replace; /* request_body replaces the body with this */
    size_t stop_after;   /* response_data ends the response once it saw this many bytes */
    int filter;          /* response_filter: 1 upper-cases (same length), 2 doubles each byte */
    bool drop_length;    /* response_head drops Content-Length */
    char held;           /* the filter holds back the last byte until the body ends */
    bool holding;
    atomic_int filter_last;
    atomic_int wants_calls, body_calls, head_calls, end_calls, end_complete;
    atomic_int bad; /* a hook saw arguments it should not have */
    char body[4096];
    size_t body_len;
    int head_status;
    char tapped[4096];
    size_t tapped_len, tapped_total;
};

static struct hook_ctx hc;
static int xs_token;

static unsigned h_wants(void *ctx, const struct proxy_request_view *v, size_t *limit)
{
    struct hook_ctx *h = ctx;
    (void)v;
    atomic_fetch_add(&h->wants_calls, 1);
    *limit = h->limit;
    return h->want;
}

static int h_request_body(void *ctx, const struct proxy_request_view *v, void **xs,
                          const char *body, size_t len, struct buf *replacement,
                          struct proxy_verdict *out)
{
    struct hook_ctx *h = ctx;
    if (!v->req || !v->route)
        atomic_fetch_add(&h->bad, 1);
    size_t n = len < sizeof(h->body) ? len : sizeof(h->body);
    memcpy(h->body, body, n);
    h->body_len = len;
    *xs = &xs_token;
    if (h->refuse) {
        out->status = 403;
        out->reason = h->refuse;
        snprintf(out->message, sizeof(out->message), "the body carries a secret");
    } else if (h->replace) {
        buf_append_str(replacement, h->replace);
    }
    atomic_fetch_add(&h->body_calls, 1);
    return 0;
}

static int h_response_head(void *ctx, void **xs, const struct route *route,
                           struct http_response *resp, struct proxy_verdict *out)
{
    struct hook_ctx *h = ctx;
    (void)out;
    if (*xs != &xs_token || !route)
        atomic_fetch_add(&h->bad, 1);
    h->head_status = resp->status_code;
    for (size_t i = 0; h->drop_length && i < resp->n_headers; i++)
        if (http_slice_eq_ci(resp->headers[i].name, "Content-Length")) {
            resp->headers[i] = resp->headers[--resp->n_headers];
            break;
        }
    atomic_fetch_add(&h->head_calls, 1);
    return 0;
}

/* Upper-cases (filter 1) or doubles (filter 2) each byte, always holding the last one back. */
static int h_response_filter(void *ctx, void *xs, const char *p, size_t n, bool last,
                             struct buf *out)
{
    struct hook_ctx *h = ctx;
    if (xs != &xs_token)
        atomic_fetch_add(&h->bad, 1);
    for (size_t i = 0; i < n; i++) {
        if (h->holding) {
            char c = h->filter == 1 && h->held >= 'a' && h->held <= 'z' ? h->held - 32 : h->held;
            buf_append_char(out, c);
            if (h->filter == 2)
                buf_append_char(out, c);
        }
        h->held = p[i];
        h->holding = true;
    }
    if (last) {
        if (h->holding) {
            char c = h->filter == 1 && h->held >= 'a' && h->held <= 'z' ? h->held - 32 : h->held;
            buf_append_char(out, c);
            if (h->filter == 2)
                buf_append_char(out, c);
        }
        h->holding = false;
        atomic_fetch_add(&h->filter_last, 1);
    }
    return 0;
}

static int h_response_data(void *ctx, void *xs, const char *p, size_t n)
{
    struct hook_ctx *h = ctx;
    if (xs != &xs_token)
        atomic_fetch_add(&h->bad, 1);
    size_t room = sizeof(h->tapped) - h->tapped_len;
    memcpy(h->tapped + h->tapped_len, p, n < room ? n : room);
    h->tapped_len += n < room ? n : room;
    h->tapped_total += n;
    return h->stop_after && h->tapped_total >= h->stop_after;
}

static void h_exchange_end(void *ctx, void *xs, bool complete)
{
    struct hook_ctx *h = ctx;
    if (xs != &xs_token)
        atomic_fetch_add(&h->bad, 1);
    if (complete)
        atomic_fetch_add(&h->end_complete, 1);
    atomic_fetch_add(&h->end_calls, 1);
}

/* ---- the proxy ------------------------------------------------------------------ */

static char *dir;
static struct proxy px;
static pthread_t px_thread;
static struct config_tokens no_tokens;

static void *px_run(void *arg)
{
    (void)arg;
    proxy_run(&px);
    return NULL;
}

static int group_setup(void **state)
{
    (void)state;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    dir = testutil_mkdtemp();
    struct bottle_err err = {0};
    char ca[512];
    snprintf(ca, sizeof(ca), "%s/pca", dir);
    if (ca_mint_files(ca, "hooks test CA", &err) < 0)
        fail_msg("%s", err.msg);
    up_listen = bind_loopback(&up_port);
    listen(up_listen, 64);
    dead_fd = bind_loopback(&dead_port); /* bound, never listening: connects are refused */
    pthread_t t;
    pthread_create(&t, NULL, up_accept, NULL);
    pthread_detach(t);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    testutil_rm_rf(dir);
    free(dir);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    char cfg[512], text[2048];
    snprintf(cfg, sizeof(cfg), "%s/cfg.json", dir);
    snprintf(text, sizeof(text),
             "{\"listen\": \"127.0.0.1:0\", \"bottle\": \"hooks\", \"log\": \"off\",\n"
             " \"tls\": {\"ca_cert\": \"%s/pca/ca.pem\", \"ca_key\": \"%s/pca/ca-key.pem\",\n"
             "         \"leaf_key\": \"%s/pca/leaf-key.pem\"},\n"
             " \"resolve\": [\"up.test:%u:127.0.0.1\", \"dead.test:%u:127.0.0.1\"],\n"
             " \"timeouts\": {\"drain_ms\": 2000},\n"
             " \"routes\": [{\"host\": \"up.test:%u\"}, {\"host\": \"dead.test:%u\"}]}\n",
             dir, dir, dir, up_port, dead_port, up_port, dead_port);
    testutil_write(cfg, text);
    struct config *c = NULL;
    struct bottle_err err = {0};
    if (config_load(cfg, &no_tokens, &c, &err) < 0)
        fail_msg("%s", err.msg);
    if (proxy_init(&px, cfg, c, &no_tokens, &err) < 0)
        fail_msg("%s", err.msg);
    memset(&hc, 0, sizeof(hc));
    px.hooks = (struct proxy_hooks){.wants = h_wants,
                                    .request_body = h_request_body,
                                    .response_head = h_response_head,
                                    .response_data = h_response_data,
                                    .response_filter = h_response_filter,
                                    .exchange_end = h_exchange_end,
                                    .ctx = &hc};
    atomic_store(&up_requests, 0);
    pthread_create(&px_thread, NULL, px_run, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(atomic_load(&hc.bad), 0);
    kill(getpid(), SIGTERM);
    pthread_join(px_thread, NULL);
    proxy_free(&px);
    return 0;
}

/* ---- client ---------------------------------------------------------------------- */

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(px.listen_port)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Reads until the peer closes or 2 s pass; returns the bytes read. */
static size_t read_all(int fd, char *out, size_t max)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0 || n == max - 1)
            break;
        ssize_t r = recv(fd, out + n, max - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    return n;
}

/* Sends one request with Connection: close and returns the whole answer. */
static size_t exchange(const char *req, char *out, size_t max)
{
    int fd = dial();
    assert_true(send_all(fd, req, strlen(req)));
    size_t n = read_all(fd, out, max);
    close(fd);
    return n;
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 1000 && atomic_load(v) < want; i++) /* up to 10 s on a loaded host */
        usleep(10000);
    usleep(20000); /* and nothing more arrives */
    assert_int_equal(atomic_load(v), want);
}

static char *request(const char *method, const char *path, const char *extra, const char *body)
{
    return xasprintf("%s http://up.test:%u%s HTTP/1.1\r\nHost: up.test:%u\r\n%sConnection: "
                     "close\r\n\r\n%s",
                     method, up_port, path, up_port, extra, body);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_body_collected_dechunked(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    char *req = request("POST", "/upload", "Transfer-Encoding: chunked\r\n",
                        "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "received 000000007"));
    assert_int_equal(atomic_load(&hc.body_calls), 1);
    assert_int_equal(hc.body_len, 7);
    assert_memory_equal(hc.body, "abcdefg", 7);
    /* forwarded with a Content-Length instead of chunked framing */
    pthread_mutex_lock(&up_mu);
    up_last[up_last_len] = '\0';
    assert_non_null(strcasestr(up_last, "\r\nContent-Length: 7\r\n"));
    assert_null(strcasestr(up_last, "Transfer-Encoding"));
    assert_non_null(strstr(up_last, "\r\n\r\nabcdefg"));
    pthread_mutex_unlock(&up_mu);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_request_without_body(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY;
    char *req = request("GET", "/x", "", "");
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_int_equal(atomic_load(&hc.body_calls), 1);
    assert_int_equal(hc.body_len, 0);
    pthread_mutex_lock(&up_mu);
    up_last[up_last_len] = '\0';
    assert_null(strcasestr(up_last, "Content-Length")); /* a GET gains no framing */
    pthread_mutex_unlock(&up_mu);
    assert_int_equal(atomic_load(&hc.head_calls), 0); /* the response was not asked for */
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_refusal_not_forwarded(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    hc.refuse = "secret_in_body";
    char *req = request("POST", "/upload", "Content-Length: 11\r\n", "password=hi");
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 403"));
    assert_non_null(strstr(out, "\"reason\": \"secret_in_body\""));
    assert_memory_equal(hc.body, "password=hi", 11);
    usleep(50000);
    assert_int_equal(atomic_load(&up_requests), 0);
    assert_int_equal(atomic_load(&hc.head_calls), 0);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 0);
}

static void test_replacement_forwarded(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY;
    hc.replace = "password=[REDACTED]";
    char *req = request("POST", "/upload", "Content-Length: 11\r\n", "password=hi");
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "received 000000019"));
    pthread_mutex_lock(&up_mu);
    up_last[up_last_len] = '\0';
    assert_non_null(strcasestr(up_last, "\r\nContent-Length: 19\r\n"));
    assert_non_null(strstr(up_last, "\r\n\r\npassword=[REDACTED]"));
    assert_null(strstr(up_last, "password=hi"));
    pthread_mutex_unlock(&up_mu);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_over_limit_413(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY;
    hc.limit = 8;
    char out[8192];
    /* announced too large: refused before the body is read */
    char *req = request("POST", "/upload", "Content-Length: 11\r\n", "password=hi");
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    assert_non_null(strstr(out, "\"reason\": \"body_too_large\""));
    /* chunked, found too large while collecting */
    req = request("POST", "/upload", "Transfer-Encoding: chunked\r\n",
                  "5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n");
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    usleep(50000);
    assert_int_equal(atomic_load(&up_requests), 0);
    assert_int_equal(atomic_load(&hc.body_calls), 0);
    assert_int_equal(atomic_load(&hc.end_calls), 0); /* no exchange state was made */
}

static void test_response_tap_dechunked(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    char *req = request("GET", "/chunked", "", "");
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    /* the client gets the chunked stream as the upstream sent it */
    assert_non_null(strstr(out, "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"));
    assert_int_equal(atomic_load(&hc.head_calls), 1);
    assert_int_equal(hc.head_status, 200);
    assert_int_equal(hc.tapped_len, 11);
    assert_memory_equal(hc.tapped, "hello world", 11);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_response_ended_by_hook(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    hc.stop_after = 1;
    char *req = request("GET", "/big", "", "");
    static char out[300000];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    char *body = strstr(out, "\r\n\r\n");
    assert_non_null(body);
    size_t got = n - (size_t)(body + 4 - out);
    assert_true(got < 200000); /* cut short, and the connection closed */
    assert_true(hc.tapped_total > 0);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 0);
}

static void test_upstream_failure(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    char *req = xasprintf("POST http://dead.test:%u/x HTTP/1.1\r\nHost: dead.test:%u\r\n"
                          "Content-Length: 2\r\nConnection: close\r\n\r\nhi",
                          dead_port, dead_port);
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 502"));
    assert_non_null(strstr(out, "upstream_connect_failed"));
    assert_int_equal(atomic_load(&hc.body_calls), 1);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 0);
}

static void test_client_gone(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    char *req = request("GET", "/slow", "", "");
    int fd = dial();
    assert_true(send_all(fd, req, strlen(req)));
    free(req);
    char some[40];
    assert_true(read_exact(fd, some, sizeof(some)));
    close(fd); /* gone with most of the response unread */
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 0);
}

static void test_keep_alive_each_exchange_ends_once(void **state)
{
    (void)state;
    hc.want = PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE;
    char *one = xasprintf("POST http://up.test:%u/a HTTP/1.1\r\nHost: up.test:%u\r\n"
                          "Content-Length: 1\r\n\r\nA",
                          up_port, up_port);
    char *two = request("POST", "/b", "Content-Length: 2\r\n", "BB");
    int fd = dial();
    assert_true(send_all(fd, one, strlen(one)));
    char out[8192];
    size_t n = 0;
    while (!strstr(out, "received 000000001")) {
        ssize_t r = recv(fd, out + n, sizeof(out) - 1 - n, 0);
        assert_true(r > 0);
        n += (size_t)r;
        out[n] = '\0';
    }
    assert_true(send_all(fd, two, strlen(two)));
    read_all(fd, out, sizeof(out));
    close(fd);
    free(one);
    free(two);
    assert_non_null(strstr(out, "received 000000002"));
    wait_for(&hc.end_calls, 2);
    assert_int_equal(atomic_load(&hc.end_complete), 2);
    assert_int_equal(atomic_load(&hc.body_calls), 2);
}

static void test_no_hooks_wanted(void **state)
{
    (void)state;
    hc.want = 0;
    char *req =
        request("POST", "/upload", "Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n");
    char out[8192];
    exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    pthread_mutex_lock(&up_mu);
    up_last[up_last_len] = '\0';
    assert_non_null(strcasestr(up_last, "Transfer-Encoding: chunked")); /* framing untouched */
    pthread_mutex_unlock(&up_mu);
    assert_int_equal(atomic_load(&hc.wants_calls), 1);
    assert_int_equal(atomic_load(&hc.body_calls), 0);
    assert_int_equal(atomic_load(&hc.end_calls), 0);
}

/* ---- the response filter --------------------------------------------------------- */

#define FILTERED (PROXY_WANT_REQUEST_BODY | PROXY_WANT_RESPONSE | PROXY_WANT_RESPONSE_FILTER)

/* The body of a whole answer (after its head), de-chunked when chunked; returns its length. */
static size_t answer_body(const char *out, size_t n, char *body, size_t max)
{
    const char *b = strstr(out, "\r\n\r\n");
    assert_non_null(b);
    b += 4;
    size_t len = n - (size_t)(b - out), got = 0;
    if (!strcasestr(out, "Transfer-Encoding: chunked")) {
        memcpy(body, b, len < max ? len : max);
        return len;
    }
    for (const char *p = b; p < b + len;) {
        size_t size = strtoul(p, NULL, 16);
        const char *data = strstr(p, "\r\n");
        assert_non_null(data);
        if (size == 0)
            return got;
        data += 2;
        assert_true(got + size <= max);
        memcpy(body + got, data, size);
        got += size;
        p = data + size + 2;
    }
    fail_msg("chunked body without its last chunk");
    return 0;
}

static void test_filter_same_length(void **state)
{
    (void)state;
    hc.want = FILTERED;
    hc.filter = 1;
    char *req = request("GET", "/x", "", "");
    char out[8192], body[8192];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    /* the length is kept, the body is the filter's */
    assert_non_null(strcasestr(out, "\r\nContent-Length: 18\r\n"));
    assert_null(strcasestr(out, "Transfer-Encoding"));
    assert_int_equal(answer_body(out, n, body, sizeof(body)), 18);
    assert_memory_equal(body, "RECEIVED 000000000", 18);
    assert_int_equal(atomic_load(&hc.filter_last), 1);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_filter_rechunks(void **state)
{
    (void)state;
    hc.want = FILTERED;
    hc.filter = 1;
    char *req = request("GET", "/chunked", "", "");
    char out[8192], body[8192];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strcasestr(out, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_int_equal(answer_body(out, n, body, sizeof(body)), 11);
    assert_memory_equal(body, "HELLO WORLD", 11);
    assert_memory_equal(hc.tapped, "hello world", 11); /* the tap saw the upstream's bytes */
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_filter_changes_length(void **state)
{
    (void)state;
    hc.want = FILTERED;
    hc.filter = 2;
    hc.drop_length = true;
    char *req = request("GET", "/x", "", "");
    char out[8192], body[8192];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    assert_null(strcasestr(out, "Content-Length"));
    assert_non_null(strcasestr(out, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_int_equal(answer_body(out, n, body, sizeof(body)), 36);
    assert_memory_equal(body, "rreecceeiivveedd  000000000000000000", 36);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
    /* an HTTP/1.0 client gets the body until the connection closes */
    char *old =
        xasprintf("GET http://up.test:%u/x HTTP/1.0\r\nHost: up.test:%u\r\n\r\n", up_port, up_port);
    n = exchange(old, out, sizeof(out));
    free(old);
    assert_null(strcasestr(out, "Transfer-Encoding"));
    assert_null(strcasestr(out, "Content-Length"));
    assert_non_null(strcasestr(out, "Connection: close"));
    assert_int_equal(answer_body(out, n, body, sizeof(body)), 36);
    wait_for(&hc.end_calls, 2);
}

static void test_filter_keeps_its_promise(void **state)
{
    (void)state;
    /* A filter that changes the length of a body whose Content-Length stays: cut short. */
    hc.want = FILTERED;
    hc.filter = 2;
    char *req = request("GET", "/x", "", "");
    char out[8192], body[8192];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    assert_non_null(strcasestr(out, "\r\nContent-Length: 18\r\n"));
    assert_true(answer_body(out, n, body, sizeof(body)) <= 18);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 0);
}

static void test_filter_large_body(void **state)
{
    (void)state;
    hc.want = FILTERED;
    hc.filter = 1;
    char *req = request("GET", "/big", "", "");
    static char out[300000], body[300000];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    assert_int_equal(answer_body(out, n, body, sizeof(body)), 200000);
    for (size_t i = 0; i < 200000; i++)
        if (body[i] != 'B')
            fail_msg("byte %zu is '%c'", i, body[i]);
    assert_int_equal(hc.tapped_total, 200000);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

static void test_filter_until_close(void **state)
{
    (void)state;
    hc.want = FILTERED;
    hc.filter = 1;
    char *req = request("GET", "/close", "", "");
    static char out[300000], body[300000];
    size_t n = exchange(req, out, sizeof(out));
    free(req);
    /* re-framed chunked, and the bytes the filter held back came out at the end */
    assert_non_null(strcasestr(out, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_int_equal(answer_body(out, n, body, sizeof(body)), 150000);
    for (size_t i = 0; i < 150000; i++)
        if (body[i] != 'C')
            fail_msg("byte %zu is '%c'", i, body[i]);
    assert_int_equal(atomic_load(&hc.filter_last), 1);
    wait_for(&hc.end_calls, 1);
    assert_int_equal(atomic_load(&hc.end_complete), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_body_collected_dechunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_without_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusal_not_forwarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replacement_forwarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_over_limit_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_tap_dechunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_ended_by_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive_each_exchange_ends_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hooks_wanted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_same_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_rechunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_changes_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_keeps_its_promise, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_large_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filter_until_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
