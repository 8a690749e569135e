/*
 * bpf_policy — see bpf_policy.h.
 *
 * Pin layout, all 0700 directories:
 *   <bpffs>/bottle/kill_switch          shared one-element array (host-wide switch)
 *   <bpffs>/bottle/<slug>/policy|stats|events
 *   <bpffs>/bottle/<slug>/link_<program>  one bpf_link per program
 * Creating and removing the shared kill switch happens under an flock on
 * <bpffs>/bottle, so a bottle being destroyed never unpins the switch a
 * bottle being installed has just reused.
 */
#include "bpf/policy.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bpf/policy.skel.h"
#include "common/home.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "kernel/cgroup.h"

struct bpf_policy_pins {
    char *slug;
    char *dir;
    int policy_fd;
    int stats_fd;
    int events_fd;
    struct ring_buffer *rb;
    bpf_policy_event_fn cb;
    void *cb_ctx;
};

/* libbpf's own messages go to the debug log, never straight to stderr. */
static int libbpf_to_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_DEBUG || !log_enabled(LOG_LVL_DEBUG))
        return 0;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n')
        line[n - 1] = '\0';
    log_debug("libbpf", "msg", line, NULL);
    return 0;
}

void bpf_policy_quiet_libbpf(void)
{
    libbpf_set_print(libbpf_to_log);
}

const char *bpf_policy_hook_name(unsigned hook)
{
    switch (hook) {
    case BOTTLE_HOOK_CONNECT4:
        return "connect4";
    case BOTTLE_HOOK_CONNECT6:
        return "connect6";
    case BOTTLE_HOOK_SENDMSG4:
        return "sendmsg4";
    case BOTTLE_HOOK_SENDMSG6:
        return "sendmsg6";
    case BOTTLE_HOOK_SOCK_CREATE:
        return "sock_create";
    case BOTTLE_HOOK_EGRESS:
        return "egress";
    case BOTTLE_HOOK_INGRESS:
        return "ingress";
    default:
        return "unknown";
    }
}

const char *bpf_policy_reason_name(unsigned reason)
{
    switch (reason) {
    case BOTTLE_DENY_NOT_ALLOWED:
        return "not-allowed";
    case BOTTLE_DENY_NO_POLICY:
        return "no-policy";
    case BOTTLE_DENY_CUTOFF:
        return "cutoff";
    case BOTTLE_DENY_KILL_SWITCH:
        return "kill-switch";
    default:
        return "unknown";
    }
}

static void policy_value(const struct bpf_policy_config *cfg, struct bottle_policy *v)
{
    memset(v, 0, sizeof(*v));
    v->proxy_ip4 = cfg->proxy_ip4.s_addr;
    memcpy(v->proxy_ip6, &cfg->proxy_ip6, 16);
    v->proxy_port = cfg->proxy_port;
    v->dns_ip4 = cfg->dns_ip4.s_addr;
    memcpy(v->dns_ip6, &cfg->dns_ip6, 16);
    v->dns_port = cfg->dns_port;
    v->flags = cfg->flags & (BOTTLE_FLAG_LOOPBACK_OK | BOTTLE_FLAG_DNS | BOTTLE_FLAG_IPV6);
}

/* ---- the shared kill switch ---------------------------------------------------- */

/* flock on <bpffs>/bottle; returns the fd to unlock with close(). */
static int root_lock(const char *root, struct bottle_err *err)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "bpf: cannot open %s: %s", root, strerror(errno));
    if (flock(fd, LOCK_EX) < 0) {
        int saved = errno;
        close(fd);
        return err_set(err, saved, "bpf: cannot lock %s: %s", root, strerror(saved));
    }
    return fd;
}

static bool root_has_bottles(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return false;
    bool any = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.' && e->d_type == DT_DIR) {
            any = true;
            break;
        }
    }
    closedir(d);
    return any;
}

/* Removes the switch and the root when no bottle uses them and the switch is off. */
static void root_release_if_unused(const char *root)
{
    if (root_has_bottles(root))
        return;
    char *kill_path = fs_join(root, BOTTLE_PIN_KILL);
    int fd = bpf_obj_get(kill_path);
    bool on = false;
    if (fd >= 0) {
        __u32 key = BOTTLE_KILL_SWITCH_KEY, val = 0;
        on = bpf_map_lookup_elem(fd, &key, &val) == 0 && val != 0;
        close(fd);
    }
    if (!on) {
        unlink(kill_path);
        rmdir(root);
    }
    free(kill_path);
}

/* Opens the pinned switch, creating and pinning it when absent. Caller holds the lock. */
static int kill_switch_open(const char *root, bool create, struct bottle_err *err)
{
    char *path = fs_join(root, BOTTLE_PIN_KILL);
    int fd = bpf_obj_get(path);
    if (fd < 0 && create) {
        fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, BOTTLE_PIN_KILL, sizeof(__u32), sizeof(__u32), 1,
                            NULL);
        if (fd < 0) {
            int saved = errno;
            free(path);
            return err_set(err, saved, "bpf: cannot create the kill switch map: %s",
                           strerror(saved));
        }
        if (bpf_obj_pin(fd, path) < 0) {
            int saved = errno;
            close(fd);
            free(path);
            return err_set(err, saved, "bpf: cannot pin the kill switch: %s", strerror(saved));
        }
    } else if (fd < 0) {
        int saved = errno;
        free(path);
        return err_set(err, saved, "bpf: no kill switch: %s", strerror(saved));
    }
    free(path);
    return fd;
}

int bpf_policy_set_kill_switch(bool on, struct bottle_err *err)
{
    bpf_policy_quiet_libbpf();
    char *root = NULL;
    int rc = bpffs_root_dir(true, &root, err);
    if (rc < 0)
        return rc;
    int lock = root_lock(root, err);
    if (lock < 0) {
        free(root);
        return lock;
    }
    int fd = kill_switch_open(root, true, err);
    if (fd >= 0) {
        __u32 key = BOTTLE_KILL_SWITCH_KEY, val = on ? 1 : 0;
        if (bpf_map_update_elem(fd, &key, &val, BPF_ANY) < 0)
            rc = err_set(err, errno, "bpf: cannot set the kill switch: %s", strerror(errno));
        close(fd);
        if (rc == 0 && !on)
            root_release_if_unused(root);
    } else {
        rc = fd;
    }
    close(lock);
    free(root);
    return rc;
}

int bpf_policy_kill_switch(bool *on, struct bottle_err *err)
{
    bpf_policy_quiet_libbpf();
    *on = false;
    char *root = NULL;
    struct bottle_err ignore;
    if (bpffs_root_dir(false, &root, &ignore) < 0)
        return 0;
    char *path = fs_join(root, BOTTLE_PIN_KILL);
    int fd = bpf_obj_get(path);
    int rc = 0;
    if (fd >= 0) {
        __u32 key = BOTTLE_KILL_SWITCH_KEY, val = 0;
        if (bpf_map_lookup_elem(fd, &key, &val) < 0)
            rc = err_set(err, errno, "bpf: cannot read the kill switch: %s", strerror(errno));
        *on = val != 0;
        close(fd);
    }
    free(path);
    free(root);
    return rc;
}

/* ---- install / destroy ------------------------------------------------------------ */

static int remove_pin_dir(const char *dir, struct bottle_err *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return err_set(err, errno, "bpf: cannot open %s: %s", dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT && rc == 0)
            rc =
                err_set(err, errno, "bpf: cannot unpin %s/%s: %s", dir, e->d_name, strerror(errno));
    }
    closedir(d);
    if (rmdir(dir) < 0 && errno != ENOENT && rc == 0)
        rc = err_set(err, errno, "bpf: cannot remove %s: %s", dir, strerror(errno));
    return rc;
}

static int pin_map(struct bpf_map *map, const char *dir, const char *name, struct bottle_err *err)
{
    char *path = fs_join(dir, name);
    int rc = bpf_map__pin(map, path);
    if (rc < 0)
        err_set(err, -rc, "bpf: cannot pin %s: %s", path, strerror(-rc));
    free(path);
    return rc;
}

static int attach_and_pin(struct policy_bpf *skel, int cgroup_fd, const char *dir,
                          struct bpf_policy_timing *t, struct bottle_err *err)
{
    struct {
        struct bpf_program *prog;
        struct bpf_link **link;
    } progs[] = {
        {skel->progs.bottle_sock_create, &skel->links.bottle_sock_create},
        {skel->progs.bottle_connect4, &skel->links.bottle_connect4},
        {skel->progs.bottle_connect6, &skel->links.bottle_connect6},
        {skel->progs.bottle_sendmsg4, &skel->links.bottle_sendmsg4},
        {skel->progs.bottle_sendmsg6, &skel->links.bottle_sendmsg6},
        {skel->progs.bottle_egress, &skel->links.bottle_egress},
        {skel->progs.bottle_ingress, &skel->links.bottle_ingress},
    };
    int64_t t0 = clock_mono_us();
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        struct bpf_link *link = bpf_program__attach_cgroup(progs[i].prog, cgroup_fd);
        if (!link) {
            int saved = errno;
            return err_set(err, saved, "bpf: cannot attach %s to the bottle cgroup: %s",
                           bpf_program__name(progs[i].prog), strerror(saved));
        }
        *progs[i].link = link;
    }
    t->attach_ms = clock_ms_since(t0);
    t0 = clock_mono_us();
    for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "link_%s", bpf_program__name(progs[i].prog));
        char *path = fs_join(dir, name);
        int rc = bpf_link__pin(*progs[i].link, path);
        free(path);
        if (rc < 0)
            return err_set(err, -rc, "bpf: cannot pin link %s: %s", name, strerror(-rc));
    }
    int rc = pin_map(skel->maps.policy, dir, BOTTLE_PIN_POLICY, err);
    if (rc == 0)
        rc = pin_map(skel->maps.stats, dir, BOTTLE_PIN_STATS, err);
    if (rc == 0)
        rc = pin_map(skel->maps.events, dir, BOTTLE_PIN_EVENTS, err);
    t->pin_ms = clock_ms_since(t0);
    return rc;
}

static int write_entry(int policy_fd, int stats_fd, uint64_t id,
                       const struct bpf_policy_config *cfg, struct bottle_err *err)
{
    struct bottle_policy v;
    struct bottle_stats zero;
    policy_value(cfg, &v);
    memset(&zero, 0, sizeof(zero));
    __u64 key = id;
    /* Stats first: a policy entry without its counters would meter nothing. */
    if (bpf_map_update_elem(stats_fd, &key, &zero, BPF_NOEXIST) < 0 && errno != EEXIST)
        return err_set(err, errno, "bpf: cannot write the stats entry: %s", strerror(errno));
    if (bpf_map_update_elem(policy_fd, &key, &v, BPF_ANY) < 0)
        return err_set(err, errno, "bpf: cannot write the policy entry: %s", strerror(errno));
    return 0;
}

int bpf_policy_install(const char *slug, int cgroup_fd, uint64_t cgroup_id,
                       const struct bpf_policy_config *cfg, struct bpf_policy_timing *timing,
                       struct bottle_err *err)
{
    struct bpf_policy_timing t_local = {0};
    struct bpf_policy_timing *t = timing ? timing : &t_local;
    memset(t, 0, sizeof(*t));
    bpf_policy_quiet_libbpf();

    char *root = NULL, *dir = NULL;
    int rc = bpffs_root_dir(true, &root, err);
    if (rc < 0)
        return rc;
    dir = fs_join(root, slug);
    int lock = -1, kill_fd = -1;
    struct policy_bpf *skel = NULL;
    bool dir_made = false;

    if (!home_slug_valid(slug)) {
        rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL, "bpf: invalid bottle name '%s'", slug);
        goto out;
    }
    lock = root_lock(root, err);
    if (lock < 0) {
        rc = lock;
        goto out;
    }
    if (mkdir(dir, 0700) < 0) {
        rc = err_set(err, errno, "bpf: cannot create %s: %s", dir,
                     errno == EEXIST ? "the bottle is already loaded" : strerror(errno));
        goto out;
    }
    dir_made = true;
    kill_fd = kill_switch_open(root, true, err);
    if (kill_fd < 0) {
        rc = kill_fd;
        goto out;
    }

    int64_t t_all = clock_mono_us();
    int64_t t0 = t_all;
    skel = policy_bpf__open();
    if (!skel) {
        rc = err_set(err, errno, "bpf: cannot open the policy programs: %s", strerror(errno));
        goto out;
    }
    skel->rodata->emit_events = cfg->no_events ? 0 : 1;
    unsigned level = 0;
    rc = cgroup_level_from_fd(cgroup_fd, &level, err);
    if (rc < 0)
        goto out;
    skel->rodata->base_level = level;
    rc = bpf_map__reuse_fd(skel->maps.kill_switch, kill_fd);
    if (rc < 0) {
        rc = err_set(err, -rc, "bpf: cannot reuse the kill switch: %s", strerror(-rc));
        goto out;
    }
    t->open_ms = clock_ms_since(t0);
    t0 = clock_mono_us();
    rc = policy_bpf__load(skel);
    if (rc < 0) {
        rc = err_set(err, -rc, "bpf: the kernel refused the policy programs: %s", strerror(-rc));
        goto out;
    }
    t->load_ms = clock_ms_since(t0);
    /* The entry goes in before the programs are attached: no window without policy. */
    rc = write_entry(bpf_map__fd(skel->maps.policy), bpf_map__fd(skel->maps.stats), cgroup_id, cfg,
                     err);
    if (rc == 0)
        rc = attach_and_pin(skel, cgroup_fd, dir, t, err);
    t->total_ms = clock_ms_since(t_all);
out:
    policy_bpf__destroy(skel);
    if (kill_fd >= 0)
        close(kill_fd);
    if (rc < 0 && dir_made) {
        struct bottle_err ignore;
        remove_pin_dir(dir, &ignore);
        root_release_if_unused(root);
    }
    if (lock >= 0)
        close(lock);
    free(dir);
    free(root);
    return rc;
}

int bpf_policy_destroy(const char *slug, struct bottle_err *err)
{
    char *root = NULL;
    struct bottle_err ignore;
    if (!home_slug_valid(slug))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "bpf: invalid bottle name '%s'",
                            slug ? slug : "");
    if (bpffs_root_dir(false, &root, &ignore) < 0 || !fs_is_dir(root)) {
        free(root);
        return 0;
    }
    int lock = root_lock(root, err);
    if (lock < 0) {
        free(root);
        return lock;
    }
    char *dir = fs_join(root, slug);
    int rc = remove_pin_dir(dir, err);
    root_release_if_unused(root);
    close(lock);
    free(dir);
    free(root);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int bpf_policy_list(struct strv *slugs, struct bottle_err *err)
{
    char *root = NULL;
    struct bottle_err ignore;
    (void)err;
    if (bpffs_root_dir(false, &root, &ignore) < 0)
        return 0;
    DIR *d = opendir(root);
    free(root);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.' && e->d_type == DT_DIR)
            strv_push(slugs, e->d_name);
    }
    closedir(d);
    if (slugs->len > 1)
        qsort(slugs->items, slugs->len, sizeof(char *), cmp_str);
    return 0;
}

/* ---- pinned access ------------------------------------------------------------------ */

static int open_pin(const char *dir, const char *name, struct bottle_err *err)
{
    char *path = fs_join(dir, name);
    int fd = bpf_obj_get(path);
    if (fd < 0)
        err_set(err, errno, "bpf: cannot open pin %s: %s", path, strerror(errno));
    free(path);
    return fd < 0 ? -errno : fd;
}

int bpf_policy_open_pinned(const char *slug, struct bpf_policy_pins **out, struct bottle_err *err)
{
    *out = NULL;
    bpf_policy_quiet_libbpf();
    char *dir = NULL;
    int rc = bpffs_bottle_dir(slug, false, &dir, err);
    if (rc < 0)
        return rc;
    if (!fs_is_dir(dir)) {
        rc = err_set(err, ENOENT, "bpf: no bottle named '%s' is loaded", slug);
        free(dir);
        return rc;
    }
    struct bpf_policy_pins *p = xcalloc(1, sizeof(*p));
    p->slug = xstrdup(slug);
    p->dir = dir;
    p->policy_fd = p->stats_fd = p->events_fd = -1;
    if ((p->policy_fd = open_pin(dir, BOTTLE_PIN_POLICY, err)) < 0 ||
        (p->stats_fd = open_pin(dir, BOTTLE_PIN_STATS, err)) < 0 ||
        (p->events_fd = open_pin(dir, BOTTLE_PIN_EVENTS, err)) < 0) {
        rc = -err->code;
        bpf_policy_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

void bpf_policy_close(struct bpf_policy_pins *p)
{
    if (!p)
        return;
    ring_buffer__free(p->rb);
    if (p->policy_fd >= 0)
        close(p->policy_fd);
    if (p->stats_fd >= 0)
        close(p->stats_fd);
    if (p->events_fd >= 0)
        close(p->events_fd);
    free(p->slug);
    free(p->dir);
    free(p);
}

const char *bpf_policy_slug(const struct bpf_policy_pins *p)
{
    return p->slug;
}

int bpf_policy_entry_set(struct bpf_policy_pins *p, uint64_t cgroup_id,
                         const struct bpf_policy_config *cfg, struct bottle_err *err)
{
    return write_entry(p->policy_fd, p->stats_fd, cgroup_id, cfg, err);
}

int bpf_policy_entry_delete(struct bpf_policy_pins *p, uint64_t cgroup_id, struct bottle_err *err)
{
    __u64 key = cgroup_id;
    if (bpf_map_delete_elem(p->policy_fd, &key) < 0 && errno != ENOENT)
        return err_set(err, errno, "bpf: cannot delete the policy entry: %s", strerror(errno));
    return 0;
}

int bpf_policy_entry_ids(struct bpf_policy_pins *p, uint64_t *ids, size_t max, size_t *n,
                         struct bottle_err *err)
{
    __u64 key, next;
    void *prev = NULL;
    *n = 0;
    while (bpf_map_get_next_key(p->policy_fd, prev, &next) == 0) {
        if (*n < max)
            ids[(*n)++] = next;
        key = next;
        prev = &key;
    }
    if (errno != ENOENT)
        return err_set(err, errno, "bpf: cannot walk the policy map: %s", strerror(errno));
    return 0;
}

int bpf_policy_read_stats(struct bpf_policy_pins *p, struct bottle_stats *sum,
                          struct bottle_err *err)
{
    memset(sum, 0, sizeof(*sum));
    __u64 key, next;
    void *prev = NULL;
    while (bpf_map_get_next_key(p->stats_fd, prev, &next) == 0) {
        struct bottle_stats s;
        if (bpf_map_lookup_elem(p->stats_fd, &next, &s) == 0) {
            __u64 *dst = (__u64 *)sum;
            const __u64 *src = (const __u64 *)&s;
            for (size_t i = 0; i < sizeof(s) / sizeof(__u64); i++)
                dst[i] += src[i];
        }
        key = next;
        prev = &key;
    }
    if (errno != ENOENT)
        return err_set(err, errno, "bpf: cannot read the stats map: %s", strerror(errno));
    return 0;
}

int bpf_policy_cutoff_state(struct bpf_policy_pins *p, bool *on, struct bottle_err *err)
{
    uint64_t ids[BOTTLE_MAX_POLICIES];
    size_t n = 0;
    *on = false;
    int rc = bpf_policy_entry_ids(p, ids, BOTTLE_MAX_POLICIES, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct bottle_policy v;
        __u64 key = ids[i];
        if (bpf_map_lookup_elem(p->policy_fd, &key, &v) == 0 && v.cutoff)
            *on = true;
    }
    return rc;
}

int bpf_policy_set_cutoff(const char *slug, bool on, struct bottle_err *err)
{
    struct bpf_policy_pins *p = NULL;
    int rc = bpf_policy_open_pinned(slug, &p, err);
    if (rc < 0)
        return rc;
    uint64_t ids[BOTTLE_MAX_POLICIES];
    size_t n = 0;
    rc = bpf_policy_entry_ids(p, ids, BOTTLE_MAX_POLICIES, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct bottle_policy v;
        __u64 key = ids[i];
        if (bpf_map_lookup_elem(p->policy_fd, &key, &v) < 0)
            continue; /* deleted meanwhile: nothing to flag */
        v.cutoff = on ? 1 : 0;
        /* BPF_EXIST: never resurrect an entry someone deleted in between. */
        if (bpf_map_update_elem(p->policy_fd, &key, &v, BPF_EXIST) < 0 && errno != ENOENT)
            rc = err_set(err, errno, "bpf: cannot set cutoff for %s: %s", slug, strerror(errno));
    }
    bpf_policy_close(p);
    return rc;
}

/* ---- events ------------------------------------------------------------------------------ */

static int ring_cb(void *ctx, void *data, size_t size)
{
    struct bpf_policy_pins *p = ctx;
    if (size < sizeof(struct bottle_event))
        return 0;
    return p->cb((const struct bottle_event *)data, p->cb_ctx) ? 1 : 0;
}

int bpf_policy_events_poll(struct bpf_policy_pins *p, int timeout_ms, bpf_policy_event_fn fn,
                           void *ctx, struct bottle_err *err)
{
    p->cb = fn;
    p->cb_ctx = ctx;
    if (!p->rb) {
        p->rb = ring_buffer__new(p->events_fd, ring_cb, p, NULL);
        if (!p->rb)
            return err_set(err, errno, "bpf: cannot open the event ring buffer: %s",
                           strerror(errno));
    }
    int n = ring_buffer__poll(p->rb, timeout_ms);
    if (n < 0 && n != -EINTR)
        return err_set(err, -n, "bpf: cannot read events: %s", strerror(-n));
    return n < 0 ? 0 : n;
}

/* ---- usage ------------------------------------------------------------------------------- */

static const struct {
    const char *key;
    size_t offset;
} stat_fields[] = {
    {"tx_bytes", offsetof(struct bottle_stats, tx_bytes)},
    {"tx_packets", offsetof(struct bottle_stats, tx_packets)},
    {"rx_bytes", offsetof(struct bottle_stats, rx_bytes)},
    {"rx_packets", offsetof(struct bottle_stats, rx_packets)},
    {"drop_tx", offsetof(struct bottle_stats, drop_tx)},
    {"drop_rx", offsetof(struct bottle_stats, drop_rx)},
    {"connect_ok", offsetof(struct bottle_stats, connect_ok)},
    {"connect_deny", offsetof(struct bottle_stats, connect_deny)},
    {"sendmsg_ok", offsetof(struct bottle_stats, sendmsg_ok)},
    {"sendmsg_deny", offsetof(struct bottle_stats, sendmsg_deny)},
    {"sock_create_deny", offsetof(struct bottle_stats, sock_create_deny)},
};

static uint64_t stat_value(const struct bottle_stats *s, size_t i)
{
    uint64_t v;
    memcpy(&v, (const char *)s + stat_fields[i].offset, sizeof(v));
    return v;
}

void bpf_policy_stats_json(const struct bottle_stats *s, cJSON *obj)
{
    for (size_t f = 0; f < sizeof(stat_fields) / sizeof(stat_fields[0]); f++)
        json_add_num(obj, stat_fields[f].key, (double)stat_value(s, f));
}

int bpf_policy_read_bottle(const char *slug, struct bottle_stats *s, bool *cutoff,
                           struct bottle_err *err)
{
    struct bpf_policy_pins *p = NULL;
    int rc = bpf_policy_open_pinned(slug, &p, err);
    if (rc < 0)
        return rc;
    rc = bpf_policy_read_stats(p, s, err);
    if (rc == 0)
        rc = bpf_policy_cutoff_state(p, cutoff, err);
    bpf_policy_close(p);
    return rc;
}

int bpf_policy_usage_json(const char *slug, cJSON *obj, struct bottle_err *err)
{
    struct bottle_stats s;
    bool cutoff = false, kill = false;
    int rc = bpf_policy_read_bottle(slug, &s, &cutoff, err);
    if (rc == 0)
        rc = bpf_policy_kill_switch(&kill, err);
    if (rc < 0)
        return rc;
    bpf_policy_stats_json(&s, obj);
    json_add_bool(obj, "cut_off", cutoff);
    json_add_bool(obj, "kill_switch", kill);
    return 0;
}

/* ---- doctor probe -------------------------------------------------------------------------- */

void bpf_policy_probe_run(struct bpf_policy_probe *r)
{
    memset(r, 0, sizeof(*r));
    bpf_policy_quiet_libbpf();
    struct bottle_err err;
    err_clear(&err);
    struct policy_bpf *skel = policy_bpf__open();
    if (!skel) {
        snprintf(r->load_error, sizeof(r->load_error), "cannot open: %s", strerror(errno));
        return;
    }
    int64_t t0 = clock_mono_us();
    int rc = policy_bpf__load(skel);
    r->load_ms = clock_ms_since(t0);
    if (rc < 0) {
        snprintf(r->load_error, sizeof(r->load_error), "the kernel refused them: %s",
                 strerror(-rc));
        policy_bpf__destroy(skel);
        return;
    }
    r->loaded = true;

    char *root = NULL, *dir = NULL;
    int cg_fd = -1;
    const char *attach_error = NULL;
    if (cgroup_root_path(&root, &err) < 0) {
        attach_error = err.msg;
    } else {
        char name[64];
        snprintf(name, sizeof(name), "doctor-%d", (int)getpid());
        dir = fs_join(root, name);
        if ((mkdir(root, 0755) < 0 && errno != EEXIST) || mkdir(dir, 0755) < 0 ||
            (cg_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
            snprintf(err.msg, sizeof(err.msg), "cannot create a probe cgroup: %s", strerror(errno));
            attach_error = err.msg;
        }
    }
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, skel->obj)
    {
        if (r->n_programs >= BPF_POLICY_PROGRAMS)
            break;
        size_t i = r->n_programs++;
        snprintf(r->programs[i].name, sizeof(r->programs[i].name), "%s",
                 bpf_program__section_name(prog));
        if (attach_error) {
            snprintf(r->programs[i].error, sizeof(r->programs[i].error), "%.120s", attach_error);
            continue;
        }
        struct bpf_link *link = bpf_program__attach_cgroup(prog, cg_fd);
        if (link) {
            r->programs[i].attached = true;
            bpf_link__destroy(link);
        } else {
            snprintf(r->programs[i].error, sizeof(r->programs[i].error), "%s", strerror(errno));
        }
    }
    policy_bpf__destroy(skel);
    if (cg_fd >= 0)
        close(cg_fd);
    if (dir && rmdir(dir) == 0)
        rmdir(root); /* only when it became empty */
    free(dir);
    free(root);
}
