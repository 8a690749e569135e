/*
 * tls — the sidecar's two TLS faces.
 *
 * Toward the agent: a server context that answers each intercepted tunnel
 * with a leaf minted for the tunnel's host (cached; one EC key per run),
 * refuses an SNI that differs from the CONNECT host and offers only
 * http/1.1 in ALPN. Toward upstreams: a client context that verifies the
 * chain against the trust store (plus an optional extra CA), sends SNI and
 * checks the host name. This module owns every OpenSSL object of the run;
 * it never touches sockets or the event loop.
 */
#ifndef BOTTLE_SIDECAR_TLS_H
#define BOTTLE_SIDECAR_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define TLS_LEAF_CACHE_MAX 1024

struct tls_paths {
    const char *ca_cert;
    const char *ca_key;
    const char *leaf_key;
    const char *trust_store; /* file or directory; NULL: the system default */
    const char *extra_ca;    /* optional PEM file added to the trust store */
};

struct tls_leaf_entry {
    char *host;
    X509 *cert;
};

struct tls_state {
    X509 *ca;
    EVP_PKEY *ca_key;
    EVP_PKEY *leaf_key;
    SSL_CTX *server_ctx;
    SSL_CTX *upstream_ctx;
    struct tls_leaf_entry cache[TLS_LEAF_CACHE_MAX]; /* open addressing */
    size_t n_cached;
    unsigned long minted; /* leaves minted so far (tests, metrics) */
};

/*
 * What the server side needs to know about one intercepted tunnel; set with
 * tls_server_new() and read back after the handshake.
 */
struct tls_peer {
    char host[256]; /* the CONNECT host, normalized */
    bool host_is_ip;
    bool sni_mismatch; /* the handshake failed because SNI != host */
    char sni[256];     /* what the client sent (for the log) */
};

int tls_state_init(struct tls_state *st, const struct tls_paths *paths, struct bottle_err *err);
void tls_state_free(struct tls_state *st);

/* The cached leaf for host, minted on first use (the state keeps the reference). */
X509 *tls_leaf_get(struct tls_state *st, const char *host, bool is_ip, struct bottle_err *err);

/* A server-side SSL for a tunnel; peer must outlive it. */
SSL *tls_server_new(struct tls_state *st, struct tls_peer *peer);
/* A client-side SSL for an upstream: SNI (names only) and host/IP verification. */
SSL *tls_upstream_new(struct tls_state *st, const char *host, bool is_ip);

/* The last OpenSSL error as text (clears the queue). */
const char *tls_last_error(char *buf, size_t len);

#endif
