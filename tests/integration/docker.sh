#!/bin/sh
# The Docker backend against a real engine this test starts itself: a private
# dockerd (own socket, data root, exec root and pid file, no bridge and no
# iptables, so host networking is untouched) and an offline image built from
# busybox-static plus a static probe. tests/helpers/docker_drive plays the
# controller: it makes the bottle's cgroup, BPF policy and veth, a stand-in
# sidecar on the veth's host address, and runs an agent script through
# backend_docker. Checked from inside the agent and from a separate
# `docker exec`: the sidecar is reachable; another host address, another port
# and UDP get EPERM from the BPF policy; counters move; cutoff stops traffic
# and restore brings it back; seccomp denies unshare and mount (and a run
# without it shows the check can fail); the exit code passes through; and
# nothing is left behind. Then the whole `bottle start --backend docker`, and
# `bottle commit` / `bottle start --resume` against the same engine, and the
# operator's terminal against a hostile agent (under a pty the test holds:
# TIOCSTI from every descriptor, OSC 52, the input queue, mountinfo). dockerd
# is stopped on exit.
. "$BOTTLE_SRC/tests/lib.sh"

N=58
plan $N

skip_all() {
    while [ "$T_N" -lt $N ]; do skip "docker: $1" kernel "$1"; done
    exit 0
}

is_root || skip_all "needs root"
for tool in dockerd docker busybox cc; do
    command -v $tool >/dev/null 2>&1 || skip_all "$tool is not installed (scripts/setup)"
done
DRIVE=$BUILD/tests/helpers/docker_drive
[ -x "$DRIVE" ] || skip_all "$DRIVE was not built"

W=$T_TMP
D=$W/d
mkdir -p "$D"
DPID=""
cleanup() {
    if [ -n "$DPID" ]; then
        for c in $(docker ps -aq 2>/dev/null); do docker rm -f "$c" >/dev/null 2>&1; done
        kill "$DPID" 2>/dev/null
        i=0
        while kill -0 "$DPID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$DPID" 2>/dev/null
    fi
    # Whatever the engine left mounted below our own directory.
    grep -o " ${D}[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null
    done
    rm -rf "$T_TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- the engine ---------------------------------------------------------------------
export DOCKER_HOST="unix://$D/docker.sock"
unset DOCKER_CONTEXT
dockerd --host "$DOCKER_HOST" --data-root "$D/data" --exec-root "$D/exec" \
    --pidfile "$D/dockerd.pid" --bridge none --iptables=false --ip6tables=false \
    --ip-masq=false --ip-forward=false --exec-opt native.cgroupdriver=cgroupfs \
    --log-level warn >"$W/dockerd.log" 2>&1 &
DPID=$!
i=0
until docker version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$DPID" 2>/dev/null; then
        fail "dockerd starts" "$(tail -n 5 "$W/dockerd.log")"
        skip_all "no engine"
    fi
    sleep 0.1
done
ok "a private dockerd answers on its own socket"

# ---- the offline images --------------------------------------------------------------
R=$W/rootfs
mkdir -p "$R/bin" "$R/sbin" "$R/usr/bin" "$R/usr/sbin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" \
    "$R/dev" "$R/home"
cp "$(command -v busybox)" "$R/bin/busybox"
chroot "$R" /bin/busybox --install -s
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
    >"$R/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$R/etc/group"
chmod 1777 "$R/tmp"
cc -static -O1 -o "$R/probe" "$BOTTLE_SRC/tests/fixtures/docker/probe.c"
cc -static -O1 -o "$R/tlsget" "$BOTTLE_SRC/tests/fixtures/docker/tlsget.c" -lssl -lcrypto \
    -lpthread 2>"$W/tlsget.err" || cat "$W/tlsget.err" >&2
# The upstreams' TLS: a test CA and one leaf for the names the bottles route.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/uca-key.pem" \
    -subj "/CN=docker test upstream CA" -days 2 -out "$W/uca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/up-key.pem" \
    -subj /CN=api.test -out "$W/up.csr" 2>/dev/null
printf 'subjectAltName=DNS:api.test,DNS:plain.test,DNS:plain2.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$W/up.ext"
openssl x509 -req -in "$W/up.csr" -CA "$W/uca.pem" -CAkey "$W/uca-key.pem" -CAcreateserial \
    -days 2 -extfile "$W/up.ext" -out "$W/up.pem" 2>/dev/null
TAG=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
BASE=bottle-test-base:$TAG
if tar -C "$R" -c . | docker import -c 'CMD ["/bin/sh"]' - "$BASE" >/dev/null 2>"$W/err"; then
    ok "busybox base image imported without a registry"
else
    fail "busybox base image imported" "$(cat "$W/err")"
    skip_all "no image"
fi
mkdir -p "$W/ctx"
printf 'FROM %s\nCOPY marker /marker\n' "$BASE" >"$W/ctx/Dockerfile"
echo "built-$TAG" >"$W/ctx/marker"

SLUG=dkt-$TAG
WS=$W/ws
mkdir -p "$WS"
chmod 0777 "$WS"
cat >"$WS/agent.sh" <<'AGENT'
cd "$(dirname "$0")"
. ./bottle.env
wait_for() { i=0; while [ ! -e "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done; }
ask() { touch "ctl.$1"; wait_for "ctl.$1.done"; }
{
    echo "id=$(id -u):$(id -g)"
    echo "cg=$(grep '^0::' /proc/self/cgroup | cut -d: -f3)"
    echo "seccomp=$(awk '/^Seccomp:/{print $2}' /proc/self/status)"
    echo "nnp=$(awk '/^NoNewPrivs:/{print $2}' /proc/self/status)"
    echo "capeff=$(awk '/^CapEff:/{print $2}' /proc/self/status)"
    echo "capbnd=$(awk '/^CapBnd:/{print $2}' /proc/self/status)"
    echo "marker=$(cat /marker 2>/dev/null)"
    echo "placeholder=$AGENT_PLACEHOLDER"
    echo "proxy=$HTTP_PROXY"
    echo "routes=$(ip route | tr '\n' ';')"
    echo "allowed=$(/probe get "$SIDECAR")"
    echo "altport=$(/probe get "$ALTPORT")"
    echo "other=$(/probe get "$OTHER")"
    echo "udp=$(/probe udp "$SIDECAR_IP:53")"
    echo "udp_other=$(/probe udp "$OTHER")"
    echo "unshare=$(/probe unshare user)"
    echo "mount=$(/probe mount)"
} >result
/probe hold "$SIDECAR" >hold.out 2>&1 &
sleep 0.5
ask stats
touch phase1
wait_for go2
ask cutoff-on
echo "cutoff=$(/probe get "$SIDECAR")" >>result
wait
echo "hold=$(cat hold.out)" >>result
ask cutoff-off
echo "restored=$(/probe get "$SIDECAR")" >>result
exit 7
AGENT

val() { sed -n "s/^$1=//p" "$2" | head -n1; }

# The test's own view while the agent waits at phase1: a separate docker exec.
(
    i=0
    while [ ! -e "$WS/phase1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    C=bottle-$SLUG
    {
        echo "allowed=$(docker exec "$C" /probe get "$(val SIDECAR "$WS/bottle.env")")"
        echo "other=$(docker exec "$C" /probe get "$(val OTHER "$WS/bottle.env")")"
        echo "udp=$(docker exec "$C" /probe udp "$(val OTHER "$WS/bottle.env")")"
        echo "unshare=$(docker exec "$C" /probe unshare user)"
        echo "id=$(docker exec "$C" id -u)"
        echo "cg=$(docker exec "$C" grep '^0::' /proc/self/cgroup | cut -d: -f3)"
        echo "init_cg=$(grep '^0::' /proc/"$(docker inspect -f '{{.State.Pid}}' "$C")"/cgroup | cut -d: -f3)"
    } >"$W/exec.out" 2>&1
    touch "$WS/go2"
) &
EXEC_PID=$!

"$DRIVE" "$SLUG" "dockerfile=$W/ctx/Dockerfile" "$WS" -- sh "$WS/agent.sh" >"$W/drive.out" 2>"$W/drive.err"
RC=$?
wait $EXEC_PID
RES=$WS/result
diag() { echo "drive: $(tail -n 5 "$W/drive.err" | tr '\n' ' ')"; }

if [ "$RC" -eq 7 ] && grep -q '^exit 7$' "$W/drive.out"; then
    ok "the agent ran via docker exec and its exit code 7 passed through"
else
    fail "agent exit code" "rc=$RC" "$(diag)" "$(cat "$W/drive.out")"
fi
if docker image inspect "$(docker images --format '{{.Repository}}:{{.Tag}}' bottle-agent | head -n1)" \
    >/dev/null 2>&1 && [ "$(val marker "$RES")" = "built-$TAG" ]; then
    ok "the agent image was built from the Dockerfile and tagged by its hash"
else
    fail "image built from the Dockerfile" "marker=$(val marker "$RES")" "$(diag)"
fi
if [ "$(val id "$RES")" = "65534:65534" ] && [ "$(val capeff "$RES")" = "0000000000000000" ] &&
    [ "$(val capbnd "$RES")" = "0000000000000000" ] && [ "$(val nnp "$RES")" = "1" ] &&
    [ "$(val seccomp "$RES")" = "2" ]; then
    ok "non-root, no capabilities, no_new_privs, seccomp filter"
else
    fail "confinement" "$(head -n 6 "$RES" 2>/dev/null | tr '\n' ' ')"
fi
case "$(val cg "$RES")" in
/bottle/"$SLUG"/agent/?*) ok "the agent is in a cgroup below the bottle's agent cgroup" ;;
*) fail "agent cgroup" "cg=$(val cg "$RES")" ;;
esac
if [ "$(val placeholder "$RES")" = "bottle-placeholder-0123" ] &&
    [ "$(val proxy "$RES")" = "http://$(val SIDECAR "$WS/bottle.env")" ]; then
    ok "the agent has exactly the environment given"
else
    fail "environment" "placeholder=$(val placeholder "$RES") proxy=$(val proxy "$RES")"
fi
ROUTES=$(val routes "$RES")
if ! echo "$ROUTES" | grep -q default && echo "$ROUTES" | grep -q "$(val SIDECAR_IP "$WS/bottle.env" | sed 's/\.[0-9]*$//')"; then
    ok "inside: only the veth's /30 route, no default route"
else
    fail "routes" "routes=$ROUTES"
fi
if [ "$(val allowed "$RES")" = "ok sidecar-ok" ]; then
    ok "the stand-in sidecar on the veth's host address answers"
else
    fail "sidecar reachable" "allowed=$(val allowed "$RES")" "$(diag)"
fi
if [ "$(val other "$RES")" = "err EPERM" ]; then
    ok "another host address: EPERM"
else
    fail "other host address" "other=$(val other "$RES")"
fi
if [ "$(val altport "$RES")" = "err EPERM" ]; then
    ok "the sidecar's address on another port: EPERM"
else
    fail "other port" "altport=$(val altport "$RES")"
fi
if [ "$(val udp "$RES")" = "err EPERM" ] && [ "$(val udp_other "$RES")" = "err EPERM" ]; then
    ok "UDP sends: EPERM"
else
    fail "udp" "udp=$(val udp "$RES") udp_other=$(val udp_other "$RES")"
fi
if [ "$(val unshare "$RES")" = "err EPERM" ] && [ "$(val mount "$RES")" = "err EPERM" ]; then
    ok "seccomp: unshare(CLONE_NEWUSER) and mount get EPERM"
else
    fail "seccomp" "unshare=$(val unshare "$RES") mount=$(val mount "$RES")"
fi
S=$WS/stats.txt
if [ "$(val connect_ok "$S")" -ge 1 ] 2>/dev/null && [ "$(val connect_deny "$S")" -ge 2 ] &&
    [ "$(val sendmsg_deny "$S")" -ge 2 ] && [ "$(val tx_bytes "$S")" -gt 0 ]; then
    ok "the pinned counters moved (connects allowed and denied, UDP denied, bytes out)"
else
    fail "counters" "$(tr '\n' ' ' <"$S" 2>/dev/null)"
fi
if [ "$(val cutoff "$RES")" = "err EPERM" ] && [ "$(val hold "$RES")" = "err ECONNABORTED" ]; then
    ok "cutoff: new connections get EPERM, the established stream is aborted"
else
    fail "cutoff" "cutoff=$(val cutoff "$RES") hold=$(val hold "$RES")" "$(grep sockets "$W/drive.out")"
fi
if [ "$(val restored "$RES")" = "ok sidecar-ok" ]; then
    ok "restore lets traffic through again"
else
    fail "restore" "restored=$(val restored "$RES")"
fi

E=$W/exec.out
if [ "$(val allowed "$E")" = "ok sidecar-ok" ] && [ "$(val other "$E")" = "err EPERM" ] &&
    [ "$(val udp "$E")" = "err EPERM" ]; then
    ok "a separate docker exec: sidecar yes, other host address and UDP EPERM"
else
    fail "docker exec network" "$(tr '\n' ' ' <"$E")"
fi
if [ "$(val unshare "$E")" = "err EPERM" ] && [ "$(val id "$E")" = "65534" ]; then
    ok "a separate docker exec: same user, seccomp denies unshare"
else
    fail "docker exec confinement" "$(tr '\n' ' ' <"$E")"
fi
CG=$(val cg "$E")
case "$CG" in
/bottle/"$SLUG"/agent/?*)
    if [ "$CG" = "$(val init_cg "$E")" ]; then
        ok "exec'd processes share the container's cgroup below the agent cgroup"
    else
        fail "exec cgroup" "cg=$CG init=$(val init_cg "$E")"
    fi
    ;;
*) fail "exec cgroup" "cg=$CG" ;;
esac

# ---- teardown left nothing ------------------------------------------------------------
# What is left of a bottle on the host: container, cgroups (v1 and v2), pins, links, netns.
leftovers() {
    slug=$1
    shift
    LEFT=""
    [ -z "$(docker ps -aq --filter "label=dev.bottle.slug=$slug")" ] || LEFT="$LEFT container"
    for m in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
        [ -e "$m/bottle/$slug" ] && LEFT="$LEFT cgroup:$m/bottle/$slug"
    done
    BPFFS=$(awk '$9 == "bpf" {print $5; exit}' /proc/self/mountinfo)
    [ -n "$BPFFS" ] && [ -e "$BPFFS/bottle/$slug" ] && LEFT="$LEFT pins"
    for l in "$@"; do ip link show "$l" >/dev/null 2>&1 && LEFT="$LEFT link:$l"; done
    [ -e "/run/bottle/netns/bottle-$slug" ] || [ -e "/run/netns/bottle-$slug" ] && LEFT="$LEFT netns"
    [ -e "/run/bottle/netns/bottle-$slug-o" ] || [ -e "/run/netns/bottle-$slug-o" ] &&
        LEFT="$LEFT netns-other"
    [ "$(docker network ls -q | wc -l)" -eq 2 ] ||
        LEFT="$LEFT networks:$(docker network ls --format '{{.Name}}' | tr '\n' ,)"
    echo "$LEFT"
}
LEFT=$(leftovers "$SLUG" "$(val HOST_IF "$WS/bottle.env")" "$(val OTHER_IF "$WS/bottle.env")")
grep -q '^teardown clean$' "$W/drive.out" || LEFT="$LEFT driver-teardown"
if [ -z "$LEFT" ]; then
    ok "teardown: no container, network, cgroup (v1 or v2), pin, veth or netns left"
else
    fail "teardown" "left:$LEFT" "$(diag)"
fi

# ---- the same without seccomp: the check above can fail ----------------------------------
SLUG2=dkt2-$TAG
WS2=$W/ws2
mkdir -p "$WS2"
chmod 0777 "$WS2"
# shellcheck disable=SC2016 # $1 is the agent script's own argument
printf '/probe unshare user >"%s/unshare.out"\n/probe get "$1" >"%s/get.out"\nexit 0\n' \
    "$WS2" "$WS2" >"$WS2/agent.sh"
IMG=$(docker images --format '{{.Repository}}:{{.Tag}}' bottle-agent | head -n1)
"$DRIVE" "$SLUG2" "dockerfile=$W/ctx/Dockerfile" "$WS2" --no-seccomp -- sh "$WS2/agent.sh" \
    127.0.0.1:9 >"$W/drive2.out" 2>"$W/drive2.err"
if [ "$(cat "$WS2/unshare.out" 2>/dev/null)" = "ok unshared" ] &&
    [ "$(cat "$WS2/get.out" 2>/dev/null)" = "err ECONNREFUSED" ]; then
    ok "control: without the profile unshare works; the bottle's own loopback is its own"
else
    fail "control run" "unshare=$(cat "$WS2/unshare.out" 2>/dev/null) get=$(cat "$WS2/get.out" 2>/dev/null)" \
        "$(tail -n 3 "$W/drive2.err")"
fi
if grep -q '^exit 0$' "$W/drive2.out" && cat "$W/drive.out" "$W/drive.err" | grep -q 'COPY marker' &&
    ! cat "$W/drive2.out" "$W/drive2.err" | grep -q 'COPY marker' && [ "$(docker images -q bottle-agent | sort -u | wc -l)" -eq 1 ]; then
    ok "a second start reuses the image built for the same Dockerfile"
else
    fail "image reuse" "$(tail -n 2 "$W/drive2.out")" "images: $(docker images bottle-agent --format '{{.Tag}}')"
fi

# ---- stop forwards SIGTERM to the agent; a terminal gives it a TTY ---------------------------
T0=$(date +%s)
"$DRIVE" "dkt4-$TAG" "$IMG" "$WS2" --stop-after 1500 -- sleep 60 >"$W/drive4.out" 2>"$W/drive4.err"
T1=$(date +%s)
if grep -q '^exit 143$' "$W/drive4.out" && [ $((T1 - T0)) -lt 20 ] &&
    grep -q '^teardown clean$' "$W/drive4.out"; then
    ok "stop: SIGTERM reaches the exec'd agent, exit 143, nothing left"
else
    fail "stop" "$(tail -n 2 "$W/drive4.out") after $((T1 - T0))s" "$(tail -n 3 "$W/drive4.err")"
fi
printf '[ -t 0 ] && [ -t 1 ] && echo tty-yes || echo tty-no\n' >"$WS2/tty.sh"
TTY_OUT=$(script -qec "$DRIVE dkt5-$TAG $IMG $WS2 -- sh $WS2/tty.sh" /dev/null 2>&1)
NOTTY_OUT=$("$DRIVE" "dkt6-$TAG" "$IMG" "$WS2" -- sh "$WS2/tty.sh" </dev/null 2>&1)
if echo "$TTY_OUT" | grep -q tty-yes && echo "$NOTTY_OUT" | grep -q tty-no; then
    ok "a terminal on stdin gives the agent a TTY (docker exec -it); none without one"
else
    fail "tty" "with: $(echo "$TTY_OUT" | grep tty-)" "without: $(echo "$NOTTY_OUT" | grep tty-)"
fi

# ---- limits and setuid files ------------------------------------------------------------
# The engine gets the bottle's limits; inside, a fork bomb, a memory hog, full tmpfs mounts and
# setuid bits meet them, and a setuid-root file planted before start runs as the agent.
WS8=$W/ws8
mkdir -p "$WS8"
chmod 0777 "$WS8"
# The static probe, setuid root (busybox would drop a setuid bit by itself).
cp "$R/probe" "$WS8/suid-probe"
chown 0:0 "$WS8/suid-probe"
chmod 4755 "$WS8/suid-probe"
cat >"$WS8/agent.sh" <<'AGENT'
cd "$(dirname "$0")"
. ./bottle.env
{
    echo "forks=$(/probe forks 200)"
    /probe touch 512 >touch.out 2>&1
    echo "touch_rc=$?"
    echo "after=$(/probe get "$SIDECAR")"
    echo "fill_tmp=$(/probe fill /tmp/fill 64)"
    echo "fill_shm=$(/probe fill /dev/shm/fill 64)"
    echo "fill_home=$(/probe fill "$HOME/fill" 64)"
    : >plain
    echo "chmod_suid=$(/probe chmod plain 4755)"
    echo "chmod_sgid=$(/probe chmod plain 2755)"
    echo "chmod_plain=$(/probe chmod plain 755)"
    echo "create_suid=$(/probe create made 4755)"
    echo "mkdir_sgid=$(/probe mkdir madedir 2755)"
    echo "openat2=$(/probe openat2 plain)"
    echo "suid_euid=$(./suid-probe euid)"
} >result 2>&1
touch ready
i=0
while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
exit 0
AGENT
"$DRIVE" "dkt8-$TAG" "$IMG" "$WS8" --limits pids=64,memory=134217728,cpus=500,tmpfs=16777216 \
    -- sh "$WS8/agent.sh" >"$W/drive8.out" 2>"$W/drive8.err" &
D8=$!
i=0
while [ ! -e "$WS8/ready" ] && [ $i -lt 1200 ] && kill -0 "$D8" 2>/dev/null; do
    sleep 0.1
    i=$((i + 1))
done
HC=$(docker inspect -f '{{.HostConfig.PidsLimit}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.ShmSize}}' "bottle-dkt8-$TAG" 2>&1)
TMPFS=$(docker inspect -f '{{index .HostConfig.Tmpfs "/tmp"}}' "bottle-dkt8-$TAG" 2>&1)
touch "$WS8/go"
wait "$D8"
R6=$WS8/result
if [ "$HC" = "64 134217728 134217728 500000000 16777216" ] && echo "$TMPFS" | grep -q "size=16777216"; then
    ok "docker: the engine runs the container with the bottle's limits (pids, memory without swap, cpus, shm and tmpfs sizes)"
else
    fail "docker limits" "hostconfig=$HC tmpfs=$TMPFS" "$(tail -n 3 "$W/drive8.err")"
fi
FORKS=$(val forks "$R6")
case "$FORKS" in
"err EAGAIN after "*)
    if [ "${FORKS##* }" -lt 64 ]; then ok "docker: a fork bomb gets EAGAIN at the pids limit ($FORKS)"; else fail "docker fork bomb" "$FORKS"; fi
    ;;
*) fail "docker fork bomb" "forks=$FORKS" "$(tail -n 3 "$W/drive8.err")" ;;
esac
if [ "$(val touch_rc "$R6")" = 137 ] && [ "$(val after "$R6")" = "ok sidecar-ok" ]; then
    ok "docker: a 512M hog is OOM-killed in a 128M bottle, and the sidecar still answers"
else
    fail "docker memory hog" "rc=$(val touch_rc "$R6") after=$(val after "$R6")"
fi
if [ "$(val fill_tmp "$R6")" = "err ENOSPC after 16" ] && [ "$(val fill_shm "$R6")" = "err ENOSPC after 16" ] &&
    [ "$(val fill_home "$R6")" = "err ENOSPC after 16" ]; then
    ok "docker: /tmp, /dev/shm and the home fill up with ENOSPC at 16M"
else
    fail "docker tmpfs sizes" "tmp=$(val fill_tmp "$R6") shm=$(val fill_shm "$R6") home=$(val fill_home "$R6")"
fi
if [ "$(val chmod_suid "$R6")" = "err EPERM" ] && [ "$(val chmod_sgid "$R6")" = "err EPERM" ] &&
    [ "$(val chmod_plain "$R6")" = ok ] && [ "$(val create_suid "$R6")" = "err EPERM" ] &&
    [ "$(val mkdir_sgid "$R6")" = "err EPERM" ] && [ ! -e "$WS8/made" ] && [ ! -e "$WS8/madedir" ]; then
    ok "docker: setuid/setgid chmod, open(O_CREAT, 04755) and mkdir(02755) get EPERM; chmod 0755 works"
else
    fail "docker setuid bits" "$(grep -E 'chmod|create|mkdir' "$R6" | tr '\n' ' ')"
fi
if [ "$(val openat2 "$R6")" = "err ENOSYS" ] && [ -z "$(find "$WS8" -perm /6000 ! -name suid-probe)" ]; then
    ok "docker: openat2 gets ENOSYS; no setuid or setgid file was left in the workspace"
else
    fail "docker openat2 / leftovers" "openat2=$(val openat2 "$R6")" "$(find "$WS8" -perm /6000)"
fi
if [ "$(val suid_euid "$R6")" = "ok 65534" ] && grep -q '^teardown clean$' "$W/drive8.out"; then
    ok "docker: a setuid-root file planted before start runs as the agent (no_new_privileges); teardown clean"
else
    fail "docker planted setuid" "euid=$(val suid_euid "$R6")" "$(tail -n 2 "$W/drive8.out")"
fi

# ---- a crashed controller: cleanup by slug removes what it left ---------------------------
SLUG7=dkt7-$TAG
"$DRIVE" "$SLUG7" "$IMG" "$WS2" -- sleep 60 >"$W/drive7.out" 2>&1 &
D7=$!
i=0
until docker top "bottle-$SLUG7" 2>/dev/null | grep -q 'sleep 60' || [ $i -gt 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -9 "$D7"
wait "$D7" 2>/dev/null
BEFORE=$(leftovers "$SLUG7")
"$DRIVE" --cleanup "$SLUG7" >"$W/cleanup.out" 2>&1
AFTER=$(leftovers "$SLUG7" "$(val HOST_IF "$WS2/bottle.env")" "$(val OTHER_IF "$WS2/bottle.env")")
if echo "$BEFORE" | grep -q container && [ -z "$AFTER" ] && grep -q '^cleanup clean$' "$W/cleanup.out"; then
    ok "after a crash, cleanup by slug removes the container, cgroups, pins, veths and netns"
else
    fail "crash cleanup" "before:$BEFORE" "after:$AFTER" "$(cat "$W/cleanup.out")"
fi

# ---- bottle start --backend docker: the whole start sequence -------------------------------
BH=$W/bhome
WS3=$W/ws3
mkdir -p "$BH/agents" "$BH/bottles" "$WS3"
chmod 0777 "$WS3"
printf 'sidecar:\n  max_connections: 16\n' >"$BH/settings.yml"
: >"$W/up3.log"
python3 "$BOTTLE_SRC/tests/fixtures/upstream.py" --port-file "$W/up3.port" --log "$W/up3.log" \
    --cert "$W/up.pem" --key "$W/up-key.pem" &
UP3PID=$!
: >"$W/up3p.log"
python3 "$BOTTLE_SRC/tests/fixtures/upstream.py" --port-file "$W/up3p.port" --log "$W/up3p.log" &
UP3PPID=$!
i=0
while { [ ! -s "$W/up3.port" ] || [ ! -s "$W/up3p.port" ]; } && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP3=$(cut -d' ' -f1 "$W/up3.port")
UP3P=$(cut -d' ' -f1 "$W/up3p.port")
{
    echo "---"
    echo "agent_provider:"
    echo "  template: generic"
    echo "  command: [sh, $WS3/agent.sh]"
    echo "  dockerfile: $W/ctx/Dockerfile"
    echo "egress:"
    echo "  routes:"
    echo "    - host: api.test:$UP3"
    echo "      auth:"
    echo "        scheme: Bearer"
    echo "        token_ref: DK_TOKEN"
    echo "    - host: plain.test:$UP3P"
    echo "      auth:"
    echo "        header: X-Api-Key"
    echo "        token_ref: DK_TOKEN"
    echo "---"
    echo "A Docker bottle."
} >"$BH/bottles/dk.md"
printf -- '---\nbottle: dk\n---\nRun.\n' >"$BH/agents/dk.md"
{
    echo "cd $WS3"
    echo "px=\$(echo \$http_proxy | sed 's|http://||; s|/\$||')"
    echo "a1=\${px%:*}"
    echo "echo \$px >proxy.addr"
    echo "touch ready"
    echo "i=0; while [ ! -e go ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done"
    echo "echo allowed=\$(/tlsget \$px api.test $UP3 /echo /bottle/ca-bundle.pem) >result"
    echo "wget -q -O refused.out http://other.test/x; echo refused=\$? >>result"
    echo "wget -q -O plain.out http://plain.test:$UP3P/echo; echo plain=\$? >>result"
    echo "echo direct=\$(/probe get \$a1:22) >>result"
    echo "echo flood=\$(/probe flood \$px 40) >>result"
    echo "echo after=\$(/tlsget \$px api.test $UP3 /echo /bottle/ca-bundle.pem) >>result"
    echo "echo marker=\$(cat /marker) >>result"
    echo "exit 3"
} >"$WS3/agent.sh"
DK_TOKEN=dk-tok-$TAG BOTTLE_HOME=$BH "$BOTTLE" start dk --backend docker --label "dks-$TAG" \
    --cwd "$WS3" --resolve "api.test:$UP3:127.0.0.1" --resolve "plain.test:$UP3P:127.0.0.1" \
    --upstream-ca "$W/uca.pem" >"$W/s3.out" 2>"$W/s3.err" &
S3=$!
i=0
while [ ! -e "$WS3/ready" ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i + 1)); done
# Another local user on the host tries the Docker bottle's sidecar while it runs.
PX3=$(cat "$WS3/proxy.addr" 2>/dev/null)
U2=btl-dk-$TAG
rc_user=none
if [ -n "$PX3" ] && useradd --system --no-create-home --shell /usr/sbin/nologin "$U2" 2>/dev/null; then
    uid2=$(id -u "$U2")
    setpriv --reuid "$uid2" --regid "$uid2" --clear-groups curl -sk --connect-timeout 3 \
        --max-time 5 -o /dev/null -x "http://$PX3" "https://api.test:$UP3/echo" 2>/dev/null
    rc_user=$?
    userdel "$U2" 2>/dev/null
fi
up3_before=$(wc -l <"$W/up3.log")
touch "$WS3/go"
wait $S3
rc=$?
kill "$UP3PID" "$UP3PPID" 2>/dev/null
if [ $rc -eq 3 ] && grep -q '^allowed=ok 200$' "$WS3/result" && grep -q "^marker=built-$TAG$" "$WS3/result" &&
    grep -q "Bearer dk-tok-$TAG" "$W/up3.log"; then
    ok "bottle start --backend docker: image built, the HTTPS route reached through the sidecar with the token injected, exit code 3 passed through"
else
    fail "bottle start --backend docker" "rc=$rc" "$(cat "$WS3/result" "$W/s3.err" 2>/dev/null)"
fi
if grep -q '^refused=[1-9]' "$WS3/result" && grep -q '^direct=.*EPERM' "$WS3/result" &&
    ! grep -q other.test "$W/up3.log"; then
    ok "docker bottle: a host outside the routes refused by the sidecar, a direct connect EPERM"
else
    fail "docker bottle refusals" "$(cat "$WS3/result" "$WS3/agent.sh" "$W/s3.err" 2>/dev/null)"
fi
if grep -q '^plain=[1-9]' "$WS3/result" && [ "$(wc -l <"$W/up3p.log")" = 0 ]; then
    ok "docker bottle: plain HTTP to a route with auth is refused, the upstream never sees it or the token"
else
    fail "docker cleartext" "$(cat "$WS3/result" "$W/up3p.log" 2>/dev/null)"
fi
if [ "$rc_user" != none ] && [ "$rc_user" != 0 ] && [ "$up3_before" = 0 ]; then
    ok "docker bottle: another local user cannot use its sidecar at $PX3 (curl exit $rc_user)"
else
    fail "docker second user" "proxy=$PX3 rc=$rc_user upstream lines before the agent: $up3_before"
fi
if grep -q '^flood=ok refused=24 idle=16$' "$WS3/result" && grep -q '^after=ok 200$' "$WS3/result"; then
    ok "docker bottle: 40 idle connections with sidecar.max_connections 16: 24 refused, served again after"
else
    fail "docker flood" "$(cat "$WS3/result" 2>/dev/null)"
fi
LEFT=$(leftovers "dks-$TAG")
if [ -z "$LEFT" ] && [ -z "$(docker ps -aq --filter "label=dev.bottle.slug=dks-$TAG")" ]; then
    ok "docker bottle: teardown leaves no container, cgroup, pins or netns"
else
    fail "docker bottle teardown" "$LEFT"
fi
rm -f "$BH/settings.yml"

# ---- bottle commit, bottle start --resume ------------------------------------------------
# A running Docker bottle is committed; its agent wrote a file to its home first. A native
# bottle runs beside it to be refused. The snapshot must survive the bottle and cleanup, hold
# the home but no token, and boot again under the manifest as it is at resume time.
WS4=$W/ws4
WS5=$W/ws5
mkdir -p "$WS4" "$WS5"
chmod 0777 "$WS4" "$WS5"
: >"$W/up4.log"
python3 "$BOTTLE_SRC/tests/fixtures/upstream.py" --port-file "$W/up4.port" --log "$W/up4.log" \
    --cert "$W/up.pem" --key "$W/up-key.pem" &
UP4PID=$!
i=0
while [ ! -s "$W/up4.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
UP4=$(cut -d' ' -f1 "$W/up4.port")
echo "$UP4" >"$WS4/port"
echo "$TAG" >"$WS4/tag"
dkc_bottle() {
    {
        echo "---"
        echo "agent_provider:"
        echo "  template: generic"
        echo "  command: [sh, $WS4/agent.sh]"
        echo "  dockerfile: $W/ctx/Dockerfile"
        echo "egress:"
        echo "  routes:"
        echo "    - host: $1:$UP4"
        echo "      auth:"
        echo "        scheme: Bearer"
        echo "        token_ref: DK_TOKEN"
        echo "---"
        echo "A Docker bottle to commit."
    } >"$BH/bottles/dkc.md"
}
dkc_bottle plain.test
printf -- '---\nbottle: dkc\n---\nRun.\n' >"$BH/agents/dkc.md"
cat >"$WS4/agent.sh" <<'AGENT'
cd "$(dirname "$0")"
if [ -e "$HOME/note.txt" ]; then
    {
        echo "note=$(cat "$HOME/note.txt")"
        echo "slug=$BOTTLE_SLUG"
        px=$(echo "$http_proxy" | sed 's|http://||; s|/$||')
        echo "allowed=$(/tlsget "$px" plain2.test "$(cat port)" /echo /bottle/ca-bundle.pem)"
        echo "old_route=$(/tlsget "$px" plain.test "$(cat port)" /echo /bottle/ca-bundle.pem)"
        a1=${px%:*}
        echo "direct=$(/probe get "$a1:22")"
    } >resumed.result
    exit 4
fi
echo "note-$(cat tag)" >"$HOME/note.txt"
env >"$HOME/env.txt"
touch ready
i=0
while [ ! -e go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
exit 0
AGENT
{
    echo "---"
    echo "agent_provider:"
    echo "  template: generic"
    echo "  command: [sh, $WS5/nat.sh]"
    echo "---"
    echo "A native bottle."
} >"$BH/bottles/nat.md"
printf -- '---\nbottle: nat\n---\nRun.\n' >"$BH/agents/nat.md"
printf 'touch %s/ready\ni=0\nwhile [ ! -e %s/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done\n' \
    "$WS5" "$WS5" >"$WS5/nat.sh"
SNAP=bottle-committed-dkc-$TAG:latest
DK_TOKEN=dk-tok-$TAG BOTTLE_HOME=$BH "$BOTTLE" start dkc --backend docker --label "dkc-$TAG" \
    --cwd "$WS4" --resolve "plain.test:$UP4:127.0.0.1" --upstream-ca "$W/uca.pem" \
    >"$W/s4.out" 2>"$W/s4.err" &
S4=$!
BOTTLE_HOME=$BH "$BOTTLE" start nat --label "dkn-$TAG" --cwd "$WS5" >"$W/s5.out" 2>"$W/s5.err" &
S5=$!
i=0
while { [ ! -e "$WS4/ready" ] || [ ! -e "$WS5/ready" ]; } && [ $i -lt 900 ]; do
    sleep 0.1
    i=$((i + 1))
done

BOTTLE_HOME=$BH "$BOTTLE" commit "dkc-$TAG" >"$W/commit.out" 2>"$W/commit.err"
rc=$?
LABELS=$(docker image inspect -f '{{index .Config.Labels "dev.bottle.snapshot.slug"}} {{index .Config.Labels "dev.bottle.snapshot.agent"}} {{index .Config.Labels "dev.bottle.snapshot.bottles"}}' "$SNAP" 2>&1)
RUNNING=$(docker inspect -f '{{.State.Running}}' "bottle-dkc-$TAG" 2>&1)
if [ $rc -eq 0 ] && grep -q "committed to $SNAP" "$W/commit.out" &&
    grep -q "bottle start --resume dkc-$TAG" "$W/commit.out" &&
    [ "$LABELS" = "dkc-$TAG dkc dkc" ] && [ "$RUNNING" = true ]; then
    ok "bottle commit: the running docker bottle is snapshotted as $SNAP, labelled with its slug, agent and bottles, and keeps running"
else
    fail "bottle commit" "rc=$rc labels=$LABELS running=$RUNNING" "$(cat "$W/commit.out" "$W/commit.err")" \
        "$(cat "$W/s4.err" 2>/dev/null | tail -n 3)"
fi
docker save "$SNAP" -o "$W/snap.tar" 2>/dev/null
if [ -s "$W/snap.tar" ] && grep -a -q "note-$TAG" "$W/snap.tar" &&
    ! grep -a -q "dk-tok-$TAG" "$W/snap.tar" &&
    ! docker image inspect "$SNAP" | grep -q "dk-tok-$TAG" &&
    grep -a -q "^HOME=/home/agent" "$W/snap.tar"; then
    ok "the snapshot holds the agent's home (its env included) but no token, in its config or any layer"
else
    fail "snapshot content" "size=$(wc -c <"$W/snap.tar" 2>/dev/null)" \
        "token in save: $(grep -a -c "dk-tok-$TAG" "$W/snap.tar" 2>/dev/null)"
fi
OUT=$(BOTTLE_HOME=$BH "$BOTTLE" commit "nosuch-$TAG" 2>&1)
rc=$?
if [ $rc -eq 2 ] && echo "$OUT" | grep -q "no running bottle 'nosuch-$TAG'"; then
    ok "bottle commit of an unknown slug: exit 2, 'no running bottle'"
else
    fail "commit unknown slug" "rc=$rc" "$OUT"
fi
OUT=$(BOTTLE_HOME=$BH "$BOTTLE" commit "dkn-$TAG" 2>&1)
rc=$?
if [ $rc -eq 2 ] && echo "$OUT" | grep -q "runs on the native backend; only Docker bottles can be committed"; then
    ok "bottle commit of a native bottle: exit 2, only Docker bottles can be committed"
else
    fail "commit native bottle" "rc=$rc" "$OUT" "$(tail -n 3 "$W/s5.err")"
fi
touch "$WS4/go" "$WS5/go"
wait $S4
rc=$?
wait $S5
"$DRIVE" --cleanup "dkc-$TAG" >"$W/cleanup4.out" 2>&1
if [ $rc -eq 0 ] && [ -z "$(docker ps -aq --filter "label=dev.bottle.slug=dkc-$TAG")" ] &&
    [ -z "$(docker ps -aq)" ] && docker image inspect "$SNAP" >/dev/null 2>&1 &&
    [ "$(docker images -q --filter 'reference=bottle-committed-*' | wc -l)" -eq 1 ]; then
    ok "the committed bottle ends cleanly: no container left (nor a scratch one), cleanup keeps the snapshot"
else
    fail "after commit" "rc=$rc" "containers: $(docker ps -a --format '{{.Names}} {{.Image}}' | tr '\n' ' ')" \
        "images: $(docker images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')" "$(tail -n 3 "$W/s4.err")"
fi

# The manifest changes before the resume: the route moves to plain2.test.
dkc_bottle plain2.test
OUT=$(DK_TOKEN=dk-tok-$TAG BOTTLE_HOME=$BH "$BOTTLE" start --resume "dkc-$TAG" --dry-run 2>&1)
if echo "$OUT" | grep -q "image .*$SNAP (snapshot of 'dkc-$TAG'" && echo "$OUT" | grep -q "plain2.test" &&
    ! echo "$OUT" | grep -q "plain.test:" && echo "$OUT" | grep -q "backend .*docker"; then
    ok "start --resume --dry-run: the plan boots the snapshot, on docker, with the routes of the manifest as it is now"
else
    fail "resume dry run" "$OUT"
fi
: >"$W/up4.log"
DK_TOKEN=dk-tok-$TAG BOTTLE_HOME=$BH "$BOTTLE" start --resume "dkc-$TAG" \
    --resolve "plain2.test:$UP4:127.0.0.1" --resolve "plain.test:$UP4:127.0.0.1" \
    --upstream-ca "$W/uca.pem" >"$W/s6.out" 2>"$W/s6.err"
rc=$?
R6=$WS4/resumed.result
if [ $rc -eq 4 ] && [ "$(val note "$R6")" = "note-$TAG" ] && [ "$(val slug "$R6")" = "dkc-$TAG" ]; then
    ok "start --resume: the file written before commit is in the new bottle's home, same slug, exit code 4 passed through"
else
    fail "resume" "rc=$rc" "$(cat "$R6" 2>/dev/null)" "$(tail -n 5 "$W/s6.err")"
fi
if [ "$(val allowed "$R6")" = "ok 200" ] && grep -q "Bearer dk-tok-$TAG" "$W/up4.log" &&
    [ "$(val old_route "$R6")" = "err tunnel 403" ] &&
    [ "$(val direct "$R6")" = "err EPERM" ] && ! grep -q '"plain.test' "$W/up4.log"; then
    ok "resumed bottle, same enforcement: the current route works with the token injected, the snapshot's old route is refused, a direct connect gets EPERM"
else
    fail "resumed enforcement" "$(cat "$R6" 2>/dev/null | tr '\n' ' ')" "$(tail -n 3 "$W/s6.err")"
fi
kill "$UP4PID" 2>/dev/null
LEFT=$(leftovers "dkc-$TAG")
if [ -z "$LEFT" ] && [ -z "$(docker ps -aq)" ]; then
    ok "resumed bottle: teardown leaves no container, cgroup, pins or netns"
else
    fail "resumed teardown" "$LEFT" "$(docker ps -a --format '{{.Names}}' | tr '\n' ' ')"
fi
OUT=$(BOTTLE_HOME=$BH "$BOTTLE" start --resume "nosuch-$TAG" 2>&1)
rc=$?
OUT2=$(BOTTLE_HOME=$BH "$BOTTLE" start --resume "dkc-$TAG" --backend native 2>&1)
rc2=$?
if [ $rc -eq 2 ] && echo "$OUT" | grep -q "no snapshot of bottle 'nosuch-$TAG'" && [ $rc2 -eq 2 ] &&
    echo "$OUT2" | grep -q "cannot run with --backend native"; then
    ok "start --resume without a snapshot, or on the native backend: exit 2 with a clear error"
else
    fail "resume errors" "rc=$rc $OUT" "rc2=$rc2 $OUT2"
fi
docker rmi "$SNAP" >/dev/null 2>&1

# ---- git settings in the workspace stay read-only in a docker bottle -----------------------
# The same attack as tests/e2e/workspace_guard.sh, with busybox: the agent tries to plant
# core.fsmonitor, a hook, .gitmodules and attributes (workspace and lib/ at its top), a path
# of workspace.read_only, and to move .git away; what a commit writes stays writable.
WS6=$W/ws6
mkdir -p "$WS6/docs" "$WS6/lib"
git -c safe.directory='*' -C "$WS6" init -q
git -c safe.directory='*' -C "$WS6/lib" init -q
rm -rf "$WS6/.git/hooks"
echo keep >"$WS6/docs/README"
printf '[submodule "x"]\n\tpath = x\n' >"$WS6/.gitmodules"
cp "$WS6/.git/config" "$W/ws6-config.before"
{
    echo "---"
    echo "agent_provider:"
    echo "  template: generic"
    echo "  command: [sh, $WS6/agent.sh]"
    echo "  dockerfile: $W/ctx/Dockerfile"
    echo "workspace:"
    echo "  read_only: [docs]"
    echo "---"
} >"$BH/bottles/dkg.md"
printf -- '---\nbottle: dkg\n---\nPlant git settings.\n' >"$BH/agents/dkg.md"
cat >"$WS6/agent.sh" <<'AGENT'
cd "$(dirname "$0")"
w() { out=$( (echo "$3" >>"$2") 2>&1) && r=written || r=$out; echo "$1=$r" >>result; }
m() { out=$(mv "$2" "$2-away" 2>&1) && r=moved || r=$out; echo "$1=$r" >>result; }
: >result
w config .git/config '[core] fsmonitor = "touch /tmp/x"'
w hook .git/hooks/pre-commit 'touch /tmp/x'
w gitmodules .gitmodules '[submodule "y"]'
w attributes .git/info/attributes '* filter=evil'
w lib_config lib/.git/config '[core] fsmonitor = x'
w docs docs/README changed
m mv_git .git
m mv_lib lib
w objects .git/objects/probe x
w refs .git/refs/heads/probe 0000000000000000000000000000000000000000
w index .git/index.lock x
AGENT
chmod -R a+rwX "$WS6" # the agent runs as its bottle's pool uid, not known before start
BOTTLE_HOME=$BH "$BOTTLE" start dkg --backend docker --label "dkg-$TAG" --cwd "$WS6" \
    >"$W/s6.out" 2>"$W/s6.err"
rc=$?
R6=$WS6/result
g6() { grep -q "^$1=.*$2" "$R6" 2>/dev/null; }
if [ $rc -eq 0 ] && g6 config "Read-only file system" && g6 hook "Read-only file system" &&
    g6 gitmodules "Read-only file system" && { g6 attributes "Read-only file system" || g6 attributes "Permission denied"; } &&
    g6 lib_config "Read-only file system" && g6 docs "Read-only file system" &&
    g6 mv_git "busy" && g6 mv_lib "busy"; then
    ok "docker bottle: .git/config, hooks, .gitmodules, attributes, lib/.git/config and workspace.read_only are read-only; .git and lib/ cannot be moved"
else
    fail "docker git guard" "rc=$rc" "$(cat "$R6" "$W/s6.err" 2>/dev/null)"
fi
if g6 objects written && g6 refs written && g6 index written &&
    cmp -s "$W/ws6-config.before" "$WS6/.git/config" && [ -d "$WS6/.git/hooks" ] &&
    [ ! -e "$WS6/.git/hooks/pre-commit" ] && [ "$(cat "$WS6/docs/README")" = keep ]; then
    ok "docker bottle: objects, refs and the index stay writable; on the host the settings are unchanged"
else
    fail "docker git guard, writable parts" "$(cat "$R6" 2>/dev/null)" "$(ls -la "$WS6/.git")"
fi

# ---- the operator's terminal against the agent ---------------------------------------------
# `bottle start --backend docker` as a job of a shell on a pty the test holds
# (tests/fixtures/ptyrun.py). Inside, the agent pushes a command with TIOCSTI into every
# descriptor it has and into /dev/tty, and prints a clipboard write (OSC 52).
WS7=$W/ws7
mkdir -p "$WS7"
chmod 0777 "$WS7"
{
    echo "---"
    echo "agent_provider:"
    echo "  template: generic"
    echo "  command: [sh, $WS7/agent.sh]"
    echo "  dockerfile: $W/ctx/Dockerfile"
    echo "---"
    echo "A Docker bottle on a terminal."
} >"$BH/bottles/dkterm.md"
printf -- '---\nbottle: dkterm\n---\nRun.\n' >"$BH/agents/dkterm.md"
cat >"$WS7/agent.sh" <<AGENT
cd $WS7
T=\$(cat tag)
R=\$PWD/result.\$T
: >"\$R"
/probe tiocsti "\$R"
if grep -qF "$BH" /proc/self/mountinfo; then echo mountinfo=leaks; else echo mountinfo=clean; fi >>"\$R"
[ -s /bottle/ca-bundle.pem ] && echo bundle=present >>"\$R"
printf 'visible-marker\n'
printf '\033]52;c;ZWNobyBJTkpFQ1RFRAo=\007'
printf 'visible-stderr\n' >&2
printf '\033]52;c;ZWNobyBJTkpFQ1RFRAo=\033\\\\' >&2
touch "ready.\$T"
i=0
while [ ! -e "go.\$T" ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i + 1)); done
exit 0
AGENT
dkterm() { # TAG PTYRUN-OPTIONS...; TYPE (if set) is typed once the agent is ready
    tag=$1
    shift
    echo "$tag" >"$WS7/tag"
    (
        i=0
        while [ ! -e "$WS7/ready.$tag" ] && [ $i -lt 900 ]; do sleep 0.1; i=$((i + 1)); done
        sleep 0.5
        touch "$WS7/go.$tag"
    ) &
    h=$!
    BOTTLE_HOME=$BH python3 "$BOTTLE_SRC/tests/fixtures/ptyrun.py" --screen "$W/screen.$tag" \
        --timeout 180 ${TYPE:+--type "$TYPE" --type-when "$WS7/ready.$tag"} "$@" -- \
        "$BOTTLE" start dkterm --backend docker --cwd "$WS7" >"$W/run.$tag" 2>&1
    wait $h
}
pushes_refused() { # TAG DEVTTY-ERRNO: every push EPERM (the Docker seccomp profile)
    f=$WS7/result.$1
    [ -s "$f" ] && ! grep '^tiocsti_[0-9]*=' "$f" | grep -qv '=EPERM$' &&
        [ "$(val tiocsti_0 "$f")" = EPERM ] && [ "$(val tiocsti_devtty "$f")" = "$2" ]
}
dkdiag() { echo "$(tr '\n' ' ' <"$W/run.$1") result: $(tr '\n' ' ' <"$WS7/result.$1" 2>/dev/null)"; }
TYPE='echo typed-ahead\r' dkterm redir --stdout "$W/out.redir"
if [ "$(val rc "$W/run.redir")" = 0 ] && pushes_refused redir ENXIO && [ "$(val pending "$W/run.redir")" = 0 ]; then
    ok "docker, stdout to a file: TIOCSTI on every fd is EPERM, /dev/tty ENXIO, the operator's input queue stays empty"
else
    fail "docker terminal: redirected" "$(dkdiag redir)"
fi
if grep -q visible-stderr "$W/screen.redir" && ! grep -q "$(printf '\033]52')" "$W/screen.redir" &&
    grep -q visible-marker "$W/out.redir"; then
    ok "docker, stdout to a file: stderr reaches the screen without its OSC 52"
else
    fail "docker terminal: redirected output" "$(od -c "$W/screen.redir" | head -n 12)"
fi
dkterm bg --bg --stdout "$W/out.bg"
if [ "$(val rc "$W/run.bg")" = 0 ] && pushes_refused bg ENXIO && [ "$(val pending "$W/run.bg")" = 0 ]; then
    ok "docker, background job: TIOCSTI on every fd is EPERM, the operator's input queue stays empty"
else
    fail "docker terminal: background" "$(dkdiag bg)"
fi
dkterm pty
if [ "$(val rc "$W/run.pty")" = 0 ] && [ "$(val isatty0 "$WS7/result.pty")" = 1 ] && pushes_refused pty EPERM &&
    [ "$(val pending "$W/run.pty")" = 0 ]; then
    ok "docker, a terminal: the agent has a pty (docker exec -t behind the relay); TIOCSTI there is EPERM"
else
    fail "docker terminal: pty" "$(dkdiag pty)"
fi
if grep -q visible-marker "$W/screen.pty" && ! grep -q "$(printf '\033]52')" "$W/screen.pty"; then
    ok "docker, a terminal: the screen shows the agent's text but not its OSC 52"
else
    fail "docker terminal: screen" "$(od -c "$W/screen.pty" | head -n 20)"
fi
if [ "$(val mountinfo "$WS7/result.redir")" = clean ] && [ "$(val bundle "$WS7/result.redir")" = present ] &&
    SL=$(sed -n '1s/^bottle: //p' "$W/out.redir") && [ -n "$SL" ] && [ ! -e "/run/bottle/files/$SL" ]; then
    ok "docker: the container's mountinfo names no path under \$BOTTLE_HOME; /bottle holds the CA bundle; its copy is gone afterwards"
else
    fail "docker mountinfo" "$(dkdiag redir)"
fi

# ---- no engine: a clear error --------------------------------------------------------------
OUT=$(DOCKER_HOST="unix://$D/none.sock" "$DRIVE" "dkt3-$TAG" "$IMG" "$WS2" -- true 2>&1)
if echo "$OUT" | grep -q "no Docker engine answers at DOCKER_HOST=unix://$D/none.sock" &&
    echo "$OUT" | grep -q '^teardown clean$'; then
    ok "no engine: a clear error naming DOCKER_HOST, and nothing left"
else
    fail "no engine" "$OUT"
fi

# ---- dockerd stops ----------------------------------------------------------------------------
kill "$DPID"
i=0
while kill -0 "$DPID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
if ! kill -0 "$DPID" 2>/dev/null; then
    ok "the private dockerd stopped"
    DPID=""
else
    fail "dockerd stop" "still running"
fi
