/*
 * cgroup — the bottle's cgroup v2 subtree and the bpffs pin directory.
 *
 * Owns <cgroup2>/bottle/<slug>/{agent,proxy}: creating them, opening their
 * directory fds (what BPF attaches to), placing a process race-free
 * (clone3(CLONE_INTO_CGROUP), or a pid write before the child runs), freeze,
 * thaw, kill and removal. The cgroup2 mount is found through the platform
 * module, never assumed. Also owns mounting bpffs when nothing is mounted
 * and the 0700 pin directories under <bpffs>/bottle/.
 *
 * It never drops privileges or decides policy; a process is placed before it
 * runs any code of its own, so the programs attached to the cgroup govern it
 * from its first instruction.
 */
#ifndef BOTTLE_KERNEL_CGROUP_H
#define BOTTLE_KERNEL_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

/* Name of the subtree every bottle lives under, in cgroup2 and in bpffs. */
#define CGROUP_BOTTLE_DIR "bottle"

/* One bottle's cgroups. Paths are absolute; fds are O_RDONLY|O_DIRECTORY. */
struct cgroup_bottle {
    char *slug;
    char *path;       /* <cgroup2>/bottle/<slug> */
    char *agent_path; /* .../agent */
    char *proxy_path; /* .../proxy */
    int agent_fd;
    int proxy_fd;
    uint64_t agent_id; /* cgroup id = directory inode */
    uint64_t proxy_id;
};

/* Where bottle mounts cgroup2 when the host has no cgroup2 mount at all. */
#define CGROUP2_PRIVATE_MOUNT "/run/bottle/cgroup2"

/*
 * The cgroup2 mount point (from /proc/self/mountinfo); when none exists and
 * the caller is root, mounts the v2 hierarchy at CGROUP2_PRIVATE_MOUNT first.
 */
int cgroup2_mount_point(char **mount_point, struct bottle_err *err);
/* <cgroup2>/bottle (not created). */
int cgroup_root_path(char **path, struct bottle_err *err);

/* Creates <cgroup2>/bottle/<slug>/{agent,proxy} and opens them; EEXIST when the slug exists. */
int cgroup_bottle_create(const char *slug, struct cgroup_bottle *cg, struct bottle_err *err);
/* Opens an existing bottle's cgroups. */
int cgroup_bottle_open(const char *slug, struct cgroup_bottle *cg, struct bottle_err *err);
/* Closes fds and frees paths; the cgroups stay. Safe on a zeroed or closed struct. */
void cgroup_bottle_close(struct cgroup_bottle *cg);
/*
 * Kills every process of the bottle, waits (at most timeout_ms) until its
 * subtree is empty, removes the leaves then the bottle directory, and
 * <cgroup2>/bottle when it became empty; then the same for the bottle's
 * cgroups in every cgroup v1 hierarchy (its limits on a hybrid host). A
 * missing bottle is not an error.
 */
int cgroup_bottle_remove(const char *slug, int timeout_ms, struct bottle_err *err);

/* Creates (mode 0755) and opens a child cgroup of dir_fd; returns the fd. */
int cgroup_create_child(int dir_fd, const char *name, struct bottle_err *err);
/* The cgroup id (inode) of a cgroup directory fd or path. */
int cgroup_id_from_fd(int dir_fd, uint64_t *id, struct bottle_err *err);
int cgroup_id_from_path(const char *path, uint64_t *id, struct bottle_err *err);

/* Depth of a cgroup directory fd below the cgroup2 root (the root is 0). */
int cgroup_level_from_fd(int dir_fd, unsigned *level, struct bottle_err *err);

/* Writes pid into the cgroup's cgroup.procs. */
int cgroup_move_pid(int dir_fd, pid_t pid, struct bottle_err *err);

enum cgroup_spawn_flags {
    CGROUP_SPAWN_NO_CLONE3 = 1 << 0, /* use the fork + pid-write path (tests, old kernels) */
};

/*
 * Starts a child that is a member of the cgroup before it runs fn, and
 * returns its pid (the child exits with fn's return value). clone3 with
 * CLONE_INTO_CGROUP when the kernel has it; otherwise fork, write the pid to
 * cgroup.procs while the child waits on a pipe, then release it. Like fork:
 * call it from a single-threaded process or make fn async-signal-safe.
 */
pid_t cgroup_spawn_into(int dir_fd, unsigned flags, int (*fn)(void *), void *arg,
                        struct bottle_err *err);

/* Whether cgroup.events says the cgroup is frozen. */
int cgroup_frozen(int dir_fd, bool *frozen, struct bottle_err *err);
/* Writes cgroup.freeze and waits (timeout_ms) until cgroup.events says frozen. */
int cgroup_freeze(int dir_fd, int timeout_ms, struct bottle_err *err);
int cgroup_thaw(int dir_fd, int timeout_ms, struct bottle_err *err);
/* Writes cgroup.kill: SIGKILL to every process in the subtree. */
int cgroup_kill(int dir_fd, struct bottle_err *err);
/* Waits until cgroup.events says "populated 0"; -ETIMEDOUT otherwise. */
int cgroup_wait_empty(int dir_fd, int timeout_ms, struct bottle_err *err);
/* Pids of the cgroup and every descendant cgroup (for finding netns of a bottle). */
int cgroup_list_pids(const char *path, pid_t **pids, size_t *n, struct bottle_err *err);

/* ---- bpffs ---------------------------------------------------------------- */

/* The bpffs mount point; mounts bpf at /sys/fs/bpf (mode 0700) when none is mounted. */
int bpffs_ensure_mounted(char **mount_point, struct bottle_err *err);
/* <bpffs>/bottle (created 0700 when create is set). */
int bpffs_root_dir(bool create, char **path, struct bottle_err *err);
/* <bpffs>/bottle/<slug> (created 0700 with its parent when create is set). */
int bpffs_bottle_dir(const char *slug, bool create, char **path, struct bottle_err *err);

#endif
