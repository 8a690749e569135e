/* upstream — resolve, check, connect, handshake (see upstream.h). */
#include "sidecar/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "sidecar/netcheck.h"
#include "sidecar/pool.h"
#include "sidecar/respond.h"

#define RESOLVERS_MAX 64

static void *resolve_thread(void *arg)
{
    struct resolve_job *job = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    job->rc = getaddrinfo(job->host, job->port, &hints, &job->res);
    ssize_t w;
    do
        w = write(job->notify_fd, &job, sizeof(job));
    while (w < 0 && errno == EINTR);
    return NULL;
}

bool upstream_reusable(const struct conn *c, const char *host, uint16_t port, bool tls)
{
    return c->up.fd >= 0 && c->up_ready && c->up_idle && !c->up.eof && c->up_port == port &&
           c->up_tls == tls && c->up_gen == c->px->cfg_gen && strcmp(c->up_host, host) == 0 &&
           c->uin.start == c->uin.end;
}

static void addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    const void *a = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)len))
        snprintf(out, len, "?");
}

static void upstream_ready(struct conn *c);

static void connect_addr(struct conn *c, const struct config_addr *addr)
{
    c->up_addr = *addr;
    c->up_gen = c->px->cfg_gen;
    c->px->metrics.upstream_connects++;
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_refuse(c, 502, REASON_UPSTREAM_CONNECT, "cannot create a socket for the upstream");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->up.fd = fd;
    c->up.rd = c->up.wr = true;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = &c->up.h};
    if (epoll_ctl(c->px->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ||
        (connect(fd, (const struct sockaddr *)&addr->sa, addr->len) < 0 && errno != EINPROGRESS)) {
        char msg[200], text[INET6_ADDRSTRLEN];
        addr_text((const struct sockaddr *)&addr->sa, text, sizeof(text));
        snprintf(msg, sizeof(msg), "cannot connect to the upstream at %s: %s", text,
                 strerror(errno));
        conn_refuse(c, 502, REASON_UPSTREAM_CONNECT, msg);
        return;
    }
    c->state = CONN_CONNECT;
    c->deadline_ms = (uint64_t)clock_mono_ms() + c->cfg->timeouts.connect_ms;
}

static void refuse_blocked(struct conn *c, const struct sockaddr *sa, const char *net)
{
    char msg[400], text[INET6_ADDRSTRLEN];
    addr_text(sa, text, sizeof(text));
    snprintf(msg, sizeof(msg),
             "%.120s resolves to %s in a blocked network (%.40s); only a resolve override or a "
             "route naming that address allows it",
             c->up_host, text, net);
    conn_refuse(c, 403, REASON_UPSTREAM_BLOCKED, msg);
}

void upstream_open(struct conn *c, const char *host, bool is_ip, uint16_t port, bool tls)
{
    snprintf(c->up_host, sizeof(c->up_host), "%s", host);
    c->up_port = port;
    c->up_tls = tls;
    c->up_is_ip = is_ip;
    const struct config_override *ov = config_find_override(c->cfg, host, port);
    if (ov) { /* named explicitly: may point anywhere, loopback included */
        if (pool_take(c, &ov->addr))
            upstream_ready(c);
        else
            connect_addr(c, &ov->addr);
        return;
    }
    if (is_ip) {
        /* An IP literal only matches a route that names it: that route is the permission. */
        char text[HOST_NAME_MAX_LEN + 8];
        snprintf(text, sizeof(text), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
        struct config_addr addr;
        if (config_parse_addr(text, &addr) < 0) {
            conn_refuse(c, 502, REASON_UPSTREAM_CONNECT, "the upstream address is not valid");
            return;
        }
        if (pool_take(c, &addr))
            upstream_ready(c);
        else
            connect_addr(c, &addr);
        return;
    }
    /* A pooled connection to a name went to an address checked under this config. */
    if (pool_take(c, NULL)) {
        upstream_ready(c);
        return;
    }
    if (c->px->resolvers_running >= RESOLVERS_MAX) {
        conn_refuse(c, 503, REASON_RESOLVER_BUSY, "too many name resolutions in flight");
        return;
    }
    struct resolve_job *job = xcalloc(1, sizeof(*job));
    job->conn = c;
    job->notify_fd = c->px->resolve_pipe[1];
    snprintf(job->host, sizeof(job->host), "%s", host);
    snprintf(job->port, sizeof(job->port), "%u", port);
    pthread_attr_t attr;
    pthread_t tid;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&tid, &attr, resolve_thread, job);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(job);
        conn_refuse(c, 503, REASON_RESOLVER_BUSY, "cannot start a name resolution");
        return;
    }
    c->px->resolvers_running++;
    c->job = job;
    c->state = CONN_RESOLVE;
    c->deadline_ms = (uint64_t)clock_mono_ms() + c->cfg->timeouts.connect_ms;
}

struct conn *upstream_resolved(struct proxy *px, struct resolve_job *job)
{
    px->resolvers_running--;
    struct conn *c = job->conn;
    if (!c || c->dead || c->state != CONN_RESOLVE) {
        if (job->res)
            freeaddrinfo(job->res);
        free(job);
        return NULL;
    }
    c->job = NULL;
    if (job->rc != 0 || !job->res) {
        char msg[256];
        snprintf(msg, sizeof(msg), "cannot resolve %.120s: %s", job->host, gai_strerror(job->rc));
        conn_refuse(c, 502, REASON_UPSTREAM_RESOLVE, msg);
    } else {
        /* Every answer must be public: a split answer is refused whole. */
        const struct addrinfo *pick = NULL, *bad = NULL;
        const char *net = NULL;
        for (const struct addrinfo *ai = job->res; ai && !bad; ai = ai->ai_next) {
            net = netcheck_blocked(ai->ai_addr);
            if (net)
                bad = ai;
            else if (!pick)
                pick = ai;
        }
        if (bad) {
            refuse_blocked(c, bad->ai_addr, net);
        } else {
            struct config_addr addr = {0};
            memcpy(&addr.sa, pick->ai_addr, pick->ai_addrlen);
            addr.len = pick->ai_addrlen;
            connect_addr(c, &addr);
        }
    }
    freeaddrinfo(job->res);
    free(job);
    return c;
}

static void tls_failed(struct conn *c)
{
    char msg[400], detail[200];
    long verify = SSL_get_verify_result(c->up.ssl);
    if (verify != X509_V_OK)
        snprintf(detail, sizeof(detail), "certificate verification failed: %s",
                 X509_verify_cert_error_string(verify));
    else
        tls_last_error(detail, sizeof(detail));
    snprintf(msg, sizeof(msg), "TLS to %.80s:%u failed: %s", c->up_host, c->up_port, detail);
    conn_refuse(c, 502, REASON_UPSTREAM_TLS, msg);
}

static void upstream_ready(struct conn *c)
{
    c->up_ready = true;
    c->state = CONN_EXCHANGE;
    c->deadline_ms = (uint64_t)clock_mono_ms() + c->cfg->timeouts.io_ms;
}

void upstream_step(struct conn *c)
{
    if (c->state == CONN_CONNECT) {
        struct pollfd p = {.fd = c->up.fd, .events = POLLOUT};
        if (poll(&p, 1, 0) <= 0)
            return;
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(c->up.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr) {
            char msg[200], text[INET6_ADDRSTRLEN];
            addr_text((const struct sockaddr *)&c->up_addr.sa, text, sizeof(text));
            snprintf(msg, sizeof(msg), "cannot connect to the upstream at %s: %s", text,
                     strerror(soerr));
            conn_refuse(c, 502, REASON_UPSTREAM_CONNECT, msg);
            return;
        }
        if (!c->up_tls) {
            upstream_ready(c);
            return;
        }
        c->up.ssl = tls_upstream_new(&c->px->tls, c->up_host, c->up_is_ip);
        if (!c->up.ssl || SSL_set_fd(c->up.ssl, c->up.fd) != 1) {
            tls_failed(c);
            return;
        }
        c->state = CONN_UP_TLS;
        c->deadline_ms = (uint64_t)clock_mono_ms() + c->cfg->timeouts.handshake_ms;
    }
    if (c->state == CONN_UP_TLS) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->up.ssl);
        if (r == 1) {
            upstream_ready(c);
            return;
        }
        int e = SSL_get_error(c->up.ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        tls_failed(c);
    }
}
