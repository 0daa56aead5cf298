#!/usr/bin/env bash
# install-test-tools.sh - install the external tools sealpost's end-to-end
# tests and benchmarks rely on (Debian 12 / bookworm).
#
#   apt:     swaks python3-aiosmtpd python3-dnslib openssl procps psmisc postfix
#            chromium chromium-driver
#   PyPI:    openapi-spec-validator (for python3 on PATH; checks the API's
#            OpenAPI document in the end-to-end tests)
#
# chromium + chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver) are for
# the browser tests (crates/sealpost/tests/e2e/browser.rs drives headless
# Chromium through chromedriver over WebDriver on loopback). Debian builds both
# from one source package and chromium-driver depends on the same chromium
# version; the check at the end makes sure the two report the same version and
# reinstalls the pair if an earlier partial upgrade left them apart.
#
# postfix is installed only for its test utilities /usr/sbin/smtp-sink and
# /usr/sbin/smtp-source. The install is done so that NO postfix daemon is
# started and port 25 is never bound:
#   * debconf is preseeded (main_mailer_type "Internet Site", mailname
#     sealpost-test.localdomain) and DEBIAN_FRONTEND=noninteractive is used;
#   * a temporary /usr/sbin/policy-rc.d that exits 101 blocks invoke-rc.d from
#     starting services during the install. It is removed afterwards only if
#     this script created it (an existing policy-rc.d that already exits 101,
#     as in Docker images, is left alone; any other existing one is moved
#     aside and restored);
#   * afterwards any running postfix master is stopped ("postfix stop").
#
# LD_LIBRARY_PATH: on Debian 12 (postfix 3.7.11-0+deb12u1) smtp-sink and
# smtp-source do NOT need LD_LIBRARY_PATH=/usr/lib/postfix - the binaries carry
# a RUNPATH of /usr/lib/postfix, so libpostfix-*.so resolve on their own. The
# smoke check below verifies this with `ldd` and would fall back to (and report)
# LD_LIBRARY_PATH=/usr/lib/postfix if a future package ever needed it.
#
# Idempotent: steps whose result is already present are skipped, so it is safe
# to run repeatedly. `apt-get update` runs only if something is missing AND the
# package lists are absent or older than one hour. Works as root without a tty
# or stdin (CI). When not root and something is missing, it prints the command
# to run and exits 1.
#
# Usage: scripts/install-test-tools.sh
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export DEBCONF_NONINTERACTIVE_SEEN=true
APT_OPTS=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
APT_PKGS=(swaks python3-aiosmtpd python3-dnslib openssl procps psmisc chromium chromium-driver)
POLICY_RC=/usr/sbin/policy-rc.d
POSTFIX_LIBDIR=/usr/lib/postfix

log() { printf 'install-test-tools: %s\n' "$*"; }
die() { printf 'install-test-tools: ERROR: %s\n' "$*" >&2; exit 1; }

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------- what is missing
missing=()
for p in "${APT_PKGS[@]}"; do
    is_installed "$p" || missing+=("$p")
done
need_postfix=0
if ! is_installed postfix || [ ! -x /usr/sbin/smtp-sink ] || [ ! -x /usr/sbin/smtp-source ]; then
    need_postfix=1
fi

if [ "${#missing[@]}" -eq 0 ] && [ "$need_postfix" -eq 0 ]; then
    log "all packages present: ${APT_PKGS[*]} postfix (nothing to install)"
elif ! is_root; then
    all=("${missing[@]}")
    [ "$need_postfix" -eq 1 ] && all+=(postfix)
    log "missing packages: ${all[*]}"
    log "run as root: sudo $0"
    log "(or manually: apt-get install ${all[*]}; for postfix preseed debconf and block service start with policy-rc.d, see this script)"
    exit 1
fi

# ---------------------------------------------------------------- apt-get update
apt_update_if_stale() {
    local newest=0 f m now
    shopt -s nullglob
    for f in /var/lib/apt/lists/*_Packages* /var/lib/apt/lists/*_InRelease /var/lib/apt/lists/*_Release; do
        m=$(stat -c %Y "$f")
        [ "$m" -gt "$newest" ] && newest=$m
    done
    shopt -u nullglob
    now=$(date +%s)
    if [ "$newest" -eq 0 ] || [ $((now - newest)) -gt 3600 ]; then
        log "apt-get update (package lists absent or older than 1h)"
        apt-get -q -o DPkg::Lock::Timeout=300 update </dev/null
    else
        log "apt-get update not needed (lists are $(( (now - newest) / 60 )) min old)"
    fi
}

if [ "${#missing[@]}" -gt 0 ] || [ "$need_postfix" -eq 1 ]; then
    apt_update_if_stale
fi

# ---------------------------------------------------------------- plain apt packages
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    apt-get install "${APT_OPTS[@]}" "${missing[@]}" </dev/null
else
    log "${APT_PKGS[*]}: already installed (skip)"
fi

# ---------------------------------------------------------------- postfix
policy_created=0
policy_backup=""
restore_policy_rc() {
    if [ "$policy_created" -eq 1 ]; then
        rm -f "$POLICY_RC"
        policy_created=0
        if [ -n "$policy_backup" ] && [ -e "$policy_backup" ]; then
            mv -f "$policy_backup" "$POLICY_RC"
            log "restored original $POLICY_RC"
        else
            log "removed temporary $POLICY_RC"
        fi
        policy_backup=""
    fi
}

postfix_master_running() {
    postfix status >/dev/null 2>&1 && return 0
    pgrep -f '^/usr/lib/postfix/sbin/master' >/dev/null 2>&1
}

if [ "$need_postfix" -eq 1 ]; then
    log "preseeding debconf for postfix (Internet Site, sealpost-test.localdomain)"
    debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select Internet Site
postfix postfix/mailname string sealpost-test.localdomain
EOF

    if [ -e "$POLICY_RC" ] && grep -qE '^[[:space:]]*exit[[:space:]]+101' "$POLICY_RC"; then
        log "$POLICY_RC already exists and exits 101 (leaving it alone)"
    else
        if [ -e "$POLICY_RC" ]; then
            policy_backup="$POLICY_RC.sealpost-backup.$$"
            mv -f "$POLICY_RC" "$policy_backup"
            log "moved existing $POLICY_RC aside to $policy_backup"
        fi
        trap restore_policy_rc EXIT
        trap 'exit 130' INT TERM
        printf '#!/bin/sh\n# temporary, created by sealpost scripts/install-test-tools.sh\nexit 101\n' >"$POLICY_RC"
        chmod 0755 "$POLICY_RC"
        policy_created=1
        log "created temporary $POLICY_RC (exit 101) to block service start"
    fi

    log "apt-get install postfix (no daemon start)"
    apt-get install "${APT_OPTS[@]}" postfix </dev/null

    restore_policy_rc
    trap - EXIT INT TERM
else
    log "postfix (smtp-sink, smtp-source): already installed (skip)"
fi

if is_root && command -v postfix >/dev/null 2>&1 && postfix_master_running; then
    log "postfix master is running - stopping it"
    postfix stop >/dev/null 2>&1 || true
    sleep 1
else
    log "no postfix master running (ok)"
fi

# ---------------------------------------------------------------- smoke check
[ -x /usr/sbin/smtp-sink ] || die "/usr/sbin/smtp-sink missing after install"
[ -x /usr/sbin/smtp-source ] || die "/usr/sbin/smtp-source missing after install"

pf_env=()
if ldd /usr/sbin/smtp-sink /usr/sbin/smtp-source 2>/dev/null | grep -q 'not found'; then
    pf_env=(env "LD_LIBRARY_PATH=$POSTFIX_LIBDIR")
    log "NOTE: smtp-sink/smtp-source need LD_LIBRARY_PATH=$POSTFIX_LIBDIR on this machine"
else
    log "smtp-sink/smtp-source resolve their libraries without LD_LIBRARY_PATH"
fi

free_port() {
    if [ -x /usr/bin/python3 ]; then
        /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
    else
        echo $((20000 + RANDOM % 40000))
    fi
}

sink_user=()
is_root && sink_user=(-u nobody)

smoke_ok=0
sink_pid=""
cleanup_sink() {
    if [ -n "$sink_pid" ]; then
        kill "$sink_pid" 2>/dev/null || true
        wait "$sink_pid" 2>/dev/null || true
        sink_pid=""
    fi
}
trap cleanup_sink EXIT
for attempt in 1 2 3; do
    port=$(free_port)
    "${pf_env[@]}" /usr/sbin/smtp-sink "${sink_user[@]}" "127.0.0.1:$port" 10 </dev/null >/dev/null 2>&1 &
    sink_pid=$!
    for _ in $(seq 1 30); do
        if ! kill -0 "$sink_pid" 2>/dev/null; then break; fi
        if "${pf_env[@]}" /usr/sbin/smtp-source -c -m 1 "127.0.0.1:$port" </dev/null >/dev/null 2>&1; then
            smoke_ok=1
            break
        fi
        sleep 0.2
    done
    cleanup_sink
    [ "$smoke_ok" -eq 1 ] && break
    log "smoke check attempt $attempt on port $port failed, retrying"
done
trap - EXIT
[ "$smoke_ok" -eq 1 ] || die "smoke check failed: smtp-source could not deliver to smtp-sink"
log "smoke check ok: smtp-source delivered 1 message to smtp-sink on 127.0.0.1:$port"

# ---------------------------------------------------------------- chromium
# Major.minor.build.patch of each, e.g. "Chromium 156.0.8078.114 built on ..."
# and "ChromeDriver 156.0.8078.114 (...)". The browser is asked with
# --headless so it never looks for a display.
browser_version() { /usr/bin/chromium --headless --no-sandbox --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+){3}' | head -n1 || true; }
driver_version() { /usr/bin/chromedriver --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+){3}' | head -n1 || true; }
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing after install"
[ -x /usr/bin/chromedriver ] || die "/usr/bin/chromedriver missing after install"
bv=$(browser_version); dv=$(driver_version)
if [ -z "$bv" ] || [ "$bv" != "$dv" ]; then
    is_root || die "chromium ($bv) and chromedriver ($dv) differ: run as root: apt-get install chromium chromium-driver"
    log "chromium ($bv) and chromedriver ($dv) differ: reinstalling the pair"
    apt_update_if_stale
    apt-get install "${APT_OPTS[@]}" chromium chromium-driver </dev/null
    bv=$(browser_version); dv=$(driver_version)
    [ -n "$bv" ] && [ "$bv" = "$dv" ] || die "chromium ($bv) and chromedriver ($dv) still differ"
fi
log "chromium and chromedriver both at $bv"

if python3 -c 'import openapi_spec_validator' 2>/dev/null; then
    log "openapi-spec-validator present"
else
    log "installing openapi-spec-validator from PyPI"
    python3 -m pip install --quiet openapi-spec-validator \
        || die "pip install openapi-spec-validator failed"
fi

log "done"
