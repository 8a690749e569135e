/* cli — helpers every subcommand shares (see cli.h). */
#include "runtime/cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/home.h"

int cli_fail(const struct bottle_err *err)
{
    fprintf(stderr, "bottle: %s\n", err->msg[0] ? err->msg : "failed");
    int code = err_exit_code(err);
    return code ? code : EXIT_RUNTIME;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bottle: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'bottle %s --help')\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

bool cli_parse_format(const char *cmd, const char *value, bool *json)
{
    if (strcmp(value, "json") == 0) {
        *json = true;
        return true;
    }
    if (strcmp(value, "text") == 0) {
        *json = false;
        return true;
    }
    cli_usage_error(cmd, "--format must be 'text' or 'json', not '%s'", value);
    return false;
}

int cli_format_option(const char *cmd, int argc, char **argv, int *i, bool *json)
{
    const char *a = argv[*i];
    if (strcmp(a, "--json") == 0) {
        *json = true;
        return 1;
    }
    if (strcmp(a, "--format") != 0 && strncmp(a, "--format=", 9) != 0)
        return 0;
    const char *v = a[8] == '=' ? a + 9 : *i + 1 < argc ? argv[++*i] : NULL;
    if (!v) {
        cli_usage_error(cmd, "--format needs text or json");
        return -1;
    }
    return cli_parse_format(cmd, v, json) ? 1 : -1;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

int cli_no_bottle(const char *slug)
{
    fprintf(stderr, "bottle: no bottle '%s' (see 'bottle list active')\n", slug);
    return EXIT_USAGE;
}

bool cli_host_view(void)
{
    return geteuid() == 0 && !home_sudo_uid(NULL);
}

bool cli_slug_is_callers(const char *home, const char *slug)
{
    if (cli_host_view())
        return true;
    if (!home || !home_slug_valid(slug))
        return false;
    char *state = xasprintf("%s/state/%s", home, slug);
    char *lock = xasprintf("%s/run/%s.lock", home, slug);
    bool mine = access(state, F_OK) == 0 || access(lock, F_OK) == 0;
    free(state);
    free(lock);
    return mine;
}
