/*
 * The sidecar step of the start sequence: the sidecar's config, its tokens
 * on a pipe, starting bottle-proxy in its cgroup, waiting until it listens,
 * and stopping it at teardown (see context.h).
 */
#include "runtime/controller/context.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "common/proc.h"
#include "bpf/listener.h"
#include "ledger/budget.h"

char *controller_proxy_listen(const struct controller *c)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &c->nb.host_addr, ip, sizeof(ip));
    return xasprintf("%s:%u", ip, (unsigned)c->proxy_port);
}

/* The plan's effective budgets, with whose usage counts against each (docs/budgets.md). */
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
    /* egress.log: off, requests or full (the sidecar's own names). */
    cJSON_AddStringToObject(root, "log", egress_log_name(c->plan->egress_log));
    if (c->plan->sidecar_max_connections) /* settings sidecar.max_connections */
        cJSON_AddNumberToObject(root, "max_connections", c->plan->sidecar_max_connections);
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
        rc = controller_own_for_proxy(c->config_path, c->proxy_gid, 0640, err);
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

/*
 * Waits for the sidecar's "ready" event (written once it listens). There is
 * no connect probe from here: the listener filter (bpf/listener.h) drops
 * every connection from the host, this controller's included.
 */
static int proxy_wait_ready(struct controller *c, struct bottle_err *err)
{
    int timeout = c->opts->proxy_ready_timeout_ms > 0 ? c->opts->proxy_ready_timeout_ms : 5000;
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
        struct pollfd pfd = {.fd = c->events_fd, .events = POLLIN};
        if (c->events_fd < 0) {
            controller_sleep_ms(2); /* the sidecar closed its end: the exit check reports it */
            continue;
        }
        if (poll(&pfd, 1, 2) <= 0)
            continue;
        char chunk[256];
        static const char ready[] = "\"event\":\"ready\"";
        ssize_t n = read(c->events_fd, chunk, sizeof(chunk));
        if (n > 0) {
            buf_append(&c->events_buf, chunk, (size_t)n);
            if (memmem(c->events_buf.data, c->events_buf.len, ready, sizeof(ready) - 1))
                return 0;
        } else if (n == 0) {
            close(c->events_fd);
            c->events_fd = -1;
        }
    }
    return err_set(err, ETIMEDOUT, "the sidecar did not listen on port %u within %d ms",
                   (unsigned)c->proxy_port, timeout);
}

/*
 * Only the bottle reaches its sidecar: the listener on the host end of the
 * veth drops what does not come in through the veth (bpf/listener.h).
 */
static int guard_listener(struct controller *c, struct bottle_err *err)
{
    struct bpf_listener_config lc;
    memset(&lc, 0, sizeof(lc));
    lc.addr = c->nb.host_addr;
    lc.port = c->proxy_port;
    lc.ifindex = (int)if_nametoindex(c->nb.host_if);
    if (lc.ifindex <= 0)
        return err_set(err, errno, "cannot find the bottle's veth %s: %s", c->nb.host_if,
                       strerror(errno));
    return bpf_listener_install(c->st.slug, c->cg.proxy_fd, &lc, err);
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

int controller_sidecar_start(struct controller *c, struct bottle_err *err)
{
    c->proxy_port = CONTROLLER_PROXY_PORT;
    make_secret_env(c);
    int rc = guard_listener(c, err);
    if (rc == 0)
        rc = write_proxy_config(c, err);
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

void controller_sidecar_stop(struct controller *c)
{
    if (c->proxy_pid <= 0)
        return;
    kill(c->proxy_pid, SIGTERM);
    for (int waited = 0; waited < 3000 && !proc_child_exited(c->proxy_pid); waited += 10)
        controller_sleep_ms(10);
    if (!proc_child_exited(c->proxy_pid))
        kill(c->proxy_pid, SIGKILL);
    while (waitpid(c->proxy_pid, NULL, 0) < 0 && errno == EINTR)
        ;
    c->proxy_pid = 0;
}
