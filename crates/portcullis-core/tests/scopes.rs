//! Scopes through the public API: errors with line and column, lints,
//! explanations, the compiled effective policies, and the request hosts
//! that the corpus cannot carry through every engine (malformed ports).

use std::net::SocketAddr;

use portcullis_core::decide::{scope_host, scope_path};
use portcullis_core::lint::LintKind;
use portcullis_core::{Policy, Reason, Request, Step, Transport, Verdict};

fn req<'a>(authority: &'a str, path: &'a str, method: &'a str) -> Request<'a> {
    static NONE: [(&str, &str); 0] = [];
    Request {
        peer: SocketAddr::from(([10, 1, 2, 3], 5000)),
        local: SocketAddr::from(([10, 0, 0, 4], 443)),
        tls: true,
        transport: Transport::Tcp,
        method: method.as_bytes(),
        authority: authority.as_bytes(),
        path: path.as_bytes(),
        headers: &NONE,
    }
}

#[test]
fn errors_have_paths_lines_and_columns() {
    let text = r#"{
  "name": "p",
  "scopes": [
    {"name": "a", "match": {"hosts": ["api.example:443"]}},
    {"name": "a", "match": {"paths": ["orders"]}, "inherit": false}
  ]
}"#;
    let e = Policy::parse(text.as_bytes()).unwrap_err();
    let shown: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "4:39: scopes[0].match.hosts[0]: invalid host pattern \"api.example:443\": ports are not part of a host pattern (requests are compared without it)",
            "5:14: scopes[1].name: scopes[0] and scopes[1] are both named \"a\"",
            "5:39: scopes[1].match.paths[0]: invalid path pattern \"orders\": a path pattern starts with `/`",
        ]
    );
}

#[test]
fn lints_name_shadowed_and_impossible_scopes() {
    let p = Policy::parse(
        br#"{"name": "p", "scopes": [
          {"name": "api", "match": {"hosts": ["*.example.com"]}},
          {"name": "v1", "match": {"hosts": ["v1.api.example.com"], "paths": ["/x"]}},
          {"name": "orders", "match": {"paths": ["/orders/*"], "methods": ["GET"]}},
          {"name": "order-1", "match": {"paths": ["/orders/1", "/orders/2/*"], "methods": ["GET"]}},
          {"name": "order-post", "match": {"paths": ["/orders/1"], "methods": ["GET", "POST"]}},
          {"name": "dots", "match": {"paths": ["/a/../b", "/c//d/*"]}},
          {"name": "slash", "match": {"paths": ["/a%2Fb"]}},
          {"name": "fine", "match": {"paths": ["/a/../b", "/e"]}}
        ]}"#,
    )
    .unwrap();
    let lints = p.lints();
    let kinds: Vec<(&str, &LintKind)> = lints.iter().map(|l| (l.path.as_str(), &l.kind)).collect();
    assert_eq!(kinds.len(), 4, "{lints:#?}");
    assert!(
        matches!(kinds[0], ("scopes[1]", LintKind::ScopeShadowed { scope, by }) if scope == "v1" && by == "api")
    );
    assert!(
        matches!(kinds[1], ("scopes[3]", LintKind::ScopeShadowed { scope, by }) if scope == "order-1" && by == "orders")
    );
    assert!(
        matches!(kinds[2], ("scopes[5].match.paths", LintKind::ScopeNeverMatches { scope, normalized: Some(n), .. }) if scope == "dots" && n == "/b")
    );
    assert!(
        matches!(kinds[3], ("scopes[6].match.paths", LintKind::ScopeNeverMatches { scope, normalized: None, .. }) if scope == "slash")
    );
    assert_eq!(
        lints[0].to_string(),
        "scope \"v1\" can never apply: every request it matches, the earlier scope \"api\" matches first"
    );
    assert!(lints[2].to_string().contains("would be compared as \"/b\""));
}

#[test]
fn a_scope_with_its_own_network_is_linted_under_its_path() {
    let p = Policy::parse(
        br#"{"name": "p", "scopes": [{"name": "s", "match": {"methods": ["GET"]},
          "network": {"rules": [
            {"name": "all", "priority": 100, "access": "allow", "source": ["*"]},
            {"name": "later", "priority": 200, "access": "allow", "source": ["10.0.0.0/8"]}]}}]}"#,
    )
    .unwrap();
    let lints = p.lints();
    let paths: Vec<&str> = lints.iter().map(|l| l.path.as_str()).collect();
    assert!(paths.contains(&"scopes[0].network.rules[1]"), "{paths:?}");
}

#[test]
fn effective_policies_are_compiled_once_at_load() {
    let p = Policy::parse(
        br#"{"name": "p",
          "request_headers": [{"set": "x-a", "value": "1"}],
          "hsts": {"max_age": 10},
          "scopes": [
            {"name": "s", "match": {"methods": ["GET"]}, "request_headers": [{"set": "x-b", "value": "2"}]},
            {"name": "t", "match": {"methods": ["PUT"]}, "inherit": false, "request_headers": [{"set": "x-c", "value": "3"}]}
          ]}"#,
    )
    .unwrap();
    let s = p.scoped(Some(0));
    assert_eq!(s.name, "p");
    assert_eq!(s.request_headers.len(), 2);
    assert_eq!(s.hsts.as_ref().map(|h| h.max_age), Some(10));
    assert!(s.scopes.is_empty());
    let t = p.scoped(Some(1));
    assert_eq!(t.request_headers.len(), 1);
    assert!(t.hsts.is_none());
    assert_eq!(p.scope_name(Some(1)), Some("t"));
    assert!(std::ptr::eq(p.scoped(None), &p));
    assert!(std::ptr::eq(p.scoped(Some(9)), &p));
}

#[test]
fn authorities_as_scopes_read_them() {
    // An empty port is no port (RFC 3986 3.2.3).
    assert_eq!(scope_host(b"api.example:"), Some(&b"api.example"[..]));
    assert_eq!(scope_host(b"api.example.:"), Some(&b"api.example"[..]));
    assert_eq!(scope_host(b"[::1]:"), Some(&b"[::1]"[..]));
    assert_eq!(scope_host(b"api.example:0"), Some(&b"api.example"[..]));
    assert_eq!(scope_host(b"api.example:65535"), Some(&b"api.example"[..]));
    assert_eq!(scope_host(b"10.0.0.1:443"), Some(&b"10.0.0.1"[..]));
    // Unreadable: a bad port, a bracket without its end or around a
    // non-address, userinfo, an empty host, a byte no host holds.
    for bad in [
        &b"api.example:44x"[..],
        b"api.example:65536",
        b"api.example:000443",
        b"api.example:443:443",
        b"[::1",
        b"[::1]x",
        b"[::1]:x",
        b"[not-v6]",
        b"[]",
        b"user@api.example",
        b"user:pw@api.example:443",
        b"",
        b":443",
        b".",
        b"api example",
        b"api.example/x",
        b"::1",
    ] {
        assert_eq!(scope_host(bad), None, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn unreadable_authorities_are_refused_when_a_scope_names_hosts() {
    let p = Policy::parse(
        br#"{"name": "p", "scopes": [{"name": "s", "match": {"hosts": ["api.example"]}},
          {"name": "any", "match": {"methods": ["GET"]}}]}"#,
    )
    .unwrap();
    // An empty port is no port: the host scope applies, not a fall-through.
    assert_eq!(p.decide(&req("api.example:", "/", "GET")).scope, Some(0));
    assert_eq!(p.decide(&req("API.example.:", "/", "GET")).scope, Some(0));
    for a in [
        "api.example:x",
        "api.example:443:443",
        "api.example:65536",
        "user@api.example",
        "[::1",
        "",
    ] {
        let d = p.decide(&req(a, "/", "GET"));
        assert_eq!(
            (d.verdict, d.status, d.reason, d.step, d.scope),
            (
                Verdict::Deny,
                400,
                Reason::UnreadableAuthority,
                Step::Scope,
                None
            ),
            "{a}"
        );
        let reply = p.local_reply(&d).unwrap();
        assert_eq!(reply.body, b"Bad Request: unreadable authority\n");
    }
    // Without a scope that names hosts, the authority is never read.
    let q = Policy::parse(
        br#"{"name": "p", "scopes": [{"name": "any", "match": {"methods": ["GET"]}}]}"#,
    )
    .unwrap();
    assert_eq!(q.decide(&req("user@x:y", "/", "GET")).scope, Some(0));
}

#[test]
fn segment_parameters_are_removed_before_dot_segments() {
    let n = |s: &str| scope_path(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
    assert_eq!(n("/admin;x=1/users").unwrap(), "/admin/users");
    assert_eq!(n("/admin;/users").unwrap(), "/admin/users");
    assert_eq!(n("/public/..;/admin").unwrap(), "/admin");
    assert_eq!(n("/public/..;x=y/admin/").unwrap(), "/admin/");
    assert_eq!(n("/public/.%2e;/admin").unwrap(), "/admin");
    assert_eq!(n("/a;b;c/d").unwrap(), "/a/d");
    assert_eq!(n("/;x/a").unwrap(), "/a");
    assert_eq!(n("/a;x//b").unwrap(), "/a/b");
    assert_eq!(n("/a/b;x").unwrap(), "/a/b");
    assert_eq!(n("/a;x=1?y=2;z").unwrap(), "/a");
    // `%3B` is not a parameter delimiter: it stays encoded.
    assert_eq!(n("/a%3Bx/b").unwrap(), "/a%3Bx/b");
    // Escapes inside parameters are still checked.
    assert!(n("/a;x=%2F/b").is_err());
    assert!(n("/a;x=%zz/b").is_err());
    assert!(n("/a;x=\\/b").is_err());
}

#[test]
fn normalization_examples() {
    let n = |s: &str| scope_path(s.as_bytes()).map(|v| String::from_utf8(v).unwrap());
    assert_eq!(n("/a/b/../c").unwrap(), "/a/c");
    assert_eq!(n("/a/b/..").unwrap(), "/a/");
    assert_eq!(n("/a/./").unwrap(), "/a/");
    assert_eq!(n("/..").unwrap(), "/");
    assert_eq!(n("").unwrap(), "/");
    assert_eq!(n("*").unwrap(), "/*");
    assert_eq!(n("a/../b").unwrap(), "/b");
    assert_eq!(n("/%c3%a9").unwrap(), "/%C3%A9");
    assert_eq!(n("/%7E%2D%5F%2E").unwrap(), "/~-_.");
    assert_eq!(n("/a?%zz").unwrap(), "/a");
    assert!(n("/a%2").is_err());
    assert!(n("/%00").is_err());
}

#[test]
fn explain_says_why_earlier_scopes_did_not_apply() {
    let p = Policy::parse(
        br#"{"name": "p", "scopes": [
          {"name": "h", "match": {"hosts": ["*.example.com"]}},
          {"name": "m", "match": {"methods": ["POST"]}},
          {"name": "o", "match": {"paths": ["/orders/*"]}},
          {"name": "later", "match": {"paths": ["/*"]}}
        ]}"#,
    )
    .unwrap();
    let r = req("Example.COM:443", "/x/%2e%2e/orders?x", "GET");
    let checks = p.explain_scopes(&r).unwrap();
    let why: Vec<String> = checks.iter().map(|c| c.reason(&p, &r)).collect();
    assert_eq!(
        why,
        [
            "host example.com is not in hosts [*.example.com]",
            "method GET is not in methods [POST]",
            "every match field holds: this scope applies",
            "every match field holds, but an earlier scope applies",
        ]
    );
    assert_eq!(p.decide(&r).scope, Some(2));
    assert!(p.explain_scopes(&req("a", "/a%5cb", "GET")).is_err());
}

#[test]
fn inherit_false_stands_alone_but_keeps_the_mode() {
    let p = Policy::parse(
        br#"{"name": "p", "mode": "report",
          "require_headers": [{"name": "x-key", "values": ["K"]}],
          "hsts": {"max_age": 10},
          "scopes": [
            {"name": "alone", "match": {"paths": ["/a"]}, "inherit": false,
             "require_headers": [{"name": "x-own", "values": ["O"]}]},
            {"name": "enforcing", "match": {"paths": ["/e"]}, "inherit": false, "mode": "enforce"}
          ]}"#,
    )
    .unwrap();
    let alone = p.scoped(Some(0));
    assert_eq!(alone.mode, portcullis_core::policy::Mode::Report);
    assert_eq!(alone.require_headers.len(), 1);
    assert_eq!(alone.require_headers[0].name, "x-own");
    assert!(alone.hsts.is_none());
    assert_eq!(
        p.scoped(Some(1)).mode,
        portcullis_core::policy::Mode::Enforce
    );
    // Restating a list still drops the top level's: no warning.
    assert!(!p
        .lints()
        .iter()
        .any(|l| matches!(l.kind, LintKind::InheritDropsNothing { .. })));
}

#[test]
fn inherit_false_with_nothing_to_drop_is_a_warning_not_an_error() {
    let p = Policy::parse(
        br#"{"name": "p", "mode": "report", "request_headers": [],
          "network": {"rules": []},
          "scopes": [
            {"name": "same", "match": {"methods": ["GET"]}, "inherit": false,
             "network": {"rules": []}},
            {"name": "drops", "match": {"methods": ["PUT"]}, "inherit": false}
          ]}"#,
    )
    .unwrap();
    let lints = p.lints();
    let nothing: Vec<&str> = lints
        .iter()
        .filter_map(|l| match &l.kind {
            LintKind::InheritDropsNothing { scope } => Some(scope.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(nothing, ["same"]);
    let l = lints
        .iter()
        .find(|l| matches!(l.kind, LintKind::InheritDropsNothing { .. }))
        .unwrap();
    assert_eq!(l.path, "scopes[0].inherit");
    assert!(l.to_string().contains("drops nothing"), "{l}");
}
