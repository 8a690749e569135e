/* proxy — the event loop, listeners, signals, reload and drain (see proxy.h). */
#include "sidecar/proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "sidecar/conn.h"
#include "sidecar/logjson.h"
#include "sidecar/pool.h"
#include "sidecar/respond.h"
#include "sidecar/upstream.h"

#define LISTEN_BACKLOG 1024
#define EVENTS_MAX     256
#define SWEEP_MS       100

static int listen_on(const struct config_addr *addr, const char *what, uint16_t *bound,
                     struct bottle_err *err)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(err, errno, "cannot create the %s socket: %s", what, strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&addr->sa, addr->len) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        return err_set(err, e, "cannot listen on the %s address: %s", what, strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                           : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int watch(struct proxy *px, int fd, struct proxy_handle *h, int kind)
{
    h->kind = kind;
    h->owner = px;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = h};
    return epoll_ctl(px->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int proxy_init(struct proxy *px, const char *config_path, struct config *cfg,
               const struct config_tokens *tokens, struct bottle_err *err)
{
    memset(px, 0, sizeof(*px));
    px->epfd = px->listen_fd = px->control_fd = px->signal_fd = -1;
    px->resolve_pipe[0] = px->resolve_pipe[1] = -1;
    px->cfg = cfg;
    px->tokens = tokens;
    px->config_path = xstrdup(config_path);
    struct tls_paths paths = {cfg->ca_cert, cfg->ca_key, cfg->leaf_key, cfg->trust_store,
                              cfg->extra_ca};
    int rc = tls_state_init(&px->tls, &paths, err);
    if (rc < 0)
        return err_prefix(err, "tls");
    px->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (px->epfd < 0)
        return err_set(err, errno, "epoll_create1: %s", strerror(errno));
    px->listen_fd = listen_on(&cfg->listen, "proxy", &px->listen_port, err);
    if (px->listen_fd < 0)
        return px->listen_fd;
    if (cfg->control_text) {
        px->control_fd = listen_on(&cfg->control, "control", &px->control_port, err);
        if (px->control_fd < 0)
            return px->control_fd;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    px->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (px->signal_fd < 0)
        return err_set(err, errno, "signalfd: %s", strerror(errno));
    if (pipe2(px->resolve_pipe, O_CLOEXEC) < 0)
        return err_set(err, errno, "pipe2: %s", strerror(errno));
    if (watch(px, px->listen_fd, &px->listen_h, PROXY_H_LISTEN) < 0 ||
        (px->control_fd >= 0 && watch(px, px->control_fd, &px->control_h, PROXY_H_CONTROL) < 0) ||
        watch(px, px->signal_fd, &px->signal_h, PROXY_H_SIGNAL) < 0 ||
        watch(px, px->resolve_pipe[0], &px->resolve_h, PROXY_H_RESOLVE) < 0)
        return err_set(err, errno, "epoll_ctl: %s", strerror(errno));
    return 0;
}

static void accept_all(struct proxy *px, int lfd, bool control)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: the backlog keeps the rest */
        if (!control && px->n_conns >= px->cfg->max_connections) {
            respond_connection_limit(px, fd); /* the control listener is never refused */
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = conn_new(px, fd, control);
        if (c)
            conn_run(c);
    }
}

int proxy_reload(struct proxy *px)
{
    struct bottle_err err = {0};
    struct config *next = NULL;
    if (config_load(px->config_path, px->tokens, &next, &err) < 0) {
        px->metrics.reloads_failed++;
        logjson_event(px, "reload_failed", "message", err.msg, "kept", "last good config");
        return -EINVAL;
    }
    if (strcmp(next->listen_text, px->cfg->listen_text) != 0)
        logjson_event(px, "reload_warning", "message",
                      "'listen' changed; the proxy keeps its socket until restarted", NULL, NULL);
    char n[32];
    snprintf(n, sizeof(n), "%zu", next->routes.len);
    config_unref(px->cfg); /* requests in flight hold their own reference */
    px->cfg = next;
    px->cfg_gen++; /* connections made under the old config are not reused */
    pool_flush(px, false);
    px->metrics.reloads_ok++;
    logjson_event(px, "reloaded", "routes", n, NULL, NULL);
    return 0;
}

static void stop_listening(struct proxy *px)
{
    if (px->listen_fd >= 0)
        close(px->listen_fd);
    if (px->control_fd >= 0)
        close(px->control_fd);
    px->listen_fd = px->control_fd = -1;
}

static void begin_drain(struct proxy *px)
{
    if (px->draining)
        return;
    px->draining = true;
    px->drain_deadline_ms = (uint64_t)clock_mono_ms() + px->cfg->timeouts.drain_ms;
    stop_listening(px);
    pool_flush(px, false);
    char n[32];
    snprintf(n, sizeof(n), "%zu", px->n_conns);
    logjson_event(px, "draining", "connections", n, NULL, NULL);
    for (struct conn *c = px->conns, *next; c; c = next) {
        next = c->next;
        if (conn_idle(c) || c->state == CONN_TLS_ACCEPT)
            conn_close(c);
    }
}

static void on_signal(struct proxy *px)
{
    struct signalfd_siginfo si;
    while (read(px->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP)
            proxy_reload(px);
        else
            begin_drain(px);
    }
}

static void on_resolved(struct proxy *px)
{
    struct resolve_job *job;
    while (read(px->resolve_pipe[0], &job, sizeof(job)) == (ssize_t)sizeof(job)) {
        struct conn *c = upstream_resolved(px, job);
        if (c && !c->dead)
            conn_run(c);
    }
}

static void sweep(struct proxy *px)
{
    uint64_t now = (uint64_t)clock_mono_ms();
    for (struct conn *c = px->conns, *next; c; c = next) {
        next = c->next;
        conn_timeout(c, now);
    }
    pool_flush(px, true);
    if (px->draining)
        for (struct conn *c = px->conns, *next; c; c = next) {
            next = c->next;
            if (conn_idle(c))
                conn_close(c);
        }
}

static void bury(struct proxy *px)
{
    while (px->graveyard) {
        struct conn *c = px->graveyard;
        px->graveyard = c->next;
        conn_free_dead(c);
    }
    pool_bury(px);
}

int proxy_run(struct proxy *px)
{
    struct epoll_event events[EVENTS_MAX];
    uint64_t next_sweep = (uint64_t)clock_mono_ms() + SWEEP_MS;
    /* The resolve pipe's read end must not block the loop. */
    fcntl(px->resolve_pipe[0], F_SETFL, O_NONBLOCK);
    for (;;) {
        if (px->draining &&
            (px->n_conns == 0 || (uint64_t)clock_mono_ms() >= px->drain_deadline_ms))
            break;
        int timeout = px->ready ? 0 : SWEEP_MS;
        int n = epoll_wait(px->epfd, events, EVENTS_MAX, timeout);
        if (n < 0 && errno != EINTR)
            return -errno;
        ERR_clear_error(); /* once per turn, not before every TLS call (see io.c) */
        for (int i = 0; i < n; i++) {
            struct proxy_handle *h = events[i].data.ptr;
            switch (h->kind) {
            case PROXY_H_LISTEN:
                if (!px->draining)
                    accept_all(px, px->listen_fd, false);
                break;
            case PROXY_H_CONTROL:
                if (!px->draining)
                    accept_all(px, px->control_fd, true);
                break;
            case PROXY_H_SIGNAL:
                on_signal(px);
                break;
            case PROXY_H_RESOLVE:
                on_resolved(px);
                break;
            case PROXY_H_POOL:
                pool_event(px, h->owner);
                break;
            default: {
                struct conn *c = h->owner;
                if (c->dead)
                    break;
                /* Edge-triggered readiness: the pumps skip a side until it reports again. A
                 * TLS side may need to read to write (and the reverse): any event wakes both. */
                struct endpoint *ep = h->kind == PROXY_H_CLIENT ? &c->cli : &c->up;
                uint32_t e = events[i].events;
                if (ep->ssl) {
                    ep->rd = ep->wr = true;
                } else {
                    ep->rd |= (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
                    ep->wr |= (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
                }
                conn_run(c);
            }
            }
        }
        /* Connections that used their turn get another one, after everyone else. */
        struct conn *ready = px->ready;
        px->ready = NULL;
        while (ready) {
            struct conn *c = ready;
            ready = c->ready_next;
            c->in_ready = false;
            if (!c->dead)
                conn_run(c);
        }
        uint64_t now = (uint64_t)clock_mono_ms();
        if (now >= next_sweep) {
            sweep(px);
            next_sweep = now + SWEEP_MS;
        }
        bury(px);
    }
    char n[32];
    snprintf(n, sizeof(n), "%zu", px->n_conns);
    logjson_event(px, "stopped", "connections_cut", n, NULL, NULL);
    return 0;
}

void proxy_free(struct proxy *px)
{
    while (px->conns)
        conn_close(px->conns);
    pool_flush(px, false);
    bury(px);
    stop_listening(px);
    if (px->signal_fd >= 0)
        close(px->signal_fd);
    if (px->epfd >= 0)
        close(px->epfd);
    /* The resolve pipe stays open: a resolution still running may write to it at exit. */
    tls_state_free(&px->tls);
    config_unref(px->cfg);
    free(px->config_path);
    buf_free(&px->scratch);
    buf_free(&px->fields);
    memset(px, 0, sizeof(*px));
}
