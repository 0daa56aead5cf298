#!/usr/bin/env bash
# bench/config_churn.sh - SMTP acceptance latency while the configuration
# changes (issue 17, item 8): end of DATA -> 250, p50 and p99, first with
# no configuration change ("quiet"), then in the same run while a
# 100,000-user directory CSV is imported through the API and a policy is
# changed every second ("churn"; the import window is also reported on its
# own).
#
# Usage: bench/config_churn.sh [--users N] [--seconds S] [--churn-seconds S]
#                              [--sessions K] [--no-build] [--keep]
#   --users N          users in the imported CSV (default 100000)
#   --seconds S        length of the quiet phase (default 20)
#   --churn-seconds S  length of the churn phase (default 60; the import
#                      starts 2 s into it)
#   --sessions K       concurrent SMTP sessions of the load (default 4, each
#                      pausing 10 ms between messages)
#   --no-build         do not run `cargo build --release -p sealpost`
#   --keep             keep the work directory
# Env: SEALPOST_BIN (default target/release/sealpost, or
#      $CARGO_TARGET_DIR/release/sealpost), SEALPOST_BIN_BEFORE (a second
#      binary, measured first under the label "before", for a before/after
#      comparison in one run), BENCH_DIR (parent of the work directory;
#      default /var/tmp, must not be tmpfs).
#
# The load is bench/config_churn_load.py (one thread per session, 5 KiB
# messages to an external recipient, relayed to smtp-sink). All traffic is
# on 127.0.0.1; every process started here is stopped on exit, by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SEALPOST_BIN=${SEALPOST_BIN:-$TARGET/release/sealpost}
USERS=100000
QUIET=20
CHURN=60
SESSIONS=4
BUILD=1
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --users) USERS=$2; shift 2 ;;
        --seconds) QUIET=$2; shift 2 ;;
        --churn-seconds) CHURN=$2; shift 2 ;;
        --sessions) SESSIONS=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

SMTP_PORT=31025
SINK_PORT=31026
ADMIN_PORT=31081
WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/config-churn.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p sealpost)
fi

echo "users: $USERS, quiet ${QUIET}s, churn ${CHURN}s, $SESSIONS sessions"
python3 - "$USERS" > "$WORK/users.csv" <<'PY'
import sys
n = int(sys.argv[1])
print("address,display_name,department,cost_center")
for k in range(n):
    print(f"user{k}@corp.example,User {k},{['Legal','Sales','Finance','HR'][k % 4]},cc{k % 1000}")
PY

/usr/sbin/smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 1000 > "$WORK/sink.out" 2>&1 &
PIDS+=($!)

api() {
    local method=$1 path=$2
    shift 2
    curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' -X "$method" \
        -H "Authorization: Bearer $KEY" "$@" "http://127.0.0.1:$ADMIN_PORT/api/v1$path"
}

percentiles() { # FILE [FROM TO]: p50 p99 max n of the samples (ms)
    python3 - "$@" <<'PY'
import sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
if len(sys.argv) > 3:
    lo, hi = float(sys.argv[2]), float(sys.argv[3])
    rows = [r for r in rows if lo <= r[0] <= hi]
v = sorted(r[1] * 1000 for r in rows)
if not v:
    print("no samples")
else:
    q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
    print(f"p50 {q(0.50):7.2f} ms  p99 {q(0.99):7.2f} ms  max {v[-1]:8.2f} ms  n {len(v)}")
PY
}

run() { # LABEL BINARY
    local label=$1 bin=$2 dir="$WORK/$1"
    mkdir -p "$dir"
    cat > "$dir/sp.toml" <<TOML
[server]
hostname = "bench.test"
data_dir = "$dir/data"
[smtp]
listen = ["127.0.0.1:$SMTP_PORT"]
relay_networks = ["127.0.0.0/8"]
[relay]
next_hop = "127.0.0.1:$SINK_PORT"
retry_schedule = ["1s"]
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[portal]
listen = "127.0.0.1:0"
[log]
level = "warn"
TOML
    cp "$bin" "$dir/sealpost"
    "$dir/sealpost" serve --config "$dir/sp.toml" > "$dir/sp.out" 2> "$dir/sp.err" &
    local sp=$!
    PIDS+=("$sp")
    for _ in $(seq 1 200); do
        curl -sf "127.0.0.1:$ADMIN_PORT/health" > /dev/null 2>&1 && break
        sleep 0.05
    done
    KEY=$(grep -o 'sp_[A-Za-z0-9_]*' "$dir/sp.out" | head -1)
    [ -n "$KEY" ] || { echo "$label: no API key in $dir/sp.out" >&2; exit 1; }
    local policy='{"narrative": "churn N", "action": "apply_definition", "definition_id": 1,
                   "from": {"kind": "attribute", "attribute": "department", "value": "Legal"},
                   "to": {"kind": "domain", "value": "partner.example"}}'
    api POST /policies -H 'Content-Type: application/json' -d "${policy/N/0}" > /dev/null

    echo "== $label ($bin)"
    python3 "$ROOT/bench/config_churn_load.py" "$SMTP_PORT" "$QUIET" "$dir/quiet.txt" "$SESSIONS"
    echo "quiet:        $(percentiles "$dir/quiet.txt")"

    python3 "$ROOT/bench/config_churn_load.py" "$SMTP_PORT" "$CHURN" "$dir/churn.txt" "$SESSIONS" &
    local load=$!
    local end=$(( $(date +%s) + CHURN ))
    # A policy changed every second for the whole phase: the stored
    # policy read back, its narrative changed, PUT whole.
    python3 - "$ADMIN_PORT" "$KEY" "$end" > "$dir/policy_changes.txt" <<'PY' &
import json, sys, time, urllib.request
port, key, end = sys.argv[1], sys.argv[2], float(sys.argv[3])
url = f"http://127.0.0.1:{port}/api/v1/policies/1"
auth = {"Authorization": f"Bearer {key}"}
stored = json.load(urllib.request.urlopen(urllib.request.Request(url, headers=auth)))
for field in ("id", "status", "created_at", "updated_at"):
    stored.pop(field, None)
n = 0
while time.time() < end:
    n += 1
    stored["narrative"] = f"churn {n}"
    req = urllib.request.Request(url, data=json.dumps(stored).encode(), method="PUT",
                                 headers={**auth, "Content-Type": "application/json"})
    t = time.perf_counter()
    try:
        code = urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        code = f"{e.code} {e.read()[:200]!r}"
    print(f"{code} {time.perf_counter() - t:.4f}", flush=True)
    time.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))
PY
    local churner=$!
    sleep 2
    local t0 t1
    t0=$(date +%s.%N)
    api POST /directory/users/import -H 'Content-Type: text/csv' --data-binary "@$WORK/users.csv" > "$dir/import.txt"
    t1=$(date +%s.%N)
    wait "$load" || echo "$label: the load reported refused messages" >&2
    wait "$churner" || true
    echo "churn (all):  $(percentiles "$dir/churn.txt")"
    echo "during import: $(percentiles "$dir/churn.txt" "$t0" "$t1")"
    echo "import: HTTP $(cut -d' ' -f1 "$dir/import.txt"), $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
    echo "policy changes: $(wc -l < "$dir/policy_changes.txt"), HTTP $(cut -d' ' -f1 "$dir/policy_changes.txt" | sort | uniq -c | tr '\n' ' ')," \
         "p50 $(cut -d' ' -f2 "$dir/policy_changes.txt" | sort -n | awk '{a[NR]=$1} END {printf "%.3f s", a[int(NR/2)+1]}')"
    kill "$sp"
    wait "$sp" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"
if [ -n "${SEALPOST_BIN_BEFORE:-}" ]; then
    run before "$SEALPOST_BIN_BEFORE"
fi
run after "$SEALPOST_BIN"
echo "done: load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %T UTC')"
