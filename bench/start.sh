#!/bin/sh
# Start latency of the native backend: from running `bottle start` to the
# agent's exec (target: 50 ms, not counting the agent's own start-up), with a
# trivial agent (`date +%s%N`, which prints the wall clock as it starts). Runs
# N bottles one after another and prints p50/p90 of each phase visible from
# outside: the slug printed (state created), "sidecar ready" (from the
# controller's log), the agent's exec, and the teardown after it exits. Step
# timings the controller logs (log lines with "step" and "ms") are summarised
# too. Prints numbers; never passes or fails on them. Needs root.
# Usage: bench/start.sh [runs]   (default 20; BENCH_START_RUNS works too)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
RUNS=${1:-${BENCH_START_RUNS:-20}}
if [ "$(id -u)" -ne 0 ]; then
    echo "start: needs root (the native backend); not run"
    exit 0
fi
if ! make --no-print-directory -C "$ROOT" BUILD="$BUILD" "$BUILD/bottle" "$BUILD/bottle-proxy" \
    >/dev/null 2>&1; then
    [ -x "$BUILD/bottle" ] || { echo "start: cannot build $BUILD/bottle"; exit 1; }
    echo "start: the build failed; measuring the existing $BUILD/bottle"
fi
W=$(mktemp -d /tmp/bottle-bench-start.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/home/agents" "$W/home/bottles" "$W/ws"
cat >"$W/home/bottles/bench.md" <<'EOF'
---
agent_provider:
  template: generic
  command: [date, "+%s%N"]
---
A trivial agent: it prints the wall clock when it starts and exits.
EOF
printf -- '---\nbottle: bench\n---\n' >"$W/home/agents/bench.md"

python3 - "$BUILD/bottle" "$W" "$RUNS" <<'PY'
import json, os, subprocess, sys, time
from datetime import datetime

bottle, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = dict(os.environ, BOTTLE_HOME=work + "/home", BOTTLE_LOG_LEVEL="debug",
           BOTTLE_LOG_FORMAT="json")
for k in ("SUDO_UID", "SUDO_GID"):
    env.pop(k, None)


def ms(ns):
    return ns / 1e6


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def log_ns(ts):
    """The logger's ISO timestamp (millisecond resolution) in ns since the epoch."""
    d = datetime.strptime(ts.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return int((d - datetime(1970, 1, 1)).total_seconds() * 1e9)


# The agent's own start-up, measured alone: the same command outside any bottle.
own = []
for _ in range(max(5, runs // 2)):
    t0 = time.time_ns()
    out = subprocess.run(["date", "+%s%N"], capture_output=True, text=True).stdout
    own.append(ms(int(out.strip()) - t0))

phases = {k: [] for k in ("slug printed", "sidecar ready", "agent exec", "exec - own start",
                          "exit to teardown done")}
steps, failures = {}, []
for i in range(runs):
    t0 = time.time_ns()
    p = subprocess.Popen([bottle, "start", "bench", "--cwd", work + "/ws"], cwd=work + "/ws",
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_slug = t_exec = None
    for line in p.stdout:
        now = time.time_ns()
        if line.startswith("bottle: "):
            t_slug = now
        elif line.strip().isdigit():
            t_exec = int(line.strip())
    err = p.stderr.read()
    p.wait()
    t_end = time.time_ns()
    if p.returncode != 0 or t_exec is None:
        failures.append("run %d: exit %d: %s" % (i, p.returncode, err.strip()[-300:]))
        continue
    phases["slug printed"].append(ms(t_slug - t0))
    phases["agent exec"].append(ms(t_exec - t0))
    phases["exec - own start"].append(ms(t_exec - t0) - pct(own, 50))
    phases["exit to teardown done"].append(ms(t_end - t_exec))
    for line in err.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("msg") == "sidecar ready":
            phases["sidecar ready"].append(ms(log_ns(doc["ts"]) - t0))
        step = doc.get("step")
        dur = doc.get("ms", doc.get("duration_ms"))
        if step and dur is not None:
            steps.setdefault(step, []).append(float(dur))

print("bottle start -> agent exec, native backend, trivial agent, %d runs" % runs)
print("  %-24s %9s %9s %9s" % ("phase (ms from start)", "p50", "p90", "max"))
for name, xs in phases.items():
    if xs:
        print("  %-24s %9.1f %9.1f %9.1f" % (name, pct(xs, 50), pct(xs, 90), max(xs)))
print("  %-24s %9.1f %9.1f %9.1f" % ("agent's own start", pct(own, 50), pct(own, 90), max(own)))
if steps:
    print("  controller steps (from its log):")
    for name, xs in steps.items():
        print("    %-22s %9.1f %9.1f %9.1f" % (name, pct(xs, 50), pct(xs, 90), max(xs)))
else:
    print("  controller steps: not in the log (it logs no per-step timings)")
if phases["exec - own start"]:
    print("  start to exec (own start excluded), p50: %.1f ms; target 50 ms (ratio %.2f)" % (
        pct(phases["exec - own start"], 50), pct(phases["exec - own start"], 50) / 50))
for f in failures:
    print("  failed: " + f)
PY
