#!/usr/bin/env bash
# bench/portal.sh - the recipient portal under load (issue 15, Performance).
#
# In one run, on loopback only:
#   1. message view: `wrk` with 64 connections on the message page of a
#      signed-in session (a ~10 KB text message), and next to it Debian's
#      nginx serving the very same rendered HTML as a static file.
#      Targets: sealpost >= 0.3x nginx's requests/s, p99 <= 20 ms.
#   2. inbox: `wrk` on /inbox of an address with 1,000 live secure messages
#      (the page shows the newest 50; the query pages over all 1,000).
#      Target: p99 <= 50 ms.
#   3. sign-in: N sequential sign-ins (GET the form, POST the password: one
#      argon2id verification each) timed by curl, on their own.
#
# Set-up: a release sealpost (built with `cargo build --release -p sealpost`
# unless --no-build; that takes a few minutes), the aiosmtpd sink of the
# tests (tests/support/sink.py) as its next hop, a policy sending mail from
# corp.example to everyone else by secure delivery (the default definition),
# one message mailed with python's smtplib, its notification read from the
# sink, and the account registered through the portal with curl (GET
# /open/<token> for the form cookie and CSRF token, POST the password). wrk
# then sends the session cookie.
#
# Usage: bench/portal.sh [--duration S] [--sign-ins N] [--no-build] [--no-results] [--keep]
#   --duration S   seconds per wrk run (default 15)
#   --sign-ins N   sequential sign-ins timed (default 6; the portal allows
#                  bursts of 10 password requests per client IP)
#   --no-build     do not run `cargo build --release -p sealpost`
#   --no-results   do not append to bench/RESULTS.md
#   --keep         keep the work directory
#   --perf         record a CPU profile of sealpost (perf record -g) during
#                  its wrk runs (DWARF call graphs; PERF_CALLGRAPH=fp for
#                  smaller files), into the work directory (implies --keep);
#                  read it with `perf report -i DIR/perf-message.data`
# Env: SEALPOST_BIN (default target/release/sealpost, or
#      $CARGO_TARGET_DIR/release/sealpost), BENCH_DIR (default /var/tmp).
#
# wrk and nginx are Debian packages; missing ones are installed with apt-get
# (needs root). Benchmarks are not run by CI, so this is done here rather
# than by scripts/install-test-tools.sh. wrk, nginx and sealpost share the
# machine's cores: the figures are for this machine as a whole.
# Every wait is bounded; every process started here is stopped on exit, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp}
CMDLINE="bench/portal.sh $*"
DURATION=15
SIGN_INS=6
BUILD=1
RESULTS=1
KEEP=0
PERF=0
INBOX=1000
SMTP_PORT=30125
ADMIN_PORT=30181
PORTAL_PORT=30182
NGINX_PORT=30190
PASSWORD="violet-harbour-quietly-sixteen"
RCPT="bob@partner.example"

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift ;;
        --sign-ins) SIGN_INS=$2; shift ;;
        --no-build) BUILD=0 ;;
        --no-results) RESULTS=0 ;;
        --keep) KEEP=1 ;;
        --perf) PERF=1; KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "portal.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[portal.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ prerequisites
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    log "installing Debian packages for the benchmark: ${missing[*]}"
    # The nginx package would start a system nginx on port 80; this
    # benchmark runs its own instance, so services are not started while
    # installing (policy-rc.d, only if there is none already).
    rc_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        rc_policy=/usr/sbin/policy-rc.d
    fi
    install_ok=0
    for attempt in install update-then-install; do
        [ "$attempt" = update-then-install ] && { apt-get update >&2 || true; }
        if DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
            install_ok=1
            break
        fi
    done
    [ -n "$rc_policy" ] && rm -f "$rc_policy"
    [ "$install_ok" -eq 1 ] || die "could not install ${missing[*]}"
fi

if [ -z "${SEALPOST_BIN:-}" ]; then
    SEALPOST_BIN=$ROOT/target/release/sealpost
    [ -n "${CARGO_TARGET_DIR:-}" ] && SEALPOST_BIN=$CARGO_TARGET_DIR/release/sealpost
fi
if [ "$BUILD" -eq 1 ]; then
    log "cargo build --release -p sealpost (a few minutes the first time)"
    (cd "$ROOT" && cargo build --release -p sealpost) >&2
fi
[ -x "$SEALPOST_BIN" ] || die "no sealpost binary at $SEALPOST_BIN (build it or set SEALPOST_BIN)"
for port in $SMTP_PORT $ADMIN_PORT $PORTAL_PORT $NGINX_PORT; do
    [ -z "$(ss -Hltn "( sport = :$port )" 2>/dev/null)" ] || die "port $port is in use"
done

LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
WORK=$(mktemp -d "$BENCH_DIR/sealpost-portal.XXXXXX")
chmod 755 "$WORK"   # nginx's workers (user nobody) read the static page
SP_COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
cp "$SEALPOST_BIN" "$WORK/sealpost.bin"

PIDS=()
cleanup() {
    local rc=$? p i
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for i in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "$KEEP" -eq 1 ] || [ "$rc" -ne 0 ]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() {  # wait_http URL SECONDS
    local i
    for i in $(seq 1 $(($2 * 10))); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------ the next hop
mkdir -p "$WORK/sink"
/usr/bin/python3 "$ROOT/tests/support/sink.py" --listen 127.0.0.1:0 --dir "$WORK/sink" --quiet \
    >"$WORK/sink.out" 2>"$WORK/sink.err" &
PIDS+=($!)
SINK_PORT=
for _ in $(seq 1 100); do
    SINK_PORT=$(awk '/^READY/ {print $2}' "$WORK/sink.out")
    [ -n "$SINK_PORT" ] && break
    sleep 0.1
done
[ -n "$SINK_PORT" ] || die "the sink did not start: $(cat "$WORK/sink.err")"

# ------------------------------------------------------------------ sealpost
BASE="http://localhost:$PORTAL_PORT"
cat >"$WORK/sealpost.toml" <<EOF
[server]
hostname = "bench.test"
data_dir = "$WORK/data"

[smtp]
listen = ["127.0.0.1:$SMTP_PORT"]
relay_networks = ["127.0.0.0/8"]

[domains]
internal = ["corp.example"]

[relay]
next_hop = "127.0.0.1:$SINK_PORT"
internal_next_hop = "127.0.0.1:$SINK_PORT"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[portal]
listen = "127.0.0.1:$PORTAL_PORT"
url = "$BASE"

[vault]
master_key_file = "$WORK/master.key"

[log]
level = "warn"
EOF
"$WORK/sealpost.bin" serve --config "$WORK/sealpost.toml" >"$WORK/sealpost.out" 2>"$WORK/sealpost.err" &
SP_PID=$!
PIDS+=("$SP_PID")
wait_http "http://127.0.0.1:$ADMIN_PORT/health" 30 || die "sealpost did not start: $(tail -5 "$WORK/sealpost.err")"
wait_http "$BASE/sign-in" 10 || die "the portal does not answer"
KEY=$(grep -o 'sp_[0-9a-f]*_[0-9a-f]*' "$WORK/sealpost.out" | head -n1)
[ -n "$KEY" ] || die "no first-run API key in $WORK/sealpost.out"
curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    --data '{"narrative": "bench: everything secure", "action": "apply_definition", "definition_id": 1,
             "from": {"kind": "internal"}, "to": {"kind": "external"}}' \
    "http://127.0.0.1:$ADMIN_PORT/api/v1/policies" >"$WORK/policy.json" ||
    die "could not create the secure policy"

# send_mail COUNT SIZE: COUNT messages of about SIZE bytes of text to $RCPT, one SMTP session.
send_mail() {
    /usr/bin/python3 - "$SMTP_PORT" "$RCPT" "$1" "$2" <<'PY'
import smtplib, sys
port, rcpt, count, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
line = "The quarterly figures are attached below; please read them carefully.\r\n"
body = (line * (size // len(line) + 1))[:size]
with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
    for i in range(count):
        msg = (f"From: alice@corp.example\r\nTo: {rcpt}\r\nSubject: bench message {i}\r\n"
               f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")
        s.sendmail("alice@corp.example", [rcpt], msg.encode())
PY
}

# The token in the newest notification of the sink (quoted-printable decoded).
notification_token() {
    /usr/bin/python3 - "$WORK/sink" <<'PY'
import email, email.policy, glob, re, sys
for path in sorted(glob.glob(sys.argv[1] + "/*.eml"), reverse=True):
    msg = email.message_from_bytes(open(path, "rb").read(), policy=email.policy.default)
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            m = re.search(r"/open/([0-9a-f]{64})", part.get_content())
            if m:
                print(m.group(1))
                sys.exit(0)
sys.exit(1)
PY
}

# csrf_of FILE: the CSRF token of the first form in a page.
csrf_of() { grep -o 'name="csrf" value="[^"]*"' "$1" | head -n1 | sed 's/.*value="//; s/"$//'; }

log "one ~10 KB message to $RCPT, then registration through the portal"
send_mail 1 10240
TOKEN=
for _ in $(seq 1 100); do
    TOKEN=$(notification_token 2>/dev/null || true)
    [ -n "$TOKEN" ] && break
    sleep 0.2
done
[ -n "$TOKEN" ] || die "no notification reached the sink"
JAR=$WORK/cookies
curl -sf -c "$JAR" -b "$JAR" -o "$WORK/open.html" "$BASE/open/$TOKEN" || die "GET /open failed"
CSRF=$(csrf_of "$WORK/open.html")
[ -n "$CSRF" ] || die "no CSRF token on the registration page"
LOCATION=$(curl -s -c "$JAR" -b "$JAR" -o /dev/null -w '%{redirect_url}' -H "Origin: $BASE" \
    --data-urlencode "csrf=$CSRF" --data-urlencode "email=$RCPT" \
    --data-urlencode "password=$PASSWORD" --data-urlencode "confirm=$PASSWORD" \
    "$BASE/open/$TOKEN")
case "$LOCATION" in
    */messages/*) ;;
    *) die "registration did not lead to the message (redirect: ${LOCATION:-none})" ;;
esac
MESSAGE_URL=$BASE${LOCATION#"$BASE"}
# Every cookie the portal set (curl marks HttpOnly ones with a prefix).
COOKIE=$(awk -F'\t' 'NF >= 7 { printf "%s%s=%s", sep, $6, $7; sep = "; " }' "$JAR")
[ -n "$COOKIE" ] || die "no session cookie"

curl -sf -H "Cookie: $COOKIE" -o "$WORK/message.html" "$MESSAGE_URL" || die "the message page failed"
PAGE_BYTES=$(stat -c %s "$WORK/message.html")
grep -q "quarterly figures" "$WORK/message.html" || die "the message page does not show the message"
log "message page $MESSAGE_URL: $PAGE_BYTES bytes"

# ------------------------------------------------------------------ nginx, same page
mkdir -p "$WORK/www" "$WORK/nginx"
cp "$WORK/message.html" "$WORK/www/message.html"
chmod -R a+rX "$WORK/www"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        default_type text/html;
    }
}
EOF
/usr/sbin/nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" 2>"$WORK/nginx/stderr.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$NGINX_PORT/message.html" 10 || die "nginx did not start: $(cat "$WORK/nginx/stderr.log")"

# cpu_ticks PID...: user + system CPU time of the processes (and, for
# nginx's master, its workers), in clock ticks.
cpu_ticks() {
    local pids=("$@") p total=0
    for p in "$@"; do
        pids+=($(pgrep -P "$p" 2>/dev/null || true))
    done
    for p in "${pids[@]}"; do
        [ -r "/proc/$p/stat" ] || continue
        # Fields 14 and 15 (utime, stime), counted after the ")" that ends
        # the command name.
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# run_wrk NAME URL [COOKIE]: wrk -c64 for $DURATION s; records req/s, p99
# (ms) and the server's CPU time per request (microseconds).
declare -A RPS P99 P50 ERRS CPU_US
run_wrk() {
    local name=$1 url=$2 out=$WORK/wrk-$1.txt
    local server=$SP_PID
    [ "$name" = nginx ] && server=$NGINX_PID
    local ticks_before
    ticks_before=$(cpu_ticks "$server")
    local args=(-t2 -c64 -d"${DURATION}s" --latency --timeout 5s)
    [ -n "${3:-}" ] && args+=(-H "Cookie: $3")
    log "wrk -t2 -c64 -d${DURATION}s --latency $url"
    local perf_pid=
    if [ "$PERF" -eq 1 ] && [ "$name" != nginx ]; then
        perf record -q -F 499 --call-graph "${PERF_CALLGRAPH:-dwarf,16384}" -p "$SP_PID" -o "$WORK/perf-$name.data" 2>"$WORK/perf-$name.err" &
        perf_pid=$!
    fi
    timeout $((DURATION + 30)) wrk "${args[@]}" "$url" >"$out" || die "wrk failed on $name: $(cat "$out")"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
    local ticks=$(($(cpu_ticks "$server") - ticks_before))
    local requests
    requests=$(awk '/requests in/ {print $1}' "$out")
    CPU_US[$name]=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "?" }')
    RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    P50[$name]=$(awk '$1 == "50%" {print $2}' "$out")
    P99[$name]=$(awk '$1 == "99%" {print $2}' "$out")
    ERRS[$name]=$(awk '/Non-2xx or 3xx responses:/ {print $NF} /Socket errors/ {print}' "$out" | paste -sd' ' -)
    [ -n "${RPS[$name]}" ] || die "no result from wrk on $name: $(cat "$out")"
}
# to_ms 1.23ms|456.00us|1.02s -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}

run_wrk nginx "http://127.0.0.1:$NGINX_PORT/message.html"
run_wrk message "$MESSAGE_URL" "$COOKIE"

# ------------------------------------------------------------------ inbox of 1,000
log "$((INBOX - 1)) more messages to $RCPT for the inbox"
send_mail $((INBOX - 1)) 2000
curl -sf -H "Cookie: $COOKIE" -o "$WORK/inbox.html" "$BASE/inbox" || die "the inbox failed"
ROWS=$(grep -c 'bench message' "$WORK/inbox.html" || true)
log "inbox page: $(stat -c %s "$WORK/inbox.html") bytes, $ROWS rows shown"
run_wrk inbox "$BASE/inbox" "$COOKIE"

# ------------------------------------------------------------------ sign-in cost
log "$SIGN_INS sequential sign-ins"
SIGNIN_TIMES=()
for i in $(seq 1 "$SIGN_INS"); do
    jar=$WORK/signin-$i
    curl -sf -c "$jar" -b "$jar" -o "$WORK/signin.html" "$BASE/sign-in" || die "GET /sign-in failed"
    csrf=$(csrf_of "$WORK/signin.html")
    t=$(curl -s -c "$jar" -b "$jar" -o /dev/null -w '%{http_code} %{time_total}' -H "Origin: $BASE" \
        --data-urlencode "csrf=$csrf" --data-urlencode "email=$RCPT" \
        --data-urlencode "password=$PASSWORD" "$BASE/sign-in")
    case "$t" in 303\ *|302\ *) ;; *) die "sign-in $i answered $t" ;; esac
    SIGNIN_TIMES+=("${t#* }")
done
SIGNIN=$(printf '%s\n' "${SIGNIN_TIMES[@]}" | sort -n | awk '{ a[NR] = $1 * 1000 } END {
    printf "min %.0f ms, median %.0f ms, max %.0f ms", a[1], a[int((NR + 1) / 2)], a[NR] }')

# ------------------------------------------------------------------ report
NGINX_RPS=${RPS[nginx]}
RATIO=$(awk -v a="${RPS[message]}" -v b="$NGINX_RPS" 'BEGIN { printf "%.3f", a / b }')
MSG_P99=$(to_ms "${P99[message]}")
INBOX_P99=$(to_ms "${P99[inbox]}")
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == "le") ? v <= t : v >= t; print ok ? "met" : "NOT met" }'; }
MACHINE="$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
WHEN=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_END=$(cut -d' ' -f1 /proc/loadavg)
TABLE=$(cat <<EOF
| run | requests/s | p50 | p99 | server CPU per request | errors |
|---|---:|---:|---:|---:|---|
| nginx, the same page as a static file ($PAGE_BYTES bytes) | $NGINX_RPS | ${P50[nginx]} | ${P99[nginx]} | ${CPU_US[nginx]} µs | ${ERRS[nginx]:-none} |
| sealpost message page (signed in) | ${RPS[message]} | ${P50[message]} | ${P99[message]} | ${CPU_US[message]} µs | ${ERRS[message]:-none} |
| sealpost inbox, $INBOX messages ($ROWS rows on the page) | ${RPS[inbox]} | ${P50[inbox]} | ${P99[inbox]} | ${CPU_US[inbox]} µs | ${ERRS[inbox]:-none} |

- message page: $RATIO x nginx (target >= 0.3: $(verdict "$RATIO" 0.3 ge)); p99 $MSG_P99 ms (target <= 20: $(verdict "$MSG_P99" 20 le))
- inbox of $INBOX: p99 $INBOX_P99 ms (target <= 50: $(verdict "$INBOX_P99" 50 le))
- sign-in (GET form excluded; POST with one argon2id verification), $SIGN_INS sequential: $SIGNIN
EOF
)
printf '\n%s\n\n' "$TABLE"

if [ "$RESULTS" -eq 1 ]; then
    heading=
    grep -q '^## portal$' "$ROOT/bench/RESULTS.md" || heading=$'\n## portal\n'
    {
        printf '%s\n' "$heading"
        printf '### %s, commit %s\n\n' "$WHEN" "$SP_COMMIT"
        bt='`'
        printf 'Command: %s%s%s %s\n' "$bt" "$CMDLINE" "$bt" "(wrk -t2 -c64 -d${DURATION}s, loopback; wrk, nginx and sealpost share the machine)."
        printf 'Machine: %s; load average (1 min) %s at the start, %s at the end.\n\n' "$MACHINE" "$LOAD_START" "$LOAD_END"
        printf '%s\n' "$TABLE"
    } >>"$ROOT/bench/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
