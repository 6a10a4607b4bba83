//! The `scopes` list: names, `match`, `inherit` and each scope's own
//! sections (read by the same readers as the top level's, their problems'
//! paths prefixed with `scopes[i].`).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::addr::AddrSet;
use crate::error::Error;
use crate::json::Value;

use super::super::scope::{HostPattern, PathPattern, Restated, Scope, MAX_SCOPES};
use super::super::syntax::{is_name, is_token};
use super::super::{ClientFrom, ClientIp, Mode, Policy, TraceWhen};

use super::{child, index, Validator};

const SCOPE: &[&str] = &[
    "name",
    "match",
    "inherit",
    "network",
    "https_only",
    "require_headers",
    "request_headers",
    "response_headers",
    "hsts",
    "mode",
];

const MATCH: &[&str] = &["hosts", "paths", "methods"];

/// The pattern of a scope name: a policy name that starts with a letter or
/// digit (`-` alone stands for "no scope" in traces).
pub(crate) fn is_scope_name(s: &str) -> bool {
    is_name(s, 64) && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Joins a prefix and a path found inside it.
fn join(prefix: &str, path: &str) -> String {
    if path.is_empty() {
        prefix.to_string()
    } else if path.starts_with('[') {
        alloc::format!("{prefix}{path}")
    } else {
        alloc::format!("{prefix}.{path}")
    }
}

impl<'t> Validator<'t> {
    /// Runs `f`, then prefixes the paths of the problems it found.
    fn nested<T>(&mut self, prefix: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let before = self.problems.len();
        let out = f(self);
        for p in self.problems.iter_mut().skip(before) {
            p.path = join(prefix, &p.path);
        }
        out
    }

    pub(super) fn scopes(
        &mut self,
        v: &Value,
        groups: &BTreeMap<String, AddrSet>,
        client_ip: Option<&ClientIp>,
    ) -> Option<Vec<Scope>> {
        let items = self.array(v, "scopes")?;
        if items.len() > MAX_SCOPES {
            self.err(
                "scopes",
                v.span,
                Error::OutOfRange {
                    min: 0,
                    max: MAX_SCOPES as u64,
                },
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        for (i, it) in items.iter().enumerate() {
            let p = index("scopes", i);
            // Unique names, read from the raw objects so that scopes with
            // other mistakes still take part.
            if let Some((n, nv)) = it.get("name").and_then(|nv| Some((nv.as_str()?, nv))) {
                if let Some(first) = names.get(n) {
                    let e = Error::DuplicateScopeName {
                        name: n.to_string(),
                        first: first.clone(),
                        second: p.clone(),
                    };
                    self.err(&child(&p, "name"), nv.span, e);
                    ok = false;
                } else {
                    names.insert(n, p.clone());
                }
            }
            match self.scope(it, &p, groups, client_ip) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn scope(
        &mut self,
        v: &Value,
        p: &str,
        groups: &BTreeMap<String, AddrSet>,
        client_ip: Option<&ClientIp>,
    ) -> Option<Scope> {
        let f = self.fields(v, p, SCOPE)?;
        let name = self.required(&f, p, "name").and_then(|n| {
            let np = child(p, "name");
            let s = self.string(n, &np)?;
            if is_scope_name(s) {
                Some(s.to_string())
            } else {
                self.err(
                    &np,
                    n.span,
                    Error::BadName {
                        pattern: "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                    },
                );
                None
            }
        });
        let matched = self
            .required(&f, p, "match")
            .and_then(|m| self.matcher(m, &child(p, "match")));
        let inherit = match f.get("inherit") {
            Some(b) => self.boolean(b, &child(p, "inherit")),
            None => Some(true),
        };
        let restated = Restated {
            network: f.get("network").is_some(),
            https_only: f.get("https_only").is_some(),
            hsts: f.get("hsts").is_some(),
            mode: f.get("mode").is_some(),
            require_headers: f.get("require_headers").is_some(),
            request_headers: f.get("request_headers").is_some(),
            response_headers: f.get("response_headers").is_some(),
        };
        let network = match f.get("network") {
            Some(n) => self.nested(p, |s| s.network(n, groups)).map(Some),
            None => Some(None),
        };
        let https_only = match f.get("https_only") {
            Some(h) => self.nested(p, |s| s.https_only(h)).map(Some),
            None => Some(None),
        };
        if let (Some(Some(h)), Some(c)) = (&https_only, client_ip) {
            if h.trust_forwarded_proto && c.trusted_proxies.is_empty() {
                let span = f.get("https_only").map(|v| v.span).unwrap_or_default();
                self.err(
                    &join(p, "https_only.trust_forwarded_proto"),
                    span,
                    Error::Conflict("trust_forwarded_proto needs client_ip.trusted_proxies"),
                );
            }
        }
        let require_headers = match f.get("require_headers") {
            Some(r) => self.nested(p, |s| s.require_headers(r)),
            None => Some(Vec::new()),
        };
        let request_headers = match f.get("request_headers") {
            Some(r) => self.nested(p, |s| s.header_ops(r, "request_headers")),
            None => Some(Vec::new()),
        };
        let response_headers = match f.get("response_headers") {
            Some(r) => self.nested(p, |s| s.header_ops(r, "response_headers")),
            None => Some(Vec::new()),
        };
        let hsts = match f.get("hsts") {
            Some(h) => self.nested(p, |s| s.hsts(h)).map(Some),
            None => Some(None),
        };
        let mode = match f.get("mode") {
            Some(m) => self.word::<Mode>(m, &child(p, "mode")),
            None => Some(Mode::Enforce),
        };
        let (hosts, paths, methods) = matched?;
        Some(Scope {
            name: name?,
            hosts,
            paths,
            methods,
            inherit: inherit?,
            restated,
            line: self.lines.line_col(v.span.start).0,
            policy: Box::new(Policy {
                name: String::new(),
                client_ip: ClientIp {
                    from: ClientFrom::Peer,
                    trusted_proxies: AddrSet::default(),
                    header: None,
                },
                network: network?,
                https_only: https_only?,
                require_headers: require_headers?,
                request_headers: request_headers?,
                response_headers: response_headers?,
                hsts: hsts?,
                mode: mode?,
                trace_json: false,
                trace: TraceWhen::All,
                address_groups: BTreeMap::new(),
                scopes: Vec::new(),
                inline_credentials: Vec::new(),
            }),
        })
    }

    /// `match`: at least one of `hosts`, `paths`, `methods`, none empty.
    #[allow(clippy::type_complexity)]
    fn matcher(
        &mut self,
        v: &Value,
        p: &str,
    ) -> Option<(Vec<HostPattern>, Vec<PathPattern>, Vec<String>)> {
        let f = self.fields(v, p, MATCH)?;
        if f.items.is_empty() {
            self.err(p, v.span, Error::Empty);
            return None;
        }
        let hosts = self.patterns(f.get("hosts"), &child(p, "hosts"), |s| {
            HostPattern::parse(s).map_err(|why| Error::BadHostPattern {
                text: s.to_string(),
                why,
            })
        });
        let paths = self.patterns(f.get("paths"), &child(p, "paths"), |s| {
            PathPattern::parse(s).map_err(|why| Error::BadPathPattern {
                text: s.to_string(),
                why,
            })
        });
        let methods = self.patterns(f.get("methods"), &child(p, "methods"), |s| {
            if is_token(s) {
                Ok(s.to_string())
            } else {
                Err(Error::BadMethod(s.to_string()))
            }
        });
        Some((hosts?, paths?, methods?))
    }

    /// A non-empty list of strings, each read by `parse`.
    fn patterns<T>(
        &mut self,
        v: Option<&Value>,
        p: &str,
        parse: impl Fn(&str) -> Result<T, Error>,
    ) -> Option<Vec<T>> {
        let Some(v) = v else {
            return Some(Vec::new());
        };
        let items = self.array(v, p)?;
        if items.is_empty() {
            self.err(p, v.span, Error::Empty);
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let ip = index(p, i);
            match self.string(it, &ip).map(&parse) {
                Some(Ok(x)) => out.push(x),
                Some(Err(e)) => {
                    self.err(&ip, it.span, e);
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}
