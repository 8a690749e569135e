/*
 * controller_internal — the controller's context, shared by the start
 * sequence (controller.c) and the operator commands (cmd_cleanup.c). Not
 * for other modules.
 */
#ifndef BOTTLE_RUNTIME_CONTROLLER_INTERNAL_H
#define BOTTLE_RUNTIME_CONTROLLER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/cgroup.h"
#include "runtime/controller.h"
#include "runtime/netns.h"
#include "runtime/state.h"

/* In the state directory: the controller's pid, for `bottle stop`. */
#define CONTROLLER_PID_FILE "controller.pid"
/* Longest token value passed to the sidecar (its own limit). */
#define CONTROLLER_TOKEN_MAX 8192

struct controller {
    const struct plan *plan;
    const struct controller_options *opts;
    struct state_dir st;
    int live_fd;
    uid_t agent_uid, proxy_uid;
    gid_t agent_gid, proxy_gid;
    char *bottle_dir;  /* <state>/bottle: read-only at /bottle in the agent */
    char *proxy_dir;   /* <state>/proxy: the sidecar's files, 0750 root:proxy */
    char *ca_dir;      /* <state>/proxy/ca */
    char *upstream_ca; /* copy of --upstream-ca */
    char *config_path;
    char *log_path;
    struct netns_bottle nb;
    bool have_netns;
    struct cgroup_bottle cg;
    bool have_cgroup;
    bool have_bpf;
    uint16_t proxy_port;
    pid_t proxy_pid;
    pid_t agent_pid;
};

/* Undoes whatever c holds, every step even after a failure; first error in err. */
int controller_teardown(struct controller *c, bool keep_state, struct bottle_err *err);

#endif
