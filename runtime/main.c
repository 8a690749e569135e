/*
 * bottle — the command table and the entry point. Each command lives in
 * runtime/cli/cmd_*.c, parses its own arguments and returns the exit code.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "runtime/cli/cli.h"
#include "runtime/cli/cmd_dashboard.h"
#include "runtime/cli/cmd_kernel.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"start", cmd_start, "run an agent in a bottle (or print its plan with --dry-run)"},
    {"list", cmd_list, "list available agents and bottles, or active bottles"},
    {"info", cmd_info, "show an agent or a bottle, resolved"},
    {"policy", cmd_policy, "ask the route matcher whether a request would pass"},
    {"stop", cmd_stop, "stop a running bottle and tear it down"},
    {"freeze", cmd_freeze, "stop every process of a bottle where it is (thaw: go on)"},
    {"thaw", cmd_thaw, "let a frozen bottle go on"},
    {"commit", cmd_commit, "snapshot a running Docker bottle (start --resume boots it again)"},
    {"cleanup", cmd_cleanup, "remove what crashed bottles left behind (--dry-run: list it)"},
    {"doctor", cmd_doctor, "report what this host can enforce"},
    {"usage", cmd_usage, "bytes, packets and connects of bottles, from the kernel counters"},
    {"cutoff", cmd_cutoff, "cut a bottle's network off at once (or --restore it)"},
    {"events", cmd_events, "denied connection attempts of a bottle"},
    {"budget", cmd_budget, "token budgets of bottles: limit, where declared, spent, left"},
    {"trust", cmd_trust, "trust a project's own agents and bottles (./.bottle/), list, revoke"},
    {"metrics", cmd_metrics, "token usage, budgets, pools and bytes in Prometheus' text format"},
    {"dashboard", cmd_dashboard, "live view of every bottle's usage and state, with actions"},
};

static void print_main_help(FILE *f)
{
    fprintf(f, "usage: bottle <command> [options]\n"
               "       bottle <command> --help\n"
               "       bottle --version\n\n"
               "bottle runs an AI coding agent in a sandbox whose only way out is an egress\n"
               "sidecar that enforces routes, injects credentials and meters usage.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nexit codes: 0 ok, 1 runtime failure, 2 usage or manifest error,\n"
               "            3 refused by policy or enforcement tier;\n"
               "            `bottle start` passes the agent's own exit code through.\n"
               "environment: BOTTLE_HOME (default ~/.bottle), BOTTLE_LOG_LEVEL "
               "(error|warn|info|debug),\n"
               "             BOTTLE_LOG_FORMAT (text|json)\n"
               "documentation: docs/cli.md, docs/manifest.md\n");
}

int main(int argc, char **argv)
{
    log_init("bottle");
    if (argc < 2) {
        print_main_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("bottle %s\n", BOTTLE_VERSION);
        return 0;
    }
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_main_help(stdout);
        return 0;
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            print_main_help(stdout);
            return 0;
        }
        name = argv[2];
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
            if (strcmp(commands[i].name, name) == 0) {
                char *help_argv[] = {(char *)name, (char *)"--help", NULL};
                return commands[i].run(2, help_argv);
            }
        }
        fprintf(stderr, "bottle: no such command '%s' (see 'bottle --help')\n", name);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "bottle: no such command '%s' (see 'bottle --help')\n", name);
    return EXIT_USAGE;
}
