#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time each and fails
# on any crash, timeout or OOM. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
#   SECONDS   per target, default 60 (libFuzzer -max_total_time)
#   TARGET    policy_parse decide filter_wasm differential client_addr
#             scope_input import_apim import_nsg import_service_tags import_app_service replay_logs (default: all)
#
# Seeds come from fuzz/corpus/<target> (committed, never written to: new
# inputs go to fuzz/target/corpus-work/<target>). A crash leaves its input in
# fuzz/artifacts/<target>/; copy it to fuzz/regressions/<target>/ and
# `cargo test -p portcullis-cli --test robustness` replays it from then on.
#
# Toolchain: cargo-fuzz (installed here if missing) on the nightly toolchain
# with AddressSanitizer; without a nightly toolchain, the stable one with
# RUSTC_BOOTSTRAP=1 and no sanitizer (the code under test is safe Rust; the
# coverage instrumentation is what matters).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${1:-60}
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(policy_parse decide filter_wasm differential client_addr scope_input import_apim import_nsg import_service_tags import_app_service replay_logs)
CARGO_FUZZ_VERSION=0.13.2
# Environment overrides: FUZZ_SANITIZER (address|none), FUZZ_RSS_MB, FUZZ_TIMEOUT.
RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}

[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if cargo +nightly --version >/dev/null 2>&1; then
    TOOLCHAIN=(+nightly)
    SANITIZER=${FUZZ_SANITIZER:-address}
    unset RUSTC_BOOTSTRAP
else
    echo "== no nightly toolchain: stable with RUSTC_BOOTSTRAP=1, no sanitizer"
    TOOLCHAIN=()
    SANITIZER=none
    export RUSTC_BOOTSTRAP=1
fi

# The wasm targets run the shipped filter.
export PORTCULLIS_FILTER=${PORTCULLIS_FILTER:-$ROOT/dist/portcullis_filter.wasm}
if [ ! -f "$PORTCULLIS_FILTER" ]; then
    echo "== building the filter ($PORTCULLIS_FILTER is missing)"
    scripts/build-filter.sh
fi

cd fuzz
echo "== building the fuzz targets (sanitizer: $SANITIZER)"
cargo "${TOOLCHAIN[@]}" fuzz build -O -s "$SANITIZER"

declare -A EXECS RESULT
failed=0
for t in "${TARGETS[@]}"; do
    work=target/corpus-work/$t
    mkdir -p "$work" "corpus/$t" "artifacts/$t"
    log=target/fuzz-$t.log
    args=(-max_total_time="$SECS" -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT" -print_final_stats=1)
    case $t in
    policy_parse) args+=(-max_len=16384 -dict=policy.dict) ;;
    import_apim) args+=(-max_len=16384 -dict=import_apim.dict) ;;
    import_nsg | import_service_tags) args+=(-max_len=16384 -dict=policy.dict) ;;
    import_app_service) args+=(-max_len=16384 -dict=import_app_service.dict) ;;
    client_addr) args+=(-max_len=4096 -dict=client_addr.dict) ;;
    scope_input) args+=(-max_len=1024 -dict=scope_input.dict) ;;
    *) args+=(-max_len=8192) ;;
    esac
    echo "== $t for ${SECS}s"
    set +e
    cargo "${TOOLCHAIN[@]}" fuzz run -O -s "$SANITIZER" "$t" "$work" "corpus/$t" -- "${args[@]}" >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    EXECS[$t]=${execs:-?}
    if ((rc != 0)) || grep -qE '^(==[0-9]+==ERROR|SUMMARY: libFuzzer)|deadly signal|ALARM: working on the last Unit|out-of-memory' "$log"; then
        RESULT[$t]=FAILED
        failed=1
        echo "-- $t FAILED (exit $rc); the end of $ROOT/fuzz/$log:"
        tail -40 "$log"
        ls -1 "artifacts/$t" 2>/dev/null | sed "s|^|   artifact: fuzz/artifacts/$t/|" || true
    else
        RESULT[$t]=ok
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
    fi
done

echo
echo "== fuzz summary (${SECS}s per target, sanitizer $SANITIZER)"
printf '%-20s %-7s %s\n' target result executions
for t in "${TARGETS[@]}"; do
    printf '%-20s %-7s %s\n' "$t" "${RESULT[$t]}" "${EXECS[$t]}"
done
exit $failed
