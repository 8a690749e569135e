/*
 * `bottle trust`: record, list and revoke the user's trust in a project's
 * own files (./.bottle/), like `direnv allow`. The records live in
 * $BOTTLE_HOME/trust/ (manifest/trust.h reads them; only this file writes
 * them), never in the project, so an agent that can write the project cannot
 * trust its own files.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/home.h"
#include "common/json.h"
#include "manifest/trust.h"
#include "runtime/cli/args.h"
#include "runtime/cli/cli.h"

static const char trust_help[] =
    "usage: bottle trust [DIR]\n"
    "       bottle trust --list [--format text|json]\n"
    "       bottle trust --revoke [DIR]\n"
    "\n"
    "A project's own agents and bottles (DIR/.bottle/, DIR defaulting to the\n"
    "current directory) are usually in the workspace an agent can write, so\n"
    "`bottle start` uses them only once you trust them, and refuses (exit 3)\n"
    "when they changed since. `bottle trust DIR` records the SHA-256 of every\n"
    "file under DIR/.bottle/ in $BOTTLE_HOME/trust/; review them first\n"
    "(`bottle start <agent> --dry-run` shows the plan they make).\n"
    "--list shows every trusted project and whether it still matches;\n"
    "--revoke forgets one.\n"
    "\n"
    "Trusted or not, project files may never copy host variables into the\n"
    "agent's environment, nor send a credential to a host your own files do not\n"
    "already send it to (docs/manifest.md).\n";

bool cli_refuse_untrusted(const struct manifest_index *idx, const char *agent)
{
    enum trust_state state = manifest_index_trust(idx);
    if (state == TRUST_NONE || state == TRUST_TRUSTED)
        return false;
    struct buf lines = BUF_INIT;
    trust_report_lines(idx->trust, &lines);
    char *cmd = trust_command(idx->project->root);
    if (state == TRUST_CHANGED)
        fprintf(stderr,
                "bottle: refused: the project files in %s changed since you trusted them "
                "(%s):\n",
                idx->project->dir, idx->trust->trusted_at ? idx->trust->trusted_at : "?");
    else
        fprintf(stderr, "bottle: refused: the project files in %s are not trusted:\n",
                idx->project->dir);
    fputs(lines.data ? lines.data : "", stderr);
    fprintf(stderr,
            "Review them ('bottle start %s --dry-run' shows the plan they make), then trust "
            "them with:\n  %s\n",
            agent ? agent : "<agent>", cmd);
    free(cmd);
    buf_free(&lines);
    return true;
}

void cli_note_untrusted(const struct manifest_index *idx)
{
    enum trust_state state = manifest_index_trust(idx);
    if (state == TRUST_NONE || state == TRUST_TRUSTED)
        return;
    char *cmd = trust_command(idx->project->root);
    fprintf(stderr, "bottle: note: the project files in %s are %s; start refuses them until '%s'\n",
            idx->project->dir,
            state == TRUST_CHANGED ? "changed since you trusted them" : "not trusted", cmd);
    free(cmd);
}

/* The project directory DIR names: DIR itself, or its parent when DIR is a .bottle. */
static char *project_root(const char *dir, struct bottle_err *err)
{
    char real[PATH_MAX];
    if (!realpath(dir, real) || !fs_is_dir(real)) {
        err_set_kind(err, ERR_KIND_USAGE, ENOTDIR, "trust: %s is not a directory", dir);
        return NULL;
    }
    char *inner = fs_join(real, PROJECT_DIR_NAME);
    bool has = fs_is_dir(inner);
    free(inner);
    if (!has && str_ends_with(real, "/" PROJECT_DIR_NAME)) {
        char *slash = strrchr(real, '/');
        *slash = '\0';
        if (!*real)
            strcpy(real, "/");
        return xstrdup(real);
    }
    return xstrdup(real);
}

static void utc_now(char out[32])
{
    time_t now = time(NULL);
    struct tm tm;
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
}

static int do_trust(const char *dir)
{
    struct bottle_err err = {0};
    char *home = NULL;
    char *root = project_root(dir, &err);
    if (!root || home_path(&home, &err) < 0) {
        free(root);
        return cli_fail(&err);
    }
    int rc = 0;
    struct project_files pf;
    struct trust_report before;
    memset(&before, 0, sizeof(before));
    if (project_files_read(root, &pf, &err) < 0) {
        rc = cli_fail(&err);
        goto out_root;
    }
    char *real_home = realpath(home, NULL);
    bool is_home = real_home && strcmp(real_home, pf.dir) == 0;
    free(real_home);
    if (is_home) {
        err_set_kind(&err, ERR_KIND_USAGE, EINVAL,
                     "trust: %s is $BOTTLE_HOME; its files are yours and need no trust", pf.dir);
        rc = cli_fail(&err);
        goto out;
    }
    if (pf.len == 0) {
        err_set_kind(&err, ERR_KIND_USAGE, ENOENT,
                     "trust: %s holds no files; there is nothing to trust", pf.dir);
        rc = cli_fail(&err);
        goto out;
    }
    if (trust_evaluate(home, &pf, &before, &err) < 0) {
        /* A damaged record is replaced: this is the command that writes a good one. */
        fprintf(stderr, "bottle: note: %s; replacing it\n", err.msg);
        err_clear(&err);
        trust_report_free(&before);
        before.state = TRUST_UNTRUSTED;
    }
    char when[32];
    utc_now(when);
    cJSON *doc = trust_record_to_json(&pf, when);
    char *text = json_to_text(doc, true);
    cJSON_Delete(doc);
    char *store = fs_join(home, TRUST_STORE_DIR);
    char *path = trust_record_path(home, pf.root);
    if (fs_mkdir_p(store, 0700, &err) < 0 ||
        fs_write_atomic(path, text, strlen(text), 0600, &err) < 0)
        rc = cli_fail(&err);
    free(text);
    free(store);
    free(path);
    if (rc != 0)
        goto out;
    printf("trusted %zu file%s in %s (digest %.16s):\n", pf.len, pf.len == 1 ? "" : "s", pf.dir,
           pf.digest);
    for (size_t i = 0; i < pf.len; i++) {
        const char *rel = pf.items[i].rel;
        const char *st = before.state == TRUST_UNTRUSTED || strv_contains(&before.added, rel)
                             ? "new"
                         : strv_contains(&before.changed, rel) ? "changed"
                                                               : "unchanged";
        printf("  %-9s %s\n", st, rel);
    }
    for (size_t i = 0; i < before.removed.len; i++)
        printf("  %-9s %s\n", "removed", before.removed.items[i]);
out:
    trust_report_free(&before);
    project_files_free(&pf);
out_root:
    free(root);
    free(home);
    return rc;
}

static int do_revoke(const char *dir)
{
    struct bottle_err err = {0};
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return cli_fail(&err);
    /* A project that is gone can still be revoked by the path it was trusted under. */
    char real[PATH_MAX];
    char *root = NULL;
    if (realpath(dir, real)) {
        struct bottle_err ignored = {0};
        root = project_root(real, &ignored);
    } else if (dir[0] == '/') {
        root = xstrdup(dir);
    }
    if (!root) {
        free(home);
        return cli_usage_error("trust",
                               "--revoke: %s is not a directory; give the path the "
                               "project was trusted under (bottle trust --list)",
                               dir);
    }
    char *path = trust_record_path(home, root);
    int rc = 0;
    if (unlink(path) == 0) {
        printf("revoked trust in %s/%s\n", root, PROJECT_DIR_NAME);
    } else if (errno == ENOENT) {
        printf("%s/%s was not trusted; nothing to revoke\n", root, PROJECT_DIR_NAME);
    } else {
        err_set(&err, errno, "trust: cannot remove %s: %s", path, strerror(errno));
        rc = cli_fail(&err);
    }
    free(path);
    free(root);
    free(home);
    return rc;
}

/* Whether a trusted project still matches its record: trusted, changed or missing. */
static const char *current_state(const char *home, const struct trust_record *r)
{
    struct project_files pf;
    struct bottle_err ignored = {0};
    if (!fs_is_dir(r->project) || project_files_read(r->project, &pf, &ignored) < 0)
        return "missing";
    struct trust_report rep;
    const char *state = "missing";
    if (pf.len > 0 && trust_evaluate(home, &pf, &rep, &ignored) == 0) {
        state = trust_state_name(rep.state);
        trust_report_free(&rep);
    }
    project_files_free(&pf);
    return state;
}

static int do_list(bool json)
{
    struct bottle_err err = {0};
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return cli_fail(&err);
    struct trust_record *recs = NULL;
    size_t n = 0;
    trust_store_list(home, &recs, &n, &err);
    cJSON *doc = json ? cJSON_CreateObject() : NULL;
    cJSON *arr = doc ? cJSON_AddArrayToObject(doc, "trusted") : NULL;
    if (!json && n == 0)
        printf("no trusted projects\n");
    else if (!json)
        printf("%-9s %-20s %5s  %s\n", "STATE", "TRUSTED", "FILES", "PROJECT");
    for (size_t i = 0; i < n; i++) {
        const char *state = current_state(home, &recs[i]);
        if (json) {
            cJSON *o = cJSON_CreateObject();
            json_add_str(o, "project", recs[i].project);
            json_add_str(o, "trusted_at", recs[i].trusted_at);
            json_add_str(o, "digest", recs[i].digest);
            json_add_num(o, "files", (double)recs[i].files.len);
            json_add_str(o, "state", state);
            cJSON_AddItemToArray(arr, o);
        } else {
            printf("%-9s %-20s %5zu  %s\n", state, recs[i].trusted_at ? recs[i].trusted_at : "?",
                   recs[i].files.len, recs[i].project);
        }
        trust_record_free(&recs[i]);
    }
    free(recs);
    if (json) {
        char *t = json_to_text(doc, true);
        fputs(t, stdout);
        free(t);
        cJSON_Delete(doc);
    }
    free(home);
    return 0;
}

int cmd_trust(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(trust_help, stdout);
        return 0;
    }
    struct args a;
    args_init(&a, argc, argv);
    const char *dir = NULL;
    bool list = false, revoke = false, json = false;
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 2) {
            if (dir)
                return cli_usage_error("trust", "unexpected argument '%s'", a.cur);
            dir = a.cur;
        } else if (args_is(&a, "--list")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            list = true;
        } else if (args_is(&a, "--revoke")) {
            if (!args_no_value(&a))
                return EXIT_USAGE;
            revoke = true;
        } else if (args_is(&a, "--format")) {
            const char *v = args_value(&a);
            if (!v || !cli_parse_format("trust", v, &json))
                return EXIT_USAGE;
        } else {
            return cli_usage_error("trust", "unknown option '%s'", a.cur);
        }
    }
    if (a.rest_at < argc)
        return cli_usage_error("trust", "unexpected arguments after '--'");
    if (list && (revoke || dir))
        return cli_usage_error("trust", "--list takes no directory and no --revoke");
    if (json && !list)
        return cli_usage_error("trust", "--format applies to --list only");
    if (list)
        return do_list(json);
    if (revoke)
        return do_revoke(dir ? dir : ".");
    return do_trust(dir ? dir : ".");
}
