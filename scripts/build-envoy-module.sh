#!/usr/bin/env bash
# Builds the native Envoy module and its release artefacts in dist/:
#   libportcullis_envoy.so         cargo (release profile: opt-level 3, lto,
#                                  panic=unwind so every hook can catch a panic
#                                  and fail closed), linked with -z now
#                                  (crates/portcullis-envoy/build.rs)
#   libportcullis_envoy.so.sha256  sha256sum format (`cd dist && sha256sum -c ...`)
# Envoy 1.40 loads it with envoy.filters.http.dynamic_modules from
# ENVOY_DYNAMIC_MODULES_SEARCH_PATH (docs/deploy.md). Linux x86-64 only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target="${CARGO_TARGET_DIR:-$root/target}"

cargo build --quiet --locked --release -p portcullis-envoy
built="$target/release/libportcullis_envoy.so"
mkdir -p "$root/dist"
out="$root/dist/libportcullis_envoy.so"
cp "$built" "$out.tmp"
mv "$out.tmp" "$out"
if ! readelf -d "$out" | grep -q 'BIND_NOW'; then
    echo "ERROR: $out is not linked with -z now" >&2
    exit 1
fi
(cd "$root/dist" && sha256sum libportcullis_envoy.so >libportcullis_envoy.so.sha256)
echo "envoy module: $(stat -c %s "$out") bytes -> dist/libportcullis_envoy.so, sha256 $(cut -c1-16 "$out.sha256")..."
