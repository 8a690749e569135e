/*
 * control: the control socket's framing and JSON checks, the server driven
 * from a poll loop the way the controller drives it (a silent peer never
 * blocks another, an overlong line is refused), the socket's mode, another
 * uid refused by the server, and the client's errors when nobody serves the
 * path.
 */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "common/json.h"
#include "runtime/controller/control.h"

/* Answers "echo" with the request's "value", fails "fail", refuses the rest. */
static int handler(void *ctx, const char *cmd, const cJSON *req, cJSON *resp, uid_t uid,
                   struct bottle_err *err)
{
    int *calls = ctx;
    (*calls)++;
    (void)uid;
    if (!strcmp(cmd, "echo")) {
        json_add_str(resp, "value", json_get_str(req, "value"));
        return 0;
    }
    if (!strcmp(cmd, "fail"))
        return err_set(err, EIO, "it failed on purpose");
    return err_set(err, EINVAL, "unknown command '%s'", cmd);
}

static void test_handle_line(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *want; /* exact response */
        int calls;        /* handler calls */
    } cases[] = {
        {"{\"cmd\":\"echo\",\"value\":\"hi\"}", "{\"ok\":true,\"value\":\"hi\"}", 1},
        {"{\"cmd\":\"echo\",\"value\":\"crlf\"}\r", "{\"ok\":true,\"value\":\"crlf\"}", 1},
        {"{\"cmd\":\"fail\"}", "{\"ok\":false,\"error\":\"it failed on purpose\"}", 1},
        {"{\"cmd\":\"what\"}", "{\"ok\":false,\"error\":\"unknown command 'what'\"}", 1},
        {"not json", "{\"ok\":false,\"error\":\"malformed request: not JSON\"}", 0},
        {"{\"cmd\":", "{\"ok\":false,\"error\":\"malformed request: not JSON\"}", 0},
        {"[1,2]",
         "{\"ok\":false,\"error\":\"malformed request: want a JSON object with a string "
         "\\\"cmd\\\"\"}",
         0},
        {"{\"cmd\":7}",
         "{\"ok\":false,\"error\":\"malformed request: want a JSON object with a string "
         "\\\"cmd\\\"\"}",
         0},
        {"{}",
         "{\"ok\":false,\"error\":\"malformed request: want a JSON object with a string "
         "\\\"cmd\\\"\"}",
         0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int calls = 0;
        char *out = control_handle_line(cases[i].line, strlen(cases[i].line), handler, &calls, 0);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(calls, cases[i].calls);
        free(out);
    }
    int calls = 0;
    char *out = control_handle_line("", 0, handler, &calls, 0);
    assert_non_null(strstr(out, "\"ok\":false"));
    assert_non_null(strstr(out, "empty request"));
    free(out);
}

struct fixture {
    char *dir;
    char *path;
    struct control_server srv;
    int calls;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->path = xasprintf("%s/b.sock", f->dir);
    struct bottle_err err = {0};
    if (control_server_open(&f->srv, f->path, handler, &f->calls, &err) < 0)
        fail_msg("open: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    control_server_close(&f->srv);
    rmdir(f->dir);
    free(f->dir);
    free(f->path);
    free(f);
    return 0;
}

/* One turn of the controller's loop. */
static void serve_once(struct fixture *f, int timeout_ms)
{
    struct pollfd fds[CONTROL_POLLFDS_MAX];
    size_t n = control_server_pollfds(&f->srv, fds);
    if (poll(fds, n, timeout_ms) > 0)
        control_server_dispatch(&f->srv, fds, n);
}

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* A client in a child process; returns its pid, its answer arrives on *rd. */
static pid_t client_child(const char *path, const char *value, int *rd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        cJSON *req = cJSON_CreateObject();
        json_add_str(req, "cmd", "echo");
        json_add_str(req, "value", value);
        cJSON *resp = NULL;
        struct bottle_err err = {0};
        int rc = control_request(path, req, 5000, &resp, &err);
        char *text = rc == 0 ? cJSON_PrintUnformatted(resp) : xasprintf("error: %s", err.msg);
        ssize_t w = write(p[1], text, strlen(text));
        _exit(w > 0 ? 0 : 1);
    }
    close(p[1]);
    *rd = p[0];
    return pid;
}

static void test_roundtrip_and_silent_peer(void **state)
{
    struct fixture *f = *state;
    struct stat sb;
    assert_int_equal(lstat(f->path, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);

    /* A peer that sends half a line and then nothing. */
    int silent = raw_connect(f->path);
    assert_int_equal(write(silent, "{\"cmd\":", 7), 7);
    int rd = -1;
    pid_t child = client_child(f->path, "through", &rd);
    int status = -1;
    for (int i = 0; i < 200 && waitpid(child, &status, WNOHANG) == 0; i++)
        serve_once(f, 25);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char out[512] = {0};
    assert_true(read(rd, out, sizeof(out) - 1) > 0);
    close(rd);
    assert_string_equal(out, "{\"ok\":true,\"value\":\"through\"}");

    /* The silent peer finishes its line later and gets its answer. */
    assert_int_equal(write(silent, "\"nope\"}\n", 8), 8);
    for (int i = 0; i < 10; i++)
        serve_once(f, 10);
    char ans[256] = {0};
    assert_true(read(silent, ans, sizeof(ans) - 1) > 0);
    assert_string_equal(ans, "{\"ok\":false,\"error\":\"unknown command 'nope'\"}\n");

    /* Two requests in one write: two answers, in order. */
    assert_int_equal(write(silent, "{\"cmd\":\"echo\",\"value\":\"a\"}\n{\"cmd\":\"fail\"}\n", 43),
                     43);
    for (int i = 0; i < 10; i++)
        serve_once(f, 10);
    memset(ans, 0, sizeof(ans));
    size_t got = 0;
    while (got < 2 * 20 && !strstr(ans, "purpose")) {
        ssize_t r = read(silent, ans + got, sizeof(ans) - 1 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_string_equal(ans, "{\"ok\":true,\"value\":\"a\"}\n"
                             "{\"ok\":false,\"error\":\"it failed on purpose\"}\n");
    close(silent);
}

static void test_overlong_line(void **state)
{
    struct fixture *f = *state;
    int fd = raw_connect(f->path);
    char big[CONTROL_LINE_MAX + 100];
    memset(big, 'x', sizeof(big));
    serve_once(f, 10); /* accept */
    ssize_t w = write(fd, big, sizeof(big));
    assert_true(w > 0);
    for (int i = 0; i < 10; i++)
        serve_once(f, 10);
    char ans[256] = {0};
    assert_true(read(fd, ans, sizeof(ans) - 1) > 0);
    assert_non_null(strstr(ans, "\"ok\":false"));
    assert_non_null(strstr(ans, "too long"));
    /* ... and is disconnected (a reset: the rest of its line was never read). */
    char more[16];
    ssize_t r = read(fd, more, sizeof(more));
    assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    close(fd);
    assert_int_equal(f->calls, 0);
}

static void test_paths_and_errors(void **state)
{
    struct fixture *f = *state;
    char *p = control_socket_path("/h", "slug-1");
    assert_string_equal(p, "/h/run/slug-1.sock");
    free(p);

    /* Nobody serves: ENOENT, and ECONNREFUSED for a stale socket file. */
    char *missing = xasprintf("%s/none.sock", f->dir);
    cJSON *req = cJSON_CreateObject();
    json_add_str(req, "cmd", "status");
    cJSON *resp = NULL;
    struct bottle_err err = {0};
    assert_int_equal(control_request(missing, req, 500, &resp, &err), -ENOENT);
    assert_null(resp);
    assert_non_null(strstr(err.msg, "no controller answers"));

    char *stale = xasprintf("%s/stale.sock", f->dir);
    struct control_server other;
    assert_int_equal(control_server_open(&other, stale, handler, NULL, &err), 0);
    close(other.listen_fd); /* a crashed controller: the file stays */
    other.listen_fd = -1;
    control_server_close(&other);
    err_clear(&err);
    assert_int_equal(control_request(stale, req, 500, &resp, &err), -ECONNREFUSED);
    /* A new server replaces the stale socket... */
    assert_int_equal(control_server_open(&other, stale, handler, NULL, &err), 0);
    control_server_close(&other);
    assert_int_equal(access(stale, F_OK), -1);
    /* ... but never a file that is not a socket. */
    testutil_write(stale, "keep me");
    err_clear(&err);
    assert_int_equal(control_server_open(&other, stale, handler, NULL, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "not a socket"));
    control_server_close(&other);
    assert_int_equal(access(stale, F_OK), 0);
    unlink(stale);

    /* A server that never answers: the client times out. */
    int quiet = f->srv.listen_fd; /* listening, never served */
    (void)quiet;
    err_clear(&err);
    assert_int_equal(control_request(f->path, req, 200, &resp, &err), -ETIMEDOUT);
    assert_non_null(strstr(err.msg, "did not answer"));
    cJSON_Delete(req);
    free(missing);
    free(stale);
}

/* Another uid is refused by the server itself, even when the socket's mode would let it in. */
static void test_other_uid_refused(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(f->path, 0666), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        cJSON *req = cJSON_CreateObject();
        json_add_str(req, "cmd", "echo");
        cJSON *resp = NULL;
        struct bottle_err err = {0};
        int rc = control_request(f->path, req, 5000, &resp, &err);
        char *text = rc == 0 ? cJSON_PrintUnformatted(resp) : xasprintf("error: %s", err.msg);
        ssize_t w = write(p[1], text, strlen(text));
        _exit(w > 0 ? 0 : 1);
    }
    close(p[1]);
    int status = -1;
    for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++)
        serve_once(f, 25);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char out[512] = {0};
    assert_true(read(p[0], out, sizeof(out) - 1) > 0);
    close(p[0]);
    assert_string_equal(
        out, "{\"ok\":false,\"error\":\"permission denied: only root may control a bottle\"}");
    assert_int_equal(f->calls, 0);
    chmod(f->dir, 0700);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handle_line),
        cmocka_unit_test_setup_teardown(test_roundtrip_and_silent_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_uid_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
