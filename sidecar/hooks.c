/* hooks — see hooks.h. */
#include "sidecar/hooks.h"

#include <stdlib.h>
#include <string.h>

#include "sidecar/meterhook.h"

struct hooks {
    struct proxy *px;
    struct meterhook *meter;
};

/* Per-exchange state of every check. */
struct hooks_exchange {
    struct meter_exchange *meter;
};

static unsigned wants(void *ctx, const struct proxy_request_view *v, size_t *body_limit)
{
    struct hooks *h = ctx;
    unsigned w = meterhook_wants(v);
    if (w & PROXY_WANT_REQUEST_BODY)
        *body_limit = h->px->cfg->scan_limit;
    return w;
}

static int request_body(void *ctx, const struct proxy_request_view *v, void **xs, const char *body,
                        size_t len, struct buf *replacement, struct proxy_verdict *out)
{
    struct hooks *h = ctx;
    (void)replacement;
    struct meter_exchange *mx = NULL;
    meterhook_admit(h->meter, h->px->cfg, v, body, len, &mx, out);
    if (mx) {
        struct hooks_exchange *x = xcalloc(1, sizeof(*x));
        x->meter = mx;
        *xs = x;
    }
    return 0;
}

static void response_head(void *ctx, void *xs, const struct http_response *resp)
{
    (void)ctx;
    struct hooks_exchange *x = xs;
    meterhook_response_head(x->meter, resp);
}

static int response_data(void *ctx, void *xs, const char *p, size_t n)
{
    (void)ctx;
    struct hooks_exchange *x = xs;
    meterhook_response_data(x->meter, p, n);
    return 0;
}

static void exchange_end(void *ctx, void *xs, bool complete)
{
    struct hooks *h = ctx;
    struct hooks_exchange *x = xs;
    meterhook_end(h->meter, h->px->cfg, x->meter, complete);
    free(x);
}

int hooks_install(struct proxy *px, const struct config *cfg, const struct config_tokens *tokens,
                  struct hooks **out, struct bottle_err *err)
{
    (void)tokens;
    struct hooks *h = xcalloc(1, sizeof(*h));
    h->px = px;
    int rc = meterhook_open(cfg, &h->meter, err);
    if (rc < 0) {
        hooks_free(h);
        *out = NULL;
        return rc;
    }
    px->hooks.wants = wants;
    px->hooks.request_body = request_body;
    px->hooks.response_head = response_head;
    px->hooks.response_data = response_data;
    px->hooks.exchange_end = exchange_end;
    px->hooks.ctx = h;
    *out = h;
    return 0;
}

void hooks_free(struct hooks *h)
{
    if (!h)
        return;
    meterhook_close(h->meter);
    free(h);
}
