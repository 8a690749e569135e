/*
 * cmd_kernel — the kernel layer's subcommands: `bottle usage`, `bottle
 * cutoff`, `bottle events`, and the kernel section of `bottle doctor`.
 *
 * They work without a live controller, from the pins under <bpffs>/bottle/.
 * Each takes argv with argv[0] = the subcommand name, prints errors once as
 * "bottle: <message>" on stderr, and returns the process exit code (0 ok,
 * 1 runtime failure, 2 usage error, 3 refused).
 */
#ifndef BOTTLE_RUNTIME_CMD_KERNEL_H
#define BOTTLE_RUNTIME_CMD_KERNEL_H

#include <cjson/cJSON.h>

#include "common/buf.h"

int cmd_usage(int argc, char **argv);
int cmd_cutoff(int argc, char **argv);
int cmd_events(int argc, char **argv);

/*
 * Which policy programs load and attach on this host and whether socket
 * destroy works: text lines into out (when non-NULL) and an object added to
 * json as "bpf" (when non-NULL). Creates and removes a temporary cgroup.
 */
void bpf_doctor_report(struct buf *out, cJSON *json);

#endif
