//! Real front doors in real Envoy: client addresses as Azure Application
//! Gateway (X-Forwarded-For with ports), Azure Front Door (X-Azure-ClientIP)
//! and RFC 7239 proxies (`Forwarded`) send them, from a trusted proxy on a
//! 127.x address (`curl --interface`); the smuggling case (a policy setting
//! `content-length` is refused); Envoy's own replies on a TLS connection;
//! and the two shipped positions, at the edge and behind a trusted proxy.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use portcullis_e2e::backend::{Answer, Backend};
use portcullis_e2e::client::{send, ClientRequest};
use portcullis_e2e::config::{
    deploy_behind_proxy, AccessLog, EnvoyConfig, Filter, HttpOptions, Listener, Position,
    Underscores, Upstream, CASE_HEADER, DEPLOY_BEHIND_PROXY_POLICY, TRUST_NO_PEER,
};
use portcullis_e2e::envoy::{expect_refused, Envoy};
use portcullis_e2e::http1::{Conn, Response, TlsClient};
use portcullis_e2e::module::Module;
use portcullis_e2e::net::free_port;
use portcullis_e2e::paths;
use portcullis_e2e::runner::{prepare, require_tools, run_passing, Engine, Harness};
use portcullis_e2e::tls;

fn config(wasm: &Path, backend: SocketAddr, listeners: Vec<Listener>) -> EnvoyConfig {
    EnvoyConfig {
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        listeners,
        upstream: Upstream::Static(backend),
        module: Module::local(wasm),
        access_log: AccessLog::Stdout,
    }
}

fn listener(name: &str, addr: SocketAddr, tls: bool, policy: &str) -> Listener {
    Listener {
        name: name.into(),
        address: addr,
        tls: tls.then(|| tls::test_cert().unwrap()),
        filter: Filter::Inline {
            policy: policy.to_owned(),
        },
    }
}

fn port() -> u16 {
    free_port(&[Ipv4Addr::LOCALHOST]).unwrap()
}

#[test]
fn front_door_samples_and_forwarded_run_in_envoy() {
    let (_, _) = require_tools();
    let root = paths::workspace();
    let files: Vec<_> = [
        "policy-samples/behind-front-door.tests.json",
        "policy-samples/behind-app-gateway.tests.json",
        "tests/corpus/client-ip-forwarded.json",
        "tests/corpus/client-ip-xff-entries.json",
        "tests/corpus/client-ip-header.json",
    ]
    .iter()
    .map(|f| prepare(&root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
    .collect();
    let refs: Vec<_> = files.iter().collect();
    let h = Harness::start("front-doors", &refs, None).unwrap_or_else(|e| panic!("{e}"));
    let counts = run_passing(&h, &refs);
    let total: usize = files.iter().map(|p| p.file.cases.len()).sum();
    println!(
        "front doors in Envoy: {} run, {} skipped of {total}",
        counts.run, counts.skipped
    );
    // Only the X-Forwarded-Proto cases of the Application Gateway sample
    // cannot run at the edge (Envoy owns that header there).
    assert_eq!(
        counts.skipped, 2,
        "only the two X-Forwarded-Proto cases skip"
    );
    assert_eq!(counts.run + counts.skipped, total);
}

#[test]
fn a_policy_that_sets_content_length_is_refused() {
    let (_, wasm) = require_tools();
    let dir = paths::scratch("smuggle");
    let policy =
        r#"{"name": "smuggle", "request_headers": [{"set": "content-length", "value": "0"}]}"#;
    let listen = SocketAddr::from(([127, 0, 0, 1], port()));
    let c = config(
        &wasm,
        SocketAddr::from(([127, 0, 0, 1], 9)),
        vec![listener("plain", listen, false, policy)],
    );
    let err = expect_refused(&dir, &c.render()).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(err.exit_code, Some(0));
    assert!(
        err.log.contains("request_headers[0].set") && err.log.contains("framing headers"),
        "the refusal names the op:\n{}",
        err.log
    );
}

/// Sends raw bytes on a fresh connection from 127.0.0.1 (TLS when
/// `tls` is given) and reads the one response.
fn raw(to: SocketAddr, tls: Option<&TlsClient>, request: &[u8]) -> Response {
    let mut c = Conn::connect(SocketAddr::from(([127, 0, 0, 1], 0)), to, tls)
        .unwrap_or_else(|e| panic!("connect {to}: {e}"));
    c.exchange(request, false)
        .unwrap_or_else(|e| panic!("{to}: {e}"))
}

/// A policy with HSTS at the top level and scopes that change it: `short`
/// (its own `max_age: 600`) and `bare` (`inherit: false`, no HSTS), each
/// with a denying `/deny/*` part so the filter's own replies show too.
const HARDENED: &str = r#"{"name": "hardened",
  "response_headers": [{"set": "x-content-type-options", "value": "nosniff"}],
  "hsts": {"max_age": 31536000, "include_subdomains": true},
  "scopes": [
    {"name": "short-deny", "match": {"hosts": ["short.example"], "paths": ["/deny/*"]},
     "hsts": {"max_age": 600}, "network": {"rules": [], "default_access": "deny"}},
    {"name": "short", "match": {"hosts": ["short.example"]}, "hsts": {"max_age": 600}},
    {"name": "bare-deny", "match": {"hosts": ["bare.example"], "paths": ["/deny/*"]},
     "inherit": false, "network": {"rules": [], "default_access": "deny"}},
    {"name": "bare", "match": {"hosts": ["bare.example"]}, "inherit": false}
  ]}"#;

const TOP_HSTS: &str = "max-age=31536000; includeSubDomains";

fn hsts(r: &Response) -> Vec<String> {
    r.values("strict-transport-security")
        .iter()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Envoy's own replies, on a TLS and a plain listener of the shipped
/// template. Those Envoy writes while parsing the request head (a
/// malformed header line, an `_` name under `REJECT_REQUEST`, a path that
/// is not origin-form, HTTP/1.1 without Host, HTTP/1.0, an upgrade no
/// route allows) are sent before any HTTP filter exists: no filter can
/// touch them, and they carry the response ops of none; on TLS the
/// listener's `local_reply_config` gives them the top level's HSTS, exactly
/// once (docs/filter.md). Those sent after the filter chain exists (a 404
/// of the router, a 400 for a broken body) pass the filter's response hook
/// and get the HSTS of the request's scope, and the filter's own replies
/// keep theirs: exactly once, never the listener's where the scope says
/// otherwise. On the plain listener, none ever.
#[test]
fn envoy_own_replies_on_tls() {
    own_replies_on(Engine::Wasm);
}

#[test]
fn envoy_own_replies_on_tls_native_module() {
    own_replies_on(Engine::Native);
}

fn own_replies_on(engine: Engine) {
    require_tools();
    let dir = paths::scratch("own-replies");
    let backend = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
    let secure = SocketAddr::from(([127, 0, 0, 1], port()));
    let plain = SocketAddr::from(([127, 0, 0, 1], port()));
    let mut c = config(
        Path::new("-"),
        backend.addr(),
        vec![
            listener("tls", secure, true, HARDENED),
            listener("plain", plain, false, HARDENED),
        ],
    );
    c.module = engine.module();
    let yaml = c.render();
    assert_eq!(
        yaml.matches("local_reply_config:").count(),
        1,
        "the TLS listener only"
    );
    let envoy = Envoy::start(&dir, &yaml).unwrap_or_else(|e| panic!("{e}"));
    let client = tls::pinned_client(&tls::test_cert().unwrap().cert).unwrap();
    let before_filters: [(&str, &[u8], u16); 6] = [
        (
            "a malformed header line",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Line\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "a header name with _ (REJECT_REQUEST)",
            b"GET / HTTP/1.1\r\nHost: a\r\nx_functions_key: k\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "a path that is not origin-form",
            b"GET nopath HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "HTTP/1.1 without Host",
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            400,
        ),
        ("HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", 426),
        (
            "an upgrade no route allows",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            403,
        ),
    ];
    for (what, bytes, status) in before_filters {
        let r = raw(secure, Some(&client), bytes);
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_eq!(hsts(&r), [TOP_HSTS], "{what} on TLS: exactly one HSTS");
        match engine {
            // Envoy creates a dynamic module's filter for its 400s while
            // parsing a request head too (measured with Envoy 1.40): the
            // module hardens them.
            Engine::Native if status == 400 => assert_eq!(
                r.values("x-content-type-options"),
                [b"nosniff".to_vec()],
                "{what}: not hardened by the native module:\n{r:?}"
            ),
            Engine::Native => {}
            Engine::Wasm => assert!(
                r.values("x-content-type-options").is_empty(),
                "{what}: Envoy now runs filters on this reply; the response ops can be expected here:\n{r:?}"
            ),
        }
        let r = raw(plain, None, bytes);
        assert_eq!(r.status, status, "{what} (plain): {r:?}");
        assert!(hsts(&r).is_empty(), "{what} on plain: no HSTS: {r:?}");
    }
    // (what, request, status, the HSTS values on TLS)
    let connect = |host: &str| {
        format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\nConnection: close\r\n\r\n")
    };
    let deny =
        |host: &str| format!("GET /deny/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let through_filters: Vec<(&str, String, u16, Vec<&str>)> = vec![
        ("a router 404 (CONNECT, no route)", connect("a"), 404, vec![TOP_HSTS]),
        (
            "a broken chunk after the head",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n".into(),
            400,
            vec![TOP_HSTS],
        ),
        ("a router 404 in a scope with its own HSTS", connect("short.example"), 404, vec!["max-age=600"]),
        ("the filter's deny in a scope with its own HSTS", deny("short.example"), 403, vec!["max-age=600"]),
        ("a router 404 in a scope without HSTS", connect("bare.example"), 404, vec![]),
        ("the filter's deny in a scope without HSTS", deny("bare.example"), 403, vec![]),
        ("a forwarded request in a scope without HSTS", "GET / HTTP/1.1\r\nHost: bare.example\r\nConnection: close\r\n\r\n".into(), 200, vec![]),
    ];
    for (what, bytes, status, want) in &through_filters {
        let r = raw(secure, Some(&client), bytes.as_bytes());
        assert_eq!(r.status, *status, "{what}: {r:?}");
        assert_eq!(hsts(&r), *want, "{what} on TLS");
        let r = raw(plain, None, bytes.as_bytes());
        assert_eq!(r.status, *status, "{what} (plain): {r:?}");
        assert!(hsts(&r).is_empty(), "{what} on plain: no HSTS: {r:?}");
    }
    // An upstream's own HSTS in a scope without `hsts` is not the policy's:
    // it passes untouched, on both listeners (only Envoy's own replies lose
    // the listener's value).
    for (to, tls) in [(secure, Some(&client)), (plain, None)] {
        let id = format!("upstream-hsts-{}", tls.is_some());
        backend.answer(
            &id,
            Answer {
                status: 200,
                headers: vec![("strict-transport-security".into(), b"max-age=5".to_vec())],
            },
        );
        let bytes = format!(
            "GET / HTTP/1.1\r\nHost: bare.example\r\n{CASE_HEADER}: {id}\r\nConnection: close\r\n\r\n"
        );
        let r = raw(to, tls, bytes.as_bytes());
        assert_eq!(r.status, 200, "{id}: {r:?}");
        assert_eq!(hsts(&r), ["max-age=5"], "{id}: the upstream's HSTS");
    }
    let forwarded = backend.requests();
    assert_eq!(
        forwarded.len(),
        4,
        "only the forwarded requests reached the backend: {forwarded:?}"
    );
    drop(envoy);
}

const BEHIND: &str = r#"{"name": "behind-proxy",
  "client_ip": {"from": "x-forwarded-for", "trusted_proxies": ["127.0.0.9"]},
  "network": {"rules": [{"name": "allow-office", "priority": 100, "access": "allow", "source": ["65.52.10.0/24"]}]},
  "https_only": {"action": "reject", "trust_forwarded_proto": true},
  "hsts": {"max_age": 600}}"#;

/// A TLS-terminating proxy on 127.0.0.9 sends a plain hop with
/// `X-Forwarded-Proto: https` and the client in X-Forwarded-For (with a
/// port, as Application Gateway writes it). At the edge Envoy overwrites
/// the header, so the request counts as plain and is rejected; behind a
/// trusted proxy (XFF original-IP detection trusting the proxy's CIDR)
/// Envoy keeps it and the policy forwards the request, secure, with HSTS.
fn through_proxy(position: Position) -> Vec<(u16, Option<String>, Option<String>)> {
    let (_, wasm) = require_tools();
    let dir = paths::scratch("positions");
    let backend = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], port()));
    let c = config(
        &wasm,
        backend.addr(),
        vec![listener("plain", listen, false, BEHIND)],
    );
    let opts = HttpOptions {
        position,
        underscores: Underscores::RejectRequest,
    };
    let envoy = Envoy::start(&dir, &c.render_with(&opts)).unwrap_or_else(|e| panic!("{e}"));
    let proxy = Ipv4Addr::new(127, 0, 0, 9);
    let mut out = Vec::new();
    for (from, xff) in [
        (proxy, "65.52.10.20:5100"),
        (proxy, "65.52.10.20"),
        (proxy, "203.0.113.50, 65.52.10.20"),
        (Ipv4Addr::new(127, 0, 0, 10), "65.52.10.20"),
    ] {
        let r = send(
            &dir,
            &ClientRequest::get(from, listen, false, "api.example")
                .header("x-forwarded-for", xff.as_bytes())
                .header("x-forwarded-proto", b"https"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        out.push((r.status, r.one("strict-transport-security"), None));
    }
    println!(
        "{}",
        envoy
            .log()
            .lines()
            .filter(|l| l.contains("portcullis="))
            .collect::<Vec<_>>()
            .join("\n")
    );
    out
}

#[test]
fn edge_and_behind_a_proxy() {
    // At the edge Envoy overwrites X-Forwarded-Proto: every plain hop is
    // plain, whoever claims otherwise.
    let edge = through_proxy(Position::Edge);
    assert!(
        edge.iter().all(|(s, h, _)| *s == 403 && h.is_none()),
        "edge: {edge:?}"
    );
    // Behind a proxy, as shipped: Envoy keeps the header, the policy
    // believes it from the trusted proxy only (the fourth request comes
    // from 127.0.0.10, outside trusted_proxies).
    let shipped = through_proxy(Position::BehindProxy {
        detection_cidrs: vec![TRUST_NO_PEER.into()],
    });
    let hsts = Some("max-age=600".to_string());
    assert_eq!(
        shipped,
        vec![
            (200, hsts.clone(), None),
            (200, hsts.clone(), None),
            (200, hsts.clone(), None),
            (403, None, None)
        ],
        "behind a proxy"
    );
    // Why Envoy's detection must not trust the proxy itself: for a bare
    // X-Forwarded-For entry it replaces source.address with the client, the
    // policy no longer sees the proxy, and X-Forwarded-Proto is not
    // believed; only an ip:port entry, which Envoy cannot parse, leaves the
    // peer alone. The policy's walk is the one that holds.
    let detecting = through_proxy(Position::BehindProxy {
        detection_cidrs: vec!["127.0.0.9/32".into()],
    });
    assert_eq!(
        detecting,
        vec![
            (200, hsts, None),
            (403, None, None),
            (403, None, None),
            (403, None, None)
        ],
        "Envoy detection trusting the proxy"
    );
}

#[test]
fn the_behind_a_proxy_configuration_is_rendered_from_the_template() {
    let root = paths::workspace();
    let policy = std::fs::read_to_string(root.join(DEPLOY_BEHIND_PROXY_POLICY)).unwrap();
    let want = deploy_behind_proxy(&policy);
    let have = std::fs::read_to_string(root.join("deploy/envoy/envoy-behind-proxy.yaml")).unwrap();
    assert!(
        have == want,
        "deploy/envoy/envoy-behind-proxy.yaml is stale: regenerate it (see its header)"
    );
    assert!(have.contains("use_remote_address: false") && have.contains("255.255.255.255"));
    assert!(have.contains("headers_with_underscores_action: REJECT_REQUEST"));
}
