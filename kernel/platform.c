/*
 * platform — probes the host and decides the enforcement tier.
 *
 * Everything here reads or tries and then undoes: the BPF probe loads one
 * two-instruction program and closes it, nothing is attached, pinned or
 * mounted. The Linux-only probes sit behind __linux__ in this file so the
 * rest of the runtime needs no guards of its own.
 */
#include "kernel/platform.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/bpf.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <sys/syscall.h>
#endif

#include "common/fs.h"
#include "common/json.h"

#define MOUNTINFO_PATH       "/proc/self/mountinfo"
#define MOUNTINFO_MAX_BYTES  (16u * 1024 * 1024)
#define SECCOMP_ACTIONS_PATH "/proc/sys/kernel/seccomp/actions_avail"
#define KERNEL_BTF_PATH      "/sys/kernel/btf/vmlinux"
#define NETNS_SELF_PATH      "/proc/self/ns/net"
#define CGROUP2_PREFERRED    "/sys/fs/cgroup"
#define BPFFS_PREFERRED      "/sys/fs/bpf"
/* Landlock ABI 4 (Linux 6.7) added TCP bind/connect port rules. */
#define LANDLOCK_ABI_NET 4

/* ---- mountinfo ----------------------------------------------------------- */

struct mount_entry {
    unsigned long id;
    unsigned long parent_id;
    char *mount_point; /* unescaped */
    char *fstype;
    char *superopts; /* "rw,pids" for a cgroup v1 hierarchy */
};

struct mount_table {
    struct mount_entry *items;
    size_t len;
    size_t cap;
};

static bool is_octal_digit(char c)
{
    return c >= '0' && c <= '7';
}

/*
 * The kernel escapes space, tab, newline and backslash in mount points as
 * three octal digits (\040). Anything else after a backslash is kept as is.
 */
static char *mountinfo_unescape(const char *s)
{
    size_t n = strlen(s);
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        /* Short-circuiting stops at the terminating NUL, which is not a digit. */
        if (s[i] == '\\' && is_octal_digit(s[i + 1]) && is_octal_digit(s[i + 2]) &&
            is_octal_digit(s[i + 3])) {
            int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
            if (v > 0 && v <= 255) {
                out[o++] = (char)v;
                i += 3;
                continue;
            }
        }
        out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}

static bool parse_mount_id(const char *s, unsigned long *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/*
 * One mountinfo line: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE
 * SUPEROPTS". Returns false for a line that does not have that shape.
 */
static bool mountinfo_parse_line(char *line, struct mount_entry *out)
{
    char *fields[64];
    size_t count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok && count < sizeof(fields) / sizeof(*fields);
         tok = strtok_r(NULL, " \t", &save))
        fields[count++] = tok;
    if (count < 8)
        return false;
    size_t sep = 6;
    while (sep < count && strcmp(fields[sep], "-") != 0)
        sep++;
    if (sep + 1 >= count)
        return false;
    if (!parse_mount_id(fields[0], &out->id) || !parse_mount_id(fields[1], &out->parent_id))
        return false;
    if (fields[4][0] != '/')
        return false;
    out->mount_point = mountinfo_unescape(fields[4]);
    out->fstype = xstrdup(fields[sep + 1]);
    out->superopts = xstrdup(sep + 3 < count ? fields[sep + 3] : "");
    return true;
}

static void mount_table_free(struct mount_table *t)
{
    for (size_t i = 0; i < t->len; i++) {
        free(t->items[i].mount_point);
        free(t->items[i].fstype);
        free(t->items[i].superopts);
    }
    free(t->items);
    t->items = NULL;
    t->len = t->cap = 0;
}

static void mount_table_parse(const char *text, struct mount_table *t)
{
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = xstrndup(p, n);
        struct mount_entry e = {0};
        if (mountinfo_parse_line(line, &e)) {
            if (t->len == t->cap) {
                t->cap = t->cap ? t->cap * 2 : 32;
                t->items = xrealloc(t->items, t->cap * sizeof(*t->items));
            }
            t->items[t->len++] = e;
        }
        free(line);
        p = nl ? nl + 1 : NULL;
    }
}

/* Another mount sits on the same mount point with this one as its parent. */
static bool mount_is_covered(const struct mount_table *t, size_t i)
{
    for (size_t j = 0; j < t->len; j++) {
        if (j != i && t->items[j].parent_id == t->items[i].id &&
            strcmp(t->items[j].mount_point, t->items[i].mount_point) == 0)
            return true;
    }
    return false;
}

static bool mount_find_parent(const struct mount_table *t, size_t i, size_t *parent)
{
    for (size_t j = 0; j < t->len; j++) {
        if (j != i && t->items[j].id == t->items[i].parent_id) {
            *parent = j;
            return true;
        }
    }
    return false;
}

/*
 * A mount that was mounted over (directly, or through one of its ancestors)
 * still shows up in mountinfo but cannot be reached by its path.
 */
static bool mount_is_reachable(const struct mount_table *t, size_t i)
{
    size_t cur = i;
    for (size_t steps = 0; steps <= t->len; steps++) {
        if (mount_is_covered(t, cur))
            return false;
        size_t parent;
        if (!mount_find_parent(t, cur, &parent))
            return true;
        cur = parent;
    }
    return true; /* a parent loop in malformed input: do not guess */
}

static int mountinfo_find_fstype(const char *text, const char *fstype, const char *preferred,
                                 char **path)
{
    *path = NULL;
    if (!text)
        return -ENOENT;
    struct mount_table t = {0};
    mount_table_parse(text, &t);
    const struct mount_entry *first = NULL;
    const struct mount_entry *best = NULL;
    for (size_t i = 0; i < t.len && !best; i++) {
        const struct mount_entry *e = &t.items[i];
        if (strcmp(e->fstype, fstype) != 0 || !mount_is_reachable(&t, i))
            continue;
        if (strcmp(e->mount_point, preferred) == 0)
            best = e;
        else if (!first)
            first = e;
    }
    if (!best)
        best = first;
    int rc = -ENOENT;
    if (best) {
        *path = xstrdup(best->mount_point);
        rc = 0;
    }
    mount_table_free(&t);
    return rc;
}

int platform_find_cgroup2_in(const char *mountinfo_text, char **path)
{
    return mountinfo_find_fstype(mountinfo_text, "cgroup2", CGROUP2_PREFERRED, path);
}

int platform_find_bpffs_in(const char *mountinfo_text, char **path)
{
    return mountinfo_find_fstype(mountinfo_text, "bpf", BPFFS_PREFERRED, path);
}

static int read_mountinfo(struct buf *text, struct bottle_err *err)
{
    return fs_read_file(MOUNTINFO_PATH, MOUNTINFO_MAX_BYTES, text, err);
}

int platform_find_cgroup2(char **path, struct bottle_err *err)
{
    *path = NULL;
    struct buf text = BUF_INIT;
    int rc = read_mountinfo(&text, err);
    if (rc == 0 && platform_find_cgroup2_in(text.data, path) < 0)
        rc = err_set(err, ENOENT,
                     "no cgroup2 file system is mounted (none in " MOUNTINFO_PATH
                     "): mount one with 'mount -t cgroup2 none " CGROUP2_PREFERRED "'");
    buf_free(&text);
    return rc;
}

int platform_find_bpffs(char **path, struct bottle_err *err)
{
    *path = NULL;
    struct buf text = BUF_INIT;
    int rc = read_mountinfo(&text, err);
    if (rc == 0 && platform_find_bpffs_in(text.data, path) < 0)
        rc = err_set(err, ENOENT,
                     "bpffs is not mounted (none in " MOUNTINFO_PATH
                     "): mount it with 'mount -t bpf bpf " BPFFS_PREFERRED "'");
    buf_free(&text);
    return rc;
}

/* ---- kernel probes --------------------------------------------------------- */

#ifdef __linux__

/*
 * Loads "r0 = 1; exit" as a connect4 program: the smallest program the
 * cgroup hooks accept. Returns 0, or a positive errno (EPERM: no privilege,
 * EINVAL: the kernel lacks cgroup BPF).
 */
static int probe_bpf_cgroup_load(void)
{
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1},
        {.code = BPF_JMP | BPF_EXIT},
    };
    static const char license[] = "GPL";
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
    attr.expected_attach_type = BPF_CGROUP_INET4_CONNECT;
    attr.insns = (__u64)(uintptr_t)insns;
    attr.insn_cnt = sizeof(insns) / sizeof(*insns);
    attr.license = (__u64)(uintptr_t)license;
    long fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    if (fd < 0)
        return errno ? errno : EINVAL;
    close((int)fd);
    return 0;
}

static int probe_landlock_abi(void)
{
#ifdef __NR_landlock_create_ruleset
    long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
#else
    return 0;
#endif
}

static int probe_seccomp_api(void)
{
    return (int)seccomp_api_get();
}

#else

static int probe_bpf_cgroup_load(void)
{
    return ENOTSUP;
}

static int probe_landlock_abi(void)
{
    return 0;
}

static int probe_seccomp_api(void)
{
    return 0;
}

#endif

/* actions_avail is one line of space-separated names. */
static bool word_list_contains(const char *list, const char *word)
{
    size_t wn = strlen(word);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        size_t n = strcspn(p, " \t\n");
        if (n == wn && strncmp(p, word, n) == 0)
            return true;
        p += n;
    }
    return false;
}

static char *read_trimmed(const char *path)
{
    struct buf b = BUF_INIT;
    if (fs_read_file(path, 64 * 1024, &b, NULL) < 0) {
        buf_free(&b);
        return NULL;
    }
    while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
        b.data[--b.len] = '\0';
    return buf_steal(&b);
}

/* ---- cgroup v1 hierarchies and resource controllers ------------------------------- */

static bool comma_list_contains(const char *list, const char *word)
{
    size_t wn = strlen(word);
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == wn && strncmp(p, word, n) == 0)
            return true;
        p += n;
        if (*p == ',')
            p++;
    }
    return false;
}

void platform_cgroup1_mounts_in(const char *text, struct strv *out)
{
    struct mount_table t = {0};
    mount_table_parse(text ? text : "", &t);
    for (size_t i = 0; i < t.len; i++)
        if (strcmp(t.items[i].fstype, "cgroup") == 0 && mount_is_reachable(&t, i) &&
            !strv_contains(out, t.items[i].mount_point))
            strv_push(out, t.items[i].mount_point);
    mount_table_free(&t);
}

void platform_cgroup1_mounts(struct strv *out)
{
    struct buf text = BUF_INIT;
    if (read_mountinfo(&text, NULL) == 0)
        platform_cgroup1_mounts_in(text.data, out);
    buf_free(&text);
}

const char *platform_controller_name(enum platform_controller_id id)
{
    switch (id) {
    case CTRL_PIDS:
        return "pids";
    case CTRL_MEMORY:
        return "memory";
    case CTRL_CPU:
        return "cpu";
    case CTRL_COUNT:
        break;
    }
    return "?";
}

void platform_controllers_in(const char *mountinfo_text, const char *v2_controllers,
                             struct platform_controller out[CTRL_COUNT])
{
    struct mount_table t = {0};
    mount_table_parse(mountinfo_text ? mountinfo_text : "", &t);
    for (int id = 0; id < CTRL_COUNT; id++) {
        const char *name = platform_controller_name((enum platform_controller_id)id);
        out[id].where = CTRL_MISSING;
        out[id].v1_mount = NULL;
        if (v2_controllers && word_list_contains(v2_controllers, name)) {
            out[id].where = CTRL_IN_V2;
            continue;
        }
        for (size_t i = 0; i < t.len; i++) {
            const struct mount_entry *e = &t.items[i];
            if (strcmp(e->fstype, "cgroup") == 0 && comma_list_contains(e->superopts, name) &&
                mount_is_reachable(&t, i)) {
                out[id].where = CTRL_IN_V1;
                out[id].v1_mount = xstrdup(e->mount_point);
                break;
            }
        }
    }
    mount_table_free(&t);
}

void platform_controllers(struct platform_controller out[CTRL_COUNT])
{
    struct buf text = BUF_INIT;
    char *v2 = NULL, *v2_list = NULL;
    if (read_mountinfo(&text, NULL) == 0 && platform_find_cgroup2_in(text.data, &v2) == 0) {
        char *path = fs_join(v2, "cgroup.controllers");
        v2_list = read_trimmed(path);
        free(path);
    }
    platform_controllers_in(text.data, v2_list, out);
    free(v2);
    free(v2_list);
    buf_free(&text);
}

void platform_controllers_free(struct platform_controller c[CTRL_COUNT])
{
    for (int id = 0; id < CTRL_COUNT; id++) {
        free(c[id].v1_mount);
        c[id].v1_mount = NULL;
        c[id].where = CTRL_MISSING;
    }
}

/* One read of mountinfo answers both cgroup2 and bpffs. */
static void probe_mounts(struct platform_facts *f)
{
    struct bottle_err err = {0};
    struct buf text = BUF_INIT;
    if (read_mountinfo(&text, &err) < 0) {
        f->cgroup2_why = xstrdup(err.msg);
        buf_free(&text);
        return;
    }
    if (platform_find_cgroup2_in(text.data, &f->cgroup2) < 0)
        f->cgroup2_why = xstrdup("no cgroup2 mount in " MOUNTINFO_PATH);
    platform_find_bpffs_in(text.data, &f->bpffs);
    buf_free(&text);
}

static void probe_bpf(struct platform_facts *f)
{
    int e = probe_bpf_cgroup_load();
    f->bpf_cgroup_load = e == 0;
    if (e != 0)
        f->bpf_why = xstrdup(strerror(e));
}

static void probe_seccomp(struct platform_facts *f)
{
    f->seccomp_api = probe_seccomp_api();
    f->seccomp_actions = read_trimmed(SECCOMP_ACTIONS_PATH);
    f->seccomp_user_notif =
        f->seccomp_actions && word_list_contains(f->seccomp_actions, "user_notif");
}

void platform_probe(struct platform_facts *f)
{
    memset(f, 0, sizeof(*f));
    struct utsname u;
    if (uname(&u) == 0) {
        f->os = xstrdup(u.sysname);
        f->kernel = xstrdup(u.release);
        f->arch = xstrdup(u.machine);
    } else {
        f->os = xstrdup("unknown");
    }
    f->is_root = geteuid() == 0;
    bool linux_host = strcmp(f->os, "Linux") == 0;
    if (linux_host) {
        probe_mounts(f);
        probe_bpf(f);
        f->btf = access(KERNEL_BTF_PATH, F_OK) == 0;
        probe_seccomp(f);
        f->landlock_abi = probe_landlock_abi();
        f->netns = f->is_root && access(NETNS_SELF_PATH, F_OK) == 0;
        platform_controllers(f->controllers);
    } else {
        f->cgroup2_why = xasprintf("cgroup2 is a Linux feature and this host runs %s", f->os);
        f->bpf_why = xasprintf("cgroup BPF is a Linux feature and this host runs %s", f->os);
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    f->memory_bytes = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    f->docker = fs_which("docker");
    f->smolvm = fs_which("smolvm");
    f->container = fs_which("container");
    f->tier = platform_tier(f, &f->tier_why);
}

/* ---- tier ------------------------------------------------------------------ */

static const char *or_unknown(const char *s)
{
    return s && *s ? s : "unknown reason";
}

/* Why root still has no cgroup BPF, and what to change. */
static char *why_root_without_bpf(const struct platform_facts *f)
{
    if (!f->cgroup2)
        return xasprintf("cgroup2 is unavailable (%s): mount it with "
                         "'mount -t cgroup2 none " CGROUP2_PREFERRED "' for kernel enforcement",
                         or_unknown(f->cgroup2_why));
    return xasprintf("cgroup BPF programs cannot be loaded even as root (%s): the kernel needs "
                     "CONFIG_CGROUP_BPF, and lockdown or a container's seccomp profile must "
                     "allow bpf(2)",
                     or_unknown(f->bpf_why));
}

enum enforcement_tier platform_tier(const struct platform_facts *f, char **why)
{
    enum enforcement_tier tier;
    char *text;
    const char *os = f->os ? f->os : "unknown";
    if (strcmp(os, "Linux") != 0) {
        tier = TIER_PROXY_ONLY;
        text = xasprintf("%s has no cgroup BPF, network namespaces or Landlock, so only the "
                         "proxy enforces egress (advisory): run bottle on Linux for kernel "
                         "enforcement",
                         os);
    } else if (f->is_root && f->cgroup2 && f->bpf_cgroup_load) {
        tier = TIER_KERNEL;
        text = f->bpffs ? xasprintf("all layers are available: cgroup2, cgroup BPF, network "
                                    "namespaces, seccomp and the proxy")
                        : xasprintf("all layers are available: cgroup2, cgroup BPF, network "
                                    "namespaces, seccomp and the proxy (bpffs is not mounted "
                                    "yet; bottle mounts it at " BPFFS_PREFERRED
                                    " when it pins programs)");
    } else if (f->is_root && f->netns) {
        tier = TIER_NETNS;
        text = why_root_without_bpf(f);
    } else if (f->is_root) {
        tier = TIER_PROXY_ONLY;
        text = xasprintf("network namespaces are unavailable (no " NETNS_SELF_PATH
                         ") and cgroup BPF is missing: the kernel needs CONFIG_NET_NS or "
                         "CONFIG_CGROUP_BPF for any kernel enforcement");
    } else if (f->bpf_cgroup_load) {
        /* Capabilities alone load BPF, but the bottle's cgroup and netns need root. */
        tier = f->landlock_abi >= LANDLOCK_ABI_NET ? TIER_UNPRIVILEGED : TIER_PROXY_ONLY;
        text = xasprintf("bottle is not root, so it cannot create the bottle's cgroup and network "
                         "namespace: run bottle as root for kernel enforcement");
    } else if (f->landlock_abi >= LANDLOCK_ABI_NET) {
        tier = TIER_UNPRIVILEGED;
        text = xasprintf("cgroup BPF programs cannot be loaded (%s): run bottle as root or with "
                         "CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON for kernel enforcement",
                         or_unknown(f->bpf_why));
    } else if (f->landlock_abi > 0) {
        tier = TIER_PROXY_ONLY;
        text = xasprintf("bottle is not root and Landlock ABI %d lacks TCP port rules (they need "
                         "ABI %d, Linux 6.7+): run bottle as root for kernel enforcement",
                         f->landlock_abi, LANDLOCK_ABI_NET);
    } else {
        tier = TIER_PROXY_ONLY;
        text = xasprintf("bottle is not root and Landlock is unavailable: run bottle as root for "
                         "kernel enforcement, or enable Landlock (Linux 6.7+) for the "
                         "unprivileged tier");
    }
    if (why)
        *why = text;
    else
        free(text);
    return tier;
}

/* ---- output ---------------------------------------------------------------- */

void platform_facts_free(struct platform_facts *f)
{
    if (!f)
        return;
    free(f->os);
    free(f->kernel);
    free(f->arch);
    free(f->cgroup2);
    free(f->cgroup2_why);
    free(f->bpffs);
    free(f->bpf_why);
    free(f->seccomp_actions);
    free(f->docker);
    free(f->smolvm);
    free(f->container);
    platform_controllers_free(f->controllers);
    free(f->tier_why);
    memset(f, 0, sizeof(*f));
}

static cJSON *seccomp_actions_json(const char *actions)
{
    if (!actions)
        return cJSON_CreateNull();
    cJSON *arr = cJSON_CreateArray();
    const char *p = actions;
    while (*p) {
        p += strspn(p, " \t\n");
        size_t n = strcspn(p, " \t\n");
        if (n == 0)
            break;
        char *word = xstrndup(p, n);
        cJSON_AddItemToArray(arr, cJSON_CreateString(word));
        free(word);
        p += n;
    }
    return arr;
}

cJSON *platform_facts_json(const struct platform_facts *f)
{
    char *computed_why = NULL;
    enum enforcement_tier tier = f->tier;
    const char *tier_why = f->tier_why;
    if (tier == TIER_UNSET) {
        tier = platform_tier(f, &computed_why);
        tier_why = computed_why;
    }
    cJSON *doc = cJSON_CreateObject();
    json_add_str(doc, "os", f->os);
    json_add_str(doc, "kernel", f->kernel);
    json_add_str(doc, "arch", f->arch);
    json_add_bool(doc, "root", f->is_root);
    cJSON *cg = cJSON_AddObjectToObject(doc, "cgroup2");
    json_add_str(cg, "path", f->cgroup2);
    json_add_str(cg, "why", f->cgroup2 ? NULL : f->cgroup2_why);
    json_add_str(doc, "bpffs", f->bpffs);
    cJSON *bpf = cJSON_AddObjectToObject(doc, "bpf");
    json_add_bool(bpf, "cgroup_load", f->bpf_cgroup_load);
    json_add_str(bpf, "why", f->bpf_cgroup_load ? NULL : f->bpf_why);
    json_add_bool(doc, "btf", f->btf);
    cJSON *sc = cJSON_AddObjectToObject(doc, "seccomp");
    json_add_num(sc, "api_level", f->seccomp_api);
    cJSON_AddItemToObject(sc, "actions", seccomp_actions_json(f->seccomp_actions));
    json_add_bool(sc, "user_notif", f->seccomp_user_notif);
    json_add_num(doc, "landlock_abi", f->landlock_abi);
    json_add_bool(doc, "netns", f->netns);
    json_add_num(doc, "memory_bytes", (double)f->memory_bytes);
    cJSON *lim = cJSON_AddObjectToObject(doc, "limits");
    for (int id = 0; id < CTRL_COUNT; id++) {
        const struct platform_controller *c = &f->controllers[id];
        cJSON *o = cJSON_AddObjectToObject(lim, platform_controller_name(id));
        json_add_str(o, "where",
                     c->where == CTRL_IN_V2   ? "cgroup2"
                     : c->where == CTRL_IN_V1 ? "cgroup1"
                                              : NULL);
        json_add_str(o, "mount", c->v1_mount);
    }
    cJSON *be = cJSON_AddObjectToObject(doc, "backends");
    json_add_str(be, "docker", f->docker);
    json_add_str(be, "smolvm", f->smolvm);
    json_add_str(be, "container", f->container);
    json_add_str(doc, "tier", enforcement_tier_name(tier));
    json_add_str(doc, "tier_why", tier_why);
    free(computed_why);
    return doc;
}

static void text_line(struct buf *out, const char *name, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void text_line(struct buf *out, const char *name, bool ok, const char *fmt, ...)
{
    buf_printf(out, "%-10s %-8s ", name, ok ? "ok" : "missing");
    va_list ap;
    va_start(ap, fmt);
    char *detail = NULL;
    if (vasprintf(&detail, fmt, ap) < 0)
        detail = NULL;
    va_end(ap);
    buf_append_str(out, detail ? detail : "");
    buf_append_char(out, '\n');
    free(detail);
}

static void text_backend(struct buf *out, const char *name, const char *path)
{
    text_line(out, name, path != NULL, "%s", path ? path : "not on PATH");
}

void platform_facts_text(const struct platform_facts *f, struct buf *out)
{
    bool linux_host = f->os && strcmp(f->os, "Linux") == 0;
    text_line(out, "os", linux_host, "%s %s (%s)", f->os ? f->os : "unknown",
              f->kernel ? f->kernel : "", f->arch ? f->arch : "unknown arch");
    text_line(out, "root", f->is_root, "%s",
              f->is_root ? "effective uid 0" : "not root (kernel and netns tiers need root)");
    if (f->cgroup2)
        text_line(out, "cgroup2", true, "%s", f->cgroup2);
    else
        text_line(out, "cgroup2", false, "not mounted (%s)", or_unknown(f->cgroup2_why));
    text_line(out, "bpffs", f->bpffs != NULL, "%s",
              f->bpffs ? f->bpffs
                       : "not mounted (bottle mounts it at " BPFFS_PREFERRED " when it pins "
                         "programs)");
    if (f->bpf_cgroup_load)
        text_line(out, "bpf", true, "cgroup sock_addr programs load");
    else
        text_line(out, "bpf", false, "cgroup sock_addr programs do not load: %s",
                  or_unknown(f->bpf_why));
    text_line(out, "btf", f->btf, "%s",
              f->btf ? KERNEL_BTF_PATH : "no " KERNEL_BTF_PATH " (socket kill unavailable)");
    if (f->seccomp_api > 0)
        text_line(out, "seccomp", true, "libseccomp API level %d", f->seccomp_api);
    else
        text_line(out, "seccomp", false, "libseccomp cannot use seccomp here");
    text_line(out, "actions", f->seccomp_actions != NULL, "%s",
              f->seccomp_actions ? f->seccomp_actions : "no " SECCOMP_ACTIONS_PATH);
    text_line(out, "user_notif", f->seccomp_user_notif, "%s",
              f->seccomp_user_notif ? "SECCOMP_RET_USER_NOTIF available"
                                    : "SECCOMP_RET_USER_NOTIF unavailable");
    if (f->landlock_abi >= LANDLOCK_ABI_NET)
        text_line(out, "landlock", true, "ABI %d (TCP port rules)", f->landlock_abi);
    else if (f->landlock_abi > 0)
        text_line(out, "landlock", false, "ABI %d (no TCP port rules; they need ABI %d)",
                  f->landlock_abi, LANDLOCK_ABI_NET);
    else
        text_line(out, "landlock", false, "unavailable");
    text_line(out, "netns", f->netns, "%s",
              f->netns ? "network namespaces can be created" : "cannot create network namespaces");
    for (int id = 0; id < CTRL_COUNT; id++) {
        const struct platform_controller *c = &f->controllers[id];
        const char *name = platform_controller_name(id);
        if (c->where == CTRL_IN_V2)
            text_line(out, name, true, "controller in cgroup2 (bottle limits)");
        else if (c->where == CTRL_IN_V1)
            text_line(out, name, true,
                      "controller in the cgroup v1 hierarchy at %s (bottle limits)", c->v1_mount);
        else
            text_line(out, name, false,
                      "no %s controller: native bottles refuse to start unless limits.%s is max",
                      name, id == CTRL_CPU ? "cpus" : name);
    }
    text_backend(out, "docker", f->docker);
    text_backend(out, "smolvm", f->smolvm);
    text_backend(out, "container", f->container);

    char *computed_why = NULL;
    enum enforcement_tier tier = f->tier;
    const char *tier_why = f->tier_why;
    if (tier == TIER_UNSET) {
        tier = platform_tier(f, &computed_why);
        tier_why = computed_why;
    }
    buf_printf(out, "tier: %s - %s\n", enforcement_tier_name(tier), tier_why ? tier_why : "");
    free(computed_why);
}
