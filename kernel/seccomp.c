/*
 * seccomp — see seccomp.h. Built on libseccomp; the Docker rendering walks
 * the same tables so the two can never disagree.
 */
#include "kernel/seccomp.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "common/json.h"

static const char *const denied_syscalls[] = {
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
    NULL,
};

/*
 * CLONE_NEWTIME (0x80) is absent on purpose: clone() keeps the exit signal in
 * its low byte, so that bit is not a flag there (only clone3, denied, has it).
 */
static const unsigned long clone_denied_flags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET, 0,
};

/*
 * ioctl requests that act outside the bottle through a terminal: TIOCSTI
 * pushes bytes into a terminal's input (keystrokes for whatever reads it
 * next, the operator's shell included), TIOCLINUX pastes the console
 * selection. Compared on the low 32 bits, as the kernel reads the request.
 */
static const struct seccomp_ioctl_rule ioctl_denied[] = {
    {TIOCSTI, "TIOCSTI"},
    {TIOCLINUX, "TIOCLINUX"},
    {0, NULL},
};

#define IOCTL_REQUEST_MASK 0xffffffffUL

static const char *clone_flag_name(unsigned long bit)
{
    switch (bit) {
    case CLONE_NEWNS:
        return "CLONE_NEWNS";
    case CLONE_NEWCGROUP:
        return "CLONE_NEWCGROUP";
    case CLONE_NEWUTS:
        return "CLONE_NEWUTS";
    case CLONE_NEWIPC:
        return "CLONE_NEWIPC";
    case CLONE_NEWUSER:
        return "CLONE_NEWUSER";
    case CLONE_NEWPID:
        return "CLONE_NEWPID";
    case CLONE_NEWNET:
        return "CLONE_NEWNET";
    default:
        return "?";
    }
}

/*
 * Setting the setuid or setgid bit. A file the agent leaves in the workspace with either bit
 * runs with the agent's uid or gid for whoever executes it on the host. The mode is a plain
 * argument of every call that sets or creates one, so a masked comparison sees it: chmod and
 * its relatives, and creation by open/openat (whatever the flags: O_CREAT and O_TMPFILE use
 * the mode, and without them libc passes 0), creat, mkdir and mknod. openat2 takes its mode in
 * a struct seccomp cannot read: it fails with ENOSYS and callers fall back to openat.
 */
static const unsigned long mode_denied_bits[] = {S_ISUID, S_ISGID, 0};

static const struct seccomp_mode_rule mode_rules[] = {
    {"chmod", 1}, {"fchmod", 1}, {"fchmodat", 2}, {"fchmodat2", 2}, {"open", 2},    {"openat", 3},
    {"creat", 1}, {"mkdir", 1},  {"mkdirat", 2},  {"mknod", 1},     {"mknodat", 2}, {NULL, 0},
};

static const char *mode_bit_name(unsigned long bit)
{
    return bit == S_ISUID ? "S_ISUID" : "S_ISGID";
}

const struct seccomp_mode_rule *seccomp_mode_rules(void)
{
    return mode_rules;
}

const char *const *seccomp_denied_syscalls(void)
{
    return denied_syscalls;
}

const unsigned long *seccomp_clone_denied_flags(void)
{
    return clone_denied_flags;
}

const struct seccomp_ioctl_rule *seccomp_ioctl_denied_requests(void)
{
    return ioctl_denied;
}

static bool in_base_list(const char *name)
{
    for (size_t i = 0; denied_syscalls[i]; i++) {
        if (strcmp(denied_syscalls[i], name) == 0)
            return true;
    }
    return false;
}

/* Extra names that add something: not in the base list, not clone3 or openat2 (ENOSYS
 * already), no repeats. */
static void extra_names(const struct strv *extra, struct strv *out)
{
    for (size_t i = 0; extra && i < extra->len; i++) {
        const char *n = extra->items[i];
        if (in_base_list(n) || strcmp(n, "clone3") == 0 || strcmp(n, "openat2") == 0 ||
            strv_contains(out, n))
            continue;
        strv_push(out, n);
    }
}

int seccomp_profile_check(const struct strv *extra, struct bottle_err *err)
{
    for (size_t i = 0; extra && i < extra->len; i++) {
        const char *n = extra->items[i];
        if (seccomp_syscall_resolve_name(n) == __NR_SCMP_ERROR)
            return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL,
                                "seccomp: '%s' is not a syscall on this architecture "
                                "(names as in syscalls(2), e.g. 'ptrace')",
                                n);
    }
    return 0;
}

static bool extra_denies_clone(const struct strv *extras)
{
    return strv_contains(extras, "clone");
}

static bool extra_denies_ioctl(const struct strv *extras)
{
    return strv_contains(extras, "ioctl");
}

int seccomp_profile_describe(const struct strv *extra, struct buf *out, struct bottle_err *err)
{
    int rc = seccomp_profile_check(extra, err);
    if (rc < 0)
        return rc;
    struct strv extras = STRV_INIT;
    extra_names(extra, &extras);
    buf_append_str(out, "default: allow\nother architectures: kill process\n");
    for (size_t i = 0; denied_syscalls[i]; i++)
        buf_printf(out, "%s: EPERM\n", denied_syscalls[i]);
    if (extra_denies_clone(&extras)) {
        buf_append_str(out, "clone: EPERM (manifest)\n");
    } else {
        for (size_t i = 0; clone_denied_flags[i]; i++)
            buf_printf(out, "clone with %s: EPERM\n", clone_flag_name(clone_denied_flags[i]));
    }
    buf_append_str(out, "clone3: ENOSYS\n");
    if (extra_denies_ioctl(&extras)) {
        buf_append_str(out, "ioctl: EPERM (manifest)\n");
    } else {
        for (size_t i = 0; ioctl_denied[i].name; i++)
            buf_printf(out, "ioctl %s: EPERM\n", ioctl_denied[i].name);
    }
    for (size_t i = 0; mode_rules[i].name; i++) {
        if (strv_contains(&extras, mode_rules[i].name))
            continue; /* denied whole below */
        for (size_t b = 0; mode_denied_bits[b]; b++)
            buf_printf(out, "%s with %s in the mode: EPERM\n", mode_rules[i].name,
                       mode_bit_name(mode_denied_bits[b]));
    }
    buf_append_str(out, "openat2: ENOSYS\n");
    for (size_t i = 0; i < extras.len; i++) {
        if (strcmp(extras.items[i], "clone") != 0 && strcmp(extras.items[i], "ioctl") != 0)
            buf_printf(out, "%s: EPERM (manifest)\n", extras.items[i]);
    }
    strv_free(&extras);
    return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, bool required,
                    struct bottle_err *err)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) {
        /* A base-list syscall this architecture lacks cannot be called either. */
        if (!required)
            return 0;
        return err_set_kind(err, ERR_KIND_MANIFEST, EINVAL, "seccomp: unknown syscall '%s'", name);
    }
    int rc = seccomp_rule_add(ctx, action, nr, 0);
    if (rc < 0)
        return err_set(err, -rc, "seccomp: cannot add the rule for %s: %s", name, strerror(-rc));
    return 0;
}

/* One rule per syscall and bit (libseccomp ANDs the conditions of one rule). */
static int add_mode_rules(scmp_filter_ctx ctx, const struct strv *extras, struct bottle_err *err)
{
    for (size_t i = 0; mode_rules[i].name; i++) {
        const char *name = mode_rules[i].name;
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR || strv_contains(extras, name))
            continue; /* absent on this architecture, or denied whole by the manifest */
        for (size_t b = 0; mode_denied_bits[b]; b++) {
            scmp_datum_t bit = mode_denied_bits[b];
            struct scmp_arg_cmp cmp = {mode_rules[i].arg, SCMP_CMP_MASKED_EQ, bit, bit};
            int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1, &cmp);
            if (rc < 0)
                return err_set(err, -rc, "seccomp: cannot add the %s rule for %s: %s",
                               mode_bit_name(bit), name, strerror(-rc));
        }
    }
    return 0;
}

static int build_filter(const struct strv *extra, scmp_filter_ctx *out, struct bottle_err *err)
{
    *out = NULL;
    int rc = seccomp_profile_check(extra, err);
    if (rc < 0)
        return rc;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return err_set(err, ENOMEM, "seccomp: cannot create a filter");
    struct strv extras = STRV_INIT;
    extra_names(extra, &extras);
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (rc < 0) {
        rc = err_set(err, -rc, "seccomp: cannot set filter attributes: %s", strerror(-rc));
        goto out;
    }
    for (size_t i = 0; denied_syscalls[i]; i++) {
        if ((rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), denied_syscalls[i], false, err)) < 0)
            goto out;
    }
    if (extra_denies_clone(&extras)) {
        rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", true, err);
    } else {
        for (size_t i = 0; clone_denied_flags[i]; i++) {
            scmp_datum_t bit = clone_denied_flags[i];
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
            if (rc < 0) {
                rc = err_set(err, -rc, "seccomp: cannot add the clone rule: %s", strerror(-rc));
                goto out;
            }
        }
    }
    if (rc < 0)
        goto out;
    if ((rc = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", false, err)) < 0)
        goto out;
    if (extra_denies_ioctl(&extras)) {
        rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", true, err);
    } else {
        for (size_t i = 0; ioctl_denied[i].name; i++) {
            rc = seccomp_rule_add(
                ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                SCMP_A1(SCMP_CMP_MASKED_EQ, IOCTL_REQUEST_MASK, ioctl_denied[i].request));
            if (rc < 0) {
                rc = err_set(err, -rc, "seccomp: cannot add the ioctl rule: %s", strerror(-rc));
                break;
            }
        }
    }
    if (rc < 0)
        goto out;
    if ((rc = add_mode_rules(ctx, &extras, err)) < 0)
        goto out;
    if ((rc = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "openat2", false, err)) < 0)
        goto out;
    for (size_t i = 0; i < extras.len; i++) {
        if (strcmp(extras.items[i], "clone") == 0 || strcmp(extras.items[i], "ioctl") == 0)
            continue;
        if ((rc = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), extras.items[i], true, err)) < 0)
            goto out;
    }
out:
    strv_free(&extras);
    if (rc < 0) {
        seccomp_release(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int seccomp_profile_apply(const struct strv *extra, struct bottle_err *err)
{
    scmp_filter_ctx ctx = NULL;
    int rc = build_filter(extra, &ctx, err);
    if (rc < 0)
        return rc;
    rc = seccomp_load(ctx);
    seccomp_release(ctx);
    if (rc < 0)
        return err_set(err, -rc, "seccomp: cannot load the filter: %s", strerror(-rc));
    return 0;
}

/* Docker's architecture names for the native one; others are refused (bad arch). */
static const char *docker_arch_name(uint32_t arch)
{
    switch (arch) {
    case SCMP_ARCH_X86_64:
        return "SCMP_ARCH_X86_64";
    case SCMP_ARCH_AARCH64:
        return "SCMP_ARCH_AARCH64";
    case SCMP_ARCH_X86:
        return "SCMP_ARCH_X86";
    case SCMP_ARCH_ARM:
        return "SCMP_ARCH_ARM";
    case SCMP_ARCH_RISCV64:
        return "SCMP_ARCH_RISCV64";
    case SCMP_ARCH_PPC64LE:
        return "SCMP_ARCH_PPC64LE";
    case SCMP_ARCH_S390X:
        return "SCMP_ARCH_S390X";
    default:
        return NULL;
    }
}

static cJSON *docker_rule(const char *action, int errno_ret)
{
    cJSON *rule = cJSON_CreateObject();
    cJSON_AddItemToObject(rule, "names", cJSON_CreateArray());
    json_add_str(rule, "action", action);
    json_add_num(rule, "errnoRet", errno_ret);
    return rule;
}

/* The mode rules, one per argument position and bit: the names in a Docker rule share its
 * args, and its args are ANDed. */
static void docker_mode_rules(cJSON *rules, const struct strv *extras)
{
    for (unsigned arg = 1; arg <= 3; arg++) {
        for (size_t b = 0; mode_denied_bits[b]; b++) {
            cJSON *rule = docker_rule("SCMP_ACT_ERRNO", EPERM);
            cJSON *names = cJSON_GetObjectItem(rule, "names");
            for (size_t i = 0; mode_rules[i].name; i++)
                if (mode_rules[i].arg == arg && !strv_contains(extras, mode_rules[i].name))
                    cJSON_AddItemToArray(names, cJSON_CreateString(mode_rules[i].name));
            if (cJSON_GetArraySize(names) == 0) {
                cJSON_Delete(rule);
                continue;
            }
            cJSON *args = cJSON_AddArrayToObject(rule, "args");
            cJSON *a = cJSON_CreateObject();
            json_add_num(a, "index", arg);
            json_add_num(a, "value", (double)mode_denied_bits[b]);
            json_add_num(a, "valueTwo", (double)mode_denied_bits[b]);
            json_add_str(a, "op", "SCMP_CMP_MASKED_EQ");
            cJSON_AddItemToArray(args, a);
            json_add_str(rule, "comment", mode_bit_name(mode_denied_bits[b]));
            cJSON_AddItemToArray(rules, rule);
        }
    }
}

cJSON *seccomp_profile_docker_json(const struct strv *extra, struct bottle_err *err)
{
    if (seccomp_profile_check(extra, err) < 0)
        return NULL;
    struct strv extras = STRV_INIT;
    extra_names(extra, &extras);
    cJSON *doc = cJSON_CreateObject();
    json_add_str(doc, "defaultAction", "SCMP_ACT_ALLOW");
    cJSON *arches = cJSON_AddArrayToObject(doc, "architectures");
    const char *arch = docker_arch_name(seccomp_arch_native());
    if (arch)
        cJSON_AddItemToArray(arches, cJSON_CreateString(arch));
    cJSON *rules = cJSON_AddArrayToObject(doc, "syscalls");

    cJSON *deny = docker_rule("SCMP_ACT_ERRNO", EPERM);
    cJSON *names = cJSON_GetObjectItem(deny, "names");
    for (size_t i = 0; denied_syscalls[i]; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(denied_syscalls[i]));
    for (size_t i = 0; i < extras.len; i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(extras.items[i]));
    cJSON_AddItemToArray(rules, deny);

    if (!extra_denies_clone(&extras)) {
        /* One rule per bit: Docker ANDs the args of one rule, the bits must be ORed. */
        for (size_t i = 0; clone_denied_flags[i]; i++) {
            cJSON *rule = docker_rule("SCMP_ACT_ERRNO", EPERM);
            cJSON_AddItemToArray(cJSON_GetObjectItem(rule, "names"), cJSON_CreateString("clone"));
            cJSON *args = cJSON_AddArrayToObject(rule, "args");
            cJSON *arg = cJSON_CreateObject();
            json_add_num(arg, "index", 0);
            json_add_num(arg, "value", (double)clone_denied_flags[i]);
            json_add_num(arg, "valueTwo", (double)clone_denied_flags[i]);
            json_add_str(arg, "op", "SCMP_CMP_MASKED_EQ");
            cJSON_AddItemToArray(args, arg);
            json_add_str(rule, "comment", clone_flag_name(clone_denied_flags[i]));
            cJSON_AddItemToArray(rules, rule);
        }
    }
    if (!extra_denies_ioctl(&extras)) {
        /* Docker's masked compare: "value" is the mask, "valueTwo" what the masked arg must be. */
        for (size_t i = 0; ioctl_denied[i].name; i++) {
            cJSON *rule = docker_rule("SCMP_ACT_ERRNO", EPERM);
            cJSON_AddItemToArray(cJSON_GetObjectItem(rule, "names"), cJSON_CreateString("ioctl"));
            cJSON *args = cJSON_AddArrayToObject(rule, "args");
            cJSON *arg = cJSON_CreateObject();
            json_add_num(arg, "index", 1);
            json_add_num(arg, "value", (double)IOCTL_REQUEST_MASK);
            json_add_num(arg, "valueTwo", (double)ioctl_denied[i].request);
            json_add_str(arg, "op", "SCMP_CMP_MASKED_EQ");
            cJSON_AddItemToArray(args, arg);
            json_add_str(rule, "comment", ioctl_denied[i].name);
            cJSON_AddItemToArray(rules, rule);
        }
    }
    cJSON *clone3 = docker_rule("SCMP_ACT_ERRNO", ENOSYS);
    cJSON_AddItemToArray(cJSON_GetObjectItem(clone3, "names"), cJSON_CreateString("clone3"));
    cJSON_AddItemToArray(cJSON_GetObjectItem(clone3, "names"), cJSON_CreateString("openat2"));
    cJSON_AddItemToArray(rules, clone3);
    docker_mode_rules(rules, &extras);
    strv_free(&extras);
    return doc;
}
