//! The flow space, cut exactly where the two policies' rules cut it.
//!
//! A flow has five dimensions, handled in this order: client address,
//! local address, local port, client port, transport. Each is an axis of
//! points `(family, value)`: addresses are IPv4 (family 0, `u32` values)
//! then IPv6 (family 1, `u128` values) as the core folds them, so the
//! IPv4-mapped block `::ffff:0:0/96` holds no IPv6 flow (those clients
//! are IPv4 to every rule) and is left out of the IPv6 domain. Ports are
//! 0..=65535; transports are 0 (tcp) and 1 (udp).
//!
//! [`Builder::build`] walks the dimensions one by one. At each it cuts the
//! axis at every boundary of every candidate rule of both policies (the
//! rules that cover the cell so far, in priority order), and recurses per
//! elementary interval with the rules that cover it. Sub-problems are
//! memoized on (dimension, old candidates, new candidates), and two
//! candidate lists that decide alike from here on (same names, access and
//! remaining fields) end the walk at once: that is what keeps a 10,000-CIDR
//! policy against a copy with 100 entries changed fast. The result is a DAG
//! of nodes whose leaves name the deciding rule in each policy.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use portcullis_core::policy::{Access, Policy, Protocol};

/// A point on an axis: `(family, value)`.
pub(crate) type P = (u8, u128);

/// An inclusive interval on an axis.
pub(crate) type Iv = (P, P);

/// Dimensions, in the order they are cut.
pub(crate) const SRC: usize = 0;
pub(crate) const DST: usize = 1;
pub(crate) const DPORT: usize = 2;
pub(crate) const SPORT: usize = 3;
pub(crate) const PROTO: usize = 4;
pub(crate) const DIMS: usize = 5;

pub(crate) const MAPPED_LO: u128 = 0xffff_0000_0000;
pub(crate) const MAPPED_HI: u128 = 0xffff_ffff_ffff;
const V4_MAX: u128 = u32::MAX as u128;

/// The points of a dimension that flows can have, as disjoint intervals.
pub(crate) fn domain(dim: usize) -> &'static [Iv] {
    const ADDR: [Iv; 3] = [
        ((0, 0), (0, V4_MAX)),
        ((1, 0), (1, MAPPED_LO - 1)),
        ((1, MAPPED_HI + 1), (1, u128::MAX)),
    ];
    const PORT: [Iv; 1] = [((0, 0), (0, 65535))];
    const PROTOS: [Iv; 1] = [((0, 0), (0, 1))];
    match dim {
        SRC | DST => &ADDR,
        DPORT | SPORT => &PORT,
        _ => &PROTOS,
    }
}

/// The whole dimension as merged intervals (the IPv6 gap bridged).
pub(crate) fn full(dim: usize) -> &'static [Iv] {
    const ADDR: [Iv; 2] = [((0, 0), (0, V4_MAX)), ((1, 0), (1, u128::MAX))];
    match dim {
        SRC | DST => &ADDR,
        _ => domain(dim),
    }
}

pub(crate) fn succ(p: P) -> Option<P> {
    match p {
        (0, V4_MAX) => Some((1, 0)),
        (f, v) => v.checked_add(1).map(|v| (f, v)),
    }
}

fn pred(p: P) -> Option<P> {
    match p {
        (1, 0) => Some((0, V4_MAX)),
        (f, v) => v.checked_sub(1).map(|v| (f, v)),
    }
}

/// Whether `lo` continues an interval ending at `hi`: the next point of
/// the same family, or across the IPv4-mapped gap, where no flow lives.
pub(crate) fn adjacent(dim: usize, hi: P, lo: P) -> bool {
    (hi.0 == lo.0 && succ(hi) == Some(lo))
        || ((dim == SRC || dim == DST) && hi == (1, MAPPED_LO - 1) && lo == (1, MAPPED_HI + 1))
}

fn in_domain(dim: usize, p: P) -> bool {
    domain(dim).iter().any(|&(lo, hi)| lo <= p && p <= hi)
}

/// Intersects sorted disjoint intervals with the dimension's domain.
fn clip(dim: usize, v: Vec<Iv>) -> Vec<Iv> {
    let mut out = Vec::new();
    for (lo, hi) in v {
        for &(dl, dh) in domain(dim) {
            let (l, h) = (lo.max(dl), hi.min(dh));
            if l <= h {
                out.push((l, h));
            }
        }
    }
    out
}

/// A rule as the walk sees it.
#[derive(Debug, Clone)]
pub(crate) struct R {
    /// Interned set per dimension.
    sets: [u32; DIMS],
    /// The first dimension from which every remaining field is `*`.
    full_from: usize,
    /// Interned name (shared by both policies).
    name: u32,
    allow: bool,
}

/// What decides when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// `network.default_access`.
    Default(bool),
    /// No `network` section: every flow passes.
    NoNetwork,
}

#[derive(Debug)]
pub(crate) struct Side {
    pub(crate) rules: Vec<R>,
    pub(crate) fallback: Fallback,
}

/// A decider: a rule index, or the fallback.
pub(crate) type Dec = Option<u32>;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Every flow here is decided by same-named rules with the same access
    /// (or the same fallback) in both policies.
    Same,
    /// One decider per policy for every flow here.
    Leaf(Dec, Dec),
    /// Cut along a dimension: intervals covering its domain, each with a
    /// child node.
    Split(usize, Vec<(P, P, u32)>),
}

/// The work bound was reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exceeded;

#[derive(Debug)]
pub(crate) struct Builder {
    pub(crate) sides: [Side; 2],
    sets: [Vec<Vec<Iv>>; DIMS],
    names: Vec<alloc::string::String>,
    memo: BTreeMap<(usize, Vec<u32>, Vec<u32>), u32>,
    leaves: BTreeMap<(Dec, Dec), u32>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) work: usize,
    limit: usize,
}

fn ports(p: &portcullis_core::policy::PortSet) -> Vec<Iv> {
    p.0.iter()
        .map(|&(a, b)| ((0, u128::from(a)), (0, u128::from(b))))
        .collect()
}

fn addrs(a: &portcullis_core::addr::AddrSet) -> Vec<Iv> {
    let mut v: Vec<Iv> =
        a.v4.iter()
            .map(|&(l, h)| ((0, u128::from(l)), (0, u128::from(h))))
            .collect();
    v.extend(a.v6.iter().map(|&(l, h)| ((1, l), (1, h))));
    v
}

impl Builder {
    pub(crate) fn new(old: &Policy, new: &Policy, limit: usize) -> Builder {
        let mut b = Builder {
            sides: [
                Side {
                    rules: Vec::new(),
                    fallback: Fallback::NoNetwork,
                },
                Side {
                    rules: Vec::new(),
                    fallback: Fallback::NoNetwork,
                },
            ],
            sets: Default::default(),
            names: Vec::new(),
            memo: BTreeMap::new(),
            leaves: BTreeMap::new(),
            nodes: alloc::vec![Node::Same],
            work: 0,
            limit,
        };
        let mut interned: [BTreeMap<Vec<Iv>, u32>; DIMS] = Default::default();
        let mut names: BTreeMap<alloc::string::String, u32> = BTreeMap::new();
        for (s, p) in [old, new].into_iter().enumerate() {
            let Some(net) = &p.network else { continue };
            let mut rules = Vec::with_capacity(net.rules.len());
            for r in &net.rules {
                let raw: [Vec<Iv>; DIMS] = [
                    addrs(&r.source),
                    addrs(&r.destination),
                    ports(&r.destination_ports),
                    ports(&r.source_ports),
                    match r.protocol {
                        Protocol::Any => alloc::vec![((0, 0), (0, 1))],
                        Protocol::Tcp => alloc::vec![((0, 0), (0, 0))],
                        Protocol::Udp => alloc::vec![((0, 1), (0, 1))],
                    },
                ];
                let mut sets = [0u32; DIMS];
                let mut is_full = [false; DIMS];
                for (d, v) in raw.into_iter().enumerate() {
                    let v = clip(d, v);
                    is_full[d] = v.as_slice() == domain(d);
                    let next = b.sets[d].len() as u32;
                    let id = *interned[d].entry(v.clone()).or_insert(next);
                    if id == next {
                        b.sets[d].push(v);
                    }
                    sets[d] = id;
                }
                let mut full_from = DIMS;
                while full_from > 0 && is_full[full_from - 1] {
                    full_from -= 1;
                }
                let next = b.names.len() as u32;
                let name = *names.entry(r.name.clone()).or_insert(next);
                if name == next {
                    b.names.push(r.name.clone());
                }
                rules.push(R {
                    sets,
                    full_from,
                    name,
                    allow: r.access == Access::Allow,
                });
            }
            b.sides[s] = Side {
                rules,
                fallback: Fallback::Default(net.default_access == Access::Allow),
            };
        }
        b
    }

    fn rule(&self, side: usize, i: u32) -> Option<&R> {
        self.sides.get(side)?.rules.get(i as usize)
    }

    /// Cuts a candidate list after its first rule that matches every flow
    /// from `dim` on: nothing after it can decide.
    fn truncate(&self, side: usize, dim: usize, list: &mut Vec<u32>) {
        if let Some(pos) = list
            .iter()
            .position(|&i| self.rule(side, i).is_some_and(|r| r.full_from <= dim))
        {
            list.truncate(pos + 1);
        }
    }

    /// The decider when it no longer depends on the dimensions from `dim`.
    fn decided(&self, side: usize, dim: usize, list: &[u32]) -> Option<Dec> {
        match list.first() {
            None => Some(None),
            Some(&i) if self.rule(side, i).is_some_and(|r| r.full_from <= dim) => Some(Some(i)),
            Some(_) => None,
        }
    }

    /// Whether two candidate lists decide every flow alike from `dim` on.
    fn equivalent(&self, dim: usize, old: &[u32], new: &[u32]) -> bool {
        if old.len() != new.len() {
            return false;
        }
        let pairwise =
            old.iter()
                .zip(new)
                .all(|(&a, &b)| match (self.rule(0, a), self.rule(1, b)) {
                    (Some(x), Some(y)) => {
                        x.name == y.name
                            && x.allow == y.allow
                            && x.sets.get(dim..) == y.sets.get(dim..)
                    }
                    _ => false,
                });
        let ends_full = old
            .last()
            .and_then(|&i| self.rule(0, i))
            .is_some_and(|r| r.full_from <= dim);
        pairwise && (ends_full || self.sides[0].fallback == self.sides[1].fallback)
    }

    fn leaf(&mut self, a: Dec, b: Dec) -> u32 {
        if let Some(&id) = self.leaves.get(&(a, b)) {
            return id;
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node::Leaf(a, b));
        self.leaves.insert((a, b), id);
        id
    }

    /// The node for the sub-space where `old` and `new` are the rules (in
    /// priority order) covering every dimension before `dim`.
    pub(crate) fn build(
        &mut self,
        dim: usize,
        mut old: Vec<u32>,
        mut new: Vec<u32>,
    ) -> Result<u32, Exceeded> {
        self.truncate(0, dim, &mut old);
        self.truncate(1, dim, &mut new);
        if self.equivalent(dim, &old, &new) {
            return Ok(0);
        }
        if let (Some(a), Some(b)) = (self.decided(0, dim, &old), self.decided(1, dim, &new)) {
            return Ok(self.leaf(a, b));
        }
        if dim >= DIMS {
            // Unreachable: every rule is `*` past the last dimension.
            return Ok(0);
        }
        let key = (dim, old, new);
        if let Some(&id) = self.memo.get(&key) {
            return Ok(id);
        }
        let (_, old, new) = &key;
        // (position, 0 = end / 1 = start, side, rule)
        let mut ev: Vec<(P, u8, u8, u32)> = Vec::new();
        for (side, list) in [(0u8, old), (1u8, new)] {
            for &i in list {
                let Some(r) = self.rule(usize::from(side), i) else {
                    continue;
                };
                let set = r.sets.get(dim).copied().unwrap_or(0) as usize;
                for &(lo, hi) in self
                    .sets
                    .get(dim)
                    .and_then(|s| s.get(set))
                    .map_or(&[][..], |v| v)
                {
                    ev.push((lo, 1, side, i));
                    if let Some(n) = succ(hi) {
                        ev.push((n, 0, side, i));
                    }
                }
            }
        }
        let mut cuts: Vec<P> = ev.iter().map(|e| e.0).collect();
        for &(lo, hi) in domain(dim) {
            cuts.push(lo);
            if let Some(n) = succ(hi) {
                cuts.push(n);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        ev.sort_unstable();
        self.work = self.work.saturating_add(ev.len());
        let mut active: [BTreeSet<u32>; 2] = [BTreeSet::new(), BTreeSet::new()];
        let mut entries: Vec<(P, P, u32)> = Vec::new();
        let mut e = 0;
        for (c, &cut) in cuts.iter().enumerate() {
            while let Some(&(p, kind, side, i)) = ev.get(e) {
                if p != cut {
                    break;
                }
                let set = &mut active[usize::from(side & 1)];
                if kind == 1 {
                    set.insert(i);
                } else {
                    set.remove(&i);
                }
                e += 1;
            }
            if !in_domain(dim, cut) {
                continue;
            }
            let hi = match cuts.get(c + 1) {
                Some(&n) => pred(n).unwrap_or(cut),
                None => (1, u128::MAX),
            };
            let a: Vec<u32> = active[0].iter().copied().collect();
            let b: Vec<u32> = active[1].iter().copied().collect();
            self.work = self.work.saturating_add(1 + a.len() + b.len());
            if self.work > self.limit {
                return Err(Exceeded);
            }
            let child = self.build(dim + 1, a, b)?;
            match entries.last_mut() {
                Some(last) if last.2 == child && adjacent(dim, last.1, cut) => last.1 = hi,
                _ => entries.push((cut, hi, child)),
            }
        }
        let first = entries.first().map_or(0, |e| e.2);
        let uniform = entries.iter().all(|e| e.2 == first);
        let id = match () {
            _ if uniform && covers_full(dim, entries.iter().map(|e| (e.0, e.1))) => first,
            _ if entries.iter().all(|e| e.2 == 0) => 0,
            _ => {
                let id = self.nodes.len() as u32;
                self.nodes.push(Node::Split(dim, entries));
                id
            }
        };
        self.memo.insert(key, id);
        Ok(id)
    }

    /// The name of a decider of a policy (`None` for the fallback).
    pub(crate) fn name_id(&self, side: usize, d: Dec) -> Option<u32> {
        d.and_then(|i| self.rule(side, i)).map(|r| r.name)
    }

    /// Whether a decider lets the flow through.
    pub(crate) fn allows(&self, side: usize, d: Dec) -> bool {
        match d.and_then(|i| self.rule(side, i)) {
            Some(r) => r.allow,
            None => match self.sides[side].fallback {
                Fallback::Default(a) => a,
                Fallback::NoNetwork => true,
            },
        }
    }

    /// Whether the pair of deciders changes anything: the verdict, or the
    /// deciding rule (by name; the fallback counts as changed when one
    /// policy has a `network` section and the other has none).
    pub(crate) fn changed(&self, a: Dec, b: Dec) -> bool {
        if self.allows(0, a) != self.allows(1, b) {
            return true;
        }
        match (self.name_id(0, a), self.name_id(1, b)) {
            (Some(x), Some(y)) => x != y,
            (None, None) => self.sides[0].fallback != self.sides[1].fallback,
            _ => true,
        }
    }
}

/// Whether merged intervals are the whole dimension.
pub(crate) fn covers_full(dim: usize, ivs: impl Iterator<Item = Iv>) -> bool {
    ivs.eq(full(dim).iter().copied())
}
