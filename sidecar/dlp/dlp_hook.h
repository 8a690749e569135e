/*
 * dlp_hook — the DLP checks on what flows after a request is forwarded:
 * inbound prompt-injection scanning of responses (head and decoded body)
 * and the checks of WebSocket messages both ways (outbound detectors on the
 * client's, inbound on the server's). The request itself is checked by
 * hooks.c before it leaves.
 *
 * A route's `dlp.inbound_on_match` says what an injection phrase does: warn
 * (logged, forwarded) or block (the response is refused when the phrase is
 * in its head, cut before the piece that holds it when in its body; a
 * WebSocket is closed). An outbound match in a client's WebSocket message
 * closes the WebSocket under every policy: a message cannot be redacted or
 * held for supervision.
 *
 * On a route that injects a token, the real tokens are taken out of
 * everything that comes back (dlp_echo_*): response heads, bodies (decoded
 * when content-encoded) and the server's WebSocket messages.
 */
#ifndef BOTTLE_SIDECAR_DLP_DLP_HOOK_H
#define BOTTLE_SIDECAR_DLP_DLP_HOOK_H

#include "manifest/route.h"
#include "sidecar/dlp/dlp.h"
#include "sidecar/http.h"
#include "sidecar/proxy_types.h"

struct dlp_response;
struct dlp_ws;
struct dlp_echo_response;

/*
 * The pieces of known secrets a request's scan found (res), with those of
 * the route's recent requests (recent): when they add up to a leak, v
 * becomes a refusal (403 dlp_blocked, known_secret_pieces); otherwise they
 * are recorded. Call it for a request the scan lets through.
 */
void dlp_hook_pieces(struct dlp_recent *recent, const struct route *route,
                     const struct dlp_result *res, struct dlp_verdict *v);

/*
 * Starts the inbound scan of a response: its headers now, its body through
 * dlp_response_data. Returns 0 with *out set (NULL when the route does not
 * scan responses), or 1 with v filled when the response is refused.
 */
int dlp_response_start(const struct dlp_engine *e, const struct route *route,
                       const struct http_response *resp, struct dlp_response **out,
                       struct proxy_verdict *v);
/* The next piece of the body (still content-encoded). Non-zero: end the response here. */
int dlp_response_data(struct dlp_response *r, const char *p, size_t n);
void dlp_response_free(struct dlp_response *r);

/*
 * Tokens echoed back, on a route whose requests carry an injected token.
 * dlp_echo_start rewrites the response head: every token variant in the
 * reason phrase and the header values is overwritten with its mark, a
 * header whose name holds one is dropped, and a content-encoded body is to
 * be decoded (Content-Encoding and Content-Length go; the client gets the
 * decoded body). Returns 0 with *out set (the head's new values live in it
 * until dlp_echo_response_free; NULL when nothing was changed and there is
 * no body), or 1 with v filled when the body cannot be redacted (a content
 * coding the sidecar does not decode: 502 dlp_response_unredactable).
 * tokens: an engine built from the real tokens only.
 */
int dlp_echo_start(const struct dlp_engine *tokens, const struct route *route,
                   struct http_response *resp, struct dlp_echo_response **out,
                   struct proxy_verdict *v);
/*
 * The next piece of the body (still content-encoded): appends what can go
 * to the client to out, marked. last: the body is complete, flush. Non-zero:
 * the body cannot be decoded; end the response here.
 */
int dlp_echo_body(struct dlp_echo_response *r, const char *p, size_t n, bool last, struct buf *out);
void dlp_echo_response_free(struct dlp_echo_response *r);
/*
 * A server's WebSocket message or control frame: token variants overwritten
 * in place with their marks (same length). Returns how many.
 */
size_t dlp_echo_ws(const struct dlp_engine *tokens, const struct route *route, char *p, size_t n);

/*
 * One WebSocket message or control frame, unmasked and whole. *ws is the
 * connection's state (created on the first call; free with dlp_ws_free).
 * Returns 0 to forward, 1 with v filled to close the WebSocket.
 */
int dlp_ws_message(const struct dlp_engine *e, const struct route *route, struct dlp_ws **ws,
                   bool from_client, const char *p, size_t n, struct proxy_verdict *v);
void dlp_ws_free(struct dlp_ws *ws);

#endif
