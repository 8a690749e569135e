/*
 * spawn — run a program from an argv array (never a shell), with a timeout,
 * optional stdin bytes (or an fd), and captured stdout/stderr (or stdout to an fd). When the
 * program fails the error message carries its exit status and the tail of its stderr.
 */
#ifndef BOTTLE_COMMON_SPAWN_H
#define BOTTLE_COMMON_SPAWN_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct spawn_opts {
    int timeout_ms;         /* 0: no timeout */
    const char *stdin_data; /* NULL: stdin is /dev/null */
    size_t stdin_len;
    char *const *envp;   /* NULL: inherit the environment */
    bool inherit_stdout; /* do not capture stdout */
    bool inherit_stderr; /* do not capture stderr */
    /* > 0: the child's stdin / stdout is this fd (a file, for streams too large to hold in
     * memory), instead of stdin_data or /dev/null / a capture. */
    int stdin_fd;
    int stdout_fd;
    /* > 0: the child may write no file past this size (RLIMIT_FSIZE; stdout_fd included):
     * a write beyond it fails, so a runaway stream cannot fill the disk. */
    uint64_t file_size_max;
};

struct spawn_result {
    int exit_code; /* exit status, or 128 + signal */
    bool timed_out;
    struct buf out;  /* captured stdout */
    struct buf errb; /* captured stderr */
};

/*
 * Runs argv[0] (looked up on PATH) and waits. Returns 0 when it ran and exited
 * 0; a negative value with err filled when it could not run, timed out or
 * exited non-zero. result (optional) is filled either way; free it with
 * spawn_result_free.
 */
int spawn_run(const char *const argv[], const struct spawn_opts *opts, struct spawn_result *result,
              struct bottle_err *err);
void spawn_result_free(struct spawn_result *r);

#endif
