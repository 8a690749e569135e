/*
 * The docker CLI as the backend drives it: always an argv array through
 * common/spawn (never a shell), with an environment limited to what the CLI
 * itself reads (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, HOME for its
 * config and contexts, PATH for its plugins), so a token in the caller's
 * environment never reaches it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/docker_internal.h"
#include "common/fs.h"
#include "common/spawn.h"

extern char **environ;

static const char *const cli_names[] = {
    "PATH",       "HOME",        "USER",     "TMPDIR",     "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",     "no_proxy",
    "ALL_PROXY",  "all_proxy",   NULL};

bool docker_cli_reads_name(const char *name)
{
    if (str_starts_with(name, "DOCKER_") || str_starts_with(name, "BUILDKIT_") ||
        str_starts_with(name, "XDG_"))
        return true;
    for (const char *const *p = cli_names; *p; p++)
        if (strcmp(name, *p) == 0)
            return true;
    return false;
}

int docker_cli_init(struct docker_cli *cli, struct bottle_err *err)
{
    memset(cli, 0, sizeof(*cli));
    cli->timeout_ms = 60000;
    const char *forced = getenv(DOCKER_BIN_ENV);
    cli->path = fs_which(forced && *forced ? forced : "docker");
    if (!cli->path)
        return err_set_kind(err, ERR_KIND_REFUSED, ENOENT,
                            "docker: the docker CLI is not installed (not on PATH%s%s); install "
                            "docker.io or docker-ce-cli",
                            forced && *forced ? " and not at $" DOCKER_BIN_ENV "=" : "",
                            forced && *forced ? forced : "");
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char *name = xstrndup(*e, (size_t)(eq - *e));
        if (docker_cli_reads_name(name))
            strv_push(&cli->env, *e);
        free(name);
    }
    return 0;
}

void docker_cli_free(struct docker_cli *cli)
{
    if (!cli)
        return;
    free(cli->path);
    strv_free(&cli->env);
    cli->path = NULL;
}

int docker_cli_run(const struct docker_cli *cli, const char *const *args, bool stream,
                   struct buf *out, struct bottle_err *err)
{
    struct strv argv = STRV_INIT;
    strv_push(&argv, cli->path);
    for (size_t i = 0; args[i]; i++)
        strv_push(&argv, args[i]);
    static char *const empty_env[] = {NULL};
    struct spawn_opts opts = {
        .timeout_ms = stream ? 0 : cli->timeout_ms,
        .envp = cli->env.len ? cli->env.items : empty_env,
        .inherit_stdout = stream,
        .inherit_stderr = stream,
    };
    struct spawn_result res;
    memset(&res, 0, sizeof(res));
    int rc = spawn_run((const char *const *)argv.items, &opts, &res, err);
    if (rc < 0)
        err_prefix(err, "docker %s", args[0]);
    if (rc == 0 && out) {
        buf_reset(out);
        size_t n = res.out.len;
        while (n && (res.out.data[n - 1] == '\n' || res.out.data[n - 1] == '\r'))
            n--;
        buf_append(out, res.out.data ? res.out.data : "", n);
    }
    spawn_result_free(&res);
    strv_free(&argv);
    return rc;
}

int docker_cli_run_io(const struct docker_cli *cli, const char *const *args, int in_fd, int out_fd,
                      uint64_t out_max, int ok_up_to, int *exit_code, struct bottle_err *err)
{
    struct strv argv = STRV_INIT;
    strv_push(&argv, cli->path);
    for (size_t i = 0; args[i]; i++)
        strv_push(&argv, args[i]);
    static char *const empty_env[] = {NULL};
    struct spawn_opts opts = {
        .envp = cli->env.len ? cli->env.items : empty_env,
        .stdin_fd = in_fd,
        .stdout_fd = out_fd,
        .file_size_max = out_max,
    };
    struct spawn_result res;
    memset(&res, 0, sizeof(res));
    struct bottle_err run_err = {0};
    int rc = spawn_run((const char *const *)argv.items, &opts, &res, &run_err);
    if (exit_code)
        *exit_code = res.exit_code;
    if (rc < 0 && !res.timed_out && res.exit_code > 0 && res.exit_code <= ok_up_to &&
        res.exit_code < 126)
        rc = 0;
    if (rc < 0) {
        *err = run_err;
        err_prefix(err, "docker %s", args[0]);
    }
    spawn_result_free(&res);
    strv_free(&argv);
    return rc;
}

int docker_cli_probe(const struct docker_cli *cli, struct bottle_err *err)
{
    static const char *const args[] = {"version", "--format", "{{.Server.Version}}", NULL};
    struct buf out = BUF_INIT;
    struct docker_cli quick = *cli;
    quick.timeout_ms = 15000;
    int rc = docker_cli_run(&quick, args, false, &out, err);
    if (rc == 0 && out.len == 0)
        rc = err_set(err, EPROTO, "docker version: the engine gave no server version");
    if (rc < 0) {
        const char *host = NULL;
        for (size_t i = 0; i < cli->env.len; i++)
            if (str_starts_with(cli->env.items[i], "DOCKER_HOST="))
                host = cli->env.items[i] + strlen("DOCKER_HOST=");
        const char *ctx = NULL;
        for (size_t i = 0; i < cli->env.len; i++)
            if (str_starts_with(cli->env.items[i], "DOCKER_CONTEXT="))
                ctx = cli->env.items[i] + strlen("DOCKER_CONTEXT=");
        char where[300];
        if (host)
            snprintf(where, sizeof(where), "at DOCKER_HOST=%s", host);
        else if (ctx)
            snprintf(where, sizeof(where), "in docker context '%s'", ctx);
        else
            snprintf(where, sizeof(where), "at the current docker context");
        err_prefix(err,
                   "no Docker engine answers %s; start dockerd, or point DOCKER_HOST or "
                   "DOCKER_CONTEXT at a running engine",
                   where);
        err->kind = ERR_KIND_REFUSED;
    }
    buf_free(&out);
    return rc;
}
