/*
 * Resource limits (kernel/limits.c) and where a host keeps each controller
 * (kernel/platform.c). The first cases read mountinfo texts; the kernel
 * cases run as root on this host's real hierarchies (cgroup2 or, on a
 * hybrid host, v1): children placed in a bottle's cgroups hit the pids limit
 * (EAGAIN), are OOM-killed above the memory limit, are throttled by the CPU
 * quota, while the test process outside carries on; removal leaves no
 * cgroup in any hierarchy.
 */
#include "tests/unit/testutil.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "common/buf.h"
#include "kernel/cgroup.h"
#include "kernel/limits.h"
#include "kernel/platform.h"

static const char hybrid_mountinfo[] =
    "25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:10 - cgroup2 cgroup2 rw\n"
    "27 25 0:24 / /sys/fs/cgroup/cpuset rw,relatime shared:11 - cgroup cgroup rw,cpuset\n"
    "28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:12 - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "29 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory\n"
    "30 25 0:27 / /sys/fs/cgroup/pids rw,relatime shared:14 - cgroup cgroup rw,pids\n"
    "31 25 0:28 / /sys/fs/cgroup/systemd rw,relatime shared:15 - cgroup cgroup "
    "rw,xattr,name=systemd\n";

static void test_controllers_hybrid_and_v2(void **state)
{
    (void)state;
    struct platform_controller c[CTRL_COUNT];
    /* Hybrid: cgroup2 holds only hugetlb; each controller is found in its v1 hierarchy. */
    platform_controllers_in(hybrid_mountinfo, "hugetlb", c);
    assert_int_equal(c[CTRL_PIDS].where, CTRL_IN_V1);
    assert_string_equal(c[CTRL_PIDS].v1_mount, "/sys/fs/cgroup/pids");
    assert_int_equal(c[CTRL_MEMORY].where, CTRL_IN_V1);
    assert_string_equal(c[CTRL_MEMORY].v1_mount, "/sys/fs/cgroup/memory");
    assert_int_equal(c[CTRL_CPU].where, CTRL_IN_V1);
    assert_string_equal(c[CTRL_CPU].v1_mount, "/sys/fs/cgroup/cpu,cpuacct"); /* not cpuset */
    platform_controllers_free(c);

    /* Listed in the cgroup2 root: cgroup2 wins over any v1 mount. */
    platform_controllers_in(hybrid_mountinfo, "cpuset cpu io memory hugetlb pids", c);
    for (int id = 0; id < CTRL_COUNT; id++) {
        assert_int_equal(c[id].where, CTRL_IN_V2);
        assert_null(c[id].v1_mount);
    }
    platform_controllers_free(c);

    /* Nowhere: no v1 hierarchy carries them and cgroup2 lists none. */
    platform_controllers_in("26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "io", c);
    for (int id = 0; id < CTRL_COUNT; id++)
        assert_int_equal(c[id].where, CTRL_MISSING);
    platform_controllers_free(c);

    struct strv mounts = STRV_INIT;
    platform_cgroup1_mounts_in(hybrid_mountinfo, &mounts);
    assert_int_equal(mounts.len, 5);
    assert_true(strv_contains(&mounts, "/sys/fs/cgroup/systemd"));
    assert_false(strv_contains(&mounts, "/sys/fs/cgroup/unified"));
    strv_free(&mounts);
}

static void test_check_refuses_a_missing_controller(void **state)
{
    (void)state;
    struct platform_controller c[CTRL_COUNT] = {
        [CTRL_PIDS] = {CTRL_IN_V2, NULL},
        [CTRL_MEMORY] = {CTRL_MISSING, NULL},
        [CTRL_CPU] = {CTRL_MISSING, NULL},
    };
    struct resource_limits l = {.pids = 100, .memory = 1ull << 30, .cpu_milli = LIMIT_NONE};
    struct bottle_err err = {0};
    assert_true(limits_check(c, &l, &err) < 0);
    assert_int_equal(err.kind, ERR_KIND_REFUSED);
    assert_int_equal(err_exit_code(&err), 3);
    assert_string_equal(err.msg, "limits: this host has no memory controller (neither in cgroup2 "
                                 "nor in a cgroup v1 hierarchy), so limits.memory cannot be "
                                 "enforced; set 'limits.memory: max' in the bottle to run "
                                 "without it");
    /* `max` needs no controller. */
    l.memory = LIMIT_NONE;
    memset(&err, 0, sizeof(err));
    assert_int_equal(limits_check(c, &l, &err), 0);
    l.cpu_milli = 500;
    assert_true(limits_check(c, &l, &err) < 0);
    assert_non_null(strstr(err.msg, "limits.cpus cannot be enforced"));
}

/* ---- on the host's real cgroups ----------------------------------------------------- */

struct lim_bottle {
    char slug[48];
    struct cgroup_bottle cg;
    struct limits_cgroups lc;
    struct platform_controller ctrl[CTRL_COUNT];
};

static struct lim_bottle *lim_new(const struct resource_limits *l)
{
    static int counter;
    struct lim_bottle *b = calloc(1, sizeof(*b));
    snprintf(b->slug, sizeof(b->slug), "ltest-%d-%d", (int)getpid(), counter++);
    struct bottle_err err = {0};
    if (cgroup_bottle_create(b->slug, &b->cg, &err) < 0)
        fail_msg("cgroup_bottle_create: %s", err.msg);
    if (limits_apply(&b->cg, l, &b->lc, &err) < 0) {
        cgroup_bottle_close(&b->cg);
        cgroup_bottle_remove(b->slug, 3000, &err);
        fail_msg("limits_apply: %s", err.msg);
    }
    platform_controllers(b->ctrl);
    return b;
}

/* Removes the bottle and checks that no hierarchy keeps a cgroup of it. */
static void lim_free(struct lim_bottle *b)
{
    struct bottle_err err = {0};
    limits_cgroups_close(&b->lc);
    cgroup_bottle_close(&b->cg);
    assert_int_equal(cgroup_bottle_remove(b->slug, 3000, &err), 0);
    char *v2 = NULL;
    assert_int_equal(cgroup_root_path(&v2, &err), 0);
    char *left = fs_join(v2, b->slug);
    assert_int_equal(access(left, F_OK), -1);
    free(left);
    free(v2);
    struct strv mounts = STRV_INIT;
    platform_cgroup1_mounts(&mounts);
    for (size_t i = 0; i < mounts.len; i++) {
        char *p = xasprintf("%s/%s/%s", mounts.items[i], CGROUP_BOTTLE_DIR, b->slug);
        if (access(p, F_OK) == 0)
            fail_msg("%s is left behind", p);
        free(p);
    }
    strv_free(&mounts);
    platform_controllers_free(b->ctrl);
    free(b);
}

/* The limit file of a controller: on the agent cgroup in cgroup2, else in the v1 cgroup. */
static char *limit_file(const struct lim_bottle *b, enum platform_controller_id id,
                        const char *v2_name, const char *v1_name)
{
    if (b->ctrl[id].where == CTRL_IN_V2)
        return fs_join(b->cg.agent_path, v2_name);
    assert_int_equal(b->ctrl[id].where, CTRL_IN_V1);
    return xasprintf("%s/%s/%s/%s", b->ctrl[id].v1_mount, CGROUP_BOTTLE_DIR, b->slug, v1_name);
}

static char *read_limit(const struct lim_bottle *b, enum platform_controller_id id,
                        const char *v2_name, const char *v1_name)
{
    char *path = limit_file(b, id, v2_name, v1_name);
    struct buf text = BUF_INIT;
    struct bottle_err err = {0};
    if (fs_read_file(path, 1 << 16, &text, &err) < 0)
        fail_msg("%s", err.msg);
    free(path);
    while (text.len && text.data[text.len - 1] == '\n')
        text.data[--text.len] = '\0';
    return buf_steal(&text);
}

/* A counter "key N" from a stat-style file of the controller. */
static long stat_value(const struct lim_bottle *b, enum platform_controller_id id,
                       const char *v2_name, const char *v1_name, const char *key)
{
    char *text = read_limit(b, id, v2_name, v1_name);
    long v = -1;
    size_t kl = strlen(key);
    for (char *line = text; line && *line;) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            v = atol(line + kl + 1);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(text);
    return v;
}

/* Forks a child that runs fn only once it is in the bottle's cgroups (every hierarchy). */
static pid_t spawn_in(struct lim_bottle *b, int (*fn)(void))
{
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(gate[1]);
        char c;
        if (read(gate[0], &c, 1) != 1)
            _exit(99);
        alarm(20);
        _exit(fn());
    }
    close(gate[0]);
    struct bottle_err err = {0};
    if (cgroup_move_pid(b->cg.agent_fd, pid, &err) < 0 || limits_place(&b->lc, pid, &err) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("%s", err.msg);
    }
    assert_int_equal(write(gate[1], "g", 1), 1);
    close(gate[1]);
    return pid;
}

static int wait_status(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* Forks (each child waits) until the kernel refuses: the number of children, 200+ otherwise. */
static int child_fork_until_refused(void)
{
    pid_t kids[64];
    int n = 0, e = 0;
    for (int i = 0; i < 64; i++) {
        pid_t k = fork();
        if (k == 0) {
            pause();
            _exit(0);
        }
        if (k < 0) {
            e = errno;
            break;
        }
        kids[n++] = k;
    }
    for (int i = 0; i < n; i++) {
        kill(kids[i], SIGKILL);
        waitpid(kids[i], NULL, 0);
    }
    return e == EAGAIN ? n : 200 + (e != 0);
}

static int child_touch(size_t bytes)
{
    volatile char *p = malloc(bytes);
    if (!p)
        return 2;
    for (size_t i = 0; i < bytes; i += 4096)
        p[i] = 1;
    return 0;
}

static int child_touch_256m(void)
{
    return child_touch(256u << 20);
}

static int child_touch_16m(void)
{
    return child_touch(16u << 20);
}

/* Spins until it has had 100 ms of CPU: ten periods' quota at 0.1 CPU, however busy the host. */
static int child_spin(void)
{
    struct timespec t;
    do {
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while (t.tv_sec == 0 && t.tv_nsec < 100 * 1000 * 1000);
    return 0;
}

static void test_limits_written_and_enforced(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct resource_limits l = {
        .pids = 16, .memory = 64ull << 20, .cpu_milli = 100, .tmpfs = 1ull << 20};
    struct lim_bottle *b = lim_new(&l);

    char *v = read_limit(b, CTRL_PIDS, "pids.max", "pids.max");
    assert_string_equal(v, "16");
    free(v);
    v = read_limit(b, CTRL_MEMORY, "memory.max", "memory.limit_in_bytes");
    assert_string_equal(v, "67108864");
    free(v);
    if (b->ctrl[CTRL_CPU].where == CTRL_IN_V2) {
        v = read_limit(b, CTRL_CPU, "cpu.max", NULL);
        assert_string_equal(v, "10000 100000");
    } else {
        v = read_limit(b, CTRL_CPU, NULL, "cpu.cfs_quota_us");
        assert_string_equal(v, "10000");
    }
    free(v);

    /* pids: the child itself is one of the 16, so it gets exactly 15 children, then EAGAIN. */
    int st = wait_status(spawn_in(b, child_fork_until_refused));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 15);
    /* Outside the bottle the same fork loop is not refused (the limit did it). */
    pid_t out = fork();
    if (out == 0)
        _exit(child_fork_until_refused());
    st = wait_status(out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 200);

    /* memory: 16M fits; 256M touched is OOM-killed inside, and the test goes on. */
    st = wait_status(spawn_in(b, child_touch_16m));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    st = wait_status(spawn_in(b, child_touch_256m));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    if (b->ctrl[CTRL_MEMORY].where == CTRL_IN_V2)
        assert_true(stat_value(b, CTRL_MEMORY, "memory.events", NULL, "oom_kill") >= 1);
    else
        assert_true(stat_value(b, CTRL_MEMORY, NULL, "memory.oom_control", "oom_kill") >= 1);

    /* cpu: 100 ms of CPU under a quota of 10 ms per 100 ms is throttled. */
    st = wait_status(spawn_in(b, child_spin));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(stat_value(b, CTRL_CPU, "cpu.stat", "cpu.stat", "nr_throttled") >= 1);
    lim_free(b);
}

/* Limits of `max` touch no controller: nothing to join, nothing limited. */
static void test_max_needs_nothing(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct resource_limits l = {
        .pids = LIMIT_NONE, .memory = LIMIT_NONE, .cpu_milli = LIMIT_NONE, .tmpfs = 1ull << 20};
    struct lim_bottle *b = lim_new(&l);
    assert_int_equal(b->lc.n_fds, 0);
    struct strv mounts = STRV_INIT;
    platform_cgroup1_mounts(&mounts);
    for (size_t i = 0; i < mounts.len; i++) {
        char *p = xasprintf("%s/%s/%s", mounts.items[i], CGROUP_BOTTLE_DIR, b->slug);
        assert_int_equal(access(p, F_OK), -1);
        free(p);
    }
    strv_free(&mounts);
    int st = wait_status(spawn_in(b, child_touch_256m));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    lim_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_controllers_hybrid_and_v2),
        cmocka_unit_test(test_check_refuses_a_missing_controller),
        cmocka_unit_test(test_limits_written_and_enforced),
        cmocka_unit_test(test_max_needs_nothing),
    };
    return cmocka_run_group_tests_name("kernel_limits", tests, NULL, NULL);
}
