//! The replay bench's three passes, each its own process so that its peak
//! RSS is its own (scripts/bench/replay.sh runs them and prints ratios):
//!
//! - `gen FILE N`: writes an NSG flow log (version 2) of N tuples, in
//!   documents of 100,000 tuples per `records[]` entry, calling from the
//!   layered-security front-ends and 65,536 other addresses;
//! - `replay FILE OLD NEW [THREADS]`: reads it with the replay reader and
//!   judges every record by both policies into tallies on THREADS workers
//!   (default: every core), merged (what `portcullis replay` does);
//! - `serde FILE`: the baseline, one serde_json pass that reads every value
//!   of the document and keeps nothing (`IgnoredAny`);
//! - `scan FILE`, `parse FILE`: the reader's parts alone (the JSON scan; the
//!   scan and the tuples parsed), to see where the time goes.
//!
//! Each pass prints `seconds`, `records` and the process's peak RSS
//! (`VmHWM`) as `key=value`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a bench tool

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::time::Instant;

use portcullis_core::Policy;
use portcullis_replay::read::{self, Item};
use portcullis_replay::{Loc, Side, Tally};

fn peak_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of this process, every thread (user + system).
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn gen(path: &str, n: u64) {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let fronts = ["65.52.10.20", "191.238.20.30", "23.98.30.40", "70.37.40.50"];
    w.write_all(b"{\"records\":[").unwrap();
    let per = 100_000u64;
    let mut i = 0u64;
    let mut first_doc = true;
    while i < n {
        if !first_doc {
            w.write_all(b",").unwrap();
        }
        first_doc = false;
        write!(
            w,
            "{{\"time\":\"2026-11-30T10:00:00.0000000Z\",\"category\":\"NetworkSecurityGroupFlowEvent\",\"properties\":{{\"Version\":2,\"flows\":[{{\"rule\":\"r\",\"flows\":[{{\"mac\":\"000D3A000001\",\"flowTuples\":["
        )
        .unwrap();
        let end = (i + per).min(n);
        let mut first = true;
        while i < end {
            if !first {
                w.write_all(b",").unwrap();
            }
            first = false;
            let t = 1_796_032_800 + i / 1000;
            let sport = 1024 + (i % 60_000) as u16;
            if i.is_multiple_of(4) {
                let x = i.wrapping_mul(2_654_435_761) % 65_536;
                write!(
                    w,
                    "\"{t},20.{}.{}.7,10.0.1.4,{sport},443,T,I,D,B,,,,\"",
                    x >> 8,
                    x & 255
                )
                .unwrap();
            } else {
                let f = fronts[((i / 4) % 4) as usize];
                let port = if i % 8 == 1 { 80 } else { 443 };
                write!(
                    w,
                    "\"{t},{f},10.0.1.4,{sport},{port},T,I,A,B,1,120,1,1500\""
                )
                .unwrap();
            }
            i += 1;
        }
        w.write_all(b"]}]}]}}").unwrap();
    }
    w.write_all(b"]}\n").unwrap();
    w.flush().unwrap();
}

fn replay(path: &str, old: &str, new: &str, threads: usize) {
    let old = Policy::parse(&std::fs::read(old).unwrap()).unwrap();
    let new = Policy::parse(&std::fs::read(new).unwrap()).unwrap();
    let start = Instant::now();
    let mut input = read::open(path).unwrap();
    let parts = read::read_parallel(
        &mut *input,
        threads,
        &Tally::default,
        &|tally, line, item| {
            match item {
                Item::Record(r) => tally.add(Side::Policy(&old), &new, &r, Loc { file: 0, line }),
                Item::Skip(u) => tally.skipped(u),
                Item::Malformed(m) => panic!("{line}: {m}"),
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    let mut tally = Tally::default();
    for t in &parts {
        tally.merge(t);
    }
    let report = tally.report(&[path.to_string()], Side::Policy(&old), &new);
    println!(
        "seconds={:.3} cpu_seconds={:.2} records={} newly_denied={} threads={threads} peak_rss_kib={}",
        start.elapsed().as_secs_f64(),
        cpu_seconds(),
        report.records,
        report.newly_denied_records(),
        peak_rss_kib()
    );
}

fn serde(path: &str) {
    use serde::de::IgnoredAny;
    let start = Instant::now();
    let f = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(path).unwrap());
    let mut de = serde_json::Deserializer::from_reader(f);
    let _: IgnoredAny = serde::Deserialize::deserialize(&mut de).unwrap();
    de.end().unwrap();
    println!(
        "seconds={:.3} cpu_seconds={:.2} peak_rss_kib={}",
        start.elapsed().as_secs_f64(),
        cpu_seconds(),
        peak_rss_kib()
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("gen") => gen(&a[2], a[3].parse().unwrap()),
        Some("replay") => replay(
            &a[2],
            &a[3],
            &a[4],
            a.get(5).map_or_else(
                || std::thread::available_parallelism().map_or(1, |n| n.get()),
                |t| t.parse().unwrap(),
            ),
        ),
        Some("serde") => serde(&a[2]),
        Some("scan") => {
            let mut input = read::open(&a[2]).unwrap();
            let mut n = 0u64;
            read::flowlog::scan(&mut *input, &mut |_, _| {
                n += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
            println!("scan n={n} cpu_seconds={:.2}", cpu_seconds());
        }
        Some("parse") => {
            let mut input = read::open(&a[2]).unwrap();
            let mut n = 0u64;
            read::read(&mut *input, &mut |_, i| {
                n += u64::from(matches!(i, Item::Record(_)));
                ControlFlow::Continue(())
            })
            .unwrap();
            println!("parse n={n} cpu_seconds={:.2}", cpu_seconds());
        }
        _ => panic!("usage: replay_bench gen FILE N | replay FILE OLD NEW | serde FILE"),
    }
}
