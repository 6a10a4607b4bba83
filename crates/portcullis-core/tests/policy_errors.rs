//! A policy with several mistakes gets one error per mistake, each with its
//! JSON path, line and column.

use portcullis_core::{Error, Policy};

const BROKEN: &str = r#"{
  "name": "broken policy",
  "address_groups": { "fe": ["010.0.0.1"] },
  "network": {
    "rules": [
      { "name": "a", "priority": 100, "access": "allow", "source": ["10.1.2.3/8"] },
      { "name": "a", "priority": 100, "access": "allow", "source": ["fe80::1%eth0"],
        "destination_ports": ["70000"] },
      { "name": "c", "priority": 5000, "access": "maybe", "source": ["nowhere"], "colour": "red" }
    ]
  },
  "https_only": { "action": "redirect" },
  "response_headers": [ { "set": "Connection", "value": "close" }, { "set": "X-A", "value": "a\r\nb" } ],
  "hsts": { "max_age": 300, "preload": true },
  "hsts": { "max_age": 1 }
}"#;

#[test]
fn every_mistake_is_reported_with_its_position() {
    let problems = Policy::parse(BROKEN.as_bytes()).unwrap_err().0;
    let got: Vec<(String, u32, u32)> = problems
        .iter()
        .map(|p| (p.path.clone(), p.line, p.column))
        .collect();
    let want = [
        ("name", 2, 11),
        ("address_groups.fe[0]", 3, 30),
        ("network.rules[0].source[0]", 6, 69),
        ("network.rules[1].source[0]", 7, 69),
        ("network.rules[1].destination_ports[0]", 8, 31),
        ("network.rules[1].name", 7, 17),
        ("network.rules[1].priority", 7, 34),
        ("network.rules[2].colour", 9, 82),
        ("network.rules[2].priority", 9, 34),
        ("network.rules[2].access", 9, 50),
        ("network.rules[2].source[0]", 9, 70),
        ("https_only", 12, 17),
        ("response_headers[0].set", 13, 34),
        ("response_headers[1].value", 13, 93),
        ("hsts.preload", 14, 40),
        ("hsts", 15, 3),
    ];
    for (path, line, col) in want {
        assert!(
            got.iter()
                .any(|(p, l, c)| p == path && *l == line && *c == col),
            "missing {path} at {line}:{col}; got:\n{:#?}",
            got
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    // Spot-check messages.
    let text = portcullis_core::Problems(problems.clone()).to_string();
    assert!(text.contains("did you mean 10.0.0.0/8?"), "{text}");
    assert!(text.contains("leading zeros"), "{text}");
    assert!(text.contains("zone ids"), "{text}");
    assert!(
        text.contains("rules network.rules[0] and network.rules[1] are both named \"a\""),
        "{text}"
    );
    assert!(
        text.contains(
            "rules \"a\" (network.rules[0]) and \"a\" (network.rules[1]) both have priority 100"
        ),
        "{text}"
    );
    assert!(matches!(
        problems.iter().find(|p| p.path == "hsts").map(|p| &p.error),
        Some(Error::DuplicateKey(_))
    ));
}

#[test]
fn duplicate_priorities_and_names_name_both_rules() {
    // The spec: "Duplicate names or priorities are errors that name both
    // rules". The error sits on the later rule; the message names both.
    let doc = br#"{"name": "p", "network": {"rules": [
        {"name": "allow-web", "priority": 300, "access": "allow", "source": ["*"]},
        {"name": "other", "priority": 200, "access": "allow", "source": ["*"]},
        {"name": "deny-web", "priority": 300, "access": "deny", "source": ["*"]},
        {"priority": 200, "access": "deny", "source": ["*"]},
        {"name": "other", "priority": 400, "access": "deny", "source": ["*"]}
    ]}}"#;
    let problems = Policy::parse(doc).unwrap_err().0;
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for want in [
        "network.rules[2].priority: rules \"allow-web\" (network.rules[0]) and \"deny-web\" (network.rules[2]) both have priority 300",
        "network.rules[3].priority: rules \"other\" (network.rules[1]) and network.rules[3] both have priority 200",
        "network.rules[4].name: rules network.rules[1] and network.rules[4] are both named \"other\"",
    ] {
        assert!(text.iter().any(|t| t.ends_with(want)), "missing {want:?} in {text:#?}");
    }
    assert!(matches!(
        problems.iter().find(|p| p.path == "network.rules[2].priority").map(|p| &p.error),
        Some(Error::DuplicatePriority { first, second, priority: 300 })
            if first.name.as_deref() == Some("allow-web") && second.name.as_deref() == Some("deny-web")
    ));
}

#[test]
fn duplicates_inside_a_scope_name_the_rules_by_their_scope_paths() {
    // The error's path and the rules its message names both lie under
    // `scopes[1].`, not at the top level's `network.rules[i]`.
    let doc = br#"{"name": "p",
      "network": {"rules": [{"name": "top", "priority": 100, "access": "allow", "source": ["*"]}]},
      "scopes": [
        {"name": "a", "match": {"paths": ["/a"]}},
        {"name": "b", "match": {"paths": ["/b"]}, "network": {"rules": [
          {"name": "allow-web", "priority": 300, "access": "allow", "source": ["*"]},
          {"name": "deny-web", "priority": 300, "access": "deny", "source": ["*"]},
          {"name": "allow-web", "priority": 400, "access": "deny", "source": ["*"]}]}}]}"#;
    let problems = Policy::parse(doc).unwrap_err().0;
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    for want in [
        "scopes[1].network.rules[1].priority: rules \"allow-web\" (scopes[1].network.rules[0]) and \"deny-web\" (scopes[1].network.rules[1]) both have priority 300",
        "scopes[1].network.rules[2].name: rules scopes[1].network.rules[0] and scopes[1].network.rules[2] are both named \"allow-web\"",
    ] {
        assert!(text.iter().any(|t| t.ends_with(want)), "missing {want:?} in {text:#?}");
    }
    assert_eq!(problems.len(), 2, "{text:#?}");
    assert!(
        matches!(
            problems.iter().find(|p| p.path.ends_with("priority")).map(|p| &p.error),
            Some(Error::DuplicatePriority { first, second, .. })
                if first.path == "scopes[1].network.rules[0]" && second.path == "scopes[1].network.rules[1]"
        ),
        "{problems:#?}"
    );
}

#[test]
fn an_entry_without_values_or_values_from_says_one_of_them_is_required() {
    let doc = br#"{"name": "p",
      "require_headers": [{"name": "x-client-key"}],
      "request_headers": [{"set": "x-functions-key"}],
      "scopes": [{"name": "a", "match": {"paths": ["/a"]},
                  "require_headers": [{"name": "x-admin-key", "status": 403}]}]}"#;
    let problems = Policy::parse(doc).unwrap_err().0;
    let got: Vec<(String, String)> = problems
        .iter()
        .map(|p| (p.path.clone(), p.error.to_string()))
        .collect();
    let want = [
        (
            "require_headers[0]",
            "one of \"values\", \"values_from\" is required",
        ),
        (
            "request_headers[0]",
            "one of \"value\", \"value_from\" is required",
        ),
        (
            "scopes[0].require_headers[0]",
            "one of \"values\", \"values_from\" is required",
        ),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, m)| (p.to_string(), m.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        problems[0].error,
        Error::MissingOneOf(&["values", "values_from"])
    );
}

#[test]
fn syntax_errors_and_bad_bytes_have_positions() {
    let e = Policy::parse(b"{\n  \"name\": \"x\",\n  oops\n}")
        .unwrap_err()
        .0;
    assert_eq!((e[0].line, e[0].column), (3, 3));
    let e = Policy::parse(b"{\"name\": \"\xff\"}").unwrap_err().0;
    assert_eq!(e[0].error, Error::NotUtf8);
    assert_eq!((e[0].line, e[0].column), (1, 11));
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let p = Policy::parse(
        br#"{"name":"k","require_headers":[{"name":"x-functions-key","values":["S3cr3t"]}]}"#,
    )
    .unwrap();
    assert!(!format!("{p:?}").contains("S3cr3t"));
    let e = Policy::parse(
        br#"{"name":"k","require_headers":[{"name":"x-functions-key","values":["S3cr3t\n"]}]}"#,
    )
    .unwrap_err();
    assert!(!e.to_string().contains("S3cr3t"), "{e}");
}

#[test]
fn hostile_sizes_are_bounded() {
    // Deep nesting is a syntax error, not a stack overflow.
    let deep = format!(
        "{{\"name\":{}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let e = Policy::parse(deep.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("nesting too deep"), "{e}");
    // Over the size limit: one clear error.
    let big = vec![b' '; portcullis_core::policy::MAX_POLICY_BYTES + 1];
    assert!(matches!(
        Policy::parse(&big).unwrap_err().0[0].error,
        Error::TooLarge { .. }
    ));
}

#[test]
fn lints_find_shadowed_rules_overlaps_and_empty_allowlists() {
    use portcullis_core::lint::LintKind;
    let p = Policy::parse(
        br#"{"name":"l","network":{"rules":[
        {"name":"wide","priority":100,"access":"allow","source":["10.0.0.0/8"]},
        {"name":"narrow","priority":200,"access":"deny","source":["10.1.0.0/16"],"destination_ports":["443"]},
        {"name":"partial","priority":300,"access":"deny","source":["9.255.255.0-10.0.0.5"]},
        {"name":"all","priority":400,"access":"allow","source":["*"]},
        {"name":"late","priority":500,"access":"allow","source":["11.0.0.1"]}
    ]}}"#,
    )
    .unwrap();
    let lints = p.lints();
    let kinds: Vec<&LintKind> = lints.iter().map(|l| &l.kind).collect();
    assert!(
        kinds.iter().any(
            |k| matches!(k, LintKind::Shadowed { rule, by } if rule == "narrow" && by == &["wide"])
        ),
        "{lints:#?}"
    );
    assert!(kinds.iter().any(|k| matches!(k, LintKind::Overlap { first, second, .. } if first == "wide" && second == "partial")), "{lints:#?}");
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, LintKind::CatchAllAllow { rule, tag: "*" } if rule == "all")),
        "{lints:#?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, LintKind::Shadowed { rule, .. } if rule == "late")),
        "{lints:#?}"
    );
    let nobody = Policy::parse(br#"{"name":"n","network":{"rules":[{"name":"d","priority":100,"access":"deny","source":["Internet"]}]}}"#).unwrap();
    assert!(nobody
        .lints()
        .iter()
        .any(|l| l.kind == LintKind::AdmitsNobody));
    // The samples are clean.
    for s in ["layered-security.json", "functions-behind-apim.json"] {
        let text = std::fs::read(format!(
            "{}/../../policy-samples/{s}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let env = [("FUNCTION_KEY", "k")];
        let l = Policy::parse_with_env(&text, &env).unwrap().lints();
        assert!(l.is_empty(), "{s}: {l:#?}");
    }
}

#[test]
fn trace_lines_round_trip() {
    use portcullis_core::{Request, Trace, Transport};
    let p = Policy::parse(br#"{"name":"t","network":{"rules":[{"name":"let them in","priority":100,"access":"allow","source":["0.0.0.0/0"]}]}}"#).unwrap();
    let none: [(&str, &str); 0] = [];
    for peer in [
        "0.0.0.0:1",
        "255.255.255.255:65535",
        "10.20.30.4:80",
        "[2001:db8::1]:443",
        "[::ffff:1.2.3.4]:9",
    ] {
        let (ip, port) = portcullis_core::addr::parse_socket(peer).unwrap();
        let req = Request {
            peer: std::net::SocketAddr::new(ip, port),
            local: "127.0.0.1:443".parse().unwrap(),
            tls: true,
            transport: Transport::Tcp,
            method: b"GET",
            authority: b"a",
            path: b"/",
            headers: &none,
        };
        let d = p.decide(&req);
        let line = p.trace(&d);
        let shown = portcullis_core::addr::canonical(ip).to_string();
        let want_rule = if ip.is_ipv6() && ip.to_string().starts_with("2001") {
            "default"
        } else {
            "let them in"
        };
        assert_eq!(
            line,
            format!(
                "{} {} network peer {shown} - {want_rule}",
                d.verdict.as_str(),
                d.status
            )
            .replace("network", d.step.as_str())
        );
        let t = Trace::parse(&line).unwrap();
        assert_eq!(
            (
                t.client_ip.as_str(),
                t.scope.as_str(),
                t.rule.as_str(),
                t.status
            ),
            (shown.as_str(), "-", want_rule, d.status)
        );
    }
}

#[test]
fn a_rejected_document_still_has_its_name_when_well_formed() {
    assert_eq!(
        Policy::name_of(br#"{"name":"edge-1","network":7}"#).as_deref(),
        Some("edge-1")
    );
    assert_eq!(Policy::name_of(br#"{"name":"bad name"}"#), None);
    assert_eq!(Policy::name_of(b"{oops"), None);
}

/// Paths with the line and column each must be reported at.
type Positions = &'static [(&'static str, u32, u32)];

#[test]
fn client_ip_and_framing_mistakes_have_paths_and_positions() {
    let cases: [(&str, Positions, &str); 5] = [
        (
            "{\n  \"name\": \"p\",\n  \"client_ip\": { \"from\": \"header\", \"trusted_proxies\": [\"10.0.0.1\"] }\n}",
            &[("client_ip", 3, 16)],
            "missing required field \"header\"",
        ),
        (
            "{\n  \"name\": \"p\",\n  \"client_ip\": { \"from\": \"forwarded\",\n    \"header\": \"x-azure-clientip\", \"trusted_proxies\": [\"10.0.0.1\"] }\n}",
            &[("client_ip.header", 4, 15)],
            "only read with",
        ),
        (
            "{\n  \"name\": \"p\",\n  \"client_ip\": { \"from\": \"header\", \"header\": \"x client\", \"trusted_proxies\": [] }\n}",
            &[("client_ip.header", 3, 46)],
            "HTTP token",
        ),
        (
            "{ \"name\": \"p\", \"client_ip\": { \"from\": \"forwarded\" } }",
            &[("client_ip", 1, 29)],
            "trusted_proxies",
        ),
        (
            "{ \"name\": \"p\",\n  \"request_headers\": [ { \"set\": \"Content-Length\", \"value\": \"0\" } ],\n  \"response_headers\": [ { \"remove\": \"expect\" } ] }",
            &[("request_headers[0].set", 2, 33), ("response_headers[0].remove", 3, 37)],
            "framing headers",
        ),
    ];
    for (doc, want, message) in cases {
        let problems = Policy::parse(doc.as_bytes()).unwrap_err();
        let got: Vec<(String, u32, u32)> = problems
            .0
            .iter()
            .map(|p| (p.path.clone(), p.line, p.column))
            .collect();
        for &(path, line, col) in want {
            assert!(
                got.iter()
                    .any(|(p, l, c)| p == path && *l == line && *c == col),
                "{doc}: missing {path} at {line}:{col}; got {got:?}"
            );
        }
        assert!(problems.to_string().contains(message), "{problems}");
    }
}

#[test]
fn trace_switch_is_a_word_with_a_position() {
    use portcullis_core::policy::TraceWhen;
    let p = Policy::parse(br#"{"name":"p"}"#).unwrap();
    assert_eq!(p.trace, TraceWhen::All, "the default");
    for (word, want) in [
        ("deny", TraceWhen::Deny),
        ("none", TraceWhen::Off),
        ("ALL", TraceWhen::All),
    ] {
        let text = format!(r#"{{"name":"p","trace":"{word}"}}"#);
        assert_eq!(Policy::parse(text.as_bytes()).unwrap().trace, want);
    }
    let problems = Policy::parse(b"{\"name\": \"p\",\n  \"trace\": \"sometimes\"}")
        .unwrap_err()
        .0;
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!((p.path.as_str(), p.line, p.column), ("trace", 2, 12));
    let text = p.to_string();
    assert!(
        text.contains("sometimes") && text.contains("deny"),
        "{text}"
    );
    let p = Policy::parse(br#"{"name":"p","trace":true}"#)
        .unwrap_err()
        .0;
    assert_eq!(p[0].path, "trace");
}

#[test]
fn trace_when_selects_by_verdict() {
    use portcullis_core::policy::TraceWhen;
    use portcullis_core::{Request, Transport};
    let p = Policy::parse(
        br#"{"name":"p","network":{"rules":[
        {"name":"lan","priority":100,"access":"allow","source":["10.0.0.0/8"]}]}}"#,
    )
    .unwrap();
    let req = |peer: &str| {
        p.decide(&Request {
            peer: peer.parse().unwrap(),
            local: "10.0.0.1:80".parse().unwrap(),
            tls: false,
            transport: Transport::Tcp,
            method: b"GET",
            authority: b"a",
            path: b"/",
            headers: &Vec::<(Vec<u8>, Vec<u8>)>::new(),
        })
    };
    let (fwd, deny) = (req("10.0.0.9:1"), req("8.8.8.8:1"));
    assert!(TraceWhen::All.selects(&fwd) && TraceWhen::All.selects(&deny));
    assert!(!TraceWhen::Deny.selects(&fwd) && TraceWhen::Deny.selects(&deny));
    assert!(!TraceWhen::Off.selects(&fwd) && !TraceWhen::Off.selects(&deny));
}

#[test]
fn parse_for_decisions_keeps_no_source_texts_and_decides_alike() {
    let text = br#"{"name":"p","address_groups":{"g":["65.52.0.0/16"]},"network":{"rules":[
        {"name":"a","priority":100,"access":"allow","source":["g","10.0.0.0/8","Loopback"]},
        {"name":"b","priority":200,"access":"deny","source":["*"]}]}}"#;
    let full = Policy::parse(text).unwrap();
    let lean = Policy::parse_for_decisions(text, &portcullis_core::NoEnv).unwrap();
    let owned = Policy::parse_owned_for_decisions(text.to_vec(), &portcullis_core::NoEnv).unwrap();
    let rules = |p: &Policy| p.network.as_ref().unwrap().rules.clone();
    assert_eq!(rules(&full)[0].source_text, ["g", "10.0.0.0/8", "Loopback"]);
    assert!(!rules(&full)[0].source.is_empty() && !full.address_groups.is_empty());
    for p in [&lean, &owned] {
        assert!(rules(p).iter().all(|r| r.source_text.is_empty()));
        // Only the table holds the sources (and the groups) then.
        assert!(rules(p).iter().all(|r| r.source.is_empty()));
        assert!(p.address_groups.is_empty());
    }
    for peer in ["65.52.1.1:1", "10.9.9.9:1", "127.0.0.1:1", "8.8.8.8:1"] {
        let req = portcullis_core::Request {
            peer: peer.parse().unwrap(),
            local: "10.0.0.1:80".parse().unwrap(),
            tls: false,
            transport: portcullis_core::Transport::Tcp,
            method: b"GET",
            authority: b"a",
            path: b"/",
            headers: &Vec::<(Vec<u8>, Vec<u8>)>::new(),
        };
        assert_eq!(
            full.trace(&full.decide(&req)),
            lean.trace(&lean.decide(&req))
        );
        assert_eq!(
            full.trace(&full.decide(&req)),
            owned.trace(&owned.decide(&req))
        );
    }
    // The same problems either way.
    let bad = br#"{"name":"p","network":{"rules":[{"name":"a","priority":100,"access":"allow","source":["10.1.2.3/8"]}]}}"#;
    assert_eq!(
        Policy::parse(bad).unwrap_err().to_string(),
        Policy::parse_for_decisions(bad, &portcullis_core::NoEnv)
            .unwrap_err()
            .to_string()
    );
    assert_eq!(
        Policy::parse(bad).unwrap_err().to_string(),
        Policy::parse_owned_for_decisions(bad.to_vec(), &portcullis_core::NoEnv)
            .unwrap_err()
            .to_string()
    );
}
