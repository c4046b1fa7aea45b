#!/bin/sh
# Builds the libFuzzer targets with clang (ASan+UBSan) and fuzzes each one
# listed in tests/fuzz/targets.txt, starting from its seeds in
# tests/fuzz/corpus/NAME, with inputs up to the size its decoder accepts.
# Every seed is run first, so a regression seed that crashes fails at once.
#
#   FUZZ_SECONDS=40        total budget, split evenly across the targets
#                          (at least 2 s each); the test command sets it
#   FUZZ_TARGETS="api txt" only these targets
#   FUZZ_CORPUS=DIR        keep the grown corpora in DIR/NAME (default: a
#                          temporary copy of the seeds, thrown away)
#   FUZZ_RESULTS=FILE      append one line per target (execs/s, coverage)
#
# A finding fails the script and leaves the input in build/fuzz/artifacts/
# (crash-*, leak-*, timeout-*, oom-*). Reproduce with:
#   build/fuzz/fuzz_NAME build/fuzz/artifacts/NAME-crash-...
set -eu
cd "$(dirname "$0")/.."
TOTAL=${FUZZ_SECONDS:-40}
BUILD=build/fuzz
LIST=tests/fuzz/targets.txt
targets=${FUZZ_TARGETS:-$(grep -E '^[a-z_]+ ' "$LIST" | cut -d' ' -f1)}
for t in $targets; do
    grep -qE "^$t [0-9]+" "$LIST" || { echo "fuzz: no target \"$t\" in $LIST" >&2; exit 2; }
done
n=$(echo "$targets" | wc -w)
SECS=$((TOTAL / n))
[ "$SECS" -ge 2 ] || SECS=2

CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DTM_FUZZ=ON -DTM_BUILD_TESTS=OFF >/dev/null
exes=""
for t in $targets; do exes="$exes fuzz_$t"; done
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $exes >/dev/null
mkdir -p "$BUILD/artifacts"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

failed=""
for t in $targets; do
    maxlen=$(grep -E "^$t " "$LIST" | cut -d' ' -f2)
    if [ -n "${FUZZ_CORPUS:-}" ]; then
        work="$FUZZ_CORPUS/$t"
    else
        work="$tmp/$t"
    fi
    mkdir -p "$work"
    log="$tmp/$t.log"
    # -close_fd_mask=3: the code's own log lines are silenced; libFuzzer and
    # the sanitizers still report on a descriptor of their own.
    # -timeout: an input that takes 10 s is a hang, and a finding.
    set +e
    "$BUILD/fuzz_$t" -max_total_time="$SECS" -max_len="$maxlen" -timeout=10 \
        -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
    corp=$(find "$work" -type f | wc -l)
    printf 'fuzz: %-9s %3ss  %9s execs  %6s/s  cov %5s  corpus %5s  rss %s MB  max_len %s\n' \
        "$t" "$SECS" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corp" "${rss:-?}" "$maxlen"
    if [ -n "${FUZZ_RESULTS:-}" ]; then
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$SECS" "${execs:-?}" \
            "${rate:-?}" "${cov:-?}" "$corp" "$maxlen" >>"$FUZZ_RESULTS"
    fi
    if [ "$rc" != 0 ]; then
        echo "fuzz: $t FAILED (exit $rc):"
        grep -E 'ERROR|SUMMARY|fuzz_|Test unit written|==[0-9]+==|^ +#[0-9]+ ' "$log" | head -n 40
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed (inputs in $BUILD/artifacts/)"
    exit 1
fi
echo "fuzz: no finding"
