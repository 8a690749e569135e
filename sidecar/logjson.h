/*
 * logjson — the sidecar's log lines: one JSON object per line on stderr with
 * a stable schema (docs/sidecar.md), one line per request and one per
 * event; and the refusal counters by reason code that /metrics reports.
 *
 * Header values pass through the one redactor: a credential header or a
 * token value must never reach a line. It never changes a connection.
 */
#ifndef BOTTLE_SIDECAR_LOGJSON_H
#define BOTTLE_SIDECAR_LOGJSON_H

#include "sidecar/proxy_types.h"

/* The line of the request c has served (nothing when the config turns logging off). */
void logjson_request(struct conn *c);
/* Keeps req's header fields, redacted, for the request's line (full logging). */
void logjson_capture(struct conn *c, const struct http_request *req);
/* An event line with up to two more string fields (k2 NULL: one). */
void logjson_event(struct proxy *px, const char *event, const char *k1, const char *v1,
                   const char *k2, const char *v2);
/* Counts a refusal under its reason code (a static string). */
void logjson_count_refusal(struct proxy *px, const char *reason);

#endif
