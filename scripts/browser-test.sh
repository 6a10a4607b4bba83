#!/usr/bin/env bash
# Browser test of the playground: builds www/pkg, computes the native corpus
# results with the same engine code, then drives chromium through the page
# (tests/browser/playground.test.mjs). Screenshots: target/artifacts/.
# Needs ./build.sh setup to have run (wasm-pack, npm tools, chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/artifacts
scripts/build-web.sh
# The page and the native run read one snapshot of the corpus, so files
# being edited meanwhile cannot make them differ.
snap="$PWD/target/artifacts/corpus-snapshot"
rm -rf "$snap"
mkdir -p "$snap/tests"
cp -r tests/corpus "$snap/tests/corpus"
cp -r policy-samples "$snap/policy-samples"
cargo run -q -p portcullis-web --example manifest -- "$snap" > "$snap/manifest.json"
cargo run -q -p portcullis-web --example corpus -- "$snap" > target/artifacts/corpus-native.json
CORPUS_SNAPSHOT="$snap" NATIVE_CORPUS="$PWD/target/artifacts/corpus-native.json" \
    node --test --test-reporter=spec tests/browser/playground.test.mjs
