/*
 * index — where agents, bottles and settings live on disk.
 *
 * Listing reads directory entries only, so one broken file never hides the
 * others; content is read when a name is loaded, and then only that file.
 * The project directory (./.bottle) may define agents and bottles, which win
 * over $BOTTLE_HOME's; host settings (budgets, tiers) come from
 * $BOTTLE_HOME/settings.yml alone, never from the project. The project's
 * files are read once, when the index opens (manifest/trust.h): listing and
 * loading use that copy, and its bottles pass the project rules.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "manifest/manifest.h"
#include "manifest/trust.h"

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
    if (!idx->project_dir)
        return 0;

    idx->project = xcalloc(1, sizeof(*idx->project));
    idx->trust = xcalloc(1, sizeof(*idx->trust));
    idx->credentials = xcalloc(1, sizeof(*idx->credentials));
    int rc = project_files_read(cwd, idx->project, err);
    if (rc == 0)
        rc = trust_evaluate(idx->home_dir, idx->project, idx->trust, err);
    if (rc < 0) {
        manifest_index_free(idx);
        return rc;
    }
    if (idx->project->len)
        credential_uses_collect(idx->home_dir, idx->credentials);
    return 0;
}

void manifest_index_free(struct manifest_index *idx)
{
    if (!idx)
        return;
    free(idx->home_dir);
    free(idx->project_dir);
    project_files_free(idx->project);
    free(idx->project);
    trust_report_free(idx->trust);
    free(idx->trust);
    credential_uses_free(idx->credentials);
    free(idx->credentials);
    memset(idx, 0, sizeof(*idx));
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

/* The project's names, from the copy read at open. */
static void scan_project(const struct manifest_index *idx, const char *kind, struct strv *out)
{
    size_t klen = strlen(kind);
    for (size_t i = 0; idx->project && i < idx->project->len; i++) {
        const char *rel = idx->project->items[i].rel;
        if (strncmp(rel, kind, klen) != 0 || rel[klen] != '/' || strchr(rel + klen + 1, '/'))
            continue;
        const char *base = rel + klen + 1;
        size_t n = strlen(base);
        if (n <= 3 || strcmp(base + n - 3, ".md") != 0)
            continue;
        char *stem = xstrndup(base, n - 3);
        if (manifest_name_valid(stem) && !strv_contains(out, stem))
            strv_push_owned(out, stem);
        else
            free(stem);
    }
}

static void list_names(const struct manifest_index *idx, const char *kind, struct strv *out)
{
    memset(out, 0, sizeof(*out));
    scan_project(idx, kind, out);
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

/* The path defining kind/name; *from_project says it is a project file (in idx->project). */
static char *locate(const struct manifest_index *idx, const char *kind, const char *name,
                    const struct project_file **from_project)
{
    if (from_project)
        *from_project = NULL;
    if (!manifest_name_valid(name))
        return NULL;
    char *file = xasprintf("%s/%s.md", kind, name);
    const struct project_file *pf = project_files_find(idx->project, file);
    char *path = NULL;
    if (pf) {
        path = fs_join(idx->project_dir, file);
        if (from_project)
            *from_project = pf;
    } else if (idx->home_dir) {
        path = fs_join(idx->home_dir, file);
        if (!fs_is_file(path)) {
            free(path);
            path = NULL;
        }
    }
    free(file);
    return path;
}

static char *find_path(const struct manifest_index *idx, const char *kind, const char *name)
{
    return locate(idx, kind, name, NULL);
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
    const char *near = strv_closest(&names, name);
    char hint[96] = "";
    if (near)
        snprintf(hint, sizeof(hint), " (did you mean '%.64s'?)", near);
    int rc = err_set_kind(err, ERR_KIND_MANIFEST, ENOENT, "%s '%s' not defined%s. Available: %s",
                          what, name, hint, names.len ? list.data : "(none)");
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

/* A file's text: a project file from the copy read at open, any other from disk. */
static int read_text(const char *path, const struct project_file *pf, struct buf *text,
                     struct bottle_err *err)
{
    if (!pf)
        return read_manifest(path, text, err);
    if (pf->too_big || !pf->data)
        return err_set_kind(err, ERR_KIND_MANIFEST, EFBIG,
                            "manifest: %s: cannot read: larger than %u bytes", path,
                            PROJECT_MANIFEST_MAX);
    buf_append(text, pf->data, pf->len);
    return 0;
}

int manifest_index_load_agent(const struct manifest_index *idx, const char *name,
                              struct agent_def *out, struct bottle_err *err)
{
    memset(out, 0, sizeof(*out));
    const struct project_file *pf = NULL;
    char *path = locate(idx, "agents", name, &pf);
    if (!path)
        return not_defined(idx, "agents", "agent", name, err);
    struct buf text = BUF_INIT;
    int rc = read_text(path, pf, &text, err);
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
    const struct project_file *pf = NULL;
    char *path = locate(idx, "bottles", name, &pf);
    if (!path)
        return not_defined(idx, "bottles", "bottle", name, err);
    struct buf text = BUF_INIT;
    int rc = read_text(path, pf, &text, err);
    if (rc == 0)
        rc = bottle_parse(path, name, text.data ? text.data : "", text.len, out, err);
    if (rc == 0 && pf) {
        rc = project_bottle_check(out, pf->rel, idx->credentials, err);
        if (rc < 0)
            bottle_def_free(out);
    }
    buf_free(&text);
    free(path);
    return rc;
}

enum trust_state manifest_index_trust(const struct manifest_index *idx)
{
    return idx->trust ? idx->trust->state : TRUST_NONE;
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
