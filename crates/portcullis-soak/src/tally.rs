//! The counts a load thread keeps, merged at the end of a run.

use std::collections::BTreeMap;

use portcullis_core::Verdict;

/// The verdicts in the order of [`Tally::decided`], each with the word of
/// the filter's counter for it (`wasmcustom.portcullis.<policy>.<word>`,
/// [`Verdict::counter_word`]).
pub const VERDICTS: [(Verdict, &str); 3] = [
    (Verdict::Forward, Verdict::Forward.counter_word()),
    (Verdict::Deny, Verdict::Deny.counter_word()),
    (Verdict::Redirect, Verdict::Redirect.counter_word()),
];

/// Counts kept by each load thread (and by the probes).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Requests answered (or failed on I/O).
    pub requests: u64,
    /// Requests sent over TLS.
    pub tls: u64,
    /// Requests per class.
    pub by_class: BTreeMap<&'static str, u64>,
    /// Responses per status.
    pub by_status: BTreeMap<u16, u64>,
    /// Responses outside swap windows that differ from the policy in force.
    pub mismatches: u64,
    /// Responses inside swap windows matching neither the old nor the new policy.
    pub swap_violations: u64,
    /// Responses inside swap windows.
    pub in_window: u64,
    /// Responses breaking the hardening promises.
    pub hardening: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// Exchanges that failed on I/O.
    pub io_errors: u64,
    /// Requests Envoy must reject (431) by their size.
    pub envoy_431_expected: u64,
    /// 431 responses seen.
    pub envoy_431_seen: u64,
    /// Decisions matched, per policy (A, B) and verdict (in [`VERDICTS`] order).
    pub decided: [[u64; 3]; 2],
    /// The first few failures, described.
    pub examples: Vec<String>,
}

impl Tally {
    /// Notes a failure (the first 12 are kept).
    pub fn example(&mut self, s: String) {
        if self.examples.len() < 12 {
            self.examples.push(s);
        }
    }

    /// Counts a response decided by policy `policy` with verdict `v`.
    pub fn decided_by(&mut self, policy: usize, v: Verdict) {
        if let Some(c) = self
            .decided
            .get_mut(policy)
            .and_then(|r| r.get_mut(v.index()))
        {
            *c += 1;
        }
    }

    /// Decisions matched for `policy` with verdict `v`.
    pub fn decisions(&self, policy: usize, v: Verdict) -> u64 {
        self.decided
            .get(policy)
            .and_then(|r| r.get(v.index()))
            .copied()
            .unwrap_or(0)
    }

    /// Every decision matched.
    pub fn decisions_total(&self) -> u64 {
        self.decided.iter().flatten().sum()
    }

    /// Adds another tally's counts.
    pub fn merge(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.tls += o.tls;
        for (k, v) in &o.by_class {
            *self.by_class.entry(k).or_default() += v;
        }
        for (k, v) in &o.by_status {
            *self.by_status.entry(*k).or_default() += v;
        }
        self.mismatches += o.mismatches;
        self.swap_violations += o.swap_violations;
        self.in_window += o.in_window;
        self.hardening += o.hardening;
        self.status_5xx += o.status_5xx;
        self.io_errors += o.io_errors;
        self.envoy_431_expected += o.envoy_431_expected;
        self.envoy_431_seen += o.envoy_431_seen;
        for (mine, theirs) in self.decided.iter_mut().zip(&o.decided) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for e in &o.examples {
            self.example(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_decisions_per_policy_and_verdict() {
        let mut a = Tally::default();
        a.decided_by(0, Verdict::Deny);
        let mut b = Tally::default();
        b.decided_by(0, Verdict::Deny);
        b.decided_by(1, Verdict::Redirect);
        b.requests = 2;
        a.merge(&b);
        assert_eq!(a.decisions(0, Verdict::Deny), 2);
        assert_eq!(a.decisions(1, Verdict::Redirect), 1);
        assert_eq!(a.decisions(1, Verdict::Forward), 0);
        assert_eq!((a.decisions_total(), a.requests), (3, 2));
    }
}
