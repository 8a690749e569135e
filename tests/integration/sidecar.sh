#!/bin/sh
# bottle-proxy end to end on loopback: forwarding (CONNECT + TLS interception and
# plain absolute-URI), credential injection, refusals, upstream blocking,
# streaming, WebSocket, introspection, control, smuggling, reload and drain.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"

plan 30

for tool in curl openssl python3; do
    if ! command -v $tool >/dev/null; then
        for i in $(seq 30); do skip "sidecar case $i" "" "$tool missing"; done
        exit 0
    fi
done

make_pki || { fail "test PKI"; exit 1; }
start_upstream tls tls && start_upstream plain || { fail "fake upstreams"; exit 1; }
UP=$(cat "$W/tls.port")
PLAIN=$(cat "$W/plain.port")
ROUTES='[{"host": "api.test:'$UP'", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"}},
  {"host": "plain.test:'$PLAIN'",
   "matches": [{"paths": [{"type": "prefix", "value": "/echo"}, {"type": "prefix", "value": "/sse"}]}]},
  {"host": "cleartext.test", "auth": {"header": "X-Api-Key", "token_ref": "HDR_TOKEN"}},
  {"host": "localhost:'$UP'"},
  {"host": "git.test:'$UP'", "git": {"fetch": true}}]'
write_config "$W/cfg.json" "$ROUTES"
start_proxy "$W/cfg.json" || { fail "proxy start" "$(cat "$W/proxy.log")"; exit 1; }

# 1-3: HTTPS through CONNECT with interception; injection seen at the upstream, never over plain HTTP
out=$(pcurl -H "Authorization: Bearer agent-own" -H "Proxy-Authorization: Basic eA==" \
    "https://api.test:$UP/echo?q=1")
if grep '"/echo?q=1"' "$W/tls.log" | grep -q "\"Bearer $TOKEN\"" && ! echo "$out" | grep -q agent-own &&
    echo "$out" | grep -q '"authorization": "Bearer \[REDACTED:token' && ! echo "$out" | grep -q "$TOKEN" &&
    ! echo "$out" | grep -q proxy-authorization; then
    ok "https via CONNECT: route token injected, agent's Authorization and Proxy-Authorization stripped"
else fail "https injection" "$out"; fi
out=$(pcurl -H "X-Api-Key: agent-key" "http://plain.test:$PLAIN/echo")
before=$(wc -l <"$W/tls.log")
out2=$(pcurl "http://api.test:$UP/echo")
out3=$(pcurl -X POST --data x "http://cleartext.test/v1/messages")
if echo "$out" | grep -q '"x-api-key": "agent-key"' &&
    echo "$out2" | grep -q '"reason": "auth_requires_tls"' &&
    echo "$out3" | grep -q '"reason": "auth_requires_tls"' && ! grep -q "$TOKEN" "$W/plain.log" &&
    [ "$(wc -l <"$W/tls.log")" = "$before" ]; then
    ok "plain http: forwarded as sent on a route without auth; a route with auth refuses it (auth_requires_tls) on its port and on 80, no token leaves"
else fail "cleartext credentials" "$out" "$out2" "$out3"; fi
out=$(python3 "$FIX/proxyclient.py" "$PX" urllib "https://api.test:$UP/echo" "$W/pca/ca.pem" 2>&1)
if echo "$out" | grep -q '"method": "GET"'; then ok "python urllib through the proxy"; else fail "urllib" "$out"; fi

# 4-5: keep-alive and pipelining on one connection
out=$(pcurl -w '%{num_connects}\n' -o /dev/null -o /dev/null "https://api.test:$UP/echo" "https://api.test:$UP/echo?2")
if [ "$(echo "$out" | tr -d '\n')" = "10" ]; then ok "keep-alive: second request reuses the tunnel"; else fail "keep-alive" "$out"; fi
out=$(printf 'GET http://plain.test:%s/echo?a HTTP/1.1\r\nHost: plain.test:%s\r\n\r\nGET http://plain.test:%s/echo?b HTTP/1.1\r\nHost: plain.test:%s\r\nConnection: close\r\n\r\n' \
    "$PLAIN" "$PLAIN" "$PLAIN" "$PLAIN" | python3 "$FIX/proxyclient.py" "$PX" raw x 0)
if [ "$(echo "$out" | grep -o 'HTTP/1.1 200' | wc -l)" = 2 ] && echo "$out" | grep -q 'echo?b'; then
    ok "pipelined requests answered in order"
else fail "pipelining" "$out"; fi

# 6-9: refusals with stable reasons
out=$(pcurl -o /dev/null -w '%{http_code}' "https://nowhere.test/" 2>&1)
if echo "$out" | grep -q 403; then ok "CONNECT to a host without a route: 403 before any TLS"; else fail "connect refused" "$out"; fi
out=$(pcurl "http://nowhere.test/x")
if echo "$out" | grep -q '"reason": "host_not_allowed"'; then ok "plain http host_not_allowed JSON"; else fail "host_not_allowed" "$out"; fi
out=$(pcurl "http://plain.test:$PLAIN/other")
if echo "$out" | grep -q '"reason": "no_matching_rule"'; then ok "matches: no_matching_rule"; else fail "no_matching_rule" "$out"; fi
out=$(pcurl -H "Host: other.test:$UP" "https://api.test:$UP/echo")
if echo "$out" | grep -q '"reason": "host_mismatch"'; then ok "Host inside the tunnel must match: host_mismatch"; else fail "host_mismatch" "$out"; fi

# 10: SNI mismatch
out=$(python3 "$FIX/proxyclient.py" "$PX" sni api.test "$UP" other.test "$W/pca/ca.pem" 2>&1)
if echo "$out" | grep -q refused && grep -q '"reason":"sni_mismatch"' "$W/proxy.log"; then
    ok "SNI different from the CONNECT host: handshake refused, sni_mismatch logged"
else fail "sni mismatch" "$out"; fi

# 11: blocked network without an override
out=$(pcurl "https://localhost:$UP/echo")
if echo "$out" | grep -q '"reason": "upstream_blocked"'; then ok "routed name resolving to loopback: upstream_blocked"; else fail "blocked" "$out"; fi

# 12: git push refused, fetch path allowed by the route
out=$(pcurl "https://git.test:$UP/git/r.git/info/refs?service=git-receive-pack")
if echo "$out" | grep -q '"reason": "git_push_blocked"'; then ok "git push: git_push_blocked"; else fail "git push" "$out"; fi

# 13-14: streaming
out=$(python3 "$FIX/proxyclient.py" "$PX" sse "https://api.test:$UP/sse?n=6&ms=150" "$W/pca/ca.pem" 6 150 2>&1)
if [ $? -eq 0 ]; then ok "SSE passthrough: $out"; else fail "sse" "$out"; fi
out=$(pcurl -o "$W/big" -w '%{http_code} %{size_download}' "https://api.test:$UP/big?size=1048576")
if [ "$out" = "200 1048576" ]; then ok "1 MiB response streamed intact"; else fail "big" "$out"; fi

# 15: WebSocket
out=$(python3 "$FIX/proxyclient.py" "$PX" ws api.test "$UP" "$W/pca/ca.pem" 2>&1)
if [ "$out" = "ws echo ok" ]; then ok "WebSocket upgrade and echo through the tunnel"; else fail "ws" "$out"; fi

# 16-19: smuggling: refused with 400 and never forwarded
smuggle() { # name, raw request (printf format)
    : >"$W/plain.log"
    # shellcheck disable=SC2059
    out=$(printf "$2" | python3 "$FIX/proxyclient.py" "$PX" raw x 0)
    if echo "$out" | head -n1 | grep -q '^HTTP/1.1 400' && echo "$out" | grep -q "\"reason\": \"$3\"" &&
        ! grep -q smuggled "$W/plain.log"; then
        ok "smuggling refused: $1 ($3), nothing reached the upstream"
    else fail "smuggling $1" "$out" "$(cat "$W/plain.log")"; fi
}
H="POST http://plain.test:$PLAIN/echo/smuggled HTTP/1.1\r\nHost: plain.test:$PLAIN\r\n"
smuggle "CL + TE" "${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" cl_and_te
smuggle "two Content-Length" "${H}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde" conflicting_content_length
smuggle "obs-fold" "${H}X-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n" obs_fold
smuggle "TE not chunked last" "${H}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" bad_transfer_encoding

# 20: chunked request body forwarded
out=$(pcurl -H "Transfer-Encoding: chunked" --data-binary "hello-body" "http://plain.test:$PLAIN/echo")
if echo "$out" | grep -q '"body": "hello-body"'; then ok "chunked request body forwarded"; else fail "chunked body" "$out"; fi

# 21-23: introspection and control
out=$(pcurl "http://_bottle.local/allowlist")
if echo "$out" | grep -q "\"host\":[[:space:]]*\"api.test:$UP\"" && ! echo "$out" | grep -q "$TOKEN"; then
    ok "introspection over plain http: routes in manifest schema, no token"
else fail "introspection" "$out"; fi
out=$(pcurl "https://_bottle.local/allowlist")
if echo "$out" | grep -q '"token_ref":[[:space:]]*"API_TOKEN"'; then ok "introspection through CONNECT + TLS"; else fail "introspection tls" "$out"; fi
h=$(curl -sS --max-time 5 "http://127.0.0.1:$CTL/healthz")
m=$(curl -sS --max-time 5 "http://127.0.0.1:$CTL/metrics")
if echo "$h" | grep -q '"status": "ok"' && echo "$m" | grep -q 'bottle_proxy_refusals_total{reason="host_not_allowed"}'; then
    ok "control listener: /healthz and /metrics with refusals by reason"
else fail "control" "$h" "$m"; fi

# 24: node client when present
if command -v node >/dev/null; then
    out=$(PX=$PX UP=$UP NODE_EXTRA_CA_CERTS="$W/pca/ca.pem" node -e '
const http = require("http"), tls = require("tls");
const req = http.request({host: "127.0.0.1", port: process.env.PX, method: "CONNECT", path: "api.test:" + process.env.UP,
  headers: {Host: "api.test:" + process.env.UP}});
req.on("connect", (res, sock) => {
  const t = tls.connect({socket: sock, servername: "api.test"}, () => {
    t.write("GET /echo HTTP/1.1\r\nHost: api.test:" + process.env.UP + "\r\nConnection: close\r\n\r\n");
  });
  let d = ""; t.on("data", c => d += c); t.on("end", () => { console.log(d.split("\r\n")[0]); });
});
req.end();' 2>&1)
    if echo "$out" | grep -q "200 OK"; then ok "node client through CONNECT"; else fail "node" "$out"; fi
else
    skip "node client" "" "node not installed"
fi

# 25: the token never appears in the proxy's log
if ! grep -q "$TOKEN" "$W/proxy.log"; then ok "injected token absent from the log"; else fail "token in log"; fi

# 26-28: reload: good, bad, in flight
(pcurl -o "$W/slow.out" -w '%{http_code}' "https://api.test:$UP/slow?ms=1500" >"$W/slow.code") &
slow=$!
sleep 0.5
write_config "$W/cfg.json" '[{"host": "plain.test:'$PLAIN'"}]'
kill -HUP "$PROXY_PID"
sleep 0.3
out=$(pcurl "https://api.test:$UP/echo" 2>&1)
wait $slow
if [ "$(cat "$W/slow.code")" = 200 ] && echo "$out" | grep -q 403; then
    ok "reload: in-flight request finished under the old config; new tunnel refused"
else fail "reload in-flight" "$(cat "$W/slow.code")" "$out"; fi
out=$(pcurl "http://plain.test:$PLAIN/other")
if echo "$out" | grep -q "no such fixture path"; then ok "reload: new routes in force"; else fail "reload good" "$out"; fi
echo '{"listen": ' >"$W/cfg.json"
kill -HUP "$PROXY_PID"
sleep 0.3
out=$(pcurl "http://plain.test:$PLAIN/other")
if echo "$out" | grep -q "no such fixture path" && grep -q '"event":"reload_failed"' "$W/proxy.log"; then
    ok "reload: an invalid file keeps the last good config and says why"
else fail "reload bad" "$out"; fi

# 29: SIGTERM drains requests in flight
(pcurl -w '%{http_code}' -o /dev/null "http://plain.test:$PLAIN/slow?ms=1000" >"$W/drain.code") &
dr=$!
sleep 0.4
kill -TERM "$PROXY_PID"
wait $dr
wait "$PROXY_PID"
rc=$?
if [ "$(cat "$W/drain.code")" = 200 ] && [ $rc -eq 0 ] &&
    ! grep -q 'runtime error\|Sanitizer' "$W/proxy.log"; then ok "SIGTERM: in-flight request completed, exit 0"; else fail "drain" "code=$(cat "$W/drain.code") rc=$rc"; fi

# 30: bad config and missing token exit 2
write_config "$W/bad.json" '[{"host": "api.test", "auth": {"scheme": "Bearer", "token_ref": "MISSING"}}]'
out=$("$BOTTLE_PROXY" --config "$W/bad.json" --check 2>&1)
rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q "no value for 'MISSING'"; then ok "missing token value: exit 2 with a clear message"; else fail "bad config" "rc=$rc $out"; fi
