/*
 * controller_agent — the agent step of the start sequence: its environment,
 * its terminal (a pty or pipes the controller relays, never a host
 * terminal), and the backend that runs it (native namespaces, or Docker),
 * plus how the wait loop signals, waits for and finally releases it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/native.h"
#include "common/fs.h"
#include "common/home.h"
#include "runtime/controller/context.h"

static char *runtime_value(const struct controller *c, const char *name)
{
    char *proxy = controller_proxy_listen(c);
    char *v = NULL;
    if (!strcmp(name, "HTTP_PROXY") || !strcmp(name, "HTTPS_PROXY") ||
        !strcmp(name, "http_proxy") || !strcmp(name, "https_proxy"))
        v = xasprintf("http://%s", proxy);
    else if (!strcmp(name, "NO_PROXY") || !strcmp(name, "no_proxy"))
        v = xstrdup("localhost,127.0.0.1,::1");
    else if (!strcmp(name, "SSL_CERT_FILE") || !strcmp(name, "NODE_EXTRA_CA_CERTS") ||
             !strcmp(name, "REQUESTS_CA_BUNDLE") || !strcmp(name, "CURL_CA_BUNDLE") ||
             !strcmp(name, "GIT_SSL_CAINFO"))
        v = xstrdup(GUEST_CA_BUNDLE);
    else if (!strcmp(name, "HOME"))
        v = xstrdup(NATIVE_DEFAULT_HOME);
    else if (!strcmp(name, "PATH"))
        v = xstrdup(CONTROLLER_SAFE_PATH);
    else if (!strcmp(name, "TERM"))
        v = getenv("TERM") ? xstrdup(getenv("TERM")) : NULL;
    else if (!strcmp(name, "LANG"))
        v = xstrdup("C.UTF-8");
    else if (!strcmp(name, "BOTTLE_SLUG"))
        v = xstrdup(c->st.slug);
    free(proxy);
    return v;
}

static int agent_env(const struct controller *c, struct strv *env, struct bottle_err *err)
{
    struct strv values = STRV_INIT;
    for (size_t i = 0; i < c->secret_env.len; i++)
        strv_push(&values, c->secret_env.items[i]);
    for (size_t i = 0; i < c->plan->n_env; i++) {
        const struct plan_env *e = &c->plan->env[i];
        if (e->source == ENV_SRC_CANARY || e->secret)
            continue;
        if (e->source == ENV_SRC_RUNTIME && !e->value) {
            char *v = runtime_value(c, e->name);
            if (v)
                strv_push_owned(&values, xasprintf("%s=%s", e->name, v));
            free(v);
        }
    }
    int rc = native_env_from_plan(c->plan, &values, env, err);
    strv_free(&values);
    return rc;
}

static bool is_native(const struct controller *c)
{
    return !c->plan->backend || strcmp(c->plan->backend, backend_native.name) == 0;
}

int controller_step_agent(struct controller *c, struct bottle_err *err)
{
    struct strv env = STRV_INIT;
    int rc = agent_env(c, &env, err);
    if (rc < 0)
        return rc;
    /* What the agent may not change in the workspace: git settings, workspace.read_only. */
    rc = guard_list_build(c->plan->cwd, &c->plan->read_only, &c->guard, err);
    if (rc < 0) {
        strv_free(&env);
        return rc;
    }
    c->have_guard = true;
    for (size_t i = 0; i < c->guard.created.len; i++)
        controller_notice(c, "created %s/%s (empty) to keep it read-only in the bottle",
                          c->plan->cwd, c->guard.created.items[i]);
    for (size_t i = 0; i < c->guard.missing.len; i++)
        controller_notice(c, "workspace.read_only: %s/%s does not exist; not protected",
                          c->plan->cwd, c->guard.missing.items[i]);
    struct backend_spec spec;
    memset(&spec, 0, sizeof(spec));
    spec.slug = c->st.slug;
    spec.argv = &c->plan->argv;
    spec.env = &env;
    spec.workspace = c->plan->cwd;
    spec.guard = &c->guard;
    spec.bottle_dir = c->bottle_dir;
    spec.bottle_home = c->st.home;
    char *config_home = NULL;
    struct bottle_err ignored = {0};
    if (home_sudo_uid(NULL) && home_config_path(&config_home, &ignored) == 0)
        spec.config_home = config_home;
    spec.netns_fd = c->nb.fd;
    spec.cgroup_fd = c->cg.agent_fd;
    spec.join_cgroup_fds = c->limits.fds;
    spec.n_join_cgroup_fds = c->limits.n_fds;
    spec.limits = &c->plan->limits;
    spec.uid = c->agent_uid;
    spec.gid = c->agent_gid;
    spec.seccomp_extra = &c->plan->seccomp;
    spec.dockerfile = c->plan->dockerfile;
    spec.image = c->plan->image;
    spec.restore_home = c->plan->resume != NULL;
    spec.stdio[0] = spec.stdio[1] = spec.stdio[2] = -1;
    if (!is_native(c)) {
        rc = backend_lookup(c->plan->backend, &c->backend, err);
        if (rc == 0) /* may build the image, printing as it goes: before raw mode */
            rc = c->backend->prepare(&c->bb, &spec, err);
    }
    /* The agent never holds a host terminal: a pty or pipes of ours, a session of its own
     * (docker: the docker CLI gets them, the container has a pty of its own). */
    static const int host[3] = {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO};
    unsigned flags = (c->plan->terminal_passthrough ? TTY_FILTER_PASSTHROUGH : 0) |
                     (c->plan->terminal_allow_osc52 ? TTY_FILTER_ALLOW_OSC52 : 0);
    if (rc == 0)
        rc = tty_relay_open(&c->tty, host, flags, err);
    if (rc >= 0) {
        for (int i = 0; i < 3; i++)
            spec.stdio[i] = c->tty.agent_fd[i];
        spec.new_session = true;
        if (is_native(c)) {
            pid_t pid = 0;
            rc = native_launch(&spec, &pid, err);
            if (rc == 0)
                c->agent_pid = pid;
        } else {
            rc = c->backend->launch(&c->bb, err);
            if (rc == 0)
                c->agent_pid = c->bb.pid;
        }
    }
    tty_relay_release_agent(&c->tty);
    strv_free(&env);
    free(config_home);
    return rc;
}

void controller_agent_signal(struct controller *c, int sig)
{
    if (c->backend) {
        struct bottle_err ignored = {0};
        c->backend->stop(&c->bb, sig, -1, &ignored); /* the loop's kill_at_ms is the deadline */
    } else if (c->agent_pid > 0) {
        kill(c->agent_pid, sig);
    }
}

int controller_agent_wait(struct controller *c, int *exit_code, struct bottle_err *err)
{
    int rc = c->backend ? c->backend->wait(&c->bb, exit_code, err)
                        : native_wait(c->agent_pid, exit_code, err);
    c->agent_pid = 0;
    return rc;
}

void controller_agent_audit(struct controller *c)
{
    if (!c->have_guard)
        return;
    struct strv report = STRV_INIT;
    struct bottle_err err = {0};
    if (guard_audit(c->plan->cwd, &c->guard, &report, &err) < 0)
        controller_notice(c, "teardown: workspace: %s", err.msg);
    for (size_t i = 0; i < report.len; i++)
        controller_notice(c, "%s", report.items[i]);
    strv_free(&report);
    guard_list_free(&c->guard);
    c->have_guard = false;
}

void controller_agent_release(struct controller *c, struct bottle_err *err)
{
    if (c->backend) {
        if (c->agent_pid > 0)
            c->backend->stop(&c->bb, SIGKILL, 0, err);
        c->backend->release(&c->bb);
        c->backend = NULL;
        c->agent_pid = 0;
        return;
    }
    if (c->agent_pid > 0) {
        native_stop(c->agent_pid, SIGKILL, 0, err);
        waitpid(c->agent_pid, NULL, 0);
        c->agent_pid = 0;
    }
}
