#!/bin/sh
# The ledger on PostgreSQL, shared by two "hosts": two bottle-proxy sidecars,
# each with its own BOTTLE_HOME and host name, metering against one database
# on a server this suite starts (tests/fixtures/pg.sh) and one budget pool.
# 256 concurrent metered requests across both never overshoot the pool; a
# killed sidecar's open reservation is resolved by the expiry rule; with the
# database stopped mid-run metered requests are refused with
# ledger_unavailable while unmetered ones pass, and after the restart the
# settlement the sidecar kept is written once, with no double charge.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"
. "$BOTTLE_SRC/tests/fixtures/pg.sh"

N=12
plan $N
for tool in curl openssl python3 psql; do
    if ! command -v $tool >/dev/null; then
        for i in $(seq $N); do skip "ledger_pg $i" "" "$tool missing"; done
        exit 0
    fi
done
if ! pg_bindir >/dev/null; then
    # Under CI the server must be there (scripts/setup installs postgresql).
    for i in $(seq $N); do skip "ledger_pg $i" kernel "no PostgreSQL server installed"; done
    exit 0
fi
CLIENT=$BUILD/tests/helpers/ledger_client
[ -x "$CLIENT" ] || make --no-print-directory -C "$BOTTLE_SRC" BUILD="$BUILD" "$CLIENT" >/dev/null

PG_DIR=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null; done; for p in $PIDS; do wait "$p" 2>/dev/null; done; [ -n "$PG_DIR" ] && pg_destroy "$PG_DIR"; rm -rf "$T_TMP"' EXIT
pg_start || { fail "PostgreSQL server"; exit 1; }
pg_psql "$PG_DIR" postgres "CREATE DATABASE ledger" || { fail "database"; exit 1; }
URL=$(pg_url "$PG_DIR" ledger)
q() { pg_psql "$PG_DIR" ledger "$1"; }

make_pki || { fail "test PKI"; exit 1; }
python3 "$FIX/fake_llm.py" --host 127.0.0.1 --port 0 --port-file "$W/llm.port" --log /dev/null \
    --cert "$W/up.pem" --key "$W/up-key.pem" --input-tokens 10 --output-tokens 90 \
    --cache-creation-input-tokens 0 --cache-read-input-tokens 0 &
PIDS="$PIDS $!"
wait_file "$W/llm.port" || { fail "fake LLM"; exit 1; }
UP=$(cat "$W/llm.port")
PLAIN=1
POOL=6000

# start_host NAME: a sidecar for bottle NAME-1 on "host" NAME, its own BOTTLE_HOME.
start_host() {
    mkdir -p "$W/home-$1"
    ROUTES='[{"host": "api.test:'$UP'", "metered": "claude"}, {"host": "other.test:'$UP'"}]'
    write_config "$W/cfg-$1.json" "$ROUTES" ', "bottle": "'$1'-1", "agent": "agent-'$1'", "ledger": "'$URL'",
      "budgets": [{"provider": "claude", "tokens": 1000000000, "scope": "run", "source": "test"}]'
    sed -i 's/"bottle": "test",//' "$W/cfg-$1.json"
    rm -f "$W/px-$1.port"
    BOTTLE_HOME="$W/home-$1" BOTTLE_HOST="$1" "$BOTTLE_PROXY" --config "$W/cfg-$1.json" \
        --port-file "$W/px-$1.port" 2>>"$W/proxy-$1.log" &
    eval "PID_$1=$!"
    PIDS="$PIDS $!"
    wait_file "$W/px-$1.port" || return 1
    eval "PX_$1=$(cut -d' ' -f1 "$W/px-$1.port")"
}
via() { # HOST URL-PATH-HOST ARGS...: one request through that host's sidecar
    eval "px=\$PX_$1"
    shift
    curl -sS --max-time 20 --proxy "http://127.0.0.1:$px" --cacert "$W/pca/ca.pem" "$@"
}
SREQ='{"model": "m", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
msg() { # HOST FAKE_OPTS [CURL ARGS]
    h=$1
    o=$2
    shift 2
    via "$h" -H "X-Fake-LLM: $o" -H "Content-Type: application/json" --data "$SREQ" "$@" \
        "https://api.test:$UP/v1/messages"
}

# 1: both hosts' bottles registered in one pool, as their controllers do at start
if BOTTLE_HOST=a "$CLIENT" "$URL" register a-1 agent-a team &&
    BOTTLE_HOST=b "$CLIENT" "$URL" register b-1 agent-b team &&
    "$CLIENT" "$URL" pool team claude $POOL &&
    start_host a && start_host b; then
    ok "two sidecars (hosts a and b, separate BOTTLE_HOMEs) share one PostgreSQL ledger and pool"
else
    fail "set-up" "$(cat "$W"/proxy-*.log 2>/dev/null | tail -5)"
    exit 1
fi

# 2: 256 concurrent metered requests across both never overshoot the pool
python3 - "$PX_a" "$PX_b" "$UP" "$W/pca/ca.pem" <<'PY' >"$W/codes"
import concurrent.futures, json, ssl, sys, urllib.error, urllib.request
pa, pb, up, ca = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
openers = [urllib.request.build_opener(urllib.request.ProxyHandler({"https": f"http://127.0.0.1:{p}"}),
                                       urllib.request.HTTPSHandler(context=ctx)) for p in (pa, pb)]
body = json.dumps({"model": "m", "max_tokens": 100, "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
def one(i):
    req = urllib.request.Request(f"https://api.test:{up}/v1/messages", data=body,
                                 headers={"Content-Type": "application/json",
                                          "X-Fake-LLM": "delay_ms=20"})
    try:
        with openers[i % 2].open(req, timeout=120) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return 0
with concurrent.futures.ThreadPoolExecutor(max_workers=256) as ex:
    for code in ex.map(one, range(256)):
        print(code)
PY
admitted=$(grep -c '^200$' "$W/codes")
refused=$(grep -c '^429$' "$W/codes")
charged=$(q "SELECT COALESCE(SUM(charged_tokens),0) FROM usage WHERE pool='team'")
hosts=$(q "SELECT COUNT(DISTINCT host) FROM usage WHERE pool='team'")
open=$(q "SELECT COUNT(*) FROM reservation WHERE state='open'")
if [ $((admitted + refused)) -eq 256 ] && [ "$refused" -gt 0 ] && [ "$charged" -le $POOL ] &&
    [ "$hosts" = 2 ] && [ "$open" = 0 ]; then
    ok "256 concurrent requests on two hosts, pool $POOL: $admitted admitted, $charged tokens charged (never over), $refused refused with 429"
else
    fail "pool overshoot" "admitted=$admitted refused=$refused charged=$charged hosts=$hosts open=$open" \
        "codes: $(sort "$W/codes" | uniq -c | tr '\n' ' ')" "$(tail -3 "$W/proxy-a.log")"
fi

# 3: the refusal names the pool (what test 2 left of the pool depends on how many of its
# requests were admitted: spend it until the refusal, at most 50 requests)
i=0
while :; do
    body=$(msg a "" 2>&1)
    i=$((i + 1))
    if echo "$body" | grep -q budget_exhausted || [ $i -ge 50 ]; then break; fi
done
if echo "$body" | grep -q budget_exhausted && echo "$body" | grep -q "pool"; then
    ok "an exhausted pool refuses with budget_exhausted and says it is the pool's"
else fail "pool refusal" "$body"; fi

# 4-5: host b's sidecar killed mid-stream: the reservation stays open, then the rule charges it
"$CLIENT" "$URL" pool team claude 1000000 >/dev/null
before=$("$CLIENT" "$URL" spent pool team claude)
(msg b "delay_ms=300&message_deltas=20" >/dev/null 2>&1 &)
i=0
while [ "$(q "SELECT COUNT(*) FROM reservation WHERE state='open' AND host='b'")" != 1 ] && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
eval "kill -9 \$PID_b"
sleep 0.3
res=$(q "SELECT id || '|' || tokens FROM reservation WHERE state='open' AND host='b'")
rid=${res%|*}
tokens=${res#*|}
mid=$("$CLIENT" "$URL" spent pool team claude)
if [ -n "$rid" ] && [ "$mid" -eq $((before + tokens)) ]; then
    ok "sidecar b killed mid-stream: its reservation ($tokens tokens) stays open and counts against the pool"
else fail "killed sidecar" "res=$res before=$before mid=$mid"; fi
# The timeout passes (the reservation is made older than LEDGER_RESERVATION_TIMEOUT_S).
q "UPDATE reservation SET created_at = created_at - 1000 WHERE id = $rid" >/dev/null
n=$("$CLIENT" "$URL" expire)
row=$(q "SELECT r.state || '|' || u.charged_tokens || '|' || u.expired || '|' || u.complete FROM reservation r JOIN usage u ON u.reservation_id = r.id WHERE r.id = $rid")
after=$("$CLIENT" "$URL" spent pool team claude)
if [ "$n" = 1 ] && [ "$row" = "settled|$tokens|1|0" ] && [ "$after" = "$mid" ]; then
    ok "after the timeout the rule charges it at its size (expired, incomplete); the pool's spending is unchanged"
else fail "expiry rule" "n=$n row=$row mid=$mid after=$after"; fi

# 6-9: the database stopped mid-run (after the reports below read it while it was up)
printf 'ledger: %s\n' "$URL" >"$W/home-a/settings.yml"
BOTTLE_HOME="$W/home-a" "$BOTTLE" metrics >"$W/metrics.txt" 2>"$W/metrics.err"
mrc=$?
BOTTLE_HOME="$W/home-a" "$BOTTLE" doctor --format json >"$W/doctor.json" 2>/dev/null

(msg a "delay_ms=150&message_deltas=12" >"$W/inflight.out" 2>&1; echo done >"$W/inflight.done") &
i=0
while [ "$(q "SELECT COUNT(*) FROM reservation WHERE state='open' AND host='a'")" != 1 ] && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
inflight=$(q "SELECT id FROM reservation WHERE state='open' AND host='a'")
pg_stop "$PG_DIR"
code=$(msg a "" -o "$W/down.out" -w '%{http_code}')
ucode=$(via a -o /dev/null -w '%{http_code}' "https://other.test:$UP/v1/models")
if [ "$code" = 503 ] && grep -q ledger_unavailable "$W/down.out" && [ "$ucode" = 200 ]; then
    ok "database stopped: a metered request is refused (503 ledger_unavailable), an unmetered one passes"
else fail "database away" "metered $code: $(cat "$W/down.out")" "unmetered $ucode"; fi
wait_file "$W/inflight.done"
if grep -q message_stop "$W/inflight.out"; then
    ok "the stream admitted before the database stopped finishes"
else fail "in-flight stream" "$(tail -3 "$W/inflight.out")"; fi
pg_resume "$PG_DIR"
code=000
i=0
while [ "$code" != 200 ] && [ $i -lt 40 ]; do
    code=$(msg a "" -o /dev/null -w '%{http_code}')
    [ "$code" = 200 ] || sleep 0.5
    i=$((i + 1))
done
if [ "$code" = 200 ]; then
    ok "database back: metered requests pass again (reconnected with backoff)"
else fail "recovery" "last code $code" "$(tail -5 "$W/proxy-a.log")"; fi
rows=$(q "SELECT COUNT(*) || '|' || COALESCE(SUM(charged_tokens),0) FROM usage WHERE reservation_id = $inflight")
state=$(q "SELECT state FROM reservation WHERE id = $inflight")
dups=$(q "SELECT COUNT(*) FROM (SELECT reservation_id FROM usage WHERE reservation_id IS NOT NULL GROUP BY reservation_id HAVING COUNT(*) > 1) d")
if [ "$rows" = "1|100" ] && [ "$state" = settled ] && [ "$dups" = 0 ]; then
    ok "the settlement kept while the database was away is written once (100 tokens); no reservation is charged twice"
else fail "kept settlement" "rows=$rows state=$state dups=$dups" "$(tail -5 "$W/proxy-a.log")"; fi

# 10-11: the reports read the shared ledger: metrics by host and pool, doctor's ledger check
if [ $mrc -eq 0 ] && grep -q '^bottle_ledger_up 1$' "$W/metrics.txt" &&
    grep -q '^bottle_host_tokens_charged_total{host="a",provider="claude"} [1-9]' "$W/metrics.txt" &&
    grep -q '^bottle_host_tokens_charged_total{host="b",provider="claude"} [1-9]' "$W/metrics.txt" &&
    grep -q '^bottle_pool_limit_tokens{pool="team",provider="claude",period="total"} 1000000$' "$W/metrics.txt"; then
    ok "bottle metrics (Prometheus text): tokens by host a and b, the pool's limit, ledger up"
else fail "metrics" "rc=$mrc $(cat "$W/metrics.err")" "$(grep -v '^#' "$W/metrics.txt" | head -12)"; fi
if python3 - "$W/doctor.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["ledger"]
assert d["ok"] is True and d["store"] == "postgresql" and d["schema_version"] == 3, d
PY
then ok "bottle doctor checks the PostgreSQL ledger settings.yml names (reachable, schema 3)"
else fail "doctor" "$(cat "$W/doctor.json" | tail -12)"; fi
pg_stop "$PG_DIR"
BOTTLE_HOME="$W/home-a" "$BOTTLE" doctor --format json >"$W/doctor2.json" 2>/dev/null
BOTTLE_HOME="$W/home-a" "$BOTTLE" metrics >"$W/metrics2.txt" 2>/dev/null
mrc=$?
if python3 - "$W/doctor2.json" <<'PY' && [ $mrc -eq 1 ] && grep -q '^bottle_ledger_up 0$' "$W/metrics2.txt"
import json, sys
d = json.load(open(sys.argv[1]))["ledger"]
assert d["ok"] is False and d["error"], d
PY
then ok "database stopped: doctor reports the ledger FAILED with the reason; metrics says bottle_ledger_up 0 (exit 1)"
else fail "doctor down" "$(tail -8 "$W/doctor2.json")" "metrics rc=$mrc"; fi
