/* pool — idle upstream connections (see pool.h). */
#include "sidecar/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"

#define POOL_MAX     256   /* idle upstream connections kept, all hosts */
#define POOL_PER_KEY 32    /* per host, port and TLS flag */
#define POOL_IDLE_MS 15000 /* longest idle time (the config's idle timeout if shorter) */

void pool_drop(struct conn *c)
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

void pool_release(struct conn *c)
{
    struct proxy *px = c->px;
    if (c->up.fd < 0)
        return;
    if (!c->up_ready || !c->up_idle || c->up.eof || c->job || c->up_gen != px->cfg_gen ||
        px->draining || c->uin.start != c->uin.end || c->uout.len ||
        (c->up.ssl && SSL_has_pending(c->up.ssl)) || !idle_quiet(c->up.fd)) {
        pool_drop(c);
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
        pool_drop(c);
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
    pool_drop(c);
}

bool pool_take(struct conn *c, const struct config_addr *addr)
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

void pool_event(struct proxy *px, struct pool_entry *e)
{
    if (e->dead)
        return;
    for (struct pool_entry **l = &px->pool; *l; l = &(*l)->next)
        if (*l == e) {
            entry_kill(px, l);
            return;
        }
}

void pool_flush(struct proxy *px, bool expired_only)
{
    uint64_t now = (uint64_t)clock_mono_ms();
    for (struct pool_entry **l = &px->pool; *l;) {
        if (!expired_only || now >= (*l)->expires_ms || (*l)->gen != px->cfg_gen)
            entry_kill(px, l);
        else
            l = &(*l)->next;
    }
}

void pool_bury(struct proxy *px)
{
    while (px->pool_dead) {
        struct pool_entry *e = px->pool_dead;
        px->pool_dead = e->next;
        free(e);
    }
}
