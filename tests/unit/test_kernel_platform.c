#include "tests/unit/testutil.h"

#include <sys/utsname.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "kernel/platform.h"

/* ---- mountinfo texts --------------------------------------------------------- */

/* systemd's default: cgroup2 at /sys/fs/cgroup, with optional fields. */
static const char MOUNTINFO_UNIFIED[] =
    "22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n"
    "23 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n"
    "1 0 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
    "26 22 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "27 22 0:26 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:7 - bpf bpf rw,mode=700\n";

/* The hybrid layout of a Debian VM: v1 hierarchies on a tmpfs, v2 under unified. */
static const char MOUNTINFO_HYBRID[] =
    "21 26 0:20 / /proc rw,relatime - proc proc rw\n"
    "22 26 0:21 / /sys rw,relatime - sysfs sysfs rw\n"
    "23 26 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334448k,mode=755\n"
    "25 23 0:23 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000\n"
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
    "28 25 0:25 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000\n"
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

/* Only v1 hierarchies; a tmpfs whose source is named "cgroup2" must not count. */
static const char MOUNTINFO_V1_ONLY[] =
    "22 26 0:21 / /sys rw,relatime - sysfs sysfs rw\n"
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs cgroup2 rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "32 30 0:29 / /sys/fs/cgroup/cgroup2 rw,relatime - cgroup cgroup rw,pids\n";

/* A private mount whose path holds a space, tab and backslash (escaped by the kernel). */
static const char MOUNTINFO_CUSTOM_ESCAPED[] =
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "50 26 0:40 / /run/bottle/my\\040cgroup\\011v2\\134x rw,relatime master:3 - cgroup2 none rw\n"
    "51 26 0:41 / /run/bottle/bpf\\040pins rw,relatime - bpf bpf rw\n";

/* Two cgroup2 mounts: the preferred path wins even when listed second. */
static const char MOUNTINFO_PREFERRED_SECOND[] =
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "22 26 0:21 / /sys rw,relatime - sysfs sysfs rw\n"
    "60 26 0:40 / /run/bottle/cg rw,relatime - cgroup2 none rw\n"
    "61 26 0:41 / /srv/cg2 rw,relatime - cgroup2 none rw\n"
    "62 22 0:42 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
    "63 26 0:43 / /run/bottle/bpf rw,relatime - bpf bpf rw\n"
    "64 22 0:44 / /sys/fs/bpf rw,relatime - bpf bpf rw\n";

/* Two non-preferred cgroup2 mounts: the first one listed wins. */
static const char MOUNTINFO_TWO_CUSTOM[] = "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
                                           "60 26 0:40 / /srv/a rw,relatime - cgroup2 none rw\n"
                                           "61 26 0:40 / /srv/b rw,relatime - cgroup2 none rw\n";

/* /sys/fs/cgroup was cgroup2 but a tmpfs was mounted over it; /srv/cg is still reachable. */
static const char MOUNTINFO_OVERMOUNTED[] =
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "22 26 0:21 / /sys rw,relatime - sysfs sysfs rw\n"
    "30 22 0:25 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n"
    "70 30 0:50 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n"
    "71 26 0:25 / /srv/cg rw,relatime - cgroup2 cgroup2 rw\n";

/* A fresh sysfs over /sys (what `ip netns exec` does) hides everything below the old one. */
static const char MOUNTINFO_SYS_REMOUNTED[] =
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "22 26 0:21 / /sys rw,relatime - sysfs sysfs rw\n"
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    "41 22 0:38 / /sys/fs/bpf rw,relatime - bpf bpf rw\n"
    "80 22 0:60 / /sys rw,relatime - sysfs sysfs rw\n";

/* Lines of every wrong shape, then one good line at the end. */
static const char MOUNTINFO_MALFORMED[] =
    "\n"
    "   \n"
    "garbage\n"
    "1 2 3 4 5 6 7\n"
    "40 30 0:37 / /a rw,relatime cgroup2 cgroup2 rw\n"
    "41 30 0:37 / /b rw,relatime -\n"
    "x 30 0:37 / /c rw,relatime - cgroup2 cgroup2 rw\n"
    "42 y 0:37 / /d rw,relatime - cgroup2 cgroup2 rw\n"
    "43 30 0:37 / relative rw,relatime - cgroup2 cgroup2 rw\n"
    "44 30 0:37 / /trailing\\ rw - cgroup2 cgroup2 rw\n"
    "45 30 0:37 / /short\\04 rw - cgroup2 cgroup2 rw\n"
    "46 30 0:37 / /nul\\000 rw - bpf bpf rw\n"
    "- - - - - - - - - -\n"
    "-1 30 0:37 / /neg rw - cgroup2 cgroup2 rw\n"
    "47 47 0:37 / /self-parent rw - tmpfs tmpfs rw\n"
    "99999999999999999999999 30 0:37 / /huge rw - cgroup2 cgroup2 rw";

struct find_case {
    const char *name;
    const char *text;
    int cgroup2_rc;
    const char *cgroup2;
    int bpffs_rc;
    const char *bpffs;
};

static const struct find_case FIND_CASES[] = {
    {"unified", MOUNTINFO_UNIFIED, 0, "/sys/fs/cgroup", 0, "/sys/fs/bpf"},
    {"hybrid", MOUNTINFO_HYBRID, 0, "/sys/fs/cgroup/unified", -ENOENT, NULL},
    {"v1 only", MOUNTINFO_V1_ONLY, -ENOENT, NULL, -ENOENT, NULL},
    {"custom escaped", MOUNTINFO_CUSTOM_ESCAPED, 0, "/run/bottle/my cgroup\tv2\\x", 0,
     "/run/bottle/bpf pins"},
    {"preferred second", MOUNTINFO_PREFERRED_SECOND, 0, "/sys/fs/cgroup", 0, "/sys/fs/bpf"},
    {"two custom", MOUNTINFO_TWO_CUSTOM, 0, "/srv/a", -ENOENT, NULL},
    {"overmounted", MOUNTINFO_OVERMOUNTED, 0, "/srv/cg", -ENOENT, NULL},
    {"sys remounted", MOUNTINFO_SYS_REMOUNTED, -ENOENT, NULL, -ENOENT, NULL},
    {"malformed", MOUNTINFO_MALFORMED, 0, "/trailing\\", 0, "/nul\\000"},
    {"empty", "", -ENOENT, NULL, -ENOENT, NULL},
    {"null", NULL, -ENOENT, NULL, -ENOENT, NULL},
};

static void check_found(const char *name, const char *what, int rc, char *path, int want_rc,
                        const char *want)
{
    if (rc != want_rc)
        fail_msg("%s: %s: rc %d, want %d", name, what, rc, want_rc);
    if (want) {
        if (!path || strcmp(path, want) != 0)
            fail_msg("%s: %s: path '%s', want '%s'", name, what, path ? path : "(null)", want);
    } else if (path) {
        fail_msg("%s: %s: path '%s', want none", name, what, path);
    }
    free(path);
}

static void test_find_mounts_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(FIND_CASES) / sizeof(*FIND_CASES); i++) {
        const struct find_case *c = &FIND_CASES[i];
        char *path = (char *)"sentinel";
        int rc = platform_find_cgroup2_in(c->text, &path);
        check_found(c->name, "cgroup2", rc, path, c->cgroup2_rc, c->cgroup2);
        path = (char *)"sentinel";
        rc = platform_find_bpffs_in(c->text, &path);
        check_found(c->name, "bpffs", rc, path, c->bpffs_rc, c->bpffs);
    }
}

static void test_find_mounts_fixture_files(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        const char *cgroup2;
        const char *bpffs;
    } files[] = {
        {"tests/fixtures/mountinfo/hybrid.txt", "/sys/fs/cgroup/unified", NULL},
        {"tests/fixtures/mountinfo/unified.txt", "/sys/fs/cgroup", "/sys/fs/bpf"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
        const char *src = getenv("BOTTLE_SRC");
        char *file = fs_join(src && *src ? src : ".", files[i].file);
        struct buf text = BUF_INIT;
        struct bottle_err err = {0};
        if (fs_read_file(file, 1 << 20, &text, &err) < 0)
            fail_msg("%s", err.msg);
        char *path = NULL;
        int rc = platform_find_cgroup2_in(text.data, &path);
        check_found(files[i].file, "cgroup2", rc, path, 0, files[i].cgroup2);
        path = NULL;
        rc = platform_find_bpffs_in(text.data, &path);
        check_found(files[i].file, "bpffs", rc, path, files[i].bpffs ? 0 : -ENOENT, files[i].bpffs);
        buf_free(&text);
        free(file);
    }
}

/* A line with more fields than the parser keeps, and a very long mount point. */
static void test_find_mounts_oversized_lines(void **state)
{
    (void)state;
    struct buf text = BUF_INIT;
    buf_append_str(&text, "26 1 254:0 / / rw - ext4 /dev/vda rw\n60 26 0:40 / /many rw");
    for (int i = 0; i < 200; i++)
        buf_printf(&text, " tag:%d", i);
    buf_append_str(&text, " - cgroup2 none rw\n61 26 0:41 / /");
    for (int i = 0; i < 5000; i++)
        buf_append_char(&text, 'x');
    buf_append_str(&text, " rw - bpf bpf rw\n");
    char *path = NULL;
    assert_int_equal(platform_find_cgroup2_in(text.data, &path), -ENOENT);
    assert_null(path);
    assert_int_equal(platform_find_bpffs_in(text.data, &path), 0);
    assert_int_equal(strlen(path), 5001);
    free(path);
    buf_free(&text);
}

/* ---- tier ---------------------------------------------------------------------- */

static void facts_linux_root(struct platform_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->os = (char *)"Linux";
    f->kernel = (char *)"6.18.44";
    f->arch = (char *)"x86_64";
    f->is_root = true;
    f->cgroup2 = (char *)"/sys/fs/cgroup/unified";
    f->bpffs = (char *)"/sys/fs/bpf";
    f->bpf_cgroup_load = true;
    f->btf = true;
    f->seccomp_api = 6;
    f->seccomp_actions = (char *)"kill_process kill_thread trap errno user_notif trace log allow";
    f->seccomp_user_notif = true;
    f->landlock_abi = 7;
    f->netns = true;
}

static void facts_linux_user(struct platform_facts *f)
{
    facts_linux_root(f);
    f->is_root = false;
    f->netns = false;
    f->bpf_cgroup_load = false;
    f->bpf_why = (char *)"Operation not permitted";
}

enum tier_setup {
    SETUP_KERNEL,
    SETUP_KERNEL_NO_BPFFS,
    SETUP_ROOT_NO_CGROUP2,
    SETUP_ROOT_BPF_DENIED,
    SETUP_ROOT_NO_NETNS,
    SETUP_USER_LANDLOCK,
    SETUP_USER_WITH_CAPS,
    SETUP_USER_OLD_LANDLOCK,
    SETUP_USER_NO_LANDLOCK,
    SETUP_DARWIN,
};

static void tier_setup(enum tier_setup s, struct platform_facts *f)
{
    switch (s) {
    case SETUP_KERNEL:
        facts_linux_root(f);
        break;
    case SETUP_KERNEL_NO_BPFFS:
        facts_linux_root(f);
        f->bpffs = NULL;
        break;
    case SETUP_ROOT_NO_CGROUP2:
        facts_linux_root(f);
        f->cgroup2 = NULL;
        f->cgroup2_why = (char *)"no cgroup2 mount in /proc/self/mountinfo";
        break;
    case SETUP_ROOT_BPF_DENIED:
        facts_linux_root(f);
        f->bpf_cgroup_load = false;
        f->bpf_why = (char *)"Operation not permitted";
        break;
    case SETUP_ROOT_NO_NETNS:
        facts_linux_root(f);
        f->bpf_cgroup_load = false;
        f->bpf_why = (char *)"Invalid argument";
        f->netns = false;
        break;
    case SETUP_USER_LANDLOCK:
        facts_linux_user(f);
        break;
    case SETUP_USER_WITH_CAPS:
        facts_linux_user(f);
        f->bpf_cgroup_load = true;
        f->bpf_why = NULL;
        break;
    case SETUP_USER_OLD_LANDLOCK:
        facts_linux_user(f);
        f->landlock_abi = 3;
        break;
    case SETUP_USER_NO_LANDLOCK:
        facts_linux_user(f);
        f->landlock_abi = 0;
        break;
    case SETUP_DARWIN:
        memset(f, 0, sizeof(*f));
        f->os = (char *)"Darwin";
        f->kernel = (char *)"24.1.0";
        f->arch = (char *)"arm64";
        f->container = (char *)"/usr/local/bin/container";
        break;
    }
}

struct tier_case {
    const char *name;
    enum tier_setup setup;
    enum enforcement_tier tier;
    const char *why;       /* exact sentence, or NULL */
    const char *contains1; /* substrings the sentence must hold */
    const char *contains2;
};

static const struct tier_case TIER_CASES[] = {
    {"kernel", SETUP_KERNEL, TIER_KERNEL,
     "all layers are available: cgroup2, cgroup BPF, network namespaces, seccomp and the proxy",
     NULL, NULL},
    {"kernel without bpffs", SETUP_KERNEL_NO_BPFFS, TIER_KERNEL, NULL, "all layers are available",
     "bpffs is not mounted"},
    {"root without cgroup2", SETUP_ROOT_NO_CGROUP2, TIER_NETNS, NULL,
     "cgroup2 is unavailable (no cgroup2 mount in /proc/self/mountinfo)",
     "mount -t cgroup2 none /sys/fs/cgroup"},
    {"root with BPF denied", SETUP_ROOT_BPF_DENIED, TIER_NETNS, NULL,
     "cannot be loaded even as root (Operation not permitted)", "CONFIG_CGROUP_BPF"},
    {"root without netns", SETUP_ROOT_NO_NETNS, TIER_PROXY_ONLY, NULL,
     "network namespaces are unavailable", "CONFIG_NET_NS"},
    {"user with Landlock 7", SETUP_USER_LANDLOCK, TIER_UNPRIVILEGED,
     "cgroup BPF programs cannot be loaded (Operation not permitted): run bottle as root or with "
     "CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON for kernel enforcement",
     NULL, NULL},
    {"user with BPF caps", SETUP_USER_WITH_CAPS, TIER_UNPRIVILEGED, NULL, "bottle is not root",
     "run bottle as root"},
    {"user with Landlock 3", SETUP_USER_OLD_LANDLOCK, TIER_PROXY_ONLY, NULL, "Landlock ABI 3",
     "need ABI 4"},
    {"user without Landlock", SETUP_USER_NO_LANDLOCK, TIER_PROXY_ONLY, NULL,
     "Landlock is unavailable", "run bottle as root"},
    {"macOS", SETUP_DARWIN, TIER_PROXY_ONLY, NULL, "Darwin has no cgroup BPF",
     "run bottle on Linux"},
};

static void test_tier_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(TIER_CASES) / sizeof(*TIER_CASES); i++) {
        const struct tier_case *c = &TIER_CASES[i];
        struct platform_facts f;
        tier_setup(c->setup, &f);
        char *why = NULL;
        enum enforcement_tier t = platform_tier(&f, &why);
        if (t != c->tier)
            fail_msg("%s: tier %d, want %d (%s)", c->name, t, c->tier, why);
        assert_non_null(why);
        if (c->why && strcmp(why, c->why) != 0)
            fail_msg("%s: why '%s'\nwant '%s'", c->name, why, c->why);
        if (c->contains1 && !strstr(why, c->contains1))
            fail_msg("%s: why '%s' lacks '%s'", c->name, why, c->contains1);
        if (c->contains2 && !strstr(why, c->contains2))
            fail_msg("%s: why '%s' lacks '%s'", c->name, why, c->contains2);
        /* One sentence: no line breaks, no full stop inside. */
        if (strchr(why, '\n') || strstr(why, ". "))
            fail_msg("%s: why is not one sentence: '%s'", c->name, why);
        free(why);
        assert_int_equal(platform_tier(&f, NULL), c->tier);
    }
}

/* ---- JSON and text ----------------------------------------------------------- */

static void test_facts_json_keys(void **state)
{
    (void)state;
    struct platform_facts f;
    facts_linux_root(&f);
    f.bpffs = NULL;
    f.docker = (char *)"/usr/local/bin/docker";
    f.memory_bytes = 24ull << 30;
    f.controllers[CTRL_PIDS] = (struct platform_controller){CTRL_IN_V1, "/sys/fs/cgroup/pids"};
    f.controllers[CTRL_MEMORY].where = CTRL_IN_V2;
    cJSON *doc = platform_facts_json(&f);
    assert_non_null(doc);

    static const char *const top[] = {"os",      "kernel",       "arch",  "root",
                                      "cgroup2", "bpffs",        "bpf",   "btf",
                                      "seccomp", "landlock_abi", "netns", "memory_bytes",
                                      "limits",  "backends",     "tier",  "tier_why"};
    for (size_t i = 0; i < sizeof(top) / sizeof(*top); i++)
        if (!cJSON_HasObjectItem(doc, top[i]))
            fail_msg("missing key %s", top[i]);
    assert_int_equal(cJSON_GetArraySize(doc), sizeof(top) / sizeof(*top));

    assert_string_equal(json_get_str(doc, "os"), "Linux");
    assert_string_equal(json_get_str(doc, "kernel"), "6.18.44");
    assert_true(json_get_bool(doc, "root", false));
    const cJSON *cg = cJSON_GetObjectItem(doc, "cgroup2");
    assert_string_equal(json_get_str(cg, "path"), "/sys/fs/cgroup/unified");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cg, "why")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(doc, "bpffs")));
    const cJSON *bpf = cJSON_GetObjectItem(doc, "bpf");
    assert_true(json_get_bool(bpf, "cgroup_load", false));
    assert_true(cJSON_HasObjectItem(bpf, "why"));
    assert_true(json_get_bool(doc, "btf", false));
    const cJSON *sc = cJSON_GetObjectItem(doc, "seccomp");
    assert_int_equal((int)json_get_num(sc, "api_level", 0), 6);
    const cJSON *actions = cJSON_GetObjectItem(sc, "actions");
    assert_true(cJSON_IsArray(actions));
    assert_int_equal(cJSON_GetArraySize(actions), 8);
    assert_string_equal(cJSON_GetArrayItem(actions, 4)->valuestring, "user_notif");
    assert_true(json_get_bool(sc, "user_notif", false));
    assert_int_equal((int)json_get_num(doc, "landlock_abi", 0), 7);
    assert_true(json_get_bool(doc, "netns", false));
    assert_true(json_get_num(doc, "memory_bytes", 0) == (double)(24ull << 30));
    const cJSON *lim = cJSON_GetObjectItem(doc, "limits");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(lim, "pids"), "where"), "cgroup1");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(lim, "pids"), "mount"),
                        "/sys/fs/cgroup/pids");
    assert_string_equal(json_get_str(cJSON_GetObjectItem(lim, "memory"), "where"), "cgroup2");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(lim, "cpu"), "where")));
    const cJSON *be = cJSON_GetObjectItem(doc, "backends");
    assert_string_equal(json_get_str(be, "docker"), "/usr/local/bin/docker");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(be, "smolvm")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(be, "container")));
    /* tier was never set on these facts, so the JSON computes it */
    assert_string_equal(json_get_str(doc, "tier"), "kernel");
    assert_non_null(strstr(json_get_str(doc, "tier_why"), "bpffs is not mounted"));
    cJSON_Delete(doc);
}

static void test_facts_json_missing_values(void **state)
{
    (void)state;
    struct platform_facts f;
    facts_linux_user(&f);
    f.cgroup2 = NULL;
    f.cgroup2_why = (char *)"no cgroup2 mount in /proc/self/mountinfo";
    f.seccomp_actions = NULL;
    f.seccomp_user_notif = false;
    f.tier = TIER_UNPRIVILEGED;
    f.tier_why = (char *)"stored sentence";
    cJSON *doc = platform_facts_json(&f);
    const cJSON *cg = cJSON_GetObjectItem(doc, "cgroup2");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cg, "path")));
    assert_string_equal(json_get_str(cg, "why"), "no cgroup2 mount in /proc/self/mountinfo");
    const cJSON *bpf = cJSON_GetObjectItem(doc, "bpf");
    assert_false(json_get_bool(bpf, "cgroup_load", true));
    assert_string_equal(json_get_str(bpf, "why"), "Operation not permitted");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "seccomp"), "actions")));
    assert_false(json_get_bool(doc, "root", true));
    assert_string_equal(json_get_str(doc, "tier"), "unprivileged");
    assert_string_equal(json_get_str(doc, "tier_why"), "stored sentence");
    cJSON_Delete(doc);
}

static void test_facts_text(void **state)
{
    (void)state;
    struct platform_facts f;
    facts_linux_root(&f);
    f.bpffs = NULL;
    f.docker = (char *)"/usr/local/bin/docker";
    f.controllers[CTRL_PIDS] = (struct platform_controller){CTRL_IN_V1, "/sys/fs/cgroup/pids"};
    f.controllers[CTRL_MEMORY].where = CTRL_IN_V2;
    struct buf out = BUF_INIT;
    platform_facts_text(&f, &out);
    assert_non_null(strstr(out.data, "pids       ok       controller in the cgroup v1 hierarchy at "
                                     "/sys/fs/cgroup/pids (bottle limits)\n"));
    assert_non_null(
        strstr(out.data, "memory     ok       controller in cgroup2 (bottle limits)\n"));
    assert_non_null(strstr(out.data, "cpu        missing  no cpu controller: native bottles refuse "
                                     "to start unless limits.cpus is max\n"));
    assert_non_null(strstr(out.data, "cgroup2    ok       /sys/fs/cgroup/unified\n"));
    assert_non_null(strstr(out.data, "bpffs      missing  not mounted"));
    assert_non_null(strstr(out.data, "bpf        ok       cgroup sock_addr programs load\n"));
    assert_non_null(strstr(out.data, "landlock   ok       ABI 7"));
    assert_non_null(strstr(out.data, "docker     ok       /usr/local/bin/docker\n"));
    assert_non_null(strstr(out.data, "smolvm     missing  not on PATH\n"));
    /* one fact a line, aligned: the marker always starts at column 11 */
    size_t lines = 0;
    for (char *line = out.data; *line; line = strchr(line, '\n') + 1) {
        lines++;
        if (str_starts_with(line, "tier: "))
            break;
        if (!str_starts_with(line + 11, "ok ") && !str_starts_with(line + 11, "missing "))
            fail_msg("unaligned line: %.*s", (int)strcspn(line, "\n"), line);
    }
    assert_int_equal(lines, 18);
    const char *tier = strstr(out.data, "tier: kernel - all layers are available");
    assert_non_null(tier);
    assert_non_null(strchr(tier, '\n'));
    assert_int_equal(strchr(tier, '\n')[1], '\0');
    buf_free(&out);

    facts_linux_user(&f);
    f.landlock_abi = 0;
    platform_facts_text(&f, &out);
    assert_non_null(strstr(out.data, "root       missing  not root"));
    assert_non_null(
        strstr(out.data, "bpf        missing  cgroup sock_addr programs do not load: Operation"));
    assert_non_null(strstr(out.data, "landlock   missing  unavailable\n"));
    assert_non_null(strstr(out.data, "tier: proxy-only - "));
    buf_free(&out);
}

static void test_facts_free_is_idempotent(void **state)
{
    (void)state;
    platform_facts_free(NULL);
    struct platform_facts f;
    memset(&f, 0, sizeof(f));
    f.os = strdup("Linux");
    f.cgroup2_why = strdup("x");
    f.tier_why = strdup("y");
    platform_facts_free(&f);
    assert_null(f.os);
    assert_null(f.tier_why);
    platform_facts_free(&f);
}

/* ---- the live host ------------------------------------------------------------ */

static void test_probe_matches_host(void **state)
{
    (void)state;
    struct platform_facts f;
    platform_probe(&f);

    struct utsname u;
    assert_int_equal(uname(&u), 0);
    assert_string_equal(f.os, u.sysname);
    assert_string_equal(f.kernel, u.release);
    assert_string_equal(f.arch, u.machine);
    assert_int_equal(f.is_root, geteuid() == 0);

    struct bottle_err err = {0};
    char *cg = NULL;
    if (platform_find_cgroup2(&cg, &err) == 0) {
        assert_non_null(f.cgroup2);
        assert_string_equal(f.cgroup2, cg);
        assert_null(f.cgroup2_why);
        assert_true(fs_is_dir(f.cgroup2));
    } else {
        assert_null(f.cgroup2);
        assert_non_null(f.cgroup2_why);
        assert_non_null(strstr(err.msg, "mount -t cgroup2"));
    }
    free(cg);
    char *bpffs = NULL;
    if (platform_find_bpffs(&bpffs, &err) == 0)
        assert_string_equal(f.bpffs, bpffs);
    else
        assert_null(f.bpffs);
    free(bpffs);

    assert_int_equal(f.btf, access("/sys/kernel/btf/vmlinux", F_OK) == 0);
    if (f.bpf_cgroup_load)
        assert_null(f.bpf_why);
    else
        assert_non_null(f.bpf_why);
    if (fs_is_file("/proc/sys/kernel/seccomp/actions_avail")) {
        assert_non_null(f.seccomp_actions);
        assert_non_null(strstr(f.seccomp_actions, "allow"));
        assert_null(strchr(f.seccomp_actions, '\n'));
        assert_int_equal(f.seccomp_user_notif, strstr(f.seccomp_actions, "user_notif") != NULL);
    }
    assert_true(f.seccomp_api >= 0);
    assert_true(f.landlock_abi >= 0);
    assert_int_equal(f.netns, geteuid() == 0 && access("/proc/self/ns/net", F_OK) == 0);

    char *docker = fs_which("docker");
    if (docker)
        assert_string_equal(f.docker, docker);
    else
        assert_null(f.docker);
    free(docker);

    char *why = NULL;
    assert_int_equal(f.tier, platform_tier(&f, &why));
    assert_string_equal(f.tier_why, why);
    free(why);
    assert_true(f.tier >= TIER_PROXY_ONLY && f.tier <= TIER_KERNEL);

    cJSON *doc = platform_facts_json(&f);
    assert_string_equal(json_get_str(doc, "tier_why"), f.tier_why);
    cJSON_Delete(doc);
    struct buf text = BUF_INIT;
    platform_facts_text(&f, &text);
    assert_non_null(strstr(text.data, "tier: "));
    buf_free(&text);

    platform_facts_free(&f);
    platform_facts_free(&f);
}

/* As root on a host with cgroup2, everything the kernel tier needs must be there. */
static void test_probe_root_gets_kernel_tier(void **state)
{
    (void)state;
    REQUIRE_ROOT();
    struct platform_facts f;
    platform_probe(&f);
    assert_string_equal(f.os, "Linux");
    assert_true(f.is_root);
    assert_true(f.netns);
    if (!f.cgroup2) {
        /* A root host without cgroup2 is legitimate; it still has the netns tier. */
        assert_int_equal(f.tier, TIER_NETNS);
        platform_facts_free(&f);
        return;
    }
    if (!f.bpf_cgroup_load)
        fail_msg("root could not load a cgroup BPF program: %s", f.bpf_why);
    assert_int_equal(f.tier, TIER_KERNEL);
    assert_non_null(strstr(f.tier_why, "all layers are available"));
    assert_true(f.seccomp_api > 0);
    platform_facts_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_mounts_table),
        cmocka_unit_test(test_find_mounts_fixture_files),
        cmocka_unit_test(test_find_mounts_oversized_lines),
        cmocka_unit_test(test_tier_table),
        cmocka_unit_test(test_facts_json_keys),
        cmocka_unit_test(test_facts_json_missing_values),
        cmocka_unit_test(test_facts_text),
        cmocka_unit_test(test_facts_free_is_idempotent),
        cmocka_unit_test(test_probe_matches_host),
        cmocka_unit_test(test_probe_root_gets_kernel_tier),
    };
    return cmocka_run_group_tests_name("platform", tests, NULL, NULL);
}
