//! Choosing the scope of a request (step 1): `:authority` and `:path` as
//! scopes compare them, the 400 for unreadable authorities and ambiguous
//! paths, and the first scope whose `match` holds.
//!
//! Normalization (policy-v1 "Scopes"):
//! - host: the `:authority` without its port (an empty port is no port)
//!   and without one trailing dot, compared case-insensitively
//!   ([`scope_host`]). An authority that cannot be read as a host with an
//!   optional port is refused with 400 when some scope names `hosts`.
//! - path: without the query; percent-encoded unreserved characters
//!   (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes kept with upper-case
//!   hex; each segment's parameters (`;` to the end of the segment)
//!   removed; repeated `/` merged; then dot-segments removed (RFC 3986
//!   5.2.4) ([`scope_path`]). Decoding comes first, so `%2e%2e` is a
//!   dot-segment, and parameters go before dot-segments, so `/..;/` is
//!   `/../` (as Java servlet containers read it).
//!   A path holding `%2F`, `%5C`, `\`, a NUL (raw or `%00`) or a malformed
//!   `%` escape is [`Ambiguous`]: the back end may read it either way.
//!
//! What this module does *not* do: it does not decode anything else, and
//! it never hands the normalized path upstream: the request is forwarded
//! byte for byte, the normalization only chooses the scope.

use alloc::vec::Vec;

use crate::policy::{Policy, Scope};

use super::{Reason, Request};

/// A path that scopes cannot compare safely (rejected with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

/// The host of an `:authority` as scopes compare it: without the port and
/// without one trailing dot (case is left to the comparison). An empty
/// port (`api.example.com:`) is no port (RFC 3986 3.2.3).
///
/// `None` when the authority cannot be read as a host with an optional
/// port: a port that is not 1 to 5 digits up to 65535, a bracket without
/// its end or around something that is not an IPv6 address, userinfo
/// (`user@host`), an empty host, or a byte that no host holds (RFC 3986
/// `reg-name`: letters, digits, `-._~`, `%`, the sub-delimiters). When some
/// scope names `hosts`, such a request is refused with 400 before any scope
/// is chosen ([`crate::Reason::UnreadableAuthority`]); it never falls
/// through to a scope without `hosts` or to the top level.
///
/// ```
/// use portcullis_core::decide::scope_host;
/// assert_eq!(scope_host(b"API.example.com.:443"), Some(&b"API.example.com"[..]));
/// assert_eq!(scope_host(b"[::1]:8443"), Some(&b"[::1]"[..]));
/// assert_eq!(scope_host(b"admin.example.com:"), Some(&b"admin.example.com"[..]));
/// assert_eq!(scope_host(b"a.example:x"), None);
/// assert_eq!(scope_host(b"a.example:65536"), None);
/// assert_eq!(scope_host(b"user@admin.example.com"), None);
/// assert_eq!(scope_host(b"[::1"), None);
/// assert_eq!(scope_host(b":443"), None);
/// ```
pub fn scope_host(authority: &[u8]) -> Option<&[u8]> {
    let (host, rest) = if authority.first() == Some(&b'[') {
        let end = authority.iter().position(|&b| b == b']')?;
        let (host, rest) = authority.split_at(end.saturating_add(1));
        let inner = host.get(1..end)?;
        core::str::from_utf8(inner)
            .ok()?
            .parse::<core::net::Ipv6Addr>()
            .ok()?;
        (host, rest)
    } else {
        let (host, rest) = match authority.iter().rposition(|&b| b == b':') {
            Some(i) => authority.split_at(i),
            None => (authority, &[][..]),
        };
        if !host.iter().all(|&b| reg_name(b)) {
            return None;
        }
        (host, rest)
    };
    match rest.strip_prefix(b":") {
        Some(port) if !port_ok(port) => return None,
        Some(_) => {}
        None if !rest.is_empty() => return None,
        None => {}
    }
    let host = host.strip_suffix(b".").unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

/// A byte of an RFC 3986 `reg-name` (unreserved, `%`, sub-delims).
fn reg_name(b: u8) -> bool {
    unreserved(b) || b == b'%' || b"!$&'()*+,;=".contains(&b)
}

/// An authority's port: empty (no port), or 1 to 5 digits up to 65535.
fn port_ok(port: &[u8]) -> bool {
    port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, &d| {
            n.saturating_mul(10)
                .saturating_add(u32::from(d.wrapping_sub(b'0')))
        }) <= 65535
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The path of a `:path` as scopes compare it (see the module docs), or
/// [`Ambiguous`].
///
/// ```
/// use portcullis_core::decide::scope_path;
/// assert_eq!(scope_path(b"/a//b/%2e%2E/c?x=/d").unwrap(), b"/a/c");
/// assert_eq!(scope_path(b"/%7Euser/./x").unwrap(), b"/~user/x");
/// assert!(scope_path(b"/a%2Fb").is_err());
/// // A path is compared as if rooted: an empty one is `/`.
/// assert_eq!(scope_path(b"").unwrap(), b"/");
/// assert_eq!(scope_path(b"admin/../x").unwrap(), b"/x");
/// // Segment parameters go before dot-segments are removed.
/// assert_eq!(scope_path(b"/admin;x=1/users").unwrap(), b"/admin/users");
/// assert_eq!(scope_path(b"/public/..;/admin").unwrap(), b"/admin");
/// assert_eq!(scope_path(b"/a%3Bb").unwrap(), b"/a%3Bb");
/// ```
pub fn scope_path(raw: &[u8]) -> Result<Vec<u8>, Ambiguous> {
    let path = match raw.iter().position(|&b| b == b'?') {
        Some(q) => raw.get(..q).unwrap_or_default(),
        None => raw,
    };
    // Decode unreserved escapes, drop each segment's parameters (a raw `;`
    // to the end of its segment; `%3B` is not one) and merge repeated
    // slashes, in one pass: decoding never yields `;` or `/`, so this is
    // the spec's order. A path that does not start with `/` (empty, `*`,
    // or not origin-form) is read as rooted, so that `admin/x` is
    // compared as `/admin/x` and never slips past a scope's `paths`.
    // Escapes inside parameters are checked all the same: the path as a
    // whole is ambiguous or not.
    let mut flat = Vec::with_capacity(path.len().saturating_add(1));
    if path.first() != Some(&b'/') {
        flat.push(b'/');
    }
    let mut rest = path;
    let mut params = false;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        let b = match c {
            b'\\' | 0 => return Err(Ambiguous),
            b'%' => {
                let [h, l, more @ ..] = rest else {
                    return Err(Ambiguous);
                };
                let (Some(h), Some(l)) = (hex(*h), hex(*l)) else {
                    return Err(Ambiguous);
                };
                rest = more;
                let d = h.wrapping_shl(4) | l;
                if matches!(d, b'/' | b'\\' | 0) {
                    return Err(Ambiguous);
                }
                if !unreserved(d) {
                    if params {
                        continue;
                    }
                    const HEX: &[u8; 16] = b"0123456789ABCDEF";
                    flat.push(b'%');
                    flat.push(HEX.get(usize::from(h)).copied().unwrap_or(b'0'));
                    flat.push(HEX.get(usize::from(l)).copied().unwrap_or(b'0'));
                    continue;
                }
                d
            }
            c => c,
        };
        if b == b'/' {
            params = false;
        } else if params {
            continue;
        } else if b == b';' {
            params = true;
            continue;
        }
        if b == b'/' && flat.last() == Some(&b'/') {
            continue;
        }
        flat.push(b);
    }
    Ok(remove_dot_segments(&flat))
}

/// RFC 3986 5.2.4, on a path without repeated slashes.
fn remove_dot_segments(mut input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    fn pop_segment(out: &mut Vec<u8>) {
        let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
        out.truncate(cut);
    }
    while !input.is_empty() {
        if let Some(rest) = input
            .strip_prefix(b"../")
            .or_else(|| input.strip_prefix(b"./"))
        {
            // A.
            input = rest;
        } else if input.starts_with(b"/./") {
            // B.
            input = input.get(2..).unwrap_or_default();
        } else if input == b"/." {
            input = b"/";
        } else if input.starts_with(b"/../") {
            // C.
            input = input.get(3..).unwrap_or_default();
            pop_segment(&mut out);
        } else if input == b"/.." {
            input = b"/";
            pop_segment(&mut out);
        } else if input == b"." || input == b".." {
            // D.
            input = b"";
        } else {
            // E: the first segment, with its leading `/` if any.
            let start = usize::from(input.first() == Some(&b'/'));
            let end = input
                .iter()
                .skip(start)
                .position(|&b| b == b'/')
                .map_or(input.len(), |p| p.saturating_add(start));
            out.extend_from_slice(input.get(..end).unwrap_or_default());
            input = input.get(end..).unwrap_or_default();
        }
    }
    out
}

/// What a request looks like to scopes, worked out once per request.
pub(crate) struct Seen<'r> {
    /// [`scope_host`] (`None` only when no scope names `hosts`: then it
    /// is never compared).
    pub(crate) host: Option<&'r [u8]>,
    /// [`scope_path`] (empty when no scope names `paths`).
    pub(crate) path: Vec<u8>,
    /// `:method`.
    pub(crate) method: &'r [u8],
}

impl Scope {
    /// The first `match` field that does not hold for a request, or `None`
    /// when the scope matches.
    pub(crate) fn first_mismatch(&self, seen: &Seen<'_>) -> Option<ScopeField> {
        if !self.hosts.is_empty()
            && !seen
                .host
                .is_some_and(|h| self.hosts.iter().any(|p| p.matches(h)))
        {
            Some(ScopeField::Hosts)
        } else if !self.paths.is_empty() && !self.paths.iter().any(|p| p.matches(&seen.path)) {
            Some(ScopeField::Paths)
        } else if !self.methods.is_empty()
            && !self.methods.iter().any(|m| m.as_bytes() == seen.method)
        {
            Some(ScopeField::Methods)
        } else {
            None
        }
    }
}

crate::words::words! {
    /// A field of a scope's `match`; its word is the policy's field name.
    pub enum ScopeField {
        /// `hosts`
        Hosts = "hosts",
        /// `paths`
        Paths = "paths",
        /// `methods`
        Methods = "methods",
    }
}

impl Policy {
    /// Whether some scope names `paths` (so ambiguous paths are refused).
    pub fn scopes_read_paths(&self) -> bool {
        self.scopes.iter().any(|s| !s.paths.is_empty())
    }

    /// Whether some scope names `hosts` (so unreadable authorities are
    /// refused).
    pub fn scopes_read_hosts(&self) -> bool {
        self.scopes.iter().any(|s| !s.hosts.is_empty())
    }

    /// The request as scopes see it, or why step 1 refuses it:
    /// [`Reason::UnreadableAuthority`] (checked first) or
    /// [`Reason::AmbiguousPath`].
    pub(crate) fn seen<'r>(&self, req: &Request<'r>) -> Result<Seen<'r>, Reason> {
        let host = scope_host(req.authority);
        if host.is_none() && self.scopes_read_hosts() {
            return Err(Reason::UnreadableAuthority);
        }
        let path = if self.scopes_read_paths() {
            scope_path(req.path).map_err(|Ambiguous| Reason::AmbiguousPath)?
        } else {
            Vec::new()
        };
        Ok(Seen {
            host,
            path,
            method: req.method,
        })
    }

    /// Step 1: the scope of a request (index into `scopes`), `None` for
    /// the top level, or why it is refused with 400 before any scope is
    /// chosen: [`Reason::UnreadableAuthority`] when some scope names
    /// `hosts` and the authority cannot be read as a host with an optional
    /// port, [`Reason::AmbiguousPath`] when some scope names `paths` and
    /// the path is ambiguous.
    pub fn choose_scope(&self, req: &Request<'_>) -> Result<Option<usize>, Reason> {
        if self.scopes.is_empty() {
            return Ok(None);
        }
        let seen = self.seen(req)?;
        Ok(self
            .scopes
            .iter()
            .position(|s| s.first_mismatch(&seen).is_none()))
    }
}
