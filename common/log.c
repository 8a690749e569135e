#include "common/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"

/* The logger is process-wide by nature: one threshold, one sink. */
static struct {
    enum log_level level;
    bool json;
    FILE *out;
    const char *program;
} log_state = {LOG_LVL_WARN, false, NULL, "bottle"};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i <= LOG_LVL_DEBUG; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return LOG_LVL_WARN;
    return -1;
}

void log_init(const char *program)
{
    log_state.program = program ? program : "bottle";
    int lvl = log_level_parse(getenv("BOTTLE_LOG_LEVEL"));
    if (lvl >= 0)
        log_state.level = (enum log_level)lvl;
    const char *fmt = getenv("BOTTLE_LOG_FORMAT");
    log_state.json = fmt && strcmp(fmt, "json") == 0;
}

void log_set_level(enum log_level level)
{
    log_state.level = level;
}

enum log_level log_get_level(void)
{
    return log_state.level;
}

void log_set_json(bool json)
{
    log_state.json = json;
}

void log_set_output(FILE *out)
{
    log_state.out = out;
}

bool log_enabled(enum log_level level)
{
    return level <= log_state.level;
}

/* s as a quoted JSON string; esc is scratch space the record reuses. */
static void put_json_string(FILE *f, struct buf *esc, const char *s)
{
    buf_reset(esc);
    buf_append_char(esc, '"');
    json_escape_append(esc, s, strlen(s), 0);
    buf_append_char(esc, '"');
    fwrite(esc->data, 1, esc->len, f);
}

static void put_logfmt_value(FILE *f, struct buf *esc, const char *s)
{
    bool quote = *s == '\0';
    for (const char *p = s; *p && !quote; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
            quote = true;
    if (quote)
        put_json_string(f, esc, s);
    else
        fputs(s, f);
}

void log_record(enum log_level level, const char *msg, ...)
{
    if (!log_enabled(level))
        return;
    FILE *f = log_state.out ? log_state.out : stderr;
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

    struct buf esc = BUF_INIT;
    va_list ap;
    va_start(ap, msg);
    flockfile(f);
    if (log_state.json) {
        fputs("{\"ts\":", f);
        put_json_string(f, &esc, ts);
        fputs(",\"level\":", f);
        put_json_string(f, &esc, level_names[level]);
        fputs(",\"prog\":", f);
        put_json_string(f, &esc, log_state.program);
        fputs(",\"msg\":", f);
        put_json_string(f, &esc, msg);
        for (;;) {
            const char *k = va_arg(ap, const char *);
            if (!k)
                break;
            const char *v = va_arg(ap, const char *);
            fputc(',', f);
            put_json_string(f, &esc, k);
            fputc(':', f);
            put_json_string(f, &esc, v ? v : "");
        }
        fputs("}\n", f);
    } else {
        fprintf(f, "%s: level=%s msg=", log_state.program, level_names[level]);
        put_logfmt_value(f, &esc, msg);
        for (;;) {
            const char *k = va_arg(ap, const char *);
            if (!k)
                break;
            const char *v = va_arg(ap, const char *);
            fprintf(f, " %s=", k);
            put_logfmt_value(f, &esc, v ? v : "");
        }
        fputc('\n', f);
    }
    fflush(f);
    funlockfile(f);
    va_end(ap);
    buf_free(&esc);
}
