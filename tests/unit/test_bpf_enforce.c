/*
 * Cutoff tests (root): the bottle's cutoff flag makes new connects fail and
 * socket destroy aborts established streams (ECONNABORTED), in the host
 * netns and inside the bottle's own netns; restore brings traffic back; the
 * host-wide kill switch does the same for every bottle; freeze, thaw and
 * cgroup.kill act on the bottle's processes. Nothing outside the bottle is
 * touched, and nothing is left behind.
 */
#include "kernel_harness.h"

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
    struct bottle_err err;
    if (geteuid() == 0)
        bpf_policy_set_kill_switch(false, &err);
    kh_bottle_free(*state);
    return 0;
}

struct stream_args {
    int ready_fd;
    const char *ip;
    uint16_t port;
    bool own_server; /* serve on the bottle's loopback from the child itself */
};

/* Echoes on an established stream until it breaks; returns the errno that broke it. */
static int stream_child(void *arg)
{
    const struct stream_args *a = arg;
    int fd = -1, srv = -1, peer = -1;
    uint16_t port = a->port;
    if (a->own_server) {
        srv = kh_bind(AF_INET, SOCK_STREAM, a->ip, &port);
        if (srv < 0)
            return 90;
    }
    struct kh_op op = {KH_TCP_CONNECT, AF_INET, a->ip, port, 0};
    int rc = kh_connect_fd(SOCK_STREAM, &op, &fd);
    if (rc)
        return rc;
    if (a->own_server) {
        peer = accept(srv, NULL, NULL);
        if (peer < 0)
            return 91;
        /* The child is its own peer: the client only has to stay open and blocked. */
        if (write(a->ready_fd, "r", 1) != 1)
            return 92;
        char c;
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = recv(fd, &c, 1, 0);
        return n < 0 ? errno : 93;
    }
    for (int i = 0; i < 500; i++) {
        rc = kh_echo(fd, 16);
        if (rc)
            return rc;
        if (i == 0 && write(a->ready_fd, "r", 1) != 1)
            return 92;
        usleep(20000);
    }
    return 99;
}

static bool wait_ready(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    return poll(&p, 1, 5000) == 1 && read(fd, &c, 1) == 1;
}

static void test_cutoff_and_restore(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bottle_err err;
    err_clear(&err);
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    static struct stream_args a;
    a = (struct stream_args){pipefd[1], "127.0.0.1", kh_srv.port, false};
    pid_t pid = kh_start_in(b->cg.agent_fd, true, stream_child, &a);
    assert_true(wait_ready(pipefd[0]));

    /* A stream outside the bottle to the same server: must survive. */
    struct kh_op outside = {KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port, 0};
    int out_fd = -1;
    assert_int_equal(kh_connect_fd(SOCK_STREAM, &outside, &out_fd), 0);
    assert_int_equal(kh_echo(out_fd, 100), 0);

    assert_int_equal(bpf_policy_set_cutoff(b->slug, true, &err), 0);
    struct bpf_policy_pins *p = NULL;
    assert_int_equal(bpf_policy_open_pinned(b->slug, &p, &err), 0);
    bool on = false;
    assert_int_equal(bpf_policy_cutoff_state(p, &on, &err), 0);
    assert_true(on);
    /* New connects fail at once, even to the sidecar. */
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), EPERM);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_UDP_SENDTO, AF_INET, "127.0.0.1", kh_srv.dns_port),
        EPERM);

    unsigned destroyed = 0;
    int rc = bpf_sockkill_run(b->cg.agent_id, -1, &destroyed, &err);
    if (rc < 0)
        fail_msg("sockkill: %s", err.msg);
    assert_true(destroyed >= 1);
    assert_int_equal(kh_wait(pid), ECONNABORTED);
    assert_int_equal(kh_echo(out_fd, 100), 0);
    close(out_fd);

    struct bottle_stats s = kh_stats(b->slug);
    assert_true(s.connect_deny >= 1);
    assert_true(s.sendmsg_deny >= 1);

    /* Restore: traffic flows again. */
    assert_int_equal(bpf_policy_set_cutoff(b->slug, false, &err), 0);
    assert_int_equal(bpf_policy_cutoff_state(p, &on, &err), 0);
    assert_false(on);
    struct kh_op echo = {KH_TCP_ECHO, AF_INET, "127.0.0.1", kh_srv.port, 1000};
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, kh_op_run, &echo), 0);
    bpf_policy_close(p);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void test_kill_switch(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct kh_bottle *other = kh_bottle_new(BOTTLE_FLAG_DNS);
    struct bottle_err err;
    err_clear(&err);
    bool on = true;
    assert_int_equal(bpf_policy_kill_switch(&on, &err), 0);
    assert_false(on);
    assert_int_equal(bpf_policy_set_kill_switch(true, &err), 0);
    assert_int_equal(bpf_policy_kill_switch(&on, &err), 0);
    assert_true(on);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), EPERM);
    assert_int_equal(
        kh_op_in(other->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port),
        EPERM);
    assert_int_equal(bpf_policy_set_kill_switch(false, &err), 0);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);
    assert_int_equal(
        kh_op_in(other->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);
    kh_bottle_free(other);
}

/* The iterator walks one netns: the bottle's sockets there are found only from inside it. */
static void test_sockkill_in_bottle_netns(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bottle_err err;
    err_clear(&err);
    struct bpf_policy_pins *p = NULL;
    assert_int_equal(bpf_policy_open_pinned(b->slug, &p, &err), 0);
    struct bpf_policy_config cfg = b->cfg;
    cfg.flags |= BOTTLE_FLAG_LOOPBACK_OK;
    assert_int_equal(bpf_policy_entry_set(p, b->cg.agent_id, &cfg, &err), 0);
    bpf_policy_close(p);

    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    static struct stream_args a;
    a = (struct stream_args){pipefd[1], "127.0.0.1", 0, true};
    kh_next_private_netns = true;
    pid_t pid = kh_start_in(b->cg.agent_fd, true, stream_child, &a);
    assert_true(wait_ready(pipefd[0]));

    unsigned destroyed = 99;
    assert_int_equal(bpf_sockkill_run(b->cg.agent_id, -1, &destroyed, &err), 0);
    assert_int_equal(destroyed, 0);

    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(nsfd >= 0);
    char before[64], after[64];
    ssize_t n1 = readlink("/proc/thread-self/ns/net", before, sizeof(before));
    int rc = bpf_sockkill_run(b->cg.agent_id, nsfd, &destroyed, &err);
    if (rc < 0)
        fail_msg("sockkill: %s", err.msg);
    ssize_t n2 = readlink("/proc/thread-self/ns/net", after, sizeof(after));
    assert_true(n1 > 0 && n1 == n2);
    assert_memory_equal(before, after, (size_t)n1); /* back in our own netns */
    /* Both ends live in the bottle; aborting one resets and unhashes the other. */
    assert_true(destroyed >= 1);
    /* Whichever end the walk met first: aborted itself, or reset by its aborted peer. */
    int got = kh_wait(pid);
    assert_true(got == ECONNABORTED || got == ECONNRESET);
    close(nsfd);
    close(pipefd[0]);
    close(pipefd[1]);
}

static int sleeper(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

static void test_freeze_thaw_kill(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct bottle_err err;
    err_clear(&err);
    pid_t pid = kh_start_in(b->cg.agent_fd, true, sleeper, NULL);
    assert_int_equal(cgroup_freeze(b->cg.agent_fd, 2000, &err), 0);
    char path[64], text[512];
    snprintf(path, sizeof(path), "%s/cgroup.events", b->cg.agent_path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    assert_true(n > 0);
    text[n] = '\0';
    assert_non_null(strstr(text, "frozen 1"));
    assert_int_equal(cgroup_thaw(b->cg.agent_fd, 2000, &err), 0);
    assert_int_equal(cgroup_kill(b->cg.agent_fd, &err), 0);
    assert_int_equal(kh_wait(pid), 128 + SIGKILL);
    assert_int_equal(cgroup_wait_empty(b->cg.agent_fd, 2000, &err), 0);

    /* Removal kills what is still running, in sub-cgroups too, and removes everything. */
    int sub = cgroup_create_child(b->cg.agent_fd, "sub", &err);
    assert_true(sub >= 0);
    pid = kh_start_in(sub, true, sleeper, NULL);
    pid_t *pids = NULL;
    size_t npids = 0;
    assert_int_equal(cgroup_list_pids(b->cg.path, &pids, &npids, &err), 0);
    assert_int_equal(npids, 1);
    assert_int_equal(pids[0], pid);
    free(pids);
    close(sub);
    /* kh_bottle_free (teardown) removes the bottle; reap the child after it. */
    struct kh_bottle *copy = *state;
    *state = NULL;
    kh_bottle_free(copy);
    assert_int_equal(kh_wait(pid), 128 + SIGKILL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cutoff_and_restore, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_kill_switch, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_sockkill_in_bottle_netns, bottle_setup,
                                        bottle_teardown),
        cmocka_unit_test_setup_teardown(test_freeze_thaw_kill, bottle_setup, bottle_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
