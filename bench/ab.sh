#!/usr/bin/env bash
# ab.sh - quick A/B comparison of two sealpost binaries on the relay path.
#
#   bench/ab.sh BINARY_A BINARY_B [ROUNDS]
#
# For each round, and for each binary in turn (interleaved, so drift of a
# shared machine hits both alike), it starts the binary on a fresh data
# directory relaying to one smtp-sink, drives it with Postfix's smtp-source
# (20 sessions x 10,000 messages, then 1 session x 3,000 messages, 5 KiB),
# waits until sealpost reports every message delivered, and prints the
# end-to-end rate, sealpost's CPU time (user + system) and the server-side
# accept p50.
#
# This is the quick tool used while tuning; bench/relay.sh is the benchmark
# whose results count (it also measures Postfix and the protocol ceiling).
# Log level is warn here (relay.sh uses the default, info). Loopback only;
# ports 30025 (SMTP), 30026 (sink) and 30081 (admin) must be free. Run as
# root (smtp-sink -u nobody). Needs smtp-source/smtp-sink
# (scripts/install-test-tools.sh), curl and bc.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 BINARY_A BINARY_B [ROUNDS]" >&2; exit 2; }
a=$1 b=$2 rounds=${3:-3}
. "$(dirname "$0")/bench_env.sh"
bench_setup sealpost-ab "${AB_LOG_LEVEL:-warn}"

# run BINARY SESSIONS MESSAGES SIZE
run() {
    local bin=$1 sessions=$2 messages=$3 size=$4
    bench_start "$bin"
    local start end done_t delivered=0
    start=$(date +%s.%N)
    /usr/sbin/smtp-source -s "$sessions" -m "$messages" -l "$size" \
        -f a@corp.example -t b@ext.example 127.0.0.1:30025
    end=$(date +%s.%N)
    for _ in $(seq 1 1200); do
        delivered=$(bench_delivered)
        [ "$delivered" = "$messages" ] && break
        sleep 0.05
    done
    done_t=$(date +%s.%N)
    local cpu_ms p50
    cpu_ms=$(awk '{print ($14 + $15) * 10}' "/proc/$sp/stat")
    p50=$(curl -s localhost:30081/metrics | awk -F' ' '/accept_seconds\{quantile="0.5"\}/ {printf "%.2f", $2 * 1000}')
    kill "$sp"
    wait "$sp" 2>/dev/null || true
    printf '%-24s s=%-2s m=%-5s inject %6.3fs  delivered=%s  %5.0f msg/s  cpu %5s ms  accept p50 %s ms\n' \
        "$(basename "$bin")" "$sessions" "$messages" "$(echo "$end - $start" | bc)" "$delivered" \
        "$(echo "$messages / ($done_t - $start)" | bc -l)" "$cpu_ms" "$p50"
}

for _ in $(seq 1 "$rounds"); do
    for bin in "$a" "$b"; do
        run "$bin" 20 10000 5120
        run "$bin" 1 "${AB_MSGS_1:-3000}" 5120
    done
done
