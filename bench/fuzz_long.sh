#!/bin/sh
# bench/fuzz_long.sh - a longer libFuzzer run of every target (default 300 s
# each; FUZZ_LONG_SECONDS=N to change, FUZZ_TARGETS="api engine" for some).
# Corpora grow across runs in build/fuzz/corpus-long/NAME (seeded from
# tests/fuzz/corpus). Prints execs/s, coverage and corpus size per target and
# writes them to bench/results/fuzz.md. Not part of the test suite; a finding
# still fails it, with the input in build/fuzz/artifacts/.
set -eu
cd "$(dirname "$0")/.."
PER=${FUZZ_LONG_SECONDS:-300}
OUT=bench/results/fuzz.md
targets=${FUZZ_TARGETS:-$(grep -E '^[a-z_]+ ' tests/fuzz/targets.txt | cut -d' ' -f1)}
n=$(echo "$targets" | wc -w)
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT INT TERM
rc=0
FUZZ_TARGETS="$targets" FUZZ_SECONDS=$((PER * n)) FUZZ_CORPUS=build/fuzz/corpus-long \
    FUZZ_RESULTS="$rows" sh scripts/fuzz.sh || rc=$?
{
    echo "| target | seconds | execs | execs/s | coverage (edges) | corpus | max_len |"
    echo "|---|---|---|---|---|---|---|"
    cat "$rows"
    echo
    echo "libFuzzer, clang $(clang --version | sed -n 's/.*clang version \([0-9.]*\).*/\1/p'), ASan+UBSan," \
        "-O0 debug build; $(nproc) cores ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1))," \
        "shared with other work; $(date -u +%Y-%m-%d). Corpus: build/fuzz/corpus-long," \
        "$(if [ "$rc" = 0 ]; then echo 'no finding'; else echo 'FINDINGS: see build/fuzz/artifacts'; fi)."
} >"$OUT"
cat "$OUT"
exit "$rc"
