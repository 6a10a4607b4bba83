//! The aggregation: per (kind, deciding rule in OLD, in NEW) group, the
//! clients with counts, first and last seen and one example record; per
//! rule of NEW, the records it decided; the records not judged, by reason.
//! Bounded: a group keeps at most [`MAX_CLIENTS`] entries, merging its
//! clients into shorter prefixes when it would hold more.

use alloc::collections::BTreeMap;
use core::net::IpAddr;

use portcullis_core::Policy;

use crate::judge::{judge, Decider};
use crate::{Record, Unjudged};

/// Most client entries one group keeps before merging them into shorter
/// prefixes (IPv4 by 8 bits, IPv6 by 16).
pub const MAX_CLIENTS: usize = 4096;

/// Where a record is: the index of its file in the caller's list and its
/// line (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Loc {
    /// Index of the file.
    pub file: u32,
    /// Line, 1-based.
    pub line: u64,
}

/// How a record's verdict changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// OLD allowed it, NEW denies it.
    NewlyDenied,
    /// OLD denied it, NEW allows it.
    NewlyAllowed,
}

/// What a record is compared against: the OLD policy, or the decision the
/// log recorded (`portcullis replay --policy NEW`).
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    /// A policy.
    Policy(&'a Policy),
    /// The recorded decision.
    Recorded,
}

/// The OLD side of a group: a policy's decider or the recorded decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Old {
    Policy(Decider),
    Recorded(bool),
}

/// A client address or a prefix of one (`None` in a map key: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Prefix {
    pub v6: bool,
    pub bits: u128,
    pub len: u8,
}

impl Prefix {
    pub(crate) fn of(ip: IpAddr) -> Prefix {
        match portcullis_core::addr::canonical(ip) {
            IpAddr::V4(a) => Prefix {
                v6: false,
                bits: u128::from(u32::from(a)),
                len: 32,
            },
            IpAddr::V6(a) => Prefix {
                v6: true,
                bits: u128::from(a),
                len: 128,
            },
        }
    }

    /// The prefix `len` bits long that holds this one.
    pub(crate) fn truncate(self, len: u8) -> Prefix {
        let width: u8 = if self.v6 { 128 } else { 32 };
        let len = len.min(self.len);
        let host = u32::from(width.saturating_sub(len));
        let mask = u128::MAX.checked_shl(host).unwrap_or(0);
        let width_mask = if self.v6 {
            u128::MAX
        } else {
            u128::from(u32::MAX)
        };
        Prefix {
            v6: self.v6,
            bits: self.bits & mask & width_mask,
            len,
        }
    }
}

/// Counts, first and last seen, one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub count: u64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub example: Loc,
}

impl Seen {
    fn new(time: Option<i64>, at: Loc) -> Seen {
        Seen {
            count: 1,
            first: time,
            last: time,
            example: at,
        }
    }

    pub(crate) fn merge(&mut self, o: &Seen) {
        self.count = self.count.saturating_add(o.count);
        self.first = min_opt(self.first, o.first);
        self.last = max_opt(self.last, o.last);
        self.example = self.example.min(o.example);
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) | (None, x) => x,
    }
}

/// One group's clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub clients: BTreeMap<Option<Prefix>, Seen>,
    /// The longest prefix kept (IPv4, IPv6): shortened when the group
    /// would hold more than [`MAX_CLIENTS`] entries.
    pub len4: u8,
    pub len6: u8,
}

impl Default for Group {
    fn default() -> Group {
        Group {
            clients: BTreeMap::new(),
            len4: 32,
            len6: 128,
        }
    }
}

impl Group {
    fn key(&self, p: Option<Prefix>) -> Option<Prefix> {
        p.map(|p| p.truncate(if p.v6 { self.len6 } else { self.len4 }))
    }

    fn add(&mut self, p: Option<Prefix>, s: Seen) {
        let k = self.key(p);
        match self.clients.get_mut(&k) {
            Some(e) => e.merge(&s),
            None => {
                self.clients.insert(k, s);
            }
        }
        while self.clients.len() > MAX_CLIENTS && (self.len4 > 0 || self.len6 > 0) {
            self.len4 = self.len4.saturating_sub(8);
            self.len6 = self.len6.saturating_sub(16);
            self.rekey();
        }
    }

    /// Merges the entries into prefixes of the group's lengths.
    pub(crate) fn rekey(&mut self) {
        let old = core::mem::take(&mut self.clients);
        for (p, s) in old {
            let k = self.key(p);
            match self.clients.get_mut(&k) {
                Some(e) => e.merge(&s),
                None => {
                    self.clients.insert(k, s);
                }
            }
        }
    }

    fn merge(&mut self, o: &Group) {
        self.len4 = self.len4.min(o.len4);
        self.len6 = self.len6.min(o.len6);
        self.rekey();
        for (p, s) in &o.clients {
            self.add(*p, *s);
        }
    }
}

/// Most buckets a [`Timeline`] keeps: more, and the buckets widen (doubling).
pub const MAX_BUCKETS: usize = 512;

/// Counts over time, in buckets of `width` seconds (60 s, doubled whenever
/// there would be more than [`MAX_BUCKETS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Seconds per bucket.
    pub width: i64,
    /// Bucket start (seconds since the epoch, a multiple of `width`) to
    /// count.
    pub buckets: BTreeMap<i64, u64>,
}

impl Default for Timeline {
    fn default() -> Timeline {
        Timeline {
            width: 60,
            buckets: BTreeMap::new(),
        }
    }
}

impl Timeline {
    /// Counts `n` at time `t`.
    pub fn add(&mut self, t: i64, n: u64) {
        let k = t.div_euclid(self.width).saturating_mul(self.width);
        let e = self.buckets.entry(k).or_insert(0);
        *e = e.saturating_add(n);
        while self.buckets.len() > MAX_BUCKETS {
            self.widen(self.width.saturating_mul(2));
        }
    }

    fn widen(&mut self, width: i64) {
        if width <= self.width {
            return;
        }
        self.width = width;
        let old = core::mem::take(&mut self.buckets);
        for (k, n) in old {
            let k = k.div_euclid(width).saturating_mul(width);
            let e = self.buckets.entry(k).or_insert(0);
            *e = e.saturating_add(n);
        }
    }

    /// Adds another timeline.
    pub fn merge(&mut self, o: &Timeline) {
        self.widen(o.width);
        for (k, n) in &o.buckets {
            self.add(*k, *n);
        }
    }
}

/// The running aggregate of a replay. Feed it records ([`Tally::add`]),
/// merge tallies of parts of the input ([`Tally::merge`]), then write the
/// [`Report`](crate::Report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records seen (judged or not, outside the window excluded).
    pub records: u64,
    /// Records outside `--since`/`--until` (not counted in `records`).
    pub outside_window: u64,
    /// Records both sides judged with the same verdict.
    pub unchanged: u64,
    pub(crate) unjudged: BTreeMap<Unjudged, u64>,
    pub(crate) groups: BTreeMap<(Kind, Old, Decider), Group>,
    /// Per (owner scope, rule) of NEW: records it decided.
    pub(crate) hits: BTreeMap<(Option<u32>, Option<u32>), u64>,
    pub(crate) first: Option<i64>,
    pub(crate) last: Option<i64>,
    /// Judged records NEW denies, over time (records with a time).
    pub denied_over_time: Timeline,
}

/// The time window of a replay (`--since`, `--until`, inclusive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Records before this are left out.
    pub since: Option<i64>,
    /// Records after this are left out.
    pub until: Option<i64>,
}

impl Window {
    /// Whether a record at `t` is inside (a record without a time is
    /// inside).
    pub fn holds(&self, t: Option<i64>) -> bool {
        let Some(t) = t else { return true };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

impl Tally {
    /// Judges one record in OLD (or takes its recorded decision) and in
    /// NEW, and counts it.
    pub fn add(&mut self, old: Side<'_>, new: &Policy, r: &Record<'_>, at: Loc) {
        self.records = self.records.saturating_add(1);
        self.first = min_opt(self.first, r.time);
        self.last = max_opt(self.last, r.time);
        let n = match judge(new, r) {
            Ok(n) => n,
            Err(why) => return self.unjudged(why),
        };
        let (o, was_allowed, old_client) = match old {
            Side::Policy(p) => match judge(p, r) {
                Ok(o) => (Old::Policy(o.decider), o.decider.allowed, o.client),
                Err(why) => return self.unjudged(why),
            },
            Side::Recorded => match r.recorded {
                Some(a) => (Old::Recorded(a), a, None),
                None => return self.unjudged(Unjudged::NoRecordedDecision),
            },
        };
        let owner = n.decider.scope.filter(|&i| {
            new.scopes
                .get(i as usize)
                .is_some_and(|s| s.restated.network || !s.inherit)
        });
        let hit = self.hits.entry((owner, n.decider.rule)).or_insert(0);
        *hit = hit.saturating_add(1);
        if let (false, Some(t)) = (n.decider.allowed, r.time) {
            self.denied_over_time.add(t, 1);
        }
        let kind = match (was_allowed, n.decider.allowed) {
            (true, false) => Kind::NewlyDenied,
            (false, true) => Kind::NewlyAllowed,
            _ => {
                self.unchanged = self.unchanged.saturating_add(1);
                return;
            }
        };
        let client = n.client.or(old_client).or(match r.observed {
            crate::Observed::Flow(f) => Some(f.src),
            crate::Observed::Http(h) => Some(h.peer),
            crate::Observed::Client(ip) => Some(ip),
        });
        self.groups
            .entry((kind, o, n.decider))
            .or_default()
            .add(client.map(Prefix::of), Seen::new(r.time, at));
    }

    /// Counts a record that could not be judged (also one the reader
    /// skipped, with [`Tally::skipped`]).
    fn unjudged(&mut self, why: Unjudged) {
        let e = self.unjudged.entry(why).or_insert(0);
        *e = e.saturating_add(1);
    }

    /// Counts a record the reader could not turn into a [`Record`]
    /// (outbound, another protocol, a malformed address or record).
    pub fn skipped(&mut self, why: Unjudged) {
        self.records = self.records.saturating_add(1);
        self.unjudged(why);
    }

    /// Counts a record outside the window.
    pub fn outside(&mut self) {
        self.outside_window = self.outside_window.saturating_add(1);
    }

    /// Records in groups of kind `k`.
    pub fn count(&self, k: Kind) -> u64 {
        self.groups
            .iter()
            .filter(|((kind, _, _), _)| *kind == k)
            .flat_map(|(_, g)| g.clients.values())
            .fold(0u64, |n, s| n.saturating_add(s.count))
    }

    /// Records not judged, all reasons.
    pub fn not_judged(&self) -> u64 {
        self.unjudged
            .values()
            .fold(0u64, |n, c| n.saturating_add(*c))
    }

    /// Records not judged for one reason.
    pub fn not_judged_for(&self, why: Unjudged) -> u64 {
        self.unjudged.get(&why).copied().unwrap_or(0)
    }

    /// Adds another tally (of another part of the input).
    pub fn merge(&mut self, o: &Tally) {
        self.records = self.records.saturating_add(o.records);
        self.outside_window = self.outside_window.saturating_add(o.outside_window);
        self.unchanged = self.unchanged.saturating_add(o.unchanged);
        for (k, v) in &o.unjudged {
            let e = self.unjudged.entry(*k).or_insert(0);
            *e = e.saturating_add(*v);
        }
        for (k, v) in &o.hits {
            let e = self.hits.entry(*k).or_insert(0);
            *e = e.saturating_add(*v);
        }
        for (k, g) in &o.groups {
            self.groups.entry(*k).or_default().merge(g);
        }
        self.first = min_opt(self.first, o.first);
        self.last = max_opt(self.last, o.last);
        self.denied_over_time.merge(&o.denied_over_time);
    }
}
