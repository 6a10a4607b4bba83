#!/usr/bin/env bash
# Builds the browser playground into www/ (run ./build.sh setup first):
#   www/pkg/portcullis_web.js + portcullis_web_bg.wasm  (wasm-pack, then wasm-opt -Oz)
#   www/pkg/manifest.json  (the sample policies, their test files and the corpus)
# www/pkg is git-ignored. Serve the REPOSITORY ROOT over HTTP and open /www/:
# the page fetches policy-samples/ and tests/corpus/ as ../policy-samples/...
#   python3 -m http.server -b 127.0.0.1 8000   # then http://127.0.0.1:8000/www/
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/www/pkg"

wasm-pack build crates/portcullis-web --target web --mode no-install \
    --profile wasm --no-opt --no-typescript --no-pack --no-gitignore \
    --out-dir "$out"
rm -f "$out/.gitignore" "$out/package.json" "$out/README.md"

# wasm-opt from npm binaryen 132 (Debian's binaryen 108 corrupts the output).
# The module is stripped, so the features Rust 1.95 emits are named here.
wasm="$out/portcullis_web_bg.wasm"
"$root/tools/node_modules/.bin/wasm-opt" -Oz \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue \
    "$wasm" -o "$wasm.opt"
mv "$wasm.opt" "$wasm"

# The corpus as every engine finds it (portcullis_harness::corpus).
cargo run -q -p portcullis-web --example manifest -- "$root" > "$out/manifest.json"
echo "playground: $(stat -c %s "$wasm") bytes of wasm ($(gzip -9c "$wasm" | wc -c) gzipped) in www/pkg"
