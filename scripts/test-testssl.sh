#!/usr/bin/env bash
# CI check (run by ./build.sh test with the other scripts/test-*.sh): the demo
# comes up and passes its own request checks (scripts/demo.sh, stopped by
# signal), and its TLS listener passes the testssl.sh audit (scripts/testssl.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/testssl.sh
