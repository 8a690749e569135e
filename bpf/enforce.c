/* enforce — see enforce.h. */
#include "bpf/enforce.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "bpf/policy.h"
#include "bpf/sockkill.h"
#include "common/home.h"
#include "kernel/cgroup.h"

#define FREEZE_TIMEOUT_MS 2000

static const char *const action_names[] = {"cutoff", "restore", "freeze", "thaw", "kill"};

const char *enforce_action_name(enum enforce_action a)
{
    return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[a] : "?";
}

int enforce_action_parse(const char *name, enum enforce_action *out)
{
    for (size_t i = 0; name && i < sizeof(action_names) / sizeof(action_names[0]); i++)
        if (strcmp(name, action_names[i]) == 0) {
            *out = (enum enforce_action)i;
            return 0;
        }
    return -EINVAL;
}

/* Runs the socket-kill iterator once per network namespace the agent's processes are in. */
int enforce_abort_connections(const char *slug, struct bottle_err *err)
{
    struct cgroup_bottle cg;
    int rc = cgroup_bottle_open(slug, &cg, err);
    if (rc < 0)
        return rc;
    pid_t *pids = NULL;
    size_t n = 0;
    rc = cgroup_list_pids(cg.agent_path, &pids, &n, err);
    ino_t seen[64];
    size_t nseen = 0;
    unsigned total = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pids[i]);
        struct stat st;
        if (stat(path, &st) < 0)
            continue; /* exited meanwhile */
        bool dup = false;
        for (size_t k = 0; k < nseen; k++)
            dup = dup || seen[k] == st.st_ino;
        if (dup || nseen == sizeof(seen) / sizeof(seen[0]))
            continue;
        seen[nseen++] = st.st_ino;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        unsigned destroyed = 0;
        rc = bpf_sockkill_run(cg.agent_id, fd, &destroyed, err);
        close(fd);
        total += destroyed;
    }
    free(pids);
    cgroup_bottle_close(&cg);
    return rc < 0 ? rc : (int)total;
}

int enforce_cutoff(const char *slug, bool restore, int *aborted, struct bottle_err *err)
{
    *aborted = 0;
    int rc = bpf_policy_set_cutoff(slug, !restore, err);
    if (rc < 0 || restore)
        return rc;
    struct bottle_err e;
    err_clear(&e);
    int n = enforce_abort_connections(slug, &e);
    if (n >= 0) {
        *aborted = n;
        return 0;
    }
    *aborted = -1;
    if (e.code == ENOTSUP) {
        *err = e; /* for the message; the cutoff itself holds */
        return 0;
    }
    *err = e;
    return -(e.code ? e.code : EIO);
}

static int on_agent_cgroup(const char *slug, enum enforce_action a, struct bottle_err *err)
{
    struct cgroup_bottle cg;
    int rc = cgroup_bottle_open(slug, &cg, err);
    if (rc < 0)
        return rc;
    if (a == ENFORCE_FREEZE)
        rc = cgroup_freeze(cg.agent_fd, FREEZE_TIMEOUT_MS, err);
    else if (a == ENFORCE_THAW)
        rc = cgroup_thaw(cg.agent_fd, FREEZE_TIMEOUT_MS, err);
    else
        rc = cgroup_kill(cg.agent_fd, err);
    cgroup_bottle_close(&cg);
    return rc;
}

int enforce_apply(const char *slug, enum enforce_action a, int *aborted, struct bottle_err *err)
{
    if (aborted)
        *aborted = 0;
    if (!home_slug_valid(slug))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "'%s' is not a bottle name",
                            slug ? slug : "");
    switch (a) {
    case ENFORCE_CUTOFF:
    case ENFORCE_RESTORE: {
        int n = 0;
        int rc = enforce_cutoff(slug, a == ENFORCE_RESTORE, &n, err);
        if (aborted)
            *aborted = n;
        return rc;
    }
    case ENFORCE_FREEZE:
    case ENFORCE_THAW:
    case ENFORCE_KILL:
        return on_agent_cgroup(slug, a, err);
    }
    return err_set(err, EINVAL, "unknown action");
}

int enforce_frozen(const char *slug, bool *frozen, struct bottle_err *err)
{
    *frozen = false;
    struct cgroup_bottle cg;
    int rc = cgroup_bottle_open(slug, &cg, err);
    if (rc < 0)
        return rc;
    rc = cgroup_frozen(cg.agent_fd, frozen, err);
    cgroup_bottle_close(&cg);
    return rc < 0 ? err_prefix(err, "the freeze state of %s", slug) : 0;
}
