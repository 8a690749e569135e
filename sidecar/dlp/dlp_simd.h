/*
 * dlp_simd — vector filters in front of the detectors' portable loops
 * (AVX2 on x86-64; elsewhere e->simd stays false). See dlp_simd.c.
 *
 * It only skips positions the portable code would reject, or produces
 * exactly the bytes it would; it never reports a hit itself.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_SIMD_H
#define BOTTLE_SIDECAR_DLP_DLP_SIMD_H

#include <stdbool.h>
#include <stddef.h>

#include "sidecar/dlp/dlp_base.h"

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
/*
 * Appends the alphanumeric bytes of p[*pi..], ORed with e->fold (case
 * folded), to q at *pm, 32 at a time, while both fit.
 */
void dlp_simd_project(const struct dlp_engine *e, const char *p, size_t *pi, size_t len, char *q,
                      size_t *pm, size_t cap);

#endif
