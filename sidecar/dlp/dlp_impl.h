/*
 * dlp_impl — what the dlp_*.c files share and nobody else uses: character
 * classes, the rule table, the known-secret tables and the decoders.
 */
#ifndef BOTTLE_SIDECAR_DLP_IMPL_H
#define BOTTLE_SIDECAR_DLP_IMPL_H

#include "sidecar/dlp/dlp.h"

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

struct dlp_rule;
typedef size_t (*dlp_rule_fn)(const struct dlp_engine *e, const struct dlp_rule *r, const char *p,
                              size_t len, size_t at, size_t plen, size_t *vstart);

struct dlp_rule {
    const char *name;
    const char *prefix[6]; /* alternatives; NULL-terminated */
    uint16_t body;         /* class mask of the run after the prefix */
    uint16_t min, max;     /* run length */
    bool icase;            /* prefix compared case-insensitively (keywords) */
    dlp_rule_fn match;     /* NULL: prefix + run */
};

/* One (rule, prefix) to try at a token start, listed by the prefix's first byte. */
struct dlp_start {
    uint16_t rule;
    uint8_t prefix;
    uint8_t plen;
};

/* Secrets that may share one projection window before it stops being entered. */
#define DLP_WINDOW_SHARE 4

/* Open-addressing table keyed by an 8-byte window, fronted by a bit filter. */
struct dlp_wentry {
    uint64_t key; /* the 8 bytes */
    uint32_t id;  /* variant index (raw table) or secret index (projection table) */
    uint32_t off; /* window offset in the secret's projection */
    uint32_t used;
};

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

struct dlp_secret {
    char *proj; /* alphanumeric projection */
    size_t proj_len;
};

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
    struct dlp_secret *secrets;
    size_t n_secrets, n_skipped;
    struct dlp_variant *variants;
    size_t n_variants;
    size_t longest_variant;
    size_t longest_proj;
    size_t raw_step, proj_step; /* the text is hashed every step bytes (1-4) */
    struct dlp_wtable raw;      /* first 8 bytes of every variant */
    struct dlp_wtable proj;     /* 8-byte windows at offsets 0, 4, 8... of each projection */
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
};

void dlp_hits_push(struct dlp_hits *h, const char *rule, enum dlp_kind kind, size_t off, size_t len,
                   int secret);
void dlp_hits_free(struct dlp_hits *h);

/* dlp.c */
void dlp_emit(const struct dlp_engine *e, struct dlp_result *res, const char *location,
              const struct dlp_hits *h, size_t base);
void dlp_find_outbound(const struct dlp_engine *e, unsigned bits, const char *p, size_t len,
                       struct dlp_hits *h);
const struct http_header *dlp_find_header(const struct dlp_request *r, const char *name);
void dlp_header_value(const struct dlp_request *r, const char *name, char *out, size_t size);
enum dlp_body_kind { DLP_BODY_OTHER = 0, DLP_BODY_JSON, DLP_BODY_FORM, DLP_BODY_MULTIPART };
enum dlp_body_kind dlp_body_kind(const struct dlp_request *r, const char *body, size_t n,
                                 char *boundary, size_t bsize);

/* dlp_rules.c */
extern const struct dlp_rule dlp_rules[];
extern const size_t dlp_n_rules;
void dlp_classes_init(uint16_t cls[256]);
int dlp_starts_build(struct dlp_engine *e);
size_t dlp_rules_longest(void);
void dlp_find_patterns(const struct dlp_engine *e, const char *p, size_t len, struct dlp_hits *h);
void dlp_find_crlf(const char *p, size_t len, struct dlp_hits *h);
void dlp_find_entropy(const struct dlp_engine *e, const char *p, size_t len, struct dlp_hits *h);
void dlp_find_injection(const char *p, size_t len, struct dlp_hits *h);

/* dlp_secrets.c */
int dlp_secrets_build(struct dlp_engine *e, const struct strv *secrets);
void dlp_secrets_free(struct dlp_engine *e);
/* Pass 1 over raw text. */
void dlp_find_secret_values(const struct dlp_engine *e, const char *p, size_t len,
                            struct dlp_hits *h);
/* Passes 2 and 3 over the projection of p; skips secrets already in `found` (pass 1). */
void dlp_find_secret_fragments(const struct dlp_engine *e, const char *p, size_t len,
                               struct dlp_hits *h);

/* dlp_simd.c (AVX2 on x86-64; elsewhere e->simd stays false) */
#define DLP_SIMD_BUCKETS 16
/* Builds the tables from e->pairs; e->simd from the CPU and BOTTLE_DLP_SIMD. */
void dlp_simd_init(struct dlp_engine *e);
/* Turns the vector filters off (portable path only) or back on when the CPU has them. */
void dlp_engine_use_simd(struct dlp_engine *e, bool on);
/*
 * The first position in [k, limit) whose two bytes begin some prefix (e->pairs)
 * and whose previous byte is not alphanumeric, or limit. Reads u[k - 1 ..
 * limit + 32]: needs k >= 1 and limit + 33 <= len.
 */
size_t dlp_simd_next_start(const struct dlp_engine *e, const unsigned char *u, size_t k,
                           size_t limit);
/* Appends the alphanumeric bytes of p[*pi..] to q at *pm, 32 at a time, while both fit. */
void dlp_simd_project(const struct dlp_engine *e, const char *p, size_t *pi, size_t len, char *q,
                      size_t *pm, size_t cap);

/* dlp_decode.c */
enum dlp_decode_rc { DLP_DECODE_OK = 0, DLP_DECODE_TOO_LARGE, DLP_DECODE_BAD };
/* Undoes a Content-Encoding list (gzip, x-gzip, deflate, br, identity). */
enum dlp_decode_rc dlp_content_decode(const char *enc, const char *p, size_t n, size_t cap,
                                      struct buf *out);
/* Re-applies it (for a redacted body). Returns 0 or negative. */
int dlp_content_encode(const char *enc, const char *p, size_t n, struct buf *out);
/* %XX (and '+' as space when form) decoding; invalid escapes are kept as they are. */
void dlp_url_decode(const char *p, size_t n, bool form, struct buf *out);
/* Percent-encodes everything outside unreserved characters (for the target). */
void dlp_url_encode(const char *p, size_t n, struct buf *out);
/* The JSON text with the escapes inside its strings decoded (quotes and structure kept). */
void dlp_json_view(const char *p, size_t n, struct buf *out);
/* Unescapes one JSON string body (without quotes). */
void dlp_json_unescape(const char *p, size_t n, struct buf *out);
/* Finds the end quote of the string body starting at p[i]; returns its index or n. */
size_t dlp_json_string_end(const char *p, size_t n, size_t i);

struct dlp_part {
    size_t start, end; /* content range in the body */
    char name[48];
};
/* Parts of a multipart body; returns the count (at most max). */
size_t dlp_multipart_parts(const char *boundary, const char *p, size_t n, struct dlp_part *parts,
                           size_t max);
/* Parameter of a header value (`boundary`, `charset`) into out; false when absent. */
bool dlp_header_param(const char *value, size_t len, const char *param, char *out, size_t outsize);

#endif
