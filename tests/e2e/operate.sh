#!/bin/sh
# Operating running bottles on the native backend: the control socket
# (status, usage, freeze/thaw, cutoff/restore, stop, malformed requests),
# `bottle list active` (running, frozen, cut_off, stale), `bottle cleanup`
# after a SIGKILLed controller and of an orphan veth, two bottles at once,
# SIGINT/SIGTERM to `bottle start`, and start failures injected from outside
# at each step. Every assertion is about this run's own bottles (their
# labels are unique), never about what other bottles on the host do.
. "$BOTTLE_SRC/tests/lib.sh"

N=36
plan $N

if ! is_root; then
    for i in $(seq 1 $N); do skip "operate $i" kernel "needs root"; done
    exit 0
fi

W=$T_TMP
FIX=$BOTTLE_SRC/tests/fixtures
UP_PID=""
RUNNING="" # background `bottle start` pids still running
cleanup() {
    for p in $RUNNING; do kill -TERM "$p" 2>/dev/null; done
    for p in $RUNNING; do wait "$p" 2>/dev/null; done
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    ip link del "${ORPHAN:-bh-none}" 2>/dev/null
    for s in $PRECREATED_NS; do
        umount "/run/bottle/netns/bottle-$s" 2>/dev/null
        rm -f "/run/bottle/netns/bottle-$s"
    done
    for s in $PRECREATED_CG; do rmdir "$CG2/bottle/$s" 2>/dev/null; done
    rm -rf "$T_TMP"
}
PRECREATED_NS=""
PRECREATED_CG=""
trap cleanup EXIT
unset SUDO_UID SUDO_GID

CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
BPFFS=$(awk '$9 == "bpf" {print $5; exit}' /proc/self/mountinfo)
TAG=op$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
TOKEN=op-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export E2E_TOKEN="$TOKEN"

# ---- test PKI and the local HTTPS upstream -------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=operate upstream CA" -days 2 -out "$W/uca.pem" 2>/dev/null
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

# ---- homes, the agent ---------------------------------------------------------------
# The agent serves requests from the test through files in its workspace:
# req.N asks for one HTTPS request to the allowed route, res.N holds
# "<http code> <curl exit>". It never exits on its own.
new_home() { # new_home NAME: a BOTTLE_HOME with the agent `op`
    h=$W/$1
    mkdir -p "$h/agents" "$h/bottles"
    cat >"$h/bottles/op.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, agent.sh]
egress:
  routes:
    - host: api.test:$UP
      auth:
        scheme: Bearer
        token_ref: E2E_TOKEN
---
An operate bottle.
EOF
    printf -- '---\nbottle: op\n---\nServe the test.\n' >"$h/agents/op.md"
    echo "$h"
}
cat >"$W/agent.sh" <<EOF
n=0
: >"\$PWD/ready"
while :; do
    if [ -f "\$PWD/req.\$n" ]; then
        code=\$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "https://api.test:$UP/echo" 2>/dev/null)
        echo "\$code \$?" >"\$PWD/res.\$n.tmp"
        mv "\$PWD/res.\$n.tmp" "\$PWD/res.\$n"
        n=\$((n + 1))
    fi
    sleep 0.1
done
EOF
new_ws() { # new_ws NAME: a workspace with the agent script
    ws=$W/ws-$1
    mkdir -p "$ws"
    cp "$W/agent.sh" "$ws/agent.sh"
    chmod 0777 "$ws"
    echo "$ws"
}

# start_bg HOME WS LABEL [start options]: `bottle start` in the background with
# SIGINT at its default (a non-interactive shell starts background jobs with
# it ignored); sets BG to its pid.
start_bg() {
    h=$1 ws=$2 label=$3
    shift 3
    (cd "$ws" && BOTTLE_HOME=$h exec python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$BOTTLE" start op --label "$label" --cwd "$ws" \
        --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" "$@" \
        >"$W/$label.out" 2>"$W/$label.err") &
    BG=$!
    RUNNING="$RUNNING $BG"
}
# wait_ready HOME WS LABEL: until the agent runs and the controller answers.
wait_ready() {
    i=0
    while [ $i -lt 150 ]; do
        if [ -f "$2/ready" ] && [ -S "$1/run/$3.sock" ] &&
            ctl "$1/run/$3.sock" '{"cmd":"status"}' | grep -q '"ok":true'; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
# ctl SOCKET LINE: one request, prints the response line.
ctl() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode().strip())
PY
}
# jget JSON KEY: a top-level value (strings without quotes).
jget() { printf '%s' "$1" | python3 -c 'import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$2"; }
# ask WS: one request from inside the bottle; prints "<http code> <curl exit>".
ask() {
    n=$(ls "$1" | grep -c '^req\.')
    touch "$1/req.$n"
    i=0
    while [ ! -f "$1/res.$n" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
    cat "$1/res.$n" 2>/dev/null || echo "none"
}
host_link() { # the host end of a running bottle's veth
    nsenter --net="/run/bottle/netns/bottle-$1" ip -o link show 2>/dev/null |
        sed -n 's/^[0-9]*: \(bb-[0-9a-f]*\)@.*/\1/p' |
        sed 's/^bb-/bh-/' | head -1
}
# leftovers HOME SLUG [LINK]: whatever of that bottle is still on the host.
leftovers() {
    h=$1 s=$2
    [ -e "$CG2/bottle/$s" ] && echo "cgroup $CG2/bottle/$s"
    [ -e "$BPFFS/bottle/$s" ] && echo "pins $BPFFS/bottle/$s"
    [ -e "/run/bottle/netns/bottle-$s" ] || [ -e "/run/netns/bottle-$s" ] && echo "netns bottle-$s"
    [ -n "${3:-}" ] && ip link show "$3" >/dev/null 2>&1 && echo "link $3"
    [ -e "$h/run/$s.sock" ] && echo "socket $h/run/$s.sock"
    [ -e "$h/state/$s" ] && echo "state $h/state/$s"
    [ -e "/run/bottle/live/$s.lock" ] && echo "live lock"
    for f in $(grep -l "/bottle/$s/" /proc/[0-9]*/cgroup 2>/dev/null); do
        pid=${f#/proc/}
        pid=${pid%/cgroup}
        # a zombie waiting for the host's init to reap it holds nothing
        state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
        [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] && echo "process $pid ($state)"
    done
    pgrep -f "bottle-proxy --config $h/state/$s/" | sed 's/^/sidecar /'
    return 0
}
wait_exit() { # wait_exit PID: its exit code (killed after 20 s)
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$1" 2>/dev/null && kill -KILL "$1"
    wait "$1"
    rc=$?
    RUNNING=$(echo "$RUNNING" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
    return $rc
}

# ======== one bottle through its control socket ==================================
H1=$(new_home h1)
WS1=$(new_ws 1)
S1=$TAG-a
export BOTTLE_LOG_LEVEL=info
start_bg "$H1" "$WS1" "$S1"
P1=$BG
unset BOTTLE_LOG_LEVEL
if wait_ready "$H1" "$WS1" "$S1"; then ok "bottle $S1 runs and its controller answers"; else fail "start" "$(cat "$W/$S1.err")"; fi
SOCK=$H1/run/$S1.sock
perm=$(stat -c '%a %U %F' "$SOCK" 2>/dev/null)
dperm=$(stat -c '%a %U' "$H1/run")
if [ "$perm" = "600 root socket" ] && [ "$dperm" = "700 root" ]; then ok "control socket is 0600 root in a 0700 directory"; else fail "socket mode" "$perm / $dperm"; fi

st=$(ctl "$SOCK" '{"cmd":"status"}')
if [ "$(jget "$st" slug)" = "$S1" ] && [ "$(jget "$st" agent)" = op ] &&
    [ "$(jget "$st" backend)" = native ] && [ "$(jget "$st" tier)" = kernel ] &&
    [ "$(jget "$st" state)" = running ] && jget "$st" started | grep -q '^20..-..-..T..:..:..Z$' &&
    [ "$(jget "$st" pids | python3 -c 'import json,sys; p=json.load(sys.stdin); print(p["controller"] > 1 and p["agent"] > 1 and p["sidecar"] > 1)')" = True ]; then
    ok "status: slug, agent, backend, tier, started, state, pids"
else
    fail "status" "$st"
fi

r=$(ask "$WS1")
u=$(ctl "$SOCK" '{"cmd":"usage"}')
if [ "$r" = "200 0" ] && [ "$(jget "$u" ok)" = true ] && [ "$(jget "$u" tx_bytes)" -gt 0 ] &&
    [ "$(jget "$u" connect_ok)" -ge 1 ] && [ "$(jget "$u" cut_off)" = false ]; then
    ok "usage over the socket counts the agent's request"
else
    fail "usage" "request: $r" "$u"
fi

bad=$(ctl "$SOCK" 'this is not json')
unk=$(ctl "$SOCK" '{"cmd":"launch-missiles"}')
st=$(ctl "$SOCK" '{"cmd":"status"}')
if [ "$bad" = '{"ok":false,"error":"malformed request: not JSON"}' ] &&
    echo "$unk" | grep -q '"ok":false,"error":"unknown command' && [ "$(jget "$st" state)" = running ]; then
    ok "malformed and unknown requests get an error; the controller keeps serving"
else
    fail "malformed" "$bad" "$unk" "$st"
fi

# A peer that never finishes its line does not block anyone: the answer comes
# while it is still connected, within a second of asking.
python3 - "$SOCK" "$W/silent.ready" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"cmd":')
open(sys.argv[2], "w").close()
time.sleep(8)
PY
SILENT=$!
i=0
while [ ! -f "$W/silent.ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
took=$(python3 - "$SOCK" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sys.argv[1])
t = time.monotonic()
s.sendall(b'{"cmd":"status"}\n')
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print("%d %s" % ((time.monotonic() - t) * 1000, b'"ok":true' in data))
PY
)
alive=$(kill -0 "$SILENT" 2>/dev/null && echo alive || echo gone)
kill "$SILENT" 2>/dev/null
wait "$SILENT" 2>/dev/null
if [ "${took#* }" = True ] && [ "${took%% *}" -lt 1000 ] && [ "$alive" = alive ]; then
    ok "a silent peer does not block other requests"
else
    fail "silent peer" "$took ms, silent peer $alive"
fi

fr=$(ctl "$SOCK" '{"cmd":"freeze"}')
frozen=$(grep -c '^frozen 1' "$CG2/bottle/$S1/agent/cgroup.events")
la=$(BOTTLE_HOME=$H1 "$BOTTLE" list active --format json)
n0=$(ls "$WS1" | grep -c '^req\.')
touch "$WS1/req.$n0"
sleep 1
pending=$([ -f "$WS1/res.$n0" ] && echo answered || echo pending)
th=$(ctl "$SOCK" '{"cmd":"thaw"}')
i=0
while [ ! -f "$WS1/res.$n0" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ "$(jget "$fr" state)" = frozen ] && [ "$frozen" = 1 ] && [ "$pending" = pending ] &&
    echo "$la" | grep -q '"state": *"frozen"' && [ "$(jget "$th" state)" = running ] &&
    [ "$(cat "$WS1/res.$n0" 2>/dev/null)" = "200 0" ]; then
    ok "freeze stops the agent where it is (list shows frozen); thaw resumes it"
else
    fail "freeze/thaw" "$fr" "events frozen=$frozen" "$pending" "$la" "$th" "$(cat "$WS1/res.$n0" 2>/dev/null)"
fi

co=$(ctl "$SOCK" '{"cmd":"cutoff"}')
r=$(ask "$WS1")
st=$(ctl "$SOCK" '{"cmd":"status"}')
re=$(ctl "$SOCK" '{"cmd":"cutoff","restore":true}')
r2=$(ask "$WS1")
if [ "$(jget "$co" state)" = cut_off ] && [ "${r%% *}" = 000 ] && [ "$(jget "$st" state)" = cut_off ] &&
    [ "$(jget "$re" state)" = running ] && [ "$r2" = "200 0" ]; then
    ok "cutoff over the socket cuts the agent off; restore brings it back"
else
    fail "cutoff" "$co" "$r" "$st" "$re" "$r2"
fi

# The CLI: through the socket, and straight on the pins when the socket is gone.
out=$(BOTTLE_HOME=$H1 "$BOTTLE" cutoff "$S1" 2>&1)
r=$(ask "$WS1")
out2=$(BOTTLE_HOME=$H1 "$BOTTLE" cutoff "$S1" --restore 2>&1)
r2=$(ask "$WS1")
if echo "$out" | grep -q "cut off" && [ "${r%% *}" = 000 ] && echo "$out2" | grep -q restored &&
    [ "$r2" = "200 0" ] && grep -q 'action=cutoff by_uid=0 result="ok"' "$H1/state/$S1/actions.log"; then
    ok "bottle cutoff goes through the controller, which logs it"
else
    fail "cutoff cli" "$out" "$r" "$out2" "$r2" "$(cat "$H1/state/$S1/actions.log")"
fi
mv "$SOCK" "$SOCK.away"
out=$(BOTTLE_HOME=$H1 "$BOTTLE" cutoff "$S1" 2>&1)
rc1=$?
r=$(ask "$WS1")
out2=$(BOTTLE_HOME=$H1 "$BOTTLE" cutoff "$S1" --restore 2>&1)
r2=$(ask "$WS1")
mv "$SOCK.away" "$SOCK"
if [ $rc1 -eq 0 ] && echo "$out" | grep -q "cut off" && [ "${r%% *}" = 000 ] && [ "$r2" = "200 0" ]; then
    ok "bottle cutoff works without the socket (pins)"
else
    fail "cutoff without socket" "$out" "$r" "$out2" "$r2"
fi

fz=$(BOTTLE_HOME=$H1 "$BOTTLE" freeze "$S1" 2>&1)
st=$(ctl "$SOCK" '{"cmd":"status"}')
tz=$(BOTTLE_HOME=$H1 "$BOTTLE" thaw "$S1" 2>&1)
st2=$(ctl "$SOCK" '{"cmd":"status"}')
if [ "$fz" = "bottle $S1: frozen" ] && [ "$(jget "$st" state)" = frozen ] &&
    [ "$tz" = "bottle $S1: thawed" ] && [ "$(jget "$st2" state)" = running ]; then
    ok "bottle freeze / bottle thaw"
else
    fail "freeze cli" "$fz" "$st" "$tz" "$st2"
fi

lst=$(BOTTLE_HOME=$H1 "$BOTTLE" list active)
row=$(echo "$lst" | awk -v s="$S1" '$1 == s')
today=$(date +%Y-%m-%d)
if echo "$lst" | head -1 | grep -q '^SLUG  *AGENT  *BACKEND  *TIER  *STARTED  *STATE$' &&
    echo "$row" | grep -Eq "^$S1 +op +native +kernel +$today [0-9]{2}:[0-9]{2}:[0-9]{2} +running$"; then
    ok "bottle list active: slug, agent, backend, tier, local start time, running"
else
    fail "list active" "$lst"
fi

LINK1=$(host_link "$S1")
BOTTLE_HOME=$H1 "$BOTTLE" stop "$S1" >"$W/stop.out" 2>&1
src=$?
wait_exit "$P1"
rc=$?
left=$(leftovers "$H1" "$S1" "$LINK1")
if [ $src -eq 0 ] && [ $rc -eq 143 ] && [ -n "$LINK1" ] && [ -z "$left" ]; then
    ok "bottle stop: SIGTERM to the agent (exit 143), torn down, nothing left (no state either)"
else
    fail "stop" "stop rc=$src start rc=$rc link=$LINK1" "$left" "$(cat "$W/stop.out" "$W/$S1.err")"
fi
if grep -q 'action=stop by_uid=0 result=ok' "$W/$S1.err" && grep -q 'action=freeze by_uid=0 result=ok' "$W/$S1.err" &&
    grep -q 'action=cutoff-restore by_uid=0 result=ok' "$W/$S1.err"; then
    ok "every action writes a log line"
else
    fail "actions logged" "$(cat "$W/$S1.err")"
fi

# ======== a SIGKILLed controller, list shows stale, cleanup removes it ===========
H2=$(new_home h2)
WS2=$(new_ws 2)
S2=$TAG-b
start_bg "$H2" "$WS2" "$S2"
P2=$BG
wait_ready "$H2" "$WS2" "$S2"
LINK2=$(host_link "$S2")
kill -KILL "$P2"
wait_exit "$P2"
lst=$(BOTTLE_HOME=$H2 "$BOTTLE" list active)
js=$(BOTTLE_HOME=$H2 "$BOTTLE" list active --format json)
if echo "$lst" | awk -v s="$S2" '$1 == s' | grep -Eq " op +native +kernel +.* stale$" &&
    printf '%s' "$js" | python3 -c 'import json, sys
a = json.load(sys.stdin)["active"]
r = [x for x in a if x["slug"] == sys.argv[1]][0]
assert r["state"] == "stale" and r["agent"] == "op" and r["backend"] == "native" and r["tier"] == "kernel"
assert r["started"].endswith("Z")' "$S2"; then
    ok "list active: a SIGKILLed controller's bottle is stale (text and JSON)"
else
    fail "stale" "$lst" "$js"
fi
before=$(leftovers "$H2" "$S2" "$LINK2")
dry=$(BOTTLE_HOME=$H2 "$BOTTLE" cleanup --dry-run "$S2" 2>&1)
after_dry=$(leftovers "$H2" "$S2" "$LINK2")
if echo "$before" | grep -q cgroup && echo "$before" | grep -q socket && echo "$dry" | grep -q "would remove $S2: socket" &&
    echo "$dry" | grep -q "would remove $S2: cgroup" && [ "$before" = "$after_dry" ]; then
    ok "cleanup --dry-run reports the crashed bottle's cgroup, socket... and removes nothing"
else
    fail "dry run" "$before" "$dry"
fi
BOTTLE_HOME=$H2 "$BOTTLE" cleanup "$S2" >"$W/cleanup.out" 2>&1
crc=$?
left=$(leftovers "$H2" "$S2" "$LINK2")
if [ $crc -eq 0 ] && [ -n "$LINK2" ] && [ -z "$left" ] && grep -q "removing $S2: network namespace" "$W/cleanup.out"; then
    ok "cleanup removes cgroups, pins, netns, veth, socket, state and processes"
else
    fail "cleanup" "rc=$crc link=$LINK2" "$left" "$(cat "$W/cleanup.out")"
fi

# An orphan host veth (its peer in no bottle's namespace) goes; a live bottle's stays.
H3=$(new_home h3)
WS3=$(new_ws 3)
S3=$TAG-c
start_bg "$H3" "$WS3" "$S3"
P3=$BG
wait_ready "$H3" "$WS3" "$S3"
LINK3=$(host_link "$S3")
ORPHAN=bh-f$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-3)
ip link add "$ORPHAN" type veth peer name "bb-${ORPHAN#bh-}"
dry=$(BOTTLE_HOME=$H3 "$BOTTLE" cleanup --dry-run "$S3" 2>&1)
BOTTLE_HOME=$H3 "$BOTTLE" cleanup "$S3" >"$W/cleanup3.out" 2>&1
r=$(ask "$WS3")
if echo "$dry" | grep -q "would remove orphan link $ORPHAN" && ! ip link show "$ORPHAN" >/dev/null 2>&1 &&
    grep -q "$S3: running; left alone" "$W/cleanup3.out" && ip link show "$LINK3" >/dev/null 2>&1 &&
    [ -S "$H3/run/$S3.sock" ] && [ -d "$CG2/bottle/$S3" ] && [ "$r" = "200 0" ] &&
    ! echo "$dry" | grep -q "orphan link $LINK3"; then
    ok "cleanup removes an orphan bh- link and leaves a live bottle whole"
else
    fail "orphan link" "$dry" "$(cat "$W/cleanup3.out")" "live link $LINK3; request $r"
fi

# ======== two bottles at once ===================================================
H4=$(new_home h4)
WS4=$(new_ws 4)
S4=$TAG-d
start_bg "$H4" "$WS4" "$S4"
P4=$BG
wait_ready "$H4" "$WS4" "$S4"
ra=$(ask "$WS3")
rb=$(ask "$WS4")
if [ "$ra" = "200 0" ] && [ "$rb" = "200 0" ]; then ok "two bottles at once both reach the allowed upstream"; else fail "two bottles" "$ra" "$rb"; fi
ua=$(ctl "$H3/run/$S3.sock" '{"cmd":"usage"}')
ub=$(ctl "$H4/run/$S4.sock" '{"cmd":"usage"}')
ask "$WS3" >/dev/null
ask "$WS3" >/dev/null
ua2=$(ctl "$H3/run/$S3.sock" '{"cmd":"usage"}')
ub2=$(ctl "$H4/run/$S4.sock" '{"cmd":"usage"}')
if [ "$(jget "$ua2" connect_ok)" -eq $(($(jget "$ua" connect_ok) + 2)) ] &&
    [ "$(jget "$ua2" tx_bytes)" -gt "$(jget "$ua" tx_bytes)" ] &&
    [ "$(jget "$ub2" tx_bytes)" = "$(jget "$ub" tx_bytes)" ] &&
    [ "$(jget "$ub2" connect_ok)" = "$(jget "$ub" connect_ok)" ]; then
    ok "each bottle's usage counts only its own traffic"
else
    fail "usage isolation" "$ua" "$ua2" "$ub" "$ub2"
fi
ctl "$H3/run/$S3.sock" '{"cmd":"cutoff"}' >/dev/null
ra=$(ask "$WS3")
rb=$(ask "$WS4")
if [ "${ra%% *}" = 000 ] && [ "$rb" = "200 0" ]; then ok "cutting one bottle off leaves the other working"; else fail "cutoff isolation" "$ra" "$rb"; fi

# kill over the socket: cgroup.kill and teardown
k=$(ctl "$H3/run/$S3.sock" '{"cmd":"kill"}')
wait_exit "$P3"
rc=$?
left=$(leftovers "$H3" "$S3" "$LINK3")
if [ "$(jget "$k" ok)" = true ] && [ $rc -eq 137 ] && [ -z "$left" ]; then
    ok "kill over the socket: the agent dies (137) and the bottle is torn down"
else
    fail "kill" "$k rc=$rc" "$left"
fi
rb=$(ask "$WS4")
if [ "$rb" = "200 0" ]; then ok "the other bottle still works after one was killed"; else fail "other after kill" "$rb"; fi

# ======== SIGINT and SIGTERM to `bottle start` ==================================
LINK4=$(host_link "$S4")
kill -INT "$P4"
wait_exit "$P4"
rc=$?
left=$(leftovers "$H4" "$S4" "$LINK4")
if [ $rc -eq 130 ] && [ -z "$left" ]; then ok "SIGINT to bottle start: agent exit 130, nothing left"; else fail "SIGINT" "rc=$rc" "$left" "$(cat "$W/$S4.err")"; fi
WS5=$(new_ws 5)
S5=$TAG-e
start_bg "$H4" "$WS5" "$S5"
P5=$BG
wait_ready "$H4" "$WS5" "$S5"
LINK5=$(host_link "$S5")
kill -TERM "$P5"
wait_exit "$P5"
rc=$?
left=$(leftovers "$H4" "$S5" "$LINK5")
if [ $rc -eq 143 ] && [ -z "$left" ]; then ok "SIGTERM to bottle start: agent exit 143, nothing left"; else fail "SIGTERM" "rc=$rc" "$left" "$(cat "$W/$S5.err")"; fi

# bottle stop without the socket: it signals the controller, which forwards SIGTERM
WS5B=$(new_ws 5b)
S5B=$TAG-o
start_bg "$H4" "$WS5B" "$S5B"
P5B=$BG
wait_ready "$H4" "$WS5B" "$S5B"
LINK5B=$(host_link "$S5B")
mv "$H4/run/$S5B.sock" "$W/$S5B.sock.away"
BOTTLE_HOME=$H4 "$BOTTLE" stop "$S5B" >"$W/stop5b.out" 2>&1
src=$?
wait_exit "$P5B"
rc=$?
left=$(leftovers "$H4" "$S5B" "$LINK5B")
if [ $src -eq 0 ] && [ $rc -eq 143 ] && [ -z "$left" ]; then
    ok "bottle stop without the socket signals the controller: exit 143, nothing left"
else
    fail "stop fallback" "stop rc=$src start rc=$rc" "$left" "$(cat "$W/stop5b.out")"
fi

# ======== start failures injected at each step leave nothing ===========================
H6=$(new_home h6)
WS6=$(new_ws 6)
# fail_start NAME LABEL EXPECT_IN_ERR [start options]: starts, expects a failure.
fail_start() {
    name=$1 label=$2 want=$3
    shift 3
    orphans_before=$(BOTTLE_HOME=$H6 "$BOTTLE" cleanup --dry-run "$TAG-nothing" 2>&1 | grep -c "orphan link")
    (cd "$WS6" && BOTTLE_HOME=$H6 exec "$BOTTLE" start op --label "$label" --cwd "$WS6" \
        --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" "$@" \
        >"$W/$label.out" 2>"$W/$label.err")
    rc=$?
    left=$(leftovers "$H6" "$label")
    orphans=$(BOTTLE_HOME=$H6 "$BOTTLE" cleanup --dry-run "$TAG-nothing" 2>&1 | grep -c "orphan link")
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "$want" "$W/$label.err" && [ -z "$left" ] &&
        [ "$orphans" -le "$orphans_before" ]; then
        ok "$name: start fails (exit $rc) and leaves nothing"
    else
        fail "$name" "rc=$rc" "$left" "orphans $orphans_before -> $orphans" "$(cat "$W/$label.err")"
    fi
}
# state: the label is taken by a running bottle, which is left alone
S7=$TAG-f
start_bg "$H6" "$WS6" "$S7"
P7=$BG
wait_ready "$H6" "$WS6" "$S7"
(cd "$WS6" && BOTTLE_HOME=$H6 exec "$BOTTLE" start op --label "$S7" --cwd "$WS6" >"$W/dup.out" 2>"$W/dup.err")
rc=$?
st=$(ctl "$H6/run/$S7.sock" '{"cmd":"status"}')
if [ $rc -eq 2 ] && grep -q "already" "$W/dup.err" && [ "$(jget "$st" state)" = running ] &&
    [ -d "$CG2/bottle/$S7" ]; then
    ok "state: a label in use is refused (exit 2) and the running bottle is untouched"
else
    fail "label in use" "rc=$rc" "$(cat "$W/dup.err")" "$st"
fi
BOTTLE_HOME=$H6 "$BOTTLE" stop "$S7" >/dev/null 2>&1
wait_exit "$P7"
rm -f "$WS6"/req.* "$WS6"/res.*
# files: a CA that does not exist
fail_start "files (bad --upstream-ca)" "$TAG-g" "upstream-ca" --upstream-ca "$W/missing.pem"
# network: the namespace name is taken
S8=$TAG-h
mkdir -p /run/bottle/netns && : >"/run/bottle/netns/bottle-$S8" &&
    unshare --net="/run/bottle/netns/bottle-$S8" true && PRECREATED_NS="$PRECREATED_NS $S8"
(cd "$WS6" && BOTTLE_HOME=$H6 exec "$BOTTLE" start op --label "$S8" --cwd "$WS6" \
    --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" >"$W/$S8.out" 2>"$W/$S8.err")
rc=$?
kept=$(nsenter --net="/run/bottle/netns/bottle-$S8" true 2>/dev/null && echo kept || echo removed)
umount "/run/bottle/netns/bottle-$S8" && rm -f "/run/bottle/netns/bottle-$S8"
left=$(leftovers "$H6" "$S8")
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$kept" = kept ] && [ -z "$left" ]; then
    ok "network: a taken namespace name fails the start, leaves nothing, keeps the other namespace"
else
    fail "netns taken" "rc=$rc $kept" "$left" "$(cat "$W/$S8.err")"
fi
# cgroup: the bottle's cgroup exists already
S9=$TAG-i
mkdir -p "$CG2/bottle/$S9" && PRECREATED_CG="$PRECREATED_CG $S9"
(cd "$WS6" && BOTTLE_HOME=$H6 exec "$BOTTLE" start op --label "$S9" --cwd "$WS6" \
    --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" >"$W/$S9.out" 2>"$W/$S9.err")
rc=$?
kept=$([ -d "$CG2/bottle/$S9" ] && echo kept || echo removed)
rmdir "$CG2/bottle/$S9" 2>/dev/null
left=$(leftovers "$H6" "$S9")
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$kept" = kept ] && [ -z "$left" ]; then
    ok "cgroup: an existing cgroup fails the start, leaves nothing, keeps the other cgroup"
else
    fail "cgroup taken" "rc=$rc $kept" "$left" "$(cat "$W/$S9.err")"
fi
# sidecar: the binary exits 1 at once; and one that is not there
printf '#!/bin/sh\necho "fake sidecar failing" >&2\nexit 1\n' >"$W/false-proxy"
chmod 0755 "$W/false-proxy"
BOTTLE_PROXY_BIN=$W/false-proxy fail_start "sidecar (exits 1)" "$TAG-j" "sidecar exited before it was ready"
BOTTLE_PROXY_BIN=$W/no-such-proxy fail_start "sidecar (missing)" "$TAG-k" "cannot find the sidecar"
# control socket: its path is taken by a directory
S10=$TAG-l
mkdir -p "$H6/run/$S10.sock"
(cd "$WS6" && BOTTLE_HOME=$H6 exec "$BOTTLE" start op --label "$S10" --cwd "$WS6" \
    --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" >"$W/$S10.out" 2>"$W/$S10.err")
rc=$?
rmdir "$H6/run/$S10.sock"
left=$(leftovers "$H6" "$S10")
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "control socket" "$W/$S10.err" && [ -z "$left" ]; then
    ok "control socket: a taken path fails the start after the sidecar, leaves nothing"
else
    fail "control socket taken" "rc=$rc" "$left" "$(cat "$W/$S10.err")"
fi
# agent: a command that does not exist
cat >"$H6/bottles/nocmd.md" <<EOF
---
agent_provider:
  template: generic
  command: [/no/such/agent-binary]
egress:
  routes:
    - host: api.test:$UP
      auth:
        scheme: Bearer
        token_ref: E2E_TOKEN
---
x
EOF
printf -- '---\nbottle: nocmd\n---\nx\n' >"$H6/agents/nocmd.md"
S11=$TAG-m
(cd "$WS6" && BOTTLE_HOME=$H6 exec "$BOTTLE" start nocmd --label "$S11" --cwd "$WS6" \
    --resolve "api.test:$UP:127.0.0.1" --upstream-ca "$W/uca.pem" >"$W/$S11.out" 2>"$W/$S11.err")
rc=$?
left=$(leftovers "$H6" "$S11")
if [ $rc -ne 0 ] && grep -q "agent-binary" "$W/$S11.err" && [ -z "$left" ]; then
    ok "agent: a command that does not exist fails the start and leaves nothing"
else
    fail "missing agent command" "rc=$rc" "$left" "$(cat "$W/$S11.err")"
fi
# start interrupted by SIGTERM while it builds the bottle
S12=$TAG-n
start_bg "$H6" "$WS6" "$S12"
P12=$BG
i=0
while [ ! -d "$CG2/bottle/$S12" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i + 1)); done
kill -TERM "$P12"
wait_exit "$P12"
rc=$?
left=$(leftovers "$H6" "$S12")
if [ $rc -ne 0 ] && [ -z "$left" ]; then ok "SIGTERM during start: nothing left (exit $rc)"; else fail "SIGTERM during start" "rc=$rc" "$left" "$(cat "$W/$S12.err")"; fi
# nothing of this run is left in any home
all=""
for h in "$H1" "$H2" "$H3" "$H4" "$H6"; do
    all="$all$(ls "$h/run" 2>/dev/null | grep '\.sock$')"
done
for s in $S1 $S2 $S3 $S4 $S5 $S5B $S7 $S8 $S9 $S10 $S11 $S12; do
    [ -e "$CG2/bottle/$s" ] && all="$all cgroup:$s"
    [ -e "$BPFFS/bottle/$s" ] && all="$all pins:$s"
    [ -e "/run/bottle/netns/bottle-$s" ] || [ -e "/run/netns/bottle-$s" ] && all="$all netns:$s"
done
if [ -z "$all" ]; then ok "no socket, cgroup, pin or namespace of this run is left"; else fail "final" "$all"; fi
