//! What changes between two Portcullis policies.
//!
//! [`diff`] takes two compiled policies and returns the **exact** set of
//! flows (client address, client port, local address, local port,
//! transport) whose network decision changes, computed from the rules, not
//! by sampling: every flow in the report is decided differently by the
//! core, and every flow outside it alike (the property tests in
//! `tests/props.rs` check both against [`Policy::match_rule`]). Flows are
//! merged into the fewest intervals per dimension the cut allows, printed
//! as CIDRs where an interval is one and as `a-b` ranges otherwise (both
//! valid address specs), and grouped by kind ([`Kind`]) and by the rule that
//! decides them in the old and in the new policy. The other sections
//! (`name`, `mode`, `client_ip`, `https_only`, `require_headers`, header ops, `hsts`)
//! are compared as plain before/after ([`Setting`]).
//!
//! With `scopes` in either policy, [`Report::scopes`] goes on region by
//! region ([`Scoped`]): requests are cut exactly by the scopes' `match`
//! patterns (host, path, method; an unreadable authority and an ambiguous
//! path where the engine refuses them) into [`Region`]s that choose one
//! scope in each policy, and each (old, new) pair of effective policies is
//! compared once, as above ([`Group`]); regions that move to another scope
//! are listed too, and each scope that differs by name ([`ScopeChange`]).
//! The property tests in `tests/scope_props.rs` check it against
//! `Policy::decide` with a naive region reference.
//!
//! ```
//! use portcullis_core::Policy;
//! let old = Policy::parse(br#"{"name":"a","network":{"rules":[
//!   {"name":"fe","priority":100,"access":"allow","source":["10.0.0.0/8"]}]}}"#).unwrap();
//! let new = Policy::parse(br#"{"name":"a","network":{"rules":[
//!   {"name":"fe","priority":100,"access":"allow","source":["10.0.0.0/9"]}]}}"#).unwrap();
//! let report = portcullis_diff::diff(&old, &new);
//! let text = report.to_string();
//! assert!(text.contains("newly denied"), "{text}");
//! assert!(text.contains("source 10.128.0.0/9"), "{text}");
//! ```
//!
//! What this crate does *not* do:
//! - it does not look at requests beyond the five-tuple, the headers that
//!   rules name (per header class, [`Change::when`]) and, with scopes, the
//!   host, path and method that choose the scope: an unknown client
//!   (`client_ip`) is denied whatever the rules, and later steps
//!   (`https_only`, `require_headers`) are compared as settings, not flows;
//! - it does not list a region whose scopes decide alike (it is skipped,
//!   not cut), and the text form lists at most 20 regions per pair;
//! - it never prints a `require_headers` value or a header op's value (they
//!   may be secrets from the environment), only names, statuses and counts;
//! - it is not in the filter: only the CLI and the playground call it;
//! - no I/O, no std (`#![no_std]` + `alloc`).
//!
//! Bounds: the walk stops after [`Limits::cells`] units of work
//! ([`Flows::TooComplex`]; shared by every pair of scopes), a report longer
//! than [`Limits::ranges`] printed intervals is summarized per group with
//! its count ([`Flows::TooManyRanges`]), and the cut into regions stops
//! after [`Limits::regions`] units ([`Scoped::TooManyRegions`]); see
//! `docs/rollout.md`.
#![no_std]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;

mod classes;
mod headers;
mod regions;
mod render;
mod scopes;
mod settings;
mod space;

use alloc::string::String;
use alloc::vec::Vec;

use portcullis_core::Policy;

pub use settings::Setting;

/// How a group of flows changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Kind {
    /// Denied by the old policy, allowed by the new.
    NewlyAllowed,
    /// Allowed by the old policy, denied by the new.
    NewlyDenied,
    /// Same verdict, decided by another rule (by name).
    OtherRule,
}

impl Kind {
    /// The word used by `--fail-on` and the JSON form.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NewlyAllowed => "newly-allowed",
            Kind::NewlyDenied => "newly-denied",
            Kind::OtherRule => "other-rule",
        }
    }
    /// The heading in the text form.
    pub fn heading(self) -> &'static str {
        match self {
            Kind::NewlyAllowed => "newly allowed",
            Kind::NewlyDenied => "newly denied",
            Kind::OtherRule => "same verdict, other deciding rule",
        }
    }
}

/// The rule that decides a group of flows in one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Decider {
    /// The rule's name, `default` (`network.default_access`), or
    /// `no network section` (every flow passes).
    pub rule: String,
    /// The rule's priority (none for the fallbacks).
    pub priority: Option<u16>,
    /// `allow` or `deny`.
    pub access: &'static str,
}

/// A box of flows: every combination of the listed values. Lists hold
/// address specs / port specs as a policy writes them; `["*"]` is any.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FlowSet {
    /// Client addresses.
    pub source: Vec<String>,
    /// Client ports.
    pub source_ports: Vec<String>,
    /// Local (listener) addresses.
    pub destination: Vec<String>,
    /// Local ports.
    pub destination_ports: Vec<String>,
    /// `tcp`, `udp` or `*`.
    pub protocol: &'static str,
}

/// Flows decided by one (old, new) pair of rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Change {
    /// For policies whose rules name `headers`: the header conditions under
    /// which these flows change, as alternatives (`x-azure-fdid is one of
    /// [fd-1]`); empty when no rule of either policy names a header.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Vec::is_empty"))]
    pub when: Vec<String>,
    /// What changes.
    pub kind: Kind,
    /// The deciding rule in the old policy.
    pub old: Decider,
    /// The deciding rule in the new policy.
    pub new: Decider,
    /// Printed intervals (addresses and ports) this group needs.
    pub ranges: u64,
    /// The flows, merged; empty when the report is over its bound.
    pub flows: Vec<FlowSet>,
}

/// The network part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "status", rename_all = "kebab-case"))]
pub enum Flows {
    /// Every change, grouped and sorted (empty: no change in who may call).
    Exact {
        /// The groups.
        changes: Vec<Change>,
    },
    /// The groups are known but too long to list: each says how many
    /// intervals it would print; `flows` are left empty.
    TooManyRanges {
        /// Intervals the whole report would print.
        ranges: u64,
        /// The bound ([`Limits::ranges`]).
        limit: u64,
        /// The groups, with counts and no flows.
        changes: Vec<Change>,
    },
    /// The cut was abandoned after [`Limits::cells`] units of work.
    TooComplex {
        /// The bound.
        limit: u64,
    },
}

/// What [`diff`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Report {
    /// `name` of the old policy.
    pub old_name: String,
    /// `name` of the new policy.
    pub new_name: String,
    /// Flows whose network decision changes.
    pub network: Flows,
    /// Other sections, before and after (only those that differ).
    pub settings: Vec<Setting>,
    /// Requests by region of the scopes' `match` patterns; absent when
    /// neither policy has scopes (then `network` and `settings` are the
    /// whole story).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub scopes: Option<Scoped>,
}

/// Which part of a policy decides a region's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Applies {
    /// No scope matches: the top level.
    TopLevel,
    /// This scope (by name).
    Scope(String),
    /// Refused with 400 before any scope is chosen
    /// (`400 unreadable authority`, `400 ambiguous path`).
    Refused(&'static str),
}

/// One field of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Part {
    /// Any value: the region is not cut on this field.
    Any,
    /// An authority scopes cannot read (for `host`), or an ambiguous path
    /// (for `path`).
    Unreadable,
    /// Every value that the patterns that matter here (hosts: every host
    /// pattern; paths: those of the scopes whose hosts hold; methods: those
    /// of the scopes whose hosts and paths hold) match exactly as they
    /// match this example.
    Like(String),
}

/// A set of requests, by host, path and method.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Region {
    /// As words, e.g. `host admin.contoso.net, paths /admin/*, any method`.
    pub description: String,
    /// The host (without port).
    pub host: Part,
    /// The path (normalized as scopes compare it).
    pub path: Part,
    /// The method.
    pub method: Part,
}

/// The regions that one (old, new) pair of scopes decides, and what
/// changes for them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Group {
    /// What decides these requests in the old policy.
    pub old: Applies,
    /// ... and in the new one.
    pub new: Applies,
    /// Whether they move to another scope (traces and counters name it).
    pub moved: bool,
    /// The regions.
    pub regions: Vec<Region>,
    /// Flows whose network decision changes there (the two effective
    /// policies compared).
    pub network: Flows,
    /// The effective policies' other sections that differ there (those
    /// that are the top level's everywhere, `name` and `client_ip`, are in
    /// [`Report::settings`]).
    pub settings: Vec<Setting>,
}

impl Group {
    /// The flow groups (also when too long to list).
    pub fn changes(&self) -> &[Change] {
        match &self.network {
            Flows::Exact { changes } | Flows::TooManyRanges { changes, .. } => changes,
            Flows::TooComplex { .. } => &[],
        }
    }
}

/// A scope, by name, that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ScopeChange {
    /// Its name.
    pub name: String,
    /// Index in the old policy's `scopes` (`None`: added).
    pub old_position: Option<usize>,
    /// Index in the new one (`None`: removed).
    pub new_position: Option<usize>,
    /// Its `match` (and `inherit false`) before.
    pub old_match: Option<String>,
    /// ... and after.
    pub new_match: Option<String>,
    /// Its effective sections that differ (when in both policies).
    pub settings: Vec<Setting>,
}

/// The scoped part of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(tag = "status", rename_all = "kebab-case"))]
pub enum Scoped {
    /// Every region whose requests change, grouped by (old, new) scope.
    Exact {
        /// The groups that change something.
        groups: Vec<Group>,
        /// Scopes that differ by name.
        scopes: Vec<ScopeChange>,
    },
    /// The cut into regions was abandoned after [`Limits::regions`] units
    /// of work: every request may have changed.
    TooManyRegions {
        /// The bound.
        limit: u64,
        /// Scopes that differ by name.
        scopes: Vec<ScopeChange>,
    },
}

impl Scoped {
    /// The groups (none when the cut was abandoned).
    pub fn groups(&self) -> &[Group] {
        match self {
            Scoped::Exact { groups, .. } => groups,
            Scoped::TooManyRegions { .. } => &[],
        }
    }
    /// The scopes that differ by name.
    pub fn scopes(&self) -> &[ScopeChange] {
        match self {
            Scoped::Exact { scopes, .. } | Scoped::TooManyRegions { scopes, .. } => scopes,
        }
    }
}

impl Report {
    /// The groups found (also when they were too long to list).
    pub fn changes(&self) -> &[Change] {
        match &self.network {
            Flows::Exact { changes } | Flows::TooManyRanges { changes, .. } => changes,
            Flows::TooComplex { .. } => &[],
        }
    }
    /// Whether some flow is decided with another verdict or by another
    /// rule, at the top level or in some region of the scopes, or a
    /// comparison could not finish (then it is assumed).
    pub fn network_changed(&self) -> bool {
        let top = matches!(self.network, Flows::TooComplex { .. }) || !self.changes().is_empty();
        top || match &self.scopes {
            None => false,
            Some(Scoped::TooManyRegions { .. }) => true,
            Some(Scoped::Exact { groups, .. }) => groups
                .iter()
                .any(|g| matches!(g.network, Flows::TooComplex { .. }) || !g.changes().is_empty()),
        }
    }
    /// Whether some group is of kind `k`, at the top level or in some
    /// region (assumed when a comparison could not finish).
    pub fn has(&self, k: Kind) -> bool {
        let top = matches!(self.network, Flows::TooComplex { .. })
            || self.changes().iter().any(|c| c.kind == k);
        top || match &self.scopes {
            None => false,
            Some(Scoped::TooManyRegions { .. }) => true,
            Some(Scoped::Exact { groups, .. }) => groups.iter().any(|g| {
                matches!(g.network, Flows::TooComplex { .. })
                    || g.changes().iter().any(|c| c.kind == k)
            }),
        }
    }
    /// Whether anything differs: flows, sections, a scope, or a region
    /// moving to another scope.
    pub fn any_change(&self) -> bool {
        self.network_changed()
            || !self.settings.is_empty()
            || self
                .scopes
                .as_ref()
                .is_some_and(|s| !s.groups().is_empty() || !s.scopes().is_empty())
    }
}

/// Bounds of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Units of work (elementary cells and rule visits) before giving up.
    pub cells: usize,
    /// Printed intervals before the report lists counts only.
    pub ranges: u64,
    /// Units of work cutting requests into regions of the scopes' patterns
    /// (one per class and per candidate scope visited) before giving up
    /// ([`Scoped::TooManyRegions`]).
    pub regions: usize,
}

impl Default for Limits {
    /// 5,000,000 units of work (about two seconds natively on the hostile
    /// pair of the bench; shared by every pair of scopes compared),
    /// 100,000 printed intervals, and 5,000,000 units of work cutting
    /// requests into regions.
    fn default() -> Limits {
        Limits {
            cells: 5_000_000,
            ranges: 100_000,
            regions: 5_000_000,
        }
    }
}

/// Compares two policies with the default [`Limits`].
pub fn diff(old: &Policy, new: &Policy) -> Report {
    diff_with(old, new, Limits::default())
}

/// Compares two policies.
pub fn diff_with(old: &Policy, new: &Policy, limits: Limits) -> Report {
    Report {
        old_name: old.name.clone(),
        new_name: new.name.clone(),
        network: regions::network(old, new, limits),
        settings: settings::compare(old, new),
        scopes: scopes::compare(old, new, limits),
    }
}
