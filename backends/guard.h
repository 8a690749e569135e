/*
 * guard — the workspace paths a bottle keeps read-only, the same on every
 * backend: the git settings of each repository at the top of the workspace
 * (plan_git_guards: .git/config, .git/hooks, ...) and the bottle's
 * workspace.read_only. Whatever the agent plants there would run on the
 * host the next time the user runs git; read-only, it cannot plant it.
 *
 * The list is computed on the host before the bottle starts, never
 * following a symlink inside the workspace (a protected path that is one is
 * refused). Every directory between the workspace and a protected path is
 * "pinned" (bound over itself, still writable) so that the agent cannot
 * rename it away and put a directory of its own in its place. Backends bind
 * each entry over itself, shallow paths first; nothing else decides here.
 */
#ifndef BOTTLE_BACKENDS_GUARD_H
#define BOTTLE_BACKENDS_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

#define GUARD_MAX_PATHS 1024

enum guard_kind {
    GUARD_PIN,       /* bound over itself, writable: cannot be renamed or removed */
    GUARD_READ_ONLY, /* bound over itself, read-only */
};

struct guard_path {
    char *rel; /* relative to the workspace, no symlink on the way */
    enum guard_kind kind;
    bool dir;
};

struct guard_list {
    struct guard_path *items; /* parents before children */
    size_t len;
    struct strv missing; /* workspace.read_only entries that do not exist: not protected */
    struct strv created; /* git entries created empty so they could be protected */
    struct strv absent;  /* git entries that cannot be created empty (.git/commondir) */
    struct strv repos;   /* the repositories found ("" for the workspace itself) */
};

/*
 * Builds the list for workspace (an absolute real path). Missing git
 * entries marked `create` are created empty, owned like the .git they sit
 * in; a symlink where a protected path or a .git is refuses
 * (ERR_KIND_REFUSED).
 */
int guard_list_build(const char *workspace, const struct strv *read_only, struct guard_list *out,
                     struct bottle_err *err);
void guard_list_free(struct guard_list *g);

/* The name a planted git entry is moved to after the bottle (git ignores it there). */
#define GUARD_PLANTED_SUFFIX ".bottle-planted"

/*
 * After the bottle, for what no mount could stop: a git entry in `absent`
 * that the agent created is moved aside (GUARD_PLANTED_SUFFIX), and a
 * repository that appeared at the top of the workspace is reported. One
 * line for the operator per finding in report.
 */
int guard_audit(const char *workspace, const struct guard_list *g, struct strv *report,
                struct bottle_err *err);

#endif
