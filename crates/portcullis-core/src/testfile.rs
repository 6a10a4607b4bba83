//! Policy test files (policy-tests-v1): reading them, running a case on this
//! engine, and comparing any engine's [`Outcome`] with a case's expectations.
//!
//! Every engine (native, the filter under wasmtime, real Envoy, the
//! playground) turns a [`Case`] into an [`Outcome`] its own way and then calls
//! [`check`], so a case means the same thing everywhere.
//!
//! Optional extensions to the format (all engines accept them):
//! - a request or upstream header value may be `{"hex": "c328"}` for bytes
//!   that are not UTF-8;
//! - `request.protocol`: `"tcp"` (default) or `"udp"` (HTTP/3);
//! - `request.authority` defaults to `localhost`;
//! - `expect.step`: the step that decided (`client_ip`, `scope`, `network`,
//!   `https_only`, `require_headers`, `forward`);
//! - `expect.body_contains`: a substring of the local reply's body;
//! - `expect.would_verdict` / `expect.would_status`: the verdict and the
//!   status enforce mode gives. For a report-mode policy (`"mode":
//!   "report"`) `verdict` is `forward` and `status` the upstream's, while
//!   these say what would have happened (`deny` 403, `redirect` 308, or
//!   `forward`); `step` names the step that would have stopped it.
//! - `expect.scope`: the scope that applied, or `null` for the top level.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::{Error, Problem, Problems};
use crate::eval::{apply_edits, Headers, Request, Transport, Verdict};
use crate::json::{self, Kind, Value};
use crate::policy::Policy;

/// Where a test file's policy is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A path relative to the test file.
    Path(String),
    /// The policy document itself (its JSON text, cut from the test file).
    Inline(String),
}

/// A header list: names as written, values as bytes.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// A request as a test case describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRequest {
    /// Client address and port.
    pub peer: SocketAddr,
    /// Local address and port.
    pub local: SocketAddr,
    /// TLS or not.
    pub tls: bool,
    /// Transport.
    pub transport: Transport,
    /// Method.
    pub method: String,
    /// Authority.
    pub authority: String,
    /// Path and query.
    pub path: String,
    /// Other headers, in order.
    pub headers: HeaderList,
}

impl CaseRequest {
    /// The request as the core sees it.
    pub fn as_request(&self) -> Request<'_> {
        Request {
            peer: self.peer,
            local: self.local,
            tls: self.tls,
            transport: self.transport,
            method: self.method.as_bytes(),
            authority: self.authority.as_bytes(),
            path: self.path.as_bytes(),
            headers: &self.headers,
        }
    }
}

/// The upstream's response, if the request is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderList,
}

/// What a header must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderExpect {
    /// Absent.
    Absent,
    /// Present exactly once with this value.
    One(String),
    /// Present exactly these times with these values, in order.
    Many(Vec<String>),
}

/// A case's expectations; `None` fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Verdict.
    pub verdict: Option<Verdict>,
    /// Status the client sees.
    pub status: Option<u16>,
    /// Deciding rule or `default`.
    pub rule: Option<String>,
    /// Resolved client or `unknown`.
    pub client_ip: Option<String>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// Step that decided.
    pub step: Option<String>,
    /// What enforce mode does (an extension for report-mode policies:
    /// `deny` or `redirect` where the request is forwarded; for an
    /// enforcing policy the verdict itself).
    pub would_verdict: Option<Verdict>,
    /// The status enforce mode gives the client (an extension, as above).
    pub would_status: Option<u16>,
    /// Scope that applied, or `-` (JSON `null`) for the top level.
    pub scope: Option<String>,
    /// Substring of the local reply body.
    pub body_contains: Option<String>,
    /// Headers the upstream must see.
    pub upstream_headers: Vec<(String, HeaderExpect)>,
    /// Headers the client must see.
    pub response_headers: Vec<(String, HeaderExpect)>,
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Name.
    pub name: String,
    /// Line of the case in its file.
    pub line: u32,
    /// Request.
    pub request: CaseRequest,
    /// Upstream response.
    pub upstream: Upstream,
    /// Expectations.
    pub expect: Expect,
}

/// A parsed test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFile {
    /// The policy under test.
    pub policy: PolicySource,
    /// Cases (empty when the policy is expected to be rejected).
    pub cases: Vec<Case>,
    /// JSON paths the policy's errors must name, when it must be rejected.
    pub expect_policy_error: Option<Vec<String>>,
}

/// What an engine saw when it ran a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Verdict.
    pub verdict: Verdict,
    /// Status the client saw.
    pub status: u16,
    /// Deciding rule or `default`.
    pub rule: String,
    /// Resolved client or `unknown`.
    pub client_ip: String,
    /// Step that decided (in report mode, the step that would have
    /// stopped the request, as the trace says).
    pub step: String,
    /// The verdict enforce mode gives.
    pub would_verdict: Verdict,
    /// The status enforce mode gives the client.
    pub would_status: u16,
    /// Scope that applied, or `-`.
    pub scope: String,
    /// The whole trace line, for failure reports.
    pub trace: String,
    /// `Location` the client saw.
    pub location: Option<String>,
    /// Headers the upstream saw, if forwarded.
    pub upstream_headers: Option<HeaderList>,
    /// Headers the client saw.
    pub response_headers: HeaderList,
    /// Body of a local reply.
    pub body: Vec<u8>,
}

/// One expectation not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field, e.g. `status` or `response_headers.server`.
    pub field: String,
    /// Expected, as text.
    pub expected: String,
    /// Seen, as text.
    pub seen: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, seen {}",
            self.field, self.expected, self.seen
        )
    }
}

/// Shows bytes as a JSON-ish string, escaping what is not printable UTF-8.
pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&alloc::format!("\\u{{{:x}}}", c as u32)),
                c => s.push(c),
            }
        }
        for x in chunk.invalid() {
            s.push_str(&alloc::format!("\\x{x:02x}"));
        }
    }
    s.push('"');
    s
}

fn values_of(list: &HeaderList, name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    list.each_value(name, &mut |v| out.push(v.to_vec()));
    out
}

fn show_values(v: &[Vec<u8>]) -> String {
    match v {
        [] => String::from("absent"),
        [one] => show_bytes(one),
        many => {
            let parts: Vec<String> = many.iter().map(|x| show_bytes(x)).collect();
            alloc::format!("[{}]", parts.join(", "))
        }
    }
}

fn check_headers(
    what: &str,
    expect: &[(String, HeaderExpect)],
    seen: Option<&HeaderList>,
    out: &mut Vec<Mismatch>,
) {
    for (name, e) in expect {
        let lname = name.to_ascii_lowercase();
        let got = seen.map(|l| values_of(l, &lname)).unwrap_or_default();
        let (ok, expected) = match e {
            HeaderExpect::Absent => (got.is_empty(), String::from("absent")),
            HeaderExpect::One(v) => (
                got.len() == 1 && got.first().map(Vec::as_slice) == Some(v.as_bytes()),
                show_bytes(v.as_bytes()),
            ),
            HeaderExpect::Many(vs) => {
                let want: Vec<Vec<u8>> = vs.iter().map(|v| v.as_bytes().to_vec()).collect();
                (got == want, show_values(&want))
            }
        };
        if !ok {
            let seen_s = match seen {
                None => String::from("(request not forwarded)"),
                Some(_) => show_values(&got),
            };
            out.push(Mismatch {
                field: alloc::format!("{what}.{lname}"),
                expected,
                seen: seen_s,
            });
        }
    }
}

/// Compares an outcome with a case's expectations.
pub fn check(expect: &Expect, o: &Outcome) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut field = |name: &str, want: Option<String>, seen: String| {
        if let Some(w) = want {
            if w != seen {
                out.push(Mismatch {
                    field: name.to_string(),
                    expected: w,
                    seen,
                });
            }
        }
    };
    field(
        "verdict",
        expect.verdict.map(|v| v.as_str().to_string()),
        o.verdict.as_str().to_string(),
    );
    field(
        "status",
        expect.status.map(|s| s.to_string()),
        o.status.to_string(),
    );
    field("rule", expect.rule.clone(), o.rule.clone());
    field("client_ip", expect.client_ip.clone(), o.client_ip.clone());
    field("step", expect.step.clone(), o.step.clone());
    field("scope", expect.scope.clone(), o.scope.clone());
    field(
        "would_verdict",
        expect.would_verdict.map(|v| v.as_str().to_string()),
        o.would_verdict.as_str().to_string(),
    );
    field(
        "would_status",
        expect.would_status.map(|s| s.to_string()),
        o.would_status.to_string(),
    );
    field(
        "location",
        expect.location.clone(),
        o.location.clone().unwrap_or_else(|| String::from("(none)")),
    );
    if let Some(b) = &expect.body_contains {
        let body = String::from_utf8_lossy(&o.body);
        if !body.contains(b.as_str()) {
            out.push(Mismatch {
                field: String::from("body_contains"),
                expected: show_bytes(b.as_bytes()),
                seen: show_bytes(&o.body),
            });
        }
    }
    check_headers(
        "upstream_headers",
        &expect.upstream_headers,
        o.upstream_headers.as_ref(),
        &mut out,
    );
    check_headers(
        "response_headers",
        &expect.response_headers,
        Some(&o.response_headers),
        &mut out,
    );
    out
}

/// Runs a case on the native engine.
pub fn run_core(policy: &Policy, case: &Case) -> Outcome {
    let req = case.request.as_request();
    let d = policy.decide(&req);
    let trace = policy.trace(&d);
    let client_ip = d
        .client
        .ip
        .map_or_else(|| String::from("unknown"), |ip| ip.to_string());
    let mut o = Outcome {
        verdict: d.verdict,
        status: d.status,
        rule: policy.rule_of(&d).to_string(),
        client_ip,
        step: d.deciding_step().as_str().to_string(),
        would_verdict: d.enforced_verdict(),
        would_status: 0,
        scope: policy
            .scope_name(d.scope)
            .unwrap_or(crate::decide::NO_SCOPE)
            .to_string(),
        trace,
        location: None,
        upstream_headers: None,
        response_headers: Vec::new(),
        body: Vec::new(),
    };
    match policy.local_reply(&d) {
        Some(reply) => {
            o.status = reply.status;
            o.location = reply
                .headers
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            o.response_headers = reply.headers;
            o.body = reply.body;
        }
        None => {
            let mut up = case.request.headers.clone();
            let mut edits = Vec::new();
            let p = policy.scoped(d.scope);
            p.request_edits(&case.request.headers, &mut edits);
            apply_edits(&mut up, &edits);
            o.upstream_headers = Some(up);
            let mut resp = case.upstream.headers.clone();
            edits.clear();
            p.response_edits(d.secure, &case.upstream.headers, &mut edits);
            apply_edits(&mut resp, &edits);
            o.status = case.upstream.status;
            o.response_headers = resp;
        }
    }
    o.would_status = d.would.as_ref().map_or(o.status, |w| w.status);
    o
}

/// Checks a rejected policy against `expect_policy_error`: every listed path
/// must be named by some problem. Returns the paths not named.
pub fn missing_policy_errors<'a>(expected: &'a [String], problems: &Problems) -> Vec<&'a str> {
    expected
        .iter()
        .filter(|want| !problems.0.iter().any(|p| &p.path == *want))
        .map(String::as_str)
        .collect()
}

impl TestFile {
    /// Reads a test file.
    pub fn parse(text: &str) -> Result<TestFile, Problems> {
        let value = json::parse(text).map_err(|e| Problems::syntax(text, &e))?;
        let mut r = Reader {
            text,
            problems: Vec::new(),
        };
        let tf = r.file(&value);
        match tf {
            Some(tf) if r.problems.is_empty() => Ok(tf),
            _ => Err(Problems(r.problems)),
        }
    }
}

struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn err(&mut self, path: &str, v: &Value, error: Error) {
        let (line, column) = json::line_col(self.text, v.span.start);
        self.problems.push(Problem {
            path: path.to_string(),
            line,
            column,
            error,
        });
    }

    fn obj<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<&'v [json::Member]> {
        let Kind::Object(m) = &v.kind else {
            self.err(
                path,
                v,
                Error::WrongType {
                    expected: "an object",
                    found: v.kind_name(),
                },
            );
            return None;
        };
        for (i, mem) in m.iter().enumerate() {
            let p = if path.is_empty() {
                mem.key.clone()
            } else {
                alloc::format!("{path}.{}", mem.key)
            };
            if !allowed.contains(&mem.key.as_str()) {
                self.err(
                    &p,
                    &mem.value,
                    Error::UnknownField {
                        field: mem.key.clone(),
                        expected: allowed,
                    },
                );
            } else if m.iter().take(i).any(|o| o.key == mem.key) {
                self.err(&p, &mem.value, Error::DuplicateKey(mem.key.clone()));
            }
        }
        Some(m)
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.err(
                    path,
                    v,
                    Error::WrongType {
                        expected: "a string",
                        found: v.kind_name(),
                    },
                );
                None
            }
        }
    }

    fn file(&mut self, v: &Value) -> Option<TestFile> {
        self.obj(
            v,
            "",
            &["policy", "cases", "expect_policy_error", "description"],
        )?;
        let policy = match v.get("policy") {
            Some(
                p @ Value {
                    kind: Kind::Object(_),
                    ..
                },
            ) => Some(PolicySource::Inline(
                self.text
                    .get(p.span.start..p.span.end)
                    .unwrap_or("")
                    .to_string(),
            )),
            Some(p) => self.string(p, "policy").map(PolicySource::Path),
            None => {
                self.err("", v, Error::MissingField("policy"));
                None
            }
        };
        let expect_policy_error = match v.get("expect_policy_error") {
            Some(e) => match &e.kind {
                Kind::Array(items) => {
                    let mut out = Vec::new();
                    for (i, it) in items.iter().enumerate() {
                        if let Some(s) =
                            self.string(it, &alloc::format!("expect_policy_error[{i}]"))
                        {
                            out.push(s);
                        }
                    }
                    Some(out)
                }
                _ => {
                    self.err(
                        "expect_policy_error",
                        e,
                        Error::WrongType {
                            expected: "a list",
                            found: e.kind_name(),
                        },
                    );
                    None
                }
            },
            None => None,
        };
        let mut cases = Vec::new();
        match v.get("cases") {
            Some(Value {
                kind: Kind::Array(items),
                ..
            }) => {
                for (i, c) in items.iter().enumerate() {
                    if let Some(c) = self.case(c, &alloc::format!("cases[{i}]")) {
                        cases.push(c);
                    }
                }
            }
            Some(c) => self.err(
                "cases",
                c,
                Error::WrongType {
                    expected: "a list",
                    found: c.kind_name(),
                },
            ),
            None if expect_policy_error.is_none() => self.err("", v, Error::MissingField("cases")),
            None => {}
        }
        if expect_policy_error.is_some() && !cases.is_empty() {
            self.err(
                "cases",
                v,
                Error::Invalid("a file with expect_policy_error has no cases"),
            );
        }
        Some(TestFile {
            policy: policy?,
            cases,
            expect_policy_error,
        })
    }

    fn headers(&mut self, v: Option<&Value>, path: &str) -> Option<HeaderList> {
        let Some(v) = v else { return Some(Vec::new()) };
        let Kind::Array(items) = &v.kind else {
            self.err(
                path,
                v,
                Error::WrongType {
                    expected: "a list of [name, value] pairs",
                    found: v.kind_name(),
                },
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = alloc::format!("{path}[{i}]");
            match &it.kind {
                Kind::Array(pair) if pair.len() == 2 => {
                    let (Some(n), Some(val)) = (pair.first(), pair.get(1)) else {
                        continue;
                    };
                    let name = self.string(n, &p)?;
                    let value = match (&val.kind, val.get("hex")) {
                        (Kind::String(s), _) => s.as_bytes().to_vec(),
                        (Kind::Object(m), Some(h)) if m.len() == 1 => {
                            match h.as_str().and_then(hex) {
                                Some(b) => b,
                                None => {
                                    self.err(
                                        &p,
                                        val,
                                        Error::Invalid("\"hex\" must be pairs of hex digits"),
                                    );
                                    return None;
                                }
                            }
                        }
                        _ => {
                            self.err(
                                &p,
                                val,
                                Error::WrongType {
                                    expected: "a string or {\"hex\": ...}",
                                    found: val.kind_name(),
                                },
                            );
                            return None;
                        }
                    };
                    out.push((name, value));
                }
                _ => {
                    self.err(
                        &p,
                        it,
                        Error::WrongType {
                            expected: "a [name, value] pair",
                            found: it.kind_name(),
                        },
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    fn case(&mut self, v: &Value, path: &str) -> Option<Case> {
        self.obj(
            v,
            path,
            &["name", "request", "upstream", "expect", "description"],
        )?;
        let (line, _) = json::line_col(self.text, v.span.start);
        let name = match v.get("name") {
            Some(n) => self.string(n, &alloc::format!("{path}.name"))?,
            None => alloc::format!("case at line {line}"),
        };
        let Some(rv) = v.get("request") else {
            self.err(path, v, Error::MissingField("request"));
            return None;
        };
        let rp = alloc::format!("{path}.request");
        self.obj(
            rv,
            &rp,
            &[
                "peer",
                "local",
                "tls",
                "method",
                "authority",
                "path",
                "headers",
                "protocol",
            ],
        )?;
        let sock = |r: &mut Self, key: &str| -> Option<Option<SocketAddr>> {
            match rv.get(key) {
                None => Some(None),
                Some(x) => {
                    let p = alloc::format!("{rp}.{key}");
                    let s = r.string(x, &p)?;
                    match crate::addr::parse_socket(&s) {
                        Some((ip, port)) => Some(Some(SocketAddr::new(ip, port))),
                        None => {
                            r.err(
                                &p,
                                x,
                                Error::Invalid("expected address:port ([v6]:port for IPv6)"),
                            );
                            None
                        }
                    }
                }
            }
        };
        let peer = match sock(self, "peer")? {
            Some(p) => p,
            None => {
                self.err(&rp, rv, Error::MissingField("peer"));
                return None;
            }
        };
        let tls = match rv.get("tls") {
            Some(Value {
                kind: Kind::Bool(b),
                ..
            }) => *b,
            Some(x) => {
                self.err(
                    &alloc::format!("{rp}.tls"),
                    x,
                    Error::WrongType {
                        expected: "true or false",
                        found: x.kind_name(),
                    },
                );
                return None;
            }
            None => true,
        };
        let local = sock(self, "local")?.unwrap_or_else(|| {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), if tls { 443 } else { 80 })
        });
        let text = |r: &mut Self, key: &str, default: &str| -> Option<String> {
            match rv.get(key) {
                Some(x) => r.string(x, &alloc::format!("{rp}.{key}")),
                None => Some(default.to_string()),
            }
        };
        let method = text(self, "method", "GET")?;
        let authority = text(self, "authority", "localhost")?;
        let req_path = text(self, "path", "/")?;
        let transport = match text(self, "protocol", "tcp")?.as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            _ => {
                self.err(
                    &alloc::format!("{rp}.protocol"),
                    rv,
                    Error::Invalid("protocol is \"tcp\" or \"udp\""),
                );
                return None;
            }
        };
        let headers = self.headers(rv.get("headers"), &alloc::format!("{rp}.headers"))?;
        let upstream = match v.get("upstream") {
            Some(u) => {
                let up = alloc::format!("{path}.upstream");
                self.obj(u, &up, &["status", "headers"])?;
                let status = match u.get("status") {
                    Some(s) => match s.as_u64().and_then(|n| u16::try_from(n).ok()) {
                        Some(n) if (100..=599).contains(&n) => n,
                        _ => {
                            self.err(
                                &alloc::format!("{up}.status"),
                                s,
                                Error::OutOfRange { min: 100, max: 599 },
                            );
                            return None;
                        }
                    },
                    None => 200,
                };
                Upstream {
                    status,
                    headers: self.headers(u.get("headers"), &alloc::format!("{up}.headers"))?,
                }
            }
            None => Upstream {
                status: 200,
                headers: Vec::new(),
            },
        };
        let expect = match v.get("expect") {
            Some(e) => self.expect(e, &alloc::format!("{path}.expect"))?,
            None => Expect::default(),
        };
        Some(Case {
            name,
            line,
            request: CaseRequest {
                peer,
                local,
                tls,
                transport,
                method,
                authority,
                path: req_path,
                headers,
            },
            upstream,
            expect,
        })
    }

    fn expect(&mut self, v: &Value, path: &str) -> Option<Expect> {
        self.obj(
            v,
            path,
            &[
                "verdict",
                "status",
                "rule",
                "client_ip",
                "location",
                "step",
                "would_verdict",
                "would_status",
                "scope",
                "body_contains",
                "upstream_headers",
                "response_headers",
            ],
        )?;
        let mut e = Expect::default();
        let s = |r: &mut Self, key: &str| -> Option<Option<String>> {
            match v.get(key) {
                Some(x) => r.string(x, &alloc::format!("{path}.{key}")).map(Some),
                None => Some(None),
            }
        };
        if let Some(w) = s(self, "verdict")? {
            match Verdict::from_word(&w) {
                Some(verdict) => e.verdict = Some(verdict),
                None => {
                    let x = v.get("verdict").unwrap_or(v);
                    self.err(
                        &alloc::format!("{path}.verdict"),
                        x,
                        Error::Invalid("verdict is forward, deny or redirect"),
                    );
                    return None;
                }
            }
        }
        if let Some(w) = s(self, "would_verdict")? {
            match Verdict::from_word(&w) {
                Some(verdict) => e.would_verdict = Some(verdict),
                None => {
                    let x = v.get("would_verdict").unwrap_or(v);
                    self.err(
                        &alloc::format!("{path}.would_verdict"),
                        x,
                        Error::Invalid("would_verdict is forward, deny or redirect"),
                    );
                    return None;
                }
            }
        }
        for (key, dst) in [
            ("status", &mut e.status),
            ("would_status", &mut e.would_status),
        ] {
            let Some(st) = v.get(key) else { continue };
            match st.as_u64().and_then(|n| u16::try_from(n).ok()) {
                Some(n) => *dst = Some(n),
                None => {
                    self.err(
                        &alloc::format!("{path}.{key}"),
                        st,
                        Error::OutOfRange { min: 100, max: 599 },
                    );
                    return None;
                }
            }
        }
        e.rule = s(self, "rule")?;
        e.client_ip = s(self, "client_ip")?;
        e.location = s(self, "location")?;
        e.step = s(self, "step")?;
        e.scope = match v.get("scope") {
            Some(x) if matches!(x.kind, Kind::Null) => Some(crate::decide::NO_SCOPE.to_string()),
            Some(x) => Some(self.string(x, &alloc::format!("{path}.scope"))?),
            None => None,
        };
        e.body_contains = s(self, "body_contains")?;
        for (key, dst) in [
            ("upstream_headers", &mut e.upstream_headers),
            ("response_headers", &mut e.response_headers),
        ] {
            let Some(h) = v.get(key) else { continue };
            let hp = alloc::format!("{path}.{key}");
            let Kind::Object(members) = &h.kind else {
                self.err(
                    &hp,
                    h,
                    Error::WrongType {
                        expected: "an object",
                        found: h.kind_name(),
                    },
                );
                return None;
            };
            for m in members {
                let mp = alloc::format!("{hp}.{}", m.key);
                let he = match &m.value.kind {
                    Kind::Null => HeaderExpect::Absent,
                    Kind::String(s) => HeaderExpect::One(s.clone()),
                    Kind::Array(items) => {
                        let mut vs = Vec::new();
                        for it in items {
                            vs.push(self.string(it, &mp)?);
                        }
                        HeaderExpect::Many(vs)
                    }
                    _ => {
                        self.err(
                            &mp,
                            &m.value,
                            Error::WrongType {
                                expected: "a string, null or a list",
                                found: m.value.kind_name(),
                            },
                        );
                        return None;
                    }
                };
                dst.push((m.key.clone(), he));
            }
        }
        Some(e)
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| {
            let t = core::str::from_utf8(p).ok()?;
            u8::from_str_radix(t, 16).ok()
        })
        .collect()
}
