"""Instructions per request for the Envoy bench (imported by envoy_bench.py).

CPU time per request moves by 20 % from one second to the next on a shared
VM, which is more than the few percent the goals are about. This phase
counts instead: every variant's Envoy runs under valgrind's callgrind, with
instrumentation off while it starts. For each protocol the Envoy serves a
warm-up, then `n1` and `n2` requests (h2load, 4 connections). Callgrind
counts the instructions the Envoy process executes in user space during
each batch (every thread, V8's JIT code included; the kernel is not
counted). The count per request is (I(n2) - I(n1)) / (n2 - n1), which
cancels what a batch costs whatever its size. The two such differences of a
variant agree to within a few tenths of a percent. The instructions are
counted, not timed: cache misses, syscalls and the kernel's share of
networking (the same for every variant) are left out. So the ratios here are
stricter than CPU-time ratios, whose kernel share dilutes them.
"""

import os
import shutil
import statistics
import subprocess

import goals as goals_

N1, N2, WARM = 400, 1200, 300


def available():
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None \
        and shutil.which("h2load") is not None


def wrap(out_file):
    """The command prefix that runs an Envoy under callgrind."""
    return ["valgrind", "--tool=callgrind", "--smc-check=all-non-file", "--instr-atstart=no",
            f"--callgrind-out-file={out_file}"]


def _ctl(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True, timeout=120)


def _load(port, proto, n, cpu):
    cmd = ["h2load", "-n", str(n), "-c", "4", "-m", "1", f"http://127.0.0.1:{port}/bench"]
    if proto == "h1":
        cmd.insert(1, "--h1")
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    for line in out.splitlines():
        if line.strip().startswith("status codes:"):
            ok = int(line.split(":", 1)[1].split()[0])
            if ok != n:
                raise RuntimeError(f"h2load: {ok} of {n} responses were 2xx: {line}")
            return
    raise RuntimeError(f"h2load printed no result: {out}")


def _batch(env, out_file, proto, n, cpu):
    """Instructions the Envoy executes while it serves `n` requests."""
    _ctl(env.proc.pid, "-i", "on")
    _ctl(env.proc.pid, "-z")
    _load(env.port, proto, n, cpu)
    before = set(_dumps(out_file))
    _ctl(env.proc.pid, "-d")
    _ctl(env.proc.pid, "-i", "off")
    new = [f for f in _dumps(out_file) if f not in before]
    if not new:
        raise RuntimeError(f"callgrind wrote no dump for {env.key}")
    total = None
    with open(new[0]) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
                break
    os.remove(new[0])
    if not total:
        raise RuntimeError(f"callgrind counted nothing for {env.key}")
    return total


def _dumps(out_file):
    d, base = os.path.split(out_file)
    return [os.path.join(d, f) for f in os.listdir(d) if f.startswith(base + ".")]


def run(keys, start, protos, cpu, log):
    """`start(key, prefix)` starts a variant's Envoy with a command prefix and
    returns it (not yet ready). All start at once; each is then measured
    alone."""
    envs = {}
    results = {}
    try:
        for key in keys:
            envs[key] = start(key, wrap)
        for key in keys:
            envs[key].wait_ready(timeout=900)
        log(f"  callgrind: {len(keys)} Envoys ready")
        for key in keys:
            env = envs[key]
            out_file = env.callgrind_out
            results[key] = {}
            for proto in protos:
                _ctl(env.proc.pid, "-i", "on")
                _load(env.port, proto, WARM, cpu)
                _ctl(env.proc.pid, "-i", "off")
                diffs = []
                for _ in range(2):
                    i1 = _batch(env, out_file, proto, N1, cpu)
                    i2 = _batch(env, out_file, proto, N2, cpu)
                    diffs.append((i2 - i1) / (N2 - N1))
                results[key][proto] = {"per_request": statistics.median(diffs), "diffs": diffs}
                log(f"  callgrind {proto} {key:>14}: {statistics.median(diffs):,.0f} instructions/request "
                    f"({', '.join(f'{x:,.0f}' for x in diffs)})")
            env.stop()
    finally:
        for env in envs.values():
            env.stop()
    return results


def goals(results, sizes, protos):
    g = []
    for proto in protos:
        def ratio(variant, base):
            v, b = results.get(variant, {}).get(proto), results.get(base, {}).get(proto)
            return v["per_request"] / b["per_request"] if v and b else None
        g += goals_.vs_empty("instructions/req", ratio, sizes, proto) \
            + goals_.vs_trie("instructions/req", ratio, proto)
    return g


def native_goals(results, sizes, protos):
    """Issue 23: the native module (n) against native RBAC (b2) at the same
    size (milestone <= 1.00, goal <= 0.95), flat in the policy size
    (<= 1.01 from the smallest to the largest), and its distance from the
    empty module (e)."""
    g = []
    for proto in protos:
        def per(k):
            x = results.get(k, {}).get(proto)
            return x["per_request"] if x else None
        for n in sizes:
            v, b = per(f"n@{n}"), per(f"b2@{n}")
            if v and b:
                g.append({"goal": f"instructions/req (n)@{n} <= 0.95x (b2)@{n}, {proto} (milestone 1.00x)",
                          "ratio": v / b, "limit": 0.95, "met": v / b <= 0.95,
                          "milestone_1_00": v / b <= 1.00})
        lo, hi = per(f"n@{min(sizes)}"), per(f"n@{max(sizes)}")
        if lo and hi:
            g.append({"goal": f"instructions/req (n) flat: (n)@{max(sizes)} <= 1.01x (n)@{min(sizes)}, {proto}",
                      "ratio": hi / lo, "limit": 1.01, "met": hi / lo <= 1.01})
        e = per("e")
        for n in sizes:
            v = per(f"n@{n}")
            if v and e:
                g.append({"goal": f"instructions/req (n)@{n} over (e), {proto} (information)",
                          "ratio": v / e, "limit": None, "met": True})
    return g


def markdown(results, protos, labels):
    if not results:
        return []
    names = {"h1": "HTTP/1.1", "h2": "HTTP/2"}
    head = "| variant | " + " | ".join(f"{names[p]} instructions/req | ÷ (d) | ÷ (a)" for p in protos) + " |"
    md = [f"Instructions per request (callgrind, user space, every thread; "
          f"(I({N2}) - I({N1})) / {N2 - N1}, median of 2):", "", head,
          "|---|" + "---:|---:|---:|" * len(protos)]
    for key, by in results.items():
        name, _, n = key.partition("@")
        cells = []
        for p in protos:
            x = by.get(p)
            d = results.get("d", {}).get(p)
            a = results.get("a", {}).get(p)
            if not x:
                cells.append("- | - | -")
                continue
            cells.append(f"{x['per_request']:,.0f} | "
                         + (f"{x['per_request'] / d['per_request']:.3f}" if d else "-") + " | "
                         + (f"{x['per_request'] / a['per_request']:.3f}" if a else "-"))
        md.append(f"| {labels.get(name, name)}{' @' + n if n else ''} | " + " | ".join(cells) + " |")
    md.append("")
    return md

