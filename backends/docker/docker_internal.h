/*
 * docker_internal — what the Docker backend's files share: the CLI runner,
 * the image step, the cgroup-parent helpers and the network hand-over.
 * Not for other modules; the public face is backend_docker (backend.h).
 */
#ifndef BOTTLE_BACKENDS_DOCKER_INTERNAL_H
#define BOTTLE_BACKENDS_DOCKER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/backend.h"
#include "common/buf.h"
#include "common/err.h"

/* Overrides the docker CLI found on PATH. */
#define DOCKER_BIN_ENV "BOTTLE_DOCKER"
/* Container names are this prefix plus the slug; every container carries the label. */
#define DOCKER_NAME_PREFIX "bottle-"
#define DOCKER_LABEL_SLUG  "dev.bottle.slug"
/* Images built from a Dockerfile are tagged with this repository and a content hash. */
#define DOCKER_IMAGE_REPO "bottle-agent"
/* The agent's home inside the container, for `bottle commit` to find. */
#define DOCKER_LABEL_HOME "dev.bottle.home"
/* The container's first process (under docker-init) only waits; the agent is exec'd. */
/* Where a bottle's files are copied for the bind mount at /bottle (neutral host path). */
#define DOCKER_FILES_DIR "/run/bottle/files"

#define DOCKER_IDLE_PROGRAM "sleep"
#define DOCKER_IDLE_ARG     "infinity"

/* The docker CLI and the environment it runs with. */
struct docker_cli {
    char *path;      /* absolute path of the docker binary */
    struct strv env; /* "NAME=value": only what the CLI itself reads */
    int timeout_ms;  /* for short commands (inspect, rm, version) */
};

int docker_cli_init(struct docker_cli *cli, struct bottle_err *err);
void docker_cli_free(struct docker_cli *cli);
/* Whether the docker CLI reads name itself (so it must not come from the agent's env). */
bool docker_cli_reads_name(const char *name);
/*
 * Runs `docker args...` and waits; out (optional) gets stdout without the
 * trailing newline. stream: the command's output goes to the user's
 * terminal (image builds). Errors carry the CLI's stderr.
 */
int docker_cli_run(const struct docker_cli *cli, const char *const *args, bool stream,
                   struct buf *out, struct bottle_err *err);
/*
 * docker_cli_run with the command's stdin and stdout on files (in_fd, out_fd; -1: /dev/null
 * and a capture that is dropped), no timeout, and its exit code in *exit_code (which may be
 * NULL). A non-zero exit is an error unless it is at most ok_up_to. out_max > 0: out_fd's
 * file may not grow past that size (the command fails there).
 */
int docker_cli_run_io(const struct docker_cli *cli, const char *const *args, int in_fd, int out_fd,
                      uint64_t out_max, int ok_up_to, int *exit_code, struct bottle_err *err);
/* `docker version`: fails with a clear message when no engine answers. */
int docker_cli_probe(const struct docker_cli *cli, struct bottle_err *err);

/* The image to run: spec->image as given, else built from spec->dockerfile (or reused). */
int docker_image_resolve(const struct docker_cli *cli, const struct backend_spec *spec,
                         char **image, struct bottle_err *err);
/* The tag a Dockerfile's content maps to: bottle-agent:<16 hex of its SHA-256>. */
int docker_image_tag_for(const char *dockerfile, char **tag, struct bottle_err *err);

/*
 * The cgroup-parent for a cgroup directory fd: its path below the cgroup2
 * mount ("/bottle/<slug>/agent"), and that mount.
 */
int docker_cgroup_parent(int cgroup_fd, char **parent, char **cgroup2_mount,
                         struct bottle_err *err);
/* Checks that pid's cgroup2 membership is below parent; the leaf path goes to *leaf. */
int docker_cgroup_check_pid(pid_t pid, const char *parent, char **leaf, struct bottle_err *err);
/* Removes the empty directories the engine made for parent in the v1 hierarchies. */
void docker_cgroup_v1_cleanup(const char *parent);

/*
 * `docker run` flags for the bottle's limits: --pids-limit, --memory with an equal
 * --memory-swap (no swap), --cpus, and --shm-size at the tmpfs size (NULL: the default);
 * `max` values add no flag.
 */
void docker_limit_args(const struct resource_limits *l, struct strv *argv);

/*
 * The `docker exec` command line for the agent (argv[0] is the CLI) and the
 * CLI's environment: each agent variable is passed as `--env NAME` with its
 * value in envp, except the names the CLI reads itself (docker_cli_reads_name),
 * which go as `--env NAME=value` so they cannot steer the CLI.
 */
void docker_exec_args(const struct docker_cli *cli, const struct backend_spec *spec,
                      const char *container, bool tty, struct strv *argv, struct strv *envp);

/*
 * Moves every non-loopback link of the namespace from_fd into to_fd, with
 * its IPv4 addresses, and brings it and lo up there. Fails unless exactly
 * one link with at least one address moved.
 */
int docker_net_adopt(int from_fd, int to_fd, struct bottle_err *err);

#endif
