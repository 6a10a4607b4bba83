//! A policy's network rules as App Service access restrictions: the
//! `siteConfig` shape that ARM templates, `az resource update` and
//! `az webapp config access-restriction show` use, and that
//! [`super::import`] reads back.
//!
//! | policy-v1 | App Service |
//! |---|---|
//! | a network rule | one rule, same name, priority and action; more than 8 address ranges are split into several rules of the same priority and action (`name (2/3)`), which App Service evaluates in list order: the same decisions |
//! | `source` | `ipAddress`: CIDRs (groups, tags and ranges expanded; `*` is `Any`) |
//! | rule `headers` `x-azure-fdid`, `x-fd-healthprobe`, `x-forwarded-host` | `headers` |
//! | `default_access` | `ipSecurityRestrictionsDefaultAction` |
//! | no `network` | no rules, default `Allow` |
//! | a scope whose only match is the hosts `*.scm.azurewebsites.net` | the scm site's rules (`scmIpSecurityRestrictionsUseMain: false`); without it, or without a `network` in it, `scmIpSecurityRestrictionsUseMain: true` |
//!
//! Inexact, so refused unless `approximate` (then each is listed): a rule's
//! `source_ports`, `destination`, `destination_ports` or `protocol`; other
//! header names; a `client_ip` other than `peer`; a `network.deny` other
//! than 403 with the default body; `mode: report`; the sections access
//! restrictions do not hold (`https_only`, `require_headers`, header ops,
//! `hsts`); any other scope. Always refused: more than
//! [`super::MAX_RULES`] rules in a list, and an `x-forwarded-host` value
//! holding `*` (App Service would read it as a wildcard).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use portcullis_core::addr::AddrSet;
use portcullis_core::json::{self, Kind, Value};
use portcullis_core::rule::{Access, Protocol};
use portcullis_core::Policy;

use super::{MAX_RULES, SCM_HOSTS};
use crate::out::J;

/// App Service's limit on address ranges in one rule's `ipAddress`.
pub const MAX_ADDRESSES: usize = 8;

/// App Service's limit on values of one header in one rule.
pub const MAX_HEADER_VALUES: usize = 8;

/// The headers a rule may carry into App Service.
pub const EXPORTED_HEADERS: [&str; 3] = ["x-azure-fdid", "x-fd-healthprobe", "x-forwarded-host"];

/// What became of one part of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteKind {
    /// Left out or widened: App Service decides otherwise here. Only with
    /// `approximate`; without it the same note is [`NoteKind::Refused`].
    Approximated,
    /// The export is refused because of it.
    Refused,
}

impl NoteKind {
    /// The word used in the listing.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Approximated => "approximated",
            NoteKind::Refused => "refused",
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for NoteKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One thing App Service cannot express exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Note {
    /// Line of the policy part (0: the document as a whole).
    pub line: u32,
    /// Its JSON path (`network.rules[2]`, `hsts`).
    pub path: String,
    /// Refused or approximated.
    pub kind: NoteKind,
    /// What App Service would do differently.
    pub reason: String,
}

/// The result of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Exported {
    /// The App Service configuration (pretty JSON), `None` when refused.
    pub config: Option<String>,
    /// Everything inexact, in document order.
    pub notes: Vec<Note>,
}

impl fmt::Display for Exported {
    /// `line: path: kind: reason` lines, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for n in &self.notes {
            writeln!(
                f,
                "{}: {}: {}: {}",
                n.line,
                n.path,
                n.kind.as_str(),
                n.reason
            )?;
        }
        let refused = self
            .notes
            .iter()
            .filter(|n| n.kind == NoteKind::Refused)
            .count();
        if self.config.is_some() {
            write!(f, "exported; {} approximated", self.notes.len())
        } else {
            write!(f, "refused: {refused} refused (App Service cannot express them exactly; --approximate lists what would change)")
        }
    }
}

struct Ctx {
    approximate: bool,
    notes: Vec<Note>,
}

impl Ctx {
    /// An inexact part: approximated or refused.
    fn inexact(&mut self, line: u32, path: &str, reason: String) {
        let kind = if self.approximate {
            NoteKind::Approximated
        } else {
            NoteKind::Refused
        };
        self.notes.push(Note {
            line,
            path: path.to_string(),
            kind,
            reason,
        });
    }
    fn refuse(&mut self, line: u32, path: &str, reason: String) {
        self.notes.push(Note {
            line,
            path: path.to_string(),
            kind: NoteKind::Refused,
            reason,
        });
    }
}

/// Exports `text`, a policy-v1 document, as App Service access
/// restrictions. `value_from` variables are taken as set (the network part
/// never reads them).
pub fn export(text: &str, approximate: bool) -> Result<Exported, String> {
    let policy = Policy::parse_with_env(text.as_bytes(), &crate::EveryVarSet)
        .map_err(|p| format!("not a valid policy: {p}"))?;
    let root = json::parse(text).map_err(|e| format!("not JSON: {}", e.message))?;
    let mut cx = Ctx {
        approximate,
        notes: Vec::new(),
    };
    let line_of =
        |v: Option<&Value>| -> u32 { v.map_or(0, |v| json::line_col(text, v.span.start).0) };
    // Whole-policy settings.
    if policy.client_ip.from != portcullis_core::policy::ClientFrom::Peer {
        cx.inexact(line_of(root.get("client_ip")), "client_ip", format!("client_ip from {}: App Service matches the address of the connection it sees (the peer), so the rules are exported as matching that address", policy.client_ip.from.as_str()));
    }
    if policy.mode == portcullis_core::policy::Mode::Report {
        cx.inexact(
            line_of(root.get("mode")),
            "mode",
            "mode report: App Service always enforces its access restrictions".to_string(),
        );
    }
    for (key, what) in [
        ("https_only", "App Service's httpsOnly setting"),
        ("require_headers", "the function's own key check or APIM"),
        ("request_headers", "APIM or the application"),
        ("response_headers", "APIM or the application"),
        ("hsts", "the application"),
    ] {
        if let Some(v) = root.get(key) {
            let empty = matches!(&v.kind, Kind::Array(a) if a.is_empty());
            if !empty {
                cx.inexact(
                    line_of(Some(v)),
                    key,
                    format!("{key} is not part of access restrictions (left out; see {what})"),
                );
            }
        }
    }
    let mut doc = J::obj();
    let main = side(&mut cx, text, &policy, root.get("network"), "network");
    let main_count = main.0.len();
    doc.push("ipSecurityRestrictions", J::Arr(main.0));
    doc.push("ipSecurityRestrictionsDefaultAction", J::s(main.1));
    // Scopes: the scm one, or none.
    let mut scm: Option<(Vec<J>, &'static str)> = None;
    if let Some(Value {
        kind: Kind::Array(scopes),
        ..
    }) = root.get("scopes")
    {
        for (i, s) in scopes.iter().enumerate() {
            let path = format!("scopes[{i}]");
            let is_scm = match s.get("match").map(|m| &m.kind) {
                Some(Kind::Object(ms)) => {
                    ms.len() == 1
                        && matches!(s.get("match").and_then(|m| m.get("hosts")).map(|h| &h.kind),
                            Some(Kind::Array(h)) if h.len() == 1
                                && h.first().and_then(Value::as_str).is_some_and(|x| x.eq_ignore_ascii_case(SCM_HOSTS)))
                }
                _ => false,
            };
            let others: Vec<&str> = match &s.kind {
                Kind::Object(ms) => ms
                    .iter()
                    .map(|m| m.key.as_str())
                    .filter(|k| !matches!(*k, "name" | "match" | "network" | "inherit"))
                    .collect(),
                _ => Vec::new(),
            };
            if !is_scm || scm.is_some() {
                cx.inexact(line_of(Some(s)), &path, "a scope other than one for the scm host (match: hosts [\"*.scm.azurewebsites.net\"]): App Service has one rule list per site (left out)".to_string());
                continue;
            }
            if !others.is_empty() {
                cx.inexact(
                    line_of(Some(s)),
                    &path,
                    format!(
                        "the scm scope's {} are not part of access restrictions (left out)",
                        others.join(", ")
                    ),
                );
            }
            let Some(scope) = policy.scopes.get(i) else {
                continue;
            };
            match s.get("network") {
                Some(net) => {
                    let p = format!("{path}.network");
                    scm = Some(side(&mut cx, text, &scope.policy, Some(net), &p));
                }
                // Standing alone without a network: no address filtering.
                None if !scope.inherit => scm = Some((Vec::new(), "Allow")),
                // It inherits the top level's network: the main rules.
                None => {}
            }
        }
    }
    let scm_count = scm.as_ref().map_or(0, |s| s.0.len());
    match scm {
        Some((rules, default)) => {
            doc.push("scmIpSecurityRestrictions", J::Arr(rules));
            doc.push("scmIpSecurityRestrictionsDefaultAction", J::s(default));
            doc.push("scmIpSecurityRestrictionsUseMain", J::Bool(false));
        }
        None => doc.push("scmIpSecurityRestrictionsUseMain", J::Bool(true)),
    }
    for (count, path) in [(main_count, "network"), (scm_count, "scopes")] {
        if count > MAX_RULES {
            cx.refuse(
                0,
                path,
                format!(
                    "{count} App Service rules; App Service allows at most {MAX_RULES} per site"
                ),
            );
        }
    }
    cx.notes.sort_by_key(|n| n.line);
    let refused = cx.notes.iter().any(|n| n.kind == NoteKind::Refused);
    Ok(Exported {
        config: (!refused).then(|| doc.pretty()),
        notes: cx.notes,
    })
}

/// One rule list and its default action.
fn side(
    cx: &mut Ctx,
    text: &str,
    policy: &Policy,
    json_net: Option<&Value>,
    path: &str,
) -> (Vec<J>, &'static str) {
    let Some(net) = &policy.network else {
        return (Vec::new(), "Allow");
    };
    let line_of = |v: &Value| json::line_col(text, v.span.start).0;
    if net.deny_status != 403 || net.deny_body != "Forbidden\n" {
        let line = json_net.and_then(|n| n.get("deny")).map_or(0, line_of);
        cx.inexact(
            line,
            &format!("{path}.deny"),
            format!(
                "App Service denies with its own 403 page, not status {} and this body",
                net.deny_status
            ),
        );
    }
    let json_rules: Vec<&Value> = match json_net.and_then(|n| n.get("rules")).map(|r| &r.kind) {
        Some(Kind::Array(a)) => a.iter().collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for r in &net.rules {
        let index = r
            .path
            .rsplit_once('[')
            .and_then(|(_, i)| i.trim_end_matches(']').parse::<usize>().ok())
            .unwrap_or(0);
        let rp = format!("{path}.rules[{index}]");
        let raw = json_rules.get(index).copied();
        let line = r.line;
        for (cond, field) in [
            (!r.source_ports.is_any(), "source_ports"),
            (!r.destination.is_any(), "destination"),
            (!r.destination_ports.is_any(), "destination_ports"),
            (r.protocol != Protocol::Any, "protocol"),
        ] {
            if cond {
                cx.inexact(line, &format!("{rp}.{field}"), format!("App Service matches the client address and headers only: the rule {:?} is exported without its {field} condition, so it {} more requests", r.name, if r.access == Access::Allow { "allows" } else { "denies" }));
            }
        }
        // Headers, from the document (name -> values).
        let mut headers: Vec<(String, Vec<String>)> = Vec::new();
        if let Some(Value {
            kind: Kind::Object(hs),
            ..
        }) = raw.and_then(|r| r.get("headers"))
        {
            for h in hs {
                let name = h.key.to_ascii_lowercase();
                let values: Vec<String> = match &h.value.kind {
                    Kind::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => Vec::new(),
                };
                let hp = format!("{rp}.headers.{}", h.key);
                if !EXPORTED_HEADERS.contains(&name.as_str()) {
                    cx.inexact(line, &hp, format!("App Service tests only the headers {}: the rule {:?} is exported without its {} condition", EXPORTED_HEADERS.join(", "), r.name, h.key));
                    continue;
                }
                if values.len() > MAX_HEADER_VALUES {
                    cx.refuse(
                        line,
                        &hp,
                        format!(
                            "{} values; App Service allows at most {MAX_HEADER_VALUES}",
                            values.len()
                        ),
                    );
                    continue;
                }
                if name == "x-forwarded-host" && values.iter().any(|v| v.contains('*')) {
                    cx.refuse(line, &hp, "a value holding `*`: App Service would read it as a wildcard, the policy compares it exactly".to_string());
                    continue;
                }
                headers.push((name, values));
            }
        }
        let cidrs = cidrs(&r.source);
        let parts: Vec<&[String]> = if cidrs.is_empty() {
            alloc::vec![&[][..]]
        } else {
            cidrs.chunks(MAX_ADDRESSES).collect()
        };
        let n = parts.len();
        for (k, chunk) in parts.into_iter().enumerate() {
            let name = if n == 1 {
                r.name.clone()
            } else {
                format!("{} ({}/{n})", r.name, k + 1)
            };
            let ip = if r.source.is_any() {
                "Any".to_string()
            } else {
                chunk.join(",")
            };
            let mut rule = J::obj()
                .with("ipAddress", J::Str(ip))
                .with(
                    "action",
                    J::s(if r.access == Access::Allow {
                        "Allow"
                    } else {
                        "Deny"
                    }),
                )
                .with("tag", J::s("Default"))
                .with("priority", J::Int(i64::from(r.priority)))
                .with("name", J::Str(name));
            if !headers.is_empty() {
                let mut h = J::obj();
                for (k, v) in &headers {
                    h.push(k, J::strs(v.iter().map(String::as_str)));
                }
                rule.push("headers", h);
            }
            rule.push(
                "description",
                J::Str(format!(
                    "portcullis {} {:?} (priority {})",
                    r.path, r.name, r.priority
                )),
            );
            out.push(rule);
        }
    }
    let default = if net.default_access == Access::Allow {
        "Allow"
    } else {
        "Deny"
    };
    (out, default)
}

/// The fewest CIDRs covering the set, IPv4 first; empty for the whole of
/// both families (`Any`).
pub fn cidrs(set: &AddrSet) -> Vec<String> {
    if set.is_any() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for &(lo, hi) in &set.v4 {
        split(u128::from(lo), u128::from(hi), 32, &mut |a, len| {
            let a = u32::try_from(a).unwrap_or(0);
            out.push(format!("{}/{len}", core::net::Ipv4Addr::from(a)));
        });
    }
    for &(lo, hi) in &set.v6 {
        split(lo, hi, 128, &mut |a, len| {
            out.push(format!("{}/{len}", core::net::Ipv6Addr::from(a)));
        });
    }
    out
}

/// Cuts the inclusive interval `lo..=hi` of a `bits`-bit space into aligned
/// prefixes, calling `emit(network, length)` for each, lowest first.
fn split(mut lo: u128, hi: u128, bits: u32, emit: &mut dyn FnMut(u128, u32)) {
    loop {
        // The largest block starting at lo that stays within hi.
        let mut size_bits = if lo == 0 {
            bits
        } else {
            lo.trailing_zeros().min(bits)
        };
        while size_bits > 0 {
            let span = if size_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            if lo.checked_add(span).is_some_and(|end| end <= hi) {
                break;
            }
            size_bits -= 1;
        }
        emit(lo, bits - size_bits);
        let span = if size_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << size_bits) - 1
        };
        match lo.checked_add(span) {
            Some(end) if end < hi => lo = end + 1,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(specs: &[&str]) -> AddrSet {
        let mut s = AddrSet::default();
        for x in specs {
            portcullis_core::addr::parse_literal_into(x, &mut s).unwrap();
        }
        s.normalize();
        s
    }

    #[test]
    fn ranges_become_the_fewest_cidrs() {
        assert_eq!(
            cidrs(&set(&["10.0.0.5-10.0.0.20"])),
            [
                "10.0.0.5/32",
                "10.0.0.6/31",
                "10.0.0.8/29",
                "10.0.0.16/30",
                "10.0.0.20/32"
            ]
        );
        assert_eq!(cidrs(&set(&["0.0.0.0/0"])), ["0.0.0.0/0"]);
        assert_eq!(cidrs(&set(&["::/0"])), ["::/0"]);
        assert_eq!(
            cidrs(&set(&["255.255.255.255", "2001:db8::/127"])),
            ["255.255.255.255/32", "2001:db8::/127"]
        );
        assert!(cidrs(&AddrSet::any()).is_empty());
    }

    #[test]
    fn cidrs_cover_exactly_the_set() {
        let s = set(&[
            "10.0.0.3-10.0.1.7",
            "192.168.0.0/24",
            "2001:db8::ffff-2001:db8::1:2",
        ]);
        let back = set(&cidrs(&s).iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(back, s);
    }
}
