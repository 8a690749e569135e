/*
 * cmd_dashboard — `bottle dashboard`: the terminal front end of dashboard.h.
 * Draws the model with ncurses, refreshes it every second, and maps keys
 * to actions. `--once` prints one frame to stdout instead (scripts, logs).
 */
#include <curses.h>
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/cli/cmd_dashboard.h"
#include "common/buf.h"
#include "common/fs.h"
#include "common/json.h"
#include "ledger/budget.h"
#include "runtime/cli/dashboard.h"
#include "ledger/ledger.h"
#include "runtime/controller/state.h"

#define REFRESH_MS 1000

static const char dashboard_help[] =
    "usage: bottle dashboard [--once] [--width N] [--height N]\n"
    "\n"
    "A live view of every running bottle on this host: tokens used against the\n"
    "budget, bytes out and in, denied network attempts and state, refreshed\n"
    "every second. Keys act on the selected bottle:\n"
    "\n"
    "  up/down   select a bottle\n"
    "  c         cut it off (new connections refused, established ones aborted)\n"
    "  r         restore its traffic\n"
    "  f / t     freeze / thaw it\n"
    "  k         kill it (asks for y to confirm)\n"
    "  q         quit\n"
    "\n"
    "  --once       print one frame to stdout and exit (no terminal needed)\n"
    "  --width N    frame width for --once (default 80)\n"
    "  --height N   frame height for --once (default 24)\n"
    "\n"
    "Reading the kernel counters and acting on a bottle need root.\n";

static struct ledger *dash_ledger;
static char shared[160];      /* the ledger's pools, for the title */
static const char *dash_home; /* where collect() reads from */

/* This bottle's spent tokens (settled plus reserved) from the host's ledger. */
static int ledger_tokens(const char *home, const char *slug, const char *agent,
                         const char *provider, uint64_t *used)
{
    (void)agent;
    if (!dash_ledger) {
        struct bottle_err err = {0};
        dash_ledger = budget_ledger_open(home, &err);
        if (!dash_ledger)
            return -ENOENT;
    }
    int64_t spent = 0;
    struct bottle_err err = {0};
    int rc = ledger_spent(dash_ledger, LEDGER_SCOPE_BOTTLE, slug, provider, &spent, &err);
    if (rc == 0)
        *used = spent > 0 ? (uint64_t)spent : 0;
    return rc;
}

static dash_tokens_fn tokens_source = ledger_tokens;

static void draw(const struct dash_model *m)
{
    int lines, cols;
    getmaxyx(stdscr, lines, cols);
    struct strv frame = STRV_INIT;
    dash_render_shared(m, shared, lines, cols, &frame);
    erase();
    for (size_t i = 0; i < frame.len && (int)i < lines; i++) {
        bool sel = frame.items[i][0] == '>' && i >= 2;
        if (sel)
            attron(A_REVERSE);
        /* The last cell of the last line would scroll the screen. */
        int n = (int)i == lines - 1 ? cols - 1 : cols;
        mvaddnstr((int)i, 0, frame.items[i], n);
        if (sel)
            attroff(A_REVERSE);
    }
    refresh();
    strv_free(&frame);
}

/* The pools the ledger holds, spent of limit, as every host on it sees them. */

static void pools_summary(void)
{
    shared[0] = '\0';
    if (tokens_source != ledger_tokens)
        return;
    if (!dash_ledger) {
        struct bottle_err err = {0};
        dash_ledger = budget_ledger_open(dash_home, &err);
        if (!dash_ledger)
            return;
    }
    cJSON *pools = budget_pools_json(dash_ledger);
    struct buf b = BUF_INIT;
    const cJSON *p;
    cJSON_ArrayForEach(p, pools)
    {
        const char *period = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "period"));
        buf_printf(&b, "%spool %s %s %.0f/%.0f%s%s", b.len ? ", " : "",
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "pool")),
                   cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "provider")),
                   json_get_num(p, "spent", 0), json_get_num(p, "limit", 0),
                   period && strcmp(period, "total") != 0 ? " per " : "",
                   period && strcmp(period, "total") != 0 ? period : "");
    }
    snprintf(shared, sizeof(shared), "%s", b.data ? b.data : "");
    buf_free(&b);
    cJSON_Delete(pools);
}

static void collect(const char *home, struct dash_model *m)
{
    dash_home = home;
    struct bottle_err err = {0};
    if (dash_collect(home, tokens_source, m, &err) < 0)
        snprintf(m->status, sizeof(m->status), "%.150s", err.msg);
    pools_summary();
}

/* Handles one key; returns false to quit. */
static bool on_key(const char *home, struct dash_model *m, int key, bool *confirm_kill)
{
    if (*confirm_kill) {
        *confirm_kill = false;
        if (key != 'y' && key != 'Y') {
            snprintf(m->status, sizeof(m->status), "kill cancelled");
            return true;
        }
        key = 'k';
    } else if (key == 'k' && m->n) {
        *confirm_kill = true;
        snprintf(m->status, sizeof(m->status), "kill %s? press y to confirm",
                 m->rows[m->selected].slug);
        return true;
    }
    if (key == 'q' || key == 'Q')
        return false;
    if (key == KEY_UP && m->selected > 0)
        m->selected--;
    else if (key == KEY_DOWN && m->selected + 1 < m->n)
        m->selected++;
    else if (m->n && strchr("crftk", key)) {
        struct bottle_err err = {0};
        dash_action(home, &m->rows[m->selected], key, m->status, sizeof(m->status), &err);
        collect(home, m);
    }
    return true;
}

static int run_tui(const char *home)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "bottle: dashboard: needs a terminal (use --once to print one frame)\n");
        return EXIT_USAGE;
    }
    setlocale(LC_ALL, "");
    initscr();
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    timeout(REFRESH_MS);
    struct dash_model m = {0};
    bool confirm = false, go = true;
    while (go) {
        collect(home, &m);
        draw(&m);
        int key = getch();
        if (key != ERR)
            go = on_key(home, &m, key, &confirm);
    }
    endwin();
    dash_model_free(&m);
    return 0;
}

static int parse_size(const char *opt, const char *v, int min, int *out)
{
    char *end = NULL;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || n < min || n > 1000) {
        fprintf(stderr, "bottle: dashboard: %s needs a number from %d to 1000\n", opt, min);
        return -1;
    }
    *out = (int)n;
    return 0;
}

int cmd_dashboard(int argc, char **argv)
{
    bool once = false;
    int width = 80, height = 24;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(dashboard_help, stdout);
            return 0;
        } else if (strcmp(argv[i], "--once") == 0) {
            once = true;
        } else if (strcmp(argv[i], "--width") == 0) {
            if (parse_size("--width", i + 1 < argc ? argv[++i] : NULL, 40, &width) < 0)
                return EXIT_USAGE;
        } else if (strcmp(argv[i], "--height") == 0) {
            if (parse_size("--height", i + 1 < argc ? argv[++i] : NULL, 5, &height) < 0)
                return EXIT_USAGE;
        } else {
            fprintf(stderr,
                    "bottle: dashboard: unknown argument '%s' (see 'bottle dashboard "
                    "--help')\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    char *home = NULL;
    struct bottle_err err = {0};
    if (home_path(&home, &err) < 0) {
        fprintf(stderr, "bottle: %s\n", err.msg);
        return err_exit_code(&err);
    }
    int rc;
    if (once) {
        struct dash_model m = {0};
        collect(home, &m);
        struct strv frame = STRV_INIT;
        dash_render_shared(&m, shared, height, width, &frame);
        for (size_t i = 0; i < frame.len; i++) {
            /* Trailing padding is for the terminal, not for a pipe. */
            size_t n = strlen(frame.items[i]);
            while (n && frame.items[i][n - 1] == ' ')
                n--;
            printf("%.*s\n", (int)n, frame.items[i]);
        }
        strv_free(&frame);
        dash_model_free(&m);
        rc = 0;
    } else {
        rc = run_tui(home);
    }
    free(home);
    ledger_close(dash_ledger);
    dash_ledger = NULL;
    return rc;
}
