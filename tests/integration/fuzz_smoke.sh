#!/bin/sh
# Builds every libFuzzer target (clang, ASan + UBSan) and runs each for a few
# seconds from its seed corpus. A crash, a sanitizer report or a leak fails.
. "$BOTTLE_SRC/tests/lib.sh"

targets=$(ls "$BOTTLE_SRC"/tests/fuzz/fuzz_*.c 2>/dev/null)
n=$(echo "$targets" | grep -c .)
plan $((n + 1))

FUZZ_BUILD="$T_TMP/fb"
if out=$(make -s -C "$BOTTLE_SRC" fuzz BUILD="$FUZZ_BUILD" 2>&1); then
    ok "fuzz targets build with libFuzzer, ASan and UBSan"
else
    fail "fuzz targets build" "$out"
fi
secs=${FUZZ_SECONDS:-10}
for src in $targets; do
    name=$(basename "$src" .c)
    bin="$FUZZ_BUILD-fuzz/$name"
    corpus="$T_TMP/corpus-$name"
    mkdir -p "$corpus"
    seeds="$BOTTLE_SRC/tests/fuzz/seeds/$name"
    [ -d "$seeds" ] && cp "$seeds"/* "$corpus"/ 2>/dev/null
    if [ ! -x "$bin" ]; then
        fail "$name runs clean" "not built"
        continue
    fi
    if out=$(cd "$T_TMP" && UBSAN_OPTIONS=halt_on_error=1 "$bin" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 "$corpus" 2>&1); then
        runs=$(echo "$out" | sed -n 's/^Done \([0-9]*\) runs.*/\1/p')
        ok "$name runs clean for ${secs}s (${runs:-?} inputs)"
    else
        fail "$name runs clean" "$(echo "$out" | tail -n 25)"
    fi
done
