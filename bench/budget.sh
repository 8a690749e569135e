#!/bin/sh
# Budget bench: the ledger's reservations per second and settle latency on
# SQLite and on PostgreSQL (a throwaway server, tests/fixtures/pg.sh) with 8
# and 64 writer processes on one shared budget, printed side by side as
# ratios; overshoot of
# a budget under 64 and 256 concurrent streaming requests through the sidecar
# (charged tokens beyond the budget; gateways that check after the fact
# overshoot by up to the whole burst); and, as root, the time from the response
# that exhausts a bottle's budget to the bottle's next connect failing.
# Prints numbers; asserts nothing. Everything talks to 127.0.0.1 or inside the
# bottle's own network namespace.
set -u
ROOT=${BOTTLE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
W=$(mktemp -d /tmp/bottle-bench-budget.XXXXXX)
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; [ -n "${PG_DIR:-}" ] && pg_destroy "$PG_DIR"; rm -rf "$W"' EXIT
P="$BUILD/bottle-proxy"
cd "$ROOT" || exit 1
make --no-print-directory BUILD="$BUILD" "$BUILD/libbottle.a" >/dev/null || exit 1
PKGS="yaml-0.1 libcjson libidn2 openssl libseccomp sqlite3 libpq libbpf libnl-3.0 libnl-route-3.0 zlib libbrotlidec libbrotlienc ncursesw"
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -I. -I"$BUILD" $(pkg-config --cflags $PKGS) -o "$W/ledger_bench" \
    bench/ledger_bench.c "$BUILD/libbottle.a" $(pkg-config --libs $PKGS) -lpthread || exit 1
# ---- the ledger: SQLite and PostgreSQL, 8 and 64 writers ------------------------------
: >"$W/results"
for writers in 8 64; do
    pairs=$((4000 / writers))
    rm -f "$W/bench.db" "$W/bench.db-wal" "$W/bench.db-shm"
    "$W/ledger_bench" "$W/bench.db" $writers $pairs | tee -a "$W/results" | grep -v '^RESULT'
done
. "$ROOT/tests/fixtures/pg.sh"
PG_DIR=""
if pg_start; then
    for writers in 8 64; do
        pairs=$((4000 / writers))
        pg_psql "$PG_DIR" postgres "DROP DATABASE IF EXISTS bench" 2>/dev/null
        pg_psql "$PG_DIR" postgres "CREATE DATABASE bench"
        "$W/ledger_bench" "$(pg_url "$PG_DIR" bench)" $writers $pairs | tee -a "$W/results" |
            grep -v '^RESULT'
    done
    pg_destroy "$PG_DIR"
    # Ratios PostgreSQL / SQLite, same machine, same run.
    awk '$1 == "RESULT" { r[$2 "/" $3] = $4; p[$2 "/" $3] = $5 }
         END { for (w = 8; w <= 64; w *= 8) {
                 s = "sqlite/" w; g = "postgresql/" w
                 if ((s in r) && (g in r) && r[s] > 0 && p[s] > 0)
                     printf "ledger, %d writers: PostgreSQL/SQLite reservations/s %.2fx, settle p50 latency %.2fx\n", w, r[g] / r[s], p[g] / p[s] } }' "$W/results"
else
    echo "ledger on PostgreSQL: no server could be started (install postgresql), not measured"
fi

# ---- overshoot through the sidecar -------------------------------------------------------
"$P" --mint-ca "$W/pca" >/dev/null && "$P" --mint-ca "$W/uca" >/dev/null || exit 1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=llm.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:llm.test\n' >"$W/ext"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca/ca.pem" -CAkey "$W/uca/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/ext" -out "$W/up.pem" 2>/dev/null
python3 tests/fixtures/fake_llm.py --host 127.0.0.1 --port 0 --port-file "$W/llm.port" \
    --log /dev/null --cert "$W/up.pem" --key "$W/up-key.pem" --input-tokens 10 --output-tokens 90 \
    --cache-creation-input-tokens 0 --cache-read-input-tokens 0 --delay-ms 20 &
PIDS="$PIDS $!"
i=0
while [ ! -s "$W/llm.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP=$(cat "$W/llm.port")

overshoot() { # CONCURRENCY BUDGET
    rm -f "$W/ledger.db" "$W/ledger.db-wal" "$W/ledger.db-shm" "$W/px.port"
    cat >"$W/cfg.json" <<JSON
{"listen": "127.0.0.1:0", "log": "off", "bottle": "bench", "agent": "bench", "ledger": "$W/ledger.db",
 "budgets": [{"provider": "claude", "tokens": $2, "scope": "run"}],
 "tls": {"ca_cert": "$W/pca/ca.pem", "ca_key": "$W/pca/ca-key.pem", "leaf_key": "$W/pca/leaf-key.pem",
         "extra_ca": "$W/uca/ca.pem"},
 "resolve": ["llm.test:$UP:127.0.0.1"], "routes": [{"host": "llm.test:$UP", "metered": "claude"}]}
JSON
    "$P" --config "$W/cfg.json" --port-file "$W/px.port" 2>/dev/null &
    px=$!
    i=0
    while [ ! -s "$W/px.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    PX=$(cut -d' ' -f1 "$W/px.port")
    python3 - "$PX" "$UP" "$1" "$W/pca/ca.pem" <<'PY' >"$W/codes"
import concurrent.futures, json, ssl, sys, urllib.request
px, up, n, ca = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"https": f"http://127.0.0.1:{px}"}),
                                     urllib.request.HTTPSHandler(context=ctx))
body = json.dumps({"model": "m", "max_tokens": 100, "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
def one(_):
    req = urllib.request.Request(f"https://llm.test:{up}/v1/messages", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with opener.open(req, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return 0
with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
    for code in ex.map(one, range(n)):
        print(code)
PY
    kill "$px" 2>/dev/null
    wait "$px" 2>/dev/null
    ok=$(grep -c '^200$' "$W/codes")
    refused=$(grep -c '^429$' "$W/codes")
    charged=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT coalesce(sum(charged_tokens),0) FROM usage").fetchone()[0])' "$W/ledger.db")
    over=$((charged > $2 ? charged - $2 : 0))
    printf 'overshoot, %3d concurrent streams, budget %5d tokens: %3d admitted, %3d refused (429), %5d charged, overshoot %d tokens (%d%%)\n' \
        "$1" "$2" "$ok" "$refused" "$charged" "$over" $((over * 100 / $2))
}
overshoot 64 3000
overshoot 256 10000

# ---- exhaustion to cutoff (root: a real bottle) -----------------------------------------
if [ "$(id -u)" -ne 0 ]; then
    echo "exhaustion to cutoff: needs root, not measured"
    exit 0
fi
export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
export BENCH_TOKEN=bench-token
{
    echo "---"
    echo "agent_provider:"
    echo "  template: generic"
    echo "  command: [python3, $WS/agent.py]"
    echo "shutdown: cutoff"
    echo "budget:"
    echo "  claude: 50"
    echo "egress:"
    echo "  routes:"
    echo "    - host: llm.test:$UP"
    echo "      metered: claude"
    echo "      auth:"
    echo "        scheme: Bearer"
    echo "        token_ref: BENCH_TOKEN"
    echo "---"
    echo "bench"
} >"$BOTTLE_HOME/bottles/bb.md"
printf -- '---\nbottle: bb\n---\nbench\n' >"$BOTTLE_HOME/agents/bb.md"
cat >"$WS/agent.py" <<PY
import errno, json, os, socket, ssl, time, urllib.request
proxy = os.environ["HTTPS_PROXY"]
host, port = proxy.split("//")[1].split(":")
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
op = urllib.request.build_opener(urllib.request.ProxyHandler({"https": proxy}),
                                 urllib.request.HTTPSHandler(context=ctx))
body = json.dumps({"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "x"}]}).encode()
req = urllib.request.Request("https://llm.test:$UP/v1/messages", data=body,
                             headers={"Content-Type": "application/json"})
op.open(req, timeout=30).read()
t0 = time.monotonic()
while time.monotonic() - t0 < 5:
    s = socket.socket()
    try:
        s.connect((host, int(port)))
    except OSError as e:
        if e.errno == errno.EPERM:
            print("exhaustion to cutoff: %.2f ms from the exhausting response's end to the bottle's first refused connect" % ((time.monotonic() - t0) * 1000))
            break
    finally:
        s.close()
    time.sleep(0.0002)
else:
    print("exhaustion to cutoff: no refusal within 5 s")
PY
(cd "$WS" && "$BUILD/bottle" start bb --resolve "llm.test:$UP:127.0.0.1" \
    --upstream-ca "$W/uca/ca.pem" --cwd "$WS" 2>"$W/start.err") | grep 'exhaustion to cutoff' ||
    echo "exhaustion to cutoff: not measured ($(tail -1 "$W/start.err"))"
