#!/bin/sh
# Installs what tillmesh needs to build and test on Debian 12, as root.
# Packages already present are skipped, so a second run is quick.
set -eu
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
  libsqlite3-dev sqlite3 libsodium-dev libzmq3-dev protobuf-c-compiler libprotobuf-c-dev
  libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libinih-dev libcriterion-dev
  libsystemd-dev libavahi-client-dev avahi-daemon avahi-utils dbus iproute2 iptables procps psmisc
  python3 curl libfaketime prometheus scdoc systemd
  keepalived universal-ctags"
# prometheus: only for its promtool (it_metrics_listen checks the live /metrics
# text and deploy/prometheus/ rules); its service is not needed. scdoc builds
# the man pages; systemd gives systemd-analyze (the unit_file test).
# keepalived: VRRP, the reference in bench/bench_failover.py.
# universal-ctags: scripts/check-includes.sh reads declarations and
# definitions with it (the include-cycle test).
# shellcheck disable=SC2086
sh "$(dirname "$0")/apt-need.sh" deps $PKGS
