#!/bin/sh
# Who may use a bottle-proxy listening on loopback, and how many connections it
# holds: with `proxy_auth` every request needs the proxy credential (missing,
# wrong, another user's or a prefix of it: 407 proxy_auth_required, nothing
# forwarded; a second local user created here gets the same), the right one
# passes with the route's token injected; with `max_connections` a flood of
# idle connections is refused beyond the cap (503 too_many_connections, then
# closed) while the control listener keeps answering, and the sidecar serves
# again once the flood ends.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"

N=10
plan $N
for tool in curl openssl python3; do
    if ! command -v $tool >/dev/null; then
        for i in $(seq $N); do skip "sidecar_access $i" "" "$tool missing"; done
        exit 0
    fi
done

make_pki || { fail "test PKI"; exit 1; }
start_upstream tls tls && start_upstream plain || { fail "fake upstreams"; exit 1; }
UP=$(cat "$W/tls.port")
PLAIN=$(cat "$W/plain.port")
SECRET=px-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
ROUTES='[{"host": "api.test:'$UP'", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"}},
  {"host": "plain.test:'$PLAIN'"}]'
write_config "$W/cfg.json" "$ROUTES" ', "max_connections": 8,
  "proxy_auth": {"token_ref": "PROXY_SECRET"}'
rm -f "$W/px.port"
printf 'API_TOKEN=%s\nPROXY_SECRET=%s\n' "$TOKEN" "$SECRET" >"$W/tokens"
"$BOTTLE_PROXY" --config "$W/cfg.json" --token-fd 3 --port-file "$W/px.port" 3<"$W/tokens" \
    2>>"$W/proxy.log" &
PROXY_PID=$!
PIDS="$PIDS $PROXY_PID"
wait_file "$W/px.port" || { fail "proxy start" "$(cat "$W/proxy.log")"; exit 1; }
rm -f "$W/tokens"
PX=$(cut -d' ' -f1 "$W/px.port")
CTL=$(cut -d' ' -f2 "$W/px.port")
# acurl USER:PASS|- [curl args]: through the proxy with that credential (- for none)
acurl() {
    cred=$1
    shift
    if [ "$cred" = - ]; then
        curl -sS --max-time 10 --proxy "http://127.0.0.1:$PX" --cacert "$W/pca/ca.pem" "$@"
    else
        curl -sS --max-time 10 --proxy "http://$cred@127.0.0.1:$PX" --cacert "$W/pca/ca.pem" "$@"
    fi
}
lines() { wc -l <"$1" | tr -d ' '; }

# 1-4: the proxy credential
code=$(acurl - -o "$W/none.out" -w '%{http_connect}' "https://api.test:$UP/echo" 2>/dev/null)
pcode=$(acurl - -o "$W/none2.out" -w '%{http_code}' -D "$W/none2.head" "http://plain.test:$PLAIN/echo")
if [ "$code" = 407 ] && [ "$pcode" = 407 ] && grep -q '"reason": "proxy_auth_required"' "$W/none2.out" &&
    grep -qi '^Proxy-Authenticate: Basic realm="bottle"' "$W/none2.head" &&
    [ "$(lines "$W/tls.log")" = 0 ] && [ "$(lines "$W/plain.log")" = 0 ]; then
    ok "no credential: CONNECT and plain requests answered 407 proxy_auth_required with Proxy-Authenticate, nothing forwarded"
else fail "no credential" "$code $pcode" "$(cat "$W/none2.head" "$W/none2.out")"; fi
bad=""
for cred in "bottle:wrong" "bottle:${SECRET}x" "bottle:$(echo "$SECRET" | cut -c1-10)" "other:$SECRET" "$SECRET:bottle"; do
    c=$(acurl "$cred" -o /dev/null -w '%{http_code}' "http://plain.test:$PLAIN/echo")
    [ "$c" = 407 ] || bad="$bad $cred=$c"
done
raw=$(printf 'GET http://plain.test:%s/echo HTTP/1.1\r\nHost: plain.test:%s\r\nProxy-Authorization: Bearer %s\r\nConnection: close\r\n\r\n' \
    "$PLAIN" "$PLAIN" "$SECRET" | python3 "$FIX/proxyclient.py" "$PX" raw x 0)
if [ -z "$bad" ] && echo "$raw" | head -n1 | grep -q '^HTTP/1.1 407' && [ "$(lines "$W/plain.log")" = 0 ]; then
    ok "a wrong secret, a prefix, a longer one, another user, swapped parts, another scheme: all 407"
else fail "wrong credentials" "$bad" "$(echo "$raw" | head -n1)"; fi
out=$(acurl "bottle:$SECRET" -H "Authorization: Bearer agent-own" "https://api.test:$UP/echo")
pout=$(acurl "bottle:$SECRET" "http://plain.test:$PLAIN/echo")
# The upstream saw the route's token; what it echoes back reaches the agent redacted.
if grep '"/echo"' "$W/tls.log" | grep -q "\"Bearer $TOKEN\"" && ! echo "$out" | grep -q "$TOKEN" &&
    ! echo "$out" | grep -q agent-own && ! echo "$out" | grep -qi proxy-authorization &&
    echo "$pout" | grep -q '"method": "GET"' && ! echo "$pout" | grep -qi proxy-authorization; then
    ok "the bottle's credential passes: the route's token injected, Proxy-Authorization never forwarded"
else fail "right credential" "$out" "$pout"; fi
# Another local user, without the bottle's environment, on the same loopback port.
if is_root; then
    U2=btl-acc-$$
    if useradd --system --no-create-home --shell /usr/sbin/nologin "$U2" 2>"$W/useradd.err"; then
        uid=$(id -u "$U2")
        before=$(lines "$W/tls.log")
        c=$(setpriv --reuid "$uid" --regid "$uid" --clear-groups curl -sk --max-time 10 -o /dev/null \
            -w '%{http_connect}' --proxy "http://127.0.0.1:$PX" "https://api.test:$UP/echo" 2>/dev/null)
        userdel "$U2" 2>/dev/null
        if [ "$c" = 407 ] && [ "$(lines "$W/tls.log")" = "$before" ]; then
            ok "another local user without the credential: 407, the route's token never used"
        else fail "second user" "code=$c"; fi
    else
        fail "second user" "useradd: $(cat "$W/useradd.err")"
    fi
else
    skip "another local user" kernel "needs root to create a user"
fi

# 5-6: the control listener answers without the credential; the token is in no log line
h=$(curl -sS --max-time 5 "http://127.0.0.1:$CTL/healthz")
if echo "$h" | grep -q '"status": "ok"'; then ok "the control listener answers the controller"; else fail "control" "$h"; fi
if ! grep -q "$SECRET" "$W/proxy.log" && ! grep -q "$TOKEN" "$W/proxy.log"; then
    ok "neither the proxy secret nor the token is logged"
else fail "secret in the log"; fi

# 7-10: a flood of idle connections, cap 8
python3 - "$PX" "$CTL" "$W/flood" <<'PY'
import socket, sys, time, urllib.request
px, ctl, out = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "w")
conns = [socket.create_connection(("127.0.0.1", px), timeout=5) for _ in range(40)]
time.sleep(1)
refused = idle = 0
for s in conns:
    s.setblocking(False)
    try:
        data = s.recv(4096)
        if data.startswith(b"HTTP/1.1 503 ") and b'"reason": "too_many_connections"' in data:
            refused += 1
    except BlockingIOError:
        idle += 1
out.write("refused=%d\nidle=%d\n" % (refused, idle))
health = urllib.request.urlopen("http://127.0.0.1:%d/healthz" % ctl, timeout=5).read()
out.write("health=%s\n" % (b'"status": "ok"' in health))
metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ctl, timeout=5).read().decode()
for line in metrics.splitlines():
    if line.startswith("bottle_proxy_connections_refused_total") or line.startswith("bottle_proxy_connections_max"):
        out.write(line.replace(" ", "=") + "\n")
extra = socket.create_connection(("127.0.0.1", px), timeout=5)
extra.settimeout(5)
out.write("extra=%s\n" % extra.recv(64).split(b"\r\n")[0].decode())
for s in conns:
    s.close()
PY
val() { sed -n "s/^$1=//p" "$W/flood"; }
if [ "$(val refused)" = 32 ] && [ "$(val idle)" = 8 ] && [ "$(val extra)" = "HTTP/1.1 503 Service Unavailable" ]; then
    ok "40 idle connections, cap 8: 32 answered 503 too_many_connections and closed, 8 kept"
else fail "flood" "$(cat "$W/flood")"; fi
if [ "$(val health)" = True ] && [ "$(val bottle_proxy_connections_max)" = 8 ] &&
    [ "$(val bottle_proxy_connections_refused_total)" = 32 ]; then
    ok "during the flood the control listener answers /healthz and /metrics (32 refused, max 8)"
else fail "control during flood" "$(cat "$W/flood")"; fi
sleep 0.5
code=$(acurl "bottle:$SECRET" -o /dev/null -w '%{http_code}' "https://api.test:$UP/echo")
if [ "$code" = 200 ]; then ok "after the flood the sidecar serves again"; else fail "after flood" "$code"; fi
n=$(grep -c '"event":"connection_limit"' "$W/proxy.log")
if [ "$n" -ge 2 ] && [ "$n" -le 3 ] && grep -q '"refused_total":"10"' "$W/proxy.log"; then
    ok "the limit is logged on the 1st and 10th refusal, not on each of the 33"
else fail "limit log" "$(grep connection_limit "$W/proxy.log")"; fi
