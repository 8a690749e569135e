/*
 * bpf_policy — loads the bottle's BPF policy programs, attaches them to the
 * bottle's agent cgroup through bpf_link, pins maps and links under
 * <bpffs>/bottle/<slug>/, and gives other processes (`bottle usage`,
 * `bottle cutoff`, `bottle events`) daemonless access through those pins.
 * Also runs the socket-destroy iterator that aborts a bottle's connections.
 *
 * Fail closed: an install that fails half-way removes what it pinned; the
 * programs deny any cgroup that has no policy entry; nothing here ever writes
 * an entry that allows more than the caller's config. It never creates the
 * cgroup (runtime/cgroup.h) and never decides the policy (the plan does).
 */
#ifndef BOTTLE_BPF_POLICY_H
#define BOTTLE_BPF_POLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bpf/bottle_abi.h"
#include "common/buf.h"
#include "common/err.h"

/* What a bottle may reach. Ports in host order; unset ports disable that path. */
struct bpf_policy_config {
    struct in_addr proxy_ip4;
    struct in6_addr proxy_ip6;
    uint16_t proxy_port;
    struct in_addr dns_ip4;
    struct in6_addr dns_ip6;
    uint16_t dns_port;
    uint32_t flags; /* BOTTLE_FLAG_* */
    bool no_events; /* do not emit denied events (benchmarks) */
};

/* Milliseconds spent in each install step. */
struct bpf_policy_timing {
    double open_ms;
    double load_ms;
    double attach_ms;
    double pin_ms;
    double total_ms;
};

/*
 * Loads and attaches the seven programs to cgroup_fd, writes the policy
 * entry for cgroup_id (and a zeroed stats entry), and pins everything under
 * <bpffs>/bottle/<slug>/ (mounting bpffs when needed). The in-process objects
 * are released before returning: the pins keep the programs attached.
 */
int bpf_policy_install(const char *slug, int cgroup_fd, uint64_t cgroup_id,
                       const struct bpf_policy_config *cfg, struct bpf_policy_timing *timing,
                       struct bottle_err *err);

/* Detaches and unpins everything of the bottle and removes its directory. Missing is fine. */
int bpf_policy_destroy(const char *slug, struct bottle_err *err);

/* Slugs that have a pin directory, sorted. */
int bpf_policy_list(struct strv *slugs, struct bottle_err *err);

/* A bottle's pinned maps, opened from another process. */
struct bpf_policy_pins;

int bpf_policy_open_pinned(const char *slug, struct bpf_policy_pins **out, struct bottle_err *err);
void bpf_policy_close(struct bpf_policy_pins *pins);
const char *bpf_policy_slug(const struct bpf_policy_pins *pins);

/* Adds or replaces the entry for a cgroup (a nested bottle, a Docker parent). */
int bpf_policy_entry_set(struct bpf_policy_pins *pins, uint64_t cgroup_id,
                         const struct bpf_policy_config *cfg, struct bottle_err *err);
int bpf_policy_entry_delete(struct bpf_policy_pins *pins, uint64_t cgroup_id,
                            struct bottle_err *err);
/* The ids that have an entry (at most BOTTLE_MAX_POLICIES). */
int bpf_policy_entry_ids(struct bpf_policy_pins *pins, uint64_t *ids, size_t max, size_t *n,
                         struct bottle_err *err);
/* Sum of the stats of every entry of the bottle. */
int bpf_policy_read_stats(struct bpf_policy_pins *pins, struct bottle_stats *sum,
                          struct bottle_err *err);
/* Whether any entry of the bottle has its cutoff flag set. */
int bpf_policy_cutoff_state(struct bpf_policy_pins *pins, bool *on, struct bottle_err *err);

/* Sets or clears the cutoff flag of every entry of the bottle. */
int bpf_policy_set_cutoff(const char *slug, bool on, struct bottle_err *err);
/* The host-wide kill switch, shared by every bottle (created when absent). */
int bpf_policy_set_kill_switch(bool on, struct bottle_err *err);
int bpf_policy_kill_switch(bool *on, struct bottle_err *err);

/* Called for each denied event; return non-zero to stop consuming. */
typedef int (*bpf_policy_event_fn)(const struct bottle_event *ev, void *ctx);
/*
 * Consumes pending events, waiting up to timeout_ms (0: do not wait) for the
 * first. Returns the number consumed. The ring buffer has one consumer
 * position: two readers share the events between them.
 */
int bpf_policy_events_poll(struct bpf_policy_pins *pins, int timeout_ms, bpf_policy_event_fn fn,
                           void *ctx, struct bottle_err *err);

const char *bpf_policy_hook_name(unsigned hook);
const char *bpf_policy_reason_name(unsigned reason);

/* What `bottle doctor` reports: which programs load and attach here. */
#define BPF_POLICY_PROGRAMS 7
struct bpf_policy_probe {
    bool loaded;
    char load_error[256];
    double load_ms;
    size_t n_programs;
    struct {
        char name[32];
        bool attached;
        char error[128];
    } programs[BPF_POLICY_PROGRAMS];
    bool sock_destroy;
    char sock_destroy_error[256];
};

/*
 * Loads the policy programs and attaches each to a temporary cgroup
 * (<cgroup2>/bottle/doctor-<pid>); then detaches, unloads and removes the
 * cgroup. Nothing is pinned or left. The sock_destroy fields are left for
 * the caller (bpf/probe.c asks the iterator's loader).
 */
void bpf_policy_probe_run(struct bpf_policy_probe *r);

/* A bottle's summed counters and cutoff flag from its pins. */
int bpf_policy_read_bottle(const char *slug, struct bottle_stats *s, bool *cutoff,
                           struct bottle_err *err);
/* The counters under the keys `bottle usage --json` uses. */
void bpf_policy_stats_json(const struct bottle_stats *s, cJSON *obj);
/* A bottle's counters from its pins added to obj, plus "cut_off" and "kill_switch". */
int bpf_policy_usage_json(const char *slug, cJSON *obj, struct bottle_err *err);

/* libbpf's messages go to the debug log (every loader calls this before opening). */
void bpf_policy_quiet_libbpf(void);

#endif
