//! Explanations for people ("IP flow verify"): which scope applies to a
//! request and why the earlier ones did not, how each network rule (of
//! that scope) fared against the request's flow, and why, in words; and how
//! a header value is shown ([`Policy::shown`]): a value the policy read from
//! the environment never in clear, only as `(from env NAME)`.

// The request path: arithmetic that could overflow is denied here (see
// the crate docs).
#![deny(clippy::arithmetic_side_effects)]

use alloc::string::String;
use alloc::vec::Vec;

use crate::addr;
use crate::decide::{
    header_miss, scope_host, Client, ClientSource, HeaderMiss, Reason, Request, ScopeField, Unknown,
};
use crate::policy::{HeaderOp, Policy};
use crate::rule::{Flow, Rule};
use crate::words::words;

words! {
    /// The field of a rule that did not match a flow; its word is the
    /// policy's field name.
    pub enum Field {
        /// `source`
        Source = "source",
        /// `source_ports`
        SourcePorts = "source_ports",
        /// `destination`
        Destination = "destination",
        /// `destination_ports`
        DestinationPorts = "destination_ports",
        /// `protocol`
        Protocol = "protocol",
        /// `headers`
        Headers = "headers",
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

/// How one scope fared against a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeCheck {
    /// Index into `scopes`.
    pub index: usize,
    /// The first `match` field that did not hold, or `None` if it matched.
    pub failed: Option<ScopeField>,
    /// Whether this scope applies (the first match).
    pub chosen: bool,
}

impl Policy {
    /// The scope the request's decision uses (the top level when the
    /// authority or path is unreadable: that request is refused before any
    /// scope).
    fn explained_scope(&self, req: &Request<'_>) -> &Policy {
        self.scoped(self.choose_scope(req).unwrap_or(None))
    }

    /// Every scope in document order, with whether its `match` held and,
    /// if not, the first field that did not; or the [`Reason`] the
    /// request is refused for before any scope is chosen
    /// ([`Reason::UnreadableAuthority`], [`Reason::AmbiguousPath`]).
    pub fn explain_scopes(&self, req: &Request<'_>) -> Result<Vec<ScopeCheck>, Reason> {
        if self.scopes.is_empty() {
            return Ok(Vec::new());
        }
        let seen = self.seen(req)?;
        let mut chosen = false;
        Ok(self
            .scopes
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let failed = s.first_mismatch(&seen);
                let this = failed.is_none() && !chosen;
                chosen |= this;
                ScopeCheck {
                    index,
                    failed,
                    chosen: this,
                }
            })
            .collect())
    }

    /// Every network rule (of the request's scope) in priority order, with
    /// whether it matched the request's flow and, if not, the first field
    /// that did not. Walks the rules one by one (not the compiled table):
    /// this is for people, and the property tests check that both agree.
    /// Empty when the request is refused before the rules (an unreadable
    /// authority, an ambiguous path, an unknown client) or there is no
    /// `network`.
    pub fn explain(&self, req: &Request<'_>) -> Vec<RuleCheck> {
        let Ok(scope) = self.choose_scope(req) else {
            return Vec::new();
        };
        let me = self.scoped(scope);
        let Some(net) = &me.network else {
            return Vec::new();
        };
        let Some(ip) = self.client(req).ip else {
            return Vec::new();
        };
        let flow = req.flow(ip);
        let mut decided = false;
        net.rules
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let failed = flow.first_mismatch(r).or_else(|| {
                    r.headers
                        .iter()
                        .any(|m| header_miss(m, req.headers).is_some())
                        .then_some(Field::Headers)
                });
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

/// A header value as an explanation shows it (the CLI's `explain`, text and
/// JSON, and the playground): a value the policy read from the environment
/// is a secret (a backend's function key, a client key) and is shown by the
/// variable it came from, never by its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown<'a> {
    /// A value read from this environment variable: shown as
    /// `(from env NAME)`.
    FromEnv(&'a str),
    /// Any other value, as it is (bytes: a header value need not be UTF-8).
    Value(&'a [u8]),
}

impl core::fmt::Display for Shown<'_> {
    /// `(from env NAME)`, or the value (invalid UTF-8 as U+FFFD).
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Shown::FromEnv(var) => write!(f, "(from env {var})"),
            Shown::Value(v) => {
                for chunk in v.utf8_chunks() {
                    f.write_str(chunk.valid())?;
                    if !chunk.invalid().is_empty() {
                        f.write_str("\u{FFFD}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Policy {
    /// The environment variable a value of header `name` came from: `Some`
    /// when the value equals one the policy (its top level or any scope)
    /// read from the environment for a header of that name (a `set` op's
    /// `value_from`, a `require_headers` entry's `values_from`), names
    /// compared case-insensitively. A client that sends such a value itself
    /// gets it hidden too: the value is the secret, wherever it travels.
    ///
    /// ```
    /// use portcullis_core::Policy;
    /// let p = Policy::parse_with_env(
    ///     br#"{"name": "p", "request_headers": [
    ///         {"set": "x-functions-key", "value_from": {"env": "FUNCTION_KEY"}}]}"#,
    ///     &[("FUNCTION_KEY", "K-123")],
    /// ).unwrap();
    /// assert_eq!(p.env_source("X-Functions-Key", b"K-123"), Some("FUNCTION_KEY"));
    /// assert_eq!(p.env_source("x-functions-key", b"other"), None);
    /// assert_eq!(p.shown("x-functions-key", b"K-123").to_string(), "(from env FUNCTION_KEY)");
    /// assert_eq!(p.shown("x-other", b"K-123").to_string(), "K-123");
    /// ```
    pub fn env_source(&self, name: &str, value: &[u8]) -> Option<&str> {
        core::iter::once(self)
            .chain(self.scopes.iter().map(|s| &*s.policy))
            .find_map(|p| p.own_env_source(name, value))
    }

    /// [`Policy::env_source`] in this policy's own sections.
    fn own_env_source(&self, name: &str, value: &[u8]) -> Option<&str> {
        let from_op = self
            .request_headers
            .iter()
            .chain(&self.response_headers)
            .find_map(|op| match op {
                HeaderOp::Set {
                    name: n,
                    value: v,
                    from_env: Some(var),
                    ..
                } if n.eq_ignore_ascii_case(name) && v.as_bytes() == value => Some(var.as_str()),
                _ => None,
            });
        from_op.or_else(|| {
            self.require_headers
                .iter()
                .filter(|r| r.name.eq_ignore_ascii_case(name))
                .find_map(|r| {
                    // The values of `values_from` are the last `env.len()`.
                    let inline = r.values.len().saturating_sub(r.env.len());
                    r.values
                        .iter()
                        .skip(inline)
                        .zip(&r.env)
                        .find(|(v, _)| v.as_slice() == value)
                        .map(|(_, var)| var.as_str())
                })
        })
    }

    /// How to show a value of header `name`: [`Shown::FromEnv`] for a value
    /// read from the environment ([`Policy::env_source`]), else the value.
    /// Every front end shows header values through this.
    pub fn shown<'a>(&'a self, name: &str, value: &'a [u8]) -> Shown<'a> {
        match self.env_source(name, value) {
            Some(var) => Shown::FromEnv(var),
            None => Shown::Value(value),
        }
    }
}

impl RuleCheck {
    /// Why the rule did or did not match, in words, e.g. `local port 443 is
    /// not in destination_ports 454-455`. Used by the CLI's `explain` and
    /// the playground alike.
    pub fn reason(&self, policy: &Policy, req: &Request<'_>) -> String {
        let Some(r) = policy
            .explained_scope(req)
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
            // The header and why, never its value (it may be a secret such
            // as a Front Door id).
            Some(Field::Headers) => r
                .headers
                .iter()
                .find_map(|m| {
                    header_miss(m, req.headers).map(|miss| {
                        let n = m.values.len();
                        let why = match miss {
                            HeaderMiss::Missing => "is missing",
                            HeaderMiss::Repeated => "has more than one line",
                            HeaderMiss::NotAllowed => "is none of the allowed values",
                        };
                        alloc::format!(
                            "header {} {why} (headers allows {n} value{})",
                            m.name,
                            if n == 1 { "" } else { "s" }
                        )
                    })
                })
                .unwrap_or_default(),
        }
    }
}

impl ScopeCheck {
    /// Why the scope did or did not apply, in words, e.g. `path /orders2
    /// (as sent: /orders2?x=1) is not in paths [/orders, /orders/*]`.
    pub fn reason(&self, policy: &Policy, req: &Request<'_>) -> String {
        let Some(s) = policy.scopes.get(self.index) else {
            return String::new();
        };
        let list = |items: Vec<String>| items.join(", ");
        let shown = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self.failed {
            None if self.chosen => String::from("every match field holds: this scope applies"),
            None => String::from("every match field holds, but an earlier scope applies"),
            Some(ScopeField::Hosts) => alloc::format!(
                "host {} is not in hosts [{}]",
                scope_host(req.authority).map_or_else(
                    || alloc::format!("{} (unreadable)", shown(req.authority)),
                    |h| shown(&h.to_ascii_lowercase())
                ),
                list(s.hosts.iter().map(|h| alloc::format!("{h}")).collect())
            ),
            Some(ScopeField::Paths) => alloc::format!(
                "path {} (as sent: {}) is not in paths [{}]",
                crate::decide::scope_path(req.path)
                    .map_or_else(|_| String::from("?"), |p| shown(&p)),
                shown(req.path),
                list(s.paths.iter().map(|p| alloc::format!("{p}")).collect())
            ),
            Some(ScopeField::Methods) => alloc::format!(
                "method {} is not in methods [{}]",
                shown(req.method),
                s.methods.join(", ")
            ),
        }
    }
}

impl Flow {
    /// The first field of `r` that does not match, in the order the policy
    /// lists them, or `None` when the rule matches.
    pub fn first_mismatch(&self, r: &Rule) -> Option<Field> {
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

impl Client {
    /// Where the client came from and, for an unknown one, why, in words:
    /// `65.52.10.20 from x-forwarded-for entry 1 (0 is the rightmost)`, or
    /// `unknown: x-forwarded-for entry 0 (the rightmost) is malformed:
    /// "65.52.10.20:99999"`. Used by the CLI's `explain` and the playground.
    ///
    /// ```
    /// use portcullis_core::{Policy, Request, Transport};
    /// let p = Policy::parse(br#"{"name":"p","client_ip":{"from":"x-forwarded-for","trusted_proxies":["10.0.0.1"]}}"#).unwrap();
    /// let headers = [("x-forwarded-for", "65.52.10.20:99999")];
    /// let req = Request {
    ///     peer: "10.0.0.1:5000".parse().unwrap(), local: "10.0.0.2:443".parse().unwrap(),
    ///     tls: true, transport: Transport::Tcp, method: b"GET", authority: b"a", path: b"/",
    ///     headers: &headers,
    /// };
    /// assert_eq!(
    ///     p.client(&req).describe(),
    ///     "unknown: x-forwarded-for entry 0 (the rightmost) is malformed: \"65.52.10.20:99999\""
    /// );
    /// ```
    pub fn describe(&self) -> String {
        let what = match self.source {
            ClientSource::Peer => "peer",
            ClientSource::XForwardedFor => "x-forwarded-for entry",
            ClientSource::Forwarded => "forwarded element",
            ClientSource::Header => "header",
        };
        let at = |i: u32| match i {
            0 => alloc::format!("{what} 0 (the rightmost)"),
            _ => alloc::format!("{what} {i} (0 is the rightmost)"),
        };
        let Some(why) = self.why else {
            let ip = self
                .ip
                .map_or_else(|| String::from("unknown"), |ip| alloc::format!("{ip}"));
            return match (self.source, self.entry) {
                (ClientSource::Peer, _) => alloc::format!("{ip} from the peer"),
                (ClientSource::Header, _) => alloc::format!("{ip} from the client header"),
                (_, Some(i)) => alloc::format!("{ip} from {}", at(i)),
                (s, None) => alloc::format!("{ip} from {}", s.as_str()),
            };
        };
        let place = match self.entry {
            Some(i) if self.source != ClientSource::Header => at(i),
            _ => String::from(self.source.as_str()),
        };
        let src = self.source.as_str();
        match why {
            Unknown::NoEntry => alloc::format!("unknown: the trusted peer sent no {src}"),
            Unknown::AllTrusted => {
                alloc::format!("unknown: every {src} entry is a trusted proxy")
            }
            Unknown::Malformed(Some(e)) => alloc::format!("unknown: {place} is malformed: {e}"),
            Unknown::Malformed(None) => {
                alloc::format!("unknown: {place} is malformed (a credential header: not shown)")
            }
            Unknown::ForUnknown => alloc::format!("unknown: {place} says for=unknown"),
            Unknown::Obfuscated(e) => {
                alloc::format!("unknown: {place} is an obfuscated identifier {e}")
            }
            Unknown::NoFor => alloc::format!("unknown: {place} has no for= parameter"),
            Unknown::SeveralLines => {
                String::from("unknown: the client header came on several lines")
            }
            Unknown::SeveralEntries => {
                String::from("unknown: the client header holds several entries")
            }
            Unknown::NoPeer => String::from("unknown: the host did not report the peer"),
        }
    }
}
