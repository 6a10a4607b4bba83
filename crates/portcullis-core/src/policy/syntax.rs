//! The syntax of the policy's small words: names, HTTP tokens, port specs
//! and `https_only.hosts` entries (and `host[:port]` as requests carry it).

use super::AllowedHost;

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
];

/// Framing headers: ops on them could make the proxy and the backend
/// disagree on where a request ends (request smuggling).
pub(crate) const FRAMING: &[&str] = &["content-length", "expect"];

pub(crate) fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
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
pub(crate) fn parse_host(s: &str) -> Option<AllowedHost> {
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
/// On the request path (redirects read `:authority` with it).
#[deny(clippy::arithmetic_side_effects)]
pub(crate) fn split_host_port(a: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let (host, rest) = if a.first() == Some(&b'[') {
        let end = a.iter().position(|&b| b == b']')?;
        a.split_at_checked(end.checked_add(1)?)?
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
