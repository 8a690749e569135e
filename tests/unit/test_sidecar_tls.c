/* CA minting and leaf issuance: CA extensions, SAN = SNI, chain verifies, cache reuse. */
#include "testutil.h"

#include <openssl/x509v3.h>

#include "sidecar/ca.h"
#include "sidecar/tls.h"

static char *dir;
static struct tls_state st;

static int setup(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    dir = testutil_mkdtemp();
    if (ca_mint_files(dir, "unit CA", &err) < 0)
        fail_msg("%s", err.msg);
    char ca[512], key[512], leaf[512];
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(key, sizeof(key), "%s/ca-key.pem", dir);
    snprintf(leaf, sizeof(leaf), "%s/leaf-key.pem", dir);
    struct tls_paths p = {ca, key, leaf, NULL, NULL};
    if (tls_state_init(&st, &p, &err) < 0)
        fail_msg("%s", err.msg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tls_state_free(&st);
    testutil_rm_rf(dir);
    free(dir);
    return 0;
}

static void test_ca_extensions(void **state)
{
    (void)state;
    X509 *ca = st.ca;
    assert_int_equal(X509_check_ca(ca), 1);
    int crit = 0;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    uint32_t ku = X509_get_key_usage(ca);
    assert_true(ku & KU_KEY_CERT_SIGN);
    assert_true(ku & KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(EVP_PKEY_get_base_id(st.ca_key), EVP_PKEY_EC);
    /* keys are private to their owner */
    char key[512];
    struct stat sb;
    snprintf(key, sizeof(key), "%s/ca-key.pem", dir);
    assert_int_equal(stat(key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void verify_leaf(X509 *leaf, const char *host, bool is_ip)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, st.ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, NULL);
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    if (is_ip)
        X509_VERIFY_PARAM_set1_ip_asc(param, host);
    else
        X509_VERIFY_PARAM_set1_host(param, host, 0);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        fail_msg("leaf for %s does not verify: %s", host,
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    /* AKI of the leaf is the CA's SKI: clients that build chains by key id find the CA */
    const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
    const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(st.ca);
    assert_non_null(aki);
    assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ski), 0);
    assert_int_equal(X509_check_ca(leaf), 0);
}

static void test_leaf_for_name_and_ip(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    X509 *leaf = tls_leaf_get(&st, "api.example.test", false, &err);
    assert_non_null(leaf);
    verify_leaf(leaf, "api.example.test", false);
    assert_int_equal(X509_check_host(leaf, "other.example.test", 0, 0, NULL), 0);
    X509 *ip = tls_leaf_get(&st, "192.0.2.10", true, &err);
    assert_non_null(ip);
    verify_leaf(ip, "192.0.2.10", true);
    /* one key for every leaf of the run */
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), st.leaf_key), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ip), st.leaf_key), 1);
}

static void test_leaf_cache(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    unsigned long before = st.minted;
    X509 *a = tls_leaf_get(&st, "cache.example.test", false, &err);
    X509 *b = tls_leaf_get(&st, "cache.example.test", false, &err);
    assert_ptr_equal(a, b);
    assert_int_equal(st.minted, before + 1);
    /* the cache is bounded: minting many hosts never grows it past its size */
    for (int i = 0; i < TLS_LEAF_CACHE_MAX + 10; i++) {
        char host[64];
        snprintf(host, sizeof(host), "h%d.example.test", i);
        assert_non_null(tls_leaf_get(&st, host, false, &err));
        assert_true(st.n_cached <= TLS_LEAF_CACHE_MAX);
    }
}

static void test_leaf_rejects_bad_names(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    assert_null(ca_leaf_new(st.ca, st.ca_key, st.leaf_key, "a,b", false, &err));
    assert_non_null(strstr(err.msg, "not a host name"));
}

static void test_load_errors(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    assert_null(ca_load_cert("/nonexistent/ca.pem", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
    char key[512], ca[512];
    snprintf(key, sizeof(key), "%s/leaf-key.pem", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    struct tls_paths p = {ca, key, key, NULL, NULL}; /* CA key that does not match */
    struct tls_state other;
    assert_true(tls_state_init(&other, &p, &err) < 0);
    assert_non_null(strstr(err.msg, "does not hold the key"));
    tls_state_free(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_extensions), cmocka_unit_test(test_leaf_for_name_and_ip),
        cmocka_unit_test(test_leaf_cache),    cmocka_unit_test(test_leaf_rejects_bad_names),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
