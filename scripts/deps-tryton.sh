#!/bin/sh
# Installs Tryton 6.0 from the Debian 12 archive for the Tryton adapter's tests and bench
# (adapters/tryton). Separate from deps.sh because it pulls ~150 MB of Python packages
# that only these tests need. Packages already present are skipped.
set -eu
PKGS="tryton-server tryton-modules-party tryton-modules-company tryton-modules-currency
  tryton-modules-product tryton-modules-stock tryton-modules-account
  tryton-modules-account-product tryton-modules-account-invoice
  tryton-modules-account-invoice-stock tryton-modules-sale python3-stdnum"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps-tryton: missing packages:$missing; run as root and retry" >&2
        exit 1
    fi
    echo "deps-tryton: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # The package list may be stale on a fresh CI image; a failure here is reported by
    # apt-get install below with the package it could not find.
    apt-get update -qq || true
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
