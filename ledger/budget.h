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
#include <stdbool.h>

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
 * The ledger bottles started from home (the data home, home.h) use:
 * settings.yml's `ledger:` when set (budget_ledger_choose), else
 * home/bottle.db. Under sudo, settings.yml is read from the config home.
 * -errno with err set when settings.yml is broken or its ledger refused.
 */
int budget_ledger_path(const char *home, char **out, struct bottle_err *err);

/* Whether a `ledger:` value is a database URL a store serves (postgresql://, postgres://). */
bool budget_ledger_is_url(const char *location);

/*
 * Which ledger a `ledger:` setting (NULL: none) names for a bottle whose
 * data home is home (allocated in *out). A URL is passed on as it is, for
 * the ledger to open. A file path from a user's settings is honoured under
 * sudo only when it is absolute and inside home (HOME_SUDO_ROOT/<uid>, which
 * only root can change): anywhere else, root would create a database and its
 * journal files where the user points. Refused (ERR_KIND_REFUSED) otherwise.
 */
int budget_ledger_choose(const char *setting, const char *home, char **out, struct bottle_err *err);
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
