#!/bin/sh
# check-includes.sh must fail, naming the files, on a cycle planted in a
# throwaway tree (two files calling each other through a shared _int.h; three
# files in a ring through headers that include headers) and on one planted in
# a copy of the real sources (backend.c calling back into daemon.c); and must
# pass what is no cycle: one-way calls, a shared struct layout, a header
# included but not called, a name in a comment, alternative definitions, and
# a cycle inside a known group.
#   tests/sim/includes_bites.sh SCRIPT SOURCE_DIR
set -eu
script=$1
src=$2
dir=$(mktemp -d /tmp/tm-includes-bites-XXXXXX)
trap 'rm -rf "$dir"' EXIT
fails=0

# expect pass|fail NAME [GREP...]: runs the check on $dir/t; every GREP must
# be in its output.
expect()
{
    want=$1
    name=$2
    shift 2
    rc=0
    TM_INCLUDE_DIRS="node storage" TM_INCLUDE_KNOWN=${KNOWN-} sh "$script" "$dir/t" \
        >"$dir/out" 2>&1 || rc=$?
    got=pass
    [ "$rc" = 0 ] || got=fail
    [ "$rc" = 0 ] || [ "$rc" = 1 ] || got="error $rc"
    ok=1
    [ "$got" = "$want" ] || ok=0
    for g in "$@"; do
        grep -q -- "$g" "$dir/out" || ok=0
    done
    if [ "$ok" = 1 ]; then
        echo "ok: $name ($got)"
    else
        echo "BITE FAILED: $name: wanted $want with [$*], got $got:"
        sed 's/^/    /' "$dir/out"
        fails=1
    fi
}

fresh()
{
    rm -rf "$dir/t"
    mkdir -p "$dir/t/node" "$dir/t/storage"
}

# 1. One way: a.c calls b.c through b.h, b.c calls nothing back.
fresh
cat >"$dir/t/node/tm_b.h" <<'C'
int tm_b_get(void);
C
cat >"$dir/t/node/b.c" <<'C'
#include "tm_b.h"
int tm_b_get(void) { return 1; }
C
cat >"$dir/t/node/a.c" <<'C'
#include "tm_b.h"
int tm_a_run(void);
int tm_a_run(void) { return tm_b_get(); }
C
expect pass one-way "no include cycles"

# 2. A header included but not called, and a name in a comment only: no edge.
cat >"$dir/t/node/tm_a.h" <<'C'
int tm_a_run(void);
C
cat >"$dir/t/node/b.c" <<'C'
#include "tm_a.h"
#include "tm_b.h"
/* tm_a_run() calls us; we never call it back. */
int tm_b_get(void) { return 1; }
C
expect pass include-without-call "no include cycles"

# 3. The cycle of issue 14: two files calling each other through a shared
#    private header.
cat >"$dir/t/node/x_int.h" <<'C'
struct x { int n; };
int tm_x__one(struct x *x);
int tm_x__two(struct x *x);
C
cat >"$dir/t/node/x_one.c" <<'C'
#include "x_int.h"
int tm_x__one(struct x *x) { return x->n ? tm_x__two(x) : 0; }
C
cat >"$dir/t/node/x_two.c" <<'C'
#include "x_int.h"
int tm_x__two(struct x *x) { x->n--; return tm_x__one(x); }
C
expect fail shared-int-header "CYCLE: node/x_one.c" "node/x_two.c (node/x_int.h: tm_x__two)" \
    "node/x_one.c (node/x_int.h: tm_x__one)"

# 4. A shared struct layout alone is no cycle (x_two.c stops calling back).
cat >"$dir/t/node/x_two.c" <<'C'
#include "x_int.h"
int tm_x__two(struct x *x) { return --x->n; }
C
expect pass shared-layout "no include cycles"

# 5. A ring of three through headers that include headers: r1 -> r2 -> r3
#    -> r1, each seeing the next one's function only through another header.
cat >"$dir/t/node/tm_r3.h" <<'C'
int tm_r3(int n);
C
cat >"$dir/t/node/tm_r2.h" <<'C'
#include "tm_r3.h"
int tm_r2(int n);
C
cat >"$dir/t/node/tm_r1.h" <<'C'
int tm_r1(int n);
C
cat >"$dir/t/node/r1.c" <<'C'
#include "tm_r1.h"
#include "tm_r2.h"
int tm_r1(int n) { return n ? tm_r2(n - 1) : 0; }
C
cat >"$dir/t/node/r2.c" <<'C'
#include "tm_r2.h"
int tm_r2(int n) { return n ? tm_r3(n - 1) : 0; }
C
cat >"$dir/t/node/r3.c" <<'C'
#include "tm_r1.h"
#include "tm_r3.h"
int tm_r3(int n) { return n ? tm_r1(n - 1) : 0; }
C
expect fail ring-of-three "CYCLE: node/r1.c" "node/r2.c (node/tm_r2.h: tm_r2)" \
    "node/r3.c (node/tm_r3.h: tm_r3)" "node/r1.c (node/tm_r1.h: tm_r1)"
rm "$dir/t/node/r3.c"

# 6. Alternatives (sd_none.c / sd_systemd.c): the same function in two files
#    that each include its header is no cycle between them.
cat >"$dir/t/node/tm_sd.h" <<'C'
int tm_sd_notify(const char *s);
C
cat >"$dir/t/node/sd_none.c" <<'C'
#include "tm_sd.h"
int tm_sd_notify(const char *s) { (void)s; return 0; }
C
cat >"$dir/t/node/sd_real.c" <<'C'
#include "tm_sd.h"
int tm_sd_notify(const char *s) { return s != 0; }
C
expect pass alternatives "no include cycles"

# 7. A cycle inside a known group passes, reported; the same one fails when
#    the group is not known, and a cycle leaving the group fails all the same.
cat >"$dir/t/storage/store_int.h" <<'C'
int tm_st__a(int n);
int tm_st__b(int n);
C
cat >"$dir/t/storage/sa.c" <<'C'
#include "store_int.h"
int tm_st__a(int n) { return n ? tm_st__b(n - 1) : 0; }
C
cat >"$dir/t/storage/sb.c" <<'C'
#include "store_int.h"
int tm_st__b(int n) { return n ? tm_st__a(n - 1) : 0; }
C
KNOWN="storage/*.c"
expect pass known-group "known cycle" "storage/sa.c storage/sb.c"
KNOWN=""
expect fail unknown-group "CYCLE: storage/sa.c"
KNOWN="storage/sa.c"
expect fail half-known-group "CYCLE: storage/sa.c"
unset KNOWN
rm "$dir/t/storage/sa.c" "$dir/t/storage/sb.c"

# 8. The real sources pass; backend.c calling back into daemon.c fails.
rm -rf "$dir/t"
mkdir "$dir/t"
for d in node core storage record common; do
    cp -R "$src/$d" "$dir/t/$d"
done
real()
{
    rc=0
    sh "$script" "$dir/t" >"$dir/out" 2>&1 || rc=$?
    echo "$rc"
}
if [ "$(real)" != 0 ]; then
    echo "BITE FAILED: the real sources do not pass:"
    sed 's/^/    /' "$dir/out"
    fails=1
else
    echo "ok: real sources (pass)"
fi
cat >>"$dir/t/node/backend.c" <<'C'

#include "tm_daemon.h"
/* Planted by includes_bites.sh: the backend stops the daemon. */
void tm_backend_planted(tm_daemon_t **d);
void tm_backend_planted(tm_daemon_t **d)
{
    tm_daemon_destroy(d);
}
C
if [ "$(real)" = 1 ] && grep -q "CYCLE: node/backend.c" "$dir/out" &&
    grep -q "node/daemon.c (node/tm_daemon.h: tm_daemon_destroy)" "$dir/out"; then
    echo "ok: real sources with backend.c -> daemon.c planted (fail)"
else
    echo "BITE FAILED: backend.c -> daemon.c planted in the real sources went unseen:"
    sed 's/^/    /' "$dir/out"
    fails=1
fi
exit "$fails"
