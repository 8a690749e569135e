/*
 * Shared between the native backend's parent side (launch.c) and the code
 * that runs inside the new namespaces (child.c). Not a public header.
 */
#ifndef BOTTLE_BACKENDS_NATIVE_INTERNAL_H
#define BOTTLE_BACKENDS_NATIVE_INTERNAL_H

#include "backends/backend.h"

/* Exit codes of the init when the bottle could not be set up or the agent not exec'd. */
#define NATIVE_EXIT_SETUP 125
#define NATIVE_EXIT_EXEC  127

/* Everything the child needs, prepared by the parent before clone. */
struct native_child {
    const struct backend_spec *spec;
    char *const *argv;
    char *const *envp;
    int err_fd;  /* write end: setup or exec errors as text; EOF means the agent runs */
    int gate_fd; /* read end: wait for the parent before starting; -1 when not needed */
};

/* Runs in the cloned child (PID 1 of the new PID namespace). Never returns. */
_Noreturn void native_child_main(const struct native_child *c);

/* true when path is base or below it (both absolute, normalized). */
static inline bool native_path_within(const char *path, const char *base)
{
    size_t n = strlen(base);
    if (n == 1 && base[0] == '/')
        return true;
    return strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

#endif
