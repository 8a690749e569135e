#!/bin/sh
# The host side of a bottle, attacked by a second local user the test creates:
# under sudo, symlinks planted in the user's ~/.bottle (state, run, the
# bottle's own directories) and a `ledger:` path in the user's settings.yml
# redirect nothing root writes, because root keeps a user's bottles in
# /var/lib/bottle/<uid> (root-only) and the user cannot touch it while a
# bottle runs; the user cannot send a UDP datagram or open a TCP connection
# to a running agent; `bottle cleanup --dry-run` shows the user (and sudo)
# none of root's bottles, and `bottle stop` under sudo cannot stop them; the
# user cannot open a bottle's namespace file; two bottles' sidecars and agents
# run as ids of their own, and one sidecar's id cannot read the other's CA key.
. "$BOTTLE_SRC/tests/lib.sh"

N=16
plan $N

if ! is_root; then
    for i in $(seq 1 $N); do skip "host_side $i" kernel "needs root"; done
    exit 0
fi

W=$T_TMP
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
U=bhs$(rand 3)
UH=$(mktemp -d /tmp/bottle-hs-home.XXXXXX)
RUNNING=""
had_var_lib=$([ -d /var/lib/bottle ] && echo yes || echo no)
cleanup() {
    for p in $RUNNING; do kill -TERM "$p" 2>/dev/null; done
    for p in $RUNNING; do wait "$p" 2>/dev/null; done
    BOTTLE_HOME=$RH "$BOTTLE" cleanup >/dev/null 2>&1
    [ -n "${UUID:-}" ] && sudo_bottle cleanup >/dev/null 2>&1
    pkill -KILL -u "$U" 2>/dev/null
    userdel "$U" 2>/dev/null
    [ -n "${UUID:-}" ] && rm -rf "/var/lib/bottle/$UUID"
    [ "$had_var_lib" = no ] && rmdir /var/lib/bottle 2>/dev/null
    rm -rf "$UH" "$T_TMP"
}
trap cleanup EXIT
unset SUDO_UID SUDO_GID SUDO_USER

CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
BPFFS=$(awk '$9 == "bpf" {print $5; exit}' /proc/self/mountinfo)
POOL_LO=6553600
POOL_HI=6561791

# ---- the second user, and the homes ----------------------------------------------------
useradd -M -d "$UH" -s /bin/sh "$U" || { echo "Bail out! cannot create user $U"; exit 1; }
UUID=$(id -u "$U")
UGID=$(id -g "$U")
DH=/var/lib/bottle/$UUID
chown "$U:" "$UH"
chmod 0755 "$UH"
as_user() { runuser -u "$U" -- env -u BOTTLE_HOME HOME="$UH" "$@"; }
sudo_bottle() { env -u BOTTLE_HOME SUDO_UID="$UUID" SUDO_GID="$UGID" SUDO_USER="$U" HOME="$UH" "$BOTTLE" "$@"; }

RH=$W/home # plain root's $BOTTLE_HOME
mkdir -p "$RH/agents" "$RH/bottles"
# The agent: records what reaches its UDP and TCP ports until told to stop.
cat >"$W/agent.py" <<'EOF'
import os, select, socket, time
a1 = os.environ["HTTP_PROXY"].split("//")[1].split(":")[0]
p = a1.split(".")
open("addr.tmp", "w").write(".".join(p[:3] + [str(int(p[3]) + 1)]))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 40000))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 40001))
t.listen(4)
got = open("got", "a", buffering=1)
# The control: the bottle's own loopback reaches the socket.
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"self", ("127.0.0.1", 40000))
os.rename("addr.tmp", "addr")
end = time.time() + 90
while time.time() < end and not os.path.exists("stop"):
    r, _, _ = select.select([u, t], [], [], 0.1)
    if u in r:
        got.write("udp:%s\n" % u.recv(64).decode(errors="replace"))
    if t in r:
        c, _ = t.accept()
        got.write("tcp:accepted\n")
        c.close()
raise SystemExit(int(open("exit_code").read()) if os.path.exists("exit_code") else 0)
EOF
bottle_md='---
agent_provider:
  template: generic
  command: [python3, agent.py]
egress:
  routes:
    - host: api.test
---
A host-side test bottle.
'
printf '%s' "$bottle_md" >"$RH/bottles/hs.md"
printf -- '---\nbottle: hs\n---\nRun the host-side checks.\n' >"$RH/agents/hs.md"
mkdir -p "$UH/.bottle/agents" "$UH/.bottle/bottles"
printf '%s' "$bottle_md" >"$UH/.bottle/bottles/hs.md"
printf -- '---\nbottle: hs\n---\nPROMPT-FROM-THE-USER\n' >"$UH/.bottle/agents/hs.md"
chown -R "$U:" "$UH/.bottle"

# workspace NAME [OWNER]: a fresh workspace with the agent in it.
workspace() {
    ws=$W/ws-$1
    [ "${2:-}" ] && ws=$UH/ws-$1
    mkdir -p "$ws"
    cp "$W/agent.py" "$ws/"
    chmod 0777 "$ws"
    [ "${2:-}" ] && chown -R "$2:" "$ws"
    echo "$ws"
}
wait_file() {
    i=0
    while [ ! -e "$1" ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
    [ -e "$1" ]
}
wait_pid() {
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    wait "$1" 2>/dev/null
}
# start_bg OUT WS [sudo] ARGS...: `bottle start hs` in the background; its pid in $BG.
start_bg() {
    out=$1 ws=$2
    shift 2
    if [ "${1:-}" = sudo ]; then
        shift
        (cd "$ws" && exec env -u BOTTLE_HOME SUDO_UID="$UUID" SUDO_GID="$UGID" SUDO_USER="$U" \
            HOME="$UH" "$BOTTLE" start hs --cwd "$ws" "$@" >"$out" 2>"$out.err") &
    else
        (cd "$ws" && BOTTLE_HOME=$RH exec "$BOTTLE" start hs --cwd "$ws" "$@" >"$out" 2>"$out.err") &
    fi
    BG=$!
    RUNNING="$RUNNING $BG"
}
slug_of() { sed -n '1s/^bottle: //p' "$1"; }
stop_bg() { # WS PID
    touch "$1/stop"
    wait_pid "$2"
}
status_ids() { # PID: "uid gid" (real)
    awk '/^Uid:/ {u=$2} /^Gid:/ {g=$2} END {print u, g}' "/proc/$1/status" 2>/dev/null
}
sidecar_pid() { pgrep -f "bottle-proxy --config $1/state/$2/proxy/config.json" | head -1; }
agent_pid() { # the agent's python process in the bottle's agent cgroup
    for p in $(cat "$CG2/bottle/$1/agent/cgroup.procs" 2>/dev/null); do
        grep -q agent.py "/proc/$p/cmdline" 2>/dev/null && echo "$p" && return
    done
}
in_pool() { [ "$1" -ge $POOL_LO ] && [ "$1" -le $POOL_HI ]; }

# ---- 1-5: under sudo, root writes only where only root can ----------------------------
VICTIM=$W/victim # root-only, with something in it
mkdir -p "$VICTIM/locked"
echo precious >"$VICTIM/keep"
chmod 0700 "$VICTIM" "$VICTIM/locked"
victim_state() { (cd "$VICTIM" && find . -printf '%p %m %u:%g\n' | sort) 2>&1; }
V0=$(victim_state)
# The user plants symlinks where root used to write: state/, run/, and a bottle's own dirs.
as_user ln -s "$VICTIM" "$UH/.bottle/state"
as_user ln -s "$VICTIM" "$UH/.bottle/run"
WSU=$(workspace u1 "$U")
echo 0 >"$WSU/exit_code"
start_bg "$W/u1.out" "$WSU" sudo --label hslbl
P1=$BG
wait_file "$WSU/addr"
S1=$(slug_of "$W/u1.out")
# 1: where things are
dh_mode=$(stat -c '%U:%G %a' "$DH" 2>&1)
ok1=yes
[ "$dh_mode" = "root:root 700" ] || ok1="data home is $dh_mode"
[ -d "$DH/state/$S1" ] && [ -S "$DH/run/$S1.sock" ] || ok1="no state or socket in $DH"
[ "$(cat "$DH/state/$S1/bottle/prompt.md" 2>/dev/null)" = "PROMPT-FROM-THE-USER" ] ||
    ok1="prompt.md not in the data home"
sudo_bottle list active | grep -q "^hslbl .* running$" || ok1="sudo list active: $(sudo_bottle list active 2>&1)"
if [ "$ok1" = yes ] && [ "$S1" = hslbl ]; then
    ok "sudo: state, socket and prompt.md of the user's bottle are in $DH (root:root 0700), listed active"
else
    fail "sudo data home" "$ok1" "$(cat "$W/u1.out.err")"
fi
# 2: the user cannot reach or swap what root works in while the bottle runs
swap=$(as_user sh -c "mv '$DH/state' '$DH/s2'; ln -s '$VICTIM' '$DH/state/x'; ls '$DH'" 2>&1)
as_user sh -c "rm -f '$UH/.bottle/state'; ln -s '$VICTIM/locked' '$UH/.bottle/state'"
ids=$(status_ids "$(sidecar_pid "$DH" "$S1")")
aid=$(status_ids "$(agent_pid "$S1")")
proxy_own=$(stat -c '%U:%g %a' "$DH/state/$S1/proxy" 2>&1)
if echo "$swap" | grep -q "Permission denied" && [ -d "$DH/state/$S1" ]; then
    ok "sudo: the user cannot rename or plant anything in the data home of a running bottle"
else
    fail "data home swap" "$swap"
fi
# 3: the sidecar runs as a pool id, the agent as the invoking user; the sidecar's files are its group's
set -- $ids
if in_pool "${1:-0}" && [ "$aid" = "$UUID $UGID" ] && [ "$proxy_own" = "root:$2 750" ]; then
    ok "sudo: the sidecar runs as pool id $1, the agent as the user; proxy/ is root:$2 0750"
else
    fail "sudo ids" "sidecar '$ids' agent '$aid' proxy '$proxy_own'"
fi
stop_bg "$WSU" "$P1"
rc1=$?
# 4: nothing root did landed in the victim, whatever the symlinks said; cleanup neither
sudo_bottle cleanup >"$W/u-cleanup.out" 2>&1
V1=$(victim_state)
if [ $rc1 -eq 0 ] && [ "$V0" = "$V1" ] && [ ! -e "$DH/state/$S1" ] && [ -L "$UH/.bottle/run" ]; then
    ok "sudo: state and run symlinked, or swapped while running, redirect nothing (start, teardown, cleanup)"
else
    fail "planted symlinks" "rc=$rc1" "before: $V0" "after: $V1" "$(cat "$W/u1.out.err" "$W/u-cleanup.out")"
fi
# 5: a ledger path of the user's choosing is refused under sudo, and nothing is created there
as_user rm -f "$UH/.bottle/state"
printf 'ledger: %s/sub/evil.db\n' "$VICTIM" >"$UH/.bottle/settings.yml"
chown "$U:" "$UH/.bottle/settings.yml"
WSL=$(workspace u2 "$U")
(cd "$WSL" && sudo_bottle start hs --cwd "$WSL" >"$W/u2.out" 2>"$W/u2.err")
rc=$?
printf 'ledger: %s/.bottle/mine.db\n' "$UH" >"$UH/.bottle/settings.yml"
(cd "$WSL" && sudo_bottle start hs --cwd "$WSL" >"$W/u3.out" 2>"$W/u3.err")
rc2=$?
if [ $rc -eq 3 ] && [ $rc2 -eq 3 ] && grep -q "not used under sudo" "$W/u2.err" &&
    [ ! -e "$VICTIM/sub" ] && [ ! -e "$UH/.bottle/mine.db" ] && [ "$V0" = "$(victim_state)" ]; then
    ok "sudo: a settings ledger outside the user's data home is refused (exit 3), nothing created"
else
    fail "ledger path" "rc=$rc rc2=$rc2" "$(cat "$W/u2.err" "$W/u3.err")" "$(ls -la "$VICTIM")"
fi
rm -f "$UH/.bottle/settings.yml"

# ---- 6-16: two bottles of root's, and the other user -----------------------------------
WS1=$(workspace r1)
WS2=$(workspace r2)
start_bg "$W/r1.out" "$WS1"
R1=$BG
start_bg "$W/r2.out" "$WS2"
R2=$BG
wait_file "$WS1/addr"
wait_file "$WS2/addr"
S1=$(slug_of "$W/r1.out")
S2=$(slug_of "$W/r2.out")
A1=$(cat "$WS1/addr" 2>/dev/null)
# 6-7: the other user sends into the agent's address: a datagram and a TCP connect
send=$(as_user python3 -c '
import socket, sys
a = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    u.sendto(b"from-user", (a, 40000))
s = socket.socket()
s.settimeout(2)
try:
    s.connect((a, 40001))
    print("tcp=connected")
except OSError as e:
    print("tcp=%s" % type(e).__name__)
' "$A1" 2>&1)
sleep 0.5
got=$(cat "$WS1/got" 2>/dev/null)
if [ -n "$A1" ] && echo "$got" | grep -q "^udp:self$" && ! echo "$got" | grep -q "from-user"; then
    ok "UDP from another user to the agent's address $A1 never arrives (the bottle's own does)"
else
    fail "UDP into the bottle" "addr=$A1" "got: $got" "$send"
fi
if echo "$send" | grep -q "^tcp=" && ! echo "$send" | grep -q "tcp=connected" &&
    ! echo "$got" | grep -q "tcp:accepted"; then
    ok "TCP from another user to the agent fails and nothing is accepted ($send)"
else
    fail "TCP into the bottle" "$send" "got: $got"
fi
# 8: the other user cannot open (and so cannot hold) the bottle's namespace file
ns=/run/bottle/netns/bottle-$S1
hold=$(as_user sh -c "exec 3<'$ns' && echo opened" 2>&1)
if [ -e "$ns" ] && ! echo "$hold" | grep -q opened && [ ! -e "/run/netns/bottle-$S1" ] &&
    [ "$(stat -c '%U %a' /run/bottle/netns)" = "root 700" ]; then
    ok "another user cannot open the namespace file (/run/bottle/netns is root 0700)"
else
    fail "netns file" "$hold" "$(ls -la /run/bottle/netns /run/netns 2>&1)"
fi
# 9-10: two bottles' sidecars and agents have ids of their own
set -- $(status_ids "$(sidecar_pid "$RH" "$S1")") $(status_ids "$(sidecar_pid "$RH" "$S2")")
SC1=${1:-0} SG1=${2:-0} SC2=${3:-0} SG2=${4:-0}
set -- $(status_ids "$(agent_pid "$S1")") $(status_ids "$(agent_pid "$S2")")
AG1=${1:-0} AG2=${3:-0}
if in_pool "$SC1" && in_pool "$SC2" && [ "$SC1" != "$SC2" ] && [ "$SG1" != "$SG2" ]; then
    ok "two bottles' sidecars run as different pool ids ($SC1, $SC2)"
else
    fail "sidecar ids" "$SC1:$SG1 $SC2:$SG2" "$(cat "$W/r1.out.err" "$W/r2.out.err")" \
        "$(tail -3 "$RH/state/$S1/proxy.log" "$RH/state/$S2/proxy.log" 2>&1)"
fi
if in_pool "$AG1" && in_pool "$AG2" && [ "$AG1" != "$AG2" ] &&
    [ "$(printf '%s\n' "$SC1" "$SC2" "$AG1" "$AG2" | sort -u | wc -l)" -eq 4 ]; then
    ok "two bottles' agents run as different pool ids ($AG1, $AG2), none a sidecar's"
else
    fail "agent ids" "$AG1 $AG2 (sidecars $SC1 $SC2)"
fi
# 11: sidecar 1's id cannot read sidecar 2's CA key: not by path, not through sidecar 2's /proc
KEY2=$RH/state/$S2/proxy/ca/ca-key.pem
P2=$(sidecar_pid "$RH" "$S2")
PU=$SC1 PG=$SG1
in_pool "$PU" || PU=65534 PG=65534 # no sidecar found: never probe as root
steal=$(setpriv --reuid="$PU" --regid="$PG" --clear-groups sh -c "
    cat '$KEY2' >/dev/null && echo STOLEN-PATH
    for f in /proc/$P2/fd/*; do cat \"\$f/ca/ca-key.pem\" 2>/dev/null && echo STOLEN-FD; done
    cat /proc/$P2/root$KEY2 2>/dev/null && echo STOLEN-ROOT
    ls /proc/$P2/fd 2>&1 | head -1" 2>&1)
# Even handed a descriptor of sidecar 2's CA directory (past every 0700 parent), the key's
# mode and group stop sidecar 1: with one shared sidecar group they would not.
steal="$steal $(setpriv --reuid="$PU" --regid="$PG" --clear-groups sh -c \
    'cat /proc/self/fd/3/ca-key.pem >/dev/null && echo STOLEN-DIRFD' 3<"$RH/state/$S2/proxy/ca" 2>&1)"
key_own=$(stat -c '%U:%g %a' "$KEY2" 2>&1)
if [ -s "$KEY2" ] && [ "$key_own" = "root:$SG2 640" ] && ! echo "$steal" | grep -q STOLEN; then
    ok "sidecar 1's id cannot read sidecar 2's CA key (root:$SG2 0640; path, /proc, a dir fd refused)"
else
    fail "CA key across sidecars" "$key_own" "$steal"
fi
# 12: a crashed bottle of root's, for the listings
WS3=$(workspace r3)
start_bg "$W/r3.out" "$WS3"
R3=$BG
wait_file "$WS3/addr"
S3=$(slug_of "$W/r3.out")
sleep 0.3
kill -KILL "$R3" 2>/dev/null
wait "$R3" 2>/dev/null
root_dry=$(BOTTLE_HOME=$RH "$BOTTLE" cleanup --dry-run 2>&1)
user_dry=$(as_user "$BOTTLE" cleanup --dry-run 2>&1)
sudo_dry=$(sudo_bottle cleanup --dry-run 2>&1)
if echo "$root_dry" | grep -q "$S3" && ! echo "$user_dry" | grep -q "$S3\|$S1\|$S2\|bottle-" &&
    ! echo "$sudo_dry" | grep -q "$S3\|$S1\|$S2"; then
    ok "cleanup --dry-run lists root's crashed bottle to root only, not to the user or sudo"
else
    fail "cleanup listing" "root: $root_dry" "user: $user_dry" "sudo: $sudo_dry"
fi
# 13: under sudo, the user cannot stop, freeze, cut off or watch root's bottle either
stop_out=$(sudo_bottle stop "$S2" --timeout 2 2>&1)
src=$?
acts=""
for cmd in "freeze $S2" "cutoff $S2" "events $S2" "usage $S2"; do
    # shellcheck disable=SC2086
    sudo_bottle $cmd >/dev/null 2>&1
    acts="$acts $?"
done
sudo_bottle cutoff --all >/dev/null 2>&1
all_rc=$?
usage_all=$(sudo_bottle usage 2>&1)
frozen=$(cat "$CG2/bottle/$S2/agent/cgroup.freeze" 2>/dev/null)
if [ $src -eq 2 ] && [ "$acts" = " 2 2 2 2" ] && [ $all_rc -eq 3 ] && [ "$frozen" = 0 ] &&
    ! echo "$usage_all" | grep -q "$S1\|$S2" && kill -0 "$R2" 2>/dev/null && [ -e "$CG2/bottle/$S2" ]; then
    ok "sudo: stop, freeze, cutoff, events, usage of another user's bottle refused; --all refused (exit 3)"
else
    fail "sudo acts on others" "stop rc=$src: $stop_out" "acts:$acts all:$all_rc frozen:$frozen" "$usage_all"
fi
BOTTLE_HOME=$RH "$BOTTLE" cleanup "$S3" >"$W/cleanup3.out" 2>&1
crc=$?
# 14: teardown of the two running bottles releases everything
stop_bg "$WS1" "$R1"
stop_bg "$WS2" "$R2"
left=""
for s in "$S1" "$S2" "$S3"; do
    [ -e "$CG2/bottle/$s" ] && left="$left cgroup:$s"
    [ -e "$BPFFS/bottle/$s" ] && left="$left pins:$s"
    [ -e "/run/bottle/netns/bottle-$s" ] && left="$left netns:$s"
    [ -e "$RH/state/$s" ] && left="$left state:$s"
done
for id in "$SC1" "$SC2" "$AG1" "$AG2"; do
    pgrep -u "$id" >/dev/null 2>&1 && left="$left process-of:$id"
done
if [ $crc -eq 0 ] && [ -z "$left" ]; then
    ok "teardown and cleanup leave nothing, and no process keeps a pool id"
else
    fail "teardown" "$left" "$(cat "$W/cleanup3.out")"
fi
# 15: a freed id comes back to the next bottle, still never shared with a live one
WS4=$(workspace r4)
start_bg "$W/r4.out" "$WS4"
R4=$BG
wait_file "$WS4/addr"
S4=$(slug_of "$W/r4.out")
set -- $(status_ids "$(sidecar_pid "$RH" "$S4")")
SC4=${1:-0}
stop_bg "$WS4" "$R4"
if in_pool "$SC4" && [ "$SC4" = "$(printf '%s\n' "$SC1" "$SC2" | sort -n | head -1)" ]; then
    ok "ids are released at teardown: the next bottle's sidecar gets $SC4 again"
else
    fail "id reuse" "$SC4 after $SC1 $SC2"
fi
# 16: the user's own bottles stay visible to the user under sudo
WSU2=$(workspace u4 "$U")
start_bg "$W/u4.out" "$WSU2" sudo
U4=$BG
wait_file "$WSU2/addr"
SU=$(slug_of "$W/u4.out")
kill -KILL "$U4" 2>/dev/null
wait "$U4" 2>/dev/null
mine=$(sudo_bottle cleanup --dry-run 2>&1)
sudo_bottle cleanup >"$W/u4-cleanup.out" 2>&1
if echo "$mine" | grep -q "would remove $SU: state $DH/state/$SU" && [ ! -e "$DH/state/$SU" ] &&
    [ ! -e "$CG2/bottle/$SU" ]; then
    ok "sudo: the user's own crashed bottle is listed and cleaned up from $DH"
else
    fail "own cleanup" "$mine" "$(cat "$W/u4-cleanup.out")"
fi
