#!/bin/sh
# The core reads no clock, no randomness and no socket (issue 14, DESIGN.md
# "Functional core"): time, random bytes and I/O come in as arguments. This
# checks it on the static libraries of the core: any undefined symbol from
# the list below fails the check, naming the library, object and symbol.
#   scripts/check-purity.sh [BUILD_DIR]     (default build/asan)
# Checked: libtm_engine.a libtm_hlc.a libtm_clock.a libtm_elect.a libtm_fwdcore.a
# Refused: clock_gettime time gettimeofday rand random getrandom
#          randombytes_* zmq_* curl_* avahi_* MHD_* pthread_*
# (randombytes_* is libsodium's randomness: refused for the same reason.)
set -eu
BUILD=${1:-build/asan}
LIBS="libtm_engine.a libtm_hlc.a libtm_clock.a libtm_elect.a libtm_fwdcore.a"
NM=${NM:-nm}
if ! command -v "$NM" >/dev/null 2>&1; then
    echo "check-purity: $NM not found (binutils)" >&2
    exit 2
fi
fail=0
for lib in $LIBS; do
    path="$BUILD/$lib"
    if [ ! -f "$path" ]; then
        echo "check-purity: $path is missing (build first)" >&2
        exit 2
    fi
    # "archive:member: U symbol" per line; strip symbol versions (@GLIBC...).
    bad=$("$NM" -u -A "$path" 2>/dev/null | awk '{ s = $NF; sub(/@.*/, "", s); print $1, s }' |
        awk '$2 ~ /^(clock_gettime|time|gettimeofday|rand|random|getrandom)$/ ||
             $2 ~ /^(randombytes_|zmq_|curl_|avahi_|MHD_|pthread_)/ { print }' | sort -u)
    if [ -n "$bad" ]; then
        echo "$bad" | while read -r where sym; do
            echo "IMPURE: ${where%:} uses $sym"
        done
        fail=1
    else
        echo "pure: $lib"
    fi
done
if [ "$fail" != 0 ]; then
    echo "check-purity: the core must take time, randomness and I/O as arguments" >&2
    exit 1
fi
