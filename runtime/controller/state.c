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

int state_run_dir(const char *home, char **out, struct bottle_err *err)
{
    char *h = NULL;
    int hrc = home_or_default(home, &h, err);
    if (hrc < 0)
        return hrc;
    char *run = fs_join(h, "run");
    free(h);
    int rc = fs_mkdir_p(run, 0700, err);
    if (rc < 0) {
        free(run);
        return rc;
    }
    *out = run;
    return 0;
}

/*
 * Opens and flocks <run>/<slug>.lock without blocking. Returns the fd, -EBUSY
 * when another process holds it, or another negative errno.
 */
static int lock_slug(const char *lock_path, struct bottle_err *err)
{
    for (int tries = 0; tries < STATE_MAX_TRIES; tries++) {
        int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return err_set(err, errno, "state: cannot open %s: %s", lock_path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return -EBUSY;
            return err_set(err, e, "state: cannot lock %s: %s", lock_path, strerror(e));
        }
        struct stat by_fd, by_path;
        if (fstat(fd, &by_fd) == 0 && lstat(lock_path, &by_path) == 0 &&
            by_fd.st_ino == by_path.st_ino && by_fd.st_dev == by_path.st_dev)
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
static int try_slug(const char *home, const char *run, const char *slug, struct state_dir *st,
                    struct bottle_err *err)
{
    char *lock_name = xasprintf("%s.lock", slug);
    char *lock_path = fs_join(run, lock_name);
    free(lock_name);
    int fd = lock_slug(lock_path, err);
    if (fd < 0) {
        free(lock_path);
        return fd;
    }
    char *state_root = fs_join(home, "state");
    char *path = fs_join(state_root, slug);
    free(state_root);
    if (mkdir(path, 0700) < 0) {
        int e = errno;
        unlink(lock_path); /* we hold its lock, so removing it is ours to do */
        close(fd);
        free(lock_path);
        free(path);
        if (e == EEXIST)
            return -EEXIST;
        return err_set(err, e, "state: cannot create the state directory: %s", strerror(e));
    }
    st->home = xstrdup(home);
    st->slug = xstrdup(slug);
    st->path = path;
    st->lock = lock_path;
    st->lock_fd = fd;
    return 0;
}

int state_create(const char *home, const char *agent, const char *label, struct state_dir *st,
                 struct bottle_err *err)
{
    memset(st, 0, sizeof(*st));
    st->lock_fd = -1;
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
    int hrc = home_or_default(home, &h, err);
    if (hrc < 0)
        return hrc;
    char *state_root = fs_join(h, "state");
    char *run = NULL;
    int rc = fs_mkdir_p(state_root, 0700, err);
    free(state_root);
    if (rc >= 0)
        rc = state_run_dir(h, &run, err);
    if (rc < 0)
        goto out;

    if (label) {
        rc = try_slug(h, run, label, st, err);
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
        rc = try_slug(h, run, slug, st, err);
        free(slug);
    }
    if (rc == -EBUSY || rc == -EEXIST)
        rc = err_set(err, EEXIST, "state: no free slug for '%s' after %d tries", agent,
                     STATE_MAX_TRIES);
out:
    free(run);
    free(h);
    return rc;
}

int state_write_file(const struct state_dir *st, const char *name, const void *data, size_t len,
                     mode_t mode, struct bottle_err *err)
{
    if (!st->path || !name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return err_set(err, EINVAL, "state: '%s' is not a file name", name ? name : "");
    char *path = fs_join(st->path, name);
    int rc = fs_write_atomic(path, data, len, mode, err);
    free(path);
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
    memset(st, 0, sizeof(*st));
    st->lock_fd = -1;
}

int state_remove(struct state_dir *st, struct bottle_err *err)
{
    if (!st->path) {
        state_free_fields(st);
        return 0;
    }
    int rc = 0;
    int fd = open(st->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        rc = remove_below(fd);
    else if (errno != ENOENT)
        rc = -errno;
    if (rc == 0 && rmdir(st->path) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc < 0)
        err_set(err, -rc, "state: cannot remove %s: %s", st->path, strerror(-rc));
    if (st->lock_fd >= 0) {
        unlink(st->lock);
        close(st->lock_fd);
    }
    state_free_fields(st);
    return rc;
}

void state_close(struct state_dir *st)
{
    if (!st)
        return;
    if (st->lock && st->lock_fd >= 0)
        close(st->lock_fd);
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
