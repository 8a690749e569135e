/*
 * home — where bottle keeps its files, and what a bottle may be called.
 *
 * Two homes. The config home holds what a person writes (agents/, bottles/,
 * settings.yml): $BOTTLE_HOME, else ~/.bottle of the invoking user, also
 * under sudo. The data home holds what bottle writes (state/, run/, the
 * ledger): the same directory for a user running bottle as themselves, but
 * under sudo (root acting for a non-root SUDO_UID) it is
 * HOME_SUDO_ROOT/<uid>, a directory only root can change, whatever
 * $BOTTLE_HOME and $HOME say: root never writes into a directory the caller
 * controls (docs/security.md, host side).
 *
 * Owns the BOTTLE_HOME resolvers, the sudo test and the one slug rule every
 * module checks names against (state directories, cgroups, pins,
 * namespaces, containers). Never creates or removes anything: callers decide
 * what lives under the homes.
 */
#ifndef BOTTLE_COMMON_HOME_H
#define BOTTLE_COMMON_HOME_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"

#define HOME_SLUG_MAX 64
/* Under sudo, the data homes: HOME_SUDO_ROOT/<uid>/, root-owned, 0700. */
#define HOME_SUDO_ROOT "/var/lib/bottle"

/*
 * Whether bottle runs under sudo: effective uid 0 on behalf of the non-root
 * user SUDO_UID names (set in *uid when non-NULL). Root without SUDO_UID, or
 * with SUDO_UID=0, is plain root.
 */
bool home_sudo_uid(uid_t *uid);

/*
 * The data home (allocated): HOME_SUDO_ROOT/<uid> under sudo, else
 * $BOTTLE_HOME when set and non-empty, else <home>/.bottle.
 */
int home_path(char **out, struct bottle_err *err);

/* The config home (allocated): $BOTTLE_HOME when set, else the invoking user's ~/.bottle. */
int home_config_path(char **out, struct bottle_err *err);

/*
 * Whether only root can change path: every component, from '/', is a real
 * directory (no symlink) owned by root and writable by nobody else, except
 * that an ancestor may be world-writable when it is sticky (/tmp): its other
 * users cannot rename or replace root's entries. ENOENT when it does not
 * exist; EPERM with the offending component named otherwise.
 */
int home_check_private(const char *path, struct bottle_err *err);

/* A usable slug: [A-Za-z0-9._-]{1,64}, starting with a letter or digit. */
bool home_slug_valid(const char *slug);

#endif
