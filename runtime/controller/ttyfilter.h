/*
 * ttyfilter — the escape-sequence filter on the way from the agent to the
 * host terminal.
 *
 * A terminal does more than draw: some sequences write the host's clipboard
 * (OSC 52), and some are requests the terminal answers by typing into its
 * own input (DECRQSS `DCS $ q`, XTGETTCAP, title and window reports
 * `CSI ... t`, font and colour queries with `?`). An answer whose content
 * the agent chose arrives as keystrokes, and after the agent has exited
 * those keystrokes go to the operator's shell. The filter removes these
 * classes from the agent's output and passes everything else unchanged.
 *
 * It is a streaming parser in the spirit of the DEC/ECMA-48 state machine,
 * fed whatever each read returned: a sequence split across reads is held
 * until it is complete, then passed or dropped as a whole, so the terminal
 * never sees the start of a sequence that is later dropped. It recognises
 * the 7-bit introducers (ESC [, ESC ], ESC P, ESC X, ESC ^, ESC _), the raw
 * 8-bit C1 bytes, and C1 code points encoded in UTF-8 (C2 80..9F). A C1
 * byte that is a valid UTF-8 continuation is text.
 *
 * Dropped by default:
 *   - OSC 52 (clipboard writes and queries);
 *   - OSC 4, 5 and 10..19 (palette and dynamic colours) when they ask (`?`);
 *   - every OSC outside a short allowlist: titles (0, 1, 2), colours (4, 5,
 *     10..19, 104, 105, 110..119), 7 (working directory), 8 (hyperlinks),
 *     9 and 777 (notifications), 133 (prompt marks). OSC 50 (font) and
 *     iTerm2's 1337 fall here;
 *   - every DCS (DECRQSS, XTGETTCAP, DECUDK key definitions, tmux
 *     passthrough, sixel), SOS, PM and APC string;
 *   - CSI ... t (window operations and reports), except 22 and 23 (the
 *     title stack);
 *   - C1 controls that introduce nothing, and malformed sequences (an OSC
 *     with a control character in it, an OSC longer than
 *     TTY_FILTER_SEQ_MAX, a CSI longer than TTY_FILTER_CSI_MAX).
 * Plain text, UTF-8, C0 controls, ESC sequences and every other CSI
 * (colours, cursor movement, modes, device status and attribute requests,
 * whose answers are fixed numbers) pass unchanged.
 *
 * Never allocates, never blocks; one struct per output stream.
 */
#ifndef BOTTLE_CONTROLLER_TTYFILTER_H
#define BOTTLE_CONTROLLER_TTYFILTER_H

#include <stdbool.h>
#include <stddef.h>

#define TTY_FILTER_SEQ_MAX 8192 /* longest OSC held (longer ones are dropped) */
#define TTY_FILTER_CSI_MAX 256  /* longest CSI held */

/* Flags for tty_filter_init. */
#define TTY_FILTER_PASSTHROUGH 0x1u /* filter nothing (manifest terminal.passthrough) */
#define TTY_FILTER_ALLOW_OSC52                                                                     \
    0x2u /* clipboard writes pass; queries never (terminal.allow_osc52) */

/* What was dropped, counted per class (tests, the operator's notice). */
enum tty_filter_class {
    TTY_DROP_OSC52,     /* OSC 52 clipboard write or query */
    TTY_DROP_QUERY,     /* a colour query (OSC 4/5/10..19 with '?') */
    TTY_DROP_OSC,       /* any other OSC outside the allowlist (OSC 50 font, 1337, ...) */
    TTY_DROP_STRING,    /* DCS, SOS, PM, APC */
    TTY_DROP_WINDOW,    /* CSI ... t */
    TTY_DROP_C1,        /* a C1 control that introduces nothing */
    TTY_DROP_MALFORMED, /* cut short, too long, or a control character inside */
    TTY_DROP_CLASSES
};

struct tty_filter {
    unsigned flags;
    int state;
    unsigned char seq[TTY_FILTER_SEQ_MAX]; /* the sequence being held */
    size_t seq_len;
    size_t intro_len;     /* bytes of its introducer (1 or 2) */
    size_t term_len;      /* bytes of its terminator, once complete */
    bool bad;             /* it will be dropped as malformed */
    bool intermediate;    /* CSI: an intermediate byte was seen */
    bool c2_pending;      /* UTF-8: a C2 byte waits for the next one (a C1 code point?) */
    unsigned utf8_need;   /* UTF-8: continuation bytes still expected */
    unsigned char lo, hi; /* UTF-8: the range the next continuation byte must be in */
    unsigned long dropped[TTY_DROP_CLASSES];
};

void tty_filter_init(struct tty_filter *f, unsigned flags);

/*
 * Filters n bytes of agent output into out, which must have room for
 * n + tty_filter_held(f) bytes. Returns the number of bytes written. An
 * incomplete sequence at the end stays held for the next call.
 */
size_t tty_filter_run(struct tty_filter *f, const char *in, size_t n, char *out);

/* Bytes held back now (an incomplete sequence, or a UTF-8 lead byte). */
size_t tty_filter_held(const struct tty_filter *f);

/* Total of every class dropped so far. */
unsigned long tty_filter_dropped(const struct tty_filter *f);

#endif
