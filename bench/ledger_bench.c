/*
 * ledger_bench — reservations per second and settle latency with W
 * concurrent writer processes, each its own connection: every writer does N
 * reserve + settle pairs (two write transactions) against one shared budget
 * (every reservation holds that budget's counter: the worst case, as a team
 * pool on many hosts). Works on either store: LEDGER is a file path or a
 * postgresql:// URL. Prints the rates and checks the totals are exact (no
 * lost or doubled row), then one machine-readable line:
 *   RESULT <store> <writers> <reservations/s> <settle p50 ms> <settle p99 ms>
 * Usage: ledger_bench LEDGER [writers] [pairs per writer]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Writes each settle's latency (seconds, as doubles) to fd; exit code says how it went. */
static int writer(const char *db, int index, int pairs, int fd)
{
    struct ledger *l = NULL;
    struct bottle_err err = {0};
    if (ledger_open(db, &l, &err) < 0)
        return 10;
    char bottle[16];
    snprintf(bottle, sizeof(bottle), "w%d", index);
    struct ledger_subject who = {bottle, "bench", "claude"};
    double *lat = calloc((size_t)pairs, sizeof(double));
    for (int i = 0; i < pairs; i++) {
        int64_t id = 0;
        struct ledger_denial d;
        if (ledger_reserve(l, &who, 100, &id, &d, &err) != 0)
            return 11;
        struct ledger_record rec = {.model = "m", .complete = true};
        rec.usage.input_tokens = 40;
        rec.usage.output_tokens = 60;
        double t0 = now_s();
        if (ledger_settle(l, id, &rec, &err) < 0)
            return 12;
        lat[i] = now_s() - t0;
    }
    ledger_close(l);
    size_t len = (size_t)pairs * sizeof(double);
    if (write(fd, lat, len) != (ssize_t)len)
        return 13;
    free(lat);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: ledger_bench LEDGER [writers] [pairs]\n");
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
    struct ledger_budget shared = {LEDGER_SCOPE_GLOBAL, "", "claude", (int64_t)1 << 40};
    if (ledger_budget_set(l, &shared, &err) < 0) {
        fprintf(stderr, "ledger_bench: %s\n", err.msg);
        return 1;
    }
    char tmpl[] = "/tmp/bottle-bench-lat.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return 1;
    unlink(tmpl);
    double t0 = now_s();
    for (int w = 0; w < writers; w++)
        if (fork() == 0)
            _exit(writer(db, w, pairs, fd));
    int failed = 0;
    for (int w = 0; w < writers; w++) {
        int st = 0;
        wait(&st);
        failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    double dt = now_s() - t0;
    size_t n = (size_t)writers * (size_t)pairs;
    double *lat = calloc(n, sizeof(double));
    ssize_t got = pread(fd, lat, n * sizeof(double), 0);
    close(fd);
    size_t have = got > 0 ? (size_t)got / sizeof(double) : 0;
    qsort(lat, have, sizeof(double), cmp_double);
    double p50 = have ? lat[have / 2] * 1e3 : 0, p99 = have ? lat[have * 99 / 100] * 1e3 : 0;
    struct ledger_filter f = {NULL, "bench", "claude", 0};
    struct ledger_totals t;
    ledger_totals(l, &f, &t, &err);
    long long want = (long long)n;
    const char *store = ledger_store_name(l);
    printf("ledger %s, %d writers x %d reserve+settle on one shared budget: %.0f reservations/s "
           "(%.0f transactions/s), settle p50 %.2f ms p99 %.2f ms; rows %lld of %lld, charged "
           "%lld of %lld%s\n",
           store, writers, pairs, (double)want / dt, 2.0 * (double)want / dt, p50, p99,
           (long long)t.requests, want, (long long)t.charged_tokens, want * 100,
           failed ? " (a writer failed)" : "");
    printf("RESULT %s %d %.0f %.3f %.3f\n", store, writers, (double)want / dt, p50, p99);
    free(lat);
    ledger_close(l);
    return failed || t.requests != want ? 1 : 0;
}
