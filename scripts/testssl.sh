#!/usr/bin/env bash
# TLS and header audit of the demo's TLS listener with Debian's testssl.sh.
#
#   scripts/testssl.sh
#
# Starts scripts/demo.sh in the background (Envoy + the Portcullis filter +
# the stand-in backend, on loopback), runs testssl.sh against its TLS
# listener (protocols, cipher categories, forward secrecy, every cipher per
# protocol, server defaults, HTTP headers; about 40 s on loopback), saves the
# reports as target/artifacts/testssl.{json,txt}, stops the demo, and FAILS
# unless:
#   - no protocol below TLS 1.2 is offered;
#   - every cipher offered is forward secret and AEAD (TLS 1.2: ECDHE/DHE
#     with GCM, CHACHA20-POLY1305 or CCM; TLS 1.3 suites are AEAD);
#   - HSTS is present with max-age >= 31536000;
#   - no Server banner and no X-Powered-By / application banner.
# testssl.sh connects from 127.0.0.1, which the sample policy does not
# allow: the headers it audits are those of the filter's 403 local reply
# (hardened like every response); the demo itself checks a forwarded
# response's headers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
art=$root/target/artifacts
mkdir -p "$art"

if ! command -v testssl >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends testssl.sh
fi

demo_log=$art/testssl-demo.log
DEMO_SECONDS=900 scripts/demo.sh >"$demo_log" 2>&1 &
demo=$!
stop_demo() {
    kill "$demo" 2>/dev/null || true
    wait "$demo" 2>/dev/null || true
}
trap stop_demo EXIT

url=""
for _ in $(seq 1 3000); do # the demo builds first: up to 5 min, polled
    url=$(sed -n 's/^  HTTPS listener  \(https:[^ ]*\).*/\1/p' "$demo_log")
    [ -n "$url" ] && grep -q '^demo: running' "$demo_log" && break
    if ! kill -0 "$demo" 2>/dev/null; then
        echo "testssl: the demo exited:" >&2; cat "$demo_log" >&2; exit 1
    fi
    sleep 0.1
done
[ -n "$url" ] || { echo "testssl: the demo did not come up" >&2; cat "$demo_log" >&2; exit 1; }

rm -f "$art/testssl.json"
echo "testssl: auditing $url (report: target/artifacts/testssl.{json,txt})"
# Exit status of testssl.sh counts findings (e.g. the self-signed cert); the
# verdict below comes from the JSON report instead.
testssl --warnings batch --color 0 --quiet --protocols --std --fs --cipher-per-proto --headers \
    --server-defaults --jsonfile "$art/testssl.json" "$url/" >"$art/testssl.txt" 2>&1 || true
stop_demo
trap - EXIT

python3 - "$art/testssl.json" <<'PY'
import json, re, sys
try:
    findings = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"testssl: no JSON report: {e}")
by_id = {}
for f in findings:
    by_id.setdefault(f.get("id", ""), []).append(f.get("finding", ""))
bad = []
def one(i):
    v = by_id.get(i)
    if not v:
        bad.append(f"{i}: missing from the report")
        return ""
    return v[0]
for p in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"]:
    if not one(p).startswith("not offered"):
        bad.append(f"{p} offered: {one(p)}")
if not one("TLS1_2").startswith("offered"):
    bad.append(f"TLS 1.2 not offered: {one('TLS1_2')}")
ciphers = [(i, v[0]) for i, v in by_id.items() if i.startswith("cipher-")]
if not ciphers:
    bad.append("no cipher list in the report")
for i, f in ciphers:
    m = re.match(r"^cipher-(ssl2|ssl3|tls1|tls1_1|tls1_2|tls1_3)_x", i)
    proto = m.group(1) if m else "?"
    name = f.split()[3] if len(f.split()) > 3 else f
    if proto == "tls1_3":
        continue
    if proto != "tls1_2":
        bad.append(f"cipher offered below TLS 1.2: {f}")
    elif not (re.match(r"^(ECDHE|DHE)-", name) and re.search(r"(GCM|CHACHA20-POLY1305|CCM)", name)):
        bad.append(f"non forward-secret or non-AEAD cipher offered: {f}")
for c in ["cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA"]:
    if c in by_id and not one(c).startswith("not offered"):
        bad.append(f"{c}: {one(c)}")
m = re.search(r"=(\d+) seconds", one("HSTS_time"))
if not m or int(m.group(1)) < 31536000:
    bad.append(f"HSTS missing or max-age < 31536000: {one('HSTS_time')} {by_id.get('HSTS', '')}")
if not one("banner_server").startswith("No Server banner"):
    bad.append(f"Server banner: {one('banner_server')}")
if not one("banner_application").startswith("No application banner"):
    bad.append(f"application banner: {one('banner_application')}")
if any("x-powered-by" in f.lower() for v in by_id.values() for f in v):
    bad.append("X-Powered-By seen")
print(f"testssl: {len(ciphers)} ciphers offered: " + ", ".join(f.split()[3] for _, f in ciphers if len(f.split()) > 3))
if bad:
    print("testssl: FAILED")
    for b in bad:
        print("  - " + b)
    sys.exit(1)
print("testssl: OK (TLS >= 1.2 only, forward-secret AEAD ciphers only, HSTS max-age >= 1 year, no Server / X-Powered-By)")
PY
