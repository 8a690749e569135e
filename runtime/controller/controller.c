/*
 * The native start sequence (ARCHITECTURE §4, steps 3 to 10). Each step
 * records what it created in struct controller, and controller_teardown
 * undoes exactly that, every step even when an earlier one failed.
 */
#include "common/proc.h"
#include "runtime/controller/controller.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/native.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "bpf/policy.h"
#include "ledger/budget.h"
#include "kernel/cgroup.h"
#include "runtime/controller/context.h"
#include "kernel/netns.h"
#include "runtime/controller/state.h"
#include "sidecar/ca.h"

/* ---- small helpers ----------------------------------------------------------- */

void controller_random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof(raw))
        bytes = sizeof(raw);
    if (getrandom(raw, bytes, 0) != (ssize_t)bytes)
        abort(); /* the kernel always has entropy after boot; never run without it */
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static bool sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    return nanosleep(&ts, NULL) == 0;
}

/* Whether pid (a child) has exited, without reaping it. */
/* Root-owned, group gid, mode: what the sidecar reads and the agent never can. */
static int own_for_proxy(const char *path, gid_t gid, mode_t mode, struct bottle_err *err)
{
    if (chown(path, 0, gid) < 0 || chmod(path, mode) < 0)
        return err_set(err, errno, "cannot set the owner of %s: %s", path, strerror(errno));
    return 0;
}

/*
 * A POSIX record lock, not flock: a forked child (the bottle's init, the
 * sidecar before exec) shares flock locks with its parent but never record
 * locks, so the lock dies with the controller itself.
 */
int controller_live_lock(const char *slug, struct bottle_err *err)
{
    int rc = fs_mkdir_p(CONTROLLER_LIVE_DIR, 0700, err);
    if (rc < 0)
        return rc;
    char *path = xasprintf("%s/%s.lock", CONTROLLER_LIVE_DIR, slug);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd < 0) {
        rc = err_set(err, errno, "cannot open %s: %s", path, strerror(errno));
    } else if (fcntl(fd, F_SETLK, &fl) < 0) {
        rc = err_set_kind(err, ERR_KIND_USAGE, EEXIST,
                          "a bottle named '%s' is already running on this host; pick another "
                          "--label",
                          slug);
        close(fd);
    } else {
        rc = fd;
    }
    free(path);
    return rc;
}

pid_t controller_live_pid(const char *slug)
{
    char *path = xasprintf("%s/%s.lock", CONTROLLER_LIVE_DIR, slug);
    int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    pid_t pid = 0;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
        pid = fl.l_pid;
    close(fd);
    return pid;
}

bool controller_slug_live(const char *slug)
{
    return controller_live_pid(slug) > 0;
}

/* ---- users -------------------------------------------------------------------------- */

static int step_users(struct controller *c, struct bottle_err *err)
{
    if (getenv("SUDO_UID") && *getenv("SUDO_UID")) {
        int rc = native_user_from_env(&c->agent_uid, &c->agent_gid, err);
        if (rc < 0)
            return rc;
    } else {
        c->agent_uid = CONTROLLER_AGENT_UID;
        c->agent_gid = CONTROLLER_AGENT_GID;
    }
    const struct passwd *pw = getpwnam(CONTROLLER_PROXY_USER);
    c->proxy_uid = pw ? pw->pw_uid : CONTROLLER_PROXY_UID;
    c->proxy_gid = pw ? pw->pw_gid : CONTROLLER_PROXY_GID;
    if (c->proxy_uid == 0 || c->proxy_gid == 0)
        return err_set(err, EINVAL, "the sidecar's user '%s' must not be root",
                       CONTROLLER_PROXY_USER);
    if (c->agent_uid == c->proxy_uid || c->agent_gid == c->proxy_gid)
        return err_set_kind(err, ERR_KIND_REFUSED, EPERM,
                            "the agent (uid %u, gid %u) and the sidecar (uid %u, gid %u) must not "
                            "share a user or group; run bottle as another user",
                            (unsigned)c->agent_uid, (unsigned)c->agent_gid, (unsigned)c->proxy_uid,
                            (unsigned)c->proxy_gid);
    return 0;
}

/* ---- state, CA, trust bundle, prompt ------------------------------------------------ */

/* Writes dst (mode) with prefix (may be NULL) followed by the bytes of src. */
static int copy_file_to(const char *src, const char *dst, const struct buf *prefix, mode_t mode,
                        struct bottle_err *err)
{
    struct buf in = BUF_INIT, out = BUF_INIT;
    int rc = fs_read_file(src, 16u << 20, &in, err);
    if (rc == 0) {
        if (prefix && prefix->len)
            buf_append(&out, prefix->data, prefix->len);
        buf_append(&out, in.data ? in.data : "", in.len);
        rc = fs_write_atomic(dst, out.data ? out.data : "", out.len, mode, err);
    }
    buf_free(&in);
    buf_free(&out);
    return rc;
}

static int step_files(struct controller *c, struct bottle_err *err)
{
    const struct plan *plan = c->plan;
    c->bottle_dir = fs_join(c->st.path, "bottle");
    c->proxy_dir = fs_join(c->st.path, "proxy");
    c->ca_dir = fs_join(c->proxy_dir, "ca");
    int rc = fs_mkdir_p(c->bottle_dir, 0755, err);
    if (rc == 0)
        rc = chmod(c->bottle_dir, 0755) < 0 ? err_set(err, errno, "chmod %s", c->bottle_dir) : 0;
    if (rc == 0)
        rc = fs_mkdir_p(c->proxy_dir, 0750, err);
    if (rc == 0)
        rc = own_for_proxy(c->proxy_dir, c->proxy_gid, 0750, err);
    if (rc == 0) {
        char *cn = xasprintf("bottle %s CA", c->st.slug);
        rc = ca_mint_files(c->ca_dir, cn, err);
        free(cn);
    }
    static const char *const ca_files[] = {"ca.pem", "ca-key.pem", "leaf-key.pem"};
    if (rc == 0)
        rc = own_for_proxy(c->ca_dir, c->proxy_gid, 0750, err);
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        char *p = fs_join(c->ca_dir, ca_files[i]);
        rc = own_for_proxy(p, c->proxy_gid, 0640, err);
        free(p);
    }
    if (rc == 0 && c->opts->upstream_ca) {
        X509 *x = ca_load_cert(c->opts->upstream_ca, err);
        if (!x) {
            rc = err_prefix(err, "--upstream-ca");
            rc = rc < 0 ? rc : -EINVAL;
        } else {
            X509_free(x);
            c->upstream_ca = fs_join(c->proxy_dir, "upstream-ca.pem");
            rc = copy_file_to(c->opts->upstream_ca, c->upstream_ca, NULL, 0640, err);
            if (rc == 0)
                rc = own_for_proxy(c->upstream_ca, c->proxy_gid, 0640, err);
        }
    }
    /* The bundle the agent trusts: the system roots plus the bottle CA. */
    if (rc == 0) {
        struct buf roots = BUF_INIT;
        struct bottle_err ignored = {0};
        if (fs_read_file(CONTROLLER_SYSTEM_ROOTS, 16u << 20, &roots, &ignored) == 0 && roots.len &&
            roots.data[roots.len - 1] != '\n')
            buf_append_char(&roots, '\n');
        char *ca = fs_join(c->ca_dir, "ca.pem");
        char *bundle = fs_join(c->bottle_dir, "ca-bundle.pem");
        rc = copy_file_to(ca, bundle, &roots, 0644, err);
        free(ca);
        free(bundle);
        buf_free(&roots);
    }
    if (rc == 0) {
        char *prompt = fs_join(c->bottle_dir, "prompt.md");
        const char *text = plan->prompt ? plan->prompt : "";
        rc = fs_write_atomic(prompt, text, strlen(text), 0644, err);
        free(prompt);
    }
    return rc;
}

/* The canary's and the placeholders' values: made before the sidecar, which must know them. */
static void make_secret_env(struct controller *c)
{
    for (size_t i = 0; i < c->plan->n_env; i++) {
        const struct plan_env *e = &c->plan->env[i];
        char hex[41];
        if (e->source == ENV_SRC_CANARY) {
            controller_random_hex(hex, 20);
            strv_push_owned(&c->secret_env, xasprintf("%s=%s", e->name, hex));
        } else if (e->secret) {
            controller_random_hex(hex, 16);
            strv_push_owned(&c->secret_env, xasprintf("%s=bottle-placeholder-%s", e->name, hex));
        }
    }
}

/* ---- sidecar ------------------------------------------------------------------------- */

char *controller_proxy_listen(const struct controller *c)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &c->nb.host_addr, ip, sizeof(ip));
    return xasprintf("%s:%u", ip, (unsigned)c->proxy_port);
}

/* The plan's effective budgets, with whose usage counts against each (docs/budgets.md). */
static void add_budgets(const struct controller *c, cJSON *root)
{
    cJSON *list = cJSON_AddArrayToObject(root, "budgets");
    for (size_t i = 0; i < c->plan->n_budgets; i++) {
        const struct plan_budget *b = &c->plan->budgets[i];
        enum ledger_scope ls = budget_counting_scope(b->scope);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "provider", b->provider);
        cJSON_AddNumberToObject(o, "tokens", (double)b->tokens);
        cJSON_AddStringToObject(o, "scope",
                                ls == LEDGER_SCOPE_GLOBAL  ? "global"
                                : ls == LEDGER_SCOPE_AGENT ? "agent"
                                                           : "run");
        cJSON_AddStringToObject(o, "source", b->source ? b->source : b->scope);
        cJSON_AddItemToArray(list, o);
    }
}

static int write_proxy_config(struct controller *c, struct bottle_err *err)
{
    cJSON *root = cJSON_CreateObject();
    char *listen = controller_proxy_listen(c);
    cJSON_AddStringToObject(root, "listen", listen);
    free(listen);
    cJSON_AddStringToObject(root, "bottle", c->st.slug);
    cJSON_AddStringToObject(root, "agent", c->plan->agent_name);
    cJSON_AddStringToObject(root, "ledger", c->ledger_path);
    cJSON_AddNumberToObject(root, "events_fd", CONTROLLER_EVENTS_FD);
    add_budgets(c, root);
    cJSON *secrets = cJSON_AddArrayToObject(root, "secrets");
    for (size_t i = 0; i < c->secret_env.len; i++) {
        const char *eq = strchr(c->secret_env.items[i], '=');
        if (eq && strlen(eq + 1) >= 8)
            cJSON_AddItemToArray(secrets, cJSON_CreateString(eq + 1));
    }
    cJSON *tls = cJSON_AddObjectToObject(root, "tls");
    char *p = fs_join(c->ca_dir, "ca.pem");
    cJSON_AddStringToObject(tls, "ca_cert", p);
    free(p);
    p = fs_join(c->ca_dir, "ca-key.pem");
    cJSON_AddStringToObject(tls, "ca_key", p);
    free(p);
    p = fs_join(c->ca_dir, "leaf-key.pem");
    cJSON_AddStringToObject(tls, "leaf_key", p);
    free(p);
    /* The hashed directory is looked up per issuer; the bundle would be parsed whole at start. */
    if (access(CONTROLLER_SYSTEM_ROOTS_DIR, R_OK | X_OK) == 0)
        cJSON_AddStringToObject(tls, "trust_store", CONTROLLER_SYSTEM_ROOTS_DIR);
    else if (access(CONTROLLER_SYSTEM_ROOTS, R_OK) == 0)
        cJSON_AddStringToObject(tls, "trust_store", CONTROLLER_SYSTEM_ROOTS);
    if (c->upstream_ca)
        cJSON_AddStringToObject(tls, "extra_ca", c->upstream_ca);
    cJSON *resolve = cJSON_AddArrayToObject(root, "resolve");
    for (size_t i = 0; i < c->opts->n_resolve; i++)
        cJSON_AddItemToArray(resolve, cJSON_CreateString(c->opts->resolve[i]));
    cJSON *timeouts = cJSON_AddObjectToObject(root, "timeouts");
    cJSON_AddNumberToObject(timeouts, "drain_ms", 1000);
    cJSON *routes = cJSON_AddArrayToObject(root, "routes");
    for (size_t i = 0; i < c->plan->routes.len; i++)
        cJSON_AddItemToArray(routes, route_to_json(&c->plan->routes.items[i], true));
    char *text = json_to_text(root, true);
    cJSON_Delete(root);
    c->config_path = fs_join(c->proxy_dir, "config.json");
    int rc = fs_write_atomic(c->config_path, text, strlen(text), 0640, err);
    free(text);
    if (rc == 0)
        rc = own_for_proxy(c->config_path, c->proxy_gid, 0640, err);
    return rc;
}

/* The sidecar binary: $BOTTLE_PROXY_BIN, else next to this executable, else PATH. */
static char *find_proxy_binary(void)
{
    const char *forced = getenv(CONTROLLER_PROXY_ENV);
    if (forced && *forced)
        return access(forced, X_OK) == 0 ? xstrdup(forced) : NULL;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            char *cand = fs_join(self, "bottle-proxy");
            if (access(cand, X_OK) == 0)
                return cand;
            free(cand);
        }
    }
    return fs_which("bottle-proxy");
}

struct proxy_child {
    const char *bin;
    char *const *argv;
    int token_fd;
    int log_fd;
    int null_fd;
    int events_fd;
};

/* Runs in the clone3 child, already in the proxy cgroup: stdio, fd 3 = tokens, exec. */
static int proxy_child_main(void *arg)
{
    const struct proxy_child *pc = arg;
    proc_reset_signals(true);
    setsid(); /* out of the terminal's process group: Ctrl-C is the controller's to handle */
    int t = fcntl(pc->token_fd, F_DUPFD, 16);
    int e = fcntl(pc->events_fd, F_DUPFD, 16);
    if (t < 0 || e < 0 || dup2(pc->null_fd, 0) < 0 || dup2(pc->log_fd, 1) < 0 ||
        dup2(pc->log_fd, 2) < 0 || dup2(t, 3) < 0 || dup2(e, CONTROLLER_EVENTS_FD) < 0)
        _exit(126);
    syscall(SYS_close_range, (unsigned)CONTROLLER_EVENTS_FD + 1, ~0u, 0u);
    execv(pc->bin, pc->argv);
    dprintf(2, "bottle: cannot run the sidecar %s: %s\n", pc->bin, strerror(errno));
    _exit(127);
}

/* The last lines of the sidecar's log, for an error message. */
static void proxy_log_tail(const struct controller *c, char *out, size_t len)
{
    struct buf b = BUF_INIT;
    struct bottle_err ignored = {0};
    out[0] = '\0';
    if (c->log_path && fs_read_file(c->log_path, 1u << 20, &b, &ignored) == 0 && b.len) {
        while (b.len && (b.data[b.len - 1] == '\n'))
            b.data[--b.len] = '\0';
        const char *start = b.len > 300 ? b.data + b.len - 300 : b.data;
        snprintf(out, len, "%s", start);
    }
    buf_free(&b);
}

static int proxy_wait_ready(struct controller *c, struct bottle_err *err)
{
    int timeout = c->opts->proxy_ready_timeout_ms > 0 ? c->opts->proxy_ready_timeout_ms : 5000;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(c->proxy_port), .sin_addr = c->nb.host_addr};
    for (int waited = 0; waited <= timeout; waited += 2) {
        if (proc_child_exited(c->proxy_pid)) {
            int st = 0;
            waitpid(c->proxy_pid, &st, 0);
            c->proxy_pid = 0;
            char tail[512];
            proxy_log_tail(c, tail, sizeof(tail));
            return err_set(err, ECHILD, "the sidecar exited before it was ready (status %d)%s%s",
                           WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
                           tail[0] ? ": " : "", tail);
        }
        /* The sidecar says "ready" on its events pipe once listening; a connect probe too. */
        struct pollfd pfd = {.fd = c->events_fd, .events = POLLIN};
        if (c->events_fd >= 0 && poll(&pfd, 1, 2) > 0) {
            char chunk[256];
            static const char ready[] = "\"event\":\"ready\"";
            ssize_t n = read(c->events_fd, chunk, sizeof(chunk));
            if (n > 0) {
                buf_append(&c->events_buf, chunk, (size_t)n);
                if (memmem(c->events_buf.data, c->events_buf.len, ready, sizeof(ready) - 1))
                    return 0;
                continue;
            }
            if (n == 0) { /* the sidecar is gone: the exit check above reports it */
                close(c->events_fd);
                c->events_fd = -1;
            }
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return err_set(err, errno, "socket: %s", strerror(errno));
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        close(fd);
        if (ok == 0)
            return 0;
        if (c->events_fd < 0)
            sleep_ms(2);
    }
    return err_set(err, ETIMEDOUT, "the sidecar did not listen on port %u within %d ms",
                   (unsigned)c->proxy_port, timeout);
}

static int write_tokens(const struct plan *plan, int fd, struct bottle_err *err)
{
    struct buf b = BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < plan->n_token_refs && rc == 0; i++) {
        const char *v = getenv(plan->token_refs[i].name);
        if (!v)
            rc = err_set_kind(err, ERR_KIND_USAGE, ENOENT, "token reference '%s' is not set",
                              plan->token_refs[i].name);
        else if (strchr(v, '\n') || strlen(v) > CONTROLLER_TOKEN_MAX)
            rc = err_set_kind(err, ERR_KIND_USAGE, EINVAL,
                              "token reference '%s' holds a newline or is too long",
                              plan->token_refs[i].name);
        else
            buf_printf(&b, "%s=%s\n", plan->token_refs[i].name, v);
    }
    size_t off = 0;
    while (rc == 0 && off < b.len) {
        ssize_t w = write(fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            rc = err_set(err, errno, "cannot pass the tokens to the sidecar: %s", strerror(errno));
        else
            off += (size_t)w;
    }
    if (b.data)
        explicit_bzero(b.data, b.len);
    buf_free(&b);
    return rc;
}

static int step_sidecar(struct controller *c, struct bottle_err *err)
{
    c->proxy_port = CONTROLLER_PROXY_PORT;
    make_secret_env(c);
    int rc = write_proxy_config(c, err);
    if (rc < 0)
        return rc;
    char *bin = find_proxy_binary();
    if (!bin)
        return err_set(err, ENOENT,
                       "cannot find the sidecar 'bottle-proxy' next to bottle, on PATH or in $%s",
                       CONTROLLER_PROXY_ENV);
    c->log_path = fs_join(c->st.path, "proxy.log");
    int pipefd[2] = {-1, -1}, evfd[2] = {-1, -1};
    int log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0 || pipe2(pipefd, O_CLOEXEC) < 0 ||
        pipe2(evfd, O_CLOEXEC | O_NONBLOCK) < 0)
        rc = err_set(err, errno, "cannot prepare the sidecar's descriptors: %s", strerror(errno));
    c->events_fd = evfd[0];
    /* Tokens are small: they fit the pipe, so write them all before the child starts. */
    if (rc == 0)
        rc = write_tokens(c->plan, pipefd[1], err);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    char uid[16], gid[16];
    snprintf(uid, sizeof(uid), "%u", (unsigned)c->proxy_uid);
    snprintf(gid, sizeof(gid), "%u", (unsigned)c->proxy_gid);
    char *argv[] = {bin,     "--config", c->config_path, "--token-fd", "3",
                    "--uid", uid,        "--gid",        gid,          NULL};
    struct proxy_child pc = {bin, argv, pipefd[0], log_fd, null_fd, evfd[1]};
    if (rc == 0) {
        pid_t pid = cgroup_spawn_into(c->cg.proxy_fd, 0, proxy_child_main, &pc, err);
        if (pid < 0)
            rc = (int)pid;
        else
            c->proxy_pid = pid;
    }
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (evfd[1] >= 0)
        close(evfd[1]);
    if (log_fd >= 0)
        close(log_fd);
    if (null_fd >= 0)
        close(null_fd);
    free(bin);
    if (rc == 0)
        rc = proxy_wait_ready(c, err);
    if (rc == 0) {
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)c->proxy_port);
        log_info("sidecar ready", "slug", c->st.slug, "port", port, NULL);
    }
    return rc;
}

static void stop_sidecar(struct controller *c)
{
    if (c->proxy_pid <= 0)
        return;
    kill(c->proxy_pid, SIGTERM);
    for (int waited = 0; waited < 3000 && !proc_child_exited(c->proxy_pid); waited += 10)
        sleep_ms(10);
    if (!proc_child_exited(c->proxy_pid))
        kill(c->proxy_pid, SIGKILL);
    while (waitpid(c->proxy_pid, NULL, 0) < 0 && errno == EINTR)
        ;
    c->proxy_pid = 0;
}

/* ---- network, cgroup, BPF ---------------------------------------------------------- */

static int step_kernel(struct controller *c, struct bottle_err *err)
{
    int rc = netns_create(c->st.slug, NULL, &c->nb, err);
    if (rc < 0)
        return rc;
    c->have_netns = true;
    rc = cgroup_bottle_create(c->st.slug, &c->cg, err);
    if (rc < 0)
        return rc;
    c->have_cgroup = true;
    struct bpf_policy_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.proxy_ip4 = c->nb.host_addr;
    cfg.proxy_port = CONTROLLER_PROXY_PORT;
    cfg.flags = BOTTLE_FLAG_LOOPBACK_OK;
    c->have_bpf = true; /* a failed install removes its own pins; destroy is then a no-op */
    return bpf_policy_install(c->st.slug, c->cg.agent_fd, c->cg.agent_id, &cfg, NULL, err);
}

/* ---- teardown ------------------------------------------------------------------------ */

static void note(struct bottle_err *first, const struct bottle_err *e, const char *what)
{
    if (!e->msg[0])
        return;
    fprintf(stderr, "bottle: teardown: %s: %s\n", what, e->msg);
    if (!first->msg[0])
        *first = *e;
}

int controller_teardown(struct controller *c, bool keep_state, struct bottle_err *err)
{
    struct bottle_err first = {0}, e = {0};
    c->tearing_down = true;
    if (c->have_control) {
        control_server_close(&c->control); /* no operator acts on a bottle going away */
        c->have_control = false;
    }
    tty_relay_close(&c->tty); /* the terminal comes back first, whatever happens next */
    controller_agent_release(c, &e);
    note(&first, &e, "agent");
    if (c->have_cgroup && c->cg.agent_fd >= 0) {
        memset(&e, 0, sizeof(e));
        cgroup_kill(c->cg.agent_fd, &e);
        note(&first, &e, "cgroup kill");
    }
    stop_sidecar(c);
    if (c->events_fd >= 0) {
        controller_on_events(c); /* what the sidecar said last */
        if (c->events_fd >= 0)
            close(c->events_fd);
        c->events_fd = -1;
    }
    controller_ledger_final(c);
    if (c->have_bpf) {
        memset(&e, 0, sizeof(e));
        bpf_policy_destroy(c->st.slug, &e);
        note(&first, &e, "BPF policy");
        c->have_bpf = false;
    }
    if (c->have_netns) {
        memset(&e, 0, sizeof(e));
        netns_destroy(&c->nb, &e);
        note(&first, &e, "network");
        c->have_netns = false;
    }
    if (c->have_cgroup) {
        cgroup_bottle_close(&c->cg);
        memset(&e, 0, sizeof(e));
        cgroup_bottle_remove(c->st.slug, 3000, &e);
        note(&first, &e, "cgroup");
        c->have_cgroup = false;
    }
    if (c->live_fd >= 0) {
        char *path = xasprintf("%s/%s.lock", CONTROLLER_LIVE_DIR, c->st.slug);
        unlink(path);
        free(path);
        close(c->live_fd);
        c->live_fd = -1;
    }
    if (keep_state) {
        state_close(&c->st);
    } else {
        memset(&e, 0, sizeof(e));
        state_remove(&c->st, &e);
        note(&first, &e, "state");
    }
    for (size_t i = 0; i < c->secret_env.len; i++)
        explicit_bzero(c->secret_env.items[i], strlen(c->secret_env.items[i]));
    strv_free(&c->secret_env);
    buf_free(&c->events_buf);
    ledger_close(c->ledger);
    c->ledger = NULL;
    free(c->ledger_path);
    c->ledger_path = NULL;
    free(c->bottle_dir);
    free(c->proxy_dir);
    free(c->ca_dir);
    free(c->upstream_ca);
    free(c->config_path);
    free(c->log_path);
    c->bottle_dir = c->proxy_dir = c->ca_dir = c->upstream_ca = c->config_path = c->log_path = NULL;
    if (first.msg[0] && err && !err->msg[0])
        *err = first;
    return first.msg[0] ? -(first.code ? first.code : EIO) : 0;
}

/* ---- the sequence -------------------------------------------------------------------- */

static int interrupted(const sigset_t *sigs, struct bottle_err *err)
{
    sigset_t pending;
    sigpending(&pending);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGWINCH && sigismember(sigs, s) && sigismember(&pending, s))
            return err_set(err, EINTR, "interrupted by signal %d while starting", s);
    return 0;
}

int controller_start(const struct plan *plan, const struct controller_options *opts,
                     int *agent_exit, struct bottle_err *err)
{
    struct controller c;
    memset(&c, 0, sizeof(c));
    c.plan = plan;
    c.opts = opts;
    c.st.lock_fd = -1;
    c.live_fd = -1;
    c.cg.agent_fd = c.cg.proxy_fd = -1;
    c.nb.fd = -1;
    c.control.listen_fd = -1;
    c.events_fd = -1;
    c.tty.slave = c.tty.master = -1;
    c.started = time(NULL);
    *agent_exit = 0;

    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGWINCH); /* window size changes go to the agent's terminal */
    sigprocmask(SIG_BLOCK, &sigs, &old);

    int rc = state_create(opts->home, plan->agent_name, plan->label, &c.st, err);
    if (rc < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return rc;
    }
    printf("bottle: %s\n", c.st.slug);
    fflush(stdout);
    c.ledger_path =
        plan->ledger_path ? xstrdup(plan->ledger_path) : fs_join(c.st.home, LEDGER_FILE);
    rc = controller_live_lock(c.st.slug, err);
    if (rc >= 0) {
        c.live_fd = rc;
        char pid[24];
        int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        rc = state_write_file(&c.st, CONTROLLER_PID_FILE, pid, (size_t)n, 0600, err);
    }
    if (rc == 0)
        rc = state_write_plan(&c.st, plan, err);
    if (rc == 0)
        rc = step_users(&c, err);
    if (rc == 0)
        rc = step_files(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = step_kernel(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = step_sidecar(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = controller_control_open(&c, err);
    if (rc == 0 && (rc = interrupted(&sigs, err)) == 0)
        rc = controller_step_agent(&c, err);
    bool ran = rc == 0;
    if (ran) {
        controller_audit(&c, "start", getuid(), "running");
        rc = controller_serve(&c, &sigs, agent_exit, err);
    }
    /*
     * A start failure says what failed; the state would only repeat it. An
     * agent that failed on its own keeps its state for a post-mortem; one an
     * operator ended (signal, stop, kill) does not.
     */
    bool keep = ran && (rc < 0 || (*agent_exit != 0 && !c.operator_ended));
    if (rc < 0 && !ran)
        err_prefix(err, "%s", c.st.slug ? c.st.slug : "start");
    struct bottle_err td = {0};
    int trc = controller_teardown(&c, keep, &td);
    if (rc == 0 && trc < 0) {
        *err = td;
        rc = trc;
    }
    /* Drop signals that arrived during teardown instead of dying of them. */
    struct timespec zero = {0, 0};
    while (sigtimedwait(&sigs, NULL, &zero) > 0)
        ;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
