/* home — the config and data homes, the sudo test and the slug rule (see home.h). */
#include "common/home.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"

bool home_sudo_uid(uid_t *uid)
{
    const char *s = getenv("SUDO_UID");
    if (geteuid() != 0 || !s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    bool number = !errno && end && !*end && s[0] >= '0' && s[0] <= '9';
    if (number && v == 0)
        return false; /* root that ran sudo: plain root */
    /* Not a usable id: still sudo (never plain root), and home_path refuses it. */
    if (uid)
        *uid = number && v < (unsigned long)(uid_t)-1 ? (uid_t)v : (uid_t)-1;
    return true;
}

int home_config_path(char **out, struct bottle_err *err)
{
    const char *env = getenv("BOTTLE_HOME");
    if (env && *env) {
        *out = xstrdup(env);
        return 0;
    }
    const char *home = fs_home_dir();
    if (!home || !*home)
        return err_set(err, ENOENT, "cannot find the home directory; set BOTTLE_HOME");
    *out = fs_join(home, ".bottle");
    return 0;
}

int home_path(char **out, struct bottle_err *err)
{
    uid_t uid;
    if (home_sudo_uid(&uid)) {
        if (uid == (uid_t)-1)
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                                "SUDO_UID='%s' is not a user id; run bottle through sudo, or as "
                                "root without SUDO_UID",
                                getenv("SUDO_UID"));
        *out = xasprintf("%s/%u", HOME_SUDO_ROOT, (unsigned)uid);
        return 0;
    }
    return home_config_path(out, err);
}

int home_check_private(const char *path, struct bottle_err *err)
{
    int fd = fs_open_dir_walk(path, true, 0, err);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

bool home_slug_valid(const char *slug)
{
    size_t n = slug ? strlen(slug) : 0;
    if (n == 0 || n > HOME_SLUG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = slug[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (i == 0 && !alnum)
            return false;
        if (!alnum && c != '-' && c != '_' && c != '.')
            return false;
    }
    return true;
}
