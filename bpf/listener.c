/* listener — the sidecar listener's ingress filter's loader (see listener.h). */
#include "bpf/listener.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpf/listener.skel.h"
#include "bpf/policy.h"
#include "common/fs.h"
#include "common/home.h"
#include "kernel/cgroup.h"

int bpf_listener_install(const char *slug, int cgroup_fd, const struct bpf_listener_config *cfg,
                         struct bottle_err *err)
{
    if (!home_slug_valid(slug))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL, "bpf: invalid bottle name '%s'",
                            slug ? slug : "");
    if (cfg->port == 0 || cfg->ifindex <= 0 || cfg->addr.s_addr == 0)
        return err_set(err, EINVAL,
                       "bpf: the sidecar listener needs an address, a port and a veth");
    char *root = NULL;
    int rc = bpffs_root_dir(false, &root, err);
    if (rc < 0)
        return rc;
    char *dir = fs_join(root, slug);
    char *pin = fs_join(dir, BPF_LISTENER_PIN);
    bpf_policy_quiet_libbpf();
    struct listener_bpf *skel = listener_bpf__open();
    if (!skel) {
        rc = err_set(err, errno, "bpf: cannot open the listener filter: %s", strerror(errno));
        goto out;
    }
    skel->rodata->listen_ip4 = cfg->addr.s_addr;
    skel->rodata->listen_port = cfg->port;
    skel->rodata->veth_ifindex = (__u32)cfg->ifindex;
    rc = listener_bpf__load(skel);
    if (rc < 0) {
        rc = err_set(err, -rc, "bpf: the kernel refused the listener filter: %s", strerror(-rc));
        goto out;
    }
    struct bpf_link *link =
        bpf_program__attach_cgroup(skel->progs.bottle_listener_ingress, cgroup_fd);
    if (!link) {
        int saved = errno;
        rc = err_set(err, saved,
                     "bpf: cannot attach the listener filter to the sidecar's cgroup: %s",
                     strerror(saved));
        goto out;
    }
    skel->links.bottle_listener_ingress = link;
    if (!fs_is_dir(dir)) {
        rc = err_set(err, ENOENT, "bpf: %s does not exist: install the bottle's policy first", dir);
        goto out;
    }
    rc = bpf_link__pin(link, pin);
    if (rc < 0)
        rc = err_set(err, -rc, "bpf: cannot pin %s: %s", pin, strerror(-rc));
out:
    listener_bpf__destroy(skel); /* the pin, when made, keeps the program attached */
    free(pin);
    free(dir);
    free(root);
    return rc < 0 ? rc : 0;
}
