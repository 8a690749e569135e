/* Blocked upstream networks: every listed range, its edges, mapped forms, public addresses. */
#include "testutil.h"

#include <arpa/inet.h>

#include "sidecar/netcheck.h"

static const char *check(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        fail_msg("bad test address %s", text);
    return netcheck_blocked((struct sockaddr *)&ss);
}

static void test_blocked_table(void **state)
{
    (void)state;
    static const struct {
        const char *addr, *net;
    } cases[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"0.0.0.0", "this_network"},
        {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link_local"},
        {"100.64.0.1", "cgnat"},
        {"100.127.255.255", "cgnat"},
        {"192.0.0.170", "ietf_protocol"},
        {"192.0.2.1", "documentation"},
        {"198.51.100.7", "documentation"},
        {"203.0.113.9", "documentation"},
        {"198.18.0.1", "benchmarking"},
        {"198.19.255.255", "benchmarking"},
        {"192.88.99.1", "6to4_relay"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"240.0.0.1", "reserved"},
        {"255.255.255.255", "reserved"},
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"fe80::1", "link_local"},
        {"febf::1", "link_local"},
        {"fc00::1", "unique_local"},
        {"fdff::1", "unique_local"},
        {"ff02::1", "multicast"},
        {"64:ff9b::7f00:1", "nat64"},
        {"64:ff9b:1::1", "nat64_local"},
        {"2002:7f00:1::", "6to4"},
        {"2001::1", "teredo"},
        {"2001:db8::1", "documentation"},
        {"100::1", "discard"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:169.254.169.254", "link_local"},
        {"::ffff:10.0.0.1", "private"},
        {"::127.0.0.1", "ipv4_compatible"},
        {"::8.8.8.8", "ipv4_compatible"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = check(cases[i].addr);
        if (!got || strcmp(got, cases[i].net) != 0)
            fail_msg("%s: expected %s, got %s", cases[i].addr, cases[i].net,
                     got ? got : "(public)");
    }
}

static void test_public_addresses(void **state)
{
    (void)state;
    static const char *const public_addrs[] = {
        "8.8.8.8",     "1.1.1.1",        "172.15.255.255",  "172.32.0.1",   "100.63.255.255",
        "100.128.0.1", "169.253.0.1",    "198.17.255.255",  "198.20.0.1",   "223.255.255.255",
        "11.0.0.1",    "::ffff:8.8.8.8", "2606:4700::1111", "2a00:1450::1", "2001:4860::8888",
    };
    for (size_t i = 0; i < sizeof(public_addrs) / sizeof(public_addrs[0]); i++) {
        const char *got = check(public_addrs[i]);
        if (got)
            fail_msg("%s: expected public, got %s", public_addrs[i], got);
    }
}

static void test_unknown_family(void **state)
{
    (void)state;
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_string_equal(netcheck_blocked(&sa), "unsupported_family");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked_table),
        cmocka_unit_test(test_public_addresses),
        cmocka_unit_test(test_unknown_family),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
