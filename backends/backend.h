/*
 * backend — the one interface every way of running an agent implements:
 * native Linux namespaces, Docker, smolmachines, Apple Container. The
 * controller prepares everything the backend does not own (state, CA,
 * network namespace, cgroup and BPF, the sidecar) and hands it over in a
 * struct backend_spec; the backend then only has to run the agent so that
 * the sidecar's address is its one way out.
 *
 * A backend never decides policy, never sees a real token, and never prints:
 * failures come back through struct bottle_err.
 */
#ifndef BOTTLE_BACKENDS_BACKEND_H
#define BOTTLE_BACKENDS_BACKEND_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/types.h>

#include "backends/guard.h"
#include "common/buf.h"
#include "common/err.h"

struct resource_limits; /* manifest/manifest.h */

/*
 * What the controller hands to a backend. Borrowed: the caller keeps ownership
 * and keeps it valid from prepare until launch has returned.
 */
struct backend_spec {
    const char *slug;
    const struct strv *argv; /* the agent's command (plan argv) */
    const struct strv *env;  /* exactly the agent's environment, "NAME=value" */
    const char *workspace;   /* host path, mounted read-write at the same path */
    /* Paths of the workspace bound over themselves, read-only or pinned (guard.h); NULL:
     * none (tests of a backend alone; start always gives one). */
    const struct guard_list *guard;
    const char *bottle_dir;  /* host dir shown read-only at GUEST_BOTTLE_DIR; NULL: none */
    const char *guest_home;  /* private home inside the bottle; NULL: /home/agent */
    const char *home_source; /* host dir backing the home; NULL: a tmpfs */
    const char *bottle_home; /* the data home (state, keys, ledger): must not be visible inside */
    const char *config_home; /* the manifests' home when it differs (sudo); NULL: none */
    /* The bottle's network namespace (docker: where its veth waits to be moved into the
     * container); -1: refuse to start. */
    int netns_fd;
    int cgroup_fd; /* the agent cgroup; -1: stay in the caller's cgroup (tests) */
    /* More cgroups the bottle's first process joins before it runs: the cgroup v1
     * hierarchies that carry its limits on a hybrid host (kernel/limits.h). */
    const int *join_cgroup_fds;
    size_t n_join_cgroup_fds;
    /* The agent's limits: every backend sizes the tmpfs mounts from it; docker also passes
     * the process, memory and CPU limits to the engine. NULL: the tmpfs default only. */
    const struct resource_limits *limits;
    uid_t uid; /* the agent's user; never 0 */
    gid_t gid;
    const struct strv *seccomp_extra; /* the manifest's extra denials; NULL: none */
    bool no_seccomp;                  /* tests of the backend alone; never set by start */
    int stdio[3];                     /* fds for the agent's 0,1,2; -1: inherit */
    bool new_session;                 /* setsid and take stdin as controlling terminal */
    /* docker: the image to run; NULL: build it from dockerfile (tagged by content hash). */
    const char *image;
    const char *dockerfile; /* docker: the agent's Dockerfile (its directory is the context) */
    /* docker: image is a snapshot (`bottle commit`); its saved home is unpacked into the new
     * home, by the agent's user inside the bottle, before the agent starts. */
    bool restore_home;
};

/* A running (or prepared) bottle as the backend tracks it. */
struct backend_bottle {
    const struct bottle_backend *backend;
    pid_t pid; /* host view of the bottle's first process */
    int exit_code;
    bool exited;
    void *priv; /* backend-owned */
};

struct bottle_backend {
    const char *name;
    /* Whether this backend can run on this host; the error says what is missing. */
    int (*probe)(struct bottle_err *err);
    /* Checks the spec and sets up what launch needs; nothing runs yet. */
    int (*prepare)(struct backend_bottle *b, const struct backend_spec *spec,
                   struct bottle_err *err);
    /* Starts the agent; returns once it runs (exec succeeded) or failed. */
    int (*launch)(struct backend_bottle *b, struct bottle_err *err);
    /* Waits for the agent and fills *exit_code (128 + signal when killed). */
    int (*wait)(struct backend_bottle *b, int *exit_code, struct bottle_err *err);
    /* Forwards sig; after timeout_ms without exit, kills the whole bottle. timeout_ms < 0: only
     * forwards sig and returns at once (the caller keeps the deadline). */
    int (*stop)(struct backend_bottle *b, int sig, int timeout_ms, struct bottle_err *err);
    /* Frees what prepare made; kills what is still running. Safe on a zeroed struct. */
    void (*release)(struct backend_bottle *b);
    /*
     * What a bottle on this backend is held to, and what it is not, at the tier it
     * runs at: plain sentences for --dry-run, the start banner and `bottle doctor`.
     */
    const char *const *enforces;
    const char *const *does_not;
};

extern const struct bottle_backend backend_native;
extern const struct bottle_backend backend_docker;

/* Looks a backend up by its --backend name. */
static inline int backend_lookup(const char *name, const struct bottle_backend **out,
                                 struct bottle_err *err)
{
    static const char *const planned[] = {"smolmachines", "apple", NULL};
    if (name && strcmp(name, backend_native.name) == 0) {
        *out = &backend_native;
        return 0;
    }
    if (name && strcmp(name, backend_docker.name) == 0) {
        *out = &backend_docker;
        return 0;
    }
    for (const char *const *p = planned; name && *p; p++)
        if (strcmp(name, *p) == 0)
            return err_set_kind(err, ERR_KIND_REFUSED, ENOTSUP,
                                "backend '%s' is not available in this build; use --backend "
                                "native or docker",
                                name);
    return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                        "unknown backend '%s'; known: native, docker, smolmachines, apple",
                        name ? name : "");
}

#endif
