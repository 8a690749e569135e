/*
 * bottle_abi — the one header shared by the BPF programs (bpf/NAME.bpf.c) and
 * user space (runtime/bpf_policy.c, runtime/cmd_kernel.c).
 *
 * It defines the layout of every pinned map's key and value and of the
 * denied-event records. Changing a struct here changes the pinned ABI: a
 * bottle loaded by an older binary must be torn down before a newer binary
 * reads its maps. Only fixed-width types, no pointers, explicit padding.
 *
 * Addresses are stored in network byte order (as in struct in_addr and
 * struct in6_addr); ports in host byte order.
 */
#ifndef BOTTLE_BPF_ABI_H
#define BOTTLE_BPF_ABI_H

#include <linux/types.h>

/*
 * How many cgroup levels the policy lookup walks, starting at the level of
 * the cgroup the programs are attached to (set in .rodata by the loader):
 * the bottle cgroup itself and up to 7 levels of sub-cgroups below it.
 */
#define BOTTLE_MAX_NESTING 8
/* Entries in the per-bottle policy and stats maps (bottle + nested bottles). */
#define BOTTLE_MAX_POLICIES 64
/* Size of the denied-event ring buffer, in bytes (power of two). */
#define BOTTLE_EVENTS_BYTES (256 * 1024)

/* struct bottle_policy.flags */
#define BOTTLE_FLAG_LOOPBACK_OK (1u << 0) /* private netns: 127/8 and ::1 are the bottle's own */
#define BOTTLE_FLAG_DNS         (1u << 1) /* a DNS forwarder is reachable over UDP */
#define BOTTLE_FLAG_IPV6        (1u << 2) /* the sidecar (and DNS) also listen on IPv6 */

/* Value of the policy map; the key is the bottle cgroup id (__u64, the directory inode). */
struct bottle_policy {
    __u32 proxy_ip4;    /* network order */
    __u8 proxy_ip6[16]; /* network order */
    __u16 proxy_port;   /* host order */
    __u16 dns_port;     /* host order */
    __u32 dns_ip4;      /* network order */
    __u8 dns_ip6[16];   /* network order */
    __u32 flags;        /* BOTTLE_FLAG_* */
    __u32 cutoff;       /* non-zero: drop everything, deny every connect */
};

/* Value of the stats map, same key as the policy map. Updated atomically. */
struct bottle_stats {
    __u64 tx_bytes;
    __u64 tx_packets;
    __u64 rx_bytes;
    __u64 rx_packets;
    __u64 drop_tx;
    __u64 drop_rx;
    __u64 connect_ok;
    __u64 connect_deny;
    __u64 sendmsg_ok;
    __u64 sendmsg_deny;
    __u64 sock_create_deny;
};

/* Which program produced a denied event. */
enum bottle_hook {
    BOTTLE_HOOK_CONNECT4 = 1,
    BOTTLE_HOOK_CONNECT6 = 2,
    BOTTLE_HOOK_SENDMSG4 = 3,
    BOTTLE_HOOK_SENDMSG6 = 4,
    BOTTLE_HOOK_SOCK_CREATE = 5,
    BOTTLE_HOOK_EGRESS = 6,
    BOTTLE_HOOK_INGRESS = 7,
};

/* Why a denied event was denied. */
enum bottle_deny_reason {
    BOTTLE_DENY_NOT_ALLOWED = 1, /* destination or socket kind outside the policy */
    BOTTLE_DENY_NO_POLICY = 2,   /* no policy entry for the cgroup or any ancestor */
    BOTTLE_DENY_CUTOFF = 3,      /* the bottle's cutoff flag is set */
    BOTTLE_DENY_KILL_SWITCH = 4, /* the host-wide kill switch is set */
};

/* One record of the denied-event ring buffer. */
struct bottle_event {
    __u64 cgroup_id; /* policy cgroup (0 when no policy was found: the caller's own) */
    __u64 timestamp; /* bpf_ktime_get_ns */
    __u32 pid;       /* thread-group id; 0 for packet hooks */
    __u16 hook;      /* enum bottle_hook */
    __u16 reason;    /* enum bottle_deny_reason */
    __u16 family;    /* AF_INET, AF_INET6, ... */
    __u16 protocol;  /* IPPROTO_*; the socket type for sock_create in sock_type */
    __u16 port;      /* destination port, host order (ingress: the sender's) */
    __u16 sock_type; /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW (sock_create and connect hooks) */
    __u8 addr[16];   /* destination (ingress: the sender); IPv4 in the first 4 bytes */
    char comm[16];
};

/* The host-wide kill switch: a one-element array, index 0, non-zero = everything dropped. */
#define BOTTLE_KILL_SWITCH_KEY 0

/* Names of the pins under <bpffs>/bottle/<slug>/ and of the shared kill switch. */
#define BOTTLE_PIN_POLICY "policy"
#define BOTTLE_PIN_STATS  "stats"
#define BOTTLE_PIN_EVENTS "events"
#define BOTTLE_PIN_KILL   "kill_switch" /* in <bpffs>/bottle/, shared by every bottle */

#endif
