/*
 * dlp_recent — pieces of known secrets across requests: a secret split
 * into pieces shorter than a partial leak (DLP_PIECE_MIN_LEN to
 * DLP_PARTIAL_MIN_LEN - 1 characters) and sent in several requests to one
 * route is found once the pieces of the route's recent requests cover
 * DLP_PARTIAL_MIN_LEN characters of it.
 *
 * The window is small and per route: the pieces of the last
 * DLP_RECENT_PER_ROUTE forwarded requests' worth, none older than its
 * max age, for at most DLP_RECENT_ROUTES routes (the least recently used
 * route is forgotten first). It holds offsets into secrets' projections,
 * never a value. A refused request's pieces are not recorded: they never
 * left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/dlp/dlp.h"

struct recent_piece {
    struct dlp_piece p;
    uint64_t at_ms;
};

struct recent_route {
    char key[280];
    uint64_t used_ms;
    struct recent_piece pieces[DLP_RECENT_PER_ROUTE];
    size_t next, n; /* a ring */
};

struct dlp_recent {
    uint64_t max_age_ms;
    struct recent_route routes[DLP_RECENT_ROUTES];
    size_t n_routes;
};

struct dlp_recent *dlp_recent_new(uint64_t max_age_ms)
{
    struct dlp_recent *r = xcalloc(1, sizeof(*r));
    r->max_age_ms = max_age_ms ? max_age_ms : DLP_RECENT_MAX_AGE_MS;
    return r;
}

void dlp_recent_free(struct dlp_recent *r)
{
    free(r);
}

/* The route's window, created (evicting the least recently used) when create is set. */
static struct recent_route *route_for(struct dlp_recent *r, const char *key, uint64_t now,
                                      bool create)
{
    for (size_t i = 0; i < r->n_routes; i++)
        if (strcmp(r->routes[i].key, key) == 0) {
            r->routes[i].used_ms = now;
            return &r->routes[i];
        }
    if (!create)
        return NULL;
    struct recent_route *x;
    if (r->n_routes < DLP_RECENT_ROUTES) {
        x = &r->routes[r->n_routes++];
    } else {
        x = &r->routes[0];
        for (size_t i = 1; i < r->n_routes; i++)
            if (r->routes[i].used_ms < x->used_ms)
                x = &r->routes[i];
    }
    memset(x, 0, sizeof(*x));
    snprintf(x->key, sizeof(x->key), "%s", key);
    x->used_ms = now;
    return x;
}

struct span {
    uint32_t start, end;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Characters of `secret` the pieces cover, counted once. */
static size_t covered(const struct recent_route *rt, const struct dlp_result *res, int secret,
                      uint64_t oldest)
{
    struct span s[DLP_RECENT_PER_ROUTE + DLP_PIECES_MAX];
    size_t n = 0;
    for (size_t i = 0; rt && i < rt->n; i++)
        if (rt->pieces[i].p.secret == secret && rt->pieces[i].at_ms >= oldest)
            s[n++] = (struct span){rt->pieces[i].p.offset,
                                   rt->pieces[i].p.offset + rt->pieces[i].p.length};
    for (size_t i = 0; i < res->n_pieces; i++)
        if (res->pieces[i].secret == secret)
            s[n++] =
                (struct span){res->pieces[i].offset, res->pieces[i].offset + res->pieces[i].length};
    qsort(s, n, sizeof(*s), span_cmp);
    size_t total = 0;
    uint32_t reach = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t from = s[i].start > reach ? s[i].start : reach;
        if (s[i].end > from)
            total += s[i].end - from;
        reach = s[i].end > reach ? s[i].end : reach;
    }
    return total;
}

bool dlp_recent_check(struct dlp_recent *r, const char *key, const struct dlp_result *res,
                      uint64_t now_ms, struct dlp_verdict *v)
{
    if (!r || !res->n_pieces)
        return false;
    uint64_t oldest = now_ms > r->max_age_ms ? now_ms - r->max_age_ms : 0;
    struct recent_route *rt = route_for(r, key, now_ms, false);
    for (size_t i = 0; i < res->n_pieces; i++) {
        if (covered(rt, res, res->pieces[i].secret, oldest) < DLP_PARTIAL_MIN_LEN)
            continue;
        memset(v, 0, sizeof(*v));
        v->action = DLP_REFUSE;
        v->status = 403;
        v->reason = DLP_REASON_BLOCKED;
        snprintf(v->message, sizeof(v->message),
                 "%s found in this and recent requests to this route: pieces of a known secret "
                 "that add up to %d characters or more",
                 DLP_RULE_SECRET_PIECES, DLP_PARTIAL_MIN_LEN);
        return true;
    }
    rt = route_for(r, key, now_ms, true);
    for (size_t i = 0; i < res->n_pieces; i++) {
        rt->pieces[rt->next] = (struct recent_piece){res->pieces[i], now_ms};
        rt->next = (rt->next + 1) % DLP_RECENT_PER_ROUTE;
        if (rt->n < DLP_RECENT_PER_ROUTE)
            rt->n++;
    }
    return false;
}
