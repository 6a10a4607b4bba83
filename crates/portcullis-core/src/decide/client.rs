//! Step 1: resolving the client address: the peer, or, from a peer inside
//! `trusted_proxies`, the entries of X-Forwarded-For or `Forwarded` walked
//! from the right past trusted proxies, or one header a trusted proxy sets.
//!
//! An entry (of X-Forwarded-For, of a `for=` value, of the `header`) is, after
//! trimming spaces and tabs, an IPv4 address, an IPv6 address with or without
//! brackets, or an IPv4 or bracketed IPv6 address with a port (ignored):
//! [`parse_entry`] (in `entry`). The `Forwarded` grammar is read by
//! [`super::forwarded`]. What is *not* done here: no DNS names, no zone ids,
//! no leading zeros, no port ranges, no guessing at `a:b:c:d:port`.

use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use crate::addr;
use crate::policy::{ClientFrom, Policy};

use super::entry::{parse_entry, trim_ows};
use super::forwarded::{self, Element, Node};
use super::Request;

/// Where the client address came from: the same values and words as the
/// policy's `client_ip.from` (a client named by X-Forwarded-For came from
/// `x-forwarded-for`; a peer outside `trusted_proxies` from the `peer`).
pub type ClientSource = ClientFrom;

/// The resolved client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address, or `None` when it could not be determined.
    pub ip: Option<IpAddr>,
    /// Where it came from.
    pub source: ClientSource,
    /// The entry taken (or the one that left the client unknown), by its
    /// index in the walk: 0 is the rightmost entry (the nearest proxy's), 1
    /// the one left of it, and so on across every header line.
    pub entry: Option<u32>,
    /// Why the client is unknown (`None` when it is known).
    pub why: Option<Unknown>,
}

/// Why a client could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unknown {
    /// The trusted peer sent no entry (no header, or `header` absent).
    NoEntry,
    /// Every entry was inside `trusted_proxies`.
    AllTrusted,
    /// An entry (or a `Forwarded` element) is malformed. The excerpt is
    /// `None` when the header may hold a credential and is never quoted.
    Malformed(Option<Excerpt>),
    /// `for=unknown`.
    ForUnknown,
    /// An obfuscated identifier (`for=_hidden`).
    Obfuscated(Excerpt),
    /// A `Forwarded` element without `for`.
    NoFor,
    /// `from: header`, and the header came on several lines.
    SeveralLines,
    /// `from: header`, and its line held several entries.
    SeveralEntries,
    /// The host could not report the peer address.
    NoPeer,
}

impl Unknown {
    /// The reason's word, for traces and logs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Unknown::NoEntry => "no-entry",
            Unknown::AllTrusted => "all-trusted",
            Unknown::Malformed(_) => "malformed",
            Unknown::ForUnknown => "for=unknown",
            Unknown::Obfuscated(_) => "obfuscated",
            Unknown::NoFor => "no-for",
            Unknown::SeveralLines => "several-lines",
            Unknown::SeveralEntries => "several-entries",
            Unknown::NoPeer => "no-peer",
        }
    }

    /// The quoted entry, if this reason carries one.
    pub const fn excerpt(&self) -> Option<&Excerpt> {
        match self {
            Unknown::Malformed(Some(e)) | Unknown::Obfuscated(e) => Some(e),
            _ => None,
        }
    }
}

/// Displays as the trace writes it: the word, then `:` and the quoted
/// excerpt when there is one (`malformed:"65.52.10.20:99999"`). Never holds
/// a space.
impl fmt::Display for Unknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        match self.excerpt() {
            Some(e) => write!(f, ":{e}"),
            None => Ok(()),
        }
    }
}

/// At most this many bytes of an entry are kept for the trace.
pub const EXCERPT_BYTES: usize = 32;

/// The start of a header entry, kept to be quoted safely: at most
/// [`EXCERPT_BYTES`] bytes, shown in double quotes with every byte that is
/// not printable ASCII (space, `"` and `\` included) as `\xHH`, and `...`
/// after the quote when the entry was longer.
///
/// ```
/// use portcullis_core::decide::Excerpt;
/// let e = Excerpt::new(b"a b\"\x01\xff");
/// assert_eq!(e.to_string(), r#""a\x20b\x22\x01\xff""#);
/// assert_eq!(Excerpt::new(&[b'x'; 40]).to_string(), format!("\"{}\"...", "x".repeat(32)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Excerpt {
    bytes: [u8; EXCERPT_BYTES],
    len: u8,
    cut: bool,
}

impl Excerpt {
    /// Keeps the start of `b`.
    pub fn new(b: &[u8]) -> Excerpt {
        let mut bytes = [0u8; EXCERPT_BYTES];
        let n = b.len().min(EXCERPT_BYTES);
        for (d, s) in bytes.iter_mut().zip(b) {
            *d = *s;
        }
        Excerpt {
            bytes,
            len: n as u8,
            cut: b.len() > EXCERPT_BYTES,
        }
    }

    /// The bytes kept.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &b in self.bytes() {
            if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        f.write_str("\"")?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What one step of a walk found.
enum Found {
    Ip(IpAddr),
    Unknown(Unknown),
}

/// Header names whose values are never quoted in a trace.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

impl Policy {
    /// Resolves the client address (step 1).
    pub fn client(&self, req: &Request<'_>) -> Client {
        let peer = addr::canonical(req.peer.ip());
        let from = self.client_ip.from;
        if from == ClientFrom::Peer || !self.client_ip.trusted_proxies.contains(addr::key(peer)) {
            return Client {
                ip: Some(peer),
                source: ClientSource::Peer,
                entry: None,
                why: None,
            };
        }
        let (found, entry) = match from {
            ClientFrom::Peer | ClientFrom::XForwardedFor => self.walk_xff(req),
            ClientFrom::Forwarded => self.walk_forwarded(req),
            ClientFrom::Header => (self.client_header(req), Some(0)),
        };
        match found {
            Found::Ip(ip) => Client {
                ip: Some(ip),
                source: from,
                entry,
                why: None,
            },
            Found::Unknown(why) => Client {
                ip: None,
                source: from,
                entry,
                why: Some(why),
            },
        }
    }

    /// Whether an address is a trusted proxy's.
    fn trusted(&self, ip: IpAddr) -> bool {
        self.client_ip.trusted_proxies.contains(addr::key(ip))
    }

    /// X-Forwarded-For: every line joined in order, walked right to left.
    fn walk_xff(&self, req: &Request<'_>) -> (Found, Option<u32>) {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        req.headers
            .each_value("x-forwarded-for", &mut |v| lines.push(v.to_vec()));
        if lines.is_empty() {
            return (Found::Unknown(Unknown::NoEntry), None);
        }
        let mut index = 0u32;
        for line in lines.iter().rev() {
            for e in line.rsplit(|&b| b == b',') {
                let here = Some(index);
                index = index.saturating_add(1);
                let Some(ip) = parse_entry(e) else {
                    let ex = Excerpt::new(trim_ows(e));
                    return (Found::Unknown(Unknown::Malformed(Some(ex))), here);
                };
                let ip = addr::canonical(ip);
                if !self.trusted(ip) {
                    return (Found::Ip(ip), here);
                }
            }
        }
        (Found::Unknown(Unknown::AllTrusted), None)
    }

    /// `Forwarded`: every line and element, walked right to left.
    fn walk_forwarded(&self, req: &Request<'_>) -> (Found, Option<u32>) {
        let mut lines: Vec<Vec<u8>> = Vec::new();
        req.headers
            .each_value("forwarded", &mut |v| lines.push(v.to_vec()));
        if lines.is_empty() {
            return (Found::Unknown(Unknown::NoEntry), None);
        }
        let mut index = 0u32;
        let mut els = Vec::new();
        for line in lines.iter().rev() {
            els.clear();
            forwarded::elements(line, &mut els);
            for el in els.iter().rev() {
                let here = Some(index);
                index = index.saturating_add(1);
                let why = match el {
                    Element::Malformed(raw) => Unknown::Malformed(Some(Excerpt::new(raw))),
                    Element::NoFor => Unknown::NoFor,
                    Element::For(v) => match forwarded::classify_node(v) {
                        Node::Ip(ip) => {
                            let ip = addr::canonical(ip);
                            if self.trusted(ip) {
                                continue;
                            }
                            return (Found::Ip(ip), here);
                        }
                        Node::Unknown => Unknown::ForUnknown,
                        Node::Obfuscated => Unknown::Obfuscated(Excerpt::new(v)),
                        Node::Malformed => Unknown::Malformed(Some(Excerpt::new(v))),
                    },
                };
                return (Found::Unknown(why), here);
            }
        }
        (Found::Unknown(Unknown::AllTrusted), None)
    }

    /// `header`: exactly one line holding one entry.
    fn client_header(&self, req: &Request<'_>) -> Found {
        let Some(name) = self.client_ip.header.as_deref() else {
            return Found::Unknown(Unknown::NoEntry);
        };
        let mut lines = 0usize;
        let mut value: Vec<u8> = Vec::new();
        req.headers.each_value(name, &mut |v| {
            lines = lines.saturating_add(1);
            if lines == 1 {
                value = v.to_vec();
            }
        });
        match lines {
            0 => return Found::Unknown(Unknown::NoEntry),
            1 => {}
            _ => return Found::Unknown(Unknown::SeveralLines),
        }
        if value.contains(&b',') {
            return Found::Unknown(Unknown::SeveralEntries);
        }
        match parse_entry(&value) {
            Some(ip) => Found::Ip(addr::canonical(ip)),
            None => {
                let quote = !self.is_credential_header(name);
                let ex = quote.then(|| Excerpt::new(trim_ows(&value)));
                Found::Unknown(Unknown::Malformed(ex))
            }
        }
    }

    /// Whether a request header may carry a secret: `authorization`,
    /// `proxy-authorization`, `cookie`, or a header the policy requires or
    /// sets on requests (a key).
    pub fn is_credential_header(&self, name: &str) -> bool {
        CREDENTIAL_HEADERS
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
            || self.guarded_names().any(|g| g.eq_ignore_ascii_case(name))
    }
}
