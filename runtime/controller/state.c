/*
 * state — see state.h.
 *
 * Slug ownership is two things at once: the state directory exists (mkdir is
 * atomic, so two starts never both create it) and the lock file is flocked.
 * A lock file is only unlinked by the process holding its lock; a process
 * that locked a file which was unlinked meanwhile notices (the inode behind
 * its fd is no longer the one at the path) and tries again.
 */
#include "runtime/controller/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"

#define STATE_MAX_TRIES 32

static int home_or_default(const char *home, char **out, struct bottle_err *err)
{
    if (home && *home) {
        *out = xstrdup(home);
        return 0;
    }
    return home_path(out, err);
}

void state_init(struct state_dir *st)
{
    memset(st, 0, sizeof(*st));
    st->lock_fd = st->root_fd = st->run_fd = st->dir_fd = -1;
}

int state_open_home(const char *home, struct bottle_err *err)
{
    return fs_open_dir_walk(home, geteuid() == 0, 0700, err);
}

/* Opens (creating, 0700) the directory name right below home_fd. */
static int open_subdir(int home_fd, const char *home, const char *name, struct bottle_err *err)
{
    if (mkdirat(home_fd, name, 0700) < 0 && errno != EEXIST)
        return err_set(err, errno, "state: cannot create %s/%s: %s", home, name, strerror(errno));
    int fd = fs_open_beneath(home_fd, name, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return err_set(err, -fd, "state: cannot open %s/%s: %s", home, name,
                       fd == -ELOOP ? "it is a symbolic link" : strerror(-fd));
    return fd;
}

int state_run_dir(const char *home, char **out, struct bottle_err *err)
{
    char *h = NULL;
    int hrc = home_or_default(home, &h, err);
    if (hrc < 0)
        return hrc;
    int home_fd = state_open_home(h, err);
    int rc = home_fd;
    if (home_fd >= 0) {
        rc = open_subdir(home_fd, h, "run", err);
        close(home_fd);
    }
    if (rc >= 0) {
        close(rc);
        *out = fs_join(h, "run");
        rc = 0;
    }
    free(h);
    return rc;
}

/*
 * Opens and flocks <run>/<name> without blocking. Returns the fd, -EBUSY
 * when another process holds it, or another negative errno.
 */
static int lock_slug(int run_fd, const char *name, const char *lock_path, struct bottle_err *err)
{
    for (int tries = 0; tries < STATE_MAX_TRIES; tries++) {
        int fd = openat(run_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return err_set(err, errno, "state: cannot open %s: %s", lock_path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return -EBUSY;
            return err_set(err, e, "state: cannot lock %s: %s", lock_path, strerror(e));
        }
        struct stat by_fd, by_name;
        if (fstat(fd, &by_fd) == 0 && fstatat(run_fd, name, &by_name, AT_SYMLINK_NOFOLLOW) == 0 &&
            by_fd.st_ino == by_name.st_ino && by_fd.st_dev == by_name.st_dev)
            return fd;
        close(fd); /* unlinked under us by the previous holder: try the new file */
    }
    return err_set(err, EAGAIN, "state: %s keeps changing; try again", lock_path);
}

static void random_base36(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    unsigned char raw[16];
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(raw, sizeof(raw), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* the kernel's CSPRNG is not optional */
        }
        /* 252 = 7 * 36: reject the tail so every digit is equally likely. */
        for (ssize_t i = 0; i < r && got < n; i++)
            if (raw[i] < 252)
                out[got++] = digits[raw[i] % 36];
    }
    out[n] = '\0';
}

/* Tries to own one slug: lock it, then create its directory. -EBUSY/-EEXIST when taken. */
static int try_slug(const char *home, const char *slug, struct state_dir *st,
                    struct bottle_err *err)
{
    char *lock_name = xasprintf("%s.lock", slug);
    char *rel = xasprintf("run/%s", lock_name);
    char *lock_path = fs_join(home, rel);
    free(rel);
    int fd = lock_slug(st->run_fd, lock_name, lock_path, err);
    if (fd < 0) {
        free(lock_name);
        free(lock_path);
        return fd;
    }
    int dir_fd = -1;
    int e = mkdirat(st->root_fd, slug, 0700) < 0 ? errno : 0;
    if (e == 0) {
        dir_fd = fs_open_beneath(st->root_fd, slug, O_RDONLY | O_DIRECTORY, 0);
        e = dir_fd < 0 ? -dir_fd : 0;
    }
    if (e != 0) {
        unlinkat(st->run_fd, lock_name, 0); /* we hold its lock, so removing it is ours to do */
        close(fd);
        free(lock_name);
        free(lock_path);
        if (e == EEXIST)
            return -EEXIST;
        return err_set(err, e, "state: cannot create the state directory: %s", strerror(e));
    }
    free(lock_name);
    char *state_rel = xasprintf("state/%s", slug);
    st->home = xstrdup(home);
    st->slug = xstrdup(slug);
    st->path = fs_join(home, state_rel);
    free(state_rel);
    st->lock = lock_path;
    st->lock_fd = fd;
    st->dir_fd = dir_fd;
    return 0;
}

/* Opens the home and its state/ and run/ directories into st. */
static int open_roots(const char *home, struct state_dir *st, struct bottle_err *err)
{
    int home_fd = state_open_home(home, err);
    if (home_fd < 0)
        return home_fd;
    int rc = open_subdir(home_fd, home, "state", err);
    if (rc >= 0) {
        st->root_fd = rc;
        rc = open_subdir(home_fd, home, "run", err);
    }
    if (rc >= 0)
        st->run_fd = rc;
    close(home_fd);
    return rc < 0 ? rc : 0;
}

int state_create(const char *home, const char *agent, const char *label, struct state_dir *st,
                 struct bottle_err *err)
{
    state_init(st);
    if (label && !home_slug_valid(label))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "label '%s' is not usable: use 1 to %d letters, digits, '.', '_' or "
                            "'-', starting with a letter or digit",
                            label, HOME_SLUG_MAX);
    if (!label && (!agent || !home_slug_valid(agent) ||
                   strlen(agent) + 1 + STATE_SLUG_RANDOM_LEN > HOME_SLUG_MAX))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "agent name '%s' cannot start a slug; give a --label",
                            agent ? agent : "");

    char *h = NULL;
    int rc = home_or_default(home, &h, err);
    if (rc < 0)
        return rc;
    rc = open_roots(h, st, err);
    if (rc < 0)
        goto out;

    if (label) {
        rc = try_slug(h, label, st, err);
        if (rc == -EBUSY || rc == -EEXIST)
            rc = err_set_kind(err, ERR_KIND_USAGE, EEXIST,
                              "label '%s' is already in use by a bottle; pick another or run "
                              "'bottle cleanup'",
                              label);
        goto out;
    }
    rc = -EEXIST;
    for (int tries = 0; tries < STATE_MAX_TRIES && (rc == -EBUSY || rc == -EEXIST); tries++) {
        char suffix[STATE_SLUG_RANDOM_LEN + 1];
        random_base36(suffix, STATE_SLUG_RANDOM_LEN);
        char *slug = xasprintf("%s-%s", agent, suffix);
        rc = try_slug(h, slug, st, err);
        free(slug);
    }
    if (rc == -EBUSY || rc == -EEXIST)
        rc = err_set(err, EEXIST, "state: no free slug for '%s' after %d tries", agent,
                     STATE_MAX_TRIES);
out:
    if (rc < 0)
        state_close(st);
    free(h);
    return rc;
}

int state_open_stale(const char *home, const char *slug, struct state_dir *st,
                     struct bottle_err *err)
{
    state_init(st);
    if (!home_slug_valid(slug))
        return err_set(err, EINVAL, "state: '%s' is not a slug", slug ? slug : "");
    int rc = open_roots(home, st, err);
    if (rc < 0) {
        state_close(st);
        return rc;
    }
    char *lock_name = xasprintf("%s.lock", slug);
    char *rel = xasprintf("run/%s", lock_name);
    char *lock_path = fs_join(home, rel);
    free(rel);
    rc = lock_slug(st->run_fd, lock_name, lock_path, err);
    free(lock_name);
    if (rc < 0) {
        free(lock_path);
        state_close(st);
        return rc == -EBUSY ? err_set(err, EBUSY, "state of '%s' was taken meanwhile", slug) : rc;
    }
    st->lock_fd = rc;
    st->lock = lock_path;
    st->home = xstrdup(home);
    st->slug = xstrdup(slug);
    char *state_rel = xasprintf("state/%s", slug);
    st->path = fs_join(home, state_rel);
    free(state_rel);
    int fd = fs_open_beneath(st->root_fd, slug, O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0)
        st->dir_fd = fd;
    else if (fd != -ENOENT)
        rc = err_set(err, -fd, "state: cannot open %s: %s", st->path,
                     fd == -ELOOP ? "it is a symbolic link" : strerror(-fd));
    if (rc < 0)
        state_close(st);
    return rc < 0 ? rc : 0;
}

int state_write_file(const struct state_dir *st, const char *name, const void *data, size_t len,
                     mode_t mode, struct bottle_err *err)
{
    if (st->dir_fd < 0)
        return err_set(err, EBADF, "state: no state directory to write '%s' in", name ? name : "");
    int rc = fs_write_atomic_at(st->dir_fd, name, data, len, mode, err);
    if (rc < 0)
        err_prefix(err, "state: %s", st->path);
    return rc;
}

int state_write_plan(const struct state_dir *st, const struct plan *plan, struct bottle_err *err)
{
    cJSON *doc = plan_to_json(plan);
    if (!doc)
        return err_set(err, ENOMEM, "state: cannot render the plan");
    char *text = json_to_text(doc, true);
    cJSON_Delete(doc);
    if (!text)
        return err_set(err, ENOMEM, "state: cannot render the plan");
    int rc = state_write_file(st, "plan.json", text, strlen(text), 0600, err);
    free(text);
    return rc;
}

/* Removes everything below dir_fd without following symlinks; closes dir_fd. */
static int remove_below(int dir_fd)
{
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        int e = errno;
        close(dir_fd);
        return -e;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat sb;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0 || remove_below(sub) < 0 ||
                unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0)
                rc = rc ? rc : -errno;
        } else if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
            rc = rc ? rc : -errno;
        }
    }
    closedir(d);
    return rc;
}

static void state_free_fields(struct state_dir *st)
{
    free(st->home);
    free(st->slug);
    free(st->path);
    free(st->lock);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    if (st->root_fd >= 0)
        close(st->root_fd);
    if (st->run_fd >= 0)
        close(st->run_fd);
    if (st->dir_fd >= 0)
        close(st->dir_fd);
    state_init(st);
}

int state_remove(struct state_dir *st, struct bottle_err *err)
{
    if (!st->slug || st->root_fd < 0) {
        state_free_fields(st);
        return 0;
    }
    int rc = 0;
    if (st->dir_fd >= 0) {
        rc = remove_below(st->dir_fd); /* closes it */
        st->dir_fd = -1;
    }
    if (rc == 0 && unlinkat(st->root_fd, st->slug, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc < 0)
        err_set(err, -rc, "state: cannot remove %s: %s", st->path, strerror(-rc));
    if (st->lock_fd >= 0 && st->run_fd >= 0) {
        char *name = xasprintf("%s.lock", st->slug);
        unlinkat(st->run_fd, name, 0); /* ours: we hold its lock */
        free(name);
    }
    state_free_fields(st);
    return rc;
}

void state_close(struct state_dir *st)
{
    if (!st)
        return;
    state_free_fields(st);
}

int state_slug_active(const char *home, const char *slug, bool *active, struct bottle_err *err)
{
    *active = false;
    if (!home_slug_valid(slug))
        return err_set(err, EINVAL, "state: '%s' is not a slug", slug ? slug : "");
    char *h = NULL;
    int hrc = home_or_default(home, &h, err);
    if (hrc < 0)
        return hrc;
    char *name = xasprintf("run/%s.lock", slug);
    char *path = fs_join(h, name);
    free(name);
    free(h);
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        if (flock(fd, LOCK_SH | LOCK_NB) < 0) {
            if (errno == EWOULDBLOCK)
                *active = true;
            else
                rc = err_set(err, errno, "state: cannot test %s: %s", path, strerror(errno));
        }
        close(fd);
    } else if (errno != ENOENT) {
        rc = err_set(err, errno, "state: cannot open %s: %s", path, strerror(errno));
    }
    free(path);
    return rc;
}

/* ---- host-wide liveness ------------------------------------------------------ */

/*
 * A POSIX record lock, not flock: a forked child (the bottle's init, the
 * sidecar before exec) shares flock locks with its parent but never record
 * locks, so the lock dies with the controller itself.
 */
int state_live_lock(const char *slug, struct bottle_err *err)
{
    int rc = fs_mkdir_p(STATE_LIVE_DIR, 0700, err);
    if (rc < 0)
        return rc;
    char *path = xasprintf("%s/%s.lock", STATE_LIVE_DIR, slug);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0) {
        rc = err_set(err, errno, "cannot open %s: %s", path, strerror(errno));
    } else if (fcntl(fd, F_SETLK, &fl) < 0) {
        rc = err_set_kind(err, ERR_KIND_USAGE, EEXIST,
                          "a bottle named '%s' is already running on this host; pick another "
                          "--label",
                          slug);
        close(fd);
    } else {
        rc = fd;
    }
    free(path);
    return rc;
}

pid_t state_live_pid(const char *slug)
{
    char *path = xasprintf("%s/%s.lock", STATE_LIVE_DIR, slug);
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    pid_t pid = 0;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
        pid = fl.l_pid;
    close(fd);
    return pid;
}

bool state_slug_live(const char *slug)
{
    return state_live_pid(slug) > 0;
}
