//! Cost of the diff over scopes on the largest number of scopes a policy
//! may hold (`MAX_SCOPES`, 1,000).
#![allow(clippy::expect_used)] // a benchmark harness, not product code
//!
//! `cargo bench -p portcullis-diff --bench scopes`. The old policy has a
//! top level of 50 rules and 1,000 scopes: 900 host scopes (an exact name
//! and a `*.` wildcard each, three path patterns, methods on every other
//! one, a network of 5 rules of 4 CIDRs) and 100 path-only scopes (no
//! hosts: candidates for every host). The new one is a copy with a few
//! changes: one scope's network widened, one dropped, one path-only
//! scope's paths changed, one top-level rule changed; and, as the worst
//! shape, every path-only scope's network changed. Times `diff` (parse not
//! included); medians of 3 runs; no assertion on time.

use std::time::{Duration, Instant};

use portcullis_core::policy::scope::MAX_SCOPES;
use portcullis_core::Policy;
use portcullis_diff::{Flows, Scoped};

fn rules(prefix: &str, n: usize, cidrs: usize, base: u32, allow_all: bool) -> String {
    let r: Vec<String> = (0..n)
        .map(|k| {
            let src: Vec<String> = (0..cidrs)
                .map(|c| {
                    let a = base + ((k * cidrs + c) as u32) * 256;
                    let [x, y, z, _] = a.to_be_bytes();
                    format!("\"{x}.{y}.{z}.0/24\"")
                })
                .collect();
            let src = if allow_all && k == 0 {
                "\"*\"".to_string()
            } else {
                src.join(",")
            };
            format!(
                r#"{{"name":"{prefix}{k}","priority":{},"access":"{}","source":[{src}]}}"#,
                100 + k,
                if k % 4 == 3 { "deny" } else { "allow" }
            )
        })
        .collect();
    format!(r#"{{"default_access":"deny","rules":[{}]}}"#, r.join(","))
}

/// `widen`: scopes whose first rule becomes `*`; `drop`, `repath`: scopes
/// dropped or with other paths; `top`: the top level's rules shifted.
fn policy(widen: &[usize], drop: &[usize], repath: &[usize], top: bool) -> String {
    let mut scopes = Vec::new();
    for i in 0..MAX_SCOPES {
        if drop.contains(&i) {
            continue;
        }
        let base = 0x0b00_0000u32 + (i as u32) * 65536;
        let net = rules(&format!("s{i}r"), 5, 4, base, widen.contains(&i));
        let s = if i < 900 {
            let methods = if i % 2 == 1 {
                r#","methods":["GET","POST"]"#
            } else {
                ""
            };
            format!(
                r#"{{"name":"s{i}","match":{{"hosts":["api{i}.contoso.net","*.t{i}.contoso.net"],"paths":["/v1/*","/v1/items","/admin/*"]{methods}}},"network":{net}}}"#
            )
        } else {
            let p = if repath.contains(&i) { "q" } else { "p" };
            format!(
                r#"{{"name":"s{i}","match":{{"paths":["/{p}{i}/*","/{p}{i}/x"]}},"network":{net}}}"#
            )
        };
        scopes.push(s);
    }
    let top = rules(
        "t",
        50,
        4,
        if top { 0x0c00_0100 } else { 0x0c00_0000 },
        false,
    );
    format!(
        r#"{{"name":"big","response_headers":[{{"remove":"Server"}}],"network":{top},"scopes":[{}]}}"#,
        scopes.join(",")
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let old = Policy::parse(policy(&[], &[], &[], false).as_bytes()).expect("old");
    assert_eq!(old.scopes.len(), MAX_SCOPES);
    let all_paths: Vec<usize> = (900..1000).collect();
    let cases: [(&str, String); 4] = [
        ("itself", policy(&[], &[], &[], false)),
        ("a few changes", policy(&[10], &[500], &[950], true)),
        ("scope 0 dropped", policy(&[], &[0], &[], false)),
        (
            "every path-only scope widened",
            policy(&all_paths, &[], &[], false),
        ),
    ];
    println!("| new policy | groups | regions listed | diff median |");
    println!("|---|---:|---:|---:|");
    for (name, text) in cases {
        let new = Policy::parse(text.as_bytes()).expect("new");
        let mut times = Vec::new();
        let mut report = None;
        for _ in 0..3 {
            let t = Instant::now();
            let r = portcullis_diff::diff(std::hint::black_box(&old), std::hint::black_box(&new));
            times.push(t.elapsed());
            report = Some(r);
        }
        let r = report.expect("ran");
        let what = match &r.scopes {
            Some(Scoped::Exact { groups, .. }) => {
                let regions: usize = groups.iter().map(|g| g.regions.len()).sum();
                let complex = groups
                    .iter()
                    .any(|g| matches!(g.network, Flows::TooComplex { .. }));
                format!(
                    "{}{} | {regions}",
                    groups.len(),
                    if complex { " (some too complex)" } else { "" }
                )
            }
            Some(Scoped::TooManyRegions { limit, .. }) => format!("too many regions ({limit}) | -"),
            None => "none | -".into(),
        };
        println!(
            "| {name} | {what} | {:.1} ms |",
            median(times).as_secs_f64() * 1e3
        );
    }
}
