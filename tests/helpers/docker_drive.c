/*
 * docker_drive — runs one command as a bottle agent on the Docker backend,
 * with everything the controller would otherwise prepare made here: the
 * bottle's cgroup and BPF policy, its veth (host end A.1, bottle end in a
 * staging namespace), and a stand-in sidecar: a tiny HTTP server on A.1.
 * A second veth's host address (B.1) serves the same reply, as "another host
 * address" the bottle must not reach; so does A.1 on another port.
 *
 *   docker_drive SLUG IMAGE WORKSPACE [--no-seccomp] [--stop-after MS]
 *                [--limits pids=N,memory=BYTES,cpus=MILLI,tmpfs=BYTES] -- CMD [ARG...]
 *   docker_drive --cleanup SLUG    what `bottle cleanup` does for a crashed Docker bottle
 *
 * IMAGE is an image reference, or dockerfile=PATH to build (or reuse) one.
 * Writes WORKSPACE/bottle.env (SIDECAR, OTHER, ALTPORT, CONTAINER, SLUG) before
 * the agent starts, prints "exit N" and the teardown's result, and exits
 * with the agent's exit code (or 1 when the setup failed).
 *
 * While the agent runs, it may ask for things by creating files in the
 * workspace: ctl.stats (the bottle's summed BPF counters into stats.txt),
 * ctl.cutoff-on (also aborts its TCP connections, found through its
 * cgroup's processes), ctl.cutoff-off. A request to the sidecar that starts
 * with HOLD gets a stream of bytes until the connection ends. Each is renamed to NAME.done when
 * handled.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/docker/docker.h"
#include "common/fs.h"
#include "bpf/policy.h"
#include "bpf/sockkill.h"
#include "kernel/cgroup.h"
#include "kernel/netns.h"
#include "manifest/manifest.h"

#define SIDECAR_PORT 3128

static int listen_on(struct in_addr ip, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = ip};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
        fprintf(stderr, "docker_drive: listen %s:%u: %s\n", inet_ntoa(ip), port, strerror(errno));
        exit(1);
    }
    return fd;
}

/* Answers every connection on the given sockets with one HTTP reply naming the listener. */
static pid_t start_servers(const int *fds, const char *const *names, size_t n)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (;;) {
        fd_set set;
        FD_ZERO(&set);
        int max = 0;
        for (size_t i = 0; i < n; i++) {
            FD_SET(fds[i], &set);
            max = fds[i] > max ? fds[i] : max;
        }
        if (select(max + 1, &set, NULL, NULL, NULL) < 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (!FD_ISSET(fds[i], &set))
                continue;
            int c = accept(fds[i], NULL, NULL);
            if (c < 0)
                continue;
            struct timeval tv = {2, 0};
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            char req[2048];
            ssize_t got = recv(c, req, sizeof(req) - 1, 0);
            if (got >= 4 && memcmp(req, "HOLD", 4) == 0) {
                /* A stream that lasts until the bottle's end of it goes away. */
                if (fork() == 0) {
                    for (int k = 0; k < 150 && send(c, "x", 1, MSG_NOSIGNAL) == 1; k++)
                        usleep(100000);
                    _exit(0);
                }
                close(c);
                continue;
            }
            char body[64], reply[256];
            int bl = snprintf(body, sizeof(body), "%s-ok\n", names[i]);
            int rl = snprintf(reply, sizeof(reply),
                              "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", bl, body);
            ssize_t w = send(c, reply, (size_t)rl, MSG_NOSIGNAL);
            (void)w;
            close(c);
        }
    }
}

static void write_stats(const char *slug, const char *ws)
{
    struct bottle_err err = {0};
    struct bpf_policy_pins *pins = NULL;
    struct bottle_stats st;
    memset(&st, 0, sizeof(st));
    char *text;
    if (bpf_policy_open_pinned(slug, &pins, &err) < 0 || bpf_policy_read_stats(pins, &st, &err) < 0)
        text = xasprintf("error=%s\n", err.msg);
    else
        text = xasprintf("tx_bytes=%llu\nrx_bytes=%llu\nconnect_ok=%llu\nconnect_deny=%llu\n"
                         "sendmsg_deny=%llu\n",
                         (unsigned long long)st.tx_bytes, (unsigned long long)st.rx_bytes,
                         (unsigned long long)st.connect_ok, (unsigned long long)st.connect_deny,
                         (unsigned long long)st.sendmsg_deny);
    bpf_policy_close(pins);
    char *path = fs_join(ws, "stats.txt");
    fs_write_atomic(path, text, strlen(text), 0644, &err);
    free(path);
    free(text);
}

/* Aborts the bottle's TCP connections in every network namespace its processes use. */
static void kill_sockets(const struct cgroup_bottle *cg)
{
    struct bottle_err err = {0};
    pid_t *pids = NULL;
    size_t n = 0;
    if (cgroup_list_pids(cg->agent_path, &pids, &n, &err) < 0) {
        fprintf(stderr, "docker_drive: pids: %s\n", err.msg);
        return;
    }
    ino_t seen[16];
    size_t nseen = 0;
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pids[i]);
        struct stat st;
        bool dup = false;
        if (stat(path, &st) < 0)
            continue;
        for (size_t k = 0; k < nseen; k++)
            dup = dup || seen[k] == st.st_ino;
        if (dup || nseen == 16)
            continue;
        seen[nseen++] = st.st_ino;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        unsigned destroyed = 0;
        if (fd >= 0 && bpf_sockkill_run(cg->agent_id, fd, &destroyed, &err) < 0)
            fprintf(stderr, "docker_drive: socket kill: %s\n", err.msg);
        if (fd >= 0)
            close(fd);
        printf("sockets destroyed %u\n", destroyed);
        fflush(stdout);
    }
    free(pids);
}

/*
 * Handles the agent's requests (files in the workspace) until it exits;
 * with stop_after_ms > 0, asks the backend to stop it (SIGTERM) after that long.
 */
static void serve_requests(const char *slug, const char *ws, const struct cgroup_bottle *cg,
                           struct backend_bottle *b, int stop_after_ms)
{
    pid_t agent = b->pid;
    int waited = 0;
    static const char *const reqs[] = {"ctl.stats", "ctl.cutoff-on", "ctl.cutoff-off", NULL};
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)agent, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == agent)
            return;
        for (const char *const *r = reqs; *r; r++) {
            char *path = fs_join(ws, *r);
            if (access(path, F_OK) == 0) {
                struct bottle_err err = {0};
                if (strcmp(*r, "ctl.stats") == 0)
                    write_stats(slug, ws);
                else if (bpf_policy_set_cutoff(slug, strcmp(*r, "ctl.cutoff-on") == 0, &err) < 0)
                    fprintf(stderr, "docker_drive: cutoff: %s\n", err.msg);
                else if (strcmp(*r, "ctl.cutoff-on") == 0)
                    kill_sockets(cg);
                char *done = xasprintf("%s.done", path);
                rename(path, done);
                free(done);
            }
            free(path);
        }
        usleep(20000);
        waited += 20;
        if (stop_after_ms > 0 && waited >= stop_after_ms) {
            struct bottle_err err = {0};
            if (b->backend->stop(b, SIGTERM, 5000, &err) < 0)
                fprintf(stderr, "docker_drive: stop: %s\n", err.msg);
            stop_after_ms = 0;
        }
    }
}

/* "pids=64,memory=134217728,cpus=500,tmpfs=16777216" (cpus in thousandths). */
static int parse_limits(const char *text, struct resource_limits *l)
{
    char *copy = xstrdup(text), *save = NULL;
    int rc = 0;
    for (char *kv = strtok_r(copy, ",", &save); kv && rc == 0; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) {
            rc = -1;
            break;
        }
        *eq = '\0';
        uint64_t v = strtoull(eq + 1, NULL, 10);
        if (strcmp(kv, "pids") == 0)
            l->pids = v;
        else if (strcmp(kv, "memory") == 0)
            l->memory = v;
        else if (strcmp(kv, "cpus") == 0)
            l->cpu_milli = v;
        else if (strcmp(kv, "tmpfs") == 0)
            l->tmpfs = v;
        else
            rc = -1;
    }
    free(copy);
    return rc;
}

static void report(const char *what, const struct bottle_err *err)
{
    fprintf(stderr, "docker_drive: %s: %s\n", what, err->msg);
}

/* Removes everything a crashed run of SLUG left; 0 when every step worked. */
static int cleanup_slug(const char *slug)
{
    struct bottle_err err = {0};
    int bad = 0;
    char *other = xasprintf("%s-o", slug);
    if (docker_remove_slug(slug, &err) < 0) {
        report("cleanup container", &err);
        bad = 1;
    }
    if (bpf_policy_destroy(slug, &err) < 0) {
        report("cleanup bpf", &err);
        bad = 1;
    }
    if (netns_remove_slug(slug, &err) < 0 || netns_remove_slug(other, &err) < 0) {
        report("cleanup netns", &err);
        bad = 1;
    }
    if (cgroup_bottle_remove(slug, 3000, &err) < 0) {
        report("cleanup cgroup", &err);
        bad = 1;
    }
    free(other);
    printf("cleanup %s\n", bad ? "failed" : "clean");
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--cleanup") == 0)
        return cleanup_slug(argv[2]);
    if (argc < 6) {
        fprintf(stderr, "usage: docker_drive SLUG IMAGE WORKSPACE [--no-seccomp] -- CMD...\n");
        return 2;
    }
    const char *slug = argv[1], *image = argv[2], *ws = argv[3];
    bool no_seccomp = false;
    int stop_after_ms = 0;
    struct resource_limits limits;
    memset(&limits, 0, sizeof(limits));
    bool have_limits = false;
    int i = 4;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--no-seccomp") == 0) {
            no_seccomp = true;
        } else if (strcmp(argv[i], "--stop-after") == 0 && i + 1 < argc) {
            stop_after_ms = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--limits") == 0 && i + 1 < argc) {
            if (parse_limits(argv[++i], &limits) < 0) {
                fprintf(stderr, "docker_drive: bad --limits %s\n", argv[i]);
                return 2;
            }
            have_limits = true;
        } else {
            fprintf(stderr, "docker_drive: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc || strcmp(argv[i], "--") != 0 || i + 1 >= argc) {
        fprintf(stderr, "docker_drive: expected -- CMD\n");
        return 2;
    }
    struct strv cmd = STRV_INIT;
    for (int k = i + 1; k < argc; k++)
        strv_push(&cmd, argv[k]);

    struct bottle_err err = {0};
    struct cgroup_bottle cg;
    memset(&cg, 0, sizeof(cg));
    cg.agent_fd = cg.proxy_fd = -1;
    struct netns_bottle nb, other;
    memset(&nb, 0, sizeof(nb));
    memset(&other, 0, sizeof(other));
    nb.fd = other.fd = -1;
    char *other_slug = xasprintf("%s-o", slug);
    bool have_cg = false, have_nb = false, have_other = false, have_bpf = false;
    pid_t server = 0;
    struct backend_bottle b;
    memset(&b, 0, sizeof(b));
    int exit_code = 1, rc;

    if ((rc = cgroup_bottle_create(slug, &cg, &err)) < 0) {
        report("cgroup", &err);
        goto out;
    }
    have_cg = true;
    if ((rc = netns_create(slug, NULL, &nb, &err)) < 0) {
        report("netns", &err);
        goto out;
    }
    have_nb = true;
    if ((rc = netns_create(other_slug, NULL, &other, &err)) < 0) {
        report("netns (other)", &err);
        goto out;
    }
    have_other = true;
    struct bpf_policy_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.proxy_ip4 = nb.host_addr;
    cfg.proxy_port = SIDECAR_PORT;
    cfg.flags = BOTTLE_FLAG_LOOPBACK_OK;
    have_bpf = true;
    if ((rc = bpf_policy_install(slug, cg.agent_fd, cg.agent_id, &cfg, NULL, &err)) < 0) {
        report("bpf", &err);
        goto out;
    }
    int fds[3] = {listen_on(nb.host_addr, SIDECAR_PORT), listen_on(nb.host_addr, SIDECAR_PORT + 1),
                  listen_on(other.host_addr, SIDECAR_PORT)};
    const char *const names[3] = {"sidecar", "altport", "other"};
    server = start_servers(fds, names, 3);
    for (int k = 0; k < 3; k++)
        close(fds[k]);

    char a[INET_ADDRSTRLEN], o[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &nb.host_addr, a, sizeof(a));
    inet_ntop(AF_INET, &other.host_addr, o, sizeof(o));
    char *info =
        xasprintf("SIDECAR=%s:%d\nSIDECAR_IP=%s\nOTHER=%s:%d\nALTPORT=%s:%d\nCONTAINER=bottle-%s\n"
                  "SLUG=%s\nHOST_IF=%s\nOTHER_IF=%s\n",
                  a, SIDECAR_PORT, a, o, SIDECAR_PORT, a, SIDECAR_PORT + 1, slug, slug, nb.host_if,
                  other.host_if);
    char *info_path = fs_join(ws, "bottle.env");
    rc = fs_write_atomic(info_path, info, strlen(info), 0644, &err);
    free(info_path);
    printf("%s", info);
    fflush(stdout);
    free(info);
    if (rc < 0) {
        report("bottle.env", &err);
        goto out;
    }

    struct strv env = STRV_INIT;
    strv_push(&env, "PATH=/bin:/usr/bin:/sbin:/usr/sbin");
    strv_push(&env, "HOME=/home/agent");
    strv_push_owned(&env, xasprintf("HTTP_PROXY=http://%s:%d", a, SIDECAR_PORT));
    strv_push(&env, "AGENT_PLACEHOLDER=bottle-placeholder-0123");
    strv_push_owned(&env, xasprintf("BOTTLE_SLUG=%s", slug));
    struct backend_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.slug = slug;
    spec.argv = &cmd;
    spec.env = &env;
    spec.workspace = ws;
    spec.netns_fd = nb.fd;
    spec.cgroup_fd = cg.agent_fd;
    spec.uid = 65534;
    spec.gid = 65534;
    spec.no_seccomp = no_seccomp;
    spec.limits = have_limits ? &limits : NULL;
    spec.stdio[0] = spec.stdio[1] = spec.stdio[2] = -1;
    if (str_starts_with(image, "dockerfile="))
        spec.dockerfile = image + strlen("dockerfile=");
    else
        spec.image = image;
    const struct bottle_backend *be = NULL;
    if ((rc = backend_lookup("docker", &be, &err)) < 0 || (rc = be->probe(&err)) < 0 ||
        (rc = be->prepare(&b, &spec, &err)) < 0 || (rc = be->launch(&b, &err)) < 0) {
        report("docker backend", &err);
        strv_free(&env);
        goto out;
    }
    serve_requests(slug, ws, &cg, &b, stop_after_ms);
    rc = be->wait(&b, &exit_code, &err);
    if (rc < 0) {
        report("wait", &err);
        exit_code = 1;
    }
    printf("exit %d\n", exit_code);
    fflush(stdout);
    be->release(&b);
    strv_free(&env);

out:
    if (b.priv)
        backend_docker.release(&b);
    if (server > 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
    }
    struct bottle_err e = {0};
    bool clean = true;
    if (have_bpf && bpf_policy_destroy(slug, &e) < 0) {
        report("teardown bpf", &e);
        clean = false;
    }
    if (have_nb && netns_destroy(&nb, &e) < 0) {
        report("teardown netns", &e);
        clean = false;
    }
    if (have_other && netns_destroy(&other, &e) < 0) {
        report("teardown netns (other)", &e);
        clean = false;
    }
    if (have_cg) {
        cgroup_bottle_close(&cg);
        if (cgroup_bottle_remove(slug, 3000, &e) < 0) {
            report("teardown cgroup", &e);
            clean = false;
        }
    }
    printf("teardown %s\n", clean ? "clean" : "failed");
    free(other_slug);
    strv_free(&cmd);
    return rc < 0 && exit_code == 0 ? 1 : exit_code;
}
