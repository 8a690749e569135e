/*
 * dlp_secrets — the known_secrets detector: each secret, its encodings and
 * its alphanumeric projection in window tables built once (pass 1: a value
 * or an encoding of it; pass 2: separators injected into a whole value;
 * pass 3: a window of a value). See dlp_secrets.c.
 *
 * A detector: it appends hits (dlp_base.h) and never calls the engine.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_SECRETS_H
#define BOTTLE_SIDECAR_DLP_DLP_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "sidecar/dlp/dlp_base.h"

/* Secrets that may share one projection window before it stops being entered. */
#define DLP_WINDOW_SHARE 4

int dlp_secrets_build(struct dlp_engine *e, const struct strv *secrets);
void dlp_secrets_free(struct dlp_engine *e);
/* Pass 1 over raw text. */
void dlp_find_secret_values(const struct dlp_engine *e, const char *p, size_t len,
                            struct dlp_hits *h);
/* Whether p[0, n) is the start of some pass-1 variant longer than n (a variant cut short). */
bool dlp_variant_prefix(const struct dlp_engine *e, const char *p, size_t n);
/* Passes 2 and 3 over the projection of p; skips secrets already in `found` (pass 1). */
void dlp_find_secret_fragments(const struct dlp_engine *e, const char *p, size_t len,
                               struct dlp_hits *h);

#endif
