#!/bin/sh
# Budgets end to end in native bottles: an agent calls a fake Anthropic API on a
# metered route; the response's usage exhausts the bottle's budget, the sidecar
# tells the controller, and the bottle's shutdown policy fires at kernel level —
# cutoff (the agent's next call cannot even connect), freeze (the agent stops
# until thawed, then is refused with 429), kill (the agent dies, the bottle tears
# down). Each action leaves an audit row in the ledger; the usage rows hold the
# upstream's exact counts.
. "$BOTTLE_SRC/tests/lib.sh"

N=9
plan $N
if ! is_root; then
    for i in $(seq 1 $N); do skip "budget_native $i" kernel "needs root"; done
    exit 0
fi

W=$T_TMP
FIX=$BOTTLE_SRC/tests/fixtures
UP_PID=""
cleanup() {
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    rm -rf "$T_TMP"
}
trap cleanup EXIT

export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
unset SUDO_UID SUDO_GID
export LLM_TOKEN=llm-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=budget e2e CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=llm.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:llm.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$W/ext"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext" -out "$W/up.pem" 2>/dev/null
: >"$W/llm.log"
# Every answer reports 40 input and 3000 output tokens: one call exhausts a 1000-token budget.
python3 "$FIX/fake_llm.py" --host 127.0.0.1 --port 0 --port-file "$W/llm.port" --log "$W/llm.log" \
    --cert "$W/up.pem" --key "$W/up-key.pem" --input-tokens 40 --output-tokens 3000 \
    --cache-creation-input-tokens 0 --cache-read-input-tokens 0 &
UP_PID=$!
i=0
while [ ! -s "$W/llm.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP=$(cat "$W/llm.port")

# bottle POLICY: a generic agent on a metered route with a 1000-token budget
bottle_for() {
    {
        echo "---"
        echo "agent_provider:"
        echo "  template: generic"
        echo "  command: [sh, $WS/agent.sh]"
        echo "shutdown: $1"
        echo "budget:"
        echo "  claude: 1000"
        echo "egress:"
        echo "  routes:"
        echo "    - host: llm.test:$UP"
        echo "      metered: claude"
        echo "      auth:"
        echo "        scheme: Bearer"
        echo "        token_ref: LLM_TOKEN"
        echo "---"
        echo "A metered bottle."
    } >"$BOTTLE_HOME/bottles/b-$1.md"
    printf -- '---\nbottle: b-%s\n---\nCall the model.\n' "$1" >"$BOTTLE_HOME/agents/a-$1.md"
}
cat >"$WS/agent.sh" <<EOF
cd "$WS"
rm -f result second.out
call() {
    curl -s -o "\$1.out" -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \\
        --data '{"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}' \\
        https://llm.test:$UP/v1/messages
}
echo "first=\$(call first)" >result
sleep 1.5
code=\$(call second)
echo "second=\$code rc=\$?" >>result
exit 4
EOF

ledger() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print("\n".join("|".join(str(x) for x in r) for r in c.execute(sys.argv[2])))' "$BOTTLE_HOME/bottle.db" "$1"; }
start() { # POLICY
    (cd "$WS" && exec "$BOTTLE" start "a-$1" --label "bud-$1-$$" --cwd "$WS" \
        --resolve "llm.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem") >"$W/$1.out" 2>"$W/$1.err"
}

# 1-3: cutoff
bottle_for cutoff
start cutoff
rc=$?
if [ $rc -eq 4 ] && grep -q '^first=200$' "$WS/result" && grep -q '^second=000' "$WS/result"; then
    ok "cutoff: the call that exhausts the budget completes; the next cannot even connect"
else fail "cutoff policy" "rc=$rc" "$(cat "$WS/result" "$W/cutoff.err")"; fi
u=$(ledger "SELECT input_tokens, output_tokens, complete FROM usage WHERE bottle='bud-cutoff-$$'")
if [ "$u" = "40|3000|1" ]; then ok "the usage row holds the upstream's counts"; else fail "usage row" "$u"; fi
a=$(ledger "SELECT action, policy, who FROM audit WHERE bottle='bud-cutoff-$$' AND who='budget'")
if echo "$a" | grep -q '^cutoff|cutoff|budget$' && grep -q "token budget exhausted" "$W/cutoff.err"; then
    ok "cutoff: audit row (cutoff, policy cutoff, by budget) and a message for the user"
else fail "cutoff audit" "$a" "$(cat "$W/cutoff.err")"; fi

# 4: usage after the fact: the counters kept at teardown, and the tokens against the budget
"$BOTTLE" usage "bud-cutoff-$$" --json >"$W/usage.json" 2>&1
if python3 - "$W/usage.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))["bottles"][0]
t = [x for x in b["tokens"] if x["provider"] == "claude"][0]
assert b["state"] == "finished" and b["tx_bytes"] > 0 and b["connect_ok"] > 0, b
assert t["input_tokens"] == 40 and t["output_tokens"] == 3000 and t["charged_tokens"] == 3040, t
assert t["budget"] == 1000 and t["left"] == 0, t
PY
then ok "bottle usage on a finished bottle: kernel counters kept, tokens 3040 charged of a 1000 budget"
else fail "usage after the fact" "$(cat "$W/usage.json")"; fi

# 5-7: freeze — the agent stops after its first call; thawed, it is refused with 429
bottle_for freeze
start freeze &
SP=$!
CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
EV="$CG2/bottle/bud-freeze-$$/agent/cgroup.events"
i=0
until grep -q '^frozen 1' "$EV" 2>/dev/null || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
if grep -q '^frozen 1' "$EV" 2>/dev/null; then ok "freeze: the exhausted bottle's agent cgroup is frozen"; else fail "freeze" "$(cat "$W/freeze.err")"; fi
sleep 2 # frozen: the agent's sleep cannot end, so no second call happens meanwhile
before=$(grep -c '/v1/messages' "$W/llm.log")
"$BOTTLE" thaw "bud-freeze-$$" >/dev/null 2>&1
wait $SP
rc=$?
after=$(grep -c '/v1/messages' "$W/llm.log")
if [ $rc -eq 4 ] && grep -q '^second=429' "$WS/result" && [ "$before" = "$after" ] && grep -q budget_exhausted "$WS/second.out"; then
    ok "thawed, the agent's next call is refused by the sidecar (429 budget_exhausted) and never reaches the upstream"
else fail "after thaw" "rc=$rc" "$(cat "$WS/result" "$WS/second.out")"; fi
a=$(ledger "SELECT action FROM audit WHERE bottle='bud-freeze-$$' AND who='budget'")
if echo "$a" | grep -q '^freeze$'; then ok "freeze: audit row by budget"; else fail "freeze audit" "$a"; fi

# 8-9: kill
bottle_for kill
start kill
rc=$?
if [ $rc -eq 137 ] && ! grep -qs '^second=' "$WS/result"; then
    ok "kill: the bottle is killed when its budget runs out (exit 137)"
else fail "kill policy" "rc=$rc" "$(cat "$WS/result" "$W/kill.err")"; fi
a=$(ledger "SELECT action FROM audit WHERE bottle='bud-kill-$$' AND who='budget'")
left=$(find "$CG2/bottle" -maxdepth 1 -name "bud-*-$$" 2>/dev/null)
if echo "$a" | grep -q '^kill$' && [ -z "$left" ]; then ok "kill: audit row; no bottle cgroup left"; else fail "kill audit" "$a" "$left"; fi
