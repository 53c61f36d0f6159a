#!/bin/sh
# Fails (exit 1) when BINARY carries code of the test stub origin (tests/support/stub): test code
# never links into the product (issue 12). Exit 2 when the check cannot run, e.g. a binary
# without a symbol table, so that a stripped binary never passes unseen.
#   scripts/check-no-test-code.sh BINARY
set -eu
bin=${1:?usage: check-no-test-code.sh BINARY}
syms=$(nm --defined-only "$bin" 2>/dev/null | awk 'NF == 3 { print $3 }') || {
    echo "$bin: nm failed" >&2
    exit 2
}
if ! printf '%s\n' "$syms" | grep -qx main; then
    echo "$bin: no symbol table (stripped?): cannot check" >&2
    exit 2
fi
# The stub's public API (sst_stub_*), its internals (stub_*) and the names it had while it was
# compiled into sst_core (sst_origin_*).
found=$(printf '%s\n' "$syms" | grep -E '^(sst_stub_|stub_|sst_origin_)' || true)
if [ -n "$found" ]; then
    echo "$bin links test stub code:" >&2
    printf '%s\n' "$found" | head -20 >&2
    exit 1
fi
echo "$bin: no test stub code"
