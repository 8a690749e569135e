/*
 * io — the byte-level I/O under a connection: its read buffers (struct
 * iobuf: grown on demand up to a cap, compacted, given back when empty) and
 * reading and writing an endpoint, plain or over TLS, without blocking.
 *
 * It never looks at what the bytes mean and never changes a connection's
 * state: a read or write returns the byte count, 0 at EOF, -EAGAIN when the
 * endpoint has to wait for its next event, or another negative errno, and
 * the caller decides what follows.
 */
#ifndef BOTTLE_SIDECAR_IO_H
#define BOTTLE_SIDECAR_IO_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sidecar/proxy_types.h"

/* Makes room for want_free bytes after b->end, growing to at most max_cap. */
void iobuf_reserve(struct iobuf *b, size_t want_free, size_t max_cap);

static inline size_t iobuf_len(const struct iobuf *b)
{
    return b->end - b->start;
}

/* Gives an empty buffer's memory back: idle connections stay small. */
void iobuf_release_if_empty(struct iobuf *b);

ssize_t ep_read(struct endpoint *ep, char *p, size_t n);
ssize_t ep_write(struct endpoint *ep, const char *p, size_t n);
/* A TLS endpoint whose handshake is not finished. */
bool ep_handshaking(const struct endpoint *ep);
/* What an OpenSSL call's result r means: -EAGAIN (wait), 0 (closed) or -EIO. */
ssize_t ep_ssl_result(SSL *ssl, int r);

#endif
