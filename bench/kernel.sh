#!/bin/sh
# Kernel layer benchmark: install time, per-connect overhead, cutoff latency.
# Builds bench/kernel_bench.c against $BUILD/libbottle.a and runs it (root).
# Usage: bench/kernel.sh [connects] [runs]
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
cd "$ROOT"
make --no-print-directory BUILD="$BUILD" "$BUILD/libbottle.a" >/dev/null
PKGS="yaml-0.1 libcjson libidn2 openssl libseccomp sqlite3 libbpf libnl-3.0 libnl-route-3.0 zlib libbrotlidec libbrotlienc ncursesw"
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -I. -I"$BUILD" $(pkg-config --cflags $PKGS) \
    -o "$BUILD/kernel_bench" bench/kernel_bench.c "$BUILD/libbottle.a" \
    $(pkg-config --libs $PKGS) -lpthread
exec "$BUILD/kernel_bench" "$@"
