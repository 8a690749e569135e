/*
 * platform — facts about the host that decide which enforcement tier a
 * bottle can have: OS, cgroup2 mount, bpffs, whether a cgroup BPF program
 * loads, seccomp API level and actions, Landlock ABI, kernel BTF, and the
 * backend CLIs on PATH. Probing reads and tries; it never changes the host
 * (a probe program is loaded and closed again, nothing is attached or pinned).
 */
#ifndef BOTTLE_KERNEL_PLATFORM_H
#define BOTTLE_KERNEL_PLATFORM_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "manifest/manifest.h"

/*
 * Finds the cgroup2 mount point from a mountinfo text (the format of
 * /proc/self/mountinfo). Prefers /sys/fs/cgroup, else the first cgroup2
 * mount. Returns 0 and an allocated path, or -ENOENT when there is none.
 */
int platform_find_cgroup2_in(const char *mountinfo_text, char **path);
/* The same on /proc/self/mountinfo. */
int platform_find_cgroup2(char **path, struct bottle_err *err);
/* Mount point of bpffs, or -ENOENT. */
int platform_find_bpffs_in(const char *mountinfo_text, char **path);
int platform_find_bpffs(char **path, struct bottle_err *err);

/* v1 mount points of every reachable cgroup (v1) hierarchy, from a mountinfo text. */
void platform_cgroup1_mounts_in(const char *mountinfo_text, struct strv *out);
void platform_cgroup1_mounts(struct strv *out);

/* The resource controllers a bottle's limits need, and where the host has each. */
enum platform_controller_id { CTRL_PIDS = 0, CTRL_MEMORY, CTRL_CPU, CTRL_COUNT };
enum platform_controller_where { CTRL_MISSING = 0, CTRL_IN_V2, CTRL_IN_V1 };

struct platform_controller {
    enum platform_controller_where where;
    char *v1_mount; /* CTRL_IN_V1: the mount point of the hierarchy carrying it */
};

const char *platform_controller_name(enum platform_controller_id id);
/*
 * Where each controller is, from a mountinfo text and the cgroup2 root's
 * cgroup.controllers (NULL: no cgroup2): in cgroup2 when listed there, else in
 * the v1 hierarchy mounted with it (hybrid hosts), else missing.
 */
void platform_controllers_in(const char *mountinfo_text, const char *v2_controllers,
                             struct platform_controller out[CTRL_COUNT]);
/* The same for this host. */
void platform_controllers(struct platform_controller out[CTRL_COUNT]);
void platform_controllers_free(struct platform_controller c[CTRL_COUNT]);

struct platform_facts {
    char *os;              /* uname sysname */
    char *kernel;          /* uname release */
    char *arch;            /* uname machine */
    bool is_root;          /* effective uid 0 */
    char *cgroup2;         /* mount point or NULL */
    char *cgroup2_why;     /* why not, when NULL */
    char *bpffs;           /* mount point or NULL */
    bool bpf_cgroup_load;  /* a trivial cgroup sock_addr program loaded */
    char *bpf_why;         /* errno text when it did not */
    bool btf;              /* /sys/kernel/btf/vmlinux exists */
    int seccomp_api;       /* libseccomp API level, 0 when unavailable */
    char *seccomp_actions; /* /proc/sys/kernel/seccomp/actions_avail, or NULL */
    bool seccomp_user_notif;
    int landlock_abi; /* 0 when unavailable */
    bool netns;       /* can create network namespaces (root) */
    char *docker;     /* path of the docker CLI, or NULL */
    char *smolvm;
    char *container;                                    /* Apple's `container` CLI */
    uint64_t memory_bytes;                              /* physical memory; 0 when unknown */
    struct platform_controller controllers[CTRL_COUNT]; /* for the bottle's limits */
    enum enforcement_tier tier;                         /* the best tier these facts allow */
    char *tier_why; /* one sentence: why not higher, and how to get it */
};

/* Gathers the facts. Never fails: what cannot be probed is recorded as absent. */
void platform_probe(struct platform_facts *f);
/* The tier a set of facts allows, with the sentence explaining the limit. */
enum enforcement_tier platform_tier(const struct platform_facts *f, char **why);
void platform_facts_free(struct platform_facts *f);
cJSON *platform_facts_json(const struct platform_facts *f);
void platform_facts_text(const struct platform_facts *f, struct buf *out);

#endif
