/*
 * proxy — bottle-proxy's event loop: listeners, connections, signals,
 * timers, metrics and the hooks later modules fill (outbound DLP, budget
 * admission).
 *
 * One thread runs an epoll loop over non-blocking sockets and non-blocking
 * OpenSSL; each connection is one struct with explicit states (conn.c). The
 * only other threads are short-lived name resolutions, which never touch a
 * connection. The proxy owns the current config and swaps it on SIGHUP;
 * connections hold a reference for the request they are serving.
 */
#ifndef BOTTLE_SIDECAR_PROXY_H
#define BOTTLE_SIDECAR_PROXY_H

#include "common/err.h"
#include "sidecar/config.h"
#include "sidecar/proxy_types.h"

/*
 * Sets up TLS, listeners, signals (SIGHUP, SIGTERM, SIGINT through a
 * signalfd; the caller has blocked them) from cfg, which the proxy takes.
 */
int proxy_init(struct proxy *px, const char *config_path, struct config *cfg,
               const struct config_tokens *tokens, struct bottle_err *err);
/* Runs until SIGTERM/SIGINT and the drain that follows. Returns 0 or a negative errno. */
int proxy_run(struct proxy *px);
void proxy_free(struct proxy *px);

/* Re-reads the config file; on failure keeps the current one. Returns 0 or negative. */
int proxy_reload(struct proxy *px);

#endif
