#!/usr/bin/env bash
# Installs what the playground build and its browser test need. Idempotent:
# every install is guarded by a version check, so a second run is quick.
#   wasm-pack 0.15.1, wasm-bindgen-cli 0.2.129 (must equal the crate's pin),
#   the wasm32 target, npm tools (binaryen 132 for wasm-opt, playwright-core),
#   Debian's chromium for the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

have_version() { # command, expected substring of `command --version`
    command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF "$2"
}

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown

have_version wasm-bindgen "0.2.129" \
    || cargo install --locked wasm-bindgen-cli --version 0.2.129
have_version wasm-pack "0.15.1" \
    || cargo install --locked wasm-pack --version 0.15.1

# npm tools, from the committed lock (tools/package-lock.json).
npm_version() { # package name -> installed version, or nothing
    node -p "require('./tools/node_modules/$1/package.json').version" 2>/dev/null || true
}
if [ "$(npm_version binaryen)" != "132.0.0" ] || [ "$(npm_version playwright-core)" != "1.65.1" ]; then
    (cd tools && npm ci --no-audit --no-fund)
fi

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium
fi
