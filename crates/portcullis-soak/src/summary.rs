//! What a soak run measured ([`Summary`]), its JSON form and the figures it
//! prints.

use serde_json::{json, Value};

use crate::config::Config;
use crate::swap::Swap;
use crate::tally::{Protocol, ProtocolCounts, Tally, VERDICTS};
use crate::workload::POLICY_NAMES;

/// RSS samples needed before the growth check means anything.
pub const MIN_RSS_SAMPLES: usize = 20;
/// Largest RSS growth (percent, first to last quarter) that passes.
pub const MAX_RSS_GROWTH_PERCENT: f64 = 5.0;

/// One check of the run.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// Name.
    pub name: &'static str,
    /// `Some(passed)`, or `None` when it cannot be judged (too short a run).
    pub passed: Option<bool>,
    /// Figures.
    pub detail: String,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The configuration.
    pub config: Config,
    /// Load-thread counts plus probes.
    pub tally: Tally,
    /// Load duration.
    pub seconds: f64,
    /// Swaps done.
    pub swaps: Vec<Swap>,
    /// Swaps planned.
    pub swaps_planned: usize,
    /// Probe tally (part of `tally.decided`).
    pub probes: u64,
    /// RSS samples (seconds since load start, KiB).
    pub rss: Vec<(f64, u64)>,
    /// Non-zero wasm failure stats.
    pub vm_failures: Vec<(String, u64)>,
    /// Envoy's `wasm.*` stats at the end (VM counts, reloads, failures).
    pub wasm_stats: Vec<(String, u64)>,
    /// `wasmcustom.portcullis.*` verdict counters.
    pub filter_counters: Vec<(String, u64)>,
    /// ECDS counters.
    pub ecds: Vec<(String, u64)>,
    /// Envoy's requests per protocol on the soak's listeners.
    pub protocol_stats: Vec<(String, u64)>,
    /// Problems of the run itself (start-up, swaps).
    pub errors: Vec<String>,
    /// Checks.
    pub checks: Vec<CheckResult>,
}

/// `key<sep>value` pairs joined with `, `, for the printed summary.
fn listing<K: std::fmt::Display, V: std::fmt::Display>(
    pairs: impl IntoIterator<Item = (K, V)>,
    sep: &str,
) -> String {
    let items: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}{sep}{v}"))
        .collect();
    items.join(", ")
}

/// Average of the first and last quarter of the samples, and the growth in percent.
pub fn rss_quarters(samples: &[(f64, u64)]) -> Option<(f64, f64, f64)> {
    let q = samples.len() / 4;
    if q == 0 {
        return None;
    }
    let avg = |s: &[(f64, u64)]| s.iter().map(|(_, k)| *k as f64).sum::<f64>() / s.len() as f64;
    let first = avg(samples.get(..q)?);
    let last = avg(samples.get(samples.len() - q..)?);
    Some((first, last, (last - first) / first * 100.0))
}

/// One protocol's counts as JSON.
pub fn protocol_json(p: &ProtocolCounts) -> Value {
    json!({
        "requests": p.requests,
        "requests_tls": p.tls,
        "mismatches": p.mismatches,
        "swap_violations": p.swap_violations,
        "hardening_failures": p.hardening,
        "status_5xx": p.status_5xx,
        "io_errors": p.io_errors,
        "stream_resets": p.stream_resets,
        "by_status": p.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

impl Summary {
    /// The share of the mix's requests that went over HTTP/2, in percent.
    pub fn h2_percent(&self) -> f64 {
        let mix: u64 = self.tally.by_protocol.iter().map(|p| p.requests).sum();
        self.tally.protocol(Protocol::Http2).requests as f64 * 100.0 / mix.max(1) as f64
    }

    /// The `http2` object of the JSON summary: the share asked for, the
    /// share carried, what was not carried, and the counts per protocol.
    pub fn protocols_json(&self) -> Value {
        let t = &self.tally;
        json!({
            "share_percent": self.config.h2_share,
            "carried_percent": (self.h2_percent() * 100.0).round() / 100.0,
            "envoy_downstream_rq": self.protocol_stats.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "envoy_reset": { "expected": t.envoy_reset_expected, "seen": t.envoy_reset_seen },
            "by_protocol": Protocol::ALL.iter().map(|p| (p.as_str().to_owned(), protocol_json(&t.protocol(*p)))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// Envoy's own count of HTTP/2 requests on the soak's listeners.
    pub fn envoy_h2_requests(&self) -> u64 {
        self.protocol_stats
            .iter()
            .filter(|(n, _)| n.ends_with(".downstream_rq_http2_total"))
            .map(|(_, v)| v)
            .sum()
    }

    /// Checks passed and failed (unjudged ones in neither).
    pub fn counts(&self) -> (usize, usize) {
        let passed = self
            .checks
            .iter()
            .filter(|c| c.passed == Some(true))
            .count();
        let failed = self
            .checks
            .iter()
            .filter(|c| c.passed == Some(false))
            .count();
        (passed, failed)
    }

    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.tally.requests as f64 / self.seconds.max(0.001)
    }

    /// The JSON summary.
    pub fn to_json(&self) -> Value {
        let t = &self.tally;
        let (passed, failed) = self.counts();
        let rss = rss_quarters(&self.rss);
        json!({
            "requests": t.requests,
            "requests_planned": self.config.requests,
            "requests_tls": t.tls,
            "seconds": self.seconds,
            "rps": self.rps(),
            "threads": self.config.threads,
            "envoy_concurrency": self.config.concurrency,
            "engine": if self.config.native { "native" } else { "wasm" },
            "seed": self.config.seed,
            "http2": self.protocols_json(),
            "mismatches": t.mismatches,
            "swap_violations": t.swap_violations,
            "responses_in_swap_windows": t.in_window,
            "hardening_failures": t.hardening,
            "status_5xx": t.status_5xx,
            "io_errors": t.io_errors,
            "envoy_431": { "expected": t.envoy_431_expected, "seen": t.envoy_431_seen },
            "vm_failures": self.vm_failures.iter().map(|(n, v)| json!({"stat": n, "value": v})).collect::<Vec<_>>(),
            "rss_kib": {
                "samples": self.rss.len(),
                "first_quarter": rss.map(|r| r.0),
                "last_quarter": rss.map(|r| r.1),
                "growth_percent": rss.map(|r| r.2),
                "min": self.rss.iter().map(|r| r.1).min(),
                "max": self.rss.iter().map(|r| r.1).max(),
                "series": self.rss.iter().map(|(t, k)| json!([(t * 10.0).round() / 10.0, k])).collect::<Vec<_>>(),
            },
            "wasm_stats": self.wasm_stats.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "swaps": self.swaps.iter().map(|s| json!({
                "at_request": s.at_request, "to": s.to, "reload_ms": s.reload_ms as u64,
                "in_force_ms": s.fence_ms as u64, "probes": s.probes,
            })).collect::<Vec<_>>(),
            "swaps_planned": self.swaps_planned,
            "probes": self.probes,
            "by_class": t.by_class,
            "by_status": t.by_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "decisions": POLICY_NAMES.iter().enumerate().map(|(pi, n)| (n.to_string(), VERDICTS.iter().map(|(v, _)| (v.as_str().to_owned(), json!(t.decisions(pi, *v)))).collect::<serde_json::Map<_, _>>().into())).collect::<serde_json::Map<_, _>>(),
            "filter_counters": self.filter_counters.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "ecds": self.ecds.iter().map(|(n, v)| (n.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "examples": t.examples,
            "errors": self.errors,
            "checks": self.checks.iter().map(|c| json!({"name": c.name, "passed": c.passed, "detail": c.detail})).collect::<Vec<_>>(),
            "passed": passed,
            "failed": failed,
        })
    }
}

impl Summary {
    /// Prints the figures and one line per check (PASS, FAIL or N/A).
    pub fn print(&self) {
        let s = self;
        let t = &s.tally;
        println!();
        println!("== soak figures");
        println!(
            "requests        {} in {:.1} s ({:.0} req/s, {} load threads, Envoy --concurrency {})",
            t.requests,
            s.seconds,
            s.rps(),
            s.config.threads,
            s.config.concurrency
        );
        println!(
            "listeners       {} over TLS, {} plain",
            t.tls,
            t.requests - t.tls
        );
        println!(
            "protocols       HTTP/2 share {} % asked, {:.1} % carried",
            s.config.h2_share,
            s.h2_percent(),
        );
        println!(
            "  Envoy says    {}",
            listing(s.protocol_stats.iter().map(|(n, v)| (n, v)), " ")
        );
        for p in Protocol::ALL {
            let c = t.protocol(p);
            println!(
                "  {:<13} {} requests ({} TLS), {} mismatches, {} swap violations, {} hardening, {} i/o errors, {} stream resets; {}",
                p.as_str(),
                c.requests,
                c.tls,
                c.mismatches,
                c.swap_violations,
                c.hardening,
                c.io_errors,
                c.stream_resets,
                listing(&c.by_status, ": ")
            );
        }
        println!("classes         {}", listing(&t.by_class, " "));
        println!("statuses        {}", listing(&t.by_status, ": "));
        println!("mismatches      {}", t.mismatches);
        println!(
            "swap violations {} ({} responses inside swap windows)",
            t.swap_violations, t.in_window
        );
        println!("hardening       {} failures", t.hardening);
        println!("5xx             {}", t.status_5xx);
        println!(
            "envoy 431       {} expected, {} seen (HTTP/1.1); stream resets {} expected, {} seen (HTTP/2)",
            t.envoy_431_expected, t.envoy_431_seen, t.envoy_reset_expected, t.envoy_reset_seen
        );
        println!("i/o errors      {}", t.io_errors);
        println!(
            "VM failures     {}",
            if s.vm_failures.is_empty() {
                "0".to_owned()
            } else {
                format!("{:?}", s.vm_failures)
            }
        );
        match rss_quarters(&s.rss) {
            Some((f, l, g)) => println!("Envoy RSS       first quarter {f:.0} KiB, last quarter {l:.0} KiB, growth {g:+.2}% ({} samples)", s.rss.len()),
            None => println!("Envoy RSS       {} samples: too few for quarters", s.rss.len()),
        }
        println!(
            "swaps           {} of {} planned, {} probes",
            s.swaps.len(),
            s.swaps_planned,
            s.probes
        );
        for sw in &s.swaps {
            println!(
                "                at request {} -> {}: config_reload {} ms, in force {} ms",
                sw.at_request, sw.to, sw.reload_ms, sw.fence_ms
            );
        }
        for e in &t.examples {
            println!("example         {e}");
        }
        for e in &s.errors {
            println!("error           {e}");
        }
        println!();
        println!("== checks");
        for c in &s.checks {
            let mark = match c.passed {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "N/A ",
            };
            println!("{mark} {}: {}", c.name, c.detail);
        }
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rss_quarters_measure_growth() {
        let flat: Vec<(f64, u64)> = (0..40).map(|i| (f64::from(i), 1000)).collect();
        assert_eq!(rss_quarters(&flat).map(|r| r.2), Some(0.0));
        let growing: Vec<(f64, u64)> = (0..40)
            .map(|i| (f64::from(i), 1000 + 10 * i as u64))
            .collect();
        let (f, l, g) = rss_quarters(&growing).unwrap();
        assert!(l > f && g > 25.0, "{f} {l} {g}");
        assert_eq!(rss_quarters(&flat[..3]), None);
    }

    #[test]
    fn the_json_says_the_h2_share_and_counts_per_protocol() {
        let mut tally = Tally::default();
        for k in 0..10u16 {
            let m = tally.marks();
            let p = if k < 2 {
                Protocol::Http2
            } else {
                Protocol::Http1
            };
            if k == 1 {
                tally.mismatches += 1;
            }
            tally.count_protocol(p, k % 2 == 0, Some(200 + k), m);
        }
        tally.envoy_reset_expected = 1;
        tally.envoy_reset_seen = 1;
        let config = Config {
            requests: 10,
            threads: 1,
            budget: std::time::Duration::from_secs(1),
            swap_percent: 15,
            seed: 1,
            concurrency: 1,
            h2_share: 20,
            native: false,
            json: std::path::PathBuf::from("soak.json"),
        };
        let s = Summary {
            config,
            tally,
            seconds: 1.0,
            swaps: Vec::new(),
            swaps_planned: 0,
            probes: 0,
            rss: Vec::new(),
            vm_failures: Vec::new(),
            wasm_stats: Vec::new(),
            filter_counters: Vec::new(),
            ecds: Vec::new(),
            protocol_stats: vec![("http.http_plain.downstream_rq_http2_total".into(), 2)],
            errors: Vec::new(),
            checks: Vec::new(),
        };
        let j = s.to_json();
        let h = &j["http2"];
        assert_eq!(h["share_percent"], 20);
        assert_eq!(h["carried_percent"], 20.0);
        assert_eq!(h["envoy_reset"]["seen"], 1);
        assert_eq!(s.envoy_h2_requests(), 2);
        assert_eq!(
            h["envoy_downstream_rq"]["http.http_plain.downstream_rq_http2_total"],
            2
        );
        let h2 = &h["by_protocol"]["h2"];
        assert_eq!(
            (h2["requests"].as_u64(), h2["mismatches"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(h2["requests_tls"], 1);
        assert_eq!(h2["by_status"]["201"], 1);
        let h1 = &h["by_protocol"]["http/1.1"];
        assert_eq!(
            (h1["requests"].as_u64(), h1["mismatches"].as_u64()),
            (Some(8), Some(0))
        );
        assert_eq!(h1["by_status"]["209"], 1);
        assert!(h1["by_status"].get("200").is_none());
    }
}
