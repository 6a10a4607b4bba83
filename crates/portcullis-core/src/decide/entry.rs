//! One client-address entry (of X-Forwarded-For, of a `Forwarded` `for=`
//! value, of the policy's client `header`) and the pieces both readers
//! share: trimming optional white space and reading a port.
//!
//! What this module does *not* do: it does not walk a header (that is
//! `client` and `forwarded`), and it never folds an IPv4-mapped address.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A port: 1 to 5 digits, no leading zero (but `0`), at most 65535.
pub(crate) fn parse_port(p: &[u8]) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if p.len() > 1 && p.first() == Some(&b'0') {
        return None;
    }
    core::str::from_utf8(p).ok()?.parse().ok()
}

/// Parses one entry: after trimming spaces and tabs, `a.b.c.d`, an IPv6
/// address, `[v6]`, `a.b.c.d:port` or `[v6]:port` (the port is checked and
/// ignored). The address is returned as written (IPv4-mapped IPv6 is not
/// folded here).
///
/// ```
/// use portcullis_core::decide::parse_entry;
/// assert_eq!(parse_entry(b" 203.0.113.7:5100\t").unwrap().to_string(), "203.0.113.7");
/// assert_eq!(parse_entry(b"[2001:db8::7]:5100").unwrap().to_string(), "2001:db8::7");
/// assert_eq!(parse_entry(b"2001:db8::7").unwrap().to_string(), "2001:db8::7");
/// assert!(parse_entry(b"").is_none());
/// assert!(parse_entry(b"[203.0.113.7]").is_none());
/// assert!(parse_entry(b"203.0.113.7:99999").is_none());
/// assert!(parse_entry(b"fe80::1%eth0").is_none());
/// ```
pub fn parse_entry(e: &[u8]) -> Option<IpAddr> {
    let e = trim_ows(e);
    let s = core::str::from_utf8(e).ok()?;
    if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip = v6.parse::<Ipv6Addr>().ok()?;
        if !after.is_empty() {
            parse_port(after.strip_prefix(':')?.as_bytes())?;
        }
        return Some(IpAddr::V6(ip));
    }
    let colons = s.bytes().filter(|&b| b == b':').count();
    if colons == 1 {
        let (v4, port) = s.split_once(':')?;
        parse_port(port.as_bytes())?;
        return Some(IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?));
    }
    s.parse::<IpAddr>().ok()
}
