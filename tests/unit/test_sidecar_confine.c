/*
 * The sidecar's own seccomp allowlist (sidecar/confine.c), in the kernel: a
 * child loads the filter and then either does what the proxy does at
 * runtime (which must keep working) or one thing the proxy never does
 * (which must kill it with SIGSYS, or fail with the errno the filter gives
 * the few calls libraries probe). Needs no root: the filter is loaded with
 * no_new_privs; the identity drop is tested as root. Every denied case is
 * harmless even without a filter (bad arguments, paths that do not exist,
 * this child only), so a broken filter fails the test and nothing else.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

#include "ledger/ledger.h"
#include "sidecar/confine.h"

/* Exit code, or 128 + the signal that ended the child. */
static int wait_child(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 255;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs setup(arg) (the proxy's set-up, when not NULL), the filter, then fn(arg), in a child. */
static int run_confined_after(int (*setup)(void *), int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        struct bottle_err err = {0};
        if (setup && setup(arg) != 0)
            _exit(249);
        if (confine_apply(&err) < 0) {
            fprintf(stderr, "# confine_apply: %s\n", err.msg);
            _exit(250);
        }
        _exit(fn(arg));
    }
    return wait_child(pid);
}

static int run_confined(int (*fn)(void *), void *arg)
{
    return run_confined_after(NULL, fn, arg);
}

/* ---- the filter is in force ---------------------------------------------------------- */

static int read_status(void *arg)
{
    (void)arg;
    char text[8192];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return 2;
    text[n] = '\0';
    if (!strstr(text, "\nSeccomp:\t2\n"))
        return 3;
    if (!strstr(text, "\nNoNewPrivs:\t1\n"))
        return 4;
    return 0;
}

static void test_filter_active(void **state)
{
    (void)state;
    assert_int_equal(run_confined(read_status, NULL), 0);
}

/* ---- what the proxy never does is killed ----------------------------------------------- */

static int do_execve(void *arg)
{
    (void)arg;
    char *argv[] = {"/nonexistent/bottle-confine", NULL};
    execve(argv[0], argv, NULL);
    return 0;
}

static int do_fork(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    return 0;
}

static int do_ptrace(void *arg)
{
    (void)arg;
    syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    return 0;
}

static int do_mount(void *arg)
{
    (void)arg;
    mount(NULL, NULL, NULL, 0, NULL); /* EFAULT without a filter: the call is what counts */
    return 0;
}

static int do_bpf(void *arg)
{
    (void)arg;
    syscall(SYS_bpf, 0, NULL, 0);
    return 0;
}

static int do_unshare(void *arg)
{
    (void)arg;
    unshare(CLONE_NEWUSER); /* in this child only */
    return 0;
}

static int do_setns(void *arg)
{
    (void)arg;
    setns(-1, 0); /* EBADF without a filter */
    return 0;
}

static int do_keyctl(void *arg)
{
    (void)arg;
    syscall(SYS_keyctl, -1, 0, 0, 0, 0);
    return 0;
}

static int do_perf_event_open(void *arg)
{
    (void)arg;
    syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    return 0;
}

static int do_process_vm_readv(void *arg)
{
    (void)arg;
    syscall(SYS_process_vm_readv, 1, NULL, 0, NULL, 0, 0);
    return 0;
}

static int do_setuid(void *arg)
{
    (void)arg;
    syscall(SYS_setresuid, -1, -1, -1); /* a no-op; raw: glibc would signal threads first */
    return 0;
}

static int do_setgroups(void *arg)
{
    (void)arg;
    syscall(SYS_setgroups, -1, NULL); /* EINVAL without a filter */
    return 0;
}

static int do_capset(void *arg)
{
    (void)arg;
    syscall(SYS_capset, NULL, NULL);
    return 0;
}

static int do_prctl(void *arg)
{
    (void)arg;
    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    return 0;
}

static int do_kill_other(void *arg)
{
    (void)arg;
    kill(getppid(), 0); /* another process of the same uid: other sidecars */
    return 0;
}

static int do_listen(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    listen(fd, 1); /* the listeners are bound before the filter; no new ones */
    return 0;
}

static int do_socket_packet(void *arg)
{
    (void)arg;
    socket(AF_PACKET, SOCK_RAW, 0);
    return 0;
}

static int do_socket_raw(void *arg)
{
    (void)arg;
    socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    return 0;
}

static int do_socket_ping(void *arg)
{
    (void)arg;
    socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    return 0;
}

static int do_socket_netlink_other(void *arg)
{
    (void)arg;
    socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG);
    return 0;
}

static int do_socket_vsock(void *arg)
{
    (void)arg;
    socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    return 0;
}

static int do_memfd(void *arg)
{
    (void)arg;
    syscall(SYS_memfd_create, "x", 0);
    return 0;
}

static int do_io_uring(void *arg)
{
    (void)arg;
    syscall(SYS_io_uring_setup, 1, NULL);
    return 0;
}

static int do_ioctl_tiocsti(void *arg)
{
    (void)arg;
    char c = 'x';
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ioctl(fd, TIOCSTI, &c); /* on a socket: ENOTTY without a filter */
    return 0;
}

static int do_mkdir(void *arg)
{
    (void)arg;
    mkdir("/nonexistent/bottle-confine", 0700);
    return 0;
}

static int do_rename(void *arg)
{
    (void)arg;
    rename("/nonexistent/bottle-confine-a", "/nonexistent/bottle-confine-b");
    return 0;
}

static int do_chmod(void *arg)
{
    (void)arg;
    chmod("/nonexistent/bottle-confine", 0777);
    return 0;
}

static int do_thread_less_clone(void *arg)
{
    (void)arg;
    /* A thread's flags plus CLONE_NEWNET would be a process in a new namespace. */
    long r = syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    return 0;
}

static void test_denied_killed(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int (*fn)(void *);
    } cases[] = {
        {"execve", do_execve},
        {"fork (clone without CLONE_THREAD)", do_fork},
        {"clone with CLONE_NEWNET", do_thread_less_clone},
        {"ptrace", do_ptrace},
        {"mount", do_mount},
        {"bpf", do_bpf},
        {"unshare", do_unshare},
        {"setns", do_setns},
        {"keyctl", do_keyctl},
        {"perf_event_open", do_perf_event_open},
        {"process_vm_readv", do_process_vm_readv},
        {"setresuid", do_setuid},
        {"setgroups", do_setgroups},
        {"capset", do_capset},
        {"prctl", do_prctl},
        {"kill of another process", do_kill_other},
        {"listen", do_listen},
        {"socket AF_PACKET", do_socket_packet},
        {"socket raw ICMP", do_socket_raw},
        {"socket ICMP datagram (ping)", do_socket_ping},
        {"socket NETLINK_SOCK_DIAG", do_socket_netlink_other},
        {"socket AF_VSOCK", do_socket_vsock},
        {"memfd_create", do_memfd},
        {"io_uring_setup", do_io_uring},
        {"ioctl TIOCSTI", do_ioctl_tiocsti},
        {"mkdir", do_mkdir},
        {"rename", do_rename},
        {"chmod", do_chmod},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = run_confined(cases[i].fn, NULL);
        if (rc != 128 + SIGSYS) {
            print_message("# %s: child ended with %d, expected SIGSYS (%d)\n", cases[i].name, rc,
                          128 + SIGSYS);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- calls libraries probe get an errno ---------------------------------------------- */

static int do_clone3(void *arg)
{
    (void)arg;
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    errno = 0;
    long r = syscall(SYS_clone3, &args, sizeof(args));
    if (r == 0)
        _exit(0);
    return r == -1 && errno == ENOSYS ? 0 : 1;
}

static int do_fchown(void *arg)
{
    const char *path = arg;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    errno = 0;
    int r = fchown(fd, 0, 0);
    close(fd);
    return r == -1 && errno == EPERM ? 0 : 1;
}

static void test_errno_rules(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *file = fs_join(dir, "f");
    testutil_write(file, "x");
    assert_int_equal(run_confined(do_clone3, NULL), 0);
    assert_int_equal(run_confined(do_fchown, file), 0);
    testutil_rm_rf(dir);
    free(file);
    free(dir);
}

/* ---- what the proxy does keeps working ---------------------------------------------- */

struct listener {
    int fd;
    struct sockaddr_in addr;
    char file[256];
};

/* A TCP exchange over loopback through epoll, like a proxied request. */
static int do_tcp_epoll(void *arg)
{
    struct listener *l = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ep < 0 || c < 0)
        return 1;
    int one = 1;
    if (setsockopt(c, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one)) < 0)
        return 2;
    if (connect(c, (struct sockaddr *)&l->addr, sizeof(l->addr)) < 0 && errno != EINPROGRESS)
        return 3;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l->fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) < 0)
        return 4;
    struct epoll_event got;
    if (epoll_wait(ep, &got, 1, 5000) != 1)
        return 5;
    int s = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (s < 0)
        return 6;
    struct pollfd p = {.fd = c, .events = POLLOUT};
    if (poll(&p, 1, 5000) != 1)
        return 7;
    int soerr = -1;
    socklen_t len = sizeof(soerr);
    if (getsockopt(c, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0)
        return 8;
    if (send(c, "ping", 4, MSG_NOSIGNAL) != 4)
        return 9;
    char buf[8];
    p = (struct pollfd){.fd = s, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1 || recv(s, buf, sizeof(buf), 0) != 4 || memcmp(buf, "ping", 4))
        return 10;
    if (shutdown(s, SHUT_WR) < 0)
        return 11;
    struct sockaddr_storage ss;
    len = sizeof(ss);
    if (getsockname(s, (struct sockaddr *)&ss, &len) < 0 ||
        getpeername(s, (struct sockaddr *)&ss, &len) < 0)
        return 12;
    close(s);
    close(c);
    close(ep);
    return 0;
}

/* The families the resolver and the upstreams use. */
static int do_socket_kinds(void *arg)
{
    (void)arg;
    static const int kinds[][3] = {
        {AF_INET, SOCK_STREAM, 0},
        {AF_INET6, SOCK_STREAM, 0},
        {AF_INET, SOCK_DGRAM, 0},
        {AF_INET6, SOCK_DGRAM, IPPROTO_UDP},
        {AF_UNIX, SOCK_STREAM, 0},
        {AF_UNIX, SOCK_DGRAM, 0},
        {AF_NETLINK, SOCK_RAW, NETLINK_ROUTE},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        int fd = socket(kinds[i][0], kinds[i][1] | SOCK_CLOEXEC | SOCK_NONBLOCK, kinds[i][2]);
        if (fd < 0)
            return 1 + (int)i;
        close(fd);
    }
    /* UDP to loopback, as the resolver talks to a nameserver. */
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(u, (struct sockaddr *)&a, sizeof(a)) < 0 || getsockname(u, (void *)&a, &len) < 0 ||
        connect(u, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 20;
    struct mmsghdr m[1];
    struct iovec iov = {.iov_base = "q", .iov_len = 1};
    memset(m, 0, sizeof(m));
    m[0].msg_hdr.msg_iov = &iov;
    m[0].msg_hdr.msg_iovlen = 1;
    if (sendmmsg(u, m, 1, MSG_NOSIGNAL) != 1)
        return 21;
    int avail = 0;
    char c;
    struct pollfd p = {.fd = u, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1 || ioctl(u, FIONREAD, &avail) < 0 || avail != 1 ||
        recvfrom(u, &c, 1, 0, NULL, NULL) != 1)
        return 22;
    close(u);
    return 0;
}

/* Config reload and trust-store reads; the signalfd; signals to itself. */
static int do_files_and_signals(void *arg)
{
    struct listener *l = arg;
    int fd = openat(AT_FDCWD, l->file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char buf[64];
    if (fd < 0 || fstat(fd, &st) < 0 || read(fd, buf, sizeof(buf)) != 7 ||
        memcmp(buf, "config\n", 7))
        return 1;
    if (lseek(fd, 0, SEEK_SET) != 0 || stat(l->file, &st) < 0)
        return 2;
    close(fd);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return 3;
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0 || kill(getpid(), SIGHUP) < 0)
        return 4;
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si) || si.ssi_signo != SIGHUP)
        return 5;
    if (isatty(0) < 0 || getrandom(buf, sizeof(buf), 0) != sizeof(buf))
        return 6;
    void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p, 4096, PROT_NONE) < 0 || madvise(p, 1 << 20, MADV_DONTNEED))
        return 7;
    munmap(p, 1 << 20);
    struct timespec ts = {0, 1000000};
    if (nanosleep(&ts, NULL) < 0 || clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 8;
    return 0;
}

struct resolve_case {
    const char *host;
    int flags;
    int rc;
    char addr[INET6_ADDRSTRLEN];
};

static void *resolve_thread(void *arg)
{
    struct resolve_case *rc = arg;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = rc->flags};
    struct addrinfo *res = NULL;
    rc->rc = getaddrinfo(rc->host, "443", &hints, &res);
    if (rc->rc == 0) {
        const struct sockaddr *sa = res->ai_addr;
        const void *a =
            sa->sa_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        inet_ntop(sa->sa_family, a, rc->addr, sizeof(rc->addr));
        freeaddrinfo(res);
    }
    return NULL;
}

/*
 * Name resolution as the proxy runs it: on short-lived detached-style
 * threads (clone3 answered ENOSYS, clone with thread flags), through
 * /etc/hosts, and with AI_ADDRCONFIG, which asks netlink for the host's
 * addresses.
 */
static int do_resolve_threads(void *arg)
{
    (void)arg;
    struct resolve_case cases[] = {
        {"localhost", 0, -1, ""},
        {"localhost", AI_ADDRCONFIG, -1, ""},
        {"127.0.0.1", AI_NUMERICHOST, -1, ""},
        {"::1", AI_NUMERICHOST, -1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, resolve_thread, &cases[i]) != 0)
            return 1;
        pthread_attr_destroy(&attr);
        if (pthread_join(t, NULL) != 0)
            return 2;
        if (cases[i].rc != 0) {
            fprintf(stderr, "# %s: %s\n", cases[i].host, gai_strerror(cases[i].rc));
            return 3;
        }
    }
    if (strncmp(cases[0].addr, "127.", 4) != 0 || strcmp(cases[3].addr, "::1") != 0)
        return 4;
    return 0;
}

struct ledger_case {
    char *path;
    struct ledger *l;
};

static int open_ledger(void *arg)
{
    struct ledger_case *lc = arg;
    struct bottle_err err = {0};
    if (ledger_open(lc->path, &lc->l, &err) < 0) {
        fprintf(stderr, "# ledger_open: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int do_ledger(void *arg)
{
    struct ledger *l = ((struct ledger_case *)arg)->l;
    struct bottle_err err = {0};
    struct ledger_budget b = {LEDGER_SCOPE_BOTTLE, "b1", "claude", 1000};
    if (ledger_budget_set(l, &b, &err) < 0) {
        fprintf(stderr, "# budget_set: %s\n", err.msg);
        return 1;
    }
    struct ledger_subject who = {"b1", "a1", "claude"};
    struct ledger_denial d;
    int64_t id = 0;
    if (ledger_reserve(l, &who, 400, &id, &d, &err) != 0) {
        fprintf(stderr, "# reserve: %s\n", err.msg);
        return 2;
    }
    struct ledger_record rec = {.request_id = "r1", .model = "m", .complete = true};
    rec.who = who;
    rec.usage.input_tokens = 100;
    rec.usage.output_tokens = 200;
    if (ledger_settle(l, id, &rec, &err) < 0) {
        fprintf(stderr, "# settle: %s\n", err.msg);
        return 3;
    }
    int64_t spent = -1;
    if (ledger_spent(l, LEDGER_SCOPE_BOTTLE, "b1", "claude", &spent, &err) < 0 || spent != 300) {
        fprintf(stderr, "# spent %lld: %s\n", (long long)spent, err.msg);
        return 4;
    }
    ledger_close(l); /* checkpoints the WAL and removes it */
    return 0;
}

static void test_allowed_still_work(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    struct listener l;
    memset(&l, 0, sizeof(l));
    snprintf(l.file, sizeof(l.file), "%s/config.json", dir);
    testutil_write(l.file, "config\n");
    /* Bound before the filter, as the proxy's listeners are. */
    l.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    l.addr.sin_family = AF_INET;
    l.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(l.addr);
    assert_int_equal(bind(l.fd, (struct sockaddr *)&l.addr, sizeof(l.addr)), 0);
    assert_int_equal(listen(l.fd, 8), 0);
    assert_int_equal(getsockname(l.fd, (struct sockaddr *)&l.addr, &len), 0);

    assert_int_equal(run_confined(do_tcp_epoll, &l), 0);
    assert_int_equal(run_confined(do_socket_kinds, NULL), 0);
    assert_int_equal(run_confined(do_files_and_signals, &l), 0);
    assert_int_equal(run_confined(do_resolve_threads, NULL), 0);
    close(l.fd);
    testutil_rm_rf(dir);
    free(dir);
}

/* The ledger, opened during set-up as the sidecar must, then written under the filter. */
static void test_ledger_under_filter(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *path = fs_join(dir, "bottle.db");
    struct ledger_case lc = {path, NULL};
    assert_int_equal(run_confined_after(open_ledger, do_ledger, &lc), 0);
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    /* What the confined child wrote is there for the next reader. */
    assert_int_equal(ledger_open(path, &l, &err), 0);
    int64_t spent = -1;
    assert_int_equal(ledger_spent(l, LEDGER_SCOPE_BOTTLE, "b1", "claude", &spent, &err), 0);
    assert_int_equal(spent, 300);
    ledger_close(l);
    testutil_rm_rf(dir);
    free(path);
    free(dir);
}

/* ---- the identity drop --------------------------------------------------------------- */

static void test_drop_privileges(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        struct bottle_err err = {0};
        if (confine_drop_privileges(65532, 65532, &err) < 0) {
            fprintf(stderr, "# %s\n", err.msg);
            _exit(1);
        }
        if (getuid() != 65532 || geteuid() != 65532 || getgid() != 65532 || getgroups(0, NULL) != 0)
            _exit(2);
        if (setuid(0) == 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
            _exit(3);
        if (prctl(PR_CAPBSET_READ, 0 /* CAP_CHOWN */, 0, 0, 0) != 0)
            _exit(4);
        /* The filter loads as the unprivileged uid too. */
        if (confine_apply(&err) < 0)
            _exit(5);
        _exit(0);
    }
    assert_int_equal(wait_child(pid), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_active),       cmocka_unit_test(test_denied_killed),
        cmocka_unit_test(test_errno_rules),         cmocka_unit_test(test_allowed_still_work),
        cmocka_unit_test(test_ledger_under_filter), cmocka_unit_test(test_drop_privileges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
