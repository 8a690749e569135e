# Shared helpers for shell test suites: TAP output, temp dirs, root checks.
# Source it, call plan N, then ok/fail/skip for each case.
set -u

T_N=0
T_TMP=$(mktemp -d /tmp/bottle-test.XXXXXX)
trap 'rm -rf "$T_TMP"' EXIT
BOTTLE=${BUILD:-$BOTTLE_SRC/build}/bottle
BOTTLE_PROXY=${BUILD:-$BOTTLE_SRC/build}/bottle-proxy

plan() { echo "1..$1"; }
ok() { T_N=$((T_N + 1)); echo "ok $T_N - $1"; }
fail() {
    T_N=$((T_N + 1))
    echo "not ok $T_N - $1"
    shift
    for line in "$@"; do echo "# $line"; done
}
# A skip; under CI (CI=true) a kernel test may not skip: it fails instead.
skip() {
    T_N=$((T_N + 1))
    if [ "${CI:-}" = "true" ] && [ "${2:-}" = "kernel" ]; then
        echo "not ok $T_N - $1 (skipped under CI: $3)"
    else
        echo "ok $T_N - $1 # SKIP ${3:-}"
    fi
}
# check NAME CMD...: ok when CMD succeeds.
check() {
    name=$1
    shift
    if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$out"; fi
}
is_root() { [ "$(id -u)" -eq 0 ]; }
