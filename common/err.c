#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int err_setv(struct bottle_err *err, int code, const char *fmt, va_list ap)
{
    if (code <= 0)
        code = EINVAL;
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return -code;
}

int err_set(struct bottle_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err)
        err->kind = ERR_KIND_RUNTIME;
    int rc = err_setv(err, code, fmt, ap);
    va_end(ap);
    return rc;
}

int err_set_kind(struct bottle_err *err, enum bottle_err_kind kind, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = err_setv(err, code, fmt, ap);
    va_end(ap);
    if (err)
        err->kind = kind;
    return rc;
}

int err_prefix(struct bottle_err *err, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    char prefix[BOTTLE_ERR_MSG_MAX];
    char old[BOTTLE_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    size_t n = strnlen(prefix, sizeof(err->msg) - 3);
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof(err->msg) - n - 3;
    size_t olen = strnlen(old, room);
    memcpy(err->msg + n + 2, old, olen);
    err->msg[n + 2 + olen] = '\0';
    if (err->code <= 0)
        err->code = EINVAL;
    return -err->code;
}

void err_clear(struct bottle_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->kind = ERR_KIND_RUNTIME;
    err->msg[0] = '\0';
}

int err_exit_code(const struct bottle_err *err)
{
    if (!err || err->code == 0)
        return EXIT_OK_CODE;
    switch (err->kind) {
    case ERR_KIND_USAGE:
    case ERR_KIND_MANIFEST:
        return EXIT_USAGE;
    case ERR_KIND_REFUSED:
        return EXIT_REFUSED;
    case ERR_KIND_RUNTIME:
        break;
    }
    return EXIT_RUNTIME;
}
