/*
 * uidpool: each bottle gets ids of its own; a slot held by a live
 * controller, an id a running process uses, an id with a name and an id in
 * a subordinate range are never handed out; a released slot comes back.
 * Root only (the lock directory must be root's, processes change uid).
 */
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "kernel/uidpool.h"

struct fixture {
    char *dir;
    char *lock_dir;
    char *empty; /* an empty subuid/subgid file */
    struct uidpool_options o;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->lock_dir = fs_join(f->dir, "uids");
    f->empty = fs_join(f->dir, "empty");
    testutil_write(f->empty, "");
    f->o.lock_dir = f->lock_dir;
    f->o.subuid = f->empty;
    f->o.subgid = f->empty;
    f->o.slots = 8;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rm_rf(f->dir);
    free(f->dir);
    free(f->lock_dir);
    free(f->empty);
    free(f);
    return 0;
}

static void test_two_bottles_get_different_ids(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct uidpool_lease a, b;
    assert_int_equal(uidpool_acquire(&f->o, &a, &err), 0);
    assert_int_equal(uidpool_acquire(&f->o, &b, &err), 0);
    assert_int_equal(a.slot, 0);
    assert_int_equal(a.sidecar_uid, UIDPOOL_BASE);
    assert_int_equal(a.agent_uid, UIDPOOL_BASE + 1);
    assert_int_equal(a.sidecar_gid, a.sidecar_uid);
    assert_int_equal(a.agent_gid, a.agent_uid);
    assert_int_not_equal(a.slot, b.slot);
    unsigned ids[4] = {a.sidecar_uid, a.agent_uid, b.sidecar_uid, b.agent_uid};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_int_not_equal(ids[i], ids[j]);
    assert_true(uidpool_in_range(&f->o, b.agent_uid));
    assert_false(uidpool_in_range(&f->o, 65534));

    /* Released at teardown: the next bottle gets the slot back. */
    uidpool_release(&a);
    assert_int_equal(a.fd, -1);
    struct uidpool_lease c;
    assert_int_equal(uidpool_acquire(&f->o, &c, &err), 0);
    assert_int_equal(c.slot, 0);
    uidpool_release(&b);
    uidpool_release(&c);
    uidpool_release(&c); /* idempotent */
}

static void test_held_by_another_process(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) { /* another controller holding slot 0 */
        struct bottle_err e = {0};
        struct uidpool_lease l;
        if (uidpool_acquire(&f->o, &l, &e) < 0 || l.slot != 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    struct bottle_err err = {0};
    struct uidpool_lease l;
    assert_int_equal(uidpool_acquire(&f->o, &l, &err), 0);
    assert_int_equal(l.slot, 1);
    uidpool_release(&l);
    /* The controller dies (however it dies): its slot is free again. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(uidpool_acquire(&f->o, &l, &err), 0);
    assert_int_equal(l.slot, 0);
    uidpool_release(&l);
}

static void test_ids_in_use_are_skipped(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct bottle_err err = {0};
    struct uidpool_lease l;

    /* A process still running as slot 0's agent (its controller crashed): slot 0 is skipped. */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(UIDPOOL_BASE + 1) < 0 || setuid(UIDPOOL_BASE + 1) < 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(2);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(uidpool_acquire(&f->o, &l, &err), 0);
    assert_int_equal(l.slot, 1);
    uidpool_release(&l);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);

    /* Subordinate ranges (/etc/subuid, /etc/subgid) covering slots 0 to 2 are skipped. */
    char *sub = fs_join(f->dir, "subuid");
    char *line = xasprintf("someone:%u:5\n", UIDPOOL_BASE);
    testutil_write(sub, line);
    struct uidpool_options o = f->o;
    o.subuid = sub;
    assert_int_equal(uidpool_acquire(&o, &l, &err), 0);
    assert_int_equal(l.slot, 3);
    uidpool_release(&l);
    o.subuid = f->empty;
    o.subgid = sub;
    assert_int_equal(uidpool_acquire(&o, &l, &err), 0);
    assert_int_equal(l.slot, 3);
    uidpool_release(&l);

    /* An id with a name (here nobody, 65534, at slot 0 of a pool based on it) is skipped. */
    o = f->o;
    o.base = 65534;
    assert_int_equal(uidpool_acquire(&o, &l, &err), 0);
    assert_int_equal(l.slot, 1);
    uidpool_release(&l);

    /* Nothing free: a clear error, nothing held. */
    o = f->o;
    o.slots = 2;
    o.subuid = sub;
    err_clear(&err);
    assert_int_equal(uidpool_acquire(&o, &l, &err), -EAGAIN);
    assert_non_null(strstr(err.msg, "every id"));
    assert_int_equal(l.fd, -1);
    free(sub);
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_bottles_get_different_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_by_another_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_in_use_are_skipped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
