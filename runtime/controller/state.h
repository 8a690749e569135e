/*
 * state — a bottle's on-disk state: $BOTTLE_HOME/state/<slug>/ (0700) with
 * plan.json and whatever else the controller keeps (routes, CA, logs), and
 * $BOTTLE_HOME/run/ (0700) for control sockets and per-slug lock files.
 *
 * The slug is the --label when one is given (a label already taken is an
 * error, never a silent rename) or <agent>-<5 base36 characters>. A bottle
 * holds an exclusive flock on $BOTTLE_HOME/run/<slug>.lock for as long as it
 * lives, so two starts cannot take one slug and `bottle cleanup` can tell a
 * live bottle from what a crashed one left behind.
 *
 * Every file operation goes through descriptors: the home is opened by a
 * walk from '/' that follows no symlink (and, as root, must be a directory
 * only root can change: HOME_SUDO_ROOT/<uid> under sudo, see home.h), and
 * state/, run/ and the state directory are opened beneath it with openat2
 * (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); files are written, and the
 * directory removed, relative to those descriptors. So a path swapped for a
 * symlink while a bottle runs redirects nothing.
 *
 * This module never deletes anything outside the one state directory it
 * created or locked, and never follows a symlink while removing it.
 */
#ifndef BOTTLE_CONTROLLER_STATE_H
#define BOTTLE_CONTROLLER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/home.h"
#include "manifest/plan.h"

#define STATE_SLUG_RANDOM_LEN 5
/* Host-wide liveness locks, whatever $BOTTLE_HOME (see state_live_lock). */
#define STATE_LIVE_DIR "/run/bottle/live"

struct state_dir {
    char *home;  /* the data home (home_path) */
    char *slug;  /* the bottle's name */
    char *path;  /* <home>/state/<slug>, for messages and children's mounts */
    char *lock;  /* <home>/run/<slug>.lock */
    int lock_fd; /* holds LOCK_EX while the bottle lives; -1 when closed */
    int root_fd; /* <home>/state; -1 when closed */
    int run_fd;  /* <home>/run; -1 when closed */
    int dir_fd;  /* <home>/state/<slug>; -1 when closed */
};

/* A zeroed struct with every descriptor -1 (safe for state_close). */
void state_init(struct state_dir *st);

/*
 * Opens the data home, creating it (0700) when missing; as root it must be
 * a directory only root can change (fs_open_dir_walk). Returns the fd.
 */
int state_open_home(const char *home, struct bottle_err *err);

/* Creates (0700, parents too) and returns $BOTTLE_HOME/run. home NULL: home_path(). */
int state_run_dir(const char *home, char **out, struct bottle_err *err);

/*
 * Takes a slug and creates its state directory (0700), holding the slug's
 * lock. label non-NULL: exactly that slug, EEXIST (usage error) when in use.
 * Otherwise <agent>-<5 base36>, retried on collision. home NULL: home_path().
 */
int state_create(const char *home, const char *agent, const char *label, struct state_dir *st,
                 struct bottle_err *err);

/*
 * What a crashed bottle left: opens the slug's state directory (when there
 * is one) and takes its lock without blocking, for state_remove. -EBUSY when
 * a live process holds the lock.
 */
int state_open_stale(const char *home, const char *slug, struct state_dir *st,
                     struct bottle_err *err);

/* Writes name (one path component) in the state directory atomically with mode. */
int state_write_file(const struct state_dir *st, const char *name, const void *data, size_t len,
                     mode_t mode, struct bottle_err *err);
/* plan.json (0600): the plan's stable JSON form. */
int state_write_plan(const struct state_dir *st, const struct plan *plan, struct bottle_err *err);

/* Clean exit: removes the state directory and the lock file, then closes. */
int state_remove(struct state_dir *st, struct bottle_err *err);
/* Crash or non-zero exit: keeps the directory, releases the lock, frees. Safe on zeroed structs. */
void state_close(struct state_dir *st);

/* Whether a live process holds the slug's lock. */
int state_slug_active(const char *home, const char *slug, bool *active, struct bottle_err *err);

/*
 * Host-wide liveness: a running controller holds a record lock on
 * STATE_LIVE_DIR/<slug>.lock. Returns the locked fd, or -EEXIST (a usage
 * error) when another bottle of that name runs on this host.
 */
int state_live_lock(const char *slug, struct bottle_err *err);
/* The pid holding the slug's liveness lock; 0 when none. */
pid_t state_live_pid(const char *slug);
bool state_slug_live(const char *slug);

#endif
