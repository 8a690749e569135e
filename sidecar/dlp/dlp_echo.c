/*
 * dlp_echo — the real tokens the sidecar injects, taken back out of what
 * comes back. An upstream that reflects a request (an echo endpoint, TRACE,
 * an error page quoting the Authorization header, a WebSocket message)
 * would otherwise hand the agent the credential it must never hold.
 *
 * The engine given here is built from the real tokens only; pass 1 finds
 * each token and its encodings (base64 at every alignment, hex, percent,
 * JSON escapes, case, reversal, base32, base64 of base64). Every match is
 * overwritten with a mark of the same length ("[REDACTED:token***]"), so a
 * body keeps its length and a WebSocket frame its framing.
 *
 * A stream holds back, of the last (longest variant - 1) bytes it was fed,
 * those from the first that begins a token variant cut short (the rest of
 * the text is a variant's start) until more arrives or the stream ends: a
 * token cut between two pieces is whole in the next scan and no byte of it
 * has left before, while an event stream whose pieces end in anything else
 * goes out at once.
 */
#include <stdlib.h>
#include <string.h>

#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_base.h"
#include "sidecar/dlp/dlp_secrets.h"

struct dlp_echo {
    const struct dlp_engine *e;
    struct buf pend; /* fed, not yet released */
    size_t keep;     /* bytes held back: longest variant - 1 */
    uint64_t redacted;
};

void dlp_echo_mark(char *dst, size_t n)
{
    static const char full[] = DLP_ECHO_MARK; /* "[REDACTED:token" ... "]" */
    size_t head = sizeof(full) - 2;           /* without its ']' */
    if (n < 10) {
        memset(dst, '*', n);
        return;
    }
    if (n < head + 1)
        head = 9; /* "[REDACTED" */
    memcpy(dst, full, head);
    memset(dst + head, '*', n - head - 1);
    dst[n - 1] = ']';
}

static int hit_cmp(const void *a, const void *b)
{
    const struct dlp_hit *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/*
 * Marks every token variant that starts before `upto` in p[0, n); returns
 * the end of the last one marked (0: none) and counts them in *count.
 */
static size_t mark_upto(const struct dlp_engine *e, char *p, size_t n, size_t upto, size_t *count)
{
    struct dlp_hits h = {0};
    dlp_find_secret_values(e, p, n, &h);
    if (h.n > 1)
        qsort(h.items, h.n, sizeof(*h.items), hit_cmp);
    size_t end = 0;
    for (size_t i = 0; i < h.n; i++) {
        const struct dlp_hit *x = &h.items[i];
        if (x->offset >= upto)
            break;
        if (x->offset + x->length <= end)
            continue;
        size_t from = x->offset > end ? x->offset : end; /* overlapping: mark the rest */
        dlp_echo_mark(p + from, x->offset + x->length - from);
        end = x->offset + x->length;
        (*count)++;
    }
    dlp_hits_free(&h);
    return end;
}

size_t dlp_echo_redact(const struct dlp_engine *e, char *p, size_t n)
{
    size_t count = 0;
    if (e && n)
        mark_upto(e, p, n, n, &count);
    return count;
}

struct dlp_echo *dlp_echo_new(const struct dlp_engine *e)
{
    struct dlp_echo *x = xcalloc(1, sizeof(*x));
    x->e = e;
    x->keep = e && e->longest_variant ? e->longest_variant - 1 : 0;
    return x;
}

void dlp_echo_free(struct dlp_echo *x)
{
    if (!x)
        return;
    buf_free(&x->pend);
    free(x);
}

uint64_t dlp_echo_count(const struct dlp_echo *x)
{
    return x ? x->redacted : 0;
}

size_t dlp_echo_feed(struct dlp_echo *x, const char *p, size_t n, bool last, struct buf *out)
{
    size_t count = 0;
    if (!x->e || !x->e->n_variants) { /* no token to look for: everything passes at once */
        buf_append(out, p, n);
        return 0;
    }
    buf_append(&x->pend, p, n);
    size_t len = x->pend.len;
    /*
     * A variant starting before len - keep is whole in pend (it is at most
     * keep + 1 long); after that, bytes go until the first that starts a
     * variant the text so far cuts short.
     */
    size_t release = len;
    if (!last)
        for (size_t i = len > x->keep ? len - x->keep : 0; i < len; i++)
            if (dlp_variant_prefix(x->e, x->pend.data + i, len - i)) {
                release = i;
                break;
            }
    if (release == 0)
        return 0;
    size_t end = mark_upto(x->e, x->pend.data, len, release, &count);
    if (end > release)
        release = end; /* a variant marked across the boundary goes out whole */
    buf_append(out, x->pend.data, release);
    memmove(x->pend.data, x->pend.data + release, len - release);
    x->pend.len = len - release;
    x->pend.data[x->pend.len] = '\0';
    x->redacted += count;
    return count;
}
