/*
 * The escape-sequence filter (see ttyfilter.h). Two layers: a UTF-8
 * decoder that turns bytes into units (an ASCII byte, a text byte, or a C1
 * control with the 1 or 2 bytes that encoded it), and the sequence state
 * machine that holds, passes or drops what the units build.
 */
#include "runtime/controller/ttyfilter.h"

#include <string.h>

enum {
    S_GROUND,
    S_ESC,     /* after ESC */
    S_ESC_INT, /* ESC and intermediate bytes */
    S_CSI,
    S_OSC,
    S_OSC_ESC, /* an ESC inside an OSC: ST if '\' follows */
    S_STR,     /* DCS, SOS, PM, APC: dropped, consumed to their end */
    S_STR_ESC,
};

#define ESC 0x1b
#define BEL 0x07
#define CAN 0x18
#define SUB 0x1a
#define DEL 0x7f

#define C1_DCS 0x90
#define C1_SOS 0x98
#define C1_CSI 0x9b
#define C1_ST  0x9c
#define C1_OSC 0x9d
#define C1_PM  0x9e
#define C1_APC 0x9f

struct out {
    char *p;
    size_t len;
};

static void put(struct out *o, unsigned char b)
{
    o->p[o->len++] = (char)b;
}

void tty_filter_init(struct tty_filter *f, unsigned flags)
{
    memset(f, 0, sizeof(*f));
    f->flags = flags;
    f->state = S_GROUND;
}

size_t tty_filter_held(const struct tty_filter *f)
{
    /* In S_OSC_ESC the ESC is held too: it is written with the '\\' that may follow. */
    return (f->state == S_GROUND ? 0 : f->seq_len) + (f->state == S_OSC_ESC ? 1 : 0) +
           (f->c2_pending ? 1 : 0);
}

unsigned long tty_filter_dropped(const struct tty_filter *f)
{
    unsigned long n = 0;
    for (int i = 0; i < TTY_DROP_CLASSES; i++)
        n += f->dropped[i];
    return n;
}

/* ---- the held sequence ------------------------------------------------------------ */

static void begin(struct tty_filter *f, int state, const unsigned char *raw, size_t n)
{
    f->state = state;
    memcpy(f->seq, raw, n);
    f->seq_len = f->intro_len = n;
    f->term_len = 0;
    f->bad = f->intermediate = false;
}

static void append(struct tty_filter *f, const unsigned char *raw, size_t n)
{
    size_t cap = f->state == S_CSI ? TTY_FILTER_CSI_MAX : sizeof(f->seq);
    if (f->seq_len + n > cap) {
        f->bad = true; /* too long: the rest is consumed, the whole dropped */
        return;
    }
    memcpy(f->seq + f->seq_len, raw, n);
    f->seq_len += n;
}

static void to_ground(struct tty_filter *f)
{
    f->state = S_GROUND;
    f->seq_len = f->intro_len = f->term_len = 0;
    f->bad = f->intermediate = false;
}

static void drop(struct tty_filter *f, enum tty_filter_class why)
{
    f->dropped[why]++;
    to_ground(f);
}

static void emit(struct tty_filter *f, struct out *o)
{
    memcpy(o->p + o->len, f->seq, f->seq_len);
    o->len += f->seq_len;
    to_ground(f);
}

/* An incomplete sequence interrupted by something that ends it (a bare ESC is no sequence). */
static void abandon(struct tty_filter *f)
{
    if (f->state == S_ESC && f->seq_len == 1)
        to_ground(f);
    else if (f->state != S_GROUND)
        drop(f, TTY_DROP_MALFORMED);
}

/* The decimal number at s[0..n) up to ';' or the end; -1 when there is none. */
static long leading_number(const unsigned char *s, size_t n, size_t *used)
{
    long v = 0;
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && v < 100000)
        v = v * 10 + (s[i++] - '0');
    *used = i;
    if (i == 0 || (i < n && s[i] != ';'))
        return -1;
    return v;
}

static bool osc_allowed_number(long ps)
{
    return ps == 0 || ps == 1 || ps == 2 || ps == 4 || ps == 5 || ps == 7 || ps == 8 || ps == 9 ||
           (ps >= 10 && ps <= 19) || ps == 104 || ps == 105 || (ps >= 110 && ps <= 119) ||
           ps == 133 || ps == 777;
}

static bool osc_is_color(long ps)
{
    return ps == 4 || ps == 5 || (ps >= 10 && ps <= 19);
}

static void finish_osc(struct tty_filter *f, struct out *o)
{
    if (f->bad) {
        drop(f, TTY_DROP_MALFORMED);
        return;
    }
    const unsigned char *body = f->seq + f->intro_len;
    size_t n = f->seq_len - f->intro_len - f->term_len, used = 0;
    long ps = leading_number(body, n, &used);
    const unsigned char *arg = body + used + (used < n ? 1 : 0);
    size_t arg_len = n - used - (used < n ? 1 : 0);
    if (ps == 52) {
        /* "Pc;Pd": Pd "?" asks the terminal to type the clipboard back. */
        const unsigned char *semi = memchr(arg, ';', arg_len);
        bool query = semi && (size_t)(arg + arg_len - semi) == 2 && semi[1] == '?';
        if (query || !(f->flags & TTY_FILTER_ALLOW_OSC52))
            drop(f, TTY_DROP_OSC52);
        else
            emit(f, o);
        return;
    }
    if (ps < 0 || !osc_allowed_number(ps)) {
        drop(f, TTY_DROP_OSC);
        return;
    }
    if (osc_is_color(ps) && memchr(arg, '?', arg_len)) {
        drop(f, TTY_DROP_QUERY);
        return;
    }
    emit(f, o);
}

static void finish_csi(struct tty_filter *f, struct out *o)
{
    if (f->bad) {
        drop(f, TTY_DROP_MALFORMED);
        return;
    }
    const unsigned char *params = f->seq + f->intro_len;
    size_t n = f->seq_len - f->intro_len - 1;
    unsigned char final = f->seq[f->seq_len - 1];
    bool private = n > 0 && params[0] >= '<' && params[0] <= '?';
    if (final == 't' && !private && !f->intermediate) {
        size_t used = 0;
        long ps = leading_number(params, n, &used);
        if (ps != 22 && ps != 23) {
            drop(f, TTY_DROP_WINDOW);
            return;
        }
    }
    emit(f, o);
}

/* ---- units ---------------------------------------------------------------------- */

static void unit_ascii(struct tty_filter *f, unsigned char b, struct out *o);

/* ESC seen inside a string: ST when '\' follows; otherwise the string ends there. */
static void restart_escape(struct tty_filter *f, unsigned char b, struct out *o)
{
    static const unsigned char esc = ESC;
    begin(f, S_ESC, &esc, 1);
    unit_ascii(f, b, o);
}

static void unit_ascii(struct tty_filter *f, unsigned char b, struct out *o)
{
    static const unsigned char esc = ESC;
    bool c0 = b < 0x20 && b != ESC;
    switch (f->state) {
    case S_GROUND:
        if (b == ESC)
            begin(f, S_ESC, &b, 1);
        else
            put(o, b);
        return;
    case S_ESC:
    case S_ESC_INT:
    case S_CSI:
        if (b == ESC) {
            abandon(f);
            begin(f, S_ESC, &esc, 1);
        } else if (b == CAN || b == SUB) {
            abandon(f);
        } else if (b == DEL) {
            /* ignored by terminals inside sequences */
        } else if (c0) {
            put(o, b); /* executed at once by the terminal, the sequence goes on */
        } else if (f->state == S_ESC) {
            if (b == '[' || b == ']') {
                append(f, &b, 1);
                f->intro_len = f->seq_len;
                f->state = b == '[' ? S_CSI : S_OSC;
            } else if (b == 'P' || b == 'X' || b == '^' || b == '_') {
                drop(f, TTY_DROP_STRING);
                f->state = S_STR;
            } else {
                append(f, &b, 1);
                if (b >= 0x20 && b <= 0x2f)
                    f->state = S_ESC_INT;
                else
                    emit(f, o);
            }
        } else if (f->state == S_ESC_INT) {
            append(f, &b, 1);
            if (b >= 0x30)
                emit(f, o);
        } else { /* S_CSI */
            append(f, &b, 1);
            if (b >= 0x40)
                finish_csi(f, o);
            else if (b >= 0x30 && f->intermediate)
                f->bad = true; /* a parameter after an intermediate */
            else if (b < 0x30)
                f->intermediate = true;
        }
        return;
    case S_OSC:
        if (b == BEL) {
            append(f, &b, 1);
            f->term_len = 1;
            finish_osc(f, o);
        } else if (b == ESC) {
            f->state = S_OSC_ESC;
        } else if (b == CAN || b == SUB) {
            abandon(f);
        } else if (b == DEL) {
            /* ignored */
        } else {
            if (c0)
                f->bad = true;
            append(f, &b, 1);
        }
        return;
    case S_OSC_ESC:
        if (b == '\\') {
            static const unsigned char st[2] = {ESC, '\\'};
            f->state = S_OSC;
            append(f, st, 2);
            f->term_len = 2;
            finish_osc(f, o);
        } else {
            abandon(f);
            restart_escape(f, b, o);
        }
        return;
    case S_STR:
        if (b == ESC)
            f->state = S_STR_ESC;
        else if (b == BEL || b == CAN || b == SUB)
            to_ground(f);
        return;
    case S_STR_ESC:
        if (b == '\\')
            to_ground(f);
        else
            restart_escape(f, b, o);
        return;
    }
}

/* A byte of a UTF-8 character (or a byte no decoder would take as a control). */
static void unit_text(struct tty_filter *f, unsigned char b, struct out *o)
{
    switch (f->state) {
    case S_GROUND:
        put(o, b);
        return;
    case S_OSC:
        append(f, &b, 1); /* titles are UTF-8 */
        return;
    case S_STR:
        return;
    case S_STR_ESC:
        to_ground(f);
        put(o, b);
        return;
    default: /* ESC, ESC_INT, CSI, OSC_ESC: a character ends the sequence */
        abandon(f);
        put(o, b);
        return;
    }
}

static void unit_c1(struct tty_filter *f, unsigned char code, const unsigned char *raw, size_t n,
                    struct out *o)
{
    if (code == C1_ST) {
        if (f->state == S_OSC) {
            append(f, raw, n);
            f->term_len = n;
            finish_osc(f, o);
        } else if (f->state == S_STR || f->state == S_STR_ESC) {
            to_ground(f);
        } else if (f->state == S_GROUND) {
            f->dropped[TTY_DROP_C1]++;
        } else {
            abandon(f);
        }
        return;
    }
    if (f->state == S_STR)
        return; /* inside a dropped string */
    if (f->state == S_OSC && code != C1_CSI && code != C1_OSC && code != C1_DCS && code != C1_SOS &&
        code != C1_PM && code != C1_APC) {
        f->bad = true;
        return;
    }
    abandon(f);
    switch (code) {
    case C1_CSI:
        begin(f, S_CSI, raw, n);
        return;
    case C1_OSC:
        begin(f, S_OSC, raw, n);
        return;
    case C1_DCS:
    case C1_SOS:
    case C1_PM:
    case C1_APC:
        f->dropped[TTY_DROP_STRING]++;
        f->state = S_STR;
        return;
    default:
        f->dropped[TTY_DROP_C1]++;
        return;
    }
}

/* ---- the UTF-8 layer -------------------------------------------------------------- */

static void feed(struct tty_filter *f, unsigned char b, struct out *o)
{
    if (f->c2_pending) {
        f->c2_pending = false;
        if (b >= 0x80 && b <= 0x9f) { /* U+0080..U+009F: a C1 control, UTF-8 encoded */
            const unsigned char raw[2] = {0xc2, b};
            unit_c1(f, b, raw, 2, o);
            return;
        }
        unit_text(f, 0xc2, o);
        if (b >= 0xa0 && b <= 0xbf) {
            unit_text(f, b, o);
            return;
        }
        /* not a continuation: b starts afresh */
    }
    if (f->utf8_need) {
        if (b >= f->lo && b <= f->hi) {
            f->utf8_need--;
            f->lo = 0x80;
            f->hi = 0xbf;
            unit_text(f, b, o);
            return;
        }
        f->utf8_need = 0; /* broken character: b starts afresh */
    }
    if (b < 0x80) {
        unit_ascii(f, b, o);
        return;
    }
    if (b <= 0x9f) { /* a raw C1 byte that continues no character */
        unit_c1(f, b, &b, 1, o);
        return;
    }
    if (b == 0xc2) {
        f->c2_pending = true;
        return;
    }
    f->lo = 0x80;
    f->hi = 0xbf;
    if (b >= 0xc3 && b <= 0xdf) {
        f->utf8_need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
        f->utf8_need = 2;
        if (b == 0xe0)
            f->lo = 0xa0; /* no overlong forms */
        else if (b == 0xed)
            f->hi = 0x9f; /* no surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        f->utf8_need = 3;
        if (b == 0xf0)
            f->lo = 0x90;
        else if (b == 0xf4)
            f->hi = 0x8f;
    }
    unit_text(f, b, o);
}

size_t tty_filter_run(struct tty_filter *f, const char *in, size_t n, char *out)
{
    if (f->flags & TTY_FILTER_PASSTHROUGH) {
        memcpy(out, in, n);
        return n;
    }
    struct out o = {out, 0};
    for (size_t i = 0; i < n; i++)
        feed(f, (unsigned char)in[i], &o);
    return o.len;
}
