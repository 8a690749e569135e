#!/bin/sh
# The `bottle` command line as a user meets it: help, exit codes, the dry-run
# plan for every example, manifest errors with file:line:col, policy test.
. "$BOTTLE_SRC/tests/lib.sh"

plan 31

EX="$BOTTLE_SRC/examples"
export BOTTLE_HOME="$EX"
cd "$T_TMP" || exit 1

# 1-2: version and help
check "--version prints the version" sh -c "'$BOTTLE' --version | grep -q '^bottle [0-9]'"
help_ok=1
for c in start list info policy doctor commit; do
    "$BOTTLE" "$c" --help >/dev/null 2>&1 || help_ok=0
    "$BOTTLE" help "$c" | grep -q "^usage: bottle $c" || help_ok=0
done
if [ $help_ok -eq 1 ]; then ok "every command has --help"; else fail "every command has --help"; fi

# 3: unknown command and unknown option are usage errors (exit 2)
"$BOTTLE" frobnicate >/dev/null 2>&1; a=$?
"$BOTTLE" start claude --dry-run --frob >/dev/null 2>&1; b=$?
if [ $a -eq 2 ] && [ $b -eq 2 ]; then ok "usage errors exit 2"; else fail "usage errors exit 2" "got $a and $b"; fi

# 4-6: each example's plan is valid JSON with the documented fields, and no secret value
for agent in claude codex curl; do
    out="$T_TMP/plan-$agent.json"
    CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-TOPSECRET OPENAI_API_KEY=sk-TOPSECRET \
        EXAMPLE_API_TOKEN=TOPSECRET-EXAMPLE \
        "$BOTTLE" start "$agent" --dry-run --format json >"$out" 2>"$T_TMP/err"
    rc=$?
    if [ $rc -eq 0 ] && python3 - "$out" <<'PY' && ! grep -q TOPSECRET "$out"; then
import json, sys
d = json.load(open(sys.argv[1]))
need = ["version", "agent", "bottles", "provider", "argv", "env", "routes", "token_refs",
        "budgets", "shutdown", "backend", "enforcement", "warnings"]
missing = [k for k in need if k not in d]
assert not missing, missing
assert d["bottles"]["lineage"][0] == "base"
assert all(isinstance(e["name"], str) and "value" not in e for e in d["env"])
assert all(r["set"] for r in d["token_refs"]), d["token_refs"]
PY
        ok "plan for example '$agent' is valid, complete JSON without secret values"
    else
        fail "plan for example '$agent'" "exit $rc" "$(cat "$T_TMP/err")"
    fi
done

# 7: the text preflight names the tier and never prints a token
out=$(CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-TOPSECRET "$BOTTLE" start claude --dry-run 2>&1)
if echo "$out" | grep -q "enforcement  required kernel" && ! echo "$out" | grep -q TOPSECRET; then
    ok "text plan shows the tiers and no secret"
else
    fail "text plan" "$out"
fi

# 8: unset token references are warnings in a dry run...
out=$(env -u CLAUDE_CODE_OAUTH_TOKEN "$BOTTLE" start claude --dry-run --format json)
if echo "$out" | grep -q "token reference 'CLAUDE_CODE_OAUTH_TOKEN' is not set"; then
    ok "dry run warns about an unset token reference"
else
    fail "dry run warns about an unset token reference" "$out"
fi
# 9: ...and errors at start (named, exit 2), without waiting for a terminal
out=$(env -u CLAUDE_CODE_OAUTH_TOKEN timeout 10 "$BOTTLE" start claude </dev/null 2>&1)
rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q "'CLAUDE_CODE_OAUTH_TOKEN' is not set"; then
    ok "start refuses an unset token reference by name (exit 2)"
else
    fail "start refuses an unset token reference" "exit $rc: $out"
fi

# 10: --budget overrides and shows its scope; -- arguments are appended
out=$("$BOTTLE" start curl --dry-run --format json --budget claude=42 -- --verbose)
if echo "$out" | python3 -c '
import json,sys; d=json.load(sys.stdin)
b=[x for x in d["budgets"] if x["provider"]=="claude"][0]
assert b["tokens"]==42 and b["scope"]=="cli", b
assert d["argv"][-1]=="--verbose", d["argv"]'; then
    ok "--budget overrides with scope cli; arguments after -- reach the agent"
else
    fail "--budget and -- arguments" "$out"
fi

# 11: bad --budget values are usage errors
"$BOTTLE" start curl --dry-run --budget claude=lots >/dev/null 2>&1; a=$?
"$BOTTLE" start curl --dry-run --budget =5 >/dev/null 2>&1; b=$?
if [ $a -eq 2 ] && [ $b -eq 2 ]; then ok "bad --budget exits 2"; else fail "bad --budget" "$a $b"; fi

# 12-18: manifest error classes exit 2 with file:line:col
bad_home="$T_TMP/bad"
mkdir -p "$bad_home/agents" "$bad_home/bottles"
printf -- '---\nbottle: b\n---\n' >"$bad_home/agents/a.md"
bad_case() {
    name=$1 text=$2 want=$3
    printf -- "$text" >"$bad_home/bottles/b.md"
    out=$(BOTTLE_HOME="$bad_home" "$BOTTLE" start a --dry-run 2>&1)
    rc=$?
    if [ $rc -eq 2 ] && echo "$out" | grep -q -- "$want"; then
        ok "manifest error: $name"
    else
        fail "manifest error: $name" "exit $rc" "$out"
    fi
}
bad_case "unknown key" '---\nfrobs: 1\n---\n' "bottles/b.md:2:1: .*frobs"
bad_case "duplicate key" '---\nsupervise: true\nsupervise: false\n---\n' "bottles/b.md:3:1:"
bad_case "alias" '---\nenv: &e\n  A: b\negress: *e\n---\n' "bottles/b.md:2:"
bad_case "wrong type" '---\nsupervise: yes\n---\n' "bottles/b.md:2:12:"
bad_case "empty extends list" '---\nextends: []\n---\n' "bottles/b.md:2:10:"
bad_case "missing parent" '---\nextends: nowhere\n---\n' "bottles/b.md:2:10: extends: .*nowhere"
bad_case "route without host" '---\negress:\n  routes:\n    - auth:\n        scheme: Bearer\n        token_ref: T\n---\n' "bottles/b.md:4:"

# 19: a broken file fails only when it is selected
printf -- '---\nfrobs: 1\n---\n' >"$bad_home/bottles/b.md"
printf -- '---\nenv:\n  X: y\n---\n' >"$bad_home/bottles/good.md"
printf -- '---\nbottle: good\n---\n' >"$bad_home/agents/g.md"
if BOTTLE_HOME="$bad_home" "$BOTTLE" list available | grep -q "^  b " &&
    BOTTLE_HOME="$bad_home" "$BOTTLE" start g --dry-run >/dev/null 2>&1; then
    ok "a broken bottle is listed and does not block others"
else
    fail "a broken bottle is listed and does not block others"
fi

# 20-23: policy test answers with the sidecar's reason codes and exit codes
pt() {
    expect_rc=$1 expect=$2
    shift 2
    out=$("$BOTTLE" policy test "$@" 2>&1)
    rc=$?
    if [ $rc -eq "$expect_rc" ] && echo "$out" | grep -q -- "$expect"; then
        ok "policy test $* -> $expect"
    else
        fail "policy test $*" "exit $rc: $out"
    fi
}
pt 0 "^allowed: .*metered as claude" claude https://api.anthropic.com/v1/messages --method POST
pt 3 "refused: 403 host_not_allowed" claude https://exfil.example/upload
pt 3 "refused: 403 git_push_blocked" claude "https://github.com/o/r.git/info/refs?service=git-receive-pack"
pt 3 "refused: 403 no_matching_rule" curl https://api.example.test/v2/other

# 24: below the required tier, start refuses with exit 3 and says which layer is missing
if is_root && command -v setpriv >/dev/null; then
    chmod 0755 "$T_TMP"
    out=$(env -u CLAUDE_CODE_OAUTH_TOKEN BOTTLE_HOME="$EX" setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$BOTTLE" start curl </dev/null 2>&1)
    rc=$?
    if [ $rc -eq 3 ] && echo "$out" | grep -q "requires the 'kernel' enforcement tier"; then
        ok "start below the required tier exits 3 with the missing layer"
    else
        fail "start below the required tier" "exit $rc: $out"
    fi
else
    skip "start below the required tier" kernel "needs root to drop to an unprivileged uid"
fi

# 25: --dry-run says what the backend and tier enforce and what they do not, in text and JSON
txt=$("$BOTTLE" start curl --dry-run 2>&1)
"$BOTTLE" start curl --dry-run --format json >"$T_TMP/enf.json" 2>/dev/null
if echo "$txt" | grep -q "enforced (native backend, .* tier):" &&
    echo "$txt" | grep -q "^  not enforced:" && python3 - "$T_TMP/enf.json" <<'PY'; then
import json, sys
r = json.load(open(sys.argv[1]))["enforcement_report"]
assert r["backend_available"] is True
assert any("sidecar" in l for l in r["enforced"]) and r["not_enforced"], r
PY
    ok "dry run states what is enforced and what is not"
else
    fail "dry run states what is enforced and what is not" "$txt"
fi

# 26: a backend this build cannot run is planned, with a warning that a start would fail
out=$("$BOTTLE" start curl --dry-run --backend smolmachines 2>&1)
rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "backend 'smolmachines' cannot run bottles in this build; a real start would fail"; then
    ok "dry run warns about an unavailable backend"
else
    fail "dry run warns about an unavailable backend" "exit $rc: $out"
fi

# 27: --yes is gone (nothing ever asked); --quiet is accepted
"$BOTTLE" start curl --dry-run --yes >/dev/null 2>&1; a=$?
"$BOTTLE" start curl --dry-run --quiet >/dev/null 2>&1; b=$?
if [ $a -eq 2 ] && [ $b -eq 0 ]; then ok "--yes is refused, --quiet accepted"; else fail "--yes/--quiet" "got $a and $b"; fi

# 28: an unknown bottle is a usage error (exit 2) for every command that names one, with no
# internal path in the message
bad=""
for c in stop freeze thaw cutoff usage events budget commit; do
    out=$(BOTTLE_HOME="$T_TMP/empty-home" "$BOTTLE" "$c" no-such-bottle-$$ 2>&1)
    rc=$?
    if [ $rc -ne 2 ] || echo "$out" | grep -q '/sys/\|/run/\|bpffs\|cgroup'; then bad="$bad $c:$rc:$out"; fi
done
if [ -z "$bad" ]; then ok "an unknown bottle exits 2 on every command, without paths"; else fail "unknown bottle" "$bad"; fi

# 29: misspelt names get a suggestion; info lists agents and bottles once each
a=$("$BOTTLE" start claud --dry-run 2>&1)
b=$("$BOTTLE" info codx 2>&1)
if echo "$a" | grep -q "did you mean 'claude'" && echo "$b" | grep -q "did you mean 'codex'" &&
    echo "$b" | grep -q "agents: claude, codex, curl; bottles: base, claude, codex, curl"; then
    ok "did you mean, and each name listed once"
else
    fail "suggestions" "$a" "$b"
fi

# 30: --json is --format json on every command that prints JSON
j=0
for c in "list available" "info claude" "doctor" "start curl --dry-run"; do
    # shellcheck disable=SC2086
    "$BOTTLE" $c --json 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)' || j=1
done
"$BOTTLE" budget --format json 2>/dev/null | python3 -c 'import json,sys; json.load(sys.stdin)' || j=1
for c in usage events budget; do # a bad or missing value is a usage error
    "$BOTTLE" $c --format xml >/dev/null 2>&1; [ $? -eq 2 ] || j=1
    "$BOTTLE" $c --format >/dev/null 2>&1; [ $? -eq 2 ] || j=1
done
if [ $j -eq 0 ]; then ok "--json and --format json everywhere; a bad --format exits 2"; else fail "--json aliases"; fi

# 31: bottle doctor's last line is the tier
last=$("$BOTTLE" doctor 2>/dev/null | tail -n 1)
case $last in "tier: "*) ok "doctor ends with the tier" ;; *) fail "doctor last line" "$last" ;; esac
