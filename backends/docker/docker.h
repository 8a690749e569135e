/*
 * docker — what the rest of bottle may call besides backend_docker: cleanup
 * of a crashed Docker bottle knowing only its slug.
 */
#ifndef BOTTLE_BACKENDS_DOCKER_DOCKER_H
#define BOTTLE_BACKENDS_DOCKER_DOCKER_H

#include "common/err.h"

/*
 * Removes the bottle's container (bottle-<slug>, only when it carries the
 * bottle's slug label) and the v1 cgroup directories the engine made for
 * it. No docker CLI, no engine or no container is not an error.
 */
int docker_remove_slug(const char *slug, struct bottle_err *err);

#endif
