/*
 * docker backend, without an engine: a fake docker CLI (BOTTLE_DOCKER) records
 * every command line and the environment it got, and answers like the real
 * one. Checked: the refusals before anything runs, the error when no engine
 * answers, the cgroup-driver and name checks, image reuse and build, the
 * `docker run` command line (no network, the bottle's cgroup parent, no
 * capabilities, no_new_privs, the seccomp profile, a non-root user, no
 * pulls), a container outside the cgroup parent refused and removed, and
 * agent variables kept out of argv; snapshots: the image name a slug maps
 * to, LABEL escaping, the wrapper tar header, the command sequence of a
 * commit and what it hands `docker cp`, and its refusals. The engine itself
 * is exercised by tests/integration/docker.sh.
 */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>

#include "backends/backend.h"
#include "backends/docker/docker.h"
#include "backends/docker/docker_internal.h"
#include "manifest/manifest.h"
#include "common/buf.h"
#include "kernel/cgroup.h"

struct fake {
    char *dir;
    char *log;
};

/* Writes DIR/docker: logs its argv (one per line, then "---") and answers. */
static void fake_write(struct fake *f, const char *version_cmd, const char *driver,
                       bool container_exists, long pid)
{
    char *path = fs_join(f->dir, "docker");
    char *text = xasprintf(
        "#!/bin/sh\n"
        "{ for a in \"$@\"; do printf '%%s\\n' \"$a\"; done; echo ---; } >>'%s'\n"
        "env >'%s/env.'\"$1\"\n"
        "case \"$1\" in\n"
        "version) %s ;;\n"
        "info) echo %s ;;\n"
        "image) [ \"$5\" = present:1 ] && exit 0; echo 'Error: No such image' >&2; exit 1 ;;\n"
        "container) %s ;;\n"
        "run) for a in \"$@\"; do case \"$a\" in seccomp=*) cp \"${a#seccomp=}\" "
        "'%s/seccomp.json';; "
        "esac; done; echo 0123abcd ;;\n"
        "inspect) echo %ld ;;\n"
        "*) exit 0 ;;\n"
        "esac\n",
        f->log, f->dir, version_cmd, driver,
        container_exists ? "echo 0123abcd" : "echo 'Error: No such container' >&2; exit 1", f->dir,
        pid);
    testutil_write(path, text);
    chmod(path, 0755);
    setenv(DOCKER_BIN_ENV, path, 1);
    free(text);
    free(path);
}

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    f->dir = testutil_mkdtemp();
    f->log = fs_join(f->dir, "log");
    setenv("DOCKER_HOST", "unix:///fake/docker.sock", 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fake *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", f->dir);
    free(cmd);
    free(f->dir);
    free(f->log);
    free(f);
    unsetenv(DOCKER_BIN_ENV);
    return 0;
}

static char *slurp(const char *path)
{
    struct buf b = BUF_INIT;
    struct bottle_err err = {0};
    if (fs_read_file(path, 1 << 20, &b, &err) < 0) {
        buf_free(&b);
        return xstrdup("");
    }
    return b.data ? buf_steal(&b) : xstrdup("");
}

/* Whether the log holds these arguments one after another. */
static bool logged(const struct fake *f, const char *seq)
{
    char *log = slurp(f->log);
    bool found = strstr(log, seq) != NULL;
    free(log);
    return found;
}

struct spec_holder {
    struct strv argv, env;
    struct backend_spec spec;
    char *ws;
    int netns_fd;
};

static void spec_init(struct spec_holder *h, const struct fake *f)
{
    memset(h, 0, sizeof(*h));
    strv_push(&h->argv, "agent");
    strv_push(&h->argv, "--flag");
    strv_push(&h->env, "PATH=/usr/bin:/bin");
    strv_push(&h->env, "HTTPS_PROXY=http://10.243.0.1:3128");
    strv_push(&h->env, "ANTHROPIC_API_KEY=bottle-placeholder-abcdef");
    h->ws = fs_join(f->dir, "ws");
    mkdir(h->ws, 0755);
    h->netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    h->spec.slug = "unit-1";
    h->spec.argv = &h->argv;
    h->spec.env = &h->env;
    h->spec.workspace = h->ws;
    h->spec.netns_fd = h->netns_fd;
    h->spec.cgroup_fd = -1;
    h->spec.uid = 1000;
    h->spec.gid = 1000;
    h->spec.stdio[0] = h->spec.stdio[1] = h->spec.stdio[2] = -1;
    h->spec.image = "present:1";
}

static void spec_free(struct spec_holder *h)
{
    strv_free(&h->argv);
    strv_free(&h->env);
    free(h->ws);
    if (h->netns_fd >= 0)
        close(h->netns_fd);
}

/*
 * A cgroup2 directory that does not hold this process: as root one made for
 * the test (*made, removed by the caller), else any existing one; -1 when
 * there is none.
 */
static int foreign_cgroup(char **made)
{
    *made = NULL;
    char *mount = NULL;
    struct bottle_err err = {0};
    if (cgroup2_mount_point(&mount, &err) < 0)
        return -1;
    char *own = slurp("/proc/self/cgroup");
    char *line = strstr(own, "0::");
    const char *mine = line ? line + 3 : "";
    int fd = -1;
    if (geteuid() == 0) {
        *made = xasprintf("%s/unit-docker-%ld", mount, (long)getpid());
        if (mkdir(*made, 0755) == 0)
            fd = open(*made, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    DIR *d = fd < 0 ? opendir(mount) : NULL;
    struct dirent *e;
    while (d && fd < 0 && (e = readdir(d))) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        size_t n = strlen(e->d_name);
        if (mine[0] == '/' && strncmp(mine + 1, e->d_name, n) == 0 &&
            (mine[n + 1] == '/' || mine[n + 1] == '\n'))
            continue;
        char *p = fs_join(mount, e->d_name);
        fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        free(p);
    }
    if (d)
        closedir(d);
    free(own);
    free(mount);
    return fd;
}

static void test_cli_reads_name(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool reads;
    } cases[] = {
        {"DOCKER_HOST", true},
        {"DOCKER_CONTEXT", true},
        {"HOME", true},
        {"PATH", true},
        {"HTTPS_PROXY", true},
        {"no_proxy", true},
        {"XDG_CONFIG_HOME", true},
        {"BUILDKIT_PROGRESS", true},
        {"ANTHROPIC_API_KEY", false},
        {"SSL_CERT_FILE", false},
        {"TERM", false},
        {"DOCKERX", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(docker_cli_reads_name(cases[i].name), cases[i].reads);
}

static void test_image_tag_for(void **state)
{
    struct fake *f = *state;
    char *a = fs_join(f->dir, "a.Dockerfile"), *b = fs_join(f->dir, "b.Dockerfile");
    testutil_write(a, "FROM scratch\n");
    testutil_write(b, "FROM scratch\nCOPY x /x\n");
    char *ta = NULL, *ta2 = NULL, *tb = NULL;
    struct bottle_err err = {0};
    assert_int_equal(docker_image_tag_for(a, &ta, &err), 0);
    assert_int_equal(docker_image_tag_for(a, &ta2, &err), 0);
    assert_int_equal(docker_image_tag_for(b, &tb, &err), 0);
    assert_string_equal(ta, ta2);
    assert_string_not_equal(ta, tb);
    assert_int_equal(strlen(ta), strlen(DOCKER_IMAGE_REPO ":") + 16);
    assert_true(str_starts_with(ta, DOCKER_IMAGE_REPO ":"));
    char *missing = fs_join(f->dir, "none");
    assert_true(docker_image_tag_for(missing, &tb, &err) < 0);
    free(missing);
    free(ta);
    free(ta2);
    free(tb);
    free(a);
    free(b);
}

static void test_exec_args_keep_values_out_of_argv(void **state)
{
    struct fake *f = *state;
    fake_write(f, "echo 20.10.24", "cgroupfs", false, 0);
    struct spec_holder h;
    spec_init(&h, f);
    struct docker_cli cli;
    struct bottle_err err = {0};
    assert_int_equal(docker_cli_init(&cli, &err), 0);
    struct strv argv = STRV_INIT, envp = STRV_INIT;
    docker_exec_args(&cli, &h.spec, "bottle-unit-1", true, &argv, &envp);
    struct buf joined = BUF_INIT;
    for (size_t i = 0; i < argv.len; i++)
        buf_printf(&joined, "%s\n", argv.items[i]);
    assert_non_null(strstr(joined.data, "exec\n--interactive\n--tty\n--user\n1000:1000\n"));
    assert_non_null(strstr(joined.data, "--env\nANTHROPIC_API_KEY\n"));
    assert_null(strstr(joined.data, "bottle-placeholder-abcdef"));
    assert_non_null(strstr(joined.data, "--env\nHTTPS_PROXY=http://10.243.0.1:3128\n"));
    assert_non_null(strstr(joined.data, "--env\nPATH=/usr/bin:/bin\n"));
    assert_non_null(strstr(joined.data, "bottle-unit-1\nagent\n--flag\n"));
    assert_true(strv_contains(&envp, "ANTHROPIC_API_KEY=bottle-placeholder-abcdef"));
    assert_true(strv_contains(&envp, "DOCKER_HOST=unix:///fake/docker.sock"));
    assert_false(strv_contains(&envp, "PATH=/usr/bin:/bin"));
    buf_free(&joined);
    strv_free(&argv);
    strv_free(&envp);
    docker_cli_free(&cli);
    spec_free(&h);
}

static void test_refusals_before_anything_runs(void **state)
{
    struct fake *f = *state;
    fake_write(f, "echo 20.10.24", "cgroupfs", false, 0);
    struct spec_holder h;
    spec_init(&h, f);
    char *inside = fs_join(h.ws, "home");
    static const struct {
        int field;
        int code;
        const char *msg;
    } cases[] = {
        {0, -EPERM, "refusing to run the agent as root"},
        {1, -EINVAL, "no network namespace"},
        {2, -EINVAL, "no agent cgroup"},
        {3, -EINVAL, "the workspace cannot be /"},
        {4, -EINVAL, "holds a comma"},
        {5, -EINVAL, "overlaps $BOTTLE_HOME"},
        {6, -EINVAL, "the agent has no command"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct backend_spec s = h.spec;
        struct strv empty = STRV_INIT;
        s.cgroup_fd = 3; /* any fd: the checks come first */
        switch (cases[i].field) {
        case 0:
            s.uid = 0;
            break;
        case 1:
            s.netns_fd = -1;
            break;
        case 2:
            s.cgroup_fd = -1;
            break;
        case 3:
            s.workspace = "/";
            break;
        case 4:
            s.workspace = "/tmp/a,b";
            break;
        case 5:
            s.bottle_home = inside;
            break;
        case 6:
            s.argv = &empty;
            break;
        }
        struct backend_bottle b;
        struct bottle_err err = {0};
        assert_int_equal(backend_docker.prepare(&b, &s, &err), cases[i].code);
        assert_non_null(strstr(err.msg, cases[i].msg));
        backend_docker.release(&b);
    }
    /* Nothing was asked of the engine. */
    assert_false(logged(f, "version"));
    free(inside);
    spec_free(&h);
}

static void test_no_engine(void **state)
{
    struct fake *f = *state;
    fake_write(f,
               "echo 'Cannot connect to the Docker daemon at unix:///fake/docker.sock. Is the "
               "docker daemon running?' >&2; exit 1",
               "cgroupfs", false, 0);
    struct bottle_err err = {0};
    assert_true(backend_docker.probe(&err) < 0);
    assert_int_equal(err.kind, ERR_KIND_REFUSED);
    assert_non_null(
        strstr(err.msg, "no Docker engine answers at DOCKER_HOST=unix:///fake/docker.sock"));
    assert_non_null(strstr(err.msg, "Is the docker daemon running?"));
    /* The CLI got DOCKER_HOST but nothing outside its own variables. */
    char *envf = fs_join(f->dir, "env.version");
    char *env = slurp(envf);
    assert_non_null(strstr(env, "DOCKER_HOST=unix:///fake/docker.sock"));
    assert_null(strstr(env, "CMOCKA"));
    free(env);
    free(envf);
}

static void test_engine_checks(void **state)
{
    struct fake *f = *state;
    struct spec_holder h;
    spec_init(&h, f);
    char *made = NULL;
    h.spec.cgroup_fd = foreign_cgroup(&made);
    if (h.spec.cgroup_fd < 0) {
        spec_free(&h);
        free(made);
        REQUIRE_ROOT();
        skip();
    }
    struct backend_bottle b;
    struct bottle_err err = {0};
    fake_write(f, "echo 20.10.24", "systemd", false, 0);
    assert_int_equal(backend_docker.prepare(&b, &h.spec, &err), -ENOTSUP);
    assert_non_null(strstr(err.msg, "'systemd' cgroup driver"));
    backend_docker.release(&b);

    fake_write(f, "echo 20.10.24", "cgroupfs", true, 0);
    memset(&err, 0, sizeof(err));
    assert_int_equal(backend_docker.prepare(&b, &h.spec, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "a container named bottle-unit-1 already exists"));
    backend_docker.release(&b);
    assert_false(logged(f, "rm\n")); /* never removes what it did not make */

    fake_write(f, "echo 20.10.24", "cgroupfs", false, 0);
    h.spec.image = "absent:1";
    memset(&err, 0, sizeof(err));
    assert_int_equal(backend_docker.prepare(&b, &h.spec, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "image 'absent:1' is not in the engine"));
    backend_docker.release(&b);

    close(h.spec.cgroup_fd);
    if (made)
        rmdir(made);
    free(made);
    spec_free(&h);
}

static void test_build_then_launch_refused_outside_parent(void **state)
{
    struct fake *f = *state;
    struct spec_holder h;
    spec_init(&h, f);
    char *made = NULL;
    h.spec.cgroup_fd = foreign_cgroup(&made);
    if (h.spec.cgroup_fd < 0) {
        spec_free(&h);
        free(made);
        REQUIRE_ROOT();
        skip();
    }
    char *df = fs_join(f->dir, "Dockerfile");
    testutil_write(df, "FROM scratch\n");
    char *tag = NULL;
    struct bottle_err err = {0};
    assert_int_equal(docker_image_tag_for(df, &tag, &err), 0);
    h.spec.image = NULL;
    h.spec.dockerfile = df;
    char *files = fs_join(f->dir, "bottle-files");
    mkdir(files, 0755);
    testutil_put(files, "ca-bundle.pem", "CERT\n");
    h.spec.bottle_dir = files;
    /* The "container" is this test process: it is not below the cgroup parent. */
    fake_write(f, "echo 20.10.24", "cgroupfs", false, (long)getpid());
    struct backend_bottle b;
    assert_int_equal(backend_docker.prepare(&b, &h.spec, &err), 0);
    char *seq = xasprintf("build\n--tag\n%s\n--file\n%s\n%s\n---\n", tag, df, f->dir);
    assert_true(logged(f, seq));
    free(seq);
    assert_int_equal(backend_docker.launch(&b, &err), -EPERM);
    assert_non_null(strstr(err.msg, "not below"));
    static const char *const run_parts[] = {
        "run\n--detach\n--pull\nnever\n--name\nbottle-unit-1\n", "--network\nnone\n",
        "--cap-drop\nALL\n", "--security-opt\nno-new-privileges\n", "--user\n1000:1000\n",
        "--read-only\n", "--init\n--entrypoint\nsleep\n",
        "--mount\ntype=bind,source=", /* the workspace */
        /* the bottle's files, from a path that names nothing of $BOTTLE_HOME */
        "--mount\ntype=bind,source=" DOCKER_FILES_DIR "/unit-1,target=/bottle,readonly\n",
        "--label\ndev.bottle.slug=unit-1\n",
        /* no limits in the spec: only the tmpfs default */
        "--shm-size\n1073741824\n", "--tmpfs\n/tmp:rw,nosuid,nodev,mode=1777,size=1073741824\n",
        ",size=1073741824\n--mount\n", /* the home tmpfs, then the workspace */
    };
    for (size_t i = 0; i < sizeof(run_parts) / sizeof(run_parts[0]); i++)
        if (!logged(f, run_parts[i]))
            fail_msg("docker run lacks %s", run_parts[i]);
    char *log = slurp(f->log);
    char *cg = strstr(log, "--cgroup-parent\n/");
    assert_non_null(cg);
    assert_non_null(strstr(log, "--security-opt\nseccomp=/"));
    assert_null(strstr(log, "bottle-placeholder-abcdef"));
    free(log);
    /* The profile the engine got denies unshare; the file is gone after the run. */
    char *prof_copy = fs_join(f->dir, "seccomp.json");
    char *prof = slurp(prof_copy);
    assert_non_null(strstr(prof, "\"unshare\""));
    assert_non_null(strstr(prof, "SCMP_ACT_ERRNO"));
    free(prof);
    free(prof_copy);
    char *staged = slurp(DOCKER_FILES_DIR "/unit-1/ca-bundle.pem");
    assert_string_equal(staged, "CERT\n");
    free(staged);
    backend_docker.release(&b);
    assert_true(logged(f, "rm\n--force\n--volumes\nbottle-unit-1\n---\n"));
    assert_false(fs_is_dir(DOCKER_FILES_DIR "/unit-1")); /* the copy goes with the bottle */
    free(files);
    free(tag);
    free(df);
    close(h.spec.cgroup_fd);
    if (made)
        rmdir(made);
    free(made);
    spec_free(&h);
}

static void test_limit_args(void **state)
{
    (void)state;
    struct resource_limits l = {
        .pids = 64, .memory = 128ull << 20, .cpu_milli = 1500, .tmpfs = 16ull << 20};
    struct strv argv = STRV_INIT;
    docker_limit_args(&l, &argv);
    static const char *const want[] = {"--pids-limit",  "64",        "--memory", "134217728",
                                       "--memory-swap", "134217728", "--cpus",   "1.5",
                                       "--shm-size",    "16777216"};
    assert_int_equal(argv.len, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < argv.len; i++)
        assert_string_equal(argv.items[i], want[i]);
    strv_free(&argv);
    /* max: no engine limit at all; the tmpfs keeps its size. */
    struct resource_limits none = {
        .pids = LIMIT_NONE, .memory = LIMIT_NONE, .cpu_milli = LIMIT_NONE, .tmpfs = 1ull << 20};
    docker_limit_args(&none, &argv);
    assert_int_equal(argv.len, 2);
    assert_string_equal(argv.items[0], "--shm-size");
    assert_string_equal(argv.items[1], "1048576");
    strv_free(&argv);
}

/* ---- snapshots ------------------------------------------------------------------------ */

static void test_snapshot_ref(void **state)
{
    (void)state;
    static const struct {
        const char *slug;
        const char *ref;
    } cases[] = {
        {"dev", "bottle-committed-dev:latest"},
        {"claude-k3x9a", "bottle-committed-claude-k3x9a:latest"},
        {"a--b", "bottle-committed-a--b:latest"},
        {"v1.2_x", "bottle-committed-v1.2_x:latest"},
        {"Dev", NULL},
        {"-dev", NULL},
        {"dev-", NULL},
        {"a..b", NULL},
        {"a.-b", NULL},
        {"dev.", NULL},
        {"", NULL},
        {"a/b", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *ref = docker_snapshot_ref(cases[i].slug);
        if (cases[i].ref)
            assert_string_equal(ref, cases[i].ref);
        else if (ref)
            fail_msg("'%s' should name no image, got %s", cases[i].slug, ref);
        free(ref);
    }
}

static void test_label_change(void **state)
{
    (void)state;
    char *c = docker_label_change("dev.bottle.snapshot.workspace", "/w/a \"b\" \\c $HOME");
    assert_string_equal(c, "LABEL dev.bottle.snapshot.workspace=\"/w/a \\\"b\\\" \\\\c \\$HOME\"");
    free(c);
    c = docker_label_change("dev.bottle.slug", "");
    assert_string_equal(c, "LABEL dev.bottle.slug=\"\"");
    free(c);
    assert_null(docker_label_change("k", "two\nlines"));
    assert_null(docker_label_change("k=v", "x"));
}

/* The header docker_tar_header writes, plus data and padding, is a tar the host's tar reads. */
static void test_tar_header(void **state)
{
    struct fake *f = *state;
    unsigned char h[512];
    docker_tar_header(h, ".bottle-home.tar", 0600, 1000, 1000, 6, 1700000000);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++)
        sum += i >= 148 && i < 156 ? ' ' : h[i];
    assert_int_equal(strtoul((const char *)h + 148, NULL, 8), sum);
    assert_memory_equal(h + 257,
                        "ustar\0"
                        "00",
                        8);
    assert_int_equal(h[156], '0');
    char *path = fs_join(f->dir, "one.tar");
    FILE *out = fopen(path, "we");
    assert_non_null(out);
    static const unsigned char zeros[1024 + 512];
    fwrite(h, 1, 512, out);
    fwrite("hello\n", 1, 6, out);
    fwrite(zeros, 1, 506 + 1024, out);
    fclose(out);
    char *cmd = xasprintf("tar -tvf '%s' && tar -xOf '%s' .bottle-home.tar", path, path);
    FILE *p = popen(cmd, "r");
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(buf, "-rw------- 1000/1000"));
    assert_non_null(strstr(buf, ".bottle-home.tar\nhello\n"));
    free(cmd);
    free(path);
    /* 8 GiB and more: base-256, high bit set, big-endian. */
    docker_tar_header(h, "x", 0600, 1, 1, (1ULL << 33) + 5, 0);
    assert_int_equal(h[124], 0x80);
    assert_int_equal(h[135], 5);
    assert_int_equal(h[131], 2); /* 1 << 33 is 0x02 << 32 */
}

/*
 * A fake docker for commits: the bottle's container runs as 1000:1000, `exec`
 * prints HOMEARCHIVE (the home's archive), `cp -` keeps what it got in
 * DIR/cp.tar, `create` prints a container id. container_label is the slug
 * label of bottle-unit-1; running is its State.Running.
 */
static void fake_commit(struct fake *f, const char *container_label, const char *running)
{
    char *path = fs_join(f->dir, "docker");
    char *text =
        xasprintf("#!/bin/sh\n"
                  "{ for a in \"$@\"; do printf '%%s\\n' \"$a\"; done; echo ---; } >>'%s'\n"
                  "env >'%s/env.'\"$1\"\n"
                  "case \"$1\" in\n"
                  "version) echo 20.10.24 ;;\n"
                  "container) printf '%%s\\n%%s\\n1000:1000\\n/home/agent\\n' '%s' '%s' ;;\n"
                  "exec) printf 'HOMEARCHIVE' ;;\n"
                  "create) echo scratch0123 ;;\n"
                  "cp) cat >'%s/cp.tar' ;;\n"
                  "image) [ \"$2\" = inspect ] && [ -e '%s/committed' ] && echo sha256:feed ;;\n"
                  "commit) for a in \"$@\"; do [ \"$a\" = bottle-committed-unit-1:latest ] && "
                  "touch '%s/committed'; done; exit 0 ;;\n"
                  "*) exit 0 ;;\n"
                  "esac\n",
                  f->log, f->dir, container_label, running, f->dir, f->dir, f->dir);
    testutil_write(path, text);
    chmod(path, 0755);
    setenv(DOCKER_BIN_ENV, path, 1);
    free(text);
    free(path);
}

static void test_commit_sequence(void **state)
{
    struct fake *f = *state;
    fake_commit(f, "unit-1", "true");
    struct strv bottles = STRV_INIT;
    strv_push(&bottles, "dev");
    strv_push(&bottles, "extra");
    struct docker_commit_request req = {
        .slug = "unit-1",
        .agent = "claude",
        .bottles = &bottles,
        .workspace = "/work/my \"ws\"",
        .scratch_dir = f->dir,
    };
    struct docker_snapshot snap;
    struct bottle_err err = {0};
    setenv("UNIT_SECRET_TOKEN", "tok-should-not-reach-docker", 1);
    if (docker_commit_slug(&req, &snap, &err) != 0)
        fail_msg("commit: %s", err.msg);
    unsetenv("UNIT_SECRET_TOKEN");
    assert_string_equal(snap.ref, "bottle-committed-unit-1:latest");
    assert_string_equal(snap.id, "sha256:feed");
    static const char *const steps[] = {
        "exec\n--user\n1000:1000\nbottle-unit-1\ntar\n-c\n-f\n-\n-C\n/home/agent\n.\n---\n",
        "commit\n--pause=true\n--change\nLABEL dev.bottle.slug=\"\"\n--change\n"
        "LABEL dev.bottle.home=\"\"\nbottle-unit-1\nbottle-committed-unit-1:partial\n---\n",
        "create\n--network\nnone\nbottle-committed-unit-1:partial\n---\n",
        "cp\n-\nscratch0123:/\n---\n",
        "commit\n--change\nLABEL dev.bottle.snapshot.slug=\"unit-1\"\n--change\n"
        "LABEL dev.bottle.snapshot.agent=\"claude\"\n--change\n"
        "LABEL dev.bottle.snapshot.bottles=\"dev,extra\"\n--change\n"
        "LABEL dev.bottle.snapshot.workspace=\"/work/my \\\"ws\\\"\"\n--change\n"
        "LABEL dev.bottle.snapshot.archive=\"/.bottle-home.tar\"\nscratch0123\n"
        "bottle-committed-unit-1:latest\n---\n",
        "rm\n--force\n--volumes\nscratch0123\n---\n",
        "image\nrm\nbottle-committed-unit-1:partial\n---\n",
    };
    char *log = slurp(f->log);
    const char *at = log;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        const char *hit = strstr(at, steps[i]);
        if (!hit)
            fail_msg("step %zu missing or out of order: %s\nlog:\n%s", i, steps[i], log);
        at = hit + strlen(steps[i]);
    }
    free(log);
    /* docker cp got a tar whose one entry is the home's archive, as the agent's user. */
    char *cmd =
        xasprintf("tar -tvf '%s/cp.tar' && tar -xOf '%s/cp.tar' .bottle-home.tar", f->dir, f->dir);
    FILE *p = popen(cmd, "r");
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(buf, "-rw-r--r-- 1000/1000"));
    assert_non_null(strstr(buf, ".bottle-home.tar\nHOMEARCHIVE"));
    free(cmd);
    char *env_path = fs_join(f->dir, "env.commit");
    char *env = slurp(env_path);
    assert_null(strstr(env, "tok-should-not-reach-docker"));
    free(env);
    free(env_path);
    docker_snapshot_free(&snap);
    strv_free(&bottles);
}

static void test_commit_refusals(void **state)
{
    struct fake *f = *state;
    struct docker_commit_request req = {.slug = "unit-1", .agent = "a", .scratch_dir = f->dir};
    struct docker_snapshot snap;
    struct bottle_err err = {0};
    fake_commit(f, "someone-else", "true");
    assert_int_equal(docker_commit_slug(&req, &snap, &err), -EPERM);
    assert_non_null(strstr(err.msg, "is not bottle 'unit-1''s"));
    assert_false(logged(f, "commit\n"));
    err_clear(&err);
    fake_commit(f, "unit-1", "false");
    assert_int_equal(docker_commit_slug(&req, &snap, &err), -ESRCH);
    assert_non_null(strstr(err.msg, "not running"));
    err_clear(&err);
    req.slug = "Upper";
    assert_int_equal(docker_commit_slug(&req, &snap, &err), -EINVAL);
    assert_int_equal(err.kind, ERR_KIND_USAGE);
    assert_false(logged(f, "commit\n"));
}

static void test_snapshot_find_missing(void **state)
{
    struct fake *f = *state;
    fake_commit(f, "unit-1", "true");
    struct docker_snapshot snap;
    struct bottle_err err = {0};
    assert_int_equal(docker_snapshot_find("unit-1", &snap, &err), -ENOENT);
    assert_int_equal(err.kind, ERR_KIND_USAGE);
    assert_non_null(strstr(err.msg, "no snapshot of bottle 'unit-1'"));
    assert_non_null(strstr(err.msg, "bottle commit unit-1"));
    assert_null(snap.ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_reads_name),
        cmocka_unit_test_setup_teardown(test_image_tag_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_args_keep_values_out_of_argv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_before_anything_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_then_launch_refused_outside_parent, setup,
                                        teardown),
        cmocka_unit_test(test_limit_args),
        cmocka_unit_test(test_snapshot_ref),
        cmocka_unit_test(test_label_change),
        cmocka_unit_test_setup_teardown(test_tar_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_find_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
