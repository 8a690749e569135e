// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * listener.bpf.c — the sidecar's listener answers its own bottle only.
 *
 * The sidecar listens on the host end of the bottle's veth (A.1), an address
 * of the host's network namespace: every local process can connect to it,
 * whatever device it binds to (the kernel hands local traffic to a listener
 * as if it came in on the device that holds the address). What differs is
 * the device a packet really arrives on: the bottle's packets come in on the
 * veth, the host's on the loopback device. Attached (cgroup_skb/ingress) to
 * the sidecar's cgroup, this program drops every TCP packet for the
 * listener's address and port that did not arrive on the veth, so a SYN
 * from the host is never answered and no connection from outside the bottle
 * completes. Other packets of the sidecar (its upstream connections, a
 * control listener elsewhere) pass untouched.
 *
 * Built against the UAPI headers only, like policy.bpf.c. The loader sets
 * the three read-only values before load (one object per bottle).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bottle_abi.h"

#define IP_MF_OFFSET 0x3fff

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load. */
const volatile __u32 listen_ip4 = 0;   /* network order */
const volatile __u32 listen_port = 0;  /* host order */
const volatile __u32 veth_ifindex = 0; /* the host end of the bottle's veth */

SEC("cgroup_skb/ingress")
int bottle_listener_ingress(struct __sk_buff *skb)
{
    if (skb->protocol != bpf_htons(ETH_P_IP))
        return 1; /* the listener is IPv4 only: nothing else can reach it */
    struct iphdr ip;
    if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0)
        return 0;
    if (ip.daddr != listen_ip4 || ip.protocol != IPPROTO_TCP)
        return 1;
    /* Delivered packets are reassembled; a fragment here is judged by its device alone. */
    if (ip.frag_off & bpf_htons(IP_MF_OFFSET))
        return skb->ifindex == veth_ifindex;
    __u16 port;
    if (bpf_skb_load_bytes(skb, ip.ihl * 4 + 2, &port, sizeof(port)) < 0)
        return 0;
    if (bpf_ntohs(port) != listen_port)
        return 1;
    return skb->ifindex == veth_ifindex;
}
