/* netcheck — blocked upstream networks (see netcheck.h). */
#include "sidecar/netcheck.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

struct net4 {
    uint32_t net;
    unsigned prefix;
    const char *name;
};

struct net6 {
    uint8_t net[16];
    unsigned prefix;
    const char *name;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

static const struct net4 blocked4[] = {
    {V4(0, 0, 0, 0), 8, "this_network"},       {V4(10, 0, 0, 0), 8, "private"},
    {V4(100, 64, 0, 0), 10, "cgnat"},          {V4(127, 0, 0, 0), 8, "loopback"},
    {V4(169, 254, 0, 0), 16, "link_local"},    {V4(172, 16, 0, 0), 12, "private"},
    {V4(192, 0, 0, 0), 24, "ietf_protocol"},   {V4(192, 0, 2, 0), 24, "documentation"},
    {V4(192, 88, 99, 0), 24, "6to4_relay"},    {V4(192, 168, 0, 0), 16, "private"},
    {V4(198, 18, 0, 0), 15, "benchmarking"},   {V4(198, 51, 100, 0), 24, "documentation"},
    {V4(203, 0, 113, 0), 24, "documentation"}, {V4(224, 0, 0, 0), 4, "multicast"},
    {V4(240, 0, 0, 0), 4, "reserved"}, /* includes 255.255.255.255 broadcast */
};

static const struct net6 blocked6[] = {
    {{0}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0x00, 0x64, 0xff, 0x9b}, 96, "nat64"},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "nat64_local"},
    {{0x01, 0x00}, 64, "discard"},
    {{0x20, 0x01, 0x00, 0x00}, 32, "teredo"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0x20, 0x02}, 16, "6to4"},
    {{0xfc}, 7, "unique_local"},
    {{0xfe, 0x80}, 10, "link_local"},
    {{0xfe, 0xc0}, 10, "site_local"},
    {{0xff}, 8, "multicast"},
};

const char *netcheck_blocked_v4(const struct in_addr *addr)
{
    uint32_t a = ntohl(addr->s_addr);
    for (size_t i = 0; i < sizeof(blocked4) / sizeof(blocked4[0]); i++) {
        uint32_t mask = blocked4[i].prefix ? ~(uint32_t)0 << (32 - blocked4[i].prefix) : 0;
        if ((a & mask) == blocked4[i].net)
            return blocked4[i].name;
    }
    return NULL;
}

static bool prefix_match(const uint8_t *addr, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(addr, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (addr[full] & mask) == (net[full] & mask);
}

const char *netcheck_blocked_v6(const struct in6_addr *addr)
{
    const uint8_t *b = addr->s6_addr;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t zero[12] = {0};
    /* ::ffff:a.b.c.d (mapped) reaches the IPv4 address; judge it as one. */
    if (memcmp(b, mapped, 12) == 0) {
        struct in_addr v4;
        memcpy(&v4.s_addr, b + 12, 4);
        return netcheck_blocked_v4(&v4);
    }
    for (size_t i = 0; i < sizeof(blocked6) / sizeof(blocked6[0]); i++)
        if (prefix_match(b, blocked6[i].net, blocked6[i].prefix))
            return blocked6[i].name;
    /* ::a.b.c.d (deprecated IPv4-compatible): never a legitimate upstream. */
    if (memcmp(b, zero, 12) == 0)
        return "ipv4_compatible";
    return NULL;
}

const char *netcheck_blocked(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return netcheck_blocked_v4(&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return netcheck_blocked_v6(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return "unsupported_family";
}
