#!/bin/sh
# Installs, from Debian packages, whatever sidestep needs to build, test and benchmark and is not
# installed yet. Safe to run again: with everything present it does nothing.
set -eu

BUILD="cmake make gcc pkg-config libuv1-dev node-llhttp libyaml-dev libjson-c-dev libssl-dev"
TEST="libcmocka-dev openssl python3 curl clang clang-format libclang-rt-14-dev valgrind chromium etcd-server testssl.sh"
BENCH="wrk nginx haproxy gnuplot-nox procps util-linux linux-perf"

want="$BUILD"
case "${1:-all}" in
    build) ;;
    fleet) want="$BUILD etcd-server" ;;
    test) want="$BUILD $TEST $BENCH" ;;
    all) want="$BUILD $TEST $BENCH" ;;
    *) echo "usage: $0 [build|fleet|test|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "sidestep: installing missing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
