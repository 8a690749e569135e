#!/bin/sh
# Resource limits and setuid files, attacked from inside a real native bottle
# (`bottle start`, a generic agent that is a shell and Python script). The
# bottle declares pids 64, memory 128M, cpus 0.25 and tmpfs 16M. From inside:
# a bounded fork bomb gets EAGAIN below the limit; a memory hog is OOM-killed
# while the agent survives and the sidecar still answers; filling /tmp,
# /dev/shm and the home hits ENOSPC at 16M; chmod u+s, chmod g+s,
# open(O_CREAT, 04755), mkdir(02755) and mknod(04755) in the workspace get
# EPERM and openat2 ENOSYS; a setuid-root binary planted in the workspace
# before start runs as the agent (the workspace is nosuid); the init's
# environ cannot be read. From the host while the bottle waits: the limit
# files hold the declared values (in cgroup2 or the v1 hierarchies), the CPU
# quota throttled the agent, a process of the agent's uid cannot read the
# init's environ (but can read another process of that uid), and nothing
# with a setuid or setgid bit was left in the workspace. Teardown leaves no
# cgroup in any hierarchy. Last, with the pids hierarchy detached in a private
# mount namespace (a host without the controller), a bottle with a pids limit
# is refused with exit 3 before anything is made, and one with `pids: max`
# runs. Loops are bounded.
. "$BOTTLE_SRC/tests/lib.sh"

N=21
plan $N

if ! is_root; then
    for i in $(seq 1 $N); do skip "limits $i" kernel "needs root"; done
    exit 0
fi

W=$T_TMP
FIX=$BOTTLE_SRC/tests/fixtures
UP_PID=""
START_PID=""
NOBODY_PID=""
cleanup() {
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
    [ -n "$NOBODY_PID" ] && kill "$NOBODY_PID" 2>/dev/null
    [ -n "$START_PID" ] && kill "$START_PID" 2>/dev/null && wait "$START_PID" 2>/dev/null
    rm -rf "$T_TMP"
}
trap cleanup EXIT

export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
TOKEN=lim-tok-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export LIM_TOKEN="$TOKEN"
unset SUDO_UID SUDO_GID
CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)

# ---- the fake upstream (TLS) --------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=limits upstream CA" -days 2 -out "$W/uca.pem" 2>/dev/null
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

# ---- the bottle and its agent --------------------------------------------------------
cat >"$BOTTLE_HOME/bottles/lim.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, $WS/agent.sh]
egress:
  routes:
    - host: api.test:$UP
      auth:
        scheme: Bearer
        token_ref: LIM_TOKEN
limits:
  pids: 64
  memory: 128M
  cpus: 0.25
  tmpfs: 16M
---
A bottle with small limits.
EOF
printf -- '---\nbottle: lim\n---\nTry to exhaust the host.\n' >"$BOTTLE_HOME/agents/lim.md"

# A setuid-root program planted in the workspace before the bottle starts.
cp /usr/bin/id "$WS/suid-id"
chown 0:0 "$WS/suid-id"
chmod 4755 "$WS/suid-id"

cat >"$WS/agent.sh" <<'EOF'
cd "$(dirname "$0")"
R=$PWD/result
: >"$R"
echo "uid=$(id -u)" >>"$R"
echo "suid_euid=$(./suid-id -u)" >>"$R"
: >plain
if chmod u+s plain 2>"$PWD/chmod.err"; then echo "chmod_tool=ok" >>"$R"; else
    grep -q "Operation not permitted" "$PWD/chmod.err" && echo "chmod_tool=EPERM" >>"$R"
fi
if cat /proc/1/environ >/dev/null 2>&1; then echo "init_environ=readable" >>"$R"; else
    echo "init_environ=unreadable" >>"$R"
fi
python3 - "$R" <<'PY'
import ctypes, errno, os, stat, subprocess, sys, time
r = open(sys.argv[1], "a", buffering=1)  # line by line: a kill keeps what was found
def name(e): return errno.errorcode.get(e, str(e))
def attempt(key, fn):
    try:
        fn()
        r.write("%s=ok\n" % key)
    except OSError as e:
        r.write("%s=%s\n" % (key, name(e.errno)))
r.write("ws_nosuid=%d\n" % (1 if os.statvfs(".").f_flag & os.ST_NOSUID else 0))
attempt("chmod_suid", lambda: os.chmod("plain", 0o4755))
attempt("chmod_sgid", lambda: os.chmod("plain", 0o2755))
attempt("chmod_plain", lambda: os.chmod("plain", 0o755))
attempt("open_suid", lambda: os.close(os.open("made", os.O_CREAT | os.O_WRONLY, 0o4755)))
attempt("mkdir_sgid", lambda: os.mkdir("madedir", 0o2755))
attempt("mknod_suid", lambda: os.mknod("madenod", stat.S_IFREG | 0o4755))
libc = ctypes.CDLL(None, use_errno=True)
how = (ctypes.c_uint64 * 3)(0, 0, 0)
rc = libc.syscall(437, -100, b"plain", ctypes.byref(how), 24)  # openat2
r.write("openat2=%s\n" % ("ok" if rc >= 0 else name(ctypes.get_errno())))

# A bounded fork bomb: every child waits; the limit must refuse one.
kids, err = [], "none"
for i in range(200):
    try:
        pid = os.fork()
    except OSError as e:
        err = name(e.errno)
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
r.write("forks=%d\nfork_err=%s\n" % (len(kids), err))
for k in kids:
    os.kill(k, 9)
    os.waitpid(k, 0)

# A memory hog: 512M written in a child of a 128M bottle.
p = subprocess.run([sys.executable, "-c", "b = b'x' * (512 << 20); print(len(b))"],
                   capture_output=True)
r.write("hog_rc=%d\n" % p.returncode)

# Each tmpfs the agent can write stops at its size.
for key, path in (("tmp", "/tmp/fill"), ("shm", "/dev/shm/fill"),
                  ("home", os.path.join(os.environ["HOME"], "fill"))):
    written, err = 0, "none"
    chunk = b"\0" * (1 << 20)
    try:
        with open(path, "wb", buffering=0) as f:
            for i in range(64):
                written += f.write(chunk)
    except OSError as e:
        err = name(e.errno)
    r.write("fill_%s=%s\nfill_%s_mb=%d\n" % (key, err, key, written >> 20))
    try:
        os.unlink(path)
    except OSError:
        pass

# A quarter of a CPU: 0.3 s of CPU time spun is throttled (the host reads the count), however
# busy the host is; bounded in wall time.
t = time.monotonic()
while time.process_time() < 0.3 and time.monotonic() - t < 30:
    pass
PY
# After all that, the sidecar still answers.
code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "https://api.test:${UP}/echo")
echo "after=$code" >>"$R"
touch ready
i=0
while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
exit 0
EOF
sed -i "s|\${UP}|$UP|" "$WS/agent.sh"

res() { grep -q "^$1\$" "$WS/result"; }
val() { sed -n "s/^$1=//p" "$WS/result" | head -n1; }
check_res() { if res "$2"; then ok "$1"; else fail "$1" "$(tr '\n' ' ' <"$WS/result" 2>/dev/null)" "$(cat "$W/err" 2>/dev/null)"; fi; }

# ---- the plan shows the limits ---------------------------------------------------------
DRY=$("$BOTTLE" start lim --cwd "$WS" --dry-run 2>&1)
JSON=$("$BOTTLE" start lim --cwd "$WS" --dry-run --format json 2>&1)
if echo "$DRY" | grep -q "limits       pids 64 (bottle), memory 128M without swap (bottle), cpus 0.25 (bottle), tmpfs 16M each (bottle)" &&
    echo "$JSON" | python3 -c 'import json,sys; l=json.load(sys.stdin)["limits"]; sys.exit(0 if (l["pids"]["value"], l["memory"]["value"], l["cpus"]["value"], l["tmpfs"]["value"], l["swap"]) == (64, 134217728, 0.25, 16777216, 0) else 1)'; then
    ok "--dry-run shows the limits (text and JSON)"
else
    fail "--dry-run limits" "$DRY" "$JSON"
fi

# ---- the run ----------------------------------------------------------------------------
(cd "$WS" && exec "$BOTTLE" start lim --cwd "$WS" --resolve "api.test:$UP:127.0.0.1" \
    --upstream-ca "$W/uca.pem" >"$W/out" 2>"$W/err") &
START_PID=$!
i=0
while [ ! -e "$WS/ready" ] && [ $i -lt 1200 ] && kill -0 "$START_PID" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
SLUG=$(sed -n '1s/^bottle: //p' "$W/out")

# The bottle's init: the process of its agent cgroup that is PID 1 of its namespace.
INIT=""
for p in $(cat "$CG2/bottle/$SLUG/agent/cgroup.procs" 2>/dev/null); do
    [ "$(awk '/^NSpid:/ {print $NF}' "/proc/$p/status" 2>/dev/null)" = 1 ] && INIT=$p
done

# The file of a limit: in the init's cgroup of the v1 hierarchy carrying the controller, else
# on its cgroup2 cgroup.
limit_file() { # CONTROLLER V2_FILE V1_FILE
    v1=$(awk -v c="$1" '$9 == "cgroup" { n = split($NF, o, ","); for (k = 1; k <= n; k++) if (o[k] == c) { print $5; exit } }' /proc/self/mountinfo)
    if [ -n "$v1" ] && ! grep -qw "$1" "$CG2/cgroup.controllers"; then
        rel=$(awk -F: -v c="$1" '{ n = split($2, o, ","); for (k = 1; k <= n; k++) if (o[k] == c) print $3 }' "/proc/$INIT/cgroup")
        echo "$v1$rel/$3"
    else
        echo "$CG2$(sed -n 's/^0:://p' "/proc/$INIT/cgroup")/$2"
    fi
}
PIDS_MAX=$(cat "$(limit_file pids pids.max pids.max)" 2>&1)
MEM_MAX=$(cat "$(limit_file memory memory.max memory.limit_in_bytes)" 2>&1)
if [ -e "$(limit_file memory memory.swap.max memory.memsw.limit_in_bytes)" ]; then
    SWAP=$(cat "$(limit_file memory memory.swap.max memory.memsw.limit_in_bytes)")
else
    SWAP=swappiness:$(cat "$(limit_file memory memory.swap.max memory.swappiness)")
fi
CPU_MAX=$(cat "$(limit_file cpu cpu.max cpu.cfs_quota_us)" 2>&1)
THROTTLED=$(awk '$1 == "nr_throttled" {print $2}' "$(limit_file cpu cpu.stat cpu.stat)" 2>/dev/null)

# Another process of the agent's uid on the host: it reads its own kind, not the init. The
# agent's uid is the bottle's own (the id pool), as it reported from inside.
AUID=$(val uid)
[ -n "$AUID" ] || AUID=65534
setpriv --reuid="$AUID" --regid="$AUID" --clear-groups sleep 30 &
NOBODY_PID=$!
sleep 0.2
if setpriv --reuid="$AUID" --regid="$AUID" --clear-groups cat "/proc/$NOBODY_PID/environ" >/dev/null 2>&1; then
    OTHER=readable
else
    OTHER=unreadable
fi
if [ -n "$INIT" ] && setpriv --reuid="$AUID" --regid="$AUID" --clear-groups cat "/proc/$INIT/environ" >"$W/init.environ" 2>/dev/null; then
    INIT_ENV=readable
else
    INIT_ENV=unreadable
fi
kill "$NOBODY_PID" 2>/dev/null
NOBODY_PID=""
PROXY_ALIVE=no
pgrep -f "bottle-proxy --config $BOTTLE_HOME" >/dev/null && PROXY_ALIVE=yes
SETID_LEFT=$(find "$WS" -perm /6000 ! -name suid-id 2>/dev/null)

touch "$WS/go"
wait "$START_PID"
RC=$?
START_PID=""

# ---- from inside -------------------------------------------------------------------------
if [ $RC -eq 0 ] && [ -n "$SLUG" ] && [ -n "$INIT" ] && [ "$(val uid)" -ge 6553600 ] 2>/dev/null; then
    ok "the bottle ran as its own pool uid $(val uid) and exited 0 (slug $SLUG, init pid $INIT)"
else
    fail "the run" "rc=$RC slug=$SLUG init=$INIT" "$(cat "$W/err")" "$(tr '\n' ' ' <"$WS/result" 2>/dev/null)"
fi
FORKS=$(val forks)
if res "fork_err=EAGAIN" && [ "${FORKS:-99}" -lt 64 ] && [ "${FORKS:-0}" -gt 32 ]; then
    ok "a fork bomb gets EAGAIN at the pids limit ($FORKS children of 64)"
else
    fail "fork bomb" "forks=$FORKS err=$(val fork_err)"
fi
if res "hog_rc=-9" && res "after=200"; then
    ok "a 512M hog is OOM-killed (SIGKILL) in a 128M bottle; the agent lives on and the sidecar answers"
else
    fail "memory hog" "hog_rc=$(val hog_rc) after=$(val after)" "$(cat "$W/err")"
fi
for t in tmp shm home; do
    MB=$(val "fill_${t}_mb")
    if res "fill_$t=ENOSPC" && [ "${MB:-99}" -le 16 ] && [ "${MB:-0}" -ge 15 ]; then
        ok "filling $t stops with ENOSPC at the 16M tmpfs size ($MB M written)"
    else
        fail "fill $t" "err=$(val "fill_$t") mb=$MB"
    fi
done
if res "chmod_suid=EPERM" && res "chmod_sgid=EPERM" && res "chmod_tool=EPERM" && res "chmod_plain=ok"; then
    ok "chmod u+s and g+s in the workspace get EPERM; chmod 0755 works"
else
    fail "chmod setuid" "$(grep chmod "$WS/result" | tr '\n' ' ')"
fi
if res "open_suid=EPERM" && res "mkdir_sgid=EPERM" && res "mknod_suid=EPERM" &&
    [ ! -e "$WS/made" ] && [ ! -e "$WS/madedir" ] && [ ! -e "$WS/madenod" ]; then
    ok "open(O_CREAT, 04755), mkdir(02755) and mknod(04755) get EPERM and create nothing"
else
    fail "create with setuid" "$(grep -E 'open_|mkdir_|mknod_' "$WS/result" | tr '\n' ' ')"
fi
check_res "openat2 fails with ENOSYS (its mode is out of seccomp's sight)" "openat2=ENOSYS"
if [ -z "$SETID_LEFT" ]; then
    ok "no file with a setuid or setgid bit was left in the workspace"
else
    fail "setid files left" "$SETID_LEFT"
fi
if [ -n "$(val uid)" ] && res "suid_euid=$(val uid)" && res "ws_nosuid=1"; then
    ok "a setuid-root file planted before start runs as the agent: the workspace is nosuid"
else
    fail "planted setuid" "euid=$(val suid_euid) nosuid=$(val ws_nosuid)"
fi
check_res "the agent cannot read its init's environ (/proc/1/environ)" "init_environ=unreadable"

# ---- from the host -------------------------------------------------------------------------
if [ "$PIDS_MAX" = 64 ]; then ok "pids limit 64 on the agent's cgroup"; else fail "pids.max" "$PIDS_MAX"; fi
case "$SWAP" in 0 | 134217728 | swappiness:0) swap_ok=1 ;; *) swap_ok= ;; esac
if [ "$MEM_MAX" = 134217728 ] && [ -n "$swap_ok" ]; then
    ok "memory limit 128M with no swap ($SWAP)"
else
    fail "memory limit" "max=$MEM_MAX swap=$SWAP"
fi
case "$CPU_MAX" in "25000 100000" | 25000) cpu_ok=1 ;; *) cpu_ok= ;; esac
if [ -n "$cpu_ok" ] && [ "${THROTTLED:-0}" -gt 0 ]; then
    ok "cpus 0.25: quota 25ms per 100ms, and the agent was throttled ($THROTTLED times)"
else
    fail "cpu limit" "cpu=$CPU_MAX throttled=$THROTTLED"
fi
if [ "$INIT_ENV" = unreadable ] && [ "$OTHER" = readable ] && [ "$PROXY_ALIVE" = yes ]; then
    ok "a host process of the agent's uid cannot read the init's environ (it can read its own kind's)"
else
    fail "init environ from the host" "init=$INIT_ENV other=$OTHER proxy=$PROXY_ALIVE" \
        "token in it: $(grep -c "$TOKEN" "$W/init.environ" 2>/dev/null)"
fi
if grep -q "Bearer $TOKEN" "$W/up.log"; then ok "the upstream saw the injected token after the attacks"; else fail "token injection" "$(tail -n 3 "$W/up.log")"; fi

# ---- nothing left ----------------------------------------------------------------------------
LEFT=""
for m in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
    [ -n "$SLUG" ] && [ -e "$m/bottle/$SLUG" ] && LEFT="$LEFT $m/bottle/$SLUG"
done
pgrep -f "bottle-proxy --config $BOTTLE_HOME" >/dev/null && LEFT="$LEFT sidecar"
{ [ -e "/run/bottle/netns/bottle-$SLUG" ] || [ -e "/run/netns/bottle-$SLUG" ]; } && LEFT="$LEFT netns"
if [ -z "$LEFT" ]; then ok "teardown leaves no cgroup in any hierarchy, no sidecar, no netns"; else fail "teardown" "$LEFT"; fi

# ---- a host without the controller -------------------------------------------------------
cat >"$BOTTLE_HOME/bottles/limmax.md" <<EOF
---
agent_provider:
  template: generic
  command: [sh, -c, "exit 4"]
limits:
  pids: max
---
No process limit.
EOF
printf -- '---\nbottle: limmax\n---\nRun.\n' >"$BOTTLE_HOME/agents/limmax.md"
PIDS_V1=$(awk '$9 == "cgroup" { n = split($NF, o, ","); for (k = 1; k <= n; k++) if (o[k] == "pids") { print $5; exit } }' /proc/self/mountinfo)
if [ -n "$PIDS_V1" ] && ! grep -qw pids "$CG2/cgroup.controllers"; then
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m sh -c 'mount --make-rprivate / && umount -l "$1" || exit 90
        (cd "$2" && "$3" start lim --cwd "$2" --label lim-nopids >"$4/np.out" 2>"$4/np.err"); echo $? >"$4/np.rc"
        (cd "$2" && "$3" start limmax --cwd "$2" --label lim-max >"$4/mx.out" 2>"$4/mx.err"); echo $? >"$4/mx.rc"' \
        sh "$PIDS_V1" "$WS" "$BOTTLE" "$W"
    LEFT=""
    for m in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
        for l in lim-nopids lim-max; do [ -e "$m/bottle/$l" ] && LEFT="$LEFT $m/bottle/$l"; done
    done
    if [ "$(cat "$W/np.rc" 2>/dev/null)" = 3 ] &&
        grep -q "refused: limits: this host has no pids controller" "$W/np.err" &&
        grep -q "limits.pids: max" "$W/np.err" && [ ! -e "$BOTTLE_HOME/state/lim-nopids" ] && [ -z "$LEFT" ]; then
        ok "no pids controller: a pids limit is refused (exit 3) before anything is made"
    else
        fail "refused without the controller" "rc=$(cat "$W/np.rc" 2>/dev/null)" "$(cat "$W/np.err" 2>/dev/null)" "$LEFT"
    fi
    if [ "$(cat "$W/mx.rc" 2>/dev/null)" = 4 ] && [ -z "$LEFT" ]; then
        ok "no pids controller: a bottle with 'pids: max' runs (exit 4 passed through)"
    else
        fail "pids: max without the controller" "rc=$(cat "$W/mx.rc" 2>/dev/null)" "$(cat "$W/mx.err" 2>/dev/null)"
    fi
else
    skip "no pids controller: refused" "" "pids is in cgroup2 here; only a hybrid host can hide it"
    skip "no pids controller: max runs" "" "pids is in cgroup2 here; only a hybrid host can hide it"
fi
