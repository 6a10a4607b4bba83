//! Deciding a request: what a host hands over ([`Request`], [`Headers`]),
//! the steps of the spec ([`Policy::decide`]) and the [`Decision`].
//!
//! Resolving the client address is in `client`, whether a request is
//! secure and where it is redirected in `https`, and the one-line trace
//! in `trace`. Header edits, local replies and explanations read a
//! decision: see [`crate::edits`], [`crate::reply`], [`crate::explain`].

use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;

use crate::addr;
use crate::policy::{Access, HttpsAction, Policy};
use crate::rule::{Flow, Transport};

mod client;
mod https;
mod trace;

pub use client::{Client, ClientSource};
pub use trace::Trace;

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
    /// Parses the word [`Step::as_str`] gives.
    pub fn from_word(s: &str) -> Option<Step> {
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
}
