/* uidpool — per-bottle ids for the sidecar and the agent (see uidpool.h). */
#include "kernel/uidpool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"

struct pool {
    const char *lock_dir;
    unsigned base;
    unsigned slots;
    unsigned char *busy; /* one byte per id of the range (2 * slots) */
};

void uidpool_lease_init(struct uidpool_lease *l)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
}

static void pool_from(const struct uidpool_options *o, struct pool *p)
{
    p->lock_dir = o && o->lock_dir ? o->lock_dir : UIDPOOL_LOCK_DIR;
    p->base = o && o->base ? o->base : UIDPOOL_BASE;
    p->slots = o && o->slots ? o->slots : UIDPOOL_SLOTS;
    p->busy = NULL;
}

bool uidpool_in_range(const struct uidpool_options *opts, unsigned id)
{
    struct pool p;
    pool_from(opts, &p);
    return id >= p.base && id - p.base < 2u * p.slots;
}

static void mark(struct pool *p, unsigned long id)
{
    if (id >= p->base && id - p->base < 2ul * p->slots)
        p->busy[id - p->base] = 1;
}

/* Marks every id of the range that a line "name:start:count" of file covers. */
static void mark_subordinate(struct pool *p, const char *file)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        unsigned long start = strtoul(c1 + 1, NULL, 10), count = strtoul(c2 + 1, NULL, 10);
        unsigned long lo = start > p->base ? start : p->base;
        unsigned long hi =
            start + count < p->base + 2ul * p->slots ? start + count : p->base + 2ul * p->slots;
        for (unsigned long id = lo; id < hi; id++)
            mark(p, id);
    }
    fclose(f);
}

/* Marks the four ids of a "Uid:" or "Gid:" line of /proc/<pid>/status. */
static void mark_status_line(struct pool *p, const char *values)
{
    char *end = NULL;
    for (int i = 0; i < 4; i++) {
        unsigned long id = strtoul(values, &end, 10);
        if (end == values)
            return;
        mark(p, id);
        values = end;
    }
}

/* Marks every id of the range that a running process uses as a uid or gid. */
static void mark_processes(struct pool *p)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9')
            continue;
        char path[sizeof("/proc//status") + sizeof(de->d_name)];
        snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        char line[256];
        while (fgets(line, sizeof(line), f)) {
            if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4))
                mark_status_line(p, line + 4);
            if (!strncmp(line, "Gid:", 4))
                break; /* Uid comes first */
        }
        fclose(f);
    }
    closedir(d);
}

static bool id_named(unsigned id)
{
    return getpwuid((uid_t)id) != NULL || getgrgid((gid_t)id) != NULL;
}

/* Tries to lock slot n's file; the fd, -EBUSY when another controller holds it. */
static int lock_slot(int dir_fd, unsigned n, struct bottle_err *err)
{
    char name[32];
    snprintf(name, sizeof(name), "%u.lock", n);
    int fd = openat(dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_set(err, errno, "uidpool: cannot open slot lock %s: %s", name, strerror(errno));
    /*
     * An open-file-description lock: it belongs to this descriptor (close-on-exec, so the
     * sidecar and the agent never keep it), and a second lease in the same process is refused
     * like one in another process, which a classic record lock would not do.
     */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EAGAIN)
            return -EBUSY;
        return err_set(err, e, "uidpool: cannot lock slot %u: %s", n, strerror(e));
    }
    return fd;
}

int uidpool_acquire(const struct uidpool_options *opts, struct uidpool_lease *out,
                    struct bottle_err *err)
{
    uidpool_lease_init(out);
    struct pool p;
    pool_from(opts, &p);
    int dir_fd = fs_open_dir_walk(p.lock_dir, geteuid() == 0, 0700, err);
    if (dir_fd < 0)
        return dir_fd;
    int pool_fd = openat(dir_fd, "pool.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (pool_fd < 0) {
        int e = errno;
        close(dir_fd);
        return err_set(err, e, "uidpool: cannot open %s/pool.lock: %s", p.lock_dir, strerror(e));
    }
    while (flock(pool_fd, LOCK_EX) < 0 && errno == EINTR)
        ;
    p.busy = xcalloc(2u * p.slots, 1);
    mark_subordinate(&p, opts && opts->subuid ? opts->subuid : "/etc/subuid");
    mark_subordinate(&p, opts && opts->subgid ? opts->subgid : "/etc/subgid");
    mark_processes(&p);
    int rc = err_set(err, EAGAIN,
                     "uidpool: every id of %u..%u is taken by a running bottle, an account or a "
                     "subordinate range; stop a bottle or run 'bottle cleanup'",
                     p.base, p.base + 2u * p.slots - 1);
    for (unsigned n = 0; n < p.slots; n++) {
        unsigned sidecar = p.base + 2u * n, agent = sidecar + 1;
        if (p.busy[2u * n] || p.busy[2u * n + 1] || id_named(sidecar) || id_named(agent))
            continue;
        int fd = lock_slot(dir_fd, n, err);
        if (fd == -EBUSY)
            continue;
        if (fd < 0) {
            rc = fd;
            break;
        }
        err_clear(err);
        out->fd = fd;
        out->slot = n;
        out->sidecar_uid = (uid_t)sidecar;
        out->sidecar_gid = (gid_t)sidecar;
        out->agent_uid = (uid_t)agent;
        out->agent_gid = (gid_t)agent;
        rc = 0;
        break;
    }
    free(p.busy);
    close(pool_fd); /* releases the pool lock */
    close(dir_fd);
    return rc;
}

void uidpool_release(struct uidpool_lease *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    uidpool_lease_init(l);
}
