//! Replaying recorded traffic against policies.
//!
//! `portcullis replay OLD NEW LOG...` answers "of the callers we actually
//! had, who would this change cut off?". Each recorded request or flow
//! ([`Record`]) is decided by both policies through the core
//! ([`judge`]: [`Policy::decide`](portcullis_core::Policy::decide) for a
//! request, [`Policy::match_rule`](portcullis_core::Policy::match_rule) for
//! a layer-4 flow), and [`Tally`] aggregates the verdicts into a
//! [`Report`]: the flows NEW denies that OLD allowed, grouped by client and
//! merged into prefixes when many, those NEW allows that OLD denied, how
//! many records each rule of NEW decided, and the records that could not be
//! judged, counted by [`Unjudged`] reason.
//!
//! A record says what it could not see (a flow log has no headers, an App
//! Service log no client port): a policy whose decision depends on
//! something the record lacks leaves the record unjudged for that reason,
//! never guessed. See `docs/replay.md`.
//!
//! What this crate does *not* do:
//! - decide anything itself: every verdict is the core's;
//! - keep records: the aggregation is bounded ([`MAX_CLIENTS`] clients per
//!   group, then merged into shorter prefixes), whatever the log's size;
//! - print a header value: records are named by file and line only;
//! - I/O without the `std` feature: the judgement and the aggregation are
//!   `#![no_std]` + alloc; the readers ([`read`]) need `std`.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;

mod judge;
mod report;
mod tally;
pub mod time;

#[cfg(feature = "std")]
pub mod read;

use core::net::IpAddr;

use portcullis_core::Transport;

pub use judge::{judge, Decider, Judged};
pub use report::{ClientOut, DeciderOut, GroupOut, Report, RuleHits, Unjudgeable, SHOWN_CLIENTS};
pub use tally::{Kind, Loc, Side, Tally, Timeline, Window, MAX_BUCKETS, MAX_CLIENTS};

/// What a record saw.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    /// A layer-4 flow (flow logs): the network step only.
    Flow(FlowSeen),
    /// An HTTP request.
    Http(HttpSeen<'a>),
    /// Only the resolved client (a Portcullis trace record): the network
    /// step on the client address alone.
    Client(IpAddr),
}

/// A layer-4 flow, inbound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSeen {
    /// Source address (the TCP or UDP peer).
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Transport.
    pub transport: Transport,
}

/// An HTTP request as a log recorded it; `None` is "not recorded".
#[derive(Debug, Clone, Copy)]
pub struct HttpSeen<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The peer's port.
    pub peer_port: Option<u16>,
    /// The local (listener) address.
    pub local: Option<IpAddr>,
    /// The local port.
    pub local_port: Option<u16>,
    /// Whether the connection was TLS.
    pub tls: Option<bool>,
    /// Transport.
    pub transport: Transport,
    /// `:method`.
    pub method: Option<&'a [u8]>,
    /// `:authority` (or Host).
    pub authority: Option<&'a [u8]>,
    /// `:path`.
    pub path: Option<&'a [u8]>,
    /// The headers the record holds, names lowercase.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The header names the format records (lowercase), present in
    /// `headers` or not: a name listed here and absent from `headers` was
    /// absent from the request; a name not listed was not recorded.
    pub carried: &'a [&'a str],
}

/// One recorded request or flow.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// When, in seconds since the Unix epoch (UTC).
    pub time: Option<i64>,
    /// The decision the log recorded: `Some(true)` allowed (served),
    /// `Some(false)` denied, `None` when the log does not say.
    pub recorded: Option<bool>,
    /// What it saw.
    pub observed: Observed<'a>,
}

/// Why a record could not be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Unjudged {
    /// A flow log's outbound flow: only inbound flows reach a policy.
    Outbound,
    /// A flow log's protocol other than TCP and UDP.
    Protocol,
    /// The client address in the record is malformed.
    MalformedAddress,
    /// Layer 4: the peer is a trusted proxy of the policy, so the client
    /// is in a header the flow log cannot show.
    ClientInHeader,
    /// The policy's client header (X-Forwarded-For, `Forwarded` or its
    /// `client_ip.header`) is not recorded and the peer is trusted.
    ClientHeaderNotRecorded,
    /// The record names no client (a trace of an unknown client).
    ClientNotRecorded,
    /// Scopes name hosts and the record has no host.
    HostNotRecorded,
    /// Scopes name paths and the record has no path.
    PathNotRecorded,
    /// Scopes name methods and the record has no method.
    MethodNotRecorded,
    /// TLS is not recorded and the decision depends on it.
    TlsNotRecorded,
    /// A rule that may decide looks at a port or local address the record
    /// lacks.
    PortNotRecorded,
    /// Layer 4 or a trace: the scope is unknown (no host, path or method)
    /// and the policy's scopes decide the flow differently.
    ScopeNotRecorded,
    /// A rule that may decide names `headers` the record does not carry
    /// (a layer-4 record carries none).
    HeadersNotRecorded,
    /// `--policy`: the log does not say what was decided.
    NoRecordedDecision,
    /// The record is malformed (skipped with `--keep-going`).
    Malformed,
}

impl Unjudged {
    /// Every reason, in report order.
    pub const ALL: [Unjudged; 15] = [
        Unjudged::Outbound,
        Unjudged::Protocol,
        Unjudged::MalformedAddress,
        Unjudged::ClientInHeader,
        Unjudged::ClientHeaderNotRecorded,
        Unjudged::ClientNotRecorded,
        Unjudged::HostNotRecorded,
        Unjudged::PathNotRecorded,
        Unjudged::MethodNotRecorded,
        Unjudged::TlsNotRecorded,
        Unjudged::PortNotRecorded,
        Unjudged::ScopeNotRecorded,
        Unjudged::HeadersNotRecorded,
        Unjudged::NoRecordedDecision,
        Unjudged::Malformed,
    ];

    /// The reason's word (JSON and text).
    pub const fn as_str(self) -> &'static str {
        match self {
            Unjudged::Outbound => "outbound",
            Unjudged::Protocol => "protocol",
            Unjudged::MalformedAddress => "malformed-address",
            Unjudged::ClientInHeader => "layer4-client-in-header",
            Unjudged::ClientHeaderNotRecorded => "client-header-not-recorded",
            Unjudged::ClientNotRecorded => "client-not-recorded",
            Unjudged::HostNotRecorded => "host-not-recorded",
            Unjudged::PathNotRecorded => "path-not-recorded",
            Unjudged::MethodNotRecorded => "method-not-recorded",
            Unjudged::TlsNotRecorded => "tls-not-recorded",
            Unjudged::PortNotRecorded => "port-not-recorded",
            Unjudged::ScopeNotRecorded => "scope-not-recorded",
            Unjudged::HeadersNotRecorded => "headers-not-recorded",
            Unjudged::NoRecordedDecision => "no-recorded-decision",
            Unjudged::Malformed => "malformed",
        }
    }

    /// The reason in words.
    pub const fn describe(self) -> &'static str {
        match self {
            Unjudged::Outbound => "outbound flows (only inbound flows reach the policy)",
            Unjudged::Protocol => "flows of a protocol other than TCP and UDP",
            Unjudged::MalformedAddress => "the record's client address is malformed",
            Unjudged::ClientInHeader => {
                "layer 4: the peer is a trusted proxy, the client is in a header a flow log cannot show"
            }
            Unjudged::ClientHeaderNotRecorded => {
                "the peer is a trusted proxy and the policy's client header is not recorded"
            }
            Unjudged::ClientNotRecorded => "the record names no client",
            Unjudged::HostNotRecorded => "scopes name hosts and the record has no host",
            Unjudged::PathNotRecorded => "scopes name paths and the record has no path",
            Unjudged::MethodNotRecorded => "scopes name methods and the record has no method",
            Unjudged::TlsNotRecorded => "the decision depends on TLS, which is not recorded",
            Unjudged::PortNotRecorded => {
                "a rule that may decide looks at a port or local address the record lacks"
            }
            Unjudged::ScopeNotRecorded => {
                "the scope is unknown (no host, path or method) and the scopes decide differently"
            }
            Unjudged::HeadersNotRecorded => {
                "a rule that may decide names headers the record does not carry"
            }
            Unjudged::NoRecordedDecision => "the log does not say what was decided",
            Unjudged::Malformed => "malformed records (skipped with --keep-going)",
        }
    }
}
