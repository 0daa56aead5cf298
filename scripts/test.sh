#!/usr/bin/env bash
# The project's test command (README "Run the tests"; CI runs exactly this).
#
#   scripts/test.sh            # everything: unit, end-to-end, crash, interop, fuzz smoke
#   SEALPOST_FUZZ_SECONDS=0 scripts/test.sh   # skip the fuzz smoke run
#
# Installs the test peers first (swaks, aiosmtpd, Debian's Postfix with
# smtp-sink/smtp-source; see scripts/install-test-tools.sh), then runs each
# suite and prints one summary line. Every suite talks to loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()
run() {
    local name=$1
    shift
    echo "==> $name: $*"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

scripts/install-test-tools.sh

run "cargo test" cargo test --workspace --locked
run "crash safety" scripts/crash-test.sh
run "postfix interop" tests/interop/run.sh
fuzz_seconds=${SEALPOST_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" != 0 ] && [ -x scripts/fuzz.sh ]; then
    run "fuzz smoke" scripts/fuzz.sh "$fuzz_seconds"
fi

echo
if [ "$failed" -gt 0 ]; then
    echo "failed suites: ${failures[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
