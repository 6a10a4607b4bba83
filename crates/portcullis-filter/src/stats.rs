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

use portcullis_core::{Policy, Verdict};

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

/// Longest name segment kept from a policy or rule name.
const MAX_SEGMENT: usize = 64;

/// Makes one stat-name segment from a policy or rule name: ASCII letters,
/// digits, `_` and `-` are kept, anything else (dots that would split the
/// name, spaces, non-ASCII) becomes `_`; cut at 64 bytes; never empty.
pub fn segment(name: &str) -> String {
    let mut s: String = name
        .chars()
        .take(MAX_SEGMENT)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

/// The counter for a verdict: `portcullis.<policy>.allowed|denied|redirected`.
pub fn verdict(policy: &Policy, v: Verdict) -> String {
    format!("portcullis.{}.{}", segment(&policy.name), v.counter_word())
}

/// The counter for the rule that decided (by index), or `default`:
/// `portcullis.<policy>.rule.<rule>`.
pub fn rule(policy: &Policy, rule: Option<usize>) -> String {
    format!(
        "portcullis.{}.rule.{}",
        segment(&policy.name),
        segment(policy.rule_name(rule))
    )
}

/// The prefix of a scope's counters: `portcullis.<policy>.scope.<scope>`.
fn scope_prefix(policy: &Policy, scope: usize) -> String {
    format!(
        "portcullis.{}.scope.{}",
        segment(&policy.name),
        segment(policy.scope_name(Some(scope)).unwrap_or("_"))
    )
}

/// The counter for a verdict in a scope (by index into `scopes`):
/// `portcullis.<policy>.scope.<scope>.allowed|denied|redirected`. The
/// policy-wide verdict counters count the request too.
pub fn scope_verdict(policy: &Policy, scope: usize, v: Verdict) -> String {
    format!("{}.{}", scope_prefix(policy, scope), v.counter_word())
}

/// The counter for a rule of a scope's own `network` (or its `default`):
/// `portcullis.<policy>.scope.<scope>.rule.<rule>`. A scope that inherits
/// the top level's `network` counts its rules in the top level's
/// `portcullis.<policy>.rule.<rule>`.
pub fn scope_rule(policy: &Policy, scope: usize, rule: Option<usize>) -> String {
    format!(
        "{}.rule.{}",
        scope_prefix(policy, scope),
        segment(policy.scoped(Some(scope)).rule_name(rule))
    )
}

/// Whether a scope's rules are its own (it states `network`), so they are
/// counted under the scope.
pub fn own_rules(policy: &Policy, scope: usize) -> bool {
    policy
        .scopes
        .get(scope)
        .is_some_and(|s| s.restated.network && s.policy.network.is_some())
}

/// The would-be verdicts a report-mode policy counts, in counter order.
pub const WOULD: [Verdict; 2] = [Verdict::Deny, Verdict::Redirect];

/// Report mode: the counter of a would-be verdict,
/// `portcullis.<policy>.would_deny|would_redirect`.
pub fn would(policy: &Policy, v: Verdict) -> String {
    format!(
        "portcullis.{}.{}{}",
        segment(&policy.name),
        portcullis_core::WOULD_PREFIX,
        v.as_str()
    )
}

/// Report mode: the would-be verdict per deciding rule,
/// `portcullis.<policy>.would_deny.rule.<rule>` (`default` when no rule
/// decided).
pub fn would_rule(policy: &Policy, v: Verdict, rule: Option<usize>) -> String {
    format!(
        "{}.rule.{}",
        would(policy, v),
        segment(policy.rule_name(rule))
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use portcullis_core::policy::Mode;

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
