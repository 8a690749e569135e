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

static inline void testutil_rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fail_msg("cannot remove %s", path);
}

#endif
