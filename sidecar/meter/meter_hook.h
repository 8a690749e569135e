/*
 * meter_hook — metering and budget admission for the sidecar's metered
 * routes, on the exchange hooks of proxy.h.
 *
 * Before a metered request is forwarded its tokens are estimated from the
 * body (meter_estimate_request) and reserved in the ledger against the
 * bottle's effective budget for the route's provider, in one transaction
 * with every other sidecar on the host. A request that does not fit is
 * refused with 429 `budget_exhausted`, and the runtime is told on the
 * events descriptor so the bottle's cutoff policy fires. The response is
 * metered as it passes (never held); when the exchange ends the
 * reservation is settled to the real usage, or, for a stream cut short
 * without its final usage, charged at least what was reserved.
 *
 * No ledger (none configured, or it cannot be opened or written) means a
 * metered request is refused with 503 `metering_unavailable`: the sidecar
 * forwards metered traffic only when it can account for it.
 */
#ifndef BOTTLE_SIDECAR_METER_METER_HOOK_H
#define BOTTLE_SIDECAR_METER_METER_HOOK_H

#include <stdbool.h>

#include "common/err.h"
#include "sidecar/config.h"
#include "sidecar/http.h"
#include "sidecar/proxy_types.h"

#define REASON_BUDGET_EXHAUSTED     "budget_exhausted"
#define REASON_METERING_UNAVAILABLE "metering_unavailable"

struct meter_hook;
struct meter_exchange;

/* Opens cfg->ledger (when set) and releases reservations a crashed sidecar of this bottle left. */
int meter_hook_open(const struct config *cfg, struct meter_hook **out, struct bottle_err *err);
void meter_hook_close(struct meter_hook *mh);

/* PROXY_WANT_* for a request: metered routes want the body and the response. */
unsigned meter_hook_wants(const struct proxy_request_view *v);

/*
 * Admission: returns 0 (pass; *xs set when the exchange is metered) or
 * fills out with a refusal. body is the whole request body.
 */
int meter_hook_admit(struct meter_hook *mh, const struct config *cfg,
                     const struct proxy_request_view *v, const char *body, size_t len,
                     struct meter_exchange **xs, struct proxy_verdict *out);
void meter_hook_response_head(struct meter_exchange *x, const struct http_response *resp);
void meter_hook_response_data(struct meter_exchange *x, const char *p, size_t n);
/* Settles and frees x. complete: the whole response reached the client. */
void meter_hook_end(struct meter_hook *mh, const struct config *cfg, struct meter_exchange *x,
                    bool complete);

#endif
