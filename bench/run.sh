#!/bin/sh
# Runs every benchmark under bench/ (bench/*.sh other than this file) and
# prints their results. Benchmarks print numbers and ratios measured side by
# side in the same run; they never pass or fail on timing.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BOTTLE_SRC="$ROOT"
export BUILD="${BUILD:-$ROOT/build}"
found=0
for b in "$ROOT"/bench/*.sh; do
    [ "$(basename "$b")" = "run.sh" ] && continue
    [ -f "$b" ] || continue
    found=1
    echo "== $(basename "$b" .sh)"
    sh "$b" || echo "bench $(basename "$b"): failed (exit $?)"
done
[ $found -eq 1 ] || echo "no benchmarks yet"
