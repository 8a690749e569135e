/*
 * cmd_kernel — see cmd_kernel.h.
 */
#include "runtime/cli/cmd_kernel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "bpf/policy.h"
#include "ledger/budget.h"
#include "kernel/cgroup.h"
#include "runtime/controller/control.h"
#include "bpf/enforce.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/state.h"
#include "runtime/cli/cli.h"

static const char usage_help[] =
    "usage: bottle usage [<bottle>] [--format text|json] [--watch]\n"
    "       bottle usage --by host|bottle|pool|agent [--since day|month|total]\n"
    "                    [--format text|json]\n"
    "\n"
    "Kernel counters of a running bottle (all bottles when none is named), read\n"
    "from its pinned BPF maps: bytes and packets out and in, packets dropped,\n"
    "connects and datagrams allowed and denied, sockets refused; and its LLM\n"
    "tokens per provider from the ledger, with the budget and what is left. A\n"
    "finished bottle, named, shows the counters kept at its teardown.\n"
    "\n"
    "  --format json, --json\n"
    "            one JSON document (with --watch: one per line); each bottle\n"
    "            is named by \"slug\"\n"
    "  --watch   print again every second until interrupted\n"
    "  --by      LLM tokens from the ledger only, grouped by host, bottle, pool or\n"
    "            agent, across every host sharing it (requests, charged, reserved)\n"
    "  --since   with --by: usage since 00:00 UTC today, since the 1st of the\n"
    "            month, or all of it (the default)\n";

static const char cutoff_help[] =
    "usage: bottle cutoff <bottle> [--restore]\n"
    "       bottle cutoff --all [--restore]\n"
    "\n"
    "Cuts a bottle off the network at once: new connections fail with EPERM,\n"
    "packets are dropped, and its established TCP connections are aborted. The\n"
    "bottle keeps running. --restore lets traffic through again. --all sets the\n"
    "host-wide kill switch, which stops every bottle, including ones started later\n"
    "(root only: refused under sudo, where only your own bottles are yours to cut).\n";

static const char events_help[] =
    "usage: bottle events <bottle> [-f] [--format text|json]\n"
    "\n"
    "Denied network attempts of a bottle (pid, command, destination, which hook\n"
    "refused it). Events are consumed when read. -f keeps waiting for more.\n"
    "--format json (or --json) prints one JSON object per event.\n";

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* A bottle that is not there (no pins, no cgroup) is the user's mistake: exit 2, no paths. */
static int fail_bottle(const char *slug, const struct bottle_err *err)
{
    if (err->code == ENOENT)
        return cli_no_bottle(slug);
    fprintf(stderr, "bottle: %s%s\n", err->msg,
            (err->code == EPERM || err->code == EACCES) && geteuid() != 0 ? " (run as root)" : "");
    return err_exit_code(err);
}

static int fail(const struct bottle_err *err)
{
    fprintf(stderr, "bottle: %s%s\n", err->msg,
            (err->code == EPERM || err->code == EACCES) && geteuid() != 0 ? " (run as root)" : "");
    return err_exit_code(err);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "bottle: %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'bottle %s --help')\n", cmd);
    return EXIT_USAGE;
}

/*
 * Whether the caller may act on slug (cli_slug_is_callers): under sudo, a
 * user reaches only the bottles of their own data home. Prints the refusal
 * (as for a bottle that does not run, exit 2) when not.
 */
static bool callers_bottle(const char *cmd, const char *slug)
{
    if (cli_host_view())
        return true;
    struct bottle_err err;
    err_clear(&err);
    char *home = NULL;
    bool mine = home_path(&home, &err) == 0 && cli_slug_is_callers(home, slug);
    free(home);
    if (!mine)
        fprintf(stderr, "bottle: %s: no bottle '%s' of yours runs\n", cmd, slug);
    return mine;
}

/* Drops the slugs that are not the caller's from a host-wide list. */
static void keep_callers(struct strv *slugs)
{
    if (cli_host_view())
        return;
    struct bottle_err err;
    err_clear(&err);
    char *home = NULL;
    struct strv mine = STRV_INIT;
    if (home_path(&home, &err) == 0)
        for (size_t i = 0; i < slugs->len; i++)
            if (cli_slug_is_callers(home, slugs->items[i]))
                strv_push(&mine, slugs->items[i]);
    free(home);
    strv_free(slugs);
    *slugs = mine;
}

/* ---- usage --------------------------------------------------------------------------- */

/* The host's ledger, when there is one to read (NULL otherwise). */
static struct ledger *usage_ledger(char **home)
{
    struct bottle_err err = {0};
    if (home_path(home, &err) < 0)
        return NULL;
    return budget_ledger_open(*home, &err);
}

/* Text lines for a bottle's token usage, under its counters row. */
static void print_tokens(const cJSON *tokens)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, tokens)
    {
        const cJSON *budget = cJSON_GetObjectItemCaseSensitive(t, "budget");
        const cJSON *left = cJSON_GetObjectItemCaseSensitive(t, "left");
        char tail[96] = "";
        if (cJSON_IsNumber(budget))
            snprintf(tail, sizeof(tail), ", budget %.0f, left %.0f", budget->valuedouble,
                     cJSON_IsNumber(left) ? left->valuedouble : 0.0);
        printf("  tokens %-8s %.0f charged in %.0f requests (input %.0f, output %.0f, cache "
               "write %.0f, cache read %.0f)%s\n",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "provider")),
               json_get_num(t, "charged_tokens", 0), json_get_num(t, "requests", 0),
               json_get_num(t, "input_tokens", 0), json_get_num(t, "output_tokens", 0),
               json_get_num(t, "cache_creation_tokens", 0), json_get_num(t, "cache_read_tokens", 0),
               tail);
    }
}

/* A finished bottle: the counters kept in the ledger at its teardown, and its tokens. */
static int usage_finished(const char *slug, bool json, const struct bottle_err *why)
{
    char *home = NULL;
    struct ledger *lg = usage_ledger(&home);
    char *text = NULL;
    struct bottle_err err = {0};
    int rc = lg ? ledger_kernel_get(lg, slug, &text, &err) : -ENOENT;
    cJSON *kept = rc == 0 ? cJSON_Parse(text) : NULL;
    if (!kept) {
        ledger_close(lg);
        free(home);
        free(text);
        return fail_bottle(slug, why);
    }
    cJSON *tokens = budget_tokens_json(home, slug, lg);
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *list = cJSON_AddArrayToObject(doc, "bottles");
        cJSON_AddItemToObject(kept, "tokens", tokens);
        json_add_str(kept, "state", "finished");
        cJSON_AddItemToArray(list, kept);
        char *out = cJSON_PrintUnformatted(doc);
        printf("%s\n", out);
        free(out);
        cJSON_Delete(doc);
    } else {
        printf("%s (finished): bytes out %.0f, in %.0f; connects %.0f allowed, %.0f denied; "
               "datagrams denied %.0f\n",
               slug, json_get_num(kept, "tx_bytes", 0), json_get_num(kept, "rx_bytes", 0),
               json_get_num(kept, "connect_ok", 0), json_get_num(kept, "connect_deny", 0),
               json_get_num(kept, "sendmsg_deny", 0));
        print_tokens(tokens);
        cJSON_Delete(tokens);
        cJSON_Delete(kept);
    }
    ledger_close(lg);
    free(home);
    free(text);
    return 0;
}

static int usage_once(const struct strv *slugs, bool json)
{
    struct bottle_err err;
    err_clear(&err);
    bool kill = false;
    if (bpf_policy_kill_switch(&kill, &err) < 0)
        return fail(&err);
    if (slugs->len == 1) {
        struct bottle_stats probe;
        bool cut = false;
        if (bpf_policy_read_bottle(slugs->items[0], &probe, &cut, &err) < 0)
            return usage_finished(slugs->items[0], json, &err);
    }
    char *home = NULL;
    struct ledger *lg = usage_ledger(&home);
    cJSON *doc = json ? cJSON_CreateObject() : NULL;
    cJSON *list = doc ? cJSON_AddArrayToObject(doc, "bottles") : NULL;
    if (doc)
        json_add_bool(doc, "kill_switch", kill);
    else
        printf("%-24s %12s %9s %12s %9s %7s %7s %8s %8s %8s %8s %8s %s\n", "BOTTLE", "BYTES_OUT",
               "PKTS_OUT", "BYTES_IN", "PKTS_IN", "DROP_O", "DROP_I", "CONN_OK", "CONN_NO",
               "SEND_OK", "SEND_NO", "SOCK_NO", "STATE");
    int rc = 0;
    for (size_t i = 0; i < slugs->len; i++) {
        struct bottle_stats s;
        bool cutoff = false;
        if (bpf_policy_read_bottle(slugs->items[i], &s, &cutoff, &err) < 0) {
            rc = fail(&err);
            break;
        }
        cJSON *tokens = budget_tokens_json(home, slugs->items[i], lg);
        const char *state = kill ? "kill-switch" : cutoff ? "cut-off" : "open";
        if (doc) {
            cJSON *o = cJSON_CreateObject();
            json_add_str(o, "slug", slugs->items[i]);
            bpf_policy_stats_json(&s, o);
            json_add_str(o, "state", state);
            cJSON_AddItemToObject(o, "tokens", tokens);
            cJSON_AddItemToArray(list, o);
        } else {
            printf("%-24s %12llu %9llu %12llu %9llu %7llu %7llu %8llu %8llu %8llu %8llu %8llu %s\n",
                   slugs->items[i], (unsigned long long)s.tx_bytes,
                   (unsigned long long)s.tx_packets, (unsigned long long)s.rx_bytes,
                   (unsigned long long)s.rx_packets, (unsigned long long)s.drop_tx,
                   (unsigned long long)s.drop_rx, (unsigned long long)s.connect_ok,
                   (unsigned long long)s.connect_deny, (unsigned long long)s.sendmsg_ok,
                   (unsigned long long)s.sendmsg_deny, (unsigned long long)s.sock_create_deny,
                   state);
            print_tokens(tokens);
            cJSON_Delete(tokens);
        }
    }
    ledger_close(lg);
    free(home);
    if (doc) {
        if (rc == 0) {
            char *text = cJSON_PrintUnformatted(doc);
            printf("%s\n", text);
            free(text);
        }
        cJSON_Delete(doc);
    }
    fflush(stdout);
    return rc;
}

/* `bottle usage --by`: the ledger's usage grouped across hosts. */
static int usage_by(const char *by_name, const char *since_name, bool json)
{
    static const enum ledger_group groups[] = {LEDGER_BY_HOST, LEDGER_BY_BOTTLE, LEDGER_BY_POOL,
                                               LEDGER_BY_AGENT};
    enum ledger_group by = LEDGER_BY_HOST;
    bool known = false;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(by_name, ledger_group_name(groups[i])) == 0) {
            by = groups[i];
            known = true;
        }
    if (!known)
        return usage_error("usage", "--by %s: accepted: host, bottle, pool, agent", by_name);

    enum ledger_period period = LEDGER_PERIOD_TOTAL;
    if (since_name && ledger_period_parse(since_name, &period) < 0)
        return usage_error("usage", "--since %s: accepted: day, month, total", since_name);
    char *home = NULL;
    struct bottle_err err = {0};
    struct ledger *lg = usage_ledger(&home);
    free(home);
    if (!lg) {
        fprintf(stderr, "bottle: usage: no ledger to read\n");
        return EXIT_RUNTIME;
    }
    cJSON *rows =
        budget_groups_json(lg, by, ledger_period_start(period, (int64_t)time(NULL)), &err);
    ledger_close(lg);
    if (!rows)
        return fail(&err);
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        json_add_str(doc, "by", by_name);
        json_add_str(doc, "since", ledger_period_name(period));
        cJSON_AddItemToObject(doc, "usage", rows);
        char *text = cJSON_PrintUnformatted(doc);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(doc);
        return 0;
    }
    printf("%-24s %-10s %10s %14s %14s\n",
           by == LEDGER_BY_HOST    ? "HOST"
           : by == LEDGER_BY_POOL  ? "POOL"
           : by == LEDGER_BY_AGENT ? "AGENT"
                                   : "BOTTLE",
           "PROVIDER", "REQUESTS", "CHARGED", "RESERVED");
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const char *key = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, by_name));
        printf("%-24s %-10s %10.0f %14.0f %14.0f\n", key && *key ? key : "-",
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "provider")),
               json_get_num(r, "requests", 0), json_get_num(r, "charged_tokens", 0),
               json_get_num(r, "reserved_tokens", 0));
    }
    cJSON_Delete(rows);
    return 0;
}

int cmd_usage(int argc, char **argv)
{
    bool json = false, watch = false;
    const char *slug = NULL, *by = NULL, *since = NULL;
    int f;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc) {
            by = argv[++i];
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            since = argv[++i];
        } else if ((f = cli_format_option("usage", argc, argv, &i, &json)) != 0) {
            if (f < 0)
                return EXIT_USAGE;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch = true;
        } else if (argv[i][0] == '-') {
            return usage_error("usage", "unknown option '%s'", argv[i]);
        } else if (!slug) {
            slug = argv[i];
        } else {
            return usage_error("usage", "unexpected argument '%s'", argv[i]);
        }
    }
    if (by && (slug || watch))
        return usage_error("usage", "--by %s reads the ledger only: no bottle name, no --watch",
                           by);
    if (since && !by)
        return usage_error("usage", "--since %s goes with --by", since);
    if (by)
        return usage_by(by, since, json);
    if (slug && !home_slug_valid(slug))
        return usage_error("usage", "'%s' is not a bottle name", slug);
    if (slug && !callers_bottle("usage", slug))
        return EXIT_USAGE;
    install_stop_handlers();
    int rc;
    do {
        struct strv slugs = STRV_INIT;
        struct bottle_err err;
        err_clear(&err);
        if (slug) {
            strv_push(&slugs, slug);
        } else if (bpf_policy_list(&slugs, &err) < 0) {
            return fail(&err);
        }
        keep_callers(&slugs);
        rc = usage_once(&slugs, json);
        strv_free(&slugs);
        if (rc != 0 || !watch)
            break;
        for (int t = 0; t < 10 && !stop_requested; t++)
            usleep(100000);
    } while (!stop_requested);
    return rc;
}

/* ---- cutoff ---------------------------------------------------------------------------- */

static void print_cutoff(const char *slug, bool restore, int aborted, const char *why)
{
    if (restore)
        printf("bottle %s: traffic restored\n", slug);
    else if (aborted < 0)
        printf("bottle %s: cut off; new connections are refused\n", slug);
    else
        printf("bottle %s: cut off; new connections are refused, %d established aborted\n", slug,
               aborted);
    if (!restore && aborted < 0)
        fprintf(stderr, "bottle: %s: established connections stall instead of aborting: %s\n", slug,
                why && *why ? why : "socket destroy unavailable");
}

/* Through the controller when one serves the bottle (it logs the action), else directly. */
static int cutoff_one(const char *slug, bool restore)
{
    struct bottle_err err;
    err_clear(&err);
    char *home = NULL;
    if (home_path(&home, &err) == 0) {
        char *path = control_socket_path(home, slug);
        cJSON *req = cJSON_CreateObject();
        json_add_str(req, "cmd", "cutoff");
        if (restore)
            json_add_bool(req, "restore", true);
        cJSON *resp = NULL;
        struct bottle_err cerr;
        err_clear(&cerr);
        int rc = access(path, F_OK) == 0 ? control_request(path, req, 10000, &resp, &cerr) : -1;
        cJSON_Delete(req);
        free(path);
        free(home);
        if (rc == 0) {
            int code = 0;
            if (json_get_bool(resp, "ok", false)) {
                print_cutoff(slug, restore, (int)json_get_num(resp, "aborted", -1),
                             json_get_str(resp, "warning"));
            } else {
                fprintf(stderr, "bottle: %s: %s\n", slug,
                        json_get_str(resp, "error") ? json_get_str(resp, "error") : "refused");
                code = EXIT_RUNTIME;
            }
            cJSON_Delete(resp);
            return code;
        }
    }
    err_clear(&err);
    int aborted = 0;
    int rc = enforce_cutoff(slug, restore, &aborted, &err);
    if (rc < 0 && aborted == 0)
        return fail_bottle(slug, &err);
    log_info(restore ? "cutoff restored" : "cutoff", "slug", slug, "via", "pins", NULL);
    print_cutoff(slug, restore, aborted, err.msg);
    return rc < 0 ? err_exit_code(&err) : 0;
}

int cmd_cutoff(int argc, char **argv)
{
    bool all = false, restore = false;
    const char *slug = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cutoff_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--all") == 0) {
            all = true;
        } else if (strcmp(argv[i], "--restore") == 0) {
            restore = true;
        } else if (argv[i][0] == '-') {
            return usage_error("cutoff", "unknown option '%s'", argv[i]);
        } else if (!slug) {
            slug = argv[i];
        } else {
            return usage_error("cutoff", "unexpected argument '%s'", argv[i]);
        }
    }
    if (all == (slug != NULL))
        return usage_error("cutoff", "%s", "name one bottle, or give --all");
    if (slug && !home_slug_valid(slug))
        return usage_error("cutoff", "'%s' is not a bottle name", slug);
    if (slug)
        return callers_bottle("cutoff", slug) ? cutoff_one(slug, restore) : EXIT_USAGE;
    if (!cli_host_view()) {
        fprintf(stderr, "bottle: cutoff --all: the kill switch acts on every user's bottles; only "
                        "root (not sudo) may set it\n");
        return EXIT_REFUSED;
    }

    struct bottle_err err;
    err_clear(&err);
    if (bpf_policy_set_kill_switch(!restore, &err) < 0)
        return fail(&err);
    if (restore) {
        printf("kill switch off: bottles without their own cutoff have traffic again\n");
        return 0;
    }
    struct strv slugs = STRV_INIT;
    bpf_policy_list(&slugs, &err);
    int aborted = 0;
    for (size_t i = 0; i < slugs.len; i++) {
        int n = enforce_abort_connections(slugs.items[i], &err);
        if (n > 0)
            aborted += n;
    }
    printf("kill switch on: every bottle is cut off (%zu running, %d connections aborted)\n",
           slugs.len, aborted);
    strv_free(&slugs);
    return 0;
}

/* ---- freeze, thaw ---------------------------------------------------------------------- */

static const char freeze_help[] =
    "usage: bottle freeze <bottle>\n"
    "       bottle thaw <bottle>\n"
    "\n"
    "freeze stops every process of the bottle's agent where it is (cgroup.freeze):\n"
    "nothing runs, nothing is lost, the sidecar stays up. thaw lets it continue.\n"
    "Goes through the bottle's controller when it runs, else acts on the cgroup.\n";

static int freeze_or_thaw(int argc, char **argv, bool freeze)
{
    const char *cmd = freeze ? "freeze" : "thaw", *slug = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(freeze_help, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            return usage_error(cmd, "unknown option '%s'", argv[i]);
        } else if (!slug) {
            slug = argv[i];
        } else {
            return usage_error(cmd, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!slug)
        return usage_error(cmd, "%s", "name the bottle");
    if (!home_slug_valid(slug))
        return usage_error(cmd, "'%s' is not a bottle name", slug);
    if (!callers_bottle(cmd, slug))
        return EXIT_USAGE;
    struct bottle_err err;
    err_clear(&err);
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return fail(&err);
    char *path = control_socket_path(home, slug);
    bool have_socket = access(path, F_OK) == 0;
    free(path);
    int rc = have_socket ? control_simple(home, slug, cmd, 10000, NULL, &err) : -ENOENT;
    free(home);
    if (rc == 0) {
        printf("bottle %s: %s\n", slug, freeze ? "frozen" : "thawed");
        return 0;
    }
    if (rc != -ENOENT && rc != -ECONNREFUSED)
        return fail(&err);
    /* No controller: act on the cgroup itself, as `bottle cutoff` acts on the pins. */
    err_clear(&err);
    struct cgroup_bottle cg;
    if (cgroup_bottle_open(slug, &cg, &err) < 0)
        return fail_bottle(slug, &err);
    rc = freeze ? cgroup_freeze(cg.agent_fd, 5000, &err) : cgroup_thaw(cg.agent_fd, 5000, &err);
    cgroup_bottle_close(&cg);
    if (rc < 0)
        return fail(&err);
    log_info(freeze ? "frozen" : "thawed", "slug", slug, "via", "cgroup", NULL);
    printf("bottle %s: %s\n", slug, freeze ? "frozen" : "thawed");
    return 0;
}

int cmd_freeze(int argc, char **argv)
{
    return freeze_or_thaw(argc, argv, true);
}

int cmd_thaw(int argc, char **argv)
{
    return freeze_or_thaw(argc, argv, false);
}

/* ---- events ------------------------------------------------------------------------------ */

struct events_ctx {
    bool json;
    double mono_to_real; /* seconds to add to a CLOCK_MONOTONIC time */
};

static const char *proto_name(unsigned proto, unsigned sock_type)
{
    switch (proto) {
    case IPPROTO_TCP:
        return "tcp";
    case IPPROTO_UDP:
        return "udp";
    case IPPROTO_ICMP:
        return "icmp";
    case IPPROTO_ICMPV6:
        return "icmpv6";
    default:
        return sock_type == SOCK_RAW ? "raw" : "other";
    }
}

static int print_event(const struct bottle_event *ev, void *arg)
{
    const struct events_ctx *c = arg;
    char addr[INET6_ADDRSTRLEN] = "";
    if (ev->family == AF_INET)
        inet_ntop(AF_INET, ev->addr, addr, sizeof(addr));
    else if (ev->family == AF_INET6)
        inet_ntop(AF_INET6, ev->addr, addr, sizeof(addr));
    char comm[sizeof(ev->comm) + 1];
    memcpy(comm, ev->comm, sizeof(ev->comm));
    comm[sizeof(ev->comm)] = '\0';
    time_t when = (time_t)((double)ev->timestamp / 1e9 + c->mono_to_real);
    char ts[32];
    struct tm tm;
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&when, &tm));
    const char *proto = proto_name(ev->protocol, ev->sock_type);
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "time", ts);
        json_add_num(o, "pid", ev->pid);
        json_add_str(o, "comm", comm);
        json_add_str(o, "hook", bpf_policy_hook_name(ev->hook));
        json_add_str(o, "reason", bpf_policy_reason_name(ev->reason));
        json_add_num(o, "family", ev->family);
        json_add_str(o, "protocol", proto);
        json_add_str(o, "address", addr[0] ? addr : NULL);
        json_add_num(o, "port", ev->port);
        char *text = cJSON_PrintUnformatted(o);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        printf("%s pid=%u comm=%s hook=%s reason=%s proto=%s", ts, ev->pid, comm[0] ? comm : "-",
               bpf_policy_hook_name(ev->hook), bpf_policy_reason_name(ev->reason), proto);
        if (addr[0])
            printf(ev->family == AF_INET6 ? " dst=[%s]:%u" : " dst=%s:%u", addr, ev->port);
        printf("\n");
    }
    return 0;
}

int cmd_events(int argc, char **argv)
{
    bool follow = false, json = false;
    const char *slug = NULL;
    int f;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(events_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0) {
            follow = true;
        } else if ((f = cli_format_option("events", argc, argv, &i, &json)) != 0) {
            if (f < 0)
                return EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            return usage_error("events", "unknown option '%s'", argv[i]);
        } else if (!slug) {
            slug = argv[i];
        } else {
            return usage_error("events", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!slug)
        return usage_error("events", "%s", "name the bottle");
    if (!home_slug_valid(slug))
        return usage_error("events", "'%s' is not a bottle name", slug);
    if (!callers_bottle("events", slug))
        return EXIT_USAGE;
    struct bottle_err err;
    err_clear(&err);
    struct bpf_policy_pins *p = NULL;
    if (bpf_policy_open_pinned(slug, &p, &err) < 0)
        return fail_bottle(slug, &err);
    struct timespec mono, real;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    struct events_ctx c = {
        .json = json,
        .mono_to_real =
            (double)(real.tv_sec - mono.tv_sec) + (double)(real.tv_nsec - mono.tv_nsec) / 1e9,
    };
    install_stop_handlers();
    int rc = 0;
    for (;;) {
        int n = bpf_policy_events_poll(p, follow ? 500 : 0, print_event, &c, &err);
        fflush(stdout);
        if (n < 0) {
            rc = fail(&err);
            break;
        }
        if ((!follow && n == 0) || stop_requested)
            break;
    }
    bpf_policy_close(p);
    return rc;
}
