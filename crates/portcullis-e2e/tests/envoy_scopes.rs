//! Scopes in real Envoy: the two-apis sample (`policy-samples/two-apis.json`)
//! with its test file, every case through Envoy (curl `--path-as-is`, so
//! dot-segments, doubled slashes and escapes reach Envoy as written), then
//! what a test file cannot say: the path the backend receives is the one
//! the client sent (neither Envoy, as shipped, nor the filter rewrites it),
//! tricky paths over HTTP/2 and TLS, and the per-scope counters in
//! Envoy's `/stats`, counted from the core's own decisions.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use portcullis_core::{Policy, Trace};
use portcullis_e2e::client::{send, ClientRequest, Version};
use portcullis_e2e::config::CASE_HEADER;
use portcullis_e2e::paths;
use portcullis_e2e::runner::{prepare, require_tools, run_every_case, Engine, Harness};
use portcullis_harness::native::run_core;

#[test]
fn two_apis_scopes_in_envoy() {
    two_apis_scopes_on(Engine::Wasm);
}

#[test]
fn two_apis_scopes_in_envoy_native_module() {
    two_apis_scopes_on(Engine::Native);
}

fn two_apis_scopes_on(engine: Engine) {
    require_tools();
    let file = paths::workspace().join("policy-samples/two-apis.tests.json");
    let p = prepare(&file).unwrap_or_else(|e| panic!("{e}"));
    let h = Harness::start_on(engine, "scopes", &[&p], None).unwrap_or_else(|e| panic!("{e}"));
    let prefix = engine.counter_prefix();

    // 1. Every case of the sample's test file, through Envoy.
    run_every_case(&h, &p);

    // 2. The per-scope counters say what the core decided, case by case.
    let text = std::fs::read(paths::workspace().join("policy-samples/two-apis.json")).unwrap();
    let policy = Policy::parse_with_env(&text, &p.file.env).unwrap();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for case in &p.file.cases {
        let o = run_core(&policy, case);
        let scope = Trace::parse(&o.trace).unwrap().scope;
        if scope != portcullis_core::NO_SCOPE {
            *want
                .entry(format!(
                    "{prefix}portcullis.two-apis.scope.{scope}.{}",
                    o.verdict.counter_word()
                ))
                .or_default() += 1;
        }
    }
    // The counts reach Envoy on the filter's tick.
    h.envoy.settle_counters().unwrap_or_else(|e| panic!("{e}"));
    assert!(want.len() >= 6, "the sample reaches every scope: {want:?}");
    let seen: BTreeMap<String, u64> = h
        .envoy
        .stats_matching(".scope.")
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .filter(|(k, _)| {
            k.ends_with("allowed") || k.ends_with("denied") || k.ends_with("redirected")
        })
        .collect();
    assert_eq!(seen, want, "per-scope verdict counters");
    let admin_rule = h
        .envoy
        .stat(&format!(
            "{prefix}portcullis.two-apis.scope.orders-admin.rule.allow-management"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(admin_rule, Some(1), "the admin scope counts its own rule");

    // 3. The backend receives the path as the client wrote it: scopes
    // choose on the normalized path, nothing rewrites the request.
    let t = p.translation.as_ref().unwrap();
    let frontend = t.stand_in("65.52.10.20".parse().unwrap()).unwrap();
    let outsider = t.stand_in("52.168.1.10".parse().unwrap()).unwrap();
    let tls_ep = t.endpoints.iter().find(|e| e.tls).unwrap();
    let tricky = "/x/..//orders/./42/%6cines?next=%2F..%2Fadmin";
    let id = h.next_id();
    let mut req = ClientRequest::get(frontend, tls_ep.bind, true, "Orders.Contoso.NET:443")
        .header("x-functions-key", b"orders-test-key-not-a-secret")
        .header(CASE_HEADER, id.as_bytes());
    req.path = tricky.into();
    let r = send(&h.dir, &req).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{r:?}");
    let (trace, line) = h.trace(&id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trace.scope, "orders-api", "{line}");
    let backend = h.backend.seen(&id).expect("the backend saw the request");
    assert_eq!(String::from_utf8_lossy(&backend.path), tricky);
    assert!(backend
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("x-api") && v == b"orders"));

    // 4. The same tricks over HTTP/2 (ALPN over TLS): into admin from
    // outside is a 404, an encoded slash a 400, and nothing reaches the
    // backend.
    for (path, status, scope) in [
        ("//admin//users", 404, "orders-admin"),
        ("/status/%2e%2E/admin/users", 404, "orders-admin"),
        ("/%61dmin/./users", 404, "orders-admin"),
        ("/orders%2f..%2fadmin/users", 400, "-"),
        ("/admin%5Cusers", 400, "-"),
    ] {
        let id = h.next_id();
        let mut req = ClientRequest::get(outsider, tls_ep.bind, true, "orders.contoso.net")
            .header(CASE_HEADER, id.as_bytes());
        req.path = path.into();
        req.version = Version::Http2;
        let r = send(&h.dir, &req).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert_eq!(r.version, "HTTP/2", "{path}");
        let (trace, line) = h.trace(&id).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(trace.scope, scope, "{path}: {line}");
        assert!(h.backend.seen(&id).is_none(), "{path} reached the backend");
    }

    let bad = h.wasm_failures().unwrap_or_else(|e| panic!("{e}"));
    assert!(bad.is_empty(), "wasm failure stats: {bad:?}");
}
