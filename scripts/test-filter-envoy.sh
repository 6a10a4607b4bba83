#!/usr/bin/env bash
# Smoke test of dist/portcullis_filter.wasm in real Envoy 1.40 (V8), loopback only.
#   - listener `apim`: policy-samples/functions-behind-apim.json; a client on
#     127.0.0.9 is denied 403 by the default rule;
#   - listener `smoke` (plain) and `smoke_tls` (TLS): filter-envoy/smoke.json,
#     covering X-Forwarded-For, TLS (connection.tls_version), redirect, reject,
#     required header, request and response edits, HSTS, non-UTF-8 values,
#     the access-log trace (%FILTER_STATE(wasm.portcullis.trace:PLAIN)%) and
#     the counters in /stats, and the known X-Forwarded-Proto gap;
#   - an invalid policy makes Envoy refuse to start, with every problem logged.
# Prints one PASS/FAIL line per check and "N passed, M failed"; exits non-zero
# on any failure. Needs ./build.sh setup; builds the filter unless
# SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
here="$root/scripts/filter-envoy"
[ "${SKIP_BUILD:-0}" = 1 ] || bash scripts/build-filter.sh
wasm="$root/dist/portcullis_filter.wasm"
envoy="${PORTCULLIS_ENVOY:-$(python3 -c "import envoy, os; print(os.path.dirname(envoy.__file__))")/_bin/envoy}"

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
check() { # name, then a command that must succeed
    local name=$1
    shift
    if "$@"; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        failed=$((failed + 1))
    fi
}
has() { grep -qiF -- "$2" "$1"; }
lacks() { ! grep -qiF -- "$2" "$1"; }
status_is() { [ "$(head -1 "$1" | cut -d' ' -f2)" = "$2" ]; }

free_ports() { # n -> n free loopback TCP ports
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
read -r admin backend apim smoke smoke_tls <<<"$(free_ports 5)"

wait_http() { # url: until it answers, at most ~20 s
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.2
    done
    return 1
}

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=smoke.example \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null

python3 "$here/backend.py" "$backend" &
pids+=($!)

python3 "$here/envoy_config.py" "$tmp/envoy.json" --wasm "$wasm" --admin "$admin" \
    --backend "$backend" --access-log "$tmp/access.log" \
    --listener "apim:$apim:$root/policy-samples/functions-behind-apim.json" \
    --listener "smoke:$smoke:$here/smoke.json" \
    --listener "smoke_tls:$smoke_tls:$here/smoke.json:tls"
"$envoy" -c "$tmp/envoy.json" --use-dynamic-base-id --concurrency 1 \
    --log-level warn --component-log-level wasm:debug >"$tmp/envoy.log" 2>&1 &
envoy_pid=$!
pids+=("$envoy_pid")
if ! wait_http "http://127.0.0.1:$admin/ready"; then
    cat "$tmp/envoy.log" >&2
    echo "Envoy did not start" >&2
    exit 1
fi
wait_http "http://127.0.0.1:$backend/" || true

req() { # out-file, curl args...
    local out=$1
    shift
    curl -s -D "$out" -o "$out.body" "$@" || true
}

# 1. The APIM sample: a loopback client is not the gateway.
req "$tmp/r1" --interface 127.0.0.9 "http://127.0.0.1:$apim/api/orders"
check "apim: 127.0.0.9 denied 403" status_is "$tmp/r1" 403
check "apim: deny reply is hardened (nosniff, no HSTS on plain)" \
    bash -c "grep -qi '^x-content-type-options: nosniff' '$tmp/r1' && ! grep -qi strict-transport '$tmp/r1'"

# 2. smoke: an untrusted peer is the client; the named deny rule decides.
req "$tmp/r2" --interface 127.0.0.9 -H 'X-Forwarded-For: 203.0.113.7' "http://127.0.0.1:$smoke/"
check "smoke: 127.0.0.9 denied by rule 'deny nine'" status_is "$tmp/r2" 403

# 3. Trusted proxy, plain: redirect to the allowed host, path and query kept.
req "$tmp/r3" -H 'Host: smoke.example' -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.7' \
    "http://127.0.0.1:$smoke/p/a?q=1&r=%20"
check "smoke: plain request redirected 308" status_is "$tmp/r3" 308
check "smoke: Location is https + host + path" has "$tmp/r3" "location: https://smoke.example/p/a?q=1&r=%20"
check "smoke: no HSTS on a plain redirect" lacks "$tmp/r3" "strict-transport-security"

# 4. Plain request for a host that is not allowed: rejected, never redirected.
req "$tmp/r4" -H 'Host: evil.example' -H 'X-Forwarded-For: 203.0.113.7' "http://127.0.0.1:$smoke/"
check "smoke: other host rejected 400" status_is "$tmp/r4" 400

# 5. Known Envoy gap: with use_remote_address Envoy rewrites X-Forwarded-Proto
#    to its own connection's scheme, so a trusted proxy's "https" is not seen
#    and the plain request is still redirected (trust_forwarded_proto).
req "$tmp/r5" -H 'Host: smoke.example' -H 'X-Forwarded-For: 203.0.113.7' \
    -H 'X-Forwarded-Proto: https' "http://127.0.0.1:$smoke/"
check "smoke: (known gap) X-Forwarded-Proto from a trusted proxy is overwritten by Envoy" \
    status_is "$tmp/r5" 308

# 6. TLS, missing key: 401, and the local reply carries HSTS.
req "$tmp/r6a" -k -H 'X-Forwarded-For: 203.0.113.7' "https://127.0.0.1:$smoke_tls/"
check "smoke_tls: missing key 401" status_is "$tmp/r6a" 401
check "smoke_tls: local reply to a secure request has HSTS" \
    has "$tmp/r6a" "strict-transport-security: max-age=31536000; includeSubDomains"

# 7. TLS, forwarded: request edits upstream, response edits and HSTS
#    downstream; a non-UTF-8 header value does not disturb the filter.
req "$tmp/r6" -k -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.7' \
    -H 'X-Api-Key: k1' -H 'X-Internal: secret' -H $'X-Junk: \xff\xfe' "https://127.0.0.1:$smoke_tls/ok"
check "smoke_tls: valid request forwarded 200" status_is "$tmp/r6" 200
check "smoke_tls: upstream got X-Portcullis: checked" has "$tmp/r6.body" '["x-portcullis", "checked"]'
check "smoke_tls: upstream did not get X-Internal" lacks "$tmp/r6.body" "x-internal"
check "smoke_tls: upstream got X-Forwarded-For unchanged" has "$tmp/r6.body" '["x-forwarded-for", "198.51.100.1, 203.0.113.7"]'
check "smoke_tls: X-Powered-By removed from the response" lacks "$tmp/r6" "x-powered-by"
check "smoke_tls: nosniff added to the response" has "$tmp/r6" "x-content-type-options: nosniff"
check "smoke_tls: upstream HSTS replaced by the policy's" \
    bash -c "[ \$(grep -ci '^strict-transport-security' '$tmp/r6') = 1 ] && grep -qi 'strict-transport-security: max-age=31536000; includeSubDomains' '$tmp/r6'"

# TLS alone makes the request secure (no X-Forwarded-Proto sent).
req "$tmp/r7" -k -H 'X-Forwarded-For: 203.0.113.7' -H 'X-Api-Key: k1' "https://127.0.0.1:$smoke_tls/tls"
check "smoke_tls: forwarded 200 over TLS without X-Forwarded-Proto" status_is "$tmp/r7" 200

# 8. A trusted peer with no usable X-Forwarded-For entry is an unknown client.
req "$tmp/r8" -k "https://127.0.0.1:$smoke_tls/"
check "smoke_tls: trusted peer without X-Forwarded-For denied 403" status_is "$tmp/r8" 403

# Access log: the trace is in filter state wasm.portcullis.trace.
# Envoy flushes file access logs about once a second: wait for all 10 lines.
log="$tmp/access.log"
for _ in $(seq 1 50); do
    [ "$(cat "$log" 2>/dev/null | wc -l)" -ge 10 ] && break
    sleep 0.2
done
check "trace: apim deny" has "$log" "apim 127.0.0.9 403 portcullis_network trace=[deny 403 network peer 127.0.0.9 default]"
check "trace: smoke deny by named rule" has "$log" "trace=[deny 403 network peer 127.0.0.9 deny nine]"
check "trace: redirect" has "$log" "308 portcullis_https_only trace=[redirect 308 https_only x-forwarded-for 203.0.113.7 allow-doc-net]"
check "trace: forward" has "$log" "200 via_upstream trace=[forward 0 forward x-forwarded-for 203.0.113.7 allow-doc-net]"
check "trace: unknown client" has "$log" "trace=[deny 403 client_ip x-forwarded-for unknown default]"
check "debug log carries the trace" has "$tmp/envoy.log" "portcullis: forward 0 forward x-forwarded-for 203.0.113.7 allow-doc-net"

# Counters, as Envoy lists them.
curl -s "http://127.0.0.1:$admin/stats?filter=portcullis" >"$tmp/stats"
check "stats: apim denied 1" has "$tmp/stats" "wasmcustom.portcullis.functions-behind-apim.denied: 1"
check "stats: apim default rule 1" has "$tmp/stats" "wasmcustom.portcullis.functions-behind-apim.rule.default: 1"
check "stats: smoke allowed 2" has "$tmp/stats" "wasmcustom.portcullis.smoke.allowed: 2"
check "stats: smoke redirected 2" has "$tmp/stats" "wasmcustom.portcullis.smoke.redirected: 2"
check "stats: smoke denied 4" has "$tmp/stats" "wasmcustom.portcullis.smoke.denied: 4"
check "stats: smoke rule 'deny nine' (sanitized) 1" has "$tmp/stats" "wasmcustom.portcullis.smoke.rule.deny_nine: 1"
check "stats: smoke rule allow-doc-net 6" has "$tmp/stats" "wasmcustom.portcullis.smoke.rule.allow-doc-net: 6"
check "no wasm panic or VM failure" lacks "$tmp/envoy.log" "panicked"

kill "$envoy_pid" 2>/dev/null || true
wait "$envoy_pid" 2>/dev/null || true

# 9. An invalid policy: Envoy refuses the configuration and exits.
python3 "$here/envoy_config.py" "$tmp/bad.json" --wasm "$wasm" --admin 0 \
    --backend "$backend" --access-log "$tmp/bad-access.log" \
    --listener "bad:0:$here/broken.json"
rc=0
timeout 60 "$envoy" -c "$tmp/bad.json" --use-dynamic-base-id --concurrency 1 \
    --log-level warn >"$tmp/bad.log" 2>&1 || rc=$?
check "invalid policy: Envoy exits non-zero (not by timeout)" bash -c "[ $rc -ne 0 ] && [ $rc -ne 124 ]"
check "invalid policy: host bits problem logged" \
    has "$tmp/bad.log" 'portcullis: policy "broken" rejected: 5:'
check "invalid policy: every problem logged" \
    bash -c "[ \$(grep -c 'portcullis: policy \"broken\" rejected: ' '$tmp/bad.log') -ge 2 ]"
if [ "$failed" -ne 0 ]; then
    echo "--- envoy.log (tail)"; tail -30 "$tmp/envoy.log"
    echo "--- access.log"; cat "$tmp/access.log"
    echo "--- stats"; cat "$tmp/stats"
    echo "--- bad.log (portcullis lines)"; grep portcullis "$tmp/bad.log" || tail -20 "$tmp/bad.log"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
