//! Cost of an exact diff of two large policies.
#![allow(clippy::expect_used)] // a benchmark harness, not product code
//!
//! `cargo bench -p portcullis-diff --bench diff` (also run by
//! `scripts/bench.sh` beside the core's decide bench). Each case builds two
//! policies of 10,000 CIDR entries (/24s and /32s across public IPv4 space,
//! plus some IPv6 /48s) spread over a number of rules with mixed access and
//! ports, the new one with 100 entries replaced, and times `diff` (parse
//! not included). Medians of 5 runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use portcullis_core::Policy;

struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn entry(i: usize, g: &mut Gen) -> String {
    if i % 10 == 9 {
        format!("2001:db8:{:x}::/48", i)
    } else {
        let base = 0x0b00_0000u32 + (i as u32) * 256;
        let [a, b, c, _] = base.to_be_bytes();
        if g.next().is_multiple_of(4) {
            format!("{a}.{b}.{c}.17")
        } else {
            format!("{a}.{b}.{c}.0/24")
        }
    }
}

fn policy(entries: &[String], rules: usize) -> String {
    let mut per: Vec<Vec<String>> = vec![Vec::new(); rules];
    for (i, e) in entries.iter().enumerate() {
        per[i % rules].push(format!("{e:?}"));
    }
    let rule_text: Vec<String> = per
        .iter()
        .enumerate()
        .map(|(r, src)| {
            format!(
                r#"{{"name":"r{r}","priority":{},"access":"{}","source":[{}],"destination_ports":["{}"]}}"#,
                100 + r,
                if r % 7 != 0 { "allow" } else { "deny" },
                src.join(","),
                if r % 3 == 0 { "443" } else { "80-90" },
            )
        })
        .collect();
    format!(
        r#"{{"name":"bench","network":{{"default_access":"deny","rules":[{}]}}}}"#,
        rule_text.join(",")
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A hostile pair: 2,000 overlapping rules (random /10 to /24 sources in 10/8,
/// random port ranges on both ends), the new policy with every priority
/// reversed: the worst case measured, not a timing assertion.
fn hostile() -> (Policy, Policy) {
    let mut g = Gen(7);
    let rules: Vec<(String, u16)> = (0..2000)
        .map(|_| {
            let len = 10 + (g.next() % 15) as u32;
            let a = (0x0a00_0000 | (g.next() as u32 & 0x00ff_ffff)) & (u32::MAX << (32 - len));
            let [x, y, z, w] = a.to_be_bytes();
            (
                format!("{x}.{y}.{z}.{w}/{len}"),
                (g.next() % 64) as u16 + 1000,
            )
        })
        .collect();
    let text = |rev: bool| {
        let r: Vec<String> = rules
            .iter()
            .enumerate()
            .map(|(i, (src, port))| {
                let prio = if rev { 2099 - i } else { 100 + i };
                format!(
                    r#"{{"name":"r{i}","priority":{prio},"access":"{}","source":["{src}"],"destination_ports":["{port}-{}"],"source_ports":["{}-65535"]}}"#,
                    if i % 2 == 0 { "allow" } else { "deny" },
                    port + (i % 7) as u16,
                    (i * 37) % 60000
                )
            })
            .collect();
        format!(r#"{{"name":"h","network":{{"rules":[{}]}}}}"#, r.join(","))
    };
    (
        Policy::parse(text(false).as_bytes()).expect("old"),
        Policy::parse(text(true).as_bytes()).expect("new"),
    )
}

fn main() {
    println!("| entries | rules | changed | changes | flow sets | diff median |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &(n, rules) in &[(10_000usize, 1usize), (10_000, 100), (10_000, 3000)] {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15 ^ (n * rules) as u64);
        let old: Vec<String> = (0..n).map(|i| entry(i, &mut g)).collect();
        let mut new = old.clone();
        // 100 entries replaced by addresses no old entry holds.
        for k in 0..100 {
            let i = (g.next() as usize) % n;
            new[i] = format!("198.{}.{}.0/24", 18 + k / 200, k % 200);
        }
        let a = Policy::parse(policy(&old, rules).as_bytes()).expect("old");
        let b = Policy::parse(policy(&new, rules).as_bytes()).expect("new");
        let mut times = Vec::new();
        let mut report = None;
        for _ in 0..5 {
            let t = Instant::now();
            let r = portcullis_diff::diff(black_box(&a), black_box(&b));
            times.push(t.elapsed());
            report = Some(r);
        }
        let r = report.expect("ran");
        assert!(
            matches!(r.network, portcullis_diff::Flows::Exact { .. }),
            "{r}"
        );
        let sets: usize = r.changes().iter().map(|c| c.flows.len()).sum();
        println!(
            "| {n} | {rules} | 100 | {} | {sets} | {:.1} ms |",
            r.changes().len(),
            median(times).as_secs_f64() * 1e3
        );
    }
    let (a, b) = hostile();
    let t = Instant::now();
    let r = portcullis_diff::diff(&a, &b);
    let what = match &r.network {
        portcullis_diff::Flows::Exact { changes } => format!("exact, {} groups", changes.len()),
        portcullis_diff::Flows::TooManyRanges { ranges, .. } => {
            format!("too many ranges ({ranges})")
        }
        portcullis_diff::Flows::TooComplex { limit } => format!("too complex (stopped at {limit})"),
    };
    println!(
        "\nhostile pair (2,000 overlapping rules, every priority reversed): {what} in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Where the work bound would stop it, and how fast it says so.
    for cells in [1_000_000usize, 4_000_000] {
        let t = Instant::now();
        let r = portcullis_diff::diff_with(
            &a,
            &b,
            portcullis_diff::Limits {
                cells,
                ..portcullis_diff::Limits::default()
            },
        );
        println!(
            "  with a bound of {cells} cells: {} in {:.0} ms",
            if matches!(r.network, portcullis_diff::Flows::TooComplex { .. }) {
                "too many ranges (stopped)"
            } else {
                "exact"
            },
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
