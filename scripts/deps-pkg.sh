#!/bin/sh
# What the packaging checks need on Debian 12, as root (scripts/test.sh runs
# it): dpkg-buildpackage with debhelper and scdoc (debian/), lintian,
# mmdebstrap for the install test's fresh root (tests/pkg/install_test.py),
# systemd-analyze for the unit check, libsystemd-dev for sd_notify.
set -eu
PKGS="debhelper dpkg-dev scdoc lintian mmdebstrap debian-archive-keyring systemd
  libsystemd-dev"
# shellcheck disable=SC2086
sh "$(dirname "$0")/apt-need.sh" deps-pkg $PKGS
