/*
 * Shared helpers for the cmocka unit tests: temp directories, file writing,
 * and the rule that kernel tests never skip under CI.
 */
#ifndef BOTTLE_TESTS_TESTUTIL_H
#define BOTTLE_TESTS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"

static inline bool testutil_ci(void)
{
    const char *ci = getenv("CI");
    return ci && strcmp(ci, "true") == 0;
}

/* Skip a test that needs root; under CI a skip is a failure. */
#define REQUIRE_ROOT()                                                                             \
    do {                                                                                           \
        if (geteuid() != 0) {                                                                      \
            if (testutil_ci())                                                                     \
                fail_msg("needs root, and CI runs as root");                                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* A fresh directory under /tmp; caller frees the string (and removes the tree). */
static inline char *testutil_mkdtemp(void)
{
    char *p = strdup("/tmp/bottle-unit.XXXXXX");
    if (!p || !mkdtemp(p))
        abort();
    return p;
}

static inline void testutil_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* Writes text to dir/rel, creating the directories on the way (mode 0700). */
static inline void testutil_put(const char *dir, const char *rel, const char *text)
{
    char *path = fs_join(dir, rel);
    char *parent = xstrdup(path);
    *strrchr(parent, '/') = '\0';
    struct bottle_err err = {0};
    if (fs_mkdir_p(parent, 0700, &err) < 0)
        fail_msg("%s", err.msg);
    testutil_write(path, text);
    free(parent);
    free(path);
}

static inline void testutil_rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fail_msg("cannot remove %s", path);
}

#endif
