#!/bin/sh
# check-purity.sh must fail, naming the symbol, when a core library calls
# the clock, randomness or a socket library. Builds four throwaway archives
# (one calls time() and zmq_send) and runs the check on them.
#   tests/sim/purity_bites.sh SCRIPT
set -eu
script=$1
cc=${CC:-cc}
dir=$(mktemp -d /tmp/tm-purity-XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/pure.c" <<'C'
int tm_pure_add(int a, int b);
int tm_pure_add(int a, int b) { return a + b; }
C
cat > "$dir/impure.c" <<'C'
#include <time.h>
int zmq_send(void *s, const void *b, unsigned long n, int f);
long tm_impure_now(void);
long tm_impure_now(void) { zmq_send(0, 0, 0, 0); return (long)time(NULL); }
C
"$cc" -c -o "$dir/pure.o" "$dir/pure.c"
"$cc" -c -o "$dir/impure.o" "$dir/impure.c"
for l in engine clock elect fwdcore; do ar rcs "$dir/libtm_$l.a" "$dir/pure.o"; done
ar rcs "$dir/libtm_hlc.a" "$dir/impure.o"
if out=$(sh "$script" "$dir" 2>&1); then
    echo "FAIL: check-purity passed an archive that calls time() and zmq_send:"
    echo "$out"
    exit 1
fi
echo "$out"
for sym in time zmq_send; do
    if ! echo "$out" | grep -q "IMPURE: .*libtm_hlc.a.* uses $sym\$"; then
        echo "FAIL: check-purity did not name $sym"
        exit 1
    fi
done
echo "ok: the check names what it refuses"
