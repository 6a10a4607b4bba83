//! Real front doors in real Envoy: client addresses as Azure Application
//! Gateway (X-Forwarded-For with ports), Azure Front Door (X-Azure-ClientIP)
//! and RFC 7239 proxies (`Forwarded`) send them, from a trusted proxy on a
//! 127.x address (`curl --interface`); the smuggling case (a policy setting
//! `content-length` is refused); Envoy's own replies on a TLS connection;
//! and the two shipped positions, at the edge and behind a trusted proxy.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};

use portcullis_e2e::backend::Backend;
use portcullis_e2e::client::{send, ClientRequest};
use portcullis_e2e::config::{
    deploy_behind_proxy, AccessLog, EnvoyConfig, Filter, HttpOptions, Listener, Position,
    Underscores, Upstream, DEPLOY_BEHIND_PROXY_POLICY, TRUST_NO_PEER,
};
use portcullis_e2e::envoy::{expect_refused, Envoy};
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

/// Sends raw bytes over TLS (`openssl s_client`) and returns what came back.
fn raw_tls(to: SocketAddr, request: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-ign_eof", "-connect"])
        .arg(to.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(request).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const HARDENED: &str = r#"{"name": "hardened",
  "response_headers": [{"set": "x-content-type-options", "value": "nosniff"}],
  "hsts": {"max_age": 31536000, "include_subdomains": true}}"#;

/// Envoy's own replies on a TLS connection. Those sent after the stream's
/// filter chain exists (a 404 of the router, a 400 for a broken body after
/// the headers were decided) pass the filter's response hook, which hardens
/// every response on a TLS connection, decided or not. Those Envoy sends
/// while parsing the request head (a malformed header line, an `_` name
/// under `REJECT_REQUEST`, a path that is not origin-form, HTTP/1.1
/// without Host) are written before any HTTP filter exists: no filter can
/// touch them, and this test pins that (docs/filter.md).
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
    let listen = SocketAddr::from(([127, 0, 0, 1], port()));
    let mut c = config(
        Path::new("-"),
        backend.addr(),
        vec![listener("tls", listen, true, HARDENED)],
    );
    c.module = engine.module();
    let envoy = Envoy::start(&dir, &c.render()).unwrap_or_else(|e| panic!("{e}"));
    let hsts = "strict-transport-security: max-age=31536000; includesubdomains";
    let through_filters: [(&str, &[u8], &str); 2] = [
        ("CONNECT, which the route does not match", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nConnection: close\r\n\r\n", " 404 "),
        ("a broken chunk after the head", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n", " 400 "),
    ];
    for (what, bytes, status) in through_filters {
        let out = raw_tls(listen, bytes).to_ascii_lowercase();
        assert!(out.contains(status), "{what}: {out}");
        assert!(
            out.matches(hsts).count() == 1 && out.contains("x-content-type-options: nosniff"),
            "{what}: not hardened (HSTS exactly once):\n{out}"
        );
    }
    let before_filters: [(&str, &[u8]); 4] = [
        (
            "a malformed header line",
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Line\r\nConnection: close\r\n\r\n",
        ),
        (
            "a header name with _ (REJECT_REQUEST)",
            b"GET / HTTP/1.1\r\nHost: a\r\nx_functions_key: k\r\nConnection: close\r\n\r\n",
        ),
        (
            "a path that is not origin-form",
            b"GET nopath HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        ),
        (
            "HTTP/1.1 without Host",
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
    ];
    for (what, bytes) in before_filters {
        let out = raw_tls(listen, bytes).to_ascii_lowercase();
        assert!(out.starts_with("http/1.1 400"), "{what}: {out}");
        match engine {
            // Envoy creates a dynamic module's filter for these replies too
            // (measured with Envoy 1.40): the module hardens them.
            Engine::Native => assert!(
                out.matches(hsts).count() == 1 && out.contains("x-content-type-options: nosniff"),
                "{what}: not hardened by the native module:\n{out}"
            ),
            Engine::Wasm => assert!(
                !out.contains("x-content-type-options")
                    && !out.contains("strict-transport-security"),
                "{what}: Envoy now runs filters on this reply; harden-it tests can move here:\n{out}"
            ),
        }
    }
    assert!(backend.requests().is_empty(), "nothing reached the backend");
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
