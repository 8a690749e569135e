/*
 * The bottle's veth, handed over to the container. The controller (or a
 * test) creates the pair as for every bottle: the host end with the
 * sidecar's address, the bottle end in a staging namespace. The container
 * starts with --network none (only lo); this file moves the bottle end into
 * the container's namespace, puts its IPv4 addresses back (a move drops
 * them) and brings it up. The only route inside is then the veth's /30:
 * the sidecar's host address is the one reachable host address.
 *
 * libnl sockets live in the target namespaces (netns_route_socket opens them
 * from a short-lived thread); the calling thread never changes namespace.
 */
#include <errno.h>
#include <stdio.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include "backends/docker/docker_internal.h"
#include "kernel/netns.h"

#define NET_MAX_ADDRS 8

struct moved_link {
    char name[IF_NAMESIZE];
    int ifindex;
    struct in_addr addrs[NET_MAX_ADDRS];
    unsigned prefix[NET_MAX_ADDRS];
    size_t n_addrs;
};

static int nl_err(struct bottle_err *err, int nlerr, const char *what, const char *name)
{
    return err_set(err, EIO, "docker: cannot %s %s: %s", what, name, nl_geterror(nlerr));
}

/* The one non-loopback link of the staging namespace and its IPv4 addresses. */
static int find_link(struct nl_sock *sk, struct moved_link *ml, struct bottle_err *err)
{
    struct nl_cache *links = NULL, *addrs = NULL;
    int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
    if (rc < 0)
        return nl_err(err, rc, "list the links of", "the bottle's namespace");
    size_t found = 0;
    for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
        struct rtnl_link *l = (struct rtnl_link *)o;
        if (rtnl_link_get_flags(l) & IFF_LOOPBACK)
            continue;
        if (found++ == 0) {
            snprintf(ml->name, sizeof(ml->name), "%s", rtnl_link_get_name(l));
            ml->ifindex = rtnl_link_get_ifindex(l);
        }
    }
    nl_cache_free(links);
    if (found != 1)
        return err_set(err, EINVAL,
                       "docker: the bottle's namespace holds %zu links besides lo; expected its "
                       "one veth",
                       found);
    rc = rtnl_addr_alloc_cache(sk, &addrs);
    if (rc < 0)
        return nl_err(err, rc, "list the addresses of", ml->name);
    for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *)o;
        struct nl_addr *local = rtnl_addr_get_local(a);
        if (rtnl_addr_get_ifindex(a) != ml->ifindex || rtnl_addr_get_family(a) != AF_INET ||
            !local || nl_addr_get_len(local) != 4 || ml->n_addrs == NET_MAX_ADDRS)
            continue;
        memcpy(&ml->addrs[ml->n_addrs], nl_addr_get_binary_addr(local), 4);
        ml->prefix[ml->n_addrs] = (unsigned)rtnl_addr_get_prefixlen(a);
        ml->n_addrs++;
    }
    nl_cache_free(addrs);
    if (ml->n_addrs == 0)
        return err_set(err, EINVAL, "docker: the bottle's veth %s has no IPv4 address", ml->name);
    return 0;
}

static int move_link(struct nl_sock *sk, const struct moved_link *ml, int to_fd,
                     struct bottle_err *err)
{
    struct rtnl_link *link = NULL;
    int rc = rtnl_link_get_kernel(sk, ml->ifindex, NULL, &link);
    if (rc < 0)
        return nl_err(err, rc, "find link", ml->name);
    struct rtnl_link *change = rtnl_link_alloc();
    rtnl_link_set_ns_fd(change, to_fd);
    rc = rtnl_link_change(sk, link, change, 0);
    rtnl_link_put(change);
    rtnl_link_put(link);
    if (rc < 0)
        return nl_err(err, rc, "move into the container's namespace", ml->name);
    return 0;
}

static int set_up(struct nl_sock *sk, struct rtnl_link *link, const char *name,
                  struct bottle_err *err)
{
    struct rtnl_link *change = rtnl_link_alloc();
    rtnl_link_set_flags(change, IFF_UP);
    int rc = rtnl_link_change(sk, link, change, 0);
    rtnl_link_put(change);
    return rc < 0 ? nl_err(err, rc, "bring up", name) : 0;
}

static int configure(struct nl_sock *sk, const struct moved_link *ml, struct bottle_err *err)
{
    struct rtnl_link *link = NULL;
    int rc = rtnl_link_get_kernel(sk, 0, ml->name, &link);
    if (rc < 0)
        return nl_err(err, rc, "find the moved link", ml->name);
    int ifindex = rtnl_link_get_ifindex(link);
    for (size_t i = 0; rc >= 0 && i < ml->n_addrs; i++) {
        struct rtnl_addr *a = rtnl_addr_alloc();
        struct nl_addr *local = nl_addr_build(AF_INET, &ml->addrs[i], 4);
        nl_addr_set_prefixlen(local, (int)ml->prefix[i]);
        rtnl_addr_set_ifindex(a, ifindex);
        rtnl_addr_set_local(a, local);
        rtnl_addr_set_prefixlen(a, (int)ml->prefix[i]);
        rc = rtnl_addr_add(sk, a, 0);
        nl_addr_put(local);
        rtnl_addr_put(a);
        if (rc < 0)
            rc = nl_err(err, rc, "add an address to", ml->name);
    }
    if (rc >= 0)
        rc = set_up(sk, link, ml->name, err);
    rtnl_link_put(link);
    if (rc < 0)
        return rc;
    struct rtnl_link *lo = NULL;
    if (rtnl_link_get_kernel(sk, 0, "lo", &lo) >= 0) {
        rc = set_up(sk, lo, "lo", err);
        rtnl_link_put(lo);
    }
    return rc < 0 ? rc : 0;
}

int docker_net_adopt(int from_fd, int to_fd, struct bottle_err *err)
{
    struct moved_link ml;
    memset(&ml, 0, sizeof(ml));
    struct nl_sock *from = NULL, *to = NULL;
    int rc = netns_route_socket(from_fd, &from, err);
    if (rc == 0)
        rc = find_link(from, &ml, err);
    if (rc == 0)
        rc = move_link(from, &ml, to_fd, err);
    if (rc == 0)
        rc = netns_route_socket(to_fd, &to, err);
    if (rc == 0)
        rc = configure(to, &ml, err);
    if (from)
        nl_socket_free(from);
    if (to)
        nl_socket_free(to);
    return rc;
}
