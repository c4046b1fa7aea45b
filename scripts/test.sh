#!/bin/sh
# The one test command (see README): install dependencies, build with
# ASan+UBSan and -Werror, run every test. Exits non-zero on any failure.
#   scripts/test.sh            all tests
#   scripts/test.sh -L unit    only the unit tests (any ctest arguments work)
#   TM_FUZZ_SECONDS=0 ...      skip the short fuzzing pass (default 40 s in all)
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh
# The Tryton adapter's tests need trytond and its modules (Debian 12's).
sh scripts/deps-tryton.sh
# The Debian package, man pages and install test (debian/, tests/pkg).
sh scripts/deps-pkg.sh
BUILD=${TM_BUILD_DIR:-build/asan}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DTM_SANITIZE=ON -DTM_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
# Everything outsiders reach (frames, bodies, API, config, trusted keys,
# mDNS TXT, two engines converging) is fuzzed briefly on each run
# (libFuzzer, clang; every seed in tests/fuzz/corpus first); a finding fails
# the run. TM_FUZZ_SECONDS is the whole pass's budget, 0 skips it.
if [ "${TM_FUZZ_SECONDS:-40}" != 0 ]; then
    FUZZ_SECONDS=${TM_FUZZ_SECONDS:-40} sh scripts/fuzz.sh
fi
# Leak checking is on; Criterion forks each test, and a leak fails it.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
cd "$BUILD"
# The simulator's CI seeds (docs/sim.md) run first, two slices at a time.
if [ $# -eq 0 ]; then
    ctest --output-on-failure -L sim -j2
    set -- -LE sim
fi
# Then everything else two at a time (most tests wait on processes, not the
# CPU); the store lab scenarios and the tests that touch network namespaces
# or mounts take turns among themselves (RESOURCE_LOCK host_net, see
# CMakeLists.txt), each beside a loopback test.
ctest --output-on-failure --timeout 600 -j2 "$@"
