/* ca — per-bottle CA and leaf issuance (see ca.h). */
#include "sidecar/ca.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

/* Appends OpenSSL's most recent error to a message; the queue is cleared. */
static int ssl_fail(struct bottle_err *err, const char *what)
{
    unsigned long e = ERR_get_error();
    char detail[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, detail, sizeof(detail));
    ERR_clear_error();
    return err_set(err, EPROTO, "%s: %s", what, detail);
}

EVP_PKEY *ca_ec_key_new(struct bottle_err *err)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (!key)
        ssl_fail(err, "cannot generate an EC P-256 key");
    return key;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : -1;
}

static int set_random_serial(X509 *cert)
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    raw[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(raw, sizeof(raw), NULL);
    if (!bn)
        return -1;
    int ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
    BN_free(bn);
    return ok ? 0 : -1;
}

static int set_name(X509_NAME *name, const char *cn)
{
    return X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"bottle", -1,
                                      -1, 0) &&
                   X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                                              -1, -1, 0)
               ? 0
               : -1;
}

X509 *ca_cert_new(EVP_PKEY *key, const char *common_name, int days, struct bottle_err *err)
{
    X509 *cert = X509_new();
    if (!cert || X509_set_version(cert, 2) != 1 || set_random_serial(cert) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), (long)days * 86400) ||
        set_name(X509_get_subject_name(cert), common_name) < 0 ||
        X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1 ||
        X509_set_pubkey(cert, key) != 1 ||
        add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
        add_ext(cert, cert, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(cert, cert, NID_authority_key_identifier, "keyid:always") < 0 ||
        X509_sign(cert, key, EVP_sha256()) <= 0) {
        ssl_fail(err, "cannot build the CA certificate");
        X509_free(cert);
        return NULL;
    }
    return cert;
}

X509 *ca_leaf_new(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *leaf_key, const char *host, bool is_ip,
                  struct bottle_err *err)
{
    char san[300];
    if (strlen(host) > 253 || strchr(host, ',')) {
        err_set(err, EINVAL, "cannot mint a leaf for '%s': not a host name", host);
        return NULL;
    }
    snprintf(san, sizeof(san), "%s:%s", is_ip ? "IP" : "DNS", host);
    /* A short CN: the SAN carries the name; a CN is limited to 64 bytes. */
    char cn[65];
    snprintf(cn, sizeof(cn), "%s", host);
    X509 *cert = X509_new();
    if (!cert || X509_set_version(cert, 2) != 1 || set_random_serial(cert) < 0 ||
        !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 86400) ||
        set_name(X509_get_subject_name(cert), cn) < 0 ||
        X509_set_issuer_name(cert, X509_get_subject_name(ca)) != 1 ||
        X509_set_pubkey(cert, leaf_key) != 1 ||
        add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(cert, ca, NID_ext_key_usage, "serverAuth") < 0 ||
        add_ext(cert, ca, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(cert, ca, NID_authority_key_identifier, "keyid:always") < 0 ||
        add_ext(cert, ca, NID_subject_alt_name, san) < 0) {
        ssl_fail(err, "cannot build a leaf certificate");
        X509_free(cert);
        return NULL;
    }
    /* Never outlive the CA: clients reject a chain whose leaf does. */
    const ASN1_TIME *ca_end = X509_get0_notAfter(ca);
    if (ASN1_TIME_compare(X509_get0_notAfter(cert), ca_end) > 0)
        X509_set1_notAfter(cert, ca_end);
    if (X509_sign(cert, ca_key, EVP_sha256()) <= 0) {
        ssl_fail(err, "cannot sign a leaf certificate");
        X509_free(cert);
        return NULL;
    }
    return cert;
}

static int write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key,
                     struct bottle_err *err)
{
    BIO *mem = BIO_new(BIO_s_mem());
    int ok = mem && (cert ? PEM_write_bio_X509(mem, cert)
                          : PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL));
    if (!ok) {
        BIO_free(mem);
        return ssl_fail(err, "cannot encode PEM");
    }
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);
    int rc = fs_write_atomic(path, data, (size_t)len, mode, err);
    BIO_free(mem);
    return rc;
}

int ca_mint_files(const char *dir, const char *common_name, struct bottle_err *err)
{
    int rc = fs_mkdir_p(dir, 0700, err);
    if (rc < 0)
        return rc;
    EVP_PKEY *ca_key = ca_ec_key_new(err);
    EVP_PKEY *leaf_key = ca_key ? ca_ec_key_new(err) : NULL;
    X509 *ca = leaf_key ? ca_cert_new(ca_key, common_name, 3650, err) : NULL;
    rc = ca ? 0 : -EPROTO;
    char *p_ca = fs_join(dir, "ca.pem"), *p_key = fs_join(dir, "ca-key.pem"),
         *p_leaf = fs_join(dir, "leaf-key.pem");
    if (rc == 0)
        rc = write_pem(p_key, 0600, NULL, ca_key, err);
    if (rc == 0)
        rc = write_pem(p_leaf, 0600, NULL, leaf_key, err);
    if (rc == 0)
        rc = write_pem(p_ca, 0644, ca, NULL, err);
    free(p_ca);
    free(p_key);
    free(p_leaf);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    return rc;
}

X509 *ca_load_cert(const char *path, struct bottle_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        err_set(err, errno, "cannot open certificate %s: %s", path, strerror(errno));
        return NULL;
    }
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert)
        ssl_fail(err, path);
    return cert;
}

EVP_PKEY *ca_load_key(const char *path, struct bottle_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        err_set(err, errno, "cannot open key %s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!key)
        ssl_fail(err, path);
    return key;
}
