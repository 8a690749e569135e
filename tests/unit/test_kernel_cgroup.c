/*
 * cgroup2 discovery and the private mount bottle makes when a host has no
 * cgroup2 hierarchy mounted (runtime/cgroup.c). The "no cgroup2" host is made
 * in a private mount namespace where every cgroup2 mount is detached.
 */
#include "tests/unit/testutil.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "kernel/cgroup.h"
#include "kernel/platform.h"

static void test_finds_existing_mount(void **state)
{
    (void)state;
    char *want = NULL, *got = NULL;
    struct bottle_err err = {0};
    if (platform_find_cgroup2(&want, &err) < 0)
        skip(); /* covered by the next test */
    assert_int_equal(cgroup2_mount_point(&got, &err), 0);
    assert_string_equal(got, want);
    free(want);
    free(got);
}

/* Runs in a child: detach every cgroup2 mount, then ask for the mount point. */
static int child_without_cgroup2(void)
{
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return 10;
    for (int i = 0; i < 8; i++) {
        char *m = NULL;
        if (platform_find_cgroup2(&m, NULL) < 0)
            break;
        if (umount2(m, MNT_DETACH) < 0)
            return 11;
        free(m);
    }
    char *m = NULL;
    if (platform_find_cgroup2(&m, NULL) == 0)
        return 12; /* could not get rid of them */
    struct bottle_err err = {0};
    if (cgroup2_mount_point(&m, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 13;
    }
    if (strcmp(m, CGROUP2_PRIVATE_MOUNT) != 0)
        return 14;
    /* It is the real v2 hierarchy: it has cgroup.procs and we are in it. */
    char *procs = xasprintf("%s/cgroup.procs", m);
    int ok = access(procs, R_OK) == 0;
    free(procs);
    free(m);
    return ok ? 0 : 15;
}

static void test_mounts_private_hierarchy_when_none(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_without_cgroup2());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The mount lived in the child's namespace only; the host is unchanged. */
    char *m = NULL;
    struct bottle_err err = {0};
    assert_int_equal(platform_find_cgroup2(&m, &err), 0);
    assert_string_not_equal(m, CGROUP2_PRIVATE_MOUNT);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_existing_mount),
        cmocka_unit_test(test_mounts_private_hierarchy_when_none),
    };
    return cmocka_run_group_tests_name("cgroup_mount", tests, NULL, NULL);
}
