/*
 * control — see control.h.
 */
#include "runtime/controller/control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"

char *control_socket_path(const char *home, const char *slug)
{
    return xasprintf("%s/run/%s.sock", home, slug);
}

static int fill_addr(const char *path, struct sockaddr_un *sa, struct bottle_err *err)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return err_set(err, ENAMETOOLONG,
                       "control socket path %s is too long for a unix socket; use a shorter "
                       "BOTTLE_HOME",
                       path);
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* ---- server ------------------------------------------------------------------------ */

static void client_close(struct control_client *cl)
{
    if (cl->fd >= 0)
        close(cl->fd);
    cl->fd = -1;
    cl->len = 0;
}

int control_server_open(struct control_server *s, const char *path, control_handler_fn handler,
                        void *ctx, struct bottle_err *err)
{
    memset(s, 0, sizeof(*s));
    s->listen_fd = -1;
    for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
        s->clients[i].fd = -1;
    s->handler = handler;
    s->ctx = ctx;
    struct sockaddr_un sa;
    int rc = fill_addr(path, &sa, err);
    if (rc < 0)
        return rc;
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode))
            return err_set(err, EEXIST, "control socket: %s exists and is not a socket", path);
        unlink(path); /* a crashed controller's; the slug lock says it is ours now */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return err_set(err, errno, "control socket: %s", strerror(errno));
    mode_t old = umask(0177);
    int b = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int bind_errno = errno;
    umask(old);
    if (b < 0) {
        close(fd);
        return err_set(err, bind_errno, "control socket: cannot bind %s: %s", path,
                       strerror(bind_errno));
    }
    s->path = xstrdup(path);
    s->listen_fd = fd;
    if (chmod(path, 0600) < 0 || listen(fd, CONTROL_MAX_CLIENTS) < 0) {
        rc = err_set(err, errno, "control socket: %s: %s", path, strerror(errno));
        control_server_close(s);
        return rc;
    }
    return 0;
}

void control_server_close(struct control_server *s)
{
    for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0)
            client_close(&s->clients[i]);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
        if (s->path)
            unlink(s->path);
    }
    free(s->path);
    s->path = NULL;
}

size_t control_server_pollfds(const struct control_server *s, struct pollfd *fds)
{
    size_t n = 0;
    if (s->listen_fd < 0)
        return 0;
    fds[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++)
        if (s->clients[i].fd >= 0)
            fds[n++] = (struct pollfd){.fd = s->clients[i].fd, .events = POLLIN};
    return n;
}

/* Best effort and never blocking: a peer that does not read loses its connection. */
static bool send_line(int fd, const char *text)
{
    size_t len = strlen(text);
    char *line = xasprintf("%s\n", text);
    ssize_t w = send(fd, line, len + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    free(line);
    return w == (ssize_t)(len + 1);
}

static void send_error(int fd, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    json_add_bool(o, "ok", false);
    json_add_str(o, "error", msg);
    char *t = cJSON_PrintUnformatted(o);
    send_line(fd, t);
    free(t);
    cJSON_Delete(o);
}

static void accept_client(struct control_server *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    struct ucred cred;
    socklen_t cl = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        send_error(fd, "permission denied: only root may control a bottle");
        close(fd);
        return;
    }
    for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        struct control_client *c = &s->clients[i];
        if (c->fd < 0) {
            c->fd = fd;
            c->uid = cred.uid;
            c->len = 0;
            c->last_ms = clock_mono_ms();
            return;
        }
    }
    send_error(fd, "too many control connections; try again");
    close(fd);
}

/* Answers every complete line in the client's buffer; false when the client must go. */
static bool serve_lines(struct control_server *s, struct control_client *c)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (!nl)
            break;
        size_t line_len = (size_t)(nl - c->buf);
        char *resp = control_handle_line(c->buf, line_len, s->handler, s->ctx, c->uid);
        bool sent = send_line(c->fd, resp);
        free(resp);
        /* The handler may have closed the server (kill, stop with teardown). */
        if (c->fd < 0 || !sent)
            return false;
        memmove(c->buf, nl + 1, c->len - line_len - 1);
        c->len -= line_len + 1;
    }
    if (c->len == sizeof(c->buf)) {
        send_error(c->fd, "request line too long (at most 4096 bytes)");
        return false;
    }
    return true;
}

static void read_client(struct control_server *s, struct control_client *c)
{
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        client_close(c);
        return;
    }
    c->len += (size_t)r;
    c->last_ms = clock_mono_ms();
    if (!serve_lines(s, c))
        client_close(c);
}

void control_server_dispatch(struct control_server *s, const struct pollfd *fds, size_t n)
{
    bool accept_now = false;
    for (size_t k = 0; k < n; k++) {
        if (!fds[k].revents)
            continue;
        if (fds[k].fd == s->listen_fd) {
            accept_now = true;
            continue;
        }
        for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++) {
            struct control_client *c = &s->clients[i];
            if (c->fd >= 0 && c->fd == fds[k].fd) {
                if (fds[k].revents & POLLIN)
                    read_client(s, c);
                else
                    client_close(c); /* POLLHUP or POLLERR without data */
                break;
            }
        }
        if (s->listen_fd < 0)
            return;
    }
    long long now = clock_mono_ms();
    for (size_t i = 0; i < CONTROL_MAX_CLIENTS; i++) {
        struct control_client *c = &s->clients[i];
        if (c->fd >= 0 && now - c->last_ms > CONTROL_IDLE_MS)
            client_close(c);
    }
    if (accept_now && s->listen_fd >= 0)
        accept_client(s);
}

char *control_handle_line(const char *line, size_t len, control_handler_fn handler, void *ctx,
                          uid_t peer_uid)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    cJSON *resp = cJSON_CreateObject();
    struct bottle_err err;
    err_clear(&err);
    cJSON *req = len ? cJSON_ParseWithLength(line, len) : NULL;
    const char *cmd = NULL;
    int rc = 0;
    if (!len)
        rc = err_set(&err, EINVAL,
                     "empty request: send one JSON object per line, like "
                     "{\"cmd\":\"status\"}");
    else if (!req)
        rc = err_set(&err, EINVAL, "malformed request: not JSON");
    else if (!cJSON_IsObject(req) || !(cmd = json_get_str(req, "cmd")) || !*cmd)
        rc = err_set(&err, EINVAL, "malformed request: want a JSON object with a string \"cmd\"");
    if (rc == 0) {
        json_add_bool(resp, "ok", true);
        rc = handler(ctx, cmd, req, resp, peer_uid, &err);
    }
    if (rc < 0) {
        cJSON_Delete(resp);
        resp = cJSON_CreateObject();
        json_add_bool(resp, "ok", false);
        json_add_str(resp, "error", err.msg[0] ? err.msg : strerror(-rc));
    }
    cJSON_Delete(req);
    char *text = cJSON_PrintUnformatted(resp);
    cJSON_Delete(resp);
    return text;
}

/* ---- client ------------------------------------------------------------------------ */

static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - clock_mono_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

int control_request(const char *path, const cJSON *req, int timeout_ms, cJSON **resp,
                    struct bottle_err *err)
{
    *resp = NULL;
    struct sockaddr_un sa;
    int rc = fill_addr(path, &sa, err);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(err, errno, "control socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = err_set(err, errno, "no controller answers on %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    long long deadline = clock_mono_ms() + timeout_ms;
    char *text = cJSON_PrintUnformatted(req);
    char *line = xasprintf("%s\n", text);
    free(text);
    size_t off = 0, len = strlen(line);
    int send_errno = 0;
    while (off < len) {
        ssize_t w = send(fd, line + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            send_errno = errno; /* a refusal may still be waiting to be read */
            break;
        }
        off += (size_t)w;
    }
    free(line);
    struct buf in = BUF_INIT;
    while (rc == 0 && !(in.len && in.data[in.len - 1] == '\n')) {
        int wr = wait_fd(fd, POLLIN, deadline);
        if (wr < 0) {
            rc = err_set(err, -wr, "the controller did not answer on %s within %d ms", path,
                         timeout_ms);
            break;
        }
        char chunk[1024];
        ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = err_set(err, send_errno ? send_errno : errno, "control socket %s: %s", path,
                         strerror(send_errno ? send_errno : errno));
        else if (r == 0 && send_errno)
            rc = err_set(err, send_errno, "control socket %s: %s", path, strerror(send_errno));
        else if (r == 0)
            rc = err_set(err, ECONNRESET, "the controller closed %s without answering", path);
        else if (in.len + (size_t)r > 1u << 20)
            rc = err_set(err, EMSGSIZE, "the controller's answer is too long");
        else
            buf_append(&in, chunk, (size_t)r);
    }
    close(fd);
    if (rc == 0) {
        *resp = cJSON_ParseWithLength(in.data, in.len);
        if (!*resp || !cJSON_IsObject(*resp)) {
            cJSON_Delete(*resp);
            *resp = NULL;
            rc = err_set(err, EPROTO, "the controller's answer is not a JSON object");
        }
    }
    buf_free(&in);
    return rc;
}

int control_simple(const char *home, const char *slug, const char *cmd, int timeout_ms,
                   cJSON **resp, struct bottle_err *err)
{
    if (resp)
        *resp = NULL;
    char *path = control_socket_path(home, slug);
    cJSON *req = cJSON_CreateObject();
    json_add_str(req, "cmd", cmd);
    cJSON *r = NULL;
    int rc = control_request(path, req, timeout_ms, &r, err);
    cJSON_Delete(req);
    free(path);
    if (rc == 0 && !json_get_bool(r, "ok", false)) {
        const char *msg = json_get_str(r, "error");
        rc = err_set(err, EIO, "%s: %s", slug, msg ? msg : "the controller refused");
    }
    if (resp && rc == 0)
        *resp = r;
    else
        cJSON_Delete(r);
    return rc;
}
