#!/bin/sh
# check-purity.sh must fail, naming the symbol, when a core object calls the
# clock, randomness or a socket library, directly or through a helper in
# another of our archives (a logger that reads the clock), or tm_random; and
# must pass what only the store (outside the checked set) does. Builds
# throwaway archives and a core-objects.txt as CMake writes it.
#   tests/sim/purity_bites.sh SCRIPT
set -eu
script=$1
cc=${CC:-cc}
dir=$(mktemp -d /tmp/tm-purity-XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/pure.c" <<'C'
int tm_pure_add(int a, int b);
int tm_store_thing(void);
int tm_pure_add(int a, int b) { return a + b + tm_store_thing(); }
C
cat >"$dir/impure.c" <<'C'
#include <time.h>
int zmq_send(void *s, const void *b, unsigned long n, int f);
long tm_impure_now(void);
long tm_impure_now(void) { zmq_send(0, 0, 0, 0); return (long)time(NULL); }
C
cat >"$dir/logs.c" <<'C'
void tm_log_line(const char *m);
int tm_logs_twice(void);
int tm_logs_twice(void) { tm_log_line("a"); tm_log_line("b"); return 2; }
C
cat >"$dir/draws.c" <<'C'
#include <stddef.h>
void tm_random(void *buf, size_t n);
int tm_draws(void);
int tm_draws(void) { int x; tm_random(&x, sizeof x); return x; }
C
cat >"$dir/logger.c" <<'C'
#include <stdio.h>
#include <time.h>
void tm_log_line(const char *m);
void tm_log_line(const char *m)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    printf("%ld %s\n", (long)ts.tv_sec, m);
}
C
cat >"$dir/store.c" <<'C'
#include <stddef.h>
void randombytes_buf(void *buf, size_t n);
int tm_store_thing(void);
int tm_store_thing(void) { int x; randombytes_buf(&x, sizeof x); return x; }
C
for f in pure impure logs draws logger store; do
    "$cc" -c -o "$dir/$f.c.o" "$dir/$f.c"
done
ar rcs "$dir/libtm_common.a" "$dir/logger.c.o"
ar rcs "$dir/libtm_store.a" "$dir/store.c.o"

# 1. A pure core whose store draws randomness: passes (the store is below).
ar rcs "$dir/libtm_engine.a" "$dir/pure.c.o"
echo "$dir/libtm_engine.a pure.c.o" >"$dir/core-objects.txt"
if ! out=$(sh "$script" "$dir" 2>&1); then
    echo "FAIL: check-purity refused a pure core:"
    echo "$out"
    exit 1
fi

# 2. Direct calls, a logger that reads the clock, and tm_random: all named.
ar rcs "$dir/libtm_hlc.a" "$dir/impure.c.o"
ar rcs "$dir/libtm_fwd.a" "$dir/logs.c.o" "$dir/draws.c.o"
cat >>"$dir/core-objects.txt" <<EOF
$dir/libtm_hlc.a impure.c.o
$dir/libtm_fwd.a logs.c.o
$dir/libtm_fwd.a draws.c.o
EOF
if out=$(sh "$script" "$dir" 2>&1); then
    echo "FAIL: check-purity passed archives that call time(), zmq_send, a clock-reading"
    echo "logger and tm_random:"
    echo "$out"
    exit 1
fi
echo "$out"
for want in "libtm_hlc.a:impure.c.o uses time\$" "libtm_hlc.a:impure.c.o uses zmq_send\$" \
    "libtm_fwd.a:logs.c.o -> tm_log_line in libtm_common.a:logger.c.o uses clock_gettime\$" \
    "libtm_fwd.a:draws.c.o uses tm_random\$"; do
    if ! echo "$out" | grep -q "IMPURE: $want"; then
        echo "FAIL: check-purity did not say: $want"
        exit 1
    fi
done
if echo "$out" | grep -q randombytes_buf; then
    echo "FAIL: check-purity followed calls into the store"
    exit 1
fi

# 3. No list: the check cannot run, and says so (exit 2, not a pass).
rm "$dir/core-objects.txt"
set +e
sh "$script" "$dir" >/dev/null 2>&1
rc=$?
set -e
if [ "$rc" != 2 ]; then
    echo "FAIL: check-purity without core-objects.txt exited $rc, not 2"
    exit 1
fi
echo "ok: the check names what it refuses, through helpers, and needs its list"
