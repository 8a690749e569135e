/*
 * cmd_dashboard — `bottle dashboard` (see dashboard.h for the model). Takes
 * argv with argv[0] = "dashboard"; returns the process exit code.
 */
#ifndef BOTTLE_CLI_CMD_DASHBOARD_H
#define BOTTLE_CLI_CMD_DASHBOARD_H

#include "runtime/cli/dashboard.h"

int cmd_dashboard(int argc, char **argv);

#endif
