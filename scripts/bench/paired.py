"""Paired comparisons for the Envoy bench (imported by envoy_bench.py).

The interleaved rounds measure every variant once per round, so two variants
compared are up to a round apart in time, and a shared machine's load moves
within a round. A paired block measures the baseline and the variant
back to back in the order base, variant, variant, base (ABBA). A load that
rises or falls steadily over the block then weighs on both sides alike. The
block's ratio is the variant's CPU per request over the baseline's (sums of
the two runs each). The median over the blocks, with its quartiles, is the
paired figure. It sits beside the ratio of medians from the rounds and does
not replace it.
"""

import statistics

import goals as goals_


def pairs_for(order, sizes, att):
    """The comparisons the goals name, among the variants that run."""
    want = [("d", f"c@{n}") for n in sizes]
    want += [("d", f"ctrace@{att}"), ("d", f"cbatch@{att}"), (f"b2@{att}", f"c@{att}")]
    # Attribution: the client address read alone, and Portcullis over the
    # empty filter making the same host calls (what the guest's own work adds).
    want += [("d", "dP"), ("dN", f"c@{att}")]
    return [(b, v) for b, v in want if b in order and v in order]


def run(pairs, protos, blocks, measure, log):
    """`measure(key, proto)` runs one measurement and returns its dict."""
    out = []
    for proto in protos:
        for base, variant in pairs:
            ratios = []
            for i in range(blocks):
                cpu = [measure(k, proto)["cpu_us_per_req"] for k in (base, variant, variant, base)]
                ratios.append((cpu[1] + cpu[2]) / (cpu[0] + cpu[3]))
                log(f"  paired {proto} {variant} / {base} block {i + 1}/{blocks}: {ratios[-1]:.3f}")
            q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
            out.append({"protocol": proto, "base": base, "variant": variant, "blocks": blocks,
                        "ratios": ratios, "median": statistics.median(ratios), "q1": q1, "q3": q3,
                        "min": min(ratios), "max": max(ratios)})
    return out


def goals(results, sizes, protos):
    """The issue's CPU goals, judged on the paired medians."""
    g = []
    for proto in protos:
        def ratio(variant, base):
            return next((r["median"] for r in results
                         if r["protocol"] == proto and r["variant"] == variant and r["base"] == base), None)
        g += goals_.vs_empty("paired CPU/req", ratio, sizes, proto) + goals_.vs_trie("paired CPU/req", ratio, proto)
    return g


def markdown(results, labels):
    if not results:
        return []
    blocks = results[0]["blocks"]
    md = [f"Paired blocks (base, variant, variant, base; {blocks} blocks per comparison): "
          "CPU per request of the variant over the base.", "",
          "| variant | over | protocol | median | quartiles | min-max |", "|---|---|---|---:|---:|---:|"]
    for r in results:
        def label(key):
            name, _, n = key.partition("@")
            return labels.get(name, name) + (f" @{n}" if n else "")
        proto = "HTTP/2" if r["protocol"] == "h2" else "HTTP/1.1"
        md.append(f"| {label(r['variant'])} | {label(r['base'])} | {proto} | {r['median']:.3f} "
                  f"| {r['q1']:.3f}-{r['q3']:.3f} | {r['min']:.3f}-{r['max']:.3f} |")
    md.append("")
    return md
