/*
 * sockkill — the socket-destroy iterator's loader (see sockkill.h and
 * sockkill.bpf.c).
 */
#include "bpf/sockkill.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf/policy.h"
#include "bpf/sockkill.skel.h"

static int sockkill_load(uint64_t cgroup_id, struct sockkill_bpf **out, struct bottle_err *err)
{
    bpf_policy_quiet_libbpf();
    struct sockkill_bpf *skel = sockkill_bpf__open();
    if (!skel)
        return err_set(err, ENOTSUP, "socket destroy unavailable: cannot open the iterator: %s",
                       strerror(errno));
    skel->rodata->target_cgroup_id = cgroup_id;
    int rc = sockkill_bpf__load(skel);
    if (rc < 0) {
        sockkill_bpf__destroy(skel);
        return err_set(err, ENOTSUP,
                       "socket destroy unavailable: the kernel refused the iterator (%s); "
                       "needs Linux 6.5+ with BTF",
                       strerror(-rc));
    }
    *out = skel;
    return 0;
}

int bpf_sockkill_probe(struct bottle_err *err)
{
    struct sockkill_bpf *skel = NULL;
    int rc = sockkill_load(0, &skel, err);
    sockkill_bpf__destroy(skel);
    return rc;
}

static int drain_iter(int iter_fd)
{
    char buf[256];
    ssize_t n;
    while ((n = read(iter_fd, buf, sizeof(buf))) > 0)
        ;
    return n < 0 ? -errno : 0;
}

int bpf_sockkill_run(uint64_t cgroup_id, int netns_fd, unsigned *destroyed, struct bottle_err *err)
{
    struct sockkill_bpf *skel = NULL;
    int self_ns = -1, iter_fd = -1;
    if (destroyed)
        *destroyed = 0;
    int rc = sockkill_load(cgroup_id, &skel, err);
    if (rc < 0)
        return rc;
    struct bpf_link *link = bpf_program__attach_iter(skel->progs.bottle_sockkill, NULL);
    if (!link) {
        rc = err_set(err, ENOTSUP, "socket destroy unavailable: cannot attach the iterator: %s",
                     strerror(errno));
        goto out;
    }
    skel->links.bottle_sockkill = link;
    if (netns_fd >= 0) {
        self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self_ns < 0) {
            rc = err_set(err, errno, "sockkill: cannot open own netns: %s", strerror(errno));
            goto out;
        }
        if (setns(netns_fd, CLONE_NEWNET) < 0) {
            rc = err_set(err, errno, "sockkill: cannot enter the bottle's netns: %s",
                         strerror(errno));
            goto out;
        }
    }
    /* The iterator walks the netns current when it is created. */
    iter_fd = bpf_iter_create(bpf_link__fd(link));
    if (iter_fd < 0)
        rc = err_set(err, errno, "sockkill: cannot create the iterator: %s", strerror(errno));
    else if ((rc = drain_iter(iter_fd)) < 0)
        rc = err_set(err, -rc, "sockkill: iterator failed: %s", strerror(-rc));
    if (self_ns >= 0 && setns(self_ns, CLONE_NEWNET) < 0) {
        /* Staying in the bottle's netns would be worse than any error: stop here. */
        abort();
    }
    if (rc == 0 && destroyed)
        *destroyed = (unsigned)skel->bss->destroyed;
out:
    if (iter_fd >= 0)
        close(iter_fd);
    if (self_ns >= 0)
        close(self_ns);
    sockkill_bpf__destroy(skel);
    return rc;
}
