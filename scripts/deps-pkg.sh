#!/bin/sh
# What the packaging checks need on Debian 12, as root (scripts/test.sh runs
# it): dpkg-buildpackage with debhelper and scdoc (debian/), lintian,
# mmdebstrap for the install test's fresh root (tests/pkg/install_test.py),
# systemd-analyze for the unit check, libsystemd-dev for sd_notify.
set -eu
PKGS="debhelper dpkg-dev scdoc lintian mmdebstrap debian-archive-keyring systemd
  libsystemd-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps-pkg: missing packages:$missing; run as root (or install them)" >&2
        exit 1
    fi
    echo "deps-pkg: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
