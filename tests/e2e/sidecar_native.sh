#!/bin/sh
# The sidecar attacked around a real native bottle, as a hostile agent and as
# another local user would:
# - a second local user (created here) and root on the host connect to the
#   sidecar's address, plainly and bound to the bottle's veth: nothing gets
#   through, while the agent inside still reaches its route (the listener
#   filter, bpf/listener.bpf.c);
# - the agent sends a plain-HTTP request to a route with `auth`: refused
#   (403 auth_requires_tls), the upstream never sees it or the token;
# - the agent creates a message batch of 200 x 64000 tokens under a
#   100000-token budget: refused (403 batch_under_budget), never forwarded;
# - the agent opens 60 idle connections with sidecar.max_connections 24: 36
#   are refused (503 too_many_connections) and closed, the controller still
#   answers, and once they close the agent is served again;
# - egress.log off, requests and full each reach the sidecar's log.
. "$BOTTLE_SRC/tests/lib.sh"

N=15
plan $N
if ! is_root; then
    for i in $(seq 1 $N); do skip "sidecar_native $i" kernel "needs root"; done
    exit 0
fi

W=$T_TMP
FIX=$BOTTLE_SRC/tests/fixtures
PIDS=""
USER2=""
RUNNING=""
cleanup() {
    for p in $RUNNING; do kill -TERM "$p" 2>/dev/null; done
    for p in $RUNNING; do wait "$p" 2>/dev/null; done
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    [ -n "$USER2" ] && userdel "$USER2" 2>/dev/null
    rm -rf "$T_TMP"
}
trap cleanup EXIT
unset SUDO_UID SUDO_GID

export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
TAG=sc$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
TOKEN=sc-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export E2E_TOKEN="$TOKEN"

# ---- test PKI and the upstreams on loopback ---------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=sidecar e2e CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=api.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test,DNS:llm.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$W/ext.cnf"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext.cnf" -out "$W/up.pem" 2>/dev/null
wait_port() { i=0; while [ ! -s "$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done; cut -d' ' -f1 "$1"; }
: >"$W/up.log"
python3 "$FIX/upstream.py" --port-file "$W/up.port" --log "$W/up.log" --cert "$W/up.pem" \
    --key "$W/up-key.pem" &
PIDS="$PIDS $!"
: >"$W/plain.log"
python3 "$FIX/upstream.py" --port-file "$W/plain.port" --log "$W/plain.log" &
PIDS="$PIDS $!"
: >"$W/llm.log"
python3 "$FIX/fake_llm.py" --host 127.0.0.1 --port 0 --port-file "$W/llm.port" --log "$W/llm.log" \
    --cert "$W/up.pem" --key "$W/up-key.pem" &
PIDS="$PIDS $!"
UP=$(wait_port "$W/up.port")
PLAIN=$(wait_port "$W/plain.port")
LLM=$(wait_port "$W/llm.port")

# ---- the bottles -----------------------------------------------------------------------
printf 'sidecar:\n  max_connections: 24\n' >"$BOTTLE_HOME/settings.yml"
bottle_file() { # NAME LOG
    cat >"$BOTTLE_HOME/bottles/$1.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, $WS/$1.sh]
budget:
  claude: 100000
egress:
  log: $2
  routes:
    - host: api.test:$UP
      auth:
        scheme: Bearer
        token_ref: E2E_TOKEN
    - host: plain.test:$PLAIN
      auth:
        header: X-Api-Key
        token_ref: E2E_TOKEN
    - host: llm.test:$LLM
      metered: claude
      auth:
        scheme: Bearer
        token_ref: E2E_TOKEN
---
The sidecar's attack surface.
EOF
    printf -- '---\nbottle: %s\n---\nRun the checks.\n' "$1" >"$BOTTLE_HOME/agents/$1.md"
}
bottle_file sc requests
start_bg() { # AGENT LABEL
    (cd "$WS" && exec "$BOTTLE" start "$1" --label "$2" --cwd "$WS" \
        --resolve "api.test:$UP:127.0.0.1" --resolve "plain.test:$PLAIN:127.0.0.1" \
        --resolve "llm.test:$LLM:127.0.0.1" --upstream-ca "$W/uca.pem" \
        >"$W/$2.out" 2>"$W/$2.err") &
    BG=$!
    RUNNING="$RUNNING $BG"
}
wait_for() { i=0; while [ ! -e "$1" ] && [ $i -lt "${2:-300}" ]; do sleep 0.1; i=$((i + 1)); done; [ -e "$1" ]; }
ctl() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode().strip())
PY
}

# The agent: waits while the host attacks its sidecar, then attacks it itself.
cat >"$WS/sc.sh" <<EOF
cd "$WS"
R=\$PWD/result
: >"\$R"
echo "\$HTTP_PROXY" >proxy.addr
touch ready
i=0; while [ ! -e go ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
curl -sS --max-time 10 -o allowed.out "https://api.test:$UP/echo" 2>>"\$R"
echo "allowed=\$?" >>"\$R"
code=\$(curl -s --max-time 10 -o plain.out -w '%{http_code}' -X POST --data x "http://plain.test:$PLAIN/v1/messages")
echo "plain=\$code" >>"\$R"
python3 -c 'import json; print(json.dumps({"requests": [{"custom_id": "r%d" % i, "params": {"model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]}} for i in range(200)]}))' >batch.json
code=\$(curl -s --max-time 10 -o batch.out -w '%{http_code}' -H 'Content-Type: application/json' --data @batch.json "https://llm.test:$LLM/v1/messages/batches")
echo "batch=\$code" >>"\$R"
sleep 0.5 # the requests above are closed on both sides
python3 - "\$R" <<'PY'
import os, socket, subprocess, sys, time
r = open(sys.argv[1], "a", buffering=1)
host, port = os.environ["HTTP_PROXY"].split("//")[1].strip("/").split(":")
conns = []
for i in range(60):  # bounded: the cap is 24
    s = socket.create_connection((host, int(port)), timeout=3)
    conns.append(s)
time.sleep(1)
refused = idle = 0
for s in conns:
    s.setblocking(False)
    try:
        data = s.recv(4096)
        refused += b" 503 " in data and b"too_many_connections" in data
    except BlockingIOError:
        idle += 1
r.write("flood_refused=%d\nflood_idle=%d\n" % (refused, idle))
out = subprocess.run(["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_connect}",
                      "https://api.test:$UP/echo"], capture_output=True, text=True).stdout
r.write("during_flood=%s\n" % out)
open("flood.held", "w").close()
for _ in range(300):
    if os.path.exists("flood.go"):
        break
    time.sleep(0.1)
for s in conns:
    s.close()
time.sleep(0.5)
out = subprocess.run(["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                      "https://api.test:$UP/echo"], capture_output=True, text=True).stdout
r.write("after_flood=%s\n" % out)
PY
exit 7
EOF

# ======== 1-4: another local user (and root) on the host cannot use the sidecar ==============
start_bg sc "$TAG-a"
SC=$BG
if wait_for "$WS/ready"; then ok "bottle $TAG-a runs"; else fail "start" "$(cat "$W/$TAG-a.err")"; fi
PROXY=$(sed 's|^http://||; s|/$||' "$WS/proxy.addr" 2>/dev/null)
LINK=$(nsenter --net="/run/bottle/netns/bottle-$TAG-a" ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \(bb-[0-9a-f]*\)@.*/\1/p' | sed 's/^bb-/bh-/' | head -1)
USER2=btl-$TAG
if useradd --system --no-create-home --shell /usr/sbin/nologin "$USER2" 2>"$W/useradd.err"; then
    U2=$(id -u "$USER2")
    as_user() { setpriv --reuid "$U2" --regid "$U2" --clear-groups "$@"; }
    attack() { # [curl options]: exit code of curl through the sidecar
        "$@" curl -sk --connect-timeout 3 --max-time 5 -o /dev/null -x "http://$PROXY" \
            "https://api.test:$UP/echo" 2>/dev/null
        echo $?
    }
    rc_user=$(attack as_user)
    rc_dev=$(as_user curl -sk --interface "$LINK" --connect-timeout 3 --max-time 5 -o /dev/null \
        -x "http://$PROXY" "https://api.test:$UP/echo" 2>/dev/null; echo $?)
    rc_plain=$(as_user curl -s --connect-timeout 3 --max-time 5 -o /dev/null -x "http://$PROXY" \
        "http://plain.test:$PLAIN/echo" 2>/dev/null; echo $?)
else
    rc_user=skip rc_dev=skip rc_plain=skip
fi
rc_root=$(attack env)
if [ -n "$PROXY" ] && [ "$rc_user" != 0 ] && [ "$rc_user" != skip ] && [ "$rc_plain" != 0 ] &&
    [ "$(wc -l <"$W/up.log")" = 0 ] && [ "$(wc -l <"$W/plain.log")" = 0 ]; then
    ok "another local user's proxy requests to $PROXY never reach an upstream (curl exit $rc_user, $rc_plain)"
else
    fail "second user" "proxy=$PROXY user=$rc_user plain=$rc_plain" "$(cat "$W/useradd.err" "$W/up.log")"
fi
if [ -n "$LINK" ] && [ "$rc_dev" != 0 ] && [ "$rc_dev" != skip ] && [ "$(wc -l <"$W/up.log")" = 0 ]; then
    ok "bound to the bottle's veth ($LINK), the other user is refused too (curl exit $rc_dev)"
else
    fail "device-bound second user" "link=$LINK rc=$rc_dev"
fi
if [ "$rc_root" != 0 ] && [ "$(wc -l <"$W/up.log")" = 0 ]; then
    ok "no host process connects to the sidecar, root included (curl exit $rc_root)"
else
    fail "root on the host" "rc=$rc_root" "$(cat "$W/up.log")"
fi
touch "$WS/go"

# ======== 5-9: the agent inside ===========================================================
SOCK=$BOTTLE_HOME/run/$TAG-a.sock
if wait_for "$WS/flood.held" 600; then
    st=$(ctl "$SOCK" '{"cmd":"status"}')
    lst=$("$BOTTLE" list active 2>&1 | awk -v s="$TAG-a" '$1 == s {print $NF}')
else
    st="the agent never held its flood"
fi
touch "$WS/flood.go"
wait "$SC"
rc=$?
RUNNING=""
res() { grep -q "^$1\$" "$WS/result"; }
if [ $rc -eq 7 ] && res "allowed=0" && grep -q "Bearer $TOKEN" "$W/up.log"; then
    ok "the agent inside still reaches its route, the token injected"
else
    fail "agent's own request" "rc=$rc" "$(cat "$WS/result" "$W/$TAG-a.err")"
fi
if res "plain=403" && grep -q '"reason": "auth_requires_tls"' "$WS/plain.out" &&
    [ "$(wc -l <"$W/plain.log")" = 0 ] && ! grep -rq "$TOKEN" "$W/plain.log" "$WS/plain.out"; then
    ok "plain HTTP to a route with auth: 403 auth_requires_tls, the upstream never sees it"
else
    fail "cleartext credentials" "$(cat "$WS/result" "$WS/plain.out" "$W/plain.log")"
fi
if res "batch=403" && grep -q '"reason": "batch_under_budget"' "$WS/batch.out" &&
    ! grep -q batches "$W/llm.log"; then
    ok "a batch of 200 x 64000 tokens under a 100000-token budget: 403 batch_under_budget, never forwarded"
else
    fail "batch under budget" "$(cat "$WS/result" "$WS/batch.out")"
fi
if res "flood_refused=36" && res "flood_idle=24" && res "during_flood=503"; then
    ok "60 idle connections, cap 24: 36 refused (503 too_many_connections) and closed; a request beyond the cap is refused"
else
    fail "connection flood" "$(cat "$WS/result")"
fi
if echo "$st" | grep -q '"ok":true' && [ "$lst" = running ] && res "after_flood=200"; then
    ok "during the flood the controller answers (status, bottle list active); after it the agent is served again"
else
    fail "control during flood" "$st" "list: $lst" "$(cat "$WS/result")"
fi
if grep -q '"event":"connection_limit"' "$BOTTLE_HOME/state/$TAG-a/proxy.log"; then
    ok "the sidecar logs the connection limit"
else
    fail "limit logged" "$(tail -n 3 "$BOTTLE_HOME/state/$TAG-a/proxy.log")"
fi

# ======== 10-14: egress.log reaches the sidecar ============================================
for level in off requests full; do
    bottle_file "log-$level" "$level"
    cat >"$WS/log-$level.sh" <<EOF
curl -s --max-time 10 -o /dev/null -H 'X-Note: hello-header' -H 'Content-Type: text/plain' \
    --data 'hello-body' "https://api.test:$UP/echo"
exit 7
EOF
    (cd "$WS" && "$BOTTLE" start "log-$level" --label "$TAG-$level" --cwd "$WS" \
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
    fail "log requests" "$(tail -n 5 "$L/$TAG-requests/proxy.log" 2>&1)"
fi
F=$L/$TAG-full/proxy.log
if grep '"method":"POST"' "$F" | grep -q '"X-Note":"hello-header"' &&
    grep '"request_body"' "$F" | grep -q hello-body; then
    ok "egress.log full: request headers and bodies"
else
    fail "log full" "$(tail -n 5 "$F" 2>&1)"
fi
if ! grep -q "$TOKEN" "$L/$TAG-full/proxy.log" "$L/$TAG-requests/proxy.log" "$L/$TAG-off/proxy.log"; then
    ok "no log level writes the real token"
else
    fail "token in a log"
fi
if [ "$(grep -c "$TOKEN" "$W/up.log")" -ge 4 ]; then
    ok "each log level's bottle reached its route with the token injected"
else
    fail "log bottles reached the route" "$(cat "$W/log-full.out")"
fi
