/*
 * docker — what the rest of bottle may call besides backend_docker: cleanup
 * of a crashed Docker bottle knowing only its slug, and snapshots (`bottle
 * commit`, `bottle start --resume`).
 */
#ifndef BOTTLE_BACKENDS_DOCKER_DOCKER_H
#define BOTTLE_BACKENDS_DOCKER_DOCKER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/*
 * Removes the bottle's container (bottle-<slug>, only when it carries the
 * bottle's slug label) and the v1 cgroup directories the engine made for
 * it. No docker CLI, no engine or no container is not an error.
 */
int docker_remove_slug(const char *slug, struct bottle_err *err);

/* ---- snapshots (commit.c) ------------------------------------------------------------ */

/* A snapshot of bottle <slug> is the image bottle-committed-<slug>:latest. */
#define DOCKER_SNAPSHOT_REPO_PREFIX "bottle-committed-"
/* Where a snapshot keeps the archive of the agent's home (a plain file in the image). */
#define DOCKER_SNAPSHOT_ARCHIVE "/.bottle-home.tar"
/* Largest archive of an agent's home a commit writes to the host's disk. */
#define DOCKER_SNAPSHOT_HOME_MAX (16ull << 30)
/* Labels of a snapshot: where it came from. Never policy, never a value of the environment. */
#define DOCKER_LABEL_SNAP_SLUG      "dev.bottle.snapshot.slug"
#define DOCKER_LABEL_SNAP_AGENT     "dev.bottle.snapshot.agent"
#define DOCKER_LABEL_SNAP_BOTTLES   "dev.bottle.snapshot.bottles"
#define DOCKER_LABEL_SNAP_WORKSPACE "dev.bottle.snapshot.workspace"
#define DOCKER_LABEL_SNAP_ARCHIVE   "dev.bottle.snapshot.archive"

struct docker_commit_request {
    const char *slug;
    const char *agent;
    const struct strv *bottles; /* the bottle names it runs with, in order */
    const char *workspace;
    const char *scratch_dir; /* holds the home's archive (unlinked) while the image is made */
};

struct docker_snapshot {
    char *ref; /* bottle-committed-<slug>:latest */
    char *id;  /* the image id (sha256:...) */
    char *slug;
    char *agent;
    struct strv bottles;
    char *workspace;
};

/* The image reference of slug's snapshot, or NULL when the slug cannot name an image. */
char *docker_snapshot_ref(const char *slug);
/*
 * Snapshots the running container of bottle req->slug: `docker commit` (the
 * engine pauses the container while it copies its layer), plus an archive of
 * the agent's home made by the agent's own user inside the container, into
 * bottle-committed-<slug>:latest, replacing an earlier snapshot of the slug.
 * The container keeps running.
 */
int docker_commit_slug(const struct docker_commit_request *req, struct docker_snapshot *out,
                       struct bottle_err *err);
/* The snapshot of slug, with what its labels record; ENOENT (usage) when there is none. */
int docker_snapshot_find(const char *slug, struct docker_snapshot *out, struct bottle_err *err);
void docker_snapshot_free(struct docker_snapshot *s);

/* Helpers, exposed for the tests. */
/* A Dockerfile LABEL instruction for `docker commit --change`; NULL when value has a newline. */
char *docker_label_change(const char *key, const char *value);
/* A ustar header for one regular file (sizes of 8 GiB and more in base-256). */
void docker_tar_header(unsigned char header[512], const char *name, unsigned mode, unsigned uid,
                       unsigned gid, uint64_t size, long long mtime);

#endif
