//! Header names and values, header ops (`request_headers`,
//! `response_headers`) and `require_headers`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::env::is_var_name;
use crate::error::{EnvProblem, Error};
use crate::json::{Kind, Value};
use crate::rule::{HeaderMatch, MAX_RULE_HEADERS};

use super::super::syntax::{is_token, FRAMING, HOP_BY_HOP};
use super::super::{Exists, HeaderOp, RequiredHeader};
use super::read::Elem;
use super::{child, index, Validator};

impl<'t> Validator<'t> {
    pub(super) fn header_name(&mut self, v: &Value, path: &str, for_ops: bool) -> Option<String> {
        let s = self.string(v, path)?;
        if s.starts_with(':') {
            self.err(
                path,
                v.span,
                Error::ForbiddenHeader {
                    name: s.to_string(),
                    why: "pseudo-headers belong to the proxy",
                },
            );
            return None;
        }
        if !is_token(s) {
            self.err(path, v.span, Error::BadHeaderName);
            return None;
        }
        let lower = s.to_ascii_lowercase();
        if for_ops {
            if HOP_BY_HOP.contains(&lower.as_str()) {
                self.err(
                    path,
                    v.span,
                    Error::ForbiddenHeader {
                        name: lower,
                        why: "hop-by-hop headers belong to the connection",
                    },
                );
                return None;
            }
            if FRAMING.contains(&lower.as_str()) {
                self.err(
                    path,
                    v.span,
                    Error::ForbiddenHeader {
                        name: lower,
                        why: "framing headers belong to the proxy (changing them can split one request into two)",
                    },
                );
                return None;
            }
            if lower == "host" {
                self.err(
                    path,
                    v.span,
                    Error::ForbiddenHeader {
                        name: lower,
                        why: "the host decides routing",
                    },
                );
                return None;
            }
        }
        Some(lower)
    }

    /// A rule's `headers`: a map of at most 8 header names (tokens, not
    /// pseudo-, hop-by-hop, framing or `host`; each once, whatever its
    /// case) to 1..8 non-empty values each. Sorted by name, so equal maps
    /// compare equal.
    pub(super) fn rule_headers(&mut self, v: &Value, path: &str) -> Option<Vec<HeaderMatch>> {
        let Kind::Object(members) = &v.kind else {
            self.wrong_type(path, v, "an object");
            return None;
        };
        let mut out: Vec<HeaderMatch> = Vec::new();
        let mut ok = true;
        if members.len() > MAX_RULE_HEADERS {
            self.err(
                path,
                v.span,
                Error::TooMany {
                    what: "header names",
                    max: MAX_RULE_HEADERS,
                },
            );
            ok = false;
        }
        for m in members {
            let p = child(path, &m.key);
            let key = Value {
                kind: Kind::String(m.key.clone()),
                span: m.key_span,
            };
            let Some(name) = self.header_name(&key, &p, true) else {
                ok = false;
                continue;
            };
            if out.iter().any(|h| h.name == name) {
                self.err(&p, m.key_span, Error::DuplicateKey(m.key.clone()));
                ok = false;
                continue;
            }
            let Some((n, elems)) = self.list(&m.value, &p) else {
                ok = false;
                continue;
            };
            if n == 0 {
                self.err(&p, m.value.span, Error::Empty);
                ok = false;
                continue;
            }
            if n > MAX_RULE_HEADERS {
                self.err(
                    &p,
                    m.value.span,
                    Error::TooMany {
                        what: "values per header",
                        max: MAX_RULE_HEADERS,
                    },
                );
                ok = false;
                continue;
            }
            let mut values = Vec::with_capacity(n);
            for (j, e) in elems.enumerate() {
                let xp = index(&p, j);
                match e {
                    Elem::Str(span, "") => {
                        self.err(&xp, span, Error::Empty);
                        ok = false;
                    }
                    Elem::Str(span, s) if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) => {
                        self.err(&xp, span, Error::BadHeaderValue);
                        ok = false;
                    }
                    Elem::Str(_, s) => values.push(s.as_bytes().to_vec()),
                    Elem::Other(x) => {
                        self.wrong_type(&xp, x, "a string");
                        ok = false;
                    }
                }
            }
            out.push(HeaderMatch { name, values });
        }
        out.sort();
        ok.then_some(out)
    }

    pub(super) fn header_value(&mut self, v: &Value, path: &str) -> Option<String> {
        let s = self.string(v, path)?;
        if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            self.err(path, v.span, Error::BadHeaderValue);
            return None;
        }
        Some(s.to_string())
    }

    pub(super) fn header_ops(&mut self, v: &Value, path: &str) -> Option<Vec<HeaderOp>> {
        let items = self.array(v, path)?;
        let mut ops = Vec::new();
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let p = index(path, i);
            let Some(f) = self.fields(it, &p, &["remove", "set", "value", "value_from", "exists"])
            else {
                ok = false;
                continue;
            };
            let op = match (f.get("remove"), f.get("set")) {
                (Some(r), None) => {
                    if f.get("value").is_some()
                        || f.get("value_from").is_some()
                        || f.get("exists").is_some()
                    {
                        self.err(
                            &p,
                            it.span,
                            Error::Conflict(
                                "\"remove\" takes no \"value\", \"value_from\" or \"exists\"",
                            ),
                        );
                        None
                    } else {
                        self.header_name(r, &child(&p, "remove"), true)
                            .map(HeaderOp::Remove)
                    }
                }
                (None, Some(s)) => {
                    let name = self.header_name(s, &child(&p, "set"), true);
                    let (value, from_env) = match (f.get("value"), f.get("value_from")) {
                        (Some(v), None) => {
                            self.note_inline_credential(s, v, &child(&p, "value"));
                            (self.header_value(v, &child(&p, "value")), None)
                        }
                        (None, Some(v)) => match self.value_from(v, &child(&p, "value_from")) {
                            Some((var, value)) => (Some(value), Some(var)),
                            None => (None, None),
                        },
                        (Some(_), Some(_)) => {
                            self.err(
                                &p,
                                it.span,
                                Error::Conflict("give \"value\" or \"value_from\", not both"),
                            );
                            (None, None)
                        }
                        (None, None) => {
                            self.err(&p, it.span, Error::MissingOneOf(&["value", "value_from"]));
                            (None, None)
                        }
                    };
                    let exists = self.or_default(f.get("exists"), Exists::Override, |s, e| {
                        s.word(e, &child(&p, "exists"))
                    });
                    match (name, value, exists) {
                        (Some(name), Some(value), Some(exists)) => Some(HeaderOp::Set {
                            name,
                            value,
                            exists,
                            from_env,
                        }),
                        _ => None,
                    }
                }
                _ => {
                    self.err(&p, it.span, Error::BadHeaderOp);
                    None
                }
            };
            match op {
                Some(op) => ops.push(op),
                None => ok = false,
            }
        }
        ok.then_some(ops)
    }

    pub(super) fn require_headers(&mut self, v: &Value) -> Option<Vec<RequiredHeader>> {
        let items = self.array(v, "require_headers")?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            let p = index("require_headers", i);
            let Some(f) = self.fields(it, &p, &["name", "values", "values_from", "status"]) else {
                ok = false;
                continue;
            };
            let name = self
                .required(&f, &p, "name")
                .and_then(|n| self.header_name(n, &child(&p, "name"), false));
            let status = self.status(
                f.get("status"),
                &child(&p, "status"),
                401,
                &[],
                "from 400 to 599",
            );
            let inline = f.get("values").map(|vs| {
                if let Some(n) = f.get("name") {
                    self.note_inline_credential(n, vs, &child(&p, "values"));
                }
                self.required_values(vs, &child(&p, "values"))
            });
            let from_env = f
                .get("values_from")
                .map(|vs| self.values_from(vs, &child(&p, "values_from")));
            let values = match (inline, from_env) {
                (None, None) => {
                    self.err(&p, it.span, Error::MissingOneOf(&["values", "values_from"]));
                    None
                }
                (Some(Some(values)), None) => Some((values, Vec::new())),
                (None, Some(Some((env, values)))) => Some((values, env)),
                (Some(Some(mut values)), Some(Some((env, more)))) => {
                    values.extend(more);
                    Some((values, env))
                }
                _ => None,
            };
            match (name, values, status) {
                (Some(name), Some((values, env)), Some(status)) => out.push(RequiredHeader {
                    name,
                    values,
                    env,
                    status,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `values` of a `require_headers` entry: a non-empty list of non-empty
    /// header values.
    fn required_values(&mut self, vs: &Value, vp: &str) -> Option<Vec<Vec<u8>>> {
        let list = self.array(vs, vp)?;
        if list.is_empty() {
            self.err(vp, vs.span, Error::Empty);
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (j, x) in list.iter().enumerate() {
            let xp = index(vp, j);
            match self.header_value(x, &xp) {
                Some(s) if s.is_empty() => {
                    self.err(&xp, x.span, Error::Empty);
                    ok = false;
                }
                Some(s) => out.push(s.into_bytes()),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `values_from`: a non-empty list of `{"env": NAME}`; the variable names
    /// and their values.
    fn values_from(&mut self, vs: &Value, vp: &str) -> Option<(Vec<String>, Vec<Vec<u8>>)> {
        let list = self.array(vs, vp)?;
        if list.is_empty() {
            self.err(vp, vs.span, Error::Empty);
            return None;
        }
        let (mut names, mut values) = (Vec::new(), Vec::new());
        let mut ok = true;
        for (j, x) in list.iter().enumerate() {
            match self.value_from(x, &index(vp, j)) {
                Some((name, value)) => {
                    names.push(name);
                    values.push(value.into_bytes());
                }
                None => ok = false,
            }
        }
        ok.then_some((names, values))
    }

    /// `{"env": NAME}`: the variable's name and its value, read from the
    /// host environment now. Missing, empty or unusable values are errors
    /// that name the variable, never the value.
    fn value_from(&mut self, v: &Value, path: &str) -> Option<(String, String)> {
        let f = self.fields(v, path, &["env"])?;
        let ep = child(path, "env");
        let name = self.required(&f, path, "env")?;
        let var = self.string(name, &ep)?;
        if !is_var_name(var) {
            self.err(
                &ep,
                name.span,
                Error::BadName {
                    pattern: "[A-Za-z_][A-Za-z0-9_]{0,127}",
                },
            );
            return None;
        }
        let problem = match self.env.var(var) {
            None => Some(EnvProblem::Missing),
            Some(value) if value.is_empty() => Some(EnvProblem::Empty),
            Some(value) if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) => {
                Some(EnvProblem::BadValue)
            }
            Some(value) => return Some((var.to_string(), value)),
        };
        if let Some(problem) = problem {
            self.err(
                &ep,
                name.span,
                Error::Env {
                    var: var.to_string(),
                    problem,
                },
            );
        }
        None
    }

    /// Remembers an inline value given to a header whose name looks like a
    /// credential (`*-key`, `authorization`, `*token*`, `*secret*`), for the
    /// `inline-credential` lint: such values belong in the host environment.
    fn note_inline_credential(&mut self, name: &Value, value: &Value, path: &str) {
        let Some(name) = name.as_str() else {
            return;
        };
        if looks_like_credential(name) {
            let (line, _) = self.lines.line_col(value.span.start);
            self.inline_credentials.push((path.to_string(), line));
        }
    }
}

/// Whether a header name looks like it carries a credential.
pub(crate) fn looks_like_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("-key")
        || n.ends_with("_key")
        || n == "authorization"
        || n == "proxy-authorization"
        || n.contains("token")
        || n.contains("secret")
}
