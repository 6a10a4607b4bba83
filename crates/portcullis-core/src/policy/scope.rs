//! Scopes: per-API and per-operation overrides of the top level
//! (policy-v1 "Scopes"), APIM-style.
//!
//! A [`Scope`] holds what it matches ([`HostPattern`]s, [`PathPattern`]s,
//! methods) and its *effective* policy: the top level with the scope's
//! sections merged in, worked out once when the policy is loaded
//! ([`Policy::parse`]), so deciding a request never merges anything. The
//! request side (normalizing `:authority` and `:path`, choosing the scope)
//! is in `decide/scope.rs`; validation in `validate/scopes.rs`.
//!
//! What this module does *not* do: it does not look at requests, and it
//! does not decide whether a pattern can ever match (that is a lint,
//! [`crate::lint`]).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::Policy;

/// Largest number of scopes in one policy.
pub const MAX_SCOPES: usize = 1000;

/// Which of the scope's own sections it states (the rest are inherited,
/// or dropped with `inherit: false`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restated {
    /// `network`
    pub network: bool,
    /// `https_only`
    pub https_only: bool,
    /// `hsts`
    pub hsts: bool,
    /// `mode`
    pub mode: bool,
    /// `require_headers`
    pub require_headers: bool,
    /// `request_headers`
    pub request_headers: bool,
    /// `response_headers`
    pub response_headers: bool,
}

/// One scope, compiled.
#[derive(Debug, Clone)]
pub struct Scope {
    /// Its name, unique in the policy (`[A-Za-z0-9][A-Za-z0-9._-]{0,63}`).
    pub name: String,
    /// `match.hosts`; empty when not given (any host).
    pub hosts: Vec<HostPattern>,
    /// `match.paths`; empty when not given (any path).
    pub paths: Vec<PathPattern>,
    /// `match.methods`; empty when not given (any method).
    pub methods: Vec<String>,
    /// `inherit` (default true).
    pub inherit: bool,
    /// The sections the scope states itself.
    pub restated: Restated,
    /// Line of the scope in the document.
    pub line: u32,
    /// The effective policy: the top level with this scope merged in (its
    /// own `scopes` is empty).
    pub policy: Box<Policy>,
}

/// A `match.hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this (lowercased) name.
    Exact(String),
    /// `*.suffix`: one or more labels before `.suffix`; holds `.suffix`
    /// (lowercased, with its leading dot).
    Wildcard(String),
}

impl HostPattern {
    /// Reads a pattern: a DNS name, an IPv4 address or a bracketed IPv6
    /// address, or `*.` and a DNS name. No port, no trailing dot.
    pub fn parse(s: &str) -> Result<HostPattern, &'static str> {
        if s.is_empty() {
            return Err("a host pattern must not be empty");
        }
        if s.ends_with('.') {
            return Err("write the name without a trailing dot (requests are compared without it)");
        }
        if let Some(v6) = s.strip_prefix('[') {
            return match v6.strip_suffix(']') {
                Some(a) if a.parse::<core::net::Ipv6Addr>().is_ok() => {
                    Ok(HostPattern::Exact(s.to_ascii_lowercase()))
                }
                _ => Err("expected a bracketed IPv6 address without a port"),
            };
        }
        let (wild, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if name.contains('*') {
            return Err("`*` may only be the whole first label (`*.example.com`)");
        }
        if name.contains(':') {
            return Err("ports are not part of a host pattern (requests are compared without it)");
        }
        let ok = name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            return Err("expected a DNS name (letters, digits and `-` in dot-separated labels)");
        }
        let lower = name.to_ascii_lowercase();
        Ok(if wild {
            HostPattern::Wildcard(alloc::format!(".{lower}"))
        } else {
            HostPattern::Exact(lower)
        })
    }

    /// Whether a request host (as [`crate::decide::scope_host`] gives it:
    /// no port, no trailing dot, any case) matches.
    pub fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            HostPattern::Wildcard(suffix) => {
                let s = suffix.as_bytes();
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|t| t.eq_ignore_ascii_case(s))
            }
        }
    }

    /// Whether every host `other` matches, this one matches too.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (a, b) if a == b => true,
            (HostPattern::Wildcard(_), HostPattern::Exact(h)) => self.matches(h.as_bytes()),
            // `*.a.example.com` is inside `*.example.com`.
            (HostPattern::Wildcard(s), HostPattern::Wildcard(t)) => t.ends_with(s.as_str()),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*{s}"),
        }
    }
}

/// A `match.paths` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `/orders`: exactly this path.
    Exact(String),
    /// `/orders/*`: `/orders` and everything below it on a segment
    /// boundary; holds `/orders` (empty for `/*`).
    Prefix(String),
}

impl PathPattern {
    /// Reads a pattern: `/` then visible ASCII; `*` only as a final `/*`;
    /// no query or fragment; `%` only in a `%XX` escape (hex digits are
    /// upper-cased, as normalized request paths hold them).
    pub fn parse(s: &str) -> Result<PathPattern, &'static str> {
        if !s.starts_with('/') {
            return Err("a path pattern starts with `/`");
        }
        let (body, prefix) = match s.strip_suffix("/*") {
            Some(b) => (b, true),
            None => (s, false),
        };
        let b = body.as_bytes();
        let mut out = String::with_capacity(b.len());
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            match c {
                b'*' => return Err("`*` may only end a pattern, as `/*`"),
                b'?' | b'#' => return Err("paths are compared without the query (and fragment)"),
                b'\\' => return Err("a backslash is never part of an accepted path"),
                b'%' => {
                    let (Some(h), Some(l)) = (b.get(i + 1), b.get(i + 2)) else {
                        return Err("`%` must start a `%XX` escape");
                    };
                    if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() {
                        return Err("`%` must start a `%XX` escape");
                    }
                    out.push('%');
                    out.push(char::from(h.to_ascii_uppercase()));
                    out.push(char::from(l.to_ascii_uppercase()));
                    i += 3;
                    continue;
                }
                0x21..=0x7e => out.push(char::from(c)),
                _ => return Err("only visible ASCII; percent-encode anything else"),
            }
            i += 1;
        }
        Ok(if prefix {
            PathPattern::Prefix(out)
        } else {
            PathPattern::Exact(out)
        })
    }

    /// Whether a normalized request path matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathPattern::Exact(p) => path == p.as_bytes(),
            PathPattern::Prefix(p) => path
                .strip_prefix(p.as_bytes())
                .is_some_and(|rest| rest.is_empty() || rest.first() == Some(&b'/')),
        }
    }

    /// Whether every path `other` matches, this one matches too.
    pub fn covers(&self, other: &PathPattern) -> bool {
        match (self, other) {
            (a, b) if a == b => true,
            (PathPattern::Prefix(_), PathPattern::Exact(p)) => self.matches(p.as_bytes()),
            (PathPattern::Prefix(_), PathPattern::Prefix(q)) => {
                // `/a/b/*` is inside `/a/*`; `/*` (empty) covers all.
                self.matches(q.as_bytes()) && !q.is_empty()
            }
            _ => false,
        }
    }

    /// The path written in the pattern (without a final `/*`).
    pub fn base(&self) -> &str {
        match self {
            PathPattern::Exact(p) | PathPattern::Prefix(p) => p,
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Exact(p) => f.write_str(p),
            PathPattern::Prefix(p) => write!(f, "{p}/*"),
        }
    }
}

impl Scope {
    /// Whether every request this scope matches, `earlier` matches too
    /// (so `earlier`, coming first, always shadows it).
    pub fn shadowed_by(&self, earlier: &Scope) -> bool {
        fn covered<T>(mine: &[T], theirs: &[T], covers: impl Fn(&T, &T) -> bool) -> bool {
            theirs.is_empty()
                || (!mine.is_empty() && mine.iter().all(|m| theirs.iter().any(|t| covers(t, m))))
        }
        covered(&self.hosts, &earlier.hosts, HostPattern::covers)
            && covered(&self.paths, &earlier.paths, PathPattern::covers)
            && covered(&self.methods, &earlier.methods, |a, b| a == b)
    }
}

impl Policy {
    /// The policy that applies in a scope (by index into `scopes`), or the
    /// top level for `None`. Decisions say their scope
    /// ([`crate::Decision::scope`]); hosts take the request and response
    /// edits from `policy.scoped(d.scope)`.
    pub fn scoped(&self, scope: Option<usize>) -> &Policy {
        match scope.and_then(|i| self.scopes.get(i)) {
            Some(s) => &s.policy,
            None => self,
        }
    }

    /// The name of the rule that decided `d` (in its scope's `network`),
    /// or `default`.
    pub fn rule_of(&self, d: &crate::Decision) -> &str {
        self.scoped(d.scope).rule_name(d.rule)
    }

    /// The name of a scope, or `None` for the top level.
    pub fn scope_name(&self, scope: Option<usize>) -> Option<&str> {
        scope
            .and_then(|i| self.scopes.get(i))
            .map(|s| s.name.as_str())
    }

    /// Whether the top level holds something `scope` would inherit: a
    /// `network`, `https_only` or `hsts` it does not restate, or a
    /// non-empty list (a list is inherited, run before the scope's own,
    /// even when the scope states one). `mode` is not counted: it is
    /// inherited even with `inherit: false`.
    pub fn inheritable_by(&self, scope: &Scope) -> bool {
        let r = scope.restated;
        (!r.network && self.network.is_some())
            || (!r.https_only && self.https_only.is_some())
            || (!r.hsts && self.hsts.is_some())
            || !self.require_headers.is_empty()
            || !self.request_headers.is_empty()
            || !self.response_headers.is_empty()
    }

    /// Merges each scope's own sections with the top level's, once, at
    /// load: `network`, `https_only`, `hsts` and `mode` replace the top
    /// level's, the three lists run after the top level's; with `inherit:
    /// false` the scope stands alone (its `network`, `https_only`, `hsts`
    /// and lists are its own or absent), but `mode` is still inherited
    /// unless the scope states one, so a policy rolled out in report mode
    /// never enforces in part by accident.
    pub(super) fn merge_scopes(&mut self) {
        let mut scopes = core::mem::take(&mut self.scopes);
        for s in &mut scopes {
            let r = s.restated;
            let p = &mut s.policy;
            p.name.clone_from(&self.name);
            p.client_ip = self.client_ip.clone();
            p.address_groups.clone_from(&self.address_groups);
            p.trace_json = self.trace_json;
            if !r.mode {
                p.mode = self.mode;
            }
            if s.inherit {
                if !r.network {
                    p.network.clone_from(&self.network);
                }
                if !r.https_only {
                    p.https_only.clone_from(&self.https_only);
                }
                if !r.hsts {
                    p.hsts.clone_from(&self.hsts);
                }
                prepend(&self.require_headers, &mut p.require_headers);
                prepend(&self.request_headers, &mut p.request_headers);
                prepend(&self.response_headers, &mut p.response_headers);
            }
        }
        self.scopes = scopes;
    }
}

/// `top` then `own`, in place (APIM's `<base/>` first).
fn prepend<T: Clone>(top: &[T], own: &mut Vec<T>) {
    let mut all = Vec::with_capacity(top.len() + own.len());
    all.extend_from_slice(top);
    all.append(own);
    *own = all;
}
