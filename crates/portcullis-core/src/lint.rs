//! Warnings about valid policies that probably do not say what their author
//! meant: rules that can never match, allow/deny overlaps, allowlists that
//! admit nobody, catch-all allows that make the rest moot (in the top
//! level's `network` and in each scope's own), scopes that an earlier scope
//! always shadows and scopes whose paths no normalized request path can
//! equal.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::{AddrSet, Tag};
use crate::rule::{Access, PortSet, Protocol, Rule};
use crate::Policy;

/// Above this many rules the quadratic checks are skipped (and said so).
pub const MAX_LINT_RULES: usize = 1000;

/// One warning, about a rule (by index into `network.rules`) or the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// The rule's path (`network.rules[3]`) or `network`.
    pub path: String,
    /// Line of the rule (or of the document start).
    pub line: u32,
    /// What is wrong.
    pub kind: LintKind,
}

/// The kinds of warning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LintKind {
    /// Every flow the rule matches is decided earlier.
    Shadowed {
        /// The rule.
        rule: String,
        /// Earlier rules that together cover it.
        by: Vec<String>,
    },
    /// An allow and a deny rule share flows (only partial overlaps).
    Overlap {
        /// The earlier rule, which wins for the shared flows.
        first: String,
        /// Its access.
        first_access: Access,
        /// The later rule.
        second: String,
    },
    /// Default deny and no rule that allows anything.
    AdmitsNobody,
    /// An allow rule for every (Internet) address and every port: the rules
    /// after it that allow are moot.
    CatchAllAllow {
        /// The rule.
        rule: String,
        /// `*` or `Internet`.
        tag: &'static str,
    },
    /// A header that looks like a credential (`*-key`, `authorization`,
    /// `*token*`, `*secret*`) is given an inline value: it then sits in
    /// every copy of the policy (Envoy configs, manifests, repositories).
    /// `value_from` / `values_from` read it from the host instead.
    InlineCredential,
    /// Too many rules for the pairwise checks.
    Skipped {
        /// Rules in the policy.
        rules: usize,
    },
    /// Every request the scope matches, an earlier scope matches first.
    ScopeShadowed {
        /// The scope.
        scope: String,
        /// The earlier scope.
        by: String,
    },
    /// `inherit: false` on a scope that drops nothing: the top level has no
    /// section the scope would otherwise inherit (`network`, `https_only`
    /// or `hsts` it does not restate, or a non-empty list). Legal, and
    /// decided as written, but the flag then says nothing.
    InheritDropsNothing {
        /// The scope.
        scope: String,
    },
    /// None of the scope's `paths` is a path as requests are compared
    /// (dot-segments, `//`, encoded unreserved characters, `%2F`...): the
    /// scope can never match.
    ScopeNeverMatches {
        /// The scope.
        scope: String,
        /// Its first path pattern.
        pattern: String,
        /// How requests would have to spell it.
        normalized: Option<String>,
    },
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LintKind::Shadowed { rule, by } => {
                write!(f, "rule {rule:?} can never match: every flow it matches is decided earlier by ")?;
                for (i, b) in by.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{b:?}")?;
                }
                Ok(())
            }
            LintKind::Overlap {
                first,
                first_access,
                second,
            } => write!(
                f,
                "rules {first:?} and {second:?} overlap with opposite access; {first:?} ({}) wins where they meet",
                first_access.as_str()
            ),
            LintKind::AdmitsNobody => f.write_str(
                "default_access is deny and no rule allows anything: this policy admits nobody",
            ),
            LintKind::CatchAllAllow { rule, tag } => write!(
                f,
                "rule {rule:?} allows every {tag} address on every port: allow rules after it are moot"
            ),
            LintKind::InlineCredential => f.write_str(
                "this header looks like a credential and its value is inline: read it from the host with value_from / values_from",
            ),
            LintKind::Skipped { rules } => write!(
                f,
                "{rules} rules: overlap and shadowing checks skipped above {MAX_LINT_RULES}"
            ),
            LintKind::ScopeShadowed { scope, by } => write!(
                f,
                "scope {scope:?} can never apply: every request it matches, the earlier scope {by:?} matches first"
            ),
            LintKind::InheritDropsNothing { scope } => write!(
                f,
                "scope {scope:?} says \"inherit\": false but drops nothing: the top level has no section it would inherit"
            ),
            LintKind::ScopeNeverMatches {
                scope,
                pattern,
                normalized,
            } => {
                write!(f, "scope {scope:?} can never match: requests are compared after normalization, and path {pattern:?} ")?;
                match normalized {
                    Some(n) => write!(f, "would be compared as {n:?}"),
                    None => f.write_str("is ambiguous (such requests are refused with 400)"),
                }
            }
        }
    }
}

fn ports_cover(a: &PortSet, b: &PortSet) -> bool {
    b.0.iter()
        .all(|&(lo, hi)| a.0.iter().any(|&(l, h)| l <= lo && hi <= h))
}

fn ports_meet(a: &PortSet, b: &PortSet) -> bool {
    a.0.iter()
        .any(|&(l, h)| b.0.iter().any(|&(lo, hi)| l <= hi && lo <= h))
}

fn proto_covers(a: Protocol, b: Protocol) -> bool {
    a == Protocol::Any || a == b
}

fn proto_meets(a: Protocol, b: Protocol) -> bool {
    a == Protocol::Any || b == Protocol::Any || a == b
}

/// Whether `e`'s non-source fields cover `r`'s.
fn rest_covers(e: &Rule, r: &Rule) -> bool {
    proto_covers(e.protocol, r.protocol)
        && ports_cover(&e.source_ports, &r.source_ports)
        && ports_cover(&e.destination_ports, &r.destination_ports)
        && e.destination.covers(&r.destination)
        && headers_cover(e, r)
}

/// Whether every request `r`'s `headers` admit, `e`'s admit too: each
/// header `e` names, `r` names with a subset of its values. A rule with
/// headers never covers one without (so a rule with headers shadowed by
/// one without is flagged, and never the other way round).
fn headers_cover(e: &Rule, r: &Rule) -> bool {
    e.headers.iter().all(|m| {
        r.headers
            .iter()
            .find(|x| x.name == m.name)
            .is_some_and(|x| x.values.iter().all(|v| m.values.contains(v)))
    })
}

fn meets(a: &Rule, b: &Rule) -> bool {
    proto_meets(a.protocol, b.protocol)
        && ports_meet(&a.source_ports, &b.source_ports)
        && ports_meet(&a.destination_ports, &b.destination_ports)
        && a.destination.intersects(&b.destination)
        && a.source.intersects(&b.source)
        && a.headers.iter().all(|m| {
            b.headers
                .iter()
                .find(|x| x.name == m.name)
                .is_none_or(|x| x.values.iter().any(|v| m.values.contains(v)))
        })
}

/// How a path pattern's base is compared: `None` if it never can be
/// (ambiguous), else its normalized form.
fn normalized(base: &str) -> Option<String> {
    crate::decide::scope_path(base.as_bytes())
        .ok()
        .map(|p| String::from_utf8_lossy(&p).into_owned())
}

impl Policy {
    /// Warnings about the network rules (the top level's and each scope's
    /// own) and the scopes.
    pub fn lints(&self) -> Vec<Lint> {
        let mut out: Vec<Lint> = self
            .inline_credentials
            .iter()
            .map(|(path, line)| Lint {
                path: path.clone(),
                line: *line,
                kind: LintKind::InlineCredential,
            })
            .collect();
        out.extend(self.network_lints());
        for (i, s) in self.scopes.iter().enumerate() {
            let path = alloc::format!("scopes[{i}]");
            if s.restated.network {
                for mut l in s.policy.network_lints() {
                    l.path = alloc::format!("{path}.{}", l.path);
                    out.push(l);
                }
            }
            if !s.inherit && !self.inheritable_by(s) {
                out.push(Lint {
                    path: alloc::format!("{path}.inherit"),
                    line: s.line,
                    kind: LintKind::InheritDropsNothing {
                        scope: s.name.clone(),
                    },
                });
            }
            if let Some(e) = self
                .scopes
                .get(..i)
                .and_then(|e| e.iter().find(|e| s.shadowed_by(e)))
            {
                out.push(Lint {
                    path,
                    line: s.line,
                    kind: LintKind::ScopeShadowed {
                        scope: s.name.clone(),
                        by: e.name.clone(),
                    },
                });
                continue;
            }
            let never = |p: &crate::policy::PathPattern| {
                let base = p.base();
                // `/*` has an empty base and matches every path.
                !base.is_empty() && normalized(base).as_deref() != Some(base)
            };
            if !s.paths.is_empty() && s.paths.iter().all(never) {
                let first = s.paths.first().map(|p| p.base()).unwrap_or_default();
                out.push(Lint {
                    path: alloc::format!("{path}.match.paths"),
                    line: s.line,
                    kind: LintKind::ScopeNeverMatches {
                        scope: s.name.clone(),
                        pattern: s
                            .paths
                            .first()
                            .map(|p| alloc::format!("{p}"))
                            .unwrap_or_default(),
                        normalized: normalized(first),
                    },
                });
            }
        }
        out
    }

    /// Warnings about this policy's own `network` rules.
    fn network_lints(&self) -> Vec<Lint> {
        let mut out = Vec::new();
        let Some(net) = &self.network else {
            return out;
        };
        let rules = &net.rules;
        let lint = |r: &Rule, kind| Lint {
            path: r.path.clone(),
            line: r.line,
            kind,
        };
        if net.default_access == Access::Deny && rules.iter().all(|r| r.access == Access::Deny) {
            out.push(Lint {
                path: String::from("network"),
                line: 1,
                kind: LintKind::AdmitsNobody,
            });
        }
        let any = Tag::Any.set();
        let internet = Tag::Internet.set();
        for r in rules {
            if r.access == Access::Allow && r.source_only() {
                let tag = if r.source.covers(&any) {
                    Some("*")
                } else if r.source.covers(&internet) {
                    Some("Internet")
                } else {
                    None
                };
                if let Some(tag) = tag {
                    let later_allows = rules
                        .iter()
                        .any(|x| x.priority > r.priority && x.access == Access::Allow);
                    if later_allows {
                        out.push(lint(
                            r,
                            LintKind::CatchAllAllow {
                                rule: r.name.clone(),
                                tag,
                            },
                        ));
                    }
                }
            }
        }
        if rules.len() > MAX_LINT_RULES {
            out.push(Lint {
                path: String::from("network.rules"),
                line: 1,
                kind: LintKind::Skipped { rules: rules.len() },
            });
            return out;
        }
        for (i, r) in rules.iter().enumerate() {
            let earlier = rules.get(..i).unwrap_or(&[]);
            // Shadowed: the union of the sources of earlier rules whose other
            // fields cover this rule's covers its source.
            let mut union = AddrSet::default();
            let mut by = Vec::new();
            for e in earlier {
                if rest_covers(e, r) && e.source.intersects(&r.source) {
                    union.extend(&e.source);
                    by.push(e.name.clone());
                }
            }
            union.normalize();
            if !by.is_empty() && union.covers(&r.source) {
                out.push(lint(
                    r,
                    LintKind::Shadowed {
                        rule: r.name.clone(),
                        by,
                    },
                ));
                continue;
            }
            // Partial overlaps with opposite access (catch-alls excluded:
            // a final deny-all overlapping every allow is the point).
            if r.source.is_any() || r.source.covers(&internet) {
                continue;
            }
            for e in earlier {
                if e.access != r.access
                    && !e.source.is_any()
                    && !e.source.covers(&internet)
                    && meets(e, r)
                {
                    out.push(lint(
                        r,
                        LintKind::Overlap {
                            first: e.name.clone(),
                            first_access: e.access,
                            second: r.name.clone(),
                        },
                    ));
                }
            }
        }
        out
    }
}
