/*
 * hooks — fills struct proxy_hooks (proxy_types.h) with the sidecar's request
 * and response checks: outbound DLP, budget admission and metering. Each
 * check lives in its own module (dlp/, meter/); this one only composes them
 * in the order the decision flow fixes (docs/sidecar.md): DLP on the head,
 * DLP on the body, then budget admission, so a request refused for a leak
 * never reserves tokens.
 *
 * It is the one file that includes dlp/ and meter/: the loop, the
 * connection and the decision see the checks only through struct
 * proxy_hooks, and must never include them.
 */
#ifndef BOTTLE_SIDECAR_HOOKS_H
#define BOTTLE_SIDECAR_HOOKS_H

#include "common/err.h"
#include "sidecar/config.h"
#include "sidecar/proxy.h"

struct hooks;

/*
 * Builds the checks from cfg and installs them on px. Opens the ledger, so
 * it runs during set-up, before the seccomp filter. tokens: the real
 * credential values (known secrets for DLP).
 */
int hooks_install(struct proxy *px, const struct config *cfg, const struct config_tokens *tokens,
                  struct hooks **out, struct bottle_err *err);
void hooks_free(struct hooks *h);

#endif
