#!/bin/sh
# bottle-proxy bench: one local HTTPS upstream and one load generator
# (bench/proxy_load.c), used directly and through bottle-proxy, squid with
# ssl-bump and mitmproxy (mitmdump), all in one run on 127.0.0.1. Prints one
# line per metric with the ratios to squid and mitmproxy, and what DLP and the
# response-side token redaction cost bottle-proxy itself; asserts nothing.
# An anchor that is not installed is reported and left out.
#
#   BENCH_SECONDS  seconds per throughput run (5)
#   BENCH_IDLE     idle keep-alive connections for the memory line (500)
#   BENCH_SSE      open event streams for the memory line (1000)
#   BENCH_PROXY    binary to measure (the build's bottle-proxy)
#   BENCH_ANCHORS  anchors to run ("squid mitmproxy"; empty: none)
set -u
ROOT=${BOTTLE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
SECS=${BENCH_SECONDS:-5}
IDLE_N=${BENCH_IDLE:-500}
SSE_N=${BENCH_SSE:-1000}
P=${BENCH_PROXY:-$BUILD/bottle-proxy}
ANCHORS=${BENCH_ANCHORS-squid mitmproxy}
SQUID=/usr/sbin/squid
CERTGEN=$(ls /usr/lib/squid/security_file_certgen /usr/lib/squid*/security_file_certgen 2>/dev/null | head -n1)
MITM=$(command -v mitmdump || true)
W=$(mktemp -d /tmp/bottle-bench.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# 1000 streams need about 2000 descriptors in each process (dash and bash have ulimit -n)
# shellcheck disable=SC3045
ulimit -n 20000 2>/dev/null || ulimit -n 4096 2>/dev/null
# shellcheck disable=SC2046
cc -O2 -o "$W/load" "$ROOT/bench/proxy_load.c" $(pkg-config --cflags --libs openssl) -lpthread || exit 1
L=$W/load

# ---- PKI: the upstream's CA and leaf (for localhost), and each proxy's own CA
"$P" --mint-ca "$W/pca" && "$P" --mint-ca "$W/uca" && "$P" --mint-ca "$W/sqca" || exit 1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=localhost -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$W/ext"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca/ca.pem" -CAkey "$W/uca/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext" -out "$W/up.pem" 2>/dev/null
cat "$W/up.pem" "$W/uca/ca.pem" >"$W/chain.pem"
H=localhost

# ---- the upstream
"$L" serve "$W/chain.pem" "$W/up-key.pem" "$W/up.port" &
PIDS="$PIDS $!"
i=0
while [ ! -s "$W/up.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP=$(cat "$W/up.port")

# ---- the proxies: NAME PORT CAFILE PID per line in $W/proxies
: >"$W/proxies"
# start_bottle NAME ROUTE_JSON: a bottle-proxy for the upstream; its port in $W/NAME.port
start_bottle() {
    cat >"$W/$1.json" <<JSON
{"listen": "127.0.0.1:0", "log": "off",
 "tls": {"ca_cert": "$W/pca/ca.pem", "ca_key": "$W/pca/ca-key.pem", "leaf_key": "$W/pca/leaf-key.pem",
         "extra_ca": "$W/uca/ca.pem"},
 "resolve": ["$H:$UP:127.0.0.1"], "routes": [$2]}
JSON
    "$P" --config "$W/$1.json" --port-file "$W/$1.port" --token-fd 3 3<"$W/tokens" 2>"$W/$1.log" &
    BPID=$!
    PIDS="$PIDS $BPID"
    i=0
    while [ ! -s "$W/$1.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}
printf 'BENCH_TOKEN=bench-token-%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$W/tokens"
start_bottle bottle '{"host": "'$H:$UP'"}'
echo "bottle $(cut -d' ' -f1 "$W/bottle.port") $W/pca/ca.pem $BPID" >>"$W/proxies"
# The same route with every DLP detector off: what DLP adds (not an anchor)
start_bottle nodlp '{"host": "'$H:$UP'", "dlp": {"outbound_detectors": false, "inbound_detectors": false}}'
NODLP=$(cut -d' ' -f1 "$W/nodlp.port")
# The same route with a token to inject: every response passes the echo redaction (not an anchor)
start_bottle auth '{"host": "'$H:$UP'", "auth": {"scheme": "Bearer", "token_ref": "BENCH_TOKEN"}}'
AUTH=$(cut -d' ' -f1 "$W/auth.port")

start_squid() {
    if [ ! -x "$SQUID" ] || [ -z "$CERTGEN" ]; then
        echo "anchor squid: not installed (squid-openssl), left out"
        return
    fi
    SQ=$("$L" freeport)
    mkdir -p "$W/sq"
    "$CERTGEN" -c -s "$W/sq/ssl_db" -M 16MB >/dev/null 2>&1
    cat >"$W/sq/squid.conf" <<CONF
http_port 127.0.0.1:$SQ ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=$W/sqca/ca.pem tls-key=$W/sqca/ca-key.pem
sslcrtd_program $CERTGEN -s $W/sq/ssl_db -M 16MB
sslcrtd_children 4 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$W/uca/ca.pem
http_access allow all
cache deny all
cache_mem 8 MB
workers 1
pid_filename $W/sq/squid.pid
access_log none
cache_store_log none
cache_log $W/sq/cache.log
coredump_dir $W/sq
netdb_filename none
logfile_rotate 0
max_filedescriptors 16384
shutdown_lifetime 1 seconds
cache_effective_user proxy
CONF
    # squid drops to the proxy user: it needs to reach its files and the upstream CA
    if [ "$(id -u)" -eq 0 ]; then
        chmod 711 "$W" "$W/uca"
        chmod 644 "$W/uca/ca.pem"
        chown -R proxy "$W/sq" "$W/sqca" 2>/dev/null
    fi
    "$SQUID" -N -f "$W/sq/squid.conf" >"$W/sq/stdout" 2>&1 &
    SQPID=$!
    PIDS="$PIDS $SQPID"
    if "$L" wait "$SQ" 10; then
        echo "squid $SQ $W/sqca/ca.pem $SQPID" >>"$W/proxies"
    else
        echo "anchor squid: did not start ($(tail -n 2 "$W/sq/cache.log" 2>/dev/null | tr '\n' ' '))"
    fi
}

start_mitmproxy() {
    if [ -z "$MITM" ]; then
        echo "anchor mitmproxy: not installed (mitmproxy), left out"
        return
    fi
    MP=$("$L" freeport)
    mkdir -p "$W/mitm"
    # stream_large_bodies=1: bodies are streamed, not buffered (event streams need it)
    "$MITM" --mode regular --listen-host 127.0.0.1 --listen-port "$MP" -q \
        --set confdir="$W/mitm" --set ssl_verify_upstream_trusted_ca="$W/uca/ca.pem" \
        --set stream_large_bodies=1 >"$W/mitm.log" 2>&1 &
    MPID=$!
    PIDS="$PIDS $MPID"
    if "$L" wait "$MP" 20 && [ -s "$W/mitm/mitmproxy-ca-cert.pem" ]; then
        echo "mitmproxy $MP $W/mitm/mitmproxy-ca-cert.pem $MPID" >>"$W/proxies"
    else
        echo "anchor mitmproxy: did not start ($(tail -n 2 "$W/mitm.log" | tr '\n' ' '))"
    fi
}

for a in $ANCHORS; do
    case $a in
    squid) start_squid ;;
    mitmproxy) start_mitmproxy ;;
    esac
done

# ---- measuring
# load PORT CAFILE CLIENTS SIZE MODE -> "req/s p50_ms p99_ms errors"
load() { "$L" load "$H" "$UP" "$1" "$2" "$3" "$SECS" "$4" "$5"; }
ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2f\", $1/$2; else printf \"-\" }"; }
value() { # NAME FILE: the value stored for NAME
    awk -v n="$1" '$1 == n {print $2}' "$2"
}

# throughput LABEL CLIENTS SIZE MODE: one line, direct and every proxy
throughput() {
    label=$1
    : >"$W/r"
    d=$(load 0 "$W/uca/ca.pem" "$2" "$3" "$4")
    out="direct $(echo "$d" | cut -d' ' -f1)"
    while read -r name port ca pid; do
        r=$(load "$port" "$ca" "$2" "$3" "$4")
        echo "$name $(echo "$r" | cut -d' ' -f1)" >>"$W/r"
        e=$(echo "$r" | cut -d' ' -f4)
        out="$out | $name $(echo "$r" | cut -d' ' -f1)"
        [ "${e:-0}" != 0 ] && out="$out ($e errors)"
    done <"$W/proxies"
    b=$(value bottle "$W/r")
    printf '%-40s req/s: %s | bottle/direct %s' "$label" "$out" "$(ratio "$b" "$(echo "$d" | cut -d' ' -f1)")"
    [ -n "$(value squid "$W/r")" ] && printf ' | bottle/squid %s' "$(ratio "$b" "$(value squid "$W/r")")"
    [ -n "$(value mitmproxy "$W/r")" ] && printf ' | bottle/mitmproxy %s' "$(ratio "$b" "$(value mitmproxy "$W/r")")"
    echo
}

# latency: one client, keep-alive, 1 KiB; p50 and p99 added to the direct ones
latency() {
    d=$(load 0 "$W/uca/ca.pem" 1 1024 keepalive)
    dp50=$(echo "$d" | cut -d' ' -f2)
    dp99=$(echo "$d" | cut -d' ' -f3)
    out="direct p50 $dp50 ms p99 $dp99 ms"
    while read -r name port ca pid; do
        r=$(load "$port" "$ca" 1 1024 keepalive)
        out="$out | $name +$(awk "BEGIN{printf \"%.3f\", $(echo "$r" | cut -d' ' -f2) - $dp50}") / +$(awk "BEGIN{printf \"%.3f\", $(echo "$r" | cut -d' ' -f3) - $dp99}")"
    done <"$W/proxies"
    printf '%-40s %s (added p50 / p99 ms)\n' "latency added, 1 client, keep-alive" "$out"
}

# dlp_cost SIZE: keep-alive POSTs of a SIZE-byte JSON body, 1 client then 8, through bottle
# with its default DLP (outbound on the request, injection scan of the response) and with
# every detector off; what DLP adds to p50/p99 and takes from requests/s
dlp_cost() {
    on=$(load "$(value bottle "$W/ports")" "$W/pca/ca.pem" 1 "$1" post)
    off=$(load "$NODLP" "$W/pca/ca.pem" 1 "$1" post)
    on8=$(load "$(value bottle "$W/ports")" "$W/pca/ca.pem" 8 "$1" post)
    off8=$(load "$NODLP" "$W/pca/ca.pem" 8 "$1" post)
    f() { echo "$1" | cut -d' ' -f"$2"; }
    printf '%-40s DLP off p50 %s p99 %s ms | DLP on p50 %s p99 %s ms | added p50 +%s p99 +%s ms | 8 clients req/s off %s on %s (%s)\n' \
        "POST $(($1 / 1024)) KiB JSON, DLP on vs off" "$(f "$off" 2)" "$(f "$off" 3)" "$(f "$on" 2)" "$(f "$on" 3)" \
        "$(awk "BEGIN{printf \"%.3f\", $(f "$on" 2) - $(f "$off" 2)}")" \
        "$(awk "BEGIN{printf \"%.3f\", $(f "$on" 3) - $(f "$off" 3)}")" \
        "$(f "$off8" 1)" "$(f "$on8" 1)" "$(ratio "$(f "$on8" 1)" "$(f "$off8" 1)")"
}

# echo_cost SIZE: keep-alive GETs of SIZE-byte bodies, 8 clients, through bottle on a route
# with a token (each response is filtered for the token: docs/dlp.md) and on the same route
# without one; the ratio is what the response-side redaction leaves of the rate
echo_cost() {
    with=$(load "$AUTH" "$W/pca/ca.pem" 8 "$1" keepalive)
    without=$(load "$(value bottle "$W/ports")" "$W/pca/ca.pem" 8 "$1" keepalive)
    w=$(echo "$with" | cut -d' ' -f1)
    wo=$(echo "$without" | cut -d' ' -f1)
    printf '%-40s req/s without a token %s (%s MB/s) | with one %s (%s MB/s) | ratio %s\n' \
        "GET $(($1 / 1024)) KiB, token echo redaction" "$wo" \
        "$(awk "BEGIN{printf \"%.0f\", $wo * $1 / 1e6}")" "$w" \
        "$(awk "BEGIN{printf \"%.0f\", $w * $1 / 1e6}")" "$(ratio "$w" "$wo")"
}

# memory MODE N: idle connections (bytes each) or open streams (total MiB)
memory() {
    out=""
    : >"$W/r"
    while read -r name port ca pid; do
        r=$("$L" "$1" "$H" "$UP" "$port" "$ca" "$2" "$pid")
        if [ "$1" = idle ]; then
            v=$(echo "$r" | awk '{printf "%.1f", $3 / 1024}')
            out="$out | $name $v KiB/conn ($(echo "$r" | cut -d' ' -f4) open)"
        else
            v=$(echo "$r" | awk '{printf "%.1f", $2 / 1024}')
            out="$out | $name $v MiB RSS (+$(echo "$r" | awk '{printf "%.1f", ($2 - $1) / 1024}'), $(echo "$r" | cut -d' ' -f3) open)"
        fi
        echo "$name $v" >>"$W/r"
        sleep 1 # let closed connections go before the next proxy is measured
    done <"$W/proxies"
    if [ "$1" = idle ]; then
        printf '%-40s %s\n' "RSS per idle keep-alive TLS connection" "${out# | }"
    else
        printf '%-40s %s\n' "RSS with $2 open SSE streams" "${out# | }"
    fi
}

echo "bottle-proxy bench: ${SECS}s per run, upstream https://$H:$UP, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "proxies: $(cut -d' ' -f1 "$W/proxies" | tr '\n' ' ')"
throughput "keep-alive, 8 clients, 1 KiB" 8 1024 keepalive
throughput "keep-alive, 8 clients, 64 KiB" 8 65536 keepalive
throughput "new TLS connection per request, 8" 8 1024 newconn
latency
awk '{print $1, $2}' "$W/proxies" >"$W/ports"
dlp_cost 16384
dlp_cost 262144
echo_cost 65536
echo_cost 1048576
memory idle "$IDLE_N"
memory sse "$SSE_N"
