//! The diff is exact: checked against the core's own matcher.
//!
//! Random policy pairs (IPv4 and IPv6 prefixes, IPv4-mapped prefixes,
//! ranges, tags, address groups, ports, protocols, destinations, a missing
//! `network` section; the new policy a mutation of the old or unrelated).
//! For every reported flow box, concrete flows are taken from it (both ends
//! and a middle of each listed interval, in several combinations) and
//! decided by both policies with `Policy::match_rule`: the verdicts and
//! deciding rules must be the ones the report names. Random flows that fall
//! in no box must be decided alike (same verdict, same rule name).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use portcullis_core::addr::{parse_literal, AddrSet, Key};
use portcullis_core::policy::{parse_port_spec, Access, Policy};
use portcullis_core::{Flow, Transport};
use portcullis_diff::{diff, Change, FlowSet, Flows, Kind};
use proptest::prelude::*;

const MAPPED_LO: u128 = 0xffff_0000_0000;
const MAPPED_HI: u128 = 0xffff_ffff_ffff;

const V4_BASES: [u32; 4] = [0x0a00_0000, 0x4134_0a00, 0x7f00_0000, 0xc0a8_0100];
const V6_BASES: [u128; 3] = [0x2001_0db8 << 96, 0xfd00 << 112, 1];

#[derive(Debug, Clone)]
enum Spec {
    V4(u32, u8),
    V6(u128, u8),
    Mapped(u32, u8),
    V4Range(u32, u32),
    Tag(&'static str),
    Group(usize),
}

fn text(s: &Spec) -> String {
    match *s {
        Spec::V4(a, l) => format!("{}/{l}", std::net::Ipv4Addr::from(a)),
        Spec::V6(a, l) => format!("{}/{l}", std::net::Ipv6Addr::from(a)),
        Spec::Mapped(a, l) => format!("::ffff:{}/{}", std::net::Ipv4Addr::from(a), 96 + l),
        Spec::V4Range(a, b) => format!(
            "{}-{}",
            std::net::Ipv4Addr::from(a),
            std::net::Ipv4Addr::from(b)
        ),
        Spec::Tag(t) => t.to_string(),
        Spec::Group(g) => format!("g{g}"),
    }
}

fn v4_prefix() -> impl Strategy<Value = (u32, u8)> {
    (
        0..V4_BASES.len(),
        0u32..1024,
        0u8..=32,
        any::<u32>(),
        0..6u8,
    )
        .prop_map(|(b, off, l, r, p)| {
            let a = if p == 0 {
                r
            } else {
                V4_BASES[b].wrapping_add(off)
            };
            let l = if p == 1 { l.min(8) } else { l.max(20) };
            let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            (a & mask, l)
        })
}

fn spec(groups: usize) -> impl Strategy<Value = Spec> {
    prop_oneof![
        5 => v4_prefix().prop_map(|(a, l)| Spec::V4(a, l)),
        2 => (0..V6_BASES.len(), 0u128..1024, prop_oneof![Just(0u8), 1u8..=128, 100u8..=128])
            .prop_map(|(b, off, l)| {
                let a = V6_BASES[b].wrapping_add(off);
                let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
                Spec::V6(a & mask, l)
            }),
        1 => v4_prefix().prop_map(|(a, l)| Spec::Mapped(a, l)),
        2 => (v4_prefix(), 0u32..600).prop_map(|((a, _), n)| Spec::V4Range(a, a.saturating_add(n))),
        1 => prop_oneof![Just("*"), Just("Internet"), Just("Private"), Just("Loopback")]
            .prop_map(Spec::Tag),
        1 => (0..groups.max(1)).prop_map(Spec::Group),
    ]
}

fn ports() -> impl Strategy<Value = Option<Vec<(u16, u16)>>> {
    let one = prop_oneof![Just(0u16), Just(65535u16), Just(443u16), 1000u16..1010]
        .prop_flat_map(|lo| (Just(lo), lo..=lo.saturating_add(4)));
    prop_oneof![3 => Just(None), 2 => prop::collection::vec(one, 1..3).prop_map(Some)]
}

#[derive(Debug, Clone)]
struct GenRule {
    allow: bool,
    source: Vec<Spec>,
    sports: Option<Vec<(u16, u16)>>,
    dports: Option<Vec<(u16, u16)>>,
    dest: Option<Spec>,
    proto: u8,
}

fn rule() -> impl Strategy<Value = GenRule> {
    (
        any::<bool>(),
        prop::collection::vec(spec(2), 1..4),
        ports(),
        ports(),
        prop_oneof![4 => Just(None), 1 => spec(2).prop_map(Some)],
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

#[derive(Debug, Clone)]
struct GenPolicy {
    network: bool,
    default_allow: bool,
    groups: Vec<Vec<Spec>>,
    /// (priority, rule); names are `r{index}`.
    rules: Vec<(u16, GenRule)>,
}

fn policy() -> impl Strategy<Value = GenPolicy> {
    (
        prop_oneof![9 => Just(true), 1 => Just(false)],
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(spec(0), 1..3), 2),
        prop::collection::vec(rule(), 0..6),
        any::<u64>(),
    )
        .prop_map(|(network, default_allow, groups, rules, seed)| {
            // Distinct priorities in a shuffled order.
            let mut prios: Vec<u16> = (0..rules.len() as u16).map(|i| 100 + 10 * i).collect();
            let n = prios.len();
            for i in 0..n {
                prios.swap(i, (seed as usize >> (i % 32)) % n);
            }
            GenPolicy {
                network,
                default_allow,
                groups: groups
                    .into_iter()
                    .map(|g| {
                        g.into_iter()
                            .map(|s| match s {
                                Spec::Group(_) => Spec::Tag("Loopback"),
                                s => s,
                            })
                            .collect()
                    })
                    .collect(),
                rules: prios.into_iter().zip(rules).collect(),
            }
        })
}

#[derive(Debug, Clone)]
enum Mutation {
    Priority(usize, u16),
    Access(usize),
    Ports(usize, Option<Vec<(u16, u16)>>),
    Source(usize, Spec),
    Proto(usize, u8),
    Remove(usize),
    Add(GenRule, u16),
    Default,
    Group(Spec),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..8usize, 0u16..100).prop_map(|(i, p)| Mutation::Priority(i, 105 + 10 * p)),
        (0..8usize).prop_map(Mutation::Access),
        (0..8usize, ports()).prop_map(|(i, p)| Mutation::Ports(i, p)),
        (0..8usize, spec(2)).prop_map(|(i, s)| Mutation::Source(i, s)),
        (0..8usize, 0u8..3).prop_map(|(i, p)| Mutation::Proto(i, p)),
        (0..8usize).prop_map(Mutation::Remove),
        (rule(), 0u16..100).prop_map(|(r, p)| Mutation::Add(r, 107 + 10 * p)),
        Just(Mutation::Default),
        spec(0).prop_map(Mutation::Group),
    ]
}

fn mutate(p: &GenPolicy, ms: &[Mutation]) -> GenPolicy {
    let mut p = p.clone();
    for m in ms {
        let n = p.rules.len();
        let free = |p: &GenPolicy, prio: u16| !p.rules.iter().any(|r| r.0 == prio);
        match m.clone() {
            Mutation::Priority(i, prio) if n > 0 && free(&p, prio) => p.rules[i % n].0 = prio,
            Mutation::Access(i) if n > 0 => p.rules[i % n].1.allow ^= true,
            Mutation::Ports(i, ports) if n > 0 => p.rules[i % n].1.dports = ports,
            Mutation::Source(i, s) if n > 0 => p.rules[i % n].1.source[0] = s,
            Mutation::Proto(i, x) if n > 0 => p.rules[i % n].1.proto = x,
            Mutation::Remove(i) if n > 0 => {
                p.rules.remove(i % n);
            }
            Mutation::Add(r, prio) if free(&p, prio) => p.rules.push((prio, r)),
            Mutation::Default => p.default_allow ^= true,
            Mutation::Group(s) => p.groups[0].push(match s {
                Spec::Group(_) => Spec::Tag("Private"),
                s => s,
            }),
            _ => {}
        }
    }
    p
}

fn render(p: &GenPolicy) -> String {
    let list = |v: &[Spec]| {
        v.iter()
            .map(|s| format!("{:?}", text(s)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let ports = |v: &[(u16, u16)]| {
        v.iter()
            .map(|(a, b)| format!("\"{a}-{b}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let groups: Vec<String> = p
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| format!("\"g{i}\": [{}]", list(g)))
        .collect();
    let rules: Vec<String> = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, (prio, r))| {
            let mut f = vec![
                format!("\"name\":\"r{i}\",\"priority\":{prio}"),
                format!("\"access\":\"{}\"", if r.allow { "allow" } else { "deny" }),
                format!("\"source\":[{}]", list(&r.source)),
                format!("\"protocol\":\"{}\"", ["*", "tcp", "udp"][r.proto as usize]),
            ];
            if let Some(s) = &r.sports {
                f.push(format!("\"source_ports\":[{}]", ports(s)));
            }
            if let Some(s) = &r.dports {
                f.push(format!("\"destination_ports\":[{}]", ports(s)));
            }
            if let Some(d) = &r.dest {
                f.push(format!("\"destination\":[{:?}]", text(d)));
            }
            format!("{{{}}}", f.join(","))
        })
        .collect();
    let network = if p.network {
        format!(
            ",\"network\":{{\"default_access\":\"{}\",\"rules\":[{}]}}",
            if p.default_allow { "allow" } else { "deny" },
            rules.join(",")
        )
    } else {
        String::new()
    };
    format!(
        "{{\"name\":\"prop\",\"address_groups\":{{{}}}{network}}}",
        groups.join(",")
    )
}

/// (allowed, deciding rule name) as the core decides the flow.
fn decide(p: &Policy, f: &Flow) -> (bool, String) {
    let Some(net) = &p.network else {
        return (true, "no network section".into());
    };
    match p.match_rule(f) {
        Some(i) => (
            net.rules[i].access == Access::Allow,
            net.rules[i].name.clone(),
        ),
        None => (net.default_access == Access::Allow, "default".into()),
    }
}

fn addr_set(specs: &[String]) -> AddrSet {
    let mut s = AddrSet::default();
    for t in specs {
        if t == "*" {
            s.extend(&AddrSet::any());
        } else {
            s.extend(&parse_literal(t).unwrap_or_else(|e| panic!("{t}: {e:?}")));
        }
    }
    s.normalize();
    s
}

fn port_set(specs: &[String]) -> Vec<(u16, u16)> {
    specs.iter().map(|t| parse_port_spec(t).unwrap()).collect()
}

/// Points of an address set to try: ends and middle of each interval
/// (never inside the IPv4-mapped block, where no IPv6 flow exists).
fn addr_points(s: &AddrSet) -> Vec<Key> {
    let mut out = Vec::new();
    for &(lo, hi) in &s.v4 {
        out.extend([lo, hi, lo + (hi - lo) / 2].map(Key::V4));
    }
    for &(lo, hi) in &s.v6 {
        for p in [lo, hi, lo + (hi - lo) / 2] {
            let p = if (MAPPED_LO..=MAPPED_HI).contains(&p) {
                MAPPED_HI + 1
            } else {
                p
            };
            if p <= hi {
                out.push(Key::V6(p));
            }
        }
    }
    out
}

fn port_points(v: &[(u16, u16)]) -> Vec<u16> {
    v.iter()
        .flat_map(|&(lo, hi)| [lo, hi, lo + (hi - lo) / 2])
        .collect()
}

fn in_ports(v: &[(u16, u16)], p: u16) -> bool {
    v.iter().any(|&(lo, hi)| lo <= p && p <= hi)
}

struct Box5 {
    src: AddrSet,
    sport: Vec<(u16, u16)>,
    dst: AddrSet,
    dport: Vec<(u16, u16)>,
    proto: Vec<Transport>,
}

fn box_of(f: &FlowSet) -> Box5 {
    Box5 {
        src: addr_set(&f.source),
        sport: port_set(&f.source_ports),
        dst: addr_set(&f.destination),
        dport: port_set(&f.destination_ports),
        proto: match f.protocol {
            "tcp" => vec![Transport::Tcp],
            "udp" => vec![Transport::Udp],
            _ => vec![Transport::Tcp, Transport::Udp],
        },
    }
}

impl Box5 {
    fn contains(&self, f: &Flow) -> bool {
        self.src.contains(f.src)
            && self.dst.contains(f.dst)
            && in_ports(&self.sport, f.sport)
            && in_ports(&self.dport, f.dport)
            && self.proto.contains(&f.transport)
    }
}

fn check_change(old: &Policy, new: &Policy, c: &Change, f: &Flow) -> Result<(), String> {
    let (a, b) = (decide(old, f), decide(new, f));
    let kind = match (a.0, b.0) {
        (false, true) => Kind::NewlyAllowed,
        (true, false) => Kind::NewlyDenied,
        _ => Kind::OtherRule,
    };
    if kind != c.kind || a.1 != c.old.rule || b.1 != c.new.rule || (a == b) {
        return Err(format!(
            "{f:?}: core says old {a:?} new {b:?}, report {c:?}"
        ));
    }
    Ok(())
}

fn key_any() -> impl Strategy<Value = Key> {
    prop_oneof![
        3 => (0..V4_BASES.len(), 0u32..2048).prop_map(|(b, o)| Key::V4(V4_BASES[b].wrapping_add(o))),
        1 => any::<u32>().prop_map(Key::V4),
        2 => (0..V6_BASES.len(), 0u128..2048).prop_map(|(b, o)| Key::V6(V6_BASES[b].wrapping_add(o))),
        1 => any::<u128>().prop_map(|a| Key::V6(if (MAPPED_LO..=MAPPED_HI).contains(&a) { 1 } else { a })),
    ]
}

fn flow_any() -> impl Strategy<Value = Flow> {
    let port = prop_oneof![
        Just(0u16),
        Just(65535u16),
        440u16..446,
        998u16..1016,
        any::<u16>()
    ];
    (key_any(), port.clone(), key_any(), port, any::<bool>()).prop_map(
        |(src, sport, dst, dport, udp)| Flow {
            src,
            sport,
            dst,
            dport,
            transport: if udp { Transport::Udp } else { Transport::Tcp },
        },
    )
}

fn run(old: &GenPolicy, new: &GenPolicy, probes: &[Flow]) -> Result<(), TestCaseError> {
    let (to, tn) = (render(old), render(new));
    let po =
        Policy::parse(to.as_bytes()).map_err(|e| TestCaseError::fail(format!("{to}: {e:?}")))?;
    let pn =
        Policy::parse(tn.as_bytes()).map_err(|e| TestCaseError::fail(format!("{tn}: {e:?}")))?;
    let report = diff(&po, &pn);
    let Flows::Exact { changes } = &report.network else {
        return Err(TestCaseError::fail(format!("not exact: {report}")));
    };
    let mut boxes = Vec::new();
    for c in changes {
        prop_assert!(!c.flows.is_empty(), "empty group {c:?}");
        for fs in &c.flows {
            let b = box_of(fs);
            let (ss, ds) = (addr_points(&b.src), addr_points(&b.dst));
            let (sp, dp) = (port_points(&b.sport), port_points(&b.dport));
            // Every source point with one of each other field, then every
            // other field's point with the first source point, and a few
            // diagonal combinations.
            let n = ss.len().max(ds.len()).max(sp.len()).max(dp.len());
            for i in 0..n.max(1) {
                for (j, t) in b.proto.iter().enumerate() {
                    let f = Flow {
                        src: ss[i % ss.len()],
                        sport: sp[(i + j) % sp.len()],
                        dst: ds[(i * 7 + j) % ds.len()],
                        dport: dp[(i * 3 + j) % dp.len()],
                        transport: *t,
                    };
                    check_change(&po, &pn, c, &f).map_err(|e| {
                        TestCaseError::fail(format!("{e}\nold {to}\nnew {tn}\n{report}"))
                    })?;
                }
            }
            boxes.push((b, c));
        }
    }
    for f in probes {
        let hit: Vec<&&Change> = boxes
            .iter()
            .filter(|(b, _)| b.contains(f))
            .map(|(_, c)| c)
            .collect();
        match hit.as_slice() {
            [] => {
                let (a, b) = (decide(&po, f), decide(&pn, f));
                prop_assert!(
                    a == b,
                    "{f:?} outside the report but old {a:?} new {b:?}\nold {to}\nnew {tn}\n{report}"
                );
            }
            [c] => check_change(&po, &pn, c, f)
                .map_err(|e| TestCaseError::fail(format!("{e}\nold {to}\nnew {tn}\n{report}")))?,
            _ => prop_assert!(false, "{f:?} in {} groups\n{report}", hit.len()),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_pairs_are_exact(
        old in policy(),
        ms in prop::collection::vec(mutation(), 1..4),
        probes in prop::collection::vec(flow_any(), 64),
    ) {
        let new = mutate(&old, &ms);
        run(&old, &new, &probes)?;
    }

    #[test]
    fn unrelated_pairs_are_exact(
        old in policy(),
        new in policy(),
        probes in prop::collection::vec(flow_any(), 64),
    ) {
        run(&old, &new, &probes)?;
    }

    #[test]
    fn a_policy_against_itself_has_no_change(p in policy()) {
        let t = render(&p);
        let a = Policy::parse(t.as_bytes()).unwrap();
        let r = diff(&a, &a);
        prop_assert!(r.changes().is_empty() && r.settings.is_empty(), "{r}");
        prop_assert_eq!(r.to_string(), "no change in who may call\n");
    }
}
