/*
 * The terminal relay (see tty.h): a pty pair for the agent, the host
 * terminal in raw mode, and a non-blocking copy loop between the two.
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

enum { FD_HOST_IN = 0, FD_MASTER = 1, FD_HOST_OUT = 2 };

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

static size_t buf_room(const struct tty_relay_buf *b)
{
    return sizeof(b->data) - b->end;
}

static bool buf_pending(const struct tty_relay_buf *b)
{
    return b->end > b->start;
}

/* Reads what fd has into b. Returns bytes read, 0 at end of file (EIO too: a hung-up
 * terminal or a master without slaves), -EAGAIN when nothing is there, -errno otherwise. */
static ssize_t fill(struct tty_relay_buf *b, int fd)
{
    if (b->start == b->end)
        b->start = b->end = 0;
    else if (b->start > 0 && buf_room(b) < sizeof(b->data) / 4) {
        memmove(b->data, b->data + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    if (buf_room(b) == 0)
        return -EAGAIN;
    ssize_t n;
    do
        n = read(fd, b->data + b->end, buf_room(b));
    while (n < 0 && errno == EINTR);
    if (n > 0) {
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

static void relay_reset(struct tty_relay *t)
{
    memset(t, 0, sizeof(*t));
    t->slave = t->master = t->host_in = t->host_out = t->term_fd = -1;
}

int tty_relay_open(struct tty_relay *t, int host_in, int host_out, struct bottle_err *err)
{
    relay_reset(t);
    if (!isatty(host_in) || !isatty(host_out))
        return 0;
    /* In a background job, changing the terminal would stop us with SIGTTOU: leave it. A
     * terminal that is not our controlling one has no foreground group (ENOTTY) and is ours. */
    pid_t fg = tcgetpgrp(host_in);
    if (fg >= 0 && fg != getpgrp())
        return 0;
    if (tcgetattr(host_in, &t->saved) < 0)
        return 0;
    struct winsize ws;
    bool have_ws = ioctl(host_out, TIOCGWINSZ, &ws) == 0 || ioctl(host_in, TIOCGWINSZ, &ws) == 0;

    int rc = 0;
    const char *what = NULL;
    t->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (t->master < 0)
        what = "posix_openpt";
    else if (grantpt(t->master) < 0 || unlockpt(t->master) < 0)
        what = "unlockpt";
    else if ((t->slave = open_slave(t->master)) < 0)
        what = "open the pty slave";
    else if (fcntl(t->master, F_SETFL, O_NONBLOCK) < 0)
        what = "make the pty master non-blocking";
    /* The agent starts with the user's settings (erase, kill, UTF-8) and window size. */
    else if (set_attr(t->slave, &t->saved) < 0)
        what = "set up the pty slave";
    else if (have_ws && ioctl(t->master, TIOCSWINSZ, &ws) < 0)
        what = "set the pty window size";
    else if ((t->host_in = reopen_nonblocking(host_in, O_RDONLY)) < 0)
        what = "reopen the terminal for reading";
    else if ((t->host_out = reopen_nonblocking(host_out, O_WRONLY)) < 0)
        what = "reopen the terminal for writing";
    if (what) {
        rc = err_set(err, errno ? errno : EIO, "terminal: cannot %s: %s", what, strerror(errno));
        close_fd(&t->slave);
        close_fd(&t->master);
        close_fd(&t->host_in);
        close_fd(&t->host_out);
        return rc;
    }

    struct termios raw = t->saved;
    cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    t->term_fd = host_in;
    emergency_arm(host_in, &t->saved);
    if (set_attr(host_in, &raw) < 0) {
        rc = err_set(err, errno, "terminal: cannot enter raw mode: %s", strerror(errno));
        emergency_disarm();
        set_attr(host_in, &t->saved);
        close_fd(&t->slave);
        close_fd(&t->master);
        close_fd(&t->host_in);
        close_fd(&t->host_out);
        relay_reset(t);
        return rc;
    }
    t->raw = true;
    t->active = true;
    return 1;
}

void tty_relay_release_slave(struct tty_relay *t)
{
    close_fd(&t->slave);
}

size_t tty_relay_fds(const struct tty_relay *t, struct pollfd *fds, size_t max)
{
    if (!t->active || max < TTY_RELAY_FDS)
        return 0;
    for (size_t i = 0; i < TTY_RELAY_FDS; i++) {
        fds[i].fd = -1;
        fds[i].events = fds[i].revents = 0;
    }
    /* Read a side only while the other end has room for it: backpressure, not loss. */
    if (!t->host_in_eof && !t->agent_eof && buf_room(&t->to_agent) > 0) {
        fds[FD_HOST_IN].fd = t->host_in;
        fds[FD_HOST_IN].events = POLLIN;
    }
    short ev = 0;
    if (!t->agent_eof && buf_room(&t->to_host) > 0)
        ev |= POLLIN;
    if (!t->agent_eof && buf_pending(&t->to_agent))
        ev |= POLLOUT;
    if (ev) {
        fds[FD_MASTER].fd = t->master;
        fds[FD_MASTER].events = ev;
    }
    if (!t->host_out_gone && buf_pending(&t->to_host)) {
        fds[FD_HOST_OUT].fd = t->host_out;
        fds[FD_HOST_OUT].events = POLLOUT;
    }
    return TTY_RELAY_FDS;
}

static int relay_error(struct bottle_err *err, int e, const char *what)
{
    return err_set(err, e, "terminal: %s: %s", what, strerror(e));
}

/* Agent output to the host; a host that cannot take it any more gets nothing. */
static void to_host(struct tty_relay *t)
{
    if (t->host_out_gone) {
        drop(&t->to_host);
        return;
    }
    if (flush(&t->to_host, t->host_out) < 0) {
        t->host_out_gone = true;
        drop(&t->to_host);
    }
}

static int to_agent(struct tty_relay *t, struct bottle_err *err)
{
    int rc = flush(&t->to_agent, t->master);
    if (rc == -EIO) { /* the agent closed its side while input was on the way */
        t->agent_eof = true;
        drop(&t->to_agent);
        return 0;
    }
    return rc < 0 ? relay_error(err, -rc, "writing to the agent") : 0;
}

int tty_relay_on_readable(struct tty_relay *t, const struct pollfd *fds, size_t n,
                          struct bottle_err *err)
{
    if (!t->active)
        return 1;
    if (n < TTY_RELAY_FDS)
        return err_set(err, EINVAL, "terminal: %zu poll entries, want %d", n, TTY_RELAY_FDS);
    const short gone = POLLHUP | POLLERR | POLLNVAL;

    if (fds[FD_HOST_IN].fd >= 0 && (fds[FD_HOST_IN].revents & (POLLIN | gone))) {
        ssize_t r = fill(&t->to_agent, t->host_in);
        if (r == 0)
            t->host_in_eof = true;
        else if (r < 0 && r != -EAGAIN)
            return relay_error(err, (int)-r, "reading the terminal");
    }
    if (fds[FD_MASTER].fd >= 0 && (fds[FD_MASTER].revents & (POLLIN | gone)) &&
        buf_room(&t->to_host) > 0) {
        ssize_t r = fill(&t->to_host, t->master);
        if (r == 0)
            t->agent_eof = true;
        else if (r < 0 && r != -EAGAIN)
            return relay_error(err, (int)-r, "reading from the agent");
    }
    /* Write as soon as there is something: one poll round less per keystroke. */
    if (buf_pending(&t->to_agent) && !t->agent_eof) {
        int rc = to_agent(t, err);
        if (rc < 0)
            return rc;
    }
    if (t->agent_eof)
        drop(&t->to_agent);
    if (buf_pending(&t->to_host))
        to_host(t);
    return t->agent_eof && !buf_pending(&t->to_host) ? 1 : 0;
}

int tty_relay_winch(struct tty_relay *t, struct bottle_err *err)
{
    if (!t->active)
        return 0;
    struct winsize ws;
    if (ioctl(t->host_out, TIOCGWINSZ, &ws) < 0 && ioctl(t->host_in, TIOCGWINSZ, &ws) < 0)
        return relay_error(err, errno, "reading the window size");
    if (ioctl(t->master, TIOCSWINSZ, &ws) < 0) /* the kernel sends SIGWINCH to the agent */
        return relay_error(err, errno, "setting the agent's window size");
    return 0;
}

/* The agent's last words: until its side closes and they are out, or the deadline. */
static void drain(struct tty_relay *t)
{
    long deadline = clock_mono_ms() + TTY_RELAY_DRAIN_MS;
    for (;;) {
        struct pollfd fds[TTY_RELAY_FDS];
        tty_relay_fds(t, fds, TTY_RELAY_FDS);
        fds[FD_HOST_IN].fd = -1; /* the user's typing no longer goes anywhere */
        long left = deadline - clock_mono_ms();
        if (left <= 0 || (fds[FD_MASTER].fd < 0 && fds[FD_HOST_OUT].fd < 0))
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
    tty_relay_release_slave(t);
    drain(t);
    if (t->raw) {
        set_attr(t->term_fd, &t->saved);
        t->raw = false;
    }
    emergency_disarm();
    close_fd(&t->master);
    close_fd(&t->host_in);
    close_fd(&t->host_out);
    relay_reset(t);
}
