//! Counter names. Envoy shows proxy-wasm counters in `/stats` under its
//! custom-stat namespace; see the crate docs for the exact names.

use portcullis_core::{Policy, Verdict};

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
    let word = match v {
        Verdict::Forward => "allowed",
        Verdict::Deny => "denied",
        Verdict::Redirect => "redirected",
    };
    format!("portcullis.{}.{}", segment(&policy.name), word)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every counter a policy defines, in the order the filter defines
    /// them: the three verdicts, each rule by index, then `default`.
    fn all(policy: &Policy) -> Vec<String> {
        let rules = policy.network.as_ref().map_or(0, |n| n.rules.len());
        let mut v: Vec<String> = Verdict::ALL.iter().map(|&x| verdict(policy, x)).collect();
        v.extend((0..rules).map(|i| rule(policy, Some(i))));
        v.push(rule(policy, None));
        v
    }

    #[test]
    fn segments_are_safe() {
        assert_eq!(segment("allow-apim"), "allow-apim");
        assert_eq!(segment("a.b c/é"), "a_b_c__");
        assert_eq!(segment(""), "_");
        assert_eq!(segment(&"x".repeat(200)).len(), MAX_SEGMENT);
    }

    #[test]
    fn sample_names() {
        let p = Policy::parse(include_bytes!(
            "../../../policy-samples/functions-behind-apim.json"
        ))
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
}
