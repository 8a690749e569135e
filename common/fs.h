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
/*
 * fs_write_atomic for name (one path component) in the directory dir_fd: the
 * temporary file and the rename stay in that directory whatever its path
 * becomes, and no symlink is followed.
 */
int fs_write_atomic_at(int dir_fd, const char *name, const void *data, size_t len, mode_t mode,
                       struct bottle_err *err);
/*
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS:
 * rel resolves inside dir_fd, through no symlink and no "..". Returns the fd
 * or -errno (ELOOP: a symlink on the way; EXDEV: rel escapes dir_fd).
 */
int fs_open_beneath(int dir_fd, const char *rel, int flags, mode_t mode);
/*
 * Opens the directory path (O_RDONLY | O_DIRECTORY) by walking it from '/'
 * one component at a time, following no symlink. private_to_root: every
 * component must be owned by root and writable by no one else, except an
 * ancestor that is sticky (/tmp); a violation is EPERM naming the component.
 * create_mode non-zero: missing components are created with that mode (and
 * checked like the rest). Returns the fd, or a negative errno with err set.
 */
int fs_open_dir_walk(const char *path, bool private_to_root, mode_t create_mode,
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
