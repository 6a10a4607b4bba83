//! Robustness: no input, however hostile, crashes the filter, bypasses a
//! rule, or loses a request.
//!
//! Why one file over 800 lines: one test binary for every hostile-input
//! check, so wasmtime and the filter are compiled once for all of them.
//!
//! - replays every committed fuzz input (`fuzz/corpus/*`, `fuzz/regressions/*`)
//!   through the same checks as the fuzz targets (`fuzz/src/lib.rs`, compiled
//!   here by path, so this runs on stable in `cargo test --workspace`);
//! - runs every case of the shared corpus through all of those checks;
//! - feeds deterministic hostile inputs (deep JSON, a megabyte of rules,
//!   100,000 address groups, multi-megabyte documents, 10,000
//!   X-Forwarded-For entries, 1,000 repeated headers, 64 KiB values,
//!   non-UTF-8 everywhere) to the core and to the filter under wasmtime:
//!   each is compiled and decided the same way by both, or rejected with a
//!   clear error by both. Times and memory are printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: fail loudly

#[path = "../../../fuzz/src/lib.rs"]
mod harness;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use harness::{
    check_core, check_differential, check_filter, client_addr, scope_input, Fixture, Gen, Target,
};
use portcullis_core::{Policy, Request, Transport, Verdict};
use portcullis_harness::{Suite, Tally};

fn root() -> PathBuf {
    harness::root_from(env!("CARGO_MANIFEST_DIR"), 2)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let f = harness::filter_path(&root());
        assert!(
            f.exists(),
            "{} is missing: run ./build.sh build (or scripts/build-filter.sh) first",
            f.display()
        );
        Fixture::load(&root(), true).unwrap()
    })
}

/// The heavy tests run one at a time so that the memory figures they print
/// are theirs.
fn heavy() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn rss() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn engine() -> &'static portcullis_host::Engine {
    fixture().engine.as_ref().unwrap()
}

/// The filter with fuel for very large policies: compiling a megabyte of
/// rules takes more than the default 10^9 instructions under wasmtime.
fn big_engine() -> &'static portcullis_host::Engine {
    static E: OnceLock<portcullis_host::Engine> = OnceLock::new();
    E.get_or_init(|| {
        let wasm = std::fs::read(harness::filter_path(&root())).unwrap();
        let opts = portcullis_host::Options {
            fuel_limit: 200_000_000_000,
            log_level: portcullis_host::LogLevel::Info,
            ..portcullis_host::Options::default()
        };
        portcullis_host::Engine::with_options(&wasm, opts).unwrap()
    })
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Fails with the first few failures (each cut to a readable length).
fn assert_none(failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let shown: Vec<String> = failures
        .iter()
        .take(8)
        .map(|f| f.chars().take(1500).collect())
        .collect();
    panic!(
        "{} failures; the first:\n{}",
        failures.len(),
        shown.join("\n")
    );
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_committed_fuzz_input_replays_clean() {
    let f = fixture();
    let mut failures = Vec::new();
    for t in Target::ALL {
        let seeds = files(&root().join("fuzz/corpus").join(t.name()));
        let regressions = files(&root().join("fuzz/regressions").join(t.name()));
        assert!(
            seeds.len() >= 20,
            "fuzz/corpus/{} has {} inputs; regenerate the seeds (see docs/robustness.md)",
            t.name(),
            seeds.len()
        );
        let start = Instant::now();
        for p in seeds.iter().chain(&regressions) {
            let data = std::fs::read(p).unwrap();
            if let Err(e) = f.run(t, &data) {
                failures.push(format!("{}: {e}", p.display()));
            }
        }
        println!(
            "{}: {} seeds + {} regressions replayed in {:.2?}",
            t.name(),
            seeds.len(),
            regressions.len(),
            start.elapsed()
        );
    }
    assert_none(&failures);
}

/// Every case of every test file, with the index of its policy in the
/// fixture (`None` for files whose policy must be rejected).
fn corpus_cases(f: &Fixture) -> Vec<(usize, portcullis_harness::Case, String)> {
    let mut out = Vec::new();
    for file in harness::test_files(&root()) {
        let Suite {
            file: tf,
            policy: text,
            ..
        } = Suite::read(&file).unwrap();
        if tf.expect_policy_error.is_some() {
            continue;
        }
        let idx = f
            .policies
            .iter()
            .position(|n| n.text == text)
            .unwrap_or_else(|| panic!("{}: policy not in the fuzz set", file.display()));
        for c in tf.cases {
            out.push((idx, c, file.display().to_string()));
        }
    }
    out
}

/// The whole corpus through the one runner, with the fuzz checks as the
/// engine (`harness::run_corpus_file`).
#[test]
fn every_corpus_case_holds_the_fuzz_invariants_on_both_engines() {
    let f = fixture();
    let mut plugins = f.plugins.lock().unwrap();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for file in harness::test_files(&root()) {
        let suite = Suite::read(&file).unwrap();
        let report = harness::run_corpus_file(f, &mut plugins, &suite);
        tally.add(&report);
        failures.extend(report.failures());
    }
    println!("corpus through decide, filter_wasm and differential: {tally}");
    assert!(tally.cases >= 200, "only {} cases", tally.cases);
    assert_none(&failures);
}

#[test]
fn random_bytes_decode_into_requests_that_hold_the_invariants() {
    let f = fixture();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut failures = Vec::new();
    for i in 0..300 {
        let n = (rng.next() % 600) as usize;
        let data = rng.bytes(n);
        for t in Target::ALL {
            if let Err(e) = f.run(t, &data) {
                failures.push(format!("input {i} ({} bytes): {e}", data.len()));
            }
        }
    }
    assert_none(&failures);
}

/// Writes the seed corpora from the shared test corpus:
/// `cargo test -p portcullis-cli --test robustness -- --ignored write_seed_corpora`.
#[test]
#[ignore = "regenerates fuzz/corpus; run by hand"]
fn write_seed_corpora() {
    let f = fixture();
    let dir = root().join("fuzz/corpus");
    for t in Target::ALL {
        let d = dir.join(t.name());
        std::fs::create_dir_all(&d).unwrap();
        for old in files(&d) {
            std::fs::remove_file(old).unwrap();
        }
    }
    // policy_parse: every policy text of the corpus, valid or not.
    for file in harness::test_files(&root()) {
        let text = Suite::read(&file).unwrap().policy;
        let stem = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".json", "");
        std::fs::write(dir.join("policy_parse").join(stem), text).unwrap();
    }
    // The request targets: every corpus case.
    for (k, (idx, c, file)) in corpus_cases(f).iter().enumerate() {
        let g = Gen::from_case(*idx, c);
        let stem = Path::new(file)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".json", "");
        for t in [Target::Decide, Target::FilterWasm, Target::Differential] {
            std::fs::write(
                dir.join(t.name()).join(format!("{stem}-{k:03}")),
                g.encode(),
            )
            .unwrap();
        }
        for (j, seed) in client_addr::seeds(c).into_iter().enumerate() {
            let name = format!("{stem}-{k:03}-{j}");
            std::fs::write(dir.join("client_addr").join(name), seed).unwrap();
        }
        for seed in scope_input::seeds(c) {
            std::fs::write(dir.join("scope_input").join(format!("{stem}-{k:03}")), seed).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Hostile policies.

/// Both engines reject `doc`; returns the core's message.
fn rejected_by_both(doc: &[u8]) -> String {
    let core = match Policy::parse(doc) {
        Ok(_) => panic!("the core accepted a hostile document"),
        Err(p) => p.to_string(),
    };
    match engine().configure(doc) {
        Ok(_) => panic!("the filter accepted a document the core rejects: {core}"),
        Err(e) => {
            let logs: Vec<String> = e.logs().iter().map(|(_, l)| l.clone()).collect();
            assert!(
                logs.iter().any(|l| l.contains("rejected")),
                "the filter did not say why: {e}; {logs:?}"
            );
        }
    }
    core
}

#[test]
fn deeply_nested_json_is_rejected_with_a_position() {
    let _g = heavy();
    for (what, doc) in [
        ("100,000 [", "[".repeat(100_000)),
        ("100,000 {\"a\":", "{\"a\":".repeat(100_000)),
        ("nesting inside a valid field", {
            let mut s = String::from("{\"name\":\"deep\",\"address_groups\":{\"g\":");
            s.push_str(&"[".repeat(100_000));
            s
        }),
    ] {
        let t = Instant::now();
        let msg = rejected_by_both(doc.as_bytes());
        println!("{what}: rejected in {:.2?}: {msg}", t.elapsed());
        assert!(msg.contains("1:"), "{msg}");
        assert!(
            msg.to_lowercase().contains("deep") || msg.contains("nest"),
            "{msg}"
        );
    }
}

#[test]
fn non_utf8_and_garbage_policies_are_rejected_with_a_position() {
    for (doc, want) in [
        (&b"{\"name\": \"a\xffb\"}"[..], "1:"),
        (&b"\xef\xbb\xbf{\"name\":\"bom\"}"[..], "1:1"),
        (
            &b"{\"name\":\"x\",\n\"network\":{\"rules\":[{\"name\":\"\xc3\x28\"}]}}"[..],
            "2:",
        ),
        (&b""[..], "1:1"),
        (&b"\0"[..], "1:1"),
        (&b"{\"name\":\"x\"}{}"[..], "1:"),
        (&b"{\"name\":\"x\",\"name\":\"y\"}"[..], "1:"),
        (&b"{\"name\":1e999999}"[..], "1:"),
        (&b"{\"name\":\"\\ud800\"}"[..], "1:"),
    ] {
        let msg = rejected_by_both(doc);
        println!("{}: {msg}", harness::show(doc));
        assert!(msg.starts_with(want), "{}: {msg}", harness::show(doc));
    }
}

fn compile_and_report(what: &str, doc: &str) -> (Policy, portcullis_host::Plugin) {
    let (rss0, _) = rss();
    let t = Instant::now();
    let p = Policy::parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let core_time = t.elapsed();
    let (rss1, hwm1) = rss();
    let entries = p.network.as_ref().map_or(0, |n| n.table.entries());
    let t = Instant::now();
    let lints = p.lints().len();
    let lint_time = t.elapsed();
    let t = Instant::now();
    let fuel = match engine().configure(doc.as_bytes()) {
        Ok(_) => "within the default fuel (10^9)",
        Err(e) => {
            assert!(
                e.to_string().contains("fuel"),
                "{what}: the filter refused it: {e}"
            );
            "NOT within the default fuel (10^9)"
        }
    };
    let default_time = t.elapsed();
    let t = Instant::now();
    let plugin = big_engine()
        .configure(doc.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: the filter refused it: {e}"));
    let wasm_time = t.elapsed();
    let (rss2, hwm2) = rss();
    println!(
        "{what}: {:.2} MiB of JSON; core compile {core_time:.2?}, table {entries} entries, \
         RSS +{:.1} MiB (peak {hwm1:.0} MiB); lints {lints} in {lint_time:.2?}; \
         filter configure under wasmtime {wasm_time:.2?} \
         ({fuel}: {default_time:.2?} to find out), RSS +{:.1} MiB (peak {hwm2:.0} MiB)",
        doc.len() as f64 / (1 << 20) as f64,
        rss1 - rss0,
        rss2 - rss1,
    );
    (p, plugin)
}

/// Random requests against a big policy: invariants on the core (explain and
/// the compiled table agree) and the filter agrees with the core.
fn hammer(
    p: &Policy,
    plugin: &mut portcullis_host::Plugin,
    addrs: &[&str],
    n: usize,
) -> [usize; 3] {
    let mut rng = Rng(42);
    let mut verdicts = [0usize; 3];
    for i in 0..n {
        let ip = match addrs.get(i % (addrs.len() + 1)) {
            Some(a) => a.parse().unwrap(),
            None => {
                let r = rng.next();
                if r & 1 == 0 {
                    std::net::IpAddr::from(((r >> 32) as u32).to_be_bytes())
                } else {
                    std::net::IpAddr::from(u128::from(r).rotate_left(64).to_be_bytes())
                }
            }
        };
        let g = Gen {
            policy: 0,
            peer: SocketAddr::new(ip, (rng.next() % 65536) as u16),
            local: SocketAddr::new("10.0.0.2".parse().unwrap(), [443, 80, 8000, 0][i % 4]),
            tls: i % 3 != 0,
            transport: if i % 5 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            method: b"GET".to_vec(),
            authority: b"api.example.com".to_vec(),
            path: b"/x".to_vec(),
            headers: vec![],
            status: 200,
            response: vec![],
        };
        check_core(p, &g).unwrap_or_else(|e| panic!("{e}"));
        if i % 10 == 0 {
            check_filter(plugin, p, &g).unwrap_or_else(|e| panic!("{e}"));
        }
        let d = p.decide(&g.request(&g.headers));
        verdicts[d.verdict as usize] += 1;
    }
    verdicts
}

/// About 1 MiB of rules: every priority from 100 to 4096 used once, each
/// rule with eight sources of every kind (addresses, prefixes, ranges, v4
/// and v6), ports and protocols.
fn megabyte_of_rules() -> String {
    let mut s =
        String::from("{\"name\":\"megabyte\",\"network\":{\"default_access\":\"deny\",\"rules\":[");
    for (k, prio) in (100..=4096u32).enumerate() {
        let i = k as u32;
        if k > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"name\":\"rule-{prio}\",\"priority\":{prio},\"access\":\"{}\",\"source\":[\
             \"10.{}.{}.0/24\",\"172.{}.{}.{}\",\"192.168.{}.{}-192.168.{}.255\",\
             \"2001:db8:{:x}::/48\",\"2603:{:x}::{:x}\",\"100.64.{}.0/26\",\"198.51.{}.{}\",\"fd00:{:x}::/32\"],\
             \"destination_ports\":[\"443\",\"{}\",\"{}-{}\"],\"protocol\":\"{}\"}}",
            if i.is_multiple_of(3) { "deny" } else { "allow" },
            i >> 8,
            i & 255,
            16 + (i % 16),
            (i >> 4) & 255,
            i & 255,
            i & 255,
            (i * 7) & 127,
            i & 255,
            i,
            i % 4096,
            i,
            i & 255,
            i >> 4,
            i & 255,
            i,
            80 + (i % 3),
            8000 + (i % 100),
            8100 + (i % 100),
            ["*", "tcp", "udp"][(i % 3) as usize],
        );
    }
    s.push_str("]}}");
    s
}

#[test]
fn a_megabyte_of_rules_compiles_and_decides_like_the_rule_walk() {
    let _g = heavy();
    let doc = megabyte_of_rules();
    assert!(doc.len() >= 1 << 20, "{} bytes", doc.len());
    let (p, mut plugin) = compile_and_report("1 MiB of rules (3997 rules)", &doc);
    let addrs = [
        "10.3.7.9",
        "172.16.0.0",
        "192.168.5.200",
        "2001:db8:7::1",
        "198.51.3.4",
        "100.64.9.1",
    ];
    let t = Instant::now();
    let v = hammer(&p, &mut plugin, &addrs, 2000);
    println!(
        "  2000 requests checked against explain() (200 through the filter) in {:.2?}: {v:?}",
        t.elapsed()
    );
    assert!(v[0] > 0 && v[1] > 0, "{v:?}");
}

#[test]
fn a_hundred_thousand_address_groups_compile() {
    let _g = heavy();
    let mut s = String::from("{\"name\":\"groups\",\"address_groups\":{");
    for i in 0..100_000u32 {
        let _ = write!(
            s,
            "\"g{i}\":[\"10.{}.{}.{}\"],",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
    }
    s.push_str("\"all\":[");
    for i in 0..100_000u32 {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "\"g{i}\"");
    }
    s.push_str("]},\"network\":{\"rules\":[\
        {\"name\":\"deny-two\",\"priority\":100,\"access\":\"deny\",\"source\":[\"g5\",\"g77777\"]},\
        {\"name\":\"allow-groups\",\"priority\":200,\"access\":\"allow\",\"source\":[\"all\"]}]}}");
    let (p, mut plugin) = compile_and_report("100,000 address groups", &s);
    let addrs = [
        "10.0.0.5",
        "10.1.47.209",
        "10.1.134.159",
        "10.1.134.160",
        "10.0.0.0",
        "10.2.0.0",
    ];
    let v = hammer(&p, &mut plugin, &addrs, 500);
    println!("  500 requests: {v:?}");
    let d = |a: &str| {
        p.decide(&Request {
            peer: SocketAddr::new(a.parse().unwrap(), 1),
            local: "10.9.9.9:443".parse().unwrap(),
            tls: true,
            transport: Transport::Tcp,
            method: b"GET",
            authority: b"x",
            path: b"/",
            headers: &Vec::<(Vec<u8>, Vec<u8>)>::new(),
        })
    };
    assert_eq!(d("10.0.0.5").verdict, Verdict::Deny);
    assert_eq!(p.rule_name(d("10.1.47.209").rule), "deny-two");
    assert_eq!(p.rule_name(d("10.1.134.159").rule), "allow-groups");
    assert_eq!(d("10.1.134.160").verdict, Verdict::Deny);
}

#[test]
fn documents_of_several_mebibytes() {
    let _g = heavy();
    // 4.5 MiB: a valid policy padded with whitespace, and one whose deny body
    // is 4.5 MiB (a huge local reply).
    let pad = " ".repeat(9 << 19);
    let padded = format!("{{\"name\":\"padded\",{pad}\"network\":{{\"rules\":[{{\"name\":\"a\",\"priority\":100,\"access\":\"allow\",\"source\":[\"Private\"]}}]}}}}");
    let (p, mut plugin) = compile_and_report("4.5 MiB of whitespace", &padded);
    hammer(&p, &mut plugin, &["10.1.1.1"], 50);
    let body = "x".repeat(9 << 19);
    let big_body = format!("{{\"name\":\"bigbody\",\"network\":{{\"rules\":[],\"deny\":{{\"status\":403,\"body\":\"{body}\"}}}}}}");
    match Policy::parse(big_body.as_bytes()) {
        Ok(p) => {
            let (_, mut plugin) = compile_and_report("4.5 MiB deny body", &big_body);
            let g = Gen {
                policy: 0,
                peer: "203.0.113.1:1".parse().unwrap(),
                local: "10.0.0.1:443".parse().unwrap(),
                tls: true,
                transport: Transport::Tcp,
                method: b"GET".to_vec(),
                authority: b"a".to_vec(),
                path: b"/".to_vec(),
                headers: vec![],
                status: 200,
                response: vec![],
            };
            check_core(&p, &g).unwrap();
            check_filter(&mut plugin, &p, &g).unwrap();
            println!("  4.5 MiB deny body: accepted, replied by both engines");
        }
        Err(e) => {
            let msg = rejected_by_both(big_body.as_bytes());
            println!("  4.5 MiB deny body: rejected: {msg}");
            assert!(!e.0.is_empty());
        }
    }
    // Over the core's limit: refused before parsing, by both.
    let huge = format!(
        "{{\"name\":\"huge\",{}\"network\":{{\"rules\":[]}}}}",
        " ".repeat(portcullis_core::policy::MAX_POLICY_BYTES)
    );
    let t = Instant::now();
    let msg = rejected_by_both(huge.as_bytes());
    println!(
        "{:.1} MiB document: rejected in {:.2?}: {msg}",
        huge.len() as f64 / (1 << 20) as f64,
        t.elapsed()
    );
    assert!(msg.contains("large") || msg.contains("limit"), "{msg}");
}

// ---------------------------------------------------------------------------
// Hostile requests, on the corpus policies that read the most.

fn policy_named(name: &str) -> usize {
    fixture()
        .policies
        .iter()
        .position(|n| n.policy.name == name)
        .unwrap_or_else(|| panic!("no corpus policy named {name}"))
}

/// Runs one exchange through every check on both engines.
fn all_checks(idx: usize, g: &Gen) -> Result<(), String> {
    let f = fixture();
    let p = &f.policies[idx].policy;
    let mut plugins = f.plugins.lock().unwrap();
    let plugin = &mut plugins[idx];
    check_core(p, g)?;
    check_filter(plugin, p, g)?;
    check_differential(plugin, p, g)
}

fn base(idx: usize) -> Gen {
    Gen {
        policy: idx,
        peer: "10.0.0.4:5000".parse().unwrap(),
        local: "10.0.0.2:443".parse().unwrap(),
        tls: false,
        transport: Transport::Tcp,
        method: b"GET".to_vec(),
        authority: b"api.example.com".to_vec(),
        path: b"/a".to_vec(),
        headers: vec![],
        status: 200,
        response: vec![],
    }
}

fn decision(idx: usize, g: &Gen) -> String {
    let p = &fixture().policies[idx].policy;
    let h = g.host_headers();
    p.trace(&p.decide(&g.request(&h)))
}

#[test]
fn ten_thousand_x_forwarded_for_entries() {
    let _g = heavy();
    let xff = policy_named("client-ip-xff");
    let trusted: Vec<String> = (0..9_999).map(|i| format!("10.0.0.{}", i % 256)).collect();
    let cases: Vec<(&str, harness::HeaderPairs)> = vec![
        (
            "one line, client then 9,999 trusted hops",
            vec![(
                b"x-forwarded-for".to_vec(),
                format!("65.52.10.20, {}", trusted.join(", ")).into_bytes(),
            )],
        ),
        (
            "10,000 lines, client on the first",
            std::iter::once((b"x-forwarded-for".to_vec(), b"65.52.10.20".to_vec()))
                .chain(
                    trusted
                        .iter()
                        .map(|t| (b"X-Forwarded-For".to_vec(), t.as_bytes().to_vec())),
                )
                .collect(),
        ),
        (
            "10,000 garbage entries",
            vec![(
                b"x-forwarded-for".to_vec(),
                (0..10_000)
                    .map(|i| format!("{i}\u{1}x"))
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes(),
            )],
        ),
        (
            "10,000 empty entries",
            vec![(b"x-forwarded-for".to_vec(), b",".repeat(10_000))],
        ),
        (
            "10,000 IPv6 entries, all untrusted",
            vec![(
                b"x-forwarded-for".to_vec(),
                (0..10_000)
                    .map(|i| format!("2603:1000::{i:x}"))
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes(),
            )],
        ),
    ];
    for (what, headers) in cases {
        let mut g = base(xff);
        g.headers = headers;
        let t = Instant::now();
        all_checks(xff, &g).unwrap_or_else(|e| panic!("{what}: {e}"));
        println!(
            "{what}: {} ({:.2?} for both engines)",
            decision(xff, &g),
            t.elapsed()
        );
    }
}

#[test]
fn a_thousand_repeated_headers_and_64_kib_values() {
    let _g = heavy();
    let mut failures = Vec::new();
    for (idx, n) in fixture().policies.iter().enumerate() {
        let big = vec![b'a'; 64 << 10];
        let mut variants: Vec<(&str, Gen)> = Vec::new();
        let mut g = base(idx);
        g.headers = (0..1000)
            .map(|i| {
                (
                    b"x-forwarded-proto".to_vec(),
                    if i % 2 == 0 {
                        b"https".to_vec()
                    } else {
                        b"http".to_vec()
                    },
                )
            })
            .collect();
        g.response = (0..1000)
            .map(|_| (b"strict-transport-security".to_vec(), b"max-age=1".to_vec()))
            .collect();
        variants.push(("1,000 X-Forwarded-Proto and 1,000 upstream HSTS", g));
        let mut g = base(idx);
        for w in &n.words {
            for _ in 0..(1000 / n.words.len().max(1)).max(1) {
                g.headers.push((w.clone(), w.clone()));
                g.response.push((w.clone(), w.clone()));
            }
        }
        variants.push(("1,000 headers named after the policy's words", g));
        let mut g = base(idx);
        g.authority = big.clone();
        g.path = [b"/".as_slice(), &big].concat();
        g.method = big.clone();
        g.headers = vec![
            (b"x-forwarded-for".to_vec(), big.clone()),
            (big.clone(), big.clone()),
        ];
        g.response = vec![(b"server".to_vec(), big.clone())];
        variants.push(("64 KiB method, authority, path, names and values", g));
        let mut g = base(idx);
        g.tls = false;
        if let Some(h) = n.policy.https_only.as_ref().and_then(|h| h.hosts.first()) {
            g.authority = h.host.as_bytes().to_vec();
        }
        g.path = [b"/".as_slice(), &big].concat();
        variants.push(("a 64 KiB path redirected", g));
        for (what, g) in variants {
            if let Err(e) = all_checks(idx, &g) {
                failures.push(format!("{} / {what}: {e}", n.source));
            }
        }
    }
    assert_none(&failures);
}

#[test]
fn non_utf8_everywhere_in_requests() {
    let _g = heavy();
    let bad: &[&[u8]] = &[
        b"\xff",
        b"\xc3\x28",
        b"\xed\xa0\x80",
        b"a\0b",
        b"\x80GET",
        b"\xe2\x82",
        b"\r\n",
        b"\x7f",
    ];
    let mut failures = Vec::new();
    for (idx, n) in fixture().policies.iter().enumerate() {
        for (k, b) in bad.iter().enumerate() {
            let mut g = base(idx);
            g.tls = k % 2 == 0;
            g.method = [b"GET", *b].concat();
            g.authority = [*b, b"api.example.com"].concat();
            g.path = [b"/", *b].concat();
            g.headers = vec![
                (b"x-forwarded-for".to_vec(), [b"65.52.10.20", *b].concat()),
                (b"x-forwarded-proto".to_vec(), [b"https", *b].concat()),
                ([b"x-", *b].concat(), b.to_vec()),
            ];
            for w in &n.words {
                g.headers.push((w.clone(), [w.as_slice(), b].concat()));
            }
            g.response = vec![
                ([b"x-", *b].concat(), b.to_vec()),
                (b"server".to_vec(), b.to_vec()),
            ];
            if let Err(e) = all_checks(idx, &g) {
                failures.push(format!("{} / {}: {e}", n.source, harness::show(b)));
            }
        }
    }
    assert_none(&failures);
}

#[test]
fn extreme_addresses_and_ports() {
    let mut failures = Vec::new();
    let socks = [
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "[::]:0",
        "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        "[::ffff:10.0.0.4]:1",
        "[::ffff:0.0.0.0]:0",
        "[::ffff:255.255.255.255]:65535",
        "[64:ff9b::a00:4]:80",
        "[::10.0.0.4]:443",
    ];
    for idx in 0..fixture().policies.len() {
        for peer in socks {
            for local in socks {
                let mut g = base(idx);
                g.peer = peer.parse().unwrap();
                g.local = local.parse().unwrap();
                g.transport = if peer.len() % 2 == 0 {
                    Transport::Udp
                } else {
                    Transport::Tcp
                };
                g.headers = vec![(b"x-forwarded-for".to_vec(), peer.as_bytes().to_vec())];
                if let Err(e) = all_checks(idx, &g) {
                    failures.push(format!("{peer} -> {local}: {e}"));
                }
            }
        }
    }
    assert_none(&failures);
}

#[test]
fn policies_are_checked_for_parse_invariants() {
    // The policy_parse check on the corpus texts themselves and on cut
    // prefixes of them (every cut is rejected or compiled, with positions).
    let mut failures = Vec::new();
    let mut n = 0;
    for file in harness::test_files(&root()) {
        let text = Suite::read(&file).unwrap().policy;
        let b = text.as_bytes();
        for cut in (0..=b.len()).step_by((b.len() / 40).max(1)) {
            n += 1;
            if let Err(e) = harness::check_parse(&b[..cut]) {
                failures.push(format!("{} cut at {cut}: {e}", file.display()));
            }
        }
    }
    println!("{n} documents and prefixes checked");
    assert_none(&failures);
}

#[test]
fn the_checks_catch_a_filter_that_decides_differently() {
    // The filter configured with one policy, the core with another: the
    // filter_wasm and differential checks must notice on the corpus cases.
    let f = fixture();
    let a = policy_named("client-ip-xff");
    let b = f
        .policies
        .iter()
        .position(|n| n.policy.https_only.is_some())
        .unwrap();
    let mut wrong = engine().configure(f.policies[b].text.as_bytes()).unwrap();
    let (mut filter_caught, mut diff_caught, mut n) = (0, 0, 0);
    for (idx, c, _) in corpus_cases(f) {
        if idx != a {
            continue;
        }
        n += 1;
        let g = Gen::from_case(idx, &c);
        let p = &f.policies[a].policy;
        filter_caught += usize::from(check_filter(&mut wrong, p, &g).is_err());
        diff_caught += usize::from(check_differential(&mut wrong, p, &g).is_err());
    }
    println!("{n} cases: filter_wasm caught {filter_caught}, differential caught {diff_caught}");
    assert!(n > 10 && filter_caught > n / 2 && diff_caught > n / 2);
}

/// Hostile requests and what they get, on both engines (the table in
/// docs/robustness.md is printed by this test).
#[test]
fn hostile_requests_get_these_decisions() {
    let _g = heavy();
    type Edit = fn(&mut Gen);
    let rows: Vec<(&str, &str, Edit, &str, Option<&str>)> = vec![
        (
            "https-redirect",
            "allowed host",
            |g| g.authority = b"api.contoso.net".to_vec(),
            "redirect 301 https_only peer 10.0.0.4 - allow-all",
            Some("https://api.contoso.net/a"),
        ),
        (
            "https-redirect",
            "allowed host, other case, trailing dot, port",
            |g| g.authority = b"API.Contoso.NET.:80".to_vec(),
            "redirect 301 https_only peer 10.0.0.4 - allow-all",
            Some("https://api.contoso.net/a"),
        ),
        (
            "https-redirect",
            "host not in `hosts`",
            |g| g.authority = b"evil.example".to_vec(),
            "deny 400 https_only peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "https-redirect",
            "non-UTF-8 host",
            |g| g.authority = b"api.contoso.net\xff".to_vec(),
            "deny 400 https_only peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "https-redirect",
            "CR LF in the path (header injection)",
            |g| {
                g.authority = b"api.contoso.net".to_vec();
                g.path = b"/a\r\nSet-Cookie: x=1".to_vec();
            },
            "deny 400 https_only peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "https-redirect",
            "path without a leading /",
            |g| {
                g.authority = b"api.contoso.net".to_vec();
                g.path = b"@evil.example/".to_vec();
            },
            "deny 400 https_only peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "https-redirect",
            "empty path",
            |g| {
                g.authority = b"api.contoso.net".to_vec();
                g.path = Vec::new();
            },
            "redirect 301 https_only peer 10.0.0.4 - allow-all",
            Some("https://api.contoso.net/"),
        ),
        (
            "https-redirect",
            "non-UTF-8 method",
            |g| {
                g.authority = b"api.contoso.net".to_vec();
                g.method = b"G\xffT".to_vec();
            },
            "redirect 308 https_only peer 10.0.0.4 - allow-all",
            Some("https://api.contoso.net/a"),
        ),
        (
            "https-redirect",
            "64 KiB path",
            |g| {
                g.authority = b"api.contoso.net".to_vec();
                g.path = [b"/".as_slice(), &vec![b'p'; 64 << 10]].concat();
            },
            "redirect 301 https_only peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "https-redirect",
            "64 KiB path, host not allowed",
            |g| {
                g.authority = b"x".to_vec();
                g.path = [b"/".as_slice(), &vec![b'p'; 64 << 10]].concat();
            },
            "deny 400 https_only peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "client-ip-xff",
            "X-Forwarded-For entry with a non-UTF-8 byte",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), b"65.52.10.20\xff".to_vec())],
            "deny 403 client_ip x-forwarded-for[0] unknown:malformed:\"65.52.10.20\\xff\" - default",
            None,
        ),
        (
            "client-ip-xff",
            "empty X-Forwarded-For",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), Vec::new())],
            "deny 403 client_ip x-forwarded-for[0] unknown:malformed:\"\" - default",
            None,
        ),
        (
            "client-ip-xff",
            "only trusted entries",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), b"10.0.0.7, 10.0.0.8".to_vec())],
            "deny 403 client_ip x-forwarded-for unknown:all-trusted - default",
            None,
        ),
        (
            "client-ip-xff",
            "entry with a port",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), b"65.52.10.20:443".to_vec())],
            "forward 0 forward x-forwarded-for[0] 65.52.10.20 - allow-internet",
            None,
        ),
        (
            "client-ip-xff",
            "bracketed IPv6 entry",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), b"[2603:1000::1]".to_vec())],
            "forward 0 forward x-forwarded-for[0] 2603:1000::1 - allow-internet",
            None,
        ),
        (
            "client-ip-xff",
            "leading zeros",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), b"065.52.10.20".to_vec())],
            "deny 403 client_ip x-forwarded-for[0] unknown:malformed:\"065.52.10.20\" - default",
            None,
        ),
        (
            "client-ip-xff",
            "zone id",
            |g| g.headers = vec![(b"x-forwarded-for".to_vec(), b"fe80::1%eth0".to_vec())],
            "deny 403 client_ip x-forwarded-for[0] unknown:malformed:\"fe80::1%eth0\" - default",
            None,
        ),
        (
            "client-ip-xff",
            "garbage left of a good entry (not reached)",
            |g| {
                g.headers = vec![(
                    b"x-forwarded-for".to_vec(),
                    b"\xff\x00garbage, 65.52.10.20".to_vec(),
                )]
            },
            "forward 0 forward x-forwarded-for[0] 65.52.10.20 - allow-internet",
            None,
        ),
        (
            "client-ip-xff",
            "untrusted peer with a forged X-Forwarded-For",
            |g| {
                g.peer = "192.168.1.1:5000".parse().unwrap();
                g.headers = vec![(b"x-forwarded-for".to_vec(), b"65.52.10.20".to_vec())];
            },
            "deny 403 network peer 192.168.1.1 - default",
            None,
        ),
        (
            "client-ip-xff",
            "IPv4-mapped trusted peer, mapped client",
            |g| {
                g.peer = "[::ffff:10.0.0.4]:1".parse().unwrap();
                g.headers = vec![(b"x-forwarded-for".to_vec(), b"::ffff:65.52.10.20".to_vec())];
            },
            "forward 0 forward x-forwarded-for[0] 65.52.10.20 - allow-internet",
            None,
        ),
        (
            "require-headers",
            "key with a trailing space",
            |g| g.headers = vec![(b"x-functions-key".to_vec(), b"K-one ".to_vec())],
            "deny 401 require_headers peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "require-headers",
            "key in another case",
            |g| g.headers = vec![(b"x-functions-key".to_vec(), b"k-one".to_vec())],
            "deny 401 require_headers peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "require-headers",
            "non-UTF-8 key",
            |g| g.headers = vec![(b"x-functions-key".to_vec(), b"K-one\xff".to_vec())],
            "deny 401 require_headers peer 10.0.0.4 - allow-all",
            None,
        ),
        (
            "require-headers",
            "1,000 wrong keys then a right one, but no tenant",
            |g| {
                g.headers = vec![(b"x-functions-key".to_vec(), b"nope".to_vec()); 1000];
                g.headers
                    .push((b"X-Functions-Key".to_vec(), b"K-two".to_vec()));
            },
            "deny 403 require_headers peer 10.0.0.4 - allow-all",
            None,
        ),
    ];
    println!("| policy | request | decision (trace) |\n|---|---|---|");
    let mut failures = Vec::new();
    for (policy, what, edit, want, location) in rows {
        let idx = policy_named(policy);
        let mut g = base(idx);
        edit(&mut g);
        let seen = decision(idx, &g);
        println!("| `{policy}` | {what} | `{seen}` |");
        if seen != want {
            failures.push(format!("{policy} / {what}: {seen}, expected {want}"));
        }
        if let Some(loc) = location {
            let p = &fixture().policies[idx].policy;
            let h = g.host_headers();
            let d = p.decide(&g.request(&h));
            if d.location.as_deref() != Some(loc.as_bytes()) {
                failures.push(format!(
                    "{policy} / {what}: Location {:?}",
                    d.location.as_deref().map(harness::show)
                ));
            }
        }
        if let Err(e) = all_checks(idx, &g) {
            failures.push(format!("{policy} / {what}: {e}"));
        }
    }
    assert_none(&failures);
}

#[test]
fn the_filter_accepts_exactly_the_policies_the_core_accepts() {
    // Every policy_parse input (seeds, regressions) and cut prefixes of the
    // corpus policies: configure succeeds iff Policy::parse does, and a
    // refusal names at least one problem in the logs.
    let mut docs: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in ["fuzz/corpus/policy_parse", "fuzz/regressions/policy_parse"] {
        for p in files(&root().join(dir)) {
            docs.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    for file in harness::test_files(&root()).iter().step_by(4) {
        let text = Suite::read(file).unwrap().policy;
        let b = text.as_bytes();
        for cut in (0..b.len()).step_by((b.len() / 6).max(1)) {
            docs.push((
                format!("{} cut at {cut}", file.display()),
                b[..cut].to_vec(),
            ));
        }
    }
    let mut failures = Vec::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (what, doc) in &docs {
        let core = Policy::parse(doc);
        match (&core, engine().configure(doc)) {
            (Ok(_), Ok(_)) => accepted += 1,
            (Err(problems), Err(e)) => {
                rejected += 1;
                let n = e
                    .logs()
                    .iter()
                    .filter(|(_, l)| l.contains("rejected"))
                    .count();
                if n != problems.0.len() {
                    failures.push(format!(
                        "{what}: the core lists {} problems, the filter logged {n}: {e}",
                        problems.0.len()
                    ));
                }
            }
            (Ok(_), Err(e)) => failures.push(format!("{what}: the filter refused it: {e}")),
            (Err(p), Ok(_)) => failures.push(format!("{what}: the filter accepted it; core: {p}")),
        }
    }
    println!(
        "{} documents: {accepted} accepted and {rejected} rejected by both",
        docs.len()
    );
    assert_none(&failures);
}
