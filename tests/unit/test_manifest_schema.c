#include "tests/unit/testutil.h"

#include "common/buf.h"
#include "common/err.h"
#include "manifest/manifest.h"

#define BOTTLE_FILE "bottles/dev.md"
#define AGENT_FILE  "agents/coder.md"

#define BOTTLE_KEYS                                                                                \
    "agent_provider, budget, budget_pool, egress, enforcement, env, extends, git-gate, limits, "   \
    "seccomp, shutdown, supervise, terminal, workspace"
#define AGENT_KEYS "bottle, budget, color, description, git-gate, model, name, skills, tools"

struct reject_case {
    const char *name;
    const char *text;
    const char *msg; /* after "manifest: FILE:" */
};

/* Reports a mismatch (all of a table's are printed before the test fails). */
static int expect_msg(const char *name, const char *file, const struct bottle_err *err,
                      const char *tail)
{
    char want[BOTTLE_ERR_MSG_MAX];
    snprintf(want, sizeof(want), "manifest: %s:%s", file, tail);
    assert_int_equal(err->kind, ERR_KIND_MANIFEST);
    assert_int_equal(err_exit_code(err), 2);
    if (strcmp(err->msg, want) == 0)
        return 0;
    print_error("case '%s':\n  got:  %s\n  want: %s\n", name, err->msg, want);
    return 1;
}

/* ---- bottles ------------------------------------------------------------------- */

static const char full_bottle[] = "---\n"
                                  "extends: [base, net-tools]\n"
                                  "env:\n"
                                  "  EDITOR: vim\n"
                                  "  PORT: \"8080\"\n"
                                  "  EMPTY: \"\"\n"
                                  "  GH_TOKEN: $HOST_GH_TOKEN\n"
                                  "  PRICE: \"$5\"\n"
                                  "agent_provider:\n"
                                  "  template: claude\n"
                                  "  auth_token: MY_CLAUDE_TOKEN\n"
                                  "  dockerfile: ./Dockerfile\n"
                                  "  settings:\n"
                                  "    startup_args: [--verbose, --model, opus]\n"
                                  "git-gate:\n"
                                  "  user: {name: Dev Bot, email: dev@example.com}\n"
                                  "  repos:\n"
                                  "    app:\n"
                                  "      url: ssh://git@example.com/app.git\n"
                                  "      key: {provider: static, path: /keys/app}\n"
                                  "    docs: {url: https://example.com/docs.git}\n"
                                  "egress:\n"
                                  "  log: full\n"
                                  "  routes:\n"
                                  "    - host: api.github.com\n"
                                  "      auth: {scheme: Bearer, token_ref: GH_TOKEN}\n"
                                  "    - host: pypi.org\n"
                                  "supervise: false\n"
                                  "budget: {claude: 200000, openai: 5}\n"
                                  "shutdown: freeze\n"
                                  "enforcement: netns\n"
                                  "seccomp: [ptrace, keyctl, ptrace]\n"
                                  "terminal: {allow_osc52: true}\n"
                                  "---\n"
                                  "The dev bottle.\n";

static void test_bottle_full_example(void **state)
{
    (void)state;
    struct bottle_def b;
    struct bottle_err err = {0};
    int rc = bottle_parse(BOTTLE_FILE, "dev", full_bottle, strlen(full_bottle), &b, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(b.name, "dev");
    assert_string_equal(b.file, BOTTLE_FILE);
    assert_int_equal(b.extends.len, 2);
    assert_string_equal(b.extends.items[1], "net-tools");
    assert_int_equal(b.extends_line, 2);
    assert_int_equal(b.extends_col, 10);

    assert_int_equal(b.n_env, 5);
    assert_string_equal(b.env[0].name, "EDITOR");
    assert_string_equal(b.env[0].value, "vim");
    assert_false(b.env[0].from_host);
    assert_string_equal(b.env[1].value, "8080");
    assert_string_equal(b.env[2].value, "");
    assert_string_equal(b.env[3].name, "GH_TOKEN");
    assert_string_equal(b.env[3].value, "HOST_GH_TOKEN");
    assert_true(b.env[3].from_host);
    assert_string_equal(b.env[4].value, "$5");
    assert_false(b.env[4].from_host);

    assert_true(b.provider_declared);
    assert_string_equal(b.provider.template_name, "claude");
    assert_string_equal(b.provider.auth_token, "MY_CLAUDE_TOKEN");
    assert_string_equal(b.provider.dockerfile, "./Dockerfile");
    assert_int_equal(b.provider.command.len, 0);
    assert_int_equal(b.provider.startup_args.len, 3);
    assert_string_equal(b.provider.startup_args.items[2], "opus");

    assert_string_equal(b.git_user.name, "Dev Bot");
    assert_string_equal(b.git_user.email, "dev@example.com");
    assert_true(b.repos_declared);
    assert_int_equal(b.n_repos, 2);
    assert_string_equal(b.repos[0].name, "app");
    assert_string_equal(b.repos[0].url, "ssh://git@example.com/app.git");
    assert_string_equal(b.repos[0].key_provider, "static");
    assert_string_equal(b.repos[0].key_path, "/keys/app");
    assert_null(b.repos[1].key_path);

    assert_int_equal(b.egress_log, EGRESS_LOG_FULL);
    assert_int_equal(b.routes.len, 2);
    assert_string_equal(b.routes.items[0].host, "api.github.com");
    assert_string_equal(b.routes.items[0].auth.token_ref, "GH_TOKEN");
    assert_int_equal(b.routes.items[0].dlp.on_match, DLP_POLICY_SUPERVISE);
    assert_string_equal(b.routes.items[1].file, BOTTLE_FILE);
    assert_int_equal(b.routes.items[1].line, 27);
    assert_int_equal(b.routes.items[1].col, 7);

    assert_true(b.supervise_declared);
    assert_false(b.supervise);
    assert_int_equal(b.n_budgets, 2);
    assert_string_equal(b.budgets[0].provider, "claude");
    assert_int_equal(b.budgets[0].tokens, 200000);
    assert_string_equal(b.budgets[0].origin, "dev");
    assert_int_equal(b.shutdown, SHUTDOWN_FREEZE);
    assert_int_equal(b.enforcement, TIER_NETNS);
    assert_int_equal(b.seccomp.len, 2); /* duplicates folded */
    assert_string_equal(b.seccomp.items[1], "keyctl");
    assert_true(b.terminal_allow_osc52_declared);
    assert_true(b.terminal_allow_osc52);
    assert_false(b.terminal_passthrough_declared);
    assert_false(b.terminal_passthrough);
    assert_string_equal(b.body, "The dev bottle.\n");

    /* A deep copy owns everything it holds. */
    struct bottle_def c;
    bottle_def_copy(&c, &b);
    bottle_def_free(&b);
    assert_string_equal(c.name, "dev");
    assert_int_equal(c.extends_line, 2);
    assert_string_equal(c.env[3].value, "HOST_GH_TOKEN");
    assert_true(c.env[3].from_host);
    assert_string_equal(c.provider.startup_args.items[0], "--verbose");
    assert_string_equal(c.repos[0].key_path, "/keys/app");
    assert_int_equal(c.routes.len, 2);
    assert_string_equal(c.routes.items[0].auth.token_ref, "GH_TOKEN");
    assert_string_equal(c.budgets[1].provider, "openai");
    assert_string_equal(c.seccomp.items[0], "ptrace");
    assert_true(c.terminal_allow_osc52_declared && c.terminal_allow_osc52);
    assert_string_equal(c.body, "The dev bottle.\n");
    bottle_def_free(&c);
    bottle_def_free(&c);
    bottle_def_free(NULL);
}

static void test_bottle_defaults(void **state)
{
    (void)state;
    const char *cases[] = {"---\n---\n", "---\n# nothing yet\n---\nbody", "---\n~\n---\n"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bottle_def b;
        struct bottle_err err = {0};
        assert_int_equal(bottle_parse(BOTTLE_FILE, "dev", cases[i], strlen(cases[i]), &b, &err), 0);
        assert_true(b.supervise);
        assert_false(b.supervise_declared);
        assert_false(b.provider_declared);
        assert_false(b.repos_declared);
        assert_int_equal(b.extends.len, 0);
        assert_int_equal(b.routes.len, 0);
        assert_int_equal(b.shutdown, SHUTDOWN_UNSET);
        assert_int_equal(b.enforcement, TIER_UNSET);
        assert_int_equal(b.egress_log, EGRESS_LOG_UNSET);
        assert_non_null(b.body);
        bottle_def_free(&b);
    }
}

static void test_bottle_small_shapes(void **state)
{
    (void)state;
    struct bottle_err err = {0};
    struct bottle_def b;
    const char *t1 = "---\nextends: base\ngit-gate:\n  repos: {}\n---\n";
    assert_int_equal(bottle_parse(BOTTLE_FILE, "dev", t1, strlen(t1), &b, &err), 0);
    assert_int_equal(b.extends.len, 1);
    assert_string_equal(b.extends.items[0], "base");
    assert_true(b.repos_declared);
    assert_int_equal(b.n_repos, 0);
    bottle_def_free(&b);

    const char *t2 = "---\nagent_provider:\n  template: generic\n  command: [aider, --yes]\n---\n";
    assert_int_equal(bottle_parse(BOTTLE_FILE, "dev", t2, strlen(t2), &b, &err), 0);
    assert_string_equal(b.provider.template_name, "generic");
    assert_int_equal(b.provider.command.len, 2);
    assert_string_equal(b.provider.command.items[1], "--yes");
    assert_null(b.provider.auth_token);
    bottle_def_free(&b);
}

static const struct reject_case bottle_rejects[] = {
    /* structure */
    {"missing frontmatter", "supervise: true\n",
     "1:1: missing frontmatter: the file must start with a '---' line, then the YAML settings, "
     "then a closing '---' line"},
    {"unterminated frontmatter", "---\nsupervise: true\n",
     "1:1: unterminated frontmatter: no closing '---' line after the opening one"},
    {"non-mapping root", "---\n- a\n---\n",
     "2:1: the document must be a mapping of keys to values, found a list"},
    {"multiple documents", "---\nsupervise: true\n--- {}\n---\n",
     "3:1: multiple documents are not allowed; remove the extra '---' or '...' line"},
    {"unknown key", "---\nsupervise: true\nruntime: docker\n---\n",
     "3:1: unknown key 'runtime' in bottle; accepted: " BOTTLE_KEYS},
    {"duplicate key", "---\nsupervise: true\nsupervise: false\n---\n",
     "3:1: duplicate key 'supervise' (first defined at line 2)"},
    {"anchor", "---\nenv: &e {A: b}\n---\n",
     "2:6: anchors are not allowed ('&e'); write the value out"},
    {"alias", "---\nenv: *e\n---\n", "2:6: aliases are not allowed ('*e'); write the value out"},
    {"tag", "---\nsupervise: !!bool true\n---\n",
     "2:12: tags are not allowed ('tag:yaml.org,2002:bool'); remove the tag"},
    /* extends */
    {"extends empty list", "---\nextends: []\n---\n",
     "2:10: extends: the list is empty; name at least one bottle or remove the key"},
    {"extends number", "---\nextends: 5\n---\n",
     "2:10: extends: expected a bottle name or a list of bottle names, found a number"},
    {"extends mapping", "---\nextends: {a: b}\n---\n",
     "2:10: extends: expected a bottle name or a list of bottle names, found a mapping"},
    {"extends empty", "---\nextends:\n---\n", "2:9: extends: must not be empty"},
    {"extends entry number", "---\nextends: [base, 3]\n---\n",
     "2:17: extends[1]: expected a string, found a number (quote it to use it as text: \"3\")"},
    {"extends entry list", "---\nextends: [base, [x]]\n---\n",
     "2:17: extends[1]: expected a string, found a list"},
    {"extends bad name", "---\nextends: [base, Net_Tools]\n---\n",
     "2:17: extends[1]: 'Net_Tools' is not a valid bottle name; use lowercase letters, digits and "
     "'-', starting with a letter"},
    /* env */
    {"env list", "---\nenv: [A]\n---\n", "2:6: env: expected a mapping, found a list"},
    {"env number", "---\nenv:\n  PORT: 8080\n---\n",
     "3:9: env.PORT: expected a string, found a number (quote it to use it as text: \"8080\")"},
    {"env bool", "---\nenv:\n  DEBUG: true\n---\n",
     "3:10: env.DEBUG: expected a string, found a boolean (quote it to use it as text: \"true\")"},
    {"env empty", "---\nenv:\n  X:\n---\n",
     "3:5: env.X: expected a string, found an empty value (write \"\" for an empty string)"},
    {"env mapping", "---\nenv:\n  X: {a: b}\n---\n",
     "3:6: env.X: expected a string, found a mapping"},
    {"env bad name", "---\nenv:\n  MY-VAR: x\n---\n",
     "3:3: env: 'MY-VAR' is not a valid variable name; use letters, digits and '_', not starting "
     "with a digit"},
    /* agent_provider */
    {"provider not a map", "---\nagent_provider: claude\n---\n",
     "2:17: agent_provider: expected a mapping, found a string"},
    {"provider unknown key", "---\nagent_provider: {template: claude, image: x}\n---\n",
     "2:36: unknown key 'image' in agent_provider; accepted: auth_token, command, dockerfile, "
     "settings, template"},
    {"template missing", "---\nagent_provider: {}\n---\n",
     "2:17: agent_provider.template: is required; accepted: claude, codex, generic"},
    {"template empty", "---\nagent_provider: {template: ''}\n---\n",
     "2:28: agent_provider.template: must not be empty"},
    {"template unknown", "---\nagent_provider: {template: pi}\n---\n",
     "2:28: agent_provider.template: unknown template 'pi'; accepted: claude, codex, generic"},
    {"generic without command", "---\nagent_provider: {template: generic}\n---\n",
     "2:17: agent_provider.command: is required with template 'generic'"},
    {"generic empty command", "---\nagent_provider: {template: generic, command: []}\n---\n",
     "2:46: agent_provider.command: must not be empty; give the program and its arguments"},
    {"command empty item", "---\nagent_provider: {template: generic, command: [a, '']}\n---\n",
     "2:50: agent_provider.command[1]: must not be empty"},
    {"command on claude", "---\nagent_provider: {template: claude, command: [x]}\n---\n",
     "2:36: agent_provider.command: only allowed with template 'generic'; the 'claude' template "
     "runs its own command"},
    {"auth_token on generic",
     "---\nagent_provider: {template: generic, command: [x], auth_token: T}\n---\n",
     "2:51: agent_provider.auth_token: not allowed with template 'generic'; declare an egress "
     "route with 'auth' instead"},
    {"auth_token bad name", "---\nagent_provider: {template: codex, auth_token: my-token}\n---\n",
     "2:47: agent_provider.auth_token: 'my-token' is not a valid environment variable name"},
    {"dockerfile number", "---\nagent_provider: {template: codex, dockerfile: 1}\n---\n",
     "2:47: agent_provider.dockerfile: expected a string, found a number (quote it to use it as "
     "text: \"1\")"},
    {"settings unknown key",
     "---\nagent_provider: {template: claude, settings: {models: []}}\n---\n",
     "2:47: unknown key 'models' in agent_provider.settings; accepted: startup_args"},
    {"startup_args not a list",
     "---\nagent_provider: {template: claude, settings: {startup_args: -v}}\n---\n",
     "2:61: agent_provider.settings.startup_args: expected a list of strings, found a string"},
    /* git-gate */
    {"git-gate unknown key", "---\ngit-gate: {hosts: []}\n---\n",
     "2:12: unknown key 'hosts' in git-gate; accepted: repos, user"},
    {"git user unknown key", "---\ngit-gate: {user: {login: x}}\n---\n",
     "2:19: unknown key 'login' in git-gate.user; accepted: email, name"},
    {"git user empty name", "---\ngit-gate: {user: {name: ''}}\n---\n",
     "2:25: git-gate.user.name: must not be empty"},
    {"repos list", "---\ngit-gate: {repos: [a]}\n---\n",
     "2:19: git-gate.repos: expected a mapping, found a list"},
    {"repo bad name", "---\ngit-gate:\n  repos:\n    ../etc: {url: x}\n---\n",
     "4:5: git-gate.repos: '../etc' is not a valid repository name; use letters, digits, '.', '_' "
     "and '-', not starting with '.' or '-'"},
    {"repo empty", "---\ngit-gate:\n  repos:\n    app:\n---\n",
     "4:9: git-gate.repos.app: expected a mapping, found an empty value"},
    {"repo url number", "---\ngit-gate:\n  repos:\n    app: {url: 5}\n---\n",
     "4:16: git-gate.repos.app.url: expected a string, found a number (quote it to use it as "
     "text: \"5\")"},
    {"repo unknown key", "---\ngit-gate:\n  repos:\n    app: {identity: /k}\n---\n",
     "4:11: unknown key 'identity' in git-gate.repos.app; accepted: key, url"},
    {"repo key without path", "---\ngit-gate:\n  repos:\n    app: {key: {provider: static}}\n---\n",
     "4:16: git-gate.repos.app.key.path: is required"},
    {"repo key bad provider",
     "---\ngit-gate:\n  repos:\n    app: {key: {provider: vault, path: /k}}\n---\n",
     "4:27: git-gate.repos.app.key.provider: unknown key provider 'vault'; accepted: static"},
    /* egress */
    {"egress unknown key", "---\negress: {allow: []}\n---\n",
     "2:10: unknown key 'allow' in egress; accepted: log, routes"},
    {"egress log bad", "---\negress: {log: 2}\n---\n",
     "2:15: egress.log: expected a string, found a number (quote it to use it as text: \"2\")"},
    {"egress log unknown", "---\negress: {log: verbose}\n---\n",
     "2:15: egress.log: unknown level 'verbose'; accepted: off, requests, full"},
    {"routes mapping", "---\negress: {routes: {host: x}}\n---\n",
     "2:18: egress.routes: expected a list, found a mapping"},
    {"route error carries path",
     "---\negress:\n  routes:\n    - host: api.github.com\n      auth:\n        scheme: "
     "Bearer\n---\n",
     "6:9: egress.routes[0].auth: 'token_ref' is required when 'auth' is set"},
    {"route unknown key", "---\negress:\n  routes:\n    - host: a.example\n      role: x\n---\n",
     "5:7: unknown key 'role' in egress.routes[0]; accepted: auth, dlp, git, host, matches, "
     "metered"},
    {"duplicate route host",
     "---\negress:\n  routes:\n    - host: api.github.com\n    - host: pypi.org\n"
     "    - host: API.GitHub.com.\n---\n",
     "6:7: egress.routes[2]: host 'api.github.com' is already routed by egress.routes[0] (line "
     "4); keep one route per host"},
    /* scalars */
    {"supervise string", "---\nsupervise: yes\n---\n",
     "2:12: supervise: expected true or false, found a string"},
    {"supervise quoted", "---\nsupervise: \"false\"\n---\n",
     "2:12: supervise: expected true or false, found a string"},
    {"shutdown unknown", "---\nshutdown: pause\n---\n",
     "2:11: shutdown: unknown policy 'pause'; accepted: cutoff, freeze, kill"},
    {"shutdown empty", "---\nshutdown:\n---\n", "2:10: shutdown: must not be empty"},
    {"enforcement unknown", "---\nenforcement: strict\n---\n",
     "2:14: enforcement: unknown tier 'strict'; accepted: kernel, netns, unprivileged, proxy-only"},
    /* budget */
    {"budget not a map", "---\nbudget: 100\n---\n",
     "2:9: budget: expected a mapping, found a number"},
    {"budget zero", "---\nbudget: {claude: 0}\n---\n",
     "2:18: budget.claude: must be a positive number of tokens, found 0"},
    {"budget negative", "---\nbudget: {claude: -5}\n---\n",
     "2:18: budget.claude: expected a whole number, found a number"},
    {"budget quoted", "---\nbudget: {claude: \"5\"}\n---\n",
     "2:18: budget.claude: expected a whole number, found a string"},
    {"budget fraction", "---\nbudget: {claude: 1.5}\n---\n",
     "2:18: budget.claude: expected a whole number, found a number"},
    {"budget bad provider", "---\nbudget: {Claude: 5}\n---\n",
     "2:10: budget: 'Claude' is not a valid provider name; use lowercase letters, digits and '-', "
     "starting with a letter"},
    /* seccomp */
    {"seccomp not a list", "---\nseccomp: ptrace\n---\n",
     "2:10: seccomp: expected a list of strings, found a string"},
    {"seccomp unknown syscall", "---\nseccomp: [ptrace, teleport]\n---\n",
     "2:19: seccomp[1]: unknown system call 'teleport' on this architecture"},
    /* terminal */
    {"terminal not a map", "---\nterminal: passthrough\n---\n",
     "2:11: terminal: expected a mapping, found a string"},
    {"terminal unknown key", "---\nterminal: {osc52: true}\n---\n",
     "2:12: unknown key 'osc52' in terminal; accepted: allow_osc52, passthrough"},
    {"terminal passthrough string", "---\nterminal: {passthrough: yes}\n---\n",
     "2:25: terminal.passthrough: expected true or false, found a string"},
};

static void test_bottle_rejects(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(bottle_rejects) / sizeof(bottle_rejects[0]); i++) {
        const struct reject_case *c = &bottle_rejects[i];
        struct bottle_def b;
        struct bottle_err err = {0};
        if (bottle_parse(BOTTLE_FILE, "dev", c->text, strlen(c->text), &b, &err) >= 0)
            fail_msg("case '%s' was accepted", c->name);
        bad += expect_msg(c->name, BOTTLE_FILE, &err, c->msg);
        assert_null(b.name); /* nothing left to free */
        assert_null(b.routes.items);
    }
    assert_int_equal(bad, 0);
}

/* ---- agents -------------------------------------------------------------------- */

static void test_agent_full_example(void **state)
{
    (void)state;
    const char *text = "---\n"
                       "name: coder\n"
                       "description: Writes code\n"
                       "tools: [Read, Edit]\n"
                       "model: opus\n"
                       "color: blue\n"
                       "bottle: dev\n"
                       "skills: [review, pdf-tools]\n"
                       "git-gate:\n"
                       "  user: {name: Coder, email: coder@example.com}\n"
                       "budget:\n"
                       "  claude: 50000\n"
                       "---\n"
                       "\n"
                       "  You write careful code.\n"
                       "\n";
    struct agent_def a;
    struct bottle_err err = {0};
    if (agent_parse(AGENT_FILE, "coder", text, strlen(text), &a, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(a.name, "coder");
    assert_string_equal(a.file, AGENT_FILE);
    assert_string_equal(a.bottle, "dev");
    assert_int_equal(a.skills.len, 2);
    assert_string_equal(a.skills.items[1], "pdf-tools");
    assert_string_equal(a.git_user.name, "Coder");
    assert_string_equal(a.git_user.email, "coder@example.com");
    assert_int_equal(a.n_budgets, 1);
    assert_int_equal(a.budgets[0].tokens, 50000);
    assert_string_equal(a.budgets[0].origin, "coder");
    assert_string_equal(a.prompt, "You write careful code.");
    agent_def_free(&a);
    agent_def_free(&a);
    agent_def_free(NULL);

    const char *bare = "---\n---\n";
    assert_int_equal(agent_parse(AGENT_FILE, "bare", bare, strlen(bare), &a, &err), 0);
    assert_null(a.bottle);
    assert_string_equal(a.prompt, "");
    agent_def_free(&a);

    const char *empty_git = "---\ngit-gate: {}\n---\nhi";
    assert_int_equal(agent_parse(AGENT_FILE, "g", empty_git, strlen(empty_git), &a, &err), 0);
    assert_null(a.git_user.name);
    agent_def_free(&a);
}

static const struct reject_case agent_rejects[] = {
    {"missing frontmatter", "Just a prompt.\n",
     "1:1: missing frontmatter: the file must start with a '---' line, then the YAML settings, "
     "then a closing '---' line"},
    {"unterminated frontmatter", "---\nbottle: dev\nprompt\n",
     "1:1: unterminated frontmatter: no closing '---' line after the opening one"},
    {"unknown key", "---\nbottle: dev\nprompt: hi\n---\n",
     "3:1: unknown key 'prompt' in agent; accepted: " AGENT_KEYS},
    {"duplicate key", "---\nbottle: dev\nbottle: prod\n---\n",
     "3:1: duplicate key 'bottle' (first defined at line 2)"},
    {"bottle empty", "---\nbottle: ''\n---\n", "2:9: bottle: must not be empty"},
    {"bottle null", "---\nbottle:\n---\n", "2:8: bottle: must not be empty"},
    {"bottle list", "---\nbottle: [dev]\n---\n", "2:9: bottle: expected a string, found a list"},
    {"bottle bad name", "---\nbottle: Dev\n---\n",
     "2:9: bottle: 'Dev' is not a valid bottle name; use lowercase letters, digits and '-', "
     "starting with a letter"},
    {"skills string", "---\nskills: review\n---\n",
     "2:9: skills: expected a list of strings, found a string"},
    {"skills path", "---\nskills: [ok, ../../.ssh]\n---\n",
     "2:14: skills[1]: '../../.ssh' is not a valid skill name; use letters, digits, '.', '_' and "
     "'-', not starting with '.' or '-'"},
    {"repos on agent", "---\ngit-gate:\n  repos: {app: {url: x}}\n---\n",
     "3:3: git-gate.repos: repos belong in bottles, not agents; move this block to the agent's "
     "bottle"},
    {"git-gate unknown key", "---\ngit-gate: {email: x}\n---\n",
     "2:12: unknown key 'email' in git-gate; accepted: user"},
    {"git-gate list", "---\ngit-gate: []\n---\n",
     "2:11: git-gate: expected a mapping, found a list"},
    {"budget zero", "---\nbudget: {claude: 0}\n---\n",
     "2:18: budget.claude: must be a positive number of tokens, found 0"},
    {"tag", "---\nbottle: !!str dev\n---\n",
     "2:9: tags are not allowed ('tag:yaml.org,2002:str'); remove the tag"},
};

static void test_agent_rejects(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(agent_rejects) / sizeof(agent_rejects[0]); i++) {
        const struct reject_case *c = &agent_rejects[i];
        struct agent_def a;
        struct bottle_err err = {0};
        if (agent_parse(AGENT_FILE, "coder", c->text, strlen(c->text), &a, &err) >= 0)
            fail_msg("case '%s' was accepted", c->name);
        bad += expect_msg(c->name, AGENT_FILE, &err, c->msg);
        assert_null(a.name);
    }
    assert_int_equal(bad, 0);
}

/* ---- settings.yml --------------------------------------------------------------- */

static void test_settings_example(void **state)
{
    (void)state;
    const char *text = "# host-wide limits\n"
                       "budget:\n"
                       "  claude: 1000000\n"
                       "shutdown: kill\n"
                       "enforcement: kernel\n"
                       "ledger: /var/lib/bottle/ledger.db\n"
                       "sidecar:\n"
                       "  max_connections: 64\n";
    struct settings s;
    struct bottle_err err = {0};
    assert_int_equal(settings_parse("settings.yml", text, strlen(text), &s, &err), 0);
    assert_string_equal(s.file, "settings.yml");
    assert_int_equal(s.n_budgets, 1);
    assert_string_equal(s.budgets[0].origin, "settings");
    assert_int_equal(s.budgets[0].tokens, 1000000);
    assert_int_equal(s.shutdown, SHUTDOWN_KILL);
    assert_int_equal(s.enforcement, TIER_KERNEL);
    assert_string_equal(s.ledger_path, "/var/lib/bottle/ledger.db");
    assert_int_equal(s.sidecar_max_connections, 64);
    settings_free(&s);
    settings_free(&s);
    settings_free(NULL);

    assert_int_equal(settings_parse("settings.yml", "", 0, &s, &err), 0);
    assert_int_equal(s.n_budgets, 0);
    assert_null(s.ledger_path);
    assert_int_equal(s.sidecar_max_connections, 0); /* the sidecar's default */
    settings_free(&s);
}

static const struct reject_case settings_rejects[] = {
    {"unknown key", "budget: {}\nsupervise: true\n",
     "2:1: unknown key 'supervise' in settings; accepted: budget, enforcement, ledger, pools, "
     "shutdown, sidecar"},
    {"ledger URL with a password", "ledger: postgresql://bottle:hunter2@db/ledger\n",
     "1:9: ledger: the URL carries a password; give it in PGPASSWORD, a password file "
     "(~/.pgpass, PGPASSFILE) or a service file instead"},
    {"ledger URL with password=", "ledger: postgres://db/ledger?password=hunter2\n",
     "1:9: ledger: the URL carries a password; give it in PGPASSWORD, a password file "
     "(~/.pgpass, PGPASSFILE) or a service file instead"},
    {"period bad", "budget:\n  claude: {tokens: 5, period: week}\n",
     "2:31: budget.claude.period: 'week'; accepted: day, month, total"},
    {"period without tokens", "budget:\n  claude: {period: day}\n",
     "2:11: budget.claude: needs tokens"},
    {"pool bad name", "pools:\n  Team A:\n    claude: 5\n",
     "2:3: pools: 'Team A' is not a valid pool name; use lowercase letters, digits and '-', "
     "starting with a letter"},
    {"pool budget zero", "pools:\n  team:\n    claude: 0\n",
     "3:13: budget.claude: must be a positive number of tokens, found 0"},
    {"connections zero", "sidecar:\n  max_connections: 0\n",
     "2:20: sidecar.max_connections: must be from 1 to 65536, found 0"},
    {"connections too many", "sidecar:\n  max_connections: 70000\n",
     "2:20: sidecar.max_connections: must be from 1 to 65536, found 70000"},
    {"connections text", "sidecar:\n  max_connections: many\n",
     "2:20: sidecar.max_connections: expected a whole number, found a string"},
    {"sidecar unknown", "sidecar:\n  connections: 5\n",
     "2:3: unknown key 'connections' in sidecar; accepted: max_connections"},
    {"ledger empty", "ledger: ''\n", "1:9: ledger: must not be empty"},
    {"budget bad", "budget:\n  claude: lots\n",
     "2:11: budget.claude: expected a whole number, found a string"},
    {"shutdown bad", "shutdown: stop\n",
     "1:11: shutdown: unknown policy 'stop'; accepted: cutoff, freeze, kill"},
    {"enforcement bad", "enforcement: 3\n",
     "1:14: enforcement: expected a string, found a number (quote it to use it as text: \"3\")"},
    {"list root", "- a\n", "1:1: the document must be a mapping of keys to values, found a list"},
    {"multiple documents", "shutdown: kill\n---\nshutdown: freeze\n",
     "2:1: multiple documents are not allowed; remove the extra '---' or '...' line"},
    {"alias", "a: &x 1\n", "1:4: anchors are not allowed ('&x'); write the value out"},
};

/* Pools and periods: shared limits the ledger keeps for every host. */
static void test_settings_pools_and_periods(void **state)
{
    (void)state;
    const char *text = "budget:\n"
                       "  claude: {tokens: 50000000, period: day}\n"
                       "  codex: 7\n"
                       "ledger: postgresql://bottle@db.example:5432/ledger?sslmode=require\n"
                       "pools:\n"
                       "  team-a:\n"
                       "    claude: {tokens: 1000000, period: month}\n"
                       "    codex: 500\n"
                       "  team-b:\n"
                       "    claude: 20\n";
    struct settings s;
    struct bottle_err err = {0};
    if (settings_parse("settings.yml", text, strlen(text), &s, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(s.n_budgets, 2);
    assert_int_equal(s.budgets[0].tokens, 50000000);
    assert_string_equal(s.budgets[0].period, "day");
    assert_null(s.budgets[1].period);
    assert_string_equal(s.ledger_path,
                        "postgresql://bottle@db.example:5432/ledger?sslmode=require");
    assert_int_equal(s.n_pools, 2);
    assert_string_equal(s.pools[0].name, "team-a");
    assert_int_equal(s.pools[0].n_budgets, 2);
    assert_string_equal(s.pools[0].budgets[0].period, "month");
    assert_int_equal(s.pools[0].budgets[1].tokens, 500);
    assert_string_equal(s.pools[1].name, "team-b");
    settings_free(&s);

    const char *bottle =
        "---\nbudget_pool: team-a\nbudget:\n  claude: {tokens: 9, period: total}\n---\n";
    struct bottle_def b;
    if (bottle_parse("bottles/x.md", "x", bottle, strlen(bottle), &b, &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(b.budget_pool, "team-a");
    assert_string_equal(b.budgets[0].period, "total");
    bottle_def_free(&b);
    const char *badpool = "---\nbudget_pool: Team A\n---\n";
    assert_true(bottle_parse("bottles/x.md", "x", badpool, strlen(badpool), &b, &err) < 0);
    assert_non_null(strstr(err.msg, "budget_pool: 'Team A' is not a valid pool name"));
}

static void test_settings_rejects(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(settings_rejects) / sizeof(settings_rejects[0]); i++) {
        const struct reject_case *c = &settings_rejects[i];
        struct settings s;
        struct bottle_err err = {0};
        if (settings_parse("settings.yml", c->text, strlen(c->text), &s, &err) >= 0)
            fail_msg("case '%s' was accepted", c->name);
        bad += expect_msg(c->name, "settings.yml", &err, c->msg);
        assert_null(s.file);
    }
    assert_int_equal(bad, 0);
}

/* ---- names and enums ------------------------------------------------------------ */

static void test_names_and_enums(void **state)
{
    (void)state;
    const char *good[] = {"dev", "a", "web-2", "x-"};
    const char *bad[] = {"", "Dev", "2dev", "-dev", "de_v", "de.v", "dev/x", "..", NULL};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(manifest_name_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(manifest_name_valid(bad[i]));

    const char *tiers[] = {"kernel", "netns", "unprivileged", "proxy-only"};
    for (size_t i = 0; i < 4; i++) {
        enum enforcement_tier t = TIER_UNSET;
        assert_int_equal(enforcement_tier_parse(tiers[i], &t), 0);
        assert_string_equal(enforcement_tier_name(t), tiers[i]);
    }
    enum enforcement_tier t = TIER_UNSET;
    assert_true(enforcement_tier_parse("Kernel", &t) < 0);
    assert_true(TIER_KERNEL > TIER_NETNS && TIER_NETNS > TIER_UNPRIVILEGED &&
                TIER_UNPRIVILEGED > TIER_PROXY_ONLY);

    const char *policies[] = {"cutoff", "freeze", "kill"};
    for (size_t i = 0; i < 3; i++) {
        enum shutdown_policy p = SHUTDOWN_UNSET;
        assert_int_equal(shutdown_policy_parse(policies[i], &p), 0);
        assert_string_equal(shutdown_policy_name(p), policies[i]);
    }
    enum shutdown_policy p = SHUTDOWN_UNSET;
    assert_true(shutdown_policy_parse("stop", &p) < 0);
    assert_true(shutdown_policy_parse(NULL, &p) < 0);
    assert_string_equal(egress_log_name(EGRESS_LOG_OFF), "off");
    assert_string_equal(egress_log_name(EGRESS_LOG_REQUESTS), "requests");
    assert_string_equal(egress_log_name(EGRESS_LOG_FULL), "full");
}

/* ---- limits -------------------------------------------------------------------- */

struct limits_case {
    const char *yaml; /* the value of `limits:` */
    uint64_t pids, memory, cpu_milli, tmpfs;
};

static void test_bottle_limits(void **state)
{
    (void)state;
    static const struct limits_case cases[] = {
        {"{pids: 64, memory: 128M, cpus: 0.5, tmpfs: 16M}", 64, 128ull << 20, 500, 16ull << 20},
        {"{memory: 1073741824}", 0, 1ull << 30, 0, 0},
        {"{memory: \"2GiB\", tmpfs: 512mb}", 0, 2ull << 30, 0, 512ull << 20},
        {"{memory: 1T, tmpfs: 1g}", 0, 1ull << 40, 0, 1ull << 30},
        {"{pids: max, memory: max, cpus: max}", LIMIT_NONE, LIMIT_NONE, LIMIT_NONE, 0},
        {"{cpus: 2}", 0, 0, 2000, 0},
        {"{cpus: 1.25}", 0, 0, 1250, 0},
        {"{cpus: 0.01}", 0, 0, 10, 0},
        {"{pids: 8}", 8, 0, 0, 0},
        {"{}", 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = xasprintf("---\nlimits: %s\n---\n", cases[i].yaml);
        struct bottle_def b;
        struct bottle_err err = {0};
        if (bottle_parse(BOTTLE_FILE, "dev", text, strlen(text), &b, &err) < 0)
            fail_msg("%s: %s", cases[i].yaml, err.msg);
        assert_int_equal(b.limits.pids, cases[i].pids);
        assert_int_equal(b.limits.memory, cases[i].memory);
        assert_int_equal(b.limits.cpu_milli, cases[i].cpu_milli);
        assert_int_equal(b.limits.tmpfs, cases[i].tmpfs);
        struct bottle_def copy;
        bottle_def_copy(&copy, &b);
        assert_memory_equal(&copy.limits, &b.limits, sizeof(b.limits));
        bottle_def_free(&copy);
        bottle_def_free(&b);
        free(text);
    }
}

static const struct reject_case limits_rejects[] = {
    {"limits list", "---\nlimits: [1]\n---\n", "2:9: limits: expected a mapping, found a list"},
    {"limits unknown key", "---\nlimits:\n  disk: 1G\n---\n",
     "3:3: unknown key 'disk' in limits; accepted: cpus, memory, pids, tmpfs"},
    {"pids string", "---\nlimits: {pids: lots}\n---\n",
     "2:16: limits.pids: expected a whole number of processes or 'max', found a string"},
    {"pids negative", "---\nlimits: {pids: -1}\n---\n",
     "2:16: limits.pids: expected a whole number of processes or 'max', found a number"},
    {"pids too few", "---\nlimits: {pids: 2}\n---\n",
     "2:16: limits.pids: 2 is below the minimum of 8 (the bottle's init, the agent and its "
     "tools need a few)"},
    {"pids too many", "---\nlimits: {pids: 99999999}\n---\n",
     "2:16: limits.pids: 99999999 is above the kernel's maximum of 4194304"},
    {"memory without unit", "---\nlimits: {memory: 512}\n---\n",
     "2:18: limits.memory: 512 is below the minimum of 16M (a number without a unit is bytes; "
     "write e.g. 512M)"},
    {"memory bad unit", "---\nlimits: {memory: 12X}\n---\n",
     "2:18: limits.memory: '12X' is not a size; write bytes, or a whole number with K, M, G or T "
     "(binary: 512M, 8G), or 'max' for no limit"},
    {"memory decimal", "---\nlimits: {memory: 1.5G}\n---\n",
     "2:18: limits.memory: '1.5G' is not a size; write bytes, or a whole number with K, M, G or "
     "T (binary: 512M, 8G), or 'max' for no limit"},
    {"memory list", "---\nlimits: {memory: [1]}\n---\n",
     "2:18: limits.memory: expected a size (e.g. 512M) or 'max', found a list"},
    {"memory overflow", "---\nlimits: {memory: 99999999999T}\n---\n",
     "2:18: limits.memory: '99999999999T' is too large"},
    {"cpus zero", "---\nlimits: {cpus: 0}\n---\n", "2:16: limits.cpus: 0 is outside 0.01 to 4096"},
    {"cpus decimals", "---\nlimits: {cpus: 0.0005}\n---\n",
     "2:16: limits.cpus: '0.0005' has more than three decimals"},
    {"cpus word", "---\nlimits: {cpus: half}\n---\n",
     "2:16: limits.cpus: 'half' is not a number of CPUs; write e.g. 2 or 0.5, or 'max'"},
    {"cpus quoted", "---\nlimits: {cpus: \"1\"}\n---\n",
     "2:16: limits.cpus: expected a number of CPUs (e.g. 2 or 0.5) or 'max', found a string"},
    {"tmpfs max", "---\nlimits: {tmpfs: max}\n---\n",
     "2:17: limits.tmpfs: 'max' is not allowed: every tmpfs has a size (e.g. 1G)"},
    {"tmpfs tiny", "---\nlimits: {tmpfs: 4K}\n---\n",
     "2:17: limits.tmpfs: 4K is below the minimum of 1M"},
};

static void test_bottle_limits_rejects(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(limits_rejects) / sizeof(limits_rejects[0]); i++) {
        const struct reject_case *c = &limits_rejects[i];
        struct bottle_def b;
        struct bottle_err err = {0};
        if (bottle_parse(BOTTLE_FILE, "dev", c->text, strlen(c->text), &b, &err) >= 0)
            fail_msg("case '%s' was accepted", c->name);
        bad += expect_msg(c->name, BOTTLE_FILE, &err, c->msg);
    }
    assert_int_equal(bad, 0);
}

static void test_limits_defaults_and_format(void **state)
{
    (void)state;
    struct resource_limits none = {0}, out;
    limits_effective(&none, 24ull << 30, &out);
    assert_int_equal(out.pids, LIMITS_DEFAULT_PIDS);
    assert_int_equal(out.memory, 8ull << 30); /* half of 24G, capped at 8G */
    assert_int_equal(out.cpu_milli, LIMIT_NONE);
    assert_int_equal(out.tmpfs, 1ull << 30);
    limits_effective(&none, 6ull << 30, &out);
    assert_int_equal(out.memory, 3ull << 30); /* half of a small host */
    limits_effective(&none, 0, &out);
    assert_int_equal(out.memory, 8ull << 30); /* unknown host: the cap */
    struct resource_limits declared = {.pids = LIMIT_NONE, .memory = 64ull << 20};
    limits_effective(&declared, 6ull << 30, &out);
    assert_int_equal(out.pids, LIMIT_NONE);
    assert_int_equal(out.memory, 64ull << 20);

    struct resource_limits acc = {.pids = 100, .memory = 1ull << 30};
    struct resource_limits later = {.memory = 2ull << 30, .cpu_milli = 500};
    limits_fold(&acc, &later);
    assert_int_equal(acc.pids, 100);
    assert_int_equal(acc.memory, 2ull << 30);
    assert_int_equal(acc.cpu_milli, 500);
    assert_int_equal(acc.tmpfs, LIMIT_UNSET);

    char b[32];
    limits_format_bytes(512ull << 20, b, sizeof(b));
    assert_string_equal(b, "512M");
    limits_format_bytes(1536ull << 20, b, sizeof(b));
    assert_string_equal(b, "1536M");
    limits_format_bytes(1000, b, sizeof(b));
    assert_string_equal(b, "1000");
    limits_format_bytes(LIMIT_NONE, b, sizeof(b));
    assert_string_equal(b, "max");
    limits_format_cpus(500, b, sizeof(b));
    assert_string_equal(b, "0.5");
    limits_format_cpus(1250, b, sizeof(b));
    assert_string_equal(b, "1.25");
    limits_format_cpus(10, b, sizeof(b));
    assert_string_equal(b, "0.01");
    limits_format_cpus(3000, b, sizeof(b));
    assert_string_equal(b, "3");
    limits_format_cpus(LIMIT_NONE, b, sizeof(b));
    assert_string_equal(b, "max");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bottle_full_example),
        cmocka_unit_test(test_bottle_defaults),
        cmocka_unit_test(test_bottle_small_shapes),
        cmocka_unit_test(test_bottle_rejects),
        cmocka_unit_test(test_agent_full_example),
        cmocka_unit_test(test_agent_rejects),
        cmocka_unit_test(test_settings_example),
        cmocka_unit_test(test_settings_rejects),
        cmocka_unit_test(test_names_and_enums),
        cmocka_unit_test(test_settings_pools_and_periods),
        cmocka_unit_test(test_bottle_limits),
        cmocka_unit_test(test_bottle_limits_rejects),
        cmocka_unit_test(test_limits_defaults_and_format),
    };
    return cmocka_run_group_tests_name("schema", tests, NULL, NULL);
}
