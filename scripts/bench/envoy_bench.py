"""(One file of ~950 lines on purpose: the whole benchmark protocol, from
process pinning to the report, reads top to bottom in one place.)

Side-by-side Envoy benchmark: no policy, native RBAC (classic and matcher
API), an empty proxy-wasm filter, and the Portcullis filter, at several CIDR
list sizes, interleaved in one run.

Called by scripts/bench.sh (which builds everything first); usable alone:

  python3 scripts/bench/envoy_bench.py --envoy ENVOY --filter dist/portcullis_filter.wasm \
      --empty EMPTY.wasm --out target/bench [--quick]

Every variant runs in its own Envoy process (--concurrency 1, pinned to CPU 0
when taskset works). All of them are started first, checked (allowed client
127.0.0.1 gets 200 with the right response headers; for the policy variants a
client on 127.0.0.2 gets 403), warmed, and then measured in rounds:
a d b1@10 b2@10 c@10 ... a d ... so drift hits every variant alike. The load
generator is wrk (1 thread, fixed connections, fixed duration) pinned to CPU 1
with the upstream (a second Envoy answering with a direct_response that
carries Server, X-Powered-By and X-AspNet-Version).

Per run: requests/s, p50 and p99 latency (wrk), Envoy CPU time per request
(utime+stime delta of /proc/<pid>/stat over the run, divided by requests).
Per variant: median and min-max over the rounds, and ratios of medians to (a).
Then Envoy's VmRSS with no filter, the empty filter and the Portcullis filter
at 10,000 CIDRs, at --concurrency 1 and 2.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import goals as goals_
import instructions
import paired

HSTS = "max-age=31536000; includeSubDomains"
FINGERPRINTS = ["X-Powered-By", "X-AspNet-Version", "Server"]
UPSTREAM_HEADERS = [
    ("X-Powered-By", "ASP.NET"),
    ("X-AspNet-Version", "4.0.30319"),
    ("Content-Type", "text/plain; charset=utf-8"),
]
UPSTREAM_SERVER = "Microsoft-IIS/10.0"
UPSTREAM_BODY = "Hello from the stand-in function\n"
ALLOWED = "127.0.0.1"
DENIED = "127.0.0.2"

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"duration_us":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.2f,"max_us":%d}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- inputs


def cidr_list(n, seed=20240601):
    """n distinct IPv4 CIDRs (strings), the allowed client 127.0.0.1/32 last.

    The others are random prefixes (/16../32) outside 0/8, 127/8 and 224/3,
    so 127.0.0.2 matches none of them. The client is last on purpose: classic
    RBAC tries principals in order, so this is its worst case (a client in
    the middle of the list costs it half as much); the trie and the
    Portcullis interval table do not depend on the order.
    """
    rnd = random.Random(seed + n)
    seen = set()
    out = []
    while len(out) < n - 1:
        plen = rnd.choice([16, 20, 22, 24, 24, 24, 28, 32, 32])
        addr = rnd.getrandbits(32)
        first = addr >> 24
        if first in (0, 127) or first >= 224:
            continue
        net = addr & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
        if (net, plen) in seen:
            continue
        seen.add((net, plen))
        out.append((net, plen))
    text = [f"{socket.inet_ntoa(net.to_bytes(4, 'big'))}/{plen}" for net, plen in out]
    text.append(f"{ALLOWED}/32")
    return text


def split_cidr(c):
    a, p = c.split("/")
    return {"address_prefix": a, "prefix_len": int(p)}


def policy_json(cidrs):
    """The Portcullis policy equivalent to the native variants.

    HSTS is a `set` op, not the `hsts` section: the bench is plain HTTP, where
    `hsts` (by the spec) adds nothing, while Envoy's response_headers_to_add
    adds the header on every response. With the op both do the same work.
    """
    return json.dumps({
        "name": f"bench-{len(cidrs)}",
        "network": {
            "default_access": "deny",
            "rules": [{"name": "allow-list", "priority": 100, "access": "allow", "source": cidrs}],
        },
        "response_headers": [{"remove": h} for h in FINGERPRINTS]
        + [{"set": "Strict-Transport-Security", "value": HSTS, "exists": "override"}],
    })


def with_scopes(doc, n=20):
    """Issue 12: the same policy with `n` scopes (host, path and method)
    that the bench's requests never match, so every request normalizes its
    host and path and tries all of them before the top level decides,
    exactly as without scopes."""
    d = json.loads(doc)
    d["scopes"] = [{"name": f"api{i}", "match": {
        "hosts": [f"api{i}.bench.test"], "paths": [f"/v{i}/*"], "methods": ["GET", "POST"]}}
        for i in range(n)]
    return json.dumps(d)


def largest_policy(rules=3997, per_rule=50, seed=20261201):
    """The largest legal policy in rules: priorities 100..4096 are unique, so
    3,997 rules; 50 random IPv4 prefixes each (~200,000 in all, ~4 MB of
    JSON, under the 8 MiB limit). For the load-time figures."""
    rnd = random.Random(seed)
    out = []
    for i in range(rules):
        src = set()
        while len(src) < per_rule:
            plen = rnd.choice([16, 20, 22, 24, 24, 24, 28, 32, 32])
            addr = rnd.getrandbits(32)
            if addr >> 24 in (0, 127) or addr >> 24 >= 224:
                continue
            net = addr & ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
            src.add(f"{socket.inet_ntoa(net.to_bytes(4, 'big'))}/{plen}")
        out.append({"name": f"r{i}", "priority": 100 + i, "access": "allow" if i % 3 else "deny",
                    "source": sorted(src)})
    return json.dumps({"name": "largest", "network": {"default_access": "deny", "rules": out}})


# ---------------------------------------------------------------- Envoy configs

# Variants that load the Portcullis filter.
PORTCULLIS = ("c", "cnone", "cnet", "ctrace", "cbatch", "cscopes")
# Variants that load the empty filter, with the call groups it makes
# (bench/empty-filter): the attribution of the filter's host calls.
EMPTY_CALLS = {
    "d": "",
    "dH": "host-calls",          # the filter's 8 calls before this round of work
    "dP": "peer",                # the client address, which every decision needs
    "dC": "counters",            # lever 1: 2 counter increments per request
    "dT": "trace",               # lever 2: the trace property
    "dE": "edits",               # lever 3: 3 removes + 1 replace, one call each
    "dB": "batch",               # lever 3: the same as map read + map write
    "dN": "peer,trace,edits",    # the filter's 6 calls now
}
# The filter built with several response edits as one map read + rewrite
# (--filter-batch).
FILTER_BATCH = None
# Variants whose responses keep the upstream's fingerprints (no header ops).
NO_HEADER_OPS = ("a", "d", "cnone", "cnet", "dP", "dC", "dT", "e")

# The native module (crates/portcullis-envoy): (n) with the same policy as
# (c), (e) its bench-empty build, the floor of any dynamic module. Both are
# copied into one directory, Envoy's ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
NATIVE = {"n": "portcullis_envoy", "e": "portcullis_envoy_empty"}
NATIVE_DIR = None
T_DYNAMIC = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"

T_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
T_RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
T_WASM = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
T_ACTION = "type.googleapis.com/envoy.config.rbac.v3.Action"
T_DIRECT_IP = "type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.DirectSourceIPInput"
T_IP = "type.googleapis.com/envoy.extensions.matching.input_matchers.ip.v3.Ip"


def bootstrap(admin_port, listener):
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": listener,
    }


def hcm(name, route_config, filters, extra=None):
    h = {
        "@type": T_HCM,
        "stat_prefix": name,
        "route_config": route_config,
        "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {"@type": T_ROUTER}}],
    }
    h.update(extra or {})
    return {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": h}]}


def listener(name, port, chain):
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [chain],
    }


def upstream_config(admin_port, port):
    """A second Envoy as the loopback upstream: a direct_response with the
    fingerprint headers of an IIS/ASP.NET backend."""
    route = {"virtual_hosts": [{
        "name": "fn", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": UPSTREAM_BODY}}}],
        "response_headers_to_add": [
            {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
            for k, v in UPSTREAM_HEADERS
        ],
    }]}
    chain = hcm("upstream", route, [], {"server_name": UPSTREAM_SERVER})
    return bootstrap(admin_port, {"listeners": [listener("upstream", port, chain)]})


def proxy_config(variant, cidrs, admin_port, port, upstream_port, filter_wasm, empty_wasm):
    """The Envoy under test for one variant (a, b1, b2, c, d)."""
    vhost = {"name": "all", "domains": ["*"],
             "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}
    filters = []
    if variant in ("b1", "b2"):
        vhost["response_headers_to_remove"] = [h.lower() for h in FINGERPRINTS]
        vhost["response_headers_to_add"] = [{
            "header": {"key": "strict-transport-security", "value": HSTS},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }]
    if variant == "b1":
        filters.append({"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": T_RBAC,
            "rules": {"action": "ALLOW", "policies": {"allow-list": {
                "permissions": [{"any": True}],
                "principals": [{"direct_remote_ip": split_cidr(c)} for c in cidrs],
            }}},
        }})
    elif variant == "b2":
        filters.append({"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": T_RBAC,
            "matcher": {
                "matcher_list": {"matchers": [{
                    "predicate": {"single_predicate": {
                        "input": {"name": "envoy.matching.inputs.direct_source_ip",
                                  "typed_config": {"@type": T_DIRECT_IP}},
                        "custom_match": {"name": "envoy.matching.matchers.ip", "typed_config": {
                            "@type": T_IP, "stat_prefix": "allow_list",
                            "cidr_ranges": [split_cidr(c) for c in cidrs]}},
                    }},
                    "on_match": {"action": {"name": "allow", "typed_config": {
                        "@type": T_ACTION, "name": "allow-list", "action": "ALLOW"}}},
                }]},
                "on_no_match": {"action": {"name": "deny", "typed_config": {
                    "@type": T_ACTION, "name": "default", "action": "DENY"}}},
            },
        }})
    elif variant in NATIVE:
        filters.append({"name": "portcullis", "typed_config": {
            "@type": T_DYNAMIC,
            "dynamic_module_config": {"name": NATIVE[variant]},
            "filter_name": "portcullis",
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                              "value": policy_json(cidrs) if variant == "n" else "{}"},
        }})
    elif variant in PORTCULLIS or variant in EMPTY_CALLS:
        portcullis = variant in PORTCULLIS
        cfg = {
            "name": "portcullis" if portcullis else "empty",
            "root_id": "portcullis" if portcullis else "empty",
            "vm_config": {
                "vm_id": "bench",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": (FILTER_BATCH if variant == "cbatch" else filter_wasm)
                                   if portcullis else empty_wasm}},
            },
        }
        if portcullis:
            doc = policy_json(cidrs)
            if variant == "cnone":
                # Attribution: the filter's fixed cost per request.
                doc = json.dumps({"name": "bench-nothing"})
            elif variant == "cnet":
                # Attribution: the decision without the response header ops.
                d = json.loads(doc)
                del d["response_headers"]
                doc = json.dumps(d)
            elif variant == "ctrace":
                # Attribution: the trace property only for denied requests.
                d = json.loads(doc)
                d["trace"] = "deny"
                doc = json.dumps(d)
            elif variant == "cscopes":
                doc = with_scopes(doc)
            cfg["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": doc}
        elif EMPTY_CALLS[variant]:
            # Attribution: some of the Portcullis filter's host calls, constant values.
            cfg["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                    "value": EMPTY_CALLS[variant]}
        filters.append({"name": "envoy.filters.http.wasm", "typed_config": {"@type": T_WASM, "config": cfg}})
    chain = hcm("bench", {"virtual_hosts": [vhost]}, filters, {
        # The same for every variant: the upstream's Server header passes
        # (and is removed by the policies), the client is the TCP peer.
        "server_header_transformation": "PASS_THROUGH",
        "use_remote_address": True,
        "skip_xff_append": True,
    })
    cluster = {
        "name": "upstream", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}},
        ]}]},
    }
    return bootstrap(admin_port, {"listeners": [listener("bench", port, chain)], "clusters": [cluster]})


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def taskset_ok():
    if not shutil.which("taskset"):
        return False
    try:
        return subprocess.run(["taskset", "-c", "1", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


class Envoy:
    def __init__(self, key, envoy, cfg, workdir, cpu=None, concurrency=1, prefix=None):
        self.key = key
        self.admin = cfg["admin"]["address"]["socket_address"]["port_value"]
        self.port = cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
        path = os.path.join(workdir, f"{key}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        self.log_path = os.path.join(workdir, f"{key}.log")
        cmd = [envoy, "-c", path, "--concurrency", str(concurrency), "--use-dynamic-base-id",
               "--log-level", "warn", "--disable-hot-restart"]
        # A command to run Envoy under (instructions.py: callgrind).
        self.callgrind_out = os.path.join(workdir, f"{key}.callgrind")
        if prefix is not None:
            cmd = prefix(self.callgrind_out) + cmd
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        self.started = time.monotonic()
        env = dict(os.environ)
        if NATIVE_DIR:
            env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = NATIVE_DIR
        with open(self.log_path, "w") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        self.ready_s = None

    def wait_ready(self, timeout=300):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Envoy {self.key} exited ({self.proc.returncode}); see {self.log_path}:\n"
                                   + tail(self.log_path))
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=2) as r:
                    if r.status == 200:
                        self.ready_s = time.monotonic() - self.started
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Envoy {self.key} not ready after {timeout}s; see {self.log_path}")

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # After the comm field: state is fields[0]; utime, stime are stat
        # fields 14 and 15, i.e. fields[11] and fields[12] here.
        return int(fields[11]) + int(fields[12])

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def get(port, source):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        c.request("GET", "/bench")
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def check_variant(key, variant, port):
    """Fails unless the variant does what it claims, as seen by a client."""
    status, h = get(port, ALLOWED)
    problems = []
    if status != 200:
        problems.append(f"allowed client got {status}")
    if variant in NO_HEADER_OPS:
        for name in FINGERPRINTS:
            if name.lower() not in h:
                problems.append(f"{name} missing without header ops")
        if "strict-transport-security" in h:
            problems.append("HSTS present without header ops")
    else:
        for name in FINGERPRINTS:
            if name.lower() in h:
                problems.append(f"{name} not removed")
        if h.get("strict-transport-security") != HSTS:
            problems.append(f"HSTS is {h.get('strict-transport-security')!r}")
    if variant in ("b1", "b2", "c", "cnet", "ctrace", "cbatch", "cscopes", "n"):
        denied, _ = get(port, DENIED)
        if denied != 403:
            problems.append(f"client {DENIED} (not listed) got {denied}, want 403")
    if problems:
        raise RuntimeError(f"variant {key}: " + "; ".join(problems))


def run_wrk(port, seconds, connections, lua, cpu):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-s", lua, f"http://127.0.0.1:{port}/bench"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk produced no result: {out.stdout}\n{out.stderr}")


def h2_time_us(text):
    """`123us`, `4.56ms`, `1.2s` -> µs."""
    for unit, scale in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * scale
    raise ValueError(text)


def run_h2load(port, seconds, connections, cpu):
    """HTTP/2 over cleartext (prior knowledge), one stream in flight per
    connection so it loads Envoy like wrk's keep-alive HTTP/1.1. h2load
    reports the mean latency, not percentiles: p50/p99 hold the mean."""
    cmd = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{seconds:g}", f"http://127.0.0.1:{port}/bench"]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    r = {"duration_us": None, "requests": 0, "errors": 0, "mean_us": 0.0}
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("finished in "):
            r["duration_us"] = h2_time_us(line.split()[2].rstrip(","))
        elif line.startswith("requests: "):
            f = line.replace(",", "").split()
            # requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout
            r["requests"] = int(f[7])
            r["errors"] += int(f[9]) + int(f[11]) + int(f[13])
        elif line.startswith("status codes: "):
            f = line.replace(",", "").split()
            r["errors"] += int(f[4]) + int(f[6]) + int(f[8])
        elif line.startswith("time for request:"):
            r["mean_us"] = h2_time_us(line.split()[5])
    if not r["duration_us"]:
        raise RuntimeError(f"h2load produced no result: {out.stdout}\n{out.stderr}")
    return {"duration_us": r["duration_us"], "requests": r["requests"], "connect": 0, "read": 0, "write": 0,
            "status": r["errors"], "timeout": 0, "p50_us": int(r["mean_us"]), "p99_us": int(r["mean_us"]),
            "mean_us": r["mean_us"]}


def load(env, seconds, connections, lua, cpu, proto):
    if proto == "h2":
        return run_h2load(env.port, seconds, connections, cpu)
    return run_wrk(env.port, seconds, connections, lua, cpu)


def measure(env, seconds, connections, lua, cpu, proto="h1"):
    clk = os.sysconf("SC_CLK_TCK")
    t0 = env.cpu_ticks()
    w = load(env, seconds, connections, lua, cpu, proto)
    t1 = env.cpu_ticks()
    errors = w["connect"] + w["read"] + w["write"] + w["status"] + w["timeout"]
    if w["requests"] == 0:
        raise RuntimeError(f"{env.key}: wrk completed no request")
    cpu_s = (t1 - t0) / clk
    wall = w["duration_us"] / 1e6
    return {
        "rps": w["requests"] / wall,
        "requests": w["requests"],
        "p50_us": w["p50_us"],
        "p99_us": w["p99_us"],
        "mean_us": w["mean_us"],
        "cpu_us_per_req": cpu_s * 1e6 / w["requests"],
        "cpu_util": cpu_s / wall,
        "errors": errors,
    }


# ---------------------------------------------------------------- main


def perf_ok():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-q", "-o", "/dev/null", "--", "true"], capture_output=True)
    return r.returncode == 0


def profile(env, seconds, connections, lua, cpu, workdir):
    """One extra run under `perf record` (cpu-clock, 1 kHz): Envoy CPU per
    request split by where it ran (Envoy's own code, the kernel, V8's JIT
    code, i.e. the wasm guest, libc). Envoy's binary is stripped, so host
    calls show up inside `envoy`, not by name."""
    data = os.path.join(workdir, f"perf-{env.key}.data")
    freq = 1000
    rec = subprocess.Popen(["perf", "record", "-q", "-F", str(freq), "-o", data, "-p", str(env.proc.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    m = measure(env, seconds, connections, lua, cpu)
    rec.send_signal(signal.SIGINT)
    rec.wait(timeout=60)
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso", "-n", "--stdio"],
                         capture_output=True, text=True)
    by = {}
    for line in rep.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].endswith("%") and parts[1].isdigit():
            dso = " ".join(parts[2:])
            if dso.startswith("[JIT]"):
                dso = "[JIT] (wasm guest)"
            by[dso] = by.get(dso, 0) + int(parts[1])
    # Samples span slightly more than the load (0.3 s before, the stop after):
    # scale to the CPU time /proc/stat measured for the run.
    total = sum(by.values()) or 1
    cpu_us = m["cpu_us_per_req"]
    split = {k: cpu_us * v / total for k, v in sorted(by.items(), key=lambda kv: -kv[1])}
    return {"cpu_us_per_req": cpu_us, "samples": total, "us_per_req_by_dso": split}


def summarize(runs):
    out = {}
    for metric in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "cpu_util"):
        vals = [r[metric] for r in runs]
        out[metric] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
    out["errors"] = sum(r["errors"] for r in runs)
    out["repeats"] = len(runs)
    return out


def fmt_spread(s, digits=1, scale=1.0):
    m, lo, hi = s["median"] * scale, s["min"] * scale, s["max"] * scale
    return f"{m:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


LABELS = {
    "a": "(a) Envoy, no policy",
    "d": "(d) empty proxy-wasm filter",
    "b1": "(b1) RBAC classic principals",
    "b2": "(b2) RBAC matcher IP trie",
    "c": "(c) Portcullis filter",
    "n": "(n) Portcullis native module",
    "e": "(e) empty native module",
    "dH": "(dH) empty filter + the filter's former 8 host calls",
    "dP": "(dP) empty filter + the source address read",
    "dC": "(dC) empty filter + 2 counter increments",
    "dT": "(dT) empty filter + trace property",
    "dE": "(dE) empty filter + 4 response edits, one call each",
    "dB": "(dB) empty filter + the same edits as map read + write",
    "dN": "(dN) empty filter + the filter's 6 host calls now",
    "cnone": "(c0) Portcullis, policy with no section",
    "cnet": "(cN) Portcullis, network rule only",
    "ctrace": "(cT) Portcullis, trace: deny",
    "cbatch": "(cB) Portcullis built with the response edits as map read + rewrite",
    "cscopes": "(cS) Portcullis, the same policy with 20 scopes (none matches: all tried)",
}


def table(results, order):
    base = results["a"]["summary"]
    lines = [
        "| variant | CIDRs | req/s median (min-max) | p50 µs | p99 µs | CPU µs/req median (min-max) | req/s ÷ (a) | CPU/req ÷ (a) | Envoy CPU use |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in order:
        r = results[key]
        s = r["summary"]
        lines.append(
            f"| {LABELS[r['variant']]} | {r['cidrs'] or '-'} | {fmt_spread(s['rps'], 0)} "
            f"| {fmt_spread(s['p50_us'], 0)} | {fmt_spread(s['p99_us'], 0)} "
            f"| {fmt_spread(s['cpu_us_per_req'], 2)} "
            f"| {s['rps']['median'] / base['rps']['median']:.3f} "
            f"| {s['cpu_us_per_req']['median'] / base['cpu_us_per_req']['median']:.3f} "
            f"| {s['cpu_util']['median'] * 100:.0f}% |")
    return "\n".join(lines)


def goals(results, sizes, proto="h1"):
    """The issue's targets, as measured ratios of medians."""
    tag = goals_.tag(proto)

    def cpu(k):
        return results[k]["summary"]["cpu_us_per_req"]["median"] if k in results else None

    def rps(k):
        return results[k]["summary"]["rps"]["median"] if k in results else None

    def ratio(variant, base):
        v, b = cpu(variant), cpu(base)
        return v / b if v and b else None

    g = goals_.vs_empty("CPU/req", ratio, sizes, proto)
    if "c@10000" in results and "b1@10000" in results:
        r = rps("c@10000") / rps("b1@10000")
        g.append({"goal": f"req/s (c)@10000 >= 3 x (b1)@10000{tag}", "ratio": r, "limit": 3.0, "met": r >= 3.0})
        # The same from CPU per request: the throughput one Envoy core could
        # give if nothing else ran on it (the measured req/s above is capped
        # by the load generator and upstream sharing the other core).
        r = cpu("b1@10000") / cpu("c@10000")
        g.append({"goal": f"capacity (1 / CPU per req) (c)@10000 >= 3 x (b1)@10000{tag}", "ratio": r, "limit": 3.0,
                  "met": r >= 3.0})
    g += goals_.vs_trie("CPU/req", ratio, proto)
    if "c@100000" in results and "c@10" in results:
        r = cpu("c@100000") / cpu("c@10")
        g.append({"goal": f"CPU/req (c)@100000 within 5% of (c)@10{tag}", "ratio": r, "limit": 1.05,
                  "met": abs(r - 1) <= 0.05})
        r = rps("c@100000") / rps("c@10")
        g.append({"goal": f"req/s (c)@100000 within 5% of (c)@10{tag}", "ratio": r, "limit": 0.95,
                  "met": abs(r - 1) <= 0.05})
    return g


def rss_phase(args, workdir, upstream_port, filter_wasm, empty_wasm, cidrs, repeats):
    """VmRSS (kB) of Envoy with no filter, the empty filter and Portcullis at
    the 10,000-CIDR policy, at --concurrency 1, 2 and 4, after 1 s of load;
    the median of `repeats` fresh processes each."""
    out = []
    lua = os.path.join(workdir, "report.lua")
    for conc in (1, 2, 4):
        for variant in ("a", "d", "c"):
            idle, loaded = [], []
            for i in range(repeats):
                key = f"rss-{variant}-{conc}-{i}"
                cfg = proxy_config(variant, cidrs, free_port(), free_port(), upstream_port, filter_wasm, empty_wasm)
                env = Envoy(key, args.envoy, cfg, workdir, cpu=None, concurrency=conc)
                try:
                    env.wait_ready()
                    idle.append(env.rss_kb())
                    # Enough connections that every worker gets some
                    # (SO_REUSEPORT spreads them).
                    run_wrk(env.port, 1, max(args.connections, 16), lua, None)
                    loaded.append(env.rss_kb())
                finally:
                    env.stop()
            r = {"variant": variant, "cidrs": len(cidrs) if variant == "c" else None, "concurrency": conc,
                 "rss_kb_idle": statistics.median(idle), "rss_kb_loaded": statistics.median(loaded),
                 "rss_kb_loaded_all": loaded}
            out.append(r)
            log(f"  rss {variant} --concurrency {conc}: idle {r['rss_kb_idle']:.0f} kB, "
                f"after load {r['rss_kb_loaded']:.0f} kB (all: {loaded})")
    by = {(r["variant"], r["concurrency"]): r["rss_kb_loaded"] for r in out}

    def per_worker(v, hi):
        return (by[(v, hi)] - by[(v, 1)]) / (hi - 1)

    derived = {
        "filter_kb_at_conc1_vs_none": by[("c", 1)] - by[("a", 1)],
        "filter_kb_at_conc1_vs_empty": by[("c", 1)] - by[("d", 1)],
        # What one more worker costs with the filter, beyond what it costs
        # without any filter (or with the empty one): from 1 to 2 workers,
        # and the slope from 1 to 4.
        "filter_kb_per_worker_vs_none": per_worker("c", 2) - per_worker("a", 2),
        "filter_kb_per_worker_vs_empty": per_worker("c", 2) - per_worker("d", 2),
        "filter_kb_per_worker_vs_none_1to4": per_worker("c", 4) - per_worker("a", 4),
        "filter_kb_per_worker_vs_empty_1to4": per_worker("c", 4) - per_worker("d", 4),
    }
    return out, derived


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--envoy", required=True)
    ap.add_argument("--filter", required=True)
    ap.add_argument("--empty", required=True)
    ap.add_argument("--filter-batch", help="the filter built with --features edits-batch (variant cB)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--native", help="dist/libportcullis_envoy.so: variants (n)")
    ap.add_argument("--native-empty", help="the module built with --features bench-empty: variant (e)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--sizes")
    ap.add_argument("--perf", action="store_true", help="profile a few variants with perf (if it works)")
    ap.add_argument("--protocols", default="h1,h2", help="h1 (wrk), h2 (h2load) or both")
    ap.add_argument("--only", help="comma-separated variant keys to run (e.g. a,d,dE,dB); default all")
    ap.add_argument("--no-rss", action="store_true", help="skip the RSS phase")
    ap.add_argument("--paired-blocks", type=int, default=12,
                    help="paired base/variant blocks per goal comparison (scripts/bench/paired.py); 0 skips them")
    ap.add_argument("--paired-seconds", type=float, default=1.0, help="seconds per run in a paired block")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions per request under valgrind's callgrind (scripts/bench/instructions.py)")
    ap.add_argument("--pairs", help="comma-separated base:variant keys to pair (default: the goals' comparisons)")
    a = ap.parse_args()
    repeats = a.repeats or (1 if a.quick else 5)
    seconds = a.seconds or (2 if a.quick else 5)
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else ([10, 10000] if a.quick else [10, 1000, 10000, 100000])
    filter_wasm = os.path.abspath(a.filter)
    empty_wasm = os.path.abspath(a.empty)
    workdir = os.path.join(os.path.abspath(a.out), "envoy-run")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    lua = os.path.join(workdir, "report.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA)

    global NATIVE_DIR
    if a.native and a.native_empty:
        NATIVE_DIR = os.path.join(workdir, "modules")
        os.makedirs(NATIVE_DIR, exist_ok=True)
        shutil.copy(a.native, os.path.join(NATIVE_DIR, "libportcullis_envoy.so"))
        shutil.copy(a.native_empty, os.path.join(NATIVE_DIR, "libportcullis_envoy_empty.so"))

    pin = taskset_ok()
    envoy_cpu, load_cpu = (0, 1) if pin else (None, None)
    log(f"envoy bench: {repeats} round(s) of {seconds:g} s, {a.connections} connections, sizes {sizes}, "
        f"{'Envoy on CPU 0, wrk + upstream on CPU 1' if pin else 'no CPU pinning (taskset unavailable)'}")

    # Variants in measuring order. b1 stops at 10,000 (the issue asks 100,000
    # only of the trie and Portcullis).
    order = ["a", "d"] + (["e"] if NATIVE_DIR else [])
    for n in sizes:
        for v in ("b1", "b2", "c") + (("n",) if NATIVE_DIR else ()):
            if v == "b1" and n > 10000:
                continue
            order.append(f"{v}@{n}")
    # Attribution of (c) - (d): the filter with an empty policy (its fixed
    # cost per request), and with the network rule but no header ops.
    att = 10000 if 10000 in sizes else sizes[-1]
    order += ["dH", "dP", "dC", "dT", "dE", "dB", "dN", "cnone", f"cnet@{att}", f"ctrace@{att}", f"cscopes@{att}"]
    global FILTER_BATCH
    if a.filter_batch:
        FILTER_BATCH = os.path.abspath(a.filter_batch)
        order.append(f"cbatch@{att}")
    if a.only:
        keep = a.only.split(",")
        order = [k for k in order if k in keep or k.partition("@")[0] in keep]
        if "a" not in order:
            order.insert(0, "a")
    protos = [p_ for p_ in a.protocols.split(",") if p_ in ("h1", "h2")]
    if "h2" in protos and not shutil.which("h2load"):
        log("  h2load not found: HTTP/2 runs skipped")
        protos = [p_ for p_ in protos if p_ != "h2"]
    lists = {n: cidr_list(n) for n in sizes}
    # The Portcullis policies, for scripts/bench.sh's host-call count.
    pdir = os.path.join(os.path.abspath(a.out), "policies")
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    for n, cidrs in lists.items():
        with open(os.path.join(pdir, f"bench-{n}.json"), "w") as f:
            f.write(policy_json(cidrs))
    with open(os.path.join(pdir, f"bench-{att}-scopes20.json"), "w") as f:
        f.write(with_scopes(policy_json(lists[att])))
    with open(os.path.join(pdir, "largest.json"), "w") as f:
        f.write(largest_policy())

    procs = {}
    upstream = None
    try:
        up_port = free_port()
        upstream = Envoy("upstream", a.envoy, upstream_config(free_port(), up_port), workdir, cpu=load_cpu)
        upstream.wait_ready()
        for key in order:
            variant, _, n = key.partition("@")
            cidrs = lists[int(n)] if n else []
            cfg = proxy_config(variant, cidrs, free_port(), free_port(), up_port, filter_wasm, empty_wasm)
            procs[key] = Envoy(key, a.envoy, cfg, workdir, cpu=envoy_cpu)
            # One at a time: start-up (config parse, VM start) is timed alone.
            procs[key].wait_ready()
            log(f"  started {key}: ready in {procs[key].ready_s:.1f} s, RSS {procs[key].rss_kb()} kB")
        for key in order:
            check_variant(key, key.partition("@")[0], procs[key].port)
        log("  checks passed: 200 + header ops for 127.0.0.1, 403 for 127.0.0.2 where a policy applies")
        for key in order:  # warm-up: V8 tiers, connection pools, allocator
            for proto in protos:
                load(procs[key], 1, a.connections, lua, load_cpu, proto)

        # Interleaved: every round runs every variant over each protocol.
        runs = {(k, p_): [] for k in order for p_ in protos}
        for r in range(repeats):
            for proto in protos:
                for key in order:
                    m = measure(procs[key], seconds, a.connections, lua, load_cpu, proto)
                    runs[(key, proto)].append(m)
                    log(f"  round {r + 1}/{repeats} {proto} {key:>10}: {m['rps']:9,.0f} req/s  "
                        f"p50 {m['p50_us']:5d} µs  p99 {m['p99_us']:6d} µs  CPU {m['cpu_us_per_req']:6.2f} µs/req  "
                        f"({m['cpu_util'] * 100:.0f}% of a core)"
                        f"{'  ERRORS ' + str(m['errors']) if m['errors'] else ''}")
        pairs = [tuple(p_.split(":", 1)) for p_ in a.pairs.split(",")] if a.pairs \
            else paired.pairs_for(order, sizes, att)
        blocks = min(a.paired_blocks, 1) if a.quick else a.paired_blocks
        paired_results = [] if blocks <= 0 else paired.run(
            pairs, protos, blocks,
            lambda k, p_: measure(procs[k], a.paired_seconds, a.connections, lua, load_cpu, p_), log)
        perf = {}
        if a.perf and perf_ok():
            for key in [k for k in ["a", "d", "dH", "dN", f"b2@{att}", "cnone", f"cnet@{att}", f"c@{att}"]
                        if k in procs]:
                perf[key] = profile(procs[key], seconds, a.connections, lua, load_cpu, workdir)
                log(f"  perf {key:>10}: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in perf[key]["us_per_req_by_dso"].items() if v >= 0.05)
                    + " µs/req")
        ready = {k: procs[k].ready_s for k in order}
        rss_start = {k: procs[k].rss_kb() for k in order}
    finally:
        for p in procs.values():
            p.stop()

    by_proto = {}
    drift = {}
    for proto in protos:
        results = {}
        for key in order:
            variant, _, n = key.partition("@")
            results[key] = {"variant": variant, "cidrs": int(n) if n else None, "runs": runs[(key, proto)],
                            "summary": summarize(runs[(key, proto)]), "startup_s": ready[key],
                            "rss_kb": rss_start[key]}
        base = results["a"]["summary"]
        for r in results.values():
            s_ = r["summary"]
            r["ratio_to_a"] = {
                "rps": s_["rps"]["median"] / base["rps"]["median"],
                "p50_us": s_["p50_us"]["median"] / base["p50_us"]["median"],
                "p99_us": s_["p99_us"]["median"] / base["p99_us"]["median"],
                "cpu_us_per_req": s_["cpu_us_per_req"]["median"] / base["cpu_us_per_req"]["median"],
            }
        by_proto[proto] = results
        # A round whose no-filter baseline moved more than 10 % from the
        # median: the machine was busier (or quieter) then; its ratios are
        # less trustworthy.
        vals = [m["cpu_us_per_req"] for m in runs[("a", proto)]]
        med = statistics.median(vals)
        drift[proto] = {"median": med, "rounds": vals,
                        "flagged": [i + 1 for i, v in enumerate(vals) if abs(v - med) > 0.10 * med]}
    results = by_proto[protos[0]]

    try:
        rss_n = 10000
        rss, rss_derived = ([], {}) if a.no_rss else rss_phase(
            a, workdir, up_port, filter_wasm, empty_wasm, lists.get(rss_n) or cidr_list(rss_n),
            1 if a.quick else 3)
        counted = {}
        if a.callgrind and instructions.available():
            keys = ["a", "d", "dP", "dT", "dE", "dB", "dN", "cnone"] + [f"c@{n}" for n in sizes] \
                + [f"ctrace@{att}", f"cbatch@{att}", f"cscopes@{att}", f"b2@{att}"] \
                + ["e"] + [f"n@{n}" for n in sizes] + [f"b2@{n}" for n in sizes if n != att]
            keys = [k for k in keys if k in order]

            def start(key, prefix):
                variant, _, n = key.partition("@")
                cfg = proxy_config(variant, lists[int(n)] if n else [], free_port(), free_port(), up_port,
                                   filter_wasm, empty_wasm)
                return Envoy(f"cg-{key}", a.envoy, cfg, workdir, prefix=prefix)
            log(f"callgrind: {len(keys)} variants, instructions per request")
            counted = instructions.run(keys, start, protos, load_cpu, log)
        elif a.callgrind:
            log("callgrind: valgrind, callgrind_control or h2load missing; skipped")
    finally:
        if upstream:
            upstream.stop()

    g = []
    for proto in protos:
        g += goals(by_proto[proto], sizes, proto)
    g += paired.goals(paired_results, sizes, protos)
    g += instructions.goals(counted, sizes, protos)
    g += instructions.native_goals(counted, sizes, protos)
    if rss_derived:
        own = rss_derived["filter_kb_per_worker_vs_empty"] * 1024
        g.append({"goal": "Portcullis's own RSS per extra worker at 10,000 CIDRs (beyond the empty wasm filter) "
                          "<= 0.5 MiB", "ratio": own, "limit": 0.5 * 2**20, "met": own <= 0.5 * 2**20,
                  "unit": "MiB"})
    errors = sum(r["summary"]["errors"] for res in by_proto.values() for r in res.values())
    doc = {
        "envoy_version": subprocess.run([a.envoy, "--version"], capture_output=True, text=True).stdout.strip(),
        "wrk": {"threads": 1, "connections": a.connections, "seconds": seconds},
        "upstream": "Envoy direct_response",
        "repeats": repeats, "sizes": sizes, "pinned": pin, "quick": a.quick,
        "order": order, "protocols": protos, "results": by_proto["h1"] if "h1" in by_proto else results,
        "results_by_protocol": by_proto, "baseline_drift": drift, "paired": paired_results, "instructions": counted, "goals": g, "perf": perf, "rss": rss, "rss_derived_kb": rss_derived,
        "errors": errors, "cpu": cpu_model(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with open(os.path.join(a.out, "envoy.json"), "w") as f:
        json.dump(doc, f, indent=1)
    md = []
    names = {"h1": "HTTP/1.1 (wrk)", "h2": "HTTP/2 (h2load, prior knowledge, 1 stream per connection; "
                                           "p50 and p99 columns hold h2load's mean)"}
    for proto in protos:
        md += [f"### {names[proto]}", "", table(by_proto[proto], order), ""]
        d_ = drift[proto]
        if d_["flagged"]:
            md.append(f"Baseline check: round(s) {', '.join(map(str, d_['flagged']))} had (a) CPU/req more than "
                      f"10 % from its median {d_['median']:.2f} µs (rounds: "
                      f"{', '.join(f'{v:.2f}' for v in d_['rounds'])}); **flagged**.")
        else:
            md.append(f"Baseline check: no round's (a) CPU/req moved more than 10 % from its median "
                      f"{d_['median']:.2f} µs (rounds: {', '.join(f'{v:.2f}' for v in d_['rounds'])}).")
        md.append("")
    md += paired.markdown(paired_results, LABELS)
    md += instructions.markdown(counted, protos, LABELS)
    md.append("| goal | measured | met |")
    md.append("|---|---:|---|")
    for x in g:
        if x.get("unit") == "MiB":
            v = f"{x['ratio'] / 2**20:.2f} MiB"
        else:
            v = f"{x['ratio']:.3f}"
        met = "yes" if x["met"] else "NO"
        if "milestone_1_10" in x and not x["met"]:
            met += " (1.10 milestone: " + ("yes" if x["milestone_1_10"] else "no") + ")"
        if "milestone_1_00" in x and not x["met"]:
            met += " (1.00 milestone: " + ("yes" if x["milestone_1_00"] else "no") + ")"
        md.append(f"| {x['goal']} | {v} | {met} |")
    md.append("")
    if not rss:
        md.append("(RSS phase skipped)")
    else:
        md += rss_md(rss, rss_derived)
    if perf:
        md += perf_md(perf)
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "envoy.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    if errors:
        log(f"ERROR: {errors} failed or non-2xx requests during the runs")
        sys.exit(1)


def rss_md(rss, rss_derived):
    md = []
    md.append("| Envoy VmRSS after 1 s of load | --concurrency 1 | --concurrency 2 | --concurrency 4 |")
    md.append("|---|---:|---:|---:|")
    by = {(r["variant"], r["concurrency"]): r["rss_kb_loaded"] for r in rss}
    for v, label in (("a", "(a) no filter"), ("d", "(d) empty wasm filter"), ("c", "(c) Portcullis, 10,000 CIDRs")):
        md.append(f"| {label} | {by[(v, 1)] / 1024:.1f} MiB | {by[(v, 2)] / 1024:.1f} MiB "
                  f"| {by[(v, 4)] / 1024:.1f} MiB |")
    md.append("")
    rd = rss_derived
    md.append(f"Portcullis at 10,000 CIDRs: {rd['filter_kb_at_conc1_vs_none'] / 1024:.2f} MiB over no filter "
              f"at --concurrency 1 ({rd['filter_kb_at_conc1_vs_empty'] / 1024:.2f} MiB over the empty filter). "
              f"Per extra worker, beyond what a worker costs without a filter: "
              f"{rd['filter_kb_per_worker_vs_none'] / 1024:.2f} MiB (1 to 2 workers), "
              f"{rd['filter_kb_per_worker_vs_none_1to4'] / 1024:.2f} MiB (slope 1 to 4); "
              f"beyond a worker with the empty filter: {rd['filter_kb_per_worker_vs_empty'] / 1024:.2f} MiB, "
              f"{rd['filter_kb_per_worker_vs_empty_1to4'] / 1024:.2f} MiB.")
    return md


def perf_md(perf):
    md = []
    if perf:
        dsos = []
        for p_ in perf.values():
            for k in p_["us_per_req_by_dso"]:
                if k not in dsos:
                    dsos.append(k)
        md.append("")
        md.append("Where Envoy's CPU per request goes (perf, one extra run each; µs/req):")
        md.append("")
        md.append("| variant | total | " + " | ".join(dsos) + " |")
        md.append("|---|---:|" + "---:|" * len(dsos))
        for key, p_ in perf.items():
            md.append(f"| {key} | {p_['cpu_us_per_req']:.2f} | " + " | ".join(
                f"{p_['us_per_req_by_dso'].get(k, 0):.2f}" for k in dsos) + " |")
    return md


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main()
