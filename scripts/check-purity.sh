#!/bin/sh
# The core reads no clock, no randomness and no socket (issue 14, DESIGN.md
# "Functional core"): time, random bytes and I/O come in as arguments. This
# checks it on the objects built from core/, whatever library holds them:
# CMake writes their list to BUILD_DIR/core-objects.txt ("ARCHIVE MEMBER"
# per line, every source under core/ of every static library), so a new
# file in core/ is checked without editing this script.
#   scripts/check-purity.sh [BUILD_DIR]     (default build/asan)
#
# Refused: clock_gettime time gettimeofday rand random getrandom
#          randombytes_* zmq_* curl_* avahi_* MHD_* pthread_*
#          tm_random tm_uuid_new (common/random.c: libsodium's randomness)
# The check follows calls into the project's own libraries: a core object
# that calls a helper in another of our archives is impure if that helper's
# object is (e.g. a logger that reads the clock). It stops at the store
# (libtm_store.a, "may stay under the core", issue 14): the store draws node
# ids from libsodium, which tm-sim replaces with its seeded generator.
set -eu
BUILD=${1:-build/asan}
LIST="$BUILD/core-objects.txt"
NM=${NM:-nm}
STOP=${TM_PURITY_STOP:-libtm_store.a}
if ! command -v "$NM" >/dev/null 2>&1; then
    echo "check-purity: $NM not found (binutils)" >&2
    exit 2
fi
if [ ! -s "$LIST" ]; then
    echo "check-purity: $LIST is missing or empty (configure and build first)" >&2
    exit 2
fi
tmp=$(mktemp -d /tmp/tm-purity-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# Every archive of the build: who defines what, who needs what.
seen=""
: >"$tmp/def"
: >"$tmp/und"
for a in "$BUILD"/*.a $(awk '{ print $1 }' "$LIST" | sort -u); do
    [ -f "$a" ] || continue
    case " $seen " in *" $a "*) continue ;; esac
    seen="$seen $a"
    base=$(basename "$a")
    # "lib.a[member]: symbol type ..." -> "lib.a:member symbol"
    "$NM" -A -P --defined-only "$a" 2>/dev/null |
        awk -v b="$base" '$3 ~ /^[A-Z]$/ { m = $1; sub(/^.*\[/, "", m); sub(/\]:$/, "", m);
                                           s = $2; sub(/@.*/, "", s); print b ":" m, s }' >>"$tmp/def"
    "$NM" -A -P -u "$a" 2>/dev/null |
        awk -v b="$base" '{ m = $1; sub(/^.*\[/, "", m); sub(/\]:$/, "", m);
                            s = $2; sub(/@.*/, "", s); print b ":" m, s }' >>"$tmp/und"
done
missing=0
while read -r a m; do
    if [ ! -f "$a" ]; then
        echo "check-purity: $a is missing (build first)" >&2
        missing=1
    elif ! grep -q "^$(basename "$a"):$m " "$tmp/und"; then
        echo "check-purity: $a has no member $m (stale $LIST?)" >&2
        missing=1
    fi
done <"$LIST"
[ "$missing" = 0 ] || exit 2
awk '{ n = split($1, p, "/"); print p[n] ":" $2 }' "$LIST" | sort -u >"$tmp/core"
# Breadth-first over the objects the core reaches; print each refused
# symbol with the path that reaches it.
awk -v stop="$STOP" '
    FILENAME == ARGV[1] { if (!($2 in def)) def[$2] = $1; next }
    FILENAME == ARGV[2] { und[$1] = und[$1] " " $2; next }
    { queue[++nq] = $1; via[$1] = $1; inset[$1] = 1 }
    function refused(s) {
        return s ~ /^(clock_gettime|time|gettimeofday|rand|random|getrandom|tm_random|tm_uuid_new)$/ ||
               s ~ /^(randombytes_|zmq_|curl_|avahi_|MHD_|pthread_)/
    }
    END {
        for (h = 1; h <= nq; h++) {
            o = queue[h]
            n = split(und[o], syms, " ")
            for (i = 1; i <= n; i++) {
                s = syms[i]
                if (refused(s)) { print via[o] " uses " s; continue }
                if (!(s in def)) continue
                d = def[s]
                split(d, ap, ":")
                if (ap[1] == stop || (d in inset)) continue
                inset[d] = 1
                queue[++nq] = d
                via[d] = via[o] " -> " s " in " d
            }
        }
    }' "$tmp/def" "$tmp/und" "$tmp/core" | sort -u >"$tmp/bad"
if [ -s "$tmp/bad" ]; then
    sed 's/^/IMPURE: /' "$tmp/bad"
    echo "check-purity: the core must take time, randomness and I/O as arguments" >&2
    exit 1
fi
echo "pure: $(wc -l <"$tmp/core") core objects:" $(cat "$tmp/core")
