/*
 * home and the descriptor-relative file helpers: the data home under sudo is
 * root's per-user directory whatever $BOTTLE_HOME and $HOME say, the config
 * home stays the caller's; the directory walk refuses symlinks and
 * directories another user can change; openat2 beneath a directory refuses
 * symlinks and "..". Root only where ownership matters.
 */
#include "testutil.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/home.h"

struct env_saved {
    char *sudo_uid, *bottle_home;
};

static void env_save(struct env_saved *s)
{
    const char *u = getenv("SUDO_UID"), *h = getenv("BOTTLE_HOME");
    s->sudo_uid = u ? xstrdup(u) : NULL;
    s->bottle_home = h ? xstrdup(h) : NULL;
}

static void env_restore(struct env_saved *s)
{
    if (s->sudo_uid)
        setenv("SUDO_UID", s->sudo_uid, 1);
    else
        unsetenv("SUDO_UID");
    if (s->bottle_home)
        setenv("BOTTLE_HOME", s->bottle_home, 1);
    else
        unsetenv("BOTTLE_HOME");
    free(s->sudo_uid);
    free(s->bottle_home);
}

static void test_sudo_data_home_is_roots(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct env_saved saved;
    env_save(&saved);
    struct bottle_err err = {0};
    char *data = NULL, *config = NULL;

    /* Plain root: $BOTTLE_HOME is both homes. */
    unsetenv("SUDO_UID");
    setenv("BOTTLE_HOME", "/tmp/some-home", 1);
    assert_false(home_sudo_uid(NULL));
    assert_int_equal(home_path(&data, &err), 0);
    assert_string_equal(data, "/tmp/some-home");
    free(data);

    /* sudo from uid 4321: data in root's per-user directory, manifests where the user said. */
    setenv("SUDO_UID", "4321", 1);
    uid_t uid = 0;
    assert_true(home_sudo_uid(&uid));
    assert_int_equal(uid, 4321);
    assert_int_equal(home_path(&data, &err), 0);
    assert_string_equal(data, HOME_SUDO_ROOT "/4321");
    assert_int_equal(home_config_path(&config, &err), 0);
    assert_string_equal(config, "/tmp/some-home");
    free(data);
    free(config);

    /* sudo by root itself is plain root; a SUDO_UID that is not a number is refused. */
    setenv("SUDO_UID", "0", 1);
    assert_false(home_sudo_uid(NULL));
    setenv("SUDO_UID", "12ab", 1);
    assert_true(home_sudo_uid(NULL));
    assert_int_equal(home_path(&data, &err), -EINVAL);
    assert_int_equal(err.kind, ERR_KIND_USAGE);
    env_restore(&saved);
}

static void test_dir_walk_refuses_what_others_control(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct bottle_err err = {0};
    char *t = testutil_mkdtemp(); /* root-owned 0700 under the sticky /tmp */
    char *ok = fs_join(t, "a/b/c");
    int fd = fs_open_dir_walk(ok, true, 0700, &err);
    assert_true(fd >= 0); /* created on the way, each component root's */
    close(fd);
    struct stat sb;
    assert_int_equal(stat(ok, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    /* A symlink anywhere on the way is refused, not followed. */
    char *link = fs_join(t, "link");
    assert_int_equal(symlink(ok, link), 0);
    char *via = fs_join(t, "link/d");
    err_clear(&err);
    assert_int_equal(fs_open_dir_walk(via, true, 0700, &err), -EPERM);
    assert_non_null(strstr(err.msg, "symbolic link"));
    char *made = fs_join(ok, "d");
    assert_int_equal(access(made, F_OK), -1); /* nothing created through it */

    /* A directory another user owns, or that others may write, is refused as root's home. */
    char *theirs = fs_join(t, "theirs");
    assert_int_equal(mkdir(theirs, 0700), 0);
    assert_int_equal(chown(theirs, 65534, 65534), 0);
    err_clear(&err);
    assert_int_equal(fs_open_dir_walk(theirs, true, 0, &err), -EPERM);
    assert_non_null(strstr(err.msg, "not owned by root"));
    assert_int_equal(home_check_private(theirs, &err), -EPERM);
    char *open_dir = fs_join(t, "open");
    assert_int_equal(mkdir(open_dir, 0700), 0);
    assert_int_equal(chmod(open_dir, 0777), 0);
    err_clear(&err);
    assert_int_equal(fs_open_dir_walk(open_dir, true, 0, &err), -EPERM);
    assert_non_null(strstr(err.msg, "writable by other users"));
    /* Without the ownership rule (a user's own home), the same walk opens it. */
    fd = fs_open_dir_walk(theirs, false, 0, &err);
    assert_true(fd >= 0);
    close(fd);

    testutil_rm_rf(t);
    free(t);
    free(ok);
    free(link);
    free(via);
    free(made);
    free(theirs);
    free(open_dir);
}

static void test_open_beneath_and_write_at(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    char *t = testutil_mkdtemp();
    char *victim = testutil_mkdtemp();
    int dir = open(t, O_RDONLY | O_DIRECTORY);
    assert_true(dir >= 0);
    char *sub = fs_join(t, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    char *link = fs_join(t, "out");
    assert_int_equal(symlink(victim, link), 0);

    int fd = fs_open_beneath(dir, "sub", O_RDONLY | O_DIRECTORY, 0);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fs_open_beneath(dir, "out", O_RDONLY | O_DIRECTORY, 0), -ELOOP);
    assert_int_equal(fs_open_beneath(dir, "out/x", O_WRONLY | O_CREAT, 0600), -ELOOP);
    assert_int_equal(fs_open_beneath(dir, "../x", O_WRONLY | O_CREAT, 0600), -EXDEV);

    /* Written in the directory the descriptor names, with the mode asked for. */
    assert_int_equal(fs_write_atomic_at(dir, "f", "hello", 5, 0640, &err), 0);
    char *f = fs_join(t, "f");
    struct buf b = BUF_INIT;
    assert_int_equal(fs_read_file(f, 100, &b, &err), 0);
    assert_string_equal(b.data, "hello");
    struct stat sb;
    assert_int_equal(stat(f, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0640);
    /* A symlink planted under the name is replaced, never written through. */
    char *planted = fs_join(t, "g");
    char *target = fs_join(victim, "g");
    assert_int_equal(symlink(target, planted), 0);
    assert_int_equal(fs_write_atomic_at(dir, "g", "x", 1, 0600, &err), 0);
    assert_int_equal(access(target, F_OK), -1);
    assert_int_equal(lstat(planted, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(fs_write_atomic_at(dir, "../g", "x", 1, 0600, &err), -EINVAL);

    buf_free(&b);
    close(dir);
    testutil_rm_rf(t);
    testutil_rm_rf(victim);
    free(t);
    free(victim);
    free(sub);
    free(link);
    free(f);
    free(planted);
    free(target);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sudo_data_home_is_roots),
        cmocka_unit_test(test_dir_walk_refuses_what_others_control),
        cmocka_unit_test(test_open_beneath_and_write_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
