#!/usr/bin/env bash
# cost.sh - what one message costs sealpost, and A/B medians of binaries.
#
#   bench/cost.sh [--sessions S] [--messages M] [--rounds R] BINARY [BINARY ...]
#
# For each round, and for each binary in turn (interleaved, so drift of a
# shared machine hits all alike; even rounds in reverse order), it starts the binary on a fresh data
# directory relaying to one smtp-sink, drives it with Postfix's smtp-source
# (S sessions, M messages of 5 KiB; defaults 20 and 10,000), waits until
# sealpost reports every message delivered, and prints one line:
#
#   msg/s       end to end (smtp-source start -> all delivered)
#   cpu         sealpost's user + system CPU per message (/proc/PID/stat)
#   wchar       bytes sealpost wrote per message (/proc/PID/io: WAL, DB, log)
#   pwrite, fdatasync, fcntl, futex, sendto, ctxsw
#               system calls and context switches per message, counted by
#               `perf stat` tracepoints (about free, unlike strace); left
#               out when perf is not installed
#
# then the median of each column per binary. The counts are nearly the same
# from run to run on a noisy machine where msg/s is not, so they show what a
# change does to the work per message before a relay.sh run says whether it
# shows in the rate. bench/relay.sh is the benchmark whose results count.
#
# Log level info (the default). Loopback only; ports 30025 (SMTP), 30026
# (sink) and 30081 (admin) must be free. Run as root (smtp-sink -u nobody).
# Needs smtp-source/smtp-sink (scripts/install-test-tools.sh), curl, bc,
# and perf (linux-perf) for the system call counts.
set -euo pipefail

sessions=20 messages=10000 rounds=1
while [ $# -gt 0 ]; do
    case $1 in
    --sessions) sessions=$2; shift 2 ;;
    --messages) messages=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h | --help) sed -n '2,28p' "$0"; exit 0 ;;
    --*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: $0 [--sessions S] [--messages M] [--rounds R] BINARY [BINARY ...]" >&2; exit 2; }
for bin in "$@"; do [ -x "$bin" ] || { echo "$bin is not an executable" >&2; exit 2; }; done

. "$(dirname "$0")/bench_env.sh"
bench_setup sealpost-cost info

have_perf=0
command -v perf > /dev/null && have_perf=1
events=syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync,syscalls:sys_enter_fcntl,syscalls:sys_enter_futex,syscalls:sys_enter_sendto,context-switches

# measure LABEL BINARY -> one line: label msg/s cpu wchar [counts...]
measure() {
    local label=$1 bin=$2
    local perf_pid=""
    bench_start "$bin"
    if [ $have_perf = 1 ]; then
        perf stat -x, -e "$events" -p "$sp" -o "$work/stat.out" &
        perf_pid=$!
        sleep 0.2
    fi
    local c0 w0 t0 t1 c1 w1 delivered=0
    c0=$(awk '{print $14 + $15}' "/proc/$sp/stat")
    w0=$(awk '/^wchar/ {print $2}' "/proc/$sp/io")
    t0=$(date +%s.%N)
    /usr/sbin/smtp-source -s "$sessions" -m "$messages" -l 5120 \
        -f a@corp.example -t b@ext.example 127.0.0.1:30025
    for _ in $(seq 1 3000); do
        delivered=$(bench_delivered)
        [ "$delivered" = "$messages" ] && break
        sleep 0.02
    done
    t1=$(date +%s.%N)
    c1=$(awk '{print $14 + $15}' "/proc/$sp/stat")
    w1=$(awk '/^wchar/ {print $2}' "/proc/$sp/io")
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" 2> /dev/null || true
    fi
    kill "$sp"
    wait "$sp" 2> /dev/null || true
    if [ "$delivered" != "$messages" ]; then
        echo "$label: only $delivered of $messages delivered; see $work/sp.err" >&2
        trap - EXIT
        exit 1
    fi
    local line
    line=$(printf '%s %.0f %.3f %.1f' "$label" \
        "$(echo "$messages / ($t1 - $t0)" | bc -l)" \
        "$(echo "($c1 - $c0) * 10 / $messages" | bc -l)" \
        "$(echo "($w1 - $w0) / 1024 / $messages" | bc -l)")
    if [ -n "$perf_pid" ]; then
        line+=$(awk -F, -v m="$messages" '/syscalls|context/ {printf " %.2f", $1 / m}' "$work/stat.out")
    fi
    echo "$line"
}

header="binary msg/s cpu_ms wchar_KB"
[ $have_perf = 1 ] && header+=" pwrite fdatasync fcntl futex sendto ctxsw"
echo "sessions=$sessions messages=$messages rounds=$rounds (per message unless a rate)"
echo "$header" | tee "$work/all"
bins=("$@")
for round in $(seq 1 "$rounds"); do
    # Odd rounds run the binaries in the order given, even rounds in
    # reverse: on this machine the first run of a round was about 5%
    # faster than the second whatever the binary (2026-11-27).
    order=$(seq 1 ${#bins[@]})
    [ $((round % 2)) = 0 ] && order=$(seq ${#bins[@]} -1 1)
    for i in $order; do
        bin=${bins[$((i - 1))]}
        measure "$i:$(basename "$bin")" "$bin" | tee -a "$work/all"
    done
done
if [ "$rounds" -gt 1 ]; then
    echo "medians:"
    echo "$header"
    i=0
    for bin in "$@"; do
        i=$((i + 1))
        grep "^$i:" "$work/all" | awk '
            { for (c = 2; c <= NF; c++) v[c, NR] = $c; n = NR; cols = NF; name = $1 }
            END {
                printf "%s", name
                for (c = 2; c <= cols; c++) {
                    for (r = 1; r <= n; r++) a[r] = v[c, r]
                    # insertion sort; n is small
                    for (r = 2; r <= n; r++) { x = a[r]; s = r - 1; while (s > 0 && a[s] > x) { a[s + 1] = a[s]; s-- } a[s + 1] = x }
                    printf " %s", a[int((n + 1) / 2)]
                }
                printf "\n"
            }'
    done
fi
