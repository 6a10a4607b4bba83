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

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::addr::Key;
use crate::error::Error;
use crate::rule::{PortSet, Protocol, Rule};

/// Most candidate entries a table may hold (bounds memory for hostile
/// policies: 4 bytes each).
pub const MAX_ENTRIES: usize = 4 << 20;

/// Tables with fewer intervals than this are searched without a bucket index.
const INDEX_THRESHOLD: usize = 64;

/// One family's interval table.
#[derive(Debug, Clone, Default)]
struct Family<T> {
    /// Interval start addresses, ascending; the first is 0.
    starts: Vec<T>,
    /// Per interval: candidate list as (offset, len) into the pool.
    lists: Vec<(u32, u32)>,
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
    fn build(
        ranges: impl Fn(usize) -> Vec<(T, T)>,
        rules: &[Rule],
        skip: &[bool],
        stop_at: usize,
        pool: &mut Vec<u32>,
    ) -> Result<Self, Error> {
        // (position, is_start, rule)
        let mut events: Vec<(T, bool, u32)> = Vec::new();
        for (i, _) in rules.iter().enumerate().take(stop_at) {
            if skip.get(i).copied().unwrap_or(true) {
                continue;
            }
            let idx = u32::try_from(i).map_err(|_| too_complex(i))?;
            for (lo, hi) in ranges(i) {
                events.push((lo, true, idx));
                if let Some(n) = hi.next() {
                    events.push((n, false, idx));
                }
            }
        }
        events.sort_unstable();
        let mut fam = Family::<T>::default();
        let mut active: BTreeSet<u32> = BTreeSet::new();
        let mut scratch: Vec<u32> = Vec::new();
        let mut e = 0;
        let mut pos = T::default();
        loop {
            while let Some(&(p, start, r)) = events.get(e) {
                if p != pos {
                    break;
                }
                if start {
                    active.insert(r);
                } else {
                    active.remove(&r);
                }
                e += 1;
            }
            scratch.clear();
            for &r in &active {
                scratch.push(r);
                if rules.get(r as usize).is_some_and(Rule::source_only) {
                    break;
                }
            }
            let same = fam.lists.last().is_some_and(|&(off, len)| {
                pool.get(off as usize..(off + len) as usize) == Some(scratch.as_slice())
            });
            if !same {
                let off = pool.len();
                if off + scratch.len() > MAX_ENTRIES {
                    return Err(too_complex(off + scratch.len()));
                }
                pool.extend_from_slice(&scratch);
                // Both fit in u32: MAX_ENTRIES is far below u32::MAX.
                fam.starts.push(pos);
                fam.lists.push((off as u32, scratch.len() as u32));
            }
            match events.get(e) {
                Some(&(p, _, _)) => pos = p,
                None => break,
            }
        }
        if fam.starts.len() >= INDEX_THRESHOLD {
            // About one interval per bucket.
            let bits = (usize::BITS - fam.starts.len().leading_zeros()).min(MAX_INDEX_BITS);
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

    /// Candidate list (offset, len) for an address.
    #[inline]
    #[deny(clippy::arithmetic_side_effects)]
    fn lookup(&self, a: T) -> (u32, u32) {
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
        let i = lo.saturating_add(k).saturating_sub(1);
        self.lists.get(i).copied().unwrap_or((0, 0))
    }
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
            |i| {
                rules
                    .get(i)
                    .map(|r| r.source.v4.clone())
                    .unwrap_or_default()
            },
            rules,
            &any,
            stop_at,
            &mut pool,
        )?;
        t.v6 = Family::build(
            |i| {
                rules
                    .get(i)
                    .map(|r| r.source.v6.clone())
                    .unwrap_or_default()
            },
            rules,
            &any,
            stop_at,
            &mut pool,
        )?;
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
        let (off, len) = match k {
            Key::V4(a) => self.v4.lookup(a),
            Key::V6(a) => self.v6.lookup(a),
        };
        let list = self
            .pool
            .get(off as usize..(off as usize).saturating_add(len as usize))
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
