#!/bin/sh
# `bottle dashboard` driven in tmux against a real bottle: it lists the bottle
# with its state, and its keys cut off, restore, freeze, thaw and kill it.
# `--once` prints the same frame without a terminal.
. "$BOTTLE_SRC/tests/lib.sh"

N=8
plan $N

if ! is_root || ! command -v tmux >/dev/null; then
    for i in $(seq 1 $N); do skip "dashboard $i" kernel "needs root and tmux"; done
    exit 0
fi

W=$T_TMP
SESSION=bottle-dash-$$
START_PID=""
cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null
    [ -n "$START_PID" ] && kill "$START_PID" 2>/dev/null && wait "$START_PID" 2>/dev/null
    rm -rf "$T_TMP"
}
trap cleanup EXIT

export BOTTLE_HOME="$W/home"
WS="$W/ws"
mkdir -p "$BOTTLE_HOME/agents" "$BOTTLE_HOME/bottles" "$WS"
chmod 0777 "$WS"
unset SUDO_UID SUDO_GID
cat >"$BOTTLE_HOME/bottles/dash.md" <<EOF
---
agent_provider:
  template: generic
  command: [sleep, "120"]
---
A bottle that waits.
EOF
printf -- '---\nbottle: dash\n---\nWait.\n' >"$BOTTLE_HOME/agents/dash.md"

LABEL=dash-$$
(cd "$WS" && exec "$BOTTLE" start dash --label "$LABEL" --cwd "$WS") >"$W/start.out" 2>"$W/start.err" &
START_PID=$!
i=0
until "$BOTTLE" usage "$LABEL" >/dev/null 2>&1 || [ $i -ge 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
sleep 0.3

CG2=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
frozen() { grep -q '^frozen 1' "$CG2/bottle/$LABEL/agent/cgroup.events"; }
cut_off() { "$BOTTLE" usage "$LABEL" --json 2>/dev/null | grep -q '"state": *"cut-off"'; }

# 1: --once
"$BOTTLE" dashboard --once >"$W/once" 2>&1
if grep "$LABEL" "$W/once" | grep -q running &&
    [ "$(awk '{ if (length($0) > 80) n++ } END { print n + 0 }' "$W/once")" -eq 0 ]; then
    ok "--once lists the bottle as running within 80 columns"
else
    fail "--once" "$(cat "$W/once" "$W/start.err")"
fi

tmux new-session -d -s "$SESSION" -x 80 -y 24 "BOTTLE_HOME=$BOTTLE_HOME $BOTTLE dashboard"
screen() { tmux capture-pane -p -t "$SESSION"; }
wait_screen() { # pattern
    j=0
    while [ $j -lt 40 ]; do
        screen | grep -q "$1" && return 0
        sleep 0.1
        j=$((j + 1))
    done
    return 1
}
# 2: the live view
if wait_screen "$LABEL" && screen | grep "$LABEL" | grep -q running; then ok "the dashboard shows the bottle running"; else fail "live view" "$(screen)"; fi
# 3: c cuts it off
tmux send-keys -t "$SESSION" c
if wait_screen "cut off" && cut_off; then ok "c cuts the bottle off (kernel flag set)"; else fail "cutoff key" "$(screen)"; fi
# 4: r restores
tmux send-keys -t "$SESSION" r
if wait_screen "restore done" && ! cut_off; then ok "r restores its traffic"; else fail "restore key" "$(screen)"; fi
# 5: f freezes
tmux send-keys -t "$SESSION" f
if wait_screen "freeze done" && frozen; then ok "f freezes the bottle (cgroup frozen)"; else fail "freeze key" "$(screen)"; fi
# 6: t thaws
tmux send-keys -t "$SESSION" t
if wait_screen "thaw done" && ! frozen; then ok "t thaws it"; else fail "thaw key" "$(screen)"; fi
# 7: k asks, then kills; the bottle ends and tears down
tmux send-keys -t "$SESSION" k
wait_screen "press y" && tmux send-keys -t "$SESSION" y
j=0
while kill -0 "$START_PID" 2>/dev/null && [ $j -lt 100 ]; do sleep 0.1; j=$((j + 1)); done
if ! kill -0 "$START_PID" 2>/dev/null; then
    wait "$START_PID"
    rc=$?
    START_PID=""
    if [ $rc -eq 137 ]; then ok "k then y kills the bottle (agent exit 137)"; else fail "kill key" "rc=$rc" "$(cat "$W/start.err")"; fi
else
    fail "kill key" "bottle still running" "$(screen)"
fi
# 8: the finished bottle leaves the view; q quits
if wait_screen "0 live bottles"; then ok "the dashboard drops the finished bottle"; else fail "after kill" "$(screen)"; fi
tmux send-keys -t "$SESSION" q
