/*
 * ledger — opening a ledger on its store, the names and periods every part
 * of the ledger shares, and a store's result rows (see ledger.h and
 * store.h; reservations are in reserve.c, reports in report.c, the stores
 * in store_sqlite.c and store_pg.c).
 */
#include "ledger/ledger.h"
#include "ledger/ledger_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/home.h"

/* ---- locators ---------------------------------------------------------------- */

bool ledger_is_url(const char *path)
{
    return path && (str_starts_with(path, "postgresql://") || str_starts_with(path, "postgres://"));
}

const struct store_ops *store_for(const char *where)
{
    return ledger_is_url(where) ? &store_pg_ops : &store_sqlite_ops;
}

int ledger_check_locator(const char *path, struct bottle_err *err)
{
    if (!ledger_is_url(path))
        return 0;
    const char *auth = strstr(path, "://") + 3;
    size_t host_len = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', host_len);
    if (at && memchr(auth, ':', (size_t)(at - auth)))
        return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                            "ledger: the URL carries a password; give it in PGPASSWORD, a "
                            "password file (~/.pgpass, PGPASSFILE) or a service file instead");
    const char *q = strchr(auth, '?');
    for (const char *p = q; p; p = strchr(p + 1, '&'))
        if (str_starts_with(p + 1, "password="))
            return err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                                "ledger: the URL carries a password=; give it in PGPASSWORD, a "
                                "password file (~/.pgpass, PGPASSFILE) or a service file instead");
    return 0;
}

/* ---- open --------------------------------------------------------------------- */

int ledger_default_path(char **out, struct bottle_err *err)
{
    char *home = NULL;
    int rc = home_path(&home, err);
    if (rc < 0)
        return rc;
    *out = fs_join(home, LEDGER_FILE);
    free(home);
    return 0;
}

static char *host_name(void)
{
    const char *forced = getenv("BOTTLE_HOST");
    if (forced && *forced)
        return xstrndup(forced, LEDGER_NAME_MAX - 1);
    struct utsname u;
    return xstrdup(uname(&u) == 0 ? u.nodename : "");
}

int ledger_open_flags(const char *path, unsigned flags, struct ledger **out, struct bottle_err *err)
{
    char *where = NULL;
    int rc = path ? (where = xstrdup(path), 0) : ledger_default_path(&where, err);
    if (rc == 0)
        rc = ledger_check_locator(where, err);
    struct ledger_store *st = NULL;
    if (rc == 0)
        rc = store_for(where)->open(where, flags, &st, err);
    free(where);
    if (rc < 0)
        return rc;
    struct ledger *l = xcalloc(1, sizeof(*l));
    l->st = st;
    l->host = host_name();
    l->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)clock_mono_ms() ^ (uint64_t)(uintptr_t)l;
    l->rng |= 1;
    *out = l;
    return 0;
}

int ledger_open(const char *path, struct ledger **out, struct bottle_err *err)
{
    return ledger_open_flags(path, 0, out, err);
}

void ledger_close(struct ledger *l)
{
    if (!l)
        return;
    if (l->st)
        l->st->ops->close(l->st);
    free(l->host);
    free(l);
}

const char *ledger_store_name(const struct ledger *l)
{
    return l->st->ops->name;
}

const char *ledger_where(const struct ledger *l)
{
    return l->st->where;
}

const char *ledger_host(const struct ledger *l)
{
    return l->host;
}

void ledger_new_token(struct ledger *l, char out[33])
{
    uint64_t v[2];
    if (getrandom(v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
        for (int i = 0; i < 2; i++) {
            l->rng ^= l->rng << 13;
            l->rng ^= l->rng >> 7;
            l->rng ^= l->rng << 17;
            v[i] = l->rng ^ (uint64_t)clock_mono_ms();
        }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)v[0], (unsigned long long)v[1]);
}

static int version_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    return store_one_int(s, ST_VERSION, NULL, 0, arg, err);
}

int ledger_schema_version(struct ledger *l, struct bottle_err *err)
{
    int64_t version = 0;
    int rc = store_run(l->st, false, version_body, &version, err);
    return rc < 0 ? rc : (int)version;
}

static int ping_body(struct ledger_store *s, void *arg, struct bottle_err *err)
{
    int64_t one = 0;
    int rc = store_one_int(s, ST_PING, NULL, 0, &one, err);
    (void)arg;
    return rc;
}

int ledger_ping(struct ledger *l, int64_t *ms, struct bottle_err *err)
{
    int64_t t0 = clock_mono_ms();
    int rc = store_run(l->st, false, ping_body, NULL, err);
    if (ms)
        *ms = clock_mono_ms() - t0;
    return rc;
}
