#!/usr/bin/env bash
# Builds the proxy-wasm filter and its release artefacts in dist/:
#   portcullis_filter.wasm         cargo (wasm32-unknown-unknown, profile `wasm`:
#                                  opt-level z, the filter crate s, lto, strip,
#                                  panic=abort), then
#                                  `wasm-opt -Oz` from npm binaryen 132 in tools/
#   portcullis_filter.wasm.sha256  sha256sum format (`cd dist && sha256sum -c ...`)
#   portcullis_filter.oci/         OCI image layout of the module (Wasm image,
#                                  oci variant) for Istio / Envoy Gateway, written
#                                  by `portcullis package` (the debug CLI, which
#                                  also embeds the new module)
# Prints the sizes and fails if the module exceeds 250 KB.
# Setup (rust target, npm tools): ./build.sh setup. Without wasm-opt
# the unoptimized module is used and a warning is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
limit=$((250 * 1024))

cargo build --quiet --target wasm32-unknown-unknown --profile wasm -p portcullis-filter
built="$root/target/wasm32-unknown-unknown/wasm/portcullis_filter.wasm"
mkdir -p "$root/dist"
out="$root/dist/portcullis_filter.wasm"
before=$(stat -c %s "$built")

wasm_opt="$root/tools/node_modules/.bin/wasm-opt"
if [ -x "$wasm_opt" ] && "$wasm_opt" --version 2>/dev/null | grep -q "version 132"; then
    # The module is stripped, so the features Rust 1.95 emits are named here.
    "$wasm_opt" -Oz \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        "$built" -o "$out.tmp"
    mv "$out.tmp" "$out"
else
    echo "WARNING: wasm-opt (npm binaryen 132 in tools/) not found; run ./build.sh setup." >&2
    echo "WARNING: dist/portcullis_filter.wasm is NOT size-optimized by wasm-opt." >&2
    cp "$built" "$out"
fi
after=$(stat -c %s "$out")
echo "filter: $before bytes from cargo, $after bytes after wasm-opt -> dist/portcullis_filter.wasm ($(gzip -9c "$out" | wc -c) gzipped)"
if [ "$after" -gt "$limit" ]; then
    echo "ERROR: dist/portcullis_filter.wasm is $after bytes, over the $limit byte budget" >&2
    exit 1
fi

(cd "$root/dist" && sha256sum portcullis_filter.wasm >portcullis_filter.wasm.sha256)
# The debug CLI: `cargo test` and ./build.sh build share its build.
cargo run --quiet --locked -p portcullis-cli -- package \
    --filter "$out" --out "$root/dist/portcullis_filter.oci"
echo "filter: dist/portcullis_filter.wasm.sha256 $(cut -c1-16 "$out.sha256")..., dist/portcullis_filter.oci ($(du -sb "$root/dist/portcullis_filter.oci" | cut -f1) bytes)"
