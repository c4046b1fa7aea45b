#!/bin/sh
# Installs Tryton 6.0 from the Debian 12 archive for the Tryton adapter's tests and bench
# (adapters/tryton). Separate from deps.sh because it pulls ~150 MB of Python packages
# that only these tests need. Packages already present are skipped.
set -eu
PKGS="tryton-server tryton-modules-party tryton-modules-company tryton-modules-currency
  tryton-modules-product tryton-modules-stock tryton-modules-account
  tryton-modules-account-product tryton-modules-account-invoice
  tryton-modules-account-invoice-stock tryton-modules-sale python3-stdnum"
# shellcheck disable=SC2086
sh "$(dirname "$0")/apt-need.sh" deps-tryton $PKGS
