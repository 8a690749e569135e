#include "common/clock.h"
#include "common/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void child_exec(const char *const argv[], const struct spawn_opts *o, int in_fd, int out_fd,
                       int err_fd)
{
    if (in_fd >= 0)
        dup2(in_fd, STDIN_FILENO);
    if (out_fd >= 0)
        dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0)
        dup2(err_fd, STDERR_FILENO);
    signal(SIGPIPE, SIG_DFL);
    if (o->file_size_max) {
        struct rlimit lim = {o->file_size_max, o->file_size_max};
        if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
            _exit(127);
    }
    if (o->envp)
        execvpe(argv[0], (char *const *)argv, o->envp);
    else
        execvp(argv[0], (char *const *)argv);
    dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Last line(s) of captured stderr, trimmed, for error messages. */
static const char *stderr_tail(const struct buf *b)
{
    if (!b->data || b->len == 0)
        return "";
    size_t n = b->len;
    while (n > 0 && (b->data[n - 1] == '\n' || b->data[n - 1] == ' '))
        b->data[--n] = '\0';
    return n > 400 ? b->data + n - 400 : b->data;
}

int spawn_run(const char *const argv[], const struct spawn_opts *opts, struct spawn_result *result,
              struct bottle_err *err)
{
    static const struct spawn_opts defaults = {0};
    const struct spawn_opts *o = opts ? opts : &defaults;
    struct spawn_result local = {0};
    struct spawn_result *r = result ? result : &local;
    memset(r, 0, sizeof(*r));

    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    int rc = 0;
    bool in_from_data = o->stdin_data && o->stdin_fd <= 0;
    bool capture_out = !o->inherit_stdout && o->stdout_fd <= 0;
    if ((in_from_data && pipe2(in_pipe, O_CLOEXEC) < 0) ||
        (capture_out && pipe2(out_pipe, O_CLOEXEC) < 0) ||
        (!o->inherit_stderr && pipe2(err_pipe, O_CLOEXEC) < 0)) {
        rc = err_set(err, errno, "%s: cannot create pipe: %s", argv[0], strerror(errno));
        goto close_all;
    }
    int devnull = -1;
    if (!o->stdin_data && o->stdin_fd <= 0)
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int child_in = o->stdin_fd > 0 ? o->stdin_fd : in_from_data ? in_pipe[0] : devnull;
    int child_out = o->stdout_fd > 0 ? o->stdout_fd : out_pipe[1];

    pid_t pid = fork();
    if (pid < 0) {
        rc = err_set(err, errno, "%s: cannot fork: %s", argv[0], strerror(errno));
        if (devnull >= 0)
            close(devnull);
        goto close_all;
    }
    if (pid == 0)
        child_exec(argv, o, child_in, child_out, err_pipe[1]);
    if (devnull >= 0)
        close(devnull);

#define CLOSE_FD(fd)                                                                               \
    do {                                                                                           \
        if ((fd) >= 0) {                                                                           \
            close(fd);                                                                             \
            (fd) = -1;                                                                             \
        }                                                                                          \
    } while (0)
    CLOSE_FD(in_pipe[0]);
    CLOSE_FD(out_pipe[1]);
    CLOSE_FD(err_pipe[1]);
    if (in_pipe[1] >= 0)
        fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);

    size_t in_off = 0;
    long deadline = o->timeout_ms > 0 ? clock_mono_ms() + o->timeout_ms : 0;
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);
    while (in_pipe[1] >= 0 || out_pipe[0] >= 0 || err_pipe[0] >= 0) {
        struct pollfd pfd[3];
        int n = 0;
        int idx_in = -1, idx_out = -1, idx_err = -1;
        if (in_pipe[1] >= 0) {
            if (in_off >= o->stdin_len) {
                CLOSE_FD(in_pipe[1]);
                continue;
            }
            idx_in = n;
            pfd[n++] = (struct pollfd){in_pipe[1], POLLOUT, 0};
        }
        if (out_pipe[0] >= 0) {
            idx_out = n;
            pfd[n++] = (struct pollfd){out_pipe[0], POLLIN, 0};
        }
        if (err_pipe[0] >= 0) {
            idx_err = n;
            pfd[n++] = (struct pollfd){err_pipe[0], POLLIN, 0};
        }
        int wait_ms = -1;
        if (deadline) {
            long left = deadline - clock_mono_ms();
            if (left <= 0) {
                r->timed_out = true;
                break;
            }
            wait_ms = (int)left;
        }
        int pr = poll(pfd, (nfds_t)n, wait_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pr == 0)
            continue;
        if (idx_in >= 0 && pfd[idx_in].revents) {
            ssize_t w = write(in_pipe[1], o->stdin_data + in_off, o->stdin_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                CLOSE_FD(in_pipe[1]);
        }
        int idxs[2] = {idx_out, idx_err};
        int *fds[2] = {&out_pipe[0], &err_pipe[0]};
        struct buf *bufs[2] = {&r->out, &r->errb};
        for (int i = 0; i < 2; i++) {
            if (idxs[i] < 0 || !pfd[idxs[i]].revents)
                continue;
            char chunk[4096];
            ssize_t got = read(*fds[i], chunk, sizeof(chunk));
            if (got > 0)
                buf_append(bufs[i], chunk, (size_t)got);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                CLOSE_FD(*fds[i]);
        }
    }
    signal(SIGPIPE, old_pipe);
    if (r->timed_out)
        kill(pid, SIGKILL);

    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status))
        r->exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        r->exit_code = 128 + WTERMSIG(status);

    if (!r->out.data)
        buf_reserve(&r->out, 0);
    if (!r->errb.data)
        buf_reserve(&r->errb, 0);
    if (r->timed_out)
        rc = err_set(err, ETIMEDOUT, "%s: timed out after %d ms%s%s", argv[0], o->timeout_ms,
                     r->errb.len ? ": " : "", stderr_tail(&r->errb));
    else if (r->exit_code != 0)
        rc = err_set(err, ECHILD, "%s: exited with status %d%s%s", argv[0], r->exit_code,
                     r->errb.len ? ": " : "", stderr_tail(&r->errb));

close_all:
    CLOSE_FD(in_pipe[0]);
    CLOSE_FD(in_pipe[1]);
    CLOSE_FD(out_pipe[0]);
    CLOSE_FD(out_pipe[1]);
    CLOSE_FD(err_pipe[0]);
    CLOSE_FD(err_pipe[1]);
#undef CLOSE_FD
    if (r == &local)
        spawn_result_free(&local);
    return rc;
}

void spawn_result_free(struct spawn_result *r)
{
    if (!r)
        return;
    buf_free(&r->out);
    buf_free(&r->errb);
}
