#!/bin/sh
# Fails when a C source or header differs from .clang-format.
set -eu
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench -name '*.[ch]')
[ -z "$files" ] && exit 0
clang-format --dry-run --Werror $files
