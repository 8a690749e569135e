#!/bin/sh
# Two hosts, one team budget: two real native bottles started from separate
# BOTTLE_HOMEs with different host names, whose settings.yml both name one
# PostgreSQL ledger (a server this suite starts) and one pool. The first
# bottle's call spends the pool; the second host's bottle is refused by the
# pool (429), its cutoff policy fires, and every row, run and report says
# which host and pool it belongs to.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/pg.sh"

N=7
plan $N
if ! is_root; then
    for i in $(seq 1 $N); do skip "budget_pool_pg $i" kernel "needs root"; done
    exit 0
fi
if ! pg_bindir >/dev/null || ! command -v psql >/dev/null; then
    for i in $(seq 1 $N); do skip "budget_pool_pg $i" kernel "no PostgreSQL server installed"; done
    exit 0
fi

W=$T_TMP
FIX=$BOTTLE_SRC/tests/fixtures
UP_PID=""
PG_DIR=""
cleanup() {
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    [ -n "$PG_DIR" ] && pg_destroy "$PG_DIR"
    rm -rf "$T_TMP"
}
trap cleanup EXIT
unset SUDO_UID SUDO_GID
export LLM_TOKEN=llm-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')

pg_start || { fail "PostgreSQL server"; exit 1; }
pg_psql "$PG_DIR" postgres "CREATE DATABASE team" || { fail "database"; exit 1; }
URL=$(pg_url "$PG_DIR" team)
q() { pg_psql "$PG_DIR" team "$1"; }

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=pool e2e CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=llm.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:llm.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$W/ext"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext" -out "$W/up.pem" 2>/dev/null
# Every answer reports 40 input and 3000 output tokens: one call spends a 1000-token pool.
python3 "$FIX/fake_llm.py" --host 127.0.0.1 --port 0 --port-file "$W/llm.port" --log /dev/null \
    --cert "$W/up.pem" --key "$W/up-key.pem" --input-tokens 40 --output-tokens 3000 \
    --cache-creation-input-tokens 0 --cache-read-input-tokens 0 &
UP_PID=$!
i=0
while [ ! -s "$W/llm.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP=$(cat "$W/llm.port")

# host NAME: a BOTTLE_HOME whose settings name the shared ledger and the pool
host() {
    h="$W/$1"
    mkdir -p "$h/agents" "$h/bottles" "$W/ws-$1"
    chmod 0777 "$W/ws-$1"
    printf 'ledger: %s\npools:\n  team:\n    claude: {tokens: 1000, period: day}\n' "$URL" >"$h/settings.yml"
    cat >"$h/bottles/metered.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, $W/ws-$1/agent.sh]
budget_pool: team
budget:
  claude: 1000000
egress:
  routes:
    - host: llm.test:$UP
      metered: claude
      auth:
        scheme: Bearer
        token_ref: LLM_TOKEN
---
A metered bottle in the team pool.
EOF
    printf -- '---\nbottle: metered\n---\nCall the model.\n' >"$h/agents/caller.md"
    cat >"$W/ws-$1/agent.sh" <<EOF
cd "$W/ws-$1"
code=\$(curl -s -o call.out -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \\
    --data '{"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}' \\
    https://llm.test:$UP/v1/messages)
echo "call=\$code" >result
exit 4
EOF
}
run() { # HOST
    (cd "$W/ws-$1" && BOTTLE_HOME="$W/$1" BOTTLE_HOST="$1" exec "$BOTTLE" start caller \
        --label "pool-$1-$$" --cwd "$W/ws-$1" --resolve "llm.test:$UP:127.0.0.1" \
        --upstream-ca "$W/uca.pem") >"$W/$1.out" 2>"$W/$1.err"
}
host hosta
host hostb

# 1: host a's bottle spends the pool
run hosta
rc=$?
if [ $rc -eq 4 ] && grep -q '^call=200$' "$W/ws-hosta/result"; then
    ok "host a: the bottle's call passes (the pool had room)"
else fail "host a" "rc=$rc" "$(cat "$W/ws-hosta/result" "$W/hosta.err" 2>/dev/null | tail -5)"; fi

# 2: its run, its usage row and the pool's limit are in the shared ledger
run_a=$(q "SELECT host || '|' || agent || '|' || pool || '|' || (ended_at > 0)::int FROM bottle_run WHERE bottle='pool-hosta-$$'")
row=$(q "SELECT host || '|' || pool || '|' || charged_tokens FROM usage WHERE bottle='pool-hosta-$$'")
limit=$(q "SELECT limit_tokens FROM budget WHERE scope=3 AND name='team' AND provider='claude'")
period=$(q "SELECT period FROM counter_period WHERE scope=3 AND name='team' AND provider='claude'")
if [ "$run_a" = "hosta|caller|team|1" ] && [ "$row" = "hosta|team|3040" ] && [ "$limit" = 1000 ] && [ "$period" = day ]; then
    ok "the controller registered the run (host, agent, pool), the pool's limit and period; the usage row carries host and pool"
else fail "ledger rows" "run=$run_a" "usage=$row" "limit=$limit period=$period"; fi

# 3-4: host b's bottle is refused by the pool, and its cutoff policy fires
run hostb
rc=$?
if [ $rc -eq 4 ] && grep -q '^call=429$' "$W/ws-hostb/result" && grep -q budget_exhausted "$W/ws-hostb/call.out" &&
    grep -q "pool" "$W/ws-hostb/call.out"; then
    ok "host b: the pool spent on host a refuses the call (429 budget_exhausted, the pool named)"
else fail "host b" "rc=$rc" "$(cat "$W/ws-hostb/result" "$W/ws-hostb/call.out" "$W/hostb.err" 2>/dev/null | tail -5)"; fi
a=$(q "SELECT action || '|' || who FROM audit WHERE bottle='pool-hostb-$$'")
if echo "$a" | grep -q '^cutoff|budget$' && grep -q "pool scope" "$W/hostb.err"; then
    ok "host b: the bottle's cutoff policy fired for the pool (audit row in the shared ledger)"
else fail "host b policy" "$a" "$(tail -3 "$W/hostb.err")"; fi

# 5: reports from host b see the pool and both hosts
BOTTLE_HOME="$W/hostb" "$BOTTLE" budget --json >"$W/budget.json" 2>"$W/budget.err"
if python3 - "$W/budget.json" <<'PY'
import json, sys
p = [x for x in json.load(open(sys.argv[1]))["pools"] if x["pool"] == "team"][0]
assert p["limit"] == 1000 and p["spent"] == 3040 and p["left"] == 0 and p["period"] == "day", p
PY
then ok "bottle budget on host b: pool team, limit 1000 per day, 3040 spent (from host a), 0 left"
else fail "bottle budget" "$(cat "$W/budget.json" "$W/budget.err")"; fi

# 6: usage by host across the ledger
BOTTLE_HOME="$W/hostb" "$BOTTLE" usage --by host --json >"$W/byhost.json" 2>&1
if python3 - "$W/byhost.json" <<'PY'
import json, sys
rows = {r["host"]: r for r in json.load(open(sys.argv[1]))["usage"]}
assert rows["hosta"]["charged_tokens"] == 3040 and rows["hosta"]["requests"] == 1, rows
assert "hostb" not in rows or rows["hostb"]["charged_tokens"] == 0, rows
PY
then ok "bottle usage --by host on host b: host a's 3040 tokens, none charged to host b"
else fail "usage by host" "$(cat "$W/byhost.json")"; fi

# 7: the dashboard on host b shows the pool as every host sees it
BOTTLE_HOME="$W/hostb" "$BOTTLE" dashboard --once >"$W/dash.txt" 2>&1
if head -1 "$W/dash.txt" | grep -q 'pool team claude 3040/1000 per day'; then
    ok "bottle dashboard on host b: the pool's spending from both hosts in its title"
else fail "dashboard" "$(head -3 "$W/dash.txt")"; fi
