/* home — BOTTLE_HOME and the slug rule (see home.h). */
#include "common/home.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

int home_path(char **out, struct bottle_err *err)
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
