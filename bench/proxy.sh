#!/bin/sh
# bottle-proxy bench: the same local HTTPS upstream and load generator, direct
# and through the sidecar, in one run. Prints numbers and ratios; asserts nothing.
# squid ssl-bump and mitmproxy anchors run when those programs are installed.
set -u
ROOT=${BOTTLE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
SECS=${BENCH_SECONDS:-5}
W=$(mktemp -d /tmp/bottle-bench.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; rm -rf "$W"' EXIT
# shellcheck disable=SC2046
cc -O2 -o "$W/load" "$ROOT/bench/proxy_load.c" $(pkg-config --cflags --libs openssl) -lpthread || exit 1
P="$BUILD/bottle-proxy"
"$P" --mint-ca "$W/pca" && "$P" --mint-ca "$W/uca" || exit 1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=api.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test\n' >"$W/ext"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca/ca.pem" -CAkey "$W/uca/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext" -out "$W/up.pem" 2>/dev/null
cat "$W/up.pem" "$W/uca/ca.pem" >"$W/chain.pem"
"$W/load" serve "$W/chain.pem" "$W/up-key.pem" "$W/up.port" &
PIDS="$PIDS $!"
sleep 0.3
UP=$(cat "$W/up.port")
cat >"$W/cfg.json" <<JSON
{"listen": "127.0.0.1:0", "log": "off",
 "tls": {"ca_cert": "$W/pca/ca.pem", "ca_key": "$W/pca/ca-key.pem", "leaf_key": "$W/pca/leaf-key.pem",
         "extra_ca": "$W/uca/ca.pem"},
 "resolve": ["api.test:$UP:127.0.0.1"], "routes": [{"host": "api.test:$UP"}]}
JSON
"$P" --config "$W/cfg.json" --port-file "$W/px.port" &
PIDS="$PIDS $!"
sleep 0.3
PX=$(cut -d' ' -f1 "$W/px.port")

run() { "$W/load" load api.test "$UP" "$1" "$2" "$3" "$SECS" "$4" "$5"; }
line() { # label direct proxied
    set -- "$1" $2 $3
    printf '%-34s direct %8s req/s p50 %6s ms p99 %6s ms | proxy %8s req/s p50 %6s ms p99 %6s ms | ratio %s, p99 added %s ms\n' \
        "$1" "$2" "$3" "$4" "$6" "$7" "$8" \
        "$(awk "BEGIN{printf \"%.2f\", $6/($2?$2:1)}")" "$(awk "BEGIN{printf \"%.3f\", $8-$4}")"
}
line "keep-alive, 8 clients, 1 KiB" "$(run 0 "$W/uca/ca.pem" 8 1024 keepalive)" "$(run "$PX" "$W/pca/ca.pem" 8 1024 keepalive)"
line "keep-alive, 8 clients, 64 KiB" "$(run 0 "$W/uca/ca.pem" 8 65536 keepalive)" "$(run "$PX" "$W/pca/ca.pem" 8 65536 keepalive)"
line "new TLS connection per request, 8" "$(run 0 "$W/uca/ca.pem" 8 1024 newconn)" "$(run "$PX" "$W/pca/ca.pem" 8 1024 newconn)"
line "latency, 1 client, keep-alive" "$(run 0 "$W/uca/ca.pem" 1 1024 keepalive)" "$(run "$PX" "$W/pca/ca.pem" 1 1024 keepalive)"
for anchor in squid mitmdump; do
    command -v $anchor >/dev/null || echo "anchor $anchor: not installed (squid-openssl / mitmproxy), skipped"
done
