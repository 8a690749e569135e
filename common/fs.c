#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    struct bottle_err *err)
{
    char *dir_copy = xstrdup(path);
    char *dir = dirname(dir_copy);
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = err_set(err, errno, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (fchmod(fd, mode) < 0) {
        rc = err_set(err, errno, "cannot chmod %s: %s", tmp, strerror(errno));
        goto fail;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = err_set(err, errno, "cannot write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        rc = err_set(err, errno, "cannot fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = err_set(err, errno, "cannot close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = err_set(err, errno, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out:
    free(tmp);
    free(dir_copy);
    return rc;
}

int fs_open_beneath(int dir_fd, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd;
    do
        fd = syscall(SYS_openat2, dir_fd, rel, &how, sizeof(how));
    while (fd < 0 && errno == EAGAIN);
    return fd < 0 ? -errno : (int)fd;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_write_atomic_at(int dir_fd, const char *name, const void *data, size_t len, mode_t mode,
                       struct bottle_err *err)
{
    if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return err_set(err, EINVAL, "'%s' is not a file name", name ? name : "");
    char *tmp = xasprintf(".%s.tmp.%ld", name, (long)getpid());
    int rc = 0;
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        rc = err_set(err, errno, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int e = 0;
    if (fchmod(fd, mode) < 0)
        e = -errno;
    if (e == 0)
        e = write_all(fd, data, len);
    if (e == 0 && fsync(fd) < 0)
        e = -errno;
    if (close(fd) < 0 && e == 0)
        e = -errno;
    if (e == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
        e = -errno;
    if (e < 0) {
        unlinkat(dir_fd, tmp, 0);
        rc = err_set(err, -e, "cannot write %s: %s", name, strerror(-e));
    } else {
        (void)fsync(dir_fd);
    }
    free(tmp);
    return rc;
}

int fs_open_dir_walk(const char *path, bool private_to_root, mode_t create_mode,
                     struct bottle_err *err)
{
    if (!path || path[0] != '/')
        return err_set(err, EINVAL, "'%s' is not an absolute path", path ? path : "");
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cannot open /: %s", strerror(errno));
    char *copy = xstrdup(path);
    char *save = NULL;
    int rc = 0;
    struct buf walked = BUF_INIT;
    buf_append(&walked, "/", 1);
    const char *comp = strtok_r(copy, "/", &save);
    for (;;) {
        const char *next = comp ? strtok_r(NULL, "/", &save) : NULL;
        struct stat sb;
        if (fstat(fd, &sb) < 0) {
            rc = err_set(err, errno, "cannot inspect %s: %s", walked.data, strerror(errno));
            break;
        }
        bool last = comp == NULL;
        bool writable = (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0;
        if (private_to_root &&
            (sb.st_uid != 0 || (writable && (last || !(sb.st_mode & S_ISVTX))))) {
            rc = err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                              "%s is %s: as root, bottle keeps its files only where no other "
                              "user can change them",
                              walked.data,
                              sb.st_uid != 0 ? "not owned by root" : "writable by other users");
            break;
        }
        if (last)
            break;
        if (!strcmp(comp, ".") || !strcmp(comp, "..")) {
            rc = err_set(err, EINVAL, "'%s' holds '.' or '..'", path);
            break;
        }
        if (walked.len > 1)
            buf_append(&walked, "/", 1);
        buf_append(&walked, comp, strlen(comp));
        int flags = (next ? O_PATH : O_RDONLY) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        int sub = openat(fd, comp, flags);
        if (sub < 0 && errno == ENOENT && create_mode) {
            if (mkdirat(fd, comp, create_mode) < 0 && errno != EEXIST) {
                rc = err_set(err, errno, "cannot create directory %s: %s", walked.data,
                             strerror(errno));
                break;
            }
            sub = openat(fd, comp, flags);
        }
        if (sub < 0) {
            int e = errno;
            struct stat lsb;
            /* O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR or ELOOP. */
            bool is_link = (e == ELOOP || e == ENOTDIR) &&
                           fstatat(fd, comp, &lsb, AT_SYMLINK_NOFOLLOW) == 0 &&
                           S_ISLNK(lsb.st_mode);
            if (is_link)
                rc = err_set_kind(err, ERR_KIND_REFUSED, EPERM, "%s is a symbolic link",
                                  walked.data);
            else if (e == ENOTDIR)
                rc = err_set(err, ENOTDIR, "%s is not a directory", walked.data);
            else
                rc = err_set(err, e, "cannot open %s: %s", walked.data, strerror(e));
            break;
        }
        close(fd);
        fd = sub;
        comp = next;
    }
    buf_free(&walked);
    free(copy);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int fs_read_file(const char *path, size_t max_bytes, struct buf *out, struct bottle_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errno, "cannot read %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, EINVAL, "cannot read %s: not a regular file", path);
    }
    buf_reset(out);
    char chunk[8192];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return err_set(err, e, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max_bytes) {
            close(fd);
            return err_set(err, EFBIG, "cannot read %s: larger than %zu bytes", path, max_bytes);
        }
        buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    if (!out->data)
        buf_reserve(out, 0);
    return 0;
}

int fs_mkdir_p(const char *path, mode_t mode, struct bottle_err *err)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, mode) < 0 && errno != EEXIST) {
                rc = err_set(err, errno, "cannot create directory %s: %s", p, strerror(errno));
                break;
            }
            *s = saved;
            if (saved == '\0')
                break;
        }
    }
    free(p);
    if (rc == 0 && !fs_is_dir(path))
        rc = err_set(err, ENOTDIR, "%s exists and is not a directory", path);
    return rc;
}

bool fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool fs_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *fs_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    return xasprintf("%.*s/%s", (int)la, a, b);
}

char *fs_which(const char *program)
{
    if (strchr(program, '/'))
        return access(program, X_OK) == 0 ? xstrdup(program) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = xstrdup(path);
    char *save = NULL;
    char *found = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char *cand = fs_join(*dir ? dir : ".", program);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
            found = cand;
            break;
        }
        free(cand);
    }
    free(copy);
    return found;
}

const char *fs_home_dir(void)
{
    const char *sudo_user = getenv("SUDO_USER");
    if (geteuid() == 0 && sudo_user && *sudo_user && strcmp(sudo_user, "root") != 0) {
        struct passwd *pw = getpwnam(sudo_user);
        if (pw && pw->pw_dir)
            return pw->pw_dir;
    }
    const char *home = getenv("HOME");
    if (home && *home)
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw && pw->pw_dir ? pw->pw_dir : "/";
}
