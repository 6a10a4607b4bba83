//! The checks of a soak run: every one a count or a figure of the run,
//! judged pass, fail, or not judged (too short a run for the RSS trend).

use crate::summary::{rss_quarters, CheckResult, Summary, MAX_RSS_GROWTH_PERCENT, MIN_RSS_SAMPLES};
use crate::tally::VERDICTS;
use crate::workload::POLICY_NAMES;

fn counter(list: &[(String, u64)], name: &str) -> u64 {
    list.iter().filter(|(n, _)| n == name).map(|(_, v)| v).sum()
}

/// The checks of a finished run.
pub fn judge(s: &Summary, alive: bool) -> Vec<CheckResult> {
    let t = &s.tally;
    let mut c = Vec::new();
    let mut add = |name: &'static str, passed: Option<bool>, detail: String| {
        c.push(CheckResult {
            name,
            passed,
            detail,
        });
    };
    let sent = t.requests;
    add(
        "all requests sent within the budget",
        Some(sent == s.config.requests),
        format!(
            "{sent} of {} in {:.1} s (budget {} s)",
            s.config.requests,
            s.seconds,
            s.config.budget.as_secs()
        ),
    );
    let h2 = t.protocol(crate::tally::Protocol::Http2).requests;
    add(
        "the HTTP/2 share went over HTTP/2",
        Some((s.config.h2_share == 0) == (h2 == 0) || sent < 100),
        format!(
            "{h2} requests over HTTP/2 ({:.1} %, {} % asked)",
            s.h2_percent(),
            s.config.h2_share
        ),
    );
    let h2_counts = t.protocol(crate::tally::Protocol::Http2);
    let envoy_h2 = s.envoy_h2_requests();
    add(
        "Envoy counted the HTTP/2 requests as HTTP/2",
        Some(
            envoy_h2 <= h2_counts.requests && envoy_h2 + h2_counts.io_errors >= h2_counts.requests,
        ),
        format!(
            "Envoy downstream_rq_http2_total {envoy_h2}, client {} ({} i/o errors)",
            h2_counts.requests, h2_counts.io_errors
        ),
    );
    add(
        "no i/o errors",
        Some(t.io_errors == 0),
        format!("{}", t.io_errors),
    );
    add(
        "every response matches the core's decision",
        Some(t.mismatches == 0),
        format!("{} mismatches", t.mismatches),
    );
    add(
        "swap windows: old or new policy, never neither",
        Some(t.swap_violations == 0),
        format!(
            "{} violations in {} responses inside windows",
            t.swap_violations, t.in_window
        ),
    );
    add(
        "hardened headers (no Server/X-Powered-By, HSTS once iff secure)",
        Some(t.hardening == 0),
        format!("{} failures", t.hardening),
    );
    add(
        "no 5xx",
        Some(t.status_5xx == 0),
        format!("{}", t.status_5xx),
    );
    add(
        "Envoy's 431 (HTTP/1.1) or stream reset (HTTP/2) exactly for the oversized requests decided up front",
        Some(
            t.envoy_431_seen == t.envoy_431_expected
                && t.envoy_reset_seen == t.envoy_reset_expected
                && t.protocol(crate::tally::Protocol::Http2).stream_resets == t.envoy_reset_seen,
        ),
        format!(
            "431: {} expected, {} seen; HTTP/2 resets: {} expected, {} seen",
            t.envoy_431_expected, t.envoy_431_seen, t.envoy_reset_expected, t.envoy_reset_seen
        ),
    );
    add(
        "no wasm VM failures",
        Some(s.vm_failures.is_empty()),
        if s.vm_failures.is_empty() {
            "none".into()
        } else {
            format!("{:?}", s.vm_failures)
        },
    );
    let fails = s
        .ecds
        .iter()
        .filter(|(n, _)| {
            n.ends_with(".config_fail")
                || n.ends_with(".update_rejected")
                || n.ends_with(".update_failure")
        })
        .map(|(_, v)| v)
        .sum::<u64>();
    add(
        "every ECDS swap applied and in force",
        Some(s.swaps.len() == s.swaps_planned && fails == 0 && s.errors.is_empty()),
        format!(
            "{} of {} swaps, {fails} ECDS failures{}",
            s.swaps.len(),
            s.swaps_planned,
            if s.errors.is_empty() {
                String::new()
            } else {
                format!(", errors: {}", s.errors.join("; "))
            }
        ),
    );
    // The filter's own counters agree with what the client saw, per policy and verdict.
    let mut diffs = Vec::new();
    for (pi, name) in POLICY_NAMES.iter().enumerate() {
        for (v, word) in VERDICTS {
            let ours = t.decisions(pi, v);
            let prefix = if s.config.native {
                crate::rig::NATIVE_COUNTERS
            } else {
                crate::rig::WASM_COUNTERS
            };
            let theirs = counter(&s.filter_counters, &format!("{prefix}{name}.{word}"));
            if ours != theirs {
                diffs.push(format!("{name}.{word}: filter {theirs}, client {ours}"));
            }
        }
    }
    let total = t.decisions_total();
    add(
        "filter counters = client-side decisions (per policy and verdict)",
        Some(diffs.is_empty()),
        if diffs.is_empty() {
            format!("{total} decisions")
        } else {
            diffs.join(", ")
        },
    );
    match rss_quarters(&s.rss) {
        Some((first, last, growth)) if s.rss.len() >= MIN_RSS_SAMPLES => add(
            "Envoy RSS growth first -> last quarter under 5%",
            Some(growth < MAX_RSS_GROWTH_PERCENT),
            format!(
                "{first:.0} KiB -> {last:.0} KiB ({growth:+.2}%), {} samples",
                s.rss.len()
            ),
        ),
        other => add(
            "Envoy RSS growth first -> last quarter under 5%",
            None,
            format!(
                "not judged: {} samples (needs {MIN_RSS_SAMPLES}, one per second){}",
                s.rss.len(),
                other
                    .map(|(f, l, g)| format!("; {f:.0} KiB -> {l:.0} KiB ({g:+.2}%)"))
                    .unwrap_or_default()
            ),
        ),
    }
    add(
        "Envoy still running, same process",
        Some(alive),
        String::new(),
    );
    c
}
