#!/bin/sh
# `bottle policy test` on every case of tests/fixtures/policy/cases.tsv: the
# same table test_policy_agree runs through the matcher's API, so the CLI and
# the matcher agree case by case.
. "$BOTTLE_SRC/tests/lib.sh"

TABLE="$BOTTLE_SRC/tests/fixtures/policy/cases.tsv"
export BOTTLE_HOME="$BOTTLE_SRC/tests/fixtures/policy"
cd "$T_TMP" || exit 1
plan "$(grep -cv '^#' "$TABLE")"

tab=$(printf '\t')
grep -v '^#' "$TABLE" | while IFS="$tab" read -r method url headers want; do
    set -- --method "$method" --format json
    if [ "$headers" != "-" ]; then
        old_ifs=$IFS
        IFS='|'
        for h in $headers; do set -- "$@" --header "$h"; done
        IFS=$old_ifs
    fi
    out=$("$BOTTLE" policy test agree "$url" "$@" 2>&1)
    rc=$?
    got=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reason"])' 2>/dev/null)
    if [ "$want" = "allowed" ]; then want_rc=0; else want_rc=3; fi
    if [ "$got" = "$want" ] && [ $rc -eq $want_rc ]; then
        ok "$method $url -> $want (exit $rc)"
    else
        fail "$method $url -> want $want (exit $want_rc)" "got '$got' exit $rc: $out"
    fi
done
