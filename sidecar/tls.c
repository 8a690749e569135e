/* tls — interception and upstream TLS contexts, leaf cache (see tls.h). */
#include "sidecar/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>

#include "common/buf.h"
#include "sidecar/ca.h"

const char *tls_last_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e)
        snprintf(buf, len, "unknown TLS error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static int ssl_fail(struct bottle_err *err, const char *what)
{
    char detail[256];
    return err_set(err, EPROTO, "%s: %s", what, tls_last_error(detail, sizeof(detail)));
}

static uint64_t hash_host(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void cache_clear(struct tls_state *st)
{
    for (size_t i = 0; i < TLS_LEAF_CACHE_MAX; i++) {
        free(st->cache[i].host);
        X509_free(st->cache[i].cert);
        st->cache[i].host = NULL;
        st->cache[i].cert = NULL;
    }
    st->n_cached = 0;
}

X509 *tls_leaf_get(struct tls_state *st, const char *host, bool is_ip, struct bottle_err *err)
{
    size_t i = hash_host(host) % TLS_LEAF_CACHE_MAX;
    for (size_t probe = 0; probe < TLS_LEAF_CACHE_MAX && st->cache[i].host;
         probe++, i = (i + 1) % TLS_LEAF_CACHE_MAX)
        if (strcmp(st->cache[i].host, host) == 0)
            return st->cache[i].cert;
    X509 *cert = ca_leaf_new(st->ca, st->ca_key, st->leaf_key, host, is_ip, err);
    if (!cert)
        return NULL;
    st->minted++;
    /* Bounded: a full cache starts over rather than growing without limit. */
    if (st->n_cached >= TLS_LEAF_CACHE_MAX * 3 / 4)
        cache_clear(st);
    i = hash_host(host) % TLS_LEAF_CACHE_MAX;
    while (st->cache[i].host)
        i = (i + 1) % TLS_LEAF_CACHE_MAX;
    st->cache[i].host = xstrdup(host);
    st->cache[i].cert = cert;
    st->n_cached++;
    return cert;
}

static int peer_index = -1;

/* SNI decides the leaf; an SNI that names another host ends the handshake. */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    struct tls_state *st = arg;
    struct tls_peer *peer = SSL_get_ex_data(ssl, peer_index);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!peer)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    if (sni) {
        snprintf(peer->sni, sizeof(peer->sni), "%s", sni);
        size_t n = strlen(sni);
        if (n && sni[n - 1] == '.')
            n--;
        if (n != strlen(peer->host) || strncasecmp(sni, peer->host, n) != 0) {
            peer->sni_mismatch = true;
            *alert = SSL_AD_UNRECOGNIZED_NAME;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
    }
    X509 *leaf = tls_leaf_get(st, peer->host, peer->host_is_ip, NULL);
    if (!leaf || SSL_use_certificate(ssl, leaf) != 1 ||
        SSL_use_PrivateKey(ssl, st->leaf_key) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned i = 0; i < inlen;) {
        unsigned n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK; /* h2 and others are never spoken */
}

static int server_ctx_init(struct tls_state *st, struct bottle_err *err)
{
    st->server_ctx = SSL_CTX_new(TLS_server_method());
    if (!st->server_ctx)
        return ssl_fail(err, "cannot create the interception TLS context");
    SSL_CTX_set_min_proto_version(st->server_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(st->server_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                         SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(st->server_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                            SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_tlsext_servername_callback(st->server_ctx, servername_cb);
    SSL_CTX_set_tlsext_servername_arg(st->server_ctx, st);
    SSL_CTX_set_alpn_select_cb(st->server_ctx, alpn_select_cb, NULL);
    if (SSL_CTX_use_PrivateKey(st->server_ctx, st->leaf_key) != 1)
        return ssl_fail(err, "cannot use the leaf key");
    return 0;
}

static int upstream_ctx_init(struct tls_state *st, const struct tls_paths *p,
                             struct bottle_err *err)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    st->upstream_ctx = SSL_CTX_new(TLS_client_method());
    if (!st->upstream_ctx)
        return ssl_fail(err, "cannot create the upstream TLS context");
    SSL_CTX_set_min_proto_version(st->upstream_ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(st->upstream_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                           SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                           SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(st->upstream_ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                              SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(st->upstream_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_alpn_protos(st->upstream_ctx, alpn, sizeof(alpn) - 1);
    int ok;
    if (!p->trust_store) {
        ok = SSL_CTX_set_default_verify_paths(st->upstream_ctx);
    } else {
        struct stat sb;
        bool dir = stat(p->trust_store, &sb) == 0 && S_ISDIR(sb.st_mode);
        ok = dir ? SSL_CTX_load_verify_locations(st->upstream_ctx, NULL, p->trust_store)
                 : SSL_CTX_load_verify_locations(st->upstream_ctx, p->trust_store, NULL);
    }
    if (!ok)
        return ssl_fail(err, "cannot load the upstream trust store");
    if (p->extra_ca && SSL_CTX_load_verify_locations(st->upstream_ctx, p->extra_ca, NULL) != 1)
        return ssl_fail(err, "cannot load the extra CA file");
    return 0;
}

int tls_state_init(struct tls_state *st, const struct tls_paths *p, struct bottle_err *err)
{
    memset(st, 0, sizeof(*st));
    if (peer_index < 0)
        peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    st->ca = ca_load_cert(p->ca_cert, err);
    if (!st->ca)
        return -EINVAL;
    st->ca_key = ca_load_key(p->ca_key, err);
    if (!st->ca_key)
        return -EINVAL;
    if (X509_check_private_key(st->ca, st->ca_key) != 1)
        return err_set(err, EINVAL, "%s does not hold the key of the CA in %s", p->ca_key,
                       p->ca_cert);
    st->leaf_key = ca_load_key(p->leaf_key, err);
    if (!st->leaf_key)
        return -EINVAL;
    int rc = server_ctx_init(st, err);
    if (rc == 0)
        rc = upstream_ctx_init(st, p, err);
    return rc;
}

void tls_state_free(struct tls_state *st)
{
    cache_clear(st);
    SSL_CTX_free(st->server_ctx);
    SSL_CTX_free(st->upstream_ctx);
    X509_free(st->ca);
    EVP_PKEY_free(st->ca_key);
    EVP_PKEY_free(st->leaf_key);
    memset(st, 0, sizeof(*st));
}

SSL *tls_server_new(struct tls_state *st, struct tls_peer *peer)
{
    SSL *ssl = SSL_new(st->server_ctx);
    if (!ssl)
        return NULL;
    SSL_set_ex_data(ssl, peer_index, peer);
    SSL_set_accept_state(ssl);
    return ssl;
}

SSL *tls_upstream_new(struct tls_state *st, const char *host, bool is_ip)
{
    SSL *ssl = SSL_new(st->upstream_ctx);
    if (!ssl)
        return NULL;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                   : (SSL_set_tlsext_host_name(ssl, host) && SSL_set1_host(ssl, host));
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}
