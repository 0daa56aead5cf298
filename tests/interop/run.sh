#!/usr/bin/env bash
# tests/interop/run.sh - interoperability tests: sealpost with Debian's Postfix.
#
# Two deployment shapes (see docs/postfix.md):
#   1. smart host:      swaks -> Postfix (relayhost = [127.0.0.1]:<sealpost>)
#                                -> sealpost -> sink
#   2. content filter:  swaks (from 127.0.0.2) -> Postfix
#                                (content_filter = smtp:[127.0.0.1]:<sealpost>,
#                                 smtp_send_xforward_command = yes)
#                       -> sealpost (xforward_hosts = 127.0.0.1/32)
#                       -> Postfix re-injection smtpd (127.0.0.1:<port>)
#                       -> Postfix relayhost = the sink
#
# Each Postfix is a private instance under a temporary directory (own
# config_directory, queue_directory, data_directory, maillog_file) with its
# smtpd on a random loopback port; port 25 is never bound and the system's
# /etc/postfix instance is not touched. All traffic is on 127.0.0.0/8.
#
# Needs: root (Postfix's master runs as root), Debian 12 packages postfix,
# swaks and python3-aiosmtpd (scripts/install-test-tools.sh installs them).
#
# Environment:
#   SEALPOST_BIN      use this sealpost binary instead of `cargo build -p sealpost`
#   CARGO_TARGET_DIR  honoured when building
#   INTEROP_KEEP=1    keep the work directory (logs, queues, sink files) on success
#   INTEROP_POSTFIX_DEBUG=1  Postfix logs every SMTP dialogue (debug_peer_list)
#
# Exit status 0 iff every check passed. The last line is always
#   interop: N passed, M failed
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3                 # Debian's python: has aiosmtpd
HELPER="$HERE/interop.py"
SINK_PY="$ROOT/tests/support/sink.py"

PASSED=0
FAILED=0
WORK=""
PIDS=()            # sealpost and sink processes we started
POSTFIX_DIRS=()    # config directories of Postfix instances we started
STARTED_AT=$(date +%s)

log()  { printf '%s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); log "ok   - $*"; }
fail() { FAILED=$((FAILED + 1)); log "FAIL - $*"; }

# check "description" command... : runs the command, indents its output,
# and counts a pass or a failure by its exit status.
check() {
    local what=$1 out rc
    shift
    out=$("$@" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/       /'
    if [ "$rc" -eq 0 ]; then pass "$what"; else fail "$what"; fi
    return "$rc"
}

helper() { "$PY" "$HELPER" "$@"; }

# ---------------------------------------------------------------- cleanup

stop_postfix() {
    local cfg=$1 qdir pid i
    qdir=$(postconf -c "$cfg" -h queue_directory 2>/dev/null) || return 0
    pid=$(tr -dc '0-9' <"$qdir/pid/master.pid" 2>/dev/null || true)
    postfix -c "$cfg" stop >/dev/null 2>&1 || true
    if [ -n "$pid" ]; then
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.2
        done
        log "postfix master $pid ($cfg) did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local d p
    trap - EXIT INT TERM
    for d in "${POSTFIX_DIRS[@]}"; do stop_postfix "$d"; done
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$FAILED" -eq 0 ] && [ "${INTEROP_KEEP:-0}" != 1 ]; then
            rm -rf "$WORK"
        else
            log "work directory kept: $WORK"
        fi
    fi
    log "interop: $PASSED passed, $FAILED failed ($(( $(date +%s) - STARTED_AT ))s)"
    if [ "$FAILED" -ne 0 ] || [ "$PASSED" -eq 0 ]; then exit 1; fi
    exit 0
}
trap cleanup EXIT
trap 'log "interrupted"; FAILED=$((FAILED + 1)); exit 130' INT TERM

# Print the tail of the logs of one shape after a failure.
dump_logs() {
    local dir=$1 f
    for f in "$dir"/sealpost.err "$dir"/sink.err "$dir"/postfix/maillog; do
        [ -s "$f" ] || continue
        log "------- last 40 lines of $f"
        tail -n 40 "$f" | sed 's/^/  | /'
    done
}

# ---------------------------------------------------------------- prerequisites

preflight() {
    local ok=1
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root (a private Postfix instance is started with 'postfix -c DIR start')"
        ok=0
    fi
    for t in postfix postconf postqueue swaks; do
        command -v "$t" >/dev/null 2>&1 || { log "missing: $t"; ok=0; }
    done
    if ! "$PY" -c 'import aiosmtpd' 2>/dev/null; then
        log "missing: python3-aiosmtpd for $PY"
        ok=0
    fi
    if [ "$ok" -ne 1 ]; then
        log "run scripts/install-test-tools.sh (as root) first"
        fail "prerequisites"
        exit 1
    fi
}

build_sealpost() {
    if [ -n "${SEALPOST_BIN:-}" ]; then
        BIN=$SEALPOST_BIN
    else
        log "building sealpost (cargo build -p sealpost)"
        if ! (cd "$ROOT" && timeout 1800 cargo build -q -p sealpost); then
            fail "cargo build -p sealpost"
            exit 1
        fi
        local target=${CARGO_TARGET_DIR:-target}
        case $target in /*) ;; *) target="$ROOT/$target" ;; esac
        BIN="$target/debug/sealpost"
    fi
    if [ ! -x "$BIN" ]; then
        fail "sealpost binary $BIN is not executable"
        exit 1
    fi
    log "sealpost binary: $BIN"
}

# ---------------------------------------------------------------- processes

# start_sink DIR -> sets SINK_PORT
start_sink() {
    local dir=$1
    mkdir -p "$dir/sink"
    "$PY" "$SINK_PY" --listen 127.0.0.1:0 --dir "$dir/sink" --hostname sink.test \
        >"$dir/sink.out" 2>"$dir/sink.err" </dev/null &
    PIDS+=($!)
    SINK_PORT=$(helper wait-line "$dir/sink.out" '^READY (\d+)' 20 "$!") || {
        fail "sink did not start (see $dir/sink.err)"
        return 1
    }
}

# start_sealpost DIR CONFIG -> sets SP_PORT, SP_ADMIN
start_sealpost() {
    local dir=$1 config=$2
    # SEALPOST_<SECTION>_<KEY> variables would override the file: drop them.
    local unset=() v
    for v in $(compgen -e); do
        case $v in SEALPOST_SERVER_* | SEALPOST_DATABASE_* | SEALPOST_SMTP_* | SEALPOST_DOMAINS_* | \
                   SEALPOST_RELAY_* | SEALPOST_ADMIN_* | SEALPOST_LOG_* | SEALPOST_CONFIG) unset+=(-u "$v") ;;
        esac
    done
    env "${unset[@]}" NO_COLOR=1 "$BIN" serve --config "$config" \
        >"$dir/sealpost.out" 2>"$dir/sealpost.err" </dev/null &
    PIDS+=($!)
    SP_PORT=$(helper wait-line "$dir/sealpost.out" '^\s*SMTP:\s+127\.0\.0\.1:(\d+)' 30 "$!") \
        && SP_ADMIN=$(helper wait-line "$dir/sealpost.out" '^\s*admin:\s+http://(127\.0\.0\.1:\d+)' 5) \
        || {
            fail "sealpost did not start (see $dir/sealpost.err)"
            tail -n 20 "$dir/sealpost.err" | sed 's/^/  | /'
            return 1
        }
}

# setup_postfix DIR MYHOSTNAME SMTPD_PORT
# A private instance in DIR/{etc,queue,data}, logging to DIR/maillog, built
# from Debian's own master.cf (services unchrooted, the port-25 smtpd
# replaced by one on 127.0.0.1:SMTPD_PORT) and a main.cf written here.
setup_postfix() {
    local dir=$1 name=$2 port=$3
    mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
    chmod 0755 "$dir" "$dir/etc" "$dir/queue"
    chown postfix "$dir/data"
    cp /etc/postfix/master.cf "$dir/etc/master.cf"
    cat >"$dir/etc/main.cf" <<EOF
# private Postfix instance for sealpost's interop test
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
syslog_name = $name
myhostname = $name
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
biff = no
# Debian's default main.cf has smtp_tls_security_level = may: keep it, so
# Postfix uses STARTTLS towards sealpost as a stock install would.
smtp_tls_security_level = may
smtp_tls_loglevel = 1
# retry quickly if a hop is briefly unavailable
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
EOF
    if [ "${INTEROP_POSTFIX_DEBUG:-0}" = 1 ]; then
        # log the whole SMTP dialogue with every loopback peer (XFORWARD etc.)
        printf 'debug_peer_list = 127.0.0.0/8\ndebug_peer_level = 2\n' >>"$dir/etc/main.cf"
    fi
    postconf -c "$dir/etc" -MX smtp/inet \
        && postconf -c "$dir/etc" -F '*/*/chroot = n' \
        && postconf -c "$dir/etc" -Me "127.0.0.1:$port/inet = 127.0.0.1:$port inet n - n - - smtpd" \
        || { fail "postconf: set up the private instance in $dir"; return 1; }
    # no chroot (nothing to populate), no port 25; the smtpd on 127.0.0.1:$port
}

# start_postfix DIR SMTPD_PORT
start_postfix() {
    local dir=$1 port=$2 i
    if ! postfix -c "$dir/etc" check >"$dir/postfix-check.out" 2>&1; then
        fail "postfix -c $dir/etc check"
        sed 's/^/  | /' "$dir/postfix-check.out"
        return 1
    fi
    POSTFIX_DIRS+=("$dir/etc")
    if ! postfix -c "$dir/etc" start >"$dir/postfix-start.out" 2>&1; then
        fail "postfix -c $dir/etc start"
        sed 's/^/  | /' "$dir/postfix-start.out"
        return 1
    fi
    # wait until the smtpd port accepts connections
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "postfix smtpd did not listen on 127.0.0.1:$port"
    return 1
}

queue_files() { find "$1/queue/incoming" "$1/queue/active" "$1/queue/deferred" "$1/queue/hold" -type f 2>/dev/null | wc -l; }

wait_postfix_queue_empty() {
    local dir=$1 i
    for i in $(seq 1 100); do
        [ "$(queue_files "$dir")" -eq 0 ] && return 0
        sleep 0.2
    done
    log "postfix queue in $dir not empty after 20s:"
    postqueue -c "$dir/etc" -p 2>&1 | sed 's/^/  | /'
    return 1
}

swaks_send() {
    # swaks_send SERVER_PORT WIRE_FILE FROM TO [swaks options...]
    local port=$1 wire=$2 from=$3 to=$4
    shift 4
    timeout 120 swaks --server 127.0.0.1 --port "$port" --helo interop-client.test \
        --from "$from" --to "$to" --no-data-fixup --data "@$wire" --suppress-data --timeout 60 "$@"
}

# ================================================================ shape 1

shape_smarthost() {
    local S="$WORK/smarthost" failed_before=$FAILED
    log ""
    log "# shape 1: Postfix relayhost = [127.0.0.1]:<sealpost> (smart host)"
    mkdir -p "$S"
    start_sink "$S" || return
    cat >"$S/sealpost.toml" <<EOF
[server]
hostname = "sealpost.test"
data_dir = "$S/sealpost-data"

[smtp]
listen = ["127.0.0.1:0"]
relay_networks = ["127.0.0.0/8"]

[relay]
next_hop = "127.0.0.1:$SINK_PORT"
retry_schedule = ["1s", "2s", "5s"]

[admin]
listen = "127.0.0.1:0"

[portal]
listen = "127.0.0.1:0"
EOF
    start_sealpost "$S" "$S/sealpost.toml" || return
    local pf_port
    pf_port=$(helper free-port)
    setup_postfix "$S/postfix" pf-smarthost.test "$pf_port" || return
    postconf -c "$S/postfix/etc" -e "relayhost = [127.0.0.1]:$SP_PORT" || { fail "postconf: relayhost"; return; }
    start_postfix "$S/postfix" "$pf_port" || { dump_logs "$S"; return; }
    log "sink 127.0.0.1:$SINK_PORT, sealpost 127.0.0.1:$SP_PORT (admin $SP_ADMIN), postfix smtpd 127.0.0.1:$pf_port"

    local M="$S/msgs"
    mkdir -p "$M"
    helper make-message --kind plain --out "$M/plain.eml" --wire "$M/plain.wire" \
        --from plain@sender.test --to bob@example.net --msgid plain.$$@sender.test \
        --subject "interop: plain" >/dev/null
    helper make-message --kind utf8 --out "$M/utf8.eml" \
        --from utf8@sender.test --to carol@example.net --msgid utf8.$$@sender.test \
        --subject "interop: 8-bit body" >/dev/null
    helper make-message --kind big --out "$M/big.eml" --wire "$M/big.wire" \
        --from big@sender.test --to dave@example.net --msgid big.$$@sender.test \
        --subject "interop: 1 MiB" >/dev/null
    helper make-message --kind multi --out "$M/multi.eml" --wire "$M/multi.wire" \
        --from multi@sender.test --to erin@example.net,frank@example.org,grace@example.com \
        --msgid multi.$$@sender.test --subject "interop: three recipients" >/dev/null

    check "smart host: swaks sends a plain message to Postfix" \
        swaks_send "$pf_port" "$M/plain.wire" plain@sender.test bob@example.net
    # swaks (20201014) cannot add MAIL FROM parameters, so this one is sent
    # with Python's smtplib to get BODY=8BITMIME on the wire.
    check "smart host: 8-bit UTF-8 body with BODY=8BITMIME to Postfix" \
        helper send-smtp --server "127.0.0.1:$pf_port" --from utf8@sender.test \
        --rcpt carol@example.net --file "$M/utf8.eml" --mail-option BODY=8BITMIME
    check "smart host: swaks sends a 1 MiB message to Postfix" \
        swaks_send "$pf_port" "$M/big.wire" big@sender.test dave@example.net
    check "smart host: swaks sends one message to three recipients" \
        swaks_send "$pf_port" "$M/multi.wire" multi@sender.test \
        erin@example.net,frank@example.org,grace@example.com

    check "smart host: all six recipients reach the sink" \
        helper wait-rcpts --sink "$S/sink" --timeout 90 --rcpt bob@example.net \
        --rcpt carol@example.net --rcpt dave@example.net --rcpt erin@example.net \
        --rcpt frank@example.org --rcpt grace@example.com

    # Postfix's and sealpost's Received headers, newest first.
    local rx_sp='^Received: from pf-smarthost\.test \(\[127\.0\.0\.1\]\)\s+by sealpost\.test \(sealpost\) with ESMTPS? id '
    local rx_pf='^Received: from interop-client\.test \(localhost \[127\.0\.0\.1\]\)\s+by pf-smarthost\.test \(Postfix\) with ESMTP id '
    local common=(--sink "$S/sink" --peer-ip 127.0.0.1 --received 2 --received-re "$rx_sp" --received-re "$rx_pf")
    check "smart host: plain message intact at the sink" \
        helper check-delivery "${common[@]}" --sent "$M/plain.eml" --from plain@sender.test \
        --rcpt bob@example.net --copies 1
    check "smart host: 8-bit message intact at the sink, relayed with BODY=8BITMIME" \
        helper check-delivery "${common[@]}" --sent "$M/utf8.eml" --from utf8@sender.test \
        --rcpt carol@example.net --copies 1 --mail-option BODY=8BITMIME
    check "smart host: sealpost recorded the 8-bit message as 8-bit, from Postfix's address" \
        helper db-client-ip --db "$S/sealpost-data/sealpost.db" --sender utf8@sender.test \
        --expect 127.0.0.1 --expect-8bit
    check "smart host: 1 MiB message intact at the sink" \
        helper check-delivery "${common[@]}" --sent "$M/big.eml" --from big@sender.test \
        --rcpt dave@example.net --copies 1
    check "smart host: three-recipient message intact, each recipient once" \
        helper check-delivery "${common[@]}" --sent "$M/multi.eml" --from multi@sender.test \
        --rcpt erin@example.net --rcpt frank@example.org --rcpt grace@example.com

    local r
    for r in bob@example.net carol@example.net dave@example.net erin@example.net \
             frank@example.org grace@example.com; do
        check "smart host: Postfix log: <$r> status=sent relay=127.0.0.1[127.0.0.1]:$SP_PORT" \
            helper maillog --log "$S/postfix/maillog" --rcpt "$r" \
            --relay "127.0.0.1[127.0.0.1]:$SP_PORT"
    done
    if grep -q "TLS connection established to 127.0.0.1\[127.0.0.1\]:$SP_PORT" "$S/postfix/maillog"; then
        log "       (Postfix used STARTTLS to sealpost: $(grep -m1 -o "TLS connection established to 127.0.0.1\[127.0.0.1\]:$SP_PORT: .*" "$S/postfix/maillog"))"
    fi
    check "smart host: no deferrals or bounces in Postfix's log" \
        bash -c "! grep -E 'status=(deferred|bounced)' '$S/postfix/maillog'"
    check "smart host: Postfix queue is empty" wait_postfix_queue_empty "$S/postfix"
    check "smart host: sealpost queue is empty (GET /health)" \
        helper wait-health --url "http://$SP_ADMIN/health" --timeout 30

    if [ "$FAILED" -gt "$failed_before" ]; then dump_logs "$S"; fi
}

# ================================================================ shape 2

shape_content_filter() {
    local S="$WORK/filter" failed_before=$FAILED
    log ""
    log "# shape 2: Postfix content_filter = smtp:[127.0.0.1]:<sealpost> with XFORWARD"
    mkdir -p "$S"
    local pf_port reinject_port
    pf_port=$(helper free-port)
    reinject_port=$(helper free-port)
    while [ "$reinject_port" = "$pf_port" ]; do reinject_port=$(helper free-port); done
    start_sink "$S" || return
    cat >"$S/sealpost.toml" <<EOF
[server]
hostname = "sealpost.test"
data_dir = "$S/sealpost-data"

[smtp]
listen = ["127.0.0.1:0"]
relay_networks = ["127.0.0.0/8"]
xforward_hosts = ["127.0.0.1/32"]

[relay]
next_hop = "127.0.0.1:$reinject_port"
retry_schedule = ["1s", "2s", "5s"]

[admin]
listen = "127.0.0.1:0"

[portal]
listen = "127.0.0.1:0"
EOF
    start_sealpost "$S" "$S/sealpost.toml" || return
    local P="$S/postfix"
    setup_postfix "$P" pf-filter.test "$pf_port" || return
    postconf -c "$P/etc" -e \
        "content_filter = smtp:[127.0.0.1]:$SP_PORT" \
        "smtp_send_xforward_command = yes" \
        "receive_override_options = no_address_mappings" \
        "relayhost = [127.0.0.1]:$SINK_PORT" || { fail "postconf: content filter settings"; return; }
    # The re-injection smtpd, as in Postfix's FILTER_README.
    local reinject=(
        "127.0.0.1:$reinject_port" inet n - n - 10 smtpd
        -o content_filter=
        -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
        -o smtpd_helo_restrictions=
        -o smtpd_client_restrictions=
        -o smtpd_sender_restrictions=
        -o smtpd_relay_restrictions=
        -o smtpd_recipient_restrictions=permit_mynetworks,reject
        -o mynetworks=127.0.0.0/8
        -o smtpd_authorized_xforward_hosts=127.0.0.0/8
    )
    postconf -c "$P/etc" -Me "127.0.0.1:$reinject_port/inet = ${reinject[*]}" || {
        fail "postconf: add the re-injection service"
        return
    }
    start_postfix "$P" "$pf_port" || { dump_logs "$S"; return; }
    log "sink 127.0.0.1:$SINK_PORT, sealpost 127.0.0.1:$SP_PORT (admin $SP_ADMIN), postfix smtpd 127.0.0.1:$pf_port, re-injection 127.0.0.1:$reinject_port"

    local M="$S/msgs"
    mkdir -p "$M"
    helper make-message --kind plain --out "$M/xfwd.eml" --wire "$M/xfwd.wire" \
        --from xfwd@sender.test --to henry@example.net --msgid xfwd.$$@sender.test \
        --subject "interop: through the content filter" >/dev/null
    helper make-message --kind plain --out "$M/direct.eml" \
        --from forged@sender.test --to ivan@example.net --msgid direct.$$@sender.test \
        --subject "interop: direct with XFORWARD" >/dev/null

    check "content filter: swaks from 127.0.0.2 sends to Postfix" \
        swaks_send "$pf_port" "$M/xfwd.wire" xfwd@sender.test henry@example.net \
        --local-interface 127.0.0.2
    check "content filter: the message reaches the sink" \
        helper wait-rcpts --sink "$S/sink" --timeout 90 --rcpt henry@example.net
    # Let a looping or duplicated message show up before counting copies.
    check "content filter: Postfix queue is empty" wait_postfix_queue_empty "$P"
    check "content filter: sealpost queue is empty (GET /health)" \
        helper wait-health --url "http://$SP_ADMIN/health" --timeout 30
    sleep 2

    local rx_reinj='^Received: from sealpost\.test \(localhost \[127\.0\.0\.1\]\)\s+by pf-filter\.test \(Postfix\) with ESMTP id '
    local rx_sp='^Received: from pf-filter\.test \(\[127\.0\.0\.1\]\)\s+by sealpost\.test \(sealpost\) with ESMTPS? id '
    local rx_in='^Received: from interop-client\.test \((unknown )?\[127\.0\.0\.2\]\)\s+by pf-filter\.test \(Postfix\) with ESMTP id '
    check "content filter: message arrives exactly once, intact" \
        helper check-delivery --sink "$S/sink" --peer-ip 127.0.0.1 --sent "$M/xfwd.eml" \
        --from xfwd@sender.test --rcpt henry@example.net --copies 1 --received 3 \
        --received-re "$rx_reinj" --received-re "$rx_sp" --received-re "$rx_in"
    check "content filter: sealpost recorded the original client 127.0.0.2 (XFORWARD ADDR)" \
        helper db-client-ip --db "$S/sealpost-data/sealpost.db" --sender xfwd@sender.test \
        --expect 127.0.0.2
    check "content filter: Postfix log: to the filter, relay=127.0.0.1[127.0.0.1]:$SP_PORT status=sent" \
        helper maillog --log "$P/maillog" --rcpt henry@example.net \
        --relay "127.0.0.1[127.0.0.1]:$SP_PORT"
    check "content filter: Postfix log: re-injected mail to the sink, relay=127.0.0.1[127.0.0.1]:$SINK_PORT status=sent" \
        helper maillog --log "$P/maillog" --rcpt henry@example.net \
        --relay "127.0.0.1[127.0.0.1]:$SINK_PORT"
    check "content filter: sealpost passed XFORWARD on: the re-injection smtpd logged orig_client=...[127.0.0.2]" \
        grep -qE 'smtpd\[[0-9]+\]: [0-9A-F]+: client=localhost\[127\.0\.0\.1\], orig_client=[^ ]*\[127\.0\.0\.2\]' "$P/maillog"
    check "content filter: no deferrals or bounces in Postfix's log" \
        bash -c "! grep -E 'status=(deferred|bounced)' '$P/maillog'"

    check "content filter: XFORWARD straight to sealpost from 127.0.0.2 is refused with 550 5.7.0" \
        helper xforward-direct --server "127.0.0.1:$SP_PORT" --source 127.0.0.2 \
        --forged 192.0.2.1 --from forged@sender.test --rcpt ivan@example.net \
        --file "$M/direct.eml"
    check "content filter: the forged XFORWARD address 192.0.2.1 was not recorded" \
        helper db-no-ip --db "$S/sealpost-data/sealpost.db" --ip 192.0.2.1

    if [ "$FAILED" -gt "$failed_before" ]; then dump_logs "$S"; fi
}

# ================================================================ main

preflight
build_sealpost
WORK=$(mktemp -d /tmp/sealpost-interop.XXXXXX)
chmod 0755 "$WORK"
log "work directory: $WORK"
shape_smarthost
shape_content_filter
# cleanup (trap) prints the summary line and sets the exit status
