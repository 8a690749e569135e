/*
 * The kernel layer's CLI pieces against a real bottle (root): `bottle usage`
 * text and JSON, `bottle cutoff` and `--restore`, `--all`, `bottle events`,
 * usage errors with exit code 2, and the doctor report.
 */
#include "bpf/probe.h"
#include "kernel_harness.h"

#include "common/json.h"
#include "runtime/cli/cmd_kernel.h"

static int group_setup(void **state)
{
    (void)state;
    return geteuid() == 0 ? kh_servers_start() : 0;
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
    *state = geteuid() == 0 ? kh_bottle_new(BOTTLE_FLAG_DNS) : NULL;
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

/* Runs a command with stdout captured; returns the exit code, output in *out (caller frees). */
static int capture(int (*cmd)(int, char **), char **out, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    char path[] = "/tmp/bottle-cli.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = cmd(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)len + 1);
    assert_int_equal(pread(fd, *out, (size_t)len, 0), len);
    close(fd);
    return rc;
}

static void test_usage(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    struct kh_op echo = {KH_TCP_ECHO, AF_INET, "127.0.0.1", kh_srv.port, 5000};
    assert_int_equal(kh_run_in(b->cg.agent_fd, true, kh_op_run, &echo), 0);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port),
        EPERM);

    char *out = NULL;
    assert_int_equal(capture(cmd_usage, &out, 3, "usage", b->slug, "--json"), 0);
    struct bottle_err err;
    cJSON *doc = json_parse(out, strlen(out), "usage", &err);
    assert_non_null(doc);
    cJSON *bottles = cJSON_GetObjectItem(doc, "bottles");
    assert_int_equal(cJSON_GetArraySize(bottles), 1);
    cJSON *o = cJSON_GetArrayItem(bottles, 0);
    assert_string_equal(json_get_str(o, "slug"), b->slug);
    assert_true(json_get_num(o, "tx_bytes", 0) >= 5000);
    assert_true(json_get_num(o, "rx_bytes", 0) >= 5000);
    assert_int_equal((int)json_get_num(o, "connect_ok", -1), 1);
    assert_int_equal((int)json_get_num(o, "connect_deny", -1), 1);
    assert_string_equal(json_get_str(o, "state"), "open");
    assert_false(json_get_bool(doc, "kill_switch", true));
    cJSON_Delete(doc);
    free(out);

    /* Without a name: every bottle, ours among them, as a table. */
    assert_int_equal(capture(cmd_usage, &out, 1, "usage"), 0);
    assert_non_null(strstr(out, "BOTTLE"));
    assert_non_null(strstr(out, b->slug));
    free(out);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(capture(cmd_usage, &out, 2, "usage", "--help"), 0);
    assert_non_null(strstr(out, "usage: bottle usage"));
    free(out);
    assert_int_equal(capture(cmd_usage, &out, 2, "usage", "--bogus"), 2);
    free(out);
    assert_int_equal(capture(cmd_cutoff, &out, 1, "cutoff"), 2);
    free(out);
    assert_int_equal(capture(cmd_cutoff, &out, 3, "cutoff", "a", "--all"), 2);
    free(out);
    assert_int_equal(capture(cmd_cutoff, &out, 2, "cutoff", "../x"), 2);
    free(out);
    assert_int_equal(capture(cmd_events, &out, 1, "events"), 2);
    free(out);
    assert_int_equal(capture(cmd_events, &out, 2, "events", "--help"), 0);
    assert_non_null(strstr(out, "usage: bottle events"));
    free(out);
    if (geteuid() == 0) {
        /* An unknown bottle is the user's mistake (exit 2), named without any path. */
        assert_int_equal(capture(cmd_usage, &out, 2, "usage", "no-such-bottle"), 2);
        free(out);
    }
}

static int hold_stream(void *arg)
{
    int ready = *(int *)arg;
    struct kh_op op = {KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port, 0};
    int fd = -1;
    int rc = kh_connect_fd(SOCK_STREAM, &op, &fd);
    if (rc)
        return rc;
    if (kh_echo(fd, 10) != 0 || write(ready, "r", 1) != 1)
        return 90;
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n < 0 ? errno : 91;
}

static void test_cutoff_command(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    static int ready;
    ready = pipefd[1];
    pid_t pid = kh_start_in(b->cg.agent_fd, true, hold_stream, &ready);
    struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 5000), 1);

    char *out = NULL;
    assert_int_equal(capture(cmd_cutoff, &out, 2, "cutoff", b->slug), 0);
    assert_non_null(strstr(out, "cut off"));
    assert_non_null(strstr(out, "1 established aborted"));
    free(out);
    assert_int_equal(kh_wait(pid), ECONNABORTED);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), EPERM);
    assert_int_equal(capture(cmd_usage, &out, 3, "usage", b->slug, "--json"), 0);
    assert_non_null(strstr(out, "\"state\":\"cut-off\""));
    free(out);

    assert_int_equal(capture(cmd_cutoff, &out, 3, "cutoff", b->slug, "--restore"), 0);
    free(out);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);

    assert_int_equal(capture(cmd_cutoff, &out, 2, "cutoff", "--all"), 0);
    assert_non_null(strstr(out, "kill switch on"));
    free(out);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), EPERM);
    assert_int_equal(capture(cmd_cutoff, &out, 3, "cutoff", "--all", "--restore"), 0);
    free(out);
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.port), 0);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void test_events_command(void **state)
{
    REQUIRE_ROOT();
    struct kh_bottle *b = *state;
    assert_int_equal(
        kh_op_in(b->cg.agent_fd, true, KH_TCP_CONNECT, AF_INET, "127.0.0.1", kh_srv.other_port),
        EPERM);
    char *out = NULL;
    assert_int_equal(capture(cmd_events, &out, 3, "events", b->slug, "--json"), 0);
    char want[64];
    snprintf(want, sizeof(want), "\"port\":%u", kh_srv.other_port);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "\"hook\":\"connect4\""));
    assert_non_null(strstr(out, "\"reason\":\"not-allowed\""));
    assert_non_null(strstr(out, "\"address\":\"127.0.0.1\""));
    free(out);
    /* Consumed: a second read has nothing. */
    assert_int_equal(capture(cmd_events, &out, 2, "events", b->slug), 0);
    assert_string_equal(out, "");
    free(out);
}

static void test_doctor_report(void **state)
{
    REQUIRE_ROOT();
    (void)state;
    struct buf text = BUF_INIT;
    cJSON *doc = cJSON_CreateObject();
    bpf_probe_report(&text, doc);
    assert_non_null(strstr(text.data, "7/7 attach to a cgroup"));
    assert_non_null(strstr(text.data, "cgroup/connect6"));
    assert_non_null(strstr(text.data, "socket destroy: available"));
    cJSON *bpf = cJSON_GetObjectItem(doc, "bpf");
    assert_true(json_get_bool(bpf, "loaded", false));
    assert_true(json_get_bool(bpf, "sock_destroy", false));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(bpf, "programs")), 7);
    buf_free(&text);
    cJSON_Delete(doc);
    /* The probe cgroup is gone. */
    char *root = NULL;
    struct bottle_err err;
    assert_int_equal(cgroup_root_path(&root, &err), 0);
    char path[4200];
    snprintf(path, sizeof(path), "%s/doctor-%d", root, (int)getpid());
    assert_false(fs_is_dir(path));
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_usage, bottle_setup, bottle_teardown),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test_setup_teardown(test_cutoff_command, bottle_setup, bottle_teardown),
        cmocka_unit_test_setup_teardown(test_events_command, bottle_setup, bottle_teardown),
        cmocka_unit_test(test_doctor_report),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
