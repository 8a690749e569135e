#!/bin/sh
# Claude Code end to end: the real `claude` CLI in a real bottle (`bottle start
# claude`), its one provider route (api.anthropic.com) resolved to a fake
# Anthropic upstream on a loopback address of the host (tests/fixtures/fake_llm.py,
# HTTPS with a certificate from a test CA). Checks that the agent gets the
# upstream's answer, streamed; that the upstream sees the real token, injected by
# the sidecar; and that the agent's processes only ever hold a placeholder.
# Nothing leaves the host: the bottle reaches only the sidecar, the sidecar only
# the fake.
. "$BOTTLE_SRC/tests/lib.sh"

N=12
plan $N

# 1: the fake itself speaks each wire format (no root needed)
if out=$(python3 "$BOTTLE_SRC/tests/fixtures/fake_llm.py" --self-test 2>&1); then
    ok "fake upstream: Anthropic, Chat Completions and Responses formats, gzip, cut streams"
else
    fail "fake upstream self-test" "$out"
fi

skip_rest() {
    for i in $(seq 2 $N); do skip "claude_code $i" "$1" "$2"; done
    exit 0
}
is_root || skip_rest kernel "needs root"
if ! command -v claude >/dev/null 2>&1; then
    # scripts/setup installs it; under CI its absence is a failure, never a skip.
    if [ "${CI:-}" = "true" ]; then
        for i in $(seq 2 $N); do fail "claude_code $i" "claude is not installed (scripts/setup installs it)"; done
        exit 0
    fi
    skip_rest tool "claude is not installed (scripts/setup installs it with npm)"
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
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
TOKEN=sk-ant-oat01-e2e-$(rand 12)
REPLY="fake-reply-$(rand 4) from the fake upstream"
export CLAUDE_CODE_OAUTH_TOKEN="$TOKEN"
# The agent runs as the bottle's unprivileged default user, whoever calls the test.
unset SUDO_UID SUDO_GID ANTHROPIC_API_KEY ANTHROPIC_BASE_URL ANTHROPIC_AUTH_TOKEN

# ---- test CA, a leaf for api.anthropic.com, the fake on <loopback addr>:443 ---------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=claude e2e upstream CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=api.anthropic.com -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.anthropic.com\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$W/ext.cnf"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext.cnf" -out "$W/up.pem" 2>/dev/null
# The route is api.anthropic.com:443 and --resolve replaces only the address, so the
# fake listens on port 443 of an address of its own in 127/8 (tried a few times).
ADDR=""
for _ in 1 2 3 4 5; do
    a=127.$(od -An -N1 -tu1 /dev/urandom | awk '{print $1 % 200 + 20}').$(od -An -N1 -tu1 /dev/urandom | awk '{print $1 % 250 + 1}').$(od -An -N1 -tu1 /dev/urandom | awk '{print $1 % 250 + 1}')
    rm -f "$W/up.port"
    : >"$W/up.log"
    python3 "$FIX/fake_llm.py" --host "$a" --port 443 --port-file "$W/up.port" --log "$W/up.log" \
        --cert "$W/up.pem" --key "$W/up-key.pem" --reply "$REPLY" --input-tokens 1234 \
        --output-tokens 56 --cache-read-input-tokens 78 2>"$W/up.err" &
    UP_PID=$!
    i=0
    while [ ! -s "$W/up.port" ] && kill -0 "$UP_PID" 2>/dev/null && [ $i -lt 600 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    if [ -s "$W/up.port" ]; then
        ADDR=$a
        break
    fi
    kill "$UP_PID" 2>/dev/null
    wait "$UP_PID" 2>/dev/null
    UP_PID=""
done
if [ -z "$ADDR" ]; then
    for i in $(seq 2 $N); do fail "claude_code $i" "the fake upstream did not start" "$(cat "$W/up.err")"; done
    exit 0
fi
# Reconfigures the fake for the next run (POST /_fake/config on the host side).
fake_config() {
    curl -sS --fail --max-time 5 --cacert "$W/uca.pem" --noproxy '*' \
        --resolve "api.anthropic.com:443:$ADDR" -H 'Content-Type: application/json' \
        -d "$1" https://api.anthropic.com/_fake/config >/dev/null
}

# ---- the bottle: the claude provider template, nothing else -------------------------
cat >"$BOTTLE_HOME/bottles/claude.md" <<'EOF'
---
agent_provider:
  template: claude
  auth_token: CLAUDE_CODE_OAUTH_TOKEN
enforcement: kernel
---
Claude Code against a fake Anthropic upstream.
EOF
printf -- '---\nbottle: claude\n---\nAnswer briefly.\n' >"$BOTTLE_HOME/agents/claude.md"

start() { # start NAME [claude arguments...]: stdout in $W/NAME.out, stderr in $W/NAME.err
    name=$1
    shift
    (cd "$WS" && exec timeout 240 "$BOTTLE" start claude --cwd "$WS" \
        --resolve "api.anthropic.com:443:$ADDR" --upstream-ca "$W/uca.pem" -- "$@") \
        >"$W/$name.out" 2>"$W/$name.err"
}
records() { # records PYTHON-EXPR-over-r: prints the expression for each logged request
    python3 - "$W/up.log" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    r["h"] = {}
    for k, v in r["headers"]:
        r["h"].setdefault(k.lower(), []).append(v)
    out = eval(sys.argv[2], {"json": json}, {"r": r})
    if out is not None:
        print(out)
PY
}

# 2: the plan: the provider route with the token reference, the agent's flags
"$BOTTLE" start claude --dry-run --format json >"$W/plan.json" 2>"$W/plan.err"
if python3 - "$W/plan.json" <<'PY'; then ok "plan: api.anthropic.com routed with CLAUDE_CODE_OAUTH_TOKEN (set), agent gets a placeholder"; else fail "plan" "$(cat "$W/plan.json" "$W/plan.err")"; fi
import json, sys
p = json.load(open(sys.argv[1]))
route = [r for r in p["routes"] if r["host"] == "api.anthropic.com"][0]
env = {e["name"]: e["source"] for e in p["env"]}
assert p["provider"] == "claude" and p["argv"][0] == "claude", p["argv"]
assert route["auth"]["token_ref"] == "CLAUDE_CODE_OAUTH_TOKEN" and route["provider"], route
assert {"name": "CLAUDE_CODE_OAUTH_TOKEN", "set": True} in p["token_refs"], p["token_refs"]
assert env.get("CLAUDE_CODE_OAUTH_TOKEN") == "provider", env
for name in ("DISABLE_AUTOUPDATER", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_TELEMETRY"):
    assert env.get(name) == "provider", name
assert p["enforcement"]["ok"], p["enforcement"]
PY

# 3: `claude -p "say hi"` prints the upstream's reply and exits 0
start hi -p "say hi"
rc=$?
if [ $rc -eq 0 ] && grep -qF "$REPLY" "$W/hi.out"; then
    ok "claude -p exits 0 and prints the fake upstream's reply"
else
    fail "claude -p" "exit $rc" "$(cat "$W/hi.out" "$W/hi.err")" "$(tail -c 2000 "$W/up.log")"
fi

# 4: the model call arrived, streaming, with the real token and no agent-held credential
got=$(records 'r["path"] if r["method"] == "POST" and r["path"].split("?")[0] == "/v1/messages" and json.loads(r["body"]).get("stream") is True else None')
auth=$(records 'repr(r["h"].get("authorization")) + " " + repr(r["h"].get("x-api-key")) if r["path"].startswith("/v1/messages") else None' | sort -u)
if [ -n "$got" ] && [ "$auth" = "['Bearer $TOKEN'] None" ]; then
    ok "POST /v1/messages (stream: true) reached the upstream with the injected token only"
else
    fail "injected token" "messages: $got" "auth seen: $auth" "$(tail -c 3000 "$W/up.log")"
fi

# 5: whatever else Claude Code asked for also carried the injected token, never another
other=$(records 'None if r["h"].get("authorization") == ["Bearer " + __import__("os").environ["CLAUDE_CODE_OAUTH_TOKEN"]] else r["method"] + " " + r["path"] + " " + repr(r["h"].get("authorization"))')
n=$(wc -l <"$W/up.log")
if [ -z "$other" ] && [ "$n" -ge 1 ]; then
    ok "all $n requests at the upstream carried exactly the injected Authorization"
else
    fail "other requests" "$other"
fi

# 6: the SSE stream reaches the agent event by event, usage intact
fake_config '{"delay_ms": 250}'
: >"$W/up.log"
(cd "$WS" && exec timeout 240 "$BOTTLE" start claude --cwd "$WS" \
    --resolve "api.anthropic.com:443:$ADDR" --upstream-ca "$W/uca.pem" -- \
    -p "say hi" --output-format stream-json --verbose --include-partial-messages) 2>"$W/stream.err" |
    python3 -c '
import sys, time
for line in sys.stdin:
    print("%.4f %s" % (time.monotonic(), line.rstrip("\n")), flush=True)' >"$W/stream.out"
lines=$(grep -c . "$W/stream.out")
if python3 - "$W/stream.out" "$REPLY" <<'PY'; then ok "the reply streams to the agent event by event (deltas spread over time), usage intact"; else fail "streaming" "lines: $lines" "$(cat "$W/stream.err")" "$(tail -c 3000 "$W/stream.out")"; fi
import json, sys
deltas, result = [], None
for line in open(sys.argv[1]):
    t, _, text = line.partition(" ")
    try:
        doc = json.loads(text)
    except ValueError:
        continue
    ev = doc.get("event") or {}
    if doc.get("type") == "stream_event" and ev.get("type") == "content_block_delta":
        deltas.append((float(t), ev["delta"].get("text", "")))
    if doc.get("type") == "result":
        result = doc
assert result and result.get("result") == sys.argv[2] and not result.get("is_error"), result
u = result.get("usage") or {}
assert u.get("input_tokens") == 1234 and u.get("output_tokens") == 56, u
assert u.get("cache_read_input_tokens") == 78, u
assert "".join(d for _, d in deltas) == sys.argv[2], deltas
# Five deltas 250 ms apart at the upstream: a buffering hop would deliver them at once.
span = deltas[-1][0] - deltas[0][0]
assert len(deltas) >= 4 and span >= 0.6 * 0.25 * (len(deltas) - 1), (len(deltas), span)
PY

# 7-9: Claude Code runs a tool in the bottle that dumps its processes' environments
# shellcheck disable=SC2016 # $f is for the shell in the bottle
fake_config '{"delay_ms": 0, "tool_use": {"name": "Bash", "input": {"command": "for f in /proc/[0-9]*/environ; do tr \"\\\\000\" \"\\\\n\" < $f; done 2>/dev/null | sort -u; for f in /proc/[0-9]*/environ; do tr \"\\\\000\" \"\\\\n\" < $f; done 2>/dev/null | sed -n s/^CLAUDE_CODE_OAUTH_TOKEN=/ROT=/p | sort -u | tr A-Za-z0-9 N-ZA-Mn-za-m5-90-4; echo env-dump-done", "description": "Show the environment"}}}'
: >"$W/up.log"
start tool -p "show the environment" --permission-mode bypassPermissions
rc=$?
dump=$(records 'next((b["content"] if isinstance(b["content"], str) else " ".join(c.get("text", "") for c in b["content"])) for m in json.loads(r["body"]).get("messages", []) if isinstance(m.get("content"), list) for b in m["content"] if b.get("type") == "tool_result") if r["path"].startswith("/v1/messages") and "tool_result" in r["body"] else None')
# The plain dump reaches the upstream redacted by DLP (the placeholder is a known secret); a
# rot13/rot5 copy slips past it (a reversed one no longer does), so the test can read what the
# agent really held.
PLACEHOLDER=$(printf '%s\n' "$dump" | grep '^EBG=' | tr A-Za-z0-9 N-ZA-Mn-za-m5-90-4 | sed -n 's/^ROT=//p' | sort -u)
REDACTED=$(printf '%s\n' "$dump" | sed -n 's/^CLAUDE_CODE_OAUTH_TOKEN=//p' | sort -u)
if [ $rc -eq 0 ] && printf '%s' "$dump" | grep -q env-dump-done && [ -n "$PLACEHOLDER" ] &&
    printf '%s' "$PLACEHOLDER" | grep -q '^bottle-placeholder-' &&
    printf '%s' "$REDACTED" | grep -q 'REDACTED' &&
    [ "$(printf '%s\n' "$PLACEHOLDER" | wc -l)" -eq 1 ] && [ "$PLACEHOLDER" != "$TOKEN" ] &&
    ! printf '%s' "$dump" | grep -qF "$TOKEN"; then
    ok "the agent's processes hold a placeholder for CLAUDE_CODE_OAUTH_TOKEN, never the token; DLP redacted it on the way out"
else
    fail "agent environment" "exit $rc" "placeholder: $PLACEHOLDER" "redacted: $REDACTED" "$(printf '%s' "$dump" | head -c 3000)" \
        "$(cat "$W/tool.out" "$W/tool.err")"
fi
hdr_leak=$(records 'r["path"] if any("'"${PLACEHOLDER:-no-placeholder}"'" in v for _, v in r["headers"]) else None')
tool_auth=$(records 'repr(r["h"].get("authorization")) if "tool_result" in r["body"] else None' | sort -u)
if [ -n "$PLACEHOLDER" ] && [ -z "$hdr_leak" ] && [ "$tool_auth" = "['Bearer $TOKEN']" ]; then
    ok "the agent's placeholder bearer was stripped: the upstream saw only the real token"
else
    fail "placeholder stripped" "placeholder: $PLACEHOLDER" "in headers of: $hdr_leak" "auth: $tool_auth"
fi
body_leak=$(records 'r["path"] if __import__("os").environ["CLAUDE_CODE_OAUTH_TOKEN"] in r["body"] else None')
if [ -n "$dump" ] && [ -z "$body_leak" ]; then
    ok "the real token appears in no request body the agent sent"
else
    fail "token in bodies" "$body_leak"
fi

# 10-11: a budget that trips while Claude Code works: the response that exhausts it is
# delivered, the bottle is cut off at once (audit row, a message), and the agent's next
# call — the tool result going back — never reaches the upstream.
fake_config '{"tool_use": {"name": "Bash", "input": {"command": "echo step-two", "description": "Step two"}}, "output_tokens": 500000}'
: >"$W/up.log"
LBL=cc-budget-$$
(cd "$WS" && exec timeout 240 "$BOTTLE" start claude --cwd "$WS" --label "$LBL" --budget claude=200000 \
    --resolve "api.anthropic.com:443:$ADDR" --upstream-ca "$W/uca.pem" -- \
    -p "do two steps" --permission-mode bypassPermissions) >"$W/budget.out" 2>"$W/budget.err" &
BP=$!
audit() { python3 -c 'import sqlite3,sys; print("\n".join("|".join(r) for r in sqlite3.connect(sys.argv[1]).execute("SELECT action, policy, who FROM audit WHERE bottle=?", (sys.argv[2],))))' "$BOTTLE_HOME/bottle.db" "$LBL" 2>/dev/null; }
i=0
until audit | grep -q '^cutoff|cutoff|budget$' || [ $i -ge 600 ]; do sleep 0.1; i=$((i + 1)); done
sleep 3 # time for the agent's next call, which the kernel refuses
"$BOTTLE" stop "$LBL" >/dev/null 2>&1
wait $BP
calls=$(records 'r["path"] if r["method"] == "POST" and r["path"].split("?")[0] == "/v1/messages" else None' | wc -l)
results=$(records 'r["path"] if "tool_result" in r["body"] else None' | wc -l)
if audit | grep -q '^cutoff|cutoff|budget$' && grep -q "claude token budget exhausted" "$W/budget.err"; then
    ok "Claude Code: the budget trips, the bottle is cut off, an audit row and a message say why"
else
    fail "claude budget cutoff" "$(audit)" "$(cat "$W/budget.err")"
fi
if [ "$calls" -eq 1 ] && [ "$results" -eq 0 ]; then
    ok "Claude Code: its next call (the tool result) never reached the upstream"
else
    fail "claude next call" "messages calls: $calls, tool results: $results" "$(tail -5 "$W/budget.err")"
fi

# 12: every run tore its bottle down
left=$(ls "$BOTTLE_HOME/state" 2>/dev/null; pgrep -f "bottle-proxy --config $BOTTLE_HOME" 2>/dev/null)
if [ -z "$left" ]; then ok "no state or sidecar left after the runs"; else fail "leftovers" "$left"; fi
