//! NSG security rules (JSON) into policy-v1.
//!
//! Shapes read (detected from the document):
//! - an ARM template (`resources` holding one
//!   `Microsoft.Network/networkSecurityGroups`, with `properties.securityRules`
//!   and/or `.../securityRules` child resources);
//! - one resource as ARM, Bicep's JSON or the REST API's GET return it
//!   (`{"name", "properties": {"securityRules", "defaultSecurityRules"}}`);
//! - the flat `az network nsg show` object (`securityRules` at the top) and
//!   the `az network nsg rule list` array; the REST list `{"value": [...]}`.
//!
//! | NSG | policy-v1 |
//! |---|---|
//! | Inbound rule | a network rule with the same name, priority and access |
//! | `sourceAddressPrefix(es)` | `source` (`*`, `Internet`, CIDR, address) |
//! | `destinationAddressPrefix(es)` | `destination` (`VirtualNetwork` is `*`: every inbound packet is for the virtual network) |
//! | `source/destinationPortRange(s)` | `source_ports` / `destination_ports` |
//! | `Tcp` / `Udp` / `*` | `tcp` / `udp` / `*` |
//! | `AzureLoadBalancer` | the address group `AzureLoadBalancer` (168.63.129.16) |
//! | a service tag | an address group from the `--service-tags` snapshot |
//! | DenyAllInBound (default) | `default_access: deny` |
//!
//! Reported: Outbound rules and Icmp/Esp/Ah rules (skipped: no inbound HTTP
//! request can match them), the defaults AllowVnetInBound and
//! AllowAzureLoadBalancerInBound (skipped), application security groups,
//! `VirtualNetwork` as a source, unknown service tags and ARM expressions
//! (unsupported in an allow rule, where leaving them out only denies more;
//! an error in a deny rule, where it would allow what the NSG denies), and
//! duplicate priorities or names (errors, as NSG itself refuses them).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use portcullis_core::json::{self, Kind, Value};

use crate::lines::Lines;
use crate::out::J;
use crate::{finish, ItemKind, Options, Outcome, Report};

/// The address Azure's load balancer probes (and the platform) come from:
/// the `AzureLoadBalancer` tag.
pub const AZURE_LOAD_BALANCER: &str = "168.63.129.16";

/// Imports the security rules of one NSG.
pub fn import(text: &str, opts: &Options<'_>) -> Outcome {
    if let Some(too_big) = Outcome::too_big(text) {
        return too_big;
    }
    let lines = Lines::new(text);
    let root = match json::parse(text) {
        Ok(v) => v,
        Err(e) => return Outcome::fatal(lines.at(e.offset), "json", e.message.to_string()),
    };
    let mut m = Mapper {
        lines: &lines,
        opts,
        report: Report::default(),
        origins: Vec::new(),
        rules: Vec::new(),
        groups: BTreeMap::new(),
        provenance: BTreeMap::new(),
        defaults_seen: false,
    };
    let (rules, defaults) = match find_rules(&root) {
        Ok(r) => r,
        Err(msg) => return Outcome::fatal(lines.at(root.span.start), "json", msg),
    };
    let mut seen: Vec<(String, u16, (u32, u32), bool)> = Vec::new();
    for r in &rules {
        m.rule(r, &mut seen);
    }
    for d in &defaults {
        m.default_rule(d);
    }
    if !m.defaults_seen {
        m.report.add(
            (1, 1),
            ItemKind::Mapped,
            "DenyAllInBound",
            "every NSG ends with DenyAllInBound (65500): default_access deny".to_string(),
        );
        m.report.add(
            (1, 1),
            ItemKind::Skipped,
            "AllowVnetInBound, AllowAzureLoadBalancerInBound",
            default_allow_reason().to_string(),
        );
    }
    m.finish()
}

fn default_allow_reason() -> &'static str {
    "NSG default rules (65000, 65001) for the virtual network's own traffic and the load balancer's probes: VirtualNetwork has no fixed address range and probes do not pass through the gateway; not recreated (add a rule if such clients must call the API)"
}

/// The security rules and default rules of the document, whatever its shape.
fn find_rules(root: &Value) -> Result<(Vec<&Value>, Vec<&Value>), String> {
    fn list(v: Option<&Value>) -> Vec<&Value> {
        match v.map(|v| &v.kind) {
            Some(Kind::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        }
    }
    match &root.kind {
        Kind::Array(a) => Ok((a.iter().collect(), Vec::new())),
        Kind::Object(_) => {
            if let Some(Value {
                kind: Kind::Array(res),
                ..
            }) = root.get("resources")
            {
                let ty = |r: &Value| {
                    r.get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_ascii_lowercase()
                };
                let nsgs: Vec<&Value> = res
                    .iter()
                    .filter(|r| ty(r) == "microsoft.network/networksecuritygroups")
                    .collect();
                if nsgs.len() > 1 {
                    return Err(format!(
                        "the template holds {} network security groups; import one at a time",
                        nsgs.len()
                    ));
                }
                let mut rules: Vec<&Value> = nsgs
                    .first()
                    .map(|n| list(n.get("properties").and_then(|p| p.get("securityRules"))))
                    .unwrap_or_default();
                rules.extend(
                    res.iter().filter(|r| {
                        ty(r) == "microsoft.network/networksecuritygroups/securityrules"
                    }),
                );
                if nsgs.is_empty() && rules.is_empty() {
                    return Err(
                        "the template has no Microsoft.Network/networkSecurityGroups resource"
                            .to_string(),
                    );
                }
                return Ok((rules, Vec::new()));
            }
            if let Some(p) = root.get("properties") {
                if p.get("securityRules").is_some() || p.get("defaultSecurityRules").is_some() {
                    return Ok((
                        list(p.get("securityRules")),
                        list(p.get("defaultSecurityRules")),
                    ));
                }
            }
            if root.get("securityRules").is_some() || root.get("defaultSecurityRules").is_some() {
                return Ok((
                    list(root.get("securityRules")),
                    list(root.get("defaultSecurityRules")),
                ));
            }
            if let Some(Value {
                kind: Kind::Array(a),
                ..
            }) = root.get("value")
            {
                return Ok((a.iter().collect(), Vec::new()));
            }
            Err("not an NSG: expected an ARM template, an NSG resource (properties.securityRules), `az network nsg show` output (securityRules) or a list of rules".to_string())
        }
        _ => Err("not an NSG: expected a JSON object or a list of rules".to_string()),
    }
}

struct Mapper<'a, 't> {
    lines: &'a Lines<'t>,
    opts: &'a Options<'a>,
    report: Report,
    origins: Vec<(String, (u32, u32), String)>,
    /// (priority, rule, position, name)
    rules: Vec<(u16, J, (u32, u32), String)>,
    groups: BTreeMap<String, Vec<String>>,
    provenance: BTreeMap<String, J>,
    defaults_seen: bool,
}

/// The fields of one rule, from its `properties` or flat.
struct Fields<'v> {
    rule: &'v Value,
    props: &'v Value,
}

impl<'v> Fields<'v> {
    fn get(&self, k: &str) -> Option<&'v Value> {
        self.props.get(k)
    }
}

const KNOWN: &[&str] = &[
    "priority",
    "access",
    "direction",
    "protocol",
    "sourceAddressPrefix",
    "sourceAddressPrefixes",
    "sourcePortRange",
    "sourcePortRanges",
    "destinationAddressPrefix",
    "destinationAddressPrefixes",
    "destinationPortRange",
    "destinationPortRanges",
    "sourceApplicationSecurityGroups",
    "destinationApplicationSecurityGroups",
    "description",
    // metadata, no meaning for the policy
    "name",
    "id",
    "etag",
    "type",
    "provisioningState",
    "resourceGroup",
    "properties",
    "apiVersion",
    "dependsOn",
];

fn is_expr(s: &str) -> bool {
    s.starts_with('[') && s.ends_with(']') && !s.starts_with("[[")
}

/// One resolved address entry.
enum Addr {
    Spec(String),
    /// Why it cannot be mapped.
    No(String),
}

impl Mapper<'_, '_> {
    fn pos(&self, v: &Value) -> (u32, u32) {
        self.lines.at(v.span.start)
    }

    fn rule(&mut self, r: &Value, seen: &mut Vec<(String, u16, (u32, u32), bool)>) {
        let pos = self.pos(r);
        let props = r.get("properties").unwrap_or(r);
        let f = Fields { rule: r, props };
        let raw_name = f
            .rule
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| props.get("name").and_then(Value::as_str));
        let Some(raw_name) = raw_name else {
            self.report.add(
                pos,
                ItemKind::Error,
                "rule",
                "a security rule without a \"name\"".to_string(),
            );
            return;
        };
        // A child resource is named "nsg/rule".
        let name = raw_name.rsplit('/').next().unwrap_or(raw_name).to_string();
        if let Kind::Object(ms) = &props.kind {
            for mm in ms {
                if !KNOWN.contains(&mm.key.as_str()) {
                    let what = format!("{name}.{}", mm.key);
                    self.report.add(
                        self.lines.at(mm.key_span.start),
                        ItemKind::Unsupported,
                        &what,
                        "a field NSG rules do not have here; ignored".to_string(),
                    );
                }
            }
        } else {
            self.report.add(
                pos,
                ItemKind::Error,
                &name,
                "a rule must be an object".to_string(),
            );
            return;
        }
        let word = |k: &str| f.get(k).and_then(Value::as_str);
        let priority = match f.get("priority").map(|p| (&p.kind, p)) {
            Some((Kind::Number(_), p)) => p.as_u64(),
            Some((Kind::String(s), _)) => s.parse::<u64>().ok(),
            _ => None,
        };
        let direction = word("direction").unwrap_or("");
        let inbound = direction.eq_ignore_ascii_case("inbound");
        if !inbound && !direction.eq_ignore_ascii_case("outbound") {
            self.report.add(
                pos,
                ItemKind::Error,
                &name,
                format!("direction {direction:?} is neither Inbound nor Outbound"),
            );
            return;
        }
        let Some(priority) = priority
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| (100..=4096).contains(p))
        else {
            self.report.add(
                pos,
                ItemKind::Error,
                &name,
                "priority must be a whole number from 100 to 4096 (NSG refuses others)".to_string(),
            );
            return;
        };
        for (n, p, at, inb) in seen.iter() {
            if n.eq_ignore_ascii_case(&name) {
                self.report.add(pos, ItemKind::Error, &name, format!("a second rule named {n:?} (the first is at {}:{}); NSG refuses duplicate names", at.0, at.1));
                return;
            }
            if *p == priority && *inb == inbound {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &name,
                    format!("priority {priority} is also used by {n:?} at {}:{}; NSG refuses two {direction} rules with one priority", at.0, at.1),
                );
                return;
            }
        }
        seen.push((name.clone(), priority, pos, inbound));
        if !inbound {
            self.report.add(
                pos,
                ItemKind::Skipped,
                &name,
                "an Outbound rule: the policy decides inbound requests only".to_string(),
            );
            return;
        }
        let access = match word("access") {
            Some(a) if a.eq_ignore_ascii_case("allow") => "allow",
            Some(a) if a.eq_ignore_ascii_case("deny") => "deny",
            _ => {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &name,
                    "access must be Allow or Deny".to_string(),
                );
                return;
            }
        };
        let deny = access == "deny";
        let protocol = match word("protocol").map(str::to_ascii_lowercase).as_deref() {
            Some("tcp") => "tcp",
            Some("udp") => "udp",
            Some("*") | Some("any") => "*",
            Some(p @ ("icmp" | "esp" | "ah")) => {
                let reason =
                    format!("protocol {p}: HTTP never arrives over it, so no request can match");
                self.report.add(pos, ItemKind::Skipped, &name, reason);
                return;
            }
            other => {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    &name,
                    format!(
                        "protocol {:?} is not Tcp, Udp, Icmp, Esp, Ah or *",
                        other.unwrap_or("")
                    ),
                );
                return;
            }
        };
        // Application security groups.
        for k in [
            "sourceApplicationSecurityGroups",
            "destinationApplicationSecurityGroups",
        ] {
            if let Some(Value {
                kind: Kind::Array(a),
                ..
            }) = f.get(k)
            {
                if !a.is_empty() {
                    let reason = format!("{k}: an application security group's addresses are the NICs put in it, unknown outside Azure");
                    if deny {
                        self.report.add(pos, ItemKind::Error, &name, format!("{reason}; leaving it out of a deny rule would allow what it denies"));
                    } else {
                        self.report.add(pos, ItemKind::Unsupported, &name, format!("{reason}; the allow rule is left out (so fewer clients are allowed)"));
                    }
                    return;
                }
            }
        }
        let src = self.list(
            &f,
            "sourceAddressPrefix",
            "sourceAddressPrefixes",
            &name,
            pos,
        );
        let dst = self.list(
            &f,
            "destinationAddressPrefix",
            "destinationAddressPrefixes",
            &name,
            pos,
        );
        let sports = self.list(&f, "sourcePortRange", "sourcePortRanges", &name, pos);
        let dports = self.list(
            &f,
            "destinationPortRange",
            "destinationPortRanges",
            &name,
            pos,
        );
        let (Some(src), Some(dst), Some(sports), Some(dports)) = (src, dst, sports, dports) else {
            return;
        };
        let mut problems: Vec<String> = Vec::new();
        let mut source = Vec::new();
        for s in &src {
            match self.address(s, false) {
                Addr::Spec(x) => source.push(x),
                Addr::No(why) => problems.push(why),
            }
        }
        let mut destination = Vec::new();
        for s in &dst {
            match self.address(s, true) {
                Addr::Spec(x) => destination.push(x),
                Addr::No(why) => problems.push(why),
            }
        }
        for p in sports.iter().chain(dports.iter()) {
            if is_expr(p) {
                problems.push(format!("the ARM expression {p} is not evaluated"));
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
            if source.is_empty()
                || destination.is_empty()
                || sports.iter().chain(dports.iter()).any(|p| is_expr(p))
            {
                self.report.add(
                    pos,
                    ItemKind::Unsupported,
                    &name,
                    format!("{why}; the allow rule is left out (so fewer clients are allowed)"),
                );
                return;
            }
            self.report.add(
                pos,
                ItemKind::Unsupported,
                &name,
                format!("{why}; left out of the rule's addresses (so fewer clients are allowed)"),
            );
        }
        let description = self.opts.rule_description(
            &format!("NSG rule {name:?} (priority {priority})"),
            pos.0,
            word("description"),
        );
        let mut rule = J::obj()
            .with("name", J::s(&name))
            .with("priority", J::Int(i64::from(priority)))
            .with("access", J::s(access))
            .with("source", J::strs(source.iter().map(String::as_str)));
        let any = |l: &[String]| l.iter().all(|x| x == "*");
        if !any(&sports) {
            rule.push("source_ports", J::strs(sports.iter().map(String::as_str)));
        }
        if !any(&destination) {
            rule.push(
                "destination",
                J::strs(destination.iter().map(String::as_str)),
            );
        }
        if !any(&dports) {
            rule.push(
                "destination_ports",
                J::strs(dports.iter().map(String::as_str)),
            );
        }
        if protocol != "*" {
            rule.push("protocol", J::s(protocol));
        }
        rule.push("description", J::Str(description));
        self.report.add(
            pos,
            ItemKind::Mapped,
            &name,
            format!("a network rule ({access}, priority {priority})"),
        );
        self.rules.push((priority, rule, pos, name));
    }

    /// The singular or plural field (NSG refuses both at once).
    fn list(
        &mut self,
        f: &Fields<'_>,
        one: &str,
        many: &str,
        name: &str,
        pos: (u32, u32),
    ) -> Option<Vec<String>> {
        let single = f.get(one).and_then(Value::as_str).filter(|s| !s.is_empty());
        let plural: Vec<String> = match f.get(many).map(|v| &v.kind) {
            Some(Kind::Array(a)) => {
                let mut out = Vec::new();
                for it in a {
                    match it.as_str() {
                        Some(s) => out.push(s.trim().to_string()),
                        None => {
                            self.report.add(
                                self.pos(it),
                                ItemKind::Error,
                                name,
                                format!("{many} must hold strings"),
                            );
                            return None;
                        }
                    }
                }
                out
            }
            Some(Kind::String(s)) if is_expr(s) => alloc::vec![s.clone()],
            Some(Kind::Null) | None => Vec::new(),
            Some(_) => {
                self.report
                    .add(pos, ItemKind::Error, name, format!("{many} must be a list"));
                return None;
            }
        };
        match (single, plural.is_empty()) {
            (Some(s), true) => Some(alloc::vec![s.trim().to_string()]),
            (None, false) => Some(plural),
            (Some(_), false) => {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    name,
                    format!("both {one} and {many} are set; NSG refuses that"),
                );
                None
            }
            (None, true) => {
                self.report.add(
                    pos,
                    ItemKind::Error,
                    name,
                    format!("neither {one} nor {many} is set"),
                );
                None
            }
        }
    }

    fn address(&mut self, s: &str, destination: bool) -> Addr {
        if is_expr(s) {
            return Addr::No(format!("the ARM expression {s} is not evaluated"));
        }
        if s == "*" {
            return Addr::Spec("*".to_string());
        }
        if s.eq_ignore_ascii_case("internet") {
            return Addr::Spec("Internet".to_string());
        }
        if s.eq_ignore_ascii_case("virtualnetwork") {
            return if destination {
                Addr::Spec("*".to_string())
            } else {
                Addr::No("the VirtualNetwork tag (the virtual network's address space, its peerings and on-premises ranges) is not known outside Azure".to_string())
            };
        }
        if s.eq_ignore_ascii_case("azureloadbalancer") {
            self.groups.insert(
                "AzureLoadBalancer".to_string(),
                alloc::vec![AZURE_LOAD_BALANCER.to_string()],
            );
            self.provenance.insert(
                "AzureLoadBalancer".to_string(),
                J::obj().with(
                    "description",
                    J::s("the NSG tag AzureLoadBalancer: Azure's platform address 168.63.129.16 (load balancer probes)"),
                ),
            );
            return Addr::Spec("AzureLoadBalancer".to_string());
        }
        let literal = s.contains(':') || s.starts_with(|c: char| c.is_ascii_digit());
        if literal {
            return Addr::Spec(s.to_string());
        }
        match crate::tags::into_group(
            self.opts.service_tags,
            s,
            &mut self.groups,
            &mut self.provenance,
        ) {
            Ok(group) => Addr::Spec(group),
            Err(why) => Addr::No(why),
        }
    }

    fn default_rule(&mut self, d: &Value) {
        self.defaults_seen = true;
        let pos = self.pos(d);
        let props = d.get("properties").unwrap_or(d);
        let name = d
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("default rule")
            .to_string();
        let w = |k: &str| {
            props
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase()
        };
        let inbound = w("direction") == "inbound";
        let all = |k: &str, k2: &str| {
            props
                .get(k)
                .and_then(Value::as_str)
                .is_none_or(|s| s == "*")
                && match props.get(k2).map(|v| &v.kind) {
                    Some(Kind::Array(a)) => a.is_empty(),
                    _ => true,
                }
        };
        if !inbound {
            self.report.add(
                pos,
                ItemKind::Skipped,
                &name,
                "an Outbound default rule: the policy decides inbound requests only".to_string(),
            );
        } else if w("access") == "deny"
            && w("protocol") == "*"
            && all("sourceAddressPrefix", "sourceAddressPrefixes")
            && all("destinationAddressPrefix", "destinationAddressPrefixes")
        {
            self.report.add(
                pos,
                ItemKind::Mapped,
                &name,
                "the default deny of everything: default_access deny".to_string(),
            );
        } else if w("access") == "allow" {
            self.report.add(
                pos,
                ItemKind::Skipped,
                &name,
                default_allow_reason().to_string(),
            );
        } else {
            self.report.add(
                pos,
                ItemKind::Unsupported,
                &name,
                "a default rule that is not one of NSG's own; not recreated".to_string(),
            );
        }
    }

    fn finish(mut self) -> Outcome {
        let mut doc = J::obj().with("name", J::s(&self.opts.name));
        if !self.groups.is_empty() {
            let mut g = J::obj();
            for (k, v) in &self.groups {
                g.push(k, J::strs(v.iter().map(String::as_str)));
            }
            doc.push("address_groups", g);
        }
        let src = if self.opts.source.is_empty() {
            "an NSG".to_string()
        } else {
            self.opts.source.clone()
        };
        let mut prov = J::obj().with(
            "description",
            J::Str(format!("imported by portcullis import nsg from {src}")),
        );
        if !self.provenance.is_empty() {
            let mut g = J::obj();
            for (k, v) in core::mem::take(&mut self.provenance) {
                g.push(&k, v);
            }
            prov.push("address_groups", g);
        }
        doc.push("provenance", prov);
        self.rules.sort_by_key(|r| r.0);
        let mut list = Vec::new();
        for (i, (_, r, pos, name)) in core::mem::take(&mut self.rules).into_iter().enumerate() {
            self.origins
                .push((format!("network.rules[{i}]"), pos, name));
            list.push(r);
        }
        if list.is_empty() {
            self.report.add(
                (1, 1),
                ItemKind::Error,
                "network",
                "no inbound rule could be imported; the policy would deny every request"
                    .to_string(),
            );
        } else {
            doc.push(
                "network",
                J::obj()
                    .with("rules", J::Arr(list))
                    .with("default_access", J::s("deny")),
            );
        }
        finish(&doc, self.report, self.opts.strict, &self.origins)
    }
}
