/*
 * tty — the terminal relay between the user's terminal and the agent.
 *
 * When `bottle start` runs in a terminal, the agent gets a pseudo-terminal of
 * its own instead of the user's: the controller keeps the pty master, puts the
 * real terminal in raw mode (every key, ^C included, goes to the agent, whose
 * own line discipline makes the signals) and copies bytes both ways. The agent
 * therefore never holds a descriptor of the host terminal, so it cannot push
 * input into it (TIOCSTI), change its settings, or leave it raw when it dies.
 *
 * The relay owns the pty pair, non-blocking copies of the host terminal's
 * descriptors and the saved terminal settings. It restores the settings on
 * every exit path: tty_relay_close, exit(), and the default-fatal signals
 * (SIGHUP, SIGTERM, SIGQUIT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) while
 * raw mode is on; only SIGKILL escapes (`reset` fixes that). It never reads
 * or writes the host terminal outside tty_relay_on_readable and
 * tty_relay_close, never blocks, and never touches a terminal it was not
 * given. One relay per process.
 *
 * The pty comes from the controller's devpts. The bottle mounts a devpts
 * instance of its own, so inside it ttyname() finds no name for the agent's
 * terminal; isatty, /dev/tty, and the termios and window-size ioctls work.
 *
 * No terminal, no relay: when the host's input or output is not a terminal
 * (pipes, files, CI) or the process is in a background job of that terminal,
 * tty_relay_open returns 0, changes nothing, and the agent inherits the
 * descriptors as they are.
 *
 * Integration in the controller (runtime/controller.c), in this order:
 *
 *   1. Before step_agent: rc = tty_relay_open(&c->tty, 0, 1, err). When rc is
 *      1, set spec.stdio[0] = spec.stdio[1] = c->tty.slave (and stdio[2] too
 *      when isatty(2); otherwise stderr stays as it is) and
 *      spec.new_session = true: the agent's init makes the slave its
 *      controlling terminal. When rc is 0, leave spec.stdio at -1.
 *   2. After native_launch succeeded: tty_relay_release_slave(&c->tty), so
 *      the master sees end of file once the agent's side is closed.
 *   3. In wait_agent: add SIGWINCH to the blocked set (sigprocmask before
 *      step_agent) and replace the 100 ms sigtimedwait sleep by a poll on
 *      tty_relay_fds (plus a signalfd or a short timeout for signals); call
 *      tty_relay_on_readable with the same entries after each poll, and
 *      tty_relay_winch on SIGWINCH. A return of 1 means the agent closed its
 *      terminal: stop polling the relay and keep waiting for the exit status.
 *   4. First thing in controller_teardown: tty_relay_close(&c->tty). It
 *      forwards what the agent wrote last (for at most
 *      TTY_RELAY_DRAIN_MS), restores the terminal and cannot fail; calling it
 *      twice, or without a successful open, is harmless.
 */
#ifndef BOTTLE_CONTROLLER_TTY_H
#define BOTTLE_CONTROLLER_TTY_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

#include "common/err.h"

#define TTY_RELAY_BUF      16384 /* bytes buffered each way */
#define TTY_RELAY_FDS      3     /* entries tty_relay_fds fills */
#define TTY_RELAY_DRAIN_MS 250   /* tty_relay_close: longest wait for the agent's last output */

/* Bytes read from one side and not yet written to the other. */
struct tty_relay_buf {
    char data[TTY_RELAY_BUF];
    size_t start, end;
};

struct tty_relay {
    bool active;           /* a pty is in use; everything below is meaningful */
    int slave;             /* the agent's side; -1 once released */
    int master;            /* the controller's side (non-blocking) */
    int host_in, host_out; /* non-blocking descriptors of the host terminal (ours) */
    int term_fd;           /* the caller's input descriptor: its settings were saved */
    bool raw;              /* term_fd is in raw mode and must be restored */
    struct termios saved;  /* term_fd's settings before raw mode */
    bool host_in_eof;      /* the host terminal's input ended (hangup) */
    bool host_out_gone;    /* the host terminal cannot be written: output is dropped */
    bool agent_eof;        /* every descriptor of the slave is closed */
    struct tty_relay_buf to_agent, to_host;
};

/*
 * Sets up the relay for the terminal on host_in/host_out (usually 0 and 1).
 * Returns 1 with t->slave for the agent when both are terminals, 0 when the
 * relay is not needed (nothing changed, t->slave is -1), negative on failure
 * (err says why; the terminal is left as it was).
 */
int tty_relay_open(struct tty_relay *t, int host_in, int host_out, struct bottle_err *err);

/* Closes the controller's copy of the slave once the agent holds its own. */
void tty_relay_release_slave(struct tty_relay *t);

/*
 * Fills exactly TTY_RELAY_FDS poll entries (host input, master, host output)
 * with the events the relay waits for now; entries it does not need have fd
 * -1, which poll ignores. Returns the number filled: TTY_RELAY_FDS, or 0 when
 * the relay is not active. max must be at least TTY_RELAY_FDS.
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

/* Copies the host terminal's window size to the agent's (on SIGWINCH). */
int tty_relay_winch(struct tty_relay *t, struct bottle_err *err);

/*
 * Forwards the agent's remaining output (for at most TTY_RELAY_DRAIN_MS),
 * restores the host terminal and closes everything the relay holds.
 */
void tty_relay_close(struct tty_relay *t);

#endif
