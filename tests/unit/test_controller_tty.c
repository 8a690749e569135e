/*
 * tty: the terminal relay, with an openpty() pair playing the user's terminal
 * (the test holds its master: the keyboard and the screen). Raw mode on and
 * back off (also when the process dies of a signal or calls exit), bytes both
 * ways, window size, end of file on either side, no relay without a
 * terminal; pipe mode (stdout not a terminal, a background job), the escape
 * filter on the way to the screen, the input queue flushed at close, and an
 * agent holding only what the relay gave it cannot push keystrokes into the
 * user's terminal (TIOCSTI on every descriptor it has and on /dev/tty).
 */
#include "testutil.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>

#include "runtime/controller/tty.h"

struct fixture {
    int term;  /* the user's side of the host terminal: what they type, what they see */
    int host;  /* bottle's stdin/stdout: the terminal the relay is given */
    int agent; /* the agent's copy of the pty slave */
    struct termios before;
    struct tty_relay t;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct winsize ws = {.ws_row = 33, .ws_col = 101};
    if (openpty(&f->term, &f->host, NULL, NULL, &ws) < 0)
        fail_msg("openpty: %s", strerror(errno));
    fcntl(f->term, F_SETFL, O_NONBLOCK);
    /* Settings a fresh pty does not have, so the agent's copy of them is visible. */
    tcgetattr(f->host, &f->before);
    f->before.c_cc[VERASE] = 0x08;
    f->before.c_iflag |= IUTF8;
    tcsetattr(f->host, TCSANOW, &f->before);
    tcgetattr(f->host, &f->before);
    f->agent = -1;
    tty_relay_init(&f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tty_relay_close(&f->t);
    if (f->agent >= 0)
        close(f->agent);
    close(f->host);
    if (f->term >= 0)
        close(f->term);
    free(f);
    return 0;
}

/* Opens the relay on the fixture's terminal and takes the agent's side like the backend. */
static void open_relay_flags(struct fixture *f, unsigned flags)
{
    struct bottle_err err = {0};
    const int host[3] = {f->host, f->host, f->host};
    assert_int_equal(tty_relay_open(&f->t, host, flags, &err), TTY_RELAY_PTY);
    assert_true(f->t.agent_fd[0] >= 0);
    assert_int_equal(f->t.agent_fd[1], f->t.agent_fd[0]);
    assert_int_equal(f->t.agent_fd[2], f->t.agent_fd[0]);
    f->agent = fcntl(f->t.agent_fd[0], F_DUPFD_CLOEXEC, 3);
    assert_true(f->agent >= 0);
    tty_relay_release_agent(&f->t);
    assert_int_equal(f->t.agent_fd[0], -1);
}

static void open_relay(struct fixture *f)
{
    open_relay_flags(f, 0);
}

/* Runs the relay until nothing happens for idle_ms; 1 when it reported the agent gone. */
static int pump(struct tty_relay *t, int idle_ms)
{
    for (int rounds = 0; rounds < 100000; rounds++) {
        struct pollfd fds[TTY_RELAY_FDS];
        size_t n = tty_relay_fds(t, fds, TTY_RELAY_FDS);
        assert_int_equal(n, TTY_RELAY_FDS);
        int pr = poll(fds, n, idle_ms);
        assert_true(pr >= 0);
        if (pr == 0)
            return 0;
        struct bottle_err err = {0};
        int rc = tty_relay_on_readable(t, fds, n, &err);
        if (rc < 0)
            fail_msg("relay: %s", err.msg);
        if (rc == 1)
            return 1;
    }
    fail_msg("the relay keeps waking up without making progress");
    return -1;
}

/* Everything readable on fd (non-blocking or after the relay ran), up to cap bytes. */
static size_t slurp(int fd, char *out, size_t cap)
{
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (len < cap && poll(&p, 1, 50) > 0 && (p.revents & POLLIN)) {
        ssize_t n = read(fd, out + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    return len;
}

static void make_raw(int fd)
{
    struct termios tio;
    tcgetattr(fd, &tio);
    cfmakeraw(&tio);
    tcsetattr(fd, TCSANOW, &tio);
}

static void write_all(int fd, const char *s, size_t n)
{
    assert_int_equal(write(fd, s, n), (ssize_t)n);
}

/* ---- no terminal: nothing changes ---------------------------------------------------- */

static void test_pipes_pass_through(void **state)
{
    struct fixture *f = *state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct bottle_err err = {0};
    const int cases[][3] = {{in[0], out[1], out[1]}, {in[0], out[1], devnull}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(tty_relay_open(&f->t, cases[i], 0, &err), TTY_RELAY_OFF);
        assert_false(f->t.active);
        for (int k = 0; k < 3; k++)
            assert_int_equal(f->t.agent_fd[k], -1);
        struct pollfd fds[TTY_RELAY_FDS];
        assert_int_equal(tty_relay_fds(&f->t, fds, TTY_RELAY_FDS), 0);
        tty_relay_close(&f->t);
    }
    assert_string_equal(err.msg, "");
    /* The pipes are still the caller's, blocking as they were. */
    assert_int_equal(fcntl(in[0], F_GETFL) & O_NONBLOCK, 0);
    for (int i = 0; i < 2; i++) {
        close(in[i]);
        close(out[i]);
    }
    close(devnull);
}

/* ---- raw mode ------------------------------------------------------------------------ */

static void test_raw_mode_set_and_restored(void **state)
{
    struct fixture *f = *state;
    assert_true(f->before.c_lflag & (ICANON | ECHO | ISIG));
    open_relay(f);
    struct termios raw;
    tcgetattr(f->host, &raw);
    assert_int_equal(raw.c_lflag & (ICANON | ECHO | ISIG | IEXTEN), 0);
    assert_int_equal(raw.c_iflag & (ICRNL | IXON), 0);
    assert_int_equal(raw.c_oflag & OPOST, 0);
    /* The agent's terminal starts with the user's settings, not raw ones. */
    struct termios agent;
    tcgetattr(f->agent, &agent);
    assert_int_equal(agent.c_lflag, f->before.c_lflag);
    assert_int_equal(agent.c_iflag, f->before.c_iflag);
    assert_int_equal(agent.c_cc[VERASE], 0x08);
    assert_true(agent.c_iflag & IUTF8);
    /* The host descriptor the caller gave keeps its own flags. */
    assert_int_equal(fcntl(f->host, F_GETFL) & O_NONBLOCK, 0);

    tty_relay_close(&f->t);
    struct termios after;
    tcgetattr(f->host, &after);
    assert_int_equal(after.c_lflag, f->before.c_lflag);
    assert_int_equal(after.c_iflag, f->before.c_iflag);
    assert_int_equal(after.c_oflag, f->before.c_oflag);
    assert_memory_equal(after.c_cc, f->before.c_cc, sizeof(after.c_cc));
    tty_relay_close(&f->t); /* twice is harmless */
}

/* How a process holding the relay ends; the terminal must come back each way. */
enum ending { END_SIGTERM, END_SIGSEGV, END_ABORT, END_EXIT, END_SIGHUP };

static void test_restored_when_the_process_dies(void **state)
{
    struct fixture *f = *state;
    static const struct {
        enum ending how;
        int sig; /* 0: exits with status 3 */
    } cases[] = {{END_SIGTERM, SIGTERM},
                 {END_SIGSEGV, SIGSEGV},
                 {END_ABORT, SIGABRT},
                 {END_EXIT, 0},
                 {END_SIGHUP, SIGHUP}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            /* Like the controller: default dispositions (cmocka catches some), no core files. */
            static const int sigs[] = {SIGTERM, SIGSEGV, SIGABRT, SIGHUP, SIGBUS, SIGFPE, SIGILL};
            for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
                signal(sigs[k], SIG_DFL);
            struct rlimit no_core = {0, 0};
            setrlimit(RLIMIT_CORE, &no_core);
            struct tty_relay t;
            struct bottle_err err = {0};
            const int host[3] = {f->host, f->host, f->host};
            if (tty_relay_open(&t, host, 0, &err) != TTY_RELAY_PTY)
                _exit(90);
            struct termios now;
            tcgetattr(f->host, &now);
            if (now.c_lflag & ICANON)
                _exit(91);
            switch (cases[i].how) {
            case END_SIGTERM:
                raise(SIGTERM);
                break;
            case END_SIGSEGV:
                raise(SIGSEGV);
                break;
            case END_ABORT:
                abort();
            case END_EXIT:
                exit(3);
            case END_SIGHUP:
                kill(getpid(), SIGHUP);
                break;
            }
            _exit(92);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (cases[i].sig) {
            if (!WIFSIGNALED(status) || WTERMSIG(status) != cases[i].sig)
                fail_msg("case %zu: status %#x, want signal %d", i, status, cases[i].sig);
        } else {
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 3);
        }
        struct termios after;
        tcgetattr(f->host, &after);
        if (after.c_lflag != f->before.c_lflag || after.c_iflag != f->before.c_iflag ||
            after.c_oflag != f->before.c_oflag)
            fail_msg("case %zu: the terminal was left raw", i);
    }
}

/* ---- bytes both ways --------------------------------------------------------------- */

static void test_keys_reach_the_agent_and_echo_comes_back(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    /* The agent's terminal is cooked (the user's settings): Enter is \r, read as a line. */
    write_all(f->term, "ls -l\r", 6);
    assert_int_equal(pump(&f->t, 100), 0);
    char got[256];
    size_t n = slurp(f->agent, got, sizeof(got));
    assert_int_equal(n, 6);
    assert_memory_equal(got, "ls -l\n", 6);
    /* Its echo reaches the user's screen through the relay, exactly once. */
    assert_int_equal(pump(&f->t, 100), 0);
    n = slurp(f->term, got, sizeof(got));
    assert_int_equal(n, 7);
    assert_memory_equal(got, "ls -l\r\n", 7);

    /* An agent in raw mode gets every byte, ^C and ^D included, unchanged. */
    make_raw(f->agent);
    write_all(f->term,
              "a\x03"
              "b\x04\x1b[A\xc3\xa9",
              9);
    assert_int_equal(pump(&f->t, 100), 0);
    n = slurp(f->agent, got, sizeof(got));
    assert_int_equal(n, 9);
    assert_memory_equal(got,
                        "a\x03"
                        "b\x04\x1b[A\xc3\xa9",
                        9);
    assert_int_equal(slurp(f->term, got, sizeof(got)), 0); /* no echo in raw mode */
}

static void test_agent_output_reaches_the_screen(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    write_all(f->agent, "hello\n", 6); /* the agent's terminal adds the \r */
    assert_int_equal(pump(&f->t, 100), 0);
    char got[64];
    size_t n = slurp(f->term, got, sizeof(got));
    assert_int_equal(n, 7);
    assert_memory_equal(got, "hello\r\n", 7);
}

static void test_large_output_in_order(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    make_raw(f->agent);
    fcntl(f->agent, F_SETFL, O_NONBLOCK);
    enum { TOTAL = 256 * 1024 };
    char *want = malloc(TOTAL), *got = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        want[i] = (char)('a' + (i * 7 + i / 251) % 26);
    size_t sent = 0, received = 0;
    for (int rounds = 0; received < TOTAL && rounds < 100000; rounds++) {
        if (sent < TOTAL) {
            ssize_t w = write(f->agent, want + sent, TOTAL - sent > 4096 ? 4096 : TOTAL - sent);
            if (w > 0)
                sent += (size_t)w;
        }
        pump(&f->t, 5);
        ssize_t r = read(f->term, got + received, TOTAL - received);
        if (r > 0)
            received += (size_t)r;
    }
    assert_int_equal(received, TOTAL);
    assert_memory_equal(got, want, TOTAL);
    free(want);
    free(got);
}

/* ---- window size --------------------------------------------------------------------- */

static void test_window_size_forwarded(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    struct winsize ws;
    assert_int_equal(ioctl(f->agent, TIOCGWINSZ, &ws), 0);
    assert_int_equal(ws.ws_row, 33);
    assert_int_equal(ws.ws_col, 101);

    struct winsize bigger = {.ws_row = 48, .ws_col = 160};
    assert_int_equal(ioctl(f->term, TIOCSWINSZ, &bigger), 0);
    assert_int_equal(ioctl(f->agent, TIOCGWINSZ, &ws), 0);
    assert_int_equal(ws.ws_col, 101); /* not before the relay is told */
    struct bottle_err err = {0};
    assert_int_equal(tty_relay_winch(&f->t, &err), 0);
    assert_int_equal(ioctl(f->agent, TIOCGWINSZ, &ws), 0);
    assert_int_equal(ws.ws_row, 48);
    assert_int_equal(ws.ws_col, 160);
}

/* ---- end of file ------------------------------------------------------------------ */

static void test_agent_eof_after_last_output(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    make_raw(f->agent);
    write_all(f->agent, "bye", 3);
    close(f->agent);
    f->agent = -1;
    assert_int_equal(pump(&f->t, 500), 1);
    char got[16];
    assert_int_equal(slurp(f->term, got, sizeof(got)), 3);
    assert_memory_equal(got, "bye", 3);
    /* Done means done: nothing left to wait for on the agent's output. */
    struct pollfd fds[TTY_RELAY_FDS];
    tty_relay_fds(&f->t, fds, TTY_RELAY_FDS);
    assert_int_equal(fds[2].fd, -1);
    assert_int_equal(fds[3].fd, -1);
}

static void test_close_forwards_the_last_output(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    write_all(f->agent, "last words\n", 11);
    close(f->agent);
    f->agent = -1;
    tty_relay_close(&f->t); /* no pump: close drains */
    char got[32];
    assert_int_equal(slurp(f->term, got, sizeof(got)), 12);
    assert_memory_equal(got, "last words\r\n", 12);
    struct termios after;
    tcgetattr(f->host, &after);
    assert_int_equal(after.c_lflag, f->before.c_lflag);
}

static void test_host_hangup(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    close(f->term); /* the user's terminal goes away */
    f->term = -1;
    write_all(f->agent, "nobody reads this\n", 18);
    /* The relay notices, stops reading the terminal, drops output, and never spins. */
    assert_int_equal(pump(&f->t, 100), 0);
    assert_true(f->t.chan[0].src_eof);
    struct pollfd fds[TTY_RELAY_FDS];
    tty_relay_fds(&f->t, fds, TTY_RELAY_FDS);
    assert_int_equal(fds[0].fd, -1);
    /* The agent still ends normally. */
    close(f->agent);
    f->agent = -1;
    assert_int_equal(pump(&f->t, 500), 1);
}

/* ---- the escape filter on the way to the screen ------------------------------------- */

static void test_osc52_kept_from_the_screen(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    make_raw(f->agent);
    /* A clipboard write split over three writes, with text around it. */
    write_all(f->agent, "before\x1b]5", 9);
    assert_int_equal(pump(&f->t, 50), 0);
    write_all(f->agent, "2;c;cm0gLXJmIH4K", 16);
    assert_int_equal(pump(&f->t, 50), 0);
    write_all(f->agent,
              "\x07"
              "after\x1b]0;title\x07",
              16);
    assert_int_equal(pump(&f->t, 50), 0);
    char got[128];
    size_t n = slurp(f->term, got, sizeof(got));
    assert_int_equal(n, 21);
    assert_memory_equal(got, "beforeafter\x1b]0;title\x07", 21);
    assert_int_equal(tty_relay_dropped(&f->t), 1);
    /* A query the terminal would answer by typing, too. */
    write_all(f->agent, "\x1bP$qm\x1b\\x", 8);
    assert_int_equal(pump(&f->t, 50), 0);
    n = slurp(f->term, got, sizeof(got));
    assert_int_equal(n, 1);
    assert_memory_equal(got, "x", 1);
    tty_relay_close(&f->t);
    assert_int_equal(tty_relay_dropped(&f->t), 2); /* kept for the operator's notice */
}

static void test_manifest_switches_let_sequences_through(void **state)
{
    struct fixture *f = *state;
    static const char seq[] = "\x1b]52;c;aGk=\x07\x1b]52;c;?\x07\x1bP$qm\x1b\\";
    static const struct {
        unsigned flags;
        const char *want;
    } cases[] = {
        {TTY_FILTER_PASSTHROUGH, seq},
        {TTY_FILTER_ALLOW_OSC52, "\x1b]52;c;aGk=\x07"}, /* writes only, never queries */
        {0, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        open_relay_flags(f, cases[i].flags);
        make_raw(f->agent);
        write_all(f->agent, seq, sizeof(seq) - 1);
        assert_int_equal(pump(&f->t, 50), 0);
        char got[128];
        size_t n = slurp(f->term, got, sizeof(got));
        if (n != strlen(cases[i].want) || memcmp(got, cases[i].want, n) != 0)
            fail_msg("case %zu: %zu bytes reached the screen", i, n);
        tty_relay_close(&f->t);
        close(f->agent);
        f->agent = -1;
    }
}

/* ---- typed-ahead input ---------------------------------------------------------------- */

static int pending_input(int fd)
{
    int n = -1;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

static void test_close_flushes_typed_ahead_input(void **state)
{
    struct fixture *f = *state;
    open_relay(f);
    close(f->agent); /* the agent is gone... */
    f->agent = -1;
    assert_int_equal(pump(&f->t, 200), 1);
    /* ...and what is typed now (or what a terminal answers late) waits for the shell. */
    write_all(f->term, "rm -rf ~\r", 9);
    usleep(20000);
    assert_int_equal(pending_input(f->host), 9);
    tty_relay_close(&f->t);
    assert_int_equal(pending_input(f->host), 0);
}

/* ---- pipe mode ---------------------------------------------------------------------- */

static void test_pipe_mode_when_stdout_is_not_a_terminal(void **state)
{
    struct fixture *f = *state;
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    struct bottle_err err = {0};
    const int host[3] = {f->host, out[1], f->host};
    assert_int_equal(tty_relay_open(&f->t, host, 0, &err), TTY_RELAY_PIPES);
    /* stdout is the caller's own pipe; stdin and stderr are pipes of the relay. */
    assert_int_equal(f->t.agent_fd[1], -1);
    for (int i = 0; i < 3; i += 2) {
        struct stat sb;
        assert_int_equal(fstat(f->t.agent_fd[i], &sb), 0);
        assert_true(S_ISFIFO(sb.st_mode));
    }
    int agent_in = fcntl(f->t.agent_fd[0], F_DUPFD_CLOEXEC, 3);
    int agent_err = fcntl(f->t.agent_fd[2], F_DUPFD_CLOEXEC, 3);
    tty_relay_release_agent(&f->t);
    /* The terminal keeps its mode: the line discipline edits and echoes as usual. */
    struct termios now;
    tcgetattr(f->host, &now);
    assert_int_equal(now.c_lflag, f->before.c_lflag);

    write_all(f->term, "yes\r", 4);
    assert_int_equal(pump(&f->t, 100), 0);
    char got[64];
    assert_int_equal(slurp(agent_in, got, sizeof(got)), 4);
    assert_memory_equal(got, "yes\n", 4);
    slurp(f->term, got, sizeof(got)); /* the echo */

    /* stderr reaches the screen, filtered. */
    write_all(agent_err, "warn\x1b]52;c;eA==\x07!\n", 18);
    assert_int_equal(pump(&f->t, 100), 0);
    size_t n = slurp(f->term, got, sizeof(got));
    assert_int_equal(n, 7);
    assert_memory_equal(got, "warn!\r\n", 7);

    /* ^D: the agent reads end of file. */
    write_all(f->term, "\x04", 1);
    pump(&f->t, 100);
    assert_int_equal(read(agent_in, got, sizeof(got)), 0);

    /* The agent closes its side: done once its output is out. */
    close(agent_err);
    close(agent_in);
    assert_int_equal(pump(&f->t, 500), 1);
    tty_relay_close(&f->t);
    close(out[0]);
    close(out[1]);
}

static void test_pipe_mode_agent_closes_its_input(void **state)
{
    struct fixture *f = *state;
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    struct bottle_err err = {0};
    const int host[3] = {f->host, out[1], out[1]};
    assert_int_equal(tty_relay_open(&f->t, host, 0, &err), TTY_RELAY_PIPES);
    close(f->t.agent_fd[0]); /* the agent never reads its input */
    f->t.agent_fd[0] = -1;
    write_all(f->term, "typed\r", 6);
    /* Writing into a pipe nobody reads is EPIPE (SIGPIPE is ignored meanwhile), not death. */
    assert_int_equal(pump(&f->t, 100), 1);
    tty_relay_close(&f->t);
    struct sigaction now;
    sigaction(SIGPIPE, NULL, &now);
    assert_true(now.sa_handler == SIG_DFL); /* given back */
    close(out[0]);
    close(out[1]);
}

/*
 * A background job of the terminal: bottle must not touch it (SIGTTOU, SIGTTIN), the agent
 * reads /dev/null, and its output still reaches the screen through a pipe. Runs in a child
 * that makes the pty its controlling terminal and a grandchild in another process group.
 */
static void test_background_job(void **state)
{
    struct fixture *f = *state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setsid() < 0 || ioctl(f->host, TIOCSCTTY, 0) < 0)
            _exit(80);
        pid_t job = fork();
        if (job == 0) {
            setpgid(0, 0); /* not the terminal's foreground group */
            struct tty_relay t;
            tty_relay_init(&t);
            struct bottle_err err = {0};
            const int host[3] = {f->host, f->host, f->host};
            if (tty_relay_open(&t, host, 0, &err) != TTY_RELAY_PIPES)
                _exit(81);
            struct stat sb;
            if (fstat(t.agent_fd[0], &sb) < 0 || !S_ISCHR(sb.st_mode) ||
                sb.st_rdev != makedev(1, 3))
                _exit(82); /* stdin: /dev/null */
            if (isatty(t.agent_fd[1]) || isatty(t.agent_fd[2]))
                _exit(83);
            if (write(t.agent_fd[1], "bg-out\n", 7) != 7)
                _exit(84);
            tty_relay_release_agent(&t);
            tty_relay_close(&t); /* drains what the agent wrote */
            _exit(0);
        }
        int status = 0;
        waitpid(job, &status, 0);
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 90);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char got[32];
    size_t n = slurp(f->term, got, sizeof(got));
    assert_int_equal(n, 8);
    assert_memory_equal(got, "bg-out\r\n", 8);
    struct termios now;
    tcgetattr(f->host, &now);
    assert_int_equal(now.c_lflag, f->before.c_lflag);
}

/* ---- keystroke injection ---------------------------------------------------------------- */

/*
 * What an agent does with only the descriptors it was given: a session of its own
 * (like the backends), its terminal as the controlling one in pty mode, then TIOCSTI on
 * fds 0, 1, 2 and on /dev/tty. Exits with a bitmask of the injections that succeeded.
 */
static int inject_from(const int fds[3], bool pty)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 3; i++)
            if (dup2(fds[i] >= 0 ? fds[i] : open("/dev/null", O_RDWR), i) < 0)
                _exit(100);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        setsid();
        if (pty)
            ioctl(0, TIOCSCTTY, 0);
        int hits = 0;
        /* A whole line, so a terminal in canonical mode counts it as waiting input. */
        static const char line[] = "X\n";
        for (int i = 0; i < 3; i++)
            if (ioctl(i, TIOCSTI, &line[0]) == 0 && ioctl(i, TIOCSTI, &line[1]) == 0)
                hits |= 1 << i;
        int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
        if (tty >= 0 && ioctl(tty, TIOCSTI, &line[0]) == 0 && ioctl(tty, TIOCSTI, &line[1]) == 0)
            hits |= 8;
        _exit(hits);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

static void test_agent_cannot_inject_into_the_host_terminal(void **state)
{
    struct fixture *f = *state;
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    struct bottle_err err = {0};
    /* Pipe mode: `bottle start > file` in a terminal. */
    const int host_pipes[3] = {f->host, out[1], f->host};
    assert_int_equal(tty_relay_open(&f->t, host_pipes, 0, &err), TTY_RELAY_PIPES);
    const int agent_pipes[3] = {f->t.agent_fd[0], out[1], f->t.agent_fd[2]};
    assert_int_equal(inject_from(agent_pipes, false), 0);
    assert_int_equal(pending_input(f->host), 0);
    tty_relay_close(&f->t);

    /* Pty mode: the agent may type into its own terminal, never into the host's. */
    const int host_pty[3] = {f->host, f->host, f->host};
    assert_int_equal(tty_relay_open(&f->t, host_pty, 0, &err), TTY_RELAY_PTY);
    const int agent_pty[3] = {f->t.agent_fd[0], f->t.agent_fd[1], f->t.agent_fd[2]};
    inject_from(agent_pty, true);
    assert_int_equal(pending_input(f->host), 0);
    tty_relay_close(&f->t);

    /* The control: holding the host's terminal itself, the same agent gets through. */
    const int host_fds[3] = {f->host, out[1], f->host};
    int hits = inject_from(host_fds, true);
    if (hits == 0 && geteuid() != 0)
        skip(); /* this kernel refuses TIOCSTI to the unprivileged (dev.tty.legacy_tiocsti=0) */
    assert_true(hits & 1);
    assert_true(pending_input(f->host) > 0);
    close(out[0]);
    close(out[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipes_pass_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_mode_set_and_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restored_when_the_process_dies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_reach_the_agent_and_echo_comes_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_output_reaches_the_screen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_output_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_size_forwarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_eof_after_last_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_forwards_the_last_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_hangup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_osc52_kept_from_the_screen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_switches_let_sequences_through, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes_typed_ahead_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipe_mode_when_stdout_is_not_a_terminal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipe_mode_agent_closes_its_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_cannot_inject_into_the_host_terminal, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
