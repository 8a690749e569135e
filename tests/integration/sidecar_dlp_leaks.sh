#!/bin/sh
# Leaks through a real sidecar that the first DLP detectors missed. Inbound:
# an upstream that reflects the request hands back the token the sidecar
# injected (in the response head, the body, a gzip body, a chunked body, a
# WebSocket message, a TRACE answer): the agent must see only a redaction mark.
# Outbound: the canary upper-cased, reversed, as base32, as hex with
# separators, as base64 of base64, gzip-compressed without a Content-Encoding,
# and in 10-character pieces over several requests: each is refused.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"

N=25
plan $N

for tool in curl openssl python3; do
    if ! command -v $tool >/dev/null; then
        for i in $(seq $N); do skip "sidecar dlp leaks case $i" "" "$tool missing"; done
        exit 0
    fi
done

make_pki || { fail "test PKI"; exit 1; }
start_upstream tls tls || { fail "fake upstream"; exit 1; }
UP=$(cat "$W/tls.port")
PLAIN=1
CANARY=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
ROUTES='[{"host": "api.test:'$UP'", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"},
   "dlp": {"outbound_on_match": "block"}},
  {"host": "other.test:'$UP'", "dlp": {"outbound_on_match": "block"}}]'
write_config "$W/cfg.json" "$ROUTES" ', "secrets": ["'$CANARY'"]'
start_proxy "$W/cfg.json" || { fail "proxy start" "$(cat "$W/proxy.log")"; exit 1; }

# the token as the upstream receives it, and its forms an echo could take
B64=$(printf 'u:%s' "$TOKEN" | base64 | tr -d '\n')
HEX=$(printf '%s' "$TOKEN" | od -An -tx1 | tr -d ' \n')
UPPER=$(printf '%s' "$TOKEN" | tr a-z A-Z)
# leaked: any form of the token in what the agent got (file $1)
leaked() { grep -q -e "$TOKEN" -e "$B64" -e "$HEX" -e "$UPPER" "$1"; }
seen_upstream() { grep "$1" "$W/tls.log" | grep -q "Bearer $TOKEN"; }

# 1-7: the token reflected back
pcurl -i "https://api.test:$UP/reflect?in=head" >"$W/r1" 2>&1
if grep -q '^X-Echo-Authorization: Bearer \[REDACTED:token' "$W/r1" && grep -q '^X-Echo-Basic: .*\[REDACTED' "$W/r1" &&
    grep -q '^HTTP/1.1 400 Bad credential Bearer \[REDACTED' "$W/r1" && ! leaked "$W/r1" && seen_upstream '/reflect?in=head'; then
    ok "token echoed in the response head (fields, Basic form, reason phrase): the agent sees only the mark"
else fail "echo head" "$(cat "$W/r1")"; fi
pcurl -D "$W/h2" -o "$W/r2" "https://api.test:$UP/reflect?in=body" 2>&1
len=$(sed -n 's/^Content-Length: \([0-9]*\).*/\1/p' "$W/h2" | tr -d '\r')
if [ "$(wc -c <"$W/r2")" = "$len" ] && grep -q '"authorization": "Bearer \[REDACTED:token' "$W/r2" &&
    ! leaked "$W/r2" && [ "$(grep -o 'REDACTED' "$W/r2" | wc -l)" -ge 5 ]; then
    ok "token echoed in a body, raw, as Basic base64, hex, percent-encoded and upper-cased: all marked, length kept"
else fail "echo body" "$(cat "$W/r2")"; fi
pcurl -i --compressed "https://api.test:$UP/reflect?in=gzip" >"$W/r3" 2>&1
if grep -q '"authorization": "Bearer \[REDACTED:token' "$W/r3" && ! grep -qi '^Content-Encoding' "$W/r3" &&
    ! leaked "$W/r3"; then
    ok "token echoed in a gzip body: decoded, marked, forwarded without its coding"
else fail "echo gzip" "$(cat "$W/r3")"; fi
pcurl -i "https://api.test:$UP/reflect?in=chunked" >"$W/r4" 2>&1
if grep -q '"authorization": "Bearer \[REDACTED:token' "$W/r4" && ! leaked "$W/r4"; then
    ok "token echoed in a chunked body, cut across 7-byte chunks: marked whole"
else fail "echo chunked" "$(cat "$W/r4")"; fi
pcurl "https://api.test:$UP/echo" >"$W/r5" 2>&1
if grep -q '"authorization": "Bearer \[REDACTED:token' "$W/r5" && ! leaked "$W/r5" && seen_upstream '"/echo"'; then
    ok "an echo endpoint's copy of the request: the injected Authorization comes back marked"
else fail "echo endpoint" "$(cat "$W/r5")"; fi
out=$(python3 "$FIX/wsclient.py" "$PX" api.test "$UP" "$W/pca/ca.pem" reflect 2>&1)
echo "$out" >"$W/r6"
if echo "$out" | grep -q '^message: Authorization: Bearer \[REDACTED:token' && ! leaked "$W/r6"; then
    ok "token echoed in a WebSocket message: the agent gets the message with the mark"
else fail "echo websocket" "$out"; fi
pcurl -i "https://api.test:$UP/reflect?in=zstd" >"$W/r7" 2>&1
if grep -q '^HTTP/1.1 502' "$W/r7" && grep -q '"reason": "dlp_response_unredactable"' "$W/r7" && ! leaked "$W/r7"; then
    ok "a body in a coding the sidecar cannot decode is refused (502 dlp_response_unredactable)"
else fail "echo zstd" "$(cat "$W/r7")"; fi

# 8-9: TRACE, and the codings asked for
before=$(grep -c '"method": "TRACE"' "$W/tls.log")
pcurl -i -X TRACE "https://api.test:$UP/x" >"$W/r8" 2>&1
if grep -q '^HTTP/1.1 405' "$W/r8" && grep -q '"reason": "trace_with_auth"' "$W/r8" &&
    [ "$(grep -c '"method": "TRACE"' "$W/tls.log")" = "$before" ] && ! leaked "$W/r8"; then
    ok "TRACE on a route with auth is refused (405 trace_with_auth) and never forwarded"
else fail "trace" "$(cat "$W/r8")"; fi
pcurl -o /dev/null -H 'Accept-Encoding: zstd, gzip' "https://api.test:$UP/echo?ae=1"
if grep '"/echo?ae=1"' "$W/tls.log" | grep -q '"Accept-Encoding", "gzip, deflate, br"'; then
    ok "on a route with auth only codings the sidecar decodes are asked of the upstream"
else fail "accept-encoding" "$(grep '"/echo?ae=1"' "$W/tls.log")"; fi

# 10-19: the canary in forms that got out before
post() { # name, body file, [content type]: 403 dlp_blocked and nothing reached the upstream
    n_before=$(wc -l <"$W/tls.log")
    code=$(pcurl -o "$W/p.out" -w '%{http_code}' -X POST -H "Content-Type: ${3:-text/plain}" \
        --data-binary "@$2" "https://other.test:$UP/upload?case=$(echo "$1" | tr -c 'a-z0-9\n' -)")
    if [ "$code" = 403 ] && grep -q '"reason": "dlp_blocked"' "$W/p.out" &&
        [ "$(wc -l <"$W/tls.log")" = "$n_before" ]; then
        ok "canary $1: refused (403 dlp_blocked), never forwarded"
    else fail "canary $1" "$code $(cat "$W/p.out")"; fi
}
printf 'export K=%s\n' "$(printf '%s' "$CANARY" | tr a-f A-F)" >"$W/c1"
post upper-cased "$W/c1"
printf 'x = "%s"\n' "$(printf '%s' "$CANARY" | rev)" >"$W/c2"
post reversed "$W/c2"
printf '%s' "$CANARY" | base32 >"$W/c3"
post base32 "$W/c3"
python3 -c 'import sys; print(":".join(sys.argv[1].encode().hex()[i:i+2] for i in range(0, 80, 2)))' "$CANARY" >"$W/c4"
post "hex with colons" "$W/c4"
python3 -c 'import sys; print(" ".join(sys.argv[1].encode().hex()[i:i+2] for i in range(0, 80, 2)).upper())' "$CANARY" >"$W/c5"
post "hex with spaces, upper-case" "$W/c5"
python3 -c 'import sys; print("-".join(sys.argv[1].encode().hex()[i:i+4] for i in range(0, 80, 4)))' "$CANARY" >"$W/c6"
post "hex with dashes" "$W/c6"
printf '%s' "$CANARY" | base64 | base64 >"$W/c7"
post "base64 of base64" "$W/c7"
printf 'debug dump\ncanary=%s\n' "$CANARY" | gzip -c >"$W/c8"
post "gzip without Content-Encoding" "$W/c8" application/octet-stream
printf '%s' "$CANARY" | tr a-f A-F | rev >"$W/c9"
post "upper-cased and reversed" "$W/c9"
printf '%s' "$CANARY" | base32 | tr A-Z a-z >"$W/c10"
post "base32, lower-cased" "$W/c10"

# 20-22: 10-character pieces over several requests
P1=$(printf '%s' "$CANARY" | cut -c1-10)
P2=$(printf '%s' "$CANARY" | cut -c11-20)
P3=$(printf '%s' "$CANARY" | cut -c21-30)
c1=$(pcurl -o /dev/null -w '%{http_code}' "https://other.test:$UP/echo?v=$P1")
c2=$(pcurl -o "$W/pc2" -w '%{http_code}' "https://other.test:$UP/echo?v=$P2")
if [ "$c1" = 200 ] && [ "$c2" = 403 ] && grep -q 'known_secret_pieces' "$W/pc2" && ! grep -q "$P2" "$W/tls.log"; then
    ok "canary in 10-character pieces: the first passes, the second request to the route is refused"
else fail "pieces" "$c1 $c2 $(cat "$W/pc2")"; fi
c3=$(pcurl -o /dev/null -w '%{http_code}' "https://api.test:$UP/echo?v=$P3")
if [ "$c3" = 200 ]; then ok "another route keeps its own window of pieces"
else fail "pieces other route" "$c3"; fi
c4=$(pcurl -o /dev/null -w '%{http_code}' "https://api.test:$UP/echo?v=ordinary-words-here")
if [ "$c4" = 200 ]; then ok "ordinary text after the pieces passes"; else fail "pieces after" "$c4"; fi

# 23: a private key split across two WebSocket messages
KEYBODY=$(head -c 300 /dev/urandom | base64 | tr -d '\n' | cut -c1-120)
out=$(python3 "$FIX/wsclient.py" "$PX" other.test "$UP" "$W/pca/ca.pem" two \
    '["-----BEGIN RSA PRIVATE KEY-----"' ", \"MIIE$KEYBODY\"]" 2>&1)
if echo "$out" | grep -q '^closed 1008 dlp_blocked: private_key found in ws:client' &&
    ! grep -q "$KEYBODY" "$W/tls.log"; then
    ok "WebSocket: a PEM header in one message and its key in the next closes it; the key never left"
else fail "ws pem split" "$out"; fi

# 24-25: nothing above leaked a value into the log
if ! grep -q "$TOKEN" "$W/proxy.log" && ! grep -q "$CANARY" "$W/proxy.log"; then
    ok "no token or canary in the sidecar's log"
else fail "log leak"; fi
if grep -q 'token echoed back' "$W/proxy.log"; then ok "each echo was logged (without its value)"
else fail "echo logged" "$(tail -5 "$W/proxy.log")"; fi
