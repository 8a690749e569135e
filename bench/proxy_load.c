/*
 * proxy_load — the sidecar bench's two ends: a threaded keep-alive HTTPS
 * upstream with a fixed-size body, and a load generator that talks to it
 * directly or through a CONNECT proxy and prints requests/s and latency
 * percentiles. Numbers only; nothing is asserted.
 *
 *   proxy_load serve CERT KEY PORTFILE
 *   proxy_load load HOST PORT PROXYPORT(0=direct) CAFILE CLIENTS SECONDS SIZE keepalive|newconn
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *ctx;
static const char *host, *cafile;
static int port, proxy_port, seconds;
static size_t size;
static int newconn;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *serve_one(void *arg)
{
    SSL *ssl = arg;
    static char body[1 << 20];
    char buf[16384];
    size_t have = 0;
    if (SSL_accept(ssl) == 1)
        for (;;) {
            int r = SSL_read(ssl, buf + have, (int)(sizeof(buf) - have - 1));
            if (r <= 0)
                break;
            have += (size_t)r;
            buf[have] = 0;
            char *end = strstr(buf, "\r\n\r\n");
            if (!end)
                continue;
            size_t n = 65536;
            char *q = strstr(buf, "size=");
            if (q && q < end)
                n = strtoul(q + 5, NULL, 10);
            if (n > sizeof(body))
                n = sizeof(body);
            char head[128];
            int hl =
                snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
            memset(body, 'x', n);
            if (SSL_write(ssl, head, hl) <= 0 || (n && SSL_write(ssl, body, (int)n) <= 0))
                break;
            size_t used = (size_t)(end + 4 - buf);
            memmove(buf, buf + used, have - used);
            have -= used;
        }
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static int serve(const char *cert, const char *key, const char *portfile)
{
    ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return 1;
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1024) < 0)
        return 1;
    socklen_t len = sizeof(a);
    getsockname(ls, (struct sockaddr *)&a, &len);
    FILE *f = fopen(portfile, "w");
    fprintf(f, "%d\n", ntohs(a.sin_port));
    fclose(f);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        pthread_t t;
        pthread_create(&t, NULL, serve_one, ssl);
        pthread_detach(t);
    }
}

static SSL *dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(proxy_port ? proxy_port : port)};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return NULL;
    }
    if (proxy_port) {
        char req[512], resp[512];
        int n = snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host,
                         port, host, port);
        if (write(fd, req, (size_t)n) != n) {
            close(fd);
            return NULL;
        }
        size_t got = 0;
        while (got < sizeof(resp) - 1) {
            ssize_t r = read(fd, resp + got, 1);
            if (r <= 0)
                break;
            got += (size_t)r;
            resp[got] = 0;
            if (strstr(resp, "\r\n\r\n"))
                break;
        }
        if (strncmp(resp, "HTTP/1.1 200", 12) != 0) {
            close(fd);
            return NULL;
        }
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    return ssl;
}

static void hang_up(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
}

struct worker {
    double *lat;
    size_t n, cap;
    size_t errors;
};

static int one_request(SSL *ssl)
{
    char req[256], buf[65536];
    int n = snprintf(req, sizeof(req), "GET /x?size=%zu HTTP/1.1\r\nHost: %s:%d\r\n\r\n", size,
                     host, port);
    if (SSL_write(ssl, req, n) != n)
        return -1;
    size_t have = 0, want = (size_t)-1;
    char head[4096];
    size_t hl = 0;
    while (have < want) {
        int r = SSL_read(ssl, buf, sizeof(buf));
        if (r <= 0)
            return -1;
        if (want == (size_t)-1) {
            size_t take = (size_t)r < sizeof(head) - hl - 1 ? (size_t)r : sizeof(head) - hl - 1;
            memcpy(head + hl, buf, take);
            hl += take;
            head[hl] = 0;
            char *end = strstr(head, "\r\n\r\n");
            char *cl = strstr(head, "Content-Length: ");
            if (!end || !cl)
                continue;
            want = (size_t)(end + 4 - head) + strtoul(cl + 16, NULL, 10);
        }
        have += (size_t)r;
    }
    return 0;
}

static void *load_worker(void *arg)
{
    struct worker *w = arg;
    double stop = now() + seconds;
    SSL *ssl = NULL;
    while (now() < stop) {
        double t0 = now();
        if (!ssl)
            ssl = dial();
        if (!ssl || one_request(ssl) < 0) {
            w->errors++;
            if (ssl)
                hang_up(ssl);
            ssl = NULL;
            continue;
        }
        if (newconn) {
            hang_up(ssl);
            ssl = NULL;
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 4096;
            w->lat = realloc(w->lat, w->cap * sizeof(double));
        }
        w->lat[w->n++] = now() - t0;
    }
    if (ssl)
        hang_up(ssl);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2], argv[3], argv[4]);
    if (argc != 10 || strcmp(argv[1], "load") != 0) {
        fprintf(stderr, "usage: see the header of bench/proxy_load.c\n");
        return 2;
    }
    host = argv[2];
    port = atoi(argv[3]);
    proxy_port = atoi(argv[4]);
    cafile = argv[5];
    int clients = atoi(argv[6]);
    seconds = atoi(argv[7]);
    size = strtoul(argv[8], NULL, 10);
    newconn = strcmp(argv[9], "newconn") == 0;
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, cafile, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    struct worker *w = calloc((size_t)clients, sizeof(*w));
    pthread_t *t = calloc((size_t)clients, sizeof(*t));
    for (int i = 0; i < clients; i++)
        pthread_create(&t[i], NULL, load_worker, &w[i]);
    size_t total = 0, errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(t[i], NULL);
        total += w[i].n;
        errors += w[i].errors;
    }
    double *all = malloc((total + 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < clients; i++)
        for (size_t j = 0; j < w[i].n; j++)
            all[k++] = w[i].lat[j];
    qsort(all, total, sizeof(double), cmp);
    printf("%.0f %.3f %.3f %zu\n", total / (double)seconds, total ? all[total / 2] * 1000 : 0,
           total ? all[total * 99 / 100] * 1000 : 0, errors);
    return 0;
}
