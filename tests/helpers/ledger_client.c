/*
 * ledger_client — what the runtime does to a ledger, for suites that run
 * sidecars without a controller: register a bottle run in a pool, store a
 * pool's limit, apply the expiry rule, read what a scope has spent.
 *
 *   ledger_client LEDGER register BOTTLE AGENT POOL
 *   ledger_client LEDGER pool POOL PROVIDER LIMIT [day|month|total]
 *   ledger_client LEDGER expire            the rule: reservations open longer than
 *                                          LEDGER_RESERVATION_TIMEOUT_S are charged
 *   ledger_client LEDGER spent global|bottle|agent|pool NAME PROVIDER
 *
 * Rows it writes carry $BOTTLE_HOST (else the host name). Prints a number
 * for expire and spent; exit 0, 1 on a ledger error, 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/ledger.h"

static int scope_of(const char *s, enum ledger_scope *out)
{
    static const char *const names[] = {"global", "bottle", "agent", "pool"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum ledger_scope)i;
            return 0;
        }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: ledger_client LEDGER register|pool|expire|spent ...\n");
        return 2;
    }
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    if (ledger_open(argv[1], &l, &err) < 0) {
        fprintf(stderr, "ledger_client: %s\n", err.msg);
        return 1;
    }
    const char *cmd = argv[2];
    int rc = 0;
    if (strcmp(cmd, "register") == 0 && argc == 6) {
        rc = ledger_run_start(l, argv[3], argv[4], argv[5], &err);
    } else if (strcmp(cmd, "pool") == 0 && (argc == 6 || argc == 7)) {
        struct ledger_budget b = {LEDGER_SCOPE_POOL, argv[3], argv[4], atoll(argv[5])};
        enum ledger_period p = LEDGER_PERIOD_TOTAL;
        if (argc == 7 && ledger_period_parse(argv[6], &p) < 0) {
            fprintf(stderr, "ledger_client: period: day, month or total\n");
            rc = -2;
        }
        if (rc == 0)
            rc = ledger_budget_set(l, &b, &err);
        if (rc == 0)
            rc = ledger_period_set(l, LEDGER_SCOPE_POOL, argv[3], argv[4], p, &err);
    } else if (strcmp(cmd, "expire") == 0 && argc == 3) {
        rc = ledger_expire_stale(l, (int64_t)time(NULL) - LEDGER_RESERVATION_TIMEOUT_S, &err);
        if (rc >= 0) {
            printf("%d\n", rc);
            rc = 0;
        }
    } else if (strcmp(cmd, "spent") == 0 && argc == 6) {
        enum ledger_scope s;
        int64_t spent = 0;
        if (scope_of(argv[3], &s) < 0)
            rc = -2;
        else if ((rc = ledger_spent(l, s, argv[4], argv[5], &spent, &err)) == 0)
            printf("%lld\n", (long long)spent);
    } else {
        fprintf(stderr, "ledger_client: unknown command or wrong arguments: %s\n", cmd);
        rc = -2;
    }
    if (rc < 0 && rc != -2)
        fprintf(stderr, "ledger_client: %s\n", err.msg);
    ledger_close(l);
    return rc == -2 ? 2 : rc < 0 ? 1 : 0;
}
