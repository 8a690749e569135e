/*
 * netns — see netns.h. Linux only: libnl-route-3, mount(2), setns(2).
 */
#include "kernel/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include "common/fs.h"
#include "common/home.h"

#define GUEST_PREFIX_LEN 30

static int nl_errno(int nlerr)
{
    switch (nlerr < 0 ? -nlerr : nlerr) {
    case NLE_EXIST:
        return EEXIST;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
        return ENODEV;
    case NLE_PERM:
        return EPERM;
    case NLE_NOMEM:
        return ENOMEM;
    case NLE_BUSY:
        return EBUSY;
    default:
        return EIO;
    }
}

static int nl_fail(struct bottle_err *err, int nlerr, const char *what, const char *name)
{
    return err_set(err, nl_errno(nlerr), "netns: %s %s: %s", what, name, nl_geterror(nlerr));
}

static int inject(const struct netns_options *o, int step, struct bottle_err *err)
{
    if (o && o->fail_after_step == step)
        return err_set(err, EIO, "netns: injected failure after step %d", step);
    return 0;
}

char *netns_path_for(const char *slug)
{
    return xasprintf("%s/%s%s", NETNS_RUN_DIR, NETNS_NAME_PREFIX, slug);
}

static char *legacy_path_for(const char *slug)
{
    return xasprintf("%s/%s%s", NETNS_LEGACY_DIR, NETNS_NAME_PREFIX, slug);
}

char *netns_find_path(const char *slug)
{
    char *p = netns_path_for(slug);
    if (access(p, F_OK) == 0)
        return p;
    free(p);
    p = legacy_path_for(slug);
    if (access(p, F_OK) == 0)
        return p;
    free(p);
    return NULL;
}

void netns_format_cidr(struct in_addr addr, unsigned prefix_len, char *out, size_t out_len)
{
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, text, sizeof(text));
    snprintf(out, out_len, "%s/%u", text, prefix_len);
}

static void netns_reset(struct netns_bottle *nb)
{
    memset(nb, 0, sizeof(*nb));
    nb->fd = -1;
}

void netns_close(struct netns_bottle *nb)
{
    if (!nb)
        return;
    if (nb->fd >= 0)
        close(nb->fd);
    free(nb->slug);
    free(nb->path);
    netns_reset(nb);
}

/* ---- threads that enter a namespace --------------------------------------- */

struct ns_job {
    const char *mount_target; /* new namespace: bind it here */
    int join_fd;              /* existing namespace: open a socket in it */
    struct nl_sock *sock;
    int error;
    const char *failed; /* which call failed */
};

/* A new network namespace for this thread only, bind-mounted like iproute2 does. */
static void *job_new_namespace(void *arg)
{
    struct ns_job *job = arg;
    if (unshare(CLONE_NEWNET) < 0) {
        job->error = errno;
        job->failed = "unshare";
    } else if (mount("/proc/thread-self/ns/net", job->mount_target, "none", MS_BIND, NULL) < 0) {
        job->error = errno;
        job->failed = "bind-mount";
    }
    return NULL;
}

static void *job_open_socket(void *arg)
{
    struct ns_job *job = arg;
    if (setns(job->join_fd, CLONE_NEWNET) < 0) {
        job->error = errno;
        job->failed = "setns";
        return NULL;
    }
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk) {
        job->error = ENOMEM;
        job->failed = "nl_socket_alloc";
        return NULL;
    }
    int rc = nl_connect(sk, NETLINK_ROUTE);
    if (rc < 0) {
        nl_socket_free(sk);
        job->error = nl_errno(rc);
        job->failed = "nl_connect";
        return NULL;
    }
    job->sock = sk;
    return NULL;
}

static int run_job(void *(*fn)(void *), struct ns_job *job, struct bottle_err *err)
{
    pthread_t t;
    int rc = pthread_create(&t, NULL, fn, job);
    if (rc != 0)
        return err_set(err, rc, "netns: cannot start a thread: %s", strerror(rc));
    pthread_join(t, NULL);
    if (job->error)
        return err_set(err, job->error, "netns: %s: %s", job->failed, strerror(job->error));
    return 0;
}

int netns_route_socket(int netns_fd, struct nl_sock **out, struct bottle_err *err)
{
    struct ns_job job = {.join_fd = netns_fd};
    int rc = run_job(job_open_socket, &job, err);
    if (rc < 0)
        return rc;
    *out = job.sock;
    return 0;
}

static int host_socket(struct nl_sock **out, struct bottle_err *err)
{
    struct nl_sock *sk = nl_socket_alloc();
    if (!sk)
        return err_set(err, ENOMEM, "netns: out of memory");
    int rc = nl_connect(sk, NETLINK_ROUTE);
    if (rc < 0) {
        nl_socket_free(sk);
        return nl_fail(err, rc, "connect to", "rtnetlink");
    }
    *out = sk;
    return 0;
}

/* ---- the pool --------------------------------------------------------------- */

static uint32_t prefix_mask(unsigned len)
{
    return len == 0 ? 0 : 0xffffffffu << (32 - len);
}

/* Two IPv4 prefixes (host order) overlap when one contains the other. */
static bool prefixes_overlap(uint32_t a, unsigned alen, uint32_t b, unsigned blen)
{
    unsigned len = alen < blen ? alen : blen;
    return ((a ^ b) & prefix_mask(len)) == 0;
}

struct taken {
    uint32_t *net;
    unsigned *len;
    size_t n;
};

static void taken_add(struct taken *t, const struct nl_addr *a)
{
    if (!a || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4)
        return;
    unsigned len = nl_addr_get_prefixlen(a);
    if (len == 0) /* a default route overlaps everything and says nothing */
        return;
    uint32_t v;
    memcpy(&v, nl_addr_get_binary_addr(a), 4);
    t->net = xrealloc(t->net, (t->n + 1) * sizeof(*t->net));
    t->len = xrealloc(t->len, (t->n + 1) * sizeof(*t->len));
    t->net[t->n] = ntohl(v);
    t->len[t->n] = len;
    t->n++;
}

static void taken_free(struct taken *t)
{
    free(t->net);
    free(t->len);
}

/* Every IPv4 address (with its prefix) and route destination of the host, all tables. */
static int host_taken(struct nl_sock *sk, struct taken *t, struct bottle_err *err)
{
    struct nl_cache *addrs = NULL, *routes = NULL;
    int rc = rtnl_addr_alloc_cache(sk, &addrs);
    if (rc < 0)
        return nl_fail(err, rc, "list", "host addresses");
    for (struct nl_object *o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *)o;
        struct nl_addr *local = rtnl_addr_get_local(a);
        if (local && nl_addr_get_family(local) == AF_INET) {
            struct nl_addr *copy = nl_addr_clone(local);
            nl_addr_set_prefixlen(copy, (unsigned)rtnl_addr_get_prefixlen(a));
            taken_add(t, copy);
            /* The address itself too, in case its prefix is wider than /32. */
            nl_addr_set_prefixlen(copy, 32);
            taken_add(t, copy);
            nl_addr_put(copy);
        }
    }
    nl_cache_free(addrs);
    rc = rtnl_route_alloc_cache(sk, AF_INET, 0, &routes);
    if (rc < 0)
        return nl_fail(err, rc, "list", "host routes");
    for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o))
        taken_add(t, rtnl_route_get_dst((struct rtnl_route *)o));
    nl_cache_free(routes);
    return 0;
}

static bool link_exists(struct nl_sock *sk, const char *name)
{
    struct rtnl_link *l = NULL;
    if (rtnl_link_get_kernel(sk, 0, name, &l) < 0)
        return false;
    rtnl_link_put(l);
    return true;
}

static int pick_slot(struct nl_sock *sk, const struct netns_options *o, struct netns_bottle *nb,
                     struct bottle_err *err)
{
    const char *pool_text = o && o->pool ? o->pool : NETNS_POOL_DEFAULT;
    unsigned pool_len = o && o->pool_prefix ? o->pool_prefix : NETNS_POOL_PREFIX;
    struct in_addr pool_addr;
    if (inet_pton(AF_INET, pool_text, &pool_addr) != 1 || pool_len < 8 ||
        pool_len > GUEST_PREFIX_LEN)
        return err_set(err, EINVAL, "netns: pool %s/%u is not an IPv4 network of /8 to /30",
                       pool_text, pool_len);
    uint32_t pool = ntohl(pool_addr.s_addr) & prefix_mask(pool_len);
    uint32_t slots = 1u << (GUEST_PREFIX_LEN - pool_len);

    struct taken t = {0};
    int rc = host_taken(sk, &t, err);
    if (rc < 0) {
        taken_free(&t);
        return rc;
    }
    rc = err_set(err, EADDRNOTAVAIL,
                 "netns: no free /30 in %s/%u: every one overlaps a host address or route "
                 "or another bottle; remove stale bottles with 'bottle cleanup'",
                 pool_text, pool_len);
    for (uint32_t slot = 0; slot < slots; slot++) {
        uint32_t net = pool + (slot << 2);
        bool clash = false;
        for (size_t i = 0; i < t.n && !clash; i++)
            clash = prefixes_overlap(net, GUEST_PREFIX_LEN, t.net[i], t.len[i]);
        if (clash)
            continue;
        char host_if[IF_NAMESIZE], guest_if[IF_NAMESIZE];
        snprintf(host_if, sizeof(host_if), NETNS_HOST_IF_PREFIX "%x", slot);
        snprintf(guest_if, sizeof(guest_if), NETNS_GUEST_IF_PREFIX "%x", slot);
        if (link_exists(sk, host_if) || link_exists(sk, guest_if))
            continue; /* a crashed bottle's link without its address */
        nb->slot = slot;
        memcpy(nb->host_if, host_if, sizeof(host_if));
        memcpy(nb->guest_if, guest_if, sizeof(guest_if));
        nb->network.s_addr = htonl(net);
        nb->host_addr.s_addr = htonl(net + 1);
        nb->guest_addr.s_addr = htonl(net + 2);
        nb->prefix_len = GUEST_PREFIX_LEN;
        err_clear(err);
        rc = 0;
        break;
    }
    taken_free(&t);
    return rc;
}

static int pool_lock(const struct netns_options *o, struct bottle_err *err)
{
    const char *path = o && o->lock_path ? o->lock_path : NETNS_LOCK_PATH;
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int rc = fs_mkdir_p(dir, 0700, err);
        if (rc < 0) {
            free(dir);
            return rc;
        }
    }
    free(dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_set(err, errno, "netns: cannot open the pool lock %s: %s", path,
                       strerror(errno));
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            return err_set(err, e, "netns: cannot lock %s: %s", path, strerror(e));
        }
    }
    return fd;
}

/* ---- links and addresses ------------------------------------------------------ */

static int link_up(struct nl_sock *sk, const char *name, struct bottle_err *err)
{
    struct rtnl_link *link = NULL;
    int rc = rtnl_link_get_kernel(sk, 0, name, &link);
    if (rc < 0)
        return nl_fail(err, rc, "find link", name);
    struct rtnl_link *change = rtnl_link_alloc();
    rtnl_link_set_flags(change, IFF_UP);
    rc = rtnl_link_change(sk, link, change, 0);
    rtnl_link_put(change);
    rtnl_link_put(link);
    if (rc < 0)
        return nl_fail(err, rc, "bring up", name);
    return 0;
}

static int address_add(struct nl_sock *sk, const char *ifname, struct in_addr ip, unsigned len,
                       struct bottle_err *err)
{
    struct rtnl_link *link = NULL;
    int rc = rtnl_link_get_kernel(sk, 0, ifname, &link);
    if (rc < 0)
        return nl_fail(err, rc, "find link", ifname);
    struct rtnl_addr *a = rtnl_addr_alloc();
    struct nl_addr *local = nl_addr_build(AF_INET, &ip, 4);
    nl_addr_set_prefixlen(local, len);
    rtnl_addr_set_ifindex(a, rtnl_link_get_ifindex(link));
    rtnl_addr_set_local(a, local);
    rtnl_addr_set_prefixlen(a, (int)len);
    rc = rtnl_addr_add(sk, a, 0);
    nl_addr_put(local);
    rtnl_addr_put(a);
    rtnl_link_put(link);
    if (rc < 0)
        return nl_fail(err, rc, "add an address to", ifname);
    return 0;
}

static int veth_create(struct nl_sock *sk, const struct netns_bottle *nb, struct bottle_err *err)
{
    struct rtnl_link *veth = rtnl_link_veth_alloc();
    if (!veth)
        return err_set(err, ENOMEM, "netns: out of memory");
    rtnl_link_set_name(veth, nb->host_if);
    struct rtnl_link *peer = rtnl_link_veth_get_peer(veth);
    rtnl_link_set_name(peer, nb->guest_if);
    rtnl_link_set_ns_fd(peer, nb->fd);
    rtnl_link_put(peer);
    int rc = rtnl_link_add(sk, veth, NLM_F_CREATE | NLM_F_EXCL);
    rtnl_link_veth_release(veth);
    if (rc < 0)
        return nl_fail(err, rc, "create veth", nb->host_if);
    return 0;
}

static int link_delete_by_name(struct nl_sock *sk, const char *name, struct bottle_err *err)
{
    struct rtnl_link *link = NULL;
    int rc = rtnl_link_get_kernel(sk, 0, name, &link);
    if (rc < 0)
        return 0; /* already gone */
    rc = rtnl_link_delete(sk, link);
    rtnl_link_put(link);
    if (rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV)
        return nl_fail(err, rc, "delete link", name);
    return 0;
}

/* Deletes every veth inside the namespace (its peer on the host goes with it). */
static int delete_guest_veths(int netns_fd, struct bottle_err *err)
{
    struct nl_sock *sk = NULL;
    struct bottle_err ignored = {0};
    if (netns_route_socket(netns_fd, &sk, &ignored) < 0)
        return 0; /* not a namespace (half-created file): nothing inside */
    struct nl_cache *links = NULL;
    int rc = rtnl_link_alloc_cache(sk, AF_UNSPEC, &links);
    if (rc < 0) {
        nl_socket_free(sk);
        return nl_fail(err, rc, "list", "bottle links");
    }
    int first = 0;
    for (struct nl_object *o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
        struct rtnl_link *l = (struct rtnl_link *)o;
        const char *type = rtnl_link_get_type(l);
        if (!type || strcmp(type, "veth") != 0)
            continue;
        rc = rtnl_link_delete(sk, l);
        if (rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV && first == 0)
            first = nl_fail(err, rc, "delete link", rtnl_link_get_name(l));
    }
    nl_cache_free(links);
    nl_socket_free(sk);
    return first;
}

/* Unmounts and unlinks a namespace file; missing is fine. */
static int remove_ns_file(const char *path, struct bottle_err *err)
{
    if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return err_set(err, errno, "netns: cannot unmount %s: %s", path, strerror(errno));
    if (unlink(path) < 0 && errno != ENOENT)
        return err_set(err, errno, "netns: cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/*
 * NETNS_RUN_DIR exists, only root can enter it (0700: the namespace files in
 * it are 0444 whatever is done to them), and it is a shared mount point, as
 * iproute2 leaves /run/netns, so unmounting a namespace file reaches every
 * mount namespace that copied it.
 */
static int prepare_run_dir(struct bottle_err *err)
{
    int fd = fs_open_dir_walk(NETNS_RUN_DIR, true, 0700, err);
    if (fd < 0)
        return err_prefix(err, "netns");
    struct stat sb;
    if (fstat(fd, &sb) < 0 || ((sb.st_mode & 0077) && fchmod(fd, 0700) < 0)) {
        int e = errno;
        close(fd);
        return err_set(err, e, "netns: cannot close %s to other users: %s", NETNS_RUN_DIR,
                       strerror(e));
    }
    close(fd);
    if (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
        return 0;
    if (errno != EINVAL)
        return err_set(err, errno, "netns: cannot share %s: %s", NETNS_RUN_DIR, strerror(errno));
    if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0 ||
        mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0)
        return err_set(err, errno, "netns: cannot make %s a shared mount: %s", NETNS_RUN_DIR,
                       strerror(errno));
    return 0;
}

/* The namespace and its file; nb->path is set as soon as the file is ours. */
static int make_namespace(struct netns_bottle *nb, struct bottle_err *err)
{
    int rc = prepare_run_dir(err);
    if (rc < 0)
        return rc;
    char *path = netns_path_for(nb->slug);
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        rc = err_set(err, e,
                     e == EEXIST ? "netns: %s already exists; a bottle with this slug is running "
                                   "or crashed (run 'bottle cleanup')"
                                 : "netns: cannot create %s: %s",
                     path, strerror(e));
        free(path);
        return rc;
    }
    close(fd);
    nb->path = path;
    struct ns_job job = {.mount_target = path, .join_fd = -1};
    rc = run_job(job_new_namespace, &job, err);
    if (rc < 0)
        return rc;
    nb->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (nb->fd < 0)
        return err_set(err, errno, "netns: cannot open %s: %s", path, strerror(errno));
    return 0;
}

static int configure_guest(struct netns_bottle *nb, struct bottle_err *err)
{
    struct nl_sock *sk = NULL;
    int rc = netns_route_socket(nb->fd, &sk, err);
    if (rc < 0)
        return rc;
    rc = address_add(sk, nb->guest_if, nb->guest_addr, nb->prefix_len, err);
    if (rc >= 0)
        rc = link_up(sk, nb->guest_if, err);
    if (rc >= 0)
        rc = link_up(sk, "lo", err);
    nl_socket_free(sk);
    return rc;
}

int netns_create(const char *slug, const struct netns_options *opts, struct netns_bottle *nb,
                 struct bottle_err *err)
{
    netns_reset(nb);
    if (!home_slug_valid(slug))
        return err_set(err, EINVAL, "netns: '%s' is not a slug", slug ? slug : "");
    nb->slug = xstrdup(slug);

    int lock_fd = pool_lock(opts, err);
    if (lock_fd < 0) {
        netns_close(nb);
        return lock_fd;
    }
    struct nl_sock *sk = NULL;
    int rc = host_socket(&sk, err);
    if (rc >= 0)
        rc = make_namespace(nb, err);
    if (rc >= 0)
        rc = inject(opts, 1, err);
    if (rc >= 0)
        rc = pick_slot(sk, opts, nb, err);
    if (rc >= 0) {
        rc = veth_create(sk, nb, err);
        if (rc < 0)
            nb->host_if[0] = '\0'; /* not ours: never delete another's link of that name */
    }
    if (rc >= 0)
        rc = inject(opts, 2, err);
    if (rc >= 0)
        rc = address_add(sk, nb->host_if, nb->host_addr, nb->prefix_len, err);
    if (rc >= 0)
        rc = link_up(sk, nb->host_if, err);
    if (rc >= 0)
        rc = inject(opts, 3, err);
    if (rc >= 0)
        rc = configure_guest(nb, err);
    if (rc >= 0)
        rc = inject(opts, 4, err);

    if (rc < 0) {
        struct bottle_err ignored = {0};
        if (sk && nb->host_if[0])
            link_delete_by_name(sk, nb->host_if, &ignored);
        if (nb->path) {
            if (nb->fd >= 0)
                delete_guest_veths(nb->fd, &ignored);
            if (nb->fd >= 0)
                close(nb->fd);
            nb->fd = -1;
            remove_ns_file(nb->path, &ignored);
        }
        netns_close(nb);
    }
    if (sk)
        nl_socket_free(sk);
    close(lock_fd);
    return rc;
}

int netns_destroy(struct netns_bottle *nb, struct bottle_err *err)
{
    int first = 0;
    struct bottle_err step = {0};
    if (nb->host_if[0]) {
        struct nl_sock *sk = NULL;
        int rc = host_socket(&sk, &step);
        if (rc >= 0) {
            rc = link_delete_by_name(sk, nb->host_if, &step);
            nl_socket_free(sk);
        }
        if (rc < 0 && !first) {
            first = rc;
            *err = step;
        }
    }
    if (nb->path) {
        int fd = nb->fd >= 0 ? nb->fd : open(nb->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            int rc = delete_guest_veths(fd, &step);
            if (rc < 0 && !first) {
                first = rc;
                *err = step;
            }
            if (fd != nb->fd)
                close(fd);
        }
        if (nb->fd >= 0)
            close(nb->fd);
        nb->fd = -1;
        int rc = remove_ns_file(nb->path, &step);
        if (rc < 0 && !first) {
            first = rc;
            *err = step;
        }
    }
    netns_close(nb);
    return first;
}

int netns_remove_slug(const char *slug, struct bottle_err *err)
{
    if (!home_slug_valid(slug))
        return err_set(err, EINVAL, "netns: '%s' is not a slug", slug ? slug : "");
    struct netns_bottle nb;
    netns_reset(&nb);
    nb.slug = xstrdup(slug);
    nb.path = netns_path_for(slug);
    int rc = netns_destroy(&nb, err);
    char *legacy = legacy_path_for(slug);
    if (access(legacy, F_OK) == 0) { /* a bottle started before the namespaces moved */
        struct bottle_err e2 = {0};
        netns_reset(&nb);
        nb.slug = xstrdup(slug);
        nb.path = legacy;
        legacy = NULL;
        int rc2 = netns_destroy(&nb, &e2);
        if (rc == 0 && rc2 < 0) {
            rc = rc2;
            *err = e2;
        }
    }
    free(legacy);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_dir_slugs(const char *dir, struct strv *slugs, struct bottle_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return err_set(err, errno, "netns: cannot read %s: %s", dir, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (str_starts_with(de->d_name, NETNS_NAME_PREFIX) &&
            home_slug_valid(de->d_name + strlen(NETNS_NAME_PREFIX)) &&
            !strv_contains(slugs, de->d_name + strlen(NETNS_NAME_PREFIX)))
            strv_push(slugs, de->d_name + strlen(NETNS_NAME_PREFIX));
    closedir(d);
    return 0;
}

int netns_list_slugs(struct strv *slugs, struct bottle_err *err)
{
    int rc = list_dir_slugs(NETNS_RUN_DIR, slugs, err);
    if (rc == 0)
        rc = list_dir_slugs(NETNS_LEGACY_DIR, slugs, err);
    if (slugs->len > 1)
        qsort(slugs->items, slugs->len, sizeof(char *), cmp_str);
    return rc;
}
