/* dashboard — see dashboard.h. */
#include "runtime/cli/dashboard.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/fs.h"
#include "common/json.h"
#include "bpf/policy.h"
#include "ledger/budget.h"
#include "runtime/controller/control.h"
#include "runtime/controller/controller.h"
#include "bpf/enforce.h"
#include "runtime/controller/state.h"

void dash_human_bytes(uint64_t v, char *out, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double d = (double)v;
    size_t u = 0;
    while ((u == 0 ? d >= 1000.0 : d >= 999.95) && u + 1 < sizeof(units) / sizeof(units[0])) {
        d /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%" PRIu64 " B", v);
    else
        snprintf(out, len, "%.1f %s", d, units[u]);
}

static void copy_str(char *dst, size_t len, const char *src)
{
    size_t n = src ? strnlen(src, len - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* Agent name and the first budget from the bottle's plan.json. */
static void read_plan(const char *home, struct dash_row *r)
{
    cJSON *root = budget_read_plan(home, r->slug);
    if (!root)
        return;
    const cJSON *agent = cJSON_GetObjectItemCaseSensitive(root, "agent");
    copy_str(r->agent, sizeof(r->agent),
             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(agent, "name")));
    const cJSON *budgets = cJSON_GetObjectItemCaseSensitive(root, "budgets");
    const cJSON *b = cJSON_IsArray(budgets) ? budgets->child : NULL;
    const cJSON *tokens = b ? cJSON_GetObjectItemCaseSensitive(b, "tokens") : NULL;
    if (b && cJSON_IsNumber(tokens)) {
        copy_str(r->provider, sizeof(r->provider),
                 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "provider")));
        r->tokens_budget = (uint64_t)tokens->valuedouble;
        r->has_budget = true;
    }
    cJSON_Delete(root);
}

static void read_kernel(struct dash_row *r)
{
    struct bottle_err err = {0};
    struct bpf_policy_pins *p = NULL;
    bool cut = false, frozen = false;
    if (bpf_policy_open_pinned(r->slug, &p, &err) == 0) {
        struct bottle_stats s;
        memset(&s, 0, sizeof(s));
        if (bpf_policy_read_stats(p, &s, &err) == 0) {
            r->has_stats = true;
            r->bytes_out = s.tx_bytes;
            r->bytes_in = s.rx_bytes;
            r->connects_denied = s.connect_deny + s.sendmsg_deny;
        }
        bpf_policy_cutoff_state(p, &cut, &err);
        bpf_policy_close(p);
    }
    enforce_frozen(r->slug, &frozen, &err);
    copy_str(r->state, sizeof(r->state), frozen ? "frozen" : cut ? "cut off" : "running");
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp(((const struct dash_row *)a)->slug, ((const struct dash_row *)b)->slug);
}

int dash_collect(const char *home, dash_tokens_fn tokens, struct dash_model *m,
                 struct bottle_err *err)
{
    char *dir = fs_join(home, "state");
    DIR *d = opendir(dir);
    free(dir);
    m->n = 0;
    if (!d)
        return errno == ENOENT ? 0 : err_set(err, errno, "cannot list %s/state", home);
    size_t cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!home_slug_valid(e->d_name) || !state_slug_live(e->d_name))
            continue;
        if (m->n == cap) {
            cap = cap ? cap * 2 : 8;
            m->rows = xrealloc(m->rows, cap * sizeof(*m->rows));
        }
        struct dash_row *r = &m->rows[m->n++];
        memset(r, 0, sizeof(*r));
        copy_str(r->slug, sizeof(r->slug), e->d_name);
        read_plan(home, r);
        read_kernel(r);
        if (tokens && r->provider[0])
            tokens(home, r->slug, r->agent, r->provider, &r->tokens_used);
    }
    closedir(d);
    if (m->n > 1)
        qsort(m->rows, m->n, sizeof(*m->rows), cmp_rows);
    if (m->selected >= m->n)
        m->selected = m->n ? m->n - 1 : 0;
    return 0;
}

void dash_model_free(struct dash_model *m)
{
    free(m->rows);
    m->rows = NULL;
    m->n = m->selected = 0;
}

/* Pads or cuts s to exactly cols characters. */
static void push_line(struct strv *out, const char *s, int cols)
{
    char *line = xasprintf("%-*.*s", cols, cols, s);
    strv_push_owned(out, line);
}

/* "950", "12k", "1.2M": a short token count. */
static void human_count(uint64_t v, char *out, size_t len)
{
    if (v < 10000)
        snprintf(out, len, "%" PRIu64, v);
    else if (v < 1000000)
        snprintf(out, len, "%" PRIu64 "k", v / 1000);
    else if (v < 1000000000ull)
        snprintf(out, len, "%.1fM", (double)v / 1e6);
    else
        snprintf(out, len, "%.1fG", (double)v / 1e9);
}

/* Fits 80 columns: 2 + 15 + 1 + 8 + 1 + 7 + 1 + 13 + 1 + 4 + 1 + 8 + 1 + 8 + 1 + 6 = 78. */
#define ROW_FORMAT "%c %-15.15s %-8.8s %-7.7s %13.13s %4s %8s %8s %6s"

static void format_row(const struct dash_row *r, bool selected, char *out, size_t len)
{
    char used[16] = "-", budget[12], tokens[28] = "-", in[16] = "-", outb[16] = "-", pct[8] = "";
    char denied[24];
    if (r->has_budget) {
        human_count(r->tokens_used, used, sizeof(used));
        human_count(r->tokens_budget, budget, sizeof(budget));
        snprintf(tokens, sizeof(tokens), "%s/%s", used, budget);
        uint64_t p = r->tokens_budget ? r->tokens_used * 100 / r->tokens_budget : 100;
        snprintf(pct, sizeof(pct), "%u%%", (unsigned)(p > 999 ? 999 : p));
    }
    if (r->has_stats) {
        dash_human_bytes(r->bytes_out, outb, sizeof(outb));
        dash_human_bytes(r->bytes_in, in, sizeof(in));
    }
    snprintf(denied, sizeof(denied), "%" PRIu64, r->connects_denied);
    snprintf(out, len, ROW_FORMAT, selected ? '>' : ' ', r->slug, r->agent[0] ? r->agent : "?",
             r->state, tokens, pct, outb, in, r->has_stats ? denied : "-");
}

void dash_render(const struct dash_model *m, int lines, int cols, struct strv *out)
{
    dash_render_shared(m, NULL, lines, cols, out);
}

void dash_render_shared(const struct dash_model *m, const char *shared, int lines, int cols,
                        struct strv *out)
{
    char text[256];
    if (lines < 1 || cols < 1)
        return;
    snprintf(text, sizeof(text), "bottle dashboard — %zu live bottle%s%s%s", m->n,
             m->n == 1 ? "" : "s", shared && *shared ? " · " : "", shared ? shared : "");
    push_line(out, text, cols);
    int body = lines - 4; /* title, heads, help, status */
    if (lines >= 2) {
        snprintf(text, sizeof(text), ROW_FORMAT, ' ', "BOTTLE", "AGENT", "STATE", "TOKENS/BUDGET",
                 "", "OUT", "IN", "DENIED");
        push_line(out, text, cols);
    }
    size_t first = 0;
    if (body > 0 && m->selected >= (size_t)body)
        first = m->selected - (size_t)body + 1;
    for (int i = 0; i < body; i++) {
        size_t k = first + (size_t)i;
        if (k < m->n)
            format_row(&m->rows[k], k == m->selected, text, sizeof(text));
        else if (m->n == 0 && i == 0)
            snprintf(text, sizeof(text), "  (no live bottles; start one with 'bottle start')");
        else
            text[0] = '\0';
        push_line(out, text, cols);
    }
    if (lines >= 3)
        push_line(out, "up/down select  c cutoff  r restore  f freeze  t thaw  k kill  q quit",
                  cols);
    if (lines >= 4)
        push_line(out, m->status, cols);
    while (out->len < (size_t)lines)
        push_line(out, "", cols);
}

/*
 * Through the bottle's controller when it answers, so the action is audited
 * like any operator's; 1 when no controller serves the bottle.
 */
static int via_controller(const char *home, const char *slug, enum enforce_action a, int *aborted,
                          struct bottle_err *err)
{
    char *path = control_socket_path(home, slug);
    cJSON *req = cJSON_CreateObject();
    json_add_str(req, "cmd", a == ENFORCE_RESTORE ? "cutoff" : enforce_action_name(a));
    if (a == ENFORCE_RESTORE)
        json_add_bool(req, "restore", true);
    cJSON *resp = NULL;
    struct bottle_err e = {0};
    int rc = control_request(path, req, 5000, &resp, &e);
    free(path);
    cJSON_Delete(req);
    if (rc == -ENOENT || rc == -ECONNREFUSED)
        return 1;
    if (rc < 0) {
        *err = e;
        return rc;
    }
    if (!json_get_bool(resp, "ok", false)) {
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(resp, "error"));
        rc = err_set(err, EIO, "%s", why ? why : "refused by the controller");
    } else if (aborted) {
        *aborted = (int)json_get_num(resp, "aborted", -1);
    }
    cJSON_Delete(resp);
    return rc;
}

int dash_action(const char *home, const struct dash_row *r, int key, char *status, size_t len,
                struct bottle_err *err)
{
    enum enforce_action a;
    switch (key) {
    case 'c':
        a = ENFORCE_CUTOFF;
        break;
    case 'r':
        a = ENFORCE_RESTORE;
        break;
    case 'f':
        a = ENFORCE_FREEZE;
        break;
    case 't':
        a = ENFORCE_THAW;
        break;
    case 'k':
        a = ENFORCE_KILL;
        break;
    default:
        return -ENOTSUP;
    }
    int aborted = 0;
    int rc = via_controller(home, r->slug, a, &aborted, err);
    if (rc == 1) /* no controller: straight to the pins and cgroups */
        rc = enforce_apply(r->slug, a, &aborted, err);
    if (rc < 0)
        snprintf(status, len, "%s %s failed: %s", enforce_action_name(a), r->slug, err->msg);
    else if (a == ENFORCE_CUTOFF && aborted >= 0)
        snprintf(status, len, "%s: cut off, %d connection%s aborted", r->slug, aborted,
                 aborted == 1 ? "" : "s");
    else
        snprintf(status, len, "%s: %s done", r->slug, enforce_action_name(a));
    return rc;
}
