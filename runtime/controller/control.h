/*
 * control — the per-bottle control socket, $BOTTLE_HOME/run/<slug>.sock.
 *
 * The protocol is JSON lines: one request object per line, one response
 * object per line, {"ok":true,...} or {"ok":false,"error":"..."}. This
 * module owns the transport only: a non-blocking server the controller
 * drives from its poll loop (it never blocks on a peer, a peer that never
 * finishes a line is dropped after CONTROL_IDLE_MS), the line framing and
 * JSON checks, and a small blocking client for the CLI. What a command does
 * is the handler's business (the controller's).
 *
 * The socket is mode 0600 in the 0700 run directory and the server answers
 * only peers with the controller's own uid (root): whoever can talk to it
 * can freeze, cut off or kill the bottle.
 */
#ifndef BOTTLE_CONTROLLER_CONTROL_H
#define BOTTLE_CONTROLLER_CONTROL_H

#include <cjson/cJSON.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

#define CONTROL_LINE_MAX    4096
#define CONTROL_MAX_CLIENTS 8
#define CONTROL_IDLE_MS     10000
/* pollfds control_server_pollfds fills at most: the listener plus every client. */
#define CONTROL_POLLFDS_MAX (1 + CONTROL_MAX_CLIENTS)

/*
 * Handles one well-formed request (cmd is its "cmd" string). Adds its
 * results to resp and returns 0, or returns a negative errno with err set
 * (the message becomes the response's "error"). peer_uid is the caller's.
 */
typedef int (*control_handler_fn)(void *ctx, const char *cmd, const cJSON *req, cJSON *resp,
                                  uid_t peer_uid, struct bottle_err *err);

struct control_client {
    int fd; /* -1: free slot */
    uid_t uid;
    long long last_ms; /* CLOCK_MONOTONIC of the last byte received */
    size_t len;
    char buf[CONTROL_LINE_MAX];
};

struct control_server {
    int listen_fd;
    char *path;
    control_handler_fn handler;
    void *ctx;
    struct control_client clients[CONTROL_MAX_CLIENTS];
};

/* $home/run/<slug>.sock (allocated). */
char *control_socket_path(const char *home, const char *slug);

/*
 * Binds and listens on path (mode 0600; a stale socket there is replaced,
 * anything else is an error). s is usable with control_server_close even
 * after a failure.
 */
int control_server_open(struct control_server *s, const char *path, control_handler_fn handler,
                        void *ctx, struct bottle_err *err);
/* Closes every client and the listener and removes the socket. Idempotent. */
void control_server_close(struct control_server *s);

/* Fills fds (room for CONTROL_POLLFDS_MAX) with what to poll; returns how many. */
size_t control_server_pollfds(const struct control_server *s, struct pollfd *fds);
/* Acts on the poll results of the fds control_server_pollfds filled; drops idle clients. */
void control_server_dispatch(struct control_server *s, const struct pollfd *fds, size_t n);

/*
 * One request line (without its newline) to one response line (allocated,
 * without newline): malformed input gets {"ok":false,"error":...}.
 */
char *control_handle_line(const char *line, size_t len, control_handler_fn handler, void *ctx,
                          uid_t peer_uid);

/*
 * Client: sends req to the socket at path and waits (timeout_ms) for one
 * response line. Returns 0 with *resp set (owned by the caller; check its
 * "ok"), -ENOENT or -ECONNREFUSED when no controller serves the path, or
 * another negative errno.
 */
int control_request(const char *path, const cJSON *req, int timeout_ms, cJSON **resp,
                    struct bottle_err *err);
/* control_request with {"cmd": cmd}; *resp NULL is allowed when only success matters. */
int control_simple(const char *home, const char *slug, const char *cmd, int timeout_ms,
                   cJSON **resp, struct bottle_err *err);

#endif
