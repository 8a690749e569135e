/* dashboard: rendering to fixed-size frames, selection scrolling, sizes, collection. */
#include "testutil.h"

#include "runtime/cli/dashboard.h"

static struct dash_row row(const char *slug, uint64_t used, uint64_t budget)
{
    struct dash_row r;
    memset(&r, 0, sizeof(r));
    snprintf(r.slug, sizeof(r.slug), "%s", slug);
    snprintf(r.agent, sizeof(r.agent), "claude");
    snprintf(r.state, sizeof(r.state), "running");
    snprintf(r.provider, sizeof(r.provider), "claude");
    r.tokens_used = used;
    r.tokens_budget = budget;
    r.has_budget = budget > 0;
    r.has_stats = true;
    r.bytes_out = 1500;
    r.bytes_in = 2500000;
    r.connects_denied = 3;
    return r;
}

static void assert_frame(const struct strv *f, int lines, int cols)
{
    assert_int_equal(f->len, (size_t)lines);
    for (size_t i = 0; i < f->len; i++)
        assert_int_equal(strlen(f->items[i]), (size_t)cols);
}

static void test_render_empty(void **state)
{
    (void)state;
    struct dash_model m = {0};
    struct strv f = STRV_INIT;
    dash_render(&m, 24, 80, &f);
    assert_frame(&f, 24, 80);
    assert_non_null(strstr(f.items[0], "0 live bottles"));
    assert_non_null(strstr(f.items[2], "no live bottles"));
    assert_non_null(strstr(f.items[22], "c cutoff"));
    strv_free(&f);
}

/* The ledger's pools, shared across hosts, ride in the title line and are cut to the width. */
static void test_render_shared_pools(void **state)
{
    (void)state;
    struct dash_model m = {0};
    const char *shared = "pool team claude 5900/6000 per day";
    struct strv f = STRV_INIT;
    dash_render_shared(&m, shared, 24, 80, &f);
    assert_frame(&f, 24, 80);
    assert_non_null(strstr(f.items[0], "0 live bottles · pool team claude 5900/6000 per day"));
    strv_free(&f);
    dash_render_shared(&m, shared, 24, 40, &f);
    assert_frame(&f, 24, 40);
    strv_free(&f);
}

static void test_render_rows(void **state)
{
    (void)state;
    struct dash_row rows[2] = {row("claude-a1b2c", 250, 1000), row("curl-zz", 0, 0)};
    rows[1].bytes_out = 123456789012ull;
    rows[1].bytes_in = 999999999999ull;
    rows[1].connects_denied = 123456;
    struct dash_model m = {rows, 2, 1, "curl-zz: freeze done"};
    struct strv f = STRV_INIT;
    dash_render(&m, 24, 80, &f);
    assert_frame(&f, 24, 80);
    assert_non_null(strstr(f.items[1], "BOTTLE"));
    assert_non_null(strstr(f.items[1], "TOKENS"));
    for (int i = 1; i < 4; i++) /* nothing cut at 80 columns */
        assert_true(f.items[i][78] == ' ' && f.items[i][79] == ' ');
    /* first row: not selected, tokens and percentage, human sizes */
    assert_int_equal(f.items[2][0], ' ');
    assert_non_null(strstr(f.items[2], "claude-a1b2c"));
    assert_non_null(strstr(f.items[2], "250/1000"));
    assert_non_null(strstr(f.items[2], "25%"));
    assert_non_null(strstr(f.items[2], "1.5 kB"));
    assert_non_null(strstr(f.items[2], "2.5 MB"));
    /* second row is the selection; no budget shows '-' */
    assert_int_equal(f.items[3][0], '>');
    assert_non_null(strstr(f.items[3], "curl-zz"));
    assert_non_null(strstr(f.items[3], "123.5 GB"));
    assert_non_null(strstr(f.items[23], "freeze done"));
    strv_free(&f);
}

static void test_render_scrolls_to_selection(void **state)
{
    (void)state;
    struct dash_row rows[40];
    for (int i = 0; i < 40; i++) {
        char slug[16];
        snprintf(slug, sizeof(slug), "b-%02d", i);
        rows[i] = row(slug, 1, 2);
    }
    struct dash_model m = {rows, 40, 35, ""};
    struct strv f = STRV_INIT;
    dash_render(&m, 24, 80, &f);
    assert_frame(&f, 24, 80);
    /* 20 body lines: the selection is the last visible one */
    assert_int_equal(f.items[21][0], '>');
    assert_non_null(strstr(f.items[21], "b-35"));
    assert_non_null(strstr(f.items[2], "b-16"));
    strv_free(&f);
}

static void test_render_narrow(void **state)
{
    (void)state;
    struct dash_row rows[1] = {row("x", 5, 10)};
    struct dash_model m = {rows, 1, 0, ""};
    struct strv f = STRV_INIT;
    dash_render(&m, 6, 40, &f);
    assert_frame(&f, 6, 40);
    strv_free(&f);
}

static void test_render_large_tokens(void **state)
{
    (void)state;
    struct dash_row rows[1] = {row("x", 1234567, 5000000000ull)};
    struct dash_model m = {rows, 1, 0, ""};
    struct strv f = STRV_INIT;
    dash_render(&m, 24, 80, &f);
    assert_non_null(strstr(f.items[2], "1.2M/5.0G"));
    assert_non_null(strstr(f.items[2], " 0%"));
    strv_free(&f);
}

static void test_human_bytes(void **state)
{
    (void)state;
    char b[16];
    dash_human_bytes(0, b, sizeof(b));
    assert_string_equal(b, "0 B");
    dash_human_bytes(999, b, sizeof(b));
    assert_string_equal(b, "999 B");
    dash_human_bytes(1000, b, sizeof(b));
    assert_string_equal(b, "1.0 kB");
    dash_human_bytes(3400000000ull, b, sizeof(b));
    assert_string_equal(b, "3.4 GB");
}

static void test_collect_no_live(void **state)
{
    (void)state;
    char *home = testutil_mkdtemp();
    char *dir = xasprintf("%s/state/dead-bottle", home);
    assert_int_equal(fs_mkdir_p(dir, 0700, NULL), 0);
    struct dash_model m = {0};
    struct bottle_err err = {0};
    assert_int_equal(dash_collect(home, NULL, &m, &err), 0);
    assert_int_equal(m.n, 0); /* a state dir without a live controller is not listed */
    dash_model_free(&m);
    free(dir);
    testutil_rm_rf(home);
    free(home);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_empty),  cmocka_unit_test(test_render_shared_pools),
        cmocka_unit_test(test_render_rows),   cmocka_unit_test(test_render_scrolls_to_selection),
        cmocka_unit_test(test_render_narrow), cmocka_unit_test(test_render_large_tokens),
        cmocka_unit_test(test_human_bytes),   cmocka_unit_test(test_collect_no_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
