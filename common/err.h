/*
 * err — the one error convention.
 *
 * Functions that can fail return >= 0 (or a non-NULL pointer) on success and a
 * negative errno-style value (or NULL) on failure, after filling a caller-owned
 * struct bottle_err. The top level prints the message once. Nothing below main
 * prints or exits.
 */
#ifndef BOTTLE_COMMON_ERR_H
#define BOTTLE_COMMON_ERR_H

#include <stdarg.h>

#define BOTTLE_ERR_MSG_MAX 1024

/* Exit codes shared by every command (docs/cli.md). */
enum bottle_exit {
    EXIT_OK_CODE = 0,
    EXIT_RUNTIME = 1, /* runtime failure */
    EXIT_USAGE = 2,   /* usage or manifest error */
    EXIT_REFUSED = 3, /* refused by policy or enforcement tier */
};

/* Error classes; they decide the exit code at the top level. */
enum bottle_err_kind {
    ERR_KIND_RUNTIME = 0,
    ERR_KIND_USAGE,
    ERR_KIND_MANIFEST,
    ERR_KIND_REFUSED,
};

struct bottle_err {
    int code; /* positive errno-style value, 0 when unset */
    enum bottle_err_kind kind;
    char msg[BOTTLE_ERR_MSG_MAX];
};

/* Fill err (if non-NULL) and return -code. code must be positive. */
int err_set(struct bottle_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int err_setv(struct bottle_err *err, int code, const char *fmt, va_list ap);
/* Same, with an explicit kind. */
int err_set_kind(struct bottle_err *err, enum bottle_err_kind kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prepend "prefix: " to the existing message; returns -err->code. */
int err_prefix(struct bottle_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct bottle_err *err);
/* The process exit code an error maps to. */
int err_exit_code(const struct bottle_err *err);

#endif
