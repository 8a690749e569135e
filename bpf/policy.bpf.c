// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * policy.bpf.c — the bottle's network policy, attached to the bottle's agent
 * cgroup: connect/sendmsg hooks give a fast EPERM for every destination that
 * is not the sidecar (or the DNS forwarder, or the bottle's own loopback when
 * it has a private netns), sock_create refuses raw and ICMP sockets, and the
 * cgroup_skb programs meter bytes and drop whatever slipped past the hooks.
 *
 * Built against the UAPI headers only: no vmlinux.h, so no CO-RE relocations,
 * so libbpf does not parse the kernel BTF at load (about 2 ms instead of 45).
 *
 * Policy is looked up by walking the caller's (or the packet socket's) cgroup
 * ancestors from deep to shallow, from base_level + 7 up to base_level (the
 * attach point); the first cgroup with an entry governs. Starting at the
 * attach point keeps the walk, and the verifier's work, to eight levels.
 * No entry anywhere on the chain means deny. Nothing here may allow more
 * than the entry says.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bottle_abi.h"

#define AF_INET         2
#define AF_INET6        10
#define AF_PACKET       17
#define SOCK_RAW        3
#define IP_OFFSET       0x1fff
#define IPPROTO_ICMPV6_ 58

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. */
const volatile __u32 emit_events = 1;
/* Level of the cgroup the programs are attached to; nothing governed is above it. */
const volatile __u32 base_level = 0;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, BOTTLE_MAX_POLICIES);
    __type(key, __u64);
    __type(value, struct bottle_policy);
} policy SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, BOTTLE_MAX_POLICIES);
    __type(key, __u64);
    __type(value, struct bottle_stats);
} stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, BOTTLE_EVENTS_BYTES);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} kill_switch SEC(".maps");

/* The outcome of a policy lookup. */
struct verdict_ctx {
    __u64 id;                  /* governing cgroup id, 0 when none */
    struct bottle_policy *pol; /* NULL when none */
    struct bottle_stats *st;   /* may be NULL */
    __u16 reason;              /* non-zero: deny everything for this reason */
};

static __always_inline int kill_switch_on(void)
{
    __u32 key = BOTTLE_KILL_SWITCH_KEY;
    __u32 *on = bpf_map_lookup_elem(&kill_switch, &key);
    return on && *on;
}

static __always_inline void finish_lookup(struct verdict_ctx *v)
{
    if (!v->pol) {
        v->reason = BOTTLE_DENY_NO_POLICY;
        return;
    }
    v->st = bpf_map_lookup_elem(&stats, &v->id);
    if (kill_switch_on())
        v->reason = BOTTLE_DENY_KILL_SWITCH;
    else if (v->pol->cutoff)
        v->reason = BOTTLE_DENY_CUTOFF;
}

static __always_inline void lookup_current(struct verdict_ctx *v)
{
    v->id = 0;
    v->pol = NULL;
    v->st = NULL;
    v->reason = 0;
    /* Fast path: the caller's own cgroup (the deepest level) has the entry. */
    __u64 own = bpf_get_current_cgroup_id();
    v->pol = bpf_map_lookup_elem(&policy, &own);
    if (v->pol) {
        v->id = own;
        finish_lookup(v);
        return;
    }
    for (int i = BOTTLE_MAX_NESTING - 1; i >= 0; i--) {
        __u64 id = bpf_get_current_ancestor_cgroup_id(base_level + i);
        if (!id)
            continue;
        struct bottle_policy *p = bpf_map_lookup_elem(&policy, &id);
        if (p) {
            v->id = id;
            v->pol = p;
            break;
        }
    }
    finish_lookup(v);
}

static __always_inline void lookup_skb(struct __sk_buff *skb, struct verdict_ctx *v)
{
    v->id = 0;
    v->pol = NULL;
    v->st = NULL;
    v->reason = 0;
    __u64 own = bpf_skb_cgroup_id(skb);
    v->pol = bpf_map_lookup_elem(&policy, &own);
    if (v->pol) {
        v->id = own;
        finish_lookup(v);
        return;
    }
    for (int i = BOTTLE_MAX_NESTING - 1; i >= 0; i--) {
        __u64 id = bpf_skb_ancestor_cgroup_id(skb, base_level + i);
        if (!id)
            continue;
        struct bottle_policy *p = bpf_map_lookup_elem(&policy, &id);
        if (p) {
            v->id = id;
            v->pol = p;
            break;
        }
    }
    finish_lookup(v);
}

struct dest {
    __u32 addr[4]; /* network order; IPv4 in addr[0] */
    __u16 family;
    __u16 protocol;
    __u16 port; /* host order */
    __u16 sock_type;
};

static __always_inline void emit_event(const struct verdict_ctx *v, __u16 hook, __u16 reason,
                                       const struct dest *d, int with_task)
{
    if (!emit_events)
        return;
    struct bottle_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e)
        return;
    __builtin_memset(e, 0, sizeof(*e));
    e->cgroup_id = v->id;
    e->timestamp = bpf_ktime_get_ns();
    e->hook = hook;
    e->reason = reason;
    e->family = d->family;
    e->protocol = d->protocol;
    e->port = d->port;
    e->sock_type = d->sock_type;
    __builtin_memcpy(e->addr, d->addr, sizeof(e->addr));
    if (with_task) {
        e->pid = bpf_get_current_pid_tgid() >> 32;
        bpf_get_current_comm(e->comm, sizeof(e->comm));
    }
    bpf_ringbuf_submit(e, 0);
}

static __always_inline int is_loopback4(__u32 addr)
{
    return (bpf_ntohl(addr) >> 24) == 127;
}

/* TCP to the sidecar, UDP to the DNS forwarder, anything to the bottle's own loopback. */
static __always_inline int allow_v4(const struct bottle_policy *p, __u16 protocol, __u32 addr,
                                    __u16 port)
{
    if ((p->flags & BOTTLE_FLAG_LOOPBACK_OK) && is_loopback4(addr) &&
        (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP))
        return 1;
    if (protocol == IPPROTO_TCP)
        return p->proxy_port != 0 && addr == p->proxy_ip4 && port == p->proxy_port;
    if (protocol == IPPROTO_UDP)
        return (p->flags & BOTTLE_FLAG_DNS) && p->dns_port != 0 && addr == p->dns_ip4 &&
               port == p->dns_port;
    return 0;
}

static __always_inline int same6(const __u32 *a, const __u8 *b8)
{
    const __u32 *b = (const __u32 *)b8;
    return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline int allow_v6(const struct bottle_policy *p, __u16 protocol, const __u32 *a,
                                    __u16 port)
{
    /* ::ffff:a.b.c.d: a dual-stack socket talking IPv4. */
    if (a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff))
        return allow_v4(p, protocol, a[3], port);
    if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
        return 0;
    if ((p->flags & BOTTLE_FLAG_LOOPBACK_OK) && a[0] == 0 && a[1] == 0 && a[2] == 0 &&
        a[3] == bpf_htonl(1))
        return 1;
    if (!(p->flags & BOTTLE_FLAG_IPV6))
        return 0;
    if (protocol == IPPROTO_TCP)
        return p->proxy_port != 0 && port == p->proxy_port && same6(a, p->proxy_ip6);
    return (p->flags & BOTTLE_FLAG_DNS) && p->dns_port != 0 && port == p->dns_port &&
           same6(a, p->dns_ip6);
}

static __always_inline void count(__u64 *counter)
{
    __sync_fetch_and_add(counter, 1);
}

static __always_inline int sock_addr_verdict(struct bpf_sock_addr *ctx, int v6, __u16 hook,
                                             int is_sendmsg)
{
    struct verdict_ctx v;
    struct dest d = {};
    lookup_current(&v);

    d.protocol = ctx->protocol;
    d.sock_type = ctx->type;
    d.port = bpf_ntohs((__u16)ctx->user_port);
    if (v6) {
        d.family = AF_INET6;
        d.addr[0] = ctx->user_ip6[0];
        d.addr[1] = ctx->user_ip6[1];
        d.addr[2] = ctx->user_ip6[2];
        d.addr[3] = ctx->user_ip6[3];
    } else {
        d.family = AF_INET;
        d.addr[0] = ctx->user_ip4;
    }

    __u16 reason = v.reason;
    if (!reason && v.pol) {
        int ok = v6 ? allow_v6(v.pol, d.protocol, d.addr, d.port)
                    : allow_v4(v.pol, d.protocol, d.addr[0], d.port);
        if (!ok)
            reason = BOTTLE_DENY_NOT_ALLOWED;
    }
    if (v.st) {
        if (is_sendmsg)
            count(reason ? &v.st->sendmsg_deny : &v.st->sendmsg_ok);
        else
            count(reason ? &v.st->connect_deny : &v.st->connect_ok);
    }
    if (!reason)
        return 1;
    emit_event(&v, hook, reason, &d, 1);
    return 0;
}

SEC("cgroup/connect4")
int bottle_connect4(struct bpf_sock_addr *ctx)
{
    return sock_addr_verdict(ctx, 0, BOTTLE_HOOK_CONNECT4, 0);
}

SEC("cgroup/connect6")
int bottle_connect6(struct bpf_sock_addr *ctx)
{
    return sock_addr_verdict(ctx, 1, BOTTLE_HOOK_CONNECT6, 0);
}

SEC("cgroup/sendmsg4")
int bottle_sendmsg4(struct bpf_sock_addr *ctx)
{
    return sock_addr_verdict(ctx, 0, BOTTLE_HOOK_SENDMSG4, 1);
}

SEC("cgroup/sendmsg6")
int bottle_sendmsg6(struct bpf_sock_addr *ctx)
{
    return sock_addr_verdict(ctx, 1, BOTTLE_HOOK_SENDMSG6, 1);
}

SEC("cgroup/sock_create")
int bottle_sock_create(struct bpf_sock *sk)
{
    struct verdict_ctx v;
    struct dest d = {};
    lookup_current(&v);

    d.family = sk->family;
    d.protocol = sk->protocol;
    d.sock_type = sk->type;
    __u16 reason = v.reason == BOTTLE_DENY_NO_POLICY ? BOTTLE_DENY_NO_POLICY : 0;
    if (!reason && (sk->type == SOCK_RAW || sk->family == AF_PACKET ||
                    sk->protocol == IPPROTO_ICMP || sk->protocol == IPPROTO_ICMPV6_))
        reason = BOTTLE_DENY_NOT_ALLOWED;
    if (!reason)
        return 1;
    if (v.st)
        count(&v.st->sock_create_deny);
    emit_event(&v, BOTTLE_HOOK_SOCK_CREATE, reason, &d, 1);
    return 0;
}

/*
 * Fills d from the packet headers: the destination, or with source set the
 * sender (address and port). Returns 0 when they cannot be read.
 */
static __always_inline int parse_packet(struct __sk_buff *skb, struct dest *d, int *fragment,
                                        int source)
{
    *fragment = 0;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
            return 0;
        d->family = AF_INET;
        d->protocol = ip.protocol;
        d->addr[0] = source ? ip.saddr : ip.daddr;
        if (ip.frag_off & bpf_htons(IP_OFFSET)) {
            *fragment = 1;
            return 1;
        }
        if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
            __u16 port;
            if (bpf_skb_load_bytes(skb, ip.ihl * 4 + (source ? 0 : 2), &port, sizeof(port)) < 0)
                return 0;
            d->port = bpf_ntohs(port);
        }
        return 1;
    }
    if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip6;
        if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0)
            return 0;
        d->family = AF_INET6;
        d->protocol = ip6.nexthdr;
        if (source)
            __builtin_memcpy(d->addr, &ip6.saddr, sizeof(d->addr));
        else
            __builtin_memcpy(d->addr, &ip6.daddr, sizeof(d->addr));
        if (ip6.nexthdr == IPPROTO_TCP || ip6.nexthdr == IPPROTO_UDP) {
            __u16 port;
            if (bpf_skb_load_bytes(skb, sizeof(ip6) + (source ? 0 : 2), &port, sizeof(port)) < 0)
                return 0;
            d->port = bpf_ntohs(port);
        }
        return 1;
    }
    return 0;
}

/*
 * The backstop, judged on the wire: the peer (where a packet goes, or where
 * an arriving one comes from) must be what the hooks allow: the sidecar's
 * address and port over TCP, the DNS forwarder's over UDP, the bottle's own
 * loopback. A fragment carries no port: its address alone must be one of
 * those.
 */
static __always_inline int peer_allowed(const struct bottle_policy *p, const struct dest *d,
                                        int fragment)
{
    if (d->family == AF_INET) {
        if (fragment)
            return d->addr[0] == p->proxy_ip4 ||
                   ((p->flags & BOTTLE_FLAG_DNS) && d->addr[0] == p->dns_ip4) ||
                   ((p->flags & BOTTLE_FLAG_LOOPBACK_OK) && is_loopback4(d->addr[0]));
        return allow_v4(p, d->protocol, d->addr[0], d->port);
    }
    if (d->family == AF_INET6)
        return allow_v6(p, d->protocol, d->addr, d->port);
    return 0;
}

SEC("cgroup_skb/egress")
int bottle_egress(struct __sk_buff *skb)
{
    struct verdict_ctx v;
    struct dest d = {};
    int fragment = 0;
    lookup_skb(skb, &v);

    __u16 reason = v.reason;
    if (!reason && v.pol) {
        if (!parse_packet(skb, &d, &fragment, 0) || !peer_allowed(v.pol, &d, fragment))
            reason = BOTTLE_DENY_NOT_ALLOWED;
    }
    if (!reason) {
        if (v.st) {
            __sync_fetch_and_add(&v.st->tx_bytes, skb->len);
            count(&v.st->tx_packets);
        }
        return 1;
    }
    if (v.st)
        count(&v.st->drop_tx);
    if (reason == BOTTLE_DENY_NOT_ALLOWED)
        emit_event(&v, BOTTLE_HOOK_EGRESS, reason, &d, 0);
    return 0;
}

/*
 * What reaches the bottle's sockets: only the sidecar's side of the
 * agent's own connections (from its address and port), the DNS forwarder's
 * answers and the bottle's loopback. A datagram or a SYN that another host
 * process sends to the agent's address is dropped here, before any socket
 * of the bottle sees it.
 */
SEC("cgroup_skb/ingress")
int bottle_ingress(struct __sk_buff *skb)
{
    struct verdict_ctx v;
    struct dest d = {};
    int fragment = 0;
    lookup_skb(skb, &v);

    __u16 reason = v.reason;
    if (!reason && v.pol) {
        if (!parse_packet(skb, &d, &fragment, 1) || !peer_allowed(v.pol, &d, fragment))
            reason = BOTTLE_DENY_NOT_ALLOWED;
    }
    if (!reason) {
        if (v.st) {
            __sync_fetch_and_add(&v.st->rx_bytes, skb->len);
            count(&v.st->rx_packets);
        }
        return 1;
    }
    if (v.st)
        count(&v.st->drop_rx);
    if (reason == BOTTLE_DENY_NOT_ALLOWED)
        emit_event(&v, BOTTLE_HOOK_INGRESS, reason, &d, 0);
    return 0;
}
