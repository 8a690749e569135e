#!/bin/sh
# Metering, budget admission and outbound DLP in bottle-proxy, against the fake
# LLM upstream on loopback: recorded usage equals the upstream's ground truth
# (JSON, SSE with several message_delta events, gzip, OpenAI chat and
# responses), a budget that runs out refuses with a 429 in the provider's error
# shape and tells the runtime, parallel requests never overshoot, an
# interrupted stream is charged, and secrets in a request are blocked or
# redacted before the upstream sees them. Batch APIs: refused under a budget
# (Anthropic and OpenAI, the upload too), their results recorded when fetched.
. "$BOTTLE_SRC/tests/lib.sh"
. "$BOTTLE_SRC/tests/fixtures/sidecar_env.sh"

N=20
plan $N
for tool in curl openssl python3; do
    if ! command -v $tool >/dev/null; then
        for i in $(seq $N); do skip "sidecar_meter $i" "" "$tool missing"; done
        exit 0
    fi
done

make_pki || { fail "test PKI"; exit 1; }
: >"$W/llm.log"
python3 "$FIX/fake_llm.py" --host 127.0.0.1 --port 0 --port-file "$W/llm.port" --log "$W/llm.log" \
    --cert "$W/up.pem" --key "$W/up-key.pem" --input-tokens 11 --output-tokens 7 \
    --cache-creation-input-tokens 3 --cache-read-input-tokens 5 &
PIDS="$PIDS $!"
wait_file "$W/llm.port" || { fail "fake LLM"; exit 1; }
UP=$(cat "$W/llm.port")
PLAIN=1
CANARY=PURPLE_WALRUS_SECRET_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
DB="$W/ledger/bottle.db"

start_metered() { # BUDGET DLP_POLICY
    [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    ROUTES='[{"host": "api.test:'$UP'", "metered": "claude",
      "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"},
      "dlp": {"outbound_on_match": "'$2'"}}]'
    BUDGETS='"budgets": [{"provider": "claude", "tokens": '$1', "scope": "run", "source": "test"}]'
    [ "$1" = none ] && BUDGETS='"budgets": []'
    write_config "$W/cfg.json" "$ROUTES" ', "agent": "meter-agent", "ledger": "'$DB'",
      "secrets": ["'$CANARY'"], "events_fd": 5, '"$BUDGETS"
    : >"$W/events"
    rm -f "$W/px.port"
    printf 'API_TOKEN=%s\n' "$TOKEN" >"$W/tokens"
    "$BOTTLE_PROXY" --config "$W/cfg.json" --token-fd 3 --port-file "$W/px.port" 3<"$W/tokens" \
        5>>"$W/events" 2>>"$W/proxy.log" &
    PROXY_PID=$!
    PIDS="$PIDS $PROXY_PID"
    wait_file "$W/px.port" || return 1
    PX=$(cut -d' ' -f1 "$W/px.port")
}

msg() { # FAKE_OPTS BODY_JSON [CURL_ARGS...]
    o=$1
    b=$2
    shift 2
    pcurl -H "X-Fake-LLM: $o" -H "Content-Type: application/json" -H "anthropic-version: 2023-06-01" \
        "$@" --data "$b" "https://api.test:$UP/v1/messages"
}
sql() { python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print("\n".join("|".join(str(x) for x in r) for r in c.execute(sys.argv[2])))' "$DB" "$1"; }
last_usage() { sql "SELECT input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, complete FROM usage ORDER BY id DESC LIMIT 1"; }
REQ='{"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}'
SREQ='{"model": "m", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}'

start_metered 1000000 block || { fail "proxy start" "$(cat "$W/proxy.log")"; exit 1; }

# 1: JSON usage recorded exactly
out=$(msg "" "$REQ")
u=$(last_usage)
if echo "$out" | grep -q '"usage"' && [ "$u" = "11|7|3|5|1" ]; then ok "JSON response: usage recorded exactly (11/7/3/5)"; else fail "JSON usage" "$u" "$out" "$(tail -5 "$W/proxy.log")"; fi
# 2: SSE with several cumulative message_delta events
out=$(msg "message_deltas=4&output_tokens=40&input_tokens=21" "$SREQ")
u=$(last_usage)
if echo "$out" | grep -q message_stop && [ "$u" = "21|40|3|5|1" ]; then ok "SSE with 4 cumulative message_delta events: the last value kept, never summed"; else fail "SSE usage" "$u" "$out"; fi
# 3: gzip-encoded SSE
msg "gzip=force&output_tokens=33" "$SREQ" --compressed >"$W/gz.out"
u=$(last_usage)
if grep -q message_stop "$W/gz.out" && [ "$u" = "11|33|3|5|1" ]; then ok "gzip SSE metered through the encoding"; else fail "gzip usage" "$u"; fi
# 4: OpenAI chat streaming with include_usage, and responses
pcurl -H "Content-Type: application/json" -H "X-Fake-LLM: input_tokens=13&output_tokens=17&cache_read_input_tokens=0&cache_creation_input_tokens=0" \
    --data '{"model": "m", "max_tokens": 50, "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}' \
    "https://api.test:$UP/v1/chat/completions" >"$W/chat.out"
u1=$(last_usage)
pcurl -H "Content-Type: application/json" -H "X-Fake-LLM: input_tokens=19&output_tokens=23&cache_read_input_tokens=0&cache_creation_input_tokens=0" \
    --data '{"model": "m", "max_output_tokens": 50, "stream": true, "input": "hi"}' \
    "https://api.test:$UP/v1/responses" >"$W/resp.out"
u2=$(last_usage)
if [ "$u1" = "13|17|0|0|1" ] && [ "$u2" = "19|23|0|0|1" ]; then ok "OpenAI chat (final usage chunk) and responses (response.completed) metered"; else fail "openai usage" "$u1" "$u2" "$(tail -3 "$W/chat.out")"; fi
# 5: an interrupted stream is recorded incomplete and charged at least the reservation
msg "cut_after=2" "$SREQ" >/dev/null 2>&1
r=$(sql "SELECT complete, charged_tokens >= 100 FROM usage ORDER BY id DESC LIMIT 1")
if [ "$r" = "0|1" ]; then ok "interrupted stream: recorded incomplete, charged the reservation"; else fail "interrupted" "$r"; fi
# 6: the agent's Authorization never reaches the upstream; the real token does
if grep '"/v1/messages"' "$W/llm.log" | tail -1 | grep -q "Bearer $TOKEN"; then ok "metered route: the real token injected"; else fail "token" "$(tail -1 "$W/llm.log")"; fi

# 7-8: a budget that runs out: 429 in the provider's error shape, the runtime told
start_metered 150 block || { fail "proxy restart"; exit 1; }
code=$(pcurl -o "$W/429.out" -w '%{http_code}' -H "Content-Type: application/json" --data "$REQ" "https://api.test:$UP/v1/messages")
if [ "$code" = 429 ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); e=d["error"]; assert d["type"]=="error" and e["type"] and "budget" in e["message"] and d["reason"]=="budget_exhausted"' "$W/429.out"; then
    ok "exhausted budget: 429 budget_exhausted with an Anthropic/OpenAI-shaped error body"
else fail "429" "$code" "$(cat "$W/429.out")"; fi
code2=$(pcurl -o /dev/null -w '%{http_code}' -H "Content-Type: application/json" --data '{"input": "x"}' "https://api.test:$UP/v1/embeddings")
code3=$(pcurl -o /dev/null -w '%{http_code}' -H "Content-Type: application/json" --data "$REQ" "https://api.test:$UP/v1/messages/count_tokens")
if grep -q '"event":"budget_exhausted".*"provider":"claude"' "$W/events" && [ "$code2" = 429 ] && [ "$code3" = 200 ]; then
    ok "exhaustion reported on the events descriptor; an endpoint the meter cannot read is charged too (429), token counting is free"
else fail "event" "$(cat "$W/events")" "embeddings $code2, count_tokens $code3"; fi

# 9: 64 parallel streams against a budget smaller than their total never overshoot
sql "DELETE FROM usage" >/dev/null; sql "DELETE FROM reservation" >/dev/null
start_metered 3000 block || { fail "proxy restart"; exit 1; }
i=0
while [ $i -lt 64 ]; do
    (pcurl -o "$W/par.$i" -w '%{http_code}\n' -H "Content-Type: application/json" -H "X-Fake-LLM: delay_ms=20&input_tokens=10&output_tokens=90&cache_read_input_tokens=0&cache_creation_input_tokens=0" \
        --data "$SREQ" "https://api.test:$UP/v1/messages" >"$W/code.$i") &
    i=$((i + 1))
done
wait_jobs=0
while [ "$(ls "$W"/code.* 2>/dev/null | wc -l)" -lt 64 ] || grep -L . "$W"/code.* 2>/dev/null | grep -q .; do
    sleep 0.2; wait_jobs=$((wait_jobs + 1)); [ $wait_jobs -gt 300 ] && break
done
okc=$(cat "$W"/code.* | grep -c '^200$')
refused=$(cat "$W"/code.* | grep -c '^429$')
charged=$(sql "SELECT coalesce(sum(charged_tokens),0) FROM usage")
if [ $((okc + refused)) -eq 64 ] && [ "$refused" -gt 0 ] && [ "$charged" -le 3000 ]; then
    ok "64 parallel streams, budget 3000: $okc admitted ($charged tokens charged, never over), $refused refused with 429"
else fail "parallel" "ok=$okc refused=$refused charged=$charged"; fi

# 10-13: outbound DLP
start_metered 1000000 block || { fail "proxy restart"; exit 1; }
before=$(wc -l <"$W/llm.log")
code=$(pcurl -o "$W/dlp.out" -w '%{http_code}' -H "Content-Type: application/json" \
    --data '{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "the key is '$CANARY'"}]}' \
    "https://api.test:$UP/v1/messages")
after=$(wc -l <"$W/llm.log")
if [ "$code" = 403 ] && grep -q dlp_blocked "$W/dlp.out" && [ "$before" = "$after" ] && ! grep -q "$CANARY" "$W/dlp.out" "$W/proxy.log"; then
    ok "block: the canary in a body is refused (403 dlp_blocked) before the upstream; never echoed or logged"
else fail "dlp block" "$code" "$(cat "$W/dlp.out")"; fi
code=$(pcurl -o "$W/dlp2.out" -w '%{http_code}' "https://api.test:$UP/v1/models?k=$TOKEN")
if [ "$code" = 403 ] && ! grep -q "$TOKEN" "$W/dlp2.out"; then ok "block: the real token in a query is refused"; else fail "dlp query" "$code" "$(cat "$W/dlp2.out")"; fi
start_metered 1000000 redact || { fail "proxy restart"; exit 1; }
code=$(pcurl -o "$W/dlp3.out" -w '%{http_code}' -H "Content-Type: application/json" \
    --data '{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "the key is '$CANARY'"}]}' \
    "https://api.test:$UP/v1/messages")
last=$(tail -1 "$W/llm.log")
if [ "$code" = 200 ] && echo "$last" | grep -q 'REDACTED' && ! echo "$last" | grep -q "$CANARY"; then
    ok "redact: the upstream receives the body with the canary replaced"
else fail "dlp redact" "$code" "$last"; fi
code=$(pcurl -o "$W/dlp4.out" -w '%{http_code}' -H "X-Debug: $CANARY" "https://api.test:$UP/v1/models")
if [ "$code" = 403 ] && grep -q dlp_redaction_failed "$W/dlp4.out"; then ok "redact: a secret in a header cannot be redacted and is refused"; else fail "dlp head redact" "$code" "$(cat "$W/dlp4.out")"; fi

# 14: a sidecar without a ledger refuses metered requests (fails closed)
kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null
write_config "$W/cfg2.json" '[{"host": "api.test:'$UP'", "metered": "claude", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"}}]'
start_proxy "$W/cfg2.json" || { fail "proxy start"; exit 1; }
code=$(pcurl -o "$W/nol.out" -w '%{http_code}' -H "Content-Type: application/json" --data "$REQ" "https://api.test:$UP/v1/messages")
if [ "$code" = 503 ] && grep -q metering_unavailable "$W/nol.out"; then ok "no ledger: metered requests refused (503 metering_unavailable)"; else fail "no ledger" "$code" "$(cat "$W/nol.out")"; fi

# 15: the sidecar killed mid-stream: the ledger stays consistent and the reservation stays charged
start_metered 1000000 block || { fail "proxy restart"; exit 1; }
before=$(sql "SELECT coalesce(sum(tokens),0) FROM reservation WHERE state='open'")
(msg "delay_ms=300&message_deltas=20" "$SREQ" >/dev/null 2>&1 &)
sleep 1
kill -9 "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null
PROXY_PID=""
sleep 0.3
open=$(sql "SELECT coalesce(sum(tokens),0) FROM reservation WHERE state='open'")
check=$(sql "PRAGMA integrity_check")
spent=$(python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("SELECT (SELECT coalesce(sum(charged_tokens),0) FROM usage WHERE bottle=?) + (SELECT coalesce(sum(tokens),0) FROM reservation WHERE state=? AND bottle=?)", ("test","open","test")).fetchone()[0])' "$DB")
if [ "$check" = ok ] && [ "$open" -gt "$before" ] && [ "$spent" -ge "$open" ]; then
    ok "sidecar killed mid-stream: ledger intact, the open reservation ($((open - before)) tokens) still counts as spent"
else fail "crash safety" "check=$check open=$open before=$before spent=$spent"; fi

# 16: full logging shows request bodies through the redactor, never a secret
[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
write_config "$W/cfg3.json" '[{"host": "api.test:'$UP'", "auth": {"scheme": "Bearer", "token_ref": "API_TOKEN"},
  "dlp": {"outbound_on_match": "redact"}}]' ', "log": "full", "secrets": ["'$CANARY'"]'
: >"$W/proxy.log"
start_proxy "$W/cfg3.json" || { fail "proxy start"; exit 1; }
pcurl -o /dev/null -H "Content-Type: application/json" --data '{"note": "hello-log-body"}' "https://api.test:$UP/v1/models" >/dev/null
pcurl -o /dev/null -H "Content-Type: application/json" --data '{"note": "key '$CANARY' here"}' "https://api.test:$UP/v1/models" >/dev/null
sleep 0.3
if grep '"request_body"' "$W/proxy.log" | grep -q hello-log-body &&
    grep '"request_body"' "$W/proxy.log" | grep -q REDACTED &&
    ! grep -q "$CANARY" "$W/proxy.log" && ! grep -q "$TOKEN" "$W/proxy.log"; then
    ok "full logging: request bodies logged through the redactor; no secret or token in the log"
else fail "full body log" "$(tail -4 "$W/proxy.log")"; fi

# 17-20: batch APIs. 200 requests x max_tokens 64000 under a 100000-token budget.
[ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
DB="$W/ledger/batch.db" # a ledger of their own: nothing spent yet
python3 - "$W/batch.json" <<'PY'
import json, sys
reqs = [{"custom_id": "r%d" % i, "params": {"model": "m", "max_tokens": 64000,
         "messages": [{"role": "user", "content": "hi"}]}} for i in range(200)]
json.dump({"requests": reqs}, open(sys.argv[1], "w"))
PY
printf '{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "max_tokens": 64000, "messages": []}}\n{"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "max_tokens": 64000, "messages": []}}\n' >"$W/batch.jsonl"
start_metered 100000 block || { fail "proxy restart"; exit 1; }
before=$(grep -c batches "$W/llm.log")
open0=$(sql "SELECT count(*) FROM reservation")
code=$(pcurl -o "$W/b1.out" -w '%{http_code}' -H "Content-Type: application/json" --data @"$W/batch.json" \
    "https://api.test:$UP/v1/messages/batches")
code2=$(pcurl -o "$W/b2.out" -w '%{http_code}' -H "Content-Type: application/json" \
    --data '{"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "24h"}' \
    "https://api.test:$UP/v1/batches")
code3=$(pcurl -o "$W/b3.out" -w '%{http_code}' -F purpose=batch -F "file=@$W/batch.jsonl" "https://api.test:$UP/v1/files")
after=$(grep -c 'batches\|/v1/files' "$W/llm.log")
if [ "$code" = 403 ] && grep -q '"reason": "batch_under_budget"' "$W/b1.out" && grep -q '200 requests may spend' "$W/b1.out" &&
    [ "$code2" = 403 ] && grep -q batch_under_budget "$W/b2.out" && [ "$code3" = 403 ] && grep -q '2 requests' "$W/b3.out" &&
    [ "$before" = "$after" ] && [ "$(sql "SELECT count(*) FROM reservation")" = "$open0" ]; then
    ok "under a budget: an Anthropic batch (200 x 64000), an OpenAI batch and its upload are refused (403 batch_under_budget), none reaches the upstream"
else fail "batch under budget" "$code $code2 $code3 upstream $before->$after" "$(cat "$W/b1.out" "$W/b2.out" "$W/b3.out")"; fi
code=$(pcurl -o /dev/null -w '%{http_code}' "https://api.test:$UP/v1/messages/batches/msgbatch_nosuch")
code2=$(pcurl -o /dev/null -w '%{http_code}' -X POST "https://api.test:$UP/v1/messages/batches/msgbatch_nosuch/cancel")
free_after=$(sql "SELECT count(*) FROM reservation")
pcurl -o /dev/null -X POST -H "Content-Type: application/json" --data '{}' "https://api.test:$UP/v1/messages/batches/msgbatch_x/results"
reserved=$(sql "SELECT count(*) FROM reservation WHERE tokens >= 8192")
if [ "$code" = 404 ] && [ "$code2" = 404 ] && [ "$free_after" = "$open0" ] && [ "$reserved" = 1 ]; then
    ok "under a budget: retrieving and cancelling a batch reserve nothing; any other POST under a batch is reserved as an unknown call"
else fail "batch management" "$code $code2 reservations $open0->$free_after reserved=$reserved"; fi

# Without a budget a batch passes, free; its results are recorded when fetched, once.
kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
DB="$W/ledger/batch2.db"
start_metered none block || { fail "proxy restart"; exit 1; }
pcurl -o "$W/b4.out" -H "Content-Type: application/json" \
    --data '{"requests": [{"custom_id": "a", "params": {"model": "m", "max_tokens": 10, "messages": []}}, {"custom_id": "b", "params": {"model": "m", "max_tokens": 10, "messages": []}}, {"custom_id": "c", "params": {"model": "m", "max_tokens": 10, "messages": []}}]}' \
    "https://api.test:$UP/v1/messages/batches"
BID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$W/b4.out" 2>/dev/null)
rows0=$(sql "SELECT count(*) FROM usage")
pcurl -o "$W/b5.out" --compressed -H "X-Fake-LLM: gzip=force" "https://api.test:$UP/v1/messages/batches/$BID/results"
pcurl -o /dev/null "https://api.test:$UP/v1/messages/batches/$BID/results"
u=$(sql "SELECT input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, request_id FROM usage")
if [ -n "$BID" ] && [ "$rows0" = 0 ] && [ "$(grep -c succeeded "$W/b5.out")" = 3 ] && [ "$u" = "33|21|9|15|batch:$BID" ]; then
    ok "no budget: an Anthropic batch passes free; its 3 results (gzip) are recorded when fetched, once"
else fail "anthropic batch results" "id=$BID rows0=$rows0" "$u" "$(cat "$W/b4.out")"; fi
kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
DB="$W/ledger/batch3.db"
start_metered none block || { fail "proxy restart"; exit 1; }
FID=$(pcurl -F purpose=batch -F "file=@$W/batch.jsonl" "https://api.test:$UP/v1/files" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null)
OID=$(pcurl -H "Content-Type: application/json" -H "X-Fake-LLM: input_tokens=13&output_tokens=17&cache_read_input_tokens=4" \
    --data '{"input_file_id": "'"$FID"'", "endpoint": "/v1/chat/completions", "completion_window": "24h"}' \
    "https://api.test:$UP/v1/batches" | python3 -c 'import json,sys; print(json.load(sys.stdin)["output_file_id"])' 2>/dev/null)
pcurl -o "$W/b6.out" "https://api.test:$UP/v1/files/$OID/content"
u=$(sql "SELECT input_tokens, output_tokens, cache_read_tokens, request_id FROM usage")
if [ -n "$OID" ] && [ "$u" = "26|34|8|batch:$OID" ]; then
    ok "no budget: an OpenAI batch (upload, create) passes; its output file's usage is recorded when fetched"
else fail "openai batch results" "file=$FID out=$OID" "$u" "$(cat "$W/b6.out")"; fi
