/*
 * The terminal relay (see tty.h): a pty pair for the agent with the host
 * terminal in raw mode, or pipes where the host has terminals, and a
 * non-blocking copy loop over up to three channels; the agent's output
 * passes the escape filter on its way to a terminal.
 */
#include "runtime/controller/tty.h"

#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum { CH_IN = 0, CH_OUT = 1, CH_ERR = 2 };

/* ---- restoring the terminal from signal handlers and exit() ------------------------ */

/*
 * The one piece of process-wide state: a signal handler and an atexit hook
 * cannot reach the controller's context, and the terminal is process-wide too.
 * Written only while the handlers are not armed.
 */
static const int fatal_signals[] = {SIGHUP, SIGTERM, SIGQUIT, SIGSEGV,
                                    SIGBUS, SIGFPE,  SIGILL,  SIGABRT};
#define N_FATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))

static struct {
    volatile sig_atomic_t armed;
    int fd;
    struct termios saved;
    bool installed[N_FATAL];
    struct sigaction old[N_FATAL];
    bool atexit_registered;
} tty_emergency = {.fd = -1};

static void emergency_restore(void)
{
    if (tty_emergency.armed) {
        tty_emergency.armed = 0;
        tcsetattr(tty_emergency.fd, TCSANOW, &tty_emergency.saved);
    }
}

/* Restores the terminal, then lets the signal do what it did before (async-signal-safe). */
static void emergency_signal(int sig)
{
    int saved_errno = errno;
    emergency_restore();
    for (size_t i = 0; i < N_FATAL; i++)
        if (fatal_signals[i] == sig && tty_emergency.installed[i]) {
            sigaction(sig, &tty_emergency.old[i], NULL);
            tty_emergency.installed[i] = false;
        }
    raise(sig); /* pending until this handler returns, then the old action runs */
    errno = saved_errno;
}

static void emergency_arm(int fd, const struct termios *saved)
{
    tty_emergency.fd = fd;
    tty_emergency.saved = *saved;
    if (!tty_emergency.atexit_registered && atexit(emergency_restore) == 0)
        tty_emergency.atexit_registered = true;
    for (size_t i = 0; i < N_FATAL; i++) {
        struct sigaction cur;
        tty_emergency.installed[i] = false;
        /* Only where the default would kill us; a caller's own handler or SIG_IGN stays. */
        if (sigaction(fatal_signals[i], NULL, &cur) < 0 || cur.sa_handler != SIG_DFL ||
            (cur.sa_flags & SA_SIGINFO))
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = emergency_signal;
        sigfillset(&sa.sa_mask);
        if (sigaction(fatal_signals[i], &sa, &tty_emergency.old[i]) == 0)
            tty_emergency.installed[i] = true;
    }
    tty_emergency.armed = 1;
}

static void emergency_disarm(void)
{
    tty_emergency.armed = 0;
    for (size_t i = 0; i < N_FATAL; i++)
        if (tty_emergency.installed[i]) {
            sigaction(fatal_signals[i], &tty_emergency.old[i], NULL);
            tty_emergency.installed[i] = false;
        }
    tty_emergency.fd = -1;
}

/* ---- helpers -------------------------------------------------------------------------- */

static int set_attr(int fd, const struct termios *tio)
{
    int rc;
    do
        rc = tcsetattr(fd, TCSADRAIN, tio);
    while (rc < 0 && errno == EINTR);
    return rc;
}

/*
 * A second open file description of the same terminal, non-blocking. Setting
 * O_NONBLOCK on the caller's descriptor would change it for the shell that
 * shares it, and leave it changed if we die.
 */
static int reopen_nonblocking(int fd, int mode)
{
    char path[40];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, mode | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The slave of a fresh pty master, without a path lookup where the kernel allows it. */
static int open_slave(int master)
{
#ifdef TIOCGPTPEER
    int fd = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0)
        return fd;
#endif
    char name[64];
    if (ptsname_r(master, name, sizeof(name)) != 0)
        return -1;
    return open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
}

/* Whether bottle runs in the foreground of terminal fd (or fd is not its controlling one). */
static bool in_foreground(int fd)
{
    pid_t fg = tcgetpgrp(fd);
    return fg < 0 || fg == getpgrp();
}

static size_t buf_room(const struct tty_relay_buf *b)
{
    return sizeof(b->data) - b->end;
}

static bool buf_pending(const struct tty_relay_buf *b)
{
    return b->end > b->start;
}

static void buf_compact(struct tty_relay_buf *b)
{
    if (b->start == b->end)
        b->start = b->end = 0;
    else if (b->start > 0 && buf_room(b) < sizeof(b->data) / 4) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
}

/* How much src may be read now: the filter may release what it holds with it. */
static size_t read_room(const struct tty_relay_chan *c)
{
    size_t room = buf_room(&c->buf);
    size_t held = c->to_host ? tty_filter_held(&c->filter) : 0;
    return room > held ? room - held : 0;
}

/* Reads what c->src has into c->buf, filtered on the way to the host. Returns bytes read,
 * 0 at end of file (EIO too: a hung-up terminal or a master without slaves), -EAGAIN when
 * nothing is there or there is no room, -errno otherwise. */
static ssize_t fill(struct tty_relay_chan *c)
{
    struct tty_relay_buf *b = &c->buf;
    buf_compact(b);
    size_t room = read_room(c);
    if (room == 0)
        return -EAGAIN;
    char raw[TTY_RELAY_BUF];
    char *dst = c->to_host ? raw : b->data + b->end;
    ssize_t n;
    do
        n = read(c->src, dst, room);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        if (c->to_host)
            b->end += tty_filter_run(&c->filter, raw, (size_t)n, b->data + b->end);
        else
            b->end += (size_t)n;
        return n;
    }
    if (n == 0 || errno == EIO)
        return 0;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/* Writes what b holds to fd. Returns 0 (all or part written, or would block) or -errno. */
static int flush(struct tty_relay_buf *b, int fd)
{
    while (buf_pending(b)) {
        ssize_t n = write(fd, b->data + b->start, b->end - b->start);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        b->start += (size_t)n;
    }
    b->start = b->end = 0;
    return 0;
}

static void drop(struct tty_relay_buf *b)
{
    b->start = b->end = 0;
}

/* ---- the relay ------------------------------------------------------------------------ */

static void chan_reset(struct tty_relay_chan *c)
{
    c->src = c->dst = -1;
    c->to_host = c->src_eof = c->dst_gone = false;
    c->buf.start = c->buf.end = 0;
}

static void relay_reset(struct tty_relay *t)
{
    unsigned long dropped = t->dropped;
    t->active = false;
    t->mode = TTY_RELAY_OFF;
    t->master = t->term_fd = -1;
    t->raw = t->sigpipe_saved = false;
    for (int i = 0; i < 3; i++)
        t->agent_fd[i] = t->flush_fd[i] = -1;
    for (int i = 0; i < TTY_RELAY_CHANS; i++)
        chan_reset(&t->chan[i]);
    t->dropped = dropped;
}

void tty_relay_init(struct tty_relay *t)
{
    t->dropped = 0;
    relay_reset(t);
}

static bool chan_used(const struct tty_relay_chan *c)
{
    return c->src >= 0;
}

/* Closes what the relay holds, without touching the terminal's settings. */
static void release_all(struct tty_relay *t)
{
    tty_relay_release_agent(t);
    for (int i = 0; i < TTY_RELAY_CHANS; i++) {
        struct tty_relay_chan *c = &t->chan[i];
        /* In pty mode the master is both channels' end: closed once, below. */
        if (c->src != t->master)
            close_fd(&c->src);
        if (c->dst != t->master)
            close_fd(&c->dst);
        c->src = c->dst = -1;
    }
    close_fd(&t->master);
    if (t->sigpipe_saved) {
        sigaction(SIGPIPE, &t->old_sigpipe, NULL);
        t->sigpipe_saved = false;
    }
}

static int open_failed(struct tty_relay *t, struct bottle_err *err, const char *what)
{
    int e = errno ? errno : EIO;
    int rc = err_set(err, e, "terminal: cannot %s: %s", what, strerror(e));
    release_all(t);
    relay_reset(t);
    return rc;
}

static void chan_setup(struct tty_relay_chan *c, int src, int dst, bool to_host, unsigned flags)
{
    c->src = src;
    c->dst = dst;
    c->to_host = to_host;
    if (to_host)
        tty_filter_init(&c->filter, flags);
}

static int open_pty(struct tty_relay *t, const int host[3], unsigned flags, struct bottle_err *err)
{
    if (tcgetattr(host[0], &t->saved) < 0)
        return open_failed(t, err, "read the terminal's settings");
    struct winsize ws;
    bool have_ws = ioctl(host[1], TIOCGWINSZ, &ws) == 0 || ioctl(host[0], TIOCGWINSZ, &ws) == 0;
    int slave = -1, in = -1, out = -1;
    t->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (t->master < 0)
        return open_failed(t, err, "open a pty");
    if (grantpt(t->master) < 0 || unlockpt(t->master) < 0)
        return open_failed(t, err, "unlock the pty");
    if ((slave = open_slave(t->master)) < 0)
        return open_failed(t, err, "open the pty slave");
    t->agent_fd[0] = t->agent_fd[1] = slave;
    if (isatty(host[2]))
        t->agent_fd[2] = slave;
    if (fcntl(t->master, F_SETFL, O_NONBLOCK) < 0)
        return open_failed(t, err, "make the pty master non-blocking");
    /* The agent starts with the user's settings (erase, kill, UTF-8) and window size. */
    if (set_attr(slave, &t->saved) < 0)
        return open_failed(t, err, "set up the pty slave");
    if (have_ws && ioctl(t->master, TIOCSWINSZ, &ws) < 0)
        return open_failed(t, err, "set the pty window size");
    if ((in = reopen_nonblocking(host[0], O_RDONLY)) < 0)
        return open_failed(t, err, "reopen the terminal for reading");
    chan_setup(&t->chan[CH_IN], in, t->master, false, flags);
    if ((out = reopen_nonblocking(host[1], O_WRONLY)) < 0)
        return open_failed(t, err, "reopen the terminal for writing");
    chan_setup(&t->chan[CH_OUT], t->master, out, true, flags);

    struct termios raw = t->saved;
    cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    t->term_fd = host[0];
    emergency_arm(host[0], &t->saved);
    if (set_attr(host[0], &raw) < 0) {
        int e = errno;
        emergency_disarm();
        set_attr(host[0], &t->saved);
        errno = e;
        return open_failed(t, err, "enter raw mode");
    }
    t->raw = true;
    return TTY_RELAY_PTY;
}

/* A pipe with both ends close-on-exec; ours non-blocking. */
static int make_pipe(int fds[2], int ours)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    if (fcntl(fds[ours], F_SETFL, O_NONBLOCK) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

static int open_pipes(struct tty_relay *t, const int host[3], unsigned flags,
                      struct bottle_err *err)
{
    int p[2];
    if (isatty(host[0])) {
        if (!in_foreground(host[0])) {
            /* Reading the terminal from the background would stop bottle (SIGTTIN). */
            t->agent_fd[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (t->agent_fd[0] < 0)
                return open_failed(t, err, "open /dev/null");
        } else {
            if (make_pipe(p, 1) < 0)
                return open_failed(t, err, "make a pipe for the agent's input");
            t->agent_fd[0] = p[0];
            chan_setup(&t->chan[CH_IN], -1, p[1], false, flags);
            if ((t->chan[CH_IN].src = reopen_nonblocking(host[0], O_RDONLY)) < 0)
                return open_failed(t, err, "reopen the terminal for reading");
        }
    }
    for (int i = 1; i <= 2; i++) {
        if (!isatty(host[i]))
            continue;
        if (make_pipe(p, 0) < 0)
            return open_failed(t, err, "make a pipe for the agent's output");
        t->agent_fd[i] = p[1];
        chan_setup(&t->chan[i], p[0], -1, true, flags);
        if ((t->chan[i].dst = reopen_nonblocking(host[i], O_WRONLY)) < 0)
            return open_failed(t, err, "reopen the terminal for writing");
    }
    if (chan_used(&t->chan[CH_IN])) {
        /* The agent may close its input before we write: EPIPE, not death. */
        struct sigaction ign;
        memset(&ign, 0, sizeof(ign));
        ign.sa_handler = SIG_IGN;
        if (sigaction(SIGPIPE, &ign, &t->old_sigpipe) == 0)
            t->sigpipe_saved = true;
    }
    return TTY_RELAY_PIPES;
}

int tty_relay_open(struct tty_relay *t, const int host[3], unsigned filter_flags,
                   struct bottle_err *err)
{
    t->dropped = 0;
    relay_reset(t);
    bool any = false;
    for (int i = 0; i < 3; i++)
        any = any || isatty(host[i]);
    if (!any)
        return TTY_RELAY_OFF;
    int rc;
    /* In a background job, changing the terminal would stop us with SIGTTOU: pipes then. */
    if (isatty(host[0]) && isatty(host[1]) && in_foreground(host[0]))
        rc = open_pty(t, host, filter_flags, err);
    else
        rc = open_pipes(t, host, filter_flags, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < 3; i++)
        if (isatty(host[i]) && in_foreground(host[i]))
            t->flush_fd[i] = host[i];
    t->mode = (enum tty_relay_mode)rc;
    t->active = true;
    return rc;
}

void tty_relay_release_agent(struct tty_relay *t)
{
    for (int i = 0; i < 3; i++) {
        bool shared = false;
        for (int j = 0; j < i; j++)
            shared = shared || t->agent_fd[j] == t->agent_fd[i];
        if (!shared && t->agent_fd[i] >= 0)
            close(t->agent_fd[i]);
    }
    for (int i = 0; i < 3; i++)
        t->agent_fd[i] = -1;
}

size_t tty_relay_fds(const struct tty_relay *t, struct pollfd *fds, size_t max)
{
    if (!t->active || max < TTY_RELAY_FDS)
        return 0;
    for (size_t i = 0; i < TTY_RELAY_FDS; i++) {
        fds[i].fd = -1;
        fds[i].events = fds[i].revents = 0;
    }
    for (int i = 0; i < TTY_RELAY_CHANS; i++) {
        const struct tty_relay_chan *c = &t->chan[i];
        if (!chan_used(c))
            continue;
        /* Read a side only while the other end has room for it: backpressure, not loss.
         * The agent's output is read even when the terminal is gone (and dropped), so the
         * agent never blocks on it; the user's typing stops when the agent is gone. */
        if (!c->src_eof && (c->to_host || !c->dst_gone) && read_room(c) > 0) {
            fds[2 * i].fd = c->src;
            fds[2 * i].events = POLLIN;
        }
        if (!c->dst_gone && buf_pending(&c->buf)) {
            fds[2 * i + 1].fd = c->dst;
            fds[2 * i + 1].events = POLLOUT;
        }
    }
    return TTY_RELAY_FDS;
}

static int relay_error(struct bottle_err *err, int e, const char *what)
{
    return err_set(err, e, "terminal: %s: %s", what, strerror(e));
}

/* Writes what c holds. A host terminal that fails gets nothing more; an agent that closed
 * its side (EIO from the master, EPIPE from a pipe) neither. */
static int chan_flush(struct tty_relay_chan *c, struct bottle_err *err)
{
    if (c->dst_gone) {
        drop(&c->buf);
        return 0;
    }
    int rc = flush(&c->buf, c->dst);
    if (rc == 0)
        return 0;
    if (c->to_host || rc == -EIO || rc == -EPIPE) {
        c->dst_gone = true;
        drop(&c->buf);
        return 0;
    }
    return relay_error(err, -rc, "writing to the agent");
}

static bool chan_done(const struct tty_relay_chan *c)
{
    return c->src_eof && (c->dst_gone || !buf_pending(&c->buf));
}

/* 1 when there is nothing more to relay: every output channel ended and was forwarded
 * (with no output channel: the input ended or the agent closed it). */
static int relay_done(const struct tty_relay *t)
{
    bool outputs = false, done = true;
    for (int i = 0; i < TTY_RELAY_CHANS; i++) {
        const struct tty_relay_chan *c = &t->chan[i];
        if (!chan_used(c) || !c->to_host)
            continue;
        outputs = true;
        done = done && chan_done(c);
    }
    if (outputs)
        return done ? 1 : 0;
    const struct tty_relay_chan *in = &t->chan[CH_IN];
    return !chan_used(in) || chan_done(in) || in->dst_gone ? 1 : 0;
}

int tty_relay_on_readable(struct tty_relay *t, const struct pollfd *fds, size_t n,
                          struct bottle_err *err)
{
    if (!t->active)
        return 1;
    if (n < TTY_RELAY_FDS)
        return err_set(err, EINVAL, "terminal: %zu poll entries, want %d", n, TTY_RELAY_FDS);
    const short gone = POLLHUP | POLLERR | POLLNVAL;
    for (int i = 0; i < TTY_RELAY_CHANS; i++) {
        struct tty_relay_chan *c = &t->chan[i];
        const struct pollfd *p = &fds[2 * i];
        if (!chan_used(c) || p->fd < 0 || !(p->revents & (POLLIN | gone)))
            continue;
        ssize_t r = fill(c);
        if (r == 0) {
            c->src_eof = true;
            /* In pty mode the master's end of file means the agent's side is closed. */
            if (c->src == t->master && t->master >= 0)
                t->chan[CH_IN].dst_gone = true;
        } else if (r < 0 && r != -EAGAIN) {
            return relay_error(err, (int)-r,
                               c->to_host ? "reading from the agent" : "reading the terminal");
        }
    }
    /* Write as soon as there is something: one poll round less per keystroke. */
    for (int i = 0; i < TTY_RELAY_CHANS; i++) {
        struct tty_relay_chan *c = &t->chan[i];
        if (!chan_used(c))
            continue;
        if (buf_pending(&c->buf) || c->dst_gone) {
            int rc = chan_flush(c, err);
            if (rc < 0)
                return rc;
        }
    }
    /* The user ended the input (^D): the agent reads end of file from its pipe. */
    struct tty_relay_chan *in = &t->chan[CH_IN];
    if (chan_used(in) && in->src_eof && in->dst >= 0 && in->dst != t->master &&
        !buf_pending(&in->buf)) {
        close_fd(&in->dst);
        in->dst_gone = true;
    }
    return relay_done(t);
}

int tty_relay_winch(struct tty_relay *t, struct bottle_err *err)
{
    if (!t->active || t->mode != TTY_RELAY_PTY)
        return 0;
    struct winsize ws;
    int out = t->chan[CH_OUT].dst, in = t->chan[CH_IN].src;
    if (ioctl(out, TIOCGWINSZ, &ws) < 0 && ioctl(in, TIOCGWINSZ, &ws) < 0)
        return relay_error(err, errno, "reading the window size");
    if (ioctl(t->master, TIOCSWINSZ, &ws) < 0) /* the kernel sends SIGWINCH to the agent */
        return relay_error(err, errno, "setting the agent's window size");
    return 0;
}

unsigned long tty_relay_dropped(const struct tty_relay *t)
{
    unsigned long n = t->dropped;
    if (t->active)
        for (int i = 0; i < TTY_RELAY_CHANS; i++)
            if (chan_used(&t->chan[i]) && t->chan[i].to_host)
                n += tty_filter_dropped(&t->chan[i].filter);
    return n;
}

/* The agent's last words: until its side closes and they are out, or the deadline. */
static void drain(struct tty_relay *t)
{
    long deadline = clock_mono_ms() + TTY_RELAY_DRAIN_MS;
    for (;;) {
        struct pollfd fds[TTY_RELAY_FDS];
        tty_relay_fds(t, fds, TTY_RELAY_FDS);
        fds[2 * CH_IN].fd = fds[2 * CH_IN + 1].fd = -1; /* the user's typing goes nowhere now */
        bool waiting = false;
        for (size_t i = 0; i < TTY_RELAY_FDS; i++)
            waiting = waiting || fds[i].fd >= 0;
        long left = deadline - clock_mono_ms();
        if (left <= 0 || !waiting)
            return;
        if (poll(fds, TTY_RELAY_FDS, (int)left) <= 0)
            return;
        struct bottle_err ignored = {0};
        if (tty_relay_on_readable(t, fds, TTY_RELAY_FDS, &ignored) != 0)
            return;
    }
}

void tty_relay_close(struct tty_relay *t)
{
    if (!t->active)
        return;
    tty_relay_release_agent(t);
    drain(t);
    t->dropped = tty_relay_dropped(t);
    /* Keys typed ahead, and answers the terminal sent late, must not reach the shell. */
    for (int i = 0; i < 3; i++)
        if (t->flush_fd[i] >= 0)
            tcflush(t->flush_fd[i], TCIFLUSH);
    if (t->raw) {
        set_attr(t->term_fd, &t->saved);
        t->raw = false;
    }
    if (t->mode == TTY_RELAY_PTY)
        emergency_disarm();
    release_all(t);
    relay_reset(t);
}
