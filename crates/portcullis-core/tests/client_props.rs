//! The client address the core resolves equals a naive reference walk.
//!
//! Random entry lists (trusted and untrusted IPv4 and IPv6 addresses, with
//! and without ports and brackets, padded with spaces and tabs, some
//! malformed), spread over several header lines, for `x-forwarded-for` and
//! `forwarded`. The reference knows nothing of the core's parsers: the
//! generator remembers what each entry is, and the walk below is the spec's
//! sentence, right to left over the entries, skipping trusted ones.
#![allow(clippy::unwrap_used)] // test setup: a failure should stop the test loudly

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use portcullis_core::{Policy, Request, Transport};
use proptest::prelude::*;

const TRUSTED_V4: u32 = 0x0a00_0000; // 10.0.0.0/24
const TRUSTED_V6: u128 = 0x2001_0db8_cafe << 80; // 2001:db8:cafe::/48

fn trusted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => u32::from(a) >> 8 == TRUSTED_V4 >> 8,
        IpAddr::V6(a) => u128::from(a) >> 80 == TRUSTED_V6 >> 80,
    }
}

/// One generated entry: what it is, and how it is written.
#[derive(Debug, Clone)]
enum Entry {
    Addr {
        ip: IpAddr,
        port: Option<u16>,
        brackets: bool,
        pad: (&'static str, &'static str),
    },
    Malformed(&'static str),
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..256).prop_map(|h| IpAddr::V4(Ipv4Addr::from(TRUSTED_V4 | h))),
        any::<u32>()
            .prop_filter("not mapped-looking", |a| a >> 8 != TRUSTED_V4 >> 8)
            .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u64>().prop_map(|h| IpAddr::V6(Ipv6Addr::from(TRUSTED_V6 | u128::from(h)))),
        // Global unicast, never IPv4-mapped (the core would fold those).
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from((a >> 4) | (0x2 << 124)))),
    ]
}

fn pad() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        12 => (ip(), proptest::option::of(any::<u16>()), any::<bool>(), pad(), pad()).prop_map(
            |(ip, port, brackets, a, b)| Entry::Addr { ip, port, brackets, pad: (a, b) }
        ),
        1 => prop_oneof![
            Just(""),
            Just("garbage"),
            Just("1.2.3.4:99999"),
            Just("[1.2.3.4]"),
            Just("010.0.0.1"),
            Just("2001:db8::1%eth0"),
            Just("[2001:db8::1]:"),
        ]
        .prop_map(Entry::Malformed),
    ]
}

impl Entry {
    /// As an X-Forwarded-For entry.
    fn xff(&self) -> String {
        match self {
            Entry::Malformed(s) => s.to_string(),
            Entry::Addr {
                ip,
                port,
                brackets,
                pad,
            } => {
                let body = match (ip, port, brackets) {
                    (IpAddr::V4(a), Some(p), _) => format!("{a}:{p}"),
                    (IpAddr::V4(a), None, _) => a.to_string(),
                    (IpAddr::V6(a), Some(p), _) => format!("[{a}]:{p}"),
                    (IpAddr::V6(a), None, true) => format!("[{a}]"),
                    (IpAddr::V6(a), None, false) => a.to_string(),
                };
                format!("{}{body}{}", pad.0, pad.1)
            }
        }
    }

    /// As a `Forwarded` element (quoted when the value needs it, with other
    /// parameters around it, the parameter name in varying case).
    fn forwarded(&self, k: usize) -> String {
        let name = ["for", "For", "FOR"][k % 3];
        let v = match self {
            // An empty value would be `for=""`, which is malformed too.
            Entry::Malformed(s) => format!("\"{s}\""),
            Entry::Addr {
                ip: IpAddr::V4(a),
                port: None,
                ..
            } => a.to_string(),
            Entry::Addr { .. } => format!("\"{}\"", self.xff().trim_matches([' ', '\t'])),
        };
        let (pre, post) = match self {
            Entry::Addr { pad, .. } => (pad.0, pad.1),
            Entry::Malformed(_) => ("", ""),
        };
        match k % 4 {
            0 => format!("{pre}{name}={v}{post}"),
            1 => format!("{pre}proto=https;{name}={v}{post}"),
            2 => format!("{pre}{name}={v};by=\"[2001:db8::1]\"{post}"),
            _ => format!("{pre}host=\"a,b;c\";{name}={v}{post}"),
        }
    }
}

/// The spec's walk: the peer unless trusted; else right to left over every
/// entry, a malformed one ends it (unknown), a trusted one is skipped, the
/// first other one is the client; none: unknown. Returns the client and the
/// index (from the right) of the entry taken.
fn reference(peer: IpAddr, lines: &[Vec<Entry>]) -> (Option<IpAddr>, Option<u32>) {
    if !trusted(peer) {
        return (Some(peer), None);
    }
    let all: Vec<&Entry> = lines.iter().flatten().collect();
    for (i, e) in all.iter().rev().enumerate() {
        match e {
            Entry::Malformed(_) => return (None, Some(i as u32)),
            Entry::Addr { ip, .. } if trusted(*ip) => continue,
            Entry::Addr { ip, .. } => return (Some(*ip), Some(i as u32)),
        }
    }
    (None, None)
}

fn policy(from: &str) -> Policy {
    Policy::parse(
        format!(
            r#"{{"name":"p","client_ip":{{"from":"{from}","trusted_proxies":["10.0.0.0/24","2001:db8:cafe::/48"]}}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn resolve(
    p: &Policy,
    peer: IpAddr,
    header: &str,
    lines: &[String],
) -> (Option<IpAddr>, Option<u32>) {
    let headers: Vec<(String, String)> = lines
        .iter()
        .flat_map(|l| {
            [
                ("x-other".to_string(), "1".to_string()),
                (header.to_string(), l.clone()),
            ]
        })
        .collect();
    let req = Request {
        peer: SocketAddr::new(peer, 5000),
        local: "10.9.9.9:443".parse().unwrap(),
        tls: true,
        transport: Transport::Tcp,
        method: b"GET",
        authority: b"a.example",
        path: b"/",
        headers: &headers,
    };
    let c = p.client(&req);
    (c.ip, c.entry)
}

fn peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![4 => ip().prop_filter("trusted", |ip| trusted(*ip)), 1 => ip()]
}

fn lines() -> impl Strategy<Value = Vec<Vec<Entry>>> {
    proptest::collection::vec(proptest::collection::vec(entry(), 1..5), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn x_forwarded_for_matches_the_reference(peer in peer(), lines in lines()) {
        let p = policy("x-forwarded-for");
        let text: Vec<String> = lines
            .iter()
            .map(|l| l.iter().map(Entry::xff).collect::<Vec<_>>().join(","))
            .collect();
        let (want_ip, want_entry) = reference(peer, &lines);
        let (ip, entry) = resolve(&p, peer, "x-forwarded-for", &text);
        prop_assert_eq!(ip, want_ip, "lines {:?}", text);
        // The index is reported whenever an entry decided.
        if want_entry.is_some() {
            prop_assert_eq!(entry, want_entry, "lines {:?}", text);
        }
    }

    #[test]
    fn forwarded_matches_the_reference(peer in peer(), lines in lines()) {
        let p = policy("forwarded");
        let mut k = 0usize;
        let text: Vec<String> = lines
            .iter()
            .map(|l| {
                l.iter()
                    .map(|e| {
                        k += 1;
                        e.forwarded(k)
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let (want_ip, want_entry) = reference(peer, &lines);
        let (ip, entry) = resolve(&p, peer, "Forwarded", &text);
        prop_assert_eq!(ip, want_ip, "lines {:?}", text);
        if want_entry.is_some() {
            prop_assert_eq!(entry, want_entry, "lines {:?}", text);
        }
    }
}
