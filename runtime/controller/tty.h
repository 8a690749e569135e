/*
 * tty — the relay between the host's terminal and the agent.
 *
 * The agent never holds a descriptor of a host terminal: one it held could
 * push keystrokes into the operator's shell (TIOCSTI), change the
 * terminal's settings or leave it raw. The controller therefore relays
 * every standard descriptor that is a terminal, and the backend starts the
 * agent in a session of its own (setsid):
 *
 *   - pty mode, when stdin and stdout are terminals and bottle runs in their
 *     foreground: the agent gets a pseudo-terminal of its own (stderr too
 *     when it is a terminal). The controller keeps the pty master, puts the
 *     real terminal in raw mode (every key, ^C included, goes to the agent,
 *     whose own line discipline makes the signals) and copies bytes both
 *     ways; window size changes follow (tty_relay_winch).
 *   - pipe mode, otherwise (`bottle start | tee log`, `> file`, a background
 *     job): each of stdin, stdout and stderr that is a terminal becomes a
 *     pipe the controller copies to or from the terminal, which stays in
 *     its normal mode. A background bottle's agent reads end of file
 *     (reading the terminal would stop the controller).
 *   - Descriptors that are not terminals (files, pipes, /dev/null) are the
 *     agent's as they are; with none that is a terminal nothing is relayed.
 *
 * What the agent writes towards a terminal goes through the escape filter
 * (ttyfilter.h): clipboard writes and requests the terminal would answer by
 * typing do not reach it, unless the bottle's manifest lets them
 * (`terminal.allow_osc52`, `terminal.passthrough`). When the relay closes,
 * the input queue of each host terminal bottle runs in the foreground of is
 * flushed (tcflush TCIFLUSH): keys typed ahead and late answers to queries
 * never reach the operator's shell.
 *
 * The relay owns the pty pair or pipes, non-blocking copies of the host
 * terminal's descriptors and the saved terminal settings. It restores the
 * settings on every exit path: tty_relay_close, exit(), and the
 * default-fatal signals (SIGHUP, SIGTERM, SIGQUIT, SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT) while raw mode is on; only SIGKILL escapes (`reset`
 * fixes that). SIGPIPE is ignored while it writes to a pipe. It never reads
 * or writes a host terminal outside tty_relay_on_readable and
 * tty_relay_close, never blocks, and never touches a terminal it was not
 * given. One relay per process.
 *
 * The pty comes from the controller's devpts. The bottle mounts a devpts
 * instance of its own, so inside it ttyname() finds no name for the agent's
 * terminal; isatty, /dev/tty, and the termios and window-size ioctls work.
 *
 * Integration in the controller, in this order:
 *
 *   1. Before the agent step: rc = tty_relay_open(&c->tty, host, flags,
 *      err) with host = {0, 1, 2}. Then spec.stdio[i] = c->tty.agent_fd[i]
 *      (-1 keeps the host's own descriptor, which is then no terminal) and
 *      spec.new_session = true, always; in pty mode the agent's init makes
 *      the pty its controlling terminal.
 *   2. After the backend launched: tty_relay_release_agent(&c->tty), so the
 *      relay sees end of file once the agent's side is closed.
 *   3. In the wait loop: SIGWINCH in the blocked set, poll the entries
 *      tty_relay_fds fills, call tty_relay_on_readable with them after each
 *      poll, and tty_relay_winch on SIGWINCH. A return of 1 means the agent
 *      closed its side: stop polling the relay and keep waiting for its exit.
 *   4. First thing in teardown: tty_relay_close(&c->tty). It forwards what
 *      the agent wrote last (for at most TTY_RELAY_DRAIN_MS), flushes the
 *      terminals' input, restores the terminal and cannot fail; calling it
 *      twice, or without a successful open, is harmless.
 */
#ifndef BOTTLE_CONTROLLER_TTY_H
#define BOTTLE_CONTROLLER_TTY_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

#include "common/err.h"
#include "runtime/controller/ttyfilter.h"

#define TTY_RELAY_BUF      32768 /* bytes buffered per channel (more than TTY_FILTER_SEQ_MAX) */
#define TTY_RELAY_CHANS    3     /* stdin, stdout, stderr */
#define TTY_RELAY_FDS      (2 * TTY_RELAY_CHANS) /* entries tty_relay_fds fills */
#define TTY_RELAY_DRAIN_MS 250 /* tty_relay_close: longest wait for the agent's last output */

enum tty_relay_mode {
    TTY_RELAY_OFF = 0,   /* no standard descriptor is a terminal: nothing relayed */
    TTY_RELAY_PTY = 1,   /* the agent has a pty of its own */
    TTY_RELAY_PIPES = 2, /* the agent has pipes where the host has terminals */
};

/* Bytes read from one side and not yet written to the other. */
struct tty_relay_buf {
    char data[TTY_RELAY_BUF];
    size_t start, end;
};

/* One direction: src is read, its bytes (filtered towards the host) written to dst. */
struct tty_relay_chan {
    int src, dst;  /* ours, non-blocking; both -1 when the channel is not used */
    bool to_host;  /* the agent's output towards a host terminal: filtered */
    bool src_eof;  /* src ended (the agent closed its side, or the terminal hung up) */
    bool dst_gone; /* dst cannot be written any more: what comes is dropped */
    struct tty_relay_buf buf;
    struct tty_filter filter; /* to_host only */
};

struct tty_relay {
    bool active; /* everything below is meaningful */
    enum tty_relay_mode mode;
    int agent_fd[3];      /* the agent's 0, 1, 2; -1: the host's own, no terminal */
    int master;           /* pty mode: the controller's side */
    int term_fd;          /* pty mode: the caller's input descriptor, whose settings were saved */
    bool raw;             /* term_fd is in raw mode and must be restored */
    struct termios saved; /* term_fd's settings before raw mode */
    int flush_fd[3];      /* host terminals whose input is flushed at close; -1: none */
    bool sigpipe_saved;   /* SIGPIPE was ignored for the pipes; old_sigpipe comes back */
    struct sigaction old_sigpipe;
    struct tty_relay_chan chan[TTY_RELAY_CHANS]; /* [0] to the agent, [1] stdout, [2] stderr */
    unsigned long dropped; /* sequences filtered by channels already closed (kept by close) */
};

/* A relay that is not active (what tty_relay_close leaves, too). */
void tty_relay_init(struct tty_relay *t);

/*
 * Sets up the relay for the host's standard descriptors host[0..2] (usually
 * 0, 1, 2), filtering the agent's output with filter_flags
 * (TTY_FILTER_*). Returns the mode: TTY_RELAY_PTY or TTY_RELAY_PIPES with
 * t->agent_fd set, TTY_RELAY_OFF when no descriptor is a terminal (nothing
 * changed, every agent_fd is -1), negative on failure (err says why; the
 * terminal is left as it was).
 */
int tty_relay_open(struct tty_relay *t, const int host[3], unsigned filter_flags,
                   struct bottle_err *err);

/* Closes the controller's copies of the agent's descriptors once the agent holds its own. */
void tty_relay_release_agent(struct tty_relay *t);

/*
 * Fills exactly TTY_RELAY_FDS poll entries (for each channel: its source,
 * then its destination) with the events the relay waits for now; entries it
 * does not need have fd -1, which poll ignores. Returns the number filled:
 * TTY_RELAY_FDS, or 0 when the relay is not active. max must be at least
 * TTY_RELAY_FDS.
 */
size_t tty_relay_fds(const struct tty_relay *t, struct pollfd *fds, size_t max);

/*
 * Handles the revents of the entries tty_relay_fds filled (readable and
 * writable alike): copies what can be copied without blocking. Returns 1 when
 * the agent's side has closed and everything it wrote has been forwarded, 0
 * when the relay goes on, negative on an unexpected error (err).
 */
int tty_relay_on_readable(struct tty_relay *t, const struct pollfd *fds, size_t n,
                          struct bottle_err *err);

/* Copies the host terminal's window size to the agent's (pty mode, on SIGWINCH). */
int tty_relay_winch(struct tty_relay *t, struct bottle_err *err);

/* Escape sequences the filter dropped so far, over every channel (also after close). */
unsigned long tty_relay_dropped(const struct tty_relay *t);

/*
 * Forwards the agent's remaining output (for at most TTY_RELAY_DRAIN_MS),
 * flushes the host terminals' input, restores the terminal and closes
 * everything the relay holds.
 */
void tty_relay_close(struct tty_relay *t);

#endif
