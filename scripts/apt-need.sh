#!/bin/sh
# apt-need.sh WHO PACKAGE... - installs the Debian packages not yet installed
# (as root; quick when all are there). WHO names the caller in messages.
# Used by deps.sh, deps-pkg.sh and deps-tryton.sh.
set -eu
who=$1
shift
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "$who: missing packages:$missing; run as root (or install them) and retry" >&2
    exit 1
fi
echo "$who: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# The package list may be stale on a fresh CI image; a failure here is
# reported by apt-get install below with the package it could not find.
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
