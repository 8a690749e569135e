#!/bin/sh
# The README's first command (scripts/demo) runs a real bottle and shows what
# it promises: the allowed route with an injected token, a refusal, EPERM for
# a direct connect, and `bottle usage` for the bottle.
. "$BOTTLE_SRC/tests/lib.sh"

plan 5
if ! is_root; then
    for i in 1 2 3 4 5; do skip "demo $i" kernel "needs root"; done
    exit 0
fi
out=$(cd "$BOTTLE_SRC" && timeout 300 ./scripts/demo 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "scripts/demo exits 0"; else fail "scripts/demo exits 0" "exit $rc" "$out"; fi
has() { echo "$out" | grep -q -- "$2" && ok "$1" || fail "$1" "$out"; }
has "allowed route reached with the token injected" "the upstream saw Authorization: Bearer <the real token"
has "a host outside the routes is refused" "CONNECT tunnel failed, response 403"
has "a direct connection gets EPERM" "Operation not permitted"
has "bottle usage reports the bottle's counters" "^demo-[0-9a-z]\{5\} .* open$"
