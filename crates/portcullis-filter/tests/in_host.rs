//! The filter .wasm on the wasmtime proxy-wasm host (`portcullis-host`):
//! decisions, local replies, edits and traces equal the core's own answers,
//! the per-request host calls stay at the documented minimum, a bad policy is
//! rejected with every problem logged, and hostile header bytes are harmless.
//!
//! Why one file of ~800 lines: every test shares the filter build, the
//! engines per log level and `play_and_compare`; split into several test
//! binaries they would each compile and link wasmtime again.
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
    bench, ConfigureError, Engine, Exchange, HttpRequest, HttpResponse, LogLevel, Options, Plugin,
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

/// The VM environment the samples' `value_from` reads (Envoy's
/// `vm_config.environment_variables`).
fn sample_env() -> Vec<(String, String)> {
    vec![("FUNCTION_KEY".to_string(), "K-test".to_string())]
}

fn configure(policy: &[u8], level: LogLevel) -> Plugin {
    engine(level)
        .with_environment(sample_env())
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
    // One trace per request the policy's `trace` selects, none otherwise.
    let want: Vec<&str> = if policy.trace.selects(&d) {
        vec![trace.as_str()]
    } else {
        Vec::new()
    };
    let got: Vec<String> = set
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(got, want, "traces set: {:?}", ex.properties_set);
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
    let policy = Policy::parse_with_env(&text, &sample_env()).unwrap();
    let mut plugin = configure(&text, LogLevel::Info);
    let all4 = [
        "source.address",
        "destination.address",
        "connection.tls_version",
        "request.protocol",
    ];
    // (request, host calls, what it is)
    let cases: Vec<(HttpRequest, u64, &str)> = vec![
        // 4 properties, trace, local reply; no header read, no counter.
        (
            request("203.0.113.9:40000", "10.0.0.2:443", true, &[]),
            6,
            "network deny",
        ),
        // + the header map, for the redirect's pseudo-headers.
        (
            request(APIM, "10.0.0.2:80", false, &[]),
            7,
            "plain: redirect",
        ),
        // + the header map, for the required header.
        (
            request(APIM, "10.0.0.2:443", true, &[(b"x-functions-key", b"nope")]),
            7,
            "missing key",
        ),
        // 4 properties, header map, trace; then the 5 response edits (3
        // removes, nosniff, HSTS), one call each.
        (
            request(
                APIM,
                "10.0.0.2:443",
                true,
                &[(b"x-functions-key", b"K-test")],
            ),
            11,
            "forward",
        ),
    ];
    for (req, calls, what) in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        assert_eq!(ex.properties_read, all4, "{what}");
        assert_eq!(ex.host_calls, *calls, "{what}: {ex:?}");
        eprintln!("functions-behind-apim {what}: {} host calls", ex.host_calls);
    }
    // The counts wait in the VM for the tick.
    assert_eq!(
        plugin.tick_period(),
        Some(std::time::Duration::from_millis(1000))
    );
    let allowed = "portcullis.functions-behind-apim.allowed";
    assert_eq!(plugin.metric(allowed).map(|m| m.value), Some(0));
    plugin.tick().unwrap();
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
    // the header map (for the pseudo-headers), trace, then a local reply or
    // nothing to edit; no counter call (they wait in the VM for the tick),
    // so a request in a scope costs what one outside any scope costs.
    let cases: Vec<(HttpRequest, u64, &str)> = vec![
        (
            with("10.1.2.3:1000", b"api.contoso.net", b"/admin/x", &[]),
            3,
            "admin from the management range",
        ),
        (
            with(
                "65.52.10.20:1000",
                b"API.contoso.net:443",
                b"/x/../admin/x",
                &[],
            ),
            4,
            "admin from outside: denied",
        ),
        (
            with(
                "65.52.10.20:1000",
                b"a",
                b"/api/orders/1",
                &[(b"x-key", b"K")],
            ),
            3,
            "orders with the key",
        ),
        (
            with("65.52.10.20:1000", b"a", b"/api/orders/1", &[]),
            4,
            "orders without the key",
        ),
        (
            with("65.52.10.20:1000", b"a", b"/elsewhere", &[]),
            3,
            "no scope",
        ),
        (
            with("65.52.10.20:1000", b"a", b"/api%2Forders/1", &[]),
            4,
            "ambiguous path: 400",
        ),
    ];
    for (req, calls, what) in &cases {
        let ex = play_and_compare(&mut plugin, &policy, req);
        assert_eq!(ex.properties_read, ["source.address"], "{what}");
        assert_eq!(ex.host_calls, *calls, "{what}: {ex:?}");
        eprintln!("scopes {what}: {} host calls", ex.host_calls);
    }
    plugin.tick().unwrap();
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
        // source, destination, protocol; trace (+ local reply).
        (request("65.52.10.20:1234", "10.0.0.2:443", true, &[]), 4),
        (request("65.52.10.20:1234", "10.0.0.2:8443", true, &[]), 5),
        (request("70.37.40.50:1234", "10.0.0.2:80", false, &[]), 4),
        (request("8.8.8.8:1234", "10.0.0.2:455", false, &[]), 4),
        (request("10.0.0.7:1234", "10.0.0.2:455", false, &[]), 5),
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
fn counters_wait_in_the_vm_and_are_flushed_on_tick_and_done() {
    let text = sample("layered-security.json");
    let mut plugin = configure(&text, LogLevel::Info);
    let value = |p: &Plugin, n: &str| {
        p.metric(&format!("portcullis.layered-security.{n}"))
            .map(|m| m.value)
    };
    let allowed = request("65.52.10.20:1234", "10.0.0.2:443", true, &[]);
    let denied = request("8.8.8.8:1234", "10.0.0.2:443", true, &[]);
    for _ in 0..3 {
        plugin.play(&allowed, &upstream()).unwrap();
    }
    plugin.play(&denied, &upstream()).unwrap();
    // Defined at configuration, nothing sent yet.
    assert_eq!(value(&plugin, "allowed"), Some(0));
    assert_eq!(value(&plugin, "denied"), Some(0));
    plugin.tick().unwrap();
    assert_eq!(value(&plugin, "allowed"), Some(3));
    assert_eq!(value(&plugin, "denied"), Some(1));
    assert_eq!(value(&plugin, "rule.default"), Some(1));
    // A tick with nothing pending changes nothing; the plugin going away
    // hands over what the last tick did not see.
    plugin.tick().unwrap();
    assert_eq!(value(&plugin, "allowed"), Some(3));
    plugin.play(&denied, &upstream()).unwrap();
    assert!(plugin.done().unwrap());
    assert_eq!(value(&plugin, "denied"), Some(2));
    assert_eq!(value(&plugin, "allowed"), Some(3));
}

#[test]
fn the_trace_switch_sets_the_property_only_for_the_selected_decisions() {
    let base = String::from_utf8(sample("functions-behind-apim.json")).unwrap();
    let deny = request("203.0.113.9:40000", "10.0.0.2:443", true, &[]);
    let forward = request(
        APIM,
        "10.0.0.2:443",
        true,
        &[(b"x-functions-key", b"K-test")],
    );
    let mut calls = Vec::new();
    for word in ["all", "deny", "none"] {
        let text = base.replacen('{', &format!("{{ \"trace\": \"{word}\","), 1);
        let policy = Policy::parse_with_env(text.as_bytes(), &sample_env()).unwrap();
        assert_eq!(policy.trace.as_str(), word);
        let mut plugin = configure(text.as_bytes(), LogLevel::Info);
        // play_and_compare checks the property against the switch.
        let d = play_and_compare(&mut plugin, &policy, &deny);
        let f = play_and_compare(&mut plugin, &policy, &forward);
        assert_eq!(f.status, 200);
        calls.push((word, d.host_calls, f.host_calls));
    }
    // One host call less per request the switch leaves out.
    assert_eq!(calls, [("all", 6, 11), ("deny", 6, 10), ("none", 5, 10)]);
}

/// The policy scripts/bench/envoy_bench.py generates (`policy_json`), at 10
/// CIDRs with the allowed client 127.0.0.1 last.
fn bench_policy(trace: Option<&str>) -> String {
    let trace = trace.map_or(String::new(), |t| format!(r#""trace": "{t}","#));
    format!(
        r#"{{"name": "bench-10", {trace}
      "network": {{"default_access": "deny", "rules": [{{"name": "allow-list", "priority": 100,
        "access": "allow", "source": ["65.52.0.0/16", "20.1.2.0/24", "40.0.0.0/20", "52.3.4.5/32",
        "13.0.0.0/22", "104.5.0.0/16", "23.8.9.0/24", "51.1.0.0/28", "191.2.3.4/32", "127.0.0.1/32"]}}]}},
      "response_headers": [{{"remove": "X-Powered-By"}}, {{"remove": "X-AspNet-Version"}},
        {{"remove": "Server"}},
        {{"set": "Strict-Transport-Security", "value": "max-age=31536000; includeSubDomains", "exists": "override"}}]}}"#
    )
}

#[test]
fn host_call_budget_of_the_bench_policy() {
    let bench_request = |peer: &str| bench::request(addr(peer));
    // (trace switch, forward calls, deny calls): the published budget is the
    // default's, a forward in 6 host calls (source, trace, one per response
    // edit) and a deny in 3 (source, trace, local reply). One call per edit
    // is the measured cheaper way in Envoy (docs/performance.md); no
    // whole-map read or rewrite, no counter call.
    for (trace, forward_max, deny_max) in [(None, 6, 3), (Some("deny"), 5, 3), (Some("none"), 5, 2)]
    {
        let text = bench_policy(trace);
        let policy = Policy::parse(text.as_bytes()).unwrap();
        assert_eq!(policy.trace.as_str(), trace.unwrap_or("all"));
        let mut plugin = configure(text.as_bytes(), LogLevel::Warn);
        for _ in 0..2 {
            let fwd = plugin
                .play(&bench_request("127.0.0.1:40000"), &bench::upstream())
                .unwrap();
            assert_eq!(fwd.status, 200);
            let names: Vec<&[u8]> = fwd
                .response_headers
                .iter()
                .map(|(n, _)| n.as_slice())
                .collect();
            assert_eq!(
                names,
                [
                    &b"content-type"[..],
                    b"content-length",
                    b"strict-transport-security"
                ],
                "{trace:?}"
            );
            assert_eq!(fwd.properties_read, ["source.address"]);
            assert!(fwd.host_calls <= forward_max, "{trace:?} forward: {fwd:?}");
            let publish = trace.is_none();
            let mut want = vec!["proxy_get_property"];
            want.extend(publish.then_some("proxy_set_property"));
            want.extend(["proxy_remove_header_map_value"; 3]);
            want.push("proxy_replace_header_map_value");
            assert_eq!(fwd.calls, want, "{trace:?} forward");
            assert_eq!(fwd.host_calls, want.len() as u64);
            let deny = plugin
                .play(&bench_request("127.0.0.2:40000"), &bench::upstream())
                .unwrap();
            assert_eq!(deny.status, 403);
            assert!(deny.host_calls <= deny_max, "{trace:?} deny: {deny:?}");
            assert_eq!(deny.calls.last(), Some(&"proxy_send_local_response"));
            eprintln!(
                "bench policy, trace {trace:?}: forward {} host calls, deny {}",
                fwd.host_calls, deny.host_calls
            );
        }
        // Nothing was counted through a host call; the tick hands it over.
        plugin.tick().unwrap();
        let count = |n: &str| {
            plugin
                .metric(&format!("portcullis.bench-10.{n}"))
                .map(|m| m.value)
        };
        assert_eq!(count("allowed"), Some(2));
        assert_eq!(count("denied"), Some(2));
    }
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
        // and, for a would-be deny, less the local reply (its would-be
        // counters are kept in the VM, like every counter).
        let ex2 = current.play(req, &upstream()).unwrap();
        assert!(ex2
            .properties_set
            .iter()
            .all(|(k, _)| k == "portcullis.layered-security.trace"));
        if would.is_some() {
            assert!(ex2.local_reply.is_some());
            assert_eq!(ex.host_calls, ex2.host_calls, "{ex:?}\n{ex2:?}");
        } else {
            assert_eq!(ex.host_calls, ex2.host_calls + 1, "{ex:?}\n{ex2:?}");
        }
    }
    plugin.tick().unwrap();
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

#[test]
fn a_reply_the_host_sends_before_the_request_hook_is_hardened_on_tls_only() {
    let policy = sample("behind-front-door.json");
    let mut plugin = configure(&policy, LogLevel::Info);
    let envoy_404 = HttpResponse {
        status: 404,
        headers: vec![
            (b"server".to_vec(), b"envoy".to_vec()),
            (b"strict-transport-security".to_vec(), b"max-age=5".to_vec()),
        ],
    };
    let get = |x: &Exchange, n: &str| -> Vec<Vec<u8>> {
        x.response_headers
            .iter()
            .filter(|(k, _)| k.as_slice() == n.as_bytes())
            .map(|(_, v)| v.clone())
            .collect()
    };
    // TLS: the response ops and HSTS apply, though nothing was decided (no
    // trace is set: the request hook never ran).
    let x = plugin
        .play_host_reply(
            &request("147.243.12.34:40000", "10.1.0.4:443", true, &[]),
            &envoy_404,
        )
        .unwrap();
    assert_eq!(x.status, 404);
    assert!(
        x.properties_set.is_empty(),
        "no decision, no trace: {:?}",
        x.properties_set
    );
    assert_eq!(
        get(&x, "strict-transport-security"),
        [b"max-age=31536000; includeSubDomains".to_vec()]
    );
    assert_eq!(get(&x, "x-content-type-options"), [b"nosniff".to_vec()]);
    assert!(get(&x, "server").is_empty());
    // Plain: the response ops apply, and HSTS is removed.
    let x = plugin
        .play_host_reply(
            &request("147.243.12.34:40000", "10.1.0.4:80", false, &[]),
            &envoy_404,
        )
        .unwrap();
    assert!(get(&x, "strict-transport-security").is_empty());
    assert_eq!(get(&x, "x-content-type-options"), [b"nosniff".to_vec()]);
}
/// `value_from` / `values_from`: the key comes from the VM environment
/// (Envoy's `vm_config.environment_variables`, here the host's WASI
/// `environ_get`), read once at configure; a missing variable rejects the
/// policy with its path and name, never a value.
#[test]
fn keys_come_from_the_vm_environment() {
    let policy = br#"{
        "name": "env-keys",
        "require_headers": [{"name": "x-api-key", "values": ["inline-old"],
                             "values_from": [{"env": "API_KEY_NEW"}]}],
        "request_headers": [{"set": "x-functions-key", "value_from": {"env": "FUNCTION_KEY"}}]
    }"#;
    let env = vec![
        ("FUNCTION_KEY".to_string(), "K-from-env".to_string()),
        ("API_KEY_NEW".to_string(), "new-key".to_string()),
        ("UNRELATED".to_string(), "x=y".to_string()),
    ];
    let core = Policy::parse_with_env(policy, &env).unwrap();
    let mut plugin = engine(LogLevel::Info)
        .with_environment(env.clone())
        .configure(policy)
        .unwrap_or_else(|e| panic!("{e}"));
    for (key, forwarded) in [
        (&b"new-key"[..], true),
        (b"inline-old", true),
        (b"K-from-env", false),
    ] {
        let req = request(APIM, "10.0.0.4:443", true, &[(b"x-api-key", key)]);
        let ex = play_and_compare(&mut plugin, &core, &req);
        let up = ex.upstream_request_headers.as_ref();
        assert_eq!(up.is_some(), forwarded, "{}", String::from_utf8_lossy(key));
        if let Some(up) = up {
            let set: Vec<_> = up
                .iter()
                .filter(|(k, _)| k == b"x-functions-key")
                .map(|(_, v)| v.as_slice())
                .collect();
            assert_eq!(set, [&b"K-from-env"[..]]);
        }
    }
    // No such variable in the VM: refused, naming the path and the variable.
    let err = engine(LogLevel::Info)
        .with_environment(vec![("API_KEY_NEW".into(), "new-key".into())])
        .configure(policy)
        .unwrap_err();
    let logs: Vec<&str> = err.logs().iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        logs.iter()
            .any(|m| m.contains("request_headers[0].value_from.env")
                && m.contains("\"FUNCTION_KEY\" is not set")),
        "{logs:?}"
    );
    assert!(!logs.iter().any(|m| m.contains("new-key")), "{logs:?}");
}

/// The bench's policy at `n` CIDRs (one allow rule, the bench's response
/// edits): distinct prefixes of the bench's lengths over public space.
fn bench_policy_of(n: usize) -> String {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = [32u32, 24, 22, 24, 20, 24, 28, 16][(x >> 40) as usize % 8];
        let a = (x as u32) & (u32::MAX << (32 - len));
        if a >> 24 == 0 || a >> 24 == 127 || a >> 24 >= 224 {
            continue;
        }
        seen.insert(format!("\"{}/{len}\"", std::net::Ipv4Addr::from(a)));
    }
    let sources: Vec<String> = seen.into_iter().collect();
    bench_policy(None).replace(
        r#""source": ["65.52.0.0/16", "20.1.2.0/24", "40.0.0.0/20", "52.3.4.5/32",
        "13.0.0.0/22", "104.5.0.0/16", "23.8.9.0/24", "51.1.0.0/28", "191.2.3.4/32", "127.0.0.1/32"]"#,
        &format!(r#""source": ["127.0.0.1/32", {}]"#, sources.join(", ")),
    )
}

/// Linear memory only grows, so after `configure` it is the load's
/// high-water mark, which every Envoy worker keeps: 10,000 CIDRs may cost
/// at most 8 pages (0.5 MiB) more than the 10-CIDR bench policy (docs/
/// performance.md, "Memory"). Pages and fuel are counts, not timings.
#[test]
fn linear_memory_and_load_work_of_10000_cidrs_stay_bounded() {
    const PAGE: usize = 64 << 10;
    let small = configure(bench_policy(None).as_bytes(), LogLevel::Warn);
    let text = bench_policy_of(10_000);
    assert!(text.len() > 150_000, "{}", text.len());
    let mut large = configure(text.as_bytes(), LogLevel::Warn);
    let (s, l) = (small.memory_size() / PAGE, large.memory_size() / PAGE);
    assert!(l <= s + 8, "10,000 CIDRs: {l} pages, 10 CIDRs: {s} pages");
    // The same decisions: the bench request is allowed, another denied.
    let mut r = request("127.0.0.1:40000", "127.0.0.1:10000", false, &[]);
    assert_eq!(large.play(&r, &upstream()).unwrap().status, 200);
    r.peer = "127.0.0.2:40000".parse().unwrap();
    assert_eq!(large.play(&r, &upstream()).unwrap().status, 403);
    // Loading is linear in the document: ~250 wasm instructions per byte
    // today; a quadratic step would be far above this bound.
    let fuel = large.configure_fuel_used();
    assert!(
        fuel < 1_000 * text.len() as u64,
        "{fuel} fuel for {} bytes",
        text.len()
    );
    assert!(fuel > small.configure_fuel_used());
}
