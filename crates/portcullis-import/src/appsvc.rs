//! Azure App Service access restrictions (JSON) into policy-v1, and back
//! ([`export`]).
//!
//! Shapes read (detected from the document):
//! - the output of `az webapp config access-restriction show`
//!   (`ipSecurityRestrictions`, `scmIpSecurityRestrictions`,
//!   `scmIpSecurityRestrictionsUseMain` at the top, the implicit last rule
//!   listed);
//! - the site configuration as ARM and the REST API write it: a `siteConfig`
//!   object, a `Microsoft.Web/sites/config` resource (`properties`), a
//!   `Microsoft.Web/sites` resource (`properties.siteConfig`), or an ARM
//!   template holding one site (or one `sites/config` resource), with
//!   `ipSecurityRestrictionsDefaultAction` and its `scm` twin.
//!
//! | App Service | policy-v1 |
//! |---|---|
//! | a rule of `ipSecurityRestrictions` | a network rule, same name and access; priorities sorted ascending, ties in list order, renumbered into 100..4096 (reported) |
//! | `ipAddress` CIDR, address or comma list | `source` (host bits are cleared, as App Service masks them) |
//! | `ipAddress: Any` | `source: ["*"]` |
//! | `tag: ServiceTag` | an address group per tag, from the `--service-tags` snapshot |
//! | `headers` `x-azure-fdid`, `x-fd-healthprobe`, exact `x-forwarded-host` | rule `headers` |
//! | `headers` `x-forwarded-for` | `client_ip: x-forwarded-for` (trusted proxies: the rule's addresses) and the ranges as the rule's `source`; inexact, reported |
//! | the implicit last rule (`Any`, priority 2147483647) or `ipSecurityRestrictionsDefaultAction` | `default_access` |
//! | no rules at all | `default_access: allow` |
//! | `scmIpSecurityRestrictionsUseMain: true` | nothing: the top level applies to the scm host too |
//! | the scm site's own rules | a scope `scm` for the hosts `*.scm.azurewebsites.net` with its own `network` |
//!
//! Reported: subnets (`vnetSubnetResourceId`), `tag: XffProxy`, unknown
//! service tags, `*.` wildcards in `x-forwarded-host` (App Service matches
//! them as exactly one label; policy-v1 compares values exactly), and any
//! other header (unsupported in an allow rule, where leaving it out only
//! denies more; an error in a deny rule, where it would allow what App
//! Service denies).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use portcullis_core::addr::{parse_literal, AddrProblem};
use portcullis_core::json::{self, Kind, Value};

use crate::lines::Lines;
use crate::out::J;
use crate::{finish, ItemKind, Options, Outcome, Report};

pub mod export;

/// The priority App Service gives its implicit last rule.
pub const IMPLICIT_PRIORITY: u64 = 2_147_483_647;

/// The hosts of the scm (Kudu) site, the scope the scm rules become.
pub const SCM_HOSTS: &str = "*.scm.azurewebsites.net";

/// The name of the scope the scm rules become.
pub const SCM_SCOPE: &str = "scm";

/// App Service's limit on rules per list.
pub const MAX_RULES: usize = 512;

/// The headers App Service's access restrictions can test.
pub const HEADERS: [&str; 4] = [
    "x-forwarded-host",
    "x-forwarded-for",
    "x-azure-fdid",
    "x-fd-healthprobe",
];

const KEYS: [&str; 5] = [
    "ipSecurityRestrictions",
    "ipSecurityRestrictionsDefaultAction",
    "scmIpSecurityRestrictions",
    "scmIpSecurityRestrictionsDefaultAction",
    "scmIpSecurityRestrictionsUseMain",
];

const KNOWN: &[&str] = &[
    "ipAddress",
    "action",
    "tag",
    "priority",
    "name",
    "description",
    "headers",
    "vnetSubnetResourceId",
    "subnetMask",
    "vnetTrafficTag",
    "subnetTrafficTag",
];

/// Imports the access restrictions of one App Service site.
pub fn import(text: &str, opts: &Options<'_>) -> Outcome {
    if let Some(too_big) = Outcome::too_big(text) {
        return too_big;
    }
    let lines = Lines::new(text);
    let root = match json::parse(text) {
        Ok(v) => v,
        Err(e) => return Outcome::fatal(lines.at(e.offset), "json", e.message.to_string()),
    };
    let config = match find_config(&root) {
        Ok(c) => c,
        Err(msg) => return Outcome::fatal(lines.at(root.span.start), "json", msg),
    };
    let mut m = Mapper {
        lines: &lines,
        opts,
        report: Report::default(),
        origins: Vec::new(),
        groups: BTreeMap::new(),
        provenance: BTreeMap::new(),
        xff_proxies: Vec::new(),
    };
    let main = m.side(config, "", "network");
    let use_main = config.get("scmIpSecurityRestrictionsUseMain");
    let scm = match use_main.map(|v| &v.kind) {
        Some(Kind::Bool(true)) => {
            m.report.add(
                m.pos(use_main.unwrap_or(config)),
                ItemKind::Mapped,
                "scmIpSecurityRestrictionsUseMain",
                format!("the scm site uses the main site's rules: no scope, the top level applies to {SCM_HOSTS} too"),
            );
            if let Some(Value {
                kind: Kind::Array(a),
                ..
            }) = config.get("scmIpSecurityRestrictions")
            {
                for r in a {
                    let what = r.get("name").and_then(Value::as_str).unwrap_or("scm rule");
                    m.report.add(m.pos(r), ItemKind::Skipped, what, "App Service ignores the scm site's own rules while scmIpSecurityRestrictionsUseMain is true".to_string());
                }
            }
            None
        }
        Some(Kind::Bool(false)) | Some(Kind::Null) | None => {
            Some(m.side(config, "scm", "scopes[0].network"))
        }
        Some(_) => {
            let pos = m.pos(use_main.unwrap_or(config));
            m.report.add(
                pos,
                ItemKind::Error,
                "scmIpSecurityRestrictionsUseMain",
                "must be true or false".to_string(),
            );
            None
        }
    };
    m.finish(main, scm)
}

/// The object holding the restrictions, whatever the document's shape.
fn find_config(root: &Value) -> Result<&Value, String> {
    let holds = |v: &Value| KEYS.iter().any(|k| v.get(k).is_some());
    if !matches!(root.kind, Kind::Object(_)) {
        return Err("not App Service access restrictions: expected a JSON object".to_string());
    }
    if let Some(Value {
        kind: Kind::Array(res),
        ..
    }) = root.get("resources")
    {
        let mut found: Vec<&Value> = Vec::new();
        let mut stack: Vec<&Value> = res.iter().collect();
        while let Some(r) = stack.pop() {
            let ty = r
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let props = r.get("properties");
            if ty.ends_with("sites") || ty.ends_with("sites/slots") {
                if let Some(sc) = props.and_then(|p| p.get("siteConfig")).filter(|v| holds(v)) {
                    found.push(sc);
                }
            } else if ty.ends_with("sites/config") || ty.ends_with("slots/config") || ty == "config"
            {
                if let Some(p) = props.filter(|v| holds(v)) {
                    found.push(p);
                }
            }
            if let Some(Value {
                kind: Kind::Array(children),
                ..
            }) = r.get("resources")
            {
                stack.extend(children.iter());
            }
        }
        return match found.len() {
            1 => found.pop().ok_or_else(String::new),
            0 => Err("the template has no Microsoft.Web/sites resource with access restrictions (siteConfig.ipSecurityRestrictions) and no sites/config resource holding them".to_string()),
            n => Err(format!("the template sets access restrictions in {n} places (sites, slots or config resources); import one site at a time")),
        };
    }
    let candidates = [
        Some(root),
        root.get("siteConfig"),
        root.get("properties"),
        root.get("properties").and_then(|p| p.get("siteConfig")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|v| holds(v))
        .ok_or_else(|| "not App Service access restrictions: expected `az webapp config access-restriction show` output, a siteConfig object, a sites/config resource or an ARM template (ipSecurityRestrictions)".to_string())
}

struct Mapper<'a, 't> {
    lines: &'a Lines<'t>,
    opts: &'a Options<'a>,
    report: Report,
    origins: Vec<(String, (u32, u32), String)>,
    groups: BTreeMap<String, Vec<String>>,
    provenance: BTreeMap<String, J>,
    /// The addresses of rules that test `x-forwarded-for`: the proxies.
    xff_proxies: Vec<String>,
}

/// One side (the main site or the scm site) as read.
struct Side {
    rules: Vec<SideRule>,
    default_access: &'static str,
    /// Where the JSON path of the side's rules starts (`network`).
    path: &'static str,
}

/// One mapped rule, before its priority is known.
struct SideRule {
    /// App Service's priority.
    priority: u64,
    /// Its place in the list (ties keep list order).
    index: usize,
    rule: J,
    pos: (u32, u32),
    name: String,
    access: &'static str,
    /// Said in the report beside the mapping (a renamed duplicate).
    note: String,
}

/// One source address entry.
enum Addr {
    Spec(String),
    No(String),
}

impl Mapper<'_, '_> {
    fn pos(&self, v: &Value) -> (u32, u32) {
        self.lines.at(v.span.start)
    }

    /// Reads `{prefix}IpSecurityRestrictions` and the default action.
    fn side(&mut self, config: &Value, prefix: &str, path: &'static str) -> Side {
        let (list_key, default_key) = if prefix.is_empty() {
            (
                "ipSecurityRestrictions".to_string(),
                "ipSecurityRestrictionsDefaultAction".to_string(),
            )
        } else {
            (
                format!("{prefix}IpSecurityRestrictions"),
                format!("{prefix}IpSecurityRestrictionsDefaultAction"),
            )
        };
        let site = if prefix.is_empty() {
            "the main site"
        } else {
            "the scm site"
        };
        let mut side = Side {
            rules: Vec::new(),
            default_access: "allow",
            path,
        };
        let mut implicit: Option<(&'static str, (u32, u32))> = None;
        let mut seen_any = false;
        let list = config.get(&list_key);
        match list.map(|v| &v.kind) {
            Some(Kind::Array(a)) => {
                if a.len() > MAX_RULES + 1 {
                    let pos = self.pos(list.unwrap_or(config));
                    self.report.add(
                        pos,
                        ItemKind::Error,
                        &list_key,
                        format!("{} rules; App Service allows at most {MAX_RULES}", a.len()),
                    );
                    return side;
                }
                for (i, r) in a.iter().enumerate() {
                    match self.implicit(r) {
                        Some(access) => {
                            let pos = self.pos(r);
                            implicit = Some((access, pos));
                        }
                        None => {
                            seen_any = true;
                            self.rule(r, i, &mut side, site);
                        }
                    }
                }
            }
            Some(Kind::Null) | None => {}
            Some(_) => {
                let pos = self.pos(list.unwrap_or(config));
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &list_key,
                    "must be a list of rules".to_string(),
                );
            }
        }
        let explicit = config.get(&default_key);
        let explicit_word = match explicit.map(|v| (&v.kind, v)) {
            None | Some((Kind::Null, _)) => None,
            Some((Kind::String(s), v)) if s.eq_ignore_ascii_case("allow") => {
                Some(("allow", self.pos(v)))
            }
            Some((Kind::String(s), v)) if s.eq_ignore_ascii_case("deny") => {
                Some(("deny", self.pos(v)))
            }
            Some((_, v)) => {
                let pos = self.pos(v);
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &default_key,
                    "must be Allow or Deny".to_string(),
                );
                None
            }
        };
        let (access, pos, why) = match (explicit_word, implicit) {
            (Some((a, p)), Some((b, q))) if a != b => {
                self.report.add(q, ItemKind::Error, &default_key, format!("the implicit last rule says {b} but {default_key} (at {}:{}) says {a}", p.0, p.1));
                (a, p, String::new())
            }
            (Some((a, p)), _) => (a, p, format!("{default_key}: default_access {a}")),
            (None, Some((b, q))) => (
                b,
                q,
                format!(
                    "the implicit last rule (Any, priority {IMPLICIT_PRIORITY}): default_access {b}, not a rule"
                ),
            ),
            (None, None) if seen_any => (
                "deny",
                list.map_or((1, 1), |l| self.pos(l)),
                format!("{site} has rules and no default action: App Service denies what no rule allows (default_access deny)"),
            ),
            (None, None) => (
                "allow",
                list.map_or((1, 1), |l| self.pos(l)),
                format!("{site} has no rules: App Service allows every client (default_access allow)"),
            ),
        };
        if !why.is_empty() {
            self.report.add(pos, ItemKind::Mapped, &default_key, why);
        }
        side.default_access = access;
        side
    }

    /// `Some(access)` when `r` is App Service's implicit last rule.
    fn implicit(&self, r: &Value) -> Option<&'static str> {
        let prio = r.get("priority").and_then(Value::as_u64)?;
        let any = r
            .get("ipAddress")
            .and_then(Value::as_str)
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("any"));
        let plain = r.get("headers").is_none_or(|h| match &h.kind {
            Kind::Null => true,
            Kind::Object(m) => m.is_empty(),
            _ => false,
        }) && r
            .get("vnetSubnetResourceId")
            .is_none_or(|v| matches!(v.kind, Kind::Null));
        if prio != IMPLICIT_PRIORITY || !any || !plain {
            return None;
        }
        match r.get("action").and_then(Value::as_str) {
            Some(a) if a.eq_ignore_ascii_case("allow") => Some("allow"),
            Some(a) if a.eq_ignore_ascii_case("deny") => Some("deny"),
            _ => None,
        }
    }

    fn rule(&mut self, r: &Value, index: usize, side: &mut Side, site: &str) {
        let pos = self.pos(r);
        let Kind::Object(members) = &r.kind else {
            self.report.add(
                pos,
                ItemKind::Error,
                "rule",
                "a rule must be an object".to_string(),
            );
            return;
        };
        let name = match r.get("name").and_then(Value::as_str).map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("rule-{}", index + 1),
        };
        for mm in members {
            if !KNOWN.contains(&mm.key.as_str()) && !matches!(mm.value.kind, Kind::Null) {
                let what = format!("{name}.{}", mm.key);
                self.report.add(
                    self.lines.at(mm.key_span.start),
                    ItemKind::Unsupported,
                    &what,
                    "a field App Service access restrictions do not have; ignored".to_string(),
                );
            }
        }
        let word = |k: &str| r.get(k).and_then(Value::as_str).map(str::trim);
        let access = match word("action") {
            Some(a) if a.eq_ignore_ascii_case("allow") => "allow",
            Some(a) if a.eq_ignore_ascii_case("deny") => "deny",
            _ => {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &name,
                    "action must be Allow or Deny".to_string(),
                );
                return;
            }
        };
        let deny = access == "deny";
        let priority = match r.get("priority").map(|p| (&p.kind, p)) {
            Some((Kind::Number(_), p)) => p.as_u64(),
            Some((Kind::String(s), _)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(priority) = priority.filter(|p| *p <= IMPLICIT_PRIORITY) else {
            self.report.add(
                pos,
                ItemKind::Error,
                &name,
                format!("priority must be a whole number from 0 to {IMPLICIT_PRIORITY}"),
            );
            return;
        };
        // Where the rule's verdict would go wrong if a piece were left out.
        let mut problems: Vec<String> = Vec::new();
        let mut drop_rule = false;
        let subnet = word("vnetSubnetResourceId").filter(|s| !s.is_empty());
        let tag = word("tag").unwrap_or("Default");
        let ip = word("ipAddress").filter(|s| !s.is_empty());
        let mut source: Vec<String> = Vec::new();
        if let Some(s) = subnet {
            problems.push(format!(
                "the subnet {s} (a service endpoint) has no fixed address range outside Azure"
            ));
            drop_rule = true;
        } else if tag.eq_ignore_ascii_case("xffproxy") {
            problems.push(
                "tag XffProxy (the retired match on X-Forwarded-For proxies) has no exact form"
                    .to_string(),
            );
            drop_rule = true;
        } else if let Some(ip) = ip {
            let service_tag = tag.eq_ignore_ascii_case("servicetag");
            if !service_tag && !tag.eq_ignore_ascii_case("default") {
                problems.push(format!(
                    "tag {tag:?} is not Default, ServiceTag or XffProxy"
                ));
                drop_rule = true;
            }
            for entry in ip.split(',').map(str::trim) {
                match self.address(entry, service_tag) {
                    Addr::Spec(s) => {
                        if !source.contains(&s) {
                            source.push(s);
                        }
                    }
                    Addr::No(why) => problems.push(why),
                }
            }
            if source.is_empty() {
                drop_rule = true;
            }
        } else {
            problems.push("neither ipAddress nor vnetSubnetResourceId is set".to_string());
            drop_rule = true;
        }
        // Headers.
        let mut headers: Vec<(String, Vec<String>)> = Vec::new();
        let mut xff: Option<Vec<String>> = None;
        let mut inexact: Vec<String> = Vec::new();
        match r.get("headers").map(|h| &h.kind) {
            None | Some(Kind::Null) => {}
            Some(Kind::Object(hs)) => {
                for h in hs {
                    let hname = h.key.trim().to_ascii_lowercase();
                    let values: Option<Vec<String>> = match &h.value.kind {
                        Kind::Array(a) => a
                            .iter()
                            .map(|v| v.as_str().map(|s| s.trim().to_string()))
                            .collect(),
                        Kind::String(s) => Some(alloc::vec![s.trim().to_string()]),
                        _ => None,
                    };
                    let Some(values) =
                        values.filter(|v| !v.is_empty() && v.iter().all(|s| !s.is_empty()))
                    else {
                        problems.push(format!(
                            "headers.{}: must be a non-empty list of non-empty strings",
                            h.key
                        ));
                        drop_rule = true;
                        continue;
                    };
                    if values.len() > 8 {
                        problems.push(format!(
                            "headers.{}: {} values; App Service allows at most 8",
                            h.key,
                            values.len()
                        ));
                        drop_rule = true;
                        continue;
                    }
                    match hname.as_str() {
                        "x-azure-fdid" | "x-fd-healthprobe" => headers.push((hname, values)),
                        "x-forwarded-host" => {
                            let (wild, exact): (Vec<String>, Vec<String>) =
                                values.into_iter().partition(|v| v.contains('*'));
                            if !wild.is_empty() {
                                problems.push(format!("x-forwarded-host {}: App Service matches a `*.` wildcard as exactly one label; a rule's headers compare values exactly, so it has no exact form", wild.join(", ")));
                                if exact.is_empty() {
                                    drop_rule = true;
                                }
                            }
                            if !exact.is_empty() {
                                headers.push((hname, exact));
                            }
                        }
                        "x-forwarded-for" => {
                            let mut ranges = Vec::new();
                            for v in &values {
                                match parse_literal(v) {
                                    Ok(_) => ranges.push(v.clone()),
                                    Err(AddrProblem::HostBits { network }) => ranges.push(network),
                                    Err(_) => problems.push(format!(
                                        "x-forwarded-for {v:?} is not an address or CIDR"
                                    )),
                                }
                            }
                            if ranges.is_empty() {
                                drop_rule = true;
                            } else {
                                xff = Some(ranges);
                            }
                        }
                        _ => {
                            problems.push(format!(
                                "App Service tests only the headers {}, not {}",
                                HEADERS.join(", "),
                                h.key
                            ));
                            drop_rule = true;
                        }
                    }
                }
            }
            Some(_) => {
                problems.push("headers must be an object (header name -> values)".to_string());
                drop_rule = true;
            }
        }
        if let Some(ranges) = &xff {
            if source.iter().any(|s| s == "*") {
                problems.push("x-forwarded-for from any peer (ipAddress Any): every client can write the header, so there is no proxy to trust".to_string());
                drop_rule = true;
            } else if !drop_rule {
                for s in &source {
                    if !self.xff_proxies.contains(s) {
                        self.xff_proxies.push(s.clone());
                    }
                }
                inexact.push(format!("x-forwarded-for {}: App Service matches when any entry of the chain is inside the ranges (a client can write entries itself); the policy takes the client from the right-most X-Forwarded-For entry outside the trusted proxies {} (client_ip x-forwarded-for) and matches that one", ranges.join(", "), source.join(", ")));
                source = ranges.clone();
            }
        }
        if !problems.is_empty() {
            let why = problems.join("; ");
            if deny {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &name,
                    format!("{why}; leaving it out of a deny rule would allow what it denies"),
                );
                return;
            }
            if drop_rule {
                self.report.add(
                    pos,
                    ItemKind::Unsupported,
                    &name,
                    format!("{why}; the allow rule is left out (so fewer clients are allowed)"),
                );
                return;
            }
            inexact.push(format!(
                "{why}; left out of the rule (so fewer clients are allowed)"
            ));
        }
        // Unique names within the list (App Service does not require them).
        let mut unique = name.clone();
        let mut n = 2;
        while side.rules.iter().any(|r| r.name == unique) {
            unique = format!("{name} ({n})");
            n += 1;
        }
        let description = self.opts.rule_description(
            &format!("App Service rule {name:?} of {site} (priority {priority})"),
            pos.0,
            word("description"),
        );
        let mut rule = J::obj()
            .with("name", J::s(&unique))
            .with("priority", J::Int(0))
            .with("access", J::s(access))
            .with("source", J::strs(source.iter().map(String::as_str)));
        if !headers.is_empty() {
            let mut h = J::obj();
            for (k, v) in &headers {
                h.push(k, J::strs(v.iter().map(String::as_str)));
            }
            rule.push("headers", h);
        }
        rule.push("description", J::Str(description));
        let note = if unique == name {
            String::new()
        } else {
            format!(" (named {unique:?}: another rule of the list is named {name:?})")
        };
        for why in inexact {
            self.report.add(pos, ItemKind::Unsupported, &unique, why);
        }
        side.rules.push(SideRule {
            priority,
            index,
            rule,
            pos,
            name: unique,
            access,
            note,
        });
    }

    fn address(&mut self, s: &str, service_tag: bool) -> Addr {
        if s.eq_ignore_ascii_case("any") || s == "*" {
            return Addr::Spec("*".to_string());
        }
        if service_tag {
            return match crate::tags::into_group(
                self.opts.service_tags,
                s,
                &mut self.groups,
                &mut self.provenance,
            ) {
                Ok(g) => Addr::Spec(g),
                Err(why) => Addr::No(why),
            };
        }
        match parse_literal(s) {
            Ok(_) if s.contains(['-']) => Addr::No(format!(
                "{s:?}: App Service reads CIDRs and addresses, not ranges"
            )),
            Ok(_) => Addr::Spec(s.to_string()),
            Err(AddrProblem::HostBits { network }) => Addr::Spec(network),
            Err(_) => Addr::No(format!("{s:?} is not an IP address or CIDR")),
        }
    }

    /// Sorts and renumbers one side's rules; gives the `network` object.
    fn network(&mut self, side: Side) -> J {
        let Side {
            mut rules,
            default_access,
            path,
        } = side;
        rules.sort_by_key(|r| (r.priority, r.index));
        let n = rules.len();
        let step = if n <= 1 {
            10
        } else {
            (3996 / (n - 1)).clamp(1, 10)
        };
        let mut list = Vec::new();
        for (i, r) in rules.into_iter().enumerate() {
            let new = 100 + i * step;
            let mut rule = r.rule;
            if let J::Obj(m) = &mut rule {
                for (k, v) in m.iter_mut() {
                    if k == "priority" {
                        *v = J::Int(i64::try_from(new).unwrap_or(i64::MAX));
                    }
                }
            }
            self.report.add(
                r.pos,
                ItemKind::Mapped,
                &r.name,
                format!(
                    "a network rule ({}); App Service priority {} is number {} in order: priority {new}{}",
                    r.access,
                    r.priority,
                    i + 1,
                    r.note
                ),
            );
            self.origins
                .push((format!("{path}.rules[{i}]"), r.pos, r.name));
            list.push(rule);
        }
        J::obj()
            .with("rules", J::Arr(list))
            .with("default_access", J::s(default_access))
    }

    fn finish(mut self, main: Side, scm: Option<Side>) -> Outcome {
        let mut doc = J::obj().with("name", J::s(&self.opts.name));
        let main_net = self.network(main);
        let scm_net = scm.map(|s| self.network(s));
        if !self.xff_proxies.is_empty() {
            let proxies = core::mem::take(&mut self.xff_proxies);
            doc.push(
                "client_ip",
                J::obj().with("from", J::s("x-forwarded-for")).with(
                    "trusted_proxies",
                    J::strs(proxies.iter().map(String::as_str)),
                ),
            );
            self.report.add(
                (1, 1),
                ItemKind::Unsupported,
                "client_ip",
                format!("x-forwarded-for rules: client_ip x-forwarded-for with trusted proxies {}; every rule now sees, for a request from those proxies, the client taken from X-Forwarded-For (App Service's other rules see the proxy's own address)", proxies.join(", ")),
            );
        }
        if !self.groups.is_empty() {
            let mut g = J::obj();
            for (k, v) in &self.groups {
                g.push(k, J::strs(v.iter().map(String::as_str)));
            }
            doc.push("address_groups", g);
        }
        let src = if self.opts.source.is_empty() {
            "App Service access restrictions".to_string()
        } else {
            self.opts.source.clone()
        };
        let mut prov = J::obj().with(
            "description",
            J::Str(format!(
                "imported by portcullis import app-service from {src}"
            )),
        );
        if !self.provenance.is_empty() {
            let mut g = J::obj();
            for (k, v) in core::mem::take(&mut self.provenance) {
                g.push(&k, v);
            }
            prov.push("address_groups", g);
        }
        doc.push("provenance", prov);
        doc.push("network", main_net);
        if let Some(net) = scm_net {
            doc.push(
                "scopes",
                J::Arr(alloc::vec![J::obj()
                    .with("name", J::s(SCM_SCOPE))
                    .with("match", J::obj().with("hosts", J::strs([SCM_HOSTS])))
                    .with("network", net)]),
            );
        }
        finish(&doc, self.report, self.opts.strict, &self.origins)
    }
}
