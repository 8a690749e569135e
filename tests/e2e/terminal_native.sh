#!/bin/sh
# The operator's terminal against a hostile agent, on the native backend.
# `bottle start` runs as a job of a shell on a pseudo-terminal this test holds
# (tests/fixtures/ptyrun.py): with stdout redirected to a file (foreground and
# background job) and with the whole terminal. Inside, the agent pushes a
# command with TIOCSTI into every descriptor it has and into /dev/tty, prints
# a clipboard write (OSC 52) and terminal queries, and reports what its init's
# command line and its mountinfo show. Asserted: every push fails (EPERM, or
# ENXIO for a /dev/tty it does not have), nothing waits in the operator's
# input queue afterwards (neither the pushed command nor a line typed while
# the agent ran), the OSC 52 write and the queries never reach the screen
# (unless the bottle's `terminal.allow_osc52` lets the write through), the
# init is "bottle-init", and no path under $BOTTLE_HOME shows in mountinfo.
. "$BOTTLE_SRC/tests/lib.sh"

N=14
plan $N

if ! is_root; then
    while [ "$T_N" -lt $N ]; do skip "terminal_native" kernel "needs root"; done
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    while [ "$T_N" -lt $N ]; do skip "terminal_native" kernel "python3 is missing (scripts/setup)"; done
    exit 0
fi

W=$T_TMP
export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
unset SUDO_UID SUDO_GID
PTYRUN="python3 $BOTTLE_SRC/tests/fixtures/ptyrun.py"

bottle_md() { # NAME [EXTRA-YAML]
    {
        echo "---"
        echo "agent_provider:"
        echo "  template: generic"
        echo "  command: [sh, $WS/agent.sh]"
        [ -n "${2:-}" ] && echo "$2"
        echo "---"
        echo "A terminal test bottle."
    } >"$BOTTLE_HOME/bottles/$1.md"
    printf -- '---\nbottle: %s\n---\nRun.\n' "$1" >"$BOTTLE_HOME/agents/$1.md"
}
bottle_md term
bottle_md clip "terminal: {allow_osc52: true}"

# The agent: reports into $WS/result.<tag>, then waits for $WS/go.<tag> (or 10 s) so the
# test can type while it runs, without ever reading its input.
cat >"$WS/agent.sh" <<'EOF'
cd "$(dirname "$0")"
T=$(cat tag)
R=$PWD/result.$T
: >"$R"
echo "cmdline=$(tr '\0' '|' </proc/1/cmdline)" >>"$R"
if grep -qF "$HOST_BOTTLE_HOME" /proc/self/mountinfo; then echo "mountinfo=leaks" >>"$R"; else echo "mountinfo=clean" >>"$R"; fi
[ -s /bottle/ca-bundle.pem ] && echo "bundle=present" >>"$R"
python3 push.py "$R"
# What a hostile agent prints: a clipboard write, queries, and a marker that must show.
printf 'visible-marker\n'
printf '\033]52;c;ZWNobyBJTkpFQ1RFRAo=\007'
printf '\033]11;?\007\033P$qm\033\\\033[21t'
printf 'visible-stderr\n' >&2
printf '\033]52;c;ZWNobyBJTkpFQ1RFRAo=\033\\' >&2
touch "ready.$T"
i=0
while [ ! -e "go.$T" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "done=yes" >>"$R"
exit 0
EOF
sed -i "s|\$HOST_BOTTLE_HOME|$BOTTLE_HOME|" "$WS/agent.sh"
# The pushes, with the agent's own stdin (not a here-document).
cat >"$WS/push.py" <<'EOF'
import errno, fcntl, os, sys, termios
r = open(sys.argv[1], "a", buffering=1)
def push(fd):
    try:
        for c in b"echo INJECTED\n":
            fcntl.ioctl(fd, termios.TIOCSTI, bytes([c]))
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
    r.write("tiocsti_%d=%s\n" % (fd, push(fd)))
try:
    t = os.open("/dev/tty", os.O_RDWR)
    r.write("tiocsti_devtty=%s\n" % push(t))
except OSError as e:
    r.write("tiocsti_devtty=%s\n" % errno.errorcode.get(e.errno, str(e)))
r.write("isatty0=%s\n" % os.isatty(0))
EOF

# run TAG BOTTLE PTYRUN-OPTIONS...: runs the bottle under the pty; TYPE (if set) is typed
# once the agent is ready, then the agent is let go.
run() {
    tag=$1
    b=$2
    shift 2
    echo "$tag" >"$WS/tag"
    rm -f "$WS/ready.$tag" "$WS/go.$tag"
    (
        i=0
        while [ ! -e "$WS/ready.$tag" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
        sleep 0.5 # the typed line, if any, is read by the relay meanwhile
        touch "$WS/go.$tag"
    ) &
    helper=$!
    $PTYRUN --screen "$W/screen.$tag" --timeout 120 ${TYPE:+--type "$TYPE" --type-when "$WS/ready.$tag"} \
        "$@" -- "$BOTTLE" start "$b" --cwd "$WS" >"$W/run.$tag" 2>&1
    wait $helper
}
val() { sed -n "s/^$1=//p" "$2" | head -n1; }
R() { echo "$WS/result.$1"; }

# All pushes refused: EPERM from the seccomp filter on every fd, ENXIO for /dev/tty.
pushes_refused() {
    f=$(R "$1")
    [ -s "$f" ] || return 1
    grep '^tiocsti_[0-9]*=' "$f" | grep -qv '=EPERM$' && return 1
    [ "$(val tiocsti_0 "$f")" = EPERM ] || return 1
    [ "$(val tiocsti_devtty "$f")" = "${2:-ENXIO}" ]
}
diag() { echo "$(tr '\n' ' ' <"$W/run.$1" 2>/dev/null) result: $(tr '\n' ' ' <"$(R "$1")" 2>/dev/null)"; }

# ---- 1-4: stdout redirected to a file, a job in the foreground ----------------------------
TYPE='echo typed-ahead\r' run redir term --stdout "$W/out.redir"
if [ "$(val rc "$W/run.redir")" = 0 ] && [ "$(val "done" "$(R redir)")" = yes ] && pushes_refused redir; then
    ok "stdout to a file: TIOCSTI on every fd of the agent is EPERM, /dev/tty is ENXIO"
else
    fail "redirected: pushes" "$(diag redir)"
fi
if [ "$(val pending "$W/run.redir")" = 0 ]; then
    ok "stdout to a file: nothing waits in the operator's input queue (no pushed command, no typed-ahead line)"
else
    fail "redirected: input queue" "$(diag redir)"
fi
if grep -q visible-marker "$W/out.redir" && grep -q "$(printf '\033]52')" "$W/out.redir" &&
    grep -q visible-stderr "$W/screen.redir" && ! grep -q "$(printf '\033]52')" "$W/screen.redir"; then
    ok "stdout to a file: the file gets the agent's output as it is, the screen (stderr) none of its OSC 52"
else
    fail "redirected: output" "$(od -c "$W/screen.redir" | head -n 20)"
fi
if [ "$(val isatty0 "$(R redir)")" = False ]; then
    ok "stdout to a file: the agent's stdin is the relay's pipe, not the operator's terminal"
else
    fail "redirected: stdin" "$(diag redir)"
fi

# ---- 5-6: a background job ------------------------------------------------------------------
run bg term --bg --stdout "$W/out.bg"
if [ "$(val rc "$W/run.bg")" = 0 ] && pushes_refused bg; then
    ok "background job: TIOCSTI on every fd of the agent is EPERM, /dev/tty is ENXIO"
else
    fail "background: pushes" "$(diag bg)"
fi
if [ "$(val pending "$W/run.bg")" = 0 ] && grep -q visible-stderr "$W/screen.bg"; then
    ok "background job: the operator's input queue stays empty; stderr still reaches the screen"
else
    fail "background: input queue" "$(diag bg)"
fi

# ---- 7-10: the whole terminal (pty mode) ----------------------------------------------------
run pty term
S=$W/screen.pty
if [ "$(val rc "$W/run.pty")" = 0 ] && pushes_refused pty "EPERM" && [ "$(val isatty0 "$(R pty)")" = True ]; then
    ok "terminal: the agent has a pty of its own; TIOCSTI on it and on /dev/tty is EPERM"
else
    fail "pty: pushes" "$(diag pty)"
fi
if [ "$(val pending "$W/run.pty")" = 0 ]; then
    ok "terminal: nothing waits in the operator's input queue"
else
    fail "pty: input queue" "$(diag pty)"
fi
if grep -q visible-marker "$S" && grep -q visible-stderr "$S" &&
    ! grep -q "$(printf '\033]52')" "$S" && ! grep -q "$(printf '\033]11;?')" "$S" &&
    ! grep -q "$(printf '\033P')" "$S" && ! grep -q "$(printf '\033\\[21t')" "$S"; then
    ok "terminal: the screen shows the agent's text but no OSC 52, colour query, DECRQSS or title report"
else
    fail "pty: screen" "$(od -c "$S" | head -n 30)"
fi
if grep -q "escape sequence(s) from the agent were kept from the terminal" "$S"; then
    ok "terminal: the operator is told that sequences were filtered and where to allow them"
else
    fail "pty: notice" "$(tail -c 600 "$S" | od -c | tail -n 12)"
fi

# ---- 11: the manifest switch ----------------------------------------------------------------
run clip clip
if [ "$(val rc "$W/run.clip")" = 0 ] && grep -q "$(printf '\033]52;c;ZWNobyBJTkpFQ1RFRAo=')" "$W/screen.clip" &&
    ! grep -q "$(printf '\033]11;?')" "$W/screen.clip"; then
    ok "terminal.allow_osc52: the clipboard write reaches the screen, the colour query still does not"
else
    fail "allow_osc52" "$(diag clip)" "$(od -c "$W/screen.clip" | head -n 20)"
fi

# ---- 12-14: what the bottle shows of the host ------------------------------------------------
if [ "$(val cmdline "$(R redir)")" = "bottle-init|" ] && [ "$(val cmdline "$(R pty)")" = "bottle-init|" ]; then
    ok "/proc/1/cmdline in the bottle is 'bottle-init', not the operator's command line"
else
    fail "init cmdline" "redir: $(val cmdline "$(R redir)")" "pty: $(val cmdline "$(R pty)")"
fi
if [ "$(val mountinfo "$(R redir)")" = clean ] && [ "$(val bundle "$(R redir)")" = present ]; then
    ok "mountinfo names no path under \$BOTTLE_HOME (nor the state directory); /bottle still holds the CA bundle"
else
    fail "mountinfo" "$(diag redir)"
fi
left=$(ls "$BOTTLE_HOME/state" 2>/dev/null)
if [ -z "$left" ] && [ -z "$(find "$BOTTLE_HOME/run" -name '*.sock' 2>/dev/null)" ]; then
    ok "every run ended cleanly: no state left"
else
    fail "teardown" "$left"
fi
