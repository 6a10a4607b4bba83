//! Header names and values, header ops (`request_headers`,
//! `response_headers`) and `require_headers`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::Error;
use crate::json::Value;

use super::super::syntax::{is_token, HOP_BY_HOP};
use super::super::{Exists, HeaderOp, RequiredHeader};
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
            let Some(f) = self.fields(it, &p, &["remove", "set", "value", "exists"]) else {
                ok = false;
                continue;
            };
            let op = match (f.get("remove"), f.get("set")) {
                (Some(r), None) => {
                    if f.get("value").is_some() || f.get("exists").is_some() {
                        self.err(
                            &p,
                            it.span,
                            Error::Conflict("\"remove\" takes no \"value\" or \"exists\""),
                        );
                        None
                    } else {
                        self.header_name(r, &child(&p, "remove"), true)
                            .map(HeaderOp::Remove)
                    }
                }
                (None, Some(s)) => {
                    let name = self.header_name(s, &child(&p, "set"), true);
                    let value = match f.get("value") {
                        Some(v) => self.header_value(v, &child(&p, "value")),
                        None => {
                            self.err(&p, it.span, Error::MissingField("value"));
                            None
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
            let Some(f) = self.fields(it, &p, &["name", "values", "status"]) else {
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
            let values = self.required(&f, &p, "values").and_then(|vs| {
                let vp = child(&p, "values");
                let list = self.array(vs, &vp)?;
                if list.is_empty() {
                    self.err(&vp, vs.span, Error::Empty);
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for (j, x) in list.iter().enumerate() {
                    let xp = index(&vp, j);
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
            });
            match (name, values, status) {
                (Some(name), Some(values), Some(status)) => out.push(RequiredHeader {
                    name,
                    values,
                    status,
                }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }
}
