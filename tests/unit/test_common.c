#include "tests/unit/testutil.h"

#include <fcntl.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/spawn.h"

static void test_buf_printf_and_steal(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_append_str(&b, "a");
    buf_printf(&b, "-%d-%s", 42, "x");
    assert_string_equal(b.data, "a-42-x");
    assert_int_equal(b.len, 6);
    char *s = buf_steal(&b);
    assert_string_equal(s, "a-42-x");
    assert_null(b.data);
    free(s);
}

static void test_strv(void **state)
{
    (void)state;
    struct strv v = STRV_INIT;
    strv_push(&v, "one");
    strv_push(&v, "two");
    assert_int_equal(v.len, 2);
    assert_null(v.items[2]);
    assert_true(strv_contains(&v, "two"));
    assert_false(strv_contains(&v, "three"));
    strv_free(&v);
    strv_free(&v); /* freeing twice is a no-op */
}

static void test_err_prefix_and_exit_code(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    assert_int_equal(err_exit_code(&err), 0);
    int rc = err_set(&err, ENOENT, "missing %s", "x");
    assert_int_equal(rc, -ENOENT);
    err_prefix(&err, "loading");
    assert_string_equal(err.msg, "loading: missing x");
    assert_int_equal(err_exit_code(&err), 1);
    err_set_kind(&err, ERR_KIND_MANIFEST, EINVAL, "bad");
    assert_int_equal(err_exit_code(&err), 2);
    err_set_kind(&err, ERR_KIND_REFUSED, EPERM, "no");
    assert_int_equal(err_exit_code(&err), 3);
}

static void test_atomic_write_mode_and_content(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *path = fs_join(dir, "f.json");
    struct bottle_err err = {0};
    assert_int_equal(fs_write_atomic(path, "hello", 5, 0600, &err), 0);
    assert_int_equal(fs_write_atomic(path, "world!", 6, 0640, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    struct buf b = BUF_INIT;
    assert_int_equal(fs_read_file(path, 100, &b, &err), 0);
    assert_string_equal(b.data, "world!");
    assert_true(fs_read_file(path, 3, &b, &err) < 0);
    assert_non_null(strstr(err.msg, "larger than 3 bytes"));
    buf_free(&b);
    /* No temporary file is left behind. */
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);
    free(tmp);
    /* Writing into a missing directory fails with a message naming the path. */
    char *bad = fs_join(dir, "no/such/file");
    assert_true(fs_write_atomic(bad, "x", 1, 0600, &err) < 0);
    assert_non_null(strstr(err.msg, "no/such/file"));
    free(bad);
    testutil_rm_rf(dir);
    free(path);
    free(dir);
}

static void test_mkdir_p(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *deep = fs_join(dir, "a/b/c");
    struct bottle_err err = {0};
    assert_int_equal(fs_mkdir_p(deep, 0700, &err), 0);
    assert_true(fs_is_dir(deep));
    assert_int_equal(fs_mkdir_p(deep, 0700, &err), 0);
    testutil_rm_rf(dir);
    free(deep);
    free(dir);
}

static void test_spawn_captures_output_and_stderr_in_error(void **state)
{
    (void)state;
    struct spawn_result r;
    struct bottle_err err = {0};
    const char *ok_argv[] = {"sh", "-c", "read x; echo got:$x", NULL};
    struct spawn_opts o = {.timeout_ms = 5000, .stdin_data = "abc\n", .stdin_len = 4};
    assert_int_equal(spawn_run(ok_argv, &o, &r, &err), 0);
    assert_string_equal(r.out.data, "got:abc\n");
    spawn_result_free(&r);

    const char *bad_argv[] = {"sh", "-c", "echo boom >&2; exit 3", NULL};
    assert_true(spawn_run(bad_argv, NULL, &r, &err) < 0);
    assert_int_equal(r.exit_code, 3);
    assert_non_null(strstr(err.msg, "status 3"));
    assert_non_null(strstr(err.msg, "boom"));
    spawn_result_free(&r);

    const char *slow_argv[] = {"sleep", "5", NULL};
    struct spawn_opts t = {.timeout_ms = 100};
    assert_int_equal(spawn_run(slow_argv, &t, &r, &err), -ETIMEDOUT);
    assert_true(r.timed_out);
    spawn_result_free(&r);

    const char *missing_argv[] = {"/nonexistent/prog", NULL};
    assert_true(spawn_run(missing_argv, NULL, &r, &err) < 0);
    assert_int_equal(r.exit_code, 127);
    spawn_result_free(&r);

    /* A stream into a file stops at file_size_max, and the command fails. */
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    const char *big_argv[] = {"head", "-c", "1000000", "/dev/zero", NULL};
    struct spawn_opts f = {.timeout_ms = 5000, .stdout_fd = fileno(tmp), .file_size_max = 65536};
    assert_true(spawn_run(big_argv, &f, &r, &err) < 0);
    struct stat sb;
    assert_int_equal(fstat(fileno(tmp), &sb), 0);
    assert_true(sb.st_size <= 65536);
    spawn_result_free(&r);
    f.file_size_max = 0; /* and without the limit it is whole */
    assert_int_equal(ftruncate(fileno(tmp), 0), 0);
    assert_int_equal(lseek(fileno(tmp), 0, SEEK_SET), 0);
    assert_int_equal(spawn_run(big_argv, &f, &r, &err), 0);
    assert_int_equal(fstat(fileno(tmp), &sb), 0);
    assert_int_equal(sb.st_size, 1000000);
    spawn_result_free(&r);
    fclose(tmp);
}

static void test_log_json_and_level(void **state)
{
    (void)state;
    char *dir = testutil_mkdtemp();
    char *path = fs_join(dir, "log");
    FILE *f = fopen(path, "w+");
    log_set_output(f);
    log_set_json(true);
    log_set_level(LOG_LVL_INFO);
    log_debug("hidden", NULL);
    log_info("hello \"x\"", "k", "v w", NULL);
    log_set_json(false);
    log_warn("plain", "key", "a b", NULL);
    fflush(f);
    log_set_output(NULL);
    rewind(f);
    char line[512];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "\"msg\":\"hello \\\"x\\\"\""));
    assert_non_null(strstr(line, "\"k\":\"v w\""));
    assert_non_null(strstr(line, "\"level\":\"info\""));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, "level=warn msg=plain key=\"a b\""));
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_int_equal(log_level_parse("debug"), LOG_LVL_DEBUG);
    assert_int_equal(log_level_parse("loud"), -1);
    testutil_rm_rf(dir);
    free(path);
    free(dir);
}

static void test_json_pretty_is_stable(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    json_add_str(o, "b", "x\"y");
    json_add_num(o, "a", 3);
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToObject(o, "list", arr);
    char *t = json_to_text(o, true);
    assert_string_equal(t, "{\n  \"b\": \"x\\\"y\",\n  \"a\": 3,\n  \"list\": []\n}\n");
    free(t);
    cJSON_Delete(o);
    struct bottle_err err = {0};
    assert_null(json_parse("{\"a\":", 5, "cfg", &err));
    assert_non_null(strstr(err.msg, "cfg: invalid JSON"));
}

/* Suggestions for misspelt names: near typos only, never for short or unrelated words. */
static void test_strv_closest(void **state)
{
    (void)state;
    struct strv v = STRV_INIT;
    strv_push(&v, "claude");
    strv_push(&v, "codex");
    strv_push(&v, "curl");
    assert_string_equal(strv_closest(&v, "claud"), "claude");
    assert_string_equal(strv_closest(&v, "clade"), "claude");
    assert_string_equal(strv_closest(&v, "codx"), "codex");
    assert_string_equal(strv_closest(&v, "crul"), "curl");
    assert_null(strv_closest(&v, "zzz"));
    assert_null(strv_closest(&v, "c"));
    assert_null(strv_closest(&v, "aider"));
    strv_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_printf_and_steal),
        cmocka_unit_test(test_strv),
        cmocka_unit_test(test_err_prefix_and_exit_code),
        cmocka_unit_test(test_atomic_write_mode_and_content),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_spawn_captures_output_and_stderr_in_error),
        cmocka_unit_test(test_log_json_and_level),
        cmocka_unit_test(test_json_pretty_is_stable),
        cmocka_unit_test(test_strv_closest),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
