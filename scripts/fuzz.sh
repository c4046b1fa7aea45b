#!/bin/sh
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for
# FUZZ_SECONDS (default 20) from the seed corpus in tests/fuzz/corpus.
# A crash fails the script and leaves the input in build/fuzz/crash-*.
set -eu
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-20}
BUILD=build/fuzz
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DTM_FUZZ=ON -DTM_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target fuzz_envelope fuzz_bodies fuzz_json >/dev/null
for t in envelope bodies json; do
    work=$(mktemp -d)
    cp tests/fuzz/corpus/$t/* "$work"/ 2>/dev/null || true
    echo "fuzz: $t for ${SECS}s"
    (cd "$BUILD" && ./fuzz_$t -max_total_time="$SECS" -max_len=65536 -print_final_stats=1 \
        "$work" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|ERROR|SUMMARY" || true)
    # libFuzzer exits non-zero on a finding; re-check explicitly.
    if ls "$BUILD"/crash-* "$BUILD"/leak-* "$BUILD"/timeout-* >/dev/null 2>&1; then
        echo "fuzz: $t found a crashing input:"; ls "$BUILD"/crash-* "$BUILD"/leak-* 2>/dev/null
        rm -rf "$work"
        exit 1
    fi
    rm -rf "$work"
done
echo "fuzz: no crash"
