#!/bin/sh
# bench/sim.sh - tm-sim figures on a release build: simulated events/s and
# seeds/min over a soak of seeds (default 1..2000; SIM_SEEDS=A..B to change).
# The table goes to stdout and to bench/results/sim.md. Figures to read, not
# assertions: the machine is shared.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
SEEDS=${SIM_SEEDS:-1..2000}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target tm-sim >/dev/null 2>&1 ||
    { echo "bench/sim.sh: build failed (cmake --build $BUILD --target tm-sim)" >&2; exit 1; }
out=$(mktemp /tmp/tm-sim-bench-XXXXXX)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
# user CPU seconds too: on a shared machine wall time says more about the
# neighbours than about the simulator.
/usr/bin/env time -f "cpu_user=%U cpu_sys=%S" "$BUILD"/tm-sim --seeds "$SEEDS" >"$out" 2>&1 || true
grep -E "^FAIL|replay:" "$out" || true
line=$(grep -E "seeds, [0-9]+ failed" "$out")
cpu=$(grep -E "^cpu_user=" "$out" || echo "cpu_user=? cpu_sys=?")
echo "$line"
echo "$cpu"
n=$(echo "$line" | awk '{print $1}')
user=$(echo "$cpu" | sed -n 's/.*cpu_user=\([0-9.]*\).*/\1/p')
{
    echo "| figure | tm-sim (release, one core) |"
    echo "|---|---|"
    echo "| seeds $SEEDS | $(echo "$line" | sed 's/^[0-9]* seeds, //') |"
    if [ -n "$user" ]; then
        echo "| CPU per seed (user) | $(awk -v u="$user" -v n="$n" 'BEGIN { printf "%.1f ms", 1000 * u / n }') |"
        echo "| seeds/min per core, CPU-bound | $(awk -v u="$user" -v n="$n" 'BEGIN { printf "%.0f", 60 * n / u }') |"
    fi
    echo
    echo "Machine: $(nproc) cores, $(date -u +%Y-%m-%d), shared with other work; wall time $(($(date +%s) - start)) s."
} > bench/results/sim.md
cat bench/results/sim.md
