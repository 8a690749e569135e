#!/bin/sh
# DLP engine bench: MB/s per core of the outbound scan over clean text, JSON
# bodies and bodies with matches, with 1, 50 and 1000 known secrets, and the
# target line (1 MB JSON body, default detectors, 50 secrets, >= 1000 MB/s).
# BOTTLE_DLP_SIMD=0 measures the portable path. Prints numbers; asserts nothing.
set -u
ROOT=${BOTTLE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${BUILD:-$ROOT/build}
W=$(mktemp -d /tmp/bottle-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
[ -f "$BUILD/libbottle.a" ] || { echo "dlp bench: $BUILD/libbottle.a not built (make first)"; exit 1; }
PKGS="libcjson zlib libbrotlidec libbrotlienc"
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -I"$ROOT" -I"$BUILD" $(pkg-config --cflags $PKGS) \
    -o "$W/dlp_bench" "$ROOT/bench/dlp_bench.c" "$BUILD/libbottle.a" \
    $(pkg-config --libs $PKGS) || exit 1
"$W/dlp_bench"
