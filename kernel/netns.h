/*
 * netns — a bottle's network namespace and its one veth pair, through libnl.
 *
 * The namespace is kept the way iproute2 keeps them, a bind mount of the
 * namespace onto a file, but in a directory only root can enter:
 * /run/bottle/netns/bottle-<slug>, the directory 0700. A namespace file is
 * mode 0444 whatever is done to it (nsfs), so anyone who could reach it could
 * open it and hold a finished bottle's namespace alive; `bottle cleanup`
 * still finds it after a crash, and `nsenter --net=<file>` reaches it for
 * debugging. Bottles started before this layout have theirs in /run/netns:
 * listing and removal look there too. The veth pair is bh-<slot> on the
 * host (A.1/30, where the sidecar listens) and bb-<slot> in the bottle
 * (A.2/30). Inside there is that address, `lo`, and no default route: the
 * only reachable host address is A.1.
 *
 * A is a /30 from a private pool (10.243.0.0/16 by default: 16384 slots),
 * the first one that overlaps no address or route of the host. Allocation
 * and creation happen under an flock on /run/bottle/netpool.lock, and the
 * host end's address (hence its route) exists before the lock is released,
 * so concurrent bottles never pick the same /30.
 *
 * Configuration inside the namespace goes through a netlink socket opened by
 * a short-lived thread that joined the namespace: never `ip netns exec`
 * (which remounts /sys and hides cgroupfs), and the calling thread never
 * changes namespace. Every teardown step is idempotent and tolerates a half-
 * created bottle. This module never touches a link or namespace it did not
 * name.
 */
#ifndef BOTTLE_KERNEL_NETNS_H
#define BOTTLE_KERNEL_NETNS_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define NETNS_RUN_DIR         "/run/bottle/netns"
#define NETNS_LEGACY_DIR      "/run/netns"
#define NETNS_NAME_PREFIX     "bottle-"
#define NETNS_LOCK_PATH       "/run/bottle/netpool.lock"
#define NETNS_POOL_DEFAULT    "10.243.0.0"
#define NETNS_POOL_PREFIX     16
#define NETNS_HOST_IF_PREFIX  "bh-"
#define NETNS_GUEST_IF_PREFIX "bb-"

struct nl_sock;

struct netns_options {
    const char *lock_path; /* NULL: NETNS_LOCK_PATH */
    const char *pool;      /* IPv4 network of the pool; NULL: NETNS_POOL_DEFAULT */
    unsigned pool_prefix;  /* 8..28; 0: NETNS_POOL_PREFIX */
    int fail_after_step;   /* tests: fail with EIO after step N (1..4); 0: never */
};

struct netns_bottle {
    char *slug;
    char *path; /* NETNS_RUN_DIR/bottle-<slug>; NULL until the file exists */
    int fd;     /* the namespace (O_RDONLY on path); -1 when not open */
    unsigned slot;
    char host_if[IF_NAMESIZE];  /* bh-<slot>; "" until created */
    char guest_if[IF_NAMESIZE]; /* bb-<slot> */
    struct in_addr network;     /* A.0 */
    struct in_addr host_addr;   /* A.1: where the sidecar listens */
    struct in_addr guest_addr;  /* A.2: the bottle's address */
    unsigned prefix_len;        /* 30 */
};

/*
 * Creates the namespace, the veth pair and their addresses. On failure
 * nothing is left behind and nb is reset. opts may be NULL.
 */
int netns_create(const char *slug, const struct netns_options *opts, struct netns_bottle *nb,
                 struct bottle_err *err);

/*
 * Deletes the veth pair and the namespace file and closes nb. Idempotent:
 * missing pieces are not errors. Returns the first real failure, after
 * trying every step.
 */
int netns_destroy(struct netns_bottle *nb, struct bottle_err *err);

/* Closes the fd and frees nb without touching the host. Safe on a reset struct. */
void netns_close(struct netns_bottle *nb);

/* Cleanup without a live netns_bottle: deletes the slug's veths and namespace file. */
int netns_remove_slug(const char *slug, struct bottle_err *err);

/* Slugs that have a namespace file (either directory), sorted, each once. */
int netns_list_slugs(struct strv *slugs, struct bottle_err *err);

/* NETNS_RUN_DIR/bottle-<slug> (allocated). */
char *netns_path_for(const char *slug);
/* The slug's namespace file that exists, NETNS_RUN_DIR first, then the legacy one; NULL: none. */
char *netns_find_path(const char *slug);

/*
 * A connected NETLINK_ROUTE socket that lives in the namespace netns_fd
 * (opened by a thread that joined it). Free with nl_socket_free.
 */
int netns_route_socket(int netns_fd, struct nl_sock **out, struct bottle_err *err);

/* "10.243.0.4/30" style text for an address and prefix. */
void netns_format_cidr(struct in_addr addr, unsigned prefix_len, char *out, size_t out_len);

#endif
