//! Cost of one decision against policy size, beside a naive reference.
#![allow(clippy::expect_used, clippy::manual_is_multiple_of)] // a benchmark harness, not product code
//!
//! `cargo bench -p portcullis-core --bench decide` (or `./build.sh bench`).
//! For each size it builds a policy with that many CIDR entries (spread over
//! at most 3,000 rules: priorities are 100..4096), then times `decide` on a
//! fixed mix of hits and misses, and the same lookups done by a linear scan
//! of every entry in priority order. Medians of 5 runs; ratios are to the
//! 10-entry policy measured in the same run. A second table times the
//! 10-entry policy again beside the same policy with 20 scopes (hosts,
//! paths and methods): requests in the first scope, in the last, and in
//! none (every scope tried), with dot-segments in half the paths.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis_core::{json, Policy, Request, Transport};

struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// (rule index, low, high, allow) entries and the policy text.
fn make(n: usize) -> (String, Vec<(usize, u32, u32, bool)>) {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let rules = n.min(3000);
    let mut per: Vec<Vec<String>> = vec![Vec::new(); rules];
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let r = i % rules;
        // Distinct /24s (and some /32s) across public space.
        let base = 0x0b00_0000u32 + (i as u32) * 256;
        let (lo, hi, text) = if g.next() % 4 == 0 {
            let a = base + 17;
            (a, a, Ipv4Addr::from(a).to_string())
        } else {
            (base, base + 255, format!("{}/24", Ipv4Addr::from(base)))
        };
        per[r].push(format!("{text:?}"));
        entries.push((r, lo, hi, r % 7 != 0));
    }
    let rule_text: Vec<String> = per
        .iter()
        .enumerate()
        .map(|(r, src)| {
            format!(
                r#"{{"name":"r{r}","priority":{},"access":"{}","source":[{}],"destination_ports":["443"]}}"#,
                100 + r,
                if r % 7 != 0 { "allow" } else { "deny" },
                src.join(",")
            )
        })
        .collect();
    let text = format!(
        r#"{{"name":"bench","network":{{"default_access":"deny","rules":[{}]}}}}"#,
        rule_text.join(",")
    );
    entries.sort_by_key(|e| e.0);
    (text, entries)
}

fn naive(entries: &[(usize, u32, u32, bool)], a: u32) -> Option<usize> {
    entries.iter().find(|e| e.1 <= a && a <= e.2).map(|e| e.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_per_op(mut f: impl FnMut() -> usize, ops: usize, budget: Duration) -> f64 {
    // Warm up, then run whole passes until the budget is spent.
    black_box(f());
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < budget {
        black_box(f());
        passes += 1;
    }
    start.elapsed().as_nanos() as f64 / (passes as f64 * ops as f64)
}

/// Heap bytes in use now and at most since the last [`Counting::reset_peak`],
/// so the load figures can say where memory goes (natively: pointers are 8
/// bytes here, 4 in the filter's wasm, so the wasm figures are smaller).
struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn now() -> usize {
        NOW.load(Ordering::Relaxed)
    }
    fn reset_peak() -> usize {
        let n = Counting::now();
        PEAK.store(n, Ordering::Relaxed);
        n
    }
    fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let n = NOW.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(n, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // Old and new block both live during the copy.
        let n = NOW.fetch_add(new, Ordering::Relaxed) + new;
        PEAK.fetch_max(n, Ordering::Relaxed);
        NOW.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

/// "median (min-max)" of a few timings, in ms.
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.1} ({:.1}-{:.1})", v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

/// Every string of every rule's `source` in a parsed document.
fn sources(v: &json::Value) -> Vec<&str> {
    let rules = v.get("network").and_then(|n| n.get("rules"));
    let mut out = Vec::new();
    if let Some(json::Kind::Array(rules)) = rules.map(|r| &r.kind) {
        for r in rules {
            if let Some(json::Kind::Array(src)) = r.get("source").map(|s| &s.kind) {
                out.extend(src.iter().filter_map(json::Value::as_str));
            }
        }
    }
    out
}

/// `--largest PATH...`: load time of each policy file (the bench's largest
/// legal policy), natively, median (min-max) of 7, the whole
/// `Policy::parse` and `Policy::parse_for_decisions` (what the filter
/// runs), and phase by phase: the JSON tree, the address literals alone,
/// the rule table alone (the validator's other checks are the rest), with
/// the heap's high-water mark of each and what the policy keeps.
fn load_time(paths: &[String]) {
    const RUNS: usize = 7;
    for path in paths {
        let text = std::fs::read(path).expect("read the policy");
        let s = std::str::from_utf8(&text).expect("UTF-8");
        let (mut full, mut decisions, mut tree, mut lean, mut addrs, mut table) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut peak_full, mut peak_tree, mut peak_lean, mut kept, mut rules, mut prefixes) =
            (0, 0, 0, 0, 0, 0);
        for _ in 0..RUNS {
            let t0 = Instant::now();
            black_box(Policy::parse(&text).expect("the policy is valid"));
            full.push(ms_since(t0));

            let base = Counting::reset_peak();
            let t0 = Instant::now();
            let policy = Policy::parse_for_decisions(&text, &portcullis_core::NoEnv)
                .expect("the policy is valid");
            decisions.push(ms_since(t0));
            peak_full = Counting::peak() - base;
            kept = Counting::now() - base;
            rules = policy.network.as_ref().map_or(0, |n| n.rules.len());
            drop(policy);

            // The table alone, from rules that kept their sources.
            let full = Policy::parse(&text).expect("the policy is valid");
            let net = full.network.as_ref().expect("a network section");
            let t0 = Instant::now();
            black_box(portcullis_core::matcher::Table::build(&net.rules).expect("compiles"));
            table.push(ms_since(t0));
            drop(full);

            let base = Counting::reset_peak();
            let t0 = Instant::now();
            let v = json::parse(s).expect("JSON");
            tree.push(ms_since(t0));
            peak_tree = Counting::peak() - base;

            // What the policy reader builds: address lists left as text.
            let base = Counting::reset_peak();
            let t0 = Instant::now();
            black_box(json::parse_lean(s, |_, k| k == "source").expect("JSON"));
            lean.push(ms_since(t0));
            peak_lean = Counting::peak() - base;

            let list = sources(&v);
            prefixes = list.len();
            let t0 = Instant::now();
            for a in &list {
                let mut set = portcullis_core::addr::AddrSet::default();
                portcullis_core::addr::parse_literal_into(a, &mut set).expect("an address");
                black_box(set);
            }
            addrs.push(ms_since(t0));
        }
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        println!(
            "\nLoad of {path} ({} bytes, {rules} rules, {prefixes} source entries), natively, ms median (min-max) of {RUNS}:\n\n\
             | phase | ms | heap peak |\n|---|---:|---:|\n\
             | `Policy::parse` (explain keeps the source texts) | {} | |\n\
             | `Policy::parse_for_decisions` (the filter's) | {} | {:.2} MiB (kept: {:.2} MiB) |\n\
             | the full JSON tree (`json::parse`, for comparison) | {} | {:.2} MiB |\n\
             | of which the JSON tree, address lists as text (`json::parse_lean`) | {} | {:.2} MiB |\n\
             | of which the address literals (`addr::parse_literal_into`) | {} | |\n\
             | of which the rule table (`Table::build`) | {} | |",
            text.len(),
            spread(full),
            spread(decisions),
            mib(peak_full),
            mib(kept),
            spread(tree),
            mib(peak_tree),
            spread(lean),
            mib(peak_lean),
            spread(addrs),
            spread(table),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--largest") {
        let paths: Vec<String> = args[i + 1..]
            .iter()
            .filter(|a| !a.starts_with("--"))
            .cloned()
            .collect();
        assert!(!paths.is_empty(), "--largest PATH...");
        load_time(&paths);
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 60 } else { 300 });
    let sizes = [10usize, 1_000, 10_000, 100_000];
    println!("| CIDR entries | rules | compile ms | table entries | decide ns | naive ns | decide vs 10 |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut base = 0.0;
    for &n in &sizes {
        let (text, entries) = make(n);
        let t0 = Instant::now();
        let policy = Policy::parse(text.as_bytes()).expect("generated policy is valid");
        let compile = t0.elapsed();
        let entry_count = policy.network.as_ref().map_or(0, |net| net.table.entries());
        // 1,024 lookups: half inside the entries, half anywhere.
        let mut g = Gen(42);
        let span = (n as u32) * 256;
        let addrs: Vec<u32> = (0..1024)
            .map(|i| {
                if i % 2 == 0 {
                    0x0b00_0000 + (g.next() as u32) % span
                } else {
                    g.next() as u32
                }
            })
            .collect();
        let none: [(&str, &str); 0] = [];
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 443);
        let request = |a: u32| Request {
            peer: SocketAddr::new(IpAddr::V4(a.into()), 5000),
            local,
            tls: true,
            transport: Transport::Tcp,
            method: b"GET",
            authority: b"x",
            path: b"/",
            headers: &none,
        };
        // Both evaluators must agree before they are timed.
        for &a in &addrs {
            let req = request(a);
            assert_eq!(
                policy.decide(&req).rule,
                naive(&entries, a),
                "{}",
                Ipv4Addr::from(a)
            );
        }
        let mut fast = Vec::new();
        let mut slow = Vec::new();
        for _ in 0..5 {
            fast.push(time_per_op(
                || {
                    let mut s = 0;
                    for &a in &addrs {
                        let req = request(a);
                        s += black_box(policy.decide(black_box(&req))).rule.unwrap_or(0);
                    }
                    s
                },
                addrs.len(),
                budget,
            ));
            let few = if n >= 10_000 { 64 } else { addrs.len() };
            slow.push(time_per_op(
                || {
                    addrs[..few]
                        .iter()
                        .map(|&a| naive(black_box(&entries), a).unwrap_or(0))
                        .sum()
                },
                few,
                budget,
            ));
        }
        let (f, s) = (median(fast), median(slow));
        if n == 10 {
            base = f;
        }
        println!(
            "| {n} | {} | {:.1} | {entry_count} | {f:.1} | {s:.1} | {:.2}x |",
            n.min(3000),
            compile.as_secs_f64() * 1e3,
            f / base
        );
    }
    scopes(budget);
}

/// The 10-entry policy with 20 scopes beside it without.
fn scopes(budget: Duration) {
    let (text, _) = make(10);
    let plain = Policy::parse(text.as_bytes()).expect("generated policy is valid");
    let list: Vec<String> = (0..20)
        .map(|i| {
            format!(
                r#"{{"name":"api{i}","match":{{"hosts":["api{i}.example.com","*.api{i}.example.net"],"paths":["/v1/api{i}/*","/status{i}"],"methods":["GET","POST"]}},"require_headers":[{{"name":"x-key","values":["k{i}"]}}]}}"#
            )
        })
        .collect();
    let scoped_text = text.replacen(
        r#""network""#,
        &format!(r#""scopes":[{}],"network""#, list.join(",")),
        1,
    );
    let scoped = Policy::parse(scoped_text.as_bytes()).expect("scoped policy is valid");
    let headers = [("x-key", "k0"), ("x-key", "k19")];
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 443);
    let req = |authority: &'static [u8], path: &'static [u8]| Request {
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 17)), 5000),
        local,
        tls: true,
        transport: Transport::Tcp,
        method: b"GET",
        authority,
        path,
        headers: &headers,
    };
    let cases: [(&str, Request<'_>); 4] = [
        (
            "first scope",
            req(b"api0.example.com", b"/v1/api0/orders/42?x=1"),
        ),
        (
            "first scope, dot-segments",
            req(b"API0.example.com:443", b"/v1/x/../api0//orders/%34%32"),
        ),
        (
            "last scope",
            req(b"a.api19.example.net", b"/v1/api19/orders/42"),
        ),
        (
            "no scope (all 20 tried)",
            req(b"www.example.org", b"/v1/other/orders/42"),
        ),
    ];
    assert_eq!(scoped.decide(&cases[0].1).scope, Some(0));
    assert_eq!(scoped.decide(&cases[1].1).scope, Some(0));
    assert_eq!(scoped.decide(&cases[2].1).scope, Some(19));
    assert_eq!(scoped.decide(&cases[3].1).scope, None);
    println!();
    println!("| policy | request | decide ns |");
    println!("|---|---|---:|");
    let time = |p: &Policy, r: &Request<'_>| {
        median(
            (0..5)
                .map(|_| {
                    time_per_op(
                        || black_box(p.decide(black_box(r))).rule.unwrap_or(0),
                        1,
                        budget,
                    )
                })
                .collect(),
        )
    };
    println!(
        "| 10 CIDRs, no scopes | any | {:.1} |",
        time(&plain, &cases[0].1)
    );
    for (what, r) in &cases {
        println!("| 10 CIDRs, 20 scopes | {what} | {:.1} |", time(&scoped, r));
    }
}
