/*
 * cli — the `bottle` command line below its table (runtime/main.c): the
 * subcommands and the small argument helpers every one of them shares.
 * Subcommands live in runtime/cli/cmd_*.c; each takes (argc, argv) with
 * argv[0] the subcommand's name, prints its own output and errors, and
 * returns the process exit code. Nothing below the CLI prints.
 */
#ifndef BOTTLE_CLI_CLI_H
#define BOTTLE_CLI_CLI_H

#include <stdbool.h>

#include "common/err.h"

/* Prints "bottle: <message>" and returns the exit code for the error. */
int cli_fail(const struct bottle_err *err);
/* Prints "bottle: <cmd>: <message>" plus a hint, returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses --format text|json; returns false (after printing) on a bad value. */
bool cli_parse_format(const char *cmd, const char *value, bool *json);
/* Prints "bottle: no bottle '<slug>'" with a hint and returns EXIT_USAGE (every command). */
int cli_no_bottle(const char *slug);
/*
 * For commands that walk argv themselves: --json, --format V or --format=V at
 * argv[*i] (advancing *i past a separate value). 1 taken, 0 not a format
 * option, -1 a bad or missing value (already printed; exit EXIT_USAGE).
 */
int cli_format_option(const char *cmd, int argc, char **argv, int *i, bool *json);
/* True when argv holds -h or --help before any "--". */
bool cli_wants_help(int argc, char **argv);
/*
 * Whose bottles a command may list and act on. Plain root (no SUDO_UID)
 * sees the whole host. Anyone else, and root under sudo acting for a user,
 * sees only the bottles of their own data home (home.h): the slug has a
 * state directory or a lock there. Host-wide places (cgroups, BPF pins,
 * namespaces, liveness locks) name every user's bottles; they are listed
 * only in the root view.
 */
bool cli_host_view(void);
bool cli_slug_is_callers(const char *home, const char *slug);

int cmd_start(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_cleanup(int argc, char **argv);
int cmd_budget(int argc, char **argv);
int cmd_trust(int argc, char **argv);

struct manifest_index;
/*
 * When the index's project files are untrusted or changed: prints which
 * files and the command that trusts them, and returns true (start refuses).
 */
bool cli_refuse_untrusted(const struct manifest_index *idx, const char *agent);
/* A one-line note on stderr when the project files are untrusted (read-only views). */
void cli_note_untrusted(const struct manifest_index *idx);
int cmd_metrics(int argc, char **argv);

#endif
