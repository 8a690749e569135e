/*
 * proxy_load — the sidecar bench's two ends: a threaded keep-alive HTTPS
 * upstream with a fixed-size body (GET /x?size=N) or a slow server-sent
 * event stream (GET /sse: one event a second), and a load generator that
 * talks to it directly or through a CONNECT proxy and prints requests/s and
 * latency percentiles, or holds connections open and prints what they cost
 * the proxy process in resident memory. Numbers only; nothing is asserted.
 *
 *   proxy_load serve CERT KEY PORTFILE
 *   proxy_load load HOST PORT PROXYPORT(0=direct) CAFILE CLIENTS SECONDS SIZE
 * keepalive|newconn|post prints: requests/s p50_ms p99_ms errors (BENCH_REQUESTS=N: N requests per
 *     client, however long they take); post: keep-alive POSTs of a SIZE-byte
 *     JSON chat body (prose, code and identifiers, as an agent sends), 1 KiB answers
 *   proxy_load idle HOST PORT PROXYPORT CAFILE N PID
 *     N keep-alive connections, one request each, then idle; prints:
 *     rss_before_kib rss_after_kib bytes_per_connection connections_open
 *   proxy_load sse HOST PORT PROXYPORT CAFILE N PID
 *     N open event streams, each past its first event; prints:
 *     rss_before_kib rss_after_kib streams_open
 *   proxy_load freeport          prints a loopback port that was free just now
 *   proxy_load wait PORT SECONDS exits 0 once PORT accepts connections
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static SSL_CTX *ctx;
static const char *host, *cafile;
static int port, proxy_port, seconds;
static size_t size;
static int newconn, post;
static char *post_body; /* the JSON body of post mode */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A slow event stream: one chunked event a second until the client goes. */
static void serve_sse(SSL *ssl)
{
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                       "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (SSL_write(ssl, head, (int)strlen(head)) <= 0)
        return;
    for (unsigned i = 0;; i++) {
        char ev[64], chunk[96];
        int n = snprintf(ev, sizeof(ev), "id: %u\ndata: tick\n\n", i);
        int m = snprintf(chunk, sizeof(chunk), "%x\r\n%s\r\n", n, ev);
        if (SSL_write(ssl, chunk, m) <= 0)
            return;
        sleep(1);
    }
}

static char body[1 << 20];

static void *serve_one(void *arg)
{
    SSL *ssl = arg;
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
            if (strncmp(buf, "GET /sse", 8) == 0) {
                serve_sse(ssl);
                break;
            }
            /* A request body (post mode) is read and dropped before answering. */
            size_t used = (size_t)(end + 4 - buf);
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t skip = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            size_t n = 65536;
            char *q = strstr(buf, "size=");
            if (q && q < end)
                n = strtoul(q + 5, NULL, 10);
            size_t in_buf = have - used < skip ? have - used : skip;
            used += in_buf;
            skip -= in_buf;
            while (skip) {
                char sink[16384];
                int r2 = SSL_read(ssl, sink, (int)(skip < sizeof(sink) ? skip : sizeof(sink)));
                if (r2 <= 0)
                    goto out;
                skip -= (size_t)r2;
            }
            if (n > sizeof(body))
                n = sizeof(body);
            char head[128];
            int hl =
                snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
            if (SSL_write(ssl, head, hl) <= 0 || (n && SSL_write(ssl, body, (int)n) <= 0))
                break;
            memmove(buf, buf + used, have - used);
            have -= used;
        }
out:;
    int fd = SSL_get_fd(ssl);
    SSL_free(ssl);
    close(fd);
    return NULL;
}

static int serve(const char *cert, const char *key, const char *portfile)
{
    memset(body, 'x', sizeof(body));
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
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, serve_one, ssl) == 0) {
            pthread_detach(t);
        } else {
            SSL_free(ssl);
            close(fd);
        }
        pthread_attr_destroy(&attr);
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

/* A chat request of about n bytes: prose, code and identifiers in JSON strings, as agents send. */
static char *chat_body(size_t n)
{
    static const char *const pieces[] = {
        "Please refactor the parser so that it reports line and column for every error. ",
        "static int parse_header(const char *p, size_t n, struct header *out)\\n{\\n",
        "    if (n < 2 || p[0] != '\\\"')\\n        return -EINVAL;\\n",
        "The test in tests/unit/test_sidecar_http.c fails at commit "
        "3f9a2c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39. ",
        "request id 7c9e6679-7425-40de-944b-e07fc1f90ae7, size 4096, retry after 250 ms. ",
    };
    char *b = malloc(n + 256);
    size_t len = (size_t)sprintf(b, "{\"model\":\"bench\",\"max_tokens\":64,\"messages\":"
                                    "[{\"role\":\"user\",\"content\":\"");
    for (size_t i = 0; len + 200 < n; i++) {
        const char *p = pieces[i % 5];
        memcpy(b + len, p, strlen(p));
        len += strlen(p);
    }
    len += (size_t)sprintf(b + len, "\"}]}");
    b[len] = '\0';
    return b;
}

struct worker {
    double *lat;
    size_t n, cap;
    size_t errors;
};

static int one_request(SSL *ssl)
{
    char req[320], buf[65536];
    int n;
    if (post)
        n = snprintf(req, sizeof(req),
                     "POST /v1/messages?size=1024 HTTP/1.1\r\nHost: %s:%d\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     host, port, strlen(post_body));
    else
        n = snprintf(req, sizeof(req), "GET /x?size=%zu HTTP/1.1\r\nHost: %s:%d\r\n\r\n", size,
                     host, port);
    if (SSL_write(ssl, req, n) != n)
        return -1;
    if (post && SSL_write(ssl, post_body, (int)strlen(post_body)) != (int)strlen(post_body))
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
    /* BENCH_REQUESTS: a fixed number of requests per client instead (instruction counts) */
    const char *fixed = getenv("BENCH_REQUESTS");
    size_t limit = fixed ? strtoul(fixed, NULL, 10) : 0;
    while (limit ? w->n < limit && w->errors < 100 : now() < stop) {
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

/* ---- held connections: memory per idle connection and per open stream ---- */

static long rss_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

struct holder {
    SSL **conns;
    size_t want, open;
    int sse;
};

/* Reads until the first event of a stream has arrived. */
static int first_event(SSL *ssl)
{
    char buf[4096];
    size_t have = 0;
    while (have < sizeof(buf) - 1) {
        int r = SSL_read(ssl, buf + have, (int)(sizeof(buf) - 1 - have));
        if (r <= 0)
            return -1;
        have += (size_t)r;
        buf[have] = 0;
        if (strstr(buf, "data: tick"))
            return 0;
    }
    return -1;
}

static void *hold_worker(void *arg)
{
    struct holder *h = arg;
    unsigned failed = 0;
    for (size_t i = 0; i < h->want && failed < 3; i++) { /* a proxy that fails, fails fast */
        SSL *ssl = dial();
        if (!ssl) {
            failed++;
            continue;
        }
        /* a bounded wait: a proxy that stalls a stream does not stall the bench */
        struct timeval tv = {10, 0};
        setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int rc;
        if (h->sse) {
            char req[256];
            int n =
                snprintf(req, sizeof(req), "GET /sse HTTP/1.1\r\nHost: %s:%d\r\n\r\n", host, port);
            rc = SSL_write(ssl, req, n) == n ? first_event(ssl) : -1;
        } else {
            rc = one_request(ssl);
        }
        if (rc < 0) {
            hang_up(ssl);
            failed++;
            continue;
        }
        failed = 0;
        h->conns[h->open++] = ssl;
    }
    return NULL;
}

static int hold(int sse, int n, int pid)
{
    enum { THREADS = 8 };
    struct holder h[THREADS];
    pthread_t t[THREADS];
    long before = rss_kib(pid);
    for (int i = 0; i < THREADS; i++) {
        h[i].want = (size_t)(n / THREADS + (i < n % THREADS));
        h[i].conns = calloc(h[i].want + 1, sizeof(SSL *));
        h[i].open = 0;
        h[i].sse = sse;
        pthread_create(&t[i], NULL, hold_worker, &h[i]);
    }
    size_t open = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        open += h[i].open;
    }
    sleep(1); /* let the proxy settle (buffers released after the last request) */
    long after = rss_kib(pid);
    if (sse)
        printf("%ld %ld %zu\n", before, after, open);
    else
        printf("%ld %ld %.0f %zu\n", before, after,
               open ? (after - before) * 1024.0 / (double)open : 0.0, open);
    fflush(stdout);
    for (int i = 0; i < THREADS; i++)
        for (size_t j = 0; j < h[i].open; j++)
            hang_up(h[i].conns[j]);
    return 0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int tcp_to(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)p)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    close(fd);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "freeport") == 0) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0)
            return 1;
        printf("%d\n", ntohs(a.sin_port));
        close(fd);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "wait") == 0) {
        double stop = now() + atof(argv[3]);
        while (now() < stop) {
            if (tcp_to(atoi(argv[2])) == 0)
                return 0;
            usleep(50000);
        }
        return 1;
    }
    if (argc == 5 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2], argv[3], argv[4]);
    if (argc == 8 && (strcmp(argv[1], "idle") == 0 || strcmp(argv[1], "sse") == 0)) {
        host = argv[2];
        port = atoi(argv[3]);
        proxy_port = atoi(argv[4]);
        size = 1024;
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_load_verify_locations(ctx, argv[5], NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        return hold(strcmp(argv[1], "sse") == 0, atoi(argv[6]), atoi(argv[7]));
    }
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
    post = strcmp(argv[9], "post") == 0;
    if (post)
        post_body = chat_body(size);
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
