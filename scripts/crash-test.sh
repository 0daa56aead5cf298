#!/usr/bin/env bash
# crash-test.sh - crash-safety test: kill -9 sealpost under load, restart it,
# and prove every message that got a 250 reached the next hop (duplicates are
# allowed and reported). See tests/crash/crash_test.py for what it checks.
#
#   scripts/crash-test.sh [--messages N] [--sessions N] [--kills N] [--seed N]
#                         [--expire-killed-leases] [...]   (--help for all)
#
# Builds the debug binary with cargo first (a no-op when it is up to date)
# unless SEALPOST_BIN names one. Honours CARGO_TARGET_DIR. Needs Debian's
# /usr/bin/python3 with python3-aiosmtpd (scripts/install-test-tools.sh).
# Loopback only. Exit status 0 only if nothing acknowledged was lost.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [ -z "${SEALPOST_BIN:-}" ]; then
    target=${CARGO_TARGET_DIR:-target}
    case "$target" in /*) ;; *) target="$root/$target" ;; esac
    echo "crash-test.sh: cargo build -p sealpost" >&2
    cargo build -p sealpost
    SEALPOST_BIN="$target/debug/sealpost"
fi
if [ ! -x "$SEALPOST_BIN" ]; then
    echo "crash-test.sh: sealpost binary $SEALPOST_BIN not found" >&2
    exit 2
fi
export SEALPOST_BIN

if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "crash-test.sh: /usr/bin/python3 lacks aiosmtpd; run scripts/install-test-tools.sh" >&2
    exit 2
fi

exec /usr/bin/python3 "$root/tests/crash/crash_test.py" "$@"
