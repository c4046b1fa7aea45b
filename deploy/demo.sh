#!/bin/sh
# deploy/demo.sh - a 3-till demo store on this machine's loopback.
#
#   sudo deploy/demo.sh        installs what is missing, builds, starts tills
#                              till-1..till-3, rings up a few sales, prints
#                              `tillmesh status`, then keeps the store running
#                              and refreshes the status until Ctrl-C.
#
# Everything lives in a temporary directory that is removed on exit.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
sh scripts/deps.sh
BUILD=${TM_BUILD_DIR:-build/release}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTM_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" >/dev/null
BIN=$ROOT/$BUILD
DEMO=$(mktemp -d /tmp/tillmesh-demo.XXXXXX)
PIDS=""

cleanup() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping tills and the stub ERP"
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DEMO"
    echo "demo: stopped; $DEMO removed"
}
trap cleanup INT TERM EXIT

# A stand-in ERP (tests/erp-stub) on loopback, so sales can be seen arriving.
python3 tests/erp-stub/erp_stub.py --listen 127.0.0.1:0 --db "$DEMO/erp.sqlite" \
    --port-file "$DEMO/erp.port" --token demo-token 2>"$DEMO/erp.log" &
PIDS="$PIDS $!"
n=0
until [ -s "$DEMO/erp.port" ]; do
    n=$((n + 1)); [ $n -lt 100 ] || { echo "the stub ERP did not start:"; cat "$DEMO/erp.log"; exit 1; }
    sleep 0.1
done
ERP_PORT=$(cat "$DEMO/erp.port")
echo demo-token >"$DEMO/erp.token"
chmod 600 "$DEMO/erp.token"

: >"$DEMO/trusted_keys"
for i in 1 2 3; do
    "$BIN/tillmesh" keygen --out "$DEMO/till-$i" >/dev/null
    echo "till-$i $(cat "$DEMO/till-$i.pub")" >>"$DEMO/trusted_keys"
done
for i in 1 2 3; do
    {
        echo "[node]"
        echo "name = till-$i"
        echo "store_id = demo-store"
        echo "data_dir = $DEMO/till-$i.data"
        echo "api_listen = 127.0.0.1:778$i"
        echo "priority = $((100 + i))"
        echo "[mesh]"
        echo "listen = tcp://127.0.0.1:770$i"
        echo "secret_key = $DEMO/till-$i.key"
        echo "public_key = $DEMO/till-$i.pub"
        echo "trusted_keys = $DEMO/trusted_keys"
        echo "[discovery]"
        echo "mdns = no"
        echo "[erp]"
        echo "url = http://127.0.0.1:$ERP_PORT"
        echo "token_file = $DEMO/erp.token"
        echo "# the demo ERP is plain http on loopback"
        echo "allow_insecure_http = yes"
        echo "[peers]"
        for j in 1 2 3; do [ "$i" = "$j" ] || echo "till-$j = tcp://127.0.0.1:770$j"; done
    } >"$DEMO/till-$i.conf"
    "$BIN/tillmeshd" -c "$DEMO/till-$i.conf" 2>>"$DEMO/till-$i.log" &
    PIDS="$PIDS $!"
done
echo "demo: 3 tills starting (logs in $DEMO/till-N.log)"
for i in 1 2 3; do
    n=0
    until "$BIN/tillmesh" --api 127.0.0.1:778$i status >/dev/null 2>&1; do
        n=$((n + 1)); [ $n -lt 100 ] || { echo "till-$i did not start:"; cat "$DEMO/till-$i.log"; exit 1; }
        sleep 0.1
    done
done

for i in 1 2 3 1 2; do
    "$BIN/tillmesh" --api 127.0.0.1:778$i sale add - >/dev/null <<JSON
{"currency":"CLP",
 "lines":[{"sku":"7801","name":"Pan amasado","qty":2000,"unit_price":990,"tax_rate":1900},
          {"sku":"7802","name":"Queso","qty":250,"unit_price":12000}],
 "total":4980,
 "payments":[{"method":"card","amount":4000,"reference":"demo"},{"method":"cash","amount":1000}]}
JSON
done
echo "demo: rang up 5 sales on till-1..3; each till now holds all of them, and the"
echo "demo: forwarder has sent them to the stub ERP:"
sleep 2
"$BIN/tillmesh" --api 127.0.0.1:7781 status
echo
echo "demo: the ERP's own count: $(curl -s "http://127.0.0.1:$ERP_PORT/_stub/stats" | head -c 120)..."
echo
echo "demo: try   $BIN/tillmesh --api 127.0.0.1:7782 status"
echo "demo: Ctrl-C stops the store."
while :; do sleep 1; done
