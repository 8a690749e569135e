/*
 * ledger_internal — what ledger.c, reserve.c and report.c share: the
 * ledger handle around its store's connection (ledger/store.h). Only the
 * ledger module's own files include it; everyone else speaks ledger.h.
 */
#ifndef BOTTLE_LEDGER_INTERNAL_H
#define BOTTLE_LEDGER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "ledger/store.h"

struct ledger {
    struct ledger_store *st;
    char *host;            /* what rows written through this handle carry */
    int64_t next_sweep_ms; /* monotonic: when ledger_reserve next expires stale reservations */
    uint64_t rng;          /* reservation tokens when getrandom fails */
};

/* Wall-clock seconds, as stored in the tables. */
int64_t ledger_now_s(void);
bool ledger_valid_scope(enum ledger_scope scope);
/* The statement summing one scope's spending. */
enum store_stmt ledger_spent_stmt(enum ledger_scope scope);
/* Settled since the scope's period began plus open reservations; *period the one counted. */
int ledger_spent_in(struct ledger_store *s, enum ledger_scope scope, const char *name,
                    const char *provider, int64_t *spent, enum ledger_period *period,
                    struct bottle_err *err);
/* A fresh reservation token (32 hex digits) into out[33]. */
void ledger_new_token(struct ledger *l, char out[33]);

#endif
