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
