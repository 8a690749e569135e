/*
 * netns: a bottle's namespace and veth pair, checked from the outside with
 * iproute2 (entering the namespace through its file with nsenter), kept
 * where no other user can open it, and torn down without a trace, also after
 * failures injected at every step. Root only.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "common/spawn.h"
#include "kernel/netns.h"

#define TEST_POOL "10.244.128.0"
/* Runs ip inside unit-net-a's namespace, entered through its file. */
#define IN_NS_A "nsenter", "--net=" NETNS_RUN_DIR "/bottle-unit-net-a", "ip"

/* Runs ip with argv; returns its stdout (caller frees) or fails the test. */
static char *ip_out(const char *const *argv)
{
    struct spawn_result r = {0};
    struct bottle_err err = {0};
    struct spawn_opts o = {.timeout_ms = 10000};
    int rc = spawn_run(argv, &o, &r, &err);
    if (rc < 0) {
        spawn_result_free(&r);
        fail_msg("%s", err.msg);
    }
    char *out = r.out.data ? xstrndup(r.out.data, r.out.len) : xstrdup("");
    spawn_result_free(&r);
    return out;
}

static bool ip_ok(const char *const *argv)
{
    struct spawn_result r = {0};
    struct bottle_err err = {0};
    struct spawn_opts o = {.timeout_ms = 10000};
    int rc = spawn_run(argv, &o, &r, &err);
    spawn_result_free(&r);
    return rc == 0;
}

static bool host_link_exists(const char *name)
{
    const char *argv[] = {"ip", "link", "show", "dev", name, NULL};
    return ip_ok(argv);
}

/* Host link names starting with "bh-" or "bb-", one per line. */
static char *bottle_links(void)
{
    const char *argv[] = {"ip", "-o", "link", "show", NULL};
    char *all = ip_out(argv);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "");
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        char *name = strchr(line, ' ');
        if (!name)
            continue;
        name++;
        if (str_starts_with(name, "bh-") || str_starts_with(name, "bb-")) {
            size_t n = strcspn(name, ":@");
            buf_append(&b, name, n);
            buf_append_char(&b, '\n');
        }
    }
    free(all);
    return buf_steal(&b);
}

static void assert_gone(const char *slug, const char *host_if)
{
    char *path = netns_path_for(slug);
    assert_int_equal(access(path, F_OK), -1);
    free(path);
    if (host_if && *host_if)
        assert_false(host_link_exists(host_if));
    const char *argv[] = {"ip", "netns", "list", NULL};
    char *list = ip_out(argv);
    char *name = xasprintf("bottle-%s", slug);
    assert_null(strstr(list, name));
    free(name);
    free(list);
}

static void test_create_and_destroy(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct bottle_err err = {0};
    struct netns_bottle nb;
    int rc = netns_create("unit-net-a", NULL, &nb, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_true(nb.fd >= 0);
    assert_int_equal(nb.prefix_len, 30);
    assert_true(str_starts_with(nb.host_if, "bh-"));
    assert_true(str_starts_with(nb.guest_if, "bb-"));
    assert_true(strlen(nb.host_if) < IF_NAMESIZE);
    uint32_t net = ntohl(nb.network.s_addr);
    assert_int_equal(net & 3, 0);
    assert_int_equal(ntohl(nb.host_addr.s_addr), net + 1);
    assert_int_equal(ntohl(nb.guest_addr.s_addr), net + 2);
    assert_int_equal(net >> 16, (10u << 8) | 243u); /* 10.243.0.0/16 */

    char host_cidr[32], guest_cidr[32];
    netns_format_cidr(nb.host_addr, 30, host_cidr, sizeof(host_cidr));
    netns_format_cidr(nb.guest_addr, 30, guest_cidr, sizeof(guest_cidr));

    /* The file is in the root-only directory, not where any user could open it. */
    assert_string_equal(nb.path, NETNS_RUN_DIR "/bottle-unit-net-a");
    assert_int_equal(access(NETNS_LEGACY_DIR "/bottle-unit-net-a", F_OK), -1);

    const char *host_addr_argv[] = {"ip", "-4", "-o", "addr", "show", "dev", nb.host_if, NULL};
    char *out = ip_out(host_addr_argv);
    assert_non_null(strstr(out, host_cidr));
    free(out);
    const char *host_link_argv[] = {"ip", "-o", "link", "show", "dev", nb.host_if, NULL};
    out = ip_out(host_link_argv);
    assert_non_null(strstr(out, ",UP"));
    free(out);

    const char *guest_addr_argv[] = {IN_NS_A, "-4", "-o", "addr", "show", "dev", nb.guest_if, NULL};
    out = ip_out(guest_addr_argv);
    assert_non_null(strstr(out, guest_cidr));
    free(out);
    const char *guest_links_argv[] = {IN_NS_A, "-o", "link", "show", NULL};
    out = ip_out(guest_links_argv);
    /* lo and the bottle end, both up; nothing else. */
    assert_non_null(strstr(out, "lo: <LOOPBACK,UP"));
    assert_non_null(strstr(out, nb.guest_if));
    int lines = 0;
    for (const char *c = out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 2);
    free(out);

    /* No default route (nor any route beyond the /30 and loopback) in any table. */
    const char *routes_argv[] = {IN_NS_A, "-4", "route", "show", "table", "all", NULL};
    out = ip_out(routes_argv);
    assert_null(strstr(out, "default"));
    assert_null(strstr(out, "0.0.0.0/0"));
    free(out);
    const char *routes6_argv[] = {IN_NS_A, "-6", "route", "show", "table", "all", NULL};
    out = ip_out(routes6_argv);
    assert_null(strstr(out, "default"));
    free(out);

    /* The host reaches the bottle's address over the pair (and nothing else is needed). */
    const char *ping_argv[] = {IN_NS_A, "-4", "route", "get", host_cidr, NULL};
    char *host_only = xstrdup(host_cidr);
    *strchr(host_only, '/') = '\0';
    ping_argv[6] = host_only; /* after nsenter, --net=..., ip, -4, route, get */
    out = ip_out(ping_argv);
    assert_non_null(strstr(out, nb.guest_if));
    free(out);
    free(host_only);

    char host_if[IF_NAMESIZE];
    memcpy(host_if, nb.host_if, sizeof(host_if));
    assert_int_equal(netns_destroy(&nb, &err), 0);
    assert_int_equal(nb.fd, -1);
    assert_gone("unit-net-a", host_if);
    /* Idempotent. */
    assert_int_equal(netns_remove_slug("unit-net-a", &err), 0);
}

static void test_two_bottles_do_not_overlap(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct bottle_err err = {0};
    struct netns_bottle a, b;
    assert_int_equal(netns_create("unit-net-b1", NULL, &a, &err), 0);
    int rc = netns_create("unit-net-b2", NULL, &b, &err);
    if (rc < 0) {
        netns_destroy(&a, &err);
        fail_msg("%s", err.msg);
    }
    uint32_t na = ntohl(a.network.s_addr), nb2 = ntohl(b.network.s_addr);
    assert_int_not_equal(na, nb2);
    /* Two /30s overlap only when equal. */
    assert_int_not_equal(na & ~3u, nb2 & ~3u);
    assert_string_not_equal(a.host_if, b.host_if);
    assert_string_not_equal(a.guest_if, b.guest_if);

    /* The same slug twice is refused and leaves the first intact. */
    struct netns_bottle dup;
    assert_int_equal(netns_create("unit-net-b1", NULL, &dup, &err), -EEXIST);
    assert_true(host_link_exists(a.host_if));

    struct strv slugs = STRV_INIT;
    assert_int_equal(netns_list_slugs(&slugs, &err), 0);
    assert_true(strv_contains(&slugs, "unit-net-b1"));
    assert_true(strv_contains(&slugs, "unit-net-b2"));
    strv_free(&slugs);

    char ha[IF_NAMESIZE], hb[IF_NAMESIZE];
    memcpy(ha, a.host_if, sizeof(ha));
    memcpy(hb, b.host_if, sizeof(hb));
    assert_int_equal(netns_destroy(&a, &err), 0);
    assert_int_equal(netns_destroy(&b, &err), 0);
    assert_gone("unit-net-b1", ha);
    assert_gone("unit-net-b2", hb);
}

static void test_host_routes_are_avoided(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct bottle_err err = {0};
    /* A host route over the first /30 of a 4-slot test pool. */
    const char *add[] = {"ip", "route", "add", "blackhole", TEST_POOL "/30", NULL};
    const char *del[] = {"ip", "route", "del", "blackhole", TEST_POOL "/30", NULL};
    ip_ok(del);
    assert_true(ip_ok(add));
    struct netns_options o = {.pool = TEST_POOL, .pool_prefix = 28};
    struct netns_bottle nb;
    int rc = netns_create("unit-net-c", &o, &nb, &err);
    if (rc < 0) {
        ip_ok(del);
        fail_msg("%s", err.msg);
    }
    char cidr[32];
    netns_format_cidr(nb.network, 30, cidr, sizeof(cidr));
    netns_destroy(&nb, &err);
    ip_ok(del);
    assert_string_equal(cidr, "10.244.128.4/30");

    /* A route covering the whole pool leaves nothing. */
    const char *add_all[] = {"ip", "route", "add", "blackhole", TEST_POOL "/28", NULL};
    const char *del_all[] = {"ip", "route", "del", "blackhole", TEST_POOL "/28", NULL};
    ip_ok(del_all);
    assert_true(ip_ok(add_all));
    rc = netns_create("unit-net-c", &o, &nb, &err);
    ip_ok(del_all);
    assert_int_equal(rc, -EADDRNOTAVAIL);
    assert_non_null(strstr(err.msg, "no free /30"));
    assert_gone("unit-net-c", NULL);
}

static void test_injected_failures_leave_nothing(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    char *before = bottle_links();
    for (int step = 1; step <= 4; step++) {
        struct bottle_err err = {0};
        struct netns_options o = {.fail_after_step = step};
        struct netns_bottle nb;
        assert_int_equal(netns_create("unit-net-d", &o, &nb, &err), -EIO);
        assert_non_null(strstr(err.msg, "injected failure"));
        assert_int_equal(nb.fd, -1);
        assert_null(nb.path);
        assert_gone("unit-net-d", NULL);
        char *after = bottle_links();
        assert_string_equal(before, after);
        free(after);
    }
    free(before);
}

static void test_cleanup_after_crash(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct bottle_err err = {0};
    struct netns_bottle nb;
    assert_int_equal(netns_create("unit-net-e", NULL, &nb, &err), 0);
    char host_if[IF_NAMESIZE];
    memcpy(host_if, nb.host_if, sizeof(host_if));
    netns_close(&nb); /* the controller dies: everything stays */
    assert_true(host_link_exists(host_if));
    char *path = netns_path_for("unit-net-e");
    assert_int_equal(access(path, F_OK), 0);
    free(path);

    /* cleanup knows only the slug */
    assert_int_equal(netns_remove_slug("unit-net-e", &err), 0);
    assert_gone("unit-net-e", host_if);
}

/* In a child that became uid/gid 65534: the errno of opening path (0: it opened). */
static int open_as_nobody(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(200);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        _exit(fd >= 0 ? 0 : errno);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

static void test_other_users_cannot_hold_it(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct bottle_err err = {0};
    struct netns_bottle nb;
    assert_int_equal(netns_create("unit-net-f", NULL, &nb, &err), 0);
    struct stat sb;
    assert_int_equal(stat(NETNS_RUN_DIR, &sb), 0);
    assert_int_equal(sb.st_uid, 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    /* The file itself is 0444 (nsfs): the directory is what keeps other users out. */
    assert_int_equal(open_as_nobody(nb.path), EACCES);
    assert_int_equal(open_as_nobody(NETNS_LEGACY_DIR "/bottle-unit-net-f"), ENOENT);
    /* Root still opens it (cleanup, nsenter). */
    int fd = open(nb.path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    char host_if[IF_NAMESIZE];
    memcpy(host_if, nb.host_if, sizeof(host_if));
    assert_int_equal(netns_destroy(&nb, &err), 0);
    assert_gone("unit-net-f", host_if);
}

static int cleanup_all(void **state)
{
    (void)state;
    static const char *const slugs[] = {"unit-net-a", "unit-net-b1", "unit-net-b2", "unit-net-c",
                                        "unit-net-d", "unit-net-e",  "unit-net-f"};
    if (geteuid() != 0)
        return 0;
    for (size_t i = 0; i < sizeof(slugs) / sizeof(slugs[0]); i++) {
        struct bottle_err err = {0};
        netns_remove_slug(slugs[i], &err);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_create_and_destroy, cleanup_all),
        cmocka_unit_test_teardown(test_two_bottles_do_not_overlap, cleanup_all),
        cmocka_unit_test_teardown(test_host_routes_are_avoided, cleanup_all),
        cmocka_unit_test_teardown(test_injected_failures_leave_nothing, cleanup_all),
        cmocka_unit_test_teardown(test_cleanup_after_crash, cleanup_all),
        cmocka_unit_test_teardown(test_other_users_cannot_hold_it, cleanup_all),
    };
    return cmocka_run_group_tests(tests, cleanup_all, cleanup_all);
}
