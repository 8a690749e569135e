/*
 * args — a tiny option scanner shared by the subcommands: long options with
 * "--name value" or "--name=value", positional arguments in any order, and
 * everything after "--" kept apart (it belongs to the agent).
 */
#ifndef BOTTLE_CLI_ARGS_H
#define BOTTLE_CLI_ARGS_H

#include <stdbool.h>

struct args {
    int argc;
    char **argv;
    int i;            /* next index to read */
    const char *cmd;  /* subcommand name, for messages */
    char *cur;        /* the current option (without "=value") */
    char *inline_val; /* value after '=', or NULL */
    char cur_buf[64];
    int rest_at;  /* index after "--", or argc when absent */
    int dashdash; /* index of "--", or -1 */
};

void args_init(struct args *a, int argc, char **argv);
/*
 * Next element: returns 1 with a->cur set for an option (starts with '-'),
 * 2 with a->cur set for a positional argument, 0 at the end (or at "--").
 */
int args_next(struct args *a);
bool args_is(const struct args *a, const char *name);
/* The option's value (inline or next argument); NULL after printing a usage error. */
const char *args_value(struct args *a);
/* Fails when the current option was given "=value" but takes none. */
bool args_no_value(struct args *a);

#endif
