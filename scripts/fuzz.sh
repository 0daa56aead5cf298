#!/usr/bin/env bash
# fuzz.sh - build and run sealpost's fuzz targets (cargo-fuzz, libFuzzer).
#
# Usage: scripts/fuzz.sh [SECONDS] [-- LIBFUZZER_ARGS...]
#
#   SECONDS   how long to fuzz EACH target (default 30; CI runs 30).
#
# Runs every target in fuzz/fuzz_targets/ (or those named in FUZZ_TARGETS,
# space separated) for SECONDS, starting from the committed seeds in
# fuzz/corpus-seed/<target>/ plus whatever fuzz/corpus/<target>/ (git-ignored,
# grows between local runs) already holds. Exits 1 if any target found a
# crash, a panic, a hang or an out-of-memory, after printing where the
# reproducing input was written (fuzz/artifacts/<target>/...) and how to
# replay it; exits 2 if the targets do not build.
#
# Environment:
#   FUZZ_TARGETS     targets to run (default: all)
#   FUZZ_JOBS        parallel fuzzing processes per target (libFuzzer -fork;
#                    default 1). For long runs use the core count.
#   FUZZ_SANITIZER   none (default: sealpost forbids unsafe code, and this is
#                    about twice as fast) or address, to also catch memory
#                    errors in dependencies' unsafe code.
#   FUZZ_TARGET_DIR  cargo target dir (default fuzz/target, git-ignored;
#                    separate from the workspace's target/ so fuzz builds
#                    never wait for, or invalidate, ordinary builds).
#
# cargo-fuzz needs nightly-only compiler flags; with the stable toolchain
# this script sets RUSTC_BOOTSTRAP=1 for its own cargo invocations only.
# cargo-fuzz itself is installed (cargo install --locked) when missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECONDS_PER_TARGET=30
if [[ $# -gt 0 && $1 != -- ]]; then
    SECONDS_PER_TARGET=$1
    shift
fi
if [[ $# -gt 0 && $1 == -- ]]; then
    shift
fi
EXTRA_ARGS=("$@")
if ! [[ $SECONDS_PER_TARGET =~ ^[0-9]+$ ]] || [[ $SECONDS_PER_TARGET -eq 0 ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [-- LIBFUZZER_ARGS...]" >&2
    exit 64
fi

SANITIZER=${FUZZ_SANITIZER:-none}
JOBS=${FUZZ_JOBS:-1}
TARGET_DIR=${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}
if [[ -n ${FUZZ_TARGETS:-} ]]; then
    read -r -a TARGETS <<<"$FUZZ_TARGETS"
else
    TARGETS=()
    for f in fuzz/fuzz_targets/*.rs; do
        TARGETS+=("$(basename "$f" .rs)")
    done
fi

log() { printf '[fuzz.sh] %s\n' "$*"; }

# --- cargo-fuzz --------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi
log "$(cargo fuzz --version)"

export RUSTC_BOOTSTRAP=1
CARGO_FUZZ_OPTS=(--sanitizer "$SANITIZER" --target-dir "$TARGET_DIR")

# --- build -------------------------------------------------------------------
start=$(date +%s)
log "building ${TARGETS[*]} (sanitizer: $SANITIZER, target dir: $TARGET_DIR)"
for target in "${TARGETS[@]}"; do
    if ! cargo fuzz build "${CARGO_FUZZ_OPTS[@]}" "$target"; then
        log "FAILED to build fuzz target $target"
        exit 2
    fi
done
log "built in $(($(date +%s) - start)) s"

# --- run ---------------------------------------------------------------------
failed=()
for target in "${TARGETS[@]}"; do
    corpus=fuzz/corpus/$target
    seeds=fuzz/corpus-seed/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts" "$seeds"
    marker=$(mktemp)
    args=(
        -max_total_time="$SECONDS_PER_TARGET"
        # A session's input is closed after its last byte, so anything slow
        # is a hang; the harness itself panics after 5 s.
        -timeout=10
        -rss_limit_mb=2048
        -max_len=20000
        -dict=fuzz/dict/smtp.dict
        -artifact_prefix="$artifacts/"
        -print_final_stats=1
    )
    if [[ $JOBS -gt 1 ]]; then
        args+=(-fork="$JOBS")
    fi
    log "fuzzing $target for ${SECONDS_PER_TARGET} s (jobs: $JOBS)"
    t0=$(date +%s)
    status=0
    cargo fuzz run "${CARGO_FUZZ_OPTS[@]}" "$target" "$corpus" "$seeds" -- \
        "${args[@]}" "${EXTRA_ARGS[@]}" || status=$?
    log "$target: exit status $status after $(($(date +%s) - t0)) s"
    found=$(find "$artifacts" -type f -newer "$marker" 2>/dev/null || true)
    rm -f "$marker"
    if [[ $status -ne 0 || -n $found ]]; then
        failed+=("$target")
        if [[ -n $found ]]; then
            while IFS= read -r artifact; do
                log "CRASH in $target: $artifact"
                log "  input: $(head -c 400 "$artifact" | od -An -c | tr -s " \n" " " | head -c 600)"
                log "  replay: RUSTC_BOOTSTRAP=1 cargo fuzz run ${CARGO_FUZZ_OPTS[*]} $target $artifact"
            done <<<"$found"
        else
            log "$target failed without writing an artifact (see the output above)"
        fi
    fi
done

log "total $(($(date +%s) - start)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
    log "FAILED: ${failed[*]} (see docs/fuzzing.md for minimising and turning a crash into a test)"
    exit 1
fi
log "no crashes in: ${TARGETS[*]}"
