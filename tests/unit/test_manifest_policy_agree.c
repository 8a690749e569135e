/*
 * The route matcher against the shared case table that the CLI suite also
 * runs through `bottle policy test` (tests/integration/cli_policy.sh): the two
 * must give the same reason for every case.
 */
#include "tests/unit/testutil.h"

#include "common/fs.h"
#include "manifest/plan.h"

static char *src_path(const char *rel)
{
    const char *src = getenv("BOTTLE_SRC");
    return fs_join(src ? src : ".", rel);
}

/* Splits "https://host[:port]/path" into the request fields. */
static void split_url(const char *url, bool *tls, char *host, size_t hl, uint16_t *port,
                      char *target, size_t tl)
{
    const char *rest = url;
    *tls = strncmp(url, "https://", 8) == 0;
    rest += *tls ? 8 : 7;
    size_t alen = strcspn(rest, "/?");
    char authority[512];
    snprintf(authority, sizeof(authority), "%.*s", (int)alen, rest);
    *port = 0;
    char *colon = strrchr(authority, ':');
    if (colon && authority[0] != '[') {
        *port = (uint16_t)atoi(colon + 1);
        *colon = '\0';
    }
    snprintf(host, hl, "%s", authority);
    const char *path = rest + alen;
    if (*path == '\0')
        snprintf(target, tl, "/");
    else if (*path == '?')
        snprintf(target, tl, "/%s", path);
    else
        snprintf(target, tl, "%s", path);
}

static void test_case_table(void **state)
{
    (void)state;
    char *home = src_path("tests/fixtures/policy");
    char *table = src_path("tests/fixtures/policy/cases.tsv");
    struct manifest_index idx;
    struct bottle_err err = {0};
    assert_int_equal(manifest_index_open(&idx, home, "/", &err), 0);
    struct bottle_def b;
    if (bottle_resolve(&idx, "agree", &b, NULL, &err) < 0)
        fail_msg("%s", err.msg);
    struct route_set routes = {0};
    assert_int_equal(plan_routes_for_bottle(&b, &routes, NULL, &err), 0);

    FILE *f = fopen(table, "r");
    assert_non_null(f);
    char line[2048];
    int cases = 0, wrong = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL;
        char *method = strtok_r(line, "\t", &save);
        char *url = strtok_r(NULL, "\t", &save);
        char *hdrs = strtok_r(NULL, "\t", &save);
        char *want = strtok_r(NULL, "\t", &save);
        assert_non_null(want);
        struct policy_header headers[8];
        size_t n_headers = 0;
        char hcopy[512];
        snprintf(hcopy, sizeof(hcopy), "%s", hdrs);
        if (strcmp(hcopy, "-") != 0) {
            char *hs = NULL;
            for (char *h = strtok_r(hcopy, "|", &hs); h && n_headers < 8;
                 h = strtok_r(NULL, "|", &hs)) {
                char *colon = strchr(h, ':');
                *colon = '\0';
                char *v = colon + 1;
                while (*v == ' ')
                    v++;
                headers[n_headers++] = (struct policy_header){h, v};
            }
        }
        bool tls;
        char host[512], target[1024];
        uint16_t port;
        split_url(url, &tls, host, sizeof(host), &port, target, sizeof(target));
        struct policy_request req = {method, tls, host, port, target, headers, n_headers};
        struct policy_result res;
        memset(&res, 0, sizeof(res));
        assert_int_equal(policy_evaluate(&routes, &req, &res), 0);
        if (strcmp(res.reason, want) != 0) {
            fprintf(stderr, "case %s %s: want %s, got %s (%s)\n", method, url, want, res.reason,
                    res.message);
            wrong++;
        }
        assert_true(res.allowed == (strcmp(want, "allowed") == 0));
        policy_result_free(&res);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 20);
    assert_int_equal(wrong, 0);
    route_set_free(&routes);
    bottle_def_free(&b);
    manifest_index_free(&idx);
    free(table);
    free(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_table),
    };
    return cmocka_run_group_tests_name("policy_agree", tests, NULL, NULL);
}
