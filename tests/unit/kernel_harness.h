/*
 * kernel_harness — shared fixture for the root-only kernel tests
 * (test_kernel_*.c): loopback servers outside the bottle standing in for the
 * sidecar and the DNS forwarder, a uniquely named test bottle (cgroup +
 * policy), children run inside it, and the leftover checks every test ends
 * with. Children never call cmocka: they report one errno-style exit code.
 */
#ifndef BOTTLE_TESTS_KERNEL_HARNESS_H
#define BOTTLE_TESTS_KERNEL_HARNESS_H

#include "testutil.h"

/* Each test binary uses a different subset of these helpers. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <linux/io_uring.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "common/fs.h"
#include "bpf/policy.h"
#include "bpf/sockkill.h"
#include "kernel/cgroup.h"

#define KH_IO_TIMEOUT_S  3
#define KH_CHILD_ALARM_S 15
#define KH_NOBODY        65534

/* ---- servers outside the bottle ---------------------------------------------------- */

struct kh_servers {
    int sidecar4, sidecar6; /* TCP echo, 127.0.0.1:port and [::1]:port */
    int other4, other6;     /* TCP echo on another port: reachable, but not allowed */
    int dns4, dns6;         /* UDP, 127.0.0.1:dns and [::1]:dns */
    int udp_other4;         /* UDP on another port */
    uint16_t port, other_port, dns_port, udp_other_port;
    pthread_t threads[4];
    int nthreads;
};

static struct kh_servers kh_srv;

static void kh_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = KH_IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void kh_addr(int family, const char *ip, uint16_t port, struct sockaddr_storage *ss,
                    socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        inet_pton(AF_INET, ip, &a->sin_addr);
        *len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        *len = sizeof(*a);
    }
}

/* Binds a socket; port 0 picks one. Returns the fd, the chosen port in *port. */
static int kh_bind(int family, int type, const char *ip, uint16_t *port)
{
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_storage ss;
    socklen_t len;
    kh_addr(family, ip, *port, &ss, &len);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    if (type == SOCK_STREAM && listen(fd, 128) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *kh_echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        ssize_t off = 0;
        while (off < n) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w <= 0)
                goto out;
            off += w;
        }
    }
out:
    close(fd);
    return NULL;
}

static void *kh_accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL; /* shut down */
        }
        pthread_t t;
        if (pthread_create(&t, NULL, kh_echo_conn, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
}

/* A port free on both 127.0.0.1 and ::1 for the given type. */
static int kh_bind_pair(int type, int *fd4, int *fd6, uint16_t *port)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        uint16_t p = 0;
        *fd4 = kh_bind(AF_INET, type, "127.0.0.1", &p);
        if (*fd4 < 0)
            return -1;
        *fd6 = kh_bind(AF_INET6, type, "::1", &p);
        if (*fd6 >= 0) {
            *port = p;
            return 0;
        }
        close(*fd4);
    }
    return -1;
}

static int kh_servers_start(void)
{
    struct kh_servers *s = &kh_srv;
    memset(s, 0, sizeof(*s));
    if (kh_bind_pair(SOCK_STREAM, &s->sidecar4, &s->sidecar6, &s->port) < 0 ||
        kh_bind_pair(SOCK_STREAM, &s->other4, &s->other6, &s->other_port) < 0 ||
        kh_bind_pair(SOCK_DGRAM, &s->dns4, &s->dns6, &s->dns_port) < 0)
        return -1;
    s->udp_other_port = 0;
    s->udp_other4 = kh_bind(AF_INET, SOCK_DGRAM, "127.0.0.1", &s->udp_other_port);
    if (s->udp_other4 < 0)
        return -1;
    int fds[4] = {s->sidecar4, s->sidecar6, s->other4, s->other6};
    for (int i = 0; i < 4; i++) {
        if (pthread_create(&s->threads[i], NULL, kh_accept_loop, (void *)(intptr_t)fds[i]) != 0)
            return -1;
        s->nthreads++;
    }
    return 0;
}

static void kh_reap_leftovers(void);

static void kh_servers_stop(void)
{
    kh_reap_leftovers();
    struct kh_servers *s = &kh_srv;
    int fds[4] = {s->sidecar4, s->sidecar6, s->other4, s->other6};
    for (int i = 0; i < 4; i++)
        shutdown(fds[i], SHUT_RDWR);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    close(s->dns4);
    close(s->dns6);
    close(s->udp_other4);
}

/* ---- the test bottle ------------------------------------------------------------------- */

struct kh_bottle {
    char slug[64];
    struct cgroup_bottle cg;
    struct bpf_policy_config cfg;
    struct bpf_policy_timing timing;
    char *pin_dir;
};

/* Bottles alive, so a test that fails half-way still leaves nothing behind. */
static struct kh_bottle *kh_live[16];

static void kh_track(struct kh_bottle *b, bool add)
{
    for (int i = 0; i < 16; i++) {
        if (add ? kh_live[i] == NULL : kh_live[i] == b) {
            kh_live[i] = add ? b : NULL;
            return;
        }
    }
}

/* Removes whatever a failed test left: called from each group teardown. */
static void kh_reap_leftovers(void)
{
    struct bottle_err err;
    bpf_policy_set_kill_switch(false, &err);
    for (int i = 0; i < 16; i++) {
        struct kh_bottle *b = kh_live[i];
        if (!b)
            continue;
        cgroup_bottle_close(&b->cg);
        bpf_policy_destroy(b->slug, &err);
        cgroup_bottle_remove(b->slug, 3000, &err);
        free(b->pin_dir);
        free(b);
        kh_live[i] = NULL;
    }
}

static void kh_default_config(struct bpf_policy_config *cfg, uint32_t flags)
{
    memset(cfg, 0, sizeof(*cfg));
    inet_pton(AF_INET, "127.0.0.1", &cfg->proxy_ip4);
    inet_pton(AF_INET6, "::1", &cfg->proxy_ip6);
    cfg->proxy_port = kh_srv.port;
    inet_pton(AF_INET, "127.0.0.1", &cfg->dns_ip4);
    inet_pton(AF_INET6, "::1", &cfg->dns_ip6);
    cfg->dns_port = kh_srv.dns_port;
    cfg->flags = flags;
}

static struct kh_bottle *kh_bottle_new(uint32_t flags)
{
    static int counter;
    struct kh_bottle *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    snprintf(b->slug, sizeof(b->slug), "ktest-%d-%d", (int)getpid(), counter++);
    kh_track(b, true);
    struct bottle_err err;
    err_clear(&err);
    int rc = cgroup_bottle_create(b->slug, &b->cg, &err);
    if (rc < 0)
        fail_msg("cgroup_bottle_create: %s", err.msg);
    kh_default_config(&b->cfg, flags);
    rc = bpf_policy_install(b->slug, b->cg.agent_fd, b->cg.agent_id, &b->cfg, &b->timing, &err);
    if (rc < 0)
        fail_msg("bpf_policy_install: %s", err.msg);
    rc = bpffs_bottle_dir(b->slug, false, &b->pin_dir, &err);
    assert_int_equal(rc, 0);
    return b;
}

/* Number of cgroup bpf_links attached to cgroup_id, found by walking every link. */
static int kh_links_on(uint64_t cgroup_id)
{
    __u32 id = 0;
    int count = 0;
    while (bpf_link_get_next_id(id, &id) == 0) {
        int fd = bpf_link_get_fd_by_id(id);
        if (fd < 0)
            continue;
        struct bpf_link_info info;
        __u32 len = sizeof(info);
        memset(&info, 0, sizeof(info));
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.type == BPF_LINK_TYPE_CGROUP &&
            info.cgroup.cgroup_id == cgroup_id)
            count++;
        close(fd);
    }
    return count;
}

/* Tears the bottle down and proves nothing is left: cgroup dirs, pins, links. */
static void kh_bottle_free(struct kh_bottle *b)
{
    if (!b)
        return;
    kh_track(b, false);
    struct bottle_err err;
    err_clear(&err);
    uint64_t agent_id = b->cg.agent_id;
    char *path = xstrdup(b->cg.path);
    cgroup_bottle_close(&b->cg);
    int rc = bpf_policy_destroy(b->slug, &err);
    if (rc < 0)
        fail_msg("bpf_policy_destroy: %s", err.msg);
    rc = cgroup_bottle_remove(b->slug, 3000, &err);
    if (rc < 0)
        fail_msg("cgroup_bottle_remove: %s", err.msg);
    assert_false(fs_is_dir(path));
    assert_false(fs_is_dir(b->pin_dir));
    assert_int_equal(kh_links_on(agent_id), 0);
    free(path);
    free(b->pin_dir);
    free(b);
}

/* ---- children inside the bottle ------------------------------------------------------------ */

struct kh_child {
    int (*fn)(void *);
    void *arg;
    bool nobody;
    bool private_netns; /* a fresh netns with lo up, entered before dropping privileges */
};

static int kh_lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    int rc = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        rc = errno;
    ifr.ifr_flags |= IFF_UP;
    if (rc == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        rc = errno;
    close(fd);
    return rc;
}

/*
 * Raw syscalls, not glibc's setuid(): the child of a raw clone3 inherits
 * glibc's idea of the parent's threads (the echo servers), and glibc's
 * all-threads setxid broadcast can wait forever for a thread that was being
 * created at clone time.
 */
static int kh_drop_to_nobody(void)
{
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setgid, KH_NOBODY) < 0 ||
        syscall(SYS_setuid, KH_NOBODY) < 0)
        return errno ? errno : 1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return errno;
    return 0;
}

static int kh_child_main(void *arg)
{
    struct kh_child *c = arg;
    alarm(KH_CHILD_ALARM_S);
    if (c->private_netns && (unshare(CLONE_NEWNET) < 0 || kh_lo_up() != 0))
        return 201;
    if (c->nobody) {
        int rc = kh_drop_to_nobody();
        if (rc)
            return 200;
    }
    return c->fn(c->arg);
}

/* Waits for pid (at most KH_CHILD_ALARM_S + 5 s); returns the exit code, or 128 + signal. */
static int kh_wait(pid_t pid)
{
    for (int i = 0; i < (KH_CHILD_ALARM_S + 5) * 100; i++) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0)
            return 255;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 254;
}

static bool kh_next_private_netns;

static pid_t kh_start_in(int cgroup_fd, bool nobody, int (*fn)(void *), void *arg)
{
    static struct kh_child c;
    c.fn = fn;
    c.arg = arg;
    c.nobody = nobody;
    c.private_netns = kh_next_private_netns;
    kh_next_private_netns = false;
    struct bottle_err err;
    err_clear(&err);
    pid_t pid = cgroup_spawn_into(cgroup_fd, 0, kh_child_main, &c, &err);
    if (pid < 0)
        fail_msg("cgroup_spawn_into: %s", err.msg);
    return pid;
}

/* Runs fn in a child placed in the cgroup; returns its exit code. */
static int kh_run_in(int cgroup_fd, bool nobody, int (*fn)(void *), void *arg)
{
    return kh_wait(kh_start_in(cgroup_fd, nobody, fn, arg));
}

/* The same in a private network namespace (loopback up), as the native backend runs agents. */
static int kh_run_in_netns(int cgroup_fd, bool nobody, int (*fn)(void *), void *arg)
{
    kh_next_private_netns = true;
    return kh_wait(kh_start_in(cgroup_fd, nobody, fn, arg));
}

/* ---- operations children perform (return 0 or the errno seen) ---------------------------- */

enum kh_op_kind { KH_TCP_CONNECT, KH_UDP_CONNECT, KH_UDP_SENDTO, KH_TCP_ECHO, KH_URING_CONNECT };

struct kh_op {
    enum kh_op_kind kind;
    int family;
    const char *ip;
    uint16_t port;
    size_t bytes; /* KH_TCP_ECHO: bytes sent and expected back */
};

static int kh_connect_fd(int type, const struct kh_op *op, int *out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    kh_addr(op->family, op->ip, op->port, &ss, &len);
    int fd = socket(op->family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    kh_timeouts(fd);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        int e = errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

static int kh_echo(int fd, size_t bytes)
{
    static char out[65536], in[65536];
    if (bytes > sizeof(out))
        return E2BIG;
    memset(out, 'b', bytes);
    size_t sent = 0, got = 0;
    while (sent < bytes) {
        ssize_t w = send(fd, out + sent, bytes - sent, MSG_NOSIGNAL);
        if (w < 0)
            return errno;
        sent += (size_t)w;
    }
    while (got < bytes) {
        ssize_t r = recv(fd, in + got, bytes - got, 0);
        if (r < 0)
            return errno;
        if (r == 0)
            return EPIPE;
        got += (size_t)r;
    }
    return memcmp(in, out, bytes) == 0 ? 0 : EBADMSG;
}

/*
 * IORING_OP_CONNECT through the raw io_uring syscalls: seccomp cannot see
 * the connect inside the ring, the cgroup hooks must. Returns 0 or errno;
 * 1000 + errno when io_uring itself is unavailable.
 */
static int kh_uring_connect(const struct sockaddr *sa, socklen_t len)
{
    int s = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    int ring = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (ring < 0)
        return 1000 + errno;
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(__u32);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP)
        sq_sz = cq_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
    char *sq = mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_SQ_RING);
    char *cq = (p.features & IORING_FEAT_SINGLE_MMAP)
                   ? sq
                   : mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                          IORING_OFF_CQ_RING);
    struct io_uring_sqe *sqes =
        mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
        return 1000 + ENOMEM;
    unsigned *sq_tail = (unsigned *)(sq + p.sq_off.tail);
    unsigned sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    unsigned *sq_array = (unsigned *)(sq + p.sq_off.array);
    unsigned tail = *sq_tail;
    unsigned idx = tail & sq_mask;
    memset(&sqes[idx], 0, sizeof(sqes[idx]));
    sqes[idx].opcode = IORING_OP_CONNECT;
    sqes[idx].fd = s;
    sqes[idx].addr = (__u64)(uintptr_t)sa;
    sqes[idx].off = len;
    sq_array[idx] = idx;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
        return 1000 + errno;
    unsigned head = __atomic_load_n((unsigned *)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
    unsigned cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    int res = cqes[head & cq_mask].res;
    close(ring);
    close(s);
    return res < 0 ? -res : 0;
}

static int kh_op_run(void *arg)
{
    const struct kh_op *op = arg;
    int fd = -1, rc;
    switch (op->kind) {
    case KH_TCP_CONNECT:
        rc = kh_connect_fd(SOCK_STREAM, op, &fd);
        break;
    case KH_UDP_CONNECT:
        rc = kh_connect_fd(SOCK_DGRAM, op, &fd);
        if (rc == 0 && send(fd, "q", 1, 0) < 0)
            rc = errno;
        break;
    case KH_TCP_ECHO:
        rc = kh_connect_fd(SOCK_STREAM, op, &fd);
        if (rc == 0)
            rc = kh_echo(fd, op->bytes);
        break;
    case KH_UDP_SENDTO: {
        struct sockaddr_storage ss;
        socklen_t len;
        kh_addr(op->family, op->ip, op->port, &ss, &len);
        fd = socket(op->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return errno;
        rc = sendto(fd, "q", 1, 0, (struct sockaddr *)&ss, len) < 0 ? errno : 0;
        break;
    }
    case KH_URING_CONNECT: {
        struct sockaddr_storage ss;
        socklen_t len;
        kh_addr(op->family, op->ip, op->port, &ss, &len);
        rc = kh_uring_connect((struct sockaddr *)&ss, len);
        break;
    }
    default:
        rc = EINVAL;
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Runs one operation in the cgroup; returns the child's errno-style result. */
static int kh_op_in(int cgroup_fd, bool nobody, enum kh_op_kind kind, int family, const char *ip,
                    uint16_t port)
{
    struct kh_op op = {.kind = kind, .family = family, .ip = ip, .port = port};
    return kh_run_in(cgroup_fd, nobody, kh_op_run, &op);
}

static struct bottle_stats kh_stats(const char *slug)
{
    struct bpf_policy_pins *p = NULL;
    struct bottle_err err;
    err_clear(&err);
    if (bpf_policy_open_pinned(slug, &p, &err) < 0)
        fail_msg("open_pinned: %s", err.msg);
    struct bottle_stats s;
    if (bpf_policy_read_stats(p, &s, &err) < 0)
        fail_msg("read_stats: %s", err.msg);
    bpf_policy_close(p);
    return s;
}

#endif
