//! `client_addr`: raw bytes as client-address header lines.
//!
//! The first byte picks `from` (x-forwarded-for, forwarded, header) and
//! whether the peer is trusted; the rest, split on `\n`, are the header's
//! lines. The core must not panic and must hold these invariants: an
//! untrusted peer is the client; a known client from a walk is outside
//! `trusted_proxies` and came from an entry; an unknown client says why; the
//! trace line reads back with the same entry and reason, with no space or
//! byte outside printable ASCII in the reason and the excerpt bounded; and,
//! with `from: header`, one line is the client exactly when
//! `parse_entry` reads it.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use portcullis_core::decide::{forwarded, parse_entry, EXCERPT_BYTES};
use portcullis_core::{ClientSource, Policy, Request, Trace, Transport};

const TRUSTED: &str = r#""trusted_proxies":["10.0.0.0/8","2001:db8::/32"]"#;

fn policies() -> &'static [Policy; 3] {
    static P: OnceLock<[Policy; 3]> = OnceLock::new();
    P.get_or_init(|| {
        let p = |c: &str| {
            Policy::parse(format!(r#"{{"name":"f","client_ip":{{{c},{TRUSTED}}}}}"#).as_bytes())
                .unwrap_or_else(|e| panic!("fuzz policy: {e}"))
        };
        [
            p(r#""from":"x-forwarded-for""#),
            p(r#""from":"forwarded""#),
            p(r#""from":"header","header":"x-client-ip""#),
        ]
    })
}

/// Runs one input.
pub fn check(data: &[u8]) -> Result<(), String> {
    let (&sel, rest) = data.split_first().unwrap_or((&0, &[]));
    let which = usize::from(sel % 3);
    let policy = &policies()[which];
    let name = ["x-forwarded-for", "forwarded", "x-client-ip"][which];
    let peer: IpAddr = if sel & 0x80 == 0 {
        "10.1.2.3".parse().unwrap_or(IpAddr::from([10, 1, 2, 3]))
    } else {
        IpAddr::from([203, 0, 113, 9])
    };
    let lines: Vec<(&str, &[u8])> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == b'\n').map(|l| (name, l)).collect()
    };
    let req = Request {
        peer: SocketAddr::new(peer, 4000),
        local: SocketAddr::new(IpAddr::from([10, 9, 9, 9]), 443),
        tls: true,
        transport: Transport::Tcp,
        method: b"GET",
        authority: b"a.example",
        path: b"/",
        headers: &lines,
    };
    let c = policy.client(&req);
    let trusted = |ip: IpAddr| match ip {
        IpAddr::V4(a) => a.octets()[0] == 10,
        IpAddr::V6(a) => a.segments()[..2] == [0x2001, 0x0db8],
    };
    if !trusted(peer) {
        if c.ip != Some(peer) || c.source != ClientSource::Peer {
            return Err(format!("untrusted peer, client {c:?}"));
        }
        return Ok(());
    }
    match (c.ip, c.why) {
        (Some(ip), None) => {
            if which < 2 && trusted(ip) {
                return Err(format!("a trusted entry became the client: {c:?}"));
            }
            if c.entry.is_none() {
                return Err(format!("a client from a walk without an entry: {c:?}"));
            }
        }
        (None, Some(_)) => {}
        _ => return Err(format!("client and reason disagree: {c:?}")),
    }
    if which == 1 {
        // Every line parses into at least one element, never panicking.
        for (_, l) in &lines {
            let mut els = Vec::new();
            forwarded::elements(l, &mut els);
            if els.is_empty() {
                return Err(format!("no element in {l:?}"));
            }
        }
    }
    if which == 2 && lines.len() == 1 {
        let v = lines[0].1;
        let want = if v.contains(&b',') {
            None
        } else {
            parse_entry(v).map(portcullis_core::addr::canonical)
        };
        if c.ip != want {
            return Err(format!("header {v:?}: client {c:?}, parse_entry {want:?}"));
        }
    }
    let d = policy.decide(&req);
    let line = policy.trace(&d);
    let t = Trace::parse(&line).ok_or_else(|| format!("unreadable trace {line:?}"))?;
    if t.entry != c.entry {
        return Err(format!("trace {line:?} lost the entry of {c:?}"));
    }
    let why = c.why.map(|w| w.to_string()).unwrap_or_default();
    if t.why != why {
        return Err(format!("trace {line:?} lost the reason {why:?}"));
    }
    if !why.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "reason {why:?} is not printable ASCII without spaces"
        ));
    }
    // The word, `:`, two quotes, at most 4 characters per byte, `...`.
    if why.len() > 20 + 2 + 4 * EXCERPT_BYTES + 3 {
        return Err(format!("reason {why:?} is too long"));
    }
    Ok(())
}

/// Seed inputs from a test case: its client-address header lines, once per
/// `from` that reads them, peer trusted.
pub fn seeds(case: &portcullis_harness::Case) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (which, names) in [
        &["x-forwarded-for"][..],
        &["forwarded"][..],
        &[
            "x-azure-clientip",
            "cf-connecting-ip",
            "true-client-ip",
            "x-client-ip",
        ][..],
    ]
    .iter()
    .enumerate()
    {
        let lines: Vec<&[u8]> = case
            .request
            .headers
            .iter()
            .filter(|(n, _)| names.iter().any(|x| n.eq_ignore_ascii_case(x)))
            .map(|(_, v)| v.as_slice())
            .collect();
        if lines.is_empty() {
            continue;
        }
        let mut seed = vec![which as u8];
        seed.extend(lines.join(&b"\n"[..]));
        out.push(seed);
    }
    out
}
