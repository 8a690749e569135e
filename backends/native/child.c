/*
 * native, inside the bottle: everything between clone and the agent's exec,
 * and the init that stays behind as PID 1.
 *
 * Order matters. The process was born in the agent cgroup; it joins the
 * network namespace first, then builds the root filesystem while it still
 * has the host's system directories in view, pivots into it and detaches the
 * old root, then drops every privilege, loads seccomp and closes stray fds.
 * Only then does it fork the agent. Errors go back to the parent as text on
 * err_fd (close-on-exec: EOF means the agent runs).
 *
 * Every source tree is cloned (open_tree) before anything is mounted, every
 * target is a directory this code created on a tmpfs of its own, reached
 * with openat2(RESOLVE_NO_SYMLINKS), and every mount goes onto a file
 * descriptor: nothing planted in the workspace can redirect a mount.
 *
 * Nothing of the host's command line or state paths is visible inside: the
 * init leaves the controller's session (no host terminal is its
 * controlling one), calls itself "bottle-init" (its command line, in the
 * memory the kernel shows as /proc/1/cmdline, and its name) and wipes the
 * controller's environment from its memory; the bottle's files are copied
 * into a tmpfs of their own, so /proc/self/mountinfo shows no host path for
 * /bottle.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/proc.h"
#include "backends/native.h"
#include "backends/native/native_internal.h"
#include "manifest/plan.h"
#include "kernel/seccomp.h"

#define MAX_ENTRIES 24
#define MAX_OWNED   8

#define INIT_NAME         "bottle-init"
#define BOTTLE_FILES_MAX  (64u << 20) /* bytes copied into /bottle, at most */
#define BOTTLE_FILES_SIZE (64ull << 20)

extern char **environ;

static const char *const system_dirs[] = {"usr",   "bin",    "sbin", "lib", "lib64",
                                          "lib32", "libx32", "etc",  "opt", NULL};

_Noreturn static void child_fail(const struct native_child *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

_Noreturn static void child_fail(const struct native_child *c, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n > 0) {
        size_t len = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
        ssize_t w = write(c->err_fd, msg, len);
        (void)w;
    }
    _exit(NATIVE_EXIT_SETUP);
}

/* ---- the mount plan ----------------------------------------------------------- */

enum entry_kind { ENT_TREE, ENT_SYMLINK };

struct entry {
    const char *guest; /* relative to the new root, no leading '/' */
    enum entry_kind kind;
    int tree_fd;      /* ENT_TREE: a detached mount */
    char target[256]; /* ENT_SYMLINK */
    int order;        /* insertion order: ties keep it */
    bool owned;       /* a tmpfs of ours: targets may be created on it */
};

struct rootfs {
    struct entry e[MAX_ENTRIES];
    size_t n;
    dev_t owned[MAX_OWNED];
    size_t n_owned;
    int root_fd;
};

static struct entry *add_entry(const struct native_child *c, struct rootfs *r, const char *guest,
                               enum entry_kind kind)
{
    if (r->n == MAX_ENTRIES)
        child_fail(c, "native: too many mounts");
    struct entry *e = &r->e[r->n];
    memset(e, 0, sizeof(*e));
    e->guest = guest[0] == '/' ? guest + 1 : guest;
    e->kind = kind;
    e->tree_fd = -1;
    e->order = (int)r->n;
    r->n++;
    return e;
}

static void set_attrs(const struct native_child *c, int tree_fd, const char *what, uint64_t set)
{
    struct mount_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.attr_set = set;
    if (mount_setattr(tree_fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
        child_fail(c, "native: cannot set mount flags on %s: %s", what, strerror(errno));
}

/* A detached copy of a host directory reached without following any symlink. */
static int clone_host_dir(const struct native_child *c, const char *path, uint64_t attrs)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
    if (fd < 0)
        child_fail(c, "native: cannot open %s without following symlinks: %s", path,
                   strerror(errno));
    int tree =
        open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    int e = errno;
    close(fd);
    if (tree < 0)
        child_fail(c, "native: cannot clone the mount of %s: %s", path, strerror(e));
    set_attrs(c, tree, path, attrs);
    return tree;
}

/* The size of each tmpfs the agent can write (/tmp, /dev/shm, a tmpfs home). */
static uint64_t agent_tmpfs_size(const struct backend_spec *s)
{
    return s->limits && s->limits->tmpfs != LIMIT_UNSET ? s->limits->tmpfs : LIMITS_DEFAULT_TMPFS;
}

/* A detached tmpfs of size bytes (0: only what its owner, root, writes); recorded as ours. */
static int new_tmpfs(const struct native_child *c, struct rootfs *r, const char *mode, uid_t uid,
                     gid_t gid, uint64_t attrs, uint64_t size)
{
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        child_fail(c, "native: fsopen tmpfs: %s", strerror(errno));
    char num[24];
    int rc = fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode, 0);
    if (rc == 0 && size) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)size);
        rc = fsconfig(fs, FSCONFIG_SET_STRING, "size", num, 0);
    }
    if (rc == 0 && uid) {
        snprintf(num, sizeof(num), "%u", (unsigned)uid);
        rc = fsconfig(fs, FSCONFIG_SET_STRING, "uid", num, 0);
    }
    if (rc == 0 && gid) {
        snprintf(num, sizeof(num), "%u", (unsigned)gid);
        rc = fsconfig(fs, FSCONFIG_SET_STRING, "gid", num, 0);
    }
    if (rc == 0)
        rc = fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int mnt = rc == 0 ? fsmount(fs, FSMOUNT_CLOEXEC, (unsigned)attrs) : -1;
    int e = errno;
    close(fs);
    if (mnt < 0)
        child_fail(c, "native: cannot make a tmpfs: %s", strerror(e));
    struct stat sb;
    if (fstat(mnt, &sb) < 0 || r->n_owned == MAX_OWNED)
        child_fail(c, "native: cannot inspect a new tmpfs");
    r->owned[r->n_owned++] = sb.st_dev;
    return mnt;
}

static bool is_owned(const struct rootfs *r, int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return false;
    for (size_t i = 0; i < r->n_owned; i++)
        if (r->owned[i] == sb.st_dev)
            return true;
    return false;
}

/*
 * Opens rel below the new root, creating missing directories (0755) only on
 * a tmpfs of ours, never following a symlink. Returns an O_PATH fd.
 */
static int open_target(const struct native_child *c, struct rootfs *r, const char *rel)
{
    char buf[4096];
    if (strlen(rel) >= sizeof(buf))
        child_fail(c, "native: path too long: /%s", rel);
    strcpy(buf, rel);
    int cur = fcntl(r->root_fd, F_DUPFD_CLOEXEC, 3);
    if (cur < 0)
        child_fail(c, "native: dup: %s", strerror(errno));
    char *save = NULL;
    for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
        if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0)
            child_fail(c, "native: /%s is not a normalized path", rel);
        struct open_how how;
        memset(&how, 0, sizeof(how));
        how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
        how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH;
        int next = (int)syscall(SYS_openat2, cur, comp, &how, sizeof(how));
        if (next < 0 && errno == ENOENT) {
            if (!is_owned(r, cur))
                child_fail(c,
                           "native: refusing to create /%s: its parent is a host directory "
                           "mounted into the bottle",
                           rel);
            if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST)
                child_fail(c, "native: cannot create /%s: %s", rel, strerror(errno));
            next = (int)syscall(SYS_openat2, cur, comp, &how, sizeof(how));
        }
        if (next < 0)
            child_fail(c, "native: cannot open /%s in the bottle: %s", rel, strerror(errno));
        close(cur);
        cur = next;
    }
    return cur;
}

static void attach(const struct native_child *c, struct rootfs *r, int tree_fd, const char *rel)
{
    int target = open_target(c, r, rel);
    if (move_mount(tree_fd, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        child_fail(c, "native: cannot mount /%s: %s", rel, strerror(errno));
    close(target);
}

/* Character devices: mknod, or a bind of the host's node where mknod is not allowed. */
static void make_dev_node(const struct native_child *c, int dev_fd, const char *name, unsigned maj,
                          unsigned min)
{
    if (mknodat(dev_fd, name, S_IFCHR | 0666, makedev(maj, min)) == 0 &&
        fchmodat(dev_fd, name, 0666, 0) == 0)
        return;
    unlinkat(dev_fd, name, 0);
    int f = openat(dev_fd, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (f < 0)
        child_fail(c, "native: cannot create /dev/%s: %s", name, strerror(errno));
    close(f);
    char host[64];
    snprintf(host, sizeof(host), "/dev/%s", name);
    int tree = open_tree(AT_FDCWD, host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0 || move_mount(tree, "", dev_fd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        child_fail(c, "native: cannot provide /dev/%s: %s", name, strerror(errno));
    close(tree);
}

static void build_dev(const struct native_child *c, struct rootfs *r)
{
    int dev = new_tmpfs(c, r, "0755", 0, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0);
    attach(c, r, dev, "dev");
    static const struct {
        const char *name;
        unsigned maj, min;
    } nodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                 {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
        make_dev_node(c, dev, nodes[i].name, nodes[i].maj, nodes[i].min);
    static const char *const links[][2] = {{"fd", "/proc/self/fd"},
                                           {"stdin", "/proc/self/fd/0"},
                                           {"stdout", "/proc/self/fd/1"},
                                           {"stderr", "/proc/self/fd/2"},
                                           {"ptmx", "pts/ptmx"}};
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        if (symlinkat(links[i][1], dev, links[i][0]) < 0)
            child_fail(c, "native: cannot create /dev/%s: %s", links[i][0], strerror(errno));

    int fs = fsopen("devpts", FSOPEN_CLOEXEC);
    int rc = fs < 0 ? -1 : fsconfig(fs, FSCONFIG_SET_FLAG, "newinstance", NULL, 0);
    if (rc == 0)
        rc = fsconfig(fs, FSCONFIG_SET_STRING, "ptmxmode", "0666", 0);
    if (rc == 0)
        rc = fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0620", 0);
    if (rc == 0)
        rc = fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int pts = rc == 0 ? fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC) : -1;
    if (pts < 0)
        child_fail(c, "native: cannot mount devpts: %s", strerror(errno));
    close(fs);
    attach(c, r, pts, "dev/pts");
    close(pts);
    int shm =
        new_tmpfs(c, r, "1777", 0, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                  agent_tmpfs_size(c->spec));
    attach(c, r, shm, "dev/shm");
    close(shm);
    close(dev);
}

/*
 * Workspace paths bound over themselves inside the new root (guard.h):
 * read-only, or pinned so that they cannot be renamed away. The list is
 * ordered parents first; each path is reached again without following a
 * symlink, so a link planted since the list was made fails the start.
 */
static void guard_mounts(const struct native_child *c, const struct rootfs *r)
{
    const struct guard_list *g = c->spec->guard;
    const char *ws = c->spec->workspace + 1;
    for (size_t i = 0; g && i < g->len; i++) {
        const struct guard_path *p = &g->items[i];
        char rel[4096];
        int n = snprintf(rel, sizeof(rel), "%s/%s", ws, p->rel);
        if (n < 0 || (size_t)n >= sizeof(rel))
            child_fail(c, "native: path too long: /%s/%s", ws, p->rel);
        struct open_how how;
        memset(&how, 0, sizeof(how));
        how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC | (p->dir ? O_DIRECTORY : 0);
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        int fd = (int)syscall(SYS_openat2, r->root_fd, rel, &how, sizeof(how));
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) < 0 || S_ISLNK(sb.st_mode))
            child_fail(c, "native: cannot open /%s to keep it %s: %s", rel,
                       p->kind == GUARD_READ_ONLY ? "read-only" : "in place",
                       fd < 0 ? strerror(errno) : "it is a symbolic link");
        int tree = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (tree < 0)
            child_fail(c, "native: cannot clone the mount of /%s: %s", rel, strerror(errno));
        set_attrs(c, tree, rel,
                  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                      (p->kind == GUARD_READ_ONLY ? MOUNT_ATTR_RDONLY : 0));
        if (move_mount(tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            child_fail(c, "native: cannot bind /%s over itself: %s", rel, strerror(errno));
        close(tree);
        close(fd);
    }
}

/*
 * The bottle's files (CA bundle, prompt), copied into a tmpfs of their own
 * and made read-only: a bind of the host directory would show its path
 * under $BOTTLE_HOME in the bottle's mountinfo. Only regular files; the
 * directory is the controller's and holds nothing else.
 */
static int copy_bottle_files(const struct native_child *c, struct rootfs *r, const char *dir)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int src = (int)syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));
    if (src < 0)
        child_fail(c, "native: cannot open %s without following symlinks: %s", dir,
                   strerror(errno));
    int mnt =
        new_tmpfs(c, r, "0755", 0, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                  BOTTLE_FILES_SIZE);
    int list = fcntl(src, F_DUPFD_CLOEXEC, 3);
    DIR *d = list >= 0 ? fdopendir(list) : NULL;
    if (!d)
        child_fail(c, "native: cannot list %s: %s", dir, strerror(errno));
    size_t total = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int in = openat(src, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat sb;
        if (in < 0 || fstat(in, &sb) < 0 || !S_ISREG(sb.st_mode))
            child_fail(c, "native: %s/%s is not a regular file", dir, de->d_name);
        int out = openat(mnt, de->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         sb.st_mode & 0755);
        if (out < 0)
            child_fail(c, "native: cannot copy %s into the bottle: %s", de->d_name,
                       strerror(errno));
        char buf[16384];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0) {
            total += (size_t)n;
            if (total > BOTTLE_FILES_MAX || write(out, buf, (size_t)n) != n)
                child_fail(c, "native: cannot copy %s into the bottle: %s", de->d_name,
                           total > BOTTLE_FILES_MAX ? "the bottle's files are too large"
                                                    : strerror(errno));
        }
        if (n < 0)
            child_fail(c, "native: cannot read %s/%s: %s", dir, de->d_name, strerror(errno));
        close(in);
        close(out);
    }
    closedir(d);
    close(src);
    set_attrs(c, mnt, GUEST_BOTTLE_DIR, MOUNT_ATTR_RDONLY);
    return mnt;
}

static size_t depth(const char *rel)
{
    size_t d = 1;
    for (const char *p = rel; *p; p++)
        d += *p == '/';
    return d;
}

/* Stable sort by depth: a mount never lands under one made later. */
static void sort_entries(struct rootfs *r)
{
    for (size_t i = 1; i < r->n; i++) {
        struct entry tmp = r->e[i];
        size_t j = i;
        while (j > 0 && depth(r->e[j - 1].guest) > depth(tmp.guest)) {
            r->e[j] = r->e[j - 1];
            j--;
        }
        r->e[j] = tmp;
    }
}

static void build_rootfs(const struct native_child *c)
{
    const struct backend_spec *s = c->spec;
    struct rootfs r;
    memset(&r, 0, sizeof(r));
    umask(0);

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail(c, "native: cannot make mounts private: %s", strerror(errno));

    /* 1. Clone every source while the host's tree is still in view. */
    const uint64_t ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    for (const char *const *d = system_dirs; *d; d++) {
        char host[64];
        snprintf(host, sizeof(host), "/%s", *d);
        struct stat sb;
        if (lstat(host, &sb) < 0)
            continue;
        if (S_ISLNK(sb.st_mode)) {
            struct entry *e = add_entry(c, &r, *d, ENT_SYMLINK);
            ssize_t n = readlink(host, e->target, sizeof(e->target) - 1);
            if (n <= 0)
                child_fail(c, "native: cannot read the link %s", host);
            e->target[n] = '\0';
        } else if (S_ISDIR(sb.st_mode)) {
            struct entry *e = add_entry(c, &r, *d, ENT_TREE);
            e->tree_fd = clone_host_dir(c, host, ro);
        }
    }
    struct entry *tmp = add_entry(c, &r, "tmp", ENT_TREE);
    const char *home = s->guest_home ? s->guest_home : NATIVE_DEFAULT_HOME;
    struct entry *home_e = add_entry(c, &r, home, ENT_TREE);
    struct entry *ws = add_entry(c, &r, s->workspace, ENT_TREE);
    ws->tree_fd = clone_host_dir(c, s->workspace, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (s->home_source)
        home_e->tree_fd = clone_host_dir(c, s->home_source, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (s->bottle_dir) {
        struct entry *b = add_entry(c, &r, GUEST_BOTTLE_DIR, ENT_TREE);
        b->tree_fd = copy_bottle_files(c, &r, s->bottle_dir);
    }

    /* 2. The new root: a tmpfs attached over /tmp of this private mount namespace. */
    int root = new_tmpfs(c, &r, "0755", 0, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0);
    if (move_mount(root, "", AT_FDCWD, "/tmp", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        child_fail(c, "native: cannot attach the new root: %s", strerror(errno));
    r.root_fd = root;
    uint64_t size = agent_tmpfs_size(s);
    tmp->tree_fd = new_tmpfs(c, &r, "1777", 0, 0, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, size);
    if (!s->home_source)
        home_e->tree_fd =
            new_tmpfs(c, &r, "0700", s->uid, s->gid, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, size);

    /* 3. Attach, shallow paths first. */
    sort_entries(&r);
    for (size_t i = 0; i < r.n; i++) {
        struct entry *e = &r.e[i];
        if (e->kind == ENT_SYMLINK) {
            if (symlinkat(e->target, root, e->guest) < 0)
                child_fail(c, "native: cannot link /%s: %s", e->guest, strerror(errno));
            continue;
        }
        attach(c, &r, e->tree_fd, e->guest);
        close(e->tree_fd);
        e->tree_fd = -1;
    }
    guard_mounts(c, &r);
    build_dev(c, &r);
    int proc = open_target(c, &r, "proc");
    close(proc);

    /* 4. Pivot and drop the host's tree. */
    if (fchdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
        child_fail(c, "native: pivot_root: %s", strerror(errno));
    if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        child_fail(c, "native: cannot detach the host's root: %s", strerror(errno));
    close(root);
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        child_fail(c, "native: cannot mount /proc: %s", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        child_fail(c, "native: cannot make the root read-only: %s", strerror(errno));
    umask(022);
}

/* ---- privileges ---------------------------------------------------------------- */

static void drop_privileges(const struct native_child *c)
{
    const struct backend_spec *s = c->spec;
    for (unsigned long cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            child_fail(c, "native: cannot drop capability %lu: %s", cap, strerror(errno));
    gid_t groups[1] = {s->gid};
    /* Raw syscalls: this process has one thread and glibc must not broadcast. */
    if (syscall(SYS_setgroups, 1, groups) < 0 ||
        syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0 ||
        syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0)
        child_fail(c, "native: cannot switch to uid %u gid %u: %s", (unsigned)s->uid,
                   (unsigned)s->gid, strerror(errno));
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capset, &hdr, data) < 0)
        child_fail(c, "native: cannot clear capabilities: %s", strerror(errno));
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(c, "native: cannot set no_new_privs: %s", strerror(errno));
    if (getuid() == 0 || geteuid() == 0 || getgid() == 0 || getegid() == 0)
        child_fail(c, "native: refusing to run the agent as root");
    /* The bottle does not outlive its controller; credential changes reset this. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /*
     * The init holds the agent's whole environment (the canary included) and never execs:
     * another process of the agent's uid must not read its memory or environ. The change of
     * uid above already made it non-dumpable unless fs.suid_dumpable says otherwise; this
     * does not depend on that setting. An exec resets it: the agent itself is dumpable again
     * (docs/security.md says what protects it instead).
     */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        child_fail(c, "native: cannot make the bottle's init non-dumpable: %s", strerror(errno));
}

static void close_stray_fds(const struct native_child *c)
{
    const struct backend_spec *s = c->spec;
    for (int i = 0; i < 3; i++)
        if (s->stdio[i] >= 0 && s->stdio[i] != i && dup2(s->stdio[i], i) < 0)
            child_fail(c, "native: cannot set up fd %d: %s", i, strerror(errno));
    unsigned efd = (unsigned)c->err_fd;
    if (efd > 3)
        syscall(SYS_close_range, 3u, efd - 1, 0u);
    syscall(SYS_close_range, efd + 1, ~0u, 0u);
}

/* ---- init ------------------------------------------------------------------------ */

/* Fields 48 to 51 of /proc/self/stat: where the kernel finds argv and the environment. */
static bool arg_env_area(unsigned long v[4])
{
    char buf[2048];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
    if (!p)
        return false;
    p++;
    for (int field = 3; field < 48; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return false;
    }
    return sscanf(p, " %lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) == 4 && v[0] <= v[1] &&
           v[2] <= v[3];
}

/*
 * The init is a copy of the controller: without this, /proc/1/cmdline in the
 * bottle would show the operator's whole `bottle start` command line, and
 * its memory the controller's environment. The argument area is rewritten
 * the way setproctitle does it: the name, then zeros, and a last byte that
 * is not zero, which tells the kernel to show the area only up to the first
 * zero (so not even the old length shows). Runs before anything else.
 */
static void become_init(const struct native_child *c)
{
    static const char init_name[] = INIT_NAME;
    if (setsid() < 0) /* no host terminal is the controlling one of anything in the bottle */
        child_fail(c, "native: setsid: %s", strerror(errno));
    prctl(PR_SET_NAME, INIT_NAME, 0, 0, 0);
    unsigned long a[4];
    if (!arg_env_area(a) || a[1] == a[0])
        child_fail(c, "native: cannot find the init's command line in /proc/self/stat");
    char *args = (char *)a[0];
    size_t len = a[1] - a[0];
    memset((char *)a[2], 0, a[3] - a[2]);
    memset(args, 0, len);
    memcpy(args, init_name, len > sizeof(init_name) ? sizeof(init_name) : len);
    if (len > sizeof(init_name))
        args[len - 1] = ' '; /* not zero: the kernel shows the area up to the first zero */
}

_Noreturn static void exec_agent(const struct native_child *c, const sigset_t *mask)
{
    sigprocmask(SIG_SETMASK, mask, NULL);
    /* A session of its own; its terminal, when it has one, is the relay's pty. */
    setsid();
    if (c->spec->new_session && isatty(0))
        ioctl(0, TIOCSCTTY, 0);
    if (chdir(c->spec->workspace) < 0)
        child_fail(c, "native: cannot enter the workspace %s: %s", c->spec->workspace,
                   strerror(errno));
    environ = (char **)c->envp;
    execvp(c->argv[0], c->argv);
    int e = errno;
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "native: cannot run %s: %s", c->argv[0], strerror(e));
    ssize_t w = write(c->err_fd, msg, n > 0 ? (size_t)n : 0);
    (void)w;
    _exit(NATIVE_EXIT_EXEC);
}

_Noreturn static void run_init(const struct native_child *c)
{
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* Handlers and ignores from the controller must not reach the agent. */
    proc_reset_signals(false);

    pid_t agent = fork();
    if (agent < 0)
        child_fail(c, "native: cannot start the agent: %s", strerror(errno));
    if (agent == 0)
        exec_agent(c, &none);
    close(c->err_fd);
    /* Its memory is a copy of the controller's: nobody in the bottle may read it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(agent, sig);
            continue;
        }
        int status;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
            if (p != agent)
                continue; /* an orphan, reaped */
            /* Leaving as PID 1 makes the kernel kill whatever the agent left behind. */
            if (WIFEXITED(status))
                _exit(WEXITSTATUS(status));
            _exit(128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0));
        }
    }
}

_Noreturn void native_child_main(const struct native_child *c)
{
    const struct backend_spec *s = c->spec;
    if (c->gate_fd >= 0) {
        char b;
        if (read(c->gate_fd, &b, 1) != 1)
            _exit(NATIVE_EXIT_SETUP); /* the parent gave up */
        close(c->gate_fd);
    }
    become_init(c);
    if (setns(s->netns_fd, CLONE_NEWNET) < 0)
        child_fail(c, "native: cannot join the bottle's network namespace: %s", strerror(errno));
    if (sethostname(NATIVE_HOSTNAME, strlen(NATIVE_HOSTNAME)) < 0)
        child_fail(c, "native: cannot set the hostname: %s", strerror(errno));
    build_rootfs(c);
    close_stray_fds(c);
    drop_privileges(c);
    if (!s->no_seccomp) {
        struct strv none = STRV_INIT;
        struct bottle_err err = {0};
        if (seccomp_profile_apply(s->seccomp_extra ? s->seccomp_extra : &none, &err) < 0)
            child_fail(c, "native: %s", err.msg);
    }
    run_init(c);
}
