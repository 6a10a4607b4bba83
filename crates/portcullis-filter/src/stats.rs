//! Counters: their names, and [`Counters`], which accumulates them in the
//! VM so that a request makes no host call for them. Envoy shows proxy-wasm
//! counters in `/stats` under its custom-stat namespace; see the crate docs
//! for the exact names.
//!
//! This module does not talk to the host itself: defining a counter and
//! flushing the pending counts go through closures the filter passes in
//! (`proxy_define_metric`, `proxy_increment_metric`), so it builds and is
//! tested natively.

use core::cell::Cell;

/// One counter defined in a [`Counters`] set (an index into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter(usize);

/// A set of counters whose increments are kept in the VM and handed to the
/// host in one batch by [`Counters::flush`] (the filter flushes on its tick,
/// on a reconfiguration and when the plugin is done).
///
/// Every counter the filter keeps goes through this one API, so none of
/// them costs a host call per request.
///
/// ```
/// use portcullis_filter::stats::Counters;
/// let mut c = Counters::default();
/// let hits = c.define("portcullis.p.allowed", |_| Some(7));
/// c.add(hits);
/// c.add(hits);
/// let mut sent = Vec::new();
/// c.flush(|id, n| sent.push((id, n)));
/// assert_eq!(sent, [(7, 2)]);
/// c.flush(|id, n| sent.push((id, n)));
/// assert_eq!(sent.len(), 1, "nothing pending, nothing sent");
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    /// The host's id of each counter (`None`: the host refused to define it).
    ids: Vec<Option<u32>>,
    /// Increments not yet handed to the host.
    pending: Vec<Cell<u64>>,
}

impl Counters {
    /// Defines a counter through `define` (the host call) and returns its
    /// handle. A counter the host refused still gets a handle; its counts
    /// are dropped at flush time.
    pub fn define(&mut self, name: &str, define: impl FnOnce(&str) -> Option<u32>) -> Counter {
        self.ids.push(define(name));
        self.pending.push(Cell::new(0));
        Counter(self.pending.len() - 1)
    }

    /// Counts one, in the VM.
    pub fn add(&self, c: Counter) {
        if let Some(p) = self.pending.get(c.0) {
            p.set(p.get().saturating_add(1));
        }
    }

    /// Increments not yet flushed, over all counters.
    pub fn pending(&self) -> u64 {
        self.pending.iter().map(Cell::get).sum()
    }

    /// Hands every pending count to `increment(id, n)` (one host call per
    /// counter that moved since the last flush) and clears them.
    pub fn flush(&self, mut increment: impl FnMut(u32, u64)) {
        for (id, p) in self.ids.iter().zip(&self.pending) {
            let n = p.replace(0);
            if let (Some(id), true) = (id, n > 0) {
                increment(*id, n);
            }
        }
    }
}

// The names live in the core, so that every engine (this filter, the
// native module) and every checker (e2e, soak, docs) names counters alike.
pub use portcullis_core::names::{
    own_rules, rule, scope_rule, scope_verdict, segment, verdict, would, would_rule, WOULD,
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use portcullis_core::names::MAX_SEGMENT;
    use portcullis_core::policy::Mode;
    use portcullis_core::{Policy, Verdict};

    /// Every counter a policy defines, in the order the filter defines
    /// them: the three verdicts, each rule by index, then `default`; then
    /// for each scope its three verdicts and, when it has its own
    /// `network`, its rules and `default`; for a report-mode policy then
    /// each would-be verdict, followed by the same verdict per rule and
    /// `default`.
    fn all(policy: &Policy) -> Vec<String> {
        let rules = policy.network.as_ref().map_or(0, |n| n.rules.len());
        let mut v: Vec<String> = Verdict::ALL.iter().map(|&x| verdict(policy, x)).collect();
        v.extend((0..rules).map(|i| rule(policy, Some(i))));
        v.push(rule(policy, None));
        for s in 0..policy.scopes.len() {
            v.extend(Verdict::ALL.map(|x| scope_verdict(policy, s, x)));
            if own_rules(policy, s) {
                let n = policy
                    .scoped(Some(s))
                    .network
                    .as_ref()
                    .map_or(0, |n| n.rules.len());
                v.extend((0..n).map(|i| scope_rule(policy, s, Some(i))));
                v.push(scope_rule(policy, s, None));
            }
        }
        if policy.mode == Mode::Report {
            for w in WOULD {
                v.push(would(policy, w));
                v.extend((0..rules).map(|i| would_rule(policy, w, Some(i))));
                v.push(would_rule(policy, w, None));
            }
        }
        v
    }

    #[test]
    fn counters_accumulate_and_flush_once_per_moved_counter() {
        let mut c = Counters::default();
        let mut next = 10;
        let mut def = |_: &str| {
            next += 1;
            Some(next)
        };
        let a = c.define("a", &mut def);
        let b = c.define("b", &mut def);
        let refused = c.define("c", |_| None);
        let untouched = c.define("d", &mut def);
        for _ in 0..5 {
            c.add(a);
        }
        c.add(b);
        c.add(refused);
        assert_eq!(c.pending(), 7);
        let mut sent = Vec::new();
        c.flush(|id, n| sent.push((id, n)));
        // The refused counter's count is dropped; the untouched one sends nothing.
        assert_eq!(sent, [(11, 5), (12, 1)]);
        assert_eq!(c.pending(), 0);
        c.add(untouched);
        sent.clear();
        c.flush(|id, n| sent.push((id, n)));
        assert_eq!(sent, [(13, 1)]);
        // A handle from another set is ignored, not a panic.
        Counters::default().add(a);
    }

    #[test]
    fn segments_are_safe() {
        assert_eq!(segment("allow-apim"), "allow-apim");
        assert_eq!(segment("a.b c/é"), "a_b_c__");
        assert_eq!(segment(""), "_");
        assert_eq!(segment(&"x".repeat(200)).len(), MAX_SEGMENT);
    }

    #[test]
    fn report_mode_names() {
        let p = Policy::parse(
            br#"{"name":"cand","mode":"report","network":{"rules":[
            {"name":"a b","priority":100,"access":"allow","source":["*"]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            all(&p)[5..],
            [
                "portcullis.cand.would_deny",
                "portcullis.cand.would_deny.rule.a_b",
                "portcullis.cand.would_deny.rule.default",
                "portcullis.cand.would_redirect",
                "portcullis.cand.would_redirect.rule.a_b",
                "portcullis.cand.would_redirect.rule.default",
            ]
        );
    }

    #[test]
    fn sample_names() {
        let p = Policy::parse_with_env(
            include_bytes!("../../../policy-samples/functions-behind-apim.json"),
            &[("FUNCTION_KEY", "k")],
        )
        .unwrap();
        assert_eq!(
            all(&p),
            [
                "portcullis.functions-behind-apim.allowed",
                "portcullis.functions-behind-apim.denied",
                "portcullis.functions-behind-apim.redirected",
                "portcullis.functions-behind-apim.rule.allow-apim",
                "portcullis.functions-behind-apim.rule.default",
            ]
        );
    }

    #[test]
    fn scope_names() {
        let p = Policy::parse(
            br#"{"name":"gw","network":{"rules":[{"name":"a","priority":100,"access":"allow","source":["*"]}]},
                "scopes":[{"name":"orders.api","match":{"paths":["/o/*"]}},
                          {"name":"admin","match":{"paths":["/admin/*"]},"network":{"rules":[{"name":"mgmt","priority":100,"access":"allow","source":["10.0.0.0/8"]}]}}]}"#,
        )
        .unwrap();
        assert_eq!(
            all(&p),
            [
                "portcullis.gw.allowed",
                "portcullis.gw.denied",
                "portcullis.gw.redirected",
                "portcullis.gw.rule.a",
                "portcullis.gw.rule.default",
                "portcullis.gw.scope.orders_api.allowed",
                "portcullis.gw.scope.orders_api.denied",
                "portcullis.gw.scope.orders_api.redirected",
                "portcullis.gw.scope.admin.allowed",
                "portcullis.gw.scope.admin.denied",
                "portcullis.gw.scope.admin.redirected",
                "portcullis.gw.scope.admin.rule.mgmt",
                "portcullis.gw.scope.admin.rule.default",
            ]
        );
    }
}
