/*
 * cli — the `bottle` command line: the subcommand table, argument parsing,
 * help texts and exit codes. Subcommands live in runtime/cmd_*.c.
 */
#ifndef BOTTLE_RUNTIME_CLI_H
#define BOTTLE_RUNTIME_CLI_H

int cli_main(int argc, char **argv);

#endif
