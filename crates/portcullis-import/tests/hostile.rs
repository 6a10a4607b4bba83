//! Hostile and broken inputs: each is refused or reported with its line and
//! column, and nothing unsafe reaches a policy.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use portcullis_import::{apim, nsg, tags, xml, ItemKind, Options, Outcome, MAX_INPUT_BYTES};
use proptest::prelude::*;

fn apim_(t: &str) -> Outcome {
    apim::import(t, &Options::new("p"))
}

fn nsg_(t: &str) -> Outcome {
    nsg::import(t, &Options::new("p"))
}

/// The single error of a failed import: (line, column, reason).
fn error(o: &Outcome) -> (u32, u32, String) {
    assert!(o.policy.is_none(), "a policy was produced: {:?}", o.policy);
    let e = o
        .report
        .items
        .iter()
        .find(|i| i.kind == ItemKind::Error)
        .unwrap_or_else(|| panic!("no error in {}", o.report));
    (e.line, e.column, e.reason.clone())
}

/// Whether some error's reason holds `needle` (and no policy was produced).
fn has_error(o: &Outcome, needle: &str) -> bool {
    o.policy.is_none()
        && o.report
            .items
            .iter()
            .any(|i| i.kind == ItemKind::Error && i.reason.contains(needle))
}

#[test]
fn malformed_xml_is_refused_with_line_and_column() {
    let (l, c, r) = error(&apim_(
        "<policies>\n  <inbound>\n    <ip-filter action=\"allow\">\n  </inbound>\n</policies>",
    ));
    assert_eq!((l, c), (4, 3), "{r}");
    assert!(r.contains("does not match <ip-filter> at 3:5"), "{r}");
    let (l, c, _) = error(&apim_("<policies>\n<inbound attr=noquote/></policies>"));
    assert_eq!((l, c), (2, 15));
}

#[test]
fn entities_and_dtds_are_refused_never_expanded() {
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n<policies><inbound><set-header name=\"x\"><value>&lol2;</value></set-header></inbound></policies>";
    let (l, c, r) = error(&apim_(laughs));
    assert_eq!((l, c), (2, 1));
    assert!(r.contains("DTD"), "{r}");
    let xxe = "<policies><inbound><set-header name=\"x\"><value>&xxe;</value></set-header></inbound></policies>";
    let (l, c, r) = error(&apim_(xxe));
    assert_eq!((l, c), (1, 48));
    assert!(r.contains("&xxe;") && r.contains("never expanded"), "{r}");
    let decl = "<policies>\n<!ENTITY x SYSTEM \"file:///etc/passwd\">\n</policies>";
    assert_eq!(error(&apim_(decl)).0, 2);
    // The predefined five and numeric references are read.
    let ok = apim_("<policies><outbound><set-header name=\"x-a\"><value>&lt;&#65;&#x42;&amp;&apos;&quot;&gt;</value></set-header></outbound></policies>");
    assert!(ok.policy.unwrap().contains(r#""value": "<AB&'\">""#));
}

#[test]
fn malformed_json_is_refused_with_line_and_column() {
    let (l, c, r) = error(&nsg_("[\n  {\"name\": \"a\",\n   \"priority\": 100,,\n}]"));
    assert_eq!((l, c), (3, 20), "{r}");
    let (l, _, r) = error(&nsg_("{\"foo\": 1}"));
    assert_eq!(l, 1);
    assert!(r.contains("not an NSG"), "{r}");
    let e = tags::Snapshot::parse("{\"values\": [\n  {\"name\": \"x\"\n  ]}").unwrap_err();
    assert_eq!((e.line, e.column), (3, 3), "{e}");
}

#[test]
fn inputs_over_the_limit_are_refused_and_those_under_it_are_read() {
    // Just under the limit: a real policy padded with a comment.
    let body = "<policies><inbound><ip-filter action=\"allow\"><address>203.0.113.1</address></ip-filter></inbound></policies>";
    let pad = MAX_INPUT_BYTES - body.len() - "<!---->".len();
    let big = format!("<!--{}-->{body}", "x".repeat(pad));
    assert_eq!(big.len(), MAX_INPUT_BYTES);
    assert!(apim_(&big).policy.is_some());
    let too_big = format!(" {big}");
    let (l, c, r) = error(&apim_(&too_big));
    assert_eq!((l, c), (0, 0));
    assert!(
        r.contains("1048577 bytes") && r.contains("limit is 1048576"),
        "{r}"
    );
    let json = format!("[{}]", " ".repeat(MAX_INPUT_BYTES));
    assert!(has_error(&nsg_(&json), "limit"));
    // Many rules within the limit: 3000 inbound rules import.
    let rules: Vec<String> = (0..3000)
        .map(|i| format!(r#"{{"name":"r{i}","priority":{},"access":"Allow","direction":"Inbound","protocol":"Tcp","sourceAddressPrefix":"10.{}.{}.0/24","sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"443"}}"#, 100 + i, i / 256, i % 256))
        .collect();
    let out = nsg_(&format!("[{}]", rules.join(",")));
    assert!(out.policy.is_some(), "{}", out.report);
    assert_eq!(out.report.count(ItemKind::Mapped), 3001);
}

#[test]
fn a_huge_single_line_input_is_read() {
    // Positions on one long line must not cost the line's length each.
    let addrs: String = (0..20_000)
        .map(|i| format!("<address>10.{}.{}.1</address>", i / 256, i % 256))
        .collect();
    let t = format!(
        "<policies><inbound><ip-filter action=\"allow\">{addrs}</ip-filter></inbound></policies>"
    );
    assert!(t.len() < MAX_INPUT_BYTES && !t.contains('\n'));
    let out = apim_(&t);
    assert!(out.policy.is_some(), "{}", out.report);
    let last = out.report.items.last().unwrap();
    assert_eq!(
        (last.line, last.column),
        (1, u32::try_from(t.rfind("<address>").unwrap() + 1).unwrap())
    );
    assert_eq!(out.report.count(ItemKind::Mapped), 20_001);
}

#[test]
fn a_service_tags_file_of_public_cloud_size_is_read() {
    // About the size of the weekly public-cloud download (thousands of tags).
    let tags: Vec<String> = (0..3000)
        .map(|t| {
            let prefixes: Vec<String> = (0..40).map(|i| format!("\"20.{}.{}.0/24\"", t % 200, i)).collect();
            format!(r#"{{"name":"Svc{t}.Region","id":"Svc{t}.Region","properties":{{"changeNumber":{t},"region":"r","regionId":1,"platform":"Azure","systemService":"Svc","addressPrefixes":[{}],"networkFeatures":["NSG"]}}}}"#, prefixes.join(","))
        })
        .collect();
    let text = format!(
        r#"{{"changeNumber":99,"cloud":"Public","values":[{}]}}"#,
        tags.join(",\n")
    );
    assert!(text.len() > 2 << 20 && text.len() < portcullis_import::MAX_SERVICE_TAGS_BYTES);
    let snap = tags::Snapshot::parse(&text).unwrap();
    assert_eq!(snap.tags.len(), 3000);
    assert_eq!(snap.get("svc2999.region").unwrap().prefixes.len(), 40);
}

#[test]
fn unknown_elements_are_reported_and_strict_refuses_them() {
    let t = "<policies>\n  <inbound>\n    <frobnicate level=\"9\"><x/></frobnicate>\n    <set-header name=\"x-a\" exists-action=\"override\" colour=\"red\"><value>1</value></set-header>\n  </inbound>\n  <sideways/>\n</policies>";
    let out = apim_(t);
    assert!(out.policy.is_some());
    let un: Vec<(u32, u32, &str)> = out
        .report
        .items
        .iter()
        .filter(|i| i.kind == ItemKind::Unsupported)
        .map(|i| (i.line, i.column, i.what.as_str()))
        .collect();
    assert_eq!(
        un,
        [
            (3, 5, "frobnicate"),
            (4, 53, "set-header@colour"),
            (6, 3, "sideways")
        ]
    );
    let mut strict = Options::new("p");
    strict.strict = true;
    let out = apim::import(t, &strict);
    assert!(out.policy.is_none());
    assert_eq!(out.report.count(ItemKind::Error), 3);
    let (l, c, r) = error(&apim_("<fragment/>"));
    assert_eq!((l, c), (1, 1));
    assert!(r.contains("<policies>"));
}

#[test]
fn what_would_weaken_the_policy_is_an_error_not_a_gap() {
    // An expression in a forbid filter, a check-header with no literal value,
    // two allow filters.
    let forbid = "<policies><inbound><ip-filter action=\"forbid\"><address>@(x)</address></ip-filter></inbound></policies>";
    assert!(has_error(&apim_(forbid), "forbid filter"));
    let check = "<policies><inbound><check-header name=\"k\"><value>@(x)</value></check-header></inbound></policies>";
    assert!(has_error(&apim_(check), "every request through"));
    let two = "<policies><inbound>\n<ip-filter action=\"allow\"><address>10.0.0.1</address></ip-filter>\n<ip-filter action=\"allow\"><address>10.0.0.2</address></ip-filter></inbound></policies>";
    let (l, c, r) = error(&apim_(two));
    assert_eq!((l, c), (3, 1));
    assert!(r.contains("first is at 2:1"), "{r}");
    // An allow filter's bad address is only left out.
    let allow = "<policies><inbound><ip-filter action=\"allow\"><address>10.0.0.1</address><address>{{nv}}</address></ip-filter></inbound></policies>";
    let out = apim_(allow);
    assert!(out.policy.unwrap().contains("10.0.0.1"));
    // A header the core never touches is refused with the XML position.
    let host = "<policies>\n<inbound>\n  <set-header name=\"Host\"><value>evil</value></set-header></inbound></policies>";
    let (l, c, r) = error(&apim_(host));
    assert_eq!((l, c), (3, 3));
    assert!(r.contains("request_headers[0]"), "{r}");
    // An address the core refuses, at the rule.
    let bits = "<policies><inbound><ip-filter action=\"allow\"><address>10.0.0.256</address></ip-filter></inbound></policies>";
    assert!(has_error(&apim_(bits), "network.rules[0].source[0]"));
}

fn rule(name: &str, prio: u32, access: &str, dir: &str, src: &str) -> String {
    format!(
        r#"{{"name":"{name}","priority":{prio},"access":"{access}","direction":"{dir}","protocol":"*","sourceAddressPrefix":"{src}","sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"*"}}"#
    )
}

#[test]
fn duplicate_priorities_and_names_are_refused_as_nsg_does() {
    let t = format!(
        "[\n{},\n{},\n{}\n]",
        rule("a", 100, "Allow", "Inbound", "10.0.0.0/8"),
        rule("b", 100, "Deny", "Outbound", "*"),
        rule("c", 100, "Deny", "Inbound", "*")
    );
    let (l, c, r) = error(&nsg_(&t));
    assert_eq!((l, c), (4, 1));
    assert!(
        r.contains("priority 100 is also used by \"a\" at 2:1"),
        "{r}"
    );
    let t = format!(
        "[{},\n{}]",
        rule("a", 100, "Allow", "Inbound", "*"),
        rule("A", 200, "Allow", "Inbound", "*")
    );
    assert!(has_error(&nsg_(&t), "duplicate names"));
    let both = r#"[{"name":"a","priority":100,"access":"Allow","direction":"Inbound","protocol":"Tcp","sourceAddressPrefix":"10.0.0.1","sourceAddressPrefixes":["10.0.0.2"],"sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"80"}]"#;
    assert!(has_error(&nsg_(both), "NSG refuses that"));
    for p in [99, 4097] {
        let t = format!("[{}]", rule("a", p, "Allow", "Inbound", "*"));
        assert!(has_error(&nsg_(&t), "100 to 4096"));
    }
}

#[test]
fn unresolvable_sources_deny_more_never_allow_more() {
    // A service tag without a snapshot, VirtualNetwork, an ASG, an ARM
    // expression: left out of an allow rule, an error in a deny rule.
    for src in ["Sql.WestEurope", "VirtualNetwork", "[parameters('src')]"] {
        let allow = nsg_(&format!(
            "[{},{}]",
            rule("a", 100, "Allow", "Inbound", src),
            rule("b", 200, "Allow", "Inbound", "10.0.0.0/8")
        ));
        let p = allow
            .policy
            .unwrap_or_else(|| panic!("{src}: {}", allow.report));
        assert!(!p.contains("\"name\": \"a\""), "{src}: {p}");
        assert_eq!(allow.report.count(ItemKind::Unsupported), 1, "{src}");
        let deny = nsg_(&format!("[{}]", rule("d", 100, "Deny", "Inbound", src)));
        assert!(
            has_error(&deny, "would allow what it denies"),
            "{src}: {}",
            deny.report
        );
    }
    let asg = r#"[{"name":"a","priority":100,"access":"Deny","direction":"Inbound","protocol":"Tcp","sourceApplicationSecurityGroups":[{"id":"/x/asg1"}],"sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"80"}]"#;
    assert!(has_error(&nsg_(asg), "application security group"));
    let snap = tags::Snapshot::parse(r#"{"cloud":"Public","changeNumber":"1","values":[{"name":"Sql.WestEurope","properties":{"changeNumber":"2","addressPrefixes":["20.50.73.32/28"]}}]}"#).unwrap();
    let mut o = Options::new("p");
    o.service_tags = Some(&snap);
    let out = nsg::import(
        &format!("[{}]", rule("d", 100, "Deny", "Inbound", "sql.westeurope")),
        &o,
    );
    let p = out.policy.unwrap();
    assert!(p.contains(r#""Sql.WestEurope": ["20.50.73.32/28"]"#), "{p}");
}

#[test]
fn icmp_and_outbound_are_skipped_even_when_strict() {
    let t = format!(
        "[{},{}]",
        rule("out", 100, "Deny", "Outbound", "*"),
        rule("in", 100, "Allow", "Inbound", "*").replace("\"protocol\":\"*\"", "\"protocol\":\"Tcp\"")
    )
    .replace("]", r#",{"name":"ping","priority":200,"access":"Allow","direction":"Inbound","protocol":"Icmp","sourceAddressPrefix":"*","sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"*"}]"#);
    let mut o = Options::new("p");
    o.strict = true;
    let out = nsg::import(&t, &o);
    assert!(out.policy.is_some(), "{}", out.report);
    assert_eq!(out.report.count(ItemKind::Skipped), 3, "{}", out.report);
}

/// Text escaped the naive way: every character outside printable ASCII as a
/// numeric reference, and the five specials as their entities.
fn naive_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            ' '..='~' => out.push(c),
            c => out.push_str(&format!("&#{};", c as u32)),
        }
    }
    out
}

proptest! {
    #[test]
    fn text_and_attributes_round_trip(s in "[\\t\\n\\r -\u{d7ff}\u{e000}-\u{fffd}\u{10000}-\u{10ffff}]{0,40}") {
        let doc = format!("<a v=\"{}\">{}</a>", naive_escape(&s), naive_escape(&s));
        let e = xml::parse(&doc).unwrap();
        prop_assert_eq!(e.text(), s.clone());
        prop_assert_eq!(e.attr("v"), Some(s.as_str()));
    }

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,200}") {
        let _ = xml::parse(&s);
        let _ = apim_(&s);
        let _ = nsg_(&s);
    }
}
