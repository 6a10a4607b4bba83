//! From the cut (a DAG of nodes) to groups of merged flow boxes.
//!
//! For every (old decider, new decider) pair that changes something, each
//! node's region is interned bottom-up: a region is "every flow" or a cut
//! along one dimension into groups of intervals sharing one sub-region.
//! Interning makes equal regions one id, so intervals whose sub-regions are
//! equal merge even when they came from different nodes. A region covering
//! a whole dimension with one sub-region is that sub-region.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use portcullis_core::policy::Policy;

use crate::render::{interval_specs, port_specs};
use crate::space::{
    adjacent, covers_full, Builder, Dec, Iv, Node, DIMS, DPORT, DST, PROTO, SPORT, SRC,
};
use crate::{Change, Decider, FlowSet, Flows, Kind, Limits};

type Pair = (Dec, Dec);

/// Region 0 is every flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Region {
    Full,
    Split(usize, Vec<(Vec<Iv>, u32)>),
}

#[derive(Debug, Default)]
struct Regions {
    list: Vec<Region>,
    ids: BTreeMap<Region, u32>,
}

impl Regions {
    fn intern(&mut self, r: Region) -> u32 {
        if let Some(&id) = self.ids.get(&r) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(r.clone());
        self.ids.insert(r, id);
        id
    }
}

pub(crate) fn network(old: &Policy, new: &Policy, limits: Limits) -> Flows {
    network_counted(old, new, limits).0
}

/// [`network`], and the units of work it took (the rules read count too),
/// for callers that share one budget between several comparisons. Rules
/// with `headers` are compared per header class (`crate::headers`).
pub(crate) fn network_counted(old: &Policy, new: &Policy, limits: Limits) -> (Flows, usize) {
    crate::headers::network_counted(old, new, limits)
}

/// The flow-only comparison: every rule's `headers` are taken to hold (the
/// header classes have already kept or dropped each rule).
pub(crate) fn flows_counted(old: &Policy, new: &Policy, limits: Limits) -> (Flows, usize) {
    let mut b = Builder::new(old, new, limits.cells);
    let all = |s: usize| (0..b.sides[s].rules.len() as u32).collect::<Vec<u32>>();
    let (a, n) = (all(0), all(1));
    let read = a.len().saturating_add(n.len());
    let Ok(root) = b.build(SRC, a, n) else {
        return (
            Flows::TooComplex {
                limit: limits.cells as u64,
            },
            b.work.saturating_add(read),
        );
    };
    let work = b.work.saturating_add(read);
    let mut regions = Regions::default();
    regions.intern(Region::Full);
    // Nodes are pushed after their children: one pass in order suffices.
    let mut maps: Vec<BTreeMap<Pair, u32>> = Vec::with_capacity(b.nodes.len());
    for node in &b.nodes {
        let m = match node {
            Node::Same => BTreeMap::new(),
            Node::Leaf(x, y) => {
                let mut m = BTreeMap::new();
                if b.changed(*x, *y) {
                    m.insert((*x, *y), 0);
                }
                m
            }
            Node::Split(dim, entries) => {
                let mut per: BTreeMap<Pair, Vec<(Iv, u32)>> = BTreeMap::new();
                for &(lo, hi, child) in entries {
                    let Some(cm) = maps.get(child as usize) else {
                        continue;
                    };
                    for (&pair, &r) in cm {
                        let v = per.entry(pair).or_default();
                        match v.last_mut() {
                            Some(last) if last.1 == r && adjacent(*dim, last.0 .1, lo) => {
                                last.0 .1 = hi
                            }
                            _ => v.push(((lo, hi), r)),
                        }
                    }
                }
                let mut m = BTreeMap::new();
                for (pair, v) in per {
                    let first = v.first().map_or(0, |e| e.1);
                    let id = if v.iter().all(|e| e.1 == first)
                        && covers_full(*dim, v.iter().map(|e| e.0))
                    {
                        first
                    } else {
                        let mut groups: BTreeMap<u32, Vec<Iv>> = BTreeMap::new();
                        for (iv, r) in v {
                            groups.entry(r).or_default().push(iv);
                        }
                        let mut g: Vec<(Vec<Iv>, u32)> =
                            groups.into_iter().map(|(r, ivs)| (ivs, r)).collect();
                        g.sort();
                        regions.intern(Region::Split(*dim, g))
                    };
                    m.insert(pair, id);
                }
                m
            }
        };
        maps.push(m);
    }
    let root_map = maps.get(root as usize).cloned().unwrap_or_default();
    // (boxes, intervals) per region, children first.
    let mut counts: Vec<(u64, u64)> = Vec::with_capacity(regions.list.len());
    for r in &regions.list {
        let c = match r {
            Region::Full => (1, 0),
            Region::Split(_, groups) => groups.iter().fold((0u64, 0u64), |acc, (ivs, child)| {
                let (cb, ci) = counts.get(*child as usize).copied().unwrap_or((0, 0));
                (
                    acc.0.saturating_add(cb),
                    acc.1
                        .saturating_add((ivs.len() as u64).saturating_mul(cb))
                        .saturating_add(ci),
                )
            }),
        };
        counts.push(c);
    }
    let mut changes: Vec<Change> = Vec::new();
    let mut total = 0u64;
    for (&(x, y), &r) in &root_map {
        let (boxes, ivs) = counts.get(r as usize).copied().unwrap_or((0, 0));
        let ranges = ivs.max(boxes);
        total = total.saturating_add(ranges);
        let kind = match (b.allows(0, x), b.allows(1, y)) {
            (false, true) => Kind::NewlyAllowed,
            (true, false) => Kind::NewlyDenied,
            _ => Kind::OtherRule,
        };
        changes.push(Change {
            when: Vec::new(),
            kind,
            old: decider(old, &b, 0, x),
            new: decider(new, &b, 1, y),
            ranges,
            flows: Vec::new(),
        });
    }
    let over = total > limits.ranges;
    if !over {
        for (c, (_, &r)) in changes.iter_mut().zip(&root_map) {
            c.flows = flatten(&regions, r).iter().map(flow_set).collect();
        }
    }
    changes.sort_by(|a, b| {
        (
            a.kind,
            a.old.priority,
            &a.old.rule,
            a.new.priority,
            &a.new.rule,
        )
            .cmp(&(
                b.kind,
                b.old.priority,
                &b.old.rule,
                b.new.priority,
                &b.new.rule,
            ))
    });
    let flows = if over {
        Flows::TooManyRanges {
            ranges: total,
            limit: limits.ranges,
            changes,
        }
    } else {
        Flows::Exact { changes }
    };
    (flows, work)
}

fn decider(p: &Policy, b: &Builder, side: usize, d: Dec) -> Decider {
    let access = if b.allows(side, d) { "allow" } else { "deny" };
    match (d, &p.network) {
        (Some(i), Some(net)) => match net.rules.get(i as usize) {
            Some(r) => Decider {
                rule: r.name.clone(),
                priority: Some(r.priority),
                access,
            },
            None => Decider {
                rule: String::from("default"),
                priority: None,
                access,
            },
        },
        (_, Some(_)) => Decider {
            rule: String::from("default"),
            priority: None,
            access,
        },
        (_, None) => Decider {
            rule: String::from("no network section"),
            priority: None,
            access,
        },
    }
}

type FlowBox = [Option<Vec<Iv>>; DIMS];

fn flatten(regions: &Regions, r: u32) -> Vec<FlowBox> {
    match regions.list.get(r as usize) {
        None => Vec::new(),
        Some(Region::Full) => alloc::vec![Default::default()],
        Some(Region::Split(dim, groups)) => {
            let mut out = Vec::new();
            for (ivs, child) in groups {
                for mut bx in flatten(regions, *child) {
                    if let Some(slot) = bx.get_mut(*dim) {
                        *slot = Some(ivs.clone());
                    }
                    out.push(bx);
                }
            }
            out
        }
    }
}

fn flow_set(b: &FlowBox) -> FlowSet {
    let any = || alloc::vec![String::from("*")];
    let addr = |d: usize| b[d].as_ref().map_or_else(any, |v| interval_specs(v));
    let port = |d: usize| b[d].as_ref().map_or_else(any, |v| port_specs(v));
    FlowSet {
        source: addr(SRC),
        source_ports: port(SPORT),
        destination: addr(DST),
        destination_ports: port(DPORT),
        protocol: match b[PROTO].as_deref() {
            Some([((0, 0), (0, 0))]) => "tcp",
            Some([((0, 1), (0, 1))]) => "udp",
            _ => "*",
        },
    }
}
