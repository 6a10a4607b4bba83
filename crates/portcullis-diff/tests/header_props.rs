//! The diff with rules that name `headers`: for random policy pairs and
//! random requests (client addresses at the rules' boundaries, header
//! lines from a small alphabet), every request that `Policy::decide` decides
//! differently lies in a reported change with the right rules whose `when`
//! names the request's header class, and no request decided alike does.
//! The class of a request is worked out here, naively, from its header
//! lines; the report's `when` text is read back per header name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use portcullis_core::addr::{parse_literal, AddrSet};
use portcullis_core::{Policy, Request, Transport};
use portcullis_diff::{diff, Change, Flows};
use proptest::prelude::*;

const NAMES: &[&str] = &["x-azure-fdid", "x-fd-healthprobe"];
const VALUES: &[&str] = &["a", "b", "c"];
const SOURCES: &[&str] = &["*", "10.0.0.0/8", "10.1.0.0/16", "65.52.0.0/16"];
const PEERS: &[[u8; 4]] = &[
    [10, 0, 0, 1],
    [10, 1, 2, 3],
    [10, 2, 0, 0],
    [65, 52, 1, 1],
    [9, 255, 255, 255],
    [203, 0, 113, 9],
];

#[derive(Debug, Clone)]
struct GenRule {
    allow: bool,
    source: usize,
    headers: Vec<(usize, Vec<usize>)>,
}

fn rule() -> impl Strategy<Value = GenRule> {
    (
        any::<bool>(),
        0..SOURCES.len(),
        prop::collection::btree_map(
            0..NAMES.len(),
            prop::collection::btree_set(0..VALUES.len(), 1..3),
            0..3,
        ),
    )
        .prop_map(|(allow, source, h)| GenRule {
            allow,
            source,
            headers: h
                .into_iter()
                .map(|(n, vs)| (n, vs.into_iter().collect()))
                .collect(),
        })
}

fn render(rules: &[GenRule], default_allow: bool) -> String {
    let list: Vec<String> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let hs: Vec<String> = r
                .headers
                .iter()
                .map(|(n, vs)| {
                    let vs: Vec<String> = vs.iter().map(|v| format!("{:?}", VALUES[*v])).collect();
                    format!("{:?}:[{}]", NAMES[*n], vs.join(","))
                })
                .collect();
            format!(
                r#"{{"name":"r{i}","priority":{},"access":"{}","source":[{:?}],"headers":{{{}}}}}"#,
                100 + i,
                if r.allow { "allow" } else { "deny" },
                SOURCES[r.source],
                hs.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"name":"p","network":{{"rules":[{}],"default_access":"{}"}}}}"#,
        list.join(","),
        if default_allow { "allow" } else { "deny" }
    )
}

/// The verdict and deciding rule's name.
fn decide(p: &Policy, peer: [u8; 4], headers: &[(String, String)]) -> (bool, String) {
    let req = Request {
        peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(peer)), 5000),
        local: "10.9.9.9:443".parse().unwrap(),
        tls: true,
        transport: Transport::Tcp,
        method: b"GET",
        authority: b"api.example",
        path: b"/",
        headers: &headers.to_vec(),
    };
    let d = p.decide(&req);
    (
        d.verdict == portcullis_core::Verdict::Forward,
        p.rule_of(&d).to_string(),
    )
}

/// The request's value of a header as a class sees it: the trimmed value
/// of its only line, or `None` (missing or repeated).
fn state(headers: &[(String, String)], name: &str) -> Option<String> {
    let lines: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim_matches([' ', '\t']))
        .collect();
    (lines.len() == 1).then(|| lines[0].to_string())
}

/// Whether one `when` alternative holds for the request: every part
/// `NAME is V`, `NAME is one of [V, W]` or `NAME is none of ...`.
fn alternative_holds(w: &str, headers: &[(String, String)], listed: &[(&str, &str)]) -> bool {
    w.split(" and ").all(|part| {
        let (name, rest) = part.split_once(" is ").expect("a part names a header");
        let st = state(headers, name).filter(|v| listed.contains(&(name, v.as_str())));
        if rest.starts_with("none of") {
            st.is_none()
        } else {
            let vs: Vec<&str> = match rest.strip_prefix("one of [") {
                Some(l) => l.trim_end_matches(']').split(", ").collect(),
                None => vec![rest],
            };
            st.is_some_and(|v| vs.contains(&v.as_str()))
        }
    })
}

fn in_source(c: &Change, peer: [u8; 4]) -> bool {
    c.flows.iter().any(|f| {
        let mut s = AddrSet::default();
        for t in &f.source {
            if t == "*" {
                s.extend(&AddrSet::any());
            } else {
                s.extend(&parse_literal(t).unwrap());
            }
        }
        s.normalize();
        s.contains(portcullis_core::addr::key(IpAddr::V4(Ipv4Addr::from(peer))))
    })
}

fn header_lines() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop::sample::select(&["x-azure-fdid", "X-FD-HealthProbe", "x_azure_fdid"][..]),
            prop::sample::select(&["a", " b", "c", "z", ""][..]),
        )
            .prop_map(|(n, v)| (n.to_string(), v.to_string())),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn changed_requests_are_reported_under_their_header_class(
        old_rules in prop::collection::vec(rule(), 1..5),
        new_rules in prop::collection::vec(rule(), 1..5),
        defaults in (any::<bool>(), any::<bool>()),
        requests in prop::collection::vec((prop::sample::select(PEERS), header_lines()), 1..12),
    ) {
        let (ot, nt) = (render(&old_rules, defaults.0), render(&new_rules, defaults.1));
        let old = Policy::parse(ot.as_bytes()).unwrap();
        let new = Policy::parse(nt.as_bytes()).unwrap();
        let report = diff(&old, &new);
        let Flows::Exact { changes } = &report.network else {
            panic!("not exact: {:?}", report.network);
        };
        // The (name, value) pairs some rule of either policy lists.
        let listed: Vec<(&str, &str)> = old_rules
            .iter()
            .chain(&new_rules)
            .flat_map(|r| r.headers.iter())
            .flat_map(|(n, vs)| vs.iter().map(move |v| (NAMES[*n], VALUES[*v])))
            .collect();
        for (peer, headers) in &requests {
            let (a, b) = (decide(&old, *peer, headers), decide(&new, *peer, headers));
            let hits: Vec<&Change> = changes
                .iter()
                .filter(|c| in_source(c, *peer))
                .filter(|c| {
                    c.when.is_empty()
                        || c.when.iter().any(|w| alternative_holds(w, headers, &listed))
                })
                .collect();
            let what = format!("{ot}\n{nt}\n{peer:?} {headers:?}\n{report}");
            if a == b {
                prop_assert!(hits.is_empty(), "unchanged request reported:\n{}", what);
            } else {
                prop_assert_eq!(hits.len(), 1, "{}", what);
                prop_assert_eq!(&hits[0].old.rule, &a.1, "{}", what);
                prop_assert_eq!(&hits[0].new.rule, &b.1, "{}", what);
            }
        }
    }
}
