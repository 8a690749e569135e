/*
 * dashboard — the model behind `bottle dashboard`: one row per live bottle
 * (usage against budget, kernel byte counters, state), a renderer that
 * turns the model into fixed-width text lines, and the operator actions a
 * key triggers. The terminal front end (cmd_dashboard.c) only draws the
 * lines and reads keys, so everything here is testable without a terminal.
 */
#ifndef BOTTLE_CLI_DASHBOARD_H
#define BOTTLE_CLI_DASHBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct dash_row {
    char slug[64];
    char agent[64];
    char state[16];    /* running, frozen, cut off, stale */
    char provider[32]; /* the first metered provider with a budget; "" when none */
    uint64_t tokens_used;
    uint64_t tokens_budget;
    bool has_budget;
    bool has_stats; /* kernel counters could be read */
    uint64_t bytes_out, bytes_in, connects_denied;
};

struct dash_model {
    struct dash_row *rows;
    size_t n;
    size_t selected;
    char status[160]; /* the last action's outcome */
};

/* Tokens used so far by a bottle run for a provider; NULL source: unknown (0). */
typedef int (*dash_tokens_fn)(const char *home, const char *slug, const char *agent,
                              const char *provider, uint64_t *used);

/* Fills m with the bottles under home that have a live controller. Keeps m->selected in range. */
int dash_collect(const char *home, dash_tokens_fn tokens, struct dash_model *m,
                 struct bottle_err *err);
void dash_model_free(struct dash_model *m);

/*
 * Renders m into exactly `lines` strings of at most `cols` characters:
 * a title, column heads, one line per bottle (scrolled to keep the
 * selection visible), and the key help and status at the bottom. The
 * selected row starts with '>'.
 */
void dash_render(const struct dash_model *m, int lines, int cols, struct strv *out);
/* Same, with shared (the ledger's pools across hosts; NULL or "": none) in the title. */
void dash_render_shared(const struct dash_model *m, const char *shared, int lines, int cols,
                        struct strv *out);

/*
 * The action for key on row r: 'c' cut off, 'r' restore, 'f' freeze,
 * 't' thaw, 'k' kill. Writes what happened into status. Returns 0,
 * -ENOTSUP for a key without an action, or a negative errno.
 */
int dash_action(const char *home, const struct dash_row *r, int key, char *status, size_t len,
                struct bottle_err *err);

/* "1.2 MB", "512 B": a short human size. */
void dash_human_bytes(uint64_t v, char *out, size_t len);

#endif
