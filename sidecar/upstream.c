/*
 * upstream — reaching the upstream of an allowed request: resolve the name
 * off the loop, refuse addresses in blocked networks unless a resolve
 * override or the route names the address, connect to exactly the address
 * that was checked (no second resolution, so no DNS rebinding), and run the
 * verified TLS handshake. Idle upstream connections are pooled across
 * client connections (struct pool_entry in conn.h).
 */
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
#include "sidecar/conn.h"
#include "sidecar/netcheck.h"

#define RESOLVERS_MAX 64

struct resolve_job {
    struct conn *conn; /* NULL once the connection is gone (loop thread only) */
    int notify_fd;
    char host[HOST_NAME_MAX_LEN + 1];
    char port[8];
    struct addrinfo *res;
    int rc;
};

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

void upstream_close(struct conn *c)
{
    if (c->job) {
        c->job->conn = NULL;
        c->job = NULL;
    }
    if (c->up.ssl)
        SSL_free(c->up.ssl);
    if (c->up.fd >= 0)
        close(c->up.fd);
    c->up.ssl = NULL;
    c->up.fd = -1;
    c->up.eof = false;
    c->up.rd = c->up.wr = false;
    c->up_ready = false;
    c->up_idle = false;
    c->uin.start = c->uin.end = 0;
    c->u2c_ok = 0;
    buf_reset(&c->uout);
    c->uout_off = 0;
}

bool upstream_reusable(const struct conn *c, const char *host, uint16_t port, bool tls)
{
    return c->up.fd >= 0 && c->up_ready && c->up_idle && !c->up.eof && c->up_port == port &&
           c->up_tls == tls && c->up_gen == c->px->cfg_gen && strcmp(c->up_host, host) == 0 &&
           c->uin.start == c->uin.end;
}

/* ---- the pool of idle upstream connections ------------------------------------- */

/* Has the upstream sent anything (bytes, EOF, an error) on an idle connection? */
static bool idle_quiet(int fd)
{
    char probe;
    ssize_t r = recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void entry_kill(struct proxy *px, struct pool_entry **link)
{
    struct pool_entry *e = *link;
    *link = e->next;
    px->n_pooled--;
    if (e->ssl)
        SSL_free(e->ssl);
    if (e->fd >= 0)
        close(e->fd);
    e->ssl = NULL;
    e->fd = -1;
    e->dead = true;
    e->next = px->pool_dead; /* a stale event of this turn may still name it */
    px->pool_dead = e;
}

static bool same_addr(const struct config_addr *a, const struct config_addr *b)
{
    return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

void upstream_release(struct conn *c)
{
    struct proxy *px = c->px;
    if (c->up.fd < 0)
        return;
    if (!c->up_ready || !c->up_idle || c->up.eof || c->job || c->up_gen != px->cfg_gen ||
        px->draining || c->uin.start != c->uin.end || c->uout.len ||
        (c->up.ssl && SSL_has_pending(c->up.ssl)) || !idle_quiet(c->up.fd)) {
        upstream_close(c);
        return;
    }
    size_t same = 0;
    struct pool_entry **last = &px->pool, **oldest_same = NULL;
    for (struct pool_entry **l = &px->pool; *l; l = &(*l)->next) {
        struct pool_entry *e = *l;
        if (e->port == c->up_port && e->tls == c->up_tls && strcmp(e->host, c->up_host) == 0) {
            same++;
            oldest_same = l;
        }
        last = l;
    }
    if (same >= POOL_PER_KEY)
        entry_kill(px, oldest_same);
    else if (px->n_pooled >= POOL_MAX)
        entry_kill(px, last);
    struct pool_entry *e = xcalloc(1, sizeof(*e));
    e->h = (struct proxy_handle){PROXY_H_POOL, e};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = &e->h};
    if (epoll_ctl(px->epfd, EPOLL_CTL_MOD, c->up.fd, &ev) < 0) {
        free(e);
        upstream_close(c);
        return;
    }
    e->fd = c->up.fd;
    e->ssl = c->up.ssl;
    snprintf(e->host, sizeof(e->host), "%s", c->up_host);
    e->port = c->up_port;
    e->tls = c->up_tls;
    e->addr = c->up_addr;
    e->gen = c->up_gen;
    unsigned idle = c->cfg ? c->cfg->timeouts.idle_ms : px->cfg->timeouts.idle_ms;
    e->expires_ms = (uint64_t)clock_mono_ms() + (idle < POOL_IDLE_MS ? idle : POOL_IDLE_MS);
    e->next = px->pool;
    px->pool = e;
    px->n_pooled++;
    c->up.fd = -1; /* the pool owns it now */
    c->up.ssl = NULL;
    upstream_close(c);
}

/* Takes a pooled connection for host:port:tls (addr: the address it must have, or NULL). */
static bool pool_take(struct conn *c, const struct config_addr *addr)
{
    struct proxy *px = c->px;
    uint64_t now = (uint64_t)clock_mono_ms();
    for (struct pool_entry **l = &px->pool; *l;) {
        struct pool_entry *e = *l;
        if (e->port != c->up_port || e->tls != c->up_tls || strcmp(e->host, c->up_host) != 0 ||
            (addr && !same_addr(addr, &e->addr))) {
            l = &e->next;
            continue;
        }
        if (e->gen != px->cfg_gen || now >= e->expires_ms || !idle_quiet(e->fd)) {
            entry_kill(px, l);
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                                 .data.ptr = &c->up.h};
        if (epoll_ctl(px->epfd, EPOLL_CTL_MOD, e->fd, &ev) < 0) {
            entry_kill(px, l);
            continue;
        }
        c->up.fd = e->fd;
        c->up.ssl = e->ssl;
        c->up.rd = c->up.wr = true;
        c->up_addr = e->addr;
        c->up_gen = e->gen;
        e->fd = -1;
        e->ssl = NULL;
        entry_kill(px, l);
        px->metrics.upstream_reused++;
        return true;
    }
    return false;
}

void upstream_pool_event(struct proxy *px, struct pool_entry *e)
{
    if (e->dead)
        return;
    for (struct pool_entry **l = &px->pool; *l; l = &(*l)->next)
        if (*l == e) {
            entry_kill(px, l);
            return;
        }
}

void upstream_pool_flush(struct proxy *px, bool expired_only)
{
    uint64_t now = (uint64_t)clock_mono_ms();
    for (struct pool_entry **l = &px->pool; *l;) {
        if (!expired_only || now >= (*l)->expires_ms || (*l)->gen != px->cfg_gen)
            entry_kill(px, l);
        else
            l = &(*l)->next;
    }
}

void upstream_pool_bury(struct proxy *px)
{
    while (px->pool_dead) {
        struct pool_entry *e = px->pool_dead;
        px->pool_dead = e->next;
        free(e);
    }
}

static void addr_text(const struct sockaddr *sa, char *out, size_t len)
{
    const void *a = sa->sa_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (!inet_ntop(sa->sa_family, a, out, (socklen_t)len))
        snprintf(out, len, "?");
}

static void ready(struct conn *c);

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

/* The caller closed any previous upstream first (its head may already be in uout). */
void upstream_open(struct conn *c, const char *host, bool is_ip, uint16_t port, bool tls)
{
    snprintf(c->up_host, sizeof(c->up_host), "%s", host);
    c->up_port = port;
    c->up_tls = tls;
    c->up_is_ip = is_ip;
    const struct config_override *ov = config_find_override(c->cfg, host, port);
    if (ov) { /* named explicitly: may point anywhere, loopback included */
        if (pool_take(c, &ov->addr))
            ready(c);
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
            ready(c);
        else
            connect_addr(c, &addr);
        return;
    }
    /* A pooled connection to a name went to an address checked under this config. */
    if (pool_take(c, NULL)) {
        ready(c);
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

void upstream_resolved(struct proxy *px, struct resolve_job *job)
{
    px->resolvers_running--;
    struct conn *c = job->conn;
    if (!c || c->dead || c->state != CONN_RESOLVE) {
        if (job->res)
            freeaddrinfo(job->res);
        free(job);
        return;
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
    if (!c->dead)
        conn_run(c);
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

static void ready(struct conn *c)
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
            ready(c);
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
            ready(c);
            return;
        }
        int e = SSL_get_error(c->up.ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return;
        tls_failed(c);
    }
}
