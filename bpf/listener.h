/*
 * listener — keeps a bottle's sidecar listener for that bottle alone
 * (listener.bpf.c): loads the program with the listener's address, port and
 * the veth it must be reached through, attaches it to the sidecar's cgroup
 * and pins the link beside the bottle's policy, under
 * <bpffs>/bottle/<slug>/, so bpf_policy_destroy (teardown, `bottle cleanup`)
 * removes it with the rest.
 *
 * Install it after bpf_policy_install (which creates the pin directory) and
 * before the sidecar starts: the sidecar's listening socket is governed from
 * its first packet. It never decides the addresses (the controller does).
 */
#ifndef BOTTLE_BPF_LISTENER_H
#define BOTTLE_BPF_LISTENER_H

#include <netinet/in.h>
#include <stdint.h>

#include "common/err.h"

/* The pin of the program's link in the bottle's pin directory. */
#define BPF_LISTENER_PIN "link_bottle_listener_ingress"

struct bpf_listener_config {
    struct in_addr addr; /* where the sidecar listens (the host end's address) */
    uint16_t port;       /* host order */
    int ifindex;         /* the host end of the bottle's veth */
};

/*
 * Loads the program for cfg, attaches it to cgroup_fd (the sidecar's cgroup)
 * and pins the link as <bpffs>/bottle/<slug>/BPF_LISTENER_PIN. On failure
 * nothing stays attached or pinned.
 */
int bpf_listener_install(const char *slug, int cgroup_fd, const struct bpf_listener_config *cfg,
                         struct bottle_err *err);

#endif
