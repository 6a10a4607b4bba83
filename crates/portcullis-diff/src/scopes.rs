//! Requests cut into regions by the scopes' `match` patterns, and the two
//! effective policies compared once per (old scope, new scope) pair.
//!
//! A request's scope depends only on its host, path and method (policy-v1
//! "Scopes"). The cut is hierarchical and exact:
//! - hosts: each exact pattern is a class; every other host is classed by
//!   the longest `*.suffix` it matches (the wildcards a host matches are
//!   suffixes of one another, so the longest names them all), or by none
//!   ("any other host"). An authority that scopes cannot read is a class of
//!   its own: refused with 400 by a policy that refuses it (the core is
//!   asked, with a probe request), otherwise matching no `hosts`.
//! - paths, within a host class, from the path patterns of the scopes whose
//!   hosts hold (in either policy): each exact path, the longest `/p/*`
//!   prefix, or none; plus "ambiguous path" when either policy refuses
//!   those (400). Representatives that are not normalized paths (a pattern
//!   with `//`, a dot-segment or an escaped letter) match no request and
//!   are left out.
//! - methods, within a path class, from the methods of the scopes left:
//!   each named method, or any other.
//!
//! Each leaf picks, per policy, the first candidate scope (or the top
//! level, or a 400). Leaves are grouped by the pair; a class whose leaves
//! all pick the same pair is one region ("any path", "any method").
//!
//! What this module does *not* do: decide a request (the core does; its
//! own pattern matching is used here), or sample: every class has a
//! representative request, and every request is in exactly one region.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use portcullis_core::decide::{Request, Step};
use portcullis_core::policy::{HostPattern, PathPattern, Policy, Scope};
use portcullis_core::Transport;

use crate::classes::{fresh, host_classes, path_classes, Class};
use crate::render::join;
use crate::{
    regions, settings, Applies, Decider, Flows, Group, Limits, Part, Region, ScopeChange, Scoped,
    Setting,
};

/// What one policy does with a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pick {
    /// 400 at step 1: 0 an unreadable authority, 1 an ambiguous path.
    Refused(u8),
    Top,
    Scope(usize),
}

const REFUSED: [&str; 2] = ["400 unreadable authority", "400 ambiguous path"];

/// The work bound was reached.
struct Over;

struct Cut<'a> {
    pols: [&'a Policy; 2],
    /// Whether each policy refuses an unreadable authority / ambiguous path.
    refuse: [[bool; 2]; 2],
    /// The policies standing for the two refusals.
    refused: [Option<Policy>; 2],
    work: usize,
    limit: usize,
    limits: Limits,
    /// Units of work left for comparing pairs of effective policies.
    budget: usize,
    /// Each pair compared once: flows and other sections.
    pairs: BTreeMap<(Pick, Pick), (Flows, Vec<Setting>)>,
    groups: BTreeMap<(Pick, Pick), Vec<Region>>,
    /// Path classes by the path patterns they were cut from.
    path_memo: BTreeMap<(Vec<String>, Vec<String>), Vec<Class>>,
}

fn method_holds(s: &Scope, m: Option<&str>) -> bool {
    s.methods.is_empty() || m.is_some_and(|m| s.methods.iter().any(|x| x == m))
}

/// Per policy: whether it refuses (which), and its candidate scopes.
type Sides = [(Option<u8>, Vec<usize>); 2];

/// A leaf or a collapsed class below a class.
#[derive(Clone)]
enum Leaf {
    /// Nothing to report: the pair picked is the same scope deciding alike.
    Quiet,
    /// A region and the pair that decides it.
    Loud((Pick, Pick), Region),
}

type Found = Vec<Leaf>;

impl Cut<'_> {
    fn spend(&mut self, n: usize) -> Result<(), Over> {
        self.work = self.work.saturating_add(n);
        if self.work > self.limit {
            Err(Over)
        } else {
            Ok(())
        }
    }

    /// The two effective policies of a pair compared (once).
    fn pair(&mut self, (a, b): (Pick, Pick)) -> &(Flows, Vec<Setting>) {
        if !self.pairs.contains_key(&(a, b)) {
            let [old, new] = self.pols;
            let (x, y) = (applies(old, a), applies(new, b));
            let found = match (side(old, &self.refused, a), side(new, &self.refused, b)) {
                (Some(pa), Some(pb)) => {
                    let limits = Limits {
                        cells: self.budget,
                        ..self.limits
                    };
                    let (mut flows, used) = regions::network_counted(pa, pb, limits);
                    self.budget = self.budget.saturating_sub(used);
                    if let Flows::TooComplex { limit } = &mut flows {
                        // The bound is the one shared by every pair.
                        *limit = self.limits.cells as u64;
                    }
                    rename(&mut flows, &x, &y);
                    let refused = matches!(a, Pick::Refused(_)) || matches!(b, Pick::Refused(_));
                    let s = if refused {
                        Vec::new()
                    } else {
                        scoped_settings(pa, pb)
                    };
                    (flows, s)
                }
                _ => (Flows::TooComplex { limit: 0 }, Vec::new()),
            };
            self.pairs.insert((a, b), found);
        }
        self.pairs
            .entry((a, b))
            .or_insert((Flows::TooComplex { limit: 0 }, Vec::new()))
    }

    /// Whether a pair has nothing to report: the same scope (by name, or
    /// the top level, or the same refusal) deciding every flow alike, with
    /// the same other sections.
    fn quiet(&mut self, pair: (Pick, Pick)) -> bool {
        let same = match pair {
            (Pick::Scope(i), Pick::Scope(j)) => {
                let [old, new] = self.pols;
                old.scope_name(Some(i)) == new.scope_name(Some(j))
            }
            (a, b) => a == b,
        };
        same && matches!(self.pair(pair), (Flows::Exact { changes }, s) if changes.is_empty() && s.is_empty())
    }

    /// Whether everything below is quiet: both policies refuse alike, or
    /// hold the same candidates (by name and `match`) in the same order,
    /// each pair and the two top levels deciding alike.
    /// `catches(s)`: whether a candidate takes every request left (then
    /// the top level is never reached).
    fn sides_quiet(&mut self, sides: &Sides, catches: fn(&Scope) -> bool) -> bool {
        let [(ra, a), (rb, b)] = sides;
        if ra != rb {
            return false;
        }
        if ra.is_some() {
            return true;
        }
        if a.len() != b.len() {
            return false;
        }
        let caught = a
            .iter()
            .any(|&i| self.scopes(0).get(i).is_some_and(catches));
        if !caught && !self.quiet((Pick::Top, Pick::Top)) {
            return false;
        }
        let (a, b) = (a.clone(), b.clone());
        a.iter().zip(&b).all(|(&i, &j)| {
            let same_match = match (self.scopes(0).get(i), self.scopes(1).get(j)) {
                (Some(x), Some(y)) => {
                    x.hosts == y.hosts && x.paths == y.paths && x.methods == y.methods
                }
                _ => false,
            };
            same_match && self.quiet((Pick::Scope(i), Pick::Scope(j)))
        })
    }

    fn scopes(&self, side: usize) -> &[Scope] {
        self.pols.get(side).map_or(&[], |p| p.scopes.as_slice())
    }

    /// Everything below a host class.
    fn host(&mut self, hc: &Class, host_part: Part, sides: Sides) -> Result<Found, Over> {
        let catches: fn(&Scope) -> bool = |s| s.paths.is_empty() && s.methods.is_empty();
        if self.refuse[1][0] == self.refuse[1][1] && self.sides_quiet(&sides, catches) {
            return Ok(alloc::vec![Leaf::Quiet]);
        }
        // Each path pattern, with the candidates (side, position in the
        // list) naming it; candidates without `paths` hold for any path.
        let mut exact: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        let mut prefixes: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
        let mut anywhere: Vec<(usize, usize)> = Vec::new();
        for (side, (_, list)) in sides.iter().enumerate() {
            self.spend(list.len())?;
            for (pos, &i) in list.iter().enumerate() {
                let Some(s) = self.scopes(side).get(i) else {
                    continue;
                };
                if s.paths.is_empty() {
                    anywhere.push((side, pos));
                }
                for p in &s.paths {
                    let (map, key) = match p {
                        PathPattern::Exact(e) => (&mut exact, e),
                        PathPattern::Prefix(b) => (&mut prefixes, b),
                    };
                    map.entry(key.clone()).or_default().push((side, pos));
                }
            }
        }
        let reads_paths = self.refuse[1].iter().any(|&r| r);
        let mut classes = Vec::new();
        if reads_paths {
            classes.push(Class {
                desc: String::from("an ambiguous path (%2F, %5C, \\, NUL or a bad escape)"),
                rep: None,
            });
        }
        let exact_set: Vec<String> = exact.keys().cloned().collect();
        let prefix_set: Vec<String> = prefixes.keys().cloned().collect();
        if exact.is_empty() && prefixes.is_empty() {
            classes.push(Class {
                desc: String::from(if reads_paths {
                    "any unambiguous path"
                } else {
                    "any path"
                }),
                rep: Some(String::from("/")),
            });
        } else {
            let key = (exact_set, prefix_set);
            if !self.path_memo.contains_key(&key) {
                let made = path_classes(&key.0, &key.1);
                self.spend(made.len())?;
                self.path_memo.insert(key.clone(), made);
            }
            if let Some(made) = self.path_memo.get(&key) {
                classes.extend(made.iter().cloned());
            }
        }
        self.spend(classes.len())?;
        let cut_paths = classes.len() > 1 || reads_paths;
        let mut found = Vec::new();
        for pc in &classes {
            // The candidates whose paths hold: those without `paths`, and
            // those naming the class's exact path or one of its prefixes.
            let mut held: Vec<(usize, usize)> = anywhere.clone();
            if let Some(rep) = pc.rep.as_deref() {
                if let Some(v) = exact.get(rep) {
                    held.extend_from_slice(v);
                }
                let b = rep.as_bytes();
                let cuts = (0..b.len()).filter(|&i| b.get(i) == Some(&b'/'));
                for key in cuts.filter_map(|i| rep.get(..i)).chain([rep]) {
                    if let Some(v) = prefixes.get(key) {
                        held.extend_from_slice(v);
                    }
                }
            }
            held.sort_unstable();
            held.dedup();
            self.spend(held.len().saturating_add(1))?;
            let mut next: Sides = Default::default();
            for (side, (refused, list)) in sides.iter().enumerate() {
                let refused = match (refused, &pc.rep) {
                    (Some(r), _) => Some(*r),
                    (None, None) if self.refuse[1].get(side) == Some(&true) => Some(1),
                    _ => None,
                };
                let kept: Vec<usize> = held
                    .iter()
                    .filter(|h| h.0 == side)
                    .filter_map(|h| list.get(h.1).copied())
                    .collect();
                if let Some(slot) = next.get_mut(side) {
                    *slot = (refused, kept);
                }
            }
            let path_part = match (&pc.rep, cut_paths) {
                (_, false) => Part::Any,
                (None, true) => Part::Unreadable,
                (Some(r), true) => Part::Like(r.clone()),
            };
            found.extend(self.path(hc, host_part.clone(), pc, path_part, next)?);
        }
        Ok(collapse(found, |r| {
            r.path = Part::Any;
            r.method = Part::Any;
            r.description = alloc::format!("{}, any path, any method", hc.desc);
        }))
    }

    /// Everything below a path class.
    fn path(
        &mut self,
        hc: &Class,
        host_part: Part,
        pc: &Class,
        path_part: Part,
        sides: Sides,
    ) -> Result<Found, Over> {
        if self.sides_quiet(&sides, |s| s.methods.is_empty()) {
            return Ok(alloc::vec![Leaf::Quiet]);
        }
        let mut methods = BTreeSet::new();
        for (side, (_, list)) in sides.iter().enumerate() {
            for &i in list {
                if let Some(s) = self.scopes(side).get(i) {
                    methods.extend(s.methods.iter().cloned());
                }
            }
        }
        let other = fresh("X-OTHER", |m| methods.contains(m));
        let mut classes: Vec<(String, Option<String>)> = methods
            .iter()
            .map(|m| (alloc::format!("method {m}"), Some(m.clone())))
            .collect();
        let cut = !classes.is_empty();
        classes.push((
            String::from(if cut {
                "any other method"
            } else {
                "any method"
            }),
            None,
        ));
        let mut found = Vec::new();
        for (desc, m) in classes {
            self.spend(1)?;
            let mut pair = [Pick::Top; 2];
            for (side, (refused, list)) in sides.iter().enumerate() {
                let scopes = self.scopes(side);
                let pick = match refused {
                    Some(r) => Pick::Refused(*r),
                    None => list
                        .iter()
                        .copied()
                        .find(|&i| scopes.get(i).is_some_and(|s| method_holds(s, m.as_deref())))
                        .map_or(Pick::Top, Pick::Scope),
                };
                self.work = self.work.saturating_add(list.len());
                if let Some(slot) = pair.get_mut(side) {
                    *slot = pick;
                }
            }
            let method = match (&m, cut) {
                (_, false) => Part::Any,
                (Some(m), true) => Part::Like(m.clone()),
                (None, true) => Part::Like(other.clone()),
            };
            let pair = (pair[0], pair[1]);
            found.push(if self.quiet(pair) {
                Leaf::Quiet
            } else {
                Leaf::Loud(
                    pair,
                    Region {
                        description: alloc::format!("{}, {}, {desc}", hc.desc, pc.desc),
                        host: host_part.clone(),
                        path: path_part.clone(),
                        method,
                    },
                )
            });
        }
        let (hd, pd) = (hc.desc.clone(), pc.desc.clone());
        Ok(collapse(found, |r| {
            r.method = Part::Any;
            r.description = alloc::format!("{hd}, {pd}, any method");
        }))
    }
}

/// One region for the whole class when every part of it picks one pair.
fn collapse(found: Found, whole: impl FnOnce(&mut Region)) -> Found {
    let pair = |l: &Leaf| match l {
        Leaf::Quiet => None,
        Leaf::Loud(p, _) => Some(*p),
    };
    let Some(first) = found.first() else {
        return found;
    };
    let p = pair(first);
    if found.len() > 1 && found.iter().all(|l| pair(l) == p) {
        let mut one = first.clone();
        if let Leaf::Loud(_, r) = &mut one {
            whole(r);
        }
        alloc::vec![one]
    } else {
        found
    }
}

/// Whether the core refuses a request with this authority and path at
/// step 1 (asked, not assumed: the probe is decided by the policy).
fn refuses(p: &Policy, authority: &[u8], path: &[u8]) -> bool {
    let none: [(&str, &str); 0] = [];
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 443);
    let req = Request {
        peer: addr,
        local: addr,
        tls: true,
        transport: Transport::Tcp,
        method: b"GET",
        authority,
        path,
        headers: &none,
    };
    p.decide(&req).deciding_step() == Step::Scope
}

/// A policy denying every flow by a rule no document can name (names hold
/// no spaces), standing for "refused with 400 at step 1".
fn refusing(why: &str) -> Option<Policy> {
    let mut p = Policy::parse(
        br#"{"name":"refused","network":{"default_access":"deny","rules":[
            {"name":"refused","priority":100,"access":"deny","source":["*"]}]}}"#,
    )
    .ok()?;
    let rule = p.network.as_mut()?.rules.first_mut()?;
    rule.name = String::from(why);
    Some(p)
}

fn applies(p: &Policy, pick: Pick) -> Applies {
    match pick {
        Pick::Refused(r) => Applies::Refused(REFUSED.get(usize::from(r)).copied().unwrap_or("400")),
        Pick::Top => Applies::TopLevel,
        Pick::Scope(i) => {
            Applies::Scope(p.scope_name(Some(i)).map(String::from).unwrap_or_default())
        }
    }
}

/// Sections that are the top level's in every scope (reported once).
fn scoped_settings(a: &Policy, b: &Policy) -> Vec<Setting> {
    settings::compare(a, b)
        .into_iter()
        .filter(|s| !matches!(s.field, "name" | "trace_json" | "client_ip"))
        .collect()
}

fn describe(s: &Scope) -> String {
    let mut parts = Vec::new();
    if !s.hosts.is_empty() {
        parts.push(alloc::format!(
            "hosts {}",
            join(s.hosts.iter().map(|h| alloc::format!("{h}")), ", ")
        ));
    }
    if !s.paths.is_empty() {
        parts.push(alloc::format!(
            "paths {}",
            join(s.paths.iter().map(|h| alloc::format!("{h}")), ", ")
        ));
    }
    if !s.methods.is_empty() {
        parts.push(alloc::format!("methods {}", join(&s.methods, ", ")));
    }
    if !s.inherit {
        parts.push(String::from("inherit false"));
    }
    join(parts, "; ")
}

/// Each scope by name: added, removed, moved, matching otherwise, or with
/// other sections.
fn scope_changes(old: &Policy, new: &Policy) -> Vec<ScopeChange> {
    let mut names: Vec<&str> = old.scopes.iter().map(|s| s.name.as_str()).collect();
    for s in &new.scopes {
        if !old.scopes.iter().any(|o| o.name == s.name) {
            names.push(&s.name);
        }
    }
    let find = |p: &Policy, n: &str| p.scopes.iter().position(|s| s.name == n);
    let mut out = Vec::new();
    for n in names {
        let (a, b) = (find(old, n), find(new, n));
        let settings = match (a, b) {
            (Some(_), Some(_)) => scoped_settings(old.scoped(a), new.scoped(b)),
            _ => Vec::new(),
        };
        let c = ScopeChange {
            name: String::from(n),
            old_position: a,
            new_position: b,
            old_match: a.and_then(|i| old.scopes.get(i)).map(describe),
            new_match: b.and_then(|i| new.scopes.get(i)).map(describe),
            settings,
        };
        if c.old_position != c.new_position || c.old_match != c.new_match || !c.settings.is_empty()
        {
            out.push(c);
        }
    }
    out
}

/// The scoped part of a report; `None` when neither policy has scopes.
pub(crate) fn compare(old: &Policy, new: &Policy, limits: Limits) -> Option<Scoped> {
    if old.scopes.is_empty() && new.scopes.is_empty() {
        return None;
    }
    let pols = [old, new];
    let refuse = [
        pols.map(|p| !p.scopes.is_empty() && refuses(p, b"a:b", b"/")),
        pols.map(|p| !p.scopes.is_empty() && refuses(p, b"h", b"/%2F")),
    ];
    let mut cut = Cut {
        pols,
        refuse,
        refused: [refusing(REFUSED[0]), refusing(REFUSED[1])],
        work: 0,
        limit: limits.regions,
        limits,
        budget: limits.cells,
        pairs: BTreeMap::new(),
        groups: BTreeMap::new(),
        path_memo: BTreeMap::new(),
    };
    let scopes = scope_changes(old, new);
    if run(&mut cut).is_err() {
        return Some(Scoped::TooManyRegions {
            limit: limits.regions as u64,
            scopes,
        });
    }
    let mut groups = Vec::new();
    for ((a, b), regions) in core::mem::take(&mut cut.groups) {
        let (x, y) = (applies(old, a), applies(new, b));
        let (network, settings) = cut.pair((a, b)).clone();
        let moved = x != y;
        groups.push(Group {
            old: x,
            new: y,
            moved,
            regions,
            network,
            settings,
        });
    }
    Some(Scoped::Exact { groups, scopes })
}

/// The effective policy a pick stands for.
fn side<'a>(p: &'a Policy, refused: &'a [Option<Policy>; 2], pick: Pick) -> Option<&'a Policy> {
    match pick {
        Pick::Refused(r) => refused.get(usize::from(r)).and_then(Option::as_ref),
        Pick::Top => Some(p),
        Pick::Scope(i) => Some(p.scoped(Some(i))),
    }
}

/// A refused side's decider is the refusal.
fn rename(flows: &mut Flows, x: &Applies, y: &Applies) {
    let changes = match flows {
        Flows::Exact { changes } | Flows::TooManyRanges { changes, .. } => changes,
        Flows::TooComplex { .. } => return,
    };
    let to = |why: &'static str| Decider {
        rule: String::from(why),
        priority: None,
        access: "deny",
    };
    for c in changes {
        if let Applies::Refused(w) = x {
            c.old = to(w);
        }
        if let Applies::Refused(w) = y {
            c.new = to(w);
        }
    }
}

fn run(cut: &mut Cut<'_>) -> Result<(), Over> {
    let mut exact = BTreeSet::new();
    let mut wild = BTreeSet::new();
    for p in cut.pols {
        for s in &p.scopes {
            for h in &s.hosts {
                match h {
                    HostPattern::Exact(e) => exact.insert(e.clone()),
                    HostPattern::Wildcard(w) => wild.insert(w.clone()),
                };
            }
        }
    }
    let mut classes: Vec<(Class, Part)> = Vec::new();
    if exact.is_empty() && wild.is_empty() {
        let c = Class {
            desc: String::from("any host"),
            rep: Some(String::from("any")),
        };
        classes.push((c, Part::Any));
    } else {
        classes.push((
            Class {
                desc: String::from("an unreadable authority"),
                rep: None,
            },
            Part::Unreadable,
        ));
        for c in host_classes(&exact, &wild) {
            let part = Part::Like(c.rep.clone().unwrap_or_default());
            classes.push((c, part));
        }
    }
    cut.spend(classes.len())?;
    // Per policy: the scopes naming each host pattern, and those naming
    // none (candidates for every host).
    let mut named: [BTreeMap<(bool, String), Vec<usize>>; 2] = Default::default();
    let mut hostless: [Vec<usize>; 2] = Default::default();
    for side in 0..2 {
        let n = cut.scopes(side).len();
        cut.spend(n)?;
        for i in 0..n {
            let Some(s) = cut.scopes(side).get(i) else {
                continue;
            };
            let (named, hostless) = (&mut named[side], &mut hostless[side]);
            if s.hosts.is_empty() {
                hostless.push(i);
            }
            for h in &s.hosts {
                let key = match h {
                    HostPattern::Exact(e) => (false, e.clone()),
                    HostPattern::Wildcard(w) => (true, w.clone()),
                };
                named.entry(key).or_default().push(i);
            }
        }
    }
    for (hc, part) in &classes {
        let mut sides: Sides = Default::default();
        for side in 0..2 {
            let mut list = hostless[side].clone();
            match (part, hc.rep.as_deref()) {
                (Part::Any, _) => list = (0..cut.scopes(side).len()).collect(),
                (_, Some(h)) => {
                    // The patterns this host matches: itself, and each
                    // `*.suffix` of it (a suffix after a label).
                    let mut keys = alloc::vec![(false, String::from(h))];
                    let b = h.as_bytes();
                    for i in (1..b.len()).filter(|&i| b.get(i) == Some(&b'.')) {
                        if let Some(w) = h.get(i..) {
                            keys.push((true, String::from(w)));
                        }
                    }
                    for k in &keys {
                        if let Some(v) = named[side].get(k) {
                            list.extend_from_slice(v);
                        }
                    }
                    list.sort_unstable();
                    list.dedup();
                }
                (_, None) => {}
            }
            cut.spend(list.len().saturating_add(1))?;
            let refused = (hc.rep.is_none() && cut.refuse[0].get(side) == Some(&true)).then_some(0);
            if let Some(slot) = sides.get_mut(side) {
                *slot = (refused, list);
            }
        }
        for leaf in cut.host(hc, part.clone(), sides)? {
            if let Leaf::Loud(pair, region) = leaf {
                cut.groups.entry(pair).or_default().push(region);
            }
        }
    }
    Ok(())
}
