// SPDX-License-Identifier: (BSD-2-Clause OR GPL-2.0)
/*
 * sockkill.bpf.c — aborts the established TCP connections of one bottle.
 *
 * An iter/tcp program that calls the bpf_sock_destroy kfunc (Linux 6.5+) on
 * every non-listening TCP socket whose cgroup (sk->sk_cgrp_data, fixed when
 * the socket was created) is the target cgroup or one of its descendants. The
 * descendant check walks up from the socket's cgroup through
 * cgroup->self.parent, at most 16 steps, comparing each
 * cgroup's kernfs id with the target id. Listening sockets are left alone:
 * they carry no traffic, and the policy already refuses what they would serve.
 *
 * The TCP iterator walks the network namespace of the process that creates
 * the iterator, so the loader enters the bottle's netns first. This program
 * reads struct sock, hence CO-RE and vmlinux.h; it is loaded only for a
 * cutoff, never on the start path.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* At least BOTTLE_MAX_NESTING of bottle_abi.h (not included: its UAPI
 * typedefs clash with vmlinux.h). */
#define MAX_LEVELS       16
#define TCP_LISTEN_STATE 10

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u64 target_cgroup_id = 0;

__u64 destroyed = 0;
__u64 failed = 0;

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

static __always_inline int cgroup_in_target(struct cgroup *cg)
{
    for (int i = 0; i < MAX_LEVELS; i++) {
        if (!cg)
            return 0;
        __u64 id = BPF_CORE_READ(cg, kn, id);
        if (id == target_cgroup_id)
            return 1;
        cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
    }
    return 0;
}

SEC("iter/tcp")
int bottle_sockkill(struct bpf_iter__tcp *ctx)
{
    struct sock_common *skc = ctx->sk_common;
    if (!skc)
        return 0;
    if (skc->skc_state == TCP_LISTEN_STATE)
        return 0;
    struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
    if (!tp)
        return 0;
    struct sock *sk = (struct sock *)tp;
    struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
    if (!cgroup_in_target(cg))
        return 0;
    if (bpf_sock_destroy(skc) == 0)
        __sync_fetch_and_add(&destroyed, 1);
    else
        __sync_fetch_and_add(&failed, 1);
    return 0;
}
