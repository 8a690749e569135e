/*
 * budget — how a bottle's effective token budgets (resolved by the plan,
 * most specific scope wins) are counted, and `bottle budget`.
 *
 * The plan keeps one budget per provider with the scope it came from. That
 * scope also says whose spending counts against it (docs/budgets.md):
 * a budget from settings.yml counts every bottle on the host, one from the
 * agent's manifest counts every run of that agent, and one from a bottle
 * manifest, a parent bottle or --budget counts this run only.
 *
 * Reads plans and the ledger; never prints (`bottle budget` is
 * runtime/cli/cmd_budget.c).
 */
#ifndef BOTTLE_LEDGER_BUDGET_H
#define BOTTLE_LEDGER_BUDGET_H

#include <cjson/cJSON.h>

#include "ledger/ledger.h"

/* The ledger scope counting a budget whose plan scope is plan_scope (cli, agent, ...). */
enum ledger_scope budget_counting_scope(const char *plan_scope);
/* The scope's name in the ledger for a bottle: "" (global), the agent, or the slug. */
const char *budget_counting_name(enum ledger_scope scope, const char *slug, const char *agent);

/*
 * A bottle's token usage per provider from the ledger (requests, the four
 * counts, charged and reserved tokens) with its budget and what is left
 * when its plan is still in the state directory: a JSON array.
 */
cJSON *budget_tokens_json(const char *home, const char *slug, struct ledger *lg);

/* A bottle's plan.json from its state directory, or NULL when it is gone or unreadable. */
cJSON *budget_read_plan(const char *home, const char *slug);
/*
 * The ledger bottles started from home use: settings.yml's `ledger:` when
 * set, else home/bottle.db. -errno with err set when settings.yml is broken.
 */
int budget_ledger_path(const char *home, char **out, struct bottle_err *err);
/*
 * That ledger, opened for reading, or NULL: none yet (err untouched) or it
 * cannot be opened (err says why).
 */
struct ledger *budget_ledger_open(const char *home, struct bottle_err *err);

/*
 * One bottle's budgets as {"bottle", "agent", "budgets": [{provider, limit,
 * declared_in, source, counts, spent, left}]}; spent and left are null when
 * lg is NULL or cannot answer.
 */
cJSON *budget_bottle_json(struct ledger *lg, const char *slug, const cJSON *plan);

/* Every pool's stored limits: [{pool, provider, limit, period, spent, left}]. */
cJSON *budget_pools_json(struct ledger *lg);
/*
 * Usage by host, bottle, pool or agent since (unix seconds), across every
 * host sharing the ledger: [{<by>, provider, requests, charged_tokens,
 * reserved_tokens}], or NULL with err set.
 */
cJSON *budget_groups_json(struct ledger *lg, enum ledger_group by, int64_t since,
                          struct bottle_err *err);

#endif
