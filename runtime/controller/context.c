/* context — the controller's shared helpers (see context.h). */
#include "runtime/controller/context.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"

void controller_random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof(raw))
        bytes = sizeof(raw);
    if (getrandom(raw, bytes, 0) != (ssize_t)bytes)
        abort(); /* the kernel always has entropy after boot; never run without it */
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

bool controller_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return nanosleep(&ts, NULL) == 0;
}

/* Root-owned, group gid, mode: what the sidecar reads and the agent never can. */
int controller_own_for_proxy(const char *path, gid_t gid, mode_t mode, struct bottle_err *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchown(fd, 0, gid) < 0 || fchmod(fd, mode) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return err_set(err, e, "cannot set the owner of %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

int controller_own_at(int dir_fd, const char *dir, const char *name, gid_t gid, mode_t mode,
                      struct bottle_err *err)
{
    int fd = fs_open_beneath(dir_fd, name, O_RDONLY, 0);
    if (fd < 0)
        return err_set(err, -fd, "cannot open %s/%s: %s", dir, name, strerror(-fd));
    int rc = 0;
    if (fchown(fd, 0, gid) < 0 || fchmod(fd, mode) < 0)
        rc = err_set(err, errno, "cannot set the owner of %s/%s: %s", dir, name, strerror(errno));
    close(fd);
    return rc;
}

void controller_audit(struct controller *c, const char *action, uid_t by, const char *result)
{
    char ts[32], uid[16];
    time_t now = time(NULL);
    struct tm tm;
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    snprintf(uid, sizeof(uid), "%u", (unsigned)by);
    log_info("action", "slug", c->st.slug, "action", action, "by_uid", uid, "result", result, NULL);
    if (!c->st.path)
        return;
    char *path = fs_join(c->st.path, CONTROLLER_ACTIONS_LOG);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0)
        return;
    char *line = xasprintf("time=%s action=%s by_uid=%s result=\"%s\"\n", ts, action, uid, result);
    ssize_t w = write(fd, line, strlen(line));
    (void)w; /* the log line is best effort; the action already happened */
    free(line);
    close(fd);
}

void controller_notice(struct controller *c, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (c->opts && c->opts->notice)
        c->opts->notice(c->opts->arg, text);
    else
        log_warn(text, "slug", c->st.slug ? c->st.slug : "", NULL);
}
