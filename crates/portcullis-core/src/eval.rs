//! Deciding a request, and the header edits that follow.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use crate::addr::{self, Key};
use crate::policy::{split_host_port, Access, ClientFrom, Exists, HeaderOp, HttpsAction, Policy};

/// Request headers as a host holds them. Names are matched
/// case-insensitively; values are bytes and need not be UTF-8.
pub trait Headers {
    /// Calls `f` with every value of `name` (given lowercase), in order.
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8]));

    /// Whether the header is present.
    fn has(&self, name: &str) -> bool {
        let mut found = false;
        self.each_value(name, &mut |_| found = true);
        found
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Headers for [(N, V)] {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self {
            if n.as_ref().eq_ignore_ascii_case(name.as_bytes()) {
                f(v.as_ref());
            }
        }
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>, const K: usize> Headers for [(N, V); K] {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().each_value(name, f);
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Headers for Vec<(N, V)> {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().each_value(name, f);
    }
}

/// The transport of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/1.x or HTTP/2 over TCP.
    Tcp,
    /// HTTP/3 over UDP.
    Udp,
}

impl Transport {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// What a host knows about a request.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The TCP (or UDP) peer.
    pub peer: SocketAddr,
    /// The local (listener) address.
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Transport.
    pub transport: Transport,
    /// `:method`.
    pub method: &'a [u8],
    /// `:authority` (or Host).
    pub authority: &'a [u8],
    /// `:path`, with query.
    pub path: &'a [u8],
    /// Every other header.
    pub headers: &'a dyn Headers,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

/// What happens to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent upstream (after the request ops).
    Forward,
    /// Answered locally with an error status.
    Deny,
    /// Answered locally with a redirect to HTTPS.
    Redirect,
}

impl Verdict {
    /// The spec's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Forward => "forward",
            Verdict::Deny => "deny",
            Verdict::Redirect => "redirect",
        }
    }
    /// Parses the spec's word.
    pub fn from_word(s: &str) -> Option<Verdict> {
        match s {
            "forward" => Some(Verdict::Forward),
            "deny" => Some(Verdict::Deny),
            "redirect" => Some(Verdict::Redirect),
            _ => None,
        }
    }
}

/// The step of evaluation that stopped (or passed) the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The client address could not be resolved.
    ClientIp,
    /// A network rule (or the default) denied it.
    Network,
    /// It was not secure.
    HttpsOnly,
    /// A required header was missing or wrong.
    RequireHeaders,
    /// It went through.
    Forward,
}

impl Step {
    /// A stable word for traces and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::ClientIp => "client_ip",
            Step::Network => "network",
            Step::HttpsOnly => "https_only",
            Step::RequireHeaders => "require_headers",
            Step::Forward => "forward",
        }
    }
    fn from_word(s: &str) -> Option<Step> {
        [
            Step::ClientIp,
            Step::Network,
            Step::HttpsOnly,
            Step::RequireHeaders,
            Step::Forward,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Where the client address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    /// The TCP peer.
    Peer,
    /// X-Forwarded-For, via a trusted proxy.
    XForwardedFor,
}

impl ClientSource {
    /// A stable word for traces.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientSource::Peer => "peer",
            ClientSource::XForwardedFor => "x-forwarded-for",
        }
    }
}

/// The resolved client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address, or `None` when it could not be determined.
    pub ip: Option<IpAddr>,
    /// Where it came from.
    pub source: ClientSource,
}

/// A decision and its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happens.
    pub verdict: Verdict,
    /// Status of the local reply; 0 when forwarded (the upstream decides).
    pub status: u16,
    /// The network rule that matched (index into `network.rules`), or `None`
    /// for the default (or no network section).
    pub rule: Option<usize>,
    /// The client.
    pub client: Client,
    /// The step that decided.
    pub step: Step,
    /// Whether the request counts as secure (HSTS applies).
    pub secure: bool,
    /// The `Location` of a redirect.
    pub location: Option<Vec<u8>>,
}

/// How an edit changes a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    /// Remove every value.
    Remove,
    /// Replace every value with this one.
    Replace,
    /// Add one more value.
    Append,
}

/// One header edit for a host to apply, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit<'p> {
    /// What to do.
    pub op: EditOp,
    /// Lowercased header name.
    pub name: &'p str,
    /// Value (empty for `Remove`).
    pub value: &'p [u8],
}

/// A local reply, hardened: response ops and HSTS already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// Headers (lowercase names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses one X-Forwarded-For entry strictly: a bare address.
fn parse_entry(e: &[u8]) -> Option<IpAddr> {
    let s = core::str::from_utf8(e).ok()?;
    s.parse::<IpAddr>().ok()
}

impl Policy {
    /// Resolves the client address (step 1).
    pub fn client(&self, req: &Request<'_>) -> Client {
        let peer = addr::canonical(req.peer.ip());
        let peer_client = Client {
            ip: Some(peer),
            source: ClientSource::Peer,
        };
        if self.client_ip.from == ClientFrom::Peer
            || !self.client_ip.trusted_proxies.contains(addr::key(peer))
        {
            return peer_client;
        }
        // All lines joined in order, walked right to left.
        let mut entries: Vec<Vec<u8>> = Vec::new();
        req.headers.each_value("x-forwarded-for", &mut |v| {
            for e in v.split(|&b| b == b',') {
                entries.push(trim_ows(e).to_vec());
            }
        });
        let unknown = Client {
            ip: None,
            source: ClientSource::XForwardedFor,
        };
        for e in entries.iter().rev() {
            if e.is_empty() {
                continue;
            }
            let Some(ip) = parse_entry(e) else {
                return unknown;
            };
            let ip = addr::canonical(ip);
            if !self.client_ip.trusted_proxies.contains(addr::key(ip)) {
                return Client {
                    ip: Some(ip),
                    source: ClientSource::XForwardedFor,
                };
            }
        }
        unknown
    }
}

/// Constant-time equality (length is not hidden).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    // Keep the optimizer from short-circuiting the loop above.
    core::hint::black_box(d) == 0
}

impl Policy {
    /// Decides a request: steps 1 to 5 of the spec. Never panics, whatever
    /// the bytes.
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let client = self.client(req);
        let mut d = Decision {
            verdict: Verdict::Forward,
            status: 0,
            rule: None,
            client,
            step: Step::Forward,
            secure: self.is_secure(req),
            location: None,
        };
        // 2. Network rules. An unknown client is denied whatever the rules.
        let deny_status = self.network.as_ref().map_or(403, |n| n.deny_status);
        let Some(ip) = client.ip else {
            return Decision {
                client,
                ..self.deny_unknown_client(d.secure)
            };
        };
        if let Some(net) = &self.network {
            let flow = Flow {
                src: addr::key(ip),
                sport: req.peer.port(),
                dst: addr::key(req.local.ip()),
                dport: req.local.port(),
                transport: req.transport,
            };
            let (rule, access) = match self.match_rule(&flow) {
                Some(i) => (
                    Some(i),
                    net.rules.get(i).map_or(net.default_access, |r| r.access),
                ),
                None => (None, net.default_access),
            };
            d.rule = rule;
            if access == Access::Deny {
                d.verdict = Verdict::Deny;
                d.status = deny_status;
                d.step = Step::Network;
                return d;
            }
        }
        // 3. HTTPS only.
        if let (Some(h), false) = (&self.https_only, d.secure) {
            d.step = Step::HttpsOnly;
            d.verdict = Verdict::Deny;
            d.status = h.reject_status;
            if h.action == HttpsAction::Redirect {
                match self.location(req) {
                    Some(loc) => {
                        let get_or_head = req.method == b"GET" || req.method == b"HEAD";
                        d.verdict = Verdict::Redirect;
                        d.status = if get_or_head { h.redirect_status } else { 308 };
                        d.location = Some(loc);
                    }
                    None => d.status = 400,
                }
            }
            return d;
        }
        // 4. Required headers.
        for r in &self.require_headers {
            let mut ok = false;
            req.headers.each_value(&r.name, &mut |v| {
                for want in &r.values {
                    ok |= ct_eq(v, want);
                }
            });
            if !ok {
                d.verdict = Verdict::Deny;
                d.status = r.status;
                d.step = Step::RequireHeaders;
                return d;
            }
        }
        d
    }

    /// The decision for a request whose client the host cannot name (no
    /// usable peer or local address): denied like an unknown client.
    pub fn deny_unknown_client(&self, secure: bool) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            status: self.network.as_ref().map_or(403, |n| n.deny_status),
            rule: None,
            client: Client {
                ip: None,
                source: ClientSource::Peer,
            },
            step: Step::ClientIp,
            secure,
            location: None,
        }
    }

    /// Whether a request counts as secure: TLS, or `X-Forwarded-Proto: https`
    /// from a trusted proxy when the policy allows it.
    pub fn is_secure(&self, req: &Request<'_>) -> bool {
        if req.tls {
            return true;
        }
        let trust = self
            .https_only
            .as_ref()
            .is_some_and(|h| h.trust_forwarded_proto);
        if !trust
            || !self
                .client_ip
                .trusted_proxies
                .contains(addr::key(req.peer.ip()))
        {
            return false;
        }
        // The rightmost value is the one the nearest (trusted) proxy added.
        let mut last: Option<bool> = None;
        req.headers.each_value("x-forwarded-proto", &mut |v| {
            if let Some(e) = v.rsplit(|&b| b == b',').next() {
                last = Some(trim_ows(e).eq_ignore_ascii_case(b"https"));
            }
        });
        last.unwrap_or(false)
    }

    /// The redirect target for a plain request, or `None` when the host is
    /// not allowed or the path is not safe to echo.
    fn location(&self, req: &Request<'_>) -> Option<Vec<u8>> {
        let h = self.https_only.as_ref()?;
        let (host, _) = split_host_port(req.authority)?;
        let host = host.strip_suffix(b".").unwrap_or(host);
        let allowed = h
            .hosts
            .iter()
            .find(|a| a.host.as_bytes().eq_ignore_ascii_case(host))?;
        let path: &[u8] = if req.path.is_empty() { b"/" } else { req.path };
        if !path.starts_with(b"/") || path.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return None;
        }
        let mut loc = Vec::with_capacity(8 + allowed.location.len() + path.len());
        loc.extend_from_slice(b"https://");
        loc.extend_from_slice(allowed.location.as_bytes());
        loc.extend_from_slice(path);
        Some(loc)
    }

    /// The first rule (index into `network.rules`) matching a flow.
    pub fn match_rule(&self, flow: &Flow) -> Option<usize> {
        let net = self.network.as_ref()?;
        let (a, b) = net.table.candidates(flow.src);
        let (mut i, mut j) = (0, 0);
        loop {
            let next = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) if x <= y => {
                    i += 1;
                    if x == y {
                        j += 1;
                    }
                    x
                }
                (_, Some(&y)) => {
                    j += 1;
                    y
                }
                (Some(&x), None) => {
                    i += 1;
                    x
                }
                (None, None) => return None,
            };
            let idx = next as usize;
            let hit = match net.table.compact(idx) {
                Some(c) if c.exact => {
                    c.proto.matches(flow.transport)
                        && c.sport.0 <= flow.sport
                        && flow.sport <= c.sport.1
                        && c.dport.0 <= flow.dport
                        && flow.dport <= c.dport.1
                }
                _ => net.rules.get(idx).is_some_and(|r| flow.matches_rest(r)),
            };
            if hit {
                return Some(idx);
            }
        }
    }

    /// Header edits for the request forwarded upstream (step 5).
    pub fn request_edits<'p>(&'p self, headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
        ops_to_edits(&self.request_headers, headers, out);
    }

    /// Header edits for a response sent downstream (step 6): the response
    /// ops, then HSTS on secure requests (and no HSTS on plain ones).
    /// `headers` is only consulted for `exists: skip` ops.
    pub fn response_edits<'p>(
        &'p self,
        secure: bool,
        headers: &dyn Headers,
        out: &mut Vec<Edit<'p>>,
    ) {
        ops_to_edits(&self.response_headers, headers, out);
        if let Some(h) = &self.hsts {
            out.push(Edit {
                op: if secure {
                    EditOp::Replace
                } else {
                    EditOp::Remove
                },
                name: "strict-transport-security",
                value: if secure { h.value.as_bytes() } else { b"" },
            });
        }
    }

    /// The local reply for a decision that stops the request, with the
    /// response ops and HSTS applied; `None` when it is forwarded.
    pub fn local_reply(&self, d: &Decision) -> Option<LocalReply> {
        let body: &[u8] = match (d.verdict, d.step) {
            (Verdict::Forward, _) => return None,
            (Verdict::Redirect, _) => b"",
            (_, Step::ClientIp | Step::Network) => self
                .network
                .as_ref()
                .map_or(b"Forbidden\n".as_slice(), |n| n.deny_body.as_bytes()),
            (_, Step::HttpsOnly) if d.status == 400 => b"Bad Request: host not allowed\n",
            (_, Step::HttpsOnly) => b"HTTPS Required\n",
            (_, _) => b"Unauthorized\n",
        };
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(loc) = &d.location {
            headers.push((String::from("location"), loc.clone()));
        }
        if !body.is_empty() {
            headers.push((
                String::from("content-type"),
                b"text/plain; charset=utf-8".to_vec(),
            ));
        }
        let mut edits = Vec::new();
        self.response_edits(d.secure, &headers, &mut edits);
        apply_edits(&mut headers, &edits);
        Some(LocalReply {
            status: d.status,
            headers,
            body: body.to_vec(),
        })
    }

    /// The trace of a decision as one line: `verdict status step source
    /// client rule`, e.g. `deny 403 network peer 10.0.0.9 default`. The rule
    /// name comes last since it may contain spaces. [`Trace::parse`] reads it.
    pub fn trace(&self, d: &Decision) -> String {
        let mut s = String::new();
        self.trace_into(d, &mut s);
        s
    }

    /// [`Policy::trace`] into a caller's buffer (cleared first), without
    /// `core::fmt` on the common IPv4 path: hosts write one per request.
    pub fn trace_into(&self, d: &Decision, s: &mut String) {
        s.clear();
        s.push_str(d.verdict.as_str());
        s.push(' ');
        push_u32(s, u32::from(d.status));
        s.push(' ');
        s.push_str(d.step.as_str());
        s.push(' ');
        s.push_str(d.client.source.as_str());
        s.push(' ');
        match d.client.ip {
            Some(IpAddr::V4(a)) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        s.push('.');
                    }
                    push_u32(s, u32::from(o));
                }
            }
            Some(ip @ IpAddr::V6(_)) => {
                use core::fmt::Write;
                // Writing to a String cannot fail.
                let _ = write!(s, "{ip}");
            }
            None => s.push_str("unknown"),
        }
        s.push(' ');
        s.push_str(self.rule_name(d.rule));
    }
}

/// Appends a number in decimal.
fn push_u32(s: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i = i.saturating_sub(1);
        if let Some(b) = buf.get_mut(i) {
            // n % 10 < 10, so the digit is ASCII.
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for &b in buf.get(i..).unwrap_or(&[]) {
        s.push(char::from(b));
    }
}

/// A decision as read back from a trace line (see [`Policy::trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Verdict.
    pub verdict: Verdict,
    /// Local reply status, 0 when forwarded.
    pub status: u16,
    /// Step.
    pub step: Step,
    /// `peer` or `x-forwarded-for`.
    pub source: String,
    /// Client address or `unknown`.
    pub client_ip: String,
    /// Rule name or `default`.
    pub rule: String,
}

impl Trace {
    /// Parses a trace line.
    pub fn parse(s: &str) -> Option<Trace> {
        let mut it = s.splitn(6, ' ');
        Some(Trace {
            verdict: Verdict::from_word(it.next()?)?,
            status: it.next()?.parse().ok()?,
            step: Step::from_word(it.next()?)?,
            source: String::from(it.next()?),
            client_ip: String::from(it.next()?),
            rule: String::from(it.next()?),
        })
    }
}

/// The five-tuple the network rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Client address.
    pub src: Key,
    /// Client port.
    pub sport: u16,
    /// Local address.
    pub dst: Key,
    /// Local port.
    pub dport: u16,
    /// Transport.
    pub transport: Transport,
}

impl Flow {
    /// Whether every field but the source matches the rule.
    pub fn matches_rest(&self, r: &crate::policy::Rule) -> bool {
        r.protocol.matches(self.transport)
            && r.source_ports.contains(self.sport)
            && r.destination_ports.contains(self.dport)
            && r.destination.contains(self.dst)
    }
}

fn ops_to_edits<'p>(ops: &'p [HeaderOp], headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
    for (i, op) in ops.iter().enumerate() {
        match op {
            HeaderOp::Remove(name) => out.push(Edit {
                op: EditOp::Remove,
                name,
                value: b"",
            }),
            HeaderOp::Set {
                name,
                value,
                exists,
            } => {
                let op = match exists {
                    Exists::Override => EditOp::Replace,
                    Exists::Append => EditOp::Append,
                    Exists::Skip => {
                        // Present now = the last earlier op on this name
                        // decides, else the incoming headers do.
                        let earlier = ops.get(..i).unwrap_or(&[]);
                        let present = match earlier.iter().rev().find(|o| o.name() == name) {
                            Some(HeaderOp::Remove(_)) => false,
                            Some(HeaderOp::Set { .. }) => true,
                            None => headers.has(name),
                        };
                        if present {
                            continue;
                        }
                        EditOp::Append
                    }
                };
                out.push(Edit {
                    op,
                    name,
                    value: value.as_bytes(),
                });
            }
        }
    }
}

/// Applies edits to a header list the way a proxy does (names compared
/// case-insensitively). Used by the native engine, the playground and tests.
pub fn apply_edits<N>(list: &mut Vec<(N, Vec<u8>)>, edits: &[Edit<'_>])
where
    N: AsRef<[u8]> + for<'a> From<&'a str>,
{
    for e in edits {
        match e.op {
            EditOp::Remove => {
                list.retain(|(n, _)| !n.as_ref().eq_ignore_ascii_case(e.name.as_bytes()))
            }
            EditOp::Replace => {
                let mut first = true;
                list.retain_mut(|(n, v)| {
                    if !n.as_ref().eq_ignore_ascii_case(e.name.as_bytes()) {
                        return true;
                    }
                    if first {
                        first = false;
                        *v = e.value.to_vec();
                        true
                    } else {
                        false
                    }
                });
                if first {
                    list.push((N::from(e.name), e.value.to_vec()));
                }
            }
            EditOp::Append => list.push((N::from(e.name), e.value.to_vec())),
        }
    }
}

/// The field of a rule that did not match a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `source`
    Source,
    /// `source_ports`
    SourcePorts,
    /// `destination`
    Destination,
    /// `destination_ports`
    DestinationPorts,
    /// `protocol`
    Protocol,
}

impl Field {
    /// The policy field name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Source => "source",
            Field::SourcePorts => "source_ports",
            Field::Destination => "destination",
            Field::DestinationPorts => "destination_ports",
            Field::Protocol => "protocol",
        }
    }
}

/// How one rule fared against a flow (for "IP flow verify" explanations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleCheck {
    /// Index into `network.rules` (priority order).
    pub index: usize,
    /// The first field that did not match, or `None` if the rule matched.
    pub failed: Option<Field>,
    /// Whether this rule decided (the first match).
    pub decided: bool,
}

impl Policy {
    /// Every network rule in priority order, with whether it matched the
    /// request's flow and, if not, the first field that did not. Walks the
    /// rules one by one (not the compiled table): this is for people, and
    /// the property tests check that both agree.
    pub fn explain(&self, req: &Request<'_>) -> Vec<RuleCheck> {
        let Some(net) = &self.network else {
            return Vec::new();
        };
        let Some(ip) = self.client(req).ip else {
            return Vec::new();
        };
        let flow = Flow {
            src: addr::key(ip),
            sport: req.peer.port(),
            dst: addr::key(req.local.ip()),
            dport: req.local.port(),
            transport: req.transport,
        };
        let mut decided = false;
        net.rules
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let failed = flow.first_mismatch(r);
                let this = failed.is_none() && !decided;
                decided |= this;
                RuleCheck {
                    index,
                    failed,
                    decided: this,
                }
            })
            .collect()
    }
}

impl RuleCheck {
    /// Why the rule did or did not match, in words, e.g. `local port 443 is
    /// not in destination_ports 454-455`. Used by the CLI's `explain` and
    /// the playground alike.
    pub fn reason(&self, policy: &Policy, req: &Request<'_>) -> String {
        let Some(r) = policy
            .network
            .as_ref()
            .and_then(|n| n.rules.get(self.index))
        else {
            return String::new();
        };
        let list = |t: &[String]| {
            if t.is_empty() {
                String::from("*")
            } else {
                t.join(", ")
            }
        };
        match self.failed {
            None if self.decided => {
                alloc::format!(
                    "every field matches: this rule decides ({})",
                    r.access.as_str()
                )
            }
            None => String::from("every field matches, but a higher-priority rule decided first"),
            Some(Field::Source) => alloc::format!(
                "client {} is not in source [{}]",
                policy
                    .client(req)
                    .ip
                    .map_or_else(|| String::from("unknown"), |ip| alloc::format!("{ip}")),
                list(&r.source_text)
            ),
            Some(Field::SourcePorts) => alloc::format!(
                "client port {} is not in source_ports {}",
                req.peer.port(),
                r.source_ports
            ),
            Some(Field::Destination) => alloc::format!(
                "local address {} is not in destination [{}]",
                addr::canonical(req.local.ip()),
                list(&r.destination_text)
            ),
            Some(Field::DestinationPorts) => alloc::format!(
                "local port {} is not in destination_ports {}",
                req.local.port(),
                r.destination_ports
            ),
            Some(Field::Protocol) => alloc::format!(
                "transport {} does not match protocol {}",
                req.transport.as_str(),
                r.protocol.as_str()
            ),
        }
    }
}

impl Flow {
    /// The first field of `r` that does not match, in the order the policy
    /// lists them, or `None` when the rule matches.
    pub fn first_mismatch(&self, r: &crate::policy::Rule) -> Option<Field> {
        if !r.source.contains(self.src) {
            Some(Field::Source)
        } else if !r.source_ports.contains(self.sport) {
            Some(Field::SourcePorts)
        } else if !r.destination.contains(self.dst) {
            Some(Field::Destination)
        } else if !r.destination_ports.contains(self.dport) {
            Some(Field::DestinationPorts)
        } else if !r.protocol.matches(self.transport) {
            Some(Field::Protocol)
        } else {
            None
        }
    }
}
