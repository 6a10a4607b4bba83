//! The compiled rule table: which rules can match a given client address.
//!
//! Each address family's space is cut into elementary intervals at every
//! boundary of every rule's source set. Each interval holds the rules whose
//! source covers it, in priority order, cut short after the first rule that
//! matches every flow (a "source-only" rule: all other fields are `*`), since
//! nothing after it can decide. Rules whose source is every address are kept
//! in one shared list instead of in every interval.
//!
//! A lookup is a direct index on the top address bits (as many bits as the
//! table has intervals, so buckets hold about one interval each) followed by
//! a binary search inside that bucket, then a walk of two short candidate
//! lists. Its cost depends on the address length and the
//! rules near the address, not on the number of rules in the policy.

use alloc::collections::binary_heap::{BinaryHeap, PeekMut};
use alloc::vec::Vec;
use core::cmp::Reverse;

use crate::addr::Key;
use crate::error::Error;
use crate::rule::{PortSet, Protocol, Rule};

/// Most candidate entries a table may hold (bounds memory for hostile
/// policies: 4 bytes each).
pub const MAX_ENTRIES: usize = 4 << 20;

/// Tables with fewer intervals than this are searched without a bucket index.
const INDEX_THRESHOLD: usize = 64;

/// Intervals per bucket of the index, about: a lookup binary-searches this
/// many starts after the direct index, and the index costs 4 bytes per
/// bucket (a quarter of the starts' own size for IPv4).
const PER_BUCKET: usize = 4;

/// One family's interval table: 8 bytes per interval for IPv4 (20 for
/// IPv6), the candidate lists shared in the pool.
#[derive(Debug, Clone, Default)]
struct Family<T> {
    /// Interval start addresses, ascending; the first is 0.
    starts: Vec<T>,
    /// Per interval: offset of its candidate list in the pool, where the
    /// list's length comes first, then its rule indexes.
    lists: Vec<u32>,
    /// For large tables: first interval index per bucket of the top
    /// `bits` address bits (2^bits + 1 entries).
    index: Vec<u32>,
    /// Bits of the bucket index (0 when there is no index).
    bits: u32,
}

/// The compiled matcher of a rule list.
#[derive(Debug, Clone, Default)]
pub struct Table {
    v4: Family<u32>,
    v6: Family<u128>,
    /// Rules (by index into the priority-sorted rule list) whose source is
    /// every address.
    any: Vec<u32>,
    pool: Vec<u32>,
    /// Per rule, the non-source fields in a few bytes, so that checking a
    /// candidate touches one cache line instead of chasing the rule's
    /// vectors.
    compact: Vec<Compact>,
}

/// A rule's non-source fields when each is a single port range and the
/// destination is any address; `exact: false` sends the caller to the rule.
#[derive(Debug, Clone, Copy)]
pub struct Compact {
    /// Client port range.
    pub sport: (u16, u16),
    /// Local port range.
    pub dport: (u16, u16),
    /// Transport.
    pub proto: Protocol,
    /// Whether the fields above are the whole rule (besides the source).
    pub exact: bool,
}

impl Compact {
    fn of(r: &Rule) -> Compact {
        let one = |p: &PortSet| match p.0.as_slice() {
            [r] => Some(*r),
            _ => None,
        };
        match (one(&r.source_ports), one(&r.destination_ports)) {
            (Some(sport), Some(dport)) if r.destination.is_any() => Compact {
                sport,
                dport,
                proto: r.protocol,
                exact: true,
            },
            _ => Compact {
                sport: (0, 0),
                dport: (0, 0),
                proto: r.protocol,
                exact: false,
            },
        }
    }
}

/// Most bits of a bucket index (4 MiB of index at most).
const MAX_INDEX_BITS: u32 = 20;

trait Addr: Copy + Ord + Default {
    /// The top `bits` bits (1..=MAX_INDEX_BITS) as a bucket number.
    fn top(self, bits: u32) -> usize;
    fn next(self) -> Option<Self>;
}

/// Rule indexes stay below this (the table's own bound on rules).
const MAX_RULE: u32 = 1 << 31;

impl Addr for u32 {
    fn top(self, bits: u32) -> usize {
        self.checked_shr(32u32.saturating_sub(bits)).unwrap_or(0) as usize
    }
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}
impl Addr for u128 {
    fn top(self, bits: u32) -> usize {
        // Lossless: at most MAX_INDEX_BITS bits remain after the shift.
        self.checked_shr(128u32.saturating_sub(bits)).unwrap_or(0) as usize
    }
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl<T: Addr> Family<T> {
    /// `ranges(i)` are rule `i`'s sorted, merged source ranges; `skip[i]`
    /// rules (any source) are not in the table.
    fn build<'r>(
        ranges: impl Fn(usize) -> &'r [(T, T)],
        rules: &[Rule],
        skip: &[bool],
        stop_at: usize,
        pool: &mut Vec<u32>,
    ) -> Result<Self, Error>
    where
        T: 'r,
    {
        let keep = |i: usize| !skip.get(i).copied().unwrap_or(true);
        let count: usize = (0..stop_at)
            .filter(|&i| keep(i))
            .map(|i| ranges(i).len() * 2)
            .sum();
        // A k-way merge of the rules' boundaries, each rule's already in
        // order (its sources are sorted and merged): a heap of one cursor
        // per rule, (position, rule, boundary number: even for a range's
        // start, odd for the position after its end), instead of a vector
        // of every boundary and a sort.
        let boundary = |i: u32, k: u32| -> Option<T> {
            let &(lo, hi) = ranges(i as usize).get((k / 2) as usize)?;
            if k.is_multiple_of(2) {
                Some(lo)
            } else {
                hi.next()
            }
        };
        let mut heap: BinaryHeap<Reverse<(T, u32, u32)>> = BinaryHeap::new();
        for i in (0..stop_at).filter(|&i| keep(i)) {
            let idx = u32::try_from(i)
                .ok()
                .filter(|&x| x < MAX_RULE)
                .ok_or_else(|| too_complex(i))?;
            if let Some(p) = boundary(idx, 0) {
                heap.push(Reverse((p, idx, 0)));
            }
        }
        // Whether each rule decides every flow its source holds.
        let only: Vec<bool> = rules.iter().map(Rule::source_only).collect();
        let mut fam = Family::<T>::default();
        // At most one interval per distinct position, and the one at 0.
        fam.starts.reserve_exact(count + 1);
        fam.lists.reserve_exact(count + 1);
        // The rules covering the current interval, in no order; few at a
        // time, so a vector beats a tree.
        let mut active: Vec<u32> = Vec::new();
        let mut scratch: Vec<u32> = Vec::new();
        // The pool offsets of the last two lists emitted: an interval's list
        // is often the one before the last (in, out, in, out ...).
        let mut recent: [Option<u32>; 2] = [None, None];
        let mut failed = None;
        // Element by element, here and below: a bulk copy is a call out of
        // the VM under wasmtime, dearer than a few moves.
        let mut emit = |fam: &mut Family<T>, pos: T, active: &[u32]| {
            scratch.clear();
            for &r in active {
                scratch.push(r);
            }
            if scratch.len() > 1 {
                scratch.sort_unstable();
                if let Some(i) = scratch
                    .iter()
                    .position(|&r| only.get(r as usize).copied().unwrap_or(false))
                {
                    scratch.truncate(i + 1);
                }
            }
            let list_at = |off: u32| {
                let off = off as usize;
                let len = pool.get(off).copied().unwrap_or(0) as usize;
                pool.get(off + 1..off + 1 + len)
            };
            let last = recent[0];
            if last.is_some_and(|o| list_at(o) == Some(scratch.as_slice())) {
                // The same candidates as the interval before: no new one.
                return;
            }
            let off = match recent[1] {
                Some(o) if list_at(o) == Some(scratch.as_slice()) => o,
                _ => {
                    let off = pool.len();
                    if off + 1 + scratch.len() > MAX_ENTRIES {
                        failed = Some(too_complex(off + 1 + scratch.len()));
                        return;
                    }
                    // Both fit in u32: MAX_ENTRIES is far below u32::MAX.
                    pool.push(scratch.len() as u32);
                    for &r in &scratch {
                        pool.push(r);
                    }
                    off as u32
                }
            };
            recent = [Some(off), last];
            fam.starts.push(pos);
            fam.lists.push(off);
        };
        let mut seen_zero = false;
        while let Some(&Reverse((pos, _, _))) = heap.peek() {
            if pos != T::default() && !seen_zero {
                // The interval from 0 up to the first boundary.
                emit(&mut fam, T::default(), &active);
            }
            seen_zero = true;
            // Every boundary at this position, each rule's cursor advanced.
            while let Some(mut top) = heap.peek_mut() {
                let Reverse((p, r, k)) = *top;
                if p != pos {
                    break;
                }
                if k.is_multiple_of(2) {
                    active.push(r);
                } else if let Some(i) = active.iter().position(|&a| a == r) {
                    active.swap_remove(i);
                }
                match boundary(r, k + 1) {
                    Some(next) => *top = Reverse((next, r, k + 1)),
                    None => {
                        PeekMut::pop(top);
                    }
                }
            }
            emit(&mut fam, pos, &active);
        }
        if !seen_zero {
            emit(&mut fam, T::default(), &active);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        fam.starts.shrink_to_fit();
        fam.lists.shrink_to_fit();
        if fam.starts.len() >= INDEX_THRESHOLD {
            // About PER_BUCKET intervals per bucket.
            let bits =
                (usize::BITS - (fam.starts.len() / PER_BUCKET).leading_zeros()).min(MAX_INDEX_BITS);
            let buckets = 1usize << bits;
            let mut index = Vec::with_capacity(buckets + 1);
            let mut j = 0usize;
            for b in 0..=buckets {
                while fam.starts.get(j).is_some_and(|s| s.top(bits) < b) {
                    j += 1;
                }
                // j <= starts.len() <= MAX_ENTRIES, fits in u32.
                index.push(j as u32);
            }
            fam.index = index;
            fam.bits = bits;
        }
        Ok(fam)
    }
}

impl<T: Addr> Family<T> {
    /// Pool offset of the candidate list for an address.
    #[inline]
    #[deny(clippy::arithmetic_side_effects)]
    fn lookup(&self, a: T) -> Option<u32> {
        let (lo, hi) = if self.index.is_empty() {
            (0, self.starts.len())
        } else {
            let b = a.top(self.bits);
            let lo = self.index.get(b).copied().unwrap_or(0) as usize;
            let hi = b
                .checked_add(1)
                .and_then(|b| self.index.get(b))
                .copied()
                .unwrap_or(0) as usize;
            // The interval holding `a` may start in an earlier bucket.
            (lo.saturating_sub(1), hi.max(lo))
        };
        let slice = self.starts.get(lo..hi).unwrap_or(&[]);
        let k = slice.partition_point(|&s| s <= a);
        // starts[0] == 0, so k >= 1 within the full table; within a bucket
        // window the interval before `lo` is covered by the saturating_sub.
        let i = lo.saturating_add(k).checked_sub(1)?;
        self.lists.get(i).copied()
    }
}

/// Whether intervals are sorted, each well formed, none touching the next.
fn normalized<T: Addr>(v: &[(T, T)]) -> bool {
    v.iter().all(|(lo, hi)| lo <= hi)
        && v.windows(2).all(|w| match w {
            [(_, hi), (lo, _)] => hi.next().is_some_and(|n| n < *lo),
            _ => true,
        })
}

fn too_complex(entries: usize) -> Error {
    Error::TooComplex {
        entries,
        limit: MAX_ENTRIES,
    }
}

impl Table {
    /// Compiles a priority-sorted rule list.
    pub fn build(rules: &[Rule]) -> Result<Table, Error> {
        // The merge needs each source sorted and merged, as the policy
        // reader leaves it; a caller's own rules are normalized first.
        if !rules
            .iter()
            .all(|r| normalized(&r.source.v4) && normalized(&r.source.v6))
        {
            let mut own = rules.to_vec();
            for r in &mut own {
                r.source.normalize();
            }
            return Table::build(&own);
        }
        let mut t = Table::default();
        let any: Vec<bool> = rules.iter().map(|r| r.source.is_any()).collect();
        // Rules after the first source-only any-source rule never decide.
        let mut stop_at = rules.len();
        for (i, r) in rules.iter().enumerate() {
            if any.get(i).copied().unwrap_or(false) {
                t.any.push(u32::try_from(i).map_err(|_| too_complex(i))?);
                if r.source_only() {
                    stop_at = i;
                    break;
                }
            }
        }
        let mut pool = Vec::new();
        t.v4 = Family::build(
            |i| rules.get(i).map_or(&[][..], |r| r.source.v4.as_slice()),
            rules,
            &any,
            stop_at,
            &mut pool,
        )?;
        t.v6 = Family::build(
            |i| rules.get(i).map_or(&[][..], |r| r.source.v6.as_slice()),
            rules,
            &any,
            stop_at,
            &mut pool,
        )?;
        pool.shrink_to_fit();
        t.pool = pool;
        t.compact = rules.iter().map(Compact::of).collect();
        Ok(t)
    }

    /// The two candidate lists for a client address: rules whose source holds
    /// the address (ascending priority), and rules whose source is every
    /// address. The caller merges them by index.
    #[inline]
    #[deny(clippy::arithmetic_side_effects)]
    pub fn candidates(&self, k: Key) -> (&[u32], &[u32]) {
        let off = match k {
            Key::V4(a) => self.v4.lookup(a),
            Key::V6(a) => self.v6.lookup(a),
        };
        let list = off
            .and_then(|off| {
                let off = off as usize;
                let len = *self.pool.get(off)? as usize;
                let first = off.checked_add(1)?;
                self.pool.get(first..first.checked_add(len)?)
            })
            .unwrap_or(&[]);
        (list, &self.any)
    }

    /// The compact form of rule `i`.
    #[inline]
    pub fn compact(&self, i: usize) -> Option<&Compact> {
        self.compact.get(i)
    }

    /// Entries held, for reporting.
    pub fn entries(&self) -> usize {
        self.pool.len() + self.any.len() + self.v4.starts.len() + self.v6.starts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_with_unnormalized_sources_are_normalized_first() {
        let p = crate::Policy::parse(
            br#"{"name":"p","network":{"rules":[{"name":"a","priority":100,"access":"allow","source":["10.0.0.0/8"]}]}}"#,
        )
        .unwrap();
        let mut rules = p.network.unwrap().rules;
        // Unsorted, overlapping and adjacent, as a caller might build them.
        rules[0].source.v4 = alloc::vec![(30, 40), (10, 20), (15, 25), (26, 29)];
        let t = Table::build(&rules).unwrap();
        for (a, hit) in [(9, false), (10, true), (29, true), (40, true), (41, false)] {
            let (list, _) = t.candidates(crate::addr::Key::V4(a));
            assert_eq!(!list.is_empty(), hit, "{a}");
        }
    }
}
