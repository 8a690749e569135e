/*
 * The workspace guard (backends/guard.h): which paths every backend binds
 * read-only or pins, found without following a symlink; what is created
 * empty, what is refused, and what the audit after a run moves aside or
 * reports. The mounts themselves are attacked in tests/e2e/project_trust.sh
 * and tests/integration/docker.sh.
 */
#include "tests/unit/testutil.h"

#include "backends/guard.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"

struct fixture {
    char *ws;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char *tmp = testutil_mkdtemp();
    f->ws = realpath(tmp, NULL);
    free(tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    testutil_rm_rf(f->ws);
    free(f->ws);
    free(f);
    return 0;
}

/* A bare-bones repository: .git with a config, HEAD and the directories git needs. */
static void make_repo(const char *ws, const char *top)
{
    char *git = *top ? xasprintf("%s/.git", top) : xstrdup(".git");
    char *cfg = xasprintf("%s/config", git), *head = xasprintf("%s/HEAD", git);
    char *refs = xasprintf("%s/refs/heads/.keep", git);
    testutil_put(ws, cfg, "[core]\n\trepositoryformatversion = 0\n");
    testutil_put(ws, head, "ref: refs/heads/main\n");
    testutil_put(ws, refs, "");
    free(git);
    free(cfg);
    free(head);
    free(refs);
}

/* "ro .git/config, pin .git, ..." in list order. */
static char *describe(const struct guard_list *g)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < g->len; i++)
        buf_printf(&b, "%s%s %s%s", i ? ", " : "",
                   g->items[i].kind == GUARD_READ_ONLY ? "ro" : "pin", g->items[i].rel,
                   g->items[i].dir ? "/" : "");
    char *out = xstrdup(b.data ? b.data : "");
    buf_free(&b);
    return out;
}

static void build_ok(const struct fixture *f, const struct strv *ro, struct guard_list *g)
{
    struct bottle_err err = {0};
    if (guard_list_build(f->ws, ro, g, &err) < 0)
        fail_msg("guard_list_build: %s", err.msg);
}

static void expect(const struct guard_list *g, const char *want)
{
    char *got = describe(g);
    if (strcmp(got, want) != 0)
        fail_msg("\n  got:  %s\n  want: %s", got, want);
    free(got);
}

static void test_not_a_repository(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->ws, "src/main.c", "int main;\n");
    struct guard_list g;
    build_ok(f, NULL, &g);
    expect(&g, "");
    assert_int_equal(g.repos.len, 0);
    guard_list_free(&g);
}

static void test_repositories(void **state)
{
    struct fixture *f = *state;
    make_repo(f->ws, "");
    testutil_put(f->ws, ".gitmodules", "");
    make_repo(f->ws, "lib");
    testutil_put(f->ws, "lib/.git/hooks/pre-commit", "#!/bin/sh\n");
    testutil_put(f->ws, "notes/todo.txt", "");
    struct guard_list g;
    build_ok(f, NULL, &g);
    expect(&g, "pin .git/, ro .gitmodules, pin lib/, "
               "ro .git/config, ro .git/hooks/, pin .git/info/, pin lib/.git/, "
               "ro .git/info/attributes, ro lib/.git/config, ro lib/.git/hooks/, "
               "pin lib/.git/info/, ro lib/.git/info/attributes");
    /* Missing hooks and attributes were created empty, owned like .git. */
    assert_int_equal(g.created.len, 3); /* lib/ had its hooks */
    assert_string_equal(g.created.items[0], ".git/hooks");
    assert_string_equal(g.created.items[1], ".git/info/attributes");
    char *attrs = fs_join(f->ws, ".git/info/attributes");
    struct stat st, owner;
    assert_int_equal(stat(attrs, &st), 0);
    assert_int_equal(stat(f->ws, &owner), 0);
    assert_true(S_ISREG(st.st_mode) && st.st_size == 0 && st.st_uid == owner.st_uid);
    free(attrs);
    /* commondir cannot be created empty without breaking git: remembered for the audit. */
    assert_int_equal(g.absent.len, 2);
    assert_string_equal(g.absent.items[0], ".git/commondir");
    assert_int_equal(g.repos.len, 2);
    guard_list_free(&g);

    /* A second run creates nothing more. */
    build_ok(f, NULL, &g);
    assert_int_equal(g.created.len, 0);
    guard_list_free(&g);
}

static void test_links_refused(void **state)
{
    struct fixture *f = *state;
    make_repo(f->ws, "");
    testutil_put(f->ws, "githooks/pre-commit", "");
    char *hooks = fs_join(f->ws, ".git/hooks");
    assert_int_equal(symlink("../githooks", hooks), 0);
    struct guard_list g;
    struct bottle_err err = {0};
    assert_true(guard_list_build(f->ws, NULL, &g, &err) < 0);
    assert_int_equal(err_exit_code(&err), EXIT_REFUSED);
    assert_non_null(strstr(err.msg, ".git/hooks is (or passes through) a symbolic link"));
    unlink(hooks);
    free(hooks);

    /* A second name for .git/config would let the agent write it past the mount. */
    char *cfg = fs_join(f->ws, ".git/config"), *alias = fs_join(f->ws, "config-alias");
    assert_int_equal(link(cfg, alias), 0);
    memset(&err, 0, sizeof(err));
    assert_true(guard_list_build(f->ws, NULL, &g, &err) < 0);
    assert_non_null(strstr(err.msg, ".git/config has 2 hard links"));
    unlink(alias);
    free(alias);
    free(cfg);

    /* A top-level repository whose .git is a link. */
    char *other = fs_join(f->ws, "other");
    char *dotgit = fs_join(f->ws, "other/.git");
    assert_int_equal(mkdir(other, 0755), 0);
    assert_int_equal(symlink("../githooks", dotgit), 0);
    memset(&err, 0, sizeof(err));
    assert_true(guard_list_build(f->ws, NULL, &g, &err) < 0);
    assert_non_null(strstr(err.msg, "other/.git is (or passes through) a symbolic link"));
    unlink(dotgit);
    free(dotgit);
    free(other);
}

static void test_gitdir_files(void **state)
{
    struct fixture *f = *state;
    make_repo(f->ws, "");
    /* A submodule: sub/.git names .git/modules/sub. */
    testutil_put(f->ws, ".git/modules/sub/config", "[core]\n");
    testutil_put(f->ws, ".git/modules/sub/hooks/.keep", "");
    testutil_put(f->ws, "sub/.git", "gitdir: ../.git/modules/sub\n");
    /* A worktree of a repository elsewhere: only its .git file is ours to keep. */
    testutil_put(f->ws, "wt/.git", "gitdir: /nonexistent/repo/.git/worktrees/wt\n");
    struct guard_list g;
    build_ok(f, NULL, &g);
    char *got = describe(&g);
    assert_non_null(strstr(got, "ro sub/.git,"));
    assert_non_null(strstr(got, "pin .git/modules/sub/"));
    assert_non_null(strstr(got, "ro .git/modules/sub/config"));
    assert_non_null(strstr(got, "ro .git/modules/sub/hooks/"));
    assert_non_null(strstr(got, "ro wt/.git"));
    free(got);
    guard_list_free(&g);

    /* Reached through a link the agent could turn: refused. */
    char *link = fs_join(f->ws, "mods");
    assert_int_equal(symlink(".git/modules", link), 0);
    testutil_put(f->ws, "sub/.git", "gitdir: ../mods/sub\n");
    struct bottle_err err = {0};
    assert_true(guard_list_build(f->ws, NULL, &g, &err) < 0);
    assert_non_null(strstr(err.msg, "the git directory it names is reached through a link"));
    free(link);
}

static void test_declared_paths(void **state)
{
    struct fixture *f = *state;
    testutil_put(f->ws, "docs/a/b.md", "");
    testutil_put(f->ws, "Makefile", "all:\n");
    struct strv ro = STRV_INIT;
    strv_push(&ro, "docs/a/b.md");
    strv_push(&ro, "Makefile");
    strv_push(&ro, "missing/file");
    struct guard_list g;
    build_ok(f, &ro, &g);
    /* Each directory on the way is pinned: renaming docs/ away cannot bring a new b.md. */
    expect(&g, "ro Makefile, pin docs/, pin docs/a/, ro docs/a/b.md");
    assert_int_equal(g.missing.len, 1);
    assert_string_equal(g.missing.items[0], "missing/file");
    guard_list_free(&g);

    char *link = fs_join(f->ws, "docs/link");
    assert_int_equal(symlink("/etc", link), 0);
    strv_push(&ro, "docs/link");
    struct bottle_err err = {0};
    assert_true(guard_list_build(f->ws, &ro, &g, &err) < 0);
    assert_non_null(strstr(err.msg, "docs/link is (or passes through) a symbolic link"));
    strv_free(&ro);
    strv_push(&ro, "docs/link/passwd");
    memset(&err, 0, sizeof(err));
    assert_true(guard_list_build(f->ws, &ro, &g, &err) < 0);
    assert_non_null(strstr(err.msg, "symbolic link"));
    strv_free(&ro);
    free(link);
}

static void test_audit(void **state)
{
    struct fixture *f = *state;
    make_repo(f->ws, "");
    struct guard_list g;
    build_ok(f, NULL, &g);
    struct strv report = STRV_INIT;
    struct bottle_err err = {0};
    assert_int_equal(guard_audit(f->ws, &g, &report, &err), 0);
    assert_int_equal(report.len, 0); /* nothing planted, nothing said */

    /* What a mount cannot stop: a new commondir, a new repository. */
    testutil_put(f->ws, ".git/commondir", "../evil\n");
    make_repo(f->ws, "newrepo");
    assert_int_equal(guard_audit(f->ws, &g, &report, &err), 0);
    assert_int_equal(report.len, 2);
    assert_non_null(strstr(report.items[0], ".git/commondir, which would make git"));
    assert_non_null(strstr(report.items[1], "newrepo a git repository"));
    char *gone = fs_join(f->ws, ".git/commondir");
    char *aside = fs_join(f->ws, ".git/commondir" GUARD_PLANTED_SUFFIX);
    assert_false(fs_is_file(gone));
    assert_true(fs_is_file(aside));
    free(gone);
    free(aside);
    strv_free(&report);
    guard_list_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_not_a_repository, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repositories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gitdir_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_declared_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
