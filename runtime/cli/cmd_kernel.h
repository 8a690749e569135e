/*
 * cmd_kernel — the kernel layer's subcommands: `bottle usage`, `bottle
 * cutoff`, `bottle events`, `bottle freeze`/`thaw`, and the kernel section
 * of `bottle doctor`, plus the helpers the controller's control socket
 * shares with them.
 *
 * They work without a live controller, from the pins under <bpffs>/bottle/
 * and the bottle's cgroup; cutoff, freeze and thaw go through the bottle's
 * control socket when its controller serves one, so the action is logged
 * there.
 * Each takes argv with argv[0] = the subcommand name, prints errors once as
 * "bottle: <message>" on stderr, and returns the process exit code (0 ok,
 * 1 runtime failure, 2 usage error, 3 refused).
 */
#ifndef BOTTLE_CLI_CMD_KERNEL_H
#define BOTTLE_CLI_CMD_KERNEL_H

#include <cjson/cJSON.h>

#include <stdbool.h>

#include "common/buf.h"
#include "common/err.h"

int cmd_usage(int argc, char **argv);
int cmd_cutoff(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_freeze(int argc, char **argv);
int cmd_thaw(int argc, char **argv);

#endif
