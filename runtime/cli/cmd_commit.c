/*
 * `bottle commit <slug>`: snapshots a running Docker bottle into the image
 * bottle-committed-<slug>:latest (backends/docker/commit.c does the work),
 * for `bottle start --resume <slug>`. The bottle keeps running. Only what
 * the bottle's plan.json names (agent, bottles, workspace) is recorded with
 * the image; policy is never part of a snapshot.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/docker.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/log.h"
#include "runtime/cli/args.h"
#include "runtime/cli/cli.h"
#include "runtime/controller/control.h"
#include "runtime/controller/controller.h"
#include "runtime/controller/state.h"

static const char commit_help[] =
    "usage: bottle commit <slug>\n"
    "\n"
    "Snapshots a running Docker bottle as the image bottle-committed-<slug>:latest:\n"
    "its container (docker commit, which pauses it while its layer is copied) and\n"
    "the agent's home, archived by the agent's own user inside the bottle (the\n"
    "image needs tar). The bottle keeps running. A later commit of the same slug\n"
    "replaces the snapshot. 'bottle start --resume <slug>' boots a new bottle from\n"
    "it, under the policy of the manifests as they are then.\n"
    "\n"
    "The image holds no token: the agent never has one, and its variables are\n"
    "not part of the container's configuration. It does hold whatever the agent\n"
    "wrote to its home. Snapshots are yours: 'bottle cleanup' never removes them;\n"
    "list them with 'docker images \"bottle-committed-*\"', remove one with\n"
    "'docker rmi bottle-committed-<slug>'.\n"
    "\n"
    "Only Docker bottles can be committed (exit 2 for a native one, or a slug\n"
    "that is not running). Exit codes: 0 committed, 1 the engine failed, 2 usage,\n"
    "3 refused (the container is not this bottle's, or runs as root).\n";

/* The plan the bottle was started with ($BOTTLE_HOME/state/<slug>/plan.json). */
static cJSON *read_plan(const char *home, const char *slug, struct bottle_err *err)
{
    char *dir = fs_join(home, "state");
    char *state = fs_join(dir, slug);
    char *path = fs_join(state, "plan.json");
    struct buf text = BUF_INIT;
    cJSON *doc = NULL;
    if (fs_read_file(path, 4u << 20, &text, err) == 0)
        doc = json_parse(text.data ? text.data : "", text.len, path, err);
    if (!doc) {
        err->kind = ERR_KIND_USAGE;
        err_prefix(err,
                   "bottle '%s' runs, but its plan is not under $BOTTLE_HOME=%s (give the "
                   "BOTTLE_HOME it was started with)",
                   slug, home);
    }
    buf_free(&text);
    free(path);
    free(state);
    free(dir);
    return doc;
}

static void strv_from_json(const cJSON *arr, struct strv *out)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, arr)
    {
        if (cJSON_IsString(item))
            strv_push(out, item->valuestring);
    }
}

static int commit_slug(const char *slug)
{
    struct bottle_err err = {0};
    if (state_live_pid(slug) <= 1) {
        err_set_kind(&err, ERR_KIND_USAGE, ENOENT,
                     "no running bottle '%s' (see 'bottle list active'); only a running bottle "
                     "can be committed",
                     slug);
        return cli_fail(&err);
    }
    char *home = NULL;
    if (home_path(&home, &err) < 0)
        return cli_fail(&err);
    int rc = 0;
    cJSON *plan = read_plan(home, slug, &err);
    cJSON *status = NULL;
    struct strv bottles = STRV_INIT;
    char *scratch = NULL;
    struct docker_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    if (!plan) {
        rc = cli_fail(&err);
        goto out;
    }
    const char *backend = json_get_str(plan, "backend");
    if (!backend || strcmp(backend, "docker") != 0) {
        err_set_kind(&err, ERR_KIND_USAGE, ENOTSUP,
                     "bottle '%s' runs on the %s backend; only Docker bottles can be committed "
                     "(a native bottle has no image to snapshot; start it with --backend docker)",
                     slug, backend ? backend : "native");
        rc = cli_fail(&err);
        goto out;
    }
    /* The home is archived by a process inside the bottle: it would freeze too. */
    struct bottle_err ignored = {0};
    if (control_simple(home, slug, "status", 5000, &status, &ignored) == 0) {
        const char *state = json_get_str(status, "state");
        if (state && strcmp(state, "frozen") == 0) {
            err_set_kind(&err, ERR_KIND_USAGE, EBUSY,
                         "bottle '%s' is frozen; 'bottle thaw %s' first (its home is copied from "
                         "inside the bottle)",
                         slug, slug);
            rc = cli_fail(&err);
            goto out;
        }
    }
    strv_from_json(cJSON_GetObjectItemCaseSensitive(
                       cJSON_GetObjectItemCaseSensitive(plan, "bottles"), "selected"),
                   &bottles);
    char *state_root = fs_join(home, "state");
    scratch = fs_join(state_root, slug);
    free(state_root);
    struct docker_commit_request req = {
        .slug = slug,
        .agent = json_get_str(cJSON_GetObjectItemCaseSensitive(plan, "agent"), "name"),
        .bottles = &bottles,
        .workspace = json_get_str(plan, "cwd"),
        .scratch_dir = scratch,
    };
    if (docker_commit_slug(&req, &snap, &err) < 0) {
        rc = cli_fail(&err);
        goto out;
    }
    log_info("committed", "slug", slug, "image", snap.ref, "id", snap.id, NULL);
    printf("bottle %s: committed to %s (%s)\n", slug, snap.ref, snap.id);
    printf("to resume from this snapshot: bottle start --resume %s\n", slug);
    printf("to export it: docker save %s -o %s.tar\n", snap.ref, slug);
out:
    docker_snapshot_free(&snap);
    strv_free(&bottles);
    cJSON_Delete(status);
    cJSON_Delete(plan);
    free(scratch);
    free(home);
    return rc;
}

int cmd_commit(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(commit_help, stdout);
        return 0;
    }
    const char *cmd = "commit", *slug = NULL;
    struct args a;
    args_init(&a, argc, argv);
    int kind;
    while ((kind = args_next(&a)) != 0) {
        if (kind == 2 && !slug)
            slug = a.cur;
        else if (kind == 2)
            return cli_usage_error(cmd, "unexpected argument '%s'", a.cur);
        else
            return cli_usage_error(cmd, "unknown option '%s'", a.cur);
    }
    if (!slug)
        return cli_usage_error(cmd, "which bottle? (a slug, see 'bottle list active')");
    if (!home_slug_valid(slug))
        return cli_usage_error(cmd, "'%s' is not a bottle's slug", slug);
    return commit_slug(slug);
}
