/*
 * kernel_bench — what the kernel layer costs, measured side by side:
 *   1. install (open, load, attach, pin) of the policy programs, median of N;
 *   2. per-connect overhead: 20,000 loopback connects from a process outside
 *      any bottle, in an empty bottle cgroup, and in a bottle with the
 *      programs attached (median of runs, µs per connect, ratio);
 *   3. cutoff latency: flag set to the first EPERM seen by a connecting loop,
 *      and flag + socket destroy to ECONNABORTED on an established stream.
 * Root only. Prints numbers; asserts nothing. Leaves nothing behind.
 * Usage: kernel_bench [connects] [runs]   or   kernel_bench --object FILE.bpf.o
 */
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bpf/policy.h"
#include "bpf/sockkill.h"
#include "kernel/cgroup.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int listen_fd;
static uint16_t listen_port;
static int other_fd;
static uint16_t other_port;

static int bind_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 4096) < 0)
        return -1;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Accepts and closes (connect benchmark) or accepts and holds open (abort benchmark). */
static void *accept_loop(void *arg)
{
    int fd = (int)(intptr_t)arg;
    bool hold = fd == other_fd;
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        if (!hold)
            close(c);
    }
}

static int connect_once(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
    /* Close with RST: no TIME_WAIT pile-up across 20,000 connects. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    return rc;
}

/* Shared with children: results come back through an anonymous shared page. */
struct shared {
    double value;
    double t0; /* set by the parent right before it acts; 0 until then */
    int rc;
};
static struct shared *shm;

static int connect_loop_child(void *arg)
{
    int n = *(int *)arg;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        int rc = connect_once(listen_port);
        if (rc) {
            shm->rc = rc;
            return 1;
        }
    }
    shm->value = (now_us() - t0) / n;
    return 0;
}

static int run_child(int cgroup_fd, int (*fn)(void *), void *arg)
{
    struct bottle_err err;
    pid_t pid;
    if (cgroup_fd >= 0) {
        pid = cgroup_spawn_into(cgroup_fd, CGROUP_SPAWN_NO_CLONE3, fn, arg, &err);
    } else {
        pid = fork();
        if (pid == 0)
            _exit(fn(arg));
    }
    if (pid < 0)
        return -1;
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void config_for(struct bpf_policy_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->proxy_ip4.s_addr = htonl(INADDR_LOOPBACK);
    cfg->proxy_port = listen_port;
    cfg->no_events = true;
}

/*
 * warm: another bottle stays attached meanwhile. The first cgroup program of
 * each attach type flips a kernel static key (text patching), which the
 * first bottle on a host pays and later bottles do not.
 */
static int bench_install(int runs, bool warm)
{
    struct bottle_err werr;
    char warm_slug[64];
    struct cgroup_bottle wcg;
    snprintf(warm_slug, sizeof(warm_slug), "bench-warm-%d", (int)getpid());
    if (warm) {
        struct bpf_policy_config wcfg;
        config_for(&wcfg);
        if (cgroup_bottle_create(warm_slug, &wcg, &werr) < 0 ||
            bpf_policy_install(warm_slug, wcg.agent_fd, wcg.agent_id, &wcfg, NULL, &werr) < 0) {
            fprintf(stderr, "kernel_bench: %s\n", werr.msg);
            return 1;
        }
    }
    double open_ms[64], load_ms[64], attach_ms[64], total_ms[64];
    if (runs > 64)
        runs = 64;
    struct bottle_err err;
    for (int i = 0; i < runs; i++) {
        char slug[64];
        snprintf(slug, sizeof(slug), "bench-%d-%d", (int)getpid(), i);
        struct cgroup_bottle cg;
        if (cgroup_bottle_create(slug, &cg, &err) < 0) {
            fprintf(stderr, "kernel_bench: %s\n", err.msg);
            return 1;
        }
        struct bpf_policy_config cfg;
        config_for(&cfg);
        struct bpf_policy_timing t;
        int rc = bpf_policy_install(slug, cg.agent_fd, cg.agent_id, &cfg, &t, &err);
        cgroup_bottle_close(&cg);
        bpf_policy_destroy(slug, &err);
        cgroup_bottle_remove(slug, 2000, &err);
        if (rc < 0) {
            fprintf(stderr, "kernel_bench: %s\n", err.msg);
            return 1;
        }
        open_ms[i] = t.open_ms;
        load_ms[i] = t.load_ms;
        attach_ms[i] = t.attach_ms;
        total_ms[i] = t.total_ms;
    }
    printf("install, %s (median of %d): open %.2f ms, load %.2f ms, attach 7 links %.2f ms, "
           "total %.2f ms (target <= 5 ms)\n",
           warm ? "another bottle attached" : "first bottle on the host", runs,
           median(open_ms, runs), median(load_ms, runs), median(attach_ms, runs),
           median(total_ms, runs));
    if (warm) {
        cgroup_bottle_close(&wcg);
        bpf_policy_destroy(warm_slug, &werr);
        cgroup_bottle_remove(warm_slug, 2000, &werr);
    }
    return 0;
}

static int bench_connects(int connects, int runs)
{
    struct bottle_err err;
    char slug_empty[64], slug_full[64];
    snprintf(slug_empty, sizeof(slug_empty), "bench-empty-%d", (int)getpid());
    snprintf(slug_full, sizeof(slug_full), "bench-full-%d", (int)getpid());
    struct cgroup_bottle empty, full;
    if (cgroup_bottle_create(slug_empty, &empty, &err) < 0 ||
        cgroup_bottle_create(slug_full, &full, &err) < 0) {
        fprintf(stderr, "kernel_bench: %s\n", err.msg);
        return 1;
    }
    struct bpf_policy_config cfg;
    config_for(&cfg);
    int rc = bpf_policy_install(slug_full, full.agent_fd, full.agent_id, &cfg, NULL, &err);
    double host[16], none[16], with[16];
    if (runs > 16)
        runs = 16;
    int fds[3] = {-1, empty.agent_fd, full.agent_fd};
    double *out[3] = {host, none, with};
    for (int r = 0; rc == 0 && r < runs; r++) {
        for (int k = 0; k < 3; k++) {
            if (run_child(fds[k], connect_loop_child, &connects) != 0) {
                fprintf(stderr, "kernel_bench: connect failed: %s\n", strerror(shm->rc));
                rc = -1;
                break;
            }
            out[k][r] = shm->value;
        }
    }
    if (rc == 0) {
        double h = median(host, runs), e = median(none, runs), w = median(with, runs);
        printf("connect (%d loopback connects x %d runs, median us/connect): host %.2f, "
               "empty bottle %.2f, bottle with programs %.2f -> %+.2f us (%+.1f%%, ratio %.3f) "
               "(target <= 1.5 us)\n",
               connects, runs, h, e, w, w - e, (w - e) / e * 100.0, w / e);
    } else if (rc != -1) {
        fprintf(stderr, "kernel_bench: %s\n", err.msg);
    }
    cgroup_bottle_close(&empty);
    cgroup_bottle_close(&full);
    bpf_policy_destroy(slug_full, &err);
    cgroup_bottle_remove(slug_empty, 2000, &err);
    cgroup_bottle_remove(slug_full, 2000, &err);
    return rc == 0 ? 0 : 1;
}

/* Connects in a loop until refused; records when the first refusal happened. */
static int until_refused_child(void *arg)
{
    (void)arg;
    for (long i = 0; i < 100000000L; i++) {
        int rc = connect_once(listen_port);
        if (rc == EPERM && shm->t0 > 0) {
            shm->value = now_us() - shm->t0;
            return 0;
        }
        if (rc != 0 && rc != EPERM)
            return 2;
        shm->rc = 1; /* running */
    }
    return 1;
}

/* Holds an established stream and blocks in recv until it is aborted. */
static int aborted_child(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(other_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 2;
    shm->rc = 1;
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    shm->value = now_us();
    return n < 0 && errno == ECONNABORTED ? 0 : 3;
}

static int bench_cutoff(void)
{
    struct bottle_err err;
    char slug[64];
    snprintf(slug, sizeof(slug), "bench-cut-%d", (int)getpid());
    struct cgroup_bottle cg;
    if (cgroup_bottle_create(slug, &cg, &err) < 0) {
        fprintf(stderr, "kernel_bench: %s\n", err.msg);
        return 1;
    }
    struct bpf_policy_config cfg;
    config_for(&cfg);
    int rc = bpf_policy_install(slug, cg.agent_fd, cg.agent_id, &cfg, NULL, &err);
    double connect_ms = -1, abort_ms = -1;
    if (rc == 0) {
        shm->rc = 0;
        pid_t pid =
            cgroup_spawn_into(cg.agent_fd, CGROUP_SPAWN_NO_CLONE3, until_refused_child, NULL, &err);
        while (pid > 0 && !shm->rc)
            usleep(1000);
        usleep(20000);
        shm->t0 = now_us();
        rc = bpf_policy_set_cutoff(slug, true, &err);
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            connect_ms = shm->value / 1000.0;
        shm->t0 = 0;
        bpf_policy_set_cutoff(slug, false, &err);

        /* The stream goes to the other listener so it is established before the flag. */
        cfg.proxy_port = other_port;
        struct bpf_policy_pins *p = NULL;
        if (bpf_policy_open_pinned(slug, &p, &err) == 0) {
            bpf_policy_entry_set(p, cg.agent_id, &cfg, &err);
            bpf_policy_close(p);
        }
        shm->rc = 0;
        pid = cgroup_spawn_into(cg.agent_fd, CGROUP_SPAWN_NO_CLONE3, aborted_child, NULL, &err);
        while (pid > 0 && !shm->rc)
            usleep(1000);
        usleep(20000);
        double t0 = now_us();
        bpf_policy_set_cutoff(slug, true, &err);
        unsigned destroyed = 0;
        int krc = bpf_sockkill_run(cg.agent_id, -1, &destroyed, &err);
        waitpid(pid, &status, 0);
        if (krc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            abort_ms = (shm->value - t0) / 1000.0;
        else
            fprintf(stderr, "kernel_bench: abort: %s\n", krc ? err.msg : "child not aborted");
    }
    printf("cutoff: flag to first EPERM %.3f ms (target <= 10 ms); flag + socket destroy to "
           "ECONNABORTED %.1f ms (target <= 100 ms)\n",
           connect_ms, abort_ms);
    cgroup_bottle_close(&cg);
    bpf_policy_destroy(slug, &err);
    cgroup_bottle_remove(slug, 2000, &err);
    return rc == 0 ? 0 : 1;
}

/* Times loading an arbitrary BPF object (to compare program variants). */
static int bench_object(const char *path)
{
    double v[20];
    for (int i = 0; i < 20; i++) {
        struct bpf_object *obj = bpf_object__open_file(path, NULL);
        if (!obj)
            return 1;
        double t0 = now_us();
        int rc = bpf_object__load(obj);
        v[i] = (now_us() - t0) / 1000.0;
        bpf_object__close(obj);
        if (rc < 0) {
            fprintf(stderr, "kernel_bench: load %s: %s\n", path, strerror(-rc));
            return 1;
        }
    }
    printf("load %s: median %.2f ms\n", path, median(v, 20));
    return 0;
}

int main(int argc, char **argv)
{
    if (geteuid() != 0) {
        fprintf(stderr, "kernel_bench: needs root\n");
        return 2;
    }
    if (argc == 3 && strcmp(argv[1], "--object") == 0)
        return bench_object(argv[2]);
    int connects = argc > 1 ? atoi(argv[1]) : 20000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    listen_fd = bind_listen(&listen_port);
    other_fd = bind_listen(&other_port);
    if (shm == MAP_FAILED || listen_fd < 0 || other_fd < 0) {
        fprintf(stderr, "kernel_bench: setup failed: %s\n", strerror(errno));
        return 1;
    }
    pthread_t t1, t2;
    pthread_create(&t1, NULL, accept_loop, (void *)(intptr_t)listen_fd);
    pthread_create(&t2, NULL, accept_loop, (void *)(intptr_t)other_fd);
    int rc = bench_install(20, false);
    rc |= bench_install(20, true);
    rc |= bench_connects(connects, runs);
    rc |= bench_cutoff();
    shutdown(listen_fd, SHUT_RDWR);
    shutdown(other_fd, SHUT_RDWR);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return rc;
}
