#!/usr/bin/env bash
# bench/relay.sh - end-to-end relay benchmark: sealpost vs. Postfix vs. the
# smtp-source -> smtp-sink protocol ceiling, plus latency and memory.
#
# Throughput (same run, same sink, same counting method for all three):
#   smtp-source --> sealpost --> smtp-sink      (sealpost, fsync'd group commit)
#   smtp-source --> Postfix  --> smtp-sink      (separate Debian Postfix instance,
#                                                stock queue, relayhost = the sink)
#   smtp-source --> smtp-sink                   (protocol ceiling)
#   smtp-source --> sealpost (secure path) --> smtp-sink   (20 sessions x 5 KiB only:
#                   a policy selects every recipient, so each message is sealed in
#                   the vault and the sink receives its notification instead)
#   smtp-source --> sealpost, smtp.busy_poll = 0 --> smtp-sink   (1 session x 5 KiB
#                   only: sealpost without the polling it does for a lone client,
#                   so the gain from polling is on record next to its rate)
# for three workloads: 20 sessions x 5 KiB, 1 session x 5 KiB, 20 sessions x
# 100 KiB (N messages each). smtp-source is used with its defaults (one message
# per connection, no -d). The clock starts when smtp-source is launched and
# stops when the sink's own counter (`smtp-sink -c`) reaches N; every wait is
# bounded by WAIT_MAX seconds and a timeout is reported as FAIL.
#
# Latency: a Python client (bench/relay_helper.py latency) times "." -> 250 on
# the client side (20 sessions closed-loop, and 1 session), against sealpost,
# Postfix and bare smtp-sink (= the client's own floor); sealpost's server-side
# sealpost_smtp_accept_seconds summary is printed next to it.
#
# Memory: VmHWM/VmRSS of sealpost (/proc/PID/status) holding 10,000 idle
# connections, and while relaying one 50 MiB message.
#
# Usage: bench/relay.sh [--quick] [--messages N] [--repeat R] [--systems LIST] [--parts LIST]
#                       [--no-build] [--no-results] [--keep]
#   --quick          N=2000 messages per workload, fewer latency samples
#   --messages N     messages per throughput workload (default 10000)
#   --repeat R       run every throughput measurement R times (interleaved across
#                    systems) and report the fastest successful one, listing all
#                    (default 1; useful on a shared, noisy machine)
#   --systems LIST   comma list of sealpost,secure,nopoll,postfix,ceiling (default all)
#   --parts LIST     comma list of throughput,latency,memory (default all)
#   --no-build       do not run `cargo build --release -p sealpost`
#   --no-results     do not update bench/RESULTS.md
#   --keep           keep the work directory (logs, data dirs, maillogs)
# Env: PERF=1 records `perf record -a -g` during each throughput run and writes
#      <run>.perf.txt (CPU split by process, top sealpost symbols) into the work
#      directory (implies --keep; perturbs the numbers a little).
#      SINK_OPTS (extra smtp-sink options, e.g. "-F" to not offer XFORWARD),
#      SEALPOST_BIN (default target/release/sealpost), WAIT_MAX (default 600),
#      BENCH_DIR (parent of the work dir; default /var/tmp, must not be tmpfs).
#      Before each measurement the script runs `sync` and waits until the machine is quiet
#      (QUIET_BUSY_PCT, default 15% busy over 1 s), at most QUIET_MAX seconds
#      (default 180) per measurement and QUIET_TOTAL_MAX (default 300) per run.
#
# All traffic is on 127.0.0.1. Nothing binds port 25. Every process started
# here is stopped on exit (trap), by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HELPER=(/usr/bin/python3 "$ROOT/bench/relay_helper.py")
SRC=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink
SEALPOST_BIN=${SEALPOST_BIN:-$ROOT/target/release/sealpost}
WAIT_MAX=${WAIT_MAX:-600}
SINK_OPTS=${SINK_OPTS:-}   # extra smtp-sink options for every sink, e.g. -F (no XFORWARD)
BENCH_DIR=${BENCH_DIR:-/var/tmp}
CMDLINE="bench/relay.sh $*"

MSGS=10000
LAT_MSGS=2000
LAT_MSGS_1=500
IDLE_CONNS=10000
BIG_BYTES=$((50 * 1024 * 1024))
SYSTEMS="sealpost,secure,nopoll,postfix,ceiling"
PARTS="throughput,latency,memory"
REPEAT=1
BUILD=1
RESULTS=1
KEEP=0
QUICK=0
PERF=${PERF:-0}
[ "$PERF" = 1 ] && KEEP=1

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; MSGS=2000; LAT_MSGS=500; LAT_MSGS_1=200 ;;
        --messages) MSGS=$2; shift ;;
        --repeat) REPEAT=$2; shift ;;
        --systems) SYSTEMS=$2; shift ;;
        --parts) PARTS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --no-results) RESULTS=0 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "relay.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
has() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }

log() { printf '[relay.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ prerequisites
if [ ! -x "$SRC" ] || [ ! -x "$SINK" ] || ! command -v postfix >/dev/null; then
    log "Postfix tools missing; running scripts/install-test-tools.sh"
    "$ROOT/scripts/install-test-tools.sh"
fi
[ "$(id -u)" -eq 0 ] || die "run as root (smtp-sink -u, a private Postfix instance)"
if [ "$BUILD" -eq 1 ] && { has "$SYSTEMS" sealpost || has "$SYSTEMS" secure || has "$SYSTEMS" nopoll; }; then
    log "cargo build --release -p sealpost"
    (cd "$ROOT" && cargo build --release -p sealpost) >&2
fi
if has "$SYSTEMS" sealpost || has "$SYSTEMS" secure || has "$SYSTEMS" nopoll; then
    [ -x "$SEALPOST_BIN" ] || die "no sealpost binary at $SEALPOST_BIN"
fi

port25_bound() { [ -n "$(ss -Hltn '( sport = :25 )' 2>/dev/null)" ]; }
port25_bound && die "something already listens on port 25; refusing to run"

# 10,000 idle connections need more than 10,000 descriptors in both sealpost and
# the client. Root may raise the hard limit; fall back to whatever is allowed.
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
# sealpost warns unless RLIMIT_NOFILE >= smtp.max_connections + 256.
SP_MAX_CONN=20000
[ "$NOFILE" -lt $((SP_MAX_CONN + 256)) ] && SP_MAX_CONN=$((NOFILE - 256))

WORK=$(mktemp -d "$BENCH_DIR/sealpost-bench.XXXXXX")
chmod 755 "$WORK"   # Postfix daemons (user postfix) must traverse it
FSTYPE=$(findmnt -no FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
[ "$FSTYPE" = tmpfs ] && die "$WORK is on tmpfs: fsync would be free; set BENCH_DIR"
# Run a private copy of the binary: on a shared checkout someone else's
# `cargo build` may replace target/release/sealpost in the middle of the run.
SP_COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
SP_DIRTY=$(cd "$ROOT" && git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null | wc -l)
if has "$SYSTEMS" sealpost || has "$SYSTEMS" secure || has "$SYSTEMS" nopoll; then
    SP_BUILT=$(date -u -r "$SEALPOST_BIN" '+%Y-%m-%d %H:%M:%S UTC')
    cp "$SEALPOST_BIN" "$WORK/sealpost.bin"
    SP_SHA=$(sha256sum "$WORK/sealpost.bin" | cut -c1-16)
    SEALPOST_RUN=$WORK/sealpost.bin
fi
RES=$WORK/results.tsv    # key<TAB>value, one measurement per line
: >"$RES"
put() { printf '%s\t%s\n' "$1" "$2" >>"$RES"; }
get() { awk -F'\t' -v k="$1" '$1 == k { v = $2 } END { print v }' "$RES"; }

# ------------------------------------------------------------------ cleanup
PIDS=()          # every background process we start
POSTFIX_CFGS=()  # every Postfix instance we start
cleanup() {
    local rc=$? p cfg
    set +e
    for cfg in "${POSTFIX_CFGS[@]}"; do
        postfix_stop "$cfg" >/dev/null 2>&1
    done
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if port25_bound; then log "WARNING: something listens on port 25 after the run"; fi
    if [ "$KEEP" -eq 1 ] || [ "$rc" -ne 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {  # stop_pid PID [grace-seconds]: TERM, wait bounded, then KILL
    local p=$1 grace=${2:-30} i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 1 $((grace * 10))); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$p" 2>/dev/null; then
        log "WARNING: pid $p did not stop within ${grace}s; killing"
        kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" 2>/dev/null || true
}

USED_PORTS=" "
free_port() {  # a currently free loopback TCP port not handed out before
    local p i
    for i in $(seq 1 50); do
        p=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        USED_PORTS="$USED_PORTS$p "
        echo "$p"; return 0
    done
    die "no free port"
}

wait_listen() {  # wait_listen PORT SECONDS
    local i
    for i in $(seq 1 $(($2 * 20))); do
        [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ] && return 0
        sleep 0.05
    done
    return 1
}

# wait_quiet: before each measurement, wait (bounded by QUIET_MAX seconds) until
# the machine is mostly idle, so another build or test on this shared host does
# not end up inside our numbers. Proceeds anyway after QUIET_MAX (logged; the
# per-run "other CPU" column shows how much foreign load there was).
QUIET_MAX=${QUIET_MAX:-180}
QUIET_BUSY_PCT=${QUIET_BUSY_PCT:-15}
QUIET_TOTAL_MAX=${QUIET_TOTAL_MAX:-300}
QUIET_WAITED=0
wait_quiet() {
    local t0 a b busy
    # Write back what the previous run left dirty (10,000 Postfix queue
    # files, a sealpost WAL) now, so it does not land in the fsyncs of the
    # run about to be measured.
    sync
    t0=$(date +%s)
    while :; do
        if [ $((QUIET_WAITED + $(date +%s) - t0)) -ge "$QUIET_TOTAL_MAX" ]; then
            [ "$QUIET_WAITED" -lt "$QUIET_TOTAL_MAX" ] && log "WARNING: waited ${QUIET_TOTAL_MAX}s in total for a quiet machine; not waiting any more"
            QUIET_WAITED=$QUIET_TOTAL_MAX
            return 0
        fi
        a=$(cpu_busy_snapshot); sleep 1; b=$(cpu_busy_snapshot)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
            t = (y[1]-x[1]) + (y[2]-x[2]) + (y[3]-x[3]); printf "%.0f", (t > 0 ? 100 * (y[1]-x[1]) / t : 0) }')
        if [ "$busy" -le "$QUIET_BUSY_PCT" ]; then
            QUIET_WAITED=$((QUIET_WAITED + $(date +%s) - t0)); return 0
        fi
        if [ $(($(date +%s) - t0)) -ge "$QUIET_MAX" ]; then
            log "WARNING: machine still ${busy}% busy after ${QUIET_MAX}s of waiting; measuring anyway"
            QUIET_WAITED=$((QUIET_WAITED + $(date +%s) - t0)); return 0
        fi
        [ $(( ($(date +%s) - t0) % 15 )) -lt 1 ] && log "  waiting for a quiet machine (${busy}% busy: $(ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p' | awk '{ printf "%s %s%%, ", $2, $1 }'))"
    done
}

cpu_busy_snapshot() { awk '/^cpu / { print $2+$3+$4+$7+$8, $5, $6 }' /proc/stat; }  # busy idle iowait

proc_status() {  # proc_status PID FIELD -> kB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# ------------------------------------------------------------------ sink
SINK_PID= SINK_PORT= SINK_OUT=
start_sink() {  # start_sink NAME
    SINK_PORT=$(free_port)
    SINK_OUT=$WORK/$1.sink.out
    # shellcheck disable=SC2086
    "$SINK" $SINK_OPTS -c -u nobody "127.0.0.1:$SINK_PORT" 1024 >"$SINK_OUT" 2>"$WORK/$1.sink.err" &
    SINK_PID=$!
    PIDS+=("$SINK_PID")
    wait_listen "$SINK_PORT" 10 || die "smtp-sink did not start (see $WORK/$1.sink.err)"
    # smtp-sink binds with SO_REUSEPORT semantics on Linux: a stray sink on the
    # same port would silently take half of the connections (and the count).
    local owners
    owners=$(ss -Hltnp "( sport = :$SINK_PORT )" 2>/dev/null)
    if [ "$(printf '%s\n' "$owners" | grep -c .)" -ne 1 ] || ! printf '%s' "$owners" | grep -q "pid=$SINK_PID,"; then
        die "port $SINK_PORT has other listeners besides our smtp-sink: $owners"
    fi
}
stop_sink() { [ -n "$SINK_PID" ] && stop_pid "$SINK_PID" 5; SINK_PID=; }
sink_counts() {  # prints "sess quit mesg" of the last counter line
    tail -c 256 "$SINK_OUT" | tr '\r' '\n' | awk -F'[ =]' '/mesg=/ { s=$2; q=$4; m=$6 } END { print s+0, q+0, m+0 }'
}

# ------------------------------------------------------------------ sealpost
SP_PID= SP_PORT= SP_ADMIN= SP_DIR=
start_sealpost() {  # start_sealpost NAME NEXT_HOP_PORT [relay|secure|nopoll]
    local mode=${3:-relay}
    SP_DIR=$WORK/$1.sealpost
    mkdir -p "$SP_DIR"
    SP_PORT=$(free_port)
    SP_ADMIN=$(free_port)
    cat >"$SP_DIR/sealpost.toml" <<EOF
[server]
hostname = "sealpost.bench.example"
data_dir = "$SP_DIR/data"

[smtp]
listen = ["127.0.0.1:$SP_PORT"]
relay_networks = ["127.0.0.0/8"]
max_message_size = "60MiB"
max_connections = $SP_MAX_CONN
idle_timeout = "10m"

[relay]
next_hop = "127.0.0.1:$2"
max_connections_per_hop = 4
retry_schedule = ["1s"]

[admin]
listen = "127.0.0.1:$SP_ADMIN"

[portal]
listen = "127.0.0.1:0"

[vault]
# Outside data_dir, as in production (inside it the gateway warns).
master_key_file = "$SP_DIR/master.key"
EOF
    if [ "$mode" = secure ]; then
        printf '\n[domains]\ninternal = ["sender.example"]\n' >>"$SP_DIR/sealpost.toml"
    fi
    # The default unless this is the nopoll run (never the caller's setting).
    local env=(-u SEALPOST_SMTP_BUSY_POLL)
    [ "$mode" = nopoll ] && env=(SEALPOST_SMTP_BUSY_POLL=0)
    env "${env[@]}" "$SEALPOST_RUN" serve --config "$SP_DIR/sealpost.toml" \
        >"$SP_DIR/stdout.log" 2>"$SP_DIR/stderr.log" &
    SP_PID=$!
    PIDS+=("$SP_PID")
    local i
    for i in $(seq 1 300); do
        if "${HELPER[@]}" http "http://127.0.0.1:$SP_ADMIN/health" >/dev/null 2>&1; then
            wait_listen "$SP_PORT" 5 || break
            [ "$mode" = secure ] && secure_everything
            return 0
        fi
        kill -0 "$SP_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$SP_DIR/stderr.log" >&2
    die "sealpost did not become healthy"
}
# The secure path: one policy selects every external recipient of an
# internal sender (the default definition), through the API with the key
# the first start printed.
secure_everything() {
    local key
    key=$(grep -o 'sp_[0-9a-f]*_[0-9a-f]*' "$SP_DIR/stdout.log" | head -n1)
    [ -n "$key" ] || die "no first-run API key in $SP_DIR/stdout.log"
    curl -sf -X POST -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        --data '{"narrative": "bench: everything secure", "action": "apply_definition", "definition_id": 1,
                 "from": {"kind": "internal"}, "to": {"kind": "external"}}' \
        "http://127.0.0.1:$SP_ADMIN/api/v1/policies" >"$SP_DIR/policy.json" ||
        die "could not create the secure policy"
}
stop_sealpost() {
    [ -n "$SP_PID" ] || return 0
    stop_pid "$SP_PID" 40
    SP_PID=
}
sp_metric() {  # sp_metric NAME -> sum of all samples of that metric (0 if absent)
    "${HELPER[@]}" http "http://127.0.0.1:$SP_ADMIN/metrics" 2>/dev/null |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}
sp_accept_summary() {  # one line: quantiles as exported, plus the mean over the whole run
    "${HELPER[@]}" http "http://127.0.0.1:$SP_ADMIN/metrics" 2>/dev/null | awk '
        /^sealpost_smtp_accept_seconds\{quantile=/ { match($1, /"[0-9.]+"/); q = substr($1, RSTART + 1, RLENGTH - 2);
            if (q == "0.5" || q == "0.9" || q == "0.99" || q == "1") out = out sprintf("q%s=%.2fms ", q, $2 * 1000) }
        /^sealpost_smtp_accept_seconds_sum/ { s = $2 }
        /^sealpost_smtp_accept_seconds_count/ { n = $2 }
        END { if (n > 0) printf "%smean=%.2fms count=%d\n", out, s / n * 1000, n }'
}
sp_problems() {  # WARN/ERROR lines in the sealpost log (colour codes stripped)
    sed 's/\x1b\[[0-9;]*m//g' "$SP_DIR/stderr.log" 2>/dev/null | grep -cE ' (WARN|ERROR) ' || true
}

# ------------------------------------------------------------------ Postfix
PF_CFG= PF_PORT= PF_DIR=
start_postfix() {  # start_postfix NAME RELAY_PORT
    PF_DIR=$WORK/$1.postfix
    PF_CFG=$PF_DIR/etc
    PF_PORT=$(free_port)
    mkdir -p "$PF_CFG" "$PF_DIR/queue" "$PF_DIR/data"
    chown postfix:postfix "$PF_DIR/data"
    # Stock Debian master.cf, with smtpd on a loopback port instead of :25.
    awk -v addr="127.0.0.1:$PF_PORT" '
        $1 == "smtp" && $2 == "inet" { $1 = addr; print; next } { print }' \
        /etc/postfix/master.cf >"$PF_CFG/master.cf"
    cat >"$PF_CFG/main.cf" <<EOF
# Private benchmark instance (bench/relay.sh). Stock queue and fsync behaviour;
# only what is needed to relay from loopback to the sink is set.
compatibility_level = 3.6
queue_directory = $PF_DIR/queue
data_directory = $PF_DIR/data
myhostname = postfix.bench.example
mydomain = bench.example
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$2
alias_maps =
alias_database =
local_recipient_maps =
maillog_file_prefixes = $PF_DIR
maillog_file = $PF_DIR/maillog
EOF
    # Debian's master.cf chroots most daemons into the queue directory, which
    # would need copies of /etc files there; run them unchrooted instead.
    postconf -c "$PF_CFG" -F '*/*/chroot = n'
    if ! postfix -c "$PF_CFG" check >/dev/null 2>&1; then
        script -qc "postfix -c $PF_CFG check" /dev/null >&2 || true
        die "postfix check failed for $PF_CFG"
    fi
    chown postfix:postfix "$PF_DIR/data"
    POSTFIX_CFGS+=("$PF_CFG")
    if ! postfix -c "$PF_CFG" start >/dev/null 2>&1; then
        script -qc "postfix -c $PF_CFG start" /dev/null >&2 || true
        die "postfix start failed for $PF_CFG"
    fi
    wait_listen "$PF_PORT" 20 || die "postfix smtpd not listening on $PF_PORT (see $PF_DIR/maillog)"
}
pf_master_pid() { head -n1 "$PF_DIR/queue/pid/master.pid" 2>/dev/null | tr -d ' '; }
pf_cpu() {  # CPU seconds of the Postfix instance so far: master + live children + reaped children
    local m kids
    m=$(pf_master_pid)
    [ -n "$m" ] || { echo 0; return; }
    kids=$(pgrep -P "$m" | tr '\n' ' ')
    # shellcheck disable=SC2086
    "${HELPER[@]}" cpu "$m" $kids
}
pf_queue_count() {  # messages still in the Postfix queue
    find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" \
         "$PF_DIR/queue/hold" "$PF_DIR/queue/maildrop" -type f 2>/dev/null | wc -l
}
postfix_stop() {  # postfix_stop CFG_DIR
    local cfg=$1 qd pid i
    qd=$(postconf -c "$cfg" -h queue_directory 2>/dev/null) || return 0
    pid=$(head -n1 "$qd/pid/master.pid" 2>/dev/null | tr -d ' ')
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    postfix -c "$cfg" stop >/dev/null 2>&1 || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    log "WARNING: Postfix master $pid still running; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# ------------------------------------------------------------------ throughput
# run_throughput SYSTEM WORKLOAD SESSIONS SIZE COUNT
run_throughput() {
    local sys=$1 wl=$2 sessions=$3 size=$4 count=$5 rep=${6:-1}
    local key="tp.$1.$2.r$rep" target_port name="$sys.$wl.r$rep"
    log "throughput: $sys, $wl ($sessions sessions, $size B, $count messages), run $rep of $REPEAT"
    start_sink "$name"
    case "$sys" in
        sealpost) start_sealpost "$name" "$SINK_PORT"; target_port=$SP_PORT ;;
        secure)   start_sealpost "$name" "$SINK_PORT" secure; target_port=$SP_PORT ;;
        nopoll)   start_sealpost "$name" "$SINK_PORT" nopoll; target_port=$SP_PORT ;;
        postfix)  start_postfix "$name" "$SINK_PORT"; target_port=$PF_PORT ;;
        ceiling)  target_port=$SINK_PORT ;;
    esac
    local waitout=$WORK/$name.wait runjson=$WORK/$name.source.json
    "${HELPER[@]}" waitsink "$SINK_OUT" "$count" "$WAIT_MAX" >"$waitout" &
    local wpid=$!
    PIDS+=("$wpid")
    local cpu0 cpu1 perfpid=""
    wait_quiet
    if [ "$PERF" = 1 ]; then
        perf record -q -a -g -F 499 -o "$WORK/$name.perf.data" >/dev/null 2>&1 &
        perfpid=$!
        PIDS+=("$perfpid")
        sleep 0.5
    fi
    cpu0=$(cpu_busy_snapshot)
    local src_rc=0
    timeout "$WAIT_MAX" "${HELPER[@]}" run "$runjson" -- \
        "$SRC" -s "$sessions" -m "$count" -l "$size" -M client.bench.example \
        -f bench@sender.example -t rcpt@dest.example "127.0.0.1:$target_port" \
        >"$WORK/$name.source.out" 2>&1 || src_rc=$?
    [ "$src_rc" -ne 0 ] && log "smtp-source exited $src_rc: $(tail -n 3 "$WORK/$name.source.out" | tr '\n' ' ')"
    local wait_rc=0
    wait "$wpid" || wait_rc=$?
    cpu1=$(cpu_busy_snapshot)
    if [ -n "$perfpid" ]; then
        kill -INT "$perfpid" 2>/dev/null; wait "$perfpid" 2>/dev/null || true
        {
            set +o pipefail   # `head` closing the pipe is fine here
            echo "== CPU samples by process (whole machine, during $name)"
            perf report -i "$WORK/$name.perf.data" --no-children --sort comm --stdio -q -g none 2>/dev/null | head -25
            echo "== CPU samples by thread of the relay under test"
            if [ "$sys" = sealpost ]; then
                perf report -i "$WORK/$name.perf.data" --no-children --pid "$SP_PID" --sort comm --stdio -q -g none 2>/dev/null | head -20
                echo "== top symbols in sealpost"
                perf report -i "$WORK/$name.perf.data" --no-children --pid "$SP_PID" --sort dso,symbol --stdio -q -g none 2>/dev/null | head -60
            fi
            set -o pipefail
        } >"$WORK/$name.perf.txt" || true
        log "  perf summary: $WORK/$name.perf.txt"
    fi
    local status done_at start end
    read -r status done_at _ <"$waitout" || true
    start=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['start'])" "$runjson" 2>/dev/null || echo 0)
    end=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['end'])" "$runjson" 2>/dev/null || echo 0)
    local srccpu
    srccpu=$(/usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.2f' % (d['utime']+d['stime']))" "$runjson" 2>/dev/null || echo 0)

    # CPU of the relay under test, and of the sink, before they stop.
    local relaycpu=0 sinkcpu extra=""
    sleep 1   # let stragglers (duplicates) show up at the sink
    sinkcpu=$("${HELPER[@]}" cpu "$SINK_PID")
    case "$sys" in
        sealpost|secure|nopoll)
            relaycpu=$("${HELPER[@]}" cpu "$SP_PID")
            local acc del q
            acc=$(sp_metric sealpost_smtp_messages_accepted_total)
            del=$(sp_metric sealpost_delivery_delivered_total)
            q=$("${HELPER[@]}" http "http://127.0.0.1:$SP_ADMIN/health" 2>/dev/null | tr -d '\n' | sed 's/  */ /g')
            put "$key.accepted" "$acc"; put "$key.delivered" "$del"
            put "$key.secure" "$(sp_metric sealpost_secure_recipients_total)"
            put "$key.hwm_kb" "$(proc_status "$SP_PID" VmHWM)"
            put "$key.problems" "$(sp_problems)"
            extra="accepted=$acc delivered=$del log_warn_err=$(sp_problems) health=$q"
            ;;
        postfix)
            relaycpu=$(pf_cpu)
            local sent deferred qleft
            sent=$(grep -c 'status=sent' "$PF_DIR/maillog" 2>/dev/null || true)
            deferred=$(grep -c 'status=deferred' "$PF_DIR/maillog" 2>/dev/null || true)
            qleft=$(pf_queue_count)
            put "$key.sent" "$sent"; put "$key.deferred" "$deferred"; put "$key.queue_left" "$qleft"
            extra="status=sent:$sent status=deferred:$deferred queue_left=$qleft maillog_warnings=$(grep -cE 'warning|fatal|panic' "$PF_DIR/maillog" || true)"
            ;;
    esac
    local counts
    counts=$(sink_counts)
    case "$sys" in
        sealpost|secure|nopoll) stop_sealpost ;;
        postfix)  postfix_stop "$PF_CFG" ;;
    esac
    stop_sink

    local e2e inj busy iow rate inj_rate
    e2e=$(awk -v a="$start" -v b="$done_at" 'BEGIN { printf "%.3f", b - a }')
    inj=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
    rate=$(awk -v n="$count" -v t="$e2e" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
    inj_rate=$(awk -v n="$count" -v t="$inj" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
    read -r busy iow <<<"$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        tot = (y[1] - x[1]) + (y[2] - x[2]) + (y[3] - x[3]);
        if (tot <= 0) tot = 1;
        printf "%.0f %.0f", 100 * (y[1] - x[1]) / tot, 100 * (y[3] - x[3]) / tot }')"
    local ok=1
    [ "$status" = DONE ] || ok=0
    # The secure run counts only if every message really took the secure
    # path (otherwise the sink would count relayed originals).
    if [ "$sys" = secure ] && [ "$(get "$key.secure")" != "$count" ]; then
        log "  secure run: only $(get "$key.secure") of $count recipients got secure delivery"
        ok=0
    fi
    [ "$src_rc" -eq 0 ] || ok=0
    [ "$wait_rc" -eq 0 ] || ok=0
    put "$key.ok" "$ok"
    put "$key.e2e_s" "$e2e"; put "$key.rate" "$rate"
    put "$key.inject_s" "$inj"; put "$key.inject_rate" "$inj_rate"
    put "$key.sink" "$counts"
    put "$key.cpu_relay" "$relaycpu"; put "$key.cpu_source" "$srccpu"; put "$key.cpu_sink" "$sinkcpu"
    put "$key.busy_pct" "$busy"; put "$key.iowait_pct" "$iow"
    # CPU seconds burnt by anything else on the machine during the run
    # (a build, another benchmark): busy share of both cores minus ours.
    put "$key.cpu_other" "$(awk -v b="$busy" -v t="$e2e" -v n="$(nproc)" -v r="$relaycpu" -v s="$srccpu" -v k="$sinkcpu" \
        'BEGIN { o = b / 100 * n * t - r - s - k; printf "%.1f", (o < 0 ? 0 : o) }')"
    log "  -> ${status:-NO-RESULT}: end-to-end $e2e s = $rate msg/s; smtp-source done after $inj s ($inj_rate msg/s); sink (sess quit mesg) = $counts"
    log "     CPU s: relay=$relaycpu smtp-source=$srccpu smtp-sink=$sinkcpu; machine busy ${busy}% iowait ${iow}% (of 2 cores) $extra"
}

# ------------------------------------------------------------------ latency
# run_latency SYSTEM SESSIONS COUNT
run_latency() {
    local sys=$1 sessions=$2 count=$3 key="lat.$1.s$2" port name="lat.$1.s$2"
    log "latency: $sys, $sessions sessions, $count messages of 5 KiB"
    start_sink "$name"
    case "$sys" in
        sealpost) start_sealpost "$name" "$SINK_PORT"; port=$SP_PORT ;;
        postfix)  start_postfix "$name" "$SINK_PORT"; port=$PF_PORT ;;
        ceiling)  port=$SINK_PORT ;;
    esac
    local out rc=0
    wait_quiet
    out=$(timeout "$WAIT_MAX" "${HELPER[@]}" latency 127.0.0.1 "$port" --sessions "$sessions" \
          --messages "$count" --size 5120 --budget "$WAIT_MAX") || rc=$?
    put "$key.json" "$out"
    put "$key.ok" "$([ "$rc" -eq 0 ] && echo 1 || echo 0)"
    log "  -> $out"
    # let the relay drain before stopping (bounded), so shutdown is clean
    timeout "$WAIT_MAX" "${HELPER[@]}" waitsink "$SINK_OUT" "$count" 120 >/dev/null || true
    if [ "$sys" = sealpost ]; then
        local summary
        summary=$(sp_accept_summary)
        put "$key.server" "$summary"
        log "  server side: $summary"
        stop_sealpost
    elif [ "$sys" = postfix ]; then
        postfix_stop "$PF_CFG"
    fi
    stop_sink
}

# ------------------------------------------------------------------ memory
# idle_round ROUND: open IDLE_CONNS connections to sealpost, measure, release.
idle_round() {
    local r=$1 out=$WORK/mem.idle.client$1.out line i est alive
    "${HELPER[@]}" idle 127.0.0.1 "$SP_PORT" "$IDLE_CONNS" --max-hold 300 >"$out" 2>"$WORK/mem.idle.client$r.err" &
    local cpid=$!
    PIDS+=("$cpid")
    for i in $(seq 1 1200); do   # up to 120 s to open them all
        grep -q '^HOLDING' "$out" 2>/dev/null && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    line=$(grep '^HOLDING' "$out" || echo "HOLDING none")
    sleep 2
    est=$(ss -Htn state established "( sport = :$SP_PORT )" 2>/dev/null | wc -l)
    put "mem.idle.r$r.holding" "$line"
    put "mem.idle.r$r.established" "$est"
    put "mem.idle.r$r.rss_kb" "$(proc_status "$SP_PID" VmRSS)"
    put "mem.idle.r$r.hwm_kb" "$(proc_status "$SP_PID" VmHWM)"
    put "mem.idle.r$r.threads" "$(proc_status "$SP_PID" Threads)"
    put "mem.idle.r$r.fds" "$(ls "/proc/$SP_PID/fd" | wc -l)"
    if [ "$r" = 1 ]; then
        # Is the server still useful while holding them? One real message through.
        local src_rc=0
        timeout 60 "$SRC" -m 1 -l 5120 -M client.bench.example -f bench@sender.example \
            -t rcpt@dest.example "127.0.0.1:$SP_PORT" >/dev/null 2>&1 || src_rc=$?
        if timeout 70 "${HELPER[@]}" waitsink "$SINK_OUT" 1 60 >/dev/null; then
            put mem.idle.mail_while_idle "ok"
        else
            put mem.idle.mail_while_idle "FAILED (smtp-source rc=$src_rc)"
        fi
    fi
    stop_pid "$cpid" 30
    alive=$(grep '^ALIVE' "$out" || echo "ALIVE ?")
    put "mem.idle.r$r.alive" "$alive"
    sleep 2
    put "mem.idle.r$r.rss_after_close_kb" "$(proc_status "$SP_PID" VmRSS)"
    log "  -> round $r: $line; established=$est; VmRSS $(get "mem.idle.r$r.rss_kb") kB, VmHWM $(get "mem.idle.r$r.hwm_kb") kB" \
        "(after close $(get "mem.idle.r$r.rss_after_close_kb") kB); $alive"
}

run_idle() {
    log "memory: sealpost with $IDLE_CONNS idle connections, twice (ulimit -n $NOFILE, smtp.max_connections $SP_MAX_CONN)"
    start_sink mem.idle
    start_sealpost mem.idle "$SINK_PORT"
    wait_quiet
    put mem.idle.base_rss_kb "$(proc_status "$SP_PID" VmRSS)"
    idle_round 1
    # A second round in the same process: memory that is not reused would
    # show up as growth here.
    idle_round 2
    put mem.idle.problems "$(sp_problems)"
    log "  baseline $(get mem.idle.base_rss_kb) kB; mail while idle: $(get mem.idle.mail_while_idle); log WARN/ERROR: $(get mem.idle.problems)"
    stop_sealpost
    stop_sink
}

run_big() {
    log "memory: sealpost relaying one $((BIG_BYTES / 1048576)) MiB message"
    start_sink mem.big
    start_sealpost mem.big "$SINK_PORT"
    wait_quiet
    put mem.big.base_rss_kb "$(proc_status "$SP_PID" VmRSS)"
    local t0 t1 rc=0 status
    t0=$(date +%s.%N)
    timeout 300 "$SRC" -m 1 -l "$BIG_BYTES" -M client.bench.example -f bench@sender.example \
        -t rcpt@dest.example "127.0.0.1:$SP_PORT" >"$WORK/mem.big.source.out" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    status=$(timeout 330 "${HELPER[@]}" waitsink "$SINK_OUT" 1 300 | awk '{ print $1 }') || true
    put mem.big.accept_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
    put mem.big.delivered "$status (smtp-source rc=$rc)"
    put mem.big.e2e_s "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"
    sleep 1
    put mem.big.hwm_kb "$(proc_status "$SP_PID" VmHWM)"
    put mem.big.rss_after_kb "$(proc_status "$SP_PID" VmRSS)"
    put mem.big.problems "$(sp_problems)"
    log "  -> $status (smtp-source rc=$rc) accepted in $(get mem.big.accept_s) s; VmHWM $(get mem.big.hwm_kb) kB" \
        "(baseline RSS $(get mem.big.base_rss_kb) kB, RSS after $(get mem.big.rss_after_kb) kB)"
    stop_sealpost
    stop_sink
}

# ------------------------------------------------------------------ run
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "work dir $WORK ($FSTYPE), messages per workload $MSGS, systems $SYSTEMS, parts $PARTS, WAIT_MAX ${WAIT_MAX}s"
WORKLOADS=("20s-5k 20 5120" "1s-5k 1 5120" "20s-100k 20 102400")
# promote_best SYSTEM WORKLOAD: copy the fastest successful repetition's
# numbers to tp.SYSTEM.WORKLOAD.*, and list every repetition's rate.
promote_best() {
    local sys=$1 wl=$2 r best="" best_rate=-1 rate all=""
    for r in $(seq 1 "$REPEAT"); do
        rate=$(get "tp.$sys.$wl.r$r.rate")
        [ -n "$rate" ] || continue
        if [ "$(get "tp.$sys.$wl.r$r.ok")" = 1 ]; then all="$all $rate"; else all="$all FAIL($rate)"; fi
        if [ "$(get "tp.$sys.$wl.r$r.ok")" = 1 ] && [ "$rate" -gt "$best_rate" ]; then best=$r; best_rate=$rate; fi
    done
    [ -n "$best" ] || best=1   # all failed: report the first, marked failed
    awk -F'\t' -v p="tp.$sys.$wl.r$best." -v n="tp.$sys.$wl." 'index($1, p) == 1 { print n substr($1, length(p) + 1) "\t" $2 }' "$RES" >>"$RES.tmp"
    cat "$RES.tmp" >>"$RES"; rm -f "$RES.tmp"
    put "tp.$sys.$wl.all" "${all# }"
    put "tp.$sys.$wl.best_rep" "$best"
}
# The sealpost variants run on one workload each: the secure path on the
# first, sealpost without busy polling on the one session it polls for.
skip_variant() {  # skip_variant SYSTEM WORKLOAD
    case "$1" in
        secure) [ "$2" != 20s-5k ] ;;
        nopoll) [ "$2" != 1s-5k ] ;;
        *) false ;;
    esac
}
if has "$PARTS" throughput; then
    for w in "${WORKLOADS[@]}"; do
        read -r wl sessions size <<<"$w"
        # Repetitions are interleaved across systems, so a burst of foreign
        # load on this shared machine hits all of them alike.
        for rep in $(seq 1 "$REPEAT"); do
            for sys in ceiling sealpost secure nopoll postfix; do
                skip_variant "$sys" "$wl" && continue
                has "$SYSTEMS" "$sys" && run_throughput "$sys" "$wl" "$sessions" "$size" "$MSGS" "$rep"
            done
        done
        for sys in ceiling sealpost secure nopoll postfix; do
            skip_variant "$sys" "$wl" && continue
            has "$SYSTEMS" "$sys" && promote_best "$sys" "$wl"
        done
    done
fi
if has "$PARTS" latency; then
    for sys in ceiling sealpost postfix; do
        has "$SYSTEMS" "$sys" || continue
        run_latency "$sys" 20 "$LAT_MSGS"
        run_latency "$sys" 1 "$LAT_MSGS_1"
    done
fi
if has "$PARTS" memory && has "$SYSTEMS" sealpost; then
    run_idle
    run_big
fi
T_END=$(date +%s)
put run.duration_s "$((T_END - T_START))"

# ------------------------------------------------------------------ report
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
# ratio A B: A / B with two decimals, or "-" when B is missing or zero.
ratio() {
    if [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
    else
        echo -
    fi
}
# round_ratios A B WORKLOAD: A's rate / B's rate for each repetition, both
# successful (rounds are interleaved: ceiling, sealpost, ..., Postfix).
round_ratios() {
    local r out="" a b
    for r in $(seq 1 "$REPEAT"); do
        a=$(get "tp.$1.$3.r$r.rate"); b=$(get "tp.$2.$3.r$r.rate")
        if [ "$(get "tp.$1.$3.r$r.ok")" = 1 ] && [ "$(get "tp.$2.$3.r$r.ok")" = 1 ]; then
            out="$out $(ratio "$a" "$b")"
        else
            out="$out -"
        fi
    done
    echo "${out# }"
}
# meets A B MIN: 1 if A / B >= MIN, else 0. Judged on the exact quotient,
# never on the two decimals printed (3146 / 6341 = 0.496 prints as 0.50).
meets() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { print (b > 0 && a / b >= m) ? 1 : 0 }'; }
fmt_rate() { local r; r=$(get "tp.$1.$2.rate"); if [ "$(get "tp.$1.$2.ok")" = 1 ]; then echo "$r"; elif [ -n "$r" ]; then echo "FAIL($r)"; else echo "-"; fi; }

REPORT=$WORK/report.md
{
    echo "Run: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(($(get run.duration_s) / 60)) min $(($(get run.duration_s) % 60)) s"
    echo
    echo "- Command: \`$CMDLINE\` (messages per throughput workload: $MSGS; each throughput measurement run $REPEAT time(s), fastest successful one reported)"
    echo "- sealpost commit: \`$SP_COMMIT\` at the start of the run$( [ "$SP_DIRTY" -gt 0 ] && echo " ($SP_DIRTY uncommitted change(s) under crates/, Cargo.* at that time)")"
    { has "$SYSTEMS" sealpost || has "$SYSTEMS" secure || has "$SYSTEMS" nopoll; } && echo "- sealpost binary: copy of \`${SEALPOST_BIN#"$ROOT"/}\` (built $SP_BUILT from the working tree; sha256 $SP_SHA...) taken at the start, used for every run"
    echo "- Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r), memory $(free -h | awk '/^Mem:/ { print $2 " total, " $7 " available" }'), work dir on $FSTYPE ($(df -P "$WORK" | awk 'NR==2 { print $1 }'))"
    echo "- Waited ${QUIET_WAITED}s in total for a quiet machine before measurements (threshold ${QUIET_BUSY_PCT}% busy over 1 s, at most ${QUIET_MAX}s per measurement, ${QUIET_TOTAL_MAX}s per run)"
    echo "- Load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (\"other\" CPU below = machine busy time not used by the processes under test)"
    echo "- smtp-sink options: \`-c -u nobody${SINK_OPTS:+ $SINK_OPTS}\` (its EHLO offers PIPELINING, 8BITMIME, AUTH, XCLIENT, XFORWARD, ENHANCEDSTATUSCODES, DSN$( case " $SINK_OPTS " in *" -F "*) echo '; XFORWARD disabled with -F' ;; esac))"
    echo "- Postfix $(postconf -h mail_version) (Debian package), smtp-source/smtp-sink from the same package; python3 $(/usr/bin/python3 -c 'import platform; print(platform.python_version())')"
    echo
    echo "### Throughput, end to end (smtp-source start -> smtp-sink has all N), messages/s"
    echo
    echo "| workload | ceiling (source->sink) | sealpost | Postfix | sealpost / Postfix (target >= 2.0) | sealpost / ceiling (target >= 0.50) |"
    echo "|---|---:|---:|---:|---|---|"
    for w in "${WORKLOADS[@]}"; do
        read -r wl sessions size <<<"$w"
        c=$(get "tp.ceiling.$wl.rate"); s=$(get "tp.sealpost.$wl.rate"); p=$(get "tp.postfix.$wl.rate")
        r1="-"; r2="-"
        if [ -n "$s" ] && [ -n "$p" ] && [ "$p" != 0 ]; then
            r1=$(awk -v s="$s" -v p="$p" 'BEGIN { printf "%.2f", s / p }')
            v=$(meets "$s" "$p" 2.0)
            [ "$(get "tp.sealpost.$wl.ok")" = 1 ] && [ "$(get "tp.postfix.$wl.ok")" = 1 ] || v=0
            r1="$r1 $(verdict "$v")"
        fi
        if [ -n "$s" ] && [ -n "$c" ] && [ "$c" != 0 ]; then
            r2=$(awk -v s="$s" -v c="$c" 'BEGIN { printf "%.2f", s / c }')
            v=$(meets "$s" "$c" 0.5)
            [ "$(get "tp.sealpost.$wl.ok")" = 1 ] && [ "$(get "tp.ceiling.$wl.ok")" = 1 ] || v=0
            r2="$r2 $(verdict "$v")"
        fi
        echo "| $wl ($sessions sessions, $size B, $MSGS msgs) | $(fmt_rate ceiling "$wl") | $(fmt_rate sealpost "$wl") | $(fmt_rate postfix "$wl") | $r1 | $r2 |"
    done
    if [ "$REPEAT" -gt 1 ] && [ -n "$(get tp.ceiling.20s-5k.r1.rate)" ]; then
        echo
        echo "Round by round, each sealpost round against the rounds run beside it (how much of the verdict above is the machine's noise; the verdict itself compares the fastest rounds):"
        echo
        for w in "${WORKLOADS[@]}"; do
            read -r wl _ <<<"$w"
            line="- $wl: sealpost / ceiling $(round_ratios sealpost ceiling "$wl")"
            [ -n "$(get "tp.postfix.$wl.r1.rate")" ] && line="$line; sealpost / Postfix $(round_ratios sealpost postfix "$wl")"
            echo "$line"
        done
    fi
    if [ -n "$(get tp.secure.20s-5k.rate)" ]; then
        echo
        echo "Secure path (every recipient selected by a policy: accepted, sealed, notification delivered to the sink), 20 sessions x 5 KiB:"
        echo
        echo "| secure path msg/s | Postfix plain relay msg/s | secure / Postfix (target >= 1.0) |"
        echo "|---:|---:|---|"
        r=$(ratio "$(get tp.secure.20s-5k.rate)" "$(get tp.postfix.20s-5k.rate)")
        if [ "$r" != - ]; then
            v=$(meets "$(get tp.secure.20s-5k.rate)" "$(get tp.postfix.20s-5k.rate)" 1.0)
            [ "$(get tp.secure.20s-5k.ok)" = 1 ] && [ "$(get tp.postfix.20s-5k.ok)" = 1 ] || v=0
            r="$r $(verdict "$v")"
        fi
        echo "| $(fmt_rate secure 20s-5k) | $(fmt_rate postfix 20s-5k) | $r |"
    fi
    if [ -n "$(get tp.nopoll.1s-5k.rate)" ]; then
        echo
        echo "Without busy polling (\`smtp.busy_poll = 0\`), 1 session x 5 KiB, for comparison (not a target):"
        echo
        echo "| sealpost msg/s | sealpost, busy_poll = 0, msg/s | Postfix msg/s | busy_poll = 0 / Postfix |"
        echo "|---:|---:|---:|---:|"
        echo "| $(fmt_rate sealpost 1s-5k) | $(fmt_rate nopoll 1s-5k) | $(fmt_rate postfix 1s-5k) | $(ratio "$(get tp.nopoll.1s-5k.rate)" "$(get tp.postfix.1s-5k.rate)") |"
    fi
    echo
    echo "Details per run (e2e = until the sink had every message; inject = until smtp-source finished; CPU seconds per process group; machine busy/iowait in % of both cores over the run):"
    echo
    echo "| run | e2e s | inject s (msg/s) | sink sess/quit/mesg | CPU s relay / source / sink / other | busy % / iowait % | checks |"
    echo "|---|---:|---|---|---|---|---|"
    for w in "${WORKLOADS[@]}"; do
        read -r wl _ _ <<<"$w"
        for sys in ceiling sealpost secure nopoll postfix; do
            k="tp.$sys.$wl"
            [ -n "$(get "$k.ok")" ] || continue
            case "$sys" in
                sealpost|secure|nopoll) chk="accepted=$(get "$k.accepted") delivered=$(get "$k.delivered") secure=$(get "$k.secure") log WARN/ERROR=$(get "$k.problems") VmHWM=$(get "$k.hwm_kb") kB" ;;
                postfix)  chk="sent=$(get "$k.sent") deferred=$(get "$k.deferred") left in queue=$(get "$k.queue_left")" ;;
                *) chk="" ;;
            esac
            echo "| $sys $wl$( [ "$REPEAT" -gt 1 ] && echo " (best of $REPEAT: $(get "$k.all") msg/s)") $( [ "$(get "$k.ok")" = 1 ] || echo '**FAILED/TIMEOUT**') | $(get "$k.e2e_s") | $(get "$k.inject_s") ($(get "$k.inject_rate")) | $(get "$k.sink" | tr ' ' '/') | $(get "$k.cpu_relay") / $(get "$k.cpu_source") / $(get "$k.cpu_sink") / $(get "$k.cpu_other") | $(get "$k.busy_pct") / $(get "$k.iowait_pct") | $chk |"
        done
    done
    echo
    if has "$PARTS" latency; then
        echo "### Latency, end of DATA (\".\" sent) -> 250 received, client side, 5 KiB messages"
        echo
        echo "| target | sessions | messages | p50 ms | p90 ms | p99 ms | max ms | msg/s | errors |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
        for sys in ceiling sealpost postfix; do
            for s in 20 1; do
                j=$(get "lat.$sys.s$s.json")
                [ -n "$j" ] || continue
                /usr/bin/python3 - "$sys" "$s" "$j" <<'PY'
import json, sys
name = {"ceiling": "smtp-sink (client floor)", "sealpost": "sealpost", "postfix": "Postfix"}[sys.argv[1]]
d = json.loads(sys.argv[3])
rate = d["messages"] / d["elapsed_s"] if d["elapsed_s"] else 0
print("| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.0f | %s |" % (
    name, sys.argv[2], d["messages"], d["p50_ms"], d["p90_ms"], d["p99_ms"], d["max_ms"], rate,
    d["errors"] if not d["errors"] else "%d: %s" % (d["errors"], "; ".join(d["first_errors"])[:200])))
PY
            done
        done
        echo
        for s in 20 1; do
            srv=$(get "lat.sealpost.s$s.server")
            [ -n "$srv" ] && echo "sealpost server side, $s session(s), \`sealpost_smtp_accept_seconds\` summary as exported (qN = quantile; mean = _sum/_count over the whole run): \`$srv\`" && echo
        done
    fi
    if has "$PARTS" memory && [ -n "$(get mem.idle.r1.rss_kb)" ]; then
        idle_kb=$(get mem.idle.r1.hwm_kb); big_kb=$(get mem.big.hwm_kb)
        echo "### Memory (sealpost, /proc/PID/status)"
        echo
        echo "| case | target | measured | verdict |"
        echo "|---|---|---|---|"
        v=$(awk -v k="$idle_kb" 'BEGIN { print (k > 0 && k * 1024 <= 100 * 1000 * 1000) ? 1 : 0 }')
        case "$(get mem.idle.r1.holding)" in *"ok=$IDLE_CONNS "*) ;; *) v=0 ;; esac
        echo "| $IDLE_CONNS idle connections: peak RSS (VmHWM) | <= 100 MB (10^8 B) | $idle_kb kB = $(awk -v k="$idle_kb" 'BEGIN { printf "%.1f MB = %.1f MiB", k * 1024 / 1e6, k / 1024 }') (VmRSS $(get mem.idle.r1.rss_kb) kB while holding; $(get mem.idle.base_rss_kb) kB before; $(get mem.idle.r1.rss_after_close_kb) kB after they closed) | $(verdict "$v") |"
        v=$(awk -v k="$big_kb" -v b="$BIG_BYTES" 'BEGIN { print (k > 0 && k * 1024 <= 2 * b) ? 1 : 0 }')
        case "$(get mem.big.delivered)" in DONE*"rc=0)") ;; *) v=0 ;; esac
        echo "| one $((BIG_BYTES / 1048576)) MiB message relayed: peak RSS (VmHWM) | <= 2 x size = $((2 * BIG_BYTES / 1024)) kB | $big_kb kB = $(awk -v k="$big_kb" -v b="$BIG_BYTES" 'BEGIN { printf "%.2f", k * 1024 / b }') x size (baseline RSS $(get mem.big.base_rss_kb) kB; RSS after $(get mem.big.rss_after_kb) kB) | $(verdict "$v") |"
        echo
        echo "Idle test: client \`$(get mem.idle.r1.holding)\`; established at the server port: $(get mem.idle.r1.established); sealpost threads $(get mem.idle.r1.threads), open fds $(get mem.idle.r1.fds); a message sent while holding them: $(get mem.idle.mail_while_idle); at release: \`$(get mem.idle.r1.alive)\`. Second round of $IDLE_CONNS in the same process: \`$(get mem.idle.r2.holding)\`, VmRSS $(get mem.idle.r2.rss_kb) kB, VmHWM $(get mem.idle.r2.hwm_kb) kB, $(get mem.idle.r2.rss_after_close_kb) kB after close. sealpost log WARN/ERROR lines: $(get mem.idle.problems)."
        echo
        echo "50 MiB test: smtp-source \`-l $BIG_BYTES\` (payload; ~2.6% more on the wire with CRLFs); accepted after $(get mem.big.accept_s) s, at the sink after $(get mem.big.e2e_s) s: $(get mem.big.delivered); sealpost log WARN/ERROR lines: $(get mem.big.problems)."
        echo
    fi
} >"$REPORT"

echo
cat "$REPORT"

if [ "$RESULTS" -eq 1 ]; then
    OUT=$ROOT/bench/RESULTS.md
    BEGIN='<!-- BEGIN relay.sh output (generated; edit outside these markers) -->'
    END='<!-- END relay.sh output -->'
    if [ ! -f "$OUT" ]; then
        printf '# bench/relay.sh results\n\n%s\n%s\n' "$BEGIN" "$END" >"$OUT"
    fi
    if ! grep -qF "$BEGIN" "$OUT"; then printf '\n%s\n%s\n' "$BEGIN" "$END" >>"$OUT"; fi
    /usr/bin/python3 - "$OUT" "$REPORT" "$BEGIN" "$END" <<'PY'
import sys
out, rep, begin, end = sys.argv[1:]
text = open(out).read()
pre, rest = text.split(begin, 1)
_, post = rest.split(end, 1)
open(out, "w").write(pre + begin + "\n" + open(rep).read().rstrip("\n") + "\n" + end + post)
PY
    log "updated $OUT"
fi
