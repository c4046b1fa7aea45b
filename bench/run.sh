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
TM_BIN_DIR=$(pwd)/$BUILD python3 bench/bench_catalogue.py
# Failover in the netns store lab with keepalived as the reference, and the
# ERP's probe load for 2, 5 and 10 tills (root; ~18 min, 10 of them under
# 20 % loss): bench/results/failover.md.
TM_BIN_DIR=$(pwd)/$BUILD python3 bench/bench_failover.py
# Retention: disk per 100,000 sales before and after compaction.
rm -f /tmp/tm-retention-bench.db*
"$BUILD"/tm_retention /tmp/tm-retention-bench.db 100000 | tee /tmp/tm-retention.out
awk '{for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
     END { printf "| disk per %d sales | before compaction %.1f MB (%.0f B/sale) | after %.1f MB (%.0f B/sale) |\n",
           v["n"], v["bytes_in_use_before"] / 1e6, v["bytes_in_use_before"] / v["n"],
           v["bytes_in_use_after"] / 1e6, v["bytes_in_use_after"] / v["n"] }' /tmp/tm-retention.out \
    > bench/results/retention.md
cat bench/results/retention.md
rm -f /tmp/tm-retention-bench.db* /tmp/tm-retention.out
# The ERP backlog figures (tm_store_backlog: the forwarder watch on every
# till at each heartbeat, /metrics, status) with 100,000 unacknowledged
# sales: answered from memory while nothing is written, and after a write.
rm -f /tmp/tm-backlog-bench.db*
"$BUILD"/tm_fill /tmp/tm-backlog-bench.db 100000 >/dev/null
"$BUILD"/tm_backlog /tmp/tm-backlog-bench.db 200 | tee /tmp/tm-backlog.out
awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
     END { printf "| tm_store_backlog with %d unacknowledged sales | %.3f ms after a write, %.4f ms with nothing written since |\n",
           v["unsent"], v["fresh"], v["kept"] }' /tmp/tm-backlog.out > bench/results/backlog.md
cat bench/results/backlog.md
rm -f /tmp/tm-backlog-bench.db* /tmp/tm-backlog.out
# The simulator: events/s and seeds/min (bench/results/sim.md).
sh bench/sim.sh
