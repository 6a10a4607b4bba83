//! A rule's `headers`: decisions against a naive reference written here,
//! explanations that name the header and never its value, lints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::net::SocketAddr;

use portcullis_core::lint::LintKind;
use portcullis_core::{Headers, Policy, Request, Transport};
use proptest::prelude::*;

const NAMES: &[&str] = &["x-azure-fdid", "x-fd-healthprobe", "X-Key"];
const VALUES: &[&str] = &["a", "b", "fd-1", "A"];

fn req<'a>(peer: &str, headers: &'a dyn Headers) -> Request<'a> {
    Request {
        peer: peer.parse::<SocketAddr>().unwrap(),
        local: "10.0.0.4:443".parse().unwrap(),
        tls: true,
        transport: Transport::Tcp,
        method: b"GET",
        authority: b"api.example",
        path: b"/",
        headers,
    }
}

type RefRule = (bool, Vec<(usize, Vec<usize>)>);

fn policy_text(rules: &[RefRule]) -> String {
    let list: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, (allow, hs))| {
            let hs: Vec<String> = hs
                .iter()
                .map(|(n, vs)| {
                    let vs: Vec<String> = vs.iter().map(|v| format!("{:?}", VALUES[*v])).collect();
                    format!("{:?}:[{}]", NAMES[*n], vs.join(","))
                })
                .collect();
            format!(
                r#"{{"name":"r{i}","priority":{},"access":"{}","source":["*"],"headers":{{{}}}}}"#,
                100 + i,
                if *allow { "allow" } else { "deny" },
                hs.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"name":"p","network":{{"rules":[{}]}}}}"#,
        list.join(",")
    )
}

/// The reference: the first rule whose every named header appears on
/// exactly one line (names compared case-insensitively) with a trimmed
/// value equal to one of the values.
fn reference(rules: &[RefRule], headers: &[(String, String)]) -> Option<usize> {
    rules.iter().position(|(_, hs)| {
        hs.iter().all(|(n, vs)| {
            let lines: Vec<&str> = headers
                .iter()
                .filter(|(h, _)| h.eq_ignore_ascii_case(NAMES[*n]))
                .map(|(_, v)| v.trim_matches([' ', '\t']))
                .collect();
            lines.len() == 1 && vs.iter().any(|v| VALUES[*v] == lines[0])
        })
    })
}

fn rule() -> impl Strategy<Value = RefRule> {
    (
        any::<bool>(),
        prop::collection::btree_map(
            0..NAMES.len(),
            prop::collection::vec(0..VALUES.len(), 1..3),
            0..3,
        )
        .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
    )
}

fn header() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(
            &[
                "x-azure-fdid",
                "X-AZURE-FDID",
                "x_azure_fdid",
                "x-fd-healthprobe",
                "x-key",
                "other",
            ][..],
        ),
        prop::sample::select(&["a", " b\t", "fd-1", "A", "fd-10", "", "a, b"][..]),
    )
        .prop_map(|(n, v)| (n.to_string(), v.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_deciding_rule_is_the_reference_first_match(
        rules in prop::collection::vec(rule(), 1..6),
        headers in prop::collection::vec(header(), 0..5),
    ) {
        let text = policy_text(&rules);
        let p = Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let d = p.decide(&req("65.52.10.20:5000", &headers));
        prop_assert_eq!(d.rule, reference(&rules, &headers), "{}\n{:?}", text, headers);
        // explain walks the rules one by one and agrees.
        let decided: Vec<usize> = p
            .explain(&req("65.52.10.20:5000", &headers))
            .iter()
            .filter(|c| c.decided)
            .map(|c| c.index)
            .collect();
        prop_assert_eq!(decided.first().copied(), d.rule);
    }
}

#[test]
fn explain_names_the_header_and_why_never_the_value() {
    let p = Policy::parse(
        br#"{"name": "p", "network": {"rules": [
          {"name": "fd", "priority": 100, "access": "allow", "source": ["*"],
           "headers": {"x-azure-fdid": ["s3cret-id"]}}]}}"#,
    )
    .unwrap();
    let cases: [(Vec<(String, String)>, &str); 3] = [
        (Vec::new(), "header x-azure-fdid is missing"),
        (
            vec![("x-azure-fdid".into(), "guess-id".into())],
            "header x-azure-fdid is none of the allowed values",
        ),
        (
            vec![
                ("x-azure-fdid".into(), "s3cret-id".into()),
                ("x-azure-fdid".into(), "s3cret-id".into()),
            ],
            "header x-azure-fdid has more than one line",
        ),
    ];
    for (headers, want) in cases {
        let r = req("65.52.10.20:5000", &headers);
        let checks = p.explain(&r);
        let why = checks[0].reason(&p, &r);
        assert!(why.starts_with(want), "{why}");
        assert!(!why.contains("s3cret") && !why.contains("guess"), "{why}");
    }
}

#[test]
fn a_rule_with_headers_never_shadows_one_without() {
    let p = Policy::parse(
        br#"{"name": "p", "network": {"rules": [
          {"name": "fd", "priority": 100, "access": "allow", "source": ["*"],
           "headers": {"x-azure-fdid": ["a", "b"]}},
          {"name": "all", "priority": 200, "access": "allow", "source": ["*"]},
          {"name": "fd-a", "priority": 300, "access": "allow", "source": ["10.0.0.0/8"],
           "headers": {"x-azure-fdid": ["a"], "x-fd-healthprobe": ["1"]}}
        ]}}"#,
    )
    .unwrap();
    let shadowed: Vec<String> = p
        .lints()
        .iter()
        .filter_map(|l| match &l.kind {
            LintKind::Shadowed { rule, .. } => Some(rule.clone()),
            _ => None,
        })
        .collect();
    // `all` is reachable (fd only takes requests with the header); `fd-a`
    // is covered by `fd` (its header values are a subset) and by `all`.
    assert_eq!(shadowed, ["fd-a"]);
}
