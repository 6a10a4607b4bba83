//! docs/reference/policy.md names every field the core accepts.
//!
//! The field lists come from the validator itself: each probe document puts
//! an unknown key into one kind of object, and the core's `UnknownField`
//! error lists the keys that object accepts. A field added to the core
//! without a line in the reference fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_core::{Error, Policy};

/// One document per kind of object; `PROBE` marks where the unknown key goes.
const PROBES: &[(&str, &str)] = &[
    ("top level", r#"{"name": "p", PROBE}"#),
    ("client_ip", r#"{"name": "p", "client_ip": {PROBE}}"#),
    (
        "network",
        r#"{"name": "p", "network": {"rules": [], PROBE}}"#,
    ),
    (
        "network.deny",
        r#"{"name": "p", "network": {"rules": [], "deny": {PROBE}}}"#,
    ),
    (
        "a rule",
        r#"{"name": "p", "network": {"rules": [{PROBE}]}}"#,
    ),
    ("https_only", r#"{"name": "p", "https_only": {PROBE}}"#),
    (
        "require_headers[]",
        r#"{"name": "p", "require_headers": [{PROBE}]}"#,
    ),
    (
        "values_from[]",
        r#"{"name": "p", "require_headers": [{"name": "a", "values_from": [{PROBE}]}]}"#,
    ),
    (
        "a header op",
        r#"{"name": "p", "request_headers": [{PROBE}]}"#,
    ),
    (
        "value_from",
        r#"{"name": "p", "request_headers": [{"set": "a", "value_from": {PROBE}}]}"#,
    ),
    ("hsts", r#"{"name": "p", "hsts": {PROBE}}"#),
    (
        "a scope",
        r#"{"name": "p", "scopes": [{"name": "s", "match": {"paths": ["/a"]}, PROBE}]}"#,
    ),
    (
        "a scope's match",
        r#"{"name": "p", "scopes": [{"name": "s", "match": {"paths": ["/a"], PROBE}}]}"#,
    ),
    ("provenance", r#"{"name": "p", "provenance": {PROBE}}"#),
    (
        "provenance.address_groups.*",
        r#"{"name": "p", "address_groups": {"g": ["10.0.0.1"]},
            "provenance": {"address_groups": {"g": {PROBE}}}}"#,
    ),
    (
        "provenance service_tag",
        r#"{"name": "p", "address_groups": {"g": ["10.0.0.1"]},
            "provenance": {"address_groups": {"g": {"service_tag": {PROBE}}}}}"#,
    ),
];

fn accepted(doc: &str) -> Vec<&'static str> {
    let text = doc.replace("PROBE", r#""zz_not_a_field": 1"#);
    let problems = match Policy::parse(text.as_bytes()) {
        Ok(_) => panic!("the probe was accepted: {text}"),
        Err(p) => p,
    };
    let lists: Vec<&'static [&'static str]> = problems
        .0
        .iter()
        .filter_map(|p| match &p.error {
            Error::UnknownField { field, expected } if field == "zz_not_a_field" => Some(*expected),
            _ => None,
        })
        .collect();
    assert_eq!(lists.len(), 1, "{text}: {problems}");
    lists[0].to_vec()
}

#[test]
fn the_policy_reference_names_every_field_the_core_accepts() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reference/policy.md"
    );
    let doc = std::fs::read_to_string(path).unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    for (object, probe) in PROBES {
        for field in accepted(probe) {
            count += 1;
            if !doc.contains(&format!("`{field}`")) && !doc.contains(&format!("`{field}.")) {
                missing.push(format!("{object}: `{field}`"));
            }
        }
    }
    assert!(
        count > 40,
        "only {count} fields found: the probes are broken"
    );
    assert!(
        missing.is_empty(),
        "docs/reference/policy.md does not mention:\n  {}",
        missing.join("\n  ")
    );
}
