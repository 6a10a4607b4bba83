//! The `network` section: rules, port lists and the deny reply.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::addr::AddrSet;
use crate::error::{Error, RuleRef};
use crate::json::{Kind, Value};
use crate::matcher::Table;

use super::super::syntax::parse_port_spec;
use super::super::{Access, Network, PortSet, Protocol, Rule};
use super::{child, index, Validator};

impl<'t> Validator<'t> {
    pub(super) fn ports(&mut self, v: Option<&Value>, path: &str) -> Option<PortSet> {
        let Some(v) = v else {
            return Some(PortSet::any());
        };
        let items = self.array(v, path)?;
        if items.is_empty() {
            self.err(path, v.span, Error::Empty);
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let p = index(path, i);
            let parsed = match &it.kind {
                Kind::String(s) => parse_port_spec(s).ok_or_else(|| s.clone()),
                Kind::Number(n) => n.parse::<u16>().map(|p| (p, p)).map_err(|_| n.clone()),
                _ => {
                    self.err(
                        &p,
                        it.span,
                        Error::WrongType {
                            expected: "a port spec string",
                            found: it.kind_name(),
                        },
                    );
                    ok = false;
                    continue;
                }
            };
            match parsed {
                Ok(r) => out.push(r),
                Err(s) => {
                    self.err(&p, it.span, Error::BadPort(s));
                    ok = false;
                }
            }
        }
        out.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in out {
            match merged.last_mut() {
                Some(l) if lo <= l.1.saturating_add(1) || l.1 == u16::MAX => l.1 = l.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        ok.then_some(PortSet(merged))
    }

    pub(super) fn network(
        &mut self,
        v: &Value,
        groups: &BTreeMap<String, AddrSet>,
    ) -> Option<Network> {
        let f = self.fields(v, "network", &["rules", "default_access", "deny"])?;
        let default_access = self.or_default(f.get("default_access"), Access::Deny, |s, d| {
            s.word(d, "network.default_access")
        });
        let deny = self.or_default(
            f.get("deny"),
            (403, String::from("Forbidden\n")),
            Self::deny,
        );
        let rules_v = self.required(&f, "network", "rules");
        let mut rules = Vec::new();
        let mut ok = rules_v.is_some();
        if let Some(list) = rules_v.and_then(|r| self.array(r, "network.rules")) {
            for (i, r) in list.iter().enumerate() {
                match self.rule(r, &index("network.rules", i), groups) {
                    Some(rule) => rules.push(rule),
                    None => ok = false,
                }
            }
        } else {
            ok = false;
        }
        // Unique names and priorities, naming both rules. Read from the raw
        // rule objects so that rules with other mistakes still take part.
        if let Some(Kind::Array(list)) = rules_v.map(|r| &r.kind) {
            // First rule (path, name) per name and per priority.
            let mut names: BTreeMap<&str, String> = BTreeMap::new();
            let mut prios: BTreeMap<u64, (String, Option<&str>)> = BTreeMap::new();
            for (i, r) in list.iter().enumerate() {
                let path = index("network.rules", i);
                let name = r.get("name").and_then(Value::as_str);
                let prio = r.get("priority").and_then(Value::as_u64);
                if let Some(n) = name {
                    if let Some(other) = names.get(n) {
                        let span = r.get("name").map_or(r.span, |v| v.span);
                        let e = Error::DuplicateRuleName {
                            name: n.to_string(),
                            first: other.clone(),
                            second: path.clone(),
                        };
                        self.err(&child(&path, "name"), span, e);
                        ok = false;
                    } else {
                        names.insert(n, path.clone());
                    }
                }
                if let Some(p) = prio {
                    if let Some((other, other_name)) = prios.get(&p) {
                        let span = r.get("priority").map_or(r.span, |v| v.span);
                        let e = Error::DuplicatePriority {
                            priority: p,
                            first: RuleRef::new(*other_name, other),
                            second: RuleRef::new(name, &path),
                        };
                        self.err(&child(&path, "priority"), span, e);
                        ok = false;
                    } else {
                        prios.insert(p, (path, name));
                    }
                }
            }
        }
        if !ok {
            return None;
        }
        let (deny_status, deny_body) = deny?;
        let default_access = default_access?;
        rules.sort_by_key(|r| r.priority);
        // The matcher is compiled by `Policy::compile`, once the JSON tree
        // can be dropped: the peak memory of a large policy is lower then.
        let (line, column) = self
            .lines
            .line_col(rules_v.map_or(v.span, |r| r.span).start);
        Some(Network {
            rules,
            default_access,
            deny_status,
            deny_body,
            table: Table::default(),
            rules_at: (line, column),
        })
    }

    pub(super) fn deny(&mut self, v: &Value) -> Option<(u16, String)> {
        let f = self.fields(v, "network.deny", &["status", "body"])?;
        let status = self.status(
            f.get("status"),
            "network.deny.status",
            403,
            &[],
            "from 400 to 599",
        );
        let body = self.or_default(f.get("body"), String::from("Forbidden\n"), |s, b| {
            s.string(b, "network.deny.body").map(|s| s.to_string())
        });
        Some((status?, body?))
    }

    pub(super) fn rule(
        &mut self,
        v: &Value,
        path: &str,
        groups: &BTreeMap<String, AddrSet>,
    ) -> Option<Rule> {
        const RULE: &[&str] = &[
            "name",
            "priority",
            "access",
            "source",
            "source_ports",
            "destination",
            "destination_ports",
            "protocol",
            "headers",
            "description",
        ];
        let f = self.fields(v, path, RULE)?;
        let name = self.required(&f, path, "name").and_then(|n| {
            let p = child(path, "name");
            let s = self.string(n, &p)?;
            if s.is_empty() || s.len() > 80 || s.chars().any(char::is_control) {
                self.err(
                    &p,
                    n.span,
                    Error::BadName {
                        pattern: "1 to 80 printable characters",
                    },
                );
                None
            } else {
                Some(s.to_string())
            }
        });
        let priority = self
            .required(&f, path, "priority")
            .and_then(|p| self.integer(p, &child(path, "priority"), 100, 4096));
        let access = self
            .required(&f, path, "access")
            .and_then(|a| self.word(a, &child(path, "access")));
        let mut source_text = Vec::new();
        let source = self.required(&f, path, "source").and_then(|s| {
            let texts = self.texts.then_some(&mut source_text);
            self.specs(s, &child(path, "source"), groups, texts)
        });
        let source_ports = self.ports(f.get("source_ports"), &child(path, "source_ports"));
        let mut destination_text = Vec::new();
        let destination = self.or_default(f.get("destination"), AddrSet::any(), |s, d| {
            let p = child(path, "destination");
            s.specs(d, &p, groups, Some(&mut destination_text))
        });
        let destination_ports = self.ports(
            f.get("destination_ports"),
            &child(path, "destination_ports"),
        );
        let protocol = self.or_default(f.get("protocol"), Protocol::Any, |s, p| {
            s.word(p, &child(path, "protocol"))
        });
        let headers = self.or_default(f.get("headers"), Vec::new(), |s, h| {
            s.rule_headers(h, &child(path, "headers"))
        });
        if let Some(d) = f.get("description") {
            self.string(d, &child(path, "description"));
        }
        let (line, _) = self.lines.line_col(v.span.start);
        Some(Rule {
            name: name?,
            priority: u16::try_from(priority?).ok()?,
            access: access?,
            source: source?,
            source_ports: source_ports?,
            destination: destination?,
            destination_ports: destination_ports?,
            protocol: protocol?,
            headers: headers?,
            source_text,
            destination_text,
            path: path.to_string(),
            line,
            span: v.span,
        })
    }
}
