"""The issue's two CPU goals, judged on one measure (imported by
envoy_bench.py, paired.py and instructions.py): (c) within 1.05x of the
empty wasm filter (d) at every size, with the 1.10x milestone, and (c) at
10,000 CIDRs within 1.15x of the IP-trie RBAC (b2)."""


def tag(proto):
    return " HTTP/2" if proto == "h2" else " HTTP/1.1"


def vs_empty(what, ratio, sizes, proto):
    """`ratio(variant, base)`: the measured ratio, or None if not measured."""
    g = []
    for n in sizes:
        r = ratio(f"c@{n}", "d")
        if r is not None:
            g.append({"goal": f"{what} (c)@{n} <= 1.05 x (d){tag(proto)}", "ratio": r, "limit": 1.05,
                      "met": r <= 1.05, "milestone_1_10": r <= 1.10})
    return g


def vs_trie(what, ratio, proto):
    r = ratio("c@10000", "b2@10000")
    if r is None:
        return []
    return [{"goal": f"{what} (c)@10000 <= 1.15 x (b2)@10000{tag(proto)}", "ratio": r, "limit": 1.15,
             "met": r <= 1.15}]
