# bench_env.sh - the set-up bench/ab.sh and bench/cost.sh share, sourced
# by both: a work directory, one sealpost configuration relaying to one
# smtp-sink, on fixed loopback ports (30025 SMTP, 30026 sink, 30081 admin).
#
#   bench_setup PREFIX LOG_LEVEL   sets $work, writes $work/sp.toml, starts
#                                  the sink, and cleans both up on exit
#   bench_start BINARY             copies BINARY into $work and starts it on
#                                  a fresh data directory; sets $sp (its pid)
#   bench_delivered                sealpost's delivered counter

bench_setup() {
    work=$(mktemp -d "/var/tmp/$1.XXXXXX")
    sink_pid=""
    trap bench_cleanup EXIT
    cat > "$work/sp.toml" <<TOML
[server]
hostname = "bench.test"
data_dir = "$work/data"
[smtp]
listen = ["127.0.0.1:30025"]
relay_networks = ["127.0.0.0/8"]
[relay]
next_hop = "127.0.0.1:30026"
retry_schedule = ["1s"]
[admin]
listen = "127.0.0.1:30081"
[portal]
listen = "127.0.0.1:0"
[log]
level = "$2"
TOML
    /usr/sbin/smtp-sink -u nobody -c 127.0.0.1:30026 1000 > "$work/sink.out" 2>&1 &
    sink_pid=$!
    sleep 0.3
}

bench_cleanup() {
    [ -n "$sink_pid" ] && kill "$sink_pid" 2> /dev/null || true
    pkill -f "$work/sealpost-run serve" 2> /dev/null || true
    rm -rf "$work"
}

bench_start() {
    rm -rf "$work/data"
    cp "$1" "$work/sealpost-run"
    "$work/sealpost-run" serve --config "$work/sp.toml" > "$work/sp.out" 2> "$work/sp.err" &
    sp=$!
    for _ in $(seq 1 100); do
        curl -sf localhost:30081/health > /dev/null 2>&1 && return 0
        sleep 0.05
    done
}

bench_delivered() {
    curl -s localhost:30081/metrics | awk '/^sealpost_delivery_delivered_total/ {print $2}'
}
