/*
 * index — where agents, bottles and settings live on disk.
 *
 * Listing reads directory entries only, so one broken file never hides the
 * others; content is read when a name is loaded, and then only that file.
 * The project directory (./.bottle) may define agents and bottles, which win
 * over $BOTTLE_HOME's; host settings (budgets, tiers) come from
 * $BOTTLE_HOME/settings.yml alone, never from the project.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "manifest/manifest.h"

#define MANIFEST_MAX_BYTES (1024 * 1024)

int manifest_index_open(struct manifest_index *idx, const char *bottle_home, const char *cwd,
                        struct bottle_err *err)
{
    memset(idx, 0, sizeof(*idx));
    if (!bottle_home || !*bottle_home) {
        const char *env = getenv("BOTTLE_HOME");
        bottle_home = env && *env ? env : NULL;
    }
    if (bottle_home) {
        idx->home_dir = xstrdup(bottle_home);
    } else {
        const char *home = fs_home_dir();
        if (!home || !*home)
            return err_set_kind(err, ERR_KIND_MANIFEST, ENOENT,
                                "manifest: cannot find the home directory; set BOTTLE_HOME");
        idx->home_dir = fs_join(home, ".bottle");
    }

    char here[PATH_MAX];
    if (!cwd) {
        if (!getcwd(here, sizeof(here))) {
            int e = errno;
            manifest_index_free(idx);
            return err_set_kind(err, ERR_KIND_MANIFEST, e,
                                "manifest: cannot read the working directory: %s", strerror(e));
        }
        cwd = here;
    }
    char *project = fs_join(cwd, ".bottle");
    if (fs_is_dir(project)) {
        /* Running from $HOME: the project dir is the home dir; list it once. */
        char *a = realpath(project, NULL);
        char *b = realpath(idx->home_dir, NULL);
        bool same = a && b && strcmp(a, b) == 0;
        free(a);
        free(b);
        if (!same) {
            idx->project_dir = project;
            project = NULL;
        }
    }
    free(project);
    return 0;
}

void manifest_index_free(struct manifest_index *idx)
{
    if (!idx)
        return;
    free(idx->home_dir);
    free(idx->project_dir);
    idx->home_dir = idx->project_dir = NULL;
}

/* ---- listing ------------------------------------------------------------------ */

static void scan_dir(const char *root, const char *kind, struct strv *out)
{
    if (!root)
        return;
    char *dir = fs_join(root, kind);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n <= 3 || strcmp(de->d_name + n - 3, ".md") != 0)
            continue;
        char *stem = xstrndup(de->d_name, n - 3);
        bool keep = manifest_name_valid(stem) && !strv_contains(out, stem);
        if (keep && de->d_type != DT_REG) {
            char *path = fs_join(dir, de->d_name);
            keep = fs_is_file(path);
            free(path);
        }
        if (keep)
            strv_push_owned(out, stem);
        else
            free(stem);
    }
    closedir(d);
    free(dir);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_names(const struct manifest_index *idx, const char *kind, struct strv *out)
{
    memset(out, 0, sizeof(*out));
    scan_dir(idx->project_dir, kind, out);
    scan_dir(idx->home_dir, kind, out);
    if (out->len > 1)
        qsort(out->items, out->len, sizeof(*out->items), cmp_str);
}

void manifest_index_agents(const struct manifest_index *idx, struct strv *out)
{
    list_names(idx, "agents", out);
}

void manifest_index_bottles(const struct manifest_index *idx, struct strv *out)
{
    list_names(idx, "bottles", out);
}

/* ---- lookup and load ---------------------------------------------------------- */

static char *find_path(const struct manifest_index *idx, const char *kind, const char *name)
{
    if (!manifest_name_valid(name))
        return NULL;
    const char *roots[] = {idx->project_dir, idx->home_dir};
    for (size_t i = 0; i < 2; i++) {
        if (!roots[i])
            continue;
        char *file = xasprintf("%s/%s.md", kind, name);
        char *path = fs_join(roots[i], file);
        free(file);
        if (fs_is_file(path))
            return path;
        free(path);
    }
    return NULL;
}

char *manifest_index_agent_path(const struct manifest_index *idx, const char *name)
{
    return find_path(idx, "agents", name);
}

char *manifest_index_bottle_path(const struct manifest_index *idx, const char *name)
{
    return find_path(idx, "bottles", name);
}

/* "agent 'x' not defined. Available: a, b" */
static int not_defined(const struct manifest_index *idx, const char *kind, const char *what,
                       const char *name, struct bottle_err *err)
{
    struct strv names;
    list_names(idx, kind, &names);
    struct buf list = BUF_INIT;
    for (size_t i = 0; i < names.len; i++)
        buf_printf(&list, "%s%s", i ? ", " : "", names.items[i]);
    int rc = err_set_kind(err, ERR_KIND_MANIFEST, ENOENT, "%s '%s' not defined. Available: %s",
                          what, name, names.len ? list.data : "(none)");
    buf_free(&list);
    strv_free(&names);
    return rc;
}

static int read_manifest(const char *path, struct buf *text, struct bottle_err *err)
{
    int rc = fs_read_file(path, MANIFEST_MAX_BYTES, text, err);
    if (rc < 0) {
        const char *why = err ? err->msg : "";
        /* fs_read_file says "cannot read PATH: why"; keep only the why. */
        char *prefix = xasprintf("cannot read %s: ", path);
        if (err && str_starts_with(why, prefix))
            why += strlen(prefix);
        char *reason = xstrdup(why);
        int code = err ? err->code : EIO;
        rc = err_set_kind(err, ERR_KIND_MANIFEST, code, "manifest: %s: cannot read: %s", path,
                          reason);
        free(reason);
        free(prefix);
        buf_free(text);
    }
    return rc;
}

int manifest_index_load_agent(const struct manifest_index *idx, const char *name,
                              struct agent_def *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    char *path = manifest_index_agent_path(idx, name);
    if (!path)
        return not_defined(idx, "agents", "agent", name, err);
    struct buf text = BUF_INIT;
    int rc = read_manifest(path, &text, err);
    if (rc == 0)
        rc = agent_parse(path, name, text.data ? text.data : "", text.len, out, err);
    buf_free(&text);
    free(path);
    return rc;
}

int manifest_index_load_bottle(const struct manifest_index *idx, const char *name,
                               struct bottle_def *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    char *path = manifest_index_bottle_path(idx, name);
    if (!path)
        return not_defined(idx, "bottles", "bottle", name, err);
    struct buf text = BUF_INIT;
    int rc = read_manifest(path, &text, err);
    if (rc == 0)
        rc = bottle_parse(path, name, text.data ? text.data : "", text.len, out, err);
    buf_free(&text);
    free(path);
    return rc;
}

int manifest_index_load_settings(const struct manifest_index *idx, struct settings *out,
                                 struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!idx->home_dir)
        return 0;
    char *path = fs_join(idx->home_dir, "settings.yml");
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        free(path);
        return 0;
    }
    struct buf text = BUF_INIT;
    int rc = read_manifest(path, &text, err);
    if (rc == 0)
        rc = settings_parse(path, text.data ? text.data : "", text.len, out, err);
    buf_free(&text);
    free(path);
    return rc;
}
