/*
 * ca — the per-bottle certificate authority and the leaves it signs.
 *
 * Mints an EC P-256 CA (subjectKeyIdentifier=hash, basicConstraints critical
 * CA:TRUE, keyUsage keyCertSign+cRLSign) and the one EC key every leaf of a
 * sidecar run shares, and issues leaf certificates for a host name or IP
 * literal. The runtime mints a CA per bottle; tests mint their own. Keys are
 * written 0600 and never logged. No caching here: see tls.h.
 */
#ifndef BOTTLE_SIDECAR_CA_H
#define BOTTLE_SIDECAR_CA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>

#include "common/err.h"

/* A fresh EC P-256 key. */
EVP_PKEY *ca_ec_key_new(struct bottle_err *err);

/* A self-signed CA certificate for key, valid for days from now. */
X509 *ca_cert_new(EVP_PKEY *key, const char *common_name, int days, struct bottle_err *err);

/*
 * A leaf for host (SAN DNS, or SAN IP when is_ip), public key leaf_key,
 * signed by ca/ca_key: serverAuth, CA:FALSE, authorityKeyIdentifier = the
 * CA's subjectKeyIdentifier. Never valid beyond the CA.
 */
X509 *ca_leaf_new(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *leaf_key, const char *host, bool is_ip,
                  struct bottle_err *err);

/*
 * Writes DIR/ca.pem, DIR/ca-key.pem and DIR/leaf-key.pem (keys 0600),
 * creating DIR (0700) when missing. Existing files are replaced atomically.
 */
int ca_mint_files(const char *dir, const char *common_name, struct bottle_err *err);

/* PEM loaders with file-naming error messages. */
X509 *ca_load_cert(const char *path, struct bottle_err *err);
EVP_PKEY *ca_load_key(const char *path, struct bottle_err *err);

#endif
