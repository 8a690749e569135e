#!/bin/sh
# egress.log reaches the sidecar of a real native bottle: `off` logs no
# request, `requests` one line per request without headers or bodies, `full`
# the request's headers and body; no level writes the real token.
. "$BOTTLE_SRC/tests/lib.sh"

N=5
plan $N
if ! is_root; then
    for i in $(seq 1 $N); do skip "egress_log $i" kernel "needs root"; done
    exit 0
fi

W=$T_TMP
FIX=$BOTTLE_SRC/tests/fixtures
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$T_TMP"
}
trap cleanup EXIT
unset SUDO_UID SUDO_GID

export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
TAG=el$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
TOKEN=el-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export E2E_TOKEN="$TOKEN"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=egress log e2e CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=api.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$W/ext.cnf"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext.cnf" -out "$W/up.pem" 2>/dev/null
: >"$W/up.log"
python3 "$FIX/upstream.py" --port-file "$W/up.port" --log "$W/up.log" --cert "$W/up.pem" \
    --key "$W/up-key.pem" &
PIDS="$PIDS $!"
i=0
while [ ! -s "$W/up.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP=$(cut -d' ' -f1 "$W/up.port")

for level in off requests full; do
    cat >"$BOTTLE_HOME/bottles/log-$level.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, $WS/log-$level.sh]
egress:
  log: $level
  routes:
    - host: api.test:$UP
      auth:
        scheme: Bearer
        token_ref: E2E_TOKEN
---
One request, logged at '$level'.
EOF
    printf -- '---\nbottle: log-%s\n---\nSend one request.\n' "$level" >"$BOTTLE_HOME/agents/log-$level.md"
    # A non-zero exit keeps the state directory, and with it the sidecar's log.
    cat >"$WS/log-$level.sh" <<EOF
curl -s --max-time 10 -o /dev/null -H 'X-Note: hello-header' -H 'Content-Type: text/plain' \\
    --data 'hello-body' "https://api.test:$UP/echo"
exit 7
EOF
    (cd "$WS" && "$BOTTLE" start "log-$level" --label "$TAG-$level" --cwd "$WS" --quiet \
        --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" >"$W/log-$level.out" 2>&1)
done

L=$BOTTLE_HOME/state
if [ -f "$L/$TAG-off/proxy.log" ] && ! grep -q '"method"' "$L/$TAG-off/proxy.log" &&
    ! grep -q 'hello' "$L/$TAG-off/proxy.log"; then
    ok "egress.log off: the sidecar logs no request"
else
    fail "log off" "$(cat "$L/$TAG-off/proxy.log" "$W/log-off.out" 2>&1 | tail -n 5)"
fi
if grep -q '"method":"POST","host":"api.test:'"$UP"'"' "$L/$TAG-requests/proxy.log" &&
    ! grep -q '"headers"' "$L/$TAG-requests/proxy.log" && ! grep -q 'hello' "$L/$TAG-requests/proxy.log"; then
    ok "egress.log requests: one line per request, no headers or bodies"
else
    fail "log requests" "$(tail -n 5 "$L/$TAG-requests/proxy.log" "$W/log-requests.out" 2>&1)"
fi
F=$L/$TAG-full/proxy.log
if grep '"method":"POST"' "$F" | grep -q '"X-Note":"hello-header"' &&
    grep '"request_body"' "$F" | grep -q hello-body; then
    ok "egress.log full: request headers and bodies"
else
    fail "log full" "$(tail -n 5 "$F" "$W/log-full.out" 2>&1)"
fi
if ! grep -q "$TOKEN" "$L/$TAG-full/proxy.log" "$L/$TAG-requests/proxy.log" "$L/$TAG-off/proxy.log"; then
    ok "no log level writes the real token"
else
    fail "token in a log"
fi
if [ "$(grep -c "$TOKEN" "$W/up.log")" -ge 3 ]; then
    ok "each level's bottle reached its route with the token injected"
else
    fail "route reached" "$(cat "$W"/log-*.out | tail -n 8)"
fi
