/*
 * --cgroup-parent for the agent container. The bottle's BPF programs are
 * attached to its agent cgroup on the cgroup2 hierarchy before the
 * container exists; the engine (cgroupfs driver) makes the container's
 * cgroup below that parent, on cgroup2 and, on a hybrid host, in every v1
 * hierarchy too. So the programs govern the container from its first
 * instruction, and every `docker exec` joins the same cgroup2 leaf.
 *
 * This file never creates a cgroup; it only checks where a container landed
 * and removes the empty v1 directories the engine left for the parent.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/docker/docker_internal.h"
#include "common/fs.h"
#include "kernel/cgroup.h"

int docker_cgroup_parent(int cgroup_fd, char **parent, char **cgroup2_mount, struct bottle_err *err)
{
    *parent = NULL;
    *cgroup2_mount = NULL;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", cgroup_fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    if (n < 0)
        return err_set(err, errno, "docker: cannot resolve the agent cgroup fd: %s",
                       strerror(errno));
    path[n] = '\0';
    char *mount = NULL;
    int rc = cgroup2_mount_point(&mount, err);
    if (rc < 0)
        return rc;
    size_t ml = strlen(mount);
    if (strncmp(path, mount, ml) != 0 || path[ml] != '/' || path[ml + 1] == '\0') {
        rc = err_set(err, EINVAL, "docker: the agent cgroup %s is not below the cgroup2 mount %s",
                     path, mount);
        free(mount);
        return rc;
    }
    *parent = xstrdup(path + ml);
    *cgroup2_mount = mount;
    return 0;
}

int docker_cgroup_check_pid(pid_t pid, const char *parent, char **leaf, struct bottle_err *err)
{
    *leaf = NULL;
    char *file = xasprintf("/proc/%ld/cgroup", (long)pid);
    struct buf text = BUF_INIT;
    int rc = fs_read_file(file, 1u << 16, &text, err);
    free(file);
    if (rc < 0) {
        buf_free(&text);
        return err_prefix(err,
                          "docker: the container's init (pid %ld) is not visible here; the "
                          "engine must run on this host",
                          (long)pid);
    }
    const char *line = text.data;
    const char *found = NULL;
    while (line && *line) {
        if (str_starts_with(line, "0::")) {
            found = line + 3;
            break;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    size_t pl = strlen(parent);
    if (found) {
        size_t len = strcspn(found, "\n");
        if (len > pl + 1 && strncmp(found, parent, pl) == 0 && found[pl] == '/') {
            *leaf = xstrndup(found, len);
            buf_free(&text);
            return 0;
        }
        char *got = xstrndup(found, len);
        rc = err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                          "docker: the container landed in cgroup %s, not below %s; the engine "
                          "must use the cgroupfs cgroup driver so --cgroup-parent keeps the "
                          "bottle's BPF policy over it",
                          got, parent);
        free(got);
    } else {
        rc = err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                          "docker: the container is in no cgroup2 cgroup (no cgroup2 mount at "
                          "/sys/fs/cgroup/unified on this hybrid host?); the bottle's BPF "
                          "policy cannot cover it");
    }
    buf_free(&text);
    return rc;
}

/* Every v1 hierarchy's mount point, from /proc/self/mountinfo. */
static void v1_mounts(struct strv *out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup ", 7) != 0)
            continue;
        char root[PATH_MAX], mnt[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2 || strcmp(root, "/") != 0)
            continue;
        strv_push(out, mnt);
    }
    free(line);
    fclose(f);
}

void docker_cgroup_v1_cleanup(const char *parent)
{
    struct strv mounts = STRV_INIT;
    v1_mounts(&mounts);
    for (size_t i = 0; i < mounts.len; i++) {
        char *dir = xasprintf("%s%s", mounts.items[i], parent);
        /* The parent, then each ancestor that became empty, up to the mount. */
        for (;;) {
            if (strlen(dir) <= strlen(mounts.items[i]))
                break;
            int tries = 0;
            while (rmdir(dir) < 0 && errno == EBUSY && tries++ < 50)
                usleep(20000);
            char *slash = strrchr(dir, '/');
            if (!slash || access(dir, F_OK) == 0)
                break;
            *slash = '\0';
        }
        free(dir);
    }
    strv_free(&mounts);
}
