/*
 * native backend: real bottles around a probe (this test binary, copied
 * into the workspace and run with --probe) that reports what it sees from
 * inside: PID 1, hostname, mounts, credentials, capabilities, environment,
 * loopback, and what it can read; that the init shows no host command line
 * or environment, that the bottle's files are a copy whose host path is not
 * in mountinfo, and that the agent has a session of its own and no
 * controlling terminal. Root only; every bottle, namespace, cgroup and
 * directory is removed afterwards, also when a test fails.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "backends/backend.h"
#include "backends/native.h"
#include "common/buf.h"
#include "common/fs.h"
#include "manifest/plan.h"
#include "kernel/cgroup.h"
#include "kernel/netns.h"

#define AGENT_UID 65534
#define AGENT_GID 65534

extern char **environ;

/* ---- the probe (runs inside the bottle) ---------------------------------------- */

static void status_field(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ':') {
            char *v = line + strlen(name) + 1;
            v += strspn(v, " \t");
            printf("%s=%s", name, v);
        }
    if (f)
        fclose(f);
}

static const char *open_result(const char *path, int flags)
{
    int fd = open(path, flags, 0644);
    if (fd >= 0) {
        close(fd);
        return "ok";
    }
    return strerror(errno);
}

static const char *loopback_roundtrip(void)
{
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (srv < 0 || bind(srv, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(srv, 1) < 0 ||
        getsockname(srv, (struct sockaddr *)&a, &len) < 0)
        return strerror(errno);
    int cli = socket(AF_INET, SOCK_STREAM, 0);
    if (cli < 0 || connect(cli, (struct sockaddr *)&a, sizeof(a)) < 0)
        return strerror(errno);
    int conn = accept(srv, NULL, NULL);
    char buf[8] = {0};
    if (conn < 0 || write(cli, "ping", 4) != 4 || read(conn, buf, sizeof(buf) - 1) != 4)
        return "short";
    close(conn);
    close(cli);
    close(srv);
    return strcmp(buf, "ping") == 0 ? "ok" : "garbled";
}

static int probe_main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[2], "exit") == 0)
        return atoi(argv[3]);
    if (argc >= 3 && strcmp(argv[2], "sleep") == 0) {
        printf("ready\n");
        fflush(stdout);
        pause();
        return 0;
    }
    /* facts [secret-path] */
    char host[64] = "";
    gethostname(host, sizeof(host));
    printf("pid=%d\nppid=%d\nhostname=%s\nuid=%u\ngid=%u\n", (int)getpid(), (int)getppid(), host,
           (unsigned)getuid(), (unsigned)getgid());
    status_field("CapEff");
    status_field("CapPrm");
    status_field("CapBnd");
    status_field("CapAmb");
    status_field("NoNewPrivs");
    status_field("Seccomp");
    char cwd[4096] = "";
    if (!getcwd(cwd, sizeof(cwd)))
        strcpy(cwd, "?");
    printf("cwd=%s\n", cwd);
    printf("ws_write=%s\n", open_result("written-by-agent", O_WRONLY | O_CREAT | O_TRUNC));
    printf("usr_write=%s\n", open_result("/usr/bottle-probe", O_WRONLY | O_CREAT | O_TRUNC));
    printf("root_write=%s\n", open_result("/bottle-probe", O_WRONLY | O_CREAT | O_TRUNC));
    printf("tmp_write=%s\n", open_result("/tmp/probe", O_WRONLY | O_CREAT | O_TRUNC));
    printf("home_write=%s\n", open_result("/home/agent/probe", O_WRONLY | O_CREAT | O_TRUNC));
    printf("devnull=%s\n", open_result("/dev/null", O_WRONLY));
    printf("usr_read=%s\n", open_result("/usr/bin/env", O_RDONLY));
    printf("shadow_link=%s\n", open_result("shadow-link", O_RDONLY));
    printf("shadow=%s\n", open_result("/etc/shadow", O_RDONLY));
    if (argc >= 4)
        printf("secret=%s\n", open_result(argv[3], O_RDONLY));
    /* The init: its command line (NULs shown as '|'), name, environment. */
    char text[8192];
    int fd = open("/proc/1/cmdline", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    for (ssize_t i = 0; i < n; i++)
        text[i] = text[i] ? text[i] : '|';
    printf("init_cmdline=%.*s\n", n > 0 ? (int)n : 0, text);
    if (fd >= 0)
        close(fd);
    fd = open("/proc/1/comm", O_RDONLY);
    n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    printf("init_comm=%.*s", n > 0 ? (int)n : 0, text);
    if (fd >= 0)
        close(fd);
    printf("init_environ=%s\n", open_result("/proc/1/environ", O_RDONLY));
    /* The bottle's files, and whether their host directory shows in mountinfo. */
    fd = open("/bottle/marker", O_RDONLY);
    n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    printf("bottle_marker=%.*s", n > 0 ? (int)n : 0, text);
    if (fd >= 0)
        close(fd);
    printf("bottle_write=%s\n", open_result("/bottle/new", O_WRONLY | O_CREAT | O_TRUNC));
    if (argc >= 5) {
        struct buf mi = BUF_INIT;
        struct bottle_err e = {0};
        fs_read_file("/proc/self/mountinfo", 1 << 20, &mi, &e);
        printf("mountinfo_host_path=%s\n", mi.data && strstr(mi.data, argv[4]) ? "yes" : "no");
        buf_free(&mi);
    }
    /* A session of its own, without a controlling terminal. */
    printf("session_leader=%s\n", getsid(0) == getpid() ? "yes" : "no");
    printf("dev_tty=%s\n", open_result("/dev/tty", O_RDWR));
    static const char *const absent[] = {"/root",  "/run", "/var",  "/srv", "/mnt",
                                         "/media", "/sys", "/boot", NULL};
    for (const char *const *p = absent; *p; p++)
        printf("exists:%s=%s\n", *p, access(*p, F_OK) == 0 ? "yes" : "no");
    printf("loopback=%s\n", loopback_roundtrip());
    int nfd = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *de; d && (de = readdir(d));)
        nfd += de->d_name[0] != '.';
    if (d)
        closedir(d);
    printf("fds=%d\n", nfd - 1); /* minus the directory stream itself */
    for (char **e = environ; *e; e++)
        printf("env:%s\n", *e);
    return 0;
}

/* ---- fixture -------------------------------------------------------------------- */

struct fixture {
    char *dir;        /* temp root */
    char *state;      /* stands for the state directory under $BOTTLE_HOME */
    char *bottle_dir; /* the bottle's files in it */
    char *ws;         /* workspace */
    char *secret;     /* a file in a fake user home outside the workspace */
    char *probe;      /* the probe inside the workspace */
    char slug[64];
    struct netns_bottle net;
    struct cgroup_bottle cg;
    bool have_cg;
};

static void copy_self(const char *to)
{
    struct buf b = BUF_INIT;
    struct bottle_err err = {0};
    if (fs_read_file("/proc/self/exe", 256u << 20, &b, &err) < 0)
        fail_msg("%s", err.msg);
    if (fs_write_atomic(to, b.data, b.len, 0755, &err) < 0)
        fail_msg("%s", err.msg);
    buf_free(&b);
}

static int setup(void **state)
{
    if (geteuid() != 0) {
        *state = NULL;
        return 0;
    }
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->ws = fs_join(f->dir, "ws");
    mkdir(f->ws, 0755);
    if (chown(f->ws, AGENT_UID, AGENT_GID) < 0)
        return -1;
    char *home = fs_join(f->dir, "home");
    mkdir(home, 0755);
    char *ssh = fs_join(home, ".ssh");
    mkdir(ssh, 0755);
    f->secret = fs_join(ssh, "id_ed25519");
    testutil_write(f->secret, "PRIVATE KEY\n");
    chmod(f->secret, 0644); /* readable by anyone who can reach it */
    free(ssh);
    free(home);
    f->probe = fs_join(f->ws, "probe");
    copy_self(f->probe);
    f->state = fs_join(f->dir, "bottle-home-state");
    f->bottle_dir = fs_join(f->state, "bottle");
    mkdir(f->state, 0700);
    mkdir(f->bottle_dir, 0755);
    char *marker = fs_join(f->bottle_dir, "marker");
    testutil_write(marker, "bottle-files\n");
    free(marker);
    char *link = fs_join(f->ws, "shadow-link");
    if (symlink("/etc/shadow", link) < 0)
        return -1;
    free(link);

    snprintf(f->slug, sizeof(f->slug), "unit-native-%d", (int)getpid());
    struct bottle_err err = {0};
    if (netns_create(f->slug, NULL, &f->net, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (cgroup_bottle_create(f->slug, &f->cg, &err) == 0)
        f->have_cg = true;
    else
        fprintf(stderr, "# no cgroup: %s\n", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (!f)
        return 0;
    struct bottle_err err = {0};
    netns_destroy(&f->net, &err);
    if (f->have_cg) {
        cgroup_bottle_close(&f->cg);
        cgroup_bottle_remove(f->slug, 2000, &err);
    }
    testutil_rm_rf(f->dir);
    free(f->dir);
    free(f->ws);
    free(f->secret);
    free(f->probe);
    free(f->state);
    free(f->bottle_dir);
    free(f);
    return 0;
}

static void base_spec(struct fixture *f, struct backend_spec *s, struct strv *argv,
                      struct strv *env)
{
    memset(s, 0, sizeof(*s));
    s->slug = f->slug;
    s->argv = argv;
    s->env = env;
    s->workspace = f->ws;
    s->netns_fd = f->net.fd;
    s->cgroup_fd = f->have_cg ? f->cg.agent_fd : -1;
    s->uid = AGENT_UID;
    s->gid = AGENT_GID;
    s->stdio[0] = s->stdio[1] = s->stdio[2] = -1;
    s->bottle_dir = f->bottle_dir;
}

/* Runs the probe with args; returns its stdout and exit code. */
static char *run_probe(struct fixture *f, const char *const *args, int *exit_code)
{
    struct strv argv = STRV_INIT, env = STRV_INIT;
    strv_push(&argv, f->probe);
    strv_push(&argv, "--probe");
    for (; *args; args++)
        strv_push(&argv, *args);
    strv_push(&env, "PATH=/usr/bin:/bin");
    strv_push(&env, "HOME=/home/agent");
    strv_push(&env, "BOTTLE_PROBE=1");
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    struct backend_spec s;
    base_spec(f, &s, &argv, &env);
    s.stdio[1] = out[1];
    struct bottle_err err = {0};
    pid_t pid = 0;
    int rc = native_launch(&s, &pid, &err);
    close(out[1]);
    if (rc < 0) {
        close(out[0]);
        fail_msg("launch: %s", err.msg);
    }
    struct buf b = BUF_INIT;
    char chunk[4096];
    ssize_t n;
    while ((n = read(out[0], chunk, sizeof(chunk))) > 0)
        buf_append(&b, chunk, (size_t)n);
    close(out[0]);
    assert_int_equal(native_wait(pid, exit_code, &err), 0);
    strv_free(&argv);
    strv_free(&env);
    return buf_steal(&b);
}

static void assert_line(const char *out, const char *line)
{
    char *needle = xasprintf("\n%s\n", line);
    char *hay = xasprintf("\n%s", out);
    if (!strstr(hay, needle))
        fail_msg("missing line '%s' in:\n%s", line, out);
    free(needle);
    free(hay);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_inside_view(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    const char *args[] = {"facts", f->secret, f->state, NULL};
    int code = -1;
    char *out = run_probe(f, args, &code);
    assert_int_equal(code, 0);

    /* Own PID namespace: the init is PID 1, the agent its child. */
    assert_line(out, "pid=2");
    assert_line(out, "ppid=1");
    assert_line(out, "hostname=bottle");
    assert_line(out, "uid=65534");
    assert_line(out, "gid=65534");
    assert_line(out, "CapEff=0000000000000000");
    assert_line(out, "CapPrm=0000000000000000");
    assert_line(out, "CapBnd=0000000000000000");
    assert_line(out, "CapAmb=0000000000000000");
    assert_line(out, "NoNewPrivs=1");
    assert_line(out, "Seccomp=2");
    char *cwd = xasprintf("cwd=%s", f->ws);
    assert_line(out, cwd);
    free(cwd);

    /* Writable: workspace, /tmp, home. Read-only: /usr and the root. */
    assert_line(out, "ws_write=ok");
    assert_line(out, "tmp_write=ok");
    assert_line(out, "home_write=ok");
    assert_line(out, "devnull=ok");
    assert_line(out, "usr_read=ok");
    char *line = xasprintf("usr_write=%s", strerror(EROFS));
    assert_line(out, line);
    free(line);
    line = xasprintf("root_write=%s", strerror(EROFS));
    assert_line(out, line);
    free(line);
    char *written = fs_join(f->ws, "written-by-agent");
    struct stat sb;
    assert_int_equal(stat(written, &sb), 0);
    assert_int_equal(sb.st_uid, AGENT_UID);
    free(written);

    /* Nothing of the host beyond the system directories and the workspace. */
    line = xasprintf("secret=%s", strerror(ENOENT));
    assert_line(out, line);
    free(line);
    line = xasprintf("shadow_link=%s", strerror(EACCES));
    assert_line(out, line);
    free(line);
    line = xasprintf("shadow=%s", strerror(EACCES));
    assert_line(out, line);
    free(line);
    static const char *const absent[] = {"/root", "/run",   "/var", "/srv",
                                         "/mnt",  "/media", "/sys", "/boot"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
        char *l = xasprintf("exists:%s=no", absent[i]);
        assert_line(out, l);
        free(l);
    }

    /* The init is "bottle-init": no host command line, no readable environment. */
    assert_line(out, "init_cmdline=bottle-init|");
    assert_line(out, "init_comm=bottle-init");
    line = xasprintf("init_environ=%s", strerror(EACCES));
    assert_line(out, line);
    free(line);
    /* The bottle's files are there, read-only, and their host path is not in mountinfo. */
    assert_line(out, "bottle_marker=bottle-files");
    line = xasprintf("bottle_write=%s", strerror(EROFS));
    assert_line(out, line);
    free(line);
    assert_line(out, "mountinfo_host_path=no");
    /* No host terminal: a session of its own, no controlling terminal. */
    assert_line(out, "session_leader=yes");
    line = xasprintf("dev_tty=%s", strerror(ENXIO));
    assert_line(out, line);
    free(line);

    /* Its own loopback works. */
    assert_line(out, "loopback=ok");
    /* Only 0, 1, 2. */
    assert_line(out, "fds=3");

    /* Exactly the environment it was given. */
    int n_env = 0;
    for (const char *p = strstr(out, "\nenv:"); p; p = strstr(p + 1, "\nenv:"))
        n_env++;
    assert_int_equal(n_env, 3);
    assert_line(out, "env:PATH=/usr/bin:/bin");
    assert_line(out, "env:HOME=/home/agent");
    assert_line(out, "env:BOTTLE_PROBE=1");
    free(out);

    /* Nothing was written outside the workspace on the host. */
    assert_int_equal(access("/usr/bottle-probe", F_OK), -1);
}

static void test_exit_codes(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    static const char *const codes[] = {"0", "1", "3", "42", "255"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *args[] = {"exit", codes[i], NULL};
        int code = -1;
        char *out = run_probe(f, args, &code);
        free(out);
        assert_int_equal(code, atoi(codes[i]));
    }
}

static void test_cgroup_netns_and_stop(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct strv argv = STRV_INIT, env = STRV_INIT;
    strv_push(&argv, f->probe);
    strv_push(&argv, "--probe");
    strv_push(&argv, "sleep");
    strv_push(&env, "PATH=/usr/bin:/bin");
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    struct backend_spec s;
    base_spec(f, &s, &argv, &env);
    s.stdio[1] = out[1];

    const struct bottle_backend *be = NULL;
    struct bottle_err err = {0};
    assert_int_equal(backend_lookup("native", &be, &err), 0);
    assert_int_equal(be->probe(&err), 0);
    struct backend_bottle b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(be->prepare(&b, &s, &err), 0);
    if (be->launch(&b, &err) < 0)
        fail_msg("%s", err.msg);
    close(out[1]);
    char ready[8] = {0};
    assert_true(read(out[0], ready, sizeof(ready) - 1) > 0);
    assert_string_equal(ready, "ready\n");

    /* The bottle's first process is in the netns it was given... */
    char *ns = xasprintf("/proc/%d/ns/net", (int)b.pid);
    struct stat a, bst;
    assert_int_equal(stat(ns, &a), 0);
    assert_int_equal(fstat(f->net.fd, &bst), 0);
    assert_int_equal(a.st_ino, bst.st_ino);
    free(ns);
    /* ...and in the agent cgroup. */
    if (f->have_cg) {
        char *cg = xasprintf("/proc/%d/cgroup", (int)b.pid);
        struct buf text = BUF_INIT;
        assert_int_equal(fs_read_file(cg, 4096, &text, &err), 0);
        char *want = xasprintf("/bottle/%s/agent", f->slug);
        assert_non_null(strstr(text.data, want));
        free(want);
        buf_free(&text);
        free(cg);
    } else if (testutil_ci()) {
        fail_msg("no cgroup2 for the bottle");
    }

    /* SIGTERM is forwarded to the agent, whose death ends the bottle. */
    assert_int_equal(be->stop(&b, SIGTERM, 5000, &err), 0);
    int code = -1;
    assert_int_equal(be->wait(&b, &code, &err), 0);
    assert_int_equal(code, 128 + SIGTERM);
    be->release(&b);
    close(out[0]);
    strv_free(&argv);
    strv_free(&env);
}

static void test_refusals(void **state)
{
    REQUIRE_ROOT();
    struct fixture *f = *state;
    struct strv argv = STRV_INIT;
    strv_push(&argv, "/nonexistent/agent");
    struct backend_spec s;
    struct bottle_err err = {0};
    pid_t pid = 0;

    base_spec(f, &s, &argv, NULL);
    s.uid = 0;
    assert_int_equal(native_launch(&s, &pid, &err), -EPERM);
    assert_int_equal(err.kind, ERR_KIND_REFUSED);
    assert_non_null(strstr(err.msg, "refusing to run the agent as root"));

    base_spec(f, &s, &argv, NULL);
    s.workspace = "/";
    assert_int_equal(native_launch(&s, &pid, &err), -EINVAL);

    /* A workspace reached through a symlink is refused. */
    char *alias = fs_join(f->dir, "alias");
    assert_int_equal(symlink(f->ws, alias), 0);
    base_spec(f, &s, &argv, NULL);
    s.workspace = alias;
    assert_int_equal(native_launch(&s, &pid, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "real path"));
    free(alias);

    /* $BOTTLE_HOME (keys, state) never becomes visible through the workspace. */
    base_spec(f, &s, &argv, NULL);
    s.bottle_home = f->dir;
    assert_int_equal(native_launch(&s, &pid, &err), -EPERM);
    assert_non_null(strstr(err.msg, "BOTTLE_HOME"));

    /* An agent that cannot be exec'd is an error from launch, nothing keeps running. */
    base_spec(f, &s, &argv, NULL);
    assert_int_equal(native_launch(&s, &pid, &err), -EIO);
    assert_non_null(strstr(err.msg, "cannot run /nonexistent/agent"));
    strv_free(&argv);
}

static void test_backend_lookup(void **state)
{
    (void)state;
    const struct bottle_backend *be = NULL;
    struct bottle_err err = {0};
    assert_int_equal(backend_lookup("native", &be, &err), 0);
    assert_string_equal(be->name, "native");
    assert_int_equal(backend_lookup("docker", &be, &err), 0);
    assert_string_equal(be->name, "docker");
    assert_int_equal(backend_lookup("smolmachines", &be, &err), -ENOTSUP);
    assert_int_equal(err.kind, ERR_KIND_REFUSED);
    assert_int_equal(backend_lookup("qemu", &be, &err), -EINVAL);
    assert_int_equal(err.kind, ERR_KIND_USAGE);
}

static void test_env_from_plan(void **state)
{
    (void)state;
    struct plan p;
    memset(&p, 0, sizeof(p));
    struct plan_env env[] = {
        {"PATH", NULL, ENV_SRC_RUNTIME, false},
        {"TERM", NULL, ENV_SRC_RUNTIME, false},
        {"ANTHROPIC_API_KEY", NULL, ENV_SRC_PROVIDER, true},
        {"RED_FOX_SECRET", NULL, ENV_SRC_CANARY, true},
        {"MODE", "fast", ENV_SRC_MANIFEST, false},
        {"FROM_HOST", "BOTTLE_TEST_HOST_VAR", ENV_SRC_HOST, false},
    };
    p.env = env;
    p.n_env = sizeof(env) / sizeof(env[0]);
    struct strv values = STRV_INIT, out = STRV_INIT;
    strv_push(&values, "PATH=/usr/bin:/bin");
    strv_push(&values, "ANTHROPIC_API_KEY=placeholder");
    strv_push(&values, "RED_FOX_SECRET=canary");
    setenv("BOTTLE_TEST_HOST_VAR", "copied", 1);
    setenv("SHOULD_NOT_LEAK", "x", 1);
    struct bottle_err err = {0};
    assert_int_equal(native_env_from_plan(&p, &values, &out, &err), 0);
    assert_int_equal(out.len, 5); /* TERM had no value: left out */
    assert_string_equal(out.items[0], "PATH=/usr/bin:/bin");
    assert_string_equal(out.items[1], "ANTHROPIC_API_KEY=placeholder");
    assert_string_equal(out.items[2], "RED_FOX_SECRET=canary");
    assert_string_equal(out.items[3], "MODE=fast");
    assert_string_equal(out.items[4], "FROM_HOST=copied");
    strv_free(&out);

    /* A value for a name outside the plan is refused. */
    strv_push(&values, "SHOULD_NOT_LEAK=x");
    assert_int_equal(native_env_from_plan(&p, &values, &out, &err), -EINVAL);
    strv_free(&values);

    /* A secret without a value is an error, not an empty variable. */
    strv_push(&values, "PATH=/bin");
    assert_int_equal(native_env_from_plan(&p, &values, &out, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "ANTHROPIC_API_KEY"));
    strv_free(&values);

    unsetenv("BOTTLE_TEST_HOST_VAR");
    strv_push(&values, "ANTHROPIC_API_KEY=p");
    strv_push(&values, "RED_FOX_SECRET=c");
    assert_int_equal(native_env_from_plan(&p, &values, &out, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "BOTTLE_TEST_HOST_VAR"));
    strv_free(&values);
    unsetenv("SHOULD_NOT_LEAK");
}

static void test_user_from_env(void **state)
{
    (void)state;
    uid_t u;
    gid_t g;
    struct bottle_err err = {0};
    setenv("SUDO_UID", "1000", 1);
    setenv("SUDO_GID", "1001", 1);
    assert_int_equal(native_user_from_env(&u, &g, &err), 0);
    assert_int_equal(u, 1000);
    assert_int_equal(g, 1001);
    setenv("SUDO_UID", "0", 1);
    assert_int_equal(native_user_from_env(&u, &g, &err), -EPERM);
    unsetenv("SUDO_UID");
    unsetenv("SUDO_GID");
    assert_int_equal(native_user_from_env(&u, &g, &err), -EPERM);
    assert_int_equal(err.kind, ERR_KIND_REFUSED);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--probe") == 0) {
        /* _exit: no leak checker at exit, which seccomp (no ptrace) would break. */
        int code = probe_main(argc, argv);
        fflush(stdout);
        _exit(code);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inside_view, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cgroup_netns_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test(test_backend_lookup),
        cmocka_unit_test(test_env_from_plan),
        cmocka_unit_test(test_user_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
