//! A reader of RFC 7239 `Forwarded` header lines, for `client_ip.from:
//! "forwarded"`: each line's elements, in order, and of each element its
//! `for` parameter.
//!
//! The grammar (RFC 7239 section 4, with the list and quoted-string rules of
//! RFC 9110): elements are separated by `,`, pairs by `;`, a pair is
//! `token=value` where the value is a token or a quoted string (`"..."`, with
//! `\` escaping one byte). Parameter names are case-insensitive; a parameter
//! given twice in one element makes the element malformed (which one would
//! count is ambiguous). Separators inside quoted strings do not split.
//! Spaces and tabs around elements, pairs, names and values are ignored.
//!
//! What this reader does *not* do: it does not judge the `for` value (see
//! [`classify_node`] and the client walk in `decide::client`) and ignores
//! every other parameter (`by`, `proto`, `host`, extensions) beyond their
//! syntax. An unquoted value may also hold `:`, `[` and `]`
//! (`for=192.0.2.7:80`), which RFC 7239 asks senders to quote: proxies
//! send it unquoted often enough, and the address is parsed strictly anyway.

use alloc::vec::Vec;
use core::net::IpAddr;

use super::entry::{parse_entry, parse_port, trim_ows};

/// One element of a `Forwarded` line, as far as the client walk cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element<'a> {
    /// The element's `for` value, unquoted (escapes resolved).
    For(Vec<u8>),
    /// A well-formed element without a `for` parameter (an empty element
    /// included).
    NoFor,
    /// The element breaks the grammar; the raw bytes, for the trace.
    Malformed(&'a [u8]),
}

/// What a `for` value names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// An address (any port ignored).
    Ip(IpAddr),
    /// `unknown`: the proxy did not know.
    Unknown,
    /// An obfuscated identifier (`_hidden`).
    Obfuscated,
    /// Anything else.
    Malformed,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits `s` on `sep` outside quoted strings. The flag says whether the
/// last part leaves a quoted string open.
fn split_outside_quotes(s: &[u8], sep: u8) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0usize, false, false);
    for (i, &b) in s.iter().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == sep {
            out.push(s.get(start..i).unwrap_or_default());
            start = i.saturating_add(1);
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    (out, quoted)
}

/// A value: a token (plus `:`, `[`, `]`) or one quoted string, unquoted.
fn value(v: &[u8]) -> Option<Vec<u8>> {
    let Some(inner) = v.strip_prefix(b"\"") else {
        let ok = v
            .iter()
            .all(|&b| is_tchar(b) || b == b':' || b == b'[' || b == b']');
        return ok.then(|| v.to_vec());
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&b) = it.next() {
        match b {
            b'"' => return it.next().is_none().then_some(out),
            b'\\' => match it.next() {
                Some(&e) if e == b'\t' || e >= b' ' && e != 0x7f => out.push(e),
                _ => return None,
            },
            b'\t' => out.push(b),
            b if b >= b' ' && b != 0x7f => out.push(b),
            _ => return None,
        }
    }
    None
}

/// One element: its `for` value, no `for`, or malformed.
fn element(raw: &[u8]) -> Element<'_> {
    let (pairs, open) = split_outside_quotes(raw, b';');
    if open {
        return Element::Malformed(raw);
    }
    let mut names: Vec<&[u8]> = Vec::new();
    let mut found = None;
    for pair in pairs {
        let pair = trim_ows(pair);
        if pair.is_empty() {
            continue;
        }
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            return Element::Malformed(raw);
        };
        let name = trim_ows(pair.get(..eq).unwrap_or_default());
        let val = trim_ows(pair.get(eq.saturating_add(1)..).unwrap_or_default());
        if name.is_empty()
            || !name.iter().all(|&b| is_tchar(b))
            || names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            return Element::Malformed(raw);
        }
        names.push(name);
        let Some(v) = value(val) else {
            return Element::Malformed(raw);
        };
        if name.eq_ignore_ascii_case(b"for") {
            found = Some(v);
        }
    }
    match found {
        Some(v) => Element::For(v),
        None => Element::NoFor,
    }
}

/// Reads one `Forwarded` line into its elements, in order. A quoted string
/// left open makes the rest of the line one malformed element.
///
/// ```
/// use portcullis_core::decide::forwarded::{elements, Element};
/// let mut out = Vec::new();
/// elements(b"for=192.0.2.60;proto=http, For=\"[2001:db8::17]:4711\"", &mut out);
/// assert_eq!(out, vec![
///     Element::For(b"192.0.2.60".to_vec()),
///     Element::For(b"[2001:db8::17]:4711".to_vec()),
/// ]);
/// ```
pub fn elements<'a>(line: &'a [u8], out: &mut Vec<Element<'a>>) {
    let (parts, open) = split_outside_quotes(line, b',');
    let last = parts.len().saturating_sub(1);
    for (i, p) in parts.into_iter().enumerate() {
        let p = trim_ows(p);
        out.push(if open && i == last {
            Element::Malformed(p)
        } else {
            element(p)
        });
    }
}

/// Judges a `for` value (RFC 7239 section 6): an address with an optional
/// port (an obfuscated port such as `_8080` included, since the port is
/// ignored), `unknown`, or an obfuscated identifier.
///
/// ```
/// use portcullis_core::decide::forwarded::{classify_node, Node};
/// assert!(matches!(classify_node(b"[2001:db8::17]:4711"), Node::Ip(_)));
/// assert_eq!(classify_node(b"UNKNOWN"), Node::Unknown);
/// assert_eq!(classify_node(b"_hidden"), Node::Obfuscated);
/// assert_eq!(classify_node(b"example.com"), Node::Malformed);
/// ```
pub fn classify_node(v: &[u8]) -> Node {
    // The node name, and the port after it (if any).
    let (name, port) = if v.first() == Some(&b'[') {
        match v.iter().position(|&b| b == b']') {
            Some(end) => v.split_at(end.saturating_add(1)),
            None => (v, &[][..]),
        }
    } else if v.iter().filter(|&&b| b == b':').count() == 1 {
        match v.iter().position(|&b| b == b':') {
            Some(c) => v.split_at(c),
            None => (v, &[][..]),
        }
    } else {
        (v, &[][..])
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(b":").is_some_and(|p| {
            p.first() == Some(&b'_') && p.len() > 1 && p.iter().all(|&b| is_obf_char(b))
                || parse_port(p).is_some()
        });
    if name.eq_ignore_ascii_case(b"unknown") {
        return if port_ok {
            Node::Unknown
        } else {
            Node::Malformed
        };
    }
    if name.first() == Some(&b'_') {
        let ok = name.len() > 1 && name.iter().all(|&b| is_obf_char(b));
        return if ok && port_ok {
            Node::Obfuscated
        } else {
            Node::Malformed
        };
    }
    if port.first() == Some(&b':') && port.get(1) == Some(&b'_') {
        // An obfuscated port: judge the address alone.
        return if port_ok {
            parse_entry(name).map_or(Node::Malformed, Node::Ip)
        } else {
            Node::Malformed
        };
    }
    parse_entry(v).map_or(Node::Malformed, Node::Ip)
}

/// `ALPHA / DIGIT / "." / "_" / "-"` (RFC 7239 `obfnode` and `obfport`).
fn is_obf_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn els(s: &str) -> Vec<Element<'_>> {
        let mut v = Vec::new();
        elements(s.as_bytes(), &mut v);
        v
    }

    #[test]
    fn rfc_examples() {
        assert_eq!(els("for=\"_gazonk\""), [Element::For(b"_gazonk".to_vec())]);
        assert_eq!(
            els("For=\"[2001:db8:cafe::17]:4711\""),
            [Element::For(b"[2001:db8:cafe::17]:4711".to_vec())]
        );
        assert_eq!(
            els("for=192.0.2.60;proto=http;by=203.0.113.43"),
            [Element::For(b"192.0.2.60".to_vec())]
        );
        assert_eq!(
            els("for=192.0.2.43, for=198.51.100.17"),
            [
                Element::For(b"192.0.2.43".to_vec()),
                Element::For(b"198.51.100.17".to_vec())
            ]
        );
    }

    #[test]
    fn quoted_separators_do_not_split() {
        assert_eq!(
            els("for=\"a,b;c\";by=x, for=1.2.3.4"),
            [
                Element::For(b"a,b;c".to_vec()),
                Element::For(b"1.2.3.4".to_vec())
            ]
        );
        assert_eq!(els("for=\"a\\\"b\""), [Element::For(b"a\"b".to_vec())]);
    }

    #[test]
    fn malformed_elements() {
        assert!(matches!(els("for")[..], [Element::Malformed(_)]));
        assert!(matches!(
            els("for=1.2.3.4;FOR=5.6.7.8")[..],
            [Element::Malformed(_)]
        ));
        assert!(matches!(els("for=\"1.2.3.4")[..], [Element::Malformed(_)]));
        assert!(matches!(
            els("for=\"1.2.3.4\"x")[..],
            [Element::Malformed(_)]
        ));
        assert!(matches!(els("for=1.2.3.4 5")[..], [Element::Malformed(_)]));
        assert!(matches!(
            els("for=1.2.3.4, for=\"5")[..],
            [Element::For(_), Element::Malformed(_)]
        ));
        assert_eq!(els(" , proto=https"), [Element::NoFor, Element::NoFor]);
    }

    #[test]
    fn nodes() {
        assert_eq!(classify_node(b"unknown:4711"), Node::Unknown);
        assert_eq!(classify_node(b"_a.b-c_d:_p"), Node::Obfuscated);
        assert_eq!(classify_node(b"_"), Node::Malformed);
        assert!(matches!(classify_node(b"192.0.2.1:_port"), Node::Ip(_)));
        assert!(matches!(classify_node(b"2001:db8::1"), Node::Ip(_)));
        assert_eq!(classify_node(b"192.0.2.1:"), Node::Malformed);
        assert_eq!(classify_node(b"[192.0.2.1]"), Node::Malformed);
        assert_eq!(classify_node(b""), Node::Malformed);
    }
}
