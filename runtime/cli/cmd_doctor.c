/*
 * `bottle doctor`: what this host can enforce, and why not more.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "bpf/probe.h"
#include "common/json.h"
#include "runtime/cli/args.h"
#include "runtime/cli/cli.h"
#include "runtime/cli/cmd_kernel.h"
#include "kernel/platform.h"

static const char doctor_help[] =
    "usage: bottle doctor [--format text|json]\n"
    "\n"
    "Reports the platform facts that decide the enforcement tier: OS and kernel,\n"
    "the cgroup2 mount (from /proc/self/mountinfo), bpffs, whether a cgroup BPF\n"
    "program loads, kernel BTF, the seccomp API level and actions, the Landlock ABI,\n"
    "network namespaces, and the backend CLIs on PATH (docker, smolvm, container).\n"
    "It ends with the best tier available and what is missing for a higher one.\n"
    "As root it also loads and attaches each policy program to a temporary cgroup\n"
    "(removed again) and checks that established sockets can be destroyed.\n"
    "Nothing else on the host changes. Exit code 0.\n";

int cmd_doctor(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(doctor_help, stdout);
        return 0;
    }
    struct args a;
    args_init(&a, argc, argv);
    bool json = false;
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 1 && args_is(&a, "--format")) {
            const char *v = args_value(&a);
            if (!v || !cli_parse_format("doctor", v, &json))
                return EXIT_USAGE;
        } else if (kind == 1 && args_is(&a, "--json")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            json = true;
        } else {
            return cli_usage_error("doctor", "unexpected argument '%s'", a.cur);
        }
    }
    struct platform_facts f;
    platform_probe(&f);
    if (json) {
        cJSON *doc = platform_facts_json(&f);
        if (f.tier == TIER_KERNEL)
            bpf_probe_report(NULL, doc);
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
        cJSON_Delete(doc);
    } else {
        /* The tier is the verdict: it stays the last line, after the BPF details. */
        struct buf b = BUF_INIT, bpf = BUF_INIT;
        platform_facts_text(&f, &b);
        if (f.tier == TIER_KERNEL)
            bpf_probe_report(&bpf, NULL);
        char *tier = b.len ? strstr(b.data, "tier: ") : NULL;
        while (tier && tier != b.data && tier[-1] != '\n')
            tier = strstr(tier + 1, "tier: ");
        if (tier && bpf.len) {
            fwrite(b.data, 1, (size_t)(tier - b.data), stdout);
            fputs(bpf.data, stdout);
            fputs(tier, stdout);
        } else {
            fputs(b.data, stdout);
            if (bpf.len)
                fputs(bpf.data, stdout);
        }
        buf_free(&b);
        buf_free(&bpf);
    }
    platform_facts_free(&f);
    return 0;
}
