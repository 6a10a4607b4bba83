//! One network rule and the flow it is matched against: the words of a
//! rule (`access`, `protocol`, port sets), the compiled [`Rule`], the
//! request's [`Transport`] and the five-tuple [`Flow`]. Depends on nothing
//! but addresses, so both the policy model and the matcher build on it.

// The request path: arithmetic that could overflow is denied here (see
// the crate docs).
#![deny(clippy::arithmetic_side_effects)]

use alloc::string::String;
use alloc::vec::Vec;

use crate::addr::{AddrSet, Key};
use crate::json::Span;
use crate::words::words;

words! {
    /// `allow` or `deny`.
    pub enum Access {
        /// Let the request through this step.
        Allow = "allow",
        /// Stop it with the deny reply.
        Deny = "deny",
    }
}

words! {
    /// The transport a rule applies to.
    pub enum Protocol {
        /// Any transport.
        Any = "*",
        /// TCP (HTTP/1.1 and HTTP/2).
        Tcp = "tcp",
        /// UDP (HTTP/3).
        Udp = "udp",
    }
}

impl Protocol {
    /// Whether a request over `t` matches.
    #[inline]
    pub fn matches(self, t: Transport) -> bool {
        match self {
            Protocol::Any => true,
            Protocol::Tcp => t == Transport::Tcp,
            Protocol::Udp => t == Transport::Udp,
        }
    }
}

/// Sorted, merged inclusive port ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet(pub Vec<(u16, u16)>);

impl PortSet {
    /// Every port.
    pub fn any() -> Self {
        PortSet(alloc::vec![(0, u16::MAX)])
    }
    /// Whether every port is in the set.
    pub fn is_any(&self) -> bool {
        self.0.as_slice() == [(0, u16::MAX)]
    }
    /// Whether `p` is in the set.
    pub fn contains(&self, p: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= p && p <= hi)
    }
}

/// `*`, or the ranges as a policy writes them: `80, 443, 454-455`.
impl core::fmt::Display for PortSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_any() {
            return f.write_str("*");
        }
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// One compiled network rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Unique priority, 100..=4096.
    pub priority: u16,
    /// What a match does.
    pub access: Access,
    /// Client addresses.
    pub source: AddrSet,
    /// Client ports.
    pub source_ports: PortSet,
    /// Local (listener) addresses.
    pub destination: AddrSet,
    /// Local ports.
    pub destination_ports: PortSet,
    /// Transport.
    pub protocol: Protocol,
    /// `headers`: every one must hold (empty: the rule looks at no header).
    pub headers: Vec<HeaderMatch>,
    /// The source specs as written, for explanations.
    pub source_text: Vec<String>,
    /// The destination specs as written (empty when omitted, i.e. `*`).
    pub destination_text: Vec<String>,
    /// The rule's JSON path, e.g. `network.rules[3]`.
    pub path: String,
    /// Line of the rule in the document (1-based).
    pub line: u32,
    /// Byte span of the rule object in the document.
    pub span: Span,
}

/// Most names in a rule's `headers`, and most values per name.
pub const MAX_RULE_HEADERS: usize = 8;

/// One entry of a rule's `headers` (Azure App Service access restrictions'
/// `headers`, e.g. `x-azure-fdid`): the request must carry exactly one line
/// of `name` whose value, spaces and tabs trimmed, is one of `values`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeaderMatch {
    /// Lowercased header name.
    pub name: String,
    /// The allowed values (never empty, no CR, LF or NUL).
    pub values: Vec<Vec<u8>>,
}

impl Rule {
    /// Whether the rule matches any flow whose source it matches (and looks
    /// at no header).
    pub fn source_only(&self) -> bool {
        self.source_ports.is_any()
            && self.destination.is_any()
            && self.destination_ports.is_any()
            && self.protocol == Protocol::Any
            && self.headers.is_empty()
    }
}

words! {
    /// The transport of a request: `tcp` or `udp`.
    pub enum Transport {
        /// HTTP/1.x or HTTP/2 over TCP.
        Tcp = "tcp",
        /// HTTP/3 over UDP.
        Udp = "udp",
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
    pub fn matches_rest(&self, r: &Rule) -> bool {
        r.protocol.matches(self.transport)
            && r.source_ports.contains(self.sport)
            && r.destination_ports.contains(self.dport)
            && r.destination.contains(self.dst)
    }
}
