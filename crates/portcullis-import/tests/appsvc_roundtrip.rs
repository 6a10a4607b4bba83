//! Round trip through App Service: random policies within what App Service
//! access restrictions express exactly, exported (`appsvc::export`, not
//! approximate), imported back (`appsvc::import`, `--strict`), must decide
//! every flow alike: `portcullis diff` finds nothing newly allowed or newly
//! denied, at the top level or in the scm scope's region (the diff sees
//! rule headers). The rules' header conditions are also compared directly
//! (name -> values), rule by rule in priority order.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use portcullis_core::json::{self, Kind, Value};
use portcullis_core::Policy;
use portcullis_diff::{diff, Applies, Flows, Kind as Change, Report, Scoped};
use portcullis_import::appsvc::{self, export};
use portcullis_import::Options;
use proptest::prelude::*;

fn v4() -> impl Strategy<Value = String> {
    (any::<u32>(), 8u32..=32).prop_map(|(a, len)| {
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let net = std::net::Ipv4Addr::from(a & mask);
        if len == 32 {
            net.to_string()
        } else {
            format!("{net}/{len}")
        }
    })
}

fn v6() -> impl Strategy<Value = String> {
    (any::<u128>(), 16u32..=128).prop_map(|(a, len)| {
        let mask = u128::MAX << (128 - len);
        format!("{}/{len}", std::net::Ipv6Addr::from(a & mask))
    })
}

fn range() -> impl Strategy<Value = String> {
    (any::<u32>(), 0u32..5000).prop_map(|(a, n)| {
        let lo = a.min(u32::MAX - n);
        format!(
            "{}-{}",
            std::net::Ipv4Addr::from(lo),
            std::net::Ipv4Addr::from(lo + n)
        )
    })
}

fn spec() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => v4(),
        2 => v6(),
        2 => range(),
        1 => Just("*".to_string()),
        1 => Just("partners".to_string()),
        1 => Just("Private".to_string()),
        1 => Just("Loopback".to_string()),
        1 => Just("Internet".to_string()),
    ]
}

/// A rule's header conditions: name -> values, as App Service tests them.
fn headers() -> impl Strategy<Value = Vec<(String, Vec<String>)>> {
    proptest::sample::subsequence(appsvc::export::EXPORTED_HEADERS.to_vec(), 0..=2).prop_flat_map(
        |names| {
            let n = names.len();
            (
                Just(names),
                proptest::collection::vec(
                    proptest::collection::btree_set("[a-z0-9][a-z0-9.-]{0,12}", 1..=3),
                    n,
                ),
            )
                .prop_map(|(names, values)| {
                    names
                        .into_iter()
                        .zip(values)
                        .map(|(n, v)| (n.to_string(), v.into_iter().collect()))
                        .collect()
                })
        },
    )
}

#[derive(Debug, Clone)]
struct R {
    access: bool,
    source: Vec<String>,
    headers: Vec<(String, Vec<String>)>,
}

fn rule() -> impl Strategy<Value = R> {
    (
        any::<bool>(),
        proptest::collection::vec(spec(), 1..=4),
        headers(),
    )
        .prop_map(|(access, source, headers)| R {
            access,
            source,
            headers,
        })
}

fn network() -> impl Strategy<Value = (Vec<R>, Vec<u16>, bool)> {
    (
        proptest::collection::vec(rule(), 0..10),
        proptest::collection::btree_set(100u16..=4096, 10),
        any::<bool>(),
    )
        .prop_map(|(rules, prios, allow)| {
            let mut p: Vec<u16> = prios.into_iter().collect();
            // Document order is not priority order.
            p.reverse();
            (rules, p, allow)
        })
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn network_json((rules, prios, allow): &(Vec<R>, Vec<u16>, bool)) -> String {
    let list: Vec<String> = rules
        .iter()
        .zip(prios)
        .enumerate()
        .map(|(i, (r, p))| {
            let src: Vec<String> = r.source.iter().map(|s| quote(s)).collect();
            let mut s = format!(
                r#"{{"name": "r{i}", "priority": {p}, "access": "{}", "source": [{}]"#,
                if r.access { "allow" } else { "deny" },
                src.join(", ")
            );
            if !r.headers.is_empty() {
                let h: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        let vs: Vec<String> = v.iter().map(|x| quote(x)).collect();
                        format!("{}: [{}]", quote(n), vs.join(", "))
                    })
                    .collect();
                s.push_str(&format!(r#", "headers": {{{}}}"#, h.join(", ")));
            }
            s.push('}');
            s
        })
        .collect();
    format!(
        r#"{{"rules": [{}], "default_access": "{}"}}"#,
        list.join(", "),
        if *allow { "allow" } else { "deny" }
    )
}

/// A rule's header conditions: (name, sorted values), sorted by name.
type Headers = Vec<(String, Vec<String>)>;

/// Every rule's headers, by (network path, priority order), as name -> sorted values.
fn rule_headers(text: &str) -> Vec<Headers> {
    let root = json::parse(text).unwrap();
    let mut nets: Vec<&Value> = root.get("network").into_iter().collect();
    if let Some(Value {
        kind: Kind::Array(scopes),
        ..
    }) = root.get("scopes")
    {
        nets.extend(scopes.iter().filter_map(|s| s.get("network")));
    }
    let mut out = Vec::new();
    for n in nets {
        let Some(Value {
            kind: Kind::Array(rules),
            ..
        }) = n.get("rules")
        else {
            continue;
        };
        let mut rs: Vec<(u64, Headers)> = rules
            .iter()
            .map(|r| {
                let mut hs = Vec::new();
                if let Some(Value {
                    kind: Kind::Object(m),
                    ..
                }) = r.get("headers")
                {
                    for h in m {
                        let mut vs: Vec<String> = match &h.value.kind {
                            Kind::Array(a) => a
                                .iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect(),
                            _ => Vec::new(),
                        };
                        vs.sort();
                        hs.push((h.key.to_ascii_lowercase(), vs));
                    }
                }
                hs.sort();
                (r.get("priority").and_then(Value::as_u64).unwrap_or(0), hs)
            })
            .collect();
        rs.sort_by_key(|r| r.0);
        out.extend(rs.into_iter().map(|r| r.1));
    }
    out
}

/// Whether some flow is newly allowed or newly denied, at the top level or
/// in a region of the scopes. Not counted: the region of unreadable
/// authorities, which a policy with a host scope refuses with 400 before
/// any rule (policy-v1 "Scopes"); App Service's front end routes requests by
/// host before a site's access restrictions see them, so the export has
/// nothing to say about it (docs/export.md).
fn who_may_call_changed(d: &Report) -> bool {
    let moved = |f: &Flows, changes: &[portcullis_diff::Change]| {
        matches!(f, Flows::TooComplex { .. })
            || changes
                .iter()
                .any(|c| matches!(c.kind, Change::NewlyAllowed | Change::NewlyDenied))
    };
    let top = moved(&d.network, d.changes());
    top || match &d.scopes {
        None => false,
        Some(Scoped::TooManyRegions { .. }) => true,
        Some(s) => s
            .groups()
            .iter()
            .filter(|g| {
                !matches!(g.old, Applies::Refused(_)) && !matches!(g.new, Applies::Refused(_))
            })
            .any(|g| moved(&g.network, g.changes())),
    }
}

#[derive(Debug, Clone)]
enum Scm {
    None,
    Inherit,
    /// `inherit: false` without a network: the scm host is not filtered.
    Alone,
    Own((Vec<R>, Vec<u16>, bool)),
}

fn scm() -> impl Strategy<Value = Scm> {
    prop_oneof![
        Just(Scm::None),
        Just(Scm::Inherit),
        Just(Scm::Alone),
        network().prop_map(Scm::Own),
    ]
}

fn policy(main: &Option<(Vec<R>, Vec<u16>, bool)>, scm: &Scm, partners: &[String]) -> String {
    let groups: Vec<String> = partners.iter().map(|s| quote(s)).collect();
    let mut doc = format!(
        r#"{{"name": "rt", "address_groups": {{"partners": [{}]}}"#,
        groups.join(", ")
    );
    if let Some(n) = main {
        doc.push_str(&format!(r#", "network": {}"#, network_json(n)));
    }
    let scope = |net: Option<String>| {
        format!(
            r#", "scopes": [{{"name": "kudu", "match": {{"hosts": ["*.scm.azurewebsites.net"]}}{}}}]"#,
            net.map(|n| format!(r#", "network": {n}"#))
                .unwrap_or_default()
        )
    };
    match scm {
        Scm::None => {}
        Scm::Inherit => doc.push_str(&scope(None)),
        Scm::Alone => doc.push_str(
            r#", "scopes": [{"name": "kudu", "match": {"hosts": ["*.scm.azurewebsites.net"]}, "inherit": false}]"#,
        ),
        Scm::Own(n) => doc.push_str(&scope(Some(network_json(n)))),
    }
    doc.push('}');
    doc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn export_then_import_changes_no_decision(
        main in proptest::option::weighted(0.9, network()),
        scm in scm(),
        partners in proptest::collection::vec(prop_oneof![v4(), v6()], 1..=3),
    ) {
        let text = policy(&main, &scm, &partners);
        let old = Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let out = export::export(&text, false).unwrap();
        let config = out.config.clone().unwrap_or_else(|| panic!("refused: {out}\n{text}"));
        prop_assert!(out.notes.is_empty(), "{}", out);
        let mut o = Options::new("rt");
        o.strict = true;
        let back = appsvc::import(&config, &o);
        let imported = back.policy.clone().unwrap_or_else(|| panic!("{}\n{config}", back.report));
        let new = Policy::parse(imported.as_bytes()).unwrap();
        let d = diff(&old, &new);
        prop_assert!(
            !who_may_call_changed(&d),
            "{}\n--- policy\n{text}\n--- app service\n{config}\n--- imported\n{imported}",
            d
        );
        // Header conditions, rule by rule (a split rule repeats its rule's).
        let mut want = rule_headers(&text);
        let mut got = rule_headers(&imported);
        want.dedup();
        got.dedup();
        want.retain(|h| !h.is_empty());
        got.retain(|h| !h.is_empty());
        want.dedup();
        got.dedup();
        prop_assert_eq!(want, got);
    }
}

#[test]
fn a_rule_over_eight_ranges_is_split_in_order_and_comes_back_alike() {
    let text = r#"{"name": "s", "network": {"rules": [
      {"name": "many", "priority": 200, "access": "allow", "source": ["10.0.0.5-10.0.0.200", "192.0.2.1", "2001:db8::/64"]},
      {"name": "block", "priority": 100, "access": "deny", "source": ["10.0.0.7"]}
    ], "default_access": "deny"}}"#;
    let out = export::export(text, false).unwrap();
    let config = out.config.unwrap();
    let root = json::parse(&config).unwrap();
    let Some(Value {
        kind: Kind::Array(rules),
        ..
    }) = root.get("ipSecurityRestrictions")
    else {
        panic!("{config}")
    };
    let names: Vec<&str> = rules
        .iter()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .collect();
    assert_eq!(names, ["block", "many (1/2)", "many (2/2)"], "{config}");
    for r in rules {
        let n = r
            .get("ipAddress")
            .and_then(Value::as_str)
            .unwrap()
            .split(',')
            .count();
        assert!(n <= export::MAX_ADDRESSES, "{config}");
    }
    let back = appsvc::import(&config, &Options::new("s")).policy.unwrap();
    let d = diff(
        &Policy::parse(text.as_bytes()).unwrap(),
        &Policy::parse(back.as_bytes()).unwrap(),
    );
    assert!(!who_may_call_changed(&d), "{d}");
}

#[test]
fn what_app_service_cannot_express_is_refused_or_listed() {
    let text = r#"{"name": "x", "mode": "report",
      "network": {"rules": [
        {"name": "https", "priority": 100, "access": "allow", "source": ["*"], "destination_ports": ["443"]},
        {"name": "udp", "priority": 110, "access": "deny", "source": ["10.0.0.0/8"], "protocol": "udp"}
      ], "deny": {"status": 404}},
      "hsts": {"max_age": 600},
      "scopes": [{"name": "admin", "match": {"paths": ["/admin/*"]}, "network": {"rules": []}}]}"#;
    let refused = export::export(text, false).unwrap();
    assert!(refused.config.is_none());
    let paths: Vec<(&str, export::NoteKind)> = refused
        .notes
        .iter()
        .map(|n| (n.path.as_str(), n.kind))
        .collect();
    use export::NoteKind::Refused;
    assert_eq!(
        paths,
        [
            ("mode", Refused),
            ("network.rules[0].destination_ports", Refused),
            ("network.rules[1].protocol", Refused),
            ("network.deny", Refused),
            ("hsts", Refused),
            ("scopes[0]", Refused),
        ],
        "{refused}"
    );
    let approx = export::export(text, true).unwrap();
    assert!(approx.config.is_some());
    assert_eq!(approx.notes.len(), 6);
    assert!(approx
        .notes
        .iter()
        .all(|n| n.kind == export::NoteKind::Approximated));
}

#[test]
fn over_512_rules_is_refused_even_approximately() {
    let rules: Vec<String> = (0..520)
        .map(|i| format!(r#"{{"name": "r{i}", "priority": {}, "access": "allow", "source": ["10.{}.{}.0/24"]}}"#, 100 + i, i / 256, i % 256))
        .collect();
    let text = format!(
        r#"{{"name": "big", "network": {{"rules": [{}]}}}}"#,
        rules.join(",")
    );
    let out = export::export(&text, true).unwrap();
    assert!(out.config.is_none());
    assert!(
        out.notes.iter().any(|n| n.reason.contains("at most 512")),
        "{out}"
    );
}

#[test]
fn the_round_trip_check_sees_a_dropped_header_condition() {
    let with = r#"{"name": "h", "network": {"rules": [
      {"name": "fd", "priority": 100, "access": "allow", "source": ["147.243.0.0/16"], "headers": {"x-azure-fdid": ["abc"]}}]}}"#;
    let without = r#"{"name": "h", "network": {"rules": [
      {"name": "fd", "priority": 100, "access": "allow", "source": ["147.243.0.0/16"]}]}}"#;
    let d = diff(
        &Policy::parse(with.as_bytes()).unwrap(),
        &Policy::parse(without.as_bytes()).unwrap(),
    );
    assert!(who_may_call_changed(&d), "{d}");
    assert_ne!(rule_headers(with), rule_headers(without));
}
