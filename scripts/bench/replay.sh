#!/usr/bin/env bash
# The replay bench (issue 24): a generated NSG flow log (version 2) of 1M and
# 10M tuples, replayed (read, judged by the layered-security pair through the
# core, tallied) against a serde_json pass that reads every value of the
# same file and keeps nothing. Each pass is its own process (its own peak
# RSS). Prints wall and CPU seconds, the ratios and the peak RSS.
#
#   scripts/bench/replay.sh [DIR]   (DIR: where the logs go, default /tmp/portcullis-replay-bench)
#
# The ratio goal: replay <= 1.5x the serde_json pass; RSS < 64 MiB whatever
# the size. Wall times need an otherwise idle machine; CPU seconds are the
# work done, on every thread (10 ms resolution).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="${1:-/tmp/portcullis-replay-bench}"
mkdir -p "$DIR"
cargo build -q --release -p portcullis-replay --features std --example replay_bench
BIN="${CARGO_TARGET_DIR:-target}/release/examples/replay_bench"
OLD=policy-samples/layered-security.json
NEW=tests/replay/layered-security.no-fe1ase.json
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
for n in 1000000 10000000; do
    log="$DIR/nsg-$n.json"
    [[ -s "$log" ]] || "$BIN" gen "$log" "$n"
    size=$(stat -c %s "$log")
    serde=$("$BIN" serde "$log")
    one=$("$BIN" replay "$log" "$OLD" "$NEW" 1)
    all=$("$BIN" replay "$log" "$OLD" "$NEW")
    echo "== $n tuples, $((size / 1048576)) MiB"
    echo "serde_json pass:   $serde"
    echo "replay, 1 thread:  $one"
    echo "replay, all cores: $all"
    python3 - "$serde" "$one" "$all" <<'PY'
import re, sys
def f(s, k):
    m = re.search(k + r"=([0-9.]+)", s)
    return float(m.group(1)) if m else float("nan")
serde, one, all_ = sys.argv[1:]
print(f"ratio wall: 1 thread {f(one,'seconds')/f(serde,'seconds'):.2f}x, all cores {f(all_,'seconds')/f(serde,'seconds'):.2f}x")
print(f"ratio CPU:  1 thread {f(one,'cpu_seconds')/max(f(serde,'cpu_seconds'),0.01):.2f}x, all cores {f(all_,'cpu_seconds')/max(f(serde,'cpu_seconds'),0.01):.2f}x")
print(f"peak RSS: replay {max(f(one,'peak_rss_kib'), f(all_,'peak_rss_kib'))/1024:.1f} MiB, serde {f(serde,'peak_rss_kib')/1024:.1f} MiB")
PY
done
