/*
 * bottle-proxy — the bottle's egress sidecar. Reads its config and token
 * values, binds its listeners, confines itself (raised descriptor limit,
 * uid/gid, no capabilities, no_new_privs, then its seccomp allowlist) and
 * runs the event loop until SIGTERM, after which it drains requests in
 * flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "sidecar/ca.h"
#include "sidecar/config.h"
#include "sidecar/confine.h"
#include "sidecar/hooks.h"
#include "sidecar/logjson.h"
#include "sidecar/proxy.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: bottle-proxy --config FILE [--token-fd N] [--uid UID --gid GID]\n"
                 "                    [--port-file FILE] [--check] [--no-seccomp]\n"
                 "       bottle-proxy --mint-ca DIR [--name NAME]\n"
                 "       bottle-proxy --version\n");
}

static int parse_id(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > 0x7fffffff)
        return -EINVAL;
    *out = v;
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/*
 * The path reloads read the config from: through a descriptor of its
 * directory opened now, so the file stays reachable after the uid drop
 * even when an ancestor directory (the 0700 state dir) is not.
 */
static char *reload_path_of(const char *config_path)
{
    const char *slash = strrchr(config_path, '/');
    char *dir = slash ? xasprintf("%.*s", (int)(slash - config_path), config_path) : xstrdup(".");
    if (!dir[0]) {
        free(dir);
        dir = xstrdup("/");
    }
    int fd = open(dir, O_PATH | O_DIRECTORY); /* kept open for the process's life */
    free(dir);
    if (fd < 0)
        return xstrdup(config_path);
    return xasprintf("/proc/self/fd/%d/%s", fd, slash ? slash + 1 : config_path);
}

int main(int argc, char **argv)
{
    const char *config_path = NULL, *port_file = NULL, *mint_dir = NULL, *name = "bottle CA";
    long token_fd = -1, uid = -1, gid = -1;
    bool check_only = false, seccomp = true;
    log_init("bottle-proxy");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--version") == 0) {
            printf("bottle-proxy %s\n", BOTTLE_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--check") == 0) {
            check_only = true;
        } else if (strcmp(a, "--no-seccomp") == 0) {
            seccomp = false; /* debugging only: docs/sidecar.md, Confinement */
        } else if (v && strcmp(a, "--config") == 0) {
            config_path = v;
            i++;
        } else if (v && strcmp(a, "--port-file") == 0) {
            port_file = v;
            i++;
        } else if (v && strcmp(a, "--mint-ca") == 0) {
            mint_dir = v;
            i++;
        } else if (v && strcmp(a, "--name") == 0) {
            name = v;
            i++;
        } else if (v && (strcmp(a, "--token-fd") == 0 || strcmp(a, "--uid") == 0 ||
                         strcmp(a, "--gid") == 0)) {
            long *slot = a[2] == 't' ? &token_fd : a[2] == 'u' ? &uid : &gid;
            if (parse_id(v, slot) < 0) {
                fprintf(stderr, "bottle-proxy: %s: '%s' is not a non-negative number\n", a, v);
                return EXIT_USAGE;
            }
            i++;
        } else {
            fprintf(stderr, "bottle-proxy: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    struct bottle_err err = {0};
    if (mint_dir) {
        if (ca_mint_files(mint_dir, name, &err) < 0) {
            fprintf(stderr, "bottle-proxy: %s\n", err.msg);
            return EXIT_RUNTIME;
        }
        return 0;
    }
    if (!config_path) {
        usage(stderr);
        return EXIT_USAGE;
    }
    /* Before any thread exists, so the resolver threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct config_tokens tokens = {0};
    if (token_fd >= 0 && config_tokens_read_fd((int)token_fd, &tokens, &err) < 0) {
        fprintf(stderr, "bottle-proxy: %s\n", err.msg);
        return EXIT_USAGE;
    }
    struct config *cfg = NULL;
    if (config_load(config_path, &tokens, &cfg, &err) < 0) {
        fprintf(stderr, "bottle-proxy: %s\n", err.msg);
        config_tokens_free(&tokens);
        return EXIT_USAGE;
    }
    if (check_only) {
        printf("bottle-proxy: %s: valid (%zu routes)\n", config_path, cfg->routes.len);
        config_unref(cfg);
        config_tokens_free(&tokens);
        return 0;
    }
    raise_fd_limit();
    /* Reloads happen after the uid drop, when the config's ancestors may be closed to us. */
    char *reload_path = reload_path_of(config_path);
    struct proxy px;
    struct hooks *hooks = NULL;
    int rc = proxy_init(&px, reload_path, cfg, &tokens, &err);
    free(reload_path);
    /*
     * Listening: the runtime may start the agent while the rest of the set-up runs. Its
     * first connections wait in the backlog until the loop runs, after every check is
     * installed and the sidecar is confined; a set-up failure ends the sidecar, and with
     * it the bottle's only way out.
     */
    if (rc == 0 && px.cfg->events_fd >= 0) {
        static const char ready[] = "{\"event\":\"ready\"}\n";
        ssize_t w = write(px.cfg->events_fd, ready, sizeof(ready) - 1);
        (void)w; /* the runtime also probes the listener */
    }
    if (rc == 0)
        rc = hooks_install(&px, px.cfg, &tokens, &hooks, &err);
    if (rc == 0)
        rc = confine_drop_privileges(uid, gid, &err);
    if (rc == 0 && port_file) {
        char text[64];
        int n = snprintf(text, sizeof(text), "%u %u\n", px.listen_port, px.control_port);
        rc = fs_write_atomic(port_file, text, (size_t)n, 0644, &err);
    }
    /* Last step of the set-up: from here on only the allowlist's system calls. */
    if (rc == 0 && seccomp)
        rc = confine_apply(&err);
    if (rc == 0)
        logjson_event(&px, "confined", "seccomp", seccomp ? "allowlist" : "off (--no-seccomp)",
                      NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "bottle-proxy: %s\n", err.msg);
        proxy_free(&px);
        hooks_free(hooks);
        config_tokens_free(&tokens);
        return err.kind == ERR_KIND_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
    }
    rc = proxy_run(&px);
    proxy_free(&px);
    hooks_free(hooks);
    config_tokens_free(&tokens);
    return rc < 0 ? EXIT_RUNTIME : 0;
}
