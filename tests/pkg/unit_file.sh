#!/bin/sh
# deploy/tillmeshd.service passes `systemd-analyze verify` and its sandbox
# scores at most 2.0 in `systemd-analyze security` (issue 18).
# Usage: unit_file.sh SOURCE_DIR BUILD_DIR
# The unit names /usr/sbin/tillmeshd; verify checks that the command exists,
# so a copy pointing at the build's tillmeshd is verified (man pages are
# checked by the install test, where they are installed).
set -eu
src=$1 bin=$(cd "$2" && pwd)
unit=$src/deploy/tillmeshd.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze not installed (Debian package systemd)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/sbin/tillmeshd#$bin/tillmeshd#g" "$unit" >"$tmp/tillmeshd.service"
# verify prints problems and still exits 0 for some of them: any output fails.
out=$(cd "$tmp" && systemd-analyze verify --man=no "$tmp/tillmeshd.service" 2>&1) || {
    echo "FAIL: systemd-analyze verify: $out"
    exit 1
}
if [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify said: $out"
    exit 1
fi
# --threshold is on the 0-100 scale of the 0.0-10.0 exposure shown.
if ! sec=$(cd "$tmp" && systemd-analyze security --offline=true --threshold=20 \
    "$tmp/tillmeshd.service" 2>&1); then
    echo "FAIL: exposure above 2.0:"
    echo "$sec" | grep -E '✗|Overall'
    exit 1
fi
echo "$sec" | grep Overall
# Type=notify and a watchdog: what the daemon's sd_notify calls are for.
for d in Type=notify WatchdogSec= StateDirectoryMode=0750; do
    grep -q "^$d" "$unit" || { echo "FAIL: $unit lacks $d"; exit 1; }
done
echo "1 passed, 0 failed"
