"""Joins the parts of a scripts/bench.sh run into target/bench/report.md
(printed) and target/bench/summary.json.

Usage: report.py OUT_DIR ELAPSED_SECONDS
"""
import json
import os
import sys


def main():
    out, elapsed = sys.argv[1], int(sys.argv[2])

    def read(name):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            return f.read()

    envoy = json.loads(read("envoy.json"))
    corpus = json.loads(read("corpus.json"))
    sizes = json.loads(read("sizes.json"))
    core = read("core-decide.md").strip()
    mode = "quick smoke run" if envoy["quick"] else "full run"
    md = [
        f"# Portcullis benchmark ({mode}, {envoy['date']})",
        "",
        f"Machine: {envoy['cpu']}, {os.cpu_count()} CPUs. {envoy['envoy_version']}.",
        f"wrk: 1 thread, {envoy['wrk']['connections']} connections, {envoy['wrk']['seconds']:g} s per run, "
        f"{envoy['repeats']} interleaved round(s); "
        + ("Envoy under test pinned to CPU 0, wrk and the upstream Envoy to CPU 1." if envoy["pinned"]
           else "no CPU pinning."),
        f"Whole bench: {elapsed // 60} min {elapsed % 60} s.",
        "",
        "## Envoy, side by side",
        "",
        read("envoy.md").strip(),
        "",
        "## Core decision (cargo bench -p portcullis-core --bench decide)",
        "",
        core,
        "",
        "## Policy test corpus through the filter under wasmtime (release CLI)",
        "",
        f"{corpus['passed']} cases passed, {corpus['failed']} failed, {corpus['files']} files: "
        f"module compile {corpus['compile_ms']} ms, all cases {corpus['run_ms']} ms "
        f"({corpus['run_ms'] * 1000 / max(corpus['passed'] + corpus['failed'], 1):.1f} µs per case).",
        "",
        "## wasm binaries",
        "",
        "| file | bytes | gzip -9 |",
        "|---|---:|---:|",
    ]
    for name, s in sizes.items():
        md.append(f"| {name} | {s['bytes']:,} | {s['gzip']:,} |")
    md += [
        "",
        "## Host calls and wasm instructions per request (wasmtime host, bench/hostcalls)",
        "",
        "| module | host calls | fuel (≈ wasm instructions) | properties read | properties set |",
        "|---|---:|---:|---|---|",
    ]
    calls = []
    memory = None
    load = None
    for line in read("hostcalls.jsonl").splitlines():
        if line.startswith('{"memory"'):
            memory = json.loads(line)
        elif line.startswith('{"load"'):
            load = json.loads(line)
        elif line.startswith("{"):
            c = json.loads(line)
            calls.append(c)
            md.append(f"| {c['module']} | {c['host_calls']} | {c['fuel']:,} | "
                      f"{', '.join(c['properties_read'])} | {', '.join(c['properties_set'])} |")
    if memory:
        md += ["", f"Peak wasm linear memory (configure + one request; stays resident in every worker's VM): "
               f"empty filter {memory['empty_filter_linear_bytes'] / 2**20:.2f} MiB, Portcullis with "
               f"{os.path.basename(memory['memory'])} {memory['filter_linear_bytes'] / 2**20:.2f} MiB."]
    md += ["", "## Load of the largest legal policy (3,997 rules, ~200,000 prefixes)", ""]
    try:
        md.append(read("core-largest.md").strip())
    except OSError:
        md.append("(native figure missing)")
    if load:
        md.append("")
        md.append(f"In the filter under wasmtime (configure: instantiate + proxy_on_configure, {load['bytes']:,} bytes): "
                  f"{load['wasmtime_ms']:.0f} ms median of 3 ({load['wasmtime_ms_min']:.0f}-{load['wasmtime_ms_max']:.0f}); "
                  f"linear memory afterwards {load['linear_bytes'] / 2**20:.2f} MiB; "
                  f"{load.get('configure_fuel', 0):,} wasm instructions (fuel), which machine load does not move.")
    text = "\n".join(md) + "\n"
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    summary = {
        "envoy_goals": envoy["goals"],
        "envoy_rss_derived_kb": envoy["rss_derived_kb"],
        "corpus": {k: corpus[k] for k in ("engine", "files", "passed", "failed", "compile_ms", "run_ms")},
        "sizes": sizes,
        "hostcalls": calls,
        "linear_memory": memory,
        "largest_policy_load": load,
        "elapsed_s": elapsed,
    }
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    print()
    print(text)
    print(f"(written: {out}/report.md, {out}/envoy.json, {out}/summary.json)")


if __name__ == "__main__":
    main()
