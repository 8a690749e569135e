/*
 * fs — file helpers with explicit modes and crash-safe writes.
 *
 * fs_write_atomic never leaves a half-written file under the final name: it
 * writes a temporary file in the same directory, fsyncs it, renames it over
 * the target and fsyncs the directory.
 */
#ifndef BOTTLE_COMMON_FS_H
#define BOTTLE_COMMON_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                    struct bottle_err *err);
/* Reads a whole file, refusing files larger than max_bytes. */
int fs_read_file(const char *path, size_t max_bytes, struct buf *out, struct bottle_err *err);
/* mkdir -p with the given mode for every directory it creates. */
int fs_mkdir_p(const char *path, mode_t mode, struct bottle_err *err);
bool fs_is_dir(const char *path);
bool fs_is_file(const char *path);
/* Joins two path parts with exactly one '/'. */
char *fs_join(const char *a, const char *b);
/* Looks a program up on PATH (or takes it as given when it holds a '/'). */
char *fs_which(const char *program);
/* $HOME of the invoking user, preferring the sudo caller's home. */
const char *fs_home_dir(void);

#endif
