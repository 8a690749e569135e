/*
 * Kernel policy tests (root): the BPF programs attached to a real bottle
 * cgroup allow the sidecar and the DNS forwarder and nothing else, meter the
 * bytes, report denials as events, govern sub-cgroups through the ancestor
 * lookup, deny cgroups without an entry, and a non-root member cannot leave.
 * Servers run outside the bottle on loopback; every test ends by proving that
 * no cgroup, pin or link is left.
 */
#include "kernel_harness.h"

#include <netinet/ip_icmp.h>
#include <sched.h>

static int group_setup(void **state)
{
    (void)state;
    if (geteuid() != 0)
        return 0;
    return kh_servers_start();
}

static int group_teardown(void **state)
{
    (void)state;
    if (geteuid() == 0)
        kh_servers_stop();
    return 0;
}

static int bottle_setup(void **state)
{
    *state = NULL;
    if (geteuid() != 0)
        return 0;
    *state = kh_bottle_new(BOTTLE_FLAG_DNS | BOTTLE_FLAG_IPV6);
    return 0;
}

static int bottle_teardown(void **state)
{
    kh_bottle_free(*state);
    return 0;
}

/* ---- the allow/deny matrix ---------------------------------------------------------------- */

enum port_ref { P_SIDECAR, P_OTHER, P_DNS, P_UDP_OTHER };

struct matrix_case {
    const char *name;
    enum kh_op_kind kind;
    int family;
    const char *ip;
    enum port_ref port;
    int expect;
};

static const struct matrix_case matrix[] = {
    {"tcp sidecar v4", KH_TCP_CONNECT, AF_INET, "127.0.0.1", P_SIDECAR, 0},
    {"tcp sidecar v6", KH_TCP_CONNECT, AF_INET6, "::1", P_SIDECAR, 0},
    {"tcp sidecar v4-mapped", KH_TCP_CONNECT, AF_INET6, "::ffff:127.0.0.1", P_SIDECAR, 0},
    {"tcp other port v4", KH_TCP_CONNECT, AF_INET, "127.0.0.1", P_OTHER, EPERM},
    {"tcp other address v4", KH_TCP_CONNECT, AF_INET, "127.0.0.2", P_SIDECAR, EPERM},
    {"tcp other port v6", KH_TCP_CONNECT, AF_INET6, "::1", P_OTHER, EPERM},
    {"tcp other port v4-mapped", KH_TCP_CONNECT, AF_INET6, "::ffff:127.0.0.1", P_OTHER, EPERM},
    {"tcp other address v4-mapped", KH_TCP_CONNECT, AF_INET6, "::ffff:127.0.0.2", P_SIDECAR, EPERM},
    {"tcp to the dns port", KH_TCP_CONNECT, AF_INET, "127.0.0.1", P_DNS, EPERM},
    {"udp connect dns v4", KH_UDP_CONNECT, AF_INET, "127.0.0.1", P_DNS, 0},
    {"udp connect dns v6", KH_UDP_CONNECT, AF_INET6, "::1", P_DNS, 0},
    {"udp connect dns v4-mapped", KH_UDP_CONNECT, AF_INET6, "::ffff:127.0.0.1", P_DNS, 0},
    {"udp connect other v4", KH_UDP_CONNECT, AF_INET, "127.0.0.1", P_UDP_OTHER, EPERM},
    {"udp connect to the sidecar port", KH_UDP_CONNECT, AF_INET, "127.0.0.1", P_SIDECAR, EPERM},
    {"udp sendto dns v4", KH_UDP_SENDTO, AF_INET, "127.0.0.1", P_DNS, 0},
    {"udp sendto dns v6", KH_UDP_SENDTO, AF_INET6, "::1", P_DNS, 0},
    {"udp sendto other v4", KH_UDP_SENDTO, AF_INET, "127.0.0.1", P_UDP_OTHER, EPERM},
    {"udp sendto other v6", KH_UDP_SENDTO, AF_INET6, "::1", P_UDP_OTHER, EPERM},
    {"udp sendto other v4-mapped", KH_UDP_SENDTO, AF_INET6, "::ffff:127.0.0.1", P_UDP_OTHER, EPERM},
    {"io_uring connect sidecar", KH_URING_CONNECT, AF_INET, "127.0.0.1", P_SIDECAR, 0},
    {"io_uring connect other", KH_URING_CONNECT, AF_INET, "127.0.0.1", P_OTHER, EPERM},
    {"io_uring connect other v6", KH_URING_CONNECT, AF_INET6, "::1", P_OTHER, EPERM},
};

static uint16_t port_of(enum port_ref r)
{
    switch (r) {
    case P_SIDECAR:
        return kh_srv.port;
    case P_OTHER:
        return kh_srv.other_port;
    case P_DNS:
        return kh_srv.dns_port;
    case P_UDP_OTHER:
        return kh_srv.udp_other_port;
    }
    return 0;
}

static void run_matrix(int cgroup_fd, bool nobody)
{
    int failures = 0;
    for (size_t i = 0; i < sizeof(matrix) / sizeof(matrix[0]); i++) {
        const struct matrix_case *c = &matrix[i];
        int got = kh_op_in(cgroup_fd, nobody, c->kind, c->family, c->ip, port_of(c->port));
        if (got != c->expect) {
            print_message("# %s (%s): expected %d (%s), got %d (%s)\n", c->name,
                          nobody ? "nobody" : "root", c->expect, strerror(c->expect), got,
                          got < 1000 ? strerror(got) : "io_uring unavailable");
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_matrix_root(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    run_matrix(b->cg.agent_fd, false);
}

static void test_matrix_nobody(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    run_matrix(b->cg.agent_fd, true);
}

/* The same destinations from outside any bottle all connect: the denials above are the hooks. */
static void test_matrix_control_outside(void **state)
{
    REQUIRE_ROOT();
    (void)state;
    struct kh_op op = {KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port, 0};
    assert_int_equal(kh_op_run(&op), 0);
    op.kind = KH_URING_CONNECT;
    assert_int_equal(kh_op_run(&op), 0);
    struct kh_op udp = {KH_UDP_SENDTO, AF_INET, "127.0.0.1", kh_srv.udp_other_port, 0};
    assert_int_equal(kh_op_run(&udp), 0);
}

/* Without FLAG_IPV6 native IPv6 to the sidecar is denied; v4-mapped (dual stack) still works. */
static void test_ipv6_flag_off(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bpf_policy_pins *p = NULL;
    struct bottle_err err;
    err_clear(&err);
    assert_int_equal(bpf_policy_open_pinned(b->slug, &p, &err), 0);
    struct bpf_policy_config cfg = b->cfg;
    cfg.flags = BOTTLE_FLAG_DNS;
    assert_int_equal(bpf_policy_entry_set(p, b->cg.agent_id, &cfg, &err), 0);
    int fd = b->cg.agent_fd;
    assert_int_equal(kh_op_in(fd, true, KH_TCP_CONNECT, AF_INET6, "::1", kh_srv.port), EPERM);
    assert_int_equal(kh_op_in(fd, true, KH_UDP_SENDTO, AF_INET6, "::1", kh_srv.dns_port), EPERM);
    assert_int_equal(kh_op_in(fd, true, KH_TCP_CONNECT, AF_INET6, "::ffff:127.0.0.1", kh_srv.port),
                     0);
    assert_int_equal(kh_op_in(fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);
    /* And without FLAG_DNS no UDP at all. */
    cfg.flags = 0;
    assert_int_equal(bpf_policy_entry_set(p, b->cg.agent_id, &cfg, &err), 0);
    assert_int_equal(kh_op_in(fd, true, KH_UDP_SENDTO, AF_INET, "127.0.0.1", kh_srv.dns_port),
                     EPERM);
    assert_int_equal(kh_op_in(fd, true, KH_UDP_CONNECT, AF_INET, "127.0.0.1", kh_srv.dns_port),
                     EPERM);
    bpf_policy_close(p);
}

/* ---- socket kinds ---------------------------------------------------------------------------- */

static int open_socket(void *arg)
{
    const int *spec = arg; /* family, type, protocol */
    int fd = socket(spec[0], spec[1] | SOCK_CLOEXEC, spec[2]);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

/* In a fresh netns whose ping_group_range admits everyone, only the hook can refuse ICMP. */
static int open_icmp_in_private_netns(void *arg)
{
    if (unshare(CLONE_NEWNET) < 0)
        return 100;
    int fd = open("/proc/sys/net/ipv4/ping_group_range", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 101;
    if (write(fd, "0 2147483647", 12) != 12)
        return 102;
    close(fd);
    return open_socket(arg);
}

static void test_socket_kinds(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    int raw4[3] = {AF_INET, SOCK_RAW, IPPROTO_TCP};
    int raw6[3] = {AF_INET6, SOCK_RAW, IPPROTO_UDP};
    int icmp[3] = {AF_INET, SOCK_DGRAM, IPPROTO_ICMP};
    int icmp6[3] = {AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6};
    int packet[3] = {AF_PACKET, SOCK_RAW, 0};
    int tcp[3] = {AF_INET, SOCK_STREAM, 0};

    /* Root inside the bottle: CAP_NET_RAW is there, the sock_create hook is what refuses. */
    assert_int_equal(kh_run_in(b->cg.agent_fd, false, open_socket, raw4), EPERM);
    assert_int_equal(kh_run_in(b->cg.agent_fd, false, open_socket, raw6), EPERM);
    assert_int_equal(kh_run_in(b->cg.agent_fd, false, open_icmp_in_private_netns, icmp), EPERM);
    assert_int_equal(kh_run_in(b->cg.agent_fd, false, open_icmp_in_private_netns, icmp6), EPERM);
    assert_int_equal(kh_run_in(b->cg.agent_fd, false, open_socket, tcp), 0);
    /* AF_PACKET never reaches the inet hooks; without capabilities the kernel refuses it. */
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, open_socket, packet), EPERM);
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, open_socket, raw4), EPERM);

    /* Control: the same as root outside any bottle succeeds. */
    assert_int_equal(open_socket(raw4), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(open_icmp_in_private_netns(icmp));
    assert_int_equal(kh_wait(pid), 0);
}

/* ---- loopback ----------------------------------------------------------------------------------
 */

/* A server and a client on the bottle's own loopback (run in a private netns). */
static int loopback_roundtrip(void *arg)
{
    const char *ip = arg;
    int family = strchr(ip, ':') ? AF_INET6 : AF_INET;
    uint16_t port = 0;
    int srv = kh_bind(family, SOCK_STREAM, ip, &port);
    if (srv < 0)
        return 102;
    kh_timeouts(srv);
    struct kh_op op = {KH_TCP_CONNECT, family, ip, port, 0};
    int cli = -1;
    int rc = kh_connect_fd(SOCK_STREAM, &op, &cli);
    if (rc)
        return rc;
    int acc = accept(srv, NULL, NULL);
    if (acc < 0)
        return 103;
    kh_timeouts(acc);
    char buf[64];
    if (write(cli, "hello", 5) != 5 || read(acc, buf, sizeof(buf)) != 5)
        return 104;
    if (write(acc, "world", 5) != 5 || read(cli, buf, sizeof(buf)) != 5)
        return 105;
    close(acc);
    close(cli);
    close(srv);
    return 0;
}

static int nonloopback_in_private_netns(void *arg)
{
    (void)arg;
    struct kh_op op = {KH_TCP_CONNECT, AF_INET, "10.254.254.1", 80, 0};
    return kh_op_run(&op);
}

static void test_loopback_flag(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bpf_policy_pins *p = NULL;
    struct bottle_err err;
    err_clear(&err);
    assert_int_equal(bpf_policy_open_pinned(b->slug, &p, &err), 0);

    /* Flag off (the default): the bottle's own loopback is denied too. */
    assert_int_equal(kh_run_in_netns(b->cg.agent_fd, true, loopback_roundtrip, "127.0.0.1"), EPERM);

    struct bpf_policy_config cfg = b->cfg;
    cfg.flags |= BOTTLE_FLAG_LOOPBACK_OK;
    assert_int_equal(bpf_policy_entry_set(p, b->cg.agent_id, &cfg, &err), 0);
    assert_int_equal(kh_run_in_netns(b->cg.agent_fd, true, loopback_roundtrip, "127.0.0.1"), 0);
    assert_int_equal(kh_run_in_netns(b->cg.agent_fd, true, loopback_roundtrip, "127.0.0.9"), 0);
    assert_int_equal(kh_run_in_netns(b->cg.agent_fd, true, loopback_roundtrip, "::1"), 0);
    /* Loopback does not open anything else: the netns has no route, but the hook answers first. */
    assert_int_equal(kh_run_in_netns(b->cg.agent_fd, true, nonloopback_in_private_netns, NULL),
                     EPERM);
    bpf_policy_close(p);
}

/* ---- inbound: only the sidecar's and the DNS forwarder's side come in --------------------- */

#define INGRESS_GOT_STRANGER 1 /* a datagram from a port that is not the DNS forwarder's */
#define INGRESS_ACCEPTED     2 /* a TCP connection from outside was accepted */
#define INGRESS_GOT_DNS      4 /* the DNS forwarder's datagram (the control) */

struct ingress_child {
    int ports_fd; /* write end: the UDP then the TCP port the child listens on */
};

/* In the bottle: a UDP socket and a TCP listener on loopback; reports what arrives in 3 s. */
static int ingress_listener(void *arg)
{
    const struct ingress_child *ic = arg;
    uint16_t ports[2] = {0, 0};
    int u = kh_bind(AF_INET, SOCK_DGRAM, "127.0.0.1", &ports[0]);
    int t = kh_bind(AF_INET, SOCK_STREAM, "127.0.0.1", &ports[1]);
    if (u < 0 || t < 0)
        return 100;
    if (write(ic->ports_fd, ports, sizeof(ports)) != (ssize_t)sizeof(ports))
        return 101;
    int seen = 0;
    for (int waited = 0; waited < 3000; waited += 50) {
        struct pollfd pfd[2] = {{.fd = u, .events = POLLIN}, {.fd = t, .events = POLLIN}};
        if (poll(pfd, 2, 50) <= 0)
            continue;
        if (pfd[0].revents & POLLIN) {
            char buf[32] = {0};
            if (recv(u, buf, sizeof(buf) - 1, 0) > 0)
                seen |= strcmp(buf, "dns") == 0 ? INGRESS_GOT_DNS : INGRESS_GOT_STRANGER;
        }
        if (pfd[1].revents & POLLIN) {
            int c = accept4(t, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                seen |= INGRESS_ACCEPTED;
                close(c);
            }
        }
    }
    return seen;
}

/* A TCP connect from outside the bottle, given 1.5 s; 0 when it connected. */
static int connect_with_timeout(uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    kh_addr(AF_INET, "127.0.0.1", port, &ss, &len);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int rc = connect(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : errno;
    if (rc == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        socklen_t elen = sizeof(rc);
        if (poll(&pfd, 1, 1500) == 1)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &elen);
        else
            rc = ETIMEDOUT;
    }
    close(fd);
    return rc;
}

static void test_ingress_only_from_peers(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    struct ingress_child ic = {pfd[1]};
    struct bottle_stats s0 = kh_stats(b->slug);
    pid_t pid = kh_start_in(b->cg.agent_fd, true, ingress_listener, &ic);
    close(pfd[1]);
    uint16_t ports[2];
    assert_int_equal(read(pfd[0], ports, sizeof(ports)), (ssize_t)sizeof(ports));
    close(pfd[0]);

    struct sockaddr_storage to;
    socklen_t len;
    kh_addr(AF_INET, "127.0.0.1", ports[0], &to, &len);
    /* A host process's datagram, from a port of its own: dropped before the bottle's socket. */
    int stranger = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(stranger >= 0);
    assert_int_equal(sendto(stranger, "stranger", 8, 0, (struct sockaddr *)&to, len), 8);
    close(stranger);
    /* The DNS forwarder's answer, from its own address and port: delivered. */
    assert_int_equal(sendto(kh_srv.dns4, "dns", 3, 0, (struct sockaddr *)&to, len), 3);
    /* A TCP connect from the host: its SYN is dropped, so it never completes. */
    int crc = connect_with_timeout(ports[1]);
    assert_int_not_equal(crc, 0);

    assert_int_equal(kh_wait(pid), INGRESS_GOT_DNS);
    struct bottle_stats s1 = kh_stats(b->slug);
    assert_true(s1.drop_rx - s0.drop_rx >= 2); /* the datagram and at least one SYN */
}

/* ---- metering and events ------------------------------------------------------------------------
 */

static void test_counters(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    const size_t bytes = 10000;
    struct bottle_stats s0 = kh_stats(b->slug);
    struct kh_op echo = {KH_TCP_ECHO, AF_INET, "127.0.0.1", kh_srv.port, bytes};
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, kh_op_run, &echo), 0);
    struct bottle_stats s1 = kh_stats(b->slug);

    uint64_t tx = s1.tx_bytes - s0.tx_bytes, rx = s1.rx_bytes - s0.rx_bytes;
    uint64_t txp = s1.tx_packets - s0.tx_packets, rxp = s1.rx_packets - s0.rx_packets;
    print_message("# echo of %zu bytes: tx %llu B / %llu pkt, rx %llu B / %llu pkt\n", bytes,
                  (unsigned long long)tx, (unsigned long long)txp, (unsigned long long)rx,
                  (unsigned long long)rxp);
    /* Payload plus IP/TCP headers (at most ~100 bytes a packet), nothing else. */
    assert_true(tx >= bytes && tx <= bytes + 100 * txp);
    assert_true(rx >= bytes && rx <= bytes + 100 * rxp);
    assert_true(txp >= 3 && rxp >= 3); /* SYN, data, FIN at least */
    assert_int_equal(s1.connect_ok - s0.connect_ok, 1);
    assert_int_equal(s1.connect_deny - s0.connect_deny, 0);
    assert_int_equal(s1.drop_tx - s0.drop_tx, 0);

    int fd = b->cg.agent_fd;
    int raw[3] = {AF_INET, SOCK_RAW, IPPROTO_TCP};
    assert_int_equal(kh_op_in(fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port),
                     EPERM);
    assert_int_equal(kh_op_in(fd, true, KH_UDP_SENDTO, AF_INET, "127.0.0.1", kh_srv.dns_port), 0);
    assert_int_equal(kh_op_in(fd, true, KH_UDP_SENDTO, AF_INET, "127.0.0.1", kh_srv.udp_other_port),
                     EPERM);
    assert_int_equal(kh_run_in(fd, false, open_socket, raw), EPERM);
    struct bottle_stats s2 = kh_stats(b->slug);
    assert_int_equal(s2.connect_ok - s1.connect_ok, 0);
    assert_int_equal(s2.connect_deny - s1.connect_deny, 1);
    assert_int_equal(s2.sendmsg_ok - s1.sendmsg_ok, 1);
    assert_int_equal(s2.sendmsg_deny - s1.sendmsg_deny, 1);
    assert_int_equal(s2.sock_create_deny - s1.sock_create_deny, 1);
    /* The allowed datagram was metered: one packet of 1 byte + 28 bytes of headers. */
    assert_true(s2.tx_bytes - s1.tx_bytes >= 29);
}

struct event_sink {
    struct bottle_event events[64];
    int n;
};

static int collect_event(const struct bottle_event *ev, void *ctx)
{
    struct event_sink *sink = ctx;
    if (sink->n < 64)
        sink->events[sink->n++] = *ev;
    return 0;
}

static void test_events(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bpf_policy_pins *p = NULL;
    struct bottle_err err;
    err_clear(&err);
    assert_int_equal(bpf_policy_open_pinned(b->slug, &p, &err), 0);
    struct event_sink sink = {.n = 0};
    assert_true(bpf_policy_events_poll(p, 0, collect_event, &sink, &err) >= 0);
    sink.n = 0;

    struct kh_op op = {KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port, 0};
    pid_t pid = kh_start_in(b->cg.agent_fd, true, kh_op_run, &op);
    assert_int_equal(kh_wait(pid), EPERM);
    struct kh_op op6 = {KH_UDP_SENDTO, AF_INET6, "::1", kh_srv.udp_other_port, 0};
    pid_t pid6 = kh_start_in(b->cg.agent_fd, true, kh_op_run, &op6);
    assert_int_equal(kh_wait(pid6), EPERM);

    for (int i = 0; i < 20 && sink.n < 2; i++)
        assert_true(bpf_policy_events_poll(p, 100, collect_event, &sink, &err) >= 0);
    const struct bottle_event *tcp = NULL, *udp = NULL;
    for (int i = 0; i < sink.n; i++) {
        if (sink.events[i].pid == (uint32_t)pid)
            tcp = &sink.events[i];
        if (sink.events[i].pid == (uint32_t)pid6)
            udp = &sink.events[i];
    }
    assert_non_null(tcp);
    assert_int_equal(tcp->hook, BOTTLE_HOOK_CONNECT4);
    assert_int_equal(tcp->reason, BOTTLE_DENY_NOT_ALLOWED);
    assert_int_equal(tcp->family, AF_INET);
    assert_int_equal(tcp->protocol, IPPROTO_TCP);
    assert_int_equal(tcp->port, kh_srv.other_port);
    assert_int_equal(tcp->cgroup_id, b->cg.agent_id);
    struct in_addr want;
    inet_pton(AF_INET, "127.0.0.1", &want);
    assert_memory_equal(tcp->addr, &want, 4);
    assert_true(tcp->comm[0] != '\0');

    assert_non_null(udp);
    assert_int_equal(udp->hook, BOTTLE_HOOK_SENDMSG6);
    assert_int_equal(udp->family, AF_INET6);
    assert_int_equal(udp->protocol, IPPROTO_UDP);
    assert_int_equal(udp->port, kh_srv.udp_other_port);
    struct in6_addr want6;
    inet_pton(AF_INET6, "::1", &want6);
    assert_memory_equal(udp->addr, &want6, 16);
    bpf_policy_close(p);
}

/* ---- cgroup structure
 * ---------------------------------------------------------------------------- */

static void test_subcgroup_and_missing_entry(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bottle_err err;
    err_clear(&err);
    int sub = cgroup_create_child(b->cg.agent_fd, "sub", &err);
    assert_true(sub >= 0);
    int deeper = cgroup_create_child(sub, "deeper", &err);
    assert_true(deeper >= 0);

    /* Docker's --cgroup-parent children: governed by the bottle through the ancestor walk. */
    assert_int_equal(kh_op_in(deeper, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);
    assert_int_equal(
        kh_op_in(deeper, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port), EPERM);
    struct kh_op echo = {KH_TCP_ECHO, AF_INET, "127.0.0.1", kh_srv.port, 3000};
    struct bottle_stats s0 = kh_stats(b->slug);
    assert_int_equal(kh_run_in(deeper, true, kh_op_run, &echo), 0);
    struct bottle_stats s1 = kh_stats(b->slug);
    assert_true(s1.tx_bytes - s0.tx_bytes >= 3000); /* metered on the bottle's entry */

    /* No entry anywhere up the chain: everything denied, fail closed. */
    struct bpf_policy_pins *p = NULL;
    assert_int_equal(bpf_policy_open_pinned(b->slug, &p, &err), 0);
    assert_int_equal(bpf_policy_entry_delete(p, b->cg.agent_id, &err), 0);
    assert_int_equal(kh_op_in(deeper, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port),
                     EPERM);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), EPERM);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_UDP_SENDTO, AF_INET, "127.0.0.1", kh_srv.dns_port),
        EPERM);
    int tcp[3] = {AF_INET, SOCK_STREAM, 0};
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, open_socket, tcp), EPERM);

    /* A nested entry on the sub-cgroup governs below it (deepest entry wins). */
    struct bpf_policy_config cfg = b->cfg;
    assert_int_equal(bpf_policy_entry_set(p, b->cg.agent_id + 0, &cfg, &err), 0);
    uint64_t sub_id = 0;
    assert_int_equal(cgroup_id_from_fd(sub, &sub_id, &err), 0);
    cfg.proxy_port = kh_srv.other_port;
    assert_int_equal(bpf_policy_entry_set(p, sub_id, &cfg, &err), 0);
    assert_int_equal(
        kh_op_in(deeper, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port), 0);
    assert_int_equal(kh_op_in(deeper, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port),
                     EPERM);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);
    bpf_policy_close(p);
    close(deeper);
    close(sub);
}

struct escape_args {
    char targets[3][4200];
    char expect_cgroup[4200];
};

/* Tries to move itself out; returns 0 when every attempt failed and it is still inside. */
static int try_escape(void *arg)
{
    const struct escape_args *a = arg;
    char pid[32];
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    for (int i = 0; i < 3; i++) {
        int fd = open(a->targets[i], O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = write(fd, pid, strlen(pid));
            close(fd);
            if (n > 0)
                return 10 + i;
        }
    }
    char buf[4400];
    int fd = open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 20;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 21;
    buf[n] = '\0';
    return strstr(buf, a->expect_cgroup) ? 0 : 22;
}

static void test_nonroot_cannot_leave(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    char *root = NULL;
    struct bottle_err err;
    err_clear(&err);
    assert_int_equal(cgroup_root_path(&root, &err), 0);
    static struct escape_args a;
    memset(&a, 0, sizeof(a));
    snprintf(a.targets[0], sizeof(a.targets[0]), "%s/../cgroup.procs", root);
    snprintf(a.targets[1], sizeof(a.targets[1]), "%s/cgroup.procs", b->cg.path);
    snprintf(a.targets[2], sizeof(a.targets[2]), "%s/cgroup.procs", b->cg.proxy_path);
    snprintf(a.expect_cgroup, sizeof(a.expect_cgroup), "/bottle/%s/agent\n", b->slug);
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, try_escape, &a), 0);
    /* The same check as root succeeds in moving: the agent must never be root. */
    free(root);
}

static int report_cgroup(void *arg)
{
    return try_escape(arg) == 0 ? 0 : 1;
}

/* Both placement paths put the child in the cgroup before it runs. */
static void test_spawn_paths(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    static struct escape_args a;
    memset(&a, 0, sizeof(a));
    for (int i = 0; i < 3; i++)
        snprintf(a.targets[i], sizeof(a.targets[i]), "/nonexistent/cgroup.procs");
    snprintf(a.expect_cgroup, sizeof(a.expect_cgroup), "/bottle/%s/agent\n", b->slug);
    struct bottle_err err;
    err_clear(&err);
    static struct kh_child c;
    c.fn = report_cgroup;
    c.arg = &a;
    c.nobody = true;
    pid_t pid = cgroup_spawn_into(b->cg.agent_fd, 0, kh_child_main, &c, &err);
    assert_true(pid > 0);
    assert_int_equal(kh_wait(pid), 0);
    pid = cgroup_spawn_into(b->cg.agent_fd, CGROUP_SPAWN_NO_CLONE3, kh_child_main, &c, &err);
    assert_true(pid > 0);
    assert_int_equal(kh_wait(pid), 0);
    /* And the policy holds on the fallback path as well. */
    struct kh_op op = {KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port, 0};
    c.fn = kh_op_run;
    c.arg = &op;
    pid = cgroup_spawn_into(b->cg.agent_fd, CGROUP_SPAWN_NO_CLONE3, kh_child_main, &c, &err);
    assert_int_equal(kh_wait(pid), EPERM);
}

static void test_install_timing(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    /* A second bottle while the first is attached: no kernel static key to flip. */
    struct kh_bottle *warm = kh_bottle_new(BOTTLE_FLAG_DNS);
    print_message("# install, first: open %.2f ms, load %.2f ms, attach %.2f ms, pin %.2f ms, "
                  "total %.2f ms\n",
                  b->timing.open_ms, b->timing.load_ms, b->timing.attach_ms, b->timing.pin_ms,
                  b->timing.total_ms);
    print_message("# install, second: open %.2f ms, load %.2f ms, attach %.2f ms, pin %.2f ms, "
                  "total %.2f ms\n",
                  warm->timing.open_ms, warm->timing.load_ms, warm->timing.attach_ms,
                  warm->timing.pin_ms, warm->timing.total_ms);
    /* Timings are printed, never asserted: bench/kernel.sh measures them against the target. */
    int warm_links = kh_links_on(warm->cg.agent_id);
    kh_bottle_free(warm);
    assert_int_equal(warm_links, 7);
    /* The pins exist, and only in a 0700 directory; seven links on the bottle. */
    struct stat st;
    assert_int_equal(stat(b->pin_dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(kh_links_on(b->cg.agent_id), 7);
    /* Removing one bottle leaves the other one enforced. */
    assert_int_equal(kh_links_on(b->cg.agent_id), 7);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port),
        EPERM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_install_timing, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_matrix_root, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_matrix_nobody, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_matrix_control_outside, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_flag_off, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_socket_kinds, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_loopback_flag, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_ingress_only_from_peers, bottle_setup,
                                        bottle_teardown),
        cmocka_unit_test_setup_teardown(test_counters, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_events, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_subcgroup_and_missing_entry, bottle_setup,
                                        bottle_teardown),
        cmocka_unit_test_setup_teardown(test_nonroot_cannot_leave, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_spawn_paths, bottle_setup, bottle_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
