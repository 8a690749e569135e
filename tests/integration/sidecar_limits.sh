#!/bin/sh
# bottle-proxy's timeouts, half-close and its own confinement, on loopback:
# header, idle, connect, handshake (both sides), io and drain timeouts with
# small configured values and what the client sees for each; a client that
# half-closes after its request still gets the whole response; the proxy
# runs under its seccomp allowlist in standalone mode (and, as root, under
# --uid/--gid) and survives all of the above, reloads and name resolution.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"

N=24
plan $N

for tool in openssl python3; do
    if ! command -v $tool >/dev/null; then
        for i in $(seq $N); do skip "sidecar limits case $i" "" "$tool missing"; done
        exit 0
    fi
done

HEADER_MS=800
IDLE_MS=2000
CONNECT_MS=700
HANDSHAKE_MS=900
IO_MS=1200
DRAIN_MS=900

make_pki || { fail "test PKI"; exit 1; }
start_upstream tls tls || { fail "TLS upstream"; exit 1; }
UP=$(cat "$W/tls.port")
python3 "$FIX/limits_upstream.py" --port-file "$W/limits.port" &
PIDS="$PIDS $!"
wait_file "$W/limits.port" || { fail "limits upstream"; exit 1; }
read -r HTTP NOTLS BACKLOG <"$W/limits.port"

# limits_config FILE TIMEOUTS_JSON [DIR]: every route and override the cases use
limits_config() {
    d=${3:-$W}
    cat >"$1" <<JSON
{"listen": "127.0.0.1:0", "control": "127.0.0.1:0", "bottle": "limits",
 "tls": {"ca_cert": "$d/pca/ca.pem", "ca_key": "$d/pca/ca-key.pem",
         "leaf_key": "$d/pca/leaf-key.pem", "extra_ca": "$d/uca/ca.pem"},
 "resolve": ["up.test:$HTTP:127.0.0.1", "hang.test:$BACKLOG:127.0.0.1",
             "notls.test:$NOTLS:127.0.0.1", "api.test:$UP:127.0.0.1"],
 "timeouts": $2,
 "routes": [{"host": "up.test:$HTTP"}, {"host": "hang.test:$BACKLOG"},
            {"host": "notls.test:$NOTLS"}, {"host": "api.test:$UP"},
            {"host": "localhost:$HTTP"}]}
JSON
}
TIMEOUTS="{\"header_ms\": $HEADER_MS, \"idle_ms\": $IDLE_MS, \"connect_ms\": $CONNECT_MS,
  \"handshake_ms\": $HANDSHAKE_MS, \"io_ms\": $IO_MS, \"drain_ms\": 5000}"
limits_config "$W/cfg.json" "$TIMEOUTS"
start_proxy "$W/cfg.json" || { fail "proxy start" "$(cat "$W/proxy.log")"; exit 1; }

# wait_log PATTERN [FILE]: up to 5 s for a line in the proxy's log
wait_log() {
    i=0
    while ! grep -q "$1" "${2:-$W/proxy.log}" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    grep -q "$1" "${2:-$W/proxy.log}"
}
# status_field PID NAME: a field of /proc/PID/status
status_field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }
case_() { # case_ NAME CASE AUTHORITY MS [CAFILE]
    name=$1
    shift
    if out=$(python3 "$FIX/limits_client.py" "$PX" "$@" 2>&1); then ok "$name: $out"; else fail "$name" "$out"; fi
}

# 1: standalone --config runs under its own seccomp filter with no_new_privs
if wait_log '"event":"confined"' && grep -q '"seccomp":"allowlist"' "$W/proxy.log" &&
    [ "$(status_field "$PROXY_PID" Seccomp)" = 2 ] && [ "$(status_field "$PROXY_PID" NoNewPrivs)" = 1 ]; then
    ok "standalone proxy: Seccomp 2 (filter), NoNewPrivs 1"
else fail "seccomp active" "$(grep -E 'Seccomp|NoNewPrivs' "/proc/$PROXY_PID/status")" "$(tail -3 "$W/proxy.log")"; fi

# 2-3: request head timeout
case_ "header_ms: a partial head that stalls gets 408 header_timeout, then a close" \
    header "up.test:$HTTP" $HEADER_MS
case_ "header_ms: a head trickled byte by byte is cut at header_ms from its first byte" \
    trickle "up.test:$HTTP" $HEADER_MS

# 4-5: idle keep-alive timeout
case_ "idle_ms: a client that never sends a byte is closed, nothing written" \
    idle-fresh "up.test:$HTTP" $IDLE_MS
case_ "idle_ms: a kept-alive connection closes idle_ms after its last response" \
    idle-keepalive "up.test:$HTTP" $IDLE_MS

# 6-8: half-close
case_ "half-close: shutdown(SHUT_WR) after the request, the whole response arrives" \
    halfclose "up.test:$HTTP" 0
case_ "half-close: 4 MiB reach a half-closed client that reads late" \
    halfclose-big "up.test:$HTTP" 0
case_ "half-close inside an intercepted tunnel" halfclose-tls "api.test:$UP" 0 "$W/pca/ca.pem"

# 9-13: upstream timeouts and the client's handshake
case_ "io_ms: an upstream that never answers gives 504 upstream_timeout" \
    upstream-io "up.test:$HTTP" $IO_MS
case_ "io_ms: a response stalled mid-body is cut: the bytes sent, then a close" \
    upstream-partial "up.test:$HTTP" $IO_MS
case_ "connect_ms: a connect that never completes gives 504 upstream_timeout" \
    upstream-connect "hang.test:$BACKLOG" $CONNECT_MS
case_ "handshake_ms: an upstream that never speaks TLS gives 504 upstream_timeout" \
    upstream-handshake "notls.test:$NOTLS" $HANDSHAKE_MS "$W/pca/ca.pem"
case_ "handshake_ms: a client that never sends its ClientHello is closed" \
    client-handshake "api.test:$UP" $HANDSHAKE_MS

# 14: the log names each timeout
if grep -q '"reason":"header_timeout"' "$W/proxy.log" && grep -q '"status":408' "$W/proxy.log" &&
    grep -q '"reason":"upstream_timeout"' "$W/proxy.log" && grep -q '"status":504' "$W/proxy.log"; then
    ok "log lines: 408 header_timeout and 504 upstream_timeout"
else fail "timeout log lines" "$(tail -5 "$W/proxy.log")"; fi

# 15: a name resolved on a resolver thread through /etc/hosts, under the filter
out=$(printf 'GET http://localhost:%s/ok HTTP/1.1\r\nHost: localhost:%s\r\nConnection: close\r\n\r\n' \
    "$HTTP" "$HTTP" | python3 "$FIX/proxyclient.py" "$PX" raw x 0)
if echo "$out" | grep -q '"reason": "upstream_blocked"' && echo "$out" | grep -q 'resolves to 127\.' &&
    kill -0 "$PROXY_PID" 2>/dev/null; then
    ok "resolver thread: localhost via /etc/hosts resolved (and refused as loopback), proxy alive"
else fail "resolver thread" "$out" "$(tail -3 "$W/proxy.log")"; fi

# 16: reload under the filter
limits_config "$W/cfg.json" "$TIMEOUTS"
kill -HUP "$PROXY_PID"
if wait_log '"event":"reloaded"' && kill -0 "$PROXY_PID" 2>/dev/null &&
    python3 "$FIX/limits_client.py" "$PX" halfclose "up.test:$HTTP" 0 >/dev/null; then
    ok "SIGHUP reload re-reads the config under the filter; requests still served"
else fail "reload under the filter" "$(tail -3 "$W/proxy.log")"; fi

# 17: after every case above the proxy was never killed, and exits 0 on SIGTERM
kill -TERM "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
if [ $rc -eq 0 ] && grep -q '"event":"stopped"' "$W/proxy.log"; then
    ok "proxy survived every case under the filter and exited 0 (not SIGSYS)"
else fail "proxy exit" "rc=$rc" "$(tail -3 "$W/proxy.log")"; fi

# 18: drain_ms cuts a request that does not finish in time
limits_config "$W/drain.json" "{\"io_ms\": 30000, \"drain_ms\": $DRAIN_MS}"
: >"$W/proxy.log"
start_proxy "$W/drain.json" || { fail "drain proxy start" "$(cat "$W/proxy.log")"; exit 1; }
python3 "$FIX/limits_client.py" "$PX" stall "up.test:$HTTP" 0 >"$W/stall.out" 2>&1 &
st=$!
i=0
while ! grep -q sent "$W/stall.out" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
t0=$(date +%s%N)
kill -TERM "$PROXY_PID"
wait "$PROXY_PID"
rc=$?
el=$((($(date +%s%N) - t0) / 1000000))
wait $st
if [ $rc -eq 0 ] && [ $el -ge $((DRAIN_MS - 150)) ] && [ $el -le $((DRAIN_MS + 1500)) ] &&
    grep -q '^closed' "$W/stall.out" && grep -q '"connections_cut":"1"' "$W/proxy.log"; then
    ok "drain_ms: SIGTERM with a stalled request in flight exits 0 after ${el} ms, the request cut"
else fail "drain_ms" "rc=$rc elapsed=${el}ms" "$(cat "$W/stall.out")" "$(tail -3 "$W/proxy.log")"; fi

# 19: --no-seccomp is a debugging switch: no filter, and the log says so
: >"$W/proxy.log"
rm -f "$W/px.port"
"$BOTTLE_PROXY" --config "$W/cfg.json" --port-file "$W/px.port" --no-seccomp 2>>"$W/proxy.log" &
NS_PID=$!
PIDS="$PIDS $NS_PID"
if wait_file "$W/px.port" && wait_log '"seccomp":"off (--no-seccomp)"' &&
    [ "$(status_field $NS_PID Seccomp)" = 0 ]; then
    ok "--no-seccomp: no filter (Seccomp 0), logged as off"
else fail "--no-seccomp" "$(grep Seccomp "/proc/$NS_PID/status")" "$(tail -3 "$W/proxy.log")"; fi
kill -TERM $NS_PID
wait $NS_PID

# 20-22: as the controller runs it: root drops to --uid/--gid, then the filter
# 23-24: names resolved over DNS on the resolver threads, in a private network namespace
if ! is_root; then
    for c in "uid drop" "uid request" "uid exit" "dns resolve" "dns exit"; do
        skip "root case: $c" kernel "needs root"
    done
    exit 0
fi
U=$W/u
mkdir -p "$U/pca" "$U/uca"
cp "$W/pca/"*.pem "$U/pca/" && cp "$W/uca/ca.pem" "$U/uca/"
limits_config "$U/cfg.json" "$TIMEOUTS" "$U"
chown -R 65532:65532 "$U"
chmod 0755 "$W"
: >"$W/proxy.log"
"$BOTTLE_PROXY" --config "$U/cfg.json" --port-file "$U/px.port" --uid 65532 --gid 65532 \
    2>>"$W/proxy.log" &
UID_PID=$!
PIDS="$PIDS $UID_PID"
if wait_file "$U/px.port" && wait_log '"event":"confined"' &&
    [ "$(status_field $UID_PID Uid | tr -s '\t ' ' ')" = "65532 65532 65532 65532" ] &&
    [ "$(status_field $UID_PID Gid | tr -s '\t ' ' ')" = "65532 65532 65532 65532" ] &&
    [ "$(status_field $UID_PID Groups)" = "" ] &&
    [ "$(status_field $UID_PID CapEff)" = 0000000000000000 ] &&
    [ "$(status_field $UID_PID CapBnd)" = 0000000000000000 ] &&
    [ "$(status_field $UID_PID Seccomp)" = 2 ] && [ "$(status_field $UID_PID NoNewPrivs)" = 1 ]; then
    ok "--uid/--gid as root: uid and gid 65532, no groups, no capabilities, Seccomp 2, NoNewPrivs 1"
else fail "--uid/--gid confinement" "$(grep -E 'Uid|Gid|Groups|Cap|Seccomp|NoNewPrivs' "/proc/$UID_PID/status")" "$(tail -3 "$W/proxy.log")"; fi
PX=$(cut -d' ' -f1 "$U/px.port")
case_ "--uid/--gid: requests are served by the dropped, filtered proxy" halfclose "up.test:$HTTP" 0
kill -HUP $UID_PID
sleep 0.3
kill -TERM $UID_PID
wait $UID_PID
rc=$?
if [ $rc -eq 0 ] && grep -q '"event":"reloaded"' "$W/proxy.log"; then
    ok "--uid/--gid: reload as the dropped uid, then exit 0"
else fail "--uid/--gid exit" "rc=$rc" "$(tail -3 "$W/proxy.log")"; fi

# The namespace has only its loopback, with one IPv4 and one IPv6 address that are not in a
# blocked network; /etc/resolv.conf is bind-mounted (in the private mount namespace) to point at
# a DNS server on 127.0.0.1:53 that answers A and AAAA for *.dns.test and NXDOMAIN otherwise.
# Two answers make getaddrinfo sort them (netlink, connected UDP probes): the whole resolver path.
cat >"$W/ns.sh" <<'EOS'
set -u
W=$1 FIX=$2 PROXY=$3
kids=""
trap 'for k in $kids; do kill $k 2>/dev/null; done; wait' EXIT
wait_for() { i=0; while [ ! -s "$1" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done; [ -s "$1" ]; }
ip link set lo up && ip addr add 11.0.0.1/32 dev lo && ip -6 addr add 3fff::1/128 dev lo nodad || exit 1
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' >"$W/ns-resolv.conf"
mount --bind "$W/ns-resolv.conf" /etc/resolv.conf || exit 1
python3 "$FIX/limits_dns.py" 11.0.0.1 3fff::1 "$W/dns.ready" 2>"$W/dns.log" &
kids="$kids $!"
python3 "$FIX/limits_upstream.py" --port-file "$W/ns-up.port" --host :: &
kids="$kids $!"
wait_for "$W/dns.ready" && wait_for "$W/ns-up.port" || exit 1
read -r P _ _ <"$W/ns-up.port"
cat >"$W/ns-cfg.json" <<JSON
{"listen": "127.0.0.1:0", "bottle": "dns",
 "tls": {"ca_cert": "$W/pca/ca.pem", "ca_key": "$W/pca/ca-key.pem", "leaf_key": "$W/pca/leaf-key.pem"},
 "routes": [{"host": "api.dns.test:$P"}, {"host": "nx.test:$P"}]}
JSON
"$PROXY" --config "$W/ns-cfg.json" --port-file "$W/ns-px.port" 2>"$W/ns-proxy.log" &
pp=$!
kids="$kids $pp"
wait_for "$W/ns-px.port" || exit 1
PX=$(cut -d' ' -f1 "$W/ns-px.port")
for host in api.dns.test nx.test; do
    printf 'GET http://%s:%s/ok HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$host" "$P" "$host" "$P" |
        python3 "$FIX/proxyclient.py" "$PX" raw x 0 | tr -d '\r' | sed "s/^/$host: /"
    echo
done
echo "seccomp: $(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/$pp/status)"
kill -TERM $pp
wait $pp
echo "exit: $?"
EOS
out=$(timeout 120 unshare --net --mount sh "$W/ns.sh" "$W" "$FIX" "$BOTTLE_PROXY" 2>&1)
if echo "$out" | grep -q '^api.dns.test: HTTP/1.1 200' && echo "$out" | grep -q '^api.dns.test: ok$' &&
    echo "$out" | grep -q '^nx.test: .*"reason": "upstream_resolve_failed"' &&
    echo "$out" | grep -q '^seccomp: 2$' && grep -q 'query api.dns.test type 28' "$W/dns.log" &&
    grep -q 'query api.dns.test type 1 ' "$W/dns.log"; then
    ok "DNS on resolver threads under the filter: A+AAAA answer forwarded (200), NXDOMAIN refused (502)"
else fail "DNS resolution under the filter" "$out" "$(cat "$W/dns.log" 2>/dev/null)" "$(tail -3 "$W/ns-proxy.log" 2>/dev/null)"; fi
if echo "$out" | grep -q '^exit: 0$' && ! grep -q '"reason":"upstream_resolve_failed".*api.dns.test' "$W/ns-proxy.log"; then
    ok "DNS proxy exited 0 after SIGTERM (never killed by its filter)"
else fail "DNS proxy exit" "$out" "$(tail -3 "$W/ns-proxy.log" 2>/dev/null)"; fi
