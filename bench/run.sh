#!/bin/sh
# bench/run.sh - builds a release build and runs the benchmarks; the table
# goes to stdout and to bench/results/mesh.md. Not part of the test suite:
# timings on shared machines are figures to read, not assertions.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
BUILD=build/release
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_BUILD_TESTS=OFF -DTM_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
TM_BIN_DIR=$(pwd)/$BUILD python3 bench/bench.py
TM_BIN_DIR=$(pwd)/$BUILD python3 bench/bench_erp.py
