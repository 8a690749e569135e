/*
 * ledger_bench — ledger writes per second with W concurrent writer processes:
 * each does N reserve + settle pairs (two write transactions) on one database
 * file. Prints the rate and checks the totals are exact (no lost or doubled row).
 * Usage: ledger_bench DB [writers] [pairs per writer]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ledger/ledger.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int writer(const char *db, int index, int pairs)
{
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    if (ledger_open(db, &l, &err) < 0)
        return 10;
    char bottle[16];
    snprintf(bottle, sizeof(bottle), "w%d", index);
    struct ledger_subject who = {bottle, "bench", "claude"};
    for (int i = 0; i < pairs; i++) {
        int64_t id = 0;
        struct ledger_denial d;
        if (ledger_reserve(l, &who, 100, &id, &d, &err) != 0)
            return 11;
        struct ledger_record rec = {.model = "m", .complete = true};
        rec.usage.input_tokens = 40;
        rec.usage.output_tokens = 60;
        if (ledger_settle(l, id, &rec, &err) < 0)
            return 12;
    }
    ledger_close(l);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ledger_bench DB [writers] [pairs]\n");
        return 2;
    }
    const char *db = argv[1];
    int writers = argc > 2 ? atoi(argv[2]) : 8;
    int pairs = argc > 3 ? atoi(argv[3]) : 500;
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    if (ledger_open(db, &l, &err) < 0) {
        fprintf(stderr, "ledger_bench: %s\n", err.msg);
        return 1;
    }
    double t0 = now_s();
    for (int w = 0; w < writers; w++)
        if (fork() == 0)
            _exit(writer(db, w, pairs));
    int failed = 0;
    for (int w = 0; w < writers; w++) {
        int st = 0;
        wait(&st);
        failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double dt = now_s() - t0;
    struct ledger_filter f = {NULL, "bench", "claude", 0};
    struct ledger_totals t;
    ledger_totals(l, &f, &t, &err);
    long long want = (long long)writers * pairs;
    printf("ledger, %d writer processes x %d reserve+settle: %.0f transactions/s (%.0f "
           "settled requests/s); rows %lld of %lld, charged %lld of %lld%s\n",
           writers, pairs, 2.0 * (double)want / dt, (double)want / dt, (long long)t.requests, want,
           (long long)t.charged_tokens, want * 100, failed ? " (a writer failed)" : "");
    ledger_close(l);
    return failed ? 1 : 0;
}
