/*
 * Snapshots of Docker bottles: `bottle commit <slug>` and what
 * `bottle start --resume <slug>` boots from.
 *
 * A snapshot is the image bottle-committed-<slug>:latest. `docker commit`
 * takes the running container's layer (the engine pauses the container
 * while it copies it), but the agent's home is a tmpfs the engine does not
 * see, and the root is read-only: what the agent wrote lives in its home.
 * So the agent's own user archives the home with `tar` inside the bottle
 * (same cgroup, seccomp profile and user as the agent), and that archive is
 * added to the image as one plain file, DOCKER_SNAPSHOT_ARCHIVE, wrapped by
 * the host in a one-entry tar for `docker cp`. The host never unpacks what
 * the agent wrote: a resumed bottle unpacks it into its fresh home as the
 * agent, inside the bottle (docker_home_restore in docker.c).
 *
 * The image's labels record where it came from (slug, agent, bottle names,
 * workspace). Policy is never taken from a snapshot, and no value of the
 * agent's environment reaches the image config: `docker run` is given no
 * variables (they are passed to `docker exec` only).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/docker/docker.h"
#include "backends/docker/docker_internal.h"

/* Image repositories are lowercase [a-z0-9] with single '.', '_' or runs of '-' between. */
static bool slug_names_image(const char *slug)
{
    size_t n = slug ? strlen(slug) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = slug[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum || c == '-')
            continue;
        if (c != '.' && c != '_')
            return false;
        if (i == 0 || i + 1 == n)
            return false;
        char before = slug[i - 1], after = slug[i + 1];
        if (!((before >= 'a' && before <= 'z') || (before >= '0' && before <= '9')) ||
            !((after >= 'a' && after <= 'z') || (after >= '0' && after <= '9')))
            return false;
    }
    char first = slug[0], last = slug[n - 1];
    return first != '-' && last != '-';
}

char *docker_snapshot_ref(const char *slug)
{
    if (!slug_names_image(slug))
        return NULL;
    return xasprintf("%s%s:latest", DOCKER_SNAPSHOT_REPO_PREFIX, slug);
}

char *docker_label_change(const char *key, const char *value)
{
    if (strpbrk(key, " \t\n\"=\\") || strchr(value, '\n') || strchr(value, '\r'))
        return NULL;
    struct buf b = BUF_INIT;
    buf_printf(&b, "LABEL %s=\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '$')
            buf_append_char(&b, '\\');
        buf_append_char(&b, *p);
    }
    buf_append_char(&b, '"');
    return buf_steal(&b);
}

static void tar_octal(unsigned char *field, size_t width, uint64_t v)
{
    /* width - 1 digits and a NUL */
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%0*llo", (int)(width - 1), (unsigned long long)v);
    memcpy(field, tmp, width - 1);
    field[width - 1] = '\0';
}

void docker_tar_header(unsigned char h[512], const char *name, unsigned mode, unsigned uid,
                       unsigned gid, uint64_t size, long long mtime)
{
    memset(h, 0, 512);
    size_t n = strlen(name);
    memcpy(h, name, n < 100 ? n : 99);
    tar_octal(h + 100, 8, mode & 07777);
    tar_octal(h + 108, 8, uid);
    tar_octal(h + 116, 8, gid);
    if (size < (1ULL << 33)) {
        tar_octal(h + 124, 12, size);
    } else {
        /* GNU base-256: the high bit of the first byte set, big-endian in the rest. */
        h[124] = 0x80;
        for (int i = 11; i >= 1; i--) {
            h[124 + i] = (unsigned char)(size & 0xff);
            size >>= 8;
        }
    }
    tar_octal(h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += h[i];
    char tmp[8];
    snprintf(tmp, sizeof(tmp), "%06o", sum & 0777777);
    memcpy(h + 148, tmp, 6);
    h[154] = '\0';
    h[155] = ' ';
}

void docker_snapshot_free(struct docker_snapshot *s)
{
    if (!s)
        return;
    free(s->ref);
    free(s->id);
    free(s->slug);
    free(s->agent);
    strv_free(&s->bottles);
    free(s->workspace);
    memset(s, 0, sizeof(*s));
}

/* Splits text at newlines into at most n fields (missing ones are ""). */
static void split_lines(char *text, char **fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fields[i] = text ? text : (char *)"";
        char *nl = text ? strchr(text, '\n') : NULL;
        if (nl)
            *nl = '\0';
        text = nl ? nl + 1 : NULL;
    }
}

static void split_commas(const char *csv, struct strv *out)
{
    const char *p = csv;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len)
            strv_push_owned(out, xstrndup(p, len));
        p = comma ? comma + 1 : NULL;
    }
}

static int open_cli(struct docker_cli *cli, struct bottle_err *err)
{
    int rc = docker_cli_init(cli, err);
    if (rc == 0)
        rc = docker_cli_probe(cli, err);
    return rc;
}

/* ---- commit ------------------------------------------------------------------------- */

struct commit_job {
    const struct docker_commit_request *req;
    struct docker_cli cli;
    char *container; /* bottle-<slug> */
    char *user;      /* uid:gid the bottle runs as */
    char *home;
    char *ref;
    char *partial; /* the container's own commit, before the home is added */
    char *old_id;  /* the snapshot this one replaces */
    char *scratch; /* the container the archive is copied into */
    int archive_fd;
};

/* The container must be the slug's bottle, running, with a non-root numeric user and a home. */
static int commit_check_container(struct commit_job *j, struct bottle_err *err)
{
    const char *slug = j->req->slug;
    char *format = xasprintf("{{index .Config.Labels \"%s\"}}\n{{.State.Running}}\n"
                             "{{.Config.User}}\n{{index .Config.Labels \"%s\"}}",
                             DOCKER_LABEL_SLUG, DOCKER_LABEL_HOME);
    const char *args[] = {"container", "inspect", "--format", format, j->container, NULL};
    struct buf out = BUF_INIT;
    struct bottle_err inspect_err = {0};
    int rc = docker_cli_run(&j->cli, args, false, &out, &inspect_err);
    free(format);
    if (rc < 0) {
        buf_free(&out);
        return err_set_kind(err, ERR_KIND_USAGE, ENOENT,
                            "docker: the engine has no container %s for bottle '%s' (is "
                            "DOCKER_HOST the engine the bottle runs on?): %s",
                            j->container, slug, inspect_err.msg);
    }
    char *f[4];
    split_lines(out.data, f, 4);
    unsigned uid = 0, gid = 0;
    char extra;
    if (strcmp(f[0], slug) != 0)
        rc = err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                          "docker: container %s is not bottle '%s''s (its %s label is '%s')",
                          j->container, slug, DOCKER_LABEL_SLUG, f[0]);
    else if (strcmp(f[1], "true") != 0)
        rc = err_set_kind(err, ERR_KIND_USAGE, ESRCH, "docker: container %s is not running",
                          j->container);
    else if (sscanf(f[2], "%u:%u%c", &uid, &gid, &extra) != 2 || uid == 0 || gid == 0)
        rc = err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                          "docker: container %s runs as '%s', not as a bottle's non-root user",
                          j->container, f[2]);
    else if (f[3][0] != '/')
        rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                          "docker: container %s does not say where the agent's home is (label "
                          "%s); it was started by an older bottle",
                          j->container, DOCKER_LABEL_HOME);
    if (rc == 0) {
        j->user = xasprintf("%u:%u", uid, gid);
        j->home = xstrdup(f[3]);
    }
    buf_free(&out);
    return rc;
}

/* A descriptor above 2: spawn_run reads 0 as "no descriptor given" (stdin may be closed). */
static int above_stdio(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    errno = saved;
    return moved;
}

static int open_scratch_file(const char *dir, struct bottle_err *err)
{
    int fd = above_stdio(open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (fd >= 0)
        return fd;
    char *templ = xasprintf("%s/.commit-XXXXXX", dir);
    fd = mkostemp(templ, O_CLOEXEC);
    if (fd >= 0)
        unlink(templ);
    fd = above_stdio(fd);
    free(templ);
    if (fd < 0)
        return err_set(err, errno, "docker: cannot make a scratch file in %s: %s", dir,
                       strerror(errno));
    return fd;
}

static int write_all_at(int fd, const void *data, size_t len, off_t at)
{
    const char *p = data;
    while (len) {
        ssize_t w = pwrite(fd, p, len, at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
        at += w;
    }
    return 0;
}

/*
 * The home as the agent's user archives it inside the bottle, wrapped as the
 * one entry DOCKER_SNAPSHOT_ARCHIVE of a tar for `docker cp -`.
 */
static int commit_archive_home(struct commit_job *j, struct bottle_err *err)
{
    int fd = open_scratch_file(j->req->scratch_dir, err);
    if (fd < 0)
        return fd;
    j->archive_fd = fd;
    if (lseek(fd, 512, SEEK_SET) != 512)
        return err_set(err, errno, "docker: seek in the scratch file: %s", strerror(errno));
    /* GNU tar exits 1 when a file changed while it was read: the archive is still whole. */
    const char *args[] = {"exec", "--user", j->user, j->container, "tar", "-c",
                          "-f",   "-",      "-C",    j->home,      ".",   NULL};
    int rc = docker_cli_run_io(&j->cli, args, -1, fd, 512 + DOCKER_SNAPSHOT_HOME_MAX, 1, NULL, err);
    if (rc < 0)
        return err_prefix(err,
                          "docker: archiving the agent's home %s (the image needs tar; the "
                          "archive may not exceed %llu GiB)",
                          j->home, (unsigned long long)(DOCKER_SNAPSHOT_HOME_MAX >> 30));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || sb.st_size <= 512)
        return err_set(err, EIO, "docker: tar in %s wrote no archive of %s", j->container, j->home);
    uint64_t size = (uint64_t)sb.st_size - 512;
    unsigned uid = 0, gid = 0;
    sscanf(j->user, "%u:%u", &uid, &gid);
    unsigned char header[512];
    docker_tar_header(header, DOCKER_SNAPSHOT_ARCHIVE + 1, 0644, uid, gid, size,
                      (long long)time(NULL));
    static const unsigned char zeros[512 * 3];
    size_t pad = (512 - size % 512) % 512;
    if (write_all_at(fd, header, sizeof(header), 0) < 0 ||
        write_all_at(fd, zeros, pad + 1024, sb.st_size) < 0 || lseek(fd, 0, SEEK_SET) != 0)
        return err_set(err, errno ? errno : EIO, "docker: writing the scratch file: %s",
                       strerror(errno ? errno : EIO));
    return 0;
}

static int commit_image(struct commit_job *j, struct bottle_err *err)
{
    const struct docker_commit_request *r = j->req;
    /* 1. The container's own layer; the bottle's container labels do not belong to the image. */
    char *clear_slug = docker_label_change(DOCKER_LABEL_SLUG, "");
    char *clear_home = docker_label_change(DOCKER_LABEL_HOME, "");
    const char *commit1[] = {"commit",   "--pause=true", "--change", clear_slug, "--change",
                             clear_home, j->container,   j->partial, NULL};
    int rc = docker_cli_run(&j->cli, commit1, false, NULL, err);
    free(clear_slug);
    free(clear_home);
    if (rc < 0)
        return err_prefix(err, "docker: commit of %s", j->container);

    /* 2. The home's archive, added in a container that never runs. */
    const char *create[] = {"create", "--network", "none", j->partial, NULL};
    struct buf id = BUF_INIT;
    rc = docker_cli_run(&j->cli, create, false, &id, err);
    if (rc == 0 && (!id.data || !*id.data))
        rc = err_set(err, EPROTO, "docker create gave no container id");
    if (rc == 0)
        j->scratch = buf_steal(&id);
    buf_free(&id);
    if (rc < 0)
        return err_prefix(err, "docker: adding the home to the snapshot");
    char *dest = xasprintf("%s:/", j->scratch);
    const char *cp[] = {"cp", "-", dest, NULL};
    rc = docker_cli_run_io(&j->cli, cp, j->archive_fd, -1, 0, 0, NULL, err);
    free(dest);
    if (rc < 0)
        return err_prefix(err, "docker: adding the home to the snapshot");

    /* 3. The snapshot, labelled with where it came from. */
    struct buf csv = BUF_INIT;
    for (size_t i = 0; r->bottles && i < r->bottles->len; i++)
        buf_printf(&csv, "%s%s", i ? "," : "", r->bottles->items[i]);
    char *labels[5] = {
        docker_label_change(DOCKER_LABEL_SNAP_SLUG, r->slug),
        docker_label_change(DOCKER_LABEL_SNAP_AGENT, r->agent ? r->agent : ""),
        docker_label_change(DOCKER_LABEL_SNAP_BOTTLES, csv.data ? csv.data : ""),
        docker_label_change(DOCKER_LABEL_SNAP_WORKSPACE, r->workspace ? r->workspace : ""),
        docker_label_change(DOCKER_LABEL_SNAP_ARCHIVE, DOCKER_SNAPSHOT_ARCHIVE),
    };
    buf_free(&csv);
    struct strv args = STRV_INIT;
    strv_push(&args, "commit");
    for (size_t i = 0; i < 5; i++) {
        if (!labels[i] && rc == 0)
            rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                              "docker: a name or path of the bottle holds a newline");
        strv_push(&args, "--change");
        strv_push(&args, labels[i] ? labels[i] : "");
        free(labels[i]);
    }
    strv_push(&args, j->scratch);
    strv_push(&args, j->ref);
    if (rc == 0)
        rc = docker_cli_run(&j->cli, (const char *const *)args.items, false, NULL, err);
    strv_free(&args);
    if (rc < 0)
        return err_prefix(err, "docker: commit of the snapshot %s", j->ref);
    return 0;
}

static char *image_id(const struct docker_cli *cli, const char *ref)
{
    const char *args[] = {"image", "inspect", "--format", "{{.Id}}", ref, NULL};
    struct buf out = BUF_INIT;
    struct bottle_err ignored = {0};
    if (docker_cli_run(cli, args, false, &out, &ignored) < 0 || !out.data || !*out.data) {
        buf_free(&out);
        return NULL;
    }
    return buf_steal(&out);
}

static void commit_job_free(struct commit_job *j)
{
    struct bottle_err ignored = {0};
    if (j->scratch) {
        const char *rm[] = {"rm", "--force", "--volumes", j->scratch, NULL};
        docker_cli_run(&j->cli, rm, false, NULL, &ignored);
    }
    if (j->partial && j->cli.path) {
        /* Untags it; the layer stays as the snapshot's parent when the commit went through. */
        const char *rmi[] = {"image", "rm", j->partial, NULL};
        docker_cli_run(&j->cli, rmi, false, NULL, &ignored);
    }
    if (j->archive_fd >= 0)
        close(j->archive_fd);
    docker_cli_free(&j->cli);
    free(j->container);
    free(j->user);
    free(j->home);
    free(j->ref);
    free(j->partial);
    free(j->old_id);
    free(j->scratch);
}

int docker_commit_slug(const struct docker_commit_request *req, struct docker_snapshot *out,
                       struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    struct commit_job j;
    memset(&j, 0, sizeof(j));
    j.req = req;
    j.archive_fd = -1;
    j.ref = docker_snapshot_ref(req->slug);
    if (!j.ref)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "docker: bottle '%s' cannot name an image (%s<slug> needs lowercase "
                            "letters, digits and '-')",
                            req->slug ? req->slug : "", DOCKER_SNAPSHOT_REPO_PREFIX);
    j.container = xasprintf("%s%s", DOCKER_NAME_PREFIX, req->slug);
    j.partial = xasprintf("%s%s:partial", DOCKER_SNAPSHOT_REPO_PREFIX, req->slug);
    int rc = open_cli(&j.cli, err);
    if (rc == 0)
        rc = commit_check_container(&j, err);
    if (rc == 0) {
        j.old_id = image_id(&j.cli, j.ref);
        rc = commit_archive_home(&j, err);
    }
    if (rc == 0)
        rc = commit_image(&j, err);
    if (rc == 0) {
        out->id = image_id(&j.cli, j.ref);
        if (!out->id)
            rc = err_set(err, ENOENT, "docker: the snapshot %s is not in the engine after commit",
                         j.ref);
    }
    if (rc == 0 && j.old_id && strcmp(j.old_id, out->id) != 0) {
        /* The snapshot it replaces; kept (untagged) while a resumed bottle still runs it. */
        const char *rmi[] = {"image", "rm", j.old_id, NULL};
        struct bottle_err ignored = {0};
        docker_cli_run(&j.cli, rmi, false, NULL, &ignored);
    }
    if (rc == 0) {
        out->ref = xstrdup(j.ref);
        out->slug = xstrdup(req->slug);
        out->agent = xstrdup(req->agent ? req->agent : "");
        out->workspace = xstrdup(req->workspace ? req->workspace : "");
        if (req->bottles)
            strv_copy(&out->bottles, req->bottles);
    } else {
        free(out->id);
        out->id = NULL;
    }
    commit_job_free(&j);
    return rc;
}

/* ---- find ---------------------------------------------------------------------------- */

int docker_snapshot_find(const char *slug, struct docker_snapshot *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    char *ref = docker_snapshot_ref(slug);
    if (!ref)
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "'%s' cannot be a Docker bottle's slug, so it has no snapshot",
                            slug ? slug : "");
    struct docker_cli cli;
    int rc = open_cli(&cli, err);
    if (rc < 0) {
        docker_cli_free(&cli);
        free(ref);
        return rc;
    }
    char *format =
        xasprintf("{{.Id}}\n{{index .Config.Labels \"%s\"}}\n"
                  "{{index .Config.Labels \"%s\"}}\n{{index .Config.Labels \"%s\"}}\n"
                  "{{index .Config.Labels \"%s\"}}\n{{index .Config.Labels \"%s\"}}",
                  DOCKER_LABEL_SNAP_SLUG, DOCKER_LABEL_SNAP_AGENT, DOCKER_LABEL_SNAP_BOTTLES,
                  DOCKER_LABEL_SNAP_WORKSPACE, DOCKER_LABEL_SNAP_ARCHIVE);
    const char *args[] = {"image", "inspect", "--format", format, ref, NULL};
    struct buf text = BUF_INIT;
    struct bottle_err ignored = {0};
    if (docker_cli_run(&cli, args, false, &text, &ignored) < 0) {
        rc = err_set_kind(err, ERR_KIND_USAGE, ENOENT,
                          "no snapshot of bottle '%s': the engine has no image %s ('bottle "
                          "commit %s' makes one while the bottle runs)",
                          slug, ref, slug);
    } else {
        char *f[6];
        split_lines(text.data, f, 6);
        if (strcmp(f[1], slug) != 0 || strcmp(f[5], DOCKER_SNAPSHOT_ARCHIVE) != 0) {
            rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                              "image %s was not made by 'bottle commit %s' (its %s label is "
                              "'%s')",
                              ref, slug, DOCKER_LABEL_SNAP_SLUG, f[1]);
        } else {
            out->ref = xstrdup(ref);
            out->id = xstrdup(f[0]);
            out->slug = xstrdup(f[1]);
            out->agent = xstrdup(f[2]);
            split_commas(f[3], &out->bottles);
            out->workspace = xstrdup(f[4]);
        }
    }
    buf_free(&text);
    free(format);
    free(ref);
    docker_cli_free(&cli);
    return rc;
}
