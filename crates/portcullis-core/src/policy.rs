//! The policy document: validation and compilation.
//!
//! [`Policy::parse`] reads a policy-v1 document, checks every rule of the
//! spec and either returns a compiled [`Policy`] or every problem found, each
//! with its JSON path, line and column. Nothing is half-applied.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::addr::{self, AddrSet, Tag};
use crate::error::{Error, Problem, Problems};
use crate::json::{self, Kind, Span, Value};
use crate::matcher::Table;

/// Largest policy document accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 8 << 20;

/// `allow` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Let the request through this step.
    Allow,
    /// Stop it with the deny reply.
    Deny,
}

impl Access {
    /// The policy's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Allow => "allow",
            Access::Deny => "deny",
        }
    }
}

/// The transport a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Any transport.
    Any,
    /// TCP (HTTP/1.1 and HTTP/2).
    Tcp,
    /// UDP (HTTP/3).
    Udp,
}

impl Protocol {
    /// The policy's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Any => "*",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// Whether a request over `t` matches.
    #[inline]
    pub fn matches(self, t: crate::Transport) -> bool {
        match self {
            Protocol::Any => true,
            Protocol::Tcp => t == crate::Transport::Tcp,
            Protocol::Udp => t == crate::Transport::Udp,
        }
    }
}

/// Sorted, merged inclusive port ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet(pub Vec<(u16, u16)>);

impl PortSet {
    /// Every port.
    pub fn any() -> Self {
        PortSet(alloc::vec![(0, u16::MAX)])
    }
    /// Whether every port is in the set.
    pub fn is_any(&self) -> bool {
        self.0.as_slice() == [(0, u16::MAX)]
    }
    /// Whether `p` is in the set.
    pub fn contains(&self, p: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= p && p <= hi)
    }
}

/// `*`, or the ranges as a policy writes them: `80, 443, 454-455`.
impl core::fmt::Display for PortSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_any() {
            return f.write_str("*");
        }
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// One compiled network rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Unique priority, 100..=4096.
    pub priority: u16,
    /// What a match does.
    pub access: Access,
    /// Client addresses.
    pub source: AddrSet,
    /// Client ports.
    pub source_ports: PortSet,
    /// Local (listener) addresses.
    pub destination: AddrSet,
    /// Local ports.
    pub destination_ports: PortSet,
    /// Transport.
    pub protocol: Protocol,
    /// The source specs as written, for explanations.
    pub source_text: Vec<String>,
    /// The destination specs as written (empty when omitted, i.e. `*`).
    pub destination_text: Vec<String>,
    /// The rule's JSON path, e.g. `network.rules[3]`.
    pub path: String,
    /// Line of the rule in the document (1-based).
    pub line: u32,
    /// Byte span of the rule object in the document.
    pub span: Span,
}

impl Rule {
    /// Whether the rule matches any flow whose source it matches.
    pub fn source_only(&self) -> bool {
        self.source_ports.is_any()
            && self.destination.is_any()
            && self.destination_ports.is_any()
            && self.protocol == Protocol::Any
    }
}

/// The `network` section.
#[derive(Debug, Clone)]
pub struct Network {
    /// Rules in priority order (lowest number first).
    pub rules: Vec<Rule>,
    /// What happens when no rule matches.
    pub default_access: Access,
    /// Status of the deny reply.
    pub deny_status: u16,
    /// Body of the deny reply.
    pub deny_body: String,
    /// The compiled matcher.
    pub table: Table,
    /// Line and column of `network.rules`, for errors found compiling it.
    rules_at: (u32, u32),
}

/// Where the client address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFrom {
    /// The TCP peer.
    Peer,
    /// X-Forwarded-For, from trusted proxies only.
    XForwardedFor,
}

/// The `client_ip` section.
#[derive(Debug, Clone)]
pub struct ClientIp {
    /// Source of the address.
    pub from: ClientFrom,
    /// Proxies whose X-Forwarded-For (and X-Forwarded-Proto) are believed.
    pub trusted_proxies: AddrSet,
}

/// What to do with a plain request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpsAction {
    /// Redirect to `https://`.
    Redirect,
    /// Refuse it.
    Reject,
}

/// A host a `Location` may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// The host without port, lowercased, for matching `:authority`.
    pub host: String,
    /// What goes after `https://` (port kept unless 443).
    pub location: String,
}

/// The `https_only` section.
#[derive(Debug, Clone)]
pub struct HttpsOnly {
    /// Redirect or reject.
    pub action: HttpsAction,
    /// Status of a redirect of GET/HEAD.
    pub redirect_status: u16,
    /// Hosts a redirect may name.
    pub hosts: Vec<AllowedHost>,
    /// Status of a reject.
    pub reject_status: u16,
    /// Believe `X-Forwarded-Proto: https` from trusted proxies.
    pub trust_forwarded_proto: bool,
}

/// One `require_headers` entry.
#[derive(Clone)]
pub struct RequiredHeader {
    /// Lowercased name.
    pub name: String,
    /// Accepted values.
    pub values: Vec<Vec<u8>>,
    /// Status when missing or wrong.
    pub status: u16,
}

impl core::fmt::Debug for RequiredHeader {
    // Values are secrets: never printed, not even in debug output.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RequiredHeader")
            .field("name", &self.name)
            .field(
                "values",
                &alloc::format!("<{} redacted>", self.values.len()),
            )
            .field("status", &self.status)
            .finish()
    }
}

/// `exists` of a set op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exists {
    /// Replace all existing values.
    Override,
    /// Keep an existing header untouched.
    Skip,
    /// Add one more value.
    Append,
}

/// A header op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Remove every value of the (lowercased) name.
    Remove(String),
    /// Set the (lowercased) name.
    Set {
        /// Lowercased name.
        name: String,
        /// Value.
        value: String,
        /// What to do when it exists.
        exists: Exists,
    },
}

impl HeaderOp {
    /// The header the op touches.
    pub fn name(&self) -> &str {
        match self {
            HeaderOp::Remove(n) | HeaderOp::Set { name: n, .. } => n,
        }
    }
}

/// The `hsts` section.
#[derive(Debug, Clone)]
pub struct Hsts {
    /// `max-age` in seconds.
    pub max_age: u64,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// `preload`.
    pub preload: bool,
    /// The rendered header value.
    pub value: String,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// Client address resolution.
    pub client_ip: ClientIp,
    /// Network rules, if any.
    pub network: Option<Network>,
    /// HTTPS enforcement, if any.
    pub https_only: Option<HttpsOnly>,
    /// APIM `check-header`s.
    pub require_headers: Vec<RequiredHeader>,
    /// Ops on the forwarded request.
    pub request_headers: Vec<HeaderOp>,
    /// Ops on every response.
    pub response_headers: Vec<HeaderOp>,
    /// HSTS, if any.
    pub hsts: Option<Hsts>,
    /// Address groups by name, resolved.
    pub address_groups: BTreeMap<String, AddrSet>,
}

impl Policy {
    /// Parses and validates a policy document.
    pub fn parse(bytes: &[u8]) -> Result<Policy, Problems> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(Problems(alloc::vec![Problem {
                path: String::new(),
                line: 1,
                column: 1,
                error: Error::TooLarge {
                    limit: MAX_POLICY_BYTES
                },
            }]));
        }
        let text = match core::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let ok = bytes.get(..e.valid_up_to()).unwrap_or(&[]);
                let (line, column) =
                    json::line_col(core::str::from_utf8(ok).unwrap_or(""), ok.len());
                return Err(Problems(alloc::vec![Problem {
                    path: String::new(),
                    line,
                    column,
                    error: Error::NotUtf8,
                }]));
            }
        };
        let value = json::parse(text).map_err(|e| Problems::syntax(text, &e))?;
        let policy = Policy::validate(&value, text)?;
        drop(value);
        policy.compile()
    }

    /// Validates an already parsed document; `text` is the source the spans
    /// point into (used for line and column).
    pub fn from_value(value: &Value, text: &str) -> Result<Policy, Problems> {
        Policy::validate(value, text)?.compile()
    }

    /// Every check but the matcher's own bound.
    fn validate(value: &Value, text: &str) -> Result<Policy, Problems> {
        let mut v = Validator {
            lines: LineIndex::new(text),
            problems: Vec::new(),
            declared_groups: Vec::new(),
        };
        let policy = v.policy(value);
        match policy {
            Some(p) if v.problems.is_empty() => Ok(p),
            _ => {
                v.problems.sort_by_key(|p| (p.line, p.column));
                Err(Problems(v.problems))
            }
        }
    }

    /// Compiles the network rules into the matcher.
    fn compile(mut self) -> Result<Policy, Problems> {
        if let Some(net) = &mut self.network {
            net.table = Table::build(&net.rules).map_err(|error| {
                Problems(alloc::vec![Problem {
                    path: String::from("network.rules"),
                    line: net.rules_at.0,
                    column: net.rules_at.1,
                    error,
                }])
            })?;
        }
        Ok(self)
    }

    /// The `name` of a document, when it is JSON with a well-formed name,
    /// valid or not otherwise: hosts use it to label a rejected policy.
    pub fn name_of(bytes: &[u8]) -> Option<String> {
        let text = core::str::from_utf8(bytes).ok()?;
        let value = json::parse(text).ok()?;
        let name = value.get("name")?.as_str()?;
        is_name(name, 64).then(|| name.to_string())
    }

    /// Name of a rule by index, or `default`.
    pub fn rule_name(&self, rule: Option<usize>) -> &str {
        match (rule, &self.network) {
            (Some(i), Some(n)) => n.rules.get(i).map_or("default", |r| r.name.as_str()),
            _ => "default",
        }
    }

    /// Whether deciding a request needs any request header (beyond the
    /// pseudo-headers used for redirects). Lets hosts skip reading them.
    pub fn reads_request_headers(&self) -> bool {
        self.client_ip.from == ClientFrom::XForwardedFor
            || self
                .https_only
                .as_ref()
                .is_some_and(|h| h.trust_forwarded_proto)
            || !self.require_headers.is_empty()
            || self.request_headers.iter().any(|op| {
                matches!(
                    op,
                    HeaderOp::Set {
                        exists: Exists::Skip,
                        ..
                    }
                )
            })
    }

    /// Whether response edits depend on the response's headers (a `skip`
    /// op), so hosts must pass them.
    pub fn reads_response_headers(&self) -> bool {
        self.response_headers.iter().any(|op| {
            matches!(
                op,
                HeaderOp::Set {
                    exists: Exists::Skip,
                    ..
                }
            )
        })
    }
}

/// Byte offset to line and column, in O(log n).
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        let mut starts = alloc::vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        LineIndex { text, starts }
    }
    fn at(&self, off: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= off).max(1);
        let ls = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(ls..off.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
];

fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn child(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => alloc::format!("{path}.{key}"),
        (_, false) => alloc::format!("{path}[{key:?}]"),
    }
}

fn index(path: &str, i: usize) -> String {
    alloc::format!("{path}[{i}]")
}

struct Validator<'t> {
    lines: LineIndex<'t>,
    problems: Vec<Problem>,
    /// Every address group name declared, resolved or not: a reference to a
    /// broken group is not also reported as unknown.
    declared_groups: Vec<String>,
}

/// An object's first occurrences of the allowed keys.
struct Fields<'v> {
    items: Vec<(&'v str, &'v Value)>,
    span: Span,
}

impl<'v> Fields<'v> {
    fn get(&self, k: &str) -> Option<&'v Value> {
        self.items.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }
}

const TOP: &[&str] = &[
    "name",
    "client_ip",
    "address_groups",
    "network",
    "https_only",
    "require_headers",
    "request_headers",
    "response_headers",
    "hsts",
    "provenance",
];

impl<'t> Validator<'t> {
    fn err(&mut self, path: &str, span: Span, error: Error) {
        let (line, column) = self.lines.at(span.start);
        self.problems.push(Problem {
            path: path.to_string(),
            line,
            column,
            error,
        });
    }

    fn fields<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<Fields<'v>> {
        let Kind::Object(members) = &v.kind else {
            self.err(
                path,
                v.span,
                Error::WrongType {
                    expected: "an object",
                    found: v.kind_name(),
                },
            );
            return None;
        };
        let mut items: Vec<(&'v str, &'v Value)> = Vec::with_capacity(members.len());
        for m in members {
            let p = child(path, &m.key);
            if items.iter().any(|(k, _)| *k == m.key) {
                self.err(&p, m.key_span, Error::DuplicateKey(m.key.clone()));
            } else if !allowed.contains(&m.key.as_str()) {
                self.err(
                    &p,
                    m.key_span,
                    Error::UnknownField {
                        field: m.key.clone(),
                        expected: allowed,
                    },
                );
            } else {
                items.push((&m.key, &m.value));
            }
        }
        Some(Fields {
            items,
            span: v.span,
        })
    }

    fn required<'v>(&mut self, f: &Fields<'v>, path: &str, k: &'static str) -> Option<&'v Value> {
        let v = f.get(k);
        if v.is_none() {
            self.err(path, f.span, Error::MissingField(k));
        }
        v
    }

    fn string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        match &v.kind {
            Kind::String(s) => Some(s),
            _ => {
                self.err(
                    path,
                    v.span,
                    Error::WrongType {
                        expected: "a string",
                        found: v.kind_name(),
                    },
                );
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.err(
                    path,
                    v.span,
                    Error::WrongType {
                        expected: "true or false",
                        found: v.kind_name(),
                    },
                );
                None
            }
        }
    }

    fn integer(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        match (&v.kind, v.as_u64()) {
            (_, Some(n)) if (min..=max).contains(&n) => Some(n),
            (Kind::Number(_), _) => {
                self.err(path, v.span, Error::OutOfRange { min, max });
                None
            }
            _ => {
                self.err(
                    path,
                    v.span,
                    Error::WrongType {
                        expected: "an integer",
                        found: v.kind_name(),
                    },
                );
                None
            }
        }
    }

    fn array<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v [Value]> {
        match &v.kind {
            Kind::Array(a) => Some(a),
            _ => {
                self.err(
                    path,
                    v.span,
                    Error::WrongType {
                        expected: "a list",
                        found: v.kind_name(),
                    },
                );
                None
            }
        }
    }

    fn word(&mut self, v: &Value, path: &str, words: &'static [&'static str]) -> Option<usize> {
        let s = self.string(v, path)?;
        match words.iter().position(|w| w.eq_ignore_ascii_case(s)) {
            Some(i) => Some(i),
            None => {
                self.err(
                    path,
                    v.span,
                    Error::NotOneOf {
                        found: s.to_string(),
                        expected: words,
                    },
                );
                None
            }
        }
    }

    fn status(
        &mut self,
        v: Option<&Value>,
        path: &str,
        default: u16,
        allowed: &'static [u16],
        desc: &'static str,
    ) -> Option<u16> {
        let Some(v) = v else { return Some(default) };
        let n = match &v.kind {
            Kind::Number(_) => v.as_u64(),
            _ => {
                self.err(
                    path,
                    v.span,
                    Error::WrongType {
                        expected: "an integer",
                        found: v.kind_name(),
                    },
                );
                return None;
            }
        };
        match n.and_then(|n| u16::try_from(n).ok()) {
            Some(s) if (allowed.is_empty() && (400..=599).contains(&s)) || allowed.contains(&s) => {
                Some(s)
            }
            _ => {
                self.err(path, v.span, Error::BadStatus { allowed: desc });
                None
            }
        }
    }

    fn policy(&mut self, v: &Value) -> Option<Policy> {
        let f = self.fields(v, "", TOP)?;
        let name = self.required(&f, "", "name").and_then(|n| {
            let s = self.string(n, "name")?;
            if is_name(s, 64) {
                Some(s.to_string())
            } else {
                self.err(
                    "name",
                    n.span,
                    Error::BadName {
                        pattern: "[A-Za-z0-9._-]{1,64}",
                    },
                );
                None
            }
        });
        let groups = match f.get("address_groups") {
            Some(g) => self.groups(g),
            None => Some(BTreeMap::new()),
        };
        let groups_ok = groups.is_some();
        let groups = groups.unwrap_or_default();
        // Hook: the optional `provenance` object (see provenance.rs).
        for (path, span, e) in f.get("provenance").map_or_else(Vec::new, |p| {
            crate::provenance::check(p, &self.declared_groups)
        }) {
            self.err(&path, span, e);
        }
        let client_ip = match f.get("client_ip") {
            Some(c) => self.client_ip(c, &groups),
            None => Some(ClientIp {
                from: ClientFrom::Peer,
                trusted_proxies: AddrSet::default(),
            }),
        };
        let network = match f.get("network") {
            Some(n) => self.network(n, &groups).map(Some),
            None => Some(None),
        };
        let https_only = match f.get("https_only") {
            Some(h) => self.https_only(h).map(Some),
            None => Some(None),
        };
        if let (Some(Some(h)), Some(c)) = (&https_only, &client_ip) {
            if h.trust_forwarded_proto && c.trusted_proxies.is_empty() {
                let span = f.get("https_only").map(|v| v.span).unwrap_or_default();
                self.err(
                    "https_only.trust_forwarded_proto",
                    span,
                    Error::Conflict("trust_forwarded_proto needs client_ip.trusted_proxies"),
                );
            }
        }
        let require_headers = match f.get("require_headers") {
            Some(r) => self.require_headers(r),
            None => Some(Vec::new()),
        };
        let request_headers = match f.get("request_headers") {
            Some(r) => self.header_ops(r, "request_headers"),
            None => Some(Vec::new()),
        };
        let response_headers = match f.get("response_headers") {
            Some(r) => self.header_ops(r, "response_headers"),
            None => Some(Vec::new()),
        };
        let hsts = match f.get("hsts") {
            Some(h) => self.hsts(h).map(Some),
            None => Some(None),
        };
        Some(Policy {
            name: name?,
            client_ip: client_ip?,
            network: network?,
            https_only: https_only?,
            require_headers: require_headers?,
            request_headers: request_headers?,
            response_headers: response_headers?,
            hsts: hsts?,
            address_groups: if groups_ok { groups } else { return None },
        })
    }

    fn groups(&mut self, v: &Value) -> Option<BTreeMap<String, AddrSet>> {
        let Kind::Object(members) = &v.kind else {
            self.err(
                "address_groups",
                v.span,
                Error::WrongType {
                    expected: "an object",
                    found: v.kind_name(),
                },
            );
            return None;
        };
        let before = self.problems.len();
        let mut raw: BTreeMap<&str, (&Value, String)> = BTreeMap::new();
        for m in members {
            let p = child("address_groups", &m.key);
            if raw.contains_key(m.key.as_str()) {
                self.err(&p, m.key_span, Error::DuplicateKey(m.key.clone()));
            } else if Tag::from_name(&m.key).is_some() {
                self.err(&p, m.key_span, Error::GroupShadowsTag(m.key.clone()));
            } else if !is_name(&m.key, 64) {
                self.err(
                    &p,
                    m.key_span,
                    Error::BadName {
                        pattern: "[A-Za-z0-9._-]{1,64}",
                    },
                );
            } else {
                raw.insert(&m.key, (&m.value, p));
            }
            self.declared_groups.push(m.key.clone());
        }
        // Resolve each group, depth first, refusing cycles.
        let mut done: BTreeMap<String, AddrSet> = BTreeMap::new();
        let names: Vec<&str> = raw.keys().copied().collect();
        for n in names {
            let mut stack = Vec::new();
            self.resolve_group(n, &raw, &mut done, &mut stack);
        }
        (self.problems.len() == before).then_some(done)
    }

    fn resolve_group(
        &mut self,
        name: &str,
        raw: &BTreeMap<&str, (&Value, String)>,
        done: &mut BTreeMap<String, AddrSet>,
        stack: &mut Vec<String>,
    ) -> Option<AddrSet> {
        if let Some(s) = done.get(name) {
            return Some(s.clone());
        }
        let (v, path) = raw.get(name)?;
        if stack.iter().any(|s| s == name) || stack.len() > 32 {
            self.err(path, v.span, Error::GroupCycle(name.to_string()));
            return None;
        }
        stack.push(name.to_string());
        let mut set = AddrSet::default();
        let mut ok = true;
        if let Some(items) = self.array(v, path) {
            if items.is_empty() {
                self.err(path, v.span, Error::Empty);
                ok = false;
            }
            for (i, it) in items.iter().enumerate() {
                let p = index(path, i);
                let Some(s) = self.string(it, &p) else {
                    ok = false;
                    continue;
                };
                if Tag::from_name(s).is_none()
                    && addr::parse_literal(s).is_err()
                    && raw.contains_key(s)
                {
                    match self.resolve_group(s, raw, done, stack) {
                        Some(g) => set.extend(&g),
                        None => ok = false,
                    }
                    continue;
                }
                match self.spec(s, it.span, &p, &BTreeMap::new()) {
                    Some(g) => set.extend(&g),
                    None => ok = false,
                }
            }
        } else {
            ok = false;
        }
        stack.pop();
        set.normalize();
        if ok {
            done.insert(name.to_string(), set.clone());
            Some(set)
        } else {
            None
        }
    }

    /// One address spec: tag, group, or literal.
    fn spec(
        &mut self,
        s: &str,
        span: Span,
        path: &str,
        groups: &BTreeMap<String, AddrSet>,
    ) -> Option<AddrSet> {
        if let Some(t) = Tag::from_name(s) {
            return Some(t.set());
        }
        if let Some(g) = groups.get(s) {
            return Some(g.clone());
        }
        match addr::parse_literal(s) {
            Ok(set) => Some(set),
            Err(addr::AddrProblem::Unrecognized) if is_name(s, 64) => {
                // A declared group that failed to resolve was reported where
                // it is defined; anything else is unknown.
                if !self.declared_groups.iter().any(|g| g == s) {
                    self.err(path, span, Error::UnknownGroup(s.to_string()));
                }
                None
            }
            Err(problem) => {
                self.err(
                    path,
                    span,
                    Error::BadAddress {
                        text: s.to_string(),
                        problem,
                    },
                );
                None
            }
        }
    }

    fn specs(
        &mut self,
        v: &Value,
        path: &str,
        groups: &BTreeMap<String, AddrSet>,
        texts: Option<&mut Vec<String>>,
    ) -> Option<AddrSet> {
        let items = self.array(v, path)?;
        if items.is_empty() {
            self.err(path, v.span, Error::Empty);
            return None;
        }
        let mut set = AddrSet::default();
        let mut ok = true;
        let mut t = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = index(path, i);
            match self.string(it, &p) {
                Some(s) => {
                    t.push(s.to_string());
                    match self.spec(s, it.span, &p, groups) {
                        Some(g) => set.extend(&g),
                        None => ok = false,
                    }
                }
                None => ok = false,
            }
        }
        if let Some(out) = texts {
            *out = t;
        }
        set.normalize();
        ok.then_some(set)
    }

    fn client_ip(&mut self, v: &Value, groups: &BTreeMap<String, AddrSet>) -> Option<ClientIp> {
        let f = self.fields(v, "client_ip", &["from", "trusted_proxies"])?;
        let from = match f.get("from") {
            Some(x) => match self.word(x, "client_ip.from", &["peer", "x-forwarded-for"])? {
                0 => ClientFrom::Peer,
                _ => ClientFrom::XForwardedFor,
            },
            None => ClientFrom::Peer,
        };
        let trusted = match f.get("trusted_proxies") {
            Some(t) => self.specs(t, "client_ip.trusted_proxies", groups, None)?,
            None if from == ClientFrom::XForwardedFor => {
                self.err("client_ip", f.span, Error::MissingField("trusted_proxies"));
                return None;
            }
            None => AddrSet::default(),
        };
        Some(ClientIp {
            from,
            trusted_proxies: trusted,
        })
    }

    fn ports(&mut self, v: Option<&Value>, path: &str) -> Option<PortSet> {
        let Some(v) = v else {
            return Some(PortSet::any());
        };
        let items = self.array(v, path)?;
        if items.is_empty() {
            self.err(path, v.span, Error::Empty);
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let p = index(path, i);
            let parsed = match &it.kind {
                Kind::String(s) => parse_port_spec(s).ok_or_else(|| s.clone()),
                Kind::Number(n) => n.parse::<u16>().map(|p| (p, p)).map_err(|_| n.clone()),
                _ => {
                    self.err(
                        &p,
                        it.span,
                        Error::WrongType {
                            expected: "a port spec string",
                            found: it.kind_name(),
                        },
                    );
                    ok = false;
                    continue;
                }
            };
            match parsed {
                Ok(r) => out.push(r),
                Err(s) => {
                    self.err(&p, it.span, Error::BadPort(s));
                    ok = false;
                }
            }
        }
        out.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in out {
            match merged.last_mut() {
                Some(l) if lo <= l.1.saturating_add(1) || l.1 == u16::MAX => l.1 = l.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        ok.then_some(PortSet(merged))
    }

    fn network(&mut self, v: &Value, groups: &BTreeMap<String, AddrSet>) -> Option<Network> {
        let f = self.fields(v, "network", &["rules", "default_access", "deny"])?;
        let default_access = match f.get("default_access") {
            Some(d) => match self.word(d, "network.default_access", &["allow", "deny"]) {
                Some(0) => Some(Access::Allow),
                Some(_) => Some(Access::Deny),
                None => None,
            },
            None => Some(Access::Deny),
        };
        let deny = match f.get("deny") {
            Some(d) => self.deny(d),
            None => Some((403, String::from("Forbidden\n"))),
        };
        let rules_v = self.required(&f, "network", "rules");
        let mut rules = Vec::new();
        let mut ok = rules_v.is_some();
        if let Some(list) = rules_v.and_then(|r| self.array(r, "network.rules")) {
            for (i, r) in list.iter().enumerate() {
                match self.rule(r, &index("network.rules", i), groups) {
                    Some(rule) => rules.push(rule),
                    None => ok = false,
                }
            }
        } else {
            ok = false;
        }
        // Unique names and priorities, naming both rules. Read from the raw
        // rule objects so that rules with other mistakes still take part.
        if let Some(Kind::Array(list)) = rules_v.map(|r| &r.kind) {
            // First rule (path, name) per name and per priority.
            let mut names: BTreeMap<&str, String> = BTreeMap::new();
            let mut prios: BTreeMap<u64, (String, Option<&str>)> = BTreeMap::new();
            for (i, r) in list.iter().enumerate() {
                let path = index("network.rules", i);
                let name = r.get("name").and_then(Value::as_str);
                let prio = r.get("priority").and_then(Value::as_u64);
                if let Some(n) = name {
                    if let Some(other) = names.get(n) {
                        let span = r.get("name").map_or(r.span, |v| v.span);
                        let e = Error::DuplicateRuleName {
                            name: n.to_string(),
                            other: other.clone(),
                        };
                        self.err(&child(&path, "name"), span, e);
                        ok = false;
                    } else {
                        names.insert(n, path.clone());
                    }
                }
                if let Some(p) = prio {
                    if let Some((other, other_name)) = prios.get(&p) {
                        let span = r.get("priority").map_or(r.span, |v| v.span);
                        let e = Error::DuplicatePriority {
                            priority: p,
                            other_name: other_name.unwrap_or("?").to_string(),
                            other: other.clone(),
                        };
                        self.err(&child(&path, "priority"), span, e);
                        ok = false;
                    } else {
                        prios.insert(p, (path, name));
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        let (deny_status, deny_body) = deny?;
        let default_access = default_access?;
        rules.sort_by_key(|r| r.priority);
        // The matcher is compiled by `Policy::compile`, once the JSON tree
        // can be dropped: the peak memory of a large policy is lower then.
        let (line, column) = self.lines.at(rules_v.map_or(v.span, |r| r.span).start);
        Some(Network {
            rules,
            default_access,
            deny_status,
            deny_body,
            table: Table::default(),
            rules_at: (line, column),
        })
    }

    fn deny(&mut self, v: &Value) -> Option<(u16, String)> {
        let f = self.fields(v, "network.deny", &["status", "body"])?;
        let status = self.status(
            f.get("status"),
            "network.deny.status",
            403,
            &[],
            "from 400 to 599",
        );
        let body = match f.get("body") {
            Some(b) => self.string(b, "network.deny.body").map(|s| s.to_string()),
            None => Some(String::from("Forbidden\n")),
        };
        Some((status?, body?))
    }

    fn rule(&mut self, v: &Value, path: &str, groups: &BTreeMap<String, AddrSet>) -> Option<Rule> {
        const RULE: &[&str] = &[
            "name",
            "priority",
            "access",
            "source",
            "source_ports",
            "destination",
            "destination_ports",
            "protocol",
            "description",
        ];
        let f = self.fields(v, path, RULE)?;
        let name = self.required(&f, path, "name").and_then(|n| {
            let p = child(path, "name");
            let s = self.string(n, &p)?;
            if s.is_empty() || s.len() > 80 || s.chars().any(char::is_control) {
                self.err(
                    &p,
                    n.span,
                    Error::BadName {
                        pattern: "1 to 80 printable characters",
                    },
                );
                None
            } else {
                Some(s.to_string())
            }
        });
        let priority = self
            .required(&f, path, "priority")
            .and_then(|p| self.integer(p, &child(path, "priority"), 100, 4096));
        let access = self.required(&f, path, "access").and_then(|a| {
            match self.word(a, &child(path, "access"), &["allow", "deny"])? {
                0 => Some(Access::Allow),
                _ => Some(Access::Deny),
            }
        });
        let mut source_text = Vec::new();
        let source = self
            .required(&f, path, "source")
            .and_then(|s| self.specs(s, &child(path, "source"), groups, Some(&mut source_text)));
        let source_ports = self.ports(f.get("source_ports"), &child(path, "source_ports"));
        let mut destination_text = Vec::new();
        let destination = match f.get("destination") {
            Some(d) => self.specs(
                d,
                &child(path, "destination"),
                groups,
                Some(&mut destination_text),
            ),
            None => Some(AddrSet::any()),
        };
        let destination_ports = self.ports(
            f.get("destination_ports"),
            &child(path, "destination_ports"),
        );
        let protocol = match f.get("protocol") {
            Some(p) => match self.word(p, &child(path, "protocol"), &["*", "tcp", "udp"]) {
                Some(0) => Some(Protocol::Any),
                Some(1) => Some(Protocol::Tcp),
                Some(_) => Some(Protocol::Udp),
                None => None,
            },
            None => Some(Protocol::Any),
        };
        if let Some(d) = f.get("description") {
            self.string(d, &child(path, "description"));
        }
        let (line, _) = self.lines.at(v.span.start);
        Some(Rule {
            name: name?,
            priority: u16::try_from(priority?).ok()?,
            access: access?,
            source: source?,
            source_ports: source_ports?,
            destination: destination?,
            destination_ports: destination_ports?,
            protocol: protocol?,
            source_text,
            destination_text,
            path: path.to_string(),
            line,
            span: v.span,
        })
    }

    fn https_only(&mut self, v: &Value) -> Option<HttpsOnly> {
        const P: &str = "https_only";
        let f = self.fields(
            v,
            P,
            &[
                "action",
                "redirect_status",
                "hosts",
                "reject_status",
                "trust_forwarded_proto",
            ],
        )?;
        let action = self.required(&f, P, "action").and_then(|a| {
            match self.word(a, "https_only.action", &["redirect", "reject"])? {
                0 => Some(HttpsAction::Redirect),
                _ => Some(HttpsAction::Reject),
            }
        });
        let redirect_status = self.status(
            f.get("redirect_status"),
            "https_only.redirect_status",
            308,
            &[301, 302, 307, 308],
            "301, 302, 307 or 308",
        );
        let reject_status = self.status(
            f.get("reject_status"),
            "https_only.reject_status",
            403,
            &[],
            "from 400 to 599",
        );
        let trust = match f.get("trust_forwarded_proto") {
            Some(t) => self.boolean(t, "https_only.trust_forwarded_proto"),
            None => Some(false),
        };
        let mut hosts = Vec::new();
        let mut hosts_ok = true;
        match f.get("hosts") {
            Some(h) => match self.array(h, "https_only.hosts") {
                Some(items) => {
                    if items.is_empty() && action == Some(HttpsAction::Redirect) {
                        self.err("https_only.hosts", h.span, Error::RedirectWithoutHosts);
                        hosts_ok = false;
                    }
                    for (i, it) in items.iter().enumerate() {
                        let p = index("https_only.hosts", i);
                        match self.string(it, &p) {
                            Some(s) => match parse_host(s) {
                                Some(h) => hosts.push(h),
                                None => {
                                    self.err(&p, it.span, Error::BadHost(s.to_string()));
                                    hosts_ok = false;
                                }
                            },
                            None => hosts_ok = false,
                        }
                    }
                }
                None => hosts_ok = false,
            },
            None if action == Some(HttpsAction::Redirect) => {
                self.err(P, f.span, Error::RedirectWithoutHosts);
                hosts_ok = false;
            }
            None => {}
        }
        if !hosts_ok {
            return None;
        }
        Some(HttpsOnly {
            action: action?,
            redirect_status: redirect_status?,
            hosts,
            reject_status: reject_status?,
            trust_forwarded_proto: trust?,
        })
    }

    fn header_name(&mut self, v: &Value, path: &str, for_ops: bool) -> Option<String> {
        let s = self.string(v, path)?;
        if s.starts_with(':') {
            self.err(
                path,
                v.span,
                Error::ForbiddenHeader {
                    name: s.to_string(),
                    why: "pseudo-headers belong to the proxy",
                },
            );
            return None;
        }
        if !is_token(s) {
            self.err(path, v.span, Error::BadHeaderName);
            return None;
        }
        let lower = s.to_ascii_lowercase();
        if for_ops {
            if HOP_BY_HOP.contains(&lower.as_str()) {
                self.err(
                    path,
                    v.span,
                    Error::ForbiddenHeader {
                        name: lower,
                        why: "hop-by-hop headers belong to the connection",
                    },
                );
                return None;
            }
            if lower == "host" {
                self.err(
                    path,
                    v.span,
                    Error::ForbiddenHeader {
                        name: lower,
                        why: "the host decides routing",
                    },
                );
                return None;
            }
        }
        Some(lower)
    }

    fn header_value(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            self.err(path, v.span, Error::BadHeaderValue);
            return None;
        }
        Some(s.to_string())
    }

    fn header_ops(&mut self, v: &Value, path: &str) -> Option<Vec<HeaderOp>> {
        let items = self.array(v, path)?;
        let mut ops = Vec::new();
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let p = index(path, i);
            let Some(f) = self.fields(it, &p, &["remove", "set", "value", "exists"]) else {
                ok = false;
                continue;
            };
            let op = match (f.get("remove"), f.get("set")) {
                (Some(r), None) => {
                    if f.get("value").is_some() || f.get("exists").is_some() {
                        self.err(
                            &p,
                            it.span,
                            Error::Conflict("\"remove\" takes no \"value\" or \"exists\""),
                        );
                        None
                    } else {
                        self.header_name(r, &child(&p, "remove"), true)
                            .map(HeaderOp::Remove)
                    }
                }
                (None, Some(s)) => {
                    let name = self.header_name(s, &child(&p, "set"), true);
                    let value = match f.get("value") {
                        Some(v) => self.header_value(v, &child(&p, "value")),
                        None => {
                            self.err(&p, it.span, Error::MissingField("value"));
                            None
                        }
                    };
                    let exists = match f.get("exists") {
                        Some(e) => match self.word(
                            e,
                            &child(&p, "exists"),
                            &["override", "skip", "append"],
                        ) {
                            Some(0) => Some(Exists::Override),
                            Some(1) => Some(Exists::Skip),
                            Some(_) => Some(Exists::Append),
                            None => None,
                        },
                        None => Some(Exists::Override),
                    };
                    match (name, value, exists) {
                        (Some(name), Some(value), Some(exists)) => Some(HeaderOp::Set {
                            name,
                            value,
                            exists,
                        }),
                        _ => None,
                    }
                }
                _ => {
                    self.err(&p, it.span, Error::BadHeaderOp);
                    None
                }
            };
            match op {
                Some(op) => ops.push(op),
                None => ok = false,
            }
        }
        ok.then_some(ops)
    }

    fn require_headers(&mut self, v: &Value) -> Option<Vec<RequiredHeader>> {
        let items = self.array(v, "require_headers")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let p = index("require_headers", i);
            let Some(f) = self.fields(it, &p, &["name", "values", "status"]) else {
                ok = false;
                continue;
            };
            let name = self
                .required(&f, &p, "name")
                .and_then(|n| self.header_name(n, &child(&p, "name"), false));
            let status = self.status(
                f.get("status"),
                &child(&p, "status"),
                401,
                &[],
                "from 400 to 599",
            );
            let values = self.required(&f, &p, "values").and_then(|vs| {
                let vp = child(&p, "values");
                let list = self.array(vs, &vp)?;
                if list.is_empty() {
                    self.err(&vp, vs.span, Error::Empty);
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for (j, x) in list.iter().enumerate() {
                    let xp = index(&vp, j);
                    match self.header_value(x, &xp) {
                        Some(s) if s.is_empty() => {
                            self.err(&xp, x.span, Error::Empty);
                            ok = false;
                        }
                        Some(s) => out.push(s.into_bytes()),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            });
            match (name, values, status) {
                (Some(name), Some(values), Some(status)) => out.push(RequiredHeader {
                    name,
                    values,
                    status,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn hsts(&mut self, v: &Value) -> Option<Hsts> {
        let f = self.fields(v, "hsts", &["max_age", "include_subdomains", "preload"])?;
        let max_age = self
            .required(&f, "hsts", "max_age")
            .and_then(|m| self.integer(m, "hsts.max_age", 0, u64::from(u32::MAX)));
        let sub = match f.get("include_subdomains") {
            Some(b) => self.boolean(b, "hsts.include_subdomains"),
            None => Some(false),
        };
        let preload = match f.get("preload") {
            Some(b) => self.boolean(b, "hsts.preload"),
            None => Some(false),
        };
        let (max_age, sub, preload) = (max_age?, sub?, preload?);
        if preload && (max_age < 31_536_000 || !sub) {
            let span = f.get("preload").map_or(f.span, |p| p.span);
            self.err("hsts.preload", span, Error::PreloadPrerequisites);
            return None;
        }
        let mut value = alloc::format!("max-age={max_age}");
        if sub {
            value.push_str("; includeSubDomains");
        }
        if preload {
            value.push_str("; preload");
        }
        Some(Hsts {
            max_age,
            include_subdomains: sub,
            preload,
            value,
        })
    }
}

/// `"*"`, `"443"` or `"454-455"`.
pub fn parse_port_spec(s: &str) -> Option<(u16, u16)> {
    fn port(t: &str) -> Option<u16> {
        if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if t.len() > 1 && t.starts_with('0') {
            return None;
        }
        t.parse::<u16>().ok()
    }
    if s == "*" {
        return Some((0, u16::MAX));
    }
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

/// A `hosts` entry: DNS name, IPv4 or `[IPv6]`, optional `:port`.
fn parse_host(s: &str) -> Option<AllowedHost> {
    let (host, port) = split_host_port(s.as_bytes())?;
    let host = core::str::from_utf8(host).ok()?;
    let ok_host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<core::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !ok_host {
        return None;
    }
    let lower = host.to_ascii_lowercase();
    let location = match port {
        Some(p) if p != 443 => alloc::format!("{lower}:{p}"),
        _ => lower.clone(),
    };
    Some(AllowedHost {
        host: lower,
        location,
    })
}

/// Splits `host[:port]` / `[v6][:port]`; `None` if the port is malformed.
pub(crate) fn split_host_port(a: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, rest) = if a.first() == Some(&b'[') {
        let end = a.iter().position(|&b| b == b']')?;
        a.split_at(end + 1)
    } else {
        match a.iter().rposition(|&b| b == b':') {
            Some(i) => a.split_at(i),
            None => (a, &[][..]),
        }
    };
    if rest.is_empty() {
        return Some((host, None));
    }
    let digits = rest.strip_prefix(b":")?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let p = core::str::from_utf8(digits).ok()?.parse::<u16>().ok()?;
    Some((host, Some(p)))
}
