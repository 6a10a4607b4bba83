//! The compiled matcher agrees with a naive reference evaluator.
//!
//! The reference below knows nothing of the core's interval sets: it keeps
//! each rule's address specs as generated (prefix, address, range, tag) and
//! tests them one by one with plain integer arithmetic, walking the rules in
//! priority order. Random policies and flows, IPv4 and IPv6, including /0,
//! /32, /128 and IPv4-mapped IPv6 peers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use portcullis_core::{Policy, Request, Transport, Verdict};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Spec {
    V4Prefix(u32, u8),
    V6Prefix(u128, u8),
    V4Range(u32, u32),
    Any,
    Private,
    Loopback,
}

impl Spec {
    fn text(&self) -> String {
        match *self {
            Spec::V4Prefix(a, 32) => Ipv4Addr::from(a).to_string(),
            Spec::V4Prefix(a, l) => format!("{}/{l}", Ipv4Addr::from(a)),
            Spec::V6Prefix(a, 128) => Ipv6Addr::from(a).to_string(),
            Spec::V6Prefix(a, l) => format!("{}/{l}", Ipv6Addr::from(a)),
            Spec::V4Range(a, b) => format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b)),
            Spec::Any => "*".into(),
            Spec::Private => "Private".into(),
            Spec::Loopback => "Loopback".into(),
        }
    }
    fn contains(&self, ip: IpAddr) -> bool {
        let v4 = |p: u32, l: u8, a: u32| l == 0 || (a >> (32 - l)) == (p >> (32 - l));
        let v6 = |p: u128, l: u8, a: u128| l == 0 || (a >> (128 - l)) == (p >> (128 - l));
        match (*self, ip) {
            (Spec::Any, _) => true,
            (Spec::V4Prefix(p, l), IpAddr::V4(a)) => v4(p, l, a.into()),
            (Spec::V6Prefix(p, l), IpAddr::V6(a)) => v6(p, l, a.into()),
            (Spec::V4Range(lo, hi), IpAddr::V4(a)) => (lo..=hi).contains(&u32::from(a)),
            (Spec::Private, IpAddr::V4(a)) => {
                let a = u32::from(a);
                v4(0x0a00_0000, 8, a) || v4(0xac10_0000, 12, a) || v4(0xc0a8_0000, 16, a)
            }
            (Spec::Private, IpAddr::V6(a)) => v6(0xfc00 << 112, 7, a.into()),
            (Spec::Loopback, IpAddr::V4(a)) => u32::from(a) >> 24 == 127,
            (Spec::Loopback, IpAddr::V6(a)) => u128::from(a) == 1,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct GenRule {
    allow: bool,
    source: Vec<Spec>,
    sports: Option<(u16, u16)>,
    dports: Option<(u16, u16)>,
    dest: Option<Spec>,
    proto: u8, // 0 any, 1 tcp, 2 udp
}

// A few bases so that random flows actually hit random rules.
const V4_BASES: [u32; 4] = [0x0a00_0000, 0x4134_0a00, 0x7f00_0000, 0xc0a8_0100];
const V6_BASES: [u128; 4] = [0x2001_0db8 << 96, 0xfd00 << 112, 1, 0xffff_0a00_0000];

fn v4_addr() -> impl Strategy<Value = u32> {
    (0..V4_BASES.len(), 0u32..512, any::<u32>(), 0..8u8).prop_map(|(b, off, r, pick)| {
        if pick == 0 {
            r
        } else {
            V4_BASES[b].wrapping_add(off)
        }
    })
}
fn v6_addr() -> impl Strategy<Value = u128> {
    (0..V6_BASES.len(), 0u128..512, any::<u128>(), 0..8u8).prop_map(|(b, off, r, pick)| {
        if pick == 0 {
            r
        } else {
            V6_BASES[b].wrapping_add(off)
        }
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => (v4_addr(), prop_oneof![Just(0u8), Just(32u8), 1u8..32]).prop_map(|(a, l)| {
            let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            Spec::V4Prefix(a & mask, l)
        }),
        2 => (v6_addr(), prop_oneof![Just(128u8), 1u8..128]).prop_map(|(a, l)| {
            let mask = u128::MAX << (128 - l);
            Spec::V6Prefix(a & mask, l)
        }).prop_filter("not inside the IPv4-mapped space", |s| match *s {
            // Prefixes inside ::ffff:0:0/96 match IPv4 clients; the
            // reference keeps families apart, so leave them to the corpus.
            Spec::V6Prefix(a, l) => {
                let hi = a | u128::MAX.checked_shr(u32::from(l)).unwrap_or(0);
                !(a >= 0xffff_0000_0000 && hi <= 0xffff_ffff_ffff)
            }
            _ => true,
        }),
        2 => (v4_addr(), 0u32..300).prop_map(|(a, n)| Spec::V4Range(a, a.saturating_add(n))),
        1 => Just(Spec::Any),
        1 => Just(Spec::Private),
        1 => Just(Spec::Loopback),
    ]
}

fn ports() -> impl Strategy<Value = Option<(u16, u16)>> {
    prop_oneof![
        3 => Just(None),
        1 => prop_oneof![Just(0u16), Just(65535u16), Just(443u16), 1000u16..1010]
            .prop_flat_map(|lo| (Just(lo), lo..=lo.saturating_add(3)))
            .prop_map(Some),
    ]
}

fn rule() -> impl Strategy<Value = GenRule> {
    (
        any::<bool>(),
        prop::collection::vec(spec(), 1..4),
        ports(),
        ports(),
        prop_oneof![4 => Just(None), 1 => spec().prop_map(Some)],
        0u8..3,
    )
        .prop_map(|(allow, source, sports, dports, dest, proto)| GenRule {
            allow,
            source,
            sports,
            dports,
            dest,
            proto,
        })
}

fn policy_text(rules: &[(u16, GenRule)], default_allow: bool) -> String {
    let mut out = Vec::new();
    for (i, (prio, r)) in rules.iter().enumerate() {
        let src: Vec<String> = r.source.iter().map(|s| format!("{:?}", s.text())).collect();
        let mut fields = vec![
            format!("\"name\": \"r{i}\""),
            format!("\"priority\": {prio}"),
            format!("\"access\": \"{}\"", if r.allow { "allow" } else { "deny" }),
            format!("\"source\": [{}]", src.join(",")),
        ];
        if let Some((lo, hi)) = r.sports {
            fields.push(format!("\"source_ports\": [\"{lo}-{hi}\"]"));
        }
        if let Some((lo, hi)) = r.dports {
            fields.push(format!("\"destination_ports\": [\"{lo}-{hi}\"]"));
        }
        if let Some(d) = &r.dest {
            fields.push(format!("\"destination\": [{:?}]", d.text()));
        }
        fields.push(format!(
            "\"protocol\": \"{}\"",
            ["*", "tcp", "udp"][r.proto as usize]
        ));
        out.push(format!("{{{}}}", fields.join(",")));
    }
    format!(
        "{{\"name\":\"prop\",\"network\":{{\"default_access\":\"{}\",\"rules\":[{}]}}}}",
        if default_allow { "allow" } else { "deny" },
        out.join(",")
    )
}

fn fold(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reference: rules by priority, first full match decides.
fn naive(
    rules: &[(u16, GenRule)],
    peer: SocketAddr,
    local: SocketAddr,
    udp: bool,
) -> Option<usize> {
    let mut order: Vec<usize> = (0..rules.len()).collect();
    order.sort_by_key(|&i| rules[i].0);
    let (src, dst) = (fold(peer.ip()), fold(local.ip()));
    order.into_iter().find(|&i| {
        let r = &rules[i].1;
        let port_ok = |p: Option<(u16, u16)>, x: u16| p.is_none_or(|(lo, hi)| lo <= x && x <= hi);
        r.source.iter().any(|s| s.contains(src))
            && port_ok(r.sports, peer.port())
            && port_ok(r.dports, local.port())
            && r.dest.as_ref().is_none_or(|d| d.contains(dst))
            && match r.proto {
                0 => true,
                1 => !udp,
                _ => udp,
            }
    })
}

fn peer_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => v4_addr().prop_map(|a| IpAddr::V4(a.into())),
        1 => v4_addr().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        2 => v6_addr().prop_map(|a| IpAddr::V6(a.into())),
    ]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(65535u16),
        Just(443u16),
        1000u16..1012,
        any::<u16>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_naive(
        rules in prop::collection::vec(rule(), 1..24),
        prios in prop::collection::hash_set(100u16..=4096, 24),
        default_allow in any::<bool>(),
        flows in prop::collection::vec((peer_ip(), port(), peer_ip(), port(), any::<bool>()), 1..32),
    ) {
        let prios: Vec<u16> = prios.into_iter().collect();
        let rules: Vec<(u16, GenRule)> = rules.into_iter().zip(prios).map(|(r, p)| (p, r)).collect();
        let text = policy_text(&rules, default_allow);
        let policy = Policy::parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        for (pip, pport, lip, lport, udp) in flows {
            let peer = SocketAddr::new(pip, pport);
            let local = SocketAddr::new(lip, lport);
            let none: [(&str, &str); 0] = [];
            let req = Request {
                peer, local, tls: true,
                transport: if udp { Transport::Udp } else { Transport::Tcp },
                method: b"GET", authority: b"x", path: b"/", headers: &none,
            };
            let want = naive(&rules, peer, local, udp);
            let d = policy.decide(&req);
            let want_name = want.map_or("default".to_string(), |i| format!("r{i}"));
            prop_assert_eq!(policy.rule_name(d.rule), want_name.as_str(), "flow {} -> {} udp={}\n{}", peer, local, udp, text);
            let allow = want.map_or(default_allow, |i| rules[i].1.allow);
            prop_assert_eq!(d.verdict == Verdict::Forward, allow);
            // The per-rule explanation walks the rules one by one: it must
            // name the same deciding rule.
            let ex = policy.explain(&req);
            let decided = ex.iter().find(|c| c.decided).map(|c| c.index);
            prop_assert_eq!(decided, d.rule);
        }
    }
}

#[test]
fn large_tables_use_the_bucket_index() {
    // 5,000 /32s and /24s across 200 rules, checked against the reference.
    let mut rules = Vec::new();
    for r in 0..200u32 {
        let source: Vec<Spec> = (0..25u32)
            .map(|k| {
                let a = 0x0a00_0000 + (r * 25 + k) * 256;
                if k % 2 == 0 {
                    Spec::V4Prefix(a, 24)
                } else {
                    Spec::V4Prefix(a + 7, 32)
                }
            })
            .collect();
        rules.push((
            100 + r as u16,
            GenRule {
                allow: r % 3 != 0,
                source,
                sports: None,
                dports: if r % 5 == 0 { Some((443, 443)) } else { None },
                dest: None,
                proto: 0,
            },
        ));
    }
    let text = policy_text(&rules, false);
    let policy = Policy::parse(text.as_bytes()).unwrap();
    let none: [(&str, &str); 0] = [];
    for i in 0..20_000u32 {
        let a = 0x0a00_0000u32.wrapping_add(i.wrapping_mul(2654435761) % (200 * 25 * 256 + 5000));
        for lport in [80u16, 443] {
            let peer = SocketAddr::new(IpAddr::V4(a.into()), 1234);
            let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), lport);
            let req = Request {
                peer,
                local,
                tls: true,
                transport: Transport::Tcp,
                method: b"GET",
                authority: b"x",
                path: b"/",
                headers: &none,
            };
            let want = naive(&rules, peer, local, false);
            assert_eq!(policy.decide(&req).rule, want, "{peer} port {lport}");
        }
    }
}
