#!/bin/sh
# The two commands of the README.
#   ./run.sh demo   install what is missing, build, start sidestep on its embedded demo default
#                   (--fleet: etcd and three instances in one fleet, scripts/demo-fleet.sh)
#   ./run.sh test   install what is missing, build (normal, ASan+UBSan, fuzz), run every test
set -eu
cd "$(dirname "$0")"
JOBS=$(nproc 2>/dev/null || echo 2)

build() { # dir, cmake args...
    dir=$1
    shift
    cmake -S . -B "$dir" -DSST_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
demo)
    if [ "${2:-}" = "--fleet" ]; then
        ./scripts/install-deps.sh fleet
        build build -DSST_TESTS=OFF
        exec ./scripts/demo-fleet.sh
    fi
    ./scripts/install-deps.sh build
    build build -DSST_TESTS=OFF
    exec ./build/sidestep
    ;;
test)
    ./scripts/install-deps.sh test
    ./scripts/check-format.sh
    build build
    build build-asan -DSST_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    build build-fuzz -DSST_FUZZ=ON -DSST_SANITIZE=ON -DCMAKE_C_COMPILER=clang \
        -DCMAKE_BUILD_TYPE=Debug
    status=0
    echo "== normal build" >&2
    (cd build && ctest --output-on-failure -j "$JOBS" -LE fuzz) || status=1
    echo "== fuzz targets (bounded, ASan+UBSan)" >&2
    (cd build-fuzz && ctest --output-on-failure -L fuzz) || status=1
    echo "== AddressSanitizer + UndefinedBehaviorSanitizer build" >&2
    (cd build-asan && ctest --output-on-failure -j "$JOBS" -LE fuzz) || status=1
    exit $status
    ;;
*)
    echo "usage: $0 demo [--fleet] | test" >&2
    exit 2
    ;;
esac
