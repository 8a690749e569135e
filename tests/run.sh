#!/bin/sh
# Runs every suite and prints one closing line:
#   tests: N passed, N failed, N skipped
# Unit tests are cmocka binaries run with TAP output; integration and e2e
# tests are shell scripts that print TAP lines (tests/lib.sh). A binary or
# script that dies before reporting all of its planned tests counts the
# missing ones as failures.
set -u

BUILD=${BUILD:-$(pwd)/build}
export BUILD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BOTTLE_SRC="$ROOT"
LOG=${TEST_LOG:-$BUILD/tests/last-run.log}
mkdir -p "$(dirname "$LOG")"
: >"$LOG"

pass=0
fail=0
skip=0

run_one() {
    name=$1
    shift
    out=$(mktemp)
    "$@" >"$out" 2>&1
    rc=$?
    planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$out" | head -n1)
    p=$(grep -c '^ok ' "$out")
    s=$(grep -c '^not ok .*# SKIP' "$out")
    sk2=$(grep -c '^ok .*# SKIP' "$out")
    f=$(grep '^not ok ' "$out" | grep -vc '# SKIP')
    p=$((p - sk2))
    s=$((s + sk2))
    seen=$((p + s + f))
    if [ -n "$planned" ] && [ "$seen" -lt "$planned" ]; then
        f=$((f + planned - seen))
    fi
    if [ "$seen" -eq 0 ] && [ "$rc" -ne 0 ]; then
        f=$((f + 1))
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    skip=$((skip + s))
    {
        echo "=== $name (exit $rc): $p passed, $f failed, $s skipped"
        cat "$out"
    } >>"$LOG"
    if [ "$f" -gt 0 ]; then
        echo "FAIL $name"
        grep -E '^(not ok|# )' "$out" | grep -v '# SKIP' | head -n 40
    else
        echo "ok   $name ($p passed, $s skipped)"
    fi
    rm -f "$out"
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "unit/$(basename "$t")" env CMOCKA_MESSAGE_OUTPUT=TAP "$t"
done

if [ -z "${UNIT_ONLY:-}" ]; then
    for suite in integration e2e; do
        for t in "$ROOT"/tests/$suite/${TEST_FILTER:-*}.sh; do
            [ -f "$t" ] || continue
            run_one "$suite/$(basename "$t" .sh)" sh "$t"
        done
    done
fi

echo "(full output: $LOG)"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
