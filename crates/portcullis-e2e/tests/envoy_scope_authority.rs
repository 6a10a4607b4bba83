//! The clarified scope rules (policy-v1 "Scopes": authority and empty
//! port, `;` segment parameters) played through real Envoy, with
//! `curl --path-as-is` and a raw `Host` line, and raw request lines where
//! curl cannot say it (two `Host` lines, absolute-form targets).
//!
//! The policy forwards everything at its top level and has one scope,
//! `admin` (`hosts: ["admin.contoso.net"]`, `paths: ["/admin/*"]`), that
//! denies everyone: a request meant for the admin API that reaches the
//! stand-in backend has slipped past the scope to the permissive top level.
//! Each form is sent on a plain listener (HTTP/1.1) and a TLS listener
//! (HTTP/1.1 and HTTP/2 by ALPN), and what Envoy 1.40 itself does with it
//! is pinned beside what the filter decides: some forms Envoy refuses or
//! rewrites before any filter runs, the rest it hands over byte for byte.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_core::Trace;
use portcullis_e2e::backend::Backend;
use portcullis_e2e::client::{send, ClientRequest, Version};
use portcullis_e2e::config::{AccessLog, EnvoyConfig, Filter, Listener, Upstream, CASE_HEADER};
use portcullis_e2e::envoy::Envoy;
use portcullis_e2e::http1::{Conn, TlsClient};
use portcullis_e2e::module::Module;
use portcullis_e2e::net::free_port;
use portcullis_e2e::paths;
use portcullis_e2e::runner::require_tools;
use portcullis_e2e::tls;

const POLICY: &str = r#"{"name": "scope-authority",
  "scopes": [
    {"name": "admin", "match": {"hosts": ["admin.contoso.net"], "paths": ["/admin/*"]},
     "network": {"rules": [], "default_access": "deny"}}
  ]}"#;

/// What should happen to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The filter decides: this status, in this scope (`-`: none chosen),
    /// and nothing reaches the backend.
    Stopped(u16, &'static str),
    /// The filter forwards it from the top level (not an admin request):
    /// the backend sees the target byte for byte.
    Forwarded,
    /// Envoy answers this status itself before any filter runs; nothing
    /// reaches the backend.
    Envoy(u16),
    /// HTTP/2: Envoy resets the stream (no response at all); nothing
    /// reaches the backend.
    Reset,
}

use Expect::{Envoy as ByEnvoy, Forwarded, Reset, Stopped};

const DENIED: Expect = Stopped(403, "admin");
const UNREADABLE: Expect = Stopped(400, "-");

/// (what, Host, path, over HTTP/1.1, over HTTP/2)
type Case = (&'static str, &'static str, &'static str, Expect, Expect);

/// Authority forms, on `/admin/users`. Measured in Envoy 1.40: over
/// HTTP/1.1 Envoy hands every one of them to the filter unchanged (an
/// empty port, a port out of range or not a number, an unclosed bracket,
/// userinfo, an empty host, an empty `Host`); only whitespace inside the
/// value is its own 400 (`http.invalid_authority`). Over HTTP/2 Envoy's
/// codec resets the stream for userinfo and an empty `:authority`
/// (`http2.invalid.header.field`), and passes the rest.
const AUTHORITIES: &[Case] = &[
    // An empty port is no port (RFC 3986): the admin scope applies.
    (
        "empty port",
        "admin.contoso.net:",
        "/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "case, trailing dot, empty port",
        "ADMIN.Contoso.NET.:",
        "/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "port 443",
        "admin.contoso.net:443",
        "/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "port 0443 (five digits at most)",
        "admin.contoso.net:0443",
        "/admin/users",
        DENIED,
        DENIED,
    ),
    // Unreadable: 400 before any scope is chosen, never the top level.
    (
        "port 99999",
        "admin.contoso.net:99999",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    (
        "port 65536",
        "admin.contoso.net:65536",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    (
        "port not a number",
        "admin.contoso.net:abc",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    (
        "negative port",
        "admin.contoso.net:-1",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    (
        "six-digit port",
        "admin.contoso.net:000443",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    (
        "unclosed bracket",
        "[::1",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    (
        "userinfo",
        "user@admin.contoso.net",
        "/admin/users",
        UNREADABLE,
        Reset,
    ),
    (
        "userinfo with a password and port",
        "user:pw@admin.contoso.net:443",
        "/admin/users",
        UNREADABLE,
        Reset,
    ),
    (
        "empty host with a port",
        ":443",
        "/admin/users",
        UNREADABLE,
        UNREADABLE,
    ),
    ("empty Host", "", "/admin/users", UNREADABLE, Reset),
    // Envoy's own refusal.
    (
        "a space before the colon",
        "admin.contoso.net :",
        "/admin/users",
        ByEnvoy(400),
        Reset,
    ),
    // Readable, another host: the top level forwards it (no admin request).
    (
        "IPv6 literal, empty port",
        "[::1]:",
        "/admin/users",
        Forwarded,
        Forwarded,
    ),
];

/// `;` segment parameters, on `Host: admin.contoso.net`. Measured in
/// Envoy 1.40 as shipped (no `normalize_path`, no `merge_slashes`): Envoy
/// passes every one to the filter and the backend byte for byte, over
/// HTTP/1.1 and HTTP/2; only the scope choice removes the parameters
/// (before dot-segments), as Java servlet containers route them.
const PATHS: &[Case] = &[
    (
        "parameter on a segment",
        "admin.contoso.net",
        "/admin;x=1/users",
        DENIED,
        DENIED,
    ),
    (
        "empty parameter",
        "admin.contoso.net",
        "/admin;/users",
        DENIED,
        DENIED,
    ),
    (
        "parameter on the last segment",
        "admin.contoso.net",
        "/admin;x=1",
        DENIED,
        DENIED,
    ),
    (
        "parameter after the path",
        "admin.contoso.net",
        "/admin/users;jsessionid=1",
        DENIED,
        DENIED,
    ),
    (
        "/..;/ at the root",
        "admin.contoso.net",
        "/..;/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "/..;/ below a segment",
        "admin.contoso.net",
        "/static/..;/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "/..;a=b/",
        "admin.contoso.net",
        "/x/..;a=b/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "/.;/",
        "admin.contoso.net",
        "/.;/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "encoded dots, then ;",
        "admin.contoso.net",
        "/x/%2e%2e;/admin/users",
        DENIED,
        DENIED,
    ),
    (
        "a parameter hides nothing before ..",
        "admin.contoso.net",
        "/x;y=/../admin/users",
        DENIED,
        DENIED,
    ),
    // Not the admin API once normalized: the top level forwards it.
    (
        "another path with a parameter",
        "admin.contoso.net",
        "/public;x=1/admin",
        Forwarded,
        Forwarded,
    ),
];

struct Setup {
    _envoy: Envoy,
    backend: Backend,
    dir: PathBuf,
    log: PathBuf,
    plain: SocketAddr,
    secure: SocketAddr,
    client: TlsClient,
}

fn setup(name: &str) -> Setup {
    let (_, wasm) = require_tools();
    let dir = paths::scratch(name);
    let log = dir.join("access.log");
    let backend = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
    let port = || free_port(&[Ipv4Addr::LOCALHOST]).unwrap();
    let plain = SocketAddr::from(([127, 0, 0, 1], port()));
    let secure = SocketAddr::from(([127, 0, 0, 1], port()));
    let cert = tls::test_cert().unwrap();
    let listener = |name: &str, address, tls: Option<_>| Listener {
        name: name.into(),
        address,
        tls,
        filter: Filter::Inline {
            policy: POLICY.into(),
        },
    };
    let config = EnvoyConfig {
        admin: SocketAddr::from(([127, 0, 0, 1], 0)),
        listeners: vec![
            listener("plain", plain, None),
            listener("tls", secure, Some(cert.clone())),
        ],
        upstream: Upstream::Static(backend.addr()),
        module: Module::local(&wasm),
        access_log: AccessLog::JsonFile(log.clone()),
    };
    // The shipped connection-manager settings (REJECT_REQUEST included).
    let envoy = Envoy::start(&dir, &config.render()).unwrap_or_else(|e| panic!("{e}"));
    let client = tls::pinned_client(&cert.cert).unwrap();
    Setup {
        _envoy: envoy,
        backend,
        dir,
        log,
        plain,
        secure,
        client,
    }
}

/// The access-log entry of the request carrying `CASE_HEADER: id`.
fn log_entry(log: &Path, id: &str) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if v.get("case").and_then(|c| c.as_str()) == Some(id) {
                    return v;
                }
            }
        }
        assert!(Instant::now() < end, "no access-log line for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn next_id() -> String {
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("authority-{}-{n}", std::process::id())
}

impl Setup {
    /// Checks what happened to the request `id` (status `status`, or no
    /// response) against `want`.
    fn check(&self, what: &str, id: &str, target: &str, status: Option<u16>, want: Expect) {
        let seen = self.backend.seen(id);
        match want {
            Stopped(code, scope) => {
                assert_eq!(status, Some(code), "{what}");
                let e = log_entry(&self.log, id);
                let details = e["details"].as_str().unwrap_or("");
                assert!(
                    details.starts_with("portcullis_"),
                    "{what}: decided by the filter, not by Envoy: {e}"
                );
                let trace = Trace::parse(e["trace"].as_str().unwrap_or(""))
                    .unwrap_or_else(|| panic!("{what}: no trace: {e}"));
                assert_eq!(trace.scope, scope, "{what}: {e}");
                assert!(seen.is_none(), "{what}: reached the backend");
            }
            Forwarded => {
                assert_eq!(status, Some(200), "{what}");
                let e = log_entry(&self.log, id);
                let trace = Trace::parse(e["trace"].as_str().unwrap_or(""))
                    .unwrap_or_else(|| panic!("{what}: no trace: {e}"));
                assert_eq!(trace.scope, "-", "{what}: {e}");
                let seen = seen.unwrap_or_else(|| panic!("{what}: not forwarded"));
                assert_eq!(String::from_utf8_lossy(&seen.path), target, "{what}");
            }
            ByEnvoy(code) => {
                assert_eq!(status, Some(code), "{what}");
                assert!(seen.is_none(), "{what}: reached the backend");
            }
            Reset => {
                assert_eq!(status, None, "{what}: Envoy answered");
                assert!(seen.is_none(), "{what}: reached the backend");
            }
        }
    }

    /// One case with curl (`--path-as-is`, `Host` as given) on the plain
    /// listener over HTTP/1.1 and on the TLS one over HTTP/1.1 and HTTP/2.
    fn curl(&self, (what, host, path, h1, h2): Case) -> usize {
        let mut runs = 0;
        for (to, tls, version, want) in [
            (self.plain, false, Version::Http1, h1),
            (self.secure, true, Version::Http1, h1),
            (self.secure, true, Version::Http2, h2),
        ] {
            let id = next_id();
            let mut req = ClientRequest::get(Ipv4Addr::new(127, 0, 0, 1), to, tls, host)
                .header(CASE_HEADER, id.as_bytes());
            req.path = path.into();
            req.version = version;
            let label = format!("{what} (Host {host:?}, {path}, tls {tls}, {version:?})");
            let status = match send(&self.dir, &req) {
                Ok(r) => {
                    if version == Version::Http2 {
                        assert_eq!(r.version, "HTTP/2", "{label}");
                    }
                    Some(r.status)
                }
                Err(e) if want == Reset => {
                    // curl 7.88: "(18) HTTP/2 stream 1 was not closed
                    // cleanly before end of the underlying stream".
                    assert!(e.contains("HTTP/2 stream"), "{label}: {e}");
                    None
                }
                Err(e) => panic!("{label}: {e}"),
            };
            self.check(&label, &id, path, status, want);
            runs += 1;
        }
        runs
    }

    /// Raw HTTP/1.1 bytes (`{id}` replaced by the case id) on both
    /// listeners.
    fn raw(&self, what: &str, request: &str, target: &str, want: Expect) -> usize {
        let mut runs = 0;
        for (to, tls) in [(self.plain, None), (self.secure, Some(&self.client))] {
            let id = next_id();
            let bytes = request.replace("{id}", &id);
            let mut c = Conn::connect(SocketAddr::from(([127, 0, 0, 1], 0)), to, tls)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let r = c
                .exchange(bytes.as_bytes(), false)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let label = format!("{what} (tls {})", tls.is_some());
            self.check(&label, &id, target, Some(r.status), want);
            runs += 1;
        }
        runs
    }
}

#[test]
fn authority_forms_through_envoy() {
    let s = setup("scope-authority");
    let runs: usize = AUTHORITIES.iter().map(|c| s.curl(*c)).sum();
    // Two Host lines: Envoy joins them into one `:authority`
    // (`admin.contoso.net:,other.example`), which cannot be read as
    // host[:port].
    let mut more = s.raw(
        "two Host lines",
        "GET /admin/users HTTP/1.1\r\nHost: admin.contoso.net:\r\nHost: other.example\r\nx-portcullis-e2e-case: {id}\r\nConnection: close\r\n\r\n",
        "/admin/users",
        UNREADABLE,
    );
    // Absolute-form: Envoy takes the authority from the target and drops
    // its userinfo (the Host line is ignored), so the admin scope decides.
    more += s.raw(
        "absolute-form with userinfo",
        "GET http://user@admin.contoso.net/admin/users HTTP/1.1\r\nHost: other.example\r\nx-portcullis-e2e-case: {id}\r\nConnection: close\r\n\r\n",
        "/admin/users",
        DENIED,
    );
    // ... and refuses an empty port in it itself (`http1.invalid_url`).
    more += s.raw(
        "absolute-form with an empty port",
        "GET http://admin.contoso.net:/admin/users HTTP/1.1\r\nHost: other.example\r\nx-portcullis-e2e-case: {id}\r\nConnection: close\r\n\r\n",
        "/admin/users",
        ByEnvoy(400),
    );
    println!("authority forms through Envoy: {} requests", runs + more);
}

#[test]
fn segment_parameters_through_envoy() {
    let s = setup("scope-parameters");
    let runs: usize = PATHS.iter().map(|c| s.curl(*c)).sum();
    // Absolute-form: the target's path keeps its parameters too. (An
    // `https://` target on the plain listener is Envoy's own 403,
    // `http1.https_url_on_plaintext_connection`.)
    let more = s.raw(
        "absolute-form with a parameter",
        "GET http://admin.contoso.net/admin;x=1/users HTTP/1.1\r\nHost: other.example\r\nx-portcullis-e2e-case: {id}\r\nConnection: close\r\n\r\n",
        "/admin;x=1/users",
        DENIED,
    );
    println!("segment parameters through Envoy: {} requests", runs + more);
}
