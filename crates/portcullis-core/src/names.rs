//! The names hosts give their counters (Envoy's `/stats`): one place for
//! every engine (the proxy-wasm filter, the native Envoy module) and every
//! checker (the end-to-end tests, the soak, the docs' lists), so a name is
//! never spelled twice.
//!
//! ```
//! use portcullis_core::{names, Policy, Verdict};
//! let p = Policy::parse(br#"{"name": "orders.api", "network": {"rules": [
//!   {"name": "front end", "priority": 100, "access": "allow", "source": ["*"]}]}}"#).unwrap();
//! assert_eq!(names::verdict(&p, Verdict::Deny), "portcullis.orders_api.denied");
//! assert_eq!(names::rule(&p, Some(0)), "portcullis.orders_api.rule.front_end");
//! assert_eq!(names::rule(&p, None), "portcullis.orders_api.rule.default");
//! ```
//!
//! What this module does *not* do: it counts nothing and defines nothing;
//! hosts keep their counters (and may prefix the names with their own
//! namespace, as Envoy does).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::decide::Verdict;
use crate::policy::Policy;

/// Longest name segment kept from a policy or rule name (bytes).
pub const MAX_SEGMENT: usize = 64;

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
        crate::decide::WOULD_PREFIX,
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

/// A scope's counters in a [`CounterSet`].
#[derive(Debug)]
struct ScopeSet<C> {
    /// allowed, denied, redirected.
    verdicts: [C; 3],
    /// Its own rules and `default`, when it states `network`.
    rules: Option<(Vec<C>, C)>,
}

/// One would-be verdict's counters: total, per rule, `default`.
type WouldSet<C> = (C, Vec<C>, C);

/// Every counter a policy defines, as a host's handles `C`, and which of
/// them a decision counts in ([`CounterSet::hits`]): one layout for every
/// engine, so the wasm filter and the native module count alike.
///
/// ```
/// use portcullis_core::{names::CounterSet, Policy, Request, Transport};
/// let p = Policy::parse(br#"{"name": "p", "network": {"rules": [
///   {"name": "fe", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"]}]}}"#).unwrap();
/// let set = CounterSet::define(&p, |name| name);
/// let none: [(&str, &str); 0] = [];
/// let req = Request {
///     peer: "10.1.2.3:5000".parse().unwrap(), local: "10.0.0.4:443".parse().unwrap(),
///     tls: true, transport: Transport::Tcp, method: b"GET", authority: b"a", path: b"/",
///     headers: &none,
/// };
/// let mut hit = Vec::new();
/// set.hits(&p.decide(&req), |c| hit.push(c.clone()));
/// assert_eq!(hit, ["portcullis.p.allowed", "portcullis.p.rule.fe"]);
/// ```
#[derive(Debug)]
pub struct CounterSet<C> {
    verdicts: [C; 3],
    rules: Vec<C>,
    default_rule: C,
    scopes: Vec<ScopeSet<C>>,
    would: Vec<WouldSet<C>>,
}

impl<C> CounterSet<C> {
    /// Defines every counter of `policy` through `define` (a host call), in
    /// this order: the three verdicts, each rule by index, `default`; for
    /// each scope its three verdicts and, when it states `network`, its
    /// rules and `default`; for a policy that reports (at the top level or
    /// in some scope) each would-be verdict, then that verdict per rule and
    /// `default`.
    pub fn define(policy: &Policy, mut define: impl FnMut(String) -> C) -> CounterSet<C> {
        let count = |p: &Policy| p.network.as_ref().map_or(0, |n| n.rules.len());
        let rules = count(policy);
        let verdicts = Verdict::ALL.map(|v| define(verdict(policy, v)));
        let rule_counters = (0..rules).map(|i| define(rule(policy, Some(i)))).collect();
        let default_rule = define(rule(policy, None));
        let scopes = (0..policy.scopes.len())
            .map(|s| ScopeSet {
                verdicts: Verdict::ALL.map(|v| define(scope_verdict(policy, s, v))),
                rules: own_rules(policy, s).then(|| {
                    let n = count(policy.scoped(Some(s)));
                    (
                        (0..n)
                            .map(|i| define(scope_rule(policy, s, Some(i))))
                            .collect(),
                        define(scope_rule(policy, s, None)),
                    )
                }),
            })
            .collect();
        let reports = policy.mode == crate::policy::Mode::Report
            || policy
                .scopes
                .iter()
                .any(|s| s.policy.mode == crate::policy::Mode::Report);
        let would = if reports {
            WOULD
                .iter()
                .map(|&w| {
                    (
                        define(would(policy, w)),
                        (0..rules)
                            .map(|i| define(would_rule(policy, w, Some(i))))
                            .collect(),
                        define(would_rule(policy, w, None)),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        CounterSet {
            verdicts,
            rules: rule_counters,
            default_rule,
            scopes,
            would,
        }
    }

    /// Calls `f` with every counter decision `d` counts in: its verdict;
    /// the rule that decided (or `default`), under its scope when the
    /// scope has its own `network`; the scope's verdict; in report mode the
    /// would-be verdict and, for the top level's rules, that verdict per
    /// rule.
    pub fn hits<'s>(&'s self, d: &crate::decide::Decision, mut f: impl FnMut(&'s C)) {
        let v = d.verdict.index();
        if let Some(c) = self.verdicts.get(v) {
            f(c);
        }
        let scope = d.scope.and_then(|s| self.scopes.get(s));
        let (rules, default) = match scope.and_then(|s| s.rules.as_ref()) {
            Some((rules, default)) => (rules, default),
            None => (&self.rules, &self.default_rule),
        };
        if let Some(c) = d.rule.map_or(Some(default), |i| rules.get(i)) {
            f(c);
        }
        if let Some(c) = scope.and_then(|s| s.verdicts.get(v)) {
            f(c);
        }
        if let Some(w) = &d.would {
            let would = WOULD
                .iter()
                .position(|&x| x == w.verdict)
                .and_then(|i| self.would.get(i));
            if let Some((total, rules, default)) = would {
                f(total);
                // Per rule only for the top level's rules.
                if scope.is_none_or(|s| s.rules.is_none()) {
                    if let Some(c) = d.rule.map_or(Some(default), |i| rules.get(i)) {
                        f(c);
                    }
                }
            }
        }
    }
}
