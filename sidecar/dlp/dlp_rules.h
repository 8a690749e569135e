/*
 * dlp_rules — the token_patterns rule set and the other text detectors
 * (CRLF injection, entropy, prompt-injection phrases). See dlp_rules.c for
 * how the rules are matched.
 *
 * A detector: it appends hits (dlp_base.h) and never calls the engine.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_RULES_H
#define BOTTLE_SIDECAR_DLP_DLP_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sidecar/dlp/dlp_base.h"

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

extern const struct dlp_rule dlp_rules[];
extern const size_t dlp_n_rules;
/* Every token_patterns rule name, NULL-terminated (also in dlp.h, for the sidecar). */
const char *const *dlp_rule_names(void);
/* Lists the rules' starts by first byte into e (starts, start_off, pairs). */
int dlp_starts_build(struct dlp_engine *e);
/* The longest span a rule can match outside the PEM and JWT shapes. */
size_t dlp_rules_longest(void);
void dlp_find_patterns(const struct dlp_engine *e, const char *p, size_t len, struct dlp_hits *h);
void dlp_find_crlf(const char *p, size_t len, struct dlp_hits *h);
void dlp_find_entropy(const struct dlp_engine *e, const char *p, size_t len, struct dlp_hits *h);
void dlp_find_injection(const char *p, size_t len, struct dlp_hits *h);

#endif
