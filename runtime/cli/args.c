#include "runtime/cli/args.h"

#include <stdio.h>
#include <string.h>

#include "runtime/cli/cli.h"

void args_init(struct args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
    a->cmd = argv[0];
    a->rest_at = argc;
    a->dashdash = -1;
    for (int k = 1; k < argc; k++)
        if (strcmp(argv[k], "--") == 0) {
            a->dashdash = k;
            a->rest_at = k + 1;
            break;
        }
}

int args_next(struct args *a)
{
    if (a->i >= a->argc || (a->dashdash >= 0 && a->i >= a->dashdash))
        return 0;
    char *s = a->argv[a->i++];
    a->inline_val = NULL;
    if (s[0] == '-' && s[1] != '\0') {
        char *eq = strchr(s, '=');
        if (eq && s[1] == '-' && (size_t)(eq - s) < sizeof(a->cur_buf)) {
            memcpy(a->cur_buf, s, (size_t)(eq - s));
            a->cur_buf[eq - s] = '\0';
            a->cur = a->cur_buf;
            a->inline_val = eq + 1;
        } else {
            a->cur = s;
        }
        return 1;
    }
    a->cur = s;
    return 2;
}

bool args_is(const struct args *a, const char *name)
{
    return strcmp(a->cur, name) == 0;
}

const char *args_value(struct args *a)
{
    if (a->inline_val)
        return a->inline_val;
    if (a->i < a->argc && a->i != a->dashdash)
        return a->argv[a->i++];
    cli_usage_error(a->cmd, "option %s needs a value", a->cur);
    return NULL;
}

bool args_no_value(struct args *a)
{
    if (a->inline_val) {
        cli_usage_error(a->cmd, "option %s takes no value", a->cur);
        return false;
    }
    return true;
}
