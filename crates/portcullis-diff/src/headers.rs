//! Rules with `headers`: the network decision then depends on request
//! headers as well as on the flow. The header space is cut into classes,
//! exactly: for every header name some rule of either policy names, the
//! values the rules list for it are grouped by the rules that list them
//! (values listed by the same rules decide alike), plus one class for
//! "none of them" (missing, repeated, or another value). A class of
//! requests keeps, in each policy, the rules whose every header condition
//! holds for it; the flow comparison then runs once per distinct pair of
//! kept rule sets, and its changes say under which header conditions they
//! happen ([`crate::Change::when`]).
//!
//! What this module does *not* do: it does not look at flows (that is
//! `space` and `regions`); it keeps rules' values as the policies write
//! them (values of rule headers are not secrets the way `require_headers`
//! values are: they are routing facts such as a Front Door id).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use portcullis_core::policy::Policy;
use portcullis_core::rule::Rule;

use crate::regions::flows_counted;
use crate::{Flows, Limits};

/// Most header classes compared before giving up ([`Flows::TooComplex`]).
const MAX_CLASSES: usize = 4096;

/// One state of one header: a group of values listed by exactly the same
/// rules, or `None`: none of the listed values.
type State = Option<Vec<Vec<u8>>>;

/// The rules (side, index) that list a value.
type ListedBy = BTreeSet<(usize, usize)>;

fn rules(p: &Policy) -> &[Rule] {
    p.network.as_ref().map_or(&[][..], |n| &n.rules[..])
}

/// Every header name the rules name, with its states.
fn states(old: &Policy, new: &Policy) -> BTreeMap<String, Vec<State>> {
    // name -> value -> the (side, rule) lists that hold it.
    let mut listed: BTreeMap<String, BTreeMap<Vec<u8>, ListedBy>> = BTreeMap::new();
    for (side, p) in [old, new].into_iter().enumerate() {
        for (i, r) in rules(p).iter().enumerate() {
            for m in &r.headers {
                let values = listed.entry(m.name.clone()).or_default();
                for v in &m.values {
                    values.entry(v.clone()).or_default().insert((side, i));
                }
            }
        }
    }
    listed
        .into_iter()
        .map(|(name, values)| {
            let mut groups: BTreeMap<ListedBy, Vec<Vec<u8>>> = BTreeMap::new();
            for (v, by) in values {
                groups.entry(by).or_default().push(v);
            }
            let mut st: Vec<State> = groups.into_values().map(Some).collect();
            st.push(None);
            (name, st)
        })
        .collect()
}

/// Whether a rule's header conditions hold in a class (`picks` holds one
/// state per name, in the order of `names`).
fn holds(r: &Rule, names: &[&String], picks: &[&State]) -> bool {
    r.headers.iter().all(|m| {
        names
            .iter()
            .position(|n| **n == m.name)
            .and_then(|i| picks.get(i))
            .is_some_and(|st| {
                st.as_ref()
                    .is_some_and(|vs| vs.iter().all(|v| m.values.contains(v)))
            })
    })
}

/// A class in words: `x-azure-fdid is one of [fd-1, fd-2] and
/// x-fd-healthprobe is none of the listed values`.
fn describe(names: &[&String], picks: &[&State]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(picks)
        .map(|(n, st)| match st {
            Some(vs) => {
                let shown: Vec<String> = vs
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                if shown.len() == 1 {
                    alloc::format!("{n} is {}", shown.join(""))
                } else {
                    alloc::format!("{n} is one of [{}]", shown.join(", "))
                }
            }
            None => {
                alloc::format!("{n} is none of the values rules list (or missing, or repeated)")
            }
        })
        .collect();
    parts.join(" and ")
}

/// The policy as a class of requests sees it: the rules whose headers hold,
/// without their header conditions. Only the diff reads it (its compiled
/// rule table is the original's and must not be used).
fn kept(p: &Policy, keep: &[usize]) -> Policy {
    let mut q = p.clone();
    if let Some(net) = q.network.as_mut() {
        let all = core::mem::take(&mut net.rules);
        net.rules = all
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, mut r)| {
                r.headers.clear();
                r
            })
            .collect();
    }
    q
}

/// The network comparison, per header class when some rule names headers.
pub(crate) fn network_counted(old: &Policy, new: &Policy, limits: Limits) -> (Flows, usize) {
    let reads = |p: &Policy| rules(p).iter().any(|r| !r.headers.is_empty());
    if !reads(old) && !reads(new) {
        return flows_counted(old, new, limits);
    }
    let states = states(old, new);
    let names: Vec<&String> = states.keys().collect();
    let lists: Vec<&Vec<State>> = states.values().collect();
    let total = lists
        .iter()
        .try_fold(1usize, |acc, l| acc.checked_mul(l.len()));
    let too_complex = || Flows::TooComplex {
        limit: limits.cells as u64,
    };
    let Some(total) = total.filter(|&t| t <= MAX_CLASSES) else {
        return (too_complex(), 0);
    };
    // Kept rules per class, classes with the same kept rules together.
    let mut by_kept: BTreeMap<(Vec<usize>, Vec<usize>), Vec<String>> = BTreeMap::new();
    for k in 0..total {
        let mut rest = k;
        let picks: Vec<&State> = lists
            .iter()
            .map(|l| {
                let n = l.len().max(1);
                let st = l.get(rest % n);
                rest /= n;
                st
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        let keep = |p: &Policy| -> Vec<usize> {
            rules(p)
                .iter()
                .enumerate()
                .filter(|(_, r)| holds(r, &names, &picks))
                .map(|(i, _)| i)
                .collect()
        };
        by_kept
            .entry((keep(old), keep(new)))
            .or_default()
            .push(describe(&names, &picks));
    }
    let mut work = 0usize;
    let mut changes = Vec::new();
    let (mut over, mut ranges) = (false, 0u64);
    for ((ko, kn), when) in by_kept {
        let (flows, used) = flows_counted(&kept(old, &ko), &kept(new, &kn), limits);
        work = work.saturating_add(used);
        match flows {
            Flows::TooComplex { .. } => return (too_complex(), work),
            Flows::Exact { changes: c } => {
                changes.extend(c.into_iter().map(|mut c| {
                    c.when.clone_from(&when);
                    c
                }));
            }
            Flows::TooManyRanges {
                ranges: r,
                changes: c,
                ..
            } => {
                over = true;
                ranges = ranges.saturating_add(r);
                changes.extend(c.into_iter().map(|mut c| {
                    c.when.clone_from(&when);
                    c
                }));
            }
        }
    }
    let total_ranges = changes.iter().map(|c| c.ranges).sum::<u64>().max(ranges);
    if over || total_ranges > limits.ranges {
        for c in &mut changes {
            c.flows.clear();
        }
        return (
            Flows::TooManyRanges {
                ranges: total_ranges,
                limit: limits.ranges,
                changes,
            },
            work,
        );
    }
    (Flows::Exact { changes }, work)
}
