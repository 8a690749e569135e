/*
 * dlp_base — what every DLP detector stands on: the character classes
 * (CC_*), the engine's tables (struct dlp_engine, built by dlp.c, read by
 * the detectors), the hit list a detector appends to (dlp_hits_push) and
 * its move into a result (dlp_emit), and the request accessors (a header's
 * value, the body's kind).
 *
 * Private to dlp/: the sidecar uses dlp.h. It calls nothing above itself,
 * so a detector that includes it never reaches back into the engine.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_BASE_H
#define BOTTLE_SIDECAR_DLP_DLP_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidecar/dlp/dlp_types.h"

/* Character classes (struct dlp_engine.cls). */
#define CC_UPPER 0x001u
#define CC_LOWER 0x002u
#define CC_DIGIT 0x004u
#define CC_UNDER 0x008u
#define CC_DASH  0x010u
#define CC_PLUS  0x020u /* '+' and '/' */
#define CC_HEXL  0x040u /* 0-9 a-f */
#define CC_HEXU  0x080u /* 0-9 A-F */
#define CC_DOT   0x100u
#define CC_ALNUM (CC_UPPER | CC_LOWER | CC_DIGIT)
#define CC_WORD  (CC_ALNUM | CC_UNDER)
#define CC_B64U  (CC_ALNUM | CC_UNDER | CC_DASH)
#define CC_B64   (CC_ALNUM | CC_PLUS)
#define CC_TOKEN (CC_ALNUM | CC_UNDER | CC_DASH | CC_PLUS | CC_DOT)

/* Fills cls with the CC_* bits of every byte. */
void dlp_classes_init(uint16_t cls[256]);

struct dlp_start;

/* Open-addressing table keyed by an 8-byte window, fronted by a bit filter. */
struct dlp_wentry {
    uint64_t key;  /* the 8 bytes */
    uint32_t id;   /* variant index (raw table) or secret index (projection table) */
    uint32_t off;  /* window offset in the secret's projection */
    uint32_t used; /* DLP_WENTRY_* bits */
};

#define DLP_WENTRY_USED   1u
#define DLP_WENTRY_SHARED 2u /* the key is entered for more than one projection */

struct dlp_wtable {
    struct dlp_wentry *slots;
    unsigned bits; /* log2 of the slot count */
    uint64_t *filter;
    unsigned fbits; /* log2 of the filter's bit count */
};

struct dlp_variant {
    char *text;
    size_t len;
    uint32_t secret;
};

/*
 * An alphanumeric projection the fragment passes look for (case folded):
 * each secret's own, indexed under every window (fragments, partial leaks
 * and pieces), and those of its hex, base32, base64 and reversed forms,
 * indexed under their first windows only (found whole, with separators).
 */
struct dlp_proj {
    char *text;
    size_t len;
    uint32_t secret;
    bool whole_only;
};

/* Window length of the projection table (the raw table's is 8). */
#define DLP_PROJ_WINDOW 7

struct dlp_engine {
    struct dlp_config cfg;
    uint16_t cls[256];
    uint16_t start_off[257]; /* starts[start_off[c] .. start_off[c+1]) begin with byte c */
    struct dlp_start *starts;
    size_t n_starts;
    uint64_t pairs[65536 / 64]; /* bit (b0 | b1 << 8): some prefix starts with b0 b1 */
    bool simd_cpu;              /* the CPU has what dlp_simd.c needs (AVX2) */
    bool simd;                  /* the vector filters are used (BOTTLE_DLP_SIMD=0: never) */
    uint8_t teddy[8][16];       /* nibble tables of the pairs, 2 sets of 8 buckets */
    uint8_t pack[256][8];       /* shuffle packing the bytes an 8-bit mask selects */
    struct dlp_proj *projs;     /* projs[i] for i < n_secrets: secret i's own */
    size_t n_projs, n_secrets, n_skipped;
    struct dlp_variant *variants;
    size_t n_variants;
    size_t longest_variant;
    size_t longest_proj;
    size_t raw_step, proj_step; /* the text is hashed every step bytes (1-4) */
    uint8_t fold;           /* ORed into projected bytes: 0x20 folds case (0: basic_encodings) */
    struct dlp_wtable raw;  /* first 8 bytes of every variant */
    struct dlp_wtable proj; /* 7-byte windows of each projection (struct dlp_proj) */
    struct dlp_wtable pre;  /* the first 1-7 bytes of every variant (dlp_variant_prefix) */
};

/* A match found in one representation, before it gets its location. */
struct dlp_hit {
    const char *rule;
    enum dlp_kind kind;
    size_t offset, length;
    int secret;
};

struct dlp_hits {
    struct dlp_hit *items;
    size_t n, cap;
    uint64_t ops;
    struct dlp_piece pieces[DLP_PIECES_MAX];
    size_t n_pieces;
};

void dlp_hits_push(struct dlp_hits *h, const char *rule, enum dlp_kind kind, size_t off, size_t len,
                   int secret);
void dlp_hits_free(struct dlp_hits *h);
/* Records a piece unless the same one is already there (or the list is full). */
void dlp_pieces_add(struct dlp_piece *list, size_t *n, const struct dlp_piece *p);

/* Moves hits into res under `location`, offsets shifted by base. */
void dlp_emit(const struct dlp_engine *e, struct dlp_result *res, const char *location,
              const struct dlp_hits *h, size_t base);

/* ---- request accessors ---------------------------------------------------- */

const struct http_header *dlp_find_header(const struct dlp_request *r, const char *name);
/* The header's value as a C string in out (truncated), or "" when absent. */
void dlp_header_value(const struct dlp_request *r, const char *name, char *out, size_t size);
enum dlp_body_kind { DLP_BODY_OTHER = 0, DLP_BODY_JSON, DLP_BODY_FORM, DLP_BODY_MULTIPART };
/* What the body is, from Content-Type or its first byte; boundary set for multipart. */
enum dlp_body_kind dlp_body_kind(const struct dlp_request *r, const char *body, size_t n,
                                 char *boundary, size_t bsize);

#endif
