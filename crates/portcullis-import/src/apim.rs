//! Azure API Management policy XML into policy-v1.
//!
//! | APIM | policy-v1 |
//! |---|---|
//! | `inbound` `ip-filter action="allow"` | one `allow` rule, `default_access: deny` |
//! | `inbound` `ip-filter action="forbid"` | one `deny` rule (before the allow rule), `default_access: allow` when there is no allow filter |
//! | `address` / `address-range from to` | an address / a range spec |
//! | `inbound`/`backend` `set-header` | `request_headers` op |
//! | `outbound` `set-header` | `response_headers` op; `Strict-Transport-Security` becomes `hsts` |
//! | `exists-action` override / skip / append / delete | `exists` override / skip / append, `remove` |
//! | `check-header` | `require_headers` entry (`failed-check-httpcode` is its `status`) |
//! | `{{name}}` (a named value, as the whole value) | `value_from` / `values_from` `{"env": "NAME"}` |
//!
//! Everything else (other policies, `on-error`, `@(...)`/`@{...}`
//! expressions, `ignore-case="true"`, custom error messages) is reported.
//! Where leaving something out would let more requests through (a
//! `check-header` with no value left, an address of a `forbid` filter, a
//! second `allow` filter), the import fails instead.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::out::J;
use crate::xml::{self, Element, Node, Pos};
use crate::{finish, ItemKind, Options, Outcome, Report};

/// Imports an APIM policy document (`<policies>` with `inbound`, `backend`,
/// `outbound`, `on-error`).
pub fn import(text: &str, opts: &Options<'_>) -> Outcome {
    if let Some(too_big) = Outcome::too_big(text) {
        return too_big;
    }
    let root = match xml::parse(text) {
        Ok(r) => r,
        Err(e) => return Outcome::fatal(e.pos.pair(), "xml", e.message),
    };
    if root.name != "policies" {
        return Outcome::fatal(
            root.pos.pair(),
            &root.name,
            format!(
                "an APIM policy document has <policies> as its root, not <{}>",
                root.name
            ),
        );
    }
    let mut m = Mapper {
        source: opts.source.clone(),
        ..Mapper::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    for e in m.elements(&root) {
        let section = match e.name.as_str() {
            "inbound" => Section::Inbound,
            "backend" => Section::Backend,
            "outbound" => Section::Outbound,
            "on-error" => Section::OnError,
            _ => {
                m.unsupported(
                    e.pos,
                    &e.name,
                    "not an APIM policy section (inbound, backend, outbound, on-error); left out with everything inside it",
                );
                continue;
            }
        };
        if seen.contains(&e.name.as_str()) {
            m.error(
                e.pos,
                &e.name,
                "a second <".to_string() + &e.name + "> section (APIM allows one)",
            );
            continue;
        }
        seen.push(&e.name);
        m.section(e, section);
    }
    m.finish(opts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Inbound,
    Backend,
    Outbound,
    OnError,
}

impl Section {
    fn as_str(self) -> &'static str {
        match self {
            Section::Inbound => "inbound",
            Section::Backend => "backend",
            Section::Outbound => "outbound",
            Section::OnError => "on-error",
        }
    }
}

#[derive(Debug, Default)]
struct Mapper {
    source: String,
    report: Report,
    /// Where each output piece came from: (JSON path, position, item).
    origins: Vec<(String, (u32, u32), String)>,
    deny_rules: Vec<(J, Pos)>,
    allow_rule: Option<(J, Pos)>,
    require: Vec<J>,
    request_ops: Vec<J>,
    response_ops: Vec<J>,
    hsts: Option<J>,
    vars: BTreeSet<String>,
}

/// What a value in the XML is.
enum Val {
    Plain(String),
    Env(String),
    /// Why it cannot be mapped.
    No(&'static str),
}

/// `{{name}}` as a whole value becomes the environment variable NAME
/// (upper case, every character outside `[A-Z0-9_]` as `_`).
pub fn env_name(named_value: &str) -> String {
    let mut s: String = named_value
        .chars()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn classify(raw: &str) -> Val {
    let v = raw.trim();
    if v.starts_with("@(") || v.starts_with("@{") {
        return Val::No("a policy expression (@(...) / @{...}) is C# evaluated per request; policy-v1 has constant values only");
    }
    if let Some(inner) = v.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        if !inner.is_empty() && !inner.contains(['{', '}']) {
            return Val::Env(env_name(inner.trim()));
        }
    }
    if v.contains("{{") {
        return Val::No("a named value ({{name}}) inside a longer value; policy-v1 reads a whole value from the environment or none");
    }
    Val::Plain(v.to_string())
}

fn elem_what(e: &Element) -> String {
    e.name.clone()
}

impl Mapper {
    fn item(&mut self, pos: Pos, kind: ItemKind, what: &str, reason: String) {
        self.report.add(pos.pair(), kind, what, reason);
    }

    fn unsupported(&mut self, pos: Pos, what: &str, reason: &str) {
        self.item(pos, ItemKind::Unsupported, what, reason.to_string());
    }

    fn error(&mut self, pos: Pos, what: &str, reason: String) {
        self.item(pos, ItemKind::Error, what, reason);
    }

    fn origin(&mut self, path: String, pos: Pos, what: &str) {
        self.origins.push((path, pos.pair(), what.to_string()));
    }

    /// `parent`'s child elements in order, once the text between them is
    /// reported (comments mean nothing).
    fn elements<'e>(&mut self, parent: &'e Element) -> impl Iterator<Item = &'e Element> {
        for n in &parent.children {
            if let Node::Text { text, pos } = n {
                self.stray_text(text, *pos);
            }
        }
        parent.elements()
    }

    fn stray_text(&mut self, text: &str, pos: Pos) {
        if !text.trim().is_empty() {
            let reason = match classify(text) {
                Val::No(r) => r,
                _ => "text outside any policy has no meaning here",
            };
            self.unsupported(pos, "text", reason);
        }
    }

    fn where_(&self, e: &Element, section: Section) -> String {
        let src = if self.source.is_empty() {
            String::new()
        } else {
            format!(" of {}", self.source)
        };
        format!(
            "APIM <{}> at line {}{src}, {} section",
            e.name,
            e.pos.line,
            section.as_str()
        )
    }

    fn section(&mut self, sec: &Element, section: Section) {
        for a in &sec.attrs {
            self.unsupported(a.pos, &a.name, "attributes of a section have no meaning");
        }
        for e in self.elements(sec) {
            match (section, e.name.as_str()) {
                (_, "base") => self.item(
                    e.pos,
                    ItemKind::Skipped,
                    "base",
                    format!(
                        "<base/> in {}: the enclosing scope's policies run here in APIM; they are not in this file (import them separately; a policy-v1 scope runs the top level's lists first)",
                        section.as_str()
                    ),
                ),
                (Section::Inbound, "ip-filter") => self.ip_filter(e),
                (Section::Inbound, "check-header") => self.check_header(e),
                (Section::Inbound | Section::Backend, "set-header") => self.set_header(e, section),
                (Section::Outbound, "set-header") => self.set_header(e, section),
                (Section::Backend, "forward-request") => self.item(
                    e.pos,
                    ItemKind::Skipped,
                    "forward-request",
                    "the gateway forwards every allowed request; timeouts and retries are the proxy's configuration".to_string(),
                ),
                (Section::OnError, _) => self.unsupported(
                    e.pos,
                    &elem_what(e),
                    "on-error policies run only after an error; policy-v1 has no error section (response_headers apply to every response)",
                ),
                (_, "ip-filter" | "check-header") => self.unsupported(
                    e.pos,
                    &elem_what(e),
                    "only meaningful in the inbound section; left out",
                ),
                (_, name) => {
                    let reason = match name {
                        "choose" => "conditions (<choose>/<when>) are policy expressions; left out with everything inside it".to_string(),
                        "rate-limit" | "rate-limit-by-key" | "quota" | "quota-by-key" => format!("<{name}> (throttling) has no policy-v1 equivalent; use the proxy's rate limiting"),
                        "validate-jwt" | "validate-azure-ad-token" | "authentication-basic" | "authentication-certificate" | "authentication-managed-identity" => format!("<{name}> (authentication) has no policy-v1 equivalent; left out"),
                        "cors" => "<cors> has no policy-v1 equivalent; left out".to_string(),
                        _ => format!("<{name}> has no policy-v1 equivalent; left out with everything inside it"),
                    };
                    self.item(e.pos, ItemKind::Unsupported, name, reason);
                }
            }
        }
    }

    /// Attributes other than `known` are reported.
    fn extra_attrs(&mut self, e: &Element, known: &[&str]) {
        for a in &e.attrs {
            if !known.contains(&a.name.as_str()) {
                let what = format!("{}@{}", e.name, a.name);
                self.unsupported(
                    a.pos,
                    &what,
                    "an attribute with no policy-v1 meaning; ignored",
                );
            }
        }
    }

    fn ip_filter(&mut self, e: &Element) {
        self.extra_attrs(e, &["action"]);
        let allow = match e.attr("action") {
            Some("allow") => true,
            Some("forbid") => false,
            other => {
                let r = match other {
                    Some(a) => format!("action {a:?} is neither \"allow\" nor \"forbid\""),
                    None => "an ip-filter needs action=\"allow\" or action=\"forbid\"".to_string(),
                };
                self.error(e.pos, "ip-filter", r);
                return;
            }
        };
        let mut source: Vec<String> = Vec::new();
        for c in self.elements(e) {
            let spec = match c.name.as_str() {
                "address" => {
                    self.extra_attrs(c, &[]);
                    match classify(&c.text()) {
                        Val::Plain(a) if !a.is_empty() => Ok(a),
                        Val::Plain(_) => Err("an empty <address>"),
                        Val::Env(_) => {
                            Err("a named value as an address; policy-v1 addresses are literal")
                        }
                        Val::No(r) => Err(r),
                    }
                }
                "address-range" => {
                    self.extra_attrs(c, &["from", "to"]);
                    match (c.attr("from").map(classify), c.attr("to").map(classify)) {
                        (Some(Val::Plain(f)), Some(Val::Plain(t)))
                            if !f.is_empty() && !t.is_empty() =>
                        {
                            Ok(format!("{f}-{t}"))
                        }
                        (Some(Val::No(r)), _) | (_, Some(Val::No(r))) => Err(r),
                        _ => Err("an address-range needs literal from and to addresses"),
                    }
                }
                _ => Err("not part of an ip-filter"),
            };
            match spec {
                Ok(s) => {
                    self.item(
                        c.pos,
                        ItemKind::Mapped,
                        &c.name,
                        format!("address spec {s:?}"),
                    );
                    source.push(s);
                }
                Err(r) if allow => self.item(
                    c.pos,
                    ItemKind::Unsupported,
                    &c.name,
                    format!("{r}; left out of the allow list (so fewer clients are allowed)"),
                ),
                Err(r) => self.error(
                    c.pos,
                    &c.name,
                    format!("{r}; leaving it out of a forbid filter would allow what it forbids"),
                ),
            }
        }
        if source.is_empty() {
            self.error(
                e.pos,
                "ip-filter",
                "an ip-filter with no usable address (APIM refuses an empty filter)".to_string(),
            );
            return;
        }
        let access = if allow { "allow" } else { "deny" };
        let name = format!(
            "ip-filter line {} ({})",
            e.pos.line,
            e.attr("action").unwrap_or("")
        );
        let rule = J::obj()
            .with("name", J::Str(name))
            .with("priority", J::Int(0))
            .with("access", J::s(access))
            .with("source", J::strs(source.iter().map(String::as_str)))
            .with("description", J::Str(self.where_(e, Section::Inbound)));
        if allow {
            if let Some((_, first)) = &self.allow_rule {
                let r = format!(
                    "a second ip-filter action=\"allow\" (the first is at {}:{}): a request must pass both, and policy-v1 rules cannot express the intersection",
                    first.line, first.column
                );
                self.error(e.pos, "ip-filter", r);
                return;
            }
            self.allow_rule = Some((rule, e.pos));
        } else {
            self.deny_rules.push((rule, e.pos));
        }
        self.item(
            e.pos,
            ItemKind::Mapped,
            "ip-filter",
            format!("a network rule ({access})"),
        );
    }

    fn values(&mut self, e: &Element) -> (Vec<String>, Vec<String>, bool) {
        let mut plain = Vec::new();
        let mut env = Vec::new();
        let mut dropped = false;
        for c in self.elements(e) {
            if c.name != "value" {
                self.unsupported(c.pos, &c.name, "only <value> elements belong here; ignored");
                continue;
            }
            self.extra_attrs(c, &[]);
            match classify(&c.text()) {
                Val::Plain(v) => plain.push(v),
                Val::Env(v) => {
                    self.item(
                        c.pos,
                        ItemKind::Mapped,
                        "value",
                        format!("a named value: read from the environment variable {v}"),
                    );
                    self.vars.insert(v.clone());
                    env.push(v);
                }
                Val::No(r) => {
                    dropped = true;
                    self.unsupported(c.pos, "value", r);
                }
            }
        }
        (plain, env, dropped)
    }

    fn check_header(&mut self, e: &Element) {
        self.extra_attrs(
            e,
            &[
                "name",
                "failed-check-httpcode",
                "failed-check-error-message",
                "ignore-case",
            ],
        );
        let Some(name) = e.attr("name").map(classify) else {
            self.error(
                e.pos,
                "check-header",
                "a check-header needs a name".to_string(),
            );
            return;
        };
        let name = match name {
            Val::Plain(n) if !n.is_empty() => n,
            _ => {
                self.error(
                    e.pos,
                    "check-header",
                    "the header name must be a literal; leaving the check out would let every request through".to_string(),
                );
                return;
            }
        };
        let (plain, env, dropped) = self.values(e);
        if plain.is_empty() && env.is_empty() {
            let why = if dropped {
                "none of its values can be imported"
            } else {
                "it has no <value>"
            };
            self.error(
                e.pos,
                "check-header",
                format!("{why}; leaving the check out would let every request through"),
            );
            return;
        }
        let status = match e.attr("failed-check-httpcode") {
            None => 401,
            Some(s) => match s.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    self.error(
                        e.pos,
                        "check-header",
                        format!("failed-check-httpcode {s:?} is not a status code"),
                    );
                    return;
                }
            },
        };
        if let Some(a) = e
            .attrs
            .iter()
            .find(|a| a.name == "failed-check-error-message")
        {
            self.unsupported(
                a.pos,
                "check-header@failed-check-error-message",
                "require_headers replies have a fixed short body (never a configured message); ignored",
            );
        }
        if let Some(a) = e.attrs.iter().find(|a| a.name == "ignore-case") {
            match a.value.as_str() {
                "false" => {}
                "true" => self.unsupported(
                    a.pos,
                    "check-header@ignore-case",
                    "policy-v1 compares values exactly (in constant time); the imported check accepts only the values as written",
                ),
                _ => self.unsupported(a.pos, "check-header@ignore-case", "neither true nor false; values are compared exactly"),
            }
        }
        let mut entry = J::obj().with("name", J::Str(name));
        if !plain.is_empty() {
            entry.push("values", J::strs(plain.iter().map(String::as_str)));
        }
        if !env.is_empty() {
            entry.push(
                "values_from",
                J::Arr(env.iter().map(|v| J::obj().with("env", J::s(v))).collect()),
            );
        }
        entry.push("status", J::Int(status));
        let path = format!("require_headers[{}]", self.require.len());
        self.origin(path, e.pos, "check-header");
        self.require.push(entry);
        self.item(
            e.pos,
            ItemKind::Mapped,
            "check-header",
            "a require_headers entry".to_string(),
        );
    }

    fn set_header(&mut self, e: &Element, section: Section) {
        self.extra_attrs(e, &["name", "exists-action"]);
        let name = match e.attr("name").map(classify) {
            Some(Val::Plain(n)) if !n.is_empty() => n,
            Some(Val::No(r)) => {
                self.unsupported(e.pos, "set-header", r);
                return;
            }
            _ => {
                self.unsupported(
                    e.pos,
                    "set-header",
                    "the header name must be a literal; left out",
                );
                return;
            }
        };
        let action = e.attr("exists-action").unwrap_or("override");
        let exists = match action {
            "override" | "skip" | "append" => action,
            "delete" => {
                let op = J::obj().with("remove", J::Str(name.clone()));
                for c in e.elements() {
                    self.item(
                        c.pos,
                        ItemKind::Skipped,
                        &c.name,
                        "a value of a delete is never used".to_string(),
                    );
                }
                self.push_op(e, section, op, format!("remove {name}"));
                return;
            }
            other => {
                let r = format!(
                    "exists-action {other:?} is not override, skip, append or delete; left out"
                );
                self.item(e.pos, ItemKind::Unsupported, "set-header", r);
                return;
            }
        };
        let (plain, env, dropped) = self.values(e);
        if dropped {
            self.unsupported(
                e.pos,
                "set-header",
                "left out: one of its values cannot be imported",
            );
            return;
        }
        let value = match (plain.len(), env.len()) {
            (0, 0) => {
                self.unsupported(e.pos, "set-header", "no <value>; left out");
                return;
            }
            (_, 0) => J::Str(plain.join(", ")),
            (0, 1) => J::obj().with("env", J::s(env.first().map_or("", String::as_str))),
            _ => {
                self.unsupported(
                    e.pos,
                    "set-header",
                    "a named value together with other values; policy-v1 reads one whole value from the environment; left out",
                );
                return;
            }
        };
        if section == Section::Outbound
            && action == "override"
            && name.eq_ignore_ascii_case("strict-transport-security")
            && self.hsts.is_none()
        {
            if let J::Str(v) = &value {
                if let Some(h) = hsts(v) {
                    self.hsts = Some(h);
                    self.origin("hsts".to_string(), e.pos, "set-header");
                    self.item(
                        e.pos,
                        ItemKind::Mapped,
                        "set-header",
                        "Strict-Transport-Security becomes the hsts section (sent on secure responses only, as RFC 6797 asks)".to_string(),
                    );
                    return;
                }
            }
        }
        let joined = plain.len() > 1;
        let mut op = J::obj().with("set", J::Str(name.clone()));
        match value {
            J::Str(v) => op.push("value", J::Str(v)),
            other => op.push("value_from", other),
        }
        op.push("exists", J::s(exists));
        let mut what = format!("set {name} (exists: {exists})");
        if joined {
            what.push_str(", its values joined with \", \" into one value");
        }
        self.push_op(e, section, op, what);
    }

    fn push_op(&mut self, e: &Element, section: Section, op: J, what: String) {
        let (list, key) = match section {
            Section::Outbound => (&mut self.response_ops, "response_headers"),
            _ => (&mut self.request_ops, "request_headers"),
        };
        let path = format!("{key}[{}]", list.len());
        list.push(op);
        self.origin(path, e.pos, "set-header");
        self.item(
            e.pos,
            ItemKind::Mapped,
            "set-header",
            format!("a {key} op: {what}"),
        );
    }

    fn finish(mut self, opts: &Options<'_>) -> Outcome {
        let mut doc = J::obj().with("name", J::s(&opts.name));
        let src = if opts.source.is_empty() {
            "an APIM policy".to_string()
        } else {
            opts.source.clone()
        };
        doc.push(
            "provenance",
            J::obj().with(
                "description",
                J::Str(format!("imported by portcullis import apim from {src}")),
            ),
        );
        let mut rules: Vec<(J, Pos)> = core::mem::take(&mut self.deny_rules);
        let has_allow = self.allow_rule.is_some();
        if let Some(r) = self.allow_rule.take() {
            rules.push(r);
        }
        if !rules.is_empty() {
            let mut list = Vec::new();
            for (i, (mut r, pos)) in rules.into_iter().enumerate() {
                if let J::Obj(m) = &mut r {
                    for (k, v) in m.iter_mut() {
                        if k == "priority" {
                            *v = J::Int(100 + 10 * i64::try_from(i).unwrap_or(0));
                        }
                    }
                }
                self.origins.push((
                    format!("network.rules[{i}]"),
                    pos.pair(),
                    "ip-filter".to_string(),
                ));
                list.push(r);
            }
            doc.push(
                "network",
                J::obj().with("rules", J::Arr(list)).with(
                    "default_access",
                    J::s(if has_allow { "deny" } else { "allow" }),
                ),
            );
        }
        if !self.require.is_empty() {
            doc.push(
                "require_headers",
                J::Arr(core::mem::take(&mut self.require)),
            );
        }
        if !self.request_ops.is_empty() {
            doc.push(
                "request_headers",
                J::Arr(core::mem::take(&mut self.request_ops)),
            );
        }
        if !self.response_ops.is_empty() {
            doc.push(
                "response_headers",
                J::Arr(core::mem::take(&mut self.response_ops)),
            );
        }
        if let Some(h) = self.hsts.take() {
            doc.push("hsts", h);
        }
        self.report.variables = self.vars.iter().cloned().collect();
        finish(&doc, self.report, opts.strict, &self.origins)
    }
}

/// `max-age=N[; includeSubDomains][; preload]` as an hsts section, when it
/// is exactly that (and legal).
fn hsts(v: &str) -> Option<J> {
    let mut max_age = None;
    let mut sub = false;
    let mut preload = false;
    for d in v.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        let lower = d.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("max-age=") {
            let n = n.trim_matches('"');
            if max_age.is_some() || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            max_age = Some(n.parse::<i64>().ok()?);
        } else if lower == "includesubdomains" && !sub {
            sub = true;
        } else if lower == "preload" && !preload {
            preload = true;
        } else {
            return None;
        }
    }
    let max_age = max_age?;
    if preload && (max_age < 31_536_000 || !sub) {
        return None;
    }
    Some(
        J::obj()
            .with("max_age", J::Int(max_age))
            .with("include_subdomains", J::Bool(sub))
            .with("preload", J::Bool(preload)),
    )
}
