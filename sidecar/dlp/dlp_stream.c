/*
 * dlp_stream — scanning a stream fed in pieces (WebSocket frames, bodies
 * that are not held back). Each piece is scanned behind the last `overlap`
 * bytes of what came before, so a match straddling pieces is whole in one
 * scan. A match is reported once, by its rule and its offset in the stream:
 * the stream remembers every match it reported that starts in the kept
 * bytes. It does not skip a match only because it lies in the kept bytes: a
 * rule may decide by what follows its match (a PEM header followed by key
 * material in the next piece is a key, followed by a quote alone it is a
 * name), so the whole-text scan's matches are all found whatever the split.
 * Fragment and partial matches of a secret are reported once per stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/dlp/dlp.h"
#include "sidecar/dlp/dlp_base.h"
#include "sidecar/dlp/dlp_rules.h"

struct dlp_stream {
    const struct dlp_engine *e;
    enum dlp_direction dir;
    unsigned detectors;
    char location[64];
    struct buf tail;     /* the last bytes already scanned */
    uint64_t tail_start; /* stream offset of tail.data[0] */
    size_t overlap;
    struct stream_seen {
        const char *rule;
        uint64_t start;
    } * seen; /* reported matches that start at or after tail_start */
    size_t n_seen, cap_seen;
    int *secrets; /* secrets with a fragment or partial match reported */
    size_t n_secrets;
};

struct dlp_stream *dlp_stream_new(const struct dlp_engine *e, enum dlp_direction dir,
                                  unsigned detectors, const char *location)
{
    struct dlp_stream *s = xcalloc(1, sizeof(*s));
    s->e = e;
    s->dir = dir;
    s->detectors = detectors;
    snprintf(s->location, sizeof(s->location), "%s", location ? location : "stream");
    s->overlap = dlp_rules_longest();
    if (e->longest_variant + 16 > s->overlap)
        s->overlap = e->longest_variant + 16;
    return s;
}

size_t dlp_stream_overlap(const struct dlp_stream *s)
{
    return s->overlap;
}

void dlp_stream_free(struct dlp_stream *s)
{
    if (!s)
        return;
    buf_free(&s->tail);
    free(s->seen);
    free(s->secrets);
    free(s);
}

/* Whether (rule, start) was reported; records it when not. */
static bool seen_before(struct dlp_stream *s, const char *rule, uint64_t start)
{
    for (size_t i = 0; i < s->n_seen; i++)
        if (s->seen[i].start == start && strcmp(s->seen[i].rule, rule) == 0)
            return true;
    if (s->n_seen == s->cap_seen) {
        s->cap_seen = s->cap_seen ? s->cap_seen * 2 : 16;
        s->seen = xrealloc(s->seen, s->cap_seen * sizeof(*s->seen));
    }
    s->seen[s->n_seen++] = (struct stream_seen){rule, start};
    return false;
}

/* Forgets the matches that start before the kept bytes: no scan sees them again. */
static void forget_before(struct dlp_stream *s, uint64_t start)
{
    size_t k = 0;
    for (size_t i = 0; i < s->n_seen; i++)
        if (s->seen[i].start >= start)
            s->seen[k++] = s->seen[i];
    s->n_seen = k;
}

static bool secret_seen(struct dlp_stream *s, int secret)
{
    for (size_t i = 0; i < s->n_secrets; i++)
        if (s->secrets[i] == secret)
            return true;
    s->secrets = xrealloc(s->secrets, (s->n_secrets + 1) * sizeof(*s->secrets));
    s->secrets[s->n_secrets++] = secret;
    return false;
}

/* Keeps the hits not reported before; offsets become stream offsets (scan began at `at`). */
static void keep_new(struct dlp_stream *s, struct dlp_hits *h, uint64_t at)
{
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++) {
        struct dlp_hit x = h->items[i];
        bool projected = x.kind == DLP_KIND_FRAGMENT || x.kind == DLP_KIND_PARTIAL;
        if (projected ? secret_seen(s, x.secret) : seen_before(s, x.rule, at + x.offset))
            continue;
        if (projected)
            x.offset = 0; /* no stream offset: the match is in the projection */
        h->items[k++] = x;
    }
    h->n = k;
}

static void find(struct dlp_stream *s, const char *p, size_t n, struct dlp_hits *h)
{
    if (s->dir == DLP_INBOUND) {
        if (s->detectors & DLP_IN_NAIVE_INJECTION)
            dlp_find_injection(p, n, h);
    } else {
        dlp_find_outbound(s->e, s->detectors, p, n, h);
    }
}

/* Stream offsets for the hits of a scan that began at stream offset `at`. */
static void shift(struct dlp_hits *h, uint64_t at)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->items[i].kind != DLP_KIND_FRAGMENT && h->items[i].kind != DLP_KIND_PARTIAL)
            h->items[i].offset += (size_t)at;
}

/* Keeps only the last `overlap` bytes of the tail as the next piece's prefix. */
static void trim_tail(struct dlp_stream *s)
{
    if (s->tail.len <= s->overlap)
        return;
    size_t drop = s->tail.len - s->overlap;
    memmove(s->tail.data, s->tail.data + drop, s->overlap);
    s->tail.len = s->overlap;
    s->tail.data[s->tail.len] = 0;
    s->tail_start += drop;
}

int dlp_stream_feed(struct dlp_stream *s, const char *p, size_t n, struct dlp_result *res)
{
    if (!s || (!p && n))
        return -EINVAL;
    size_t old = s->tail.len;
    struct dlp_hits h = {0};
    if (n <= s->overlap) {
        /* A small piece is scanned behind the kept bytes, in one buffer. */
        buf_append(&s->tail, p, n);
        find(s, s->tail.data, s->tail.len, &h);
        keep_new(s, &h, s->tail_start);
        shift(&h, s->tail_start);
        dlp_emit(s->e, res, s->location, &h, 0);
        dlp_hits_free(&h);
        trim_tail(s);
        forget_before(s, s->tail_start);
        return 0;
    }
    /*
     * A large piece is not copied: matches straddling the kept bytes and the
     * piece are found in the kept bytes plus the piece's first `overlap`
     * bytes, and the piece is scanned where it lies. A match the two scans
     * share has one stream offset and is reported once (seen_before); one
     * that reaches the end of the joined bytes was cut there, not ended, and
     * is left to the scan of the whole piece.
     */
    uint64_t piece_start = s->tail_start + old;
    if (old) {
        buf_append(&s->tail, p, s->overlap);
        find(s, s->tail.data, s->tail.len, &h);
        size_t k = 0;
        for (size_t i = 0; i < h.n; i++)
            if (h.items[i].kind == DLP_KIND_FRAGMENT || h.items[i].kind == DLP_KIND_PARTIAL ||
                h.items[i].offset + h.items[i].length < s->tail.len)
                h.items[k++] = h.items[i];
        h.n = k;
        keep_new(s, &h, s->tail_start);
        shift(&h, s->tail_start);
        dlp_emit(s->e, res, s->location, &h, 0);
        dlp_hits_free(&h);
        memset(&h, 0, sizeof(h));
    }
    s->tail_start = piece_start;
    find(s, p, n, &h);
    keep_new(s, &h, piece_start);
    shift(&h, piece_start);
    dlp_emit(s->e, res, s->location, &h, 0);
    dlp_hits_free(&h);
    buf_reset(&s->tail); /* the piece is longer than the overlap: its end is the new tail */
    buf_append(&s->tail, p + n - s->overlap, s->overlap);
    s->tail_start = piece_start + n - s->overlap;
    forget_before(s, s->tail_start);
    return 0;
}
