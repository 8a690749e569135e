/*
 * seccomp in the kernel: a child loads the agent filter and every denied
 * syscall returns its errno (EPERM; clone3 ENOSYS; clone only when a
 * CLONE_NEW* flag is set), TIOCSTI and TIOCLINUX fail with EPERM on a
 * terminal the child controls (also with high bits set in the request)
 * while other ioctls work, setting a setuid or setgid bit fails with EPERM in
 * every call that sets or creates a mode (openat2: ENOSYS), the manifest's
 * extra names are denied too, and
 * ordinary programs still run (fork, posix_spawn, exec). Needs no root: the
 * filter is loaded with no_new_privs.
 */
#include "testutil.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <pty.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kernel/seccomp.h"

extern char **environ;

static int wait_child(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 255;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs fn in a child that first loads the filter; returns its exit code. */
static int run_filtered(int (*fn)(void), const struct strv *extra)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        struct bottle_err err;
        if (seccomp_profile_apply(extra, &err) < 0)
            _exit(250);
        _exit(fn());
    }
    return wait_child(pid);
}

/* Every base-list syscall, called with all-zero arguments, fails with EPERM. */
static int call_denied(void)
{
    for (const char *const *p = seccomp_denied_syscalls(); *p; p++) {
        int nr = seccomp_syscall_resolve_name(*p);
        if (nr < 0)
            continue;
        errno = 0;
        long r = syscall(nr, 0, 0, 0, 0, 0, 0);
        if (r != -1 || errno != EPERM) {
            fprintf(stderr, "# %s: returned %ld errno %d\n", *p, r, errno);
            return 1;
        }
    }
    return 0;
}

static int call_clone_flags(void)
{
    for (const unsigned long *b = seccomp_clone_denied_flags(); *b; b++) {
        errno = 0;
        long r = syscall(SYS_clone, *b | SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
            _exit(0);
        if (r > 0) {
            waitpid((pid_t)r, NULL, 0);
            return 2;
        }
        if (errno != EPERM)
            return 3;
    }
    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.exit_signal = SIGCHLD;
    errno = 0;
    long r = syscall(SYS_clone3, &args, sizeof(args));
    if (r == 0)
        _exit(0);
    if (r > 0) {
        waitpid((pid_t)r, NULL, 0);
        return 4;
    }
    return errno == ENOSYS ? 0 : 5;
}

/* Normal programs: fork, exec, posix_spawn (glibc tries clone3 and falls back). */
static int run_programs(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return 10;
    if (pid == 0)
        _exit(7);
    if (wait_child(pid) != 7)
        return 11;
    char *true_argv[] = {"true", NULL};
    if (posix_spawnp(&pid, "true", NULL, NULL, true_argv, environ) != 0)
        return 12;
    if (wait_child(pid) != 0)
        return 13;
    /* A real program that wants a namespace is refused by the filter. */
    char *unshare_argv[] = {"unshare", "-Ur", "true", NULL};
    if (posix_spawnp(&pid, "unshare", NULL, NULL, unshare_argv, environ) != 0)
        return 14;
    if (wait_child(pid) == 0)
        return 15;
    return 0;
}

static int call_extras(void)
{
    errno = 0;
    if (syscall(SYS_acct, 0) != -1 || errno != EPERM)
        return 20;
    errno = 0;
    if (syscall(SYS_getcwd, NULL, 0) != -1 || errno != EPERM)
        return 21;
    /* Not on the list: still works. */
    char cwd[4096];
    return getcwd(cwd, sizeof(cwd)) ? 0 : 22;
}

/*
 * A pty of the child's own as its controlling terminal: TIOCSTI there would queue input
 * for whoever reads the terminal next. 0 when every injection is refused with EPERM and
 * the input queue stays empty; the unfiltered control expects the injection to land.
 */
static int try_inject(bool want_refused)
{
    int master, slave;
    if (openpty(&master, &slave, NULL, NULL, NULL) < 0 || setsid() < 0 ||
        ioctl(slave, TIOCSCTTY, 0) < 0)
        return 30;
    struct termios raw;
    tcgetattr(slave, &raw);
    cfmakeraw(&raw);
    tcsetattr(slave, TCSANOW, &raw);
    char c = 'X';
    errno = 0;
    long r1 = ioctl(slave, TIOCSTI, &c);
    int e1 = errno;
    errno = 0; /* the kernel reads 32 bits of the request; the filter must too */
    long r2 = syscall(SYS_ioctl, slave, (unsigned long)TIOCSTI | (1UL << 32), &c);
    int e2 = errno;
    errno = 0;
    char sub = 3; /* TIOCL_PASTESEL */
    long r3 = ioctl(slave, TIOCLINUX, &sub);
    int e3 = errno;
    int queued = -1;
    if (ioctl(slave, FIONREAD, &queued) < 0) /* another ioctl still works */
        return 31;
    if (!want_refused)
        return r1 == 0 && queued > 0 ? 0 : (e1 == EIO ? 0 : 32); /* EIO: legacy_tiocsti=0 */
    if (r1 != -1 || e1 != EPERM)
        return 33;
    if (r2 != -1 || e2 != EPERM)
        return 34;
    if (r3 != -1 || e3 != EPERM)
        return 35;
    return queued == 0 ? 0 : 36;
}

static int inject_filtered(void)
{
    return try_inject(true);
}

static void test_terminal_injection_refused(void **state)
{
    (void)state;
    assert_int_equal(run_filtered(inject_filtered, NULL), 0);
    /* The control: without the filter the same calls reach the terminal. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(try_inject(false));
    assert_int_equal(wait_child(pid), 0);
}

/* ---- setuid and setgid bits ------------------------------------------------------ */

static char setid_dir[64];

static long sys_named(const char *name, long a, long b, long c, long d)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr < 0) {
        errno = ENOSYS;
        return -2; /* absent on this architecture */
    }
    return syscall(nr, a, b, c, d, 0, 0);
}

#define EXPECT(cond, code)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "# check %d failed (errno %d)\n", code, errno);                        \
            return code;                                                                           \
        }                                                                                          \
    } while (0)

/* A refusal: -1 with EPERM, or a syscall this architecture does not have. */
#define REFUSED(call) ((errno = 0, (call)) == -2 || errno == EPERM)

/* Every call that sets or creates a mode fails with EPERM when it carries S_ISUID or S_ISGID,
 * and works without them; openat2 fails with ENOSYS; nothing with those bits is left. */
static int call_setid(void)
{
    if (chdir(setid_dir) < 0)
        return 1;
    long dfd = open(".", O_RDONLY | O_DIRECTORY);
    int fd = open("f", O_CREAT | O_WRONLY, 0644);
    EXPECT(fd >= 0 && dfd >= 0, 2);
    EXPECT(REFUSED(sys_named("chmod", (long)"f", 04755, 0, 0)), 10);
    EXPECT(REFUSED(sys_named("chmod", (long)"f", 02755, 0, 0)), 11);
    EXPECT(REFUSED(sys_named("fchmod", fd, 06755, 0, 0)), 12);
    EXPECT(REFUSED(sys_named("fchmodat", AT_FDCWD, (long)"f", 02700, 0)), 13);
    EXPECT(REFUSED(sys_named("fchmodat2", AT_FDCWD, (long)"f", 04700, 0)), 14);
    EXPECT(chmod("f", 01755) == 0 && fchmod(fd, 0700) == 0, 15); /* other bits still change */
    EXPECT(REFUSED(sys_named("open", (long)"g", O_CREAT | O_WRONLY, 04755, 0)), 20);
    EXPECT(REFUSED(sys_named("openat", dfd, (long)"g", O_CREAT | O_WRONLY, 02755)), 21);
    EXPECT(REFUSED(sys_named("openat", dfd, (long)".", O_TMPFILE | O_WRONLY, 04700)), 22);
    EXPECT(REFUSED(sys_named("creat", (long)"g", 04755, 0, 0)), 23);
    EXPECT(REFUSED(sys_named("mkdir", (long)"d", 02755, 0, 0)), 24);
    EXPECT(REFUSED(sys_named("mkdirat", dfd, (long)"d", 04755, 0)), 25);
    EXPECT(REFUSED(sys_named("mknod", (long)"n", S_IFREG | 04755, 0, 0)), 26);
    EXPECT(REFUSED(sys_named("mknodat", dfd, (long)"n", S_IFREG | 02755, 0)), 27);
    EXPECT(access("g", F_OK) < 0 && access("d", F_OK) < 0 && access("n", F_OK) < 0, 28);
    int g = open("g", O_CREAT | O_WRONLY, 0755);
    EXPECT(g >= 0 && mkdir("d", 0755) == 0 && mknod("n", S_IFREG | 0644, 0) == 0, 29);
    struct open_how how = {.flags = O_RDONLY};
    errno = 0;
    EXPECT(syscall(SYS_openat2, dfd, "f", &how, sizeof(how)) == -1 && errno == ENOSYS, 30);
    static const char *const names[] = {"f", "g", "d", "n"};
    for (size_t i = 0; i < 4; i++) {
        struct stat st;
        EXPECT(stat(names[i], &st) == 0 && !(st.st_mode & (S_ISUID | S_ISGID)), 40 + (int)i);
    }
    close(g);
    close(fd);
    close((int)dfd);
    return 0;
}

/* The same calls without the filter set the bits: the refusals above are the filter's. */
static int call_setid_unfiltered(void)
{
    if (chdir(setid_dir) < 0)
        return 1;
    int fd = open("u", O_CREAT | O_WRONLY, 0644);
    EXPECT(fd >= 0 && fchmod(fd, 04755) == 0, 2);
    struct stat st;
    EXPECT(fstat(fd, &st) == 0 && (st.st_mode & S_ISUID), 3);
    close(fd);
    return 0;
}

static void test_setid_bits(void **state)
{
    (void)state;
    snprintf(setid_dir, sizeof(setid_dir), "/tmp/bottle-setid.XXXXXX");
    assert_non_null(mkdtemp(setid_dir));
    assert_int_equal(run_filtered(call_setid, NULL), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(call_setid_unfiltered());
    assert_int_equal(wait_child(pid), 0);
    testutil_rm_rf(setid_dir);
}

/* A manifest that denies one of them outright still gets EPERM for every mode. */
static int call_chmod_any(void)
{
    if (chdir(setid_dir) < 0)
        return 1;
    int fd = open("f", O_CREAT | O_WRONLY, 0644);
    EXPECT(fd >= 0, 2);
    EXPECT(REFUSED(sys_named("fchmod", fd, 0600, 0, 0)), 3);
    EXPECT(REFUSED(sys_named("fchmod", fd, 04600, 0, 0)), 4);
    EXPECT(REFUSED(sys_named("chmod", (long)"f", 02755, 0, 0)), 5);
    close(fd);
    return 0;
}

static void test_setid_with_extra_denial(void **state)
{
    (void)state;
    snprintf(setid_dir, sizeof(setid_dir), "/tmp/bottle-setid.XXXXXX");
    assert_non_null(mkdtemp(setid_dir));
    struct strv extra = STRV_INIT;
    strv_push(&extra, "fchmod");
    assert_int_equal(run_filtered(call_chmod_any, &extra), 0);
    strv_free(&extra);
    testutil_rm_rf(setid_dir);
}

static void test_denied_syscalls(void **state)
{
    (void)state;
    assert_int_equal(run_filtered(call_denied, NULL), 0);
}

static void test_clone_rules(void **state)
{
    (void)state;
    assert_int_equal(run_filtered(call_clone_flags, NULL), 0);
}

static void test_programs_still_run(void **state)
{
    (void)state;
    assert_int_equal(run_filtered(run_programs, NULL), 0);
}

static void test_manifest_extras(void **state)
{
    (void)state;
    struct strv extra = STRV_INIT;
    strv_push(&extra, "acct");
    strv_push(&extra, "getcwd");
    /* Raw getcwd denied, libc's getcwd then fails too: expect 22 from the last check. */
    assert_int_equal(run_filtered(call_extras, &extra), 22);
    strv_free(&extra);
}

static void test_no_new_privs_set(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        struct bottle_err err;
        if (seccomp_profile_apply(NULL, &err) < 0)
            _exit(250);
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        int nnp = -1, mode = -1;
        while (f && fgets(line, sizeof(line), f)) {
            sscanf(line, "NoNewPrivs: %d", &nnp);
            sscanf(line, "Seccomp: %d", &mode);
        }
        if (f)
            fclose(f);
        _exit(nnp == 1 && mode == 2 ? 0 : 1);
    }
    assert_int_equal(wait_child(pid), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_denied_syscalls),
        cmocka_unit_test(test_clone_rules),
        cmocka_unit_test(test_programs_still_run),
        cmocka_unit_test(test_manifest_extras),
        cmocka_unit_test(test_no_new_privs_set),
        cmocka_unit_test(test_terminal_injection_refused),
        cmocka_unit_test(test_setid_bits),
        cmocka_unit_test(test_setid_with_extra_denial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
