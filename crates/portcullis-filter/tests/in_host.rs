//! The filter .wasm on the wasmtime proxy-wasm host (`portcullis-host`):
//! decisions, local replies, edits and traces equal the core's own answers,
//! the per-request host calls stay at the documented minimum, a bad policy is
//! rejected with every problem logged, and hostile header bytes are harmless.
//!
//! The module is built here with cargo (profile `wasm`, no wasm-opt) into
//! `target/portcullis-filter-test`, so it always matches the source; the
//! wasm-opt'd `dist/` artefact is covered in real Envoy by crates/portcullis-e2e.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use portcullis_core::{apply_edits, Policy, Request, Transport};
use portcullis_host::{
    ConfigureError, Engine, Exchange, HttpRequest, HttpResponse, LogLevel, Options, Plugin,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let target = root().join("target/portcullis-filter-test");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let status = Command::new(cargo)
            .current_dir(root())
            .args([
                "build",
                "-q",
                "--profile",
                "wasm",
                "--target",
                "wasm32-unknown-unknown",
                "-p",
                "portcullis-filter",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("run cargo to build the filter");
        assert!(status.success(), "building the filter failed");
        let path = target.join("wasm32-unknown-unknown/wasm/portcullis_filter.wasm");
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    })
}

/// One engine per log level, compiled once per test process.
fn engine(level: LogLevel) -> &'static Engine {
    static INFO: OnceLock<Engine> = OnceLock::new();
    static DEBUG: OnceLock<Engine> = OnceLock::new();
    let cell = if level <= LogLevel::Debug {
        &DEBUG
    } else {
        &INFO
    };
    cell.get_or_init(|| {
        let options = Options {
            log_level: level,
            ..Options::default()
        };
        Engine::with_options(wasm(), options).expect("the filter compiles")
    })
}

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(root().join("policy-samples").join(name)).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn request(peer: &str, local: &str, tls: bool, extra: &[(&[u8], &[u8])]) -> HttpRequest {
    let mut headers: Pairs = vec![
        (b":method".to_vec(), b"GET".to_vec()),
        (
            b":authority".to_vec(),
            b"func-orders.azurewebsites.net".to_vec(),
        ),
        (b":path".to_vec(), b"/api/orders?id=7".to_vec()),
        (
            b":scheme".to_vec(),
            if tls {
                b"https".to_vec()
            } else {
                b"http".to_vec()
            },
        ),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_vec(), v.to_vec())));
    HttpRequest {
        peer: addr(peer),
        local: addr(local),
        tls,
        protocol: "HTTP/1.1".to_string(),
        headers,
        body: None,
    }
}

fn upstream() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![
            (b"content-type".to_vec(), b"application/json".to_vec()),
            (b"x-powered-by".to_vec(), b"ASP.NET".to_vec()),
            (b"server".to_vec(), b"Kestrel".to_vec()),
            (b"strict-transport-security".to_vec(), b"max-age=5".to_vec()),
        ],
    }
}

fn configure(policy: &[u8], level: LogLevel) -> Plugin {
    engine(level)
        .configure(policy)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Plays `req` and checks everything against the core: the trace property,
/// the local reply (status, headers, body) or the forwarded request headers
/// and the response headers after the edits.
fn play_and_compare(plugin: &mut Plugin, policy: &Policy, req: &HttpRequest) -> Exchange {
    let ex = plugin
        .play(req, &upstream())
        .unwrap_or_else(|e| panic!("{e}"));
    let pseudo = |n: &[u8]| {
        req.headers
            .iter()
            .find(|(k, _)| k == n)
            .map_or(&[][..], |(_, v)| v.as_slice())
    };
    let core_req = Request {
        peer: req.peer,
        local: req.local,
        tls: req.tls,
        transport: if req.protocol == "HTTP/3" {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        method: pseudo(b":method"),
        authority: pseudo(b":authority"),
        path: pseudo(b":path"),
        headers: &req.headers,
    };
    let d = policy.decide(&core_req);
    let trace = policy.trace(&d);
    let set: Vec<_> = ex
        .properties_set
        .iter()
        .filter(|(k, _)| *k == policy.trace_property())
        .collect();
    assert_eq!(
        set.len(),
        1,
        "one trace per request: {:?}",
        ex.properties_set
    );
    assert_eq!(String::from_utf8_lossy(&set[0].1), trace);
    match (policy.local_reply(&d), &ex.local_reply) {
        (Some(want), Some(got)) => {
            assert_eq!(got.status, want.status, "{trace}");
            let want_headers: Pairs = want
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect();
            assert_eq!(got.headers, want_headers, "{trace}");
            assert_eq!(got.body, want.body, "{trace}");
            assert!(ex.upstream_request_headers.is_none(), "{trace}: forwarded");
        }
        (None, None) => {
            let mut edits = Vec::new();
            let policy = policy.scoped(d.scope);
            policy.request_edits(&req.headers, &mut edits);
            let mut want = req.headers.clone();
            apply_edits(&mut want, &edits);
            assert_eq!(ex.upstream_request_headers.as_ref(), Some(&want), "{trace}");
            let up = upstream();
            let mut edits = Vec::new();
            policy.response_edits(d.secure, &up.headers, &mut edits);
            let mut want = up.headers.clone();
            apply_edits(&mut want, &edits);
            assert_eq!(ex.response_headers, want, "{trace}");
        }
        (want, got) => panic!("{trace}: core says {want:?}, filter sent {got:?}"),
    }
    ex
}

const APIM: &str = "40.112.72.205:50000";

#[test]
fn functions_behind_apim_matches_the_core_with_minimal_host_calls() {
    let text = sample("functions-behind-apim.json");
    let policy = Policy::parse(&text).unwrap();
    let mut plugin = configure(&text, LogLevel::Info);
    let all4 = [
        "source.address",
        "destination.address",
        "connection.tls_version",
        "request.protocol",
    ];
    // (request, host calls, what it is)
    let cases: Vec<(HttpRequest, u64, &str)> = vec![
        // 4 properties, trace, 2 counters, local reply; no header read.
        (
            request("203.0.113.9:40000", "10.0.0.2:443", true, &[]),
            8,
            "network deny",
        ),
        // + the header map, for the redirect's pseudo-headers.
        (
            request(APIM, "10.0.0.2:80", false, &[]),
            9,
            "plain: redirect",
        ),
        // + the header map, for the required header.
        (
            request(APIM, "10.0.0.2:443", true, &[(b"x-functions-key", b"nope")]),
            9,
            "missing key",
        ),
        // 4 properties, header map, trace, 2 counters; then the 5 response
        // edits (3 removes, nosniff, HSTS).
        (
            request(
                APIM,
                "10.0.0.2:443",
                true,
                &[(b"x-functions-key", b"K-test")],
            ),
            13,
            "forward",
        ),
    ];
    for (req, calls, what) in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        assert_eq!(ex.properties_read, all4, "{what}");
        assert_eq!(ex.host_calls, *calls, "{what}: {ex:?}");
        eprintln!("functions-behind-apim {what}: {} host calls", ex.host_calls);
    }
    let count = |n: &str| {
        plugin
            .metric(&format!("portcullis.functions-behind-apim.{n}"))
            .map(|m| m.value)
    };
    assert_eq!(count("allowed"), Some(1));
    assert_eq!(count("denied"), Some(2));
    assert_eq!(count("redirected"), Some(1));
    assert_eq!(count("rule.allow-apim"), Some(3));
    assert_eq!(count("rule.default"), Some(1));
}

#[test]
fn scopes_read_the_pseudo_headers_once_and_count_per_scope() {
    let text = br#"{
      "name": "gw",
      "network": {"rules": [{"name": "anyone", "priority": 100, "access": "allow", "source": ["*"]}]},
      "scopes": [
        {"name": "admin", "match": {"hosts": ["api.contoso.net"], "paths": ["/admin/*"]},
         "network": {"rules": [{"name": "mgmt", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"]}]}},
        {"name": "orders", "match": {"paths": ["/api/orders/*"], "methods": ["GET"]},
         "require_headers": [{"name": "x-key", "values": ["K"]}]}
      ]
    }"#;
    let policy = Policy::parse(text).unwrap();
    let mut plugin = configure(text, LogLevel::Info);
    let with = |peer: &str, authority: &[u8], path: &[u8], extra: &[(&[u8], &[u8])]| {
        let mut r = request(peer, "10.0.0.2:443", true, extra);
        for (k, v) in &mut r.headers {
            if k == b":authority" {
                *v = authority.to_vec();
            } else if k == b":path" {
                *v = path.to_vec();
            }
        }
        r
    };
    // (request, host calls, what it is). Every request: source.address,
    // the header map (for the pseudo-headers), trace, 3 counters (verdict,
    // rule, scope verdict; 2 outside any scope), then a local reply or
    // nothing to edit.
    let cases: Vec<(HttpRequest, u64, &str)> = vec![
        (
            with("10.1.2.3:1000", b"api.contoso.net", b"/admin/x", &[]),
            6,
            "admin from the management range",
        ),
        (
            with(
                "65.52.10.20:1000",
                b"API.contoso.net:443",
                b"/x/../admin/x",
                &[],
            ),
            7,
            "admin from outside: denied",
        ),
        (
            with(
                "65.52.10.20:1000",
                b"a",
                b"/api/orders/1",
                &[(b"x-key", b"K")],
            ),
            6,
            "orders with the key",
        ),
        (
            with("65.52.10.20:1000", b"a", b"/api/orders/1", &[]),
            7,
            "orders without the key",
        ),
        (
            with("65.52.10.20:1000", b"a", b"/elsewhere", &[]),
            5,
            "no scope",
        ),
        (
            with("65.52.10.20:1000", b"a", b"/api%2Forders/1", &[]),
            6,
            "ambiguous path: 400",
        ),
    ];
    for (req, calls, what) in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        assert_eq!(ex.properties_read, ["source.address"], "{what}");
        assert_eq!(ex.host_calls, *calls, "{what}: {ex:?}");
        eprintln!("scopes {what}: {} host calls", ex.host_calls);
    }
    let count = |n: &str| {
        plugin
            .metric(&format!("portcullis.gw.{n}"))
            .map(|m| m.value)
    };
    assert_eq!(count("allowed"), Some(3));
    assert_eq!(count("denied"), Some(3));
    assert_eq!(count("scope.admin.allowed"), Some(1));
    assert_eq!(count("scope.admin.denied"), Some(1));
    assert_eq!(count("scope.admin.rule.mgmt"), Some(1));
    assert_eq!(count("scope.admin.rule.default"), Some(1));
    assert_eq!(count("scope.orders.allowed"), Some(1));
    assert_eq!(count("scope.orders.denied"), Some(1));
    // The orders scope inherits the top level's network: its rule is
    // counted there, with the no-scope request and the 400 (default).
    assert_eq!(count("rule.anyone"), Some(3));
    assert_eq!(count("rule.default"), Some(1));
}

#[test]
fn layered_security_reads_no_headers_and_no_tls() {
    let text = sample("layered-security.json");
    let policy = Policy::parse(&text).unwrap();
    let mut plugin = configure(&text, LogLevel::Info);
    let cases = [
        // source, destination, protocol; trace, 2 counters (+ local reply).
        (request("65.52.10.20:1234", "10.0.0.2:443", true, &[]), 6),
        (request("65.52.10.20:1234", "10.0.0.2:8443", true, &[]), 7),
        (request("70.37.40.50:1234", "10.0.0.2:80", false, &[]), 6),
        (request("8.8.8.8:1234", "10.0.0.2:455", false, &[]), 6),
        (request("10.0.0.7:1234", "10.0.0.2:455", false, &[]), 7),
    ];
    for (req, calls) in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        assert_eq!(
            ex.properties_read,
            ["source.address", "destination.address", "request.protocol"]
        );
        assert_eq!(ex.host_calls, *calls, "{ex:?}");
    }
}

#[test]
fn x_forwarded_for_lines_request_edits_and_http3() {
    let text = br#"{
      "name": "xff",
      "client_ip": { "from": "x-forwarded-for", "trusted_proxies": ["10.0.0.0/8"] },
      "network": { "rules": [
        { "name": "docs", "priority": 100, "access": "allow", "source": ["203.0.113.0/24"], "protocol": "tcp" },
        { "name": "h3", "priority": 200, "access": "allow", "source": ["198.51.100.0/24"], "protocol": "udp" }
      ] },
      "request_headers": [
        { "set": "x-gateway", "value": "portcullis" },
        { "set": "x-team", "value": "a", "exists": "skip" },
        { "set": "x-tag", "value": "t", "exists": "append" },
        { "remove": "x-debug" }
      ],
      "response_headers": [ { "set": "cache-control", "value": "no-store", "exists": "skip" } ]
    }"#;
    let policy = Policy::parse(text).unwrap();
    let mut plugin = configure(text, LogLevel::Info);
    let proxy = "10.1.2.3:5000";
    let mut h3 = request(
        proxy,
        "10.0.0.2:443",
        true,
        &[(b"x-forwarded-for", b"198.51.100.4")],
    );
    h3.protocol = "HTTP/3".to_string();
    let cases = [
        // Two X-Forwarded-For lines, walked right to left across both.
        request(
            proxy,
            "10.0.0.2:443",
            true,
            &[
                (b"x-forwarded-for", b"198.51.100.1, 203.0.113.5"),
                (b"x-forwarded-for", b"10.9.9.9"),
                (b"x-team", b"b"),
                (b"x-tag", b"old"),
                (b"x-debug", b"1"),
            ],
        ),
        request(
            proxy,
            "10.0.0.2:443",
            true,
            &[
                (b"x-forwarded-for", b"203.0.113.5"),
                (b"x-forwarded-for", b"198.51.100.1"),
            ],
        ),
        request(
            proxy,
            "10.0.0.2:443",
            true,
            &[(b"x-forwarded-for", b"bogus")],
        ),
        request(proxy, "10.0.0.2:443", true, &[]),
        request(
            "203.0.113.5:1",
            "10.0.0.2:443",
            true,
            &[(b"x-forwarded-for", b"10.0.0.1")],
        ),
        h3.clone(),
    ];
    let mut verdicts = Vec::new();
    for req in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        verdicts.push(ex.status);
    }
    assert_eq!(verdicts, [200, 403, 403, 403, 200, 200]);
    // HTTP/3 over TCP-only rule: the udp rule decides.
    let ex = plugin.play(&h3, &upstream()).unwrap();
    let trace = &ex.properties_set[0].1;
    assert!(
        trace.ends_with(b" h3"),
        "{}",
        String::from_utf8_lossy(trace)
    );
}

#[test]
fn hostile_header_bytes_do_not_trap_and_are_judged_by_the_core() {
    let text = br#"{
      "name": "bytes",
      "client_ip": { "from": "x-forwarded-for", "trusted_proxies": ["10.0.0.0/8"] },
      "https_only": { "action": "redirect", "hosts": ["a.example"] },
      "require_headers": [ { "name": "x-key", "values": ["k"] } ]
    }"#;
    let policy = Policy::parse(text).unwrap();
    let mut plugin = configure(text, LogLevel::Info);
    let mut plain = request(
        "10.0.0.1:1",
        "10.0.0.2:80",
        false,
        &[
            (b"x-\xff\xfe-name", b"v"),
            (b"x-forwarded-for", b"203.0.113.1"),
            (b"x-key", b"\xff"),
        ],
    );
    plain.headers[1].1 = b"a.example".to_vec();
    plain.headers[2].1 = b"/caf\xc3\xa9/\xff?q=\x80".to_vec();
    let ex = play_and_compare(&mut plugin, &policy, &plain);
    assert_eq!(ex.status, 308);
    let secure = request(
        "10.0.0.1:1",
        "10.0.0.2:443",
        true,
        &[
            (b"x-\xff-name", b"\x00\x01"),
            (b"x-forwarded-for", b"203.0.113.1"),
            (b"x-key", b"k"),
        ],
    );
    let ex = play_and_compare(&mut plugin, &policy, &secure);
    assert_eq!(ex.status, 200);
}

#[test]
fn a_rejected_policy_logs_every_problem_and_fails_the_configuration() {
    let text =
        std::fs::read(root().join("crates/portcullis-filter/tests/broken-policy.json")).unwrap();
    let problems = Policy::parse(&text).unwrap_err();
    let err = engine(LogLevel::Info).configure(&text).unwrap_err();
    let ConfigureError::Rejected { logs } = &err else {
        panic!("{err}");
    };
    let errors: Vec<&str> = logs
        .iter()
        .filter(|(l, _)| *l == LogLevel::Error)
        .map(|(_, m)| m.as_str())
        .collect();
    let want: Vec<String> = problems
        .0
        .iter()
        .map(|p| format!("portcullis: policy \"broken\" rejected: {p}"))
        .collect();
    assert!(want.len() >= 3, "{want:?}");
    assert_eq!(errors, want);
    // Not JSON at all: the plugin name stands in for the policy name.
    let err = engine(LogLevel::Info).configure(b"{ nope").unwrap_err();
    assert!(
        err.logs().iter().any(|(l, m)| *l == LogLevel::Error
            && m.starts_with("portcullis: policy \"portcullis\" rejected: 1:")),
        "{err}"
    );
}

#[test]
fn the_trace_is_logged_at_debug_level_only() {
    let text = sample("functions-behind-apim.json");
    let req = request("203.0.113.9:40000", "10.0.0.2:443", true, &[]);
    let mut debug = configure(&text, LogLevel::Debug);
    let ex = debug.play(&req, &upstream()).unwrap();
    assert!(
        ex.logs.iter().any(|(l, m)| *l == LogLevel::Debug
            && m == "portcullis: deny 403 network peer 203.0.113.9 - default"),
        "{:?}",
        ex.logs
    );
    let mut info = configure(&text, LogLevel::Info);
    let quiet = info.play(&req, &upstream()).unwrap();
    assert!(quiet.logs.is_empty(), "{:?}", quiet.logs);
    assert_eq!(quiet.host_calls + 1, ex.host_calls);
}

#[test]
fn report_mode_forwards_counts_would_be_verdicts_and_keeps_its_own_trace() {
    // layered-security as a report-mode candidate, with the JSON trace.
    let text = String::from_utf8(sample("layered-security.json"))
        .unwrap()
        .replace(
            "\"name\": \"layered-security\",",
            "\"name\": \"layered-candidate\", \"mode\": \"report\", \"trace_json\": true,",
        );
    assert!(text.contains("\"mode\": \"report\""));
    let policy = Policy::parse(text.as_bytes()).unwrap();
    let mut plugin = configure(text.as_bytes(), LogLevel::Info);
    let enforcing = sample("layered-security.json");
    let mut current = configure(&enforcing, LogLevel::Info);
    // (request, would-be verdict)
    let cases = [
        (request("65.52.10.20:1234", "10.0.0.2:443", true, &[]), None),
        (
            request("8.8.8.8:1234", "10.0.0.2:443", true, &[]),
            Some("deny"),
        ),
        (
            request("65.52.10.20:1234", "10.0.0.2:8443", true, &[]),
            Some("deny"),
        ),
        (request("8.8.8.8:1234", "10.0.0.2:455", false, &[]), None),
    ];
    for (req, would) in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        assert!(ex.local_reply.is_none(), "report mode never stops: {ex:?}");
        assert!(ex.upstream_request_headers.is_some());
        let json: Vec<_> = ex
            .properties_set
            .iter()
            .filter(|(k, _)| k == "portcullis.layered-candidate.trace_json")
            .collect();
        assert_eq!(json.len(), 1, "{:?}", ex.properties_set);
        let json = String::from_utf8_lossy(&json[0].1);
        assert!(json.starts_with(r#"{"policy":"layered-candidate","mode":"report","verdict":"forward","would_verdict":""#), "{json}");
        assert!(
            json.contains(&format!(
                "\"would_verdict\":\"{}\"",
                would.unwrap_or("forward")
            )),
            "{json}"
        );
        // The enforcing instance: same request, its own trace property. The
        // candidate's host calls are the enforcing ones plus its JSON trace
        // and, for a would-be deny, 2 would-be counters less the local reply.
        let ex2 = current.play(req, &upstream()).unwrap();
        assert!(ex2
            .properties_set
            .iter()
            .all(|(k, _)| k == "portcullis.layered-security.trace"));
        if would.is_some() {
            assert!(ex2.local_reply.is_some());
            assert_eq!(ex.host_calls, ex2.host_calls + 2, "{ex:?}\n{ex2:?}");
        } else {
            assert_eq!(ex.host_calls, ex2.host_calls + 1, "{ex:?}\n{ex2:?}");
        }
    }
    let count = |n: &str| {
        plugin
            .metric(&format!("portcullis.layered-candidate.{n}"))
            .map(|m| m.value)
    };
    assert_eq!(count("allowed"), Some(4));
    assert_eq!(count("denied"), Some(0));
    assert_eq!(count("would_deny"), Some(2));
    assert_eq!(count("would_redirect"), Some(0));
    assert_eq!(count("would_deny.rule.default"), Some(2));
    assert_eq!(count("would_deny.rule.allow-https-fe1ase"), Some(0));
    assert_eq!(count("rule.default"), Some(2));
    assert_eq!(count("rule.allow-https-fe1ase"), Some(1));
    assert_eq!(count("rule.allow-azure-mgmt"), Some(1));
}
