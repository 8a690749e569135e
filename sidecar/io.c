/* io — read buffers and endpoint I/O (see io.h). */
#include "sidecar/io.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void iobuf_reserve(struct iobuf *b, size_t want_free, size_t max_cap)
{
    if (!b->data) {
        b->cap = CONN_BUF_SIZE;
        b->data = xmalloc(b->cap);
        b->start = b->end = 0;
    }
    if (b->start == b->end)
        b->start = b->end = 0;
    if (b->cap - b->end >= want_free)
        return;
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    if (b->cap - b->end >= want_free || b->cap >= max_cap)
        return;
    size_t cap = b->cap;
    while (cap - b->end < want_free && cap < max_cap)
        cap *= 2;
    if (cap > max_cap)
        cap = max_cap;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void iobuf_release_if_empty(struct iobuf *b)
{
    if (b->data && b->start == b->end) {
        free(b->data);
        memset(b, 0, sizeof(*b));
    }
}

ssize_t ep_ssl_result(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    ERR_clear_error();
    return -EIO;
}

/*
 * The error queue is empty here: every failure path clears it (ep_ssl_result,
 * tls_last_error, the loop once per turn), so SSL_get_error can be trusted
 * without clearing before each call.
 */
ssize_t ep_read(struct endpoint *ep, char *p, size_t n)
{
    if (ep->ssl) {
        int r = SSL_read(ep->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        return r > 0 ? r : ep_ssl_result(ep->ssl, r);
    }
    ssize_t r = recv(ep->fd, p, n, 0);
    if (r >= 0)
        return r;
    return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
}

ssize_t ep_write(struct endpoint *ep, const char *p, size_t n)
{
    if (ep->ssl) {
        int r = SSL_write(ep->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        return r > 0 ? r : ep_ssl_result(ep->ssl, r);
    }
    ssize_t r = send(ep->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0)
        return r;
    return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
}

bool ep_handshaking(const struct endpoint *ep)
{
    return ep->ssl && !SSL_is_init_finished(ep->ssl);
}
