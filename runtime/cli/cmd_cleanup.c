/*
 * `bottle stop <slug>` and `bottle cleanup [--dry-run]`: acting on bottles
 * from outside their controller. A slug counts as live while a controller
 * holds its host-wide lock; cleanup never touches a live slug.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "backends/docker/docker.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "runtime/cli/args.h"
#include "bpf/policy.h"
#include "kernel/cgroup.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/control.h"
#include "runtime/controller/context.h"
#include "kernel/netns.h"
#include "runtime/controller/state.h"

static const char stop_help[] =
    "usage: bottle stop <slug> [--timeout SECONDS]\n"
    "\n"
    "Asks the bottle's controller, through its control socket, to stop the agent\n"
    "(SIGTERM, then SIGKILL when it has not exited 2 s before the timeout) and\n"
    "tear the bottle down, and waits until it has (default 15 s). Without the\n"
    "socket, signals the controller's process, which forwards SIGTERM.\n";

static const char cleanup_help[] =
    "usage: bottle cleanup [--dry-run] [<slug>...]\n"
    "\n"
    "Removes what crashed bottles left behind: state directories nobody holds,\n"
    "cgroups under <cgroup2>/bottle/, BPF pins under <bpffs>/bottle/, network\n"
    "namespaces /run/bottle/netns/bottle-* (and their veths), host links bh-*\n"
    "whose peer is in no bottle's namespace, stale lock files and control\n"
    "sockets.\n"
    "Running bottles are never touched. With slugs, only those bottles (and\n"
    "orphan links, which belong to none). With --dry-run, only lists what it\n"
    "would remove. Root sees every user's bottles; anyone else, and sudo, only\n"
    "the bottles of their own data home.\n";

/*
 * Through the control socket: SIGTERM to the agent, SIGKILL after the grace
 * period (most of the caller's timeout). Fails when no controller answers,
 * and the caller falls back to signalling the controller's pid.
 */
static int ask_controller_to_stop(const char *slug, long timeout_s)
{
    struct bottle_err err = {0};
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return -1;
    char *path = control_socket_path(home, slug);
    free(home);
    cJSON *req = cJSON_CreateObject();
    json_add_str(req, "cmd", "stop");
    json_add_num(req, "timeout", timeout_s > 2 ? (double)(timeout_s - 2) : 0.0);
    cJSON *resp = NULL;
    int rc = control_request(path, req, 5000, &resp, &err);
    free(path);
    cJSON_Delete(req);
    if (rc == 0 && !json_get_bool(resp, "ok", false))
        rc = -1;
    cJSON_Delete(resp);
    return rc;
}

int cmd_stop(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(stop_help, stdout);
        return 0;
    }
    const char *cmd = "stop", *slug = NULL;
    long timeout_s = 15;
    struct args a;
    args_init(&a, argc, argv);
    int kind;
    while ((kind = args_next(&a)) != 0) {
        const char *v;
        if (kind == 2 && !slug) {
            slug = a.cur;
        } else if (args_is(&a, "--timeout")) {
            if (!(v = args_value(&a)))
                return EXIT_USAGE;
            char *end = NULL;
            timeout_s = strtol(v, &end, 10);
            if (!end || *end || timeout_s <= 0)
                return cli_usage_error(cmd, "--timeout wants a positive number of seconds");
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", a.cur);
        }
    }
    if (!slug || !home_slug_valid(slug))
        return cli_usage_error(cmd, "which bottle? (a slug, as `bottle start` printed it)");
    struct bottle_err err = {0};
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return cli_fail(&err);
    bool callers = cli_slug_is_callers(home, slug);
    free(home);
    long pid = callers ? (long)state_live_pid(slug) : 0;
    if (pid <= 1) {
        err_set_kind(&err, ERR_KIND_USAGE, ENOENT, "no running bottle '%s'", slug);
        return cli_fail(&err);
    }
    if (ask_controller_to_stop(slug, timeout_s) < 0 && kill((pid_t)pid, SIGTERM) < 0) {
        err_set(&err, errno, "cannot signal the controller of '%s' (pid %ld): %s", slug, pid,
                strerror(errno));
        return cli_fail(&err);
    }
    for (long waited = 0; waited < timeout_s * 1000; waited += 50) {
        if (!state_slug_live(slug)) {
            printf("bottle: %s stopped\n", slug);
            return 0;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    err_set(&err, ETIMEDOUT, "bottle '%s' did not stop within %ld s", slug, timeout_s);
    return cli_fail(&err);
}

/* ---- cleanup ----------------------------------------------------------------------- */

static void list_dir(const char *dir, const char *prefix, const char *suffix, bool dirs_only,
                     struct strv *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.' || !str_starts_with(n, prefix) || !str_ends_with(n, suffix) ||
            (dirs_only && de->d_type != DT_DIR) || str_starts_with(n, "doctor-"))
            continue;
        char *slug = xstrndup(n + strlen(prefix), strlen(n) - strlen(prefix) - strlen(suffix));
        if (home_slug_valid(slug) && !strv_contains(out, slug))
            strv_push_owned(out, slug);
        else
            free(slug);
    }
    closedir(d);
}

static void add_all(struct strv *dst, const struct strv *src)
{
    for (size_t i = 0; i < src->len; i++)
        if (!strv_contains(dst, src->items[i]))
            strv_push(dst, src->items[i]);
}

/* A stale state directory: take its lock, then remove it like its owner would have. */
static int remove_state(const char *home, const char *slug, struct bottle_err *err)
{
    struct state_dir st;
    int rc = state_open_stale(home, slug, &st, err);
    if (rc < 0)
        return rc;
    return state_remove(&st, err);
}

static int cleanup_slug(const char *home, const char *slug, bool has_state, bool dry_run)
{
    char *cg_root = NULL, *pins = NULL;
    struct bottle_err e = {0};
    struct strv what = STRV_INIT;
    if (cgroup_root_path(&cg_root, &e) == 0) {
        char *p = fs_join(cg_root, slug);
        if (fs_is_dir(p))
            strv_push_owned(&what, xasprintf("cgroup %s", p));
        free(p);
    }
    free(cg_root);
    memset(&e, 0, sizeof(e));
    if (bpffs_bottle_dir(slug, false, &pins, &e) == 0 && pins && fs_is_dir(pins))
        strv_push_owned(&what, xasprintf("BPF pins %s", pins));
    free(pins);
    char *ns = netns_find_path(slug);
    if (ns)
        strv_push_owned(&what, xasprintf("network namespace %s", ns));
    free(ns);
    char *sock = xasprintf("%s/run/%s.sock", home, slug);
    if (access(sock, F_OK) == 0)
        strv_push_owned(&what, xasprintf("socket %s", sock));
    if (has_state)
        strv_push_owned(&what, xasprintf("state %s/state/%s", home, slug));
    for (size_t i = 0; i < what.len; i++)
        printf("%s%s: %s\n", dry_run ? "would remove " : "removing ", slug, what.items[i]);
    strv_free(&what);
    if (dry_run) {
        free(sock);
        return 0;
    }
    int failures = 0;
    memset(&e, 0, sizeof(e));
    /* A Docker bottle's container sits in the agent cgroup: it goes first. */
    if (docker_remove_slug(slug, &e) < 0)
        failures++, fprintf(stderr, "bottle: cleanup: %s: %s\n", slug, e.msg);
    memset(&e, 0, sizeof(e));
    if (cgroup_bottle_remove(slug, 3000, &e) < 0)
        failures++, fprintf(stderr, "bottle: cleanup: %s: %s\n", slug, e.msg);
    memset(&e, 0, sizeof(e));
    if (bpf_policy_destroy(slug, &e) < 0)
        failures++, fprintf(stderr, "bottle: cleanup: %s: %s\n", slug, e.msg);
    memset(&e, 0, sizeof(e));
    if (netns_remove_slug(slug, &e) < 0)
        failures++, fprintf(stderr, "bottle: cleanup: %s: %s\n", slug, e.msg);
    unlink(sock);
    free(sock);
    char *live = xasprintf("%s/%s.lock", STATE_LIVE_DIR, slug);
    unlink(live);
    free(live);
    memset(&e, 0, sizeof(e));
    if (has_state && remove_state(home, slug, &e) < 0)
        failures++, fprintf(stderr, "bottle: cleanup: %s: %s\n", slug, e.msg);
    return failures ? -1 : 0;
}

/* ---- orphan veths ------------------------------------------------------------------- */

/* Names of the links in the namespace at path that start with prefix. */
static void links_in(int netns_fd, const char *prefix, struct strv *out)
{
    struct nl_sock *sk = NULL;
    struct bottle_err ignored = {0};
    if (netns_fd >= 0) {
        if (netns_route_socket(netns_fd, &sk, &ignored) < 0)
            return;
    } else {
        sk = nl_socket_alloc();
        if (!sk || nl_connect(sk, NETLINK_ROUTE) < 0) {
            if (sk)
                nl_socket_free(sk);
            return;
        }
    }
    struct nl_cache *cache = NULL;
    if (rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache) == 0) {
        for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
            const char *name = rtnl_link_get_name((struct rtnl_link *)o);
            const char *type = rtnl_link_get_type((struct rtnl_link *)o);
            if (name && str_starts_with(name, prefix) && type && !strcmp(type, "veth"))
                strv_push(out, name);
        }
        nl_cache_free(cache);
    }
    nl_socket_free(sk);
}

/*
 * Host-side veths (bh-<slot>) whose peer (bb-<slot>) is in no bottle's
 * network namespace: what a bottle leaves when its namespace file went away
 * before its links did. A bottle's veth is created with its peer already in
 * the bottle's namespace, under the pool lock, so holding that lock while
 * looking means a starting bottle's link is never taken for an orphan.
 */
static int cleanup_orphan_links(bool dry_run)
{
    int lock = open(NETNS_LOCK_PATH, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (lock >= 0 && flock(lock, LOCK_EX) < 0) {
        close(lock);
        lock = -1;
    }
    struct strv host = STRV_INIT, guests = STRV_INIT, slugs = STRV_INIT;
    struct bottle_err e = {0};
    links_in(-1, NETNS_HOST_IF_PREFIX, &host);
    if (host.len)
        netns_list_slugs(&slugs, &e);
    for (size_t i = 0; i < slugs.len; i++) {
        char *path = netns_find_path(slugs.items[i]);
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        free(path);
        if (fd >= 0) {
            links_in(fd, NETNS_GUEST_IF_PREFIX, &guests);
            close(fd);
        }
    }
    int failures = 0;
    struct nl_sock *sk = NULL;
    for (size_t i = 0; i < host.len; i++) {
        const char *name = host.items[i];
        char *peer = xasprintf("%s%s", NETNS_GUEST_IF_PREFIX, name + strlen(NETNS_HOST_IF_PREFIX));
        bool owned = strv_contains(&guests, peer);
        free(peer);
        if (owned)
            continue;
        printf("%sorphan link %s\n", dry_run ? "would remove " : "removing ", name);
        if (dry_run)
            continue;
        if (!sk) {
            sk = nl_socket_alloc();
            if (sk && nl_connect(sk, NETLINK_ROUTE) < 0) {
                nl_socket_free(sk);
                sk = NULL;
            }
        }
        struct rtnl_link *link = NULL;
        int rc = sk ? rtnl_link_get_kernel(sk, 0, name, &link) : -NLE_NOMEM;
        if (rc == 0) {
            rc = rtnl_link_delete(sk, link);
            rtnl_link_put(link);
        }
        if (rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV) {
            failures++;
            fprintf(stderr, "bottle: cleanup: cannot delete link %s: %s\n", name, nl_geterror(rc));
        }
    }
    if (sk)
        nl_socket_free(sk);
    size_t found = 0;
    for (size_t i = 0; i < host.len; i++) {
        char *peer =
            xasprintf("%s%s", NETNS_GUEST_IF_PREFIX, host.items[i] + strlen(NETNS_HOST_IF_PREFIX));
        found += !strv_contains(&guests, peer);
        free(peer);
    }
    strv_free(&host);
    strv_free(&guests);
    strv_free(&slugs);
    if (lock >= 0)
        close(lock);
    return failures ? -1 : (int)found;
}

/* What cleanup looks at: each slug with the data home its files are in. */
struct leftovers {
    struct strv slugs;
    struct strv homes;  /* homes.items[i] holds slugs.items[i]'s state and run files */
    struct strv states; /* "<home>/<slug>" of the ones with a state directory */
};

static bool have_slug(const struct leftovers *l, const char *slug)
{
    return strv_contains(&l->slugs, slug);
}

static void add_slug(struct leftovers *l, const char *home, const char *slug, bool state)
{
    for (size_t i = 0; i < l->slugs.len; i++)
        if (!strcmp(l->slugs.items[i], slug) && !strcmp(l->homes.items[i], home))
            return;
    strv_push(&l->slugs, slug);
    strv_push(&l->homes, home);
    if (state)
        strv_push_owned(&l->states, xasprintf("%s/%s", home, slug));
}

/* The slugs a data home holds: state directories, control sockets and lock files. */
static void scan_home(struct leftovers *l, const char *home)
{
    struct strv states = STRV_INIT, run = STRV_INIT;
    char *state_dir = fs_join(home, "state");
    char *run_dir = fs_join(home, "run");
    list_dir(state_dir, "", "", true, &states);
    list_dir(run_dir, "", ".sock", false, &run);
    list_dir(run_dir, "", ".lock", false, &run);
    for (size_t i = 0; i < states.len; i++)
        add_slug(l, home, states.items[i], true);
    for (size_t i = 0; i < run.len; i++)
        if (!strv_contains(&states, run.items[i]))
            add_slug(l, home, run.items[i], false);
    strv_free(&states);
    strv_free(&run);
    free(state_dir);
    free(run_dir);
}

/*
 * The root view: the data homes root keeps for users under sudo
 * (HOME_SUDO_ROOT/<uid>), then whatever host-wide places name (cgroups,
 * pins, namespaces) that no home holds, charged to root's own home.
 */
static void scan_host(struct leftovers *l, const char *own_home)
{
    DIR *d = opendir(HOME_SUDO_ROOT);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
            strspn(de->d_name, "0123456789") != strlen(de->d_name))
            continue;
        char *h = fs_join(HOME_SUDO_ROOT, de->d_name);
        if (strcmp(h, own_home) != 0)
            scan_home(l, h);
        free(h);
    }
    if (d)
        closedir(d);
    struct strv host = STRV_INIT, tmp = STRV_INIT;
    struct bottle_err err = {0};
    char *cg_root = NULL;
    if (cgroup_root_path(&cg_root, &err) == 0)
        list_dir(cg_root, "", "", true, &host);
    free(cg_root);
    if (bpf_policy_list(&tmp, &err) == 0)
        add_all(&host, &tmp);
    strv_free(&tmp);
    if (netns_list_slugs(&tmp, &err) == 0)
        add_all(&host, &tmp);
    strv_free(&tmp);
    for (size_t i = 0; i < host.len; i++)
        if (!have_slug(l, host.items[i]))
            add_slug(l, own_home, host.items[i], false);
    strv_free(&host);
}

int cmd_cleanup(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(cleanup_help, stdout);
        return 0;
    }
    bool dry_run = false;
    struct strv only = STRV_INIT;
    struct args a;
    args_init(&a, argc, argv);
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 2 && home_slug_valid(a.cur)) {
            strv_push(&only, a.cur);
        } else if (args_is(&a, "--dry-run")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            dry_run = true;
        } else {
            strv_free(&only);
            return cli_usage_error("cleanup", "unexpected argument '%s'", a.cur);
        }
    }
    struct bottle_err err = {0};
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return cli_fail(&err);
    struct leftovers l = {STRV_INIT, STRV_INIT, STRV_INIT};
    scan_home(&l, home);
    if (cli_host_view())
        scan_host(&l, home);
    int failures = 0;
    size_t found = 0;
    for (size_t i = 0; i < l.slugs.len; i++) {
        const char *slug = l.slugs.items[i], *h = l.homes.items[i];
        if (only.len && !strv_contains(&only, slug))
            continue;
        /* Only the controller's own lock counts: the state lock may be held by an orphaned init. */
        if (state_slug_live(slug)) {
            if (only.len)
                printf("%s: running; left alone\n", slug);
            continue;
        }
        found++;
        char *key = xasprintf("%s/%s", h, slug);
        if (cleanup_slug(h, slug, strv_contains(&l.states, key), dry_run) < 0)
            failures++;
        free(key);
        if (!dry_run) {
            char *lock = xasprintf("%s/run/%s.lock", h, slug);
            unlink(lock);
            free(lock);
        }
    }
    /* Host links name no bottle, but only root can remove them: not a user's business. */
    int links = geteuid() == 0 ? cleanup_orphan_links(dry_run) : 0;
    if (links < 0)
        failures++;
    else
        found += (size_t)links;
    if (found == 0)
        printf("bottle: nothing to clean up\n");
    strv_free(&only);
    strv_free(&l.slugs);
    strv_free(&l.homes);
    strv_free(&l.states);
    free(home);
    return failures ? EXIT_RUNTIME : 0;
}
