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

/// The HTTP version a request of the mix went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// HTTP/1.1 (the harness's client, `portcullis_e2e::http1`).
    Http1,
    /// HTTP/2 (h2c on the plain listener, ALPN `h2` on the TLS one; [`crate::http2`]).
    Http2,
}

impl Protocol {
    /// Every protocol, in the order of [`Tally::by_protocol`].
    pub const ALL: [Protocol; 2] = [Protocol::Http1, Protocol::Http2];

    /// The word in reports and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Http1 => "http/1.1",
            Protocol::Http2 => "h2",
        }
    }

    /// The index into [`Tally::by_protocol`].
    pub const fn index(self) -> usize {
        match self {
            Protocol::Http1 => 0,
            Protocol::Http2 => 1,
        }
    }
}

/// The counts of one protocol's share of the load.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProtocolCounts {
    /// Requests answered (or failed on I/O).
    pub requests: u64,
    /// Of which over TLS.
    pub tls: u64,
    /// Responses per status.
    pub by_status: BTreeMap<u16, u64>,
    /// Mismatches outside swap windows.
    pub mismatches: u64,
    /// Swap-window violations.
    pub swap_violations: u64,
    /// Hardening failures.
    pub hardening: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// I/O failures.
    pub io_errors: u64,
    /// Streams Envoy reset instead of answering (HTTP/2).
    pub stream_resets: u64,
}

impl ProtocolCounts {
    /// Adds another protocol count.
    pub fn merge(&mut self, o: &ProtocolCounts) {
        self.requests += o.requests;
        self.tls += o.tls;
        for (k, v) in &o.by_status {
            *self.by_status.entry(*k).or_default() += v;
        }
        self.mismatches += o.mismatches;
        self.swap_violations += o.swap_violations;
        self.hardening += o.hardening;
        self.status_5xx += o.status_5xx;
        self.io_errors += o.io_errors;
        self.stream_resets += o.stream_resets;
    }
}

/// A tally's failure counts at one moment (see [`Tally::count_protocol`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks {
    mismatches: u64,
    swap_violations: u64,
    hardening: u64,
    status_5xx: u64,
    io_errors: u64,
}

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
    /// Requests over HTTP/1.1 Envoy must reject (431) by their size.
    pub envoy_431_expected: u64,
    /// 431 responses seen.
    pub envoy_431_seen: u64,
    /// Decisions matched, per policy (A, B) and verdict (in [`VERDICTS`] order).
    pub decided: [[u64; 3]; 2],
    /// Requests of the mix per protocol (in [`Protocol::ALL`] order; probes
    /// are not in here: they are HTTP/1.1 and fence the swaps).
    pub by_protocol: [ProtocolCounts; 2],
    /// Requests over HTTP/2 Envoy must reset (`RST_STREAM`) by their size.
    pub envoy_reset_expected: u64,
    /// Of those, reset.
    pub envoy_reset_seen: u64,
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

    /// The failure counts now, to attribute one request's to its protocol.
    pub fn marks(&self) -> Marks {
        Marks {
            mismatches: self.mismatches,
            swap_violations: self.swap_violations,
            hardening: self.hardening,
            status_5xx: self.status_5xx,
            io_errors: self.io_errors,
        }
    }

    /// Counts one request of the mix for `protocol`: its status (none on an
    /// I/O failure or a stream reset), TLS or not, and the failures added
    /// since `before`.
    pub fn count_protocol(
        &mut self,
        protocol: Protocol,
        tls: bool,
        status: Option<u16>,
        before: Marks,
    ) {
        let now = self.marks();
        let Some(p) = self.by_protocol.get_mut(protocol.index()) else {
            return;
        };
        p.requests += 1;
        p.tls += u64::from(tls);
        if let Some(s) = status {
            *p.by_status.entry(s).or_default() += 1;
        }
        p.mismatches += now.mismatches - before.mismatches;
        p.swap_violations += now.swap_violations - before.swap_violations;
        p.hardening += now.hardening - before.hardening;
        p.status_5xx += now.status_5xx - before.status_5xx;
        p.io_errors += now.io_errors - before.io_errors;
    }

    /// The counts of `protocol`.
    pub fn protocol(&self, protocol: Protocol) -> ProtocolCounts {
        self.by_protocol
            .get(protocol.index())
            .cloned()
            .unwrap_or_default()
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
        for (mine, theirs) in self.by_protocol.iter_mut().zip(&o.by_protocol) {
            mine.merge(theirs);
        }
        self.envoy_reset_expected += o.envoy_reset_expected;
        self.envoy_reset_seen += o.envoy_reset_seen;
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

    #[test]
    fn each_request_counts_for_its_protocol_with_the_failures_it_added() {
        let mut a = Tally::default();
        let m = a.marks();
        a.mismatches += 1;
        a.count_protocol(Protocol::Http2, true, Some(403), m);
        let m = a.marks();
        a.count_protocol(Protocol::Http1, false, Some(301), m);
        let m = a.marks();
        a.io_errors += 1;
        a.count_protocol(Protocol::Http2, false, None, m);
        let mut b = Tally::default();
        let m = b.marks();
        b.count_protocol(Protocol::Http2, true, Some(403), m);
        b.envoy_reset_expected = 2;
        a.merge(&b);
        let h2 = a.protocol(Protocol::Http2);
        assert_eq!(
            (h2.requests, h2.tls, h2.mismatches, h2.io_errors),
            (3, 2, 1, 1)
        );
        assert_eq!(h2.by_status.get(&403), Some(&2));
        let h1 = a.protocol(Protocol::Http1);
        assert_eq!((h1.requests, h1.mismatches, h1.io_errors), (1, 0, 0));
        assert_eq!(h1.by_status.get(&301), Some(&1));
        assert_eq!(a.envoy_reset_expected, 2);
        assert_eq!(Protocol::ALL.map(Protocol::as_str), ["http/1.1", "h2"]);
    }
}
