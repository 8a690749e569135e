/*
 * bottle-proxy's pool of idle upstream connections, seen from the upstream:
 * an in-process proxy on loopback in front of fake upstreams (plain HTTP and
 * HTTPS) that count the TCP connections they accept. Two client connections
 * in a row share one upstream connection; one the upstream closed, or one
 * made under an older config, is never used again.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "sidecar/ca.h"
#include "sidecar/proxy.h"

/* ---- fake upstreams ------------------------------------------------------------- */

struct upstream {
    int listen_fd;
    uint16_t port;
    SSL_CTX *tls; /* NULL: plain HTTP */
    atomic_int accepted, requests;
};

static struct upstream plain, secure;
static atomic_int close_idle; /* upstreams close their idle connections while set */

struct up_conn {
    struct upstream *u;
    int fd;
};

static int up_read(SSL *ssl, int fd, char *p, size_t n)
{
    if (ssl)
        return SSL_read(ssl, p, (int)n);
    return (int)recv(fd, p, n, 0);
}

static int up_write(SSL *ssl, int fd, const char *p, size_t n)
{
    if (ssl)
        return SSL_write(ssl, p, (int)n);
    return (int)send(fd, p, n, MSG_NOSIGNAL);
}

static void *up_serve(void *arg)
{
    struct up_conn *uc = arg;
    struct upstream *u = uc->u;
    int fd = uc->fd;
    free(uc);
    SSL *ssl = NULL;
    if (u->tls) {
        ssl = SSL_new(u->tls);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            goto out;
    }
    char buf[8192];
    size_t have = 0;
    for (;;) {
        if (!(ssl && SSL_pending(ssl))) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int r = poll(&p, 1, 20);
            if (r == 0) {
                if (atomic_load(&close_idle) && have == 0)
                    goto out;
                continue;
            }
        }
        int r = up_read(ssl, fd, buf + have, sizeof(buf) - 1 - have);
        if (r <= 0)
            goto out;
        have += (size_t)r;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        atomic_fetch_add(&u->requests, 1);
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (up_write(ssl, fd, resp, strlen(resp)) <= 0)
            goto out;
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, have - used);
        have -= used;
    }
out:
    if (ssl)
        SSL_free(ssl);
    close(fd);
    return NULL;
}

static void *up_accept(void *arg)
{
    struct upstream *u = arg;
    for (;;) {
        int fd = accept(u->listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL;
        atomic_fetch_add(&u->accepted, 1);
        struct up_conn *uc = malloc(sizeof(*uc));
        uc->u = u;
        uc->fd = fd;
        pthread_t t;
        pthread_create(&t, NULL, up_serve, uc);
        pthread_detach(t);
    }
}

static void up_start(struct upstream *u, SSL_CTX *tls)
{
    u->tls = tls;
    u->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(u->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(u->listen_fd, 64) < 0 ||
        getsockname(u->listen_fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    u->port = ntohs(a.sin_port);
    pthread_t t;
    pthread_create(&t, NULL, up_accept, u);
    pthread_detach(t);
}

/* ---- the proxy ------------------------------------------------------------------ */

static char *dir;
static struct proxy px;
static pthread_t px_thread;
static struct config_tokens no_tokens;
static SSL_CTX *client_ctx;

static void *px_run(void *arg)
{
    (void)arg;
    proxy_run(&px);
    return NULL;
}

static SSL_CTX *upstream_tls(void)
{
    struct bottle_err err = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/uca", dir);
    if (ca_mint_files(path, "pool test upstream CA", &err) < 0)
        fail_msg("%s", err.msg);
    snprintf(path, sizeof(path), "%s/uca/ca.pem", dir);
    X509 *ca = ca_load_cert(path, &err);
    snprintf(path, sizeof(path), "%s/uca/ca-key.pem", dir);
    EVP_PKEY *ca_key = ca_load_key(path, &err);
    snprintf(path, sizeof(path), "%s/uca/leaf-key.pem", dir);
    EVP_PKEY *leaf_key = ca_load_key(path, &err);
    assert_non_null(ca);
    assert_non_null(ca_key);
    assert_non_null(leaf_key);
    X509 *leaf = ca_leaf_new(ca, ca_key, leaf_key, "up.test", false, &err);
    assert_non_null(leaf);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(ctx, leaf), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, leaf_key), 1);
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    return ctx;
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
    char path[512];
    snprintf(path, sizeof(path), "%s/pca", dir);
    if (ca_mint_files(path, "pool test CA", &err) < 0)
        fail_msg("%s", err.msg);
    up_start(&plain, NULL);
    up_start(&secure, upstream_tls());
    client_ctx = SSL_CTX_new(TLS_client_method());
    snprintf(path, sizeof(path), "%s/pca/ca.pem", dir);
    SSL_CTX_load_verify_locations(client_ctx, path, NULL);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    SSL_CTX_free(client_ctx);
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
             "{\"listen\": \"127.0.0.1:0\", \"bottle\": \"pool\", \"log\": \"off\",\n"
             " \"tls\": {\"ca_cert\": \"%s/pca/ca.pem\", \"ca_key\": \"%s/pca/ca-key.pem\",\n"
             "         \"leaf_key\": \"%s/pca/leaf-key.pem\", \"extra_ca\": \"%s/uca/ca.pem\"},\n"
             " \"resolve\": [\"up.test:%u:127.0.0.1\", \"up.test:%u:127.0.0.1\"],\n"
             " \"timeouts\": {\"drain_ms\": 2000},\n"
             " \"routes\": [{\"host\": \"up.test:%u\"}, {\"host\": \"up.test:%u\"}]}\n",
             dir, dir, dir, dir, plain.port, secure.port, plain.port, secure.port);
    testutil_write(cfg, text);
    struct config *c = NULL;
    struct bottle_err err = {0};
    if (config_load(cfg, &no_tokens, &c, &err) < 0)
        fail_msg("%s", err.msg);
    if (proxy_init(&px, cfg, c, &no_tokens, &err) < 0)
        fail_msg("%s", err.msg);
    atomic_store(&plain.accepted, 0);
    atomic_store(&secure.accepted, 0);
    atomic_store(&close_idle, 0);
    pthread_create(&px_thread, NULL, px_run, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    kill(getpid(), SIGTERM);
    pthread_join(px_thread, NULL);
    proxy_free(&px);
    atomic_store(&close_idle, 1); /* the next test starts with no connection left over */
    usleep(100000);
    return 0;
}

/* ---- clients --------------------------------------------------------------------- */

static int dial_proxy(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(px.listen_port)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads one response with a 2-byte body; true when it is a 200. */
static bool read_response(SSL *ssl, int fd)
{
    char buf[4096];
    size_t n = 0;
    for (;;) {
        int r = ssl ? SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n))
                    : (int)recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
        if (r <= 0)
            return false;
        n += (size_t)r;
        buf[n] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end && n >= (size_t)(end + 4 - buf) + 2)
            return strncmp(buf, "HTTP/1.1 200", 12) == 0 && strcmp(end + 4, "ok") == 0;
    }
}

/* One client connection, one plain request, closed after the answer. */
static bool plain_client(void)
{
    int fd = dial_proxy();
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET http://up.test:%u/ HTTP/1.1\r\nHost: up.test:%u\r\n\r\n",
                 plain.port, plain.port);
    bool ok = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n && read_response(NULL, fd);
    close(fd);
    return ok;
}

/* One client connection: CONNECT, TLS through the interception, one request, closed. */
static bool tls_client(void)
{
    int fd = dial_proxy();
    char req[256], resp[512];
    int n = snprintf(req, sizeof(req), "CONNECT up.test:%u HTTP/1.1\r\nHost: up.test:%u\r\n\r\n",
                     secure.port, secure.port);
    bool ok = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
    size_t got = 0;
    while (ok && got < sizeof(resp) - 1) {
        ssize_t r = recv(fd, resp + got, 1, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        resp[got] = '\0';
        if (strstr(resp, "\r\n\r\n"))
            break;
    }
    ok = ok && strncmp(resp, "HTTP/1.1 200", 12) == 0;
    SSL *ssl = SSL_new(client_ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "up.test");
    SSL_set1_host(ssl, "up.test");
    ok = ok && SSL_connect(ssl) == 1;
    n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: up.test:%u\r\n\r\n", secure.port);
    ok = ok && SSL_write(ssl, req, n) == n && read_response(ssl, fd);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
    return ok;
}

/* The proxy parks the upstream after the client left: give its loop a moment. */
static void settle(void)
{
    usleep(100000);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_plain_reused_across_clients(void **state)
{
    (void)state;
    assert_true(plain_client());
    settle();
    assert_true(plain_client());
    settle();
    assert_true(plain_client());
    assert_int_equal(atomic_load(&plain.accepted), 1);
    assert_int_equal(px.metrics.upstream_connects, 1);
}

static void test_tls_reused_across_clients(void **state)
{
    (void)state;
    assert_true(tls_client());
    settle();
    assert_true(tls_client());
    assert_int_equal(atomic_load(&secure.accepted), 1);
}

static void test_closed_by_upstream_not_used(void **state)
{
    (void)state;
    assert_true(tls_client());
    assert_true(plain_client());
    settle();
    atomic_store(&close_idle, 1); /* the upstreams hang up their idle connections */
    usleep(150000);
    atomic_store(&close_idle, 0);
    /* the next requests get fresh connections and succeed */
    assert_true(tls_client());
    assert_true(plain_client());
    assert_int_equal(atomic_load(&secure.accepted), 2);
    assert_int_equal(atomic_load(&plain.accepted), 2);
}

static void test_not_reused_after_reload(void **state)
{
    (void)state;
    assert_true(plain_client());
    settle();
    kill(getpid(), SIGHUP); /* same file, new generation */
    for (int i = 0; i < 100 && px.metrics.reloads_ok == 0; i++)
        usleep(10000);
    assert_true(plain_client());
    assert_int_equal(atomic_load(&plain.accepted), 2);
}

static void test_busy_connection_not_shared(void **state)
{
    (void)state;
    /* two clients at once need two upstream connections; both are then kept */
    int a = dial_proxy(), b = dial_proxy();
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET http://up.test:%u/ HTTP/1.1\r\nHost: up.test:%u\r\n\r\n",
                 plain.port, plain.port);
    assert_int_equal(send(a, req, (size_t)n, MSG_NOSIGNAL), n);
    assert_true(read_response(NULL, a));
    assert_int_equal(send(b, req, (size_t)n, MSG_NOSIGNAL), n);
    assert_true(read_response(NULL, b));
    assert_int_equal(atomic_load(&plain.accepted), 2);
    close(a);
    close(b);
    settle();
    assert_true(plain_client());
    assert_true(plain_client());
    assert_int_equal(atomic_load(&plain.accepted), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_reused_across_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_reused_across_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_by_upstream_not_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_reused_after_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_connection_not_shared, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
