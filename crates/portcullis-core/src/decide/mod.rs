//! Deciding a request: what a host hands over ([`Request`], [`Headers`]),
//! the steps of the spec ([`Policy::decide`]) and the [`Decision`].
//!
//! Resolving the client address is in `client`, whether a request is
//! secure and where it is redirected in `https`, and the one-line trace
//! in `trace`. Header edits, local replies and explanations read a
//! decision: see [`crate::edits`], [`crate::reply`], [`crate::explain`].

// The request path: arithmetic that could overflow is denied here (see
// the crate docs).
#![deny(clippy::arithmetic_side_effects)]

use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, SocketAddr};

use crate::addr;
use crate::policy::{Access, HttpsAction, Mode, Policy};
use crate::rule::{Flow, Transport};
use crate::words::words;

mod client;
mod entry;
pub mod forwarded;
mod https;
mod scope;
mod trace;

pub use client::{Client, ClientSource, Excerpt, Unknown, EXCERPT_BYTES};
pub use entry::parse_entry;
pub use scope::{scope_host, scope_path, Ambiguous, ScopeField};
pub use trace::{Trace, NO_SCOPE, WOULD_PREFIX};

/// Request headers as a host holds them. Names are matched
/// case-insensitively; values are bytes and need not be UTF-8.
pub trait Headers {
    /// Calls `f` with every value of `name` (given lowercase), in order.
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8]));

    /// Calls `f` with the name of every header, in order, as the host has
    /// it (any case; repeated names once per line). The core asks only when
    /// the policy sets or requires a header (to find `_` twins).
    fn each_name(&self, f: &mut dyn FnMut(&[u8]));

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

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        for (n, _) in self {
            f(n.as_ref());
        }
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>, const K: usize> Headers for [(N, V); K] {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().each_value(name, f);
    }

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().each_name(f);
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> Headers for Vec<(N, V)> {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().each_value(name, f);
    }

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().each_name(f);
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

impl Request<'_> {
    /// What the network rules look at (step 2, and its explanation):
    /// `client` (the resolved client, not necessarily the peer) with the
    /// peer's port, the local address and port, the transport.
    pub(crate) fn flow(&self, client: IpAddr) -> Flow {
        Flow {
            src: addr::key(client),
            sport: self.peer.port(),
            dst: addr::key(self.local.ip()),
            dport: self.local.port(),
            transport: self.transport,
        }
    }
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

words! {
    /// What happens to the request (the spec's words).
    pub enum Verdict {
        /// Sent upstream (after the request ops).
        Forward = "forward",
        /// Answered locally with an error status.
        Deny = "deny",
        /// Answered locally with a redirect to HTTPS.
        Redirect = "redirect",
    }
}

impl Verdict {
    /// The word hosts count this verdict under (`allowed`, `denied`,
    /// `redirected`): the filter's `portcullis.<policy>.<word>` counters.
    pub const fn counter_word(self) -> &'static str {
        match self {
            Verdict::Forward => "allowed",
            Verdict::Deny => "denied",
            Verdict::Redirect => "redirected",
        }
    }
}

words! {
    /// The step of evaluation that stopped (or passed) the request; its
    /// words are stable, for traces and logs.
    pub enum Step {
        /// The client address could not be resolved.
        ClientIp = "client_ip",
        /// The authority is unreadable and some scope names `hosts`, or the
        /// path is ambiguous and some scope names `paths`.
        Scope = "scope",
        /// A network rule (or the default) denied it.
        Network = "network",
        /// It was not secure.
        HttpsOnly = "https_only",
        /// A required header was missing or wrong.
        RequireHeaders = "require_headers",
        /// It went through.
        Forward = "forward",
    }
}

/// Why a request was decided the way it was: the step that decided and
/// what it found. Local replies, traces and explanations read this, never
/// the status code (a policy may choose any status, 400 included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Every step passed: the request is forwarded.
    Passed,
    /// Step 1: the client address could not be resolved (an unknown client
    /// is denied whatever the rules say).
    UnknownClient,
    /// Step 1: some scope names `paths` and the request's path holds `%2F`,
    /// `%5C`, `\`, a NUL or a malformed escape: 400 before any scope is
    /// chosen.
    AmbiguousPath,
    /// Step 1: some scope names `hosts` and the request's authority cannot
    /// be read as a host with an optional port (see
    /// [`scope_host`]): 400 before any scope is chosen, never a fall
    /// through to a scope without `hosts` or to the top level.
    UnreadableAuthority,
    /// Step 2: a network rule, or `default_access`, denied the client.
    NetworkDenied,
    /// Step 3: a plain request redirected to HTTPS.
    RedirectToHttps,
    /// Step 3: a plain request refused (`action: reject`).
    HttpsRequired,
    /// Step 3: a redirect was due, but the host is not in `https_only.hosts`
    /// (or the path is not safe to echo): refused with 400, never redirected.
    HostNotAllowed,
    /// Step 4: the `require_headers` entry at this index is missing or wrong.
    RequiredHeader(usize),
}

impl Reason {
    /// The step that decided.
    pub const fn step(self) -> Step {
        match self {
            Reason::Passed => Step::Forward,
            Reason::UnknownClient => Step::ClientIp,
            Reason::AmbiguousPath | Reason::UnreadableAuthority => Step::Scope,
            Reason::NetworkDenied => Step::Network,
            Reason::RedirectToHttps | Reason::HttpsRequired | Reason::HostNotAllowed => {
                Step::HttpsOnly
            }
            Reason::RequiredHeader(_) => Step::RequireHeaders,
        }
    }

    /// For a request refused at step 1 before any scope is chosen, what
    /// was refused (`unreadable authority`, `ambiguous path`, as the local
    /// reply's body says) and why, in words (for explanations); `None` for
    /// every other reason.
    pub const fn scope_refusal(self) -> Option<(&'static str, &'static str)> {
        match self {
            Reason::UnreadableAuthority => Some((
                "unreadable authority",
                "the authority cannot be read as a host with an optional port (a bad port, an unclosed bracket, userinfo, an empty host) and some scope names hosts: 400 before any scope is chosen",
            )),
            Reason::AmbiguousPath => Some((
                "ambiguous path",
                "the path is ambiguous (%2F, %5C, \\, NUL or a bad escape) and some scope names paths: 400 before any scope is chosen",
            )),
            _ => None,
        }
    }

    /// What happens to the request because of it.
    pub const fn verdict(self) -> Verdict {
        match self {
            Reason::Passed => Verdict::Forward,
            Reason::RedirectToHttps => Verdict::Redirect,
            _ => Verdict::Deny,
        }
    }
}

/// A decision and its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happens: always `reason.verdict()`.
    pub verdict: Verdict,
    /// Status of the local reply; 0 when forwarded (the upstream decides).
    /// See [`Decision::reply_status`].
    pub status: u16,
    /// The network rule that matched (index into `network.rules`), or `None`
    /// for the default (or no network section).
    pub rule: Option<usize>,
    /// The client.
    pub client: Client,
    /// The scope that applied (index into `scopes`), or `None` for the top
    /// level (also when the path was ambiguous). Its policy is
    /// [`Policy::scoped`]`(scope)`.
    pub scope: Option<usize>,
    /// The step that decided: always `reason.step()`.
    pub step: Step,
    /// Why: the step that decided and what it found.
    pub reason: Reason,
    /// Whether the request counts as secure (HSTS applies).
    pub secure: bool,
    /// The `Location` of a redirect.
    pub location: Option<Vec<u8>>,
    /// Report mode only: what enforce mode would have done to a request
    /// that is forwarded instead (`None` when nothing would have stopped it,
    /// and always `None` in enforce mode). `rule` is the deciding rule
    /// either way.
    pub would: Option<Would>,
}

/// What a report-mode policy would have done (see [`Decision::would`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Would {
    /// `deny` or `redirect`.
    pub verdict: Verdict,
    /// The status of the local reply it would have sent.
    pub status: u16,
    /// Why: the step that would have stopped the request.
    pub reason: Reason,
    /// The `Location` of the redirect it would have sent.
    pub location: Option<Vec<u8>>,
}

impl Decision {
    /// The verdict enforce mode gives: `would`'s when there is one.
    pub fn enforced_verdict(&self) -> Verdict {
        self.would.as_ref().map_or(self.verdict, |w| w.verdict)
    }

    /// The step that decided, as the trace names it: in report mode the
    /// step that would have stopped the request.
    pub fn deciding_step(&self) -> Step {
        self.would.as_ref().map_or(self.step, |w| w.reason.step())
    }

    /// In report mode, turns a stopping decision into a forwarded one that
    /// remembers what would have happened; any other decision is kept.
    fn report(self, mode: Mode) -> Decision {
        if mode == Mode::Enforce || self.verdict == Verdict::Forward {
            return self;
        }
        Decision {
            would: Some(Would {
                verdict: self.verdict,
                status: self.status,
                reason: self.reason,
                location: self.location,
            }),
            verdict: Verdict::Forward,
            status: 0,
            reason: Reason::Passed,
            step: Step::Forward,
            location: None,
            ..self
        }
    }

    /// The status of the local reply, or `None` when the request is
    /// forwarded (the upstream gives the status).
    pub fn reply_status(&self) -> Option<u16> {
        (self.verdict != Verdict::Forward).then_some(self.status)
    }

    /// A request that passes every step (so far).
    fn pass(client: Client, secure: bool) -> Decision {
        Decision {
            verdict: Verdict::Forward,
            status: 0,
            rule: None,
            client,
            scope: None,
            step: Step::Forward,
            reason: Reason::Passed,
            secure,
            location: None,
            would: None,
        }
    }

    /// Stops the request for `reason` with `status`.
    fn stop(mut self, reason: Reason, status: u16) -> Decision {
        self.reason = reason;
        self.verdict = reason.verdict();
        self.step = reason.step();
        self.status = status;
        self
    }
}

/// Why a rule's `headers` entry does not hold for a request (explanations
/// say which header and why, never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMiss {
    /// The request does not carry the header.
    Missing,
    /// It carries more than one line of it.
    Repeated,
    /// Its one line is none of the allowed values.
    NotAllowed,
}

/// Whether a request's headers satisfy one `headers` entry of a rule:
/// exactly one line, whose value (spaces and tabs trimmed) equals one of
/// the values, compared in constant time; `None` when it holds.
pub fn header_miss(m: &crate::rule::HeaderMatch, headers: &dyn Headers) -> Option<HeaderMiss> {
    let mut lines = 0u8;
    let mut ok = false;
    headers.each_value(&m.name, &mut |v| {
        lines = lines.saturating_add(1);
        let v = entry::trim_ows(v);
        for want in &m.values {
            ok |= ct_eq(v, want);
        }
    });
    match lines {
        0 => Some(HeaderMiss::Missing),
        1 if ok => None,
        1 => Some(HeaderMiss::NotAllowed),
        _ => Some(HeaderMiss::Repeated),
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
    /// the bytes. In report mode a request that would be stopped is
    /// forwarded, and [`Decision::would`] says what would have happened.
    ///
    /// ```
    /// use portcullis_core::{Policy, Reason, Request, Step, Transport, Verdict};
    ///
    /// let policy = Policy::parse(br#"{
    ///   "name": "orders-api",
    ///   "network": { "rules": [
    ///     { "name": "office", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"] }
    ///   ] },
    ///   "require_headers": [ { "name": "x-api-key", "values": ["s3cret"] } ]
    /// }"#)
    /// .unwrap();
    ///
    /// let headers = [("X-Api-Key", "s3cret")];
    /// let mut req = Request {
    ///     peer: "10.1.2.3:50000".parse().unwrap(),
    ///     local: "10.0.0.4:443".parse().unwrap(),
    ///     tls: true,
    ///     transport: Transport::Tcp,
    ///     method: b"GET",
    ///     authority: b"api.example.com",
    ///     path: b"/orders",
    ///     headers: &headers,
    /// };
    /// let d = policy.decide(&req);
    /// assert_eq!(d.verdict, Verdict::Forward);
    /// assert_eq!(policy.rule_name(d.rule), "office");
    /// assert_eq!(policy.trace(&d), "forward 0 forward peer 10.1.2.3 - office");
    ///
    /// // Outside 10.0.0.0/8: the default (deny) decides at step 2.
    /// req.peer = "192.0.2.7:50000".parse().unwrap();
    /// let d = policy.decide(&req);
    /// assert_eq!((d.verdict, d.status, d.reason), (Verdict::Deny, 403, Reason::NetworkDenied));
    /// assert_eq!(d.step, Step::Network);
    /// assert_eq!(policy.trace(&d), "deny 403 network peer 192.0.2.7 - default");
    ///
    /// // Without the key: step 4 stops it with 401.
    /// let none: [(&str, &str); 0] = [];
    /// req.peer = "10.1.2.3:50000".parse().unwrap();
    /// req.headers = &none;
    /// let d = policy.decide(&req);
    /// assert_eq!((d.status, d.reason), (401, Reason::RequiredHeader(0)));
    /// ```
    pub fn decide(&self, req: &Request<'_>) -> Decision {
        let d = self.decide_enforced(req);
        // The mode of the scope that applied (a scope may say its own).
        let mode = self.scoped(d.scope).mode;
        d.report(mode)
    }

    /// Steps 1 to 5 as enforce mode takes them.
    fn decide_enforced(&self, req: &Request<'_>) -> Decision {
        let client = self.client(req);
        let d = Decision::pass(client, false);
        match self.choose_scope(req) {
            Ok(scope) => {
                let p = self.scoped(scope);
                p.steps(
                    req,
                    Decision {
                        scope,
                        secure: p.is_secure(req),
                        ..d
                    },
                )
            }
            Err(reason) => Decision {
                secure: self.is_secure(req),
                ..d
            }
            .stop(reason, 400),
        }
    }

    /// Steps 2 to 4 in one (effective) policy, after step 1.
    fn steps(&self, req: &Request<'_>, mut d: Decision) -> Decision {
        let client = d.client;
        // 2. Network rules. An unknown client is denied whatever the rules.
        let deny_status = self.network.as_ref().map_or(403, |n| n.deny_status);
        let Some(ip) = client.ip else {
            return d.stop(Reason::UnknownClient, deny_status);
        };
        if let Some(net) = &self.network {
            let flow = req.flow(ip);
            let (rule, access) = match self.match_rule_with(&flow, req.headers) {
                Some(i) => (
                    Some(i),
                    net.rules.get(i).map_or(net.default_access, |r| r.access),
                ),
                None => (None, net.default_access),
            };
            d.rule = rule;
            if access == Access::Deny {
                return d.stop(Reason::NetworkDenied, deny_status);
            }
        }
        // 3. HTTPS only.
        if let (Some(h), false) = (&self.https_only, d.secure) {
            if h.action == HttpsAction::Reject {
                return d.stop(Reason::HttpsRequired, h.reject_status);
            }
            return match self.location(req) {
                Some(loc) => {
                    let get_or_head = req.method == b"GET" || req.method == b"HEAD";
                    d.location = Some(loc);
                    let status = if get_or_head { h.redirect_status } else { 308 };
                    d.stop(Reason::RedirectToHttps, status)
                }
                None => d.stop(Reason::HostNotAllowed, 400),
            };
        }
        // 4. Required headers.
        for (i, r) in self.require_headers.iter().enumerate() {
            let mut ok = false;
            req.headers.each_value(&r.name, &mut |v| {
                for want in &r.values {
                    ok |= ct_eq(v, want);
                }
            });
            if !ok {
                return d.stop(Reason::RequiredHeader(i), r.status);
            }
        }
        d
    }

    /// Decides a request as a proxy host holds it: `:method`, `:authority`
    /// and `:path` are read through `pseudo` only when `needs` (this
    /// policy's [`Policy::inputs`]) says they matter
    /// ([`crate::Inputs::pseudo_headers`]); a request whose peer or local address
    /// the host could not give is denied like an unknown client
    /// ([`Policy::deny_unknown_client`]). The one request assembly of every
    /// proxy engine (the wasm filter, the native module).
    #[allow(clippy::too_many_arguments)]
    pub fn decide_from_host<'h>(
        &self,
        needs: &crate::Inputs,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        tls: bool,
        transport: Transport,
        pseudo: impl FnOnce() -> (&'h [u8], &'h [u8], &'h [u8]),
        headers: &'h dyn Headers,
    ) -> Decision {
        let (Some(peer), Some(local)) = (peer, local) else {
            return self.deny_unknown_client(tls);
        };
        let (method, authority, path): (&[u8], &[u8], &[u8]) = if needs.pseudo_headers(tls) {
            pseudo()
        } else {
            (b"", b"", b"")
        };
        self.decide(&Request {
            peer,
            local,
            tls,
            transport,
            method,
            authority,
            path,
            headers,
        })
    }

    /// The decision for a request whose client the host cannot name (no
    /// usable peer or local address): denied like an unknown client
    /// (forwarded, with [`Decision::would`], in report mode).
    pub fn deny_unknown_client(&self, secure: bool) -> Decision {
        let client = Client {
            ip: None,
            source: ClientSource::Peer,
            entry: None,
            why: Some(Unknown::NoPeer),
        };
        let d = Decision::pass(client, secure);
        let status = self.network.as_ref().map_or(403, |n| n.deny_status);
        d.stop(Reason::UnknownClient, status).report(self.mode)
    }

    /// The first rule (index into `network.rules`) matching a flow of a
    /// request that carries no header: a rule with `headers` never matches
    /// here. Layer-4 callers (flow logs) should check
    /// [`Policy::rules_read_headers`] first; requests use
    /// [`Policy::match_rule_with`].
    pub fn match_rule(&self, flow: &Flow) -> Option<usize> {
        let none: [(&[u8], &[u8]); 0] = [];
        self.match_rule_with(flow, &none)
    }

    /// Whether some rule (of the top level or of a scope) has `headers`, so
    /// the network step depends on request headers, not only on the flow.
    pub fn rules_read_headers(&self) -> bool {
        let reads = |p: &Policy| {
            p.network
                .as_ref()
                .is_some_and(|n| n.rules.iter().any(|r| !r.headers.is_empty()))
        };
        reads(self) || self.scopes.iter().any(|s| reads(&s.policy))
    }

    /// The first rule (index into `network.rules`) matching a flow and, for
    /// rules with `headers`, the request's headers.
    pub fn match_rule_with(&self, flow: &Flow, headers: &dyn Headers) -> Option<usize> {
        let net = self.network.as_ref()?;
        let (a, b) = net.table.candidates(flow.src);
        // Merge the two ascending lists, each rule once.
        let (mut a, mut b) = (a.iter().copied().peekable(), b.iter().copied().peekable());
        loop {
            let next = match (a.peek().copied(), b.peek().copied()) {
                (Some(x), Some(y)) if x <= y => {
                    a.next();
                    if x == y {
                        b.next();
                    }
                    x
                }
                (_, Some(y)) => {
                    b.next();
                    y
                }
                (Some(x), None) => {
                    a.next();
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
            if hit
                && net
                    .rules
                    .get(idx)
                    .is_none_or(|r| r.headers.iter().all(|m| header_miss(m, headers).is_none()))
            {
                return Some(idx);
            }
        }
    }
}
