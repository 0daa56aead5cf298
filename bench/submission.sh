#!/usr/bin/env bash
# bench/submission.sh - submission with AUTH over TLS at 20 sessions next to
# the port-25 relay, in the same run, against one smtp-sink (issue 17).
#
# One sealpost (release build) with its port-25 listener (relay_networks =
# 127.0.0.0/8) and a submission listener (STARTTLS, AUTH PLAIN against an
# SMTP account's argon2id hash), relaying everything to Postfix's smtp-sink.
# Three phases of DURATION seconds each, one after another:
#   relay       smtp-source, 20 sessions x 5 KiB, into port 25 (in batches of
#               BATCH messages until the time is up)
#   submission  bench/submission_load.py, 20 sessions: STARTTLS, AUTH PLAIN,
#               PER_SESSION message(s) of 5 KiB, QUIT, reconnect
#   both        the two loads at once
# For each phase: messages accepted per second by each load (client side),
# and sealpost's CPU time (utime+stime from /proc) per message, measured
# from the start of the phase until the sink has every message of it. In
# the "both" phase the CPU is one process's, so it is given per message of
# the two loads together.
#
# Usage: bench/submission.sh [--no-build] [--no-results] [--keep]
# Env: DURATION (default 20), PER_SESSION (default 1), SESSIONS (default 20),
#      BATCH (default 1000), SEALPOST_BIN (default target/release/sealpost,
#      or the release binary of CARGO_TARGET_DIR), WAIT_MAX (default 300).
# Loopback only (ports 30125, 30587, 30126, 30181); every process started here
# is stopped on exit, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER=(/usr/bin/python3 "$ROOT/bench/relay_helper.py")
LOAD=(/usr/bin/python3 "$ROOT/bench/submission_load.py")
SRC=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
DURATION=${DURATION:-20}
PER_SESSION=${PER_SESSION:-1}
SESSIONS=${SESSIONS:-20}
BATCH=${BATCH:-1000}
WAIT_MAX=${WAIT_MAX:-300}
CMDLINE="bench/submission.sh $*"
BUILD=1
RESULTS=1
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        --no-results) RESULTS=0 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done
if [ -z "${SEALPOST_BIN:-}" ]; then
    SEALPOST_BIN=$ROOT/target/release/sealpost
    [ -n "${CARGO_TARGET_DIR:-}" ] && SEALPOST_BIN=$CARGO_TARGET_DIR/release/sealpost
fi
[ -x "$SRC" ] && [ -x "$SINK" ] || { echo "needs smtp-source/smtp-sink: scripts/install-test-tools.sh" >&2; exit 1; }
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p sealpost)
fi

WORK=$(mktemp -d /var/tmp/submission-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ "$KEEP" = 1 ] && echo "work dir kept: $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

cp "$SEALPOST_BIN" "$WORK/sealpost-run"
BIN_SHA=$(sha256sum "$WORK/sealpost-run" | cut -c1-16)
cat > "$WORK/sp.toml" <<TOML
[server]
hostname = "bench.test"
data_dir = "$WORK/data"
[smtp]
listen = ["127.0.0.1:30125"]
submission_listen = ["127.0.0.1:30587"]
relay_networks = ["127.0.0.0/8"]
idle_timeout = "10m"
[relay]
next_hop = "127.0.0.1:30126"
retry_schedule = ["1s"]
max_connections_per_hop = 4
[admin]
listen = "127.0.0.1:30181"
[portal]
listen = "127.0.0.1:0"
TOML
"$SINK" -u nobody -c 127.0.0.1:30126 1000 > "$WORK/sink.out" 2>&1 &
PIDS+=($!)
"$WORK/sealpost-run" serve --config "$WORK/sp.toml" > "$WORK/sp.out" 2> "$WORK/sp.err" &
SP=$!
PIDS+=($SP)
for _ in $(seq 1 200); do
    curl -sf 127.0.0.1:30181/health > /dev/null 2>&1 && break
    sleep 0.05
done
curl -sf 127.0.0.1:30181/health > /dev/null || { log "sealpost did not start"; cat "$WORK/sp.err" >&2; exit 1; }
KEY=$(grep -o 'sp_[A-Za-z0-9_]*' "$WORK/sp.out" | head -1)
PASSWORD=$(curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"name": "bench", "senders": ["bench.example"], "rate_per_hour": 1000000}' \
    http://127.0.0.1:30181/api/v1/smtp-accounts | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["password"])')

delivered=0   # what the sink has had, all phases
cpu() { "${HELPER[@]}" cpu "$SP"; }

# relay load: smtp-source batches into port 25 until DURATION is up; prints
# "messages elapsed".
relay_load() {
    local start end n=0
    start=$(date +%s.%N); end=$(echo "$start + $DURATION" | bc)
    while (( $(echo "$(date +%s.%N) < $end" | bc) )); do
        "$SRC" -s "$SESSIONS" -m "$BATCH" -l 5120 -M client.bench.example \
            -f bench@sender.example -t rcpt@dest.example 127.0.0.1:30125 >> "$WORK/source.out" 2>&1
        n=$((n + BATCH))
    done
    echo "$n $(echo "$(date +%s.%N) - $start" | bc)"
}

submission_load() {
    "${LOAD[@]}" 30587 --user bench --password "$PASSWORD" --sessions "$SESSIONS" \
        --duration "$DURATION" --per-session "$PER_SESSION"
}

declare -A R
phase() {
    local name=$1 c0 c1 rel="" sub="" msgs=0
    log "phase $name (${DURATION}s)"
    c0=$(cpu)
    case "$name" in
        relay) rel=$(relay_load) ;;
        submission) sub=$(submission_load) ;;
        both)
            submission_load > "$WORK/both.sub.json" &
            local lp=$!
            rel=$(relay_load)
            wait "$lp"
            sub=$(cat "$WORK/both.sub.json") ;;
    esac
    [ -n "$rel" ] && msgs=$((msgs + ${rel%% *}))
    if [ -n "$sub" ]; then
        msgs=$((msgs + $(echo "$sub" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')))
    fi
    delivered=$((delivered + msgs))
    local sinkwait
    sinkwait=$("${HELPER[@]}" waitsink "$WORK/sink.out" "$delivered" "$WAIT_MAX" || true)
    c1=$(cpu)
    R[$name.rel]=$rel; R[$name.sub]=$sub; R[$name.msgs]=$msgs; R[$name.sink]=$sinkwait
    R[$name.cpu]=$(echo "$c1 - $c0" | bc)
    log "  relay: ${rel:-—}; submission: ${sub:-—}; sealpost CPU $(echo "$c1 - $c0" | bc) s; sink: $sinkwait"
}

RUN_START=$(date -u '+%Y-%m-%d %H:%M:%S')
COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
phase relay
phase submission
phase both
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
AUTH_OK=$(curl -s 127.0.0.1:30181/metrics | awk '/^sealpost_smtp_auth_total\{result="ok"\}/ {print $2}')

rate_rel() { local r=${R[$1.rel]}; [ -n "$r" ] && printf '%.1f' "$(echo "scale=3; ${r%% *} / ${r##* }" | bc)" || echo "—"; }
json() { [ -n "${R[$1.sub]}" ] && echo "${R[$1.sub]}" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])" || echo "—"; }
per_msg() { printf '%.3f' "$(echo "scale=4; ${R[$1.cpu]} * 1000 / ${R[$1.msgs]}" | bc)"; }

report() {
    echo "### submission next to the relay: $RUN_START UTC, commit $COMMIT"
    echo
    echo "- Command: \`$CMDLINE\` (DURATION=$DURATION s per phase, SESSIONS=$SESSIONS, PER_SESSION=$PER_SESSION message(s) per authenticated connection, relay batches of $BATCH, 5120-byte messages)"
    echo "- sealpost binary: copy of \`$SEALPOST_BIN\` (sha256 $BIN_SHA...)"
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r); load average at start $LOAD0, at end $LOAD1 (the machine is shared with other builds)"
    echo "- Submission client: bench/submission_load.py (Python smtplib + ssl, one thread per session): STARTTLS, AUTH PLAIN (argon2id m=19 MiB, t=2, p=1), MAIL/RCPT/DATA, QUIT; relay client: smtp-source into port 25; both into smtp-sink through sealpost's relay queue"
    echo "- AUTH p50/p90: the client's time for the AUTH exchange. Only an account's first AUTH (and one every 5 minutes) runs argon2id: a password verified lately against the same stored hash is taken again without hashing (docs/configuration.md, Submission), so these phases measure TLS + AUTH + message per connection, not a hash per message. The clients run on the same 2 cores as sealpost and the sink."
    echo "- CPU per message: sealpost's utime+stime from the start of the phase until the sink had every message of it, divided by the messages of the phase (in \"both\", by the messages of the two loads together: one process serves both)."
    echo
    echo "| phase | relay msg/s (port 25) | submission msg/s (587, AUTH+TLS) | submission connections | AUTH p50 / p90 ms | errors (submission) | sealpost CPU s | CPU ms per message | sink |"
    echo "|---|---:|---:|---:|---|---:|---:|---:|---|"
    for p in relay submission both; do
        echo "| $p | $(rate_rel $p) | $(json $p rate) | $(json $p connections) | $(json $p auth_p50_ms) / $(json $p auth_p90_ms) | $(json $p errors) | ${R[$p.cpu]} | $(per_msg $p) | ${R[$p.sink]%% *} |"
    done
    echo
    echo "sealpost_smtp_auth_total{result=\"ok\"} at the end: ${AUTH_OK:-?}."
}
report | tee "$WORK/report.md"
if [ "$RESULTS" = 1 ]; then
    { echo; cat "$WORK/report.md"; } >> "$ROOT/bench/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
