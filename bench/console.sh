#!/usr/bin/env bash
# bench/console.sh - the administration console at scale (issue 16, Performance).
#
# In one run, on loopback only, against a database seeded with
# 10,000 Secure Messaging policies and 1,000,000 accepted messages (about
# 2,000,000 recipients) spread over the last 7 days:
#   1. policy list: `wrk` (1 thread, 1 connection) on the console's Secure
#      Messaging list of a signed-in administrator: the first page, and a
#      page sorted by hits. Target: p99 <= 100 ms.
#   2. tracking search over the 1,000,000 messages: `wrk` on the console's
#      tracking search (when the console has it) and on
#      `GET /api/v1/messages`, by a frequent sender and by a rare subject.
#      Target: p99 <= 100 ms.
#   3. impact preview over the 1,000,000 envelopes: `POST
#      /api/v1/policies/preview` of a draft policy, timed by curl, 3 runs.
#      Target: <= 5 s.
# wrk measures at the client on loopback: its latency is the server's time
# plus a loopback round trip.
#
# Set-up: a release sealpost (built unless --no-build), started once to
# make its database, first administrator and API key; stopped; the
# policies and messages written straight into its SQLite database with the
# sqlite3 shell (a recursive CTE, about a minute); started again; the first
# administrator signed in with curl (the one-time password from the
# banner, then replaced, as the console demands).
#
# Usage: bench/console.sh [--duration S] [--messages N] [--policies N] [--no-build] [--no-results] [--keep]
#   --duration S    seconds per wrk run (default 10)
#   --messages N    messages seeded (default 1000000)
#   --policies N    policies seeded (default 10000)
#   --no-build      do not run `cargo build --release -p sealpost`
#   --no-results    do not append to bench/RESULTS.md
#   --keep          keep the work directory
# Env: SEALPOST_BIN (default target/release/sealpost, or
#      $CARGO_TARGET_DIR/release/sealpost), BENCH_DIR (default /var/tmp).
#
# wrk and sqlite3 are Debian packages; missing ones are installed with
# apt-get (needs root). Every wait is bounded; every process started here
# is stopped on exit, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp}
CMDLINE="bench/console.sh $*"
DURATION=10
MESSAGES=1000000
POLICIES=10000
BUILD=1
RESULTS=1
KEEP=0
SMTP_PORT=30225
ADMIN_PORT=30281
PORTAL_PORT=30282
PASSWORD="granite-lantern-orbit-meadow"

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift ;;
        --messages) MESSAGES=$2; shift ;;
        --policies) POLICIES=$2; shift ;;
        --no-build) BUILD=0 ;;
        --no-results) RESULTS=0 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "console.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[console.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        die "could not install ${missing[*]}"
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
for port in $SMTP_PORT $ADMIN_PORT $PORTAL_PORT; do
    [ -z "$(ss -Hltn "( sport = :$port )" 2>/dev/null)" ] || die "port $port is in use"
done

WORK=$(mktemp -d "$BENCH_DIR/sealpost-console.XXXXXX")
SP_COMMIT=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
cp "$SEALPOST_BIN" "$WORK/sealpost.bin"
SP_PID=

cleanup() {
    local rc=$? i
    if [ -n "$SP_PID" ]; then
        kill -TERM "$SP_PID" 2>/dev/null || true
        for i in $(seq 1 100); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SP_PID" 2>/dev/null || true
    fi
    if [ "$KEEP" -eq 1 ] || [ "$rc" -ne 0 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
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

ADMIN=http://localhost:$ADMIN_PORT
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
next_hop = "127.0.0.1:9"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
url = "$ADMIN"

[portal]
listen = "127.0.0.1:$PORTAL_PORT"
url = "http://localhost:$PORTAL_PORT"

[vault]
master_key_file = "$WORK/master.key"

[log]
level = "warn"
EOF

start() {
    "$WORK/sealpost.bin" serve --config "$WORK/sealpost.toml" >>"$WORK/sealpost.out" 2>>"$WORK/sealpost.err" &
    SP_PID=$!
    wait_http "http://127.0.0.1:$ADMIN_PORT/health" 120 || die "sealpost did not start: $(tail -5 "$WORK/sealpost.err")"
}
stop() {
    kill -TERM "$SP_PID"
    local i
    for i in $(seq 1 100); do kill -0 "$SP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SP_PID" 2>/dev/null && die "sealpost did not stop"
    SP_PID=
}

log "first start: database, first administrator, API key"
start
KEY=$(grep -o 'sp_[0-9a-f]*_[0-9a-f]*' "$WORK/sealpost.out" | head -n1)
ONE_TIME=$(awk '/one-time password/ {getline; print $1; exit}' "$WORK/sealpost.out")
[ -n "$KEY" ] || die "no first-run API key in $WORK/sealpost.out"
[ -n "$ONE_TIME" ] || die "no first-run administrator in $WORK/sealpost.out"
stop

DB=$WORK/data/sealpost.db
log "seeding $POLICIES policies and $MESSAGES messages over 7 days into $DB"
SEED_START=$(date +%s)
NOW_MS=$(($(date +%s) * 1000))
WEEK_MS=$((7 * 86400 * 1000))
sqlite3 "$DB" <<SQL
PRAGMA synchronous = OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $POLICIES - 1)
INSERT INTO policies (doc, created_at, updated_at)
SELECT json_object('type', 'secure_messaging', 'narrative', 'Bench policy ' || i,
        'action', 'apply_definition', 'definition_id', 1,
        'from', json_object('kind', 'internal', 'based_on', 'envelope'),
        'to', json_object('kind', 'domain', 'value', 'd' || i || '.example'),
        'enabled', json('true'), 'override', json('false'), 'bidirectional', json('false'),
        'source_ips', json('[]')), $NOW_MS, $NOW_MS
FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $MESSAGES - 1)
INSERT INTO messages (id, received_at, sender, client_ip, protocol, size, body_8bit, smtputf8,
                      kind, expires_at, content, spooled, has_content, subject)
SELECT printf('%016X', (($NOW_MS - $WEEK_MS + i * ($WEEK_MS / $MESSAGES)) << 20) | (i & 1048575)),
       $NOW_MS - $WEEK_MS + i * ($WEEK_MS / $MESSAGES),
       'user' || (i % 500) || '@corp.example', '10.0.' || (i % 200) || '.' || (i % 250),
       'ESMTP', 2048, 0, 0, 'mail', $NOW_MS + 30 * 86400000, NULL, 0, 0,
       'Quarterly report ' || i
FROM n;
INSERT INTO recipients (message_id, idx, address, notify, route, policy_id, status, attempts,
                        next_attempt_at, updated_at)
SELECT m.id, k.idx, 'r' || k.idx || '@d' || ((m.rowid * 7 + k.idx) % ($POLICIES * 2)) || '.example', 0,
       'relay', NULL, 'delivered', 1, m.received_at, m.received_at
FROM messages m JOIN (SELECT 0 AS idx UNION ALL SELECT 1) k ON k.idx <= m.rowid % 2
WHERE m.kind = 'mail';
COMMIT;
ANALYZE;
SQL
SEED_S=$(($(date +%s) - SEED_START))
ROWS=$(sqlite3 "$DB" "SELECT (SELECT COUNT(*) FROM messages) || ' messages, ' || (SELECT COUNT(*) FROM recipients) || ' recipients, ' || (SELECT COUNT(*) FROM policies) || ' policies'")
log "seeded in ${SEED_S}s: $ROWS"

log "second start with the seeded database"
start

# csrf_of FILE: the CSRF token of the first form in a page.
csrf_of() { grep -o 'name="csrf" value="[^"]*"' "$1" | head -n1 | sed 's/.*value="//; s/"$//'; }
JAR=$WORK/cookies
curl -sf -c "$JAR" -b "$JAR" -o "$WORK/sign-in.html" "$ADMIN/console/sign-in" || die "GET sign-in"
curl -s -c "$JAR" -b "$JAR" -o /dev/null -H "Origin: $ADMIN" \
    --data-urlencode "csrf=$(csrf_of "$WORK/sign-in.html")" --data-urlencode "name=admin" \
    --data-urlencode "password=$ONE_TIME" "$ADMIN/console/sign-in"
curl -sf -c "$JAR" -b "$JAR" -o "$WORK/password.html" "$ADMIN/console/password" || die "GET password"
curl -s -c "$JAR" -b "$JAR" -o /dev/null -H "Origin: $ADMIN" \
    --data-urlencode "csrf=$(csrf_of "$WORK/password.html")" --data-urlencode "current=$ONE_TIME" \
    --data-urlencode "password=$PASSWORD" --data-urlencode "confirm=$PASSWORD" "$ADMIN/console/password"
SESSION=$(awk '$6 == "sealpost_console" {print $7}' "$JAR")
[ -n "$SESSION" ] || die "no console session (see $JAR)"
COOKIE="sealpost_console=$SESSION"
status=$(curl -s -o "$WORK/list.html" -w '%{http_code}' -H "Cookie: $COOKIE" "$ADMIN/console/policies/secure-messaging")
[ "$status" = 200 ] || die "the policy list answered $status"
grep -q "of $POLICIES" "$WORK/list.html" || die "the list does not show $POLICIES policies"

declare -A P50 P99 RPS ERRS
run_wrk() {  # run_wrk NAME URL HEADER
    local name=$1 url=$2 out=$WORK/wrk-$1.txt
    log "wrk -t1 -c1 -d${DURATION}s --latency $url"
    timeout $((DURATION + 60)) wrk -t1 -c1 -d"${DURATION}s" --latency --timeout 10s -H "$3" "$url" >"$out" ||
        die "wrk failed on $name: $(cat "$out")"
    RPS[$name]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    P50[$name]=$(awk '$1 == "50%" {print $2}' "$out")
    P99[$name]=$(awk '$1 == "99%" {print $2}' "$out")
    ERRS[$name]=$(awk '/Non-2xx or 3xx responses:/ {print $NF} /Socket errors/ {print}' "$out" | paste -sd' ' -)
    [ -n "${RPS[$name]}" ] || die "no result from wrk on $name: $(cat "$out")"
}
to_ms() {  # wrk's 12.34ms / 1.20s / 850.00us -> milliseconds
    awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 } else { sub(/s$/, "", v); print v * 1000 } }'
}
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t) ? "met" : "NOT met" }'; }

run_wrk list "$ADMIN/console/policies/secure-messaging" "Cookie: $COOKIE"
run_wrk list_hits "$ADMIN/console/policies/secure-messaging?sort=hits&dir=desc&page=100" "Cookie: $COOKIE"
TRACKING_ROWS=()
if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $COOKIE" "$ADMIN/console/tracking")" = 200 ]; then
    run_wrk track_console "$ADMIN/console/tracking?from=user42%40corp.example" "Cookie: $COOKIE"
    run_wrk track_console_rare "$ADMIN/console/tracking?subject=Quarterly+report+4242" "Cookie: $COOKIE"
    TRACKING_ROWS+=(track_console track_console_rare)
fi
run_wrk track_api "http://127.0.0.1:$ADMIN_PORT/api/v1/messages?from=user42%40corp.example" "Authorization: Bearer $KEY"
run_wrk track_api_rare "http://127.0.0.1:$ADMIN_PORT/api/v1/messages?subject=Quarterly%20report%204242" "Authorization: Bearer $KEY"

DRAFT='{"policy": {"narrative": "bench draft", "action": "apply_definition", "definition_id": 1,
        "from": {"kind": "internal"}, "to": {"kind": "domain", "value": "d'$((POLICIES + 42))'.example"}}}'
PREVIEW_TIMES=()
for run in 1 2 3; do
    t=$(curl -s -o "$WORK/preview-$run.json" -w '%{http_code} %{time_total}' -X POST \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --max-time 120 \
        --data "$DRAFT" "http://127.0.0.1:$ADMIN_PORT/api/v1/policies/preview")
    [ "${t%% *}" = 200 ] || die "the preview answered ${t%% *}: $(cat "$WORK/preview-$run.json")"
    PREVIEW_TIMES+=("${t#* }")
    log "preview run $run: ${t#* } s"
done
PREVIEW_MAX=$(printf '%s\n' "${PREVIEW_TIMES[@]}" | sort -g | tail -n1)
REPLAYED=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["messages"], "messages,", d["recipients"], "recipients,", d["changed_recipients"], "would change")' "$WORK/preview-1.json")

SP_RSS=$(awk '/VmHWM/ {print $2 " " $3}' "/proc/$SP_PID/status")
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
declare -A LABEL=(
    [list]="console policy list, first page"
    [list_hits]="console policy list, sorted by hits, page 100"
    [track_console]="console tracking search, frequent sender"
    [track_console_rare]="console tracking search, rare subject"
    [track_api]="API GET /messages, frequent sender"
    [track_api_rare]="API GET /messages, rare subject"
)
row() { echo "| ${LABEL[$1]} | ${RPS[$1]} | ${P50[$1]} | ${P99[$1]} | ${ERRS[$1]:-none} |"; }
REPORT=$(cat <<EOF

### console at scale: $(date -u +%Y-%m-%d) (commit $SP_COMMIT)

Command: \`$CMDLINE\`. Machine: $(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM, shared by sealpost, wrk and curl.
Database: $ROWS (seeded in ${SEED_S} s). wrk: 1 thread, 1 connection (so each latency is the server's time for one request plus a loopback round trip, not queueing), ${DURATION} s each.

| what | req/s | p50 | p99 | errors |
|---|---|---|---|---|
$(row list)
$(row list_hits)
$(for r in "${TRACKING_ROWS[@]}"; do row "$r"; done)
$(row track_api)
$(row track_api_rare)

- policy list ($POLICIES policies): p99 $(to_ms "${P99[list]}") ms, sorted by hits p99 $(to_ms "${P99[list_hits]}") ms (target <= 100: $(verdict "$(to_ms "${P99[list]}")" 100), $(verdict "$(to_ms "${P99[list_hits]}")" 100))
- tracking search over $MESSAGES messages (API, frequent sender): p99 $(to_ms "${P99[track_api]}") ms; rare subject: p99 $(to_ms "${P99[track_api_rare]}") ms (target <= 100: $(verdict "$(to_ms "${P99[track_api]}")" 100), $(verdict "$(to_ms "${P99[track_api_rare]}")" 100))
- impact preview over $REPLAYED: ${PREVIEW_TIMES[*]} s (target <= 5 s: $(verdict "$PREVIEW_MAX" 5))
- sealpost peak RSS: $SP_RSS
EOF
)
echo "$REPORT"
if [ "$RESULTS" -eq 1 ]; then
    echo "$REPORT" >>"$ROOT/bench/RESULTS.md"
    log "appended to bench/RESULTS.md"
fi
