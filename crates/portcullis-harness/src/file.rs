//! What a policy test file says, as data: the policy, the cases, the
//! expectations. [`TestFile::parse`] fills these in (see [`crate::read`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use portcullis_core::{Request, Step, Transport, Verdict};

/// The request defaults of policy-tests-v1, written once. The reader fills
/// them in; other front-ends that build a request (the playground's request
/// builder, `portcullis explain`) should take them from here.
pub mod defaults {
    use super::*;

    /// `request.tls`.
    pub const TLS: bool = true;
    /// `request.method`.
    pub const METHOD: &str = "GET";
    /// `request.authority` (an extension: the spec leaves it unset).
    pub const AUTHORITY: &str = "localhost";
    /// `request.path`.
    pub const PATH: &str = "/";
    /// `request.protocol` (an extension).
    pub const TRANSPORT: Transport = Transport::Tcp;
    /// `upstream.status`.
    pub const UPSTREAM_STATUS: u16 = 200;

    /// `request.local`: `127.0.0.1:443` with TLS, `127.0.0.1:80` without.
    pub fn local(tls: bool) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), if tls { 443 } else { 80 })
    }
}

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

/// A request as a test case describes it (defaults filled in).
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
    /// A request from `peer` with every other field at its default.
    pub fn from_peer(peer: SocketAddr) -> CaseRequest {
        CaseRequest {
            peer,
            local: defaults::local(defaults::TLS),
            tls: defaults::TLS,
            transport: defaults::TRANSPORT,
            method: defaults::METHOD.to_owned(),
            authority: defaults::AUTHORITY.to_owned(),
            path: defaults::PATH.to_owned(),
            headers: Vec::new(),
        }
    }

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

impl Default for Upstream {
    fn default() -> Upstream {
        Upstream {
            status: defaults::UPSTREAM_STATUS,
            headers: Vec::new(),
        }
    }
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
    /// Where the client came from, as the trace says it: `peer`, or the
    /// source and the entry's index in the walk (`x-forwarded-for[1]`).
    pub client_from: Option<String>,
    /// Why the client is unknown, as the trace says it
    /// (`malformed:"65.52.10.20:99999"`, `no-entry`); `""` for a known one.
    pub client_why: Option<String>,
    /// The scope that applied, as the trace says it: its name, or `-`
    /// (JSON `null`) when none did and the top level alone applied.
    pub scope: Option<String>,
    /// `Location` of a redirect (`(none)` for none).
    pub location: Option<String>,
    /// Step that decided.
    pub step: Option<Step>,
    /// What enforce mode does (an extension for report-mode policies:
    /// `deny` or `redirect` where the request is forwarded; for an
    /// enforcing policy the verdict itself).
    pub would_verdict: Option<Verdict>,
    /// The status enforce mode gives the client (an extension, as above).
    pub would_status: Option<u16>,
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
    /// Name (`case at line N` when the file gives none).
    pub name: String,
    /// Line of the case in its file.
    pub line: u32,
    /// Request.
    pub request: CaseRequest,
    /// Upstream response.
    pub upstream: Upstream,
    /// Expectations.
    pub expect: Expect,
    /// Variables this case sets over the file's `env` (the policy is loaded
    /// again for it); `None` when it sets none.
    pub env: Option<Env>,
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
    /// The host environment the policy is loaded with (`value_from`,
    /// `values_from`), in file order.
    pub env: Env,
}

/// Environment variables as a test file gives them: `(name, value)` pairs.
pub type Env = Vec<(String, String)>;
