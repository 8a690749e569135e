/*
 * seccomp profile rendering: the deny list, the per-bit clone rules, clone3
 * with ENOSYS, the terminal ioctls, the setuid/setgid mode rules and openat2
 * with ENOSYS, manifest extras, unknown names refused, and the Docker JSON
 * profile's shape. Loading the filter is tested in
 * test_kernel_seccomp.c.
 */
#include "testutil.h"

#include <linux/sched.h>
#include <sys/ioctl.h>

#include "common/json.h"
#include "kernel/seccomp.h"

static const char *const must_deny[] = {
    "ptrace",
    "mount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "pivot_root",
    "chroot",
    "bpf",
    "perf_event_open",
    "unshare",
    "setns",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "userfaultfd",
    "open_by_handle_at",
    "name_to_handle_at",
    "reboot",
    "swapon",
    "swapoff",
};

static bool listed(const char *name)
{
    for (const char *const *p = seccomp_denied_syscalls(); *p; p++) {
        if (strcmp(*p, name) == 0)
            return true;
    }
    return false;
}

static void test_base_list(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(must_deny) / sizeof(must_deny[0]); i++) {
        if (!listed(must_deny[i]))
            fail_msg("%s is not denied", must_deny[i]);
    }
    assert_false(listed("clone"));  /* masked rules, not a blanket deny */
    assert_false(listed("clone3")); /* ENOSYS, not EPERM */
    assert_false(listed("read"));
    size_t bits = 0;
    unsigned long all = 0;
    for (const unsigned long *b = seccomp_clone_denied_flags(); *b; b++, bits++)
        all |= *b;
    assert_int_equal(bits, 7);
    assert_int_equal(all, CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                              CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET);
}

static void test_describe(void **state)
{
    (void)state;
    struct strv extra = STRV_INIT;
    strv_push(&extra, "acct");
    strv_push(&extra, "ptrace"); /* already denied: not repeated */
    struct buf out = BUF_INIT;
    struct bottle_err err;
    err_clear(&err);
    assert_int_equal(seccomp_profile_describe(&extra, &out, &err), 0);
    assert_non_null(strstr(out.data, "default: allow\n"));
    assert_non_null(strstr(out.data, "other architectures: kill process\n"));
    assert_non_null(strstr(out.data, "\nptrace: EPERM\n"));
    assert_non_null(strstr(out.data, "\nclone with CLONE_NEWUSER: EPERM\n"));
    assert_non_null(strstr(out.data, "\nclone with CLONE_NEWNET: EPERM\n"));
    assert_non_null(strstr(out.data, "\nclone3: ENOSYS\n"));
    assert_non_null(strstr(out.data, "\nioctl TIOCSTI: EPERM\n"));
    assert_non_null(strstr(out.data, "\nioctl TIOCLINUX: EPERM\n"));
    assert_non_null(strstr(out.data, "\nacct: EPERM (manifest)\n"));
    assert_null(strstr(out.data, "ptrace: EPERM (manifest)"));
    buf_free(&out);
    strv_free(&extra);
}

static void test_unknown_extra_refused(void **state)
{
    (void)state;
    struct strv extra = STRV_INIT;
    strv_push(&extra, "not_a_syscall");
    struct bottle_err err;
    err_clear(&err);
    assert_int_equal(seccomp_profile_check(&extra, &err), -EINVAL);
    assert_int_equal(err.kind, ERR_KIND_MANIFEST);
    assert_string_equal(err.msg, "seccomp: 'not_a_syscall' is not a syscall on this architecture "
                                 "(names as in syscalls(2), e.g. 'ptrace')");
    err_clear(&err);
    assert_null(seccomp_profile_docker_json(&extra, &err));
    assert_int_equal(err.code, EINVAL);
    err_clear(&err);
    assert_int_equal(seccomp_profile_apply(&extra, &err), -EINVAL);
    strv_free(&extra);
}

static cJSON *find_rule(cJSON *rules, const char *name, int nth)
{
    cJSON *rule;
    cJSON_ArrayForEach(rule, rules)
    {
        cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(rule, "names"))
        {
            if (strcmp(n->valuestring, name) == 0 && nth-- == 0)
                return rule;
        }
    }
    return NULL;
}

static void test_docker_json(void **state)
{
    (void)state;
    struct strv extra = STRV_INIT;
    strv_push(&extra, "acct");
    struct bottle_err err;
    err_clear(&err);
    cJSON *doc = seccomp_profile_docker_json(&extra, &err);
    assert_non_null(doc);
    assert_string_equal(json_get_str(doc, "defaultAction"), "SCMP_ACT_ALLOW");
    cJSON *arches = cJSON_GetObjectItem(doc, "architectures");
    assert_true(cJSON_IsArray(arches));
#if defined(__x86_64__)
    assert_int_equal(cJSON_GetArraySize(arches), 1);
    assert_string_equal(cJSON_GetArrayItem(arches, 0)->valuestring, "SCMP_ARCH_X86_64");
#endif
    cJSON *rules = cJSON_GetObjectItem(doc, "syscalls");
    assert_true(cJSON_IsArray(rules));

    for (size_t i = 0; i < sizeof(must_deny) / sizeof(must_deny[0]); i++) {
        cJSON *r = find_rule(rules, must_deny[i], 0);
        if (!r)
            fail_msg("%s missing from the Docker profile", must_deny[i]);
        assert_string_equal(json_get_str(r, "action"), "SCMP_ACT_ERRNO");
        assert_int_equal((int)json_get_num(r, "errnoRet", -1), EPERM);
        assert_null(cJSON_GetObjectItem(r, "args"));
    }
    cJSON *acct = find_rule(rules, "acct", 0);
    assert_non_null(acct);
    assert_int_equal((int)json_get_num(acct, "errnoRet", -1), EPERM);

    unsigned long seen = 0;
    for (int i = 0; i < 7; i++) {
        cJSON *r = find_rule(rules, "clone", i);
        assert_non_null(r);
        assert_int_equal((int)json_get_num(r, "errnoRet", -1), EPERM);
        cJSON *args = cJSON_GetObjectItem(r, "args");
        assert_int_equal(cJSON_GetArraySize(args), 1);
        cJSON *a = cJSON_GetArrayItem(args, 0);
        assert_int_equal((int)json_get_num(a, "index", -1), 0);
        assert_string_equal(json_get_str(a, "op"), "SCMP_CMP_MASKED_EQ");
        unsigned long v = (unsigned long)json_get_num(a, "value", 0);
        assert_int_equal(v, (unsigned long)json_get_num(a, "valueTwo", 0));
        assert_int_equal(__builtin_popcountl(v), 1);
        seen |= v;
    }
    assert_null(find_rule(rules, "clone", 7));
    assert_int_equal(seen, CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                               CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET);
    cJSON *c3 = find_rule(rules, "clone3", 0);
    assert_non_null(c3);
    assert_int_equal((int)json_get_num(c3, "errnoRet", -1), ENOSYS);

    /* ioctl: one rule per request, the request's low 32 bits compared (Docker: value is the
     * mask, valueTwo what the masked argument must equal). */
    static const unsigned long requests[] = {TIOCSTI, TIOCLINUX};
    for (int i = 0; i < 2; i++) {
        cJSON *r = find_rule(rules, "ioctl", i);
        assert_non_null(r);
        assert_string_equal(json_get_str(r, "action"), "SCMP_ACT_ERRNO");
        assert_int_equal((int)json_get_num(r, "errnoRet", -1), EPERM);
        cJSON *args = cJSON_GetObjectItem(r, "args");
        assert_int_equal(cJSON_GetArraySize(args), 1);
        cJSON *a = cJSON_GetArrayItem(args, 0);
        assert_int_equal((int)json_get_num(a, "index", -1), 1);
        assert_string_equal(json_get_str(a, "op"), "SCMP_CMP_MASKED_EQ");
        assert_int_equal((unsigned long)json_get_num(a, "value", 0), 0xffffffffUL);
        assert_int_equal((unsigned long)json_get_num(a, "valueTwo", 0), requests[i]);
    }
    assert_null(find_rule(rules, "ioctl", 2));

    /* It is valid JSON text Docker can read back. */
    char *text = json_to_text(doc, true);
    cJSON *back = json_parse(text, strlen(text), "profile", &err);
    assert_non_null(back);
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(doc);
    strv_free(&extra);
}

static void test_ioctl_denied_outright(void **state)
{
    (void)state;
    struct strv extra = STRV_INIT;
    strv_push(&extra, "ioctl");
    struct bottle_err err;
    err_clear(&err);
    cJSON *doc = seccomp_profile_docker_json(&extra, &err);
    cJSON *rules = cJSON_GetObjectItem(doc, "syscalls");
    cJSON *r = find_rule(rules, "ioctl", 0);
    assert_non_null(r);
    assert_null(cJSON_GetObjectItem(r, "args"));
    assert_null(find_rule(rules, "ioctl", 1));
    cJSON_Delete(doc);
    struct buf out = BUF_INIT;
    assert_int_equal(seccomp_profile_describe(&extra, &out, &err), 0);
    assert_non_null(strstr(out.data, "\nioctl: EPERM (manifest)\n"));
    assert_null(strstr(out.data, "TIOCSTI"));
    buf_free(&out);
    strv_free(&extra);
}

static void test_mode_rules_listed(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        unsigned arg;
    } want[] = {{"chmod", 1},   {"fchmod", 1}, {"fchmodat", 2}, {"fchmodat2", 2},
                {"open", 2},    {"openat", 3}, {"creat", 1},    {"mkdir", 1},
                {"mkdirat", 2}, {"mknod", 1},  {"mknodat", 2}};
    const struct seccomp_mode_rule *r = seccomp_mode_rules();
    size_t n = 0;
    for (; r[n].name; n++) {
        assert_string_equal(r[n].name, want[n].name);
        assert_int_equal(r[n].arg, want[n].arg);
    }
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    struct buf out = BUF_INIT;
    struct bottle_err err = {0};
    struct strv extra = STRV_INIT;
    strv_push(&extra, "mknod"); /* denied whole: no masked line for it */
    strv_push(&extra, "openat2");
    assert_int_equal(seccomp_profile_describe(&extra, &out, &err), 0);
    assert_non_null(strstr(out.data, "\nchmod with S_ISUID in the mode: EPERM\n"));
    assert_non_null(strstr(out.data, "\nopenat with S_ISGID in the mode: EPERM\n"));
    assert_non_null(strstr(out.data, "\nmknodat with S_ISUID in the mode: EPERM\n"));
    assert_null(strstr(out.data, "mknod with"));
    assert_non_null(strstr(out.data, "\nmknod: EPERM (manifest)\n"));
    assert_non_null(strstr(out.data, "\nopenat2: ENOSYS\n"));
    assert_null(strstr(out.data, "openat2: EPERM"));
    buf_free(&out);
    strv_free(&extra);
}

/* Docker: one rule per argument position and bit, the names sharing it; openat2 ENOSYS. */
static void test_docker_json_mode_rules(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct strv extra = STRV_INIT;
    strv_push(&extra, "creat");
    cJSON *doc = seccomp_profile_docker_json(&extra, &err);
    assert_non_null(doc);
    cJSON *rules = cJSON_GetObjectItem(doc, "syscalls");
    const struct seccomp_mode_rule *m = seccomp_mode_rules();
    for (size_t i = 0; m[i].name; i++) {
        if (strcmp(m[i].name, "creat") == 0) {
            /* denied whole by the manifest: in the plain deny rule, in no masked one */
            cJSON *r = find_rule(rules, "creat", 0);
            assert_null(cJSON_GetObjectItem(r, "args"));
            assert_null(find_rule(rules, "creat", 1));
            continue;
        }
        unsigned long bits = 0;
        for (int nth = 0; nth < 2; nth++) {
            cJSON *r = find_rule(rules, m[i].name, nth);
            if (!r)
                fail_msg("%s: masked rule %d missing", m[i].name, nth);
            assert_string_equal(json_get_str(r, "action"), "SCMP_ACT_ERRNO");
            assert_int_equal((int)json_get_num(r, "errnoRet", -1), EPERM);
            cJSON *args = cJSON_GetObjectItem(r, "args");
            assert_int_equal(cJSON_GetArraySize(args), 1);
            cJSON *a = cJSON_GetArrayItem(args, 0);
            assert_int_equal((int)json_get_num(a, "index", -1), (int)m[i].arg);
            assert_string_equal(json_get_str(a, "op"), "SCMP_CMP_MASKED_EQ");
            unsigned long v = (unsigned long)json_get_num(a, "value", 0);
            assert_int_equal(v, (unsigned long)json_get_num(a, "valueTwo", 0));
            bits |= v;
        }
        assert_null(find_rule(rules, m[i].name, 2));
        assert_int_equal(bits, S_ISUID | S_ISGID);
    }
    cJSON *o2 = find_rule(rules, "openat2", 0);
    assert_non_null(o2);
    assert_int_equal((int)json_get_num(o2, "errnoRet", -1), ENOSYS);
    assert_null(cJSON_GetObjectItem(o2, "args"));
    cJSON_Delete(doc);
    strv_free(&extra);
}

static void test_docker_json_clone_denied_outright(void **state)
{
    (void)state;
    struct strv extra = STRV_INIT;
    strv_push(&extra, "clone");
    struct bottle_err err;
    err_clear(&err);
    cJSON *doc = seccomp_profile_docker_json(&extra, &err);
    cJSON *rules = cJSON_GetObjectItem(doc, "syscalls");
    cJSON *r = find_rule(rules, "clone", 0);
    assert_non_null(r);
    assert_null(cJSON_GetObjectItem(r, "args"));
    assert_null(find_rule(rules, "clone", 1));
    cJSON_Delete(doc);
    strv_free(&extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_list),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_unknown_extra_refused),
        cmocka_unit_test(test_docker_json),
        cmocka_unit_test(test_docker_json_clone_denied_outright),
        cmocka_unit_test(test_ioctl_denied_outright),
        cmocka_unit_test(test_mode_rules_listed),
        cmocka_unit_test(test_docker_json_mode_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
