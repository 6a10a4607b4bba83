//! Step 1: resolving the client address (the peer, or X-Forwarded-For
//! walked from the right past trusted proxies).

use alloc::vec::Vec;
use core::net::IpAddr;

use crate::addr;
use crate::policy::{ClientFrom, Policy};

use super::Request;

/// Where the client address came from: the same values and words as the
/// policy's `client_ip.from` (a client named by X-Forwarded-For came from
/// `x-forwarded-for`; otherwise from the `peer`).
pub type ClientSource = ClientFrom;

/// The resolved client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The address, or `None` when it could not be determined.
    pub ip: Option<IpAddr>,
    /// Where it came from.
    pub source: ClientSource,
}

pub(super) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Parses one X-Forwarded-For entry strictly: a bare address.
fn parse_entry(e: &[u8]) -> Option<IpAddr> {
    let s = core::str::from_utf8(e).ok()?;
    s.parse::<IpAddr>().ok()
}

impl Policy {
    /// Resolves the client address (step 1).
    pub fn client(&self, req: &Request<'_>) -> Client {
        let peer = addr::canonical(req.peer.ip());
        let peer_client = Client {
            ip: Some(peer),
            source: ClientSource::Peer,
        };
        if self.client_ip.from == ClientFrom::Peer
            || !self.client_ip.trusted_proxies.contains(addr::key(peer))
        {
            return peer_client;
        }
        // All lines joined in order, walked right to left.
        let mut entries: Vec<Vec<u8>> = Vec::new();
        req.headers.each_value("x-forwarded-for", &mut |v| {
            for e in v.split(|&b| b == b',') {
                entries.push(trim_ows(e).to_vec());
            }
        });
        let unknown = Client {
            ip: None,
            source: ClientSource::XForwardedFor,
        };
        for e in entries.iter().rev() {
            if e.is_empty() {
                continue;
            }
            let Some(ip) = parse_entry(e) else {
                return unknown;
            };
            let ip = addr::canonical(ip);
            if !self.client_ip.trusted_proxies.contains(addr::key(ip)) {
                return Client {
                    ip: Some(ip),
                    source: ClientSource::XForwardedFor,
                };
            }
        }
        unknown
    }
}
