/*
 * seccomp — the agent's syscall filter, and the same policy as a Docker
 * seccomp profile.
 *
 * Default allow; the syscalls an agent could use to leave its bottle or
 * reach the kernel's attack surface fail with EPERM: namespaces (unshare,
 * setns, clone with any CLONE_NEW* flag), mounts (old and new API),
 * pivot_root, chroot, bpf, perf_event_open, ptrace, keyrings, io_uring,
 * kexec, modules, userfaultfd, file handles, reboot and swap. clone3 fails
 * with ENOSYS (its flags live in memory seccomp cannot read; libc falls back
 * to clone, which is checked). ioctl fails with EPERM for the requests that
 * reach a terminal's input (TIOCSTI, TIOCLINUX). Setting a setuid or setgid
 * bit fails with EPERM in every call that sets or creates a mode (chmod,
 * fchmod, fchmodat, fchmodat2, open, openat, creat, mkdir, mkdirat, mknod,
 * mknodat); openat2, whose mode seccomp cannot read, fails with ENOSYS. Any
 * other architecture's syscalls kill the process. The manifest's `seccomp`
 * list adds names, denied with EPERM.
 *
 * This module never loosens the base list: extra names only add denials.
 */
#ifndef BOTTLE_KERNEL_SECCOMP_H
#define BOTTLE_KERNEL_SECCOMP_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* A syscall whose mode argument (index arg) may not carry S_ISUID or S_ISGID. */
struct seccomp_mode_rule {
    const char *name;
    unsigned arg;
};

/* The calls that set or create a mode, NULL-terminated (EPERM with a setuid/setgid bit). */
const struct seccomp_mode_rule *seccomp_mode_rules(void);

/* The base deny list (EPERM), NULL-terminated; clone and clone3 are separate rules. */
const char *const *seccomp_denied_syscalls(void);

/* The CLONE_NEW* bits whose presence in clone's flags is denied, 0-terminated. */
const unsigned long *seccomp_clone_denied_flags(void);

/* The ioctl requests denied with EPERM (low 32 bits compared); ends with a NULL name. */
struct seccomp_ioctl_rule {
    unsigned long request;
    const char *name;
};
const struct seccomp_ioctl_rule *seccomp_ioctl_denied_requests(void);

/* Checks that every extra name is a syscall of this architecture. */
int seccomp_profile_check(const struct strv *extra, struct bottle_err *err);

/* Human-readable list of the rules, one per line (doctor, --dry-run plans, tests). */
int seccomp_profile_describe(const struct strv *extra, struct buf *out, struct bottle_err *err);

/*
 * Builds the filter and loads it into the calling thread's process (with
 * no_new_privs). Irreversible: call it in the child, right before exec.
 */
int seccomp_profile_apply(const struct strv *extra, struct bottle_err *err);

/* The same policy as a Docker seccomp profile (--security-opt seccomp=FILE). */
cJSON *seccomp_profile_docker_json(const struct strv *extra, struct bottle_err *err);

#endif
