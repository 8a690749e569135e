/*
 * home — where bottle keeps its files, and what a bottle may be called.
 *
 * Owns the one BOTTLE_HOME resolver and the one slug rule every module
 * checks names against (state directories, cgroups, pins, namespaces,
 * containers). Never creates or removes anything: callers decide what lives
 * under the home.
 */
#ifndef BOTTLE_COMMON_HOME_H
#define BOTTLE_COMMON_HOME_H

#include <stdbool.h>

#include "common/err.h"

#define HOME_SLUG_MAX 64

/* $BOTTLE_HOME when set and non-empty, else <home>/.bottle (allocated). */
int home_path(char **out, struct bottle_err *err);

/* A usable slug: [A-Za-z0-9._-]{1,64}, starting with a letter or digit. */
bool home_slug_valid(const char *slug);

#endif
