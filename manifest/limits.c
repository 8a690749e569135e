/*
 * limits — the `limits:` block of a bottle: how many processes, how much
 * memory and CPU the agent may use, and how large its tmpfs mounts are.
 *
 * This file validates the values (with the dotted key and file:line:col in
 * every error), folds them through `extends`, and fills in the defaults.
 * Applying them is the backends' and the kernel module's business.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "manifest/manifest.h"

/* The kernel's PID_MAX_LIMIT: no pid namespace can hold more. */
#define LIMITS_MAX_PIDS   4194304u
#define LIMITS_MIN_PIDS   8u
#define LIMITS_MIN_MEMORY (16ull << 20)
#define LIMITS_MIN_TMPFS  (1ull << 20)
/* cpu.max takes a quota of at least 1 ms per 100 ms period: 0.01 CPU. */
#define LIMITS_MIN_CPU_MILLI 10u
#define LIMITS_MAX_CPU_MILLI (4096u * 1000u)

static bool scalar_is(const struct node *n, const char *text)
{
    return n && n->kind == NODE_SCALAR && strcmp(n->scalar, text) == 0;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Digits into v; false on overflow. */
static bool digits_value(const char *s, size_t n, uint64_t *v)
{
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return false;
        *v = *v * 10 + d;
    }
    return true;
}

/* The multiplier of a unit suffix: K, M, G, T (binary), optionally with "i", "B" or "iB". */
static uint64_t unit_multiplier(const char *u)
{
    static const char letters[] = "kmgt";
    if (!*u)
        return 1;
    const char *l = strchr(letters, u[0] | 0x20);
    if (!l)
        return 0;
    const char *rest = u + 1;
    if (*rest && strcasecmp(rest, "b") != 0 && strcasecmp(rest, "ib") != 0 &&
        strcasecmp(rest, "i") != 0)
        return 0;
    return 1ull << (10 * (unsigned)(l - letters + 1));
}

#define SIZE_HINT "write bytes, or a whole number with K, M, G or T (binary: 512M, 8G)"

/* A size: a plain whole number of bytes, or digits with a unit. */
static int parse_size(const struct node *n, const char *what, bool allow_max, uint64_t min,
                      uint64_t *out, struct bottle_err *err)
{
    if (allow_max && scalar_is(n, "max")) {
        *out = LIMIT_NONE;
        return 0;
    }
    if (!n || n->kind != NODE_SCALAR)
        return node_error(err, n ? &n->pos : NULL, "%s: expected a size (%s)%s, found %s", what,
                          "e.g. 512M", allow_max ? " or 'max'" : "", node_describe(n));
    const char *s = n->scalar;
    size_t nd = strspn(s, "0123456789");
    uint64_t value = 0, mult = 0;
    if (nd > 0 && digits_value(s, nd, &value))
        mult = unit_multiplier(s + nd);
    if (nd == 0 || mult == 0)
        return node_error(err, &n->pos, "%s: '%s' is not a size; " SIZE_HINT "%s", what, s,
                          allow_max ? ", or 'max' for no limit" : "");
    if (value > (UINT64_MAX - 1) / mult)
        return node_error(err, &n->pos, "%s: '%s' is too large", what, s);
    value *= mult;
    if (value < min) {
        char have[32], want[32];
        limits_format_bytes(value, have, sizeof(have));
        limits_format_bytes(min, want, sizeof(want));
        return node_error(err, &n->pos, "%s: %s is below the minimum of %s%s", what, have, want,
                          mult == 1 ? " (a number without a unit is bytes; write e.g. 512M)" : "");
    }
    *out = value;
    return 0;
}

static int parse_pids(const struct node *n, uint64_t *out, struct bottle_err *err)
{
    if (scalar_is(n, "max")) {
        *out = LIMIT_NONE;
        return 0;
    }
    if (!n || n->kind != NODE_SCALAR || !n->plain || !all_digits(n->scalar, strlen(n->scalar)))
        return node_error(err, n ? &n->pos : NULL,
                          "limits.pids: expected a whole number of processes or 'max', found %s",
                          node_describe(n));
    uint64_t v = 0;
    if (!digits_value(n->scalar, strlen(n->scalar), &v) || v > LIMITS_MAX_PIDS)
        return node_error(err, &n->pos, "limits.pids: %s is above the kernel's maximum of %u",
                          n->scalar, LIMITS_MAX_PIDS);
    if (v < LIMITS_MIN_PIDS)
        return node_error(err, &n->pos,
                          "limits.pids: %s is below the minimum of %u (the bottle's init, the "
                          "agent and its tools need a few)",
                          n->scalar, LIMITS_MIN_PIDS);
    *out = v;
    return 0;
}

/* "2", "0.5", "1.25": at most three decimals, as thousandths. */
static int parse_cpus(const struct node *n, uint64_t *out, struct bottle_err *err)
{
    if (scalar_is(n, "max")) {
        *out = LIMIT_NONE;
        return 0;
    }
    if (!n || n->kind != NODE_SCALAR || !n->plain)
        return node_error(err, n ? &n->pos : NULL,
                          "limits.cpus: expected a number of CPUs (e.g. 2 or 0.5) or 'max', found "
                          "%s",
                          node_describe(n));
    const char *s = n->scalar;
    size_t whole = strspn(s, "0123456789");
    const char *frac = s + whole;
    size_t nfrac = 0;
    if (*frac == '.') {
        frac++;
        nfrac = strspn(frac, "0123456789");
    }
    bool shape = whole > 0 && (s[whole] == '\0' || (s[whole] == '.' && nfrac > 0 && !frac[nfrac]));
    if (!shape)
        return node_error(err, &n->pos,
                          "limits.cpus: '%s' is not a number of CPUs; write e.g. 2 or 0.5, or "
                          "'max'",
                          s);
    if (nfrac > 3)
        return node_error(err, &n->pos, "limits.cpus: '%s' has more than three decimals", s);
    uint64_t w = 0, f = 0;
    if (whole > 7 || !digits_value(s, whole, &w) || (nfrac && !digits_value(frac, nfrac, &f)))
        return node_error(err, &n->pos, "limits.cpus: %s is too large", s);
    for (size_t i = nfrac; i < 3; i++)
        f *= 10;
    uint64_t milli = w * 1000 + f;
    if (milli < LIMITS_MIN_CPU_MILLI || milli > LIMITS_MAX_CPU_MILLI)
        return node_error(err, &n->pos, "limits.cpus: %s is outside 0.01 to %u", s,
                          LIMITS_MAX_CPU_MILLI / 1000);
    *out = milli;
    return 0;
}

int limits_parse(const struct node *n, struct resource_limits *out, struct bottle_err *err)
{
    static const char *const keys[] = {"pids", "memory", "cpus", "tmpfs", NULL};
    int rc = node_want_map(n, "limits", err);
    if (rc == 0)
        rc = node_check_keys(n, "limits", keys, err);
    const struct node *v;
    if (rc == 0 && (v = node_map_get(n, "pids")))
        rc = parse_pids(v, &out->pids, err);
    if (rc == 0 && (v = node_map_get(n, "memory")))
        rc = parse_size(v, "limits.memory", true, LIMITS_MIN_MEMORY, &out->memory, err);
    if (rc == 0 && (v = node_map_get(n, "cpus")))
        rc = parse_cpus(v, &out->cpu_milli, err);
    if (rc == 0 && (v = node_map_get(n, "tmpfs"))) {
        if (scalar_is(v, "max"))
            return node_error(err, &v->pos,
                              "limits.tmpfs: 'max' is not allowed: every tmpfs has a size "
                              "(e.g. 1G)");
        rc = parse_size(v, "limits.tmpfs", false, LIMITS_MIN_TMPFS, &out->tmpfs, err);
    }
    return rc;
}

void limits_fold(struct resource_limits *acc, const struct resource_limits *later)
{
    if (later->pids != LIMIT_UNSET)
        acc->pids = later->pids;
    if (later->memory != LIMIT_UNSET)
        acc->memory = later->memory;
    if (later->cpu_milli != LIMIT_UNSET)
        acc->cpu_milli = later->cpu_milli;
    if (later->tmpfs != LIMIT_UNSET)
        acc->tmpfs = later->tmpfs;
}

void limits_effective(const struct resource_limits *declared, uint64_t host_memory,
                      struct resource_limits *out)
{
    uint64_t half = host_memory / 2;
    uint64_t memory = half && half < LIMITS_DEFAULT_MEMORY_CAP ? half : LIMITS_DEFAULT_MEMORY_CAP;
    out->pids = declared->pids != LIMIT_UNSET ? declared->pids : LIMITS_DEFAULT_PIDS;
    out->memory = declared->memory != LIMIT_UNSET ? declared->memory : memory;
    out->cpu_milli = declared->cpu_milli != LIMIT_UNSET ? declared->cpu_milli : LIMIT_NONE;
    out->tmpfs = declared->tmpfs != LIMIT_UNSET ? declared->tmpfs : LIMITS_DEFAULT_TMPFS;
}

void limits_format_bytes(uint64_t bytes, char *out, size_t len)
{
    static const char units[] = "KMGT";
    if (bytes == LIMIT_NONE) {
        snprintf(out, len, "max");
        return;
    }
    int u = -1;
    uint64_t v = bytes;
    while (u < 3 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    if (u < 0)
        snprintf(out, len, "%llu", (unsigned long long)bytes);
    else
        snprintf(out, len, "%llu%c", (unsigned long long)v, units[u]);
}

void limits_format_cpus(uint64_t milli, char *out, size_t len)
{
    if (milli == LIMIT_NONE) {
        snprintf(out, len, "max");
        return;
    }
    unsigned long long w = (unsigned long long)(milli / 1000), f = milli % 1000;
    if (f == 0)
        snprintf(out, len, "%llu", w);
    else if (f % 100 == 0)
        snprintf(out, len, "%llu.%llu", w, f / 100);
    else if (f % 10 == 0)
        snprintf(out, len, "%llu.%02llu", w, f / 10);
    else
        snprintf(out, len, "%llu.%03llu", w, f);
}
