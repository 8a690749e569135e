/*
 * guard — which workspace paths a bottle keeps read-only (see guard.h).
 *
 * Every lookup goes through openat2 beneath the workspace with
 * RESOLVE_NO_SYMLINKS: a symlink is seen as one, never followed.
 */
#include "backends/guard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/fs.h"
#include "manifest/plan.h"

struct builder {
    const char *ws;
    int wsfd;
    struct guard_list *out;
    struct bottle_err *err;
};

static int open_beneath(int dirfd, const char *rel, int flags)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
}

/* 0 with *st when rel exists; -ENOENT when not; -ELOOP when it is or passes a symlink. */
static int probe(const struct builder *b, const char *rel, struct stat *st)
{
    int fd = open_beneath(b->wsfd, rel, O_PATH | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOTDIR ? -ENOENT : -errno;
    int rc = fstat(fd, st) < 0 ? -errno : 0;
    close(fd);
    if (rc == 0 && S_ISLNK(st->st_mode))
        return -ELOOP;
    return rc;
}

static int refuse_link(const struct builder *b, const char *rel, const char *why)
{
    return err_set_kind(b->err, ERR_KIND_REFUSED, ELOOP,
                        "workspace: %s/%s is (or passes through) a symbolic link; %s", b->ws, rel,
                        why);
}

static int probe_failed(const struct builder *b, const char *rel, int rc)
{
    if (rc == -ELOOP)
        return refuse_link(b, rel,
                           "bottle keeps it read-only only when it is a file or a directory "
                           "(replace the link)");
    return err_set(b->err, -rc, "workspace: cannot inspect %s/%s: %s", b->ws, rel, strerror(-rc));
}

static void add(struct builder *b, const char *rel, enum guard_kind kind, bool dir)
{
    for (size_t i = 0; i < b->out->len; i++) {
        struct guard_path *g = &b->out->items[i];
        if (strcmp(g->rel, rel) == 0) {
            if (kind == GUARD_READ_ONLY)
                g->kind = GUARD_READ_ONLY;
            return;
        }
    }
    b->out->items = xrealloc(b->out->items, (b->out->len + 1) * sizeof(*b->out->items));
    struct guard_path *g = &b->out->items[b->out->len++];
    g->rel = xstrdup(rel);
    g->kind = kind;
    g->dir = dir;
}

/*
 * A file with another name (a hard link) could be changed through that name,
 * which no mount covers: refused.
 */
static int add_read_only(struct builder *b, const char *rel, const struct stat *st)
{
    if (S_ISREG(st->st_mode) && st->st_nlink > 1)
        return err_set_kind(b->err, ERR_KIND_REFUSED, EMLINK,
                            "workspace: %s/%s has %lu hard links; the agent could change it "
                            "through another name (make it a single file again)",
                            b->ws, rel, (unsigned long)st->st_nlink);
    add(b, rel, GUARD_READ_ONLY, S_ISDIR(st->st_mode));
    return 0;
}

static char *join_rel(const char *a, const char *b)
{
    return *a ? xasprintf("%s/%s", a, b) : xstrdup(b);
}

/* Creates a missing git entry (and missing directories on the way) inside gitdir. */
static int create_entry(struct builder *b, const char *gitdir, const char *sub, bool dir)
{
    int cur = open_beneath(b->wsfd, gitdir, O_PATH | O_DIRECTORY);
    struct stat owner;
    if (cur < 0 || fstat(cur, &owner) < 0) {
        int e = errno;
        if (cur >= 0)
            close(cur);
        return err_set(b->err, e, "workspace: cannot open %s/%s: %s", b->ws, gitdir, strerror(e));
    }
    char *copy = xstrdup(sub);
    char *save = NULL;
    int rc = 0;
    char *comp = strtok_r(copy, "/", &save);
    while (comp && rc == 0) {
        char *next = strtok_r(NULL, "/", &save);
        bool last = next == NULL;
        int made;
        if (!last || dir)
            made = mkdirat(cur, comp, 0755);
        else {
            int fd = openat(cur, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            made = fd < 0 ? -1 : close(fd);
        }
        if (made == 0) {
            if (fchownat(cur, comp, owner.st_uid, owner.st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                fchmodat(cur, comp, (!last || dir) ? 0755 : 0644, 0) < 0)
                rc = err_set(b->err, errno, "workspace: cannot set up %s/%s/%s: %s", b->ws, gitdir,
                             sub, strerror(errno));
        } else if (errno != EEXIST) {
            rc = err_set(b->err, errno, "workspace: cannot create %s/%s/%s: %s", b->ws, gitdir, sub,
                         strerror(errno));
        }
        if (rc == 0 && !last) {
            struct open_how how;
            memset(&how, 0, sizeof(how));
            how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
            how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
            int nfd = (int)syscall(SYS_openat2, cur, comp, &how, sizeof(how));
            if (nfd < 0)
                rc = refuse_link(b, gitdir, "a directory on the way to a git setting is a link");
            close(cur);
            cur = nfd;
        }
        comp = next;
    }
    free(copy);
    if (cur >= 0)
        close(cur);
    if (rc == 0) {
        char *rel = join_rel(gitdir, sub);
        strv_push_owned(&b->out->created, rel);
    }
    return rc;
}

/* The settings inside one git directory (`.git`, or where a gitdir file points). */
static int guard_gitdir(struct builder *b, const char *gitdir)
{
    add(b, gitdir, GUARD_PIN, true);
    for (const struct plan_git_guard *g = plan_git_guards; g->path; g++) {
        if (!str_starts_with(g->path, ".git/"))
            continue;
        const char *sub = g->path + 5;
        char *rel = join_rel(gitdir, sub);
        struct stat st;
        int rc = probe(b, rel, &st);
        if (rc == -ENOENT && g->create) {
            rc = create_entry(b, gitdir, sub, g->dir);
            if (rc < 0) {
                free(rel);
                return rc;
            }
            rc = probe(b, rel, &st);
        }
        if (rc == 0)
            rc = add_read_only(b, rel, &st);
        else if (rc == -ENOENT)
            strv_push(&b->out->absent, rel);
        else
            rc = probe_failed(b, rel, rc);
        free(rel);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return 0;
}

/* Lexically normalized "a/b/../c" -> "a/c"; NULL when it climbs above its start. */
static char *normalize(const char *path)
{
    struct strv parts = STRV_INIT;
    char *copy = xstrdup(path);
    char *save = NULL;
    bool ok = true;
    for (char *c = strtok_r(copy, "/", &save); c && ok; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            ok = parts.len > 0;
            if (ok)
                free(parts.items[--parts.len]);
            continue;
        }
        strv_push(&parts, c);
    }
    free(copy);
    struct buf b = BUF_INIT;
    for (size_t i = 0; ok && i < parts.len; i++)
        buf_printf(&b, "%s%s", i ? "/" : "", parts.items[i]);
    strv_free(&parts);
    char *out = ok ? xstrdup(b.data ? b.data : "") : NULL;
    buf_free(&b);
    return out;
}

/*
 * A `.git` file ("gitdir: PATH", worktrees and submodules): the file is
 * kept read-only, and the git directory it names too when that lies in the
 * workspace. A path to it that only symlinks make reach the workspace is
 * refused: the agent could turn the link elsewhere.
 */
static int guard_gitfile(struct builder *b, const char *repo, const char *dotgit,
                         const struct stat *st)
{
    int rc = add_read_only(b, dotgit, st);
    if (rc < 0)
        return rc;
    int fd = open_beneath(b->wsfd, dotgit, O_RDONLY | O_NOFOLLOW);
    char text[PATH_MAX + 16];
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0 || strncmp(text, "gitdir: ", 8) != 0)
        return 0;
    text[n] = '\0';
    text[strcspn(text, "\r\n")] = '\0';
    const char *target = text + 8;
    char *lexical = NULL;
    if (target[0] == '/') {
        size_t wl = strlen(b->ws);
        char *abs = normalize(target);
        if (abs && strncmp(abs, b->ws + 1, wl - 1) == 0 && (abs[wl - 1] == '/' || !abs[wl - 1]))
            lexical = xstrdup(abs[wl - 1] ? abs + wl : "");
        free(abs);
    } else {
        char *joined = join_rel(repo, target);
        lexical = normalize(joined);
        free(joined);
    }
    char *full = target[0] == '/' ? xstrdup(target) : xasprintf("%s/%s/%s", b->ws, repo, target);
    char *real = realpath(full, NULL);
    free(full);
    size_t wl = strlen(b->ws);
    const char *real_rel = NULL;
    if (real && strncmp(real, b->ws, wl) == 0 && real[wl] == '/')
        real_rel = real + wl + 1;
    if (real_rel && (!lexical || strcmp(lexical, real_rel) != 0))
        rc = refuse_link(b, dotgit, "the git directory it names is reached through a link");
    else if (real_rel)
        rc = guard_gitdir(b, real_rel);
    free(real);
    free(lexical);
    return rc;
}

static int guard_repo(struct builder *b, const char *repo)
{
    char *dotgit = join_rel(repo, ".git");
    struct stat st;
    int rc = probe(b, dotgit, &st);
    if (rc == -ENOENT) {
        free(dotgit);
        return 0; /* not a repository */
    }
    strv_push(&b->out->repos, repo);
    if (rc < 0)
        rc = refuse_link(b, dotgit,
                         "bottle keeps a repository's settings read-only only when .git is a "
                         "directory or a gitdir file");
    else if (S_ISDIR(st.st_mode))
        rc = guard_gitdir(b, dotgit);
    else if (S_ISREG(st.st_mode))
        rc = guard_gitfile(b, repo, dotgit, &st);
    free(dotgit);
    /* Work-tree entries (.gitmodules): protected when present, never created. */
    for (const struct plan_git_guard *g = plan_git_guards; rc == 0 && g->path; g++) {
        if (str_starts_with(g->path, ".git/"))
            continue;
        char *rel = join_rel(repo, g->path);
        int p = probe(b, rel, &st);
        if (p == 0)
            rc = add_read_only(b, rel, &st);
        else if (p != -ENOENT)
            rc = probe_failed(b, rel, p);
        free(rel);
    }
    return rc;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The workspace and each directory at its top that holds a .git. */
static int guard_repos(struct builder *b)
{
    int rc = guard_repo(b, "");
    int dfd = rc == 0 ? openat(b->wsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (rc == 0 && !d) {
        if (dfd >= 0)
            close(dfd);
        return err_set(b->err, errno, "workspace: cannot list %s: %s", b->ws, strerror(errno));
    }
    struct strv names = STRV_INIT;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            strcmp(de->d_name, ".git") != 0)
            strv_push(&names, de->d_name);
    if (d)
        closedir(d);
    if (names.len > 1)
        qsort(names.items, names.len, sizeof(char *), cmp_name);
    for (size_t i = 0; rc == 0 && i < names.len; i++) {
        struct stat st;
        if (probe(b, names.items[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = guard_repo(b, names.items[i]);
    }
    strv_free(&names);
    return rc;
}

static int guard_declared(struct builder *b, const struct strv *read_only)
{
    for (size_t i = 0; read_only && i < read_only->len; i++) {
        const char *rel = read_only->items[i];
        struct stat st;
        int rc = probe(b, rel, &st);
        if (rc == -ENOENT) {
            strv_push(&b->out->missing, rel);
            continue;
        }
        if (rc == -EXDEV)
            return err_set_kind(b->err, ERR_KIND_USAGE, EXDEV,
                                "workspace.read_only: '%s' is not inside the workspace", rel);
        if (rc < 0)
            return probe_failed(b, rel, rc);
        rc = add_read_only(b, rel, &st);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static size_t depth(const char *rel)
{
    size_t d = 0;
    for (const char *p = rel; *p; p++)
        d += *p == '/';
    return d;
}

static int cmp_guard(const void *a, const void *b)
{
    const struct guard_path *x = a, *y = b;
    size_t dx = depth(x->rel), dy = depth(y->rel);
    if (dx != dy)
        return dx < dy ? -1 : 1;
    return strcmp(x->rel, y->rel);
}

/* Pins every directory between the workspace and a protected path. */
static void pin_parents(struct builder *b)
{
    size_t n = b->out->len;
    for (size_t i = 0; i < n; i++) {
        char *rel = xstrdup(b->out->items[i].rel);
        for (char *slash = strchr(rel, '/'); slash; slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            add(b, rel, GUARD_PIN, true);
            *slash = '/';
        }
        free(rel);
    }
}

int guard_list_build(const char *workspace, const struct strv *read_only, struct guard_list *out,
                     struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int wsfd = (int)syscall(SYS_openat2, AT_FDCWD, workspace, &how, sizeof(how));
    if (wsfd < 0)
        return err_set(err, errno, "workspace: cannot open %s without following symlinks: %s",
                       workspace, strerror(errno));
    struct builder b = {.ws = workspace, .wsfd = wsfd, .out = out, .err = err};
    int rc = guard_repos(&b);
    if (rc == 0)
        rc = guard_declared(&b, read_only);
    close(wsfd);
    if (rc == 0) {
        pin_parents(&b);
        if (out->len > GUARD_MAX_PATHS)
            rc = err_set_kind(err, ERR_KIND_REFUSED, E2BIG,
                              "workspace: %zu paths to keep read-only in %s (at most %d); fewer "
                              "repositories at the top of the workspace, please",
                              out->len, workspace, GUARD_MAX_PATHS);
    }
    if (rc < 0) {
        guard_list_free(out);
        return rc;
    }
    if (out->len > 1)
        qsort(out->items, out->len, sizeof(*out->items), cmp_guard);
    return 0;
}

void guard_list_free(struct guard_list *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->len; i++)
        free(g->items[i].rel);
    free(g->items);
    strv_free(&g->missing);
    strv_free(&g->created);
    strv_free(&g->absent);
    strv_free(&g->repos);
    memset(g, 0, sizeof(*g));
}

/* ---- after the bottle -------------------------------------------------------------- */

static int move_aside(const struct builder *b, const char *rel, struct strv *report)
{
    struct stat st;
    int rc = probe(b, rel, &st);
    if (rc == -ENOENT)
        return 0;
    char *parent = xstrdup(rel);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : rel;
    if (slash)
        *slash = '\0';
    int pfd = slash ? open_beneath(b->wsfd, parent, O_PATH | O_DIRECTORY) : dup(b->wsfd);
    char *aside = xasprintf("%s%s", base, GUARD_PLANTED_SUFFIX);
    if (pfd < 0 || renameat(pfd, base, pfd, aside) < 0)
        rc = err_set(b->err, errno, "workspace: cannot move %s/%s aside: %s", b->ws, rel,
                     strerror(errno));
    else
        strv_push_owned(report,
                        xasprintf("the agent created %s/%s, which would make git on this host "
                                  "read its settings from elsewhere; moved it to %s/%s%s",
                                  b->ws, rel, b->ws, rel, GUARD_PLANTED_SUFFIX));
    if (pfd >= 0)
        close(pfd);
    free(aside);
    free(parent);
    return rc;
}

static void report_new_repo(const struct builder *b, const struct guard_list *g, const char *repo,
                            struct strv *report)
{
    char *dotgit = join_rel(repo, ".git");
    struct stat st;
    int rc = probe(b, dotgit, &st);
    if (rc != -ENOENT && !strv_contains(&g->repos, repo))
        strv_push_owned(report,
                        xasprintf("the agent made %s%s%s a git repository; its settings were not "
                                  "kept read-only: check %s/%s/config and hooks before running "
                                  "git there",
                                  b->ws, *repo ? "/" : "", repo, b->ws, dotgit));
    free(dotgit);
}

int guard_audit(const char *workspace, const struct guard_list *g, struct strv *report,
                struct bottle_err *err)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    int wsfd = (int)syscall(SYS_openat2, AT_FDCWD, workspace, &how, sizeof(how));
    if (wsfd < 0)
        return err_set(err, errno, "workspace: cannot open %s: %s", workspace, strerror(errno));
    struct builder b = {.ws = workspace, .wsfd = wsfd, .err = err};
    int rc = 0;
    for (size_t i = 0; i < g->absent.len; i++) {
        int r = move_aside(&b, g->absent.items[i], report);
        if (r < 0 && rc == 0)
            rc = r;
    }
    report_new_repo(&b, g, "", report);
    int dfd = openat(wsfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct strv names = STRV_INIT;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
            strcmp(de->d_name, ".git") != 0)
            strv_push(&names, de->d_name);
    if (d)
        closedir(d);
    else if (dfd >= 0)
        close(dfd);
    if (names.len > 1)
        qsort(names.items, names.len, sizeof(char *), cmp_name);
    for (size_t i = 0; i < names.len; i++) {
        struct stat st;
        if (probe(&b, names.items[i], &st) == 0 && S_ISDIR(st.st_mode))
            report_new_repo(&b, g, names.items[i], report);
    }
    strv_free(&names);
    close(wsfd);
    return rc;
}
