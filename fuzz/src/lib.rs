//! The checks behind the fuzz targets, shared with the replay test
//! (`crates/portcullis-cli/tests/robustness.rs` includes this file by path,
//! so `cargo test --workspace` replays every committed input without nightly).
//!
//! Why one file over 800 lines: the replay test includes the fuzz checks by
//! path (see below), so they stay one module it can include without the
//! fuzz crate's own build.
//!
//! Nothing here decides anything: requests go to `portcullis_core` natively
//! and to the shipped filter under `portcullis_host`, and the results are
//! held to invariants and compared with each other.
//!
//! Inputs are decoded by [`Gen::decode`] from raw bytes (manual slicing, so
//! [`Gen::encode`] can turn the test corpus into seeds). Reads past the end
//! give zeros, so every byte string is a valid input.
#![allow(clippy::indexing_slicing)]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use portcullis_core::{
    apply_edits, Decision, EditOp, Policy, Reason, Request, Step, Trace, Transport, Verdict,
    NO_SCOPE,
};
use portcullis_harness::native::run_core;
use portcullis_harness::{
    corpus, run_file, Case, CaseRequest, CaseRun, Expect, FileReport, HeaderList, Loaded, Outcome,
    PolicyLoad, Rejection, Suite, Upstream,
};
use portcullis_host::{HttpRequest, HttpResponse};

#[path = "client_addr.rs"]
pub mod client_addr;
#[path = "scope_input.rs"]
pub mod scope_input;

/// Header name/value pairs as bytes.
pub type HeaderPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Header names the generator likes to use (plus every name the policy
/// itself mentions, see [`words`]).
const NAMES: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "host",
    ":authority",
    ":method",
    ":path",
    "strict-transport-security",
    "server",
    "x-powered-by",
    "content-type",
    "location",
    "X-Forwarded-For",
    "X-FORWARDED-PROTO",
];

/// Values the generator likes to use.
const VALUES: &[&str] = &[
    "https",
    "http",
    "HTTPS",
    "https, http",
    "http, https",
    "GET",
    "HEAD",
    "POST",
    "get",
    "/",
    "",
    "localhost",
    "max-age=1",
];

/// Addresses near the interesting edges, and those the corpus uses.
const ADDRS: &[&str] = &[
    "0.0.0.0",
    "255.255.255.255",
    "127.0.0.1",
    "10.0.0.4",
    "10.0.0.255",
    "10.0.1.0",
    "65.52.10.20",
    "192.168.50.7",
    "172.16.0.1",
    "100.64.0.1",
    "203.0.113.9",
    "::",
    "::1",
    "::ffff:10.0.0.4",
    "::ffff:65.52.10.20",
    "2001:db8:cafe::1",
    "2603:1000::1",
    "fe80::1",
    "fc00::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

/// One generated exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gen {
    /// Index into the fixture's policies (taken modulo their number).
    pub policy: usize,
    /// Client address.
    pub peer: SocketAddr,
    /// Listener address.
    pub local: SocketAddr,
    /// TLS connection.
    pub tls: bool,
    /// HTTP/3 when `Udp`.
    pub transport: Transport,
    /// `:method` bytes.
    pub method: Vec<u8>,
    /// `:authority` bytes.
    pub authority: Vec<u8>,
    /// `:path` bytes.
    pub path: Vec<u8>,
    /// Other request headers, names and values as raw bytes.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Upstream status.
    pub status: u16,
    /// Upstream response headers.
    pub response: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Gen {
    /// The request as the core sees it, with `headers` as the host holds them.
    pub fn request<'a>(&'a self, headers: &'a dyn portcullis_core::Headers) -> Request<'a> {
        Request {
            peer: self.peer,
            local: self.local,
            tls: self.tls,
            transport: self.transport,
            method: &self.method,
            authority: &self.authority,
            path: &self.path,
            headers,
        }
    }
}

/// Reads an input; past the end every read is zero.
struct Reader<'a> {
    data: &'a [u8],
    /// Words for dictionary picks (the policy's names and values).
    words: &'a [Vec<u8>],
    /// Bytes of header data still allowed (see [`BUDGET`]).
    budget: usize,
}

/// At most this many bytes of generated header data per exchange (Envoy's
/// `max_request_headers_kb` is 60 KiB by default, at most 8 MiB): large
/// enough for every size-related path, small enough that one input stays
/// well under a millisecond. The hostile-input tests go bigger.
pub const BUDGET: usize = 256 << 10;

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a.to_vec()
    }
    fn addr(&mut self) -> IpAddr {
        match self.u8() % 4 {
            0 => {
                let b = self.take(4);
                let mut a = [0u8; 4];
                a[..b.len()].copy_from_slice(&b);
                IpAddr::V4(Ipv4Addr::from(a))
            }
            1 => {
                let b = self.take(16);
                let mut a = [0u8; 16];
                a[..b.len()].copy_from_slice(&b);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            2 => {
                let b = self.take(4);
                let mut a = [0u8; 4];
                a[..b.len()].copy_from_slice(&b);
                IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())
            }
            _ => {
                let i = usize::from(self.u8()) % ADDRS.len();
                ADDRS[i]
                    .parse()
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
            }
        }
    }
    fn socket(&mut self) -> SocketAddr {
        let ip = self.addr();
        let port = match self.u8() {
            0 => self.u16(),
            1 => 0,
            2 => 65535,
            3 => 443,
            4 => 80,
            n => u16::from(n) * 257,
        };
        SocketAddr::new(ip, port)
    }
    /// A byte string: `0..0xf0` raw bytes of that length; `0xf0` a 16-bit
    /// length; `0xf1` a dictionary word; `0xf2` a repeated string (count,
    /// then the string); `0xf3` an X-Forwarded-For list; `0xf4` a word plus
    /// a raw suffix; anything else: empty.
    fn bytes(&mut self, depth: u8) -> Vec<u8> {
        match self.u8() {
            n @ 0..0xf0 => self.take(usize::from(n)),
            0xf0 => {
                let n = self.u16();
                self.take(usize::from(n))
            }
            0xf1 => self.word(),
            0xf2 if depth < 2 => {
                let count = usize::from(self.u16());
                let unit = self.bytes(depth + 1);
                let count = count.min(self.budget / unit.len().max(1));
                self.spend(unit.len() * count);
                unit.repeat(count)
            }
            0xf3 => {
                let n = self.u8();
                let sep: &[u8] = match self.u8() % 4 {
                    0 => b", ",
                    1 => b",",
                    2 => b" ,\t",
                    _ => b",,",
                };
                let mut out = Vec::new();
                for i in 0..n {
                    if i > 0 {
                        out.extend_from_slice(sep);
                    }
                    match self.u8() % 8 {
                        0 => out.extend(self.bytes(2)),
                        _ => out.extend(self.addr().to_string().bytes()),
                    }
                }
                out
            }
            0xf4 => {
                let mut w = self.word();
                let n = self.u8();
                w.extend(self.take(usize::from(n % 16)));
                w
            }
            _ => Vec::new(),
        }
    }
    fn spend(&mut self, n: usize) {
        self.budget = self.budget.saturating_sub(n);
    }
    fn word(&mut self) -> Vec<u8> {
        let i = usize::from(self.u8());
        let all = NAMES.len() + VALUES.len() + self.words.len();
        let i = i % all;
        if let Some(n) = NAMES.get(i) {
            return n.as_bytes().to_vec();
        }
        if let Some(v) = VALUES.get(i - NAMES.len()) {
            return v.as_bytes().to_vec();
        }
        self.words[i - NAMES.len() - VALUES.len()].clone()
    }
    fn headers(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let n = self.u8();
        let mut out = Vec::new();
        for _ in 0..n {
            let name = self.bytes(0);
            let value = self.bytes(0);
            let times = match self.u8() {
                255 => 1000,
                r => usize::from(r) + 1,
            };
            let size = name.len() + value.len() + 1;
            let times = times.min(self.budget / size).max(1);
            self.spend(size * times);
            for _ in 0..times {
                out.push((name.clone(), value.clone()));
            }
        }
        out
    }
}

/// The names and values a policy mentions: allowed hosts, required headers
/// and their values, header op names and values. The generator picks them
/// so that redirects, required headers and ops are reached.
pub fn words(p: &Policy) -> Vec<Vec<u8>> {
    let mut w: Vec<Vec<u8>> = Vec::new();
    if let Some(h) = &p.https_only {
        for a in &h.hosts {
            w.push(a.host.as_bytes().to_vec());
            w.push(a.location.as_bytes().to_vec());
            w.push(format!("{}:443", a.host).into_bytes());
            w.push(format!("{}.", a.host).into_bytes());
            w.push(a.host.to_ascii_uppercase().into_bytes());
        }
    }
    for r in &p.require_headers {
        w.push(r.name.as_bytes().to_vec());
        w.extend(r.values.iter().cloned());
    }
    for op in p.request_headers.iter().chain(&p.response_headers) {
        w.push(op.name().as_bytes().to_vec());
        if let portcullis_core::policy::HeaderOp::Set { value, .. } = op {
            w.push(value.as_bytes().to_vec());
        }
    }
    // Scopes: their hosts (with case, port and dot variants), their paths
    // (with the tricks normalization must see through) and methods, and
    // the words of each scope's own sections.
    for s in &p.scopes {
        for h in &s.hosts {
            let name = match h {
                portcullis_core::policy::HostPattern::Exact(n) => n.clone(),
                portcullis_core::policy::HostPattern::Wildcard(suffix) => format!("a{suffix}"),
            };
            w.push(name.as_bytes().to_vec());
            w.push(format!("{}.:8443", name.to_ascii_uppercase()).into_bytes());
            w.push(format!("x{name}").into_bytes());
        }
        for path in &s.paths {
            let base = path.base();
            w.push(base.as_bytes().to_vec());
            w.push(format!("{base}/x?q=1").into_bytes());
            w.push(format!("{base}X").into_bytes());
            w.push(format!("/y/..{base}").into_bytes());
            w.push(format!("/%2e%2e/{}", base.trim_start_matches('/')).into_bytes());
            w.push(format!("/{base}/.%2E/z").into_bytes());
            w.push(format!("{base}%2Fx").into_bytes());
            w.push(format!("{base}\\x").into_bytes());
            w.push(format!("{base}/%zz").into_bytes());
        }
        w.extend(s.methods.iter().map(|m| m.as_bytes().to_vec()));
        if s.restated.https_only || s.restated.require_headers {
            w.extend(words(&s.policy));
        }
    }
    w
}

impl Gen {
    /// Decodes an input for a set of `n` policies (`words(i)`: policy `i`'s
    /// dictionary).
    pub fn decode(data: &[u8], n: usize, words: &dyn Fn(usize) -> Vec<Vec<u8>>) -> Gen {
        let policy = match data.first() {
            Some(&b) => usize::from(b) % n.max(1),
            None => 0,
        };
        let w = words(policy);
        let mut r = Reader {
            data: data.get(1..).unwrap_or(&[]),
            words: &w,
            budget: BUDGET,
        };
        let flags = r.u8();
        let peer = r.socket();
        let local = r.socket();
        let method = r.bytes(0);
        let authority = r.bytes(0);
        let path = r.bytes(0);
        let headers = r.headers();
        // Upstream statuses as a proxy sees them (Envoy refuses others).
        let status = 100 + r.u16() % 500;
        let response = r.headers();
        Gen {
            policy,
            peer,
            local,
            tls: flags & 1 != 0,
            transport: if flags & 2 != 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            method,
            authority,
            path,
            headers,
            status,
            response,
        }
    }

    /// The inverse of [`Gen::decode`] (raw encodings only; strings longer
    /// than 65535 bytes are cut).
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        o.push(u8::try_from(self.policy % 256).unwrap_or(0));
        o.push(u8::from(self.tls) | (u8::from(self.transport == Transport::Udp) << 1));
        for s in [self.peer, self.local] {
            match s.ip() {
                IpAddr::V4(a) => {
                    o.push(0);
                    o.extend(a.octets());
                }
                IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(v4) => {
                        o.push(2);
                        o.extend(v4.octets());
                    }
                    None => {
                        o.push(1);
                        o.extend(a.octets());
                    }
                },
            }
            o.push(0);
            o.extend(s.port().to_be_bytes());
        }
        let put = |o: &mut Vec<u8>, b: &[u8]| {
            let b = &b[..b.len().min(65535)];
            if b.len() < 0xf0 {
                o.push(u8::try_from(b.len()).unwrap_or(0));
            } else {
                o.push(0xf0);
                o.extend(u16::try_from(b.len()).unwrap_or(0).to_be_bytes());
            }
            o.extend_from_slice(b);
        };
        put(&mut o, &self.method);
        put(&mut o, &self.authority);
        put(&mut o, &self.path);
        let put_headers = |o: &mut Vec<u8>, h: &[(Vec<u8>, Vec<u8>)]| {
            let h = &h[..h.len().min(255)];
            o.push(u8::try_from(h.len()).unwrap_or(0));
            for (n, v) in h {
                put(o, n);
                put(o, v);
                o.push(0);
            }
        };
        put_headers(&mut o, &self.headers);
        o.extend(self.status.saturating_sub(100).to_be_bytes());
        put_headers(&mut o, &self.response);
        o
    }

    /// The request as a host hands it to the filter: pseudo-headers first.
    pub fn host_headers(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut h = vec![
            (b":method".to_vec(), self.method.clone()),
            (
                b":scheme".to_vec(),
                if self.tls {
                    b"https".to_vec()
                } else {
                    b"http".to_vec()
                },
            ),
            (b":authority".to_vec(), self.authority.clone()),
            (b":path".to_vec(), self.path.clone()),
        ];
        h.extend(self.headers.iter().cloned());
        h
    }

    /// The exchange as a policy test case (method, authority, path and
    /// header names made UTF-8, as the test format wants them).
    pub fn case(&self) -> Case {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let list = |h: &[(Vec<u8>, Vec<u8>)]| -> HeaderList {
            h.iter().map(|(n, v)| (s(n), v.clone())).collect()
        };
        Case {
            name: "generated".into(),
            line: 0,
            request: CaseRequest {
                peer: self.peer,
                local: self.local,
                tls: self.tls,
                transport: self.transport,
                method: s(&self.method),
                authority: s(&self.authority),
                path: s(&self.path),
                headers: list(&self.headers),
            },
            upstream: Upstream {
                status: self.status,
                headers: list(&self.response),
            },
            expect: Expect::default(),
            env: None,
        }
    }

    /// The generated exchange of a test case.
    pub fn from_case(policy: usize, c: &Case) -> Gen {
        let list = |h: &HeaderList| -> Vec<(Vec<u8>, Vec<u8>)> {
            h.iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.clone()))
                .collect()
        };
        Gen {
            policy,
            peer: c.request.peer,
            local: c.request.local,
            tls: c.request.tls,
            transport: c.request.transport,
            method: c.request.method.as_bytes().to_vec(),
            authority: c.request.authority.as_bytes().to_vec(),
            path: c.request.path.as_bytes().to_vec(),
            headers: list(&c.request.headers),
            status: c.upstream.status,
            response: list(&c.upstream.headers),
        }
    }
}

/// Shows bytes for failure reports, cut to a readable length.
pub fn show(b: &[u8]) -> String {
    let s = portcullis_harness::show_bytes(&b[..b.len().min(200)]);
    if b.len() > 200 {
        format!("{s}...({} bytes)", b.len())
    } else {
        s
    }
}

/// One policy of the fixed set.
pub struct Named {
    /// Where it came from.
    pub source: String,
    /// Its text.
    pub text: String,
    /// Compiled.
    pub policy: Policy,
    /// Its dictionary for the generator.
    pub words: Vec<Vec<u8>>,
    /// The host environment it is loaded with (its test file's `env`).
    pub env: Vec<(String, String)>,
}

/// The repository root, from a crate's manifest directory.
pub fn root_from(manifest_dir: &str, up: usize) -> PathBuf {
    let mut p = PathBuf::from(manifest_dir);
    for _ in 0..up {
        p.push("..");
    }
    p
}

/// Every test file of the shared corpus (the one discovery every engine
/// uses: [`portcullis_harness::corpus::files`]).
pub fn test_files(root: &Path) -> Vec<PathBuf> {
    corpus::files(root)
}

/// The fixed policy set of the `decide`, `filter_wasm` and `differential`
/// targets: the sample policies and every valid policy of the test corpus
/// (x-forwarded-for, https_only, require_headers, header ops, HSTS, ...),
/// in a stable order.
pub fn policies(root: &Path) -> Vec<Named> {
    let mut out = Vec::new();
    for p in corpus::sample_policies(root) {
        if let Ok(text) = std::fs::read_to_string(&p) {
            if let Ok(policy) = Policy::parse(text.as_bytes()) {
                out.push(Named {
                    source: p.display().to_string(),
                    words: words(&policy),
                    text,
                    policy,
                    env: Vec::new(),
                });
            }
        }
    }
    for f in test_files(root) {
        // A sample that loads without an environment is in already; one
        // that reads value_from comes in with its test file's env.
        let sample = f.starts_with(root.join("policy-samples"));
        let Ok(Suite {
            file: tf,
            policy: text,
            ..
        }) = Suite::read(&f)
        else {
            continue;
        };
        if tf.expect_policy_error.is_some()
            || (sample && out.iter().any(|n: &Named| n.text == text))
        {
            continue;
        }
        if let Ok(policy) = Policy::parse_with_env(text.as_bytes(), &tf.env) {
            out.push(Named {
                source: f.display().to_string(),
                words: words(&policy),
                text,
                policy,
                env: tf.env.clone(),
            });
        }
    }
    out
}

/// The filter: `$PORTCULLIS_FILTER`, else `dist/portcullis_filter.wasm`.
pub fn filter_path(root: &Path) -> PathBuf {
    std::env::var_os("PORTCULLIS_FILTER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("dist/portcullis_filter.wasm"))
}

/// Compiles the filter (once per process, by the caller).
pub fn filter_engine(root: &Path) -> Result<portcullis_host::Engine, String> {
    portcullis_cli::compile_filter(&filter_path(root))
}

/// A fixed request for policies that only need to be decided once.
pub fn fixed_request_headers() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (
            b"x-forwarded-for".to_vec(),
            b"65.52.10.20, 10.0.0.7".to_vec(),
        ),
        (b"x-forwarded-proto".to_vec(), b"https".to_vec()),
        (b"x-functions-key".to_vec(), b"\xff\xfe".to_vec()),
    ]
}

/// `policy_parse`: any bytes either compile (and then lint, decide, trace
/// and reply without trouble) or are rejected with positioned problems.
pub fn check_parse(data: &[u8]) -> Result<(), String> {
    check_lean(data)?;
    let parsed = Policy::parse(data);
    // The filter's reader: the same verdict and the same problems.
    let owned = Policy::parse_owned_for_decisions(data.to_vec(), &portcullis_core::NoEnv);
    match (&parsed, &owned) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) if a.to_string() == b.to_string() => {}
        _ => {
            return Err(format!(
                "parse and parse_owned_for_decisions disagree: {:?} / {:?}",
                parsed.as_ref().err().map(ToString::to_string),
                owned.as_ref().err().map(ToString::to_string)
            ))
        }
    }
    match parsed {
        Ok(p) => {
            let _ = p.lints();
            let headers = fixed_request_headers();
            // A spread of flows: both families, mapped addresses, edge ports,
            // both transports, TLS and not; each decision held to the
            // invariants (explain() against the compiled table among them).
            let peers = [
                "10.0.0.4:5000",
                "[2001:db8::1]:0",
                "65.52.10.20:65535",
                "[::ffff:192.168.1.1]:443",
                "127.0.0.1:1",
                "[fe80::1]:80",
                "0.0.0.0:0",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            ];
            let locals = [
                "10.0.0.2:443",
                "[::1]:8080",
                "0.0.0.0:0",
                "255.255.255.255:65535",
            ];
            for (i, peer) in peers.iter().enumerate() {
                let req = Request {
                    peer: peer.parse().map_err(|e| format!("{e}"))?,
                    local: locals[i % locals.len()]
                        .parse()
                        .map_err(|e| format!("{e}"))?,
                    tls: i % 2 == 1,
                    transport: if i % 3 == 2 {
                        Transport::Udp
                    } else {
                        Transport::Tcp
                    },
                    method: b"GET",
                    authority: b"api.example.com",
                    path: b"/a?b",
                    headers: &headers,
                };
                check_decision(&p, &req, &headers)?;
            }
            Ok(())
        }
        Err(problems) => {
            if problems.0.is_empty() {
                return Err("rejected with no problem listed".into());
            }
            let text = problems.to_string();
            if text.lines().count() < problems.0.len() {
                return Err(format!("problems do not print one per line: {text:?}"));
            }
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            for p in &problems.0 {
                if p.line == 0 || p.column == 0 || usize::try_from(p.line).unwrap_or(0) > lines {
                    return Err(format!(
                        "problem at an impossible position {}:{} ({lines} lines): {p}",
                        p.line, p.column
                    ));
                }
            }
            Ok(())
        }
    }
}

/// The policy reader's lean JSON tree (address lists kept as text) against
/// the full tree: the same value once the lists are expanded, or the same
/// syntax error.
fn check_lean(data: &[u8]) -> Result<(), String> {
    use portcullis_core::json;
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let lean =
        json::parse_lean(text, portcullis_core::policy::address_list).map(|v| v.expanded(text));
    let full = json::parse(text);
    if full == lean {
        Ok(())
    } else {
        Err(format!(
            "the lean JSON tree differs from the full one: {:?} / {:?}",
            full.err(),
            lean.err()
        ))
    }
}

/// The invariants of one decision (the `decide` target): deterministic,
/// local reply iff stopped, redirects only to allowed hosts over HTTPS,
/// HSTS only on secure responses, explain and decide agree, the trace reads
/// back, denied and allowed as the deciding rule says, required headers
/// really present.
pub fn check_decision(
    p: &Policy,
    req: &Request<'_>,
    upstream: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), String> {
    let d = p.decide(req);
    let again = p.decide(req);
    if d != again {
        return Err(format!("decide is not deterministic: {d:?} then {again:?}"));
    }
    // Report mode never stops a request; the invariants below hold for the
    // decision enforce mode would have made, which `would` carries.
    let d = match d.would.clone() {
        None => d,
        Some(w) => {
            if d.verdict != Verdict::Forward || p.local_reply(&d).is_some() {
                return Err(format!("a report-mode decision stopped the request: {d:?}"));
            }
            portcullis_core::Decision {
                verdict: w.verdict,
                status: w.status,
                step: w.reason.step(),
                reason: w.reason,
                location: w.location,
                would: None,
                ..d
            }
        }
    };
    let reply = p.local_reply(&d);
    if reply.is_some() != (d.verdict != Verdict::Forward) {
        return Err(format!(
            "local reply {:?} for verdict {:?}",
            reply.is_some(),
            d.verdict
        ));
    }
    if d.verdict != d.reason.verdict() || d.step != d.reason.step() {
        return Err(format!("verdict and step do not follow the reason: {d:?}"));
    }
    match d.verdict {
        Verdict::Forward => {
            if d.status != 0 || d.step != Step::Forward || d.location.is_some() {
                return Err(format!("odd forward decision {d:?}"));
            }
        }
        Verdict::Deny => {
            if !(400..=599).contains(&d.status) || d.location.is_some() {
                return Err(format!("odd deny decision {d:?}"));
            }
        }
        Verdict::Redirect => check_redirect(p, &d)?,
    }
    // The client.
    if d.client.ip.is_none()
        && (d.enforced_verdict() != Verdict::Deny || d.deciding_step() != Step::ClientIp)
    {
        return Err(format!("an unknown client was not denied: {d:?}"));
    }
    // The scope: the first whose match holds; an unreadable authority or
    // an ambiguous path is refused with 400 before any scope is chosen.
    // What enforce mode does (report mode forwards it and remembers it).
    let (reason, status) = d
        .would
        .as_ref()
        .map_or((d.reason, d.status), |w| (w.reason, w.status));
    match p.choose_scope(req) {
        Ok(scope) if scope == d.scope && reason.scope_refusal().is_none() => {}
        Err(why) if d.scope.is_none() && reason == why && status == 400 => {}
        other => {
            return Err(format!(
                "choose_scope says {other:?}, decide says {:?} ({})",
                d.scope,
                p.trace(&d)
            ))
        }
    }
    let top = p;
    // Every section below is the scope's (its effective policy).
    let p = p.scoped(d.scope);
    // explain() walks the rules one by one; the compiled table must agree.
    let checks = top.explain(req);
    let decided: Vec<usize> = checks
        .iter()
        .filter(|c| c.decided)
        .map(|c| c.index)
        .collect();
    if decided.len() > 1 || decided.first().copied() != d.rule {
        return Err(format!(
            "explain says rule {decided:?} decides, decide says {:?} ({})",
            d.rule,
            top.trace(&d)
        ));
    }
    // The deciding rule's access is obeyed.
    if let (Some(net), Some(_), false) = (&p.network, d.client.ip, d.deciding_step() == Step::Scope)
    {
        let access = d
            .rule
            .and_then(|i| net.rules.get(i))
            .map_or(net.default_access, |r| r.access);
        let denied_here = d.deciding_step() == Step::Network;
        if (access == portcullis_core::policy::Access::Deny) != denied_here {
            return Err(format!(
                "rule {} has access {access:?} but the step is {:?}",
                p.rule_name(d.rule),
                d.step
            ));
        }
    }
    // Required headers really present when forwarded (by enforce mode).
    if d.enforced_verdict() == Verdict::Forward {
        for r in &p.require_headers {
            let mut ok = false;
            req.headers
                .each_value(&r.name, &mut |v| ok |= r.values.iter().any(|w| w == v));
            if !ok {
                return Err(format!("forwarded without the required header {}", r.name));
            }
        }
        if p.https_only.is_some() && !d.secure {
            return Err("a plain request was forwarded under https_only".into());
        }
    }
    // The trace reads back.
    let line = top.trace(&d);
    let t = Trace::parse(&line).ok_or_else(|| format!("unreadable trace {line:?}"))?;
    let client = d
        .client
        .ip
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    if t.verdict != d.verdict
        || t.would != d.would.as_ref().map(|w| w.verdict)
        || t.status != status
        || t.step != d.deciding_step()
        || t.rule != p.rule_name(d.rule)
        || t.client_ip != client
        || t.scope != top.scope_name(d.scope).unwrap_or(NO_SCOPE)
    {
        return Err(format!("trace {line:?} does not read back as {d:?}"));
    }
    // HSTS: exactly once on secure responses, never on plain ones.
    let mut response: Vec<(String, Vec<u8>)> = match &reply {
        Some(r) => r.headers.clone(),
        None => {
            let mut resp: Vec<(String, Vec<u8>)> = upstream
                .iter()
                .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.clone()))
                .collect();
            let mut edits = Vec::new();
            p.response_edits(d.secure, &upstream.to_vec(), &mut edits);
            apply_edits(&mut resp, &edits);
            resp
        }
    };
    if let Some(h) = &p.hsts {
        response.retain(|(n, _)| n.eq_ignore_ascii_case("strict-transport-security"));
        let want: Vec<&[u8]> = if d.secure {
            vec![h.value.as_bytes()]
        } else {
            vec![]
        };
        let seen: Vec<&[u8]> = response.iter().map(|(_, v)| v.as_slice()).collect();
        if seen != want {
            return Err(format!(
                "secure={} but Strict-Transport-Security is {:?}",
                d.secure,
                seen.iter().map(|v| show(v)).collect::<Vec<_>>()
            ));
        }
    } else if let Some(r) = &reply {
        if r.headers
            .iter()
            .any(|(n, _)| n == "strict-transport-security")
            && !p
                .response_headers
                .iter()
                .any(|o| o.name() == "strict-transport-security")
        {
            return Err("HSTS on a local reply without hsts".into());
        }
    }
    // Request edits never touch what the spec protects.
    let mut edits = Vec::new();
    p.request_edits(req.headers, &mut edits);
    for e in &edits {
        let protected = e.name.starts_with(':')
            || matches!(
                e.name,
                "host"
                    | "connection"
                    | "keep-alive"
                    | "transfer-encoding"
                    | "te"
                    | "upgrade"
                    | "proxy-connection"
            );
        if protected || e.value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(format!("edit {:?} {} {}", e.op, e.name, show(e.value)));
        }
        if e.op == EditOp::Remove && !e.value.is_empty() {
            return Err(format!("remove with a value on {}", e.name));
        }
    }
    Ok(())
}

fn check_redirect(top: &Policy, d: &Decision) -> Result<(), String> {
    let p = top.scoped(d.scope);
    let h = p
        .https_only
        .as_ref()
        .ok_or("a redirect without https_only")?;
    let loc = d
        .location
        .as_deref()
        .ok_or("a redirect without a location")?;
    if ![301, 302, 307, 308].contains(&d.status) || d.step != Step::HttpsOnly || d.secure {
        return Err(format!("odd redirect {d:?}"));
    }
    let rest = loc
        .strip_prefix(b"https://")
        .ok_or_else(|| format!("Location {} is not https://", show(loc)))?;
    if !h.hosts.iter().any(|a| {
        rest.strip_prefix(a.location.as_bytes())
            .is_some_and(|path| path.starts_with(b"/"))
    }) {
        return Err(format!("Location {} names a host not allowed", show(loc)));
    }
    if loc.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(format!("Location {} has control bytes", show(loc)));
    }
    let reply = top.local_reply(d).ok_or("no reply")?;
    let header: Vec<&Vec<u8>> = reply
        .headers
        .iter()
        .filter(|(n, _)| n == "location")
        .map(|(_, v)| v)
        .collect();
    if header != [loc] {
        return Err(format!(
            "reply Location headers {header:?} != {}",
            show(loc)
        ));
    }
    Ok(())
}

/// The `decide` target: the invariants for one generated request.
pub fn check_core(p: &Policy, g: &Gen) -> Result<(), String> {
    let headers = g.host_headers();
    let req = g.request(&headers);
    check_decision(p, &req, &g.response)?;
    // The test-case view of the same exchange holds them too.
    let c = g.case();
    let creq = c.request.as_request();
    check_decision(p, &creq, &g.response)
}

fn lower(h: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    h.iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect()
}

fn show_list(h: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut s = String::from("[");
    for (n, v) in h.iter().take(20) {
        let _ = write!(s, "{}: {}, ", show(n), show(v));
    }
    if h.len() > 20 {
        let _ = write!(s, "... {} headers", h.len());
    }
    s.push(']');
    s
}

/// The `filter_wasm` target: the shipped filter under wasmtime, fed the raw
/// bytes (non-UTF-8 pseudo-headers and names included), never fails on the
/// host side, and does exactly what the core says: same trace, same local
/// reply, same upstream request headers, same response headers.
pub fn check_filter(
    plugin: &mut portcullis_host::Plugin,
    p: &Policy,
    g: &Gen,
) -> Result<(), String> {
    let headers = g.host_headers();
    let req = HttpRequest {
        peer: g.peer,
        local: g.local,
        tls: g.tls,
        protocol: match g.transport {
            Transport::Tcp => "HTTP/1.1".into(),
            Transport::Udp => "HTTP/3".into(),
        },
        headers: headers.clone(),
        body: None,
    };
    let up = HttpResponse {
        status: g.status,
        headers: g.response.clone(),
    };
    let x = plugin.play(&req, &up).map_err(|e| {
        let logs: Vec<String> = plugin
            .last_failure_logs()
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        format!("host error: {e}; logs: {logs:?}")
    })?;
    // What the core says about the same bytes.
    let host_view = lower(&headers);
    let d = p.decide(&g.request(&host_view));
    let want_trace = p.trace(&d);
    let trace = x
        .properties_set
        .iter()
        .rev()
        .find(|(k, _)| *k == p.trace_property())
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    // The policy's `trace` switch says which decisions publish one.
    match (p.trace.selects(&d), trace) {
        (true, None) => return Err("the filter set no trace".into()),
        (false, Some(t)) => {
            return Err(format!(
                "the filter set trace {t:?}, which `trace: {}` leaves out",
                p.trace.as_str()
            ))
        }
        (true, Some(t)) if t != want_trace => {
            return Err(format!("filter trace {t:?}, core {want_trace:?}"));
        }
        _ => {}
    }
    let strip = |h: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        h.iter()
            .filter(|(n, _)| !n.starts_with(b":"))
            .cloned()
            .collect()
    };
    match (p.local_reply(&d), &x.local_reply) {
        (Some(want), Some(got)) => {
            let want_h: Vec<(Vec<u8>, Vec<u8>)> = want
                .headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.clone()))
                .collect();
            let got_h = strip(&x.response_headers);
            if got.status != want.status || x.status != want.status {
                return Err(format!(
                    "local reply status {} / {}, core {}",
                    got.status, x.status, want.status
                ));
            }
            if got_h != want_h {
                return Err(format!(
                    "local reply headers {}, core {}",
                    show_list(&got_h),
                    show_list(&want_h)
                ));
            }
            if got.body != want.body {
                return Err(format!(
                    "local reply body {}, core {}",
                    show(&got.body),
                    show(&want.body)
                ));
            }
            if x.upstream_request_headers.is_some() {
                return Err("a stopped request reached the upstream".into());
            }
        }
        (None, None) => {
            let mut want_up = host_view.clone();
            let mut edits = Vec::new();
            p.scoped(d.scope).request_edits(&host_view, &mut edits);
            apply_edits(&mut want_up, &edits);
            let got_up = x
                .upstream_request_headers
                .as_ref()
                .ok_or("a forwarded request never reached the upstream")?;
            if *got_up != want_up {
                return Err(format!(
                    "upstream headers {}, core {}",
                    show_list(got_up),
                    show_list(&want_up)
                ));
            }
            let resp_view = lower(&g.response);
            let mut want_resp = resp_view.clone();
            edits.clear();
            p.scoped(d.scope)
                .response_edits(d.secure, &resp_view, &mut edits);
            apply_edits(&mut want_resp, &edits);
            let got_resp = strip(&x.response_headers);
            if got_resp != strip(&want_resp) {
                return Err(format!(
                    "response headers {}, core {}",
                    show_list(&got_resp),
                    show_list(&want_resp)
                ));
            }
            if x.status != g.status {
                return Err(format!("status {} != upstream {}", x.status, g.status));
            }
        }
        (want, _) => {
            return Err(format!(
                "core local reply {:?}, filter local reply {:?}",
                want.map(|r| r.status),
                x.local_reply.as_ref().map(|r| r.status)
            ))
        }
    }
    Ok(())
}

/// Header names lowercased, as a proxy keeps them, and names that look
/// like pseudo-headers dropped (`run_wasm` leaves those out of what it reads
/// back; the `filter_wasm` check compares them byte for byte).
fn normalize(mut o: Outcome) -> Outcome {
    let low = |h: &mut HeaderList| {
        h.retain(|(n, _)| !n.starts_with(':'));
        for (n, _) in h.iter_mut() {
            n.make_ascii_lowercase();
        }
    };
    if let Some(u) = o.upstream_headers.as_mut() {
        low(u);
    }
    low(&mut o.response_headers);
    o
}

/// The `differential` target: the same test case on the core
/// (`run_core`) and on the filter under wasmtime (`run_wasm`) gives the same
/// outcome: verdict, status, rule, client, step, location, headers both
/// ways, body (header names compared lowercased, as a proxy keeps them).
pub fn check_differential(
    plugin: &mut portcullis_host::Plugin,
    p: &Policy,
    g: &Gen,
) -> Result<(), String> {
    let c = g.case();
    let core = normalize(run_core(p, &c));
    let wasm = normalize(portcullis_cli::run_wasm(plugin, &c)?);
    if core != wasm {
        let mut diff = String::new();
        macro_rules! field {
            ($f:ident) => {
                if core.$f != wasm.$f {
                    let _ = write!(
                        diff,
                        "{}: core {:?}, wasm {:?}; ",
                        stringify!($f),
                        core.$f,
                        wasm.$f
                    );
                }
            };
        }
        field!(verdict);
        field!(status);
        field!(rule);
        field!(client_ip);
        field!(step);
        field!(trace);
        field!(location);
        field!(upstream_headers);
        field!(response_headers);
        field!(body);
        return Err(format!("core and filter differ: {diff}"));
    }
    Ok(())
}

/// The fuzz checks as an engine of the one runner: a file's policy must
/// be one of the fixture's (or be rejected by the core, for
/// `expect_policy_error` files); each case must encode and decode
/// losslessly and hold the `decide`, `filter_wasm` and `differential`
/// checks, and the core's outcome is then checked against the case's
/// expectations like any engine's.
pub fn run_corpus_file(
    f: &Fixture,
    plugins: &mut [portcullis_host::Plugin],
    suite: &Suite,
) -> FileReport {
    let load = |p: PolicyLoad<'_>| match Policy::parse_with_env(p.text.as_bytes(), &p.env) {
        Err(e) => Loaded::Rejected(Rejection::from_problems(&e)),
        Ok(_) => match f.policies.iter().position(|n| n.text == p.text) {
            Some(idx) => Loaded::Policy(idx),
            None => Loaded::Failed("policy not in the fuzz set".into()),
        },
    };
    let run = |idx: &mut usize, _: usize, c: &Case| {
        let idx = *idx;
        let (Some(named), Some(plugin)) = (f.policies.get(idx), plugins.get_mut(idx)) else {
            return CaseRun::Error(format!("no policy {idx} in the fixture"));
        };
        let g = Gen::from_case(idx, c);
        // The seed encoding is lossless for the corpus.
        let back = f.decode(&g.encode());
        if back != g {
            return CaseRun::Error(format!("encode/decode changed it: {back:?}"));
        }
        let p = &named.policy;
        let checks = [
            check_core(p, &g),
            check_filter(plugin, p, &g),
            check_differential(plugin, p, &g),
        ];
        let errors: Vec<String> = checks.into_iter().filter_map(Result::err).collect();
        if errors.is_empty() {
            CaseRun::Ran(run_core(p, c))
        } else {
            CaseRun::Error(errors.join("; "))
        }
    };
    run_file(suite, load, run)
}

/// What the targets load once per process: the policy set, and (for the
/// wasm targets) the compiled filter with one configured plugin per policy.
pub struct Fixture {
    /// The policies.
    pub policies: Vec<Named>,
    /// The filter configured with each policy, same order.
    pub plugins: std::sync::Mutex<Vec<portcullis_host::Plugin>>,
    /// Kept alive for the plugins.
    pub engine: Option<portcullis_host::Engine>,
}

impl Fixture {
    /// Loads the policies, and the filter when `wasm`. Errors are fatal for
    /// a fuzz run (a missing filter must not look like a clean run).
    pub fn load(root: &Path, wasm: bool) -> Result<Fixture, String> {
        let policies = policies(root);
        if policies.len() < 3 {
            return Err(format!(
                "only {} policies found under {}",
                policies.len(),
                root.display()
            ));
        }
        let (engine, plugins) = if wasm {
            let engine = filter_engine(root)?;
            let mut plugins = Vec::new();
            for n in &policies {
                plugins.push(
                    engine
                        .with_environment(n.env.clone())
                        .configure(n.text.as_bytes())
                        .map_err(|e| format!("{}: the filter refused it: {e}", n.source))?,
                );
            }
            (Some(engine), plugins)
        } else {
            (None, Vec::new())
        };
        Ok(Fixture {
            policies,
            plugins: std::sync::Mutex::new(plugins),
            engine,
        })
    }

    /// Decodes an input against this policy set.
    pub fn decode(&self, data: &[u8]) -> Gen {
        Gen::decode(data, self.policies.len(), &|i| {
            self.policies
                .get(i)
                .map(|n| n.words.clone())
                .unwrap_or_default()
        })
    }

    /// Runs one target's check on an input.
    pub fn run(&self, target: Target, data: &[u8]) -> Result<(), String> {
        if target == Target::PolicyParse {
            return check_parse(data);
        }
        if target == Target::ClientAddr {
            return client_addr::check(data);
        }
        if target == Target::ScopeInput {
            return scope_input::check(data);
        }
        let g = self.decode(data);
        let n = self.policies.get(g.policy).ok_or("no policy")?;
        let ctx = |e: String| format!("{} on {}: {e}", target.name(), n.source);
        match target {
            Target::PolicyParse | Target::ClientAddr | Target::ScopeInput => Ok(()),
            Target::Decide => check_core(&n.policy, &g).map_err(ctx),
            Target::FilterWasm | Target::Differential => {
                let mut plugins = self.plugins.lock().map_err(|_| "plugin lock poisoned")?;
                let plugin = plugins
                    .get_mut(g.policy)
                    .ok_or("no plugin (filter not loaded)")?;
                if target == Target::FilterWasm {
                    check_filter(plugin, &n.policy, &g).map_err(ctx)
                } else {
                    check_differential(plugin, &n.policy, &g).map_err(ctx)
                }
            }
        }
    }
}

/// The fuzz targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Arbitrary bytes as a policy document.
    PolicyParse,
    /// Generated requests on the core.
    Decide,
    /// Generated requests and responses through the filter under wasmtime.
    FilterWasm,
    /// Core and filter side by side on generated test cases.
    Differential,
    /// Raw bytes as client-address header lines (`client_addr.rs`).
    ClientAddr,
    /// Raw bytes as a method, authority and path (`scope_input.rs`).
    ScopeInput,
}

impl Target {
    /// All of them.
    pub const ALL: [Target; 6] = [
        Target::PolicyParse,
        Target::Decide,
        Target::FilterWasm,
        Target::Differential,
        Target::ClientAddr,
        Target::ScopeInput,
    ];
    /// The target's (and its corpus directory's) name.
    pub fn name(self) -> &'static str {
        match self {
            Target::PolicyParse => "policy_parse",
            Target::Decide => "decide",
            Target::FilterWasm => "filter_wasm",
            Target::Differential => "differential",
            Target::ClientAddr => "client_addr",
            Target::ScopeInput => "scope_input",
        }
    }
}
