/*
 * confine — see confine.h. The allowlist was derived with `strace -f -c`
 * on a proxy serving the sidecar suites (interception, reloads, resolver
 * threads, drain) and from what glibc's resolver and SQLite's unix VFS
 * call, and is checked by running those suites, a load run and a DNS
 * resolution in a private namespace with the filter on. Each group says
 * why it is there. Names this architecture lacks (poll, epoll_wait, unlink
 * on arm64) are skipped.
 */
#include "sidecar/confine.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

/*
 * Sanitizer builds only: LeakSanitizer checks for leaks at exit from a
 * tracer it attaches with ptrace, which the filter kills. Once the filter is
 * loaded the check is skipped (LeakSanitizer asks __lsan_is_turned_off);
 * runs with --no-seccomp keep it. Release builds have none of this.
 */
#if defined(__SANITIZE_ADDRESS__)
#define CONFINE_LEAK_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONFINE_LEAK_SANITIZER 1
#endif
#endif

#ifdef CONFINE_LEAK_SANITIZER
static volatile int filter_loaded; /* the one flag a sanitizer build keeps outside a context */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return filter_loaded;
}
#endif

/* System calls allowed with any arguments, by group. */
/* clang-format off */
static const char *const allowed_syscalls[] = {
    /* Memory: malloc, OpenSSL, thread stacks and arenas, SQLite's mmap of the -shm file.
     * PROT_EXEC stays allowed: glibc dlopens NSS modules on a resolver's first call. */
    "brk", "mmap", "munmap", "mprotect", "madvise", "mremap",

    /* Resolver threads (clone itself is an argument rule below): their set-up, futexes,
     * lock back-off, exit; sched_getaffinity is glibc counting CPUs for malloc arenas. */
    "set_robust_list", "rseq", "futex", "sched_yield", "exit", "exit_group", "gettid", "getpid",
    "sched_getaffinity",

    /* Signals: the signalfd for SIGHUP/SIGTERM/SIGINT, the masks threads are created with,
     * the kernel's return paths (kill and tgkill are argument rules below); sigaltstack is
     * what sanitizer runtimes set up on every new thread. */
    "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "signalfd4", "restart_syscall",
    "sigaltstack",

    /* The event loop, its timers and the resolver's waits (poll and epoll_wait are
     * ppoll and epoll_pwait on architectures without the old calls; the clock calls are
     * real system calls where the vDSO cannot serve them). */
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
    "clock_gettime", "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep",

    /* Socket traffic. socket itself is an argument rule; there is no listen (the listeners
     * are bound before the filter). bind is the resolver's netlink socket; connect on UDP
     * is how it reaches a nameserver and sorts answers; sendmmsg sends A and AAAA queries
     * together. */
    "accept4", "connect", "bind", "getsockname", "getpeername", "setsockopt", "getsockopt",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "shutdown",

    /* Descriptors: client and upstream sockets, the resolve pipe, log lines on stderr. */
    "read", "write", "readv", "writev", "close", "fcntl",

    /* Files read at runtime: the config on SIGHUP, the trust store's hashed directory
     * (loaded lazily while verifying), /etc/resolv.conf, /etc/hosts, /etc/nsswitch.conf,
     * /etc/gai.conf, NSS modules, and whether they changed since the last read. */
    "openat", "lseek", "fstat", "newfstatat", "statx",

    /* The SQLite ledger (unix VFS): positioned I/O, fcntl locks, durability, journal and
     * WAL files (created, truncated, deleted), path resolution of the database name. */
    "pread64", "pwrite64", "fsync", "fdatasync", "ftruncate", "fallocate", "unlink", "unlinkat",
    "access", "faccessat", "faccessat2", "getcwd", "readlink", "readlinkat",

    /* Facts about the process and the host: OpenSSL and SQLite seed from getrandom; the
     * resolver reads the host name; SQLite compares ids to decide on fchown. */
    "getrandom", "uname", "getuid", "geteuid", "getgid", "getegid", "sysinfo",

    NULL,
};
/* clang-format on */

/*
 * Thread creation only: clone must carry every flag glibc's pthread_create
 * sets and none of the flags that would make a new process or new
 * namespaces. fork, vfork and execve are not in the list at all.
 */
#define THREAD_FLAGS_REQUIRED                                                                      \
    (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)
#define THREAD_FLAGS_FORBIDDEN                                                                     \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET | CLONE_PARENT | CLONE_PTRACE | CLONE_VFORK | CLONE_UNTRACED | CLONE_PIDFD)

/* clone's flags are its first argument, except on s390x, where the stack comes first. */
#if defined(__s390x__)
#define CLONE_FLAGS_ARGUMENT SCMP_A1_64
#else
#define CLONE_FLAGS_ARGUMENT SCMP_A0_64
#endif

/* ioctl requests, any descriptor: FIONREAD sizes a DNS answer, TCGETS is isatty(). */
static const unsigned long allowed_ioctls[] = {FIONREAD, FIONBIO, TCGETS, 0};

static int rule_error(int rc, const char *what, struct bottle_err *err)
{
    return err_set(err, -rc, "seccomp: cannot add the rule for %s: %s", what, strerror(-rc));
}

static int allow_names(scmp_filter_ctx ctx, struct bottle_err *err)
{
    for (size_t i = 0; allowed_syscalls[i]; i++) {
        int nr = seccomp_syscall_resolve_name(allowed_syscalls[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a syscall on this architecture: nothing can call it */
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0)
            return rule_error(rc, allowed_syscalls[i], err);
    }
    return 0;
}

/* One socket rule: family, type (flags masked off) and, when protocol >= 0, the protocol. */
static int allow_socket(scmp_filter_ctx ctx, int family, int type, int protocol,
                        struct bottle_err *err)
{
    int rc;
    if (protocol >= 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3,
                              SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)family),
                              SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, (uint32_t)type),
                              SCMP_A2_32(SCMP_CMP_EQ, (uint32_t)protocol));
    else
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
                              SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)family),
                              SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xf, (uint32_t)type));
    return rc < 0 ? rule_error(rc, "socket", err) : 0;
}

/*
 * Sockets: TCP and UDP over IPv4 and IPv6 (upstreams, DNS, and the
 * resolver's address sorting, which connects UDP sockets to learn source
 * addresses), Unix sockets (nscd, systemd-resolved's NSS module) and
 * NETLINK_ROUTE (the resolver's interface list). No raw, packet, ICMP,
 * other netlink families, or any other address family.
 */
static int allow_sockets(scmp_filter_ctx ctx, struct bottle_err *err)
{
    static const int inet[] = {AF_INET, AF_INET6};
    int rc = 0;
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        if ((rc = allow_socket(ctx, inet[i], SOCK_STREAM, 0, err)) == 0 &&
            (rc = allow_socket(ctx, inet[i], SOCK_STREAM, IPPROTO_TCP, err)) == 0 &&
            (rc = allow_socket(ctx, inet[i], SOCK_DGRAM, 0, err)) == 0)
            rc = allow_socket(ctx, inet[i], SOCK_DGRAM, IPPROTO_UDP, err);
    }
    if (rc == 0 && (rc = allow_socket(ctx, AF_UNIX, SOCK_STREAM, -1, err)) == 0 &&
        (rc = allow_socket(ctx, AF_UNIX, SOCK_DGRAM, -1, err)) == 0 &&
        (rc = allow_socket(ctx, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE, err)) == 0)
        rc = allow_socket(ctx, AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE, err);
    return rc;
}

/*
 * Argument rules: clone for threads only; kill and tgkill only at this
 * process (abort() and raise() signal themselves; other processes of the
 * same uid, such as other bottles' sidecars, are out of reach); ioctl for
 * the few requests above.
 */
static int allow_with_arguments(scmp_filter_ctx ctx, struct bottle_err *err)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              CLONE_FLAGS_ARGUMENT(SCMP_CMP_MASKED_EQ,
                                                   THREAD_FLAGS_REQUIRED | THREAD_FLAGS_FORBIDDEN,
                                                   THREAD_FLAGS_REQUIRED));
    if (rc < 0)
        return rule_error(rc, "clone", err);
    uint32_t self = (uint32_t)getpid();
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, SCMP_A0_32(SCMP_CMP_EQ, self));
    if (rc < 0)
        return rule_error(rc, "kill", err);
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, SCMP_A0_32(SCMP_CMP_EQ, self));
    if (rc < 0)
        return rule_error(rc, "tgkill", err);
    for (size_t i = 0; allowed_ioctls[i]; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)allowed_ioctls[i]));
        if (rc < 0)
            return rule_error(rc, "ioctl", err);
    }
    return allow_sockets(ctx, err);
}

/*
 * Calls libraries make and cope with failing: answering them with an errno
 * keeps the proxy alive without granting anything. clone3 keeps its flags
 * in memory the filter cannot read; ENOSYS makes glibc fall back to clone,
 * which is checked. SQLite running as root hands journal files to the
 * database's owner and ignores the result.
 */
static int add_errno_rules(scmp_filter_ctx ctx, struct bottle_err *err)
{
    static const struct {
        const char *name;
        int err;
    } rules[] = {{"clone3", ENOSYS}, {"fchown", EPERM}};
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        int nr = seccomp_syscall_resolve_name(rules[i].name);
        if (nr == __NR_SCMP_ERROR)
            continue;
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((uint32_t)rules[i].err), nr, 0);
        if (rc < 0)
            return rule_error(rc, rules[i].name, err);
    }
    return 0;
}

int confine_apply(struct bottle_err *err)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (!ctx)
        return err_set(err, ENOMEM, "seccomp: cannot create the sidecar's filter");
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc < 0) {
        rc = err_set(err, -rc, "seccomp: cannot set filter attributes: %s", strerror(-rc));
        goto out;
    }
    /* No SCMP_FLTATR_CTL_LOG: kills reach the audit log without it, and with it every
     * resolver thread's clone3 (answered ENOSYS) would log a line too. */
    if ((rc = allow_names(ctx, err)) < 0 || (rc = allow_with_arguments(ctx, err)) < 0 ||
        (rc = add_errno_rules(ctx, err)) < 0)
        goto out;
    rc = seccomp_load(ctx);
    if (rc < 0)
        rc = err_set(err, -rc, "seccomp: cannot load the sidecar's filter: %s", strerror(-rc));
#ifdef CONFINE_LEAK_SANITIZER
    filter_loaded = rc == 0;
#endif
out:
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}

int confine_drop_privileges(long uid, long gid, struct bottle_err *err)
{
    if (geteuid() == 0)
        for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
            prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (gid >= 0) {
        if (setgroups(0, NULL) < 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0)
            return err_set(err, errno, "cannot switch to gid %ld: %s", gid, strerror(errno));
    }
    if (uid >= 0) {
        if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
            return err_set(err, errno, "cannot switch to uid %ld: %s", uid, strerror(errno));
        if (uid != 0 && setuid(0) == 0)
            return err_set(err, EPERM, "uid 0 could be regained after dropping to %ld", uid);
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return err_set(err, errno, "cannot set no_new_privs: %s", strerror(errno));
    return 0;
}
