#!/bin/sh
# `bottle start` on the native backend, end to end: a generic agent (a shell
# script) in a real bottle reaches an allowed HTTPS route through the sidecar
# (which injects the token), is refused elsewhere, gets EPERM for direct
# connections and UDP, keeps its own loopback, cannot read the sidecar's files;
# its exit code passes through and nothing is left behind. Failures injected
# at start and a killed controller are cleaned up too.
. "$BOTTLE_SRC/tests/lib.sh"

plan 16

if ! is_root; then
    for i in $(seq 1 14); do skip "start_native $i" kernel "needs root"; done
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
TOKEN=e2e-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export E2E_TOKEN="$TOKEN"
unset SUDO_UID SUDO_GID

CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
BPFFS=$(awk '$9 == "bpf" {print $5; exit}' /proc/self/mountinfo)

# ---- test PKI and the fake upstream -------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=e2e upstream CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=api.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$W/ext.cnf"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext.cnf" -out "$W/up.pem" 2>/dev/null
: >"$W/up.log"
python3 "$FIX/upstream.py" --port-file "$W/up.port" --log "$W/up.log" --cert "$W/up.pem" \
    --key "$W/up-key.pem" &
UP_PID=$!
i=0
while [ ! -s "$W/up.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP=$(cut -d' ' -f1 "$W/up.port")

# ---- the agent --------------------------------------------------------------------
cat >"$BOTTLE_HOME/bottles/e2e.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, $WS/agent.sh]
egress:
  routes:
    - host: api.test:$UP
      auth:
        scheme: Bearer
        token_ref: E2E_TOKEN
---
An e2e bottle.
EOF
printf -- '---\nbottle: e2e\n---\nRun the checks.\n' >"$BOTTLE_HOME/agents/e2e.md"
cat >"$WS/agent.sh" <<'EOF'
R=$PWD/result
: >"$R"
curl -sS --max-time 10 "https://api.test:${UP}/echo" >"$PWD/allowed.out" 2>&1
echo "allowed=$?" >>"$R"
code=$(curl -s --max-time 10 -o "$PWD/refused.out" -w '%{http_code}' http://other.test/x)
echo "refused=$code" >>"$R"
grep -q host_not_allowed "$PWD/refused.out" && echo "refused_reason=host_not_allowed" >>"$R"
python3 - "$R" <<'PY'
import errno, os, socket, sys, threading
r = open(sys.argv[1], "a", buffering=1)  # line by line: a crash keeps what was found
a1 = os.environ["HTTP_PROXY"].split("//")[1].split(":")[0]
def tcp(addr):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(addr)
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
# Only addresses inside the bottle's own /30: A.2 (its own veth address) and A.1.
parts = a1.split(".")
a2 = ".".join(parts[:3] + [str(int(parts[3]) + 1)])
r.write("direct=%s\n" % tcp((a2, 443)))
r.write("direct_a1=%s\n" % tcp((a1, 22)))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", (a1, 53))
    r.write("udp=sent\n")
except OSError as e:
    r.write("udp=%s\n" % errno.errorcode.get(e.errno, str(e)))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(b"hello-loopback")
    c.close()
threading.Thread(target=serve, daemon=True).start()
c = socket.create_connection(srv.getsockname(), timeout=3)
r.write("loopback=%s\n" % c.recv(64).decode())
PY
if env | grep -q "$E2E_TOKEN_VALUE"; then echo "env_token=present" >>"$R"; else echo "env_token=absent" >>"$R"; fi
if cat "$BOTTLE_HOME_PATH"/state/*/proxy/config.json >/dev/null 2>&1 ||
    cat "$BOTTLE_HOME_PATH"/state/*/proxy/ca/ca-key.pem >/dev/null 2>&1; then
    echo "secrets=readable" >>"$R"
else
    echo "secrets=unreadable" >>"$R"
fi
[ -f "$PWD/sleep_first" ] && sleep 30
exit "$(cat "$PWD/exit_code" 2>/dev/null || echo 5)"
EOF
sed -i "s|\${UP}|$UP|; s|\$E2E_TOKEN_VALUE|$TOKEN|; s|\$BOTTLE_HOME_PATH|$BOTTLE_HOME|g" "$WS/agent.sh"

leftovers() { # prints whatever a bottle left on the host
    find "$CG2/bottle" -mindepth 1 -maxdepth 1 -type d 2>/dev/null
    find "$BPFFS/bottle" -mindepth 1 -maxdepth 1 -type d 2>/dev/null
    ls /run/bottle/netns /run/netns 2>/dev/null | grep '^bottle-'
    ip -o link show 2>/dev/null | grep -o 'bh-[0-9]*' || true
    pgrep -f "bottle-proxy --config $BOTTLE_HOME" 2>/dev/null
}

start() {
    (cd "$WS" && exec "$BOTTLE" start e2e --cwd "$WS" --resolve "api.test:$UP:127.0.0.1" \
        --upstream-ca "$W/uca.pem" "$@")
}

# 1: exit code passes through, slug printed first
start >"$W/out" 2>"$W/err"
rc=$?
SLUG=$(sed -n '1s/^bottle: //p' "$W/out")
if [ $rc -eq 5 ] && [ -n "$SLUG" ]; then ok "agent exit code 5 passes through; slug $SLUG printed"; else fail "exit code" "rc=$rc" "$(cat "$W/out" "$W/err")"; fi
res() { grep -q "^$1\$" "$WS/result"; }
check_res() { if res "$2"; then ok "$1"; else fail "$1" "$(cat "$WS/result" 2>/dev/null)" "$(cat "$W/out" "$W/err")"; fi; }
# 2-9: inside the bottle
if res "allowed=0" && grep -q '"method"' "$WS/allowed.out"; then ok "HTTPS to the allowed route through the sidecar"; else fail "allowed route" "$(cat "$WS/result" "$WS/allowed.out" 2>/dev/null)"; fi
if grep -q "Bearer $TOKEN" "$W/up.log"; then ok "upstream saw the injected token"; else fail "token injection" "$(cat "$W/up.log")"; fi
if res "refused=403" && res "refused_reason=host_not_allowed"; then ok "host outside the routes refused (403 host_not_allowed)"; else fail "refused host" "$(cat "$WS/result" "$WS/refused.out")"; fi
if res "direct=EPERM" && res "direct_a1=EPERM"; then ok "direct TCP connects get EPERM"; else fail "direct TCP" "$(cat "$WS/result")" "$(cat "$W/out" "$W/err")"; fi
check_res "UDP send gets EPERM" "udp=EPERM"
check_res "the bottle's own loopback works" "loopback=hello-loopback"
check_res "the agent's environment holds no token" "env_token=absent"
check_res "the agent cannot read the sidecar config or CA key" "secrets=unreadable"
# 10: nothing left but the kept state (non-zero exit)
left=$(leftovers)
if [ -z "$left" ] && [ -d "$BOTTLE_HOME/state/$SLUG" ]; then ok "teardown leaves nothing; state kept after a non-zero exit"; else fail "teardown" "$left"; fi

# 11: clean exit removes the state
echo 0 >"$WS/exit_code"
start >"$W/out2" 2>"$W/err2"
rc=$?
rm -f "$WS/exit_code"
S2=$(sed -n '1s/^bottle: //p' "$W/out2")
left=$(leftovers)
if [ $rc -eq 0 ] && [ -n "$S2" ] && [ ! -e "$BOTTLE_HOME/state/$S2" ] && [ -z "$left" ]; then ok "clean exit removes the state"; else fail "clean exit" "rc=$rc" "$left" "$(cat "$W/err2")"; fi

# 12-13: failures injected at start leave nothing behind
start --upstream-ca "$W/nonexistent.pem" >"$W/out3" 2>"$W/err3"
rc=$?
S3=$(sed -n '1s/^bottle: //p' "$W/out3")
left=$(leftovers)
if [ $rc -ne 0 ] && [ -n "$S3" ] && [ ! -e "$BOTTLE_HOME/state/$S3" ] && [ -z "$left" ]; then ok "bad --upstream-ca fails and leaves nothing"; else fail "bad upstream CA" "rc=$rc" "$left" "$(cat "$W/err3")"; fi
BOTTLE_PROXY_BIN=$W/no-such-proxy start >"$W/out4" 2>"$W/err4"
rc=$?
S4=$(sed -n '1s/^bottle: //p' "$W/out4")
left=$(leftovers)
if [ $rc -ne 0 ] && grep -q sidecar "$W/err4" && [ ! -e "$BOTTLE_HOME/state/$S4" ] && [ -z "$left" ]; then ok "missing sidecar binary fails and leaves nothing"; else fail "missing sidecar" "rc=$rc" "$left" "$(cat "$W/err4")"; fi

# 14: a killed controller's leftovers are removed by `bottle cleanup`
touch "$WS/sleep_first"
(cd "$WS" && exec "$BOTTLE" start e2e --cwd "$WS" --resolve "api.test:$UP:127.0.0.1" \
    --upstream-ca "$W/uca.pem" >"$W/out5" 2>"$W/err5") &
CTRL=$!
i=0
while [ -z "$(find "$CG2/bottle" -mindepth 1 -maxdepth 1 -type d 2>/dev/null)" ] || ! pgrep -f "bottle-proxy --config $BOTTLE_HOME" >/dev/null; do
    sleep 0.1
    i=$((i + 1))
    [ $i -gt 100 ] && break
done
sleep 0.5
kill -9 "$CTRL" 2>/dev/null
wait "$CTRL" 2>/dev/null
before=$(leftovers)
dry=$("$BOTTLE" cleanup --dry-run 2>&1)
"$BOTTLE" cleanup >"$W/cleanup.out" 2>&1
crc=$?
left=$(leftovers)
if [ -n "$before" ] && echo "$dry" | grep -q "would remove" && [ $crc -eq 0 ] && [ -z "$left" ] &&
    [ -z "$(ls "$BOTTLE_HOME/state" 2>/dev/null)" ]; then
    ok "bottle cleanup removes a crashed bottle's leftovers"
else
    fail "cleanup" "before: $before" "dry: $dry" "after: $left" "$(cat "$W/cleanup.out")"
fi

# 15-16: the start banner (stderr) names backend, tier, routes, budgets, DLP and what is not
# enforced; --quiet leaves only the slug line
if grep -q "^  native backend, kernel enforcement tier" "$W/err2" && grep -q "^  routes: api.test" "$W/err2" &&
    grep -q "^  budgets:" "$W/err2" && grep -q "^  dlp: " "$W/err2" && grep -q "^  not enforced: " "$W/err2"; then
    ok "start banner on stderr"
else
    fail "start banner" "$(cat "$W/err2")"
fi
rm -f "$WS/sleep_first" "$WS/result" # the earlier bottles' agents (other pool uids) wrote them
echo 0 >"$WS/exit_code"
start --quiet >"$W/outq" 2>"$W/errq"
rc=$?
rm -f "$WS/exit_code"
if [ $rc -eq 0 ] && grep -q '^bottle: ' "$W/outq" && ! grep -q "backend, .* enforcement tier" "$W/errq"; then
    ok "--quiet hides the banner"
else
    fail "--quiet" "rc=$rc" "$(cat "$W/outq" "$W/errq")"
fi
