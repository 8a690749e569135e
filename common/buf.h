/*
 * buf — growable byte buffers, string vectors and small string helpers.
 *
 * A struct buf owns its bytes and keeps them NUL-terminated so the contents
 * can be used as a C string. Allocation failure aborts: the callers of these
 * helpers have no sensible way to continue without memory.
 */
#ifndef BOTTLE_COMMON_BUF_H
#define BOTTLE_COMMON_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
/* Hand the NUL-terminated contents to the caller; the buffer is left empty. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

/* Allocation helpers that never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* A copy of s, or NULL for NULL (xstrdup gives "" for NULL). */
char *xstrdup_or_null(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* NULL-terminated vectors of owned strings. */
struct strv {
    char **items; /* items[len] == NULL when len > 0 */
    size_t len;
    size_t cap;
};

#define STRV_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void strv_push(struct strv *v, const char *s);
void strv_push_owned(struct strv *v, char *s);
bool strv_contains(const struct strv *v, const char *s);
void strv_copy(struct strv *dst, const struct strv *src);
void strv_free(struct strv *v);
/*
 * The item of v nearest to s by edit distance when it is close enough to be a
 * typo of it (at most 2 edits, and at most half of s's length), else NULL.
 */
const char *strv_closest(const struct strv *v, const char *s);

bool str_starts_with(const char *s, const char *prefix);
bool str_ends_with(const char *s, const char *suffix);
bool str_is_empty(const char *s);
/* ASCII lowercase in place. */
void str_lower(char *s);
/* Constant-time comparison of two equal-length byte strings. */
bool mem_equal_ct(const void *a, const void *b, size_t n);

#endif
