/*
 * dlp_secrets — the known_secrets detector: every value the sidecar holds,
 * found exactly or in an encoding (pass 1), with separators injected or its
 * case changed (pass 2), in part (pass 3), or in pieces too short to count
 * alone (recorded for the cross-request window, dlp_recent.c).
 *
 * Pass 1's encodings of each value: the value, its upper- and lower-case
 * forms, reversed, base64 (both alphabets, at the three alignments a value
 * can have inside a larger blob), base64 of base64 (nine alignments), base32
 * (five alignments), hex (both cases), percent-encoding (both cases) and
 * JSON escaping. Pass 2 reads the text's alphanumeric projection with case
 * folded, against each secret's projection and those of its hex, base32,
 * base64 and reversed forms: `de:ad:be:ef`, `DE-AD-BE-EF`, a base32 or
 * base64 wrapped over lines.
 *
 * The cost of a scan must not grow with the number of secrets, so no pass
 * loops over them. Both tables are multi-pattern Rabin–Karp searches with
 * one window length (8 bytes for pass 1, 7 for the projections): pass 1
 * enters each encoded variant under a run of its windows (the run least
 * shared with other variants); passes 2 and 3 enter every window of each
 * secret's own projection and the first windows of the others. The text is
 * hashed every `step` bytes (a multiplicative hash of an unaligned 64-bit
 * load: it recomputes rather than rolls, at the same cost), a bit filter of
 * 64 bits per entry answers most checks, and only filter hits probe the
 * table, compare keys and verify or extend the match. A window shared by
 * more than DLP_WINDOW_SHARE secrets is public structure (a common prefix),
 * not secret material, and is not entered again, so no key verifies more
 * than that many entries. Work per byte is therefore constant in
 * expectation whatever the number of secrets. With AVX2 the projection is
 * built by dlp_simd.c; the checks themselves are scalar.
 */
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "sidecar/dlp/dlp_secrets.h"
#include "sidecar/dlp/dlp_simd.h"

/* Projected bytes scanned per block (passes 2 and 3). */
#define PROJ_BLOCK ((size_t)64 << 10)

/* ---- hashing and tables --------------------------------------------------- */

static uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The projection table's keys: 7 bytes (the load reads one more, always allocated). */
#define PROJ_MASK 0x00ffffffffffffffull
#define RAW_MASK  0xffffffffffffffffull

static uint64_t proj_key(const char *p)
{
    return load8(p) & PROJ_MASK;
}

/* Multiplicative hashing: the high bits of the product depend on every key bit. */
static uint64_t mix(uint64_t a)
{
    return a * 0x9e3779b97f4a7c15ull;
}

/* Slot index: the hash mixed once more (only filter hits get here), top bits. */
static size_t slot_of(const struct dlp_wtable *t, uint64_t h)
{
    return (size_t)(((h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull) >> (64 - t->bits));
}

static unsigned log2_at_least(size_t n)
{
    unsigned b = 0;
    while (((size_t)1 << b) < n)
        b++;
    return b;
}

/*
 * The bit filter: one bit per window hash, FILTER_BITS bits per entry, so
 * about 1 check in 64 passes on text that holds no secret (a pass costs a
 * table probe and a mispredicted branch; the check itself is a few
 * instructions). The bit is found by the top bits of the hash (its word)
 * and six middle bits (its place in the word).
 */
#define FILTER_BITS 64

static size_t filter_word(const struct dlp_wtable *t, uint64_t h)
{
    return (size_t)(h >> (64 - (t->fbits - 6)));
}

static unsigned filter_bit(uint64_t h)
{
    return (unsigned)(h >> 32) & 63;
}

static void wtable_init(struct dlp_wtable *t, size_t entries)
{
    t->bits = log2_at_least(entries * 2 + 16);
    t->fbits = log2_at_least(entries * FILTER_BITS + 4096);
    t->slots = xcalloc((size_t)1 << t->bits, sizeof(*t->slots));
    t->filter = xcalloc(((size_t)1 << t->fbits) / 64, sizeof(uint64_t));
}

static void wtable_free(struct dlp_wtable *t)
{
    free(t->slots);
    free(t->filter);
    memset(t, 0, sizeof(*t));
}

/* Number of entries already stored under this exact key. */
static size_t wtable_count(const struct dlp_wtable *t, uint64_t key)
{
    size_t mask = ((size_t)1 << t->bits) - 1, n = 0;
    for (size_t s = slot_of(t, mix(key)); t->slots[s].used; s = (s + 1) & mask)
        n += t->slots[s].key == key;
    return n;
}

static void wtable_put(struct dlp_wtable *t, uint64_t key, uint32_t id, uint32_t off)
{
    uint64_t h = mix(key);
    size_t mask = ((size_t)1 << t->bits) - 1, s = slot_of(t, h);
    while (t->slots[s].used)
        s = (s + 1) & mask;
    t->slots[s] = (struct dlp_wentry){key, id, off, DLP_WENTRY_USED};
    t->filter[filter_word(t, h)] |= (uint64_t)1 << filter_bit(h);
}

/* ---- encodings ------------------------------------------------------------ */

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * The base64 characters that depend only on s when s sits `align` bytes
 * into a larger encoded blob: characters j with 6j >= 8*align and
 * 6j + 6 <= 8*(align + n).
 */
static void b64_core(const char *s, size_t n, unsigned align, const char *alpha, struct buf *out)
{
    size_t total = align + n, first = (8 * align + 5) / 6, last = (8 * total) / 6;
    for (size_t j = first; j < last; j++) {
        size_t bit = 6 * j, v = 0;
        for (size_t b = bit; b < bit + 6; b++) {
            size_t byte = b / 8;
            unsigned char c = byte < align ? 0 : (unsigned char)s[byte - align];
            v = (v << 1) | ((c >> (7 - b % 8)) & 1);
        }
        buf_append_char(out, alpha[v]);
    }
}

/* Base32 (RFC 4648) characters that depend only on s `align` bytes into a blob (5-bit groups). */
static void b32_core(const char *s, size_t n, unsigned align, struct buf *out)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t total = align + n, first = (8 * align + 4) / 5, last = (8 * total) / 5;
    for (size_t j = first; j < last; j++) {
        size_t v = 0;
        for (size_t b = 5 * j; b < 5 * j + 5; b++) {
            size_t byte = b / 8;
            unsigned char c = byte < align ? 0 : (unsigned char)s[byte - align];
            v = (v << 1) | ((c >> (7 - b % 8)) & 1);
        }
        buf_append_char(out, alpha[v]);
    }
}

/* The whole base32 or base64 encoding of s, padding included. */
static void b32_full(const char *s, size_t n, struct buf *out)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t bits = 8 * n;
    for (size_t b = 0; b < bits; b += 5) {
        size_t v = 0;
        for (size_t k = b; k < b + 5; k++) {
            unsigned char c = k / 8 < n ? (unsigned char)s[k / 8] : 0;
            v = (v << 1) | ((c >> (7 - k % 8)) & 1);
        }
        buf_append_char(out, alpha[v]);
    }
    while (out->len % 8)
        buf_append_char(out, '=');
}

static void b64_full(const char *s, size_t n, struct buf *out)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        v |= i + 1 < n ? (uint32_t)(unsigned char)s[i + 1] << 8 : 0;
        v |= i + 2 < n ? (uint32_t)(unsigned char)s[i + 2] : 0;
        buf_append_char(out, b64_std[(v >> 18) & 63]);
        buf_append_char(out, b64_std[(v >> 12) & 63]);
        buf_append_char(out, i + 1 < n ? b64_std[(v >> 6) & 63] : '=');
        buf_append_char(out, i + 2 < n ? b64_std[v & 63] : '=');
    }
}

static void case_map(const char *s, size_t n, bool upper, struct buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 32);
        else if (!upper && c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        buf_append_char(out, c);
    }
}

static void reverse(const char *s, size_t n, struct buf *out)
{
    for (size_t i = n; i-- > 0;)
        buf_append_char(out, s[i]);
}

static void hex_encode(const char *s, size_t n, bool upper, struct buf *out)
{
    const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        buf_append_char(out, d[(unsigned char)s[i] >> 4]);
        buf_append_char(out, d[(unsigned char)s[i] & 15]);
    }
}

static void percent_encode(const char *s, size_t n, bool upper, struct buf *out)
{
    const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c)) {
            buf_append_char(out, (char)c);
        } else {
            buf_append_char(out, '%');
            buf_append_char(out, d[c >> 4]);
            buf_append_char(out, d[c & 15]);
        }
    }
}

/* ---- building ------------------------------------------------------------- */

/* Adds v unless it is shorter than a window or repeats a variant of the same secret. */
static void add_variant(struct dlp_engine *e, size_t *cap, uint32_t secret, struct buf *v)
{
    size_t first = e->n_variants;
    while (first > 0 && e->variants[first - 1].secret == secret)
        first--;
    if (v->len >= 8)
        for (size_t i = first; i < e->n_variants; i++)
            if (e->variants[i].len == v->len && memcmp(e->variants[i].text, v->data, v->len) == 0)
                goto done;
    if (v->len >= 8) {
        if (e->n_variants == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            e->variants = xrealloc(e->variants, *cap * sizeof(*e->variants));
        }
        e->variants[e->n_variants++] =
            (struct dlp_variant){xstrndup(v->data, v->len), v->len, secret};
        if (v->len > e->longest_variant)
            e->longest_variant = v->len;
    }
done:
    buf_reset(v);
}

static void add_variants(struct dlp_engine *e, size_t *cap, uint32_t id, const char *s, size_t n)
{
    struct buf v = BUF_INIT, inner = BUF_INIT;
    buf_append(&v, s, n);
    add_variant(e, cap, id, &v);
    for (unsigned a = 0; a < 3; a++) {
        b64_core(s, n, a, b64_std, &v);
        add_variant(e, cap, id, &v);
        b64_core(s, n, a, b64_url, &v);
        add_variant(e, cap, id, &v);
    }
    for (int upper = 0; upper < 2; upper++) {
        hex_encode(s, n, upper, &v);
        add_variant(e, cap, id, &v);
        percent_encode(s, n, upper, &v);
        add_variant(e, cap, id, &v);
    }
    json_escape_append(&v, s, n, 0);
    add_variant(e, cap, id, &v);
    json_escape_append(&v, s, n, JSON_ESCAPE_SLASH); /* writers that also escape '/' */
    add_variant(e, cap, id, &v);
    if (e->cfg.basic_encodings) {
        buf_free(&v);
        return;
    }
    for (int upper = 0; upper < 2; upper++) {
        case_map(s, n, upper, &v);
        add_variant(e, cap, id, &v);
    }
    reverse(s, n, &v);
    add_variant(e, cap, id, &v);
    for (unsigned a = 0; a < 5; a++) {
        b32_core(s, n, a, &v);
        add_variant(e, cap, id, &v);
    }
    /* base64 of base64: the inner core at each alignment, encoded again at each alignment */
    for (unsigned a = 0; a < 3; a++) {
        buf_reset(&inner);
        b64_core(s, n, a, b64_std, &inner);
        for (unsigned b = 0; b < 3; b++) {
            b64_core(inner.data, inner.len, b, b64_std, &v);
            add_variant(e, cap, id, &v);
        }
    }
    buf_free(&inner);
    buf_free(&v);
}

/*
 * The alphanumeric bytes of s, in order, case folded (branch-free: every
 * byte is stored, few kept; OR 0x20 lowers a letter and keeps a digit).
 */
static char *project(const struct dlp_engine *e, const char *s, size_t n, size_t *out_len)
{
    char *p = xmalloc(n + 2);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        p[m] = (char)(c | e->fold);
        m += (e->cls[c] & CC_ALNUM) != 0;
    }
    p[m] = p[m + 1] = 0;
    *out_len = m;
    return p;
}

static void add_projection(struct dlp_engine *e, size_t *cap, uint32_t secret, const char *s,
                           size_t n, bool whole_only)
{
    size_t len;
    char *p = project(e, s, n, &len);
    if (whole_only && len < DLP_PROJ_WINDOW) { /* a secret's own is kept: projs[id] is it */
        free(p);
        return;
    }
    if (e->n_projs == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        e->projs = xrealloc(e->projs, *cap * sizeof(*e->projs));
    }
    e->projs[e->n_projs++] = (struct dlp_proj){p, len, secret, whole_only};
    if (len > e->longest_proj)
        e->longest_proj = len;
}

/* The projections of a secret's other forms, found whole (with separators, any case). */
static void add_form_projections(struct dlp_engine *e, size_t *cap, uint32_t id, const char *s,
                                 size_t n)
{
    struct buf v = BUF_INIT;
    hex_encode(s, n, false, &v);
    add_projection(e, cap, id, v.data, v.len, true);
    buf_reset(&v);
    b32_full(s, n, &v);
    add_projection(e, cap, id, v.data, v.len, true);
    buf_reset(&v);
    b64_full(s, n, &v);
    add_projection(e, cap, id, v.data, v.len, true);
    buf_reset(&v);
    reverse(s, n, &v);
    add_projection(e, cap, id, v.data, v.len, true);
    buf_free(&v);
}

/*
 * The text is hashed every `step` bytes only (step = shortest pattern - 7,
 * at most 4), so each pattern is entered under `step` consecutive windows:
 * wherever it sits, one checked position falls on one of them.
 */

/* A variant: under its least-shared run of raw_step windows (shared prefixes stay cheap). */
static void index_variant(struct dlp_engine *e, uint32_t id)
{
    const struct dlp_variant *v = &e->variants[id];
    size_t last = v->len - 8 - (e->raw_step - 1), best = 0, best_n = (size_t)-1;
    for (size_t off = 0; off <= last && best_n; off += last / 8 + 1) {
        size_t c = wtable_count(&e->raw, load8(v->text + off));
        if (c < best_n) {
            best = off;
            best_n = c;
        }
    }
    for (size_t t = 0; t < e->raw_step; t++)
        wtable_put(&e->raw, load8(v->text + best + t), id, (uint32_t)(best + t));
}

/*
 * A projection: every window of a secret's own when it is long (partial
 * leaks, pieces), the first proj_step of a short one or of another form.
 */
static void index_projection(struct dlp_engine *e, uint32_t id)
{
    const struct dlp_proj *p = &e->projs[id];
    size_t last =
        p->len < DLP_PARTIAL_MIN_LEN || p->whole_only ? e->proj_step - 1 : p->len - DLP_PROJ_WINDOW;
    for (size_t k = 0; k <= last && k + DLP_PROJ_WINDOW <= p->len; k++) {
        uint64_t key = proj_key(p->text + k);
        if (wtable_count(&e->proj, key) < DLP_WINDOW_SHARE)
            wtable_put(&e->proj, key, id, (uint32_t)k);
    }
}

/* The prefix table's key: the first k bytes (k <= 7) and k in the top byte. */
static uint64_t prefix_key(const char *p, size_t k)
{
    uint64_t v = 0;
    memcpy(&v, p, k);
    return v | (uint64_t)k << 56;
}

/* Every variant's first 1-7 bytes (shorter than the variant), under their length. */
static void index_prefixes(struct dlp_engine *e)
{
    for (size_t i = 0; i < e->n_variants; i++)
        for (size_t k = 1; k <= 7 && k < e->variants[i].len; k++)
            wtable_put(&e->pre, prefix_key(e->variants[i].text, k), (uint32_t)i, 0);
}

bool dlp_variant_prefix(const struct dlp_engine *e, const char *p, size_t n)
{
    if (!e->n_variants || n == 0)
        return false;
    size_t k = n < 7 ? n : 7, mask = ((size_t)1 << e->pre.bits) - 1;
    uint64_t key = prefix_key(p, k), h = mix(key);
    if (!((e->pre.filter[filter_word(&e->pre, h)] >> filter_bit(h)) & 1))
        return false;
    for (size_t s = slot_of(&e->pre, h); e->pre.slots[s].used; s = (s + 1) & mask) {
        const struct dlp_variant *v = &e->variants[e->pre.slots[s].id];
        if (e->pre.slots[s].key == key && v->len > n && memcmp(v->text, p, n) == 0)
            return true;
    }
    return false;
}

/* Marks the keys entered for more than one projection: structure, not secret material. */
static void mark_shared(struct dlp_wtable *t)
{
    size_t mask = ((size_t)1 << t->bits) - 1;
    for (size_t s = 0; s <= mask; s++) {
        struct dlp_wentry *w = &t->slots[s];
        if (!w->used)
            continue;
        for (size_t x = slot_of(t, mix(w->key)); t->slots[x].used; x = (x + 1) & mask)
            if (x != s && t->slots[x].key == w->key && t->slots[x].id != w->id)
                w->used |= DLP_WENTRY_SHARED;
    }
}

/* Windows of w bytes checked every step bytes: a pattern of `shortest` is always met. */
static size_t step_for(size_t shortest, size_t w)
{
    if (shortest == (size_t)-1 || shortest < w)
        return 1;
    return shortest - w + 1 >= 4 ? 4 : shortest - w + 1;
}

int dlp_secrets_build(struct dlp_engine *e, const struct strv *secrets)
{
    size_t n = secrets ? secrets->len : 0, cap = 0, pcap = 0, windows = 0;
    e->fold = e->cfg.basic_encodings ? 0 : 0x20;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(secrets->items[i]);
        if (len < DLP_SECRET_MIN_LEN) {
            e->n_skipped++;
            continue;
        }
        uint32_t id = (uint32_t)e->n_secrets++;
        add_projection(e, &pcap, id, secrets->items[i], len, false);
        add_variants(e, &cap, id, secrets->items[i], len);
    }
    for (size_t i = 0, k = 0; i < n; i++) {
        size_t len = strlen(secrets->items[i]);
        if (len >= DLP_SECRET_MIN_LEN && !e->cfg.basic_encodings)
            add_form_projections(e, &pcap, (uint32_t)k, secrets->items[i], len);
        k += len >= DLP_SECRET_MIN_LEN;
    }
    size_t shortest_variant = (size_t)-1, shortest_proj = (size_t)-1;
    for (size_t v = 0; v < e->n_variants; v++)
        shortest_variant =
            e->variants[v].len < shortest_variant ? e->variants[v].len : shortest_variant;
    for (size_t i = 0; i < e->n_projs; i++) {
        windows += e->projs[i].whole_only ? 4 : e->projs[i].len;
        if (e->projs[i].len >= DLP_PROJ_WINDOW && e->projs[i].len < shortest_proj)
            shortest_proj = e->projs[i].len;
    }
    e->raw_step = step_for(shortest_variant, 8);
    e->proj_step = step_for(shortest_proj, DLP_PROJ_WINDOW);
    wtable_init(&e->raw, e->n_variants * e->raw_step);
    wtable_init(&e->proj, windows);
    wtable_init(&e->pre, e->n_variants * 7);
    index_prefixes(e);
    for (size_t v = 0; v < e->n_variants; v++)
        index_variant(e, (uint32_t)v);
    for (size_t i = 0; i < e->n_projs; i++)
        index_projection(e, (uint32_t)i);
    mark_shared(&e->proj);
    return 0;
}

void dlp_secrets_free(struct dlp_engine *e)
{
    for (size_t i = 0; i < e->n_projs; i++)
        free(e->projs[i].text);
    free(e->projs);
    for (size_t i = 0; i < e->n_variants; i++)
        free(e->variants[i].text);
    free(e->variants);
    wtable_free(&e->raw);
    wtable_free(&e->proj);
    wtable_free(&e->pre);
}

/* ---- pass 1 --------------------------------------------------------------- */

/* The window at i (its first 8 bytes under mask) passes the table's bit filter. */
static inline bool filter_has(const struct dlp_wtable *t, const char *p, size_t i, uint64_t kmask)
{
    uint64_t h = mix(load8(p + i) & kmask);
    return (t->filter[filter_word(t, h)] >> filter_bit(h)) & 1;
}

/*
 * The first of i, i + step, ... below end whose window passes the filter, or
 * the first of them at or past end. A loop with no call in it, so everything stays in registers;
 * with the usual step of 4, four windows are checked per branch.
 */
static inline size_t next_filter_hit(const struct dlp_wtable *t, const char *p, size_t i,
                                     size_t end, size_t step, uint64_t kmask)
{
    if (step == 4)
        for (; i + 12 < end; i += 16)
            if (filter_has(t, p, i, kmask) | filter_has(t, p, i + 4, kmask) |
                filter_has(t, p, i + 8, kmask) | filter_has(t, p, i + 12, kmask))
                break;
    for (; i < end; i += step)
        if (filter_has(t, p, i, kmask))
            return i;
    return i;
}

/* Verifies the entries under the window at i; returns the end of a match (0: none). */
static size_t probe_raw(const struct dlp_engine *e, const char *p, size_t len, size_t i,
                        uint64_t k8, uint64_t h, struct dlp_hits *hits)
{
    const struct dlp_wtable *t = &e->raw;
    size_t mask = ((size_t)1 << t->bits) - 1;
    for (size_t s = slot_of(t, h); t->slots[s].used; s = (s + 1) & mask) {
        const struct dlp_wentry *w = &t->slots[s];
        hits->ops++;
        if (w->key != k8 || i < w->off)
            continue;
        const struct dlp_variant *v = &e->variants[w->id];
        size_t at = i - w->off;
        if (at + v->len <= len && memcmp(p + at, v->text, v->len) == 0) {
            dlp_hits_push(hits, DLP_RULE_KNOWN_SECRET, DLP_KIND_SECRET, at, v->len, (int)v->secret);
            return at + v->len;
        }
    }
    return 0;
}

void dlp_find_secret_values(const struct dlp_engine *e, const char *p, size_t len,
                            struct dlp_hits *h)
{
    if (e->n_variants == 0 || len < 8)
        return;
    h->ops += len;
    size_t step = e->raw_step;
    for (size_t i = 0;; i += step) {
        i = next_filter_hit(&e->raw, p, i, len - 7, step, RAW_MASK);
        if (i >= len - 7)
            break;
        uint64_t k8 = load8(p + i);
        size_t end = probe_raw(e, p, len, i, k8, mix(k8), h);
        if (end)
            i = end - step;
    }
}

/* ---- passes 2 and 3 -------------------------------------------------------- */

static bool secret_reported(const struct dlp_hits *h, int secret)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->items[i].secret == secret)
            return true;
    return false;
}

/*
 * The text's projection q matches projection w->id over its window at j:
 * extends the match both ways. The whole projection is a fragment match;
 * 12 characters or more of a secret's own a partial one; from 10, when the
 * window is the secret's alone, a piece (recorded, not a match).
 */
static void extend_window(const struct dlp_engine *e, const char *q, size_t m, size_t j,
                          size_t base, const struct dlp_wentry *w, struct dlp_hits *h)
{
    const struct dlp_proj *s = &e->projs[w->id];
    int secret = (int)s->secret;
    if (secret_reported(h, secret))
        return;
    const size_t W = DLP_PROJ_WINDOW;
    size_t left = 0, right = 0, k = w->off;
    while (left < k && left < j && q[j - 1 - left] == s->text[k - 1 - left])
        left++;
    while (k + W + right < s->len && j + W + right < m &&
           q[j + W + right] == s->text[k + W + right])
        right++;
    size_t total = left + W + right;
    h->ops += total;
    size_t at = base + j - left;
    if (total == s->len) {
        dlp_hits_push(h, DLP_RULE_SECRET_FRAGMENT, DLP_KIND_FRAGMENT, at, total, secret);
    } else if (s->whole_only) {
        return;
    } else if (total >= DLP_PARTIAL_MIN_LEN) {
        dlp_hits_push(h, DLP_RULE_SECRET_PARTIAL, DLP_KIND_PARTIAL, at, total, secret);
    } else if (total >= DLP_PIECE_MIN_LEN && !(w->used & DLP_WENTRY_SHARED) &&
               !e->cfg.basic_encodings) {
        struct dlp_piece piece = {secret, (uint32_t)(k - left), (uint32_t)total};
        dlp_pieces_add(h->pieces, &h->n_pieces, &piece);
    }
}

/* Checks windows from, from + step, ... below to; returns the first position not checked. */
static size_t scan_projection(const struct dlp_engine *e, const char *q, size_t from, size_t to,
                              size_t m, size_t base, struct dlp_hits *h)
{
    const struct dlp_wtable *t = &e->proj;
    size_t mask = ((size_t)1 << t->bits) - 1, j;
    size_t end = m < DLP_PROJ_WINDOW ? 0 : m - DLP_PROJ_WINDOW + 1;
    end = to < end ? to : end;
    for (j = from; j < end; j += e->proj_step) {
        j = next_filter_hit(t, q, j, end, e->proj_step, PROJ_MASK);
        if (j >= end)
            break;
        uint64_t key = proj_key(q + j), x = mix(key);
        for (size_t s = slot_of(t, x); t->slots[s].used; s = (s + 1) & mask) {
            h->ops++;
            if (t->slots[s].key == key)
                extend_window(e, q, m, j, base, &t->slots[s], h);
        }
    }
    return j;
}

/* A range of the projection, [start, end). */
struct proj_range {
    size_t start, end;
};

static int range_cmp(const void *a, const void *b)
{
    const struct proj_range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The projected ranges of the redactable matches already in h (token
 * patterns, pass 1): what redaction will replace. Passes 2 and 3 must not
 * read them, or a second secret sharing 12 characters with a value found
 * whole (a common prefix, a token that extends another) is reported as a
 * partial leak and refused under every policy, though redacting the value
 * removes it. Costs one counting pass, only over a text that has a match.
 */
static size_t redacted_ranges(const struct dlp_engine *e, const char *p, size_t len,
                              const struct dlp_hits *h, struct proj_range **out)
{
    size_t n = 0;
    *out = NULL;
    for (size_t i = 0; i < h->n; i++)
        n += h->items[i].kind == DLP_KIND_PATTERN || h->items[i].kind == DLP_KIND_SECRET;
    if (n == 0)
        return 0;
    struct proj_range *r = xcalloc(n, sizeof(*r));
    n = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->items[i].kind == DLP_KIND_PATTERN || h->items[i].kind == DLP_KIND_SECRET)
            r[n++] =
                (struct proj_range){h->items[i].offset, h->items[i].offset + h->items[i].length};
    qsort(r, n, sizeof(*r), range_cmp);
    /* raw offsets to projected ones: ends are not sorted, so count up to each bound */
    size_t at = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t end = r[i].end < len ? r[i].end : len;
        for (; at < r[i].start; at++)
            count += (e->cls[(unsigned char)p[at]] & CC_ALNUM) != 0;
        size_t pend = count;
        for (size_t k = at; k < end; k++)
            pend += (e->cls[(unsigned char)p[k]] & CC_ALNUM) != 0;
        r[i] = (struct proj_range){count, pend};
    }
    *out = r;
    return n;
}

/* Blanks the redacted ranges in the block q[0, m) at projected offset base: no key holds a 0. */
static void blank_ranges(char *q, size_t m, size_t base, const struct proj_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t s = r[i].start > base ? r[i].start - base : 0;
        size_t t = r[i].end > base ? r[i].end - base : 0;
        t = t < m ? t : m;
        if (s < t)
            memset(q + s, 0, t - s);
    }
}

/*
 * The projection is built and scanned in blocks, so a large body costs a
 * fixed buffer: each block keeps the last 2 * longest projection bytes of
 * the one before, enough to extend a window either way.
 */
void dlp_find_secret_fragments(const struct dlp_engine *e, const char *p, size_t len,
                               struct dlp_hits *h)
{
    if (e->n_secrets == 0 || len < DLP_PROJ_WINDOW)
        return;
    struct proj_range *red;
    size_t n_red = redacted_ranges(e, p, len, h, &red);
    size_t keep = 2 * e->longest_proj + 16, cap = PROJ_BLOCK + keep, m = 0, from = 0, base = 0;
    char *q = xmalloc((len < cap ? len : cap) + 1); /* headers and names stay small */
    h->ops += len;
    for (size_t i = 0; i < len;) {
        if (e->simd)
            dlp_simd_project(e, p, &i, len, q, &m, cap);
        while (i < len && m < cap) {
            unsigned char c = (unsigned char)p[i++];
            q[m] = (char)(c | e->fold); /* case folded, as the secrets' projections */
            m += (e->cls[c] & CC_ALNUM) != 0;
        }
        q[m] = 0; /* the byte after the last window's 7, read with it and masked */
        blank_ranges(q, m, base, red, n_red);
        if (i == len)
            break;
        size_t to = m - (e->longest_proj + 8); /* windows whose right side is all here */
        size_t next = scan_projection(e, q, from, to, m, base, h);
        memmove(q, q + m - keep, keep);
        base += m - keep;
        from = next - (m - keep);
        m = keep;
    }
    h->ops += m;
    scan_projection(e, q, from, m, m, base, h);
    free(q);
    free(red);
}
