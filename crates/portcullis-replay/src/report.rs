//! The report of a replay, from a [`Tally`] and the policies' names: its
//! fields (serialized for `--format json`) and its text form.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use portcullis_core::{Policy, Step};

use crate::judge::Decider;
use crate::tally::{Group, Kind, Old, Prefix, Seen, Side, Tally};
use crate::time::format_rfc3339;
use crate::Unjudged;

/// Most clients a group lists: more are merged into shorter prefixes.
pub const SHOWN_CLIENTS: usize = 16;

/// What decided a group in one policy, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DeciderOut {
    /// The scope that applied (`None`: the top level).
    pub scope: Option<String>,
    /// The network rule that matched: its name, `default`, `no network
    /// section`, or `recorded` for the log's own decision.
    pub rule: String,
    /// Its priority.
    pub priority: Option<u16>,
    /// The step that decided (`network`, `forward`, `https_only`, ...).
    pub step: &'static str,
    /// The `require_headers` entry's name, when that step decided.
    pub header: Option<String>,
    /// `forward`, `deny` or `redirect` (`allow`/`deny` for a recorded
    /// decision).
    pub verdict: &'static str,
}

/// One client (or prefix) of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ClientOut {
    /// The address, a prefix (`65.52.10.0/24`), or `unknown`.
    pub client: String,
    /// Records.
    pub records: u64,
    /// First seen (RFC 3339), when records have times.
    pub first_seen: Option<String>,
    /// Last seen.
    pub last_seen: Option<String>,
    /// One record, `file:line`.
    pub example: String,
}

/// Records decided by one (OLD, NEW) pair of deciders with changed
/// verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct GroupOut {
    /// In OLD (or the log's decision).
    pub old: DeciderOut,
    /// In NEW.
    pub new: DeciderOut,
    /// Records.
    pub records: u64,
    /// First seen.
    pub first_seen: Option<String>,
    /// Last seen.
    pub last_seen: Option<String>,
    /// The clients, most records first.
    pub clients: Vec<ClientOut>,
    /// IPv4 and IPv6 prefix lengths the clients were merged into (32 and
    /// 128: not merged).
    pub prefix_lengths: (u8, u8),
}

/// How many records one rule of NEW decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RuleHits {
    /// The scope whose own `network` holds the rule (`None`: the top
    /// level's, also when a scope inherits it).
    pub scope: Option<String>,
    /// The rule's name, or `default`.
    pub rule: String,
    /// Its priority.
    pub priority: Option<u16>,
    /// Records it decided (0: never hit in the log).
    pub records: u64,
}

/// Records not judged for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Unjudgeable {
    /// The reason's word ([`Unjudged::as_str`]).
    pub reason: &'static str,
    /// Records.
    pub records: u64,
    /// In words.
    pub description: &'static str,
}

/// What a replay found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Report {
    /// OLD's name, or `recorded` (the log's own decisions).
    pub old: String,
    /// NEW's name.
    pub new: String,
    /// Records read inside the window.
    pub records: u64,
    /// Records judged by both sides.
    pub judged: u64,
    /// Judged records with the same verdict on both sides.
    pub unchanged: u64,
    /// Records outside `--since`/`--until`.
    pub outside_window: u64,
    /// The earliest record's time.
    pub first_seen: Option<String>,
    /// The latest.
    pub last_seen: Option<String>,
    /// Observed flows NEW denies that OLD allowed.
    pub newly_denied: Vec<GroupOut>,
    /// Observed flows NEW allows that OLD denied.
    pub newly_allowed: Vec<GroupOut>,
    /// Every rule of NEW (and each default) with the records it decided.
    pub rules: Vec<RuleHits>,
    /// Records not judged, by reason.
    pub not_judged: Vec<Unjudgeable>,
    /// Judged records NEW denies, over time: seconds per bucket.
    pub denied_bucket_seconds: i64,
    /// The buckets: (start, RFC 3339; records), in time order.
    pub denied_over_time: Vec<(String, u64)>,
}

impl Report {
    /// Records in the newly-denied groups.
    pub fn newly_denied_records(&self) -> u64 {
        sum(&self.newly_denied)
    }
    /// Records in the newly-allowed groups.
    pub fn newly_allowed_records(&self) -> u64 {
        sum(&self.newly_allowed)
    }
}

fn sum(g: &[GroupOut]) -> u64 {
    g.iter().fold(0u64, |n, g| n.saturating_add(g.records))
}

fn time(t: Option<i64>) -> Option<String> {
    t.map(format_rfc3339)
}

fn decider(p: &Policy, d: &Decider) -> DeciderOut {
    let scope = d.scope.map(|i| i as usize);
    let s = p.scoped(scope);
    let (rule, priority) = match &s.network {
        None => (String::from("no network section"), None),
        Some(net) => match d.rule.and_then(|i| net.rules.get(i as usize)) {
            Some(r) => (r.name.clone(), Some(r.priority)),
            None => (String::from("default"), None),
        },
    };
    DeciderOut {
        scope: p.scope_name(scope).map(String::from),
        rule,
        priority,
        step: d.step().as_str(),
        header: d
            .header
            .and_then(|i| s.require_headers.get(i as usize))
            .map(|h| h.name.clone()),
        verdict: d.verdict().as_str(),
    }
}

fn old_decider(old: Side<'_>, o: &Old) -> DeciderOut {
    match (old, o) {
        (Side::Policy(p), Old::Policy(d)) => decider(p, d),
        (_, Old::Recorded(a)) => DeciderOut {
            scope: None,
            rule: String::from("recorded"),
            priority: None,
            step: "recorded",
            header: None,
            verdict: if *a { "allow" } else { "deny" },
        },
        // A policy's decider without the policy: not produced by a tally.
        (Side::Recorded, Old::Policy(d)) => DeciderOut {
            scope: None,
            rule: String::from("?"),
            priority: None,
            step: d.step().as_str(),
            header: None,
            verdict: d.verdict().as_str(),
        },
    }
}

fn prefix_text(p: &Option<Prefix>) -> String {
    use core::net::{Ipv4Addr, Ipv6Addr};
    let Some(p) = p else {
        return String::from("unknown");
    };
    let (ip, full) = if p.v6 {
        (Ipv6Addr::from(p.bits).to_string(), 128)
    } else {
        (
            Ipv4Addr::from(u32::try_from(p.bits).unwrap_or(0)).to_string(),
            32,
        )
    };
    if p.len == full {
        ip
    } else {
        alloc::format!("{ip}/{}", p.len)
    }
}

fn group(
    files: &[String],
    old: Side<'_>,
    new: &Policy,
    key: (&Old, &Decider),
    g: &Group,
) -> GroupOut {
    let mut g = g.clone();
    while g.clients.len() > SHOWN_CLIENTS && (g.len4 > 0 || g.len6 > 0) {
        g.len4 = g.len4.saturating_sub(8);
        g.len6 = g.len6.saturating_sub(16);
        g.rekey();
    }
    let mut all: Option<Seen> = None;
    for s in g.clients.values() {
        match &mut all {
            Some(a) => a.merge(s),
            None => all = Some(*s),
        }
    }
    let mut clients: Vec<(&Option<Prefix>, &Seen)> = g.clients.iter().collect();
    clients.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    GroupOut {
        old: old_decider(old, key.0),
        new: decider(new, key.1),
        records: all.map_or(0, |a| a.count),
        first_seen: time(all.and_then(|a| a.first)),
        last_seen: time(all.and_then(|a| a.last)),
        clients: clients
            .into_iter()
            .map(|(p, s)| ClientOut {
                client: prefix_text(p),
                records: s.count,
                first_seen: time(s.first),
                last_seen: time(s.last),
                example: alloc::format!(
                    "{}:{}",
                    files
                        .get(s.example.file as usize)
                        .map_or("?", |f| f.as_str()),
                    s.example.line
                ),
            })
            .collect(),
        prefix_lengths: (g.len4, g.len6),
    }
}

impl Tally {
    /// The report: `files` names the inputs by [`crate::Loc::file`].
    pub fn report(&self, files: &[String], old: Side<'_>, new: &Policy) -> Report {
        let mut denied = Vec::new();
        let mut allowed = Vec::new();
        for ((kind, o, n), g) in &self.groups {
            let out = group(files, old, new, (o, n), g);
            match kind {
                Kind::NewlyDenied => denied.push(out),
                Kind::NewlyAllowed => allowed.push(out),
            }
        }
        for list in [&mut denied, &mut allowed] {
            list.sort_by_key(|g| core::cmp::Reverse(g.records));
        }
        let mut rules = Vec::new();
        let mut owners: Vec<(Option<u32>, &Policy)> = alloc::vec![(None, new)];
        for (i, s) in new.scopes.iter().enumerate() {
            if s.restated.network || !s.inherit {
                owners.push((u32::try_from(i).ok(), &s.policy));
            }
        }
        for (owner, p) in owners {
            let Some(net) = &p.network else { continue };
            let scope = owner.and_then(|i| new.scope_name(Some(i as usize)).map(String::from));
            let hits = |rule: Option<u32>| self.hits.get(&(owner, rule)).copied().unwrap_or(0);
            for (i, r) in net.rules.iter().enumerate() {
                rules.push(RuleHits {
                    scope: scope.clone(),
                    rule: r.name.clone(),
                    priority: Some(r.priority),
                    records: hits(u32::try_from(i).ok()),
                });
            }
            rules.push(RuleHits {
                scope,
                rule: String::from("default"),
                priority: None,
                records: hits(None),
            });
        }
        let judged = self.records.saturating_sub(self.not_judged());
        Report {
            old: match old {
                Side::Policy(p) => p.name.clone(),
                Side::Recorded => String::from("recorded"),
            },
            new: new.name.clone(),
            records: self.records,
            judged,
            unchanged: self.unchanged,
            outside_window: self.outside_window,
            first_seen: time(self.first),
            last_seen: time(self.last),
            newly_denied: denied,
            newly_allowed: allowed,
            rules,
            not_judged: Unjudged::ALL
                .iter()
                .filter_map(|&u| {
                    let n = self.not_judged_for(u);
                    (n > 0).then_some(Unjudgeable {
                        reason: u.as_str(),
                        records: n,
                        description: u.describe(),
                    })
                })
                .collect(),
            denied_bucket_seconds: self.denied_over_time.width,
            denied_over_time: self
                .denied_over_time
                .buckets
                .iter()
                .map(|(k, n)| (format_rfc3339(*k), *n))
                .collect(),
        }
    }
}

impl fmt::Display for DeciderOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scope {
            write!(f, "scope {s}: ")?;
        }
        if self.step == "recorded" {
            return write!(f, "recorded {}", self.verdict);
        }
        let network = self.step == Step::Network.as_str() || self.step == Step::Forward.as_str();
        if network {
            let access = if self.verdict == "forward" {
                "allow"
            } else {
                "deny"
            };
            return match self.priority {
                Some(p) => write!(f, "{} (priority {p}, {access})", self.rule),
                None => write!(f, "{} ({access})", self.rule),
            };
        }
        match &self.header {
            Some(h) => write!(f, "{} {h}: {}", self.step, self.verdict),
            None => write!(f, "{}: {}", self.step, self.verdict),
        }
    }
}

fn span(f: &mut fmt::Formatter<'_>, first: &Option<String>, last: &Option<String>) -> fmt::Result {
    match (first, last) {
        (Some(a), Some(b)) if a == b => write!(f, ", at {a}"),
        (Some(a), Some(b)) => write!(f, ", {a} .. {b}"),
        _ => Ok(()),
    }
}

/// `1 record`, `2 records`.
fn records(n: u64) -> String {
    if n == 1 {
        String::from("1 record")
    } else {
        alloc::format!("{n} records")
    }
}

fn groups(f: &mut fmt::Formatter<'_>, heading: &str, list: &[GroupOut]) -> fmt::Result {
    let n = sum(list);
    if list.is_empty() {
        return writeln!(f, "{heading}: none");
    }
    writeln!(f, "{heading}: {}", records(n))?;
    for g in list {
        write!(f, "  old {}, new {}: {}", g.old, g.new, records(g.records))?;
        span(f, &g.first_seen, &g.last_seen)?;
        writeln!(f)?;
        if g.prefix_lengths != (32, 128) {
            writeln!(
                f,
                "    (clients merged into /{} and /{} prefixes)",
                g.prefix_lengths.0, g.prefix_lengths.1
            )?;
        }
        for c in &g.clients {
            write!(f, "    {}: {}", c.client, records(c.records))?;
            span(f, &c.first_seen, &c.last_seen)?;
            writeln!(f, ", e.g. {}", c.example)?;
        }
    }
    Ok(())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "replay: old {:?}, new {:?}", self.old, self.new)?;
        write!(
            f,
            "records: {} (judged {}, unchanged {}",
            self.records, self.judged, self.unchanged
        )?;
        if self.outside_window > 0 {
            write!(f, "; {} outside --since/--until", self.outside_window)?;
        }
        write!(f, ")")?;
        span(f, &self.first_seen, &self.last_seen)?;
        writeln!(f)?;
        groups(f, "newly denied", &self.newly_denied)?;
        groups(f, "newly allowed", &self.newly_allowed)?;
        writeln!(f, "records decided per rule of new:")?;
        if self.rules.is_empty() {
            writeln!(f, "  (no network section)")?;
        }
        for r in &self.rules {
            write!(f, "  ")?;
            if let Some(s) = &r.scope {
                write!(f, "scope {s}: ")?;
            }
            match r.priority {
                Some(p) => write!(f, "{} (priority {p})", r.rule)?,
                None => write!(f, "{}", r.rule)?,
            }
            if r.records == 0 {
                writeln!(f, ": never hit")?;
            } else {
                writeln!(f, ": {}", r.records)?;
            }
        }
        if self.not_judged.is_empty() {
            writeln!(f, "not judged: none")?;
        } else {
            writeln!(f, "not judged:")?;
            for u in &self.not_judged {
                writeln!(f, "  {} {}: {}", u.records, u.reason, u.description)?;
            }
        }
        Ok(())
    }
}
