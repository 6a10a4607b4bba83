//! The sample policies in real Envoy (one Envoy per policy, one worker).
//!
//! Each test writes its expectations as a policy test file (policy-tests-v1)
//! and runs it through Envoy with `run_case_envoy`, then adds what a test
//! file cannot say: HTTP/2 over TLS, the stand-in backend's own key check,
//! TLS protocol and cipher refusals, wasm stats after odd bytes.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use portcullis_e2e::client::{send, ClientRequest};
use portcullis_e2e::paths;
use portcullis_e2e::runner::{
    prepare_text, require_tools, run_every_case, Engine, Harness, Prepared,
};

fn samples() -> PathBuf {
    paths::workspace().join("policy-samples")
}

fn prepared(name: &str, text: &str) -> Prepared {
    prepare_text(name, text, &samples()).unwrap_or_else(|e| panic!("{e}"))
}

/// Envoy's wasm failure stats are 0 and its log has no wasm errors other
/// than the expected ones.
fn assert_vm_healthy(h: &Harness) {
    let bad = h.wasm_failures().unwrap_or_else(|e| panic!("{e}"));
    assert!(bad.is_empty(), "wasm failure stats: {bad:?}");
    let active = h
        .envoy
        .stat("wasm.envoy.wasm.runtime.v8.active")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(active.is_some_and(|n| n > 0), "no active V8 VM: {active:?}");
    let log = h.envoy.log();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| {
            (l.contains("][error][wasm]") || l.contains("][critical][")) && !l.contains("policy")
        })
        .collect();
    assert!(
        errors.is_empty(),
        "wasm errors in Envoy's log:\n{}",
        errors.join("\n")
    );
}

const APIM_CASES: &str = r#"{
  "policy": "functions-behind-apim.json",
  "env": { "FUNCTION_KEY": "K-test" },
  "cases": [
    { "name": "APIM over https with the key reaches the function, hardened",
      "request": { "peer": "40.112.72.205:50000", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "path": "/api/orders?top=5", "headers": [["x-functions-key", "K-test"]] },
      "upstream": { "status": 200, "headers": [["Server", "Microsoft-IIS/10.0"], ["X-Powered-By", "ASP.NET"],
                    ["X-AspNet-Version", "4.0.30319"], ["Strict-Transport-Security", "max-age=5"]] },
      "expect": { "verdict": "forward", "status": 200, "rule": "allow-apim", "client_ip": "40.112.72.205", "step": "forward",
                  "upstream_headers": { "x-functions-key": "K-test" },
                  "response_headers": { "strict-transport-security": "max-age=31536000; includeSubDomains",
                                        "x-powered-by": null, "x-aspnet-version": null, "server": null,
                                        "x-content-type-options": "nosniff" } } },
    { "name": "APIM without the key gets 401 (still hardened)",
      "request": { "peer": "40.112.72.205:50001", "tls": true, "authority": "func-orders.azurewebsites.net", "path": "/api/orders" },
      "expect": { "verdict": "deny", "status": 401, "step": "require_headers",
                  "response_headers": { "strict-transport-security": "max-age=31536000; includeSubDomains", "server": null } } },
    { "name": "APIM with a wrong key gets 401",
      "request": { "peer": "40.112.72.205:50002", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-functions-key", "K-wrong"]] },
      "expect": { "verdict": "deny", "status": 401 } },
    { "name": "plain HTTP is redirected to https, no HSTS",
      "request": { "peer": "40.112.72.205:50003", "tls": false, "authority": "func-orders.azurewebsites.net",
                   "path": "/api/orders?top=5&x=%2F" },
      "expect": { "verdict": "redirect", "status": 308, "step": "https_only",
                  "location": "https://func-orders.azurewebsites.net/api/orders?top=5&x=%2F",
                  "response_headers": { "strict-transport-security": null, "server": null } } },
    { "name": "plain HTTP POST is redirected with 308",
      "request": { "peer": "40.112.72.205:50004", "tls": false, "method": "POST", "authority": "func-orders.azurewebsites.net", "path": "/api/orders" },
      "expect": { "verdict": "redirect", "status": 308, "location": "https://func-orders.azurewebsites.net/api/orders" } },
    { "name": "plain HTTP for another host is rejected, never redirected",
      "request": { "peer": "40.112.72.205:50005", "tls": false, "authority": "evil.example", "path": "/" },
      "expect": { "verdict": "deny", "status": 400, "location": "(none)" } },
    { "name": "any other address gets the deny reply (https)",
      "request": { "peer": "20.50.60.70:50006", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-functions-key", "K-test"]] },
      "expect": { "verdict": "deny", "status": 403, "rule": "default", "client_ip": "20.50.60.70", "step": "network",
                 
                  "response_headers": { "strict-transport-security": "max-age=31536000; includeSubDomains", "server": null } } },
    { "name": "any other address gets the deny reply (http, no redirect first)",
      "request": { "peer": "10.1.2.3:50007", "tls": false, "authority": "func-orders.azurewebsites.net" },
      "expect": { "verdict": "deny", "status": 403, "step": "network", "response_headers": { "strict-transport-security": null } } },
    { "name": "a real loopback client is denied too",
      "request": { "peer": "127.0.0.1:50008", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-functions-key", "K-test"]] },
      "expect": { "verdict": "deny", "status": 403, "client_ip": "127.0.0.1" } },
    { "name": "a forged X-Forwarded-For naming APIM does not let another address in",
      "request": { "peer": "20.50.60.70:50009", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-forwarded-for", "40.112.72.205"], ["x-functions-key", "K-test"]] },
      "expect": { "verdict": "deny", "status": 403, "client_ip": "20.50.60.70", "rule": "default" } },
    { "name": "a forged X-Forwarded-For does not lock APIM out",
      "request": { "peer": "40.112.72.205:50010", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-forwarded-for", "20.50.60.70, 10.9.9.9"], ["x-functions-key", "K-test"]] },
      "expect": { "verdict": "forward", "status": 200, "client_ip": "40.112.72.205" } },
    { "name": "a non-UTF-8 header value is still decided (allowed client)",
      "request": { "peer": "40.112.72.205:50011", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-odd", {"hex": "c328ff80fe"}], ["x-functions-key", "K-test"]] },
      "expect": { "verdict": "forward", "status": 200, "upstream_headers": { "x-functions-key": "K-test" } } },
    { "name": "a non-UTF-8 key value is a wrong key",
      "request": { "peer": "40.112.72.205:50012", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-functions-key", {"hex": "4b2d74657374ff"}]] },
      "expect": { "verdict": "deny", "status": 401 } },
    { "name": "a non-UTF-8 header value is still decided (denied client)",
      "request": { "peer": "20.50.60.70:50013", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-forwarded-for", {"hex": "ff3130"}]] },
      "expect": { "verdict": "deny", "status": 403 } },
    { "name": "later requests are fine",
      "request": { "peer": "40.112.72.205:50014", "tls": true, "authority": "func-orders.azurewebsites.net",
                   "headers": [["x-functions-key", "K-test"]] },
      "expect": { "verdict": "forward", "status": 200 } }
  ]
}"#;

fn curl_ok(args: &[&str]) -> bool {
    Command::new("curl")
        .args([
            "-sS",
            "-k",
            "-o",
            "/dev/null",
            "--noproxy",
            "*",
            "--max-time",
            "10",
        ])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn functions_behind_apim_in_envoy() {
    functions_behind_apim_on(Engine::Wasm);
}

/// The same on the native module: HSTS exactly once, fingerprints gone,
/// the function key from Envoy's own environment (value_from), TLS.
#[test]
fn functions_behind_apim_in_envoy_native_module() {
    functions_behind_apim_on(Engine::Native);
}

/// No error from the native module in Envoy's log (policy rejections aside).
fn assert_module_healthy(h: &Harness) {
    let log = h.envoy.log();
    assert!(
        log.contains("Dynamic module ABI version v0.2.0 matched"),
        "{log}"
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| {
            (l.contains("][error][dynamic_modules]") || l.contains("][critical]["))
                && !l.contains("policy")
        })
        .collect();
    assert!(
        errors.is_empty(),
        "module errors in Envoy's log:\n{}",
        errors.join("\n")
    );
}

fn functions_behind_apim_on(engine: Engine) {
    require_tools();
    let p = prepared("functions-behind-apim (inline cases)", APIM_CASES);
    // The backend really checks the key when no canned answer is registered.
    let h =
        Harness::start_on(engine, "apim", &[&p], Some(b"K-test")).unwrap_or_else(|e| panic!("{e}"));
    run_every_case(&h, &p);

    let t = p
        .translation
        .as_ref()
        .unwrap_or_else(|| panic!("no translation"));
    let apim = t
        .stand_in("40.112.72.205".parse().unwrap_or_else(|_| panic!("ip")))
        .unwrap_or_else(|| panic!("no stand-in for APIM"));
    let tls_ep = t
        .endpoints
        .iter()
        .find(|e| e.tls)
        .unwrap_or_else(|| panic!("no TLS listener"));
    let host = "func-orders.azurewebsites.net";

    // HTTP/2 over TLS (ALPN) to the stand-in's own Azure answer.
    let r = send(
        &h.dir,
        &ClientRequest::get(apim, tls_ep.bind, true, host).header("x-functions-key", b"K-test"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.version, "HTTP/2");
    assert_eq!(
        r.values("strict-transport-security"),
        vec![b"max-age=31536000; includeSubDomains".as_slice()],
        "exactly one HSTS header"
    );
    for h in ["x-powered-by", "x-aspnet-version", "server"] {
        assert!(r.values(h).is_empty(), "{h} leaked: {r:?}");
    }
    let seen = h.backend.requests();
    let last = seen.last().unwrap_or_else(|| panic!("backend saw nothing"));
    assert!(last
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("x-functions-key") && v == b"K-test"));

    // TLS below 1.2 and non-AEAD suites are refused by the listener.
    let url = format!("https://{}/", tls_ep.bind);
    let iface = apim.to_string();
    let base = [
        "--interface",
        iface.as_str(),
        "-H",
        "x-functions-key: K-test",
    ];
    assert!(curl_ok(&[&base[..], &["--tlsv1.2", url.as_str()]].concat()));
    assert!(
        !curl_ok(
            &[
                &base[..],
                &[
                    "--tlsv1.0",
                    "--tls-max",
                    "1.1",
                    "--ciphers",
                    "DEFAULT:@SECLEVEL=0",
                    url.as_str()
                ]
            ]
            .concat()
        ),
        "TLS 1.0/1.1 accepted"
    );
    assert!(
        !curl_ok(
            &[
                &base[..],
                &[
                    "--tls-max",
                    "1.2",
                    "--ciphers",
                    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-GCM-SHA256",
                    url.as_str()
                ]
            ]
            .concat()
        ),
        "a CBC or non-forward-secret suite was accepted"
    );
    assert!(curl_ok(
        &[
            &base[..],
            &[
                "--tls-max",
                "1.2",
                "--ciphers",
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                url.as_str()
            ]
        ]
        .concat()
    ));

    match engine {
        Engine::Wasm => assert_vm_healthy(&h),
        Engine::Native => assert_module_healthy(&h),
    }
    let allowed = h
        .envoy
        .stat_when(
            &format!(
                "{}portcullis.functions-behind-apim.allowed",
                engine.counter_prefix()
            ),
            |v| v.is_some_and(|n| n >= 4),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        allowed.is_some_and(|n| n >= 4),
        "allowed counter: {allowed:?}"
    );
}

const GATEWAY_CASES: &str = r#"{
  "policy": "functions-behind-apim.gateway.json",
  "env": { "FUNCTION_KEY": "K-test" },
  "cases": [
    { "name": "an Internet client gets through; the gateway injects the function key",
      "request": { "peer": "20.50.60.70:40000", "tls": true, "authority": "api.contoso.net", "path": "/orders" },
      "upstream": { "status": 200, "headers": [["Server", "Microsoft-IIS/10.0"], ["X-Powered-By", "ASP.NET"], ["X-AspNet-Version", "4.0.30319"]] },
      "expect": { "verdict": "forward", "status": 200, "rule": "allow-internet-https", "client_ip": "20.50.60.70",
                  "upstream_headers": { "x-functions-key": "K-test" },
                  "response_headers": { "strict-transport-security": "max-age=31536000; includeSubDomains",
                                        "x-powered-by": null, "x-aspnet-version": null, "server": null } } },
    { "name": "a client-sent key is overridden, never passed along",
      "request": { "peer": "20.50.60.71:40001", "tls": true, "authority": "api.contoso.net",
                   "headers": [["x-functions-key", "stolen"], ["x-functions-key", "other"]] },
      "expect": { "verdict": "forward", "upstream_headers": { "x-functions-key": "K-test" } } },
    { "name": "plain HTTP is redirected to the API host",
      "request": { "peer": "20.50.60.70:40002", "tls": false, "authority": "api.contoso.net", "path": "/orders?id=7" },
      "expect": { "verdict": "redirect", "status": 308, "location": "https://api.contoso.net/orders?id=7",
                  "response_headers": { "strict-transport-security": null } } },
    { "name": "a private address is denied",
      "request": { "peer": "10.0.0.9:40003", "tls": true, "authority": "api.contoso.net" },
      "expect": { "verdict": "deny", "status": 403, "rule": "default", "upstream_headers": {} } },
    { "name": "loopback is not the Internet",
      "request": { "peer": "127.0.0.1:40004", "tls": true, "authority": "api.contoso.net" },
      "expect": { "verdict": "deny", "status": 403 } },
    { "name": "a forged X-Forwarded-For does not make a private client public",
      "request": { "peer": "192.168.1.20:40005", "tls": true, "authority": "api.contoso.net",
                   "headers": [["x-forwarded-for", "20.50.60.70"]] },
      "expect": { "verdict": "deny", "status": 403, "client_ip": "192.168.1.20" } }
  ]
}"#;

#[test]
fn functions_behind_apim_gateway_in_envoy() {
    require_tools();
    let p = prepared(
        "functions-behind-apim.gateway (inline cases)",
        GATEWAY_CASES,
    );
    let h = Harness::start("gateway", &[&p], Some(b"K-test")).unwrap_or_else(|e| panic!("{e}"));
    run_every_case(&h, &p);
    // Without a canned answer the stand-in checks the key itself: the client
    // sends none, the gateway's injected key gets the 200.
    let t = p
        .translation
        .as_ref()
        .unwrap_or_else(|| panic!("no translation"));
    let client = t
        .stand_in("20.50.60.70".parse().unwrap_or_else(|_| panic!("ip")))
        .unwrap_or_else(|| panic!("no stand-in"));
    let ep = t
        .endpoints
        .iter()
        .find(|e| e.tls)
        .unwrap_or_else(|| panic!("no TLS listener"));
    let r = send(
        &h.dir,
        &ClientRequest::get(client, ep.bind, true, "api.contoso.net"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status, 200,
        "the backend did not accept the injected key: {r:?}"
    );
    assert_eq!(r.values("strict-transport-security").len(), 1);
    for name in ["x-powered-by", "x-aspnet-version", "server"] {
        assert!(r.values(name).is_empty(), "{name} leaked");
    }
    assert_vm_healthy(&h);
}

const LAYERED_CASES: &str = r#"{
  "policy": "layered-security.json",
  "cases": [
    { "name": "fe1ase over https", "request": { "peer": "65.52.10.20:51000", "local": "10.0.0.4:443", "tls": true, "authority": "api.contoso.net" },
      "upstream": { "status": 200, "headers": [["X-Powered-By", "ASP.NET"]] },
      "expect": { "verdict": "forward", "status": 200, "rule": "allow-https-fe1ase", "client_ip": "65.52.10.20",
                  "response_headers": { "x-powered-by": "ASP.NET", "strict-transport-security": null } } },
    { "name": "fe2ase over plain http (no https_only here)", "request": { "peer": "191.238.20.30:51001", "local": "10.0.0.4:80", "tls": false, "authority": "api.contoso.net" },
      "expect": { "verdict": "forward", "status": 200, "rule": "allow-http-fe2ase" } },
    { "name": "fe3ase", "request": { "peer": "23.98.30.40:51002", "local": "10.0.0.4:443", "tls": true },
      "expect": { "verdict": "forward", "rule": "allow-https-fe3ase" } },
    { "name": "the API calling itself", "request": { "peer": "70.37.40.50:51003", "local": "10.0.0.4:80", "tls": false },
      "expect": { "verdict": "forward", "rule": "allow-http-apiase" } },
    { "name": "ASE management ports from the Internet", "request": { "peer": "52.1.2.3:51004", "local": "10.0.0.4:454", "tls": true },
      "expect": { "verdict": "forward", "rule": "allow-azure-mgmt" } },
    { "name": "anyone else on 443 is denied with the policy's body",
      "request": { "peer": "52.1.2.3:51005", "local": "10.0.0.4:443", "tls": true, "headers": [["x-forwarded-for", "65.52.10.20"]] },
      "expect": { "verdict": "deny", "status": 403, "rule": "default", "client_ip": "52.1.2.3",
                  "body_contains": "Forbidden: this API only accepts calls from its front-ends" } },
    { "name": "a private address is denied", "request": { "peer": "10.0.0.8:51006", "local": "10.0.0.4:80", "tls": false },
      "expect": { "verdict": "deny", "status": 403 } }
  ]
}"#;

#[test]
fn layered_security_in_envoy() {
    require_tools();
    let p = prepared("layered-security (inline cases)", LAYERED_CASES);
    let h = Harness::start("layered", &[&p], None).unwrap_or_else(|e| panic!("{e}"));
    run_every_case(&h, &p);
    // Three listeners: the local address's ports 443, 80 and 454.
    let t = p
        .translation
        .as_ref()
        .unwrap_or_else(|| panic!("no translation"));
    assert_eq!(t.endpoints.len(), 3, "{:?}", t.endpoints);
    assert_vm_healthy(&h);
}

#[test]
fn backend_stand_in_behaves_like_azure_functions() {
    // No Envoy: the stand-in alone, through curl.
    let b =
        portcullis_e2e::backend::Backend::start(portcullis_e2e::net::any_port(), Some(b"K-test"))
            .unwrap_or_else(|e| panic!("{e}"));
    let dir = paths::scratch("backend");
    let no_key = send(
        &dir,
        &ClientRequest::get(Ipv4Addr::LOCALHOST, b.addr(), false, "x"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(no_key.status, 401);
    let ok = send(
        &dir,
        &ClientRequest::get(Ipv4Addr::LOCALHOST, b.addr(), false, "x")
            .header("x-functions-key", b"K-test"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status, 200);
    assert_eq!(ok.one("x-powered-by").as_deref(), Some("ASP.NET"));
    assert_eq!(ok.one("x-aspnet-version").as_deref(), Some("4.0.30319"));
    assert_eq!(ok.one("server").as_deref(), Some("Microsoft-IIS/10.0"));
    assert_eq!(b.requests().len(), 2);
}
