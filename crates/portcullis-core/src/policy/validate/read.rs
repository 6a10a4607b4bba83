//! The validator's readers of JSON values: each checks one kind of value
//! and records a problem (with its path) when it is not that kind.

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::error::{Error, Problem};
use crate::json::{self, Kind, Span, Value};
use crate::words::Words;

use super::{child, Validator};

/// An object's first occurrences of the allowed keys.
/// A value that was present but invalid: its problem is recorded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reported;

pub(super) struct Fields<'v> {
    pub(super) items: Vec<(&'v str, &'v Value)>,
    pub(super) span: Span,
}

impl<'v> Fields<'v> {
    pub(super) fn get(&self, k: &str) -> Option<&'v Value> {
        self.items.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)
    }
}

/// One element of a list the document may hold as text (an address list,
/// see [`json::parse_lean`]).
pub(super) enum Elem<'v> {
    /// A string, with its span.
    Str(Span, &'v str),
    /// Anything else, for the error.
    Other(&'v Value),
}

/// The elements of such a list, from the tree or from the text.
pub(super) enum Elems<'v> {
    Values(core::slice::Iter<'v, Value>),
    Text(json::Strings<'v>),
}

impl<'v> Iterator for Elems<'v> {
    type Item = Elem<'v>;

    fn next(&mut self) -> Option<Elem<'v>> {
        match self {
            Elems::Values(it) => it.next().map(|v| match &v.kind {
                Kind::String(s) => Elem::Str(v.span, s),
                _ => Elem::Other(v),
            }),
            Elems::Text(it) => it.next().map(|(span, s)| Elem::Str(span, s)),
        }
    }
}

/// The arrays a policy document keeps as text when it is read (the
/// [`json::Capture`] the policy reader passes to [`json::parse_lean`]): the
/// address lists, rules' `source` and `destination`,
/// `client_ip.trusted_proxies` and each address group. Public so that
/// fuzzing can hold the lean tree to the full one.
pub fn address_list(parent: Option<&str>, key: &str) -> bool {
    matches!(key, "source" | "destination" | "trusted_proxies") || parent == Some("address_groups")
}

impl<'t> Validator<'t> {
    /// A list that may be held as text: its length and elements, or `None`
    /// (the problem recorded) when `v` is not a list.
    pub(super) fn list<'v>(&mut self, v: &'v Value, path: &str) -> Option<(usize, Elems<'v>)>
    where
        't: 'v,
    {
        match &v.kind {
            Kind::Strings(n) => Some((*n, Elems::Text(v.strings(self.lines.text())))),
            _ => self
                .array(v, path)
                .map(|a| (a.len(), Elems::Values(a.iter()))),
        }
    }

    pub(super) fn err(&mut self, path: &str, span: Span, error: Error) {
        let (line, column) = self.lines.line_col(span.start);
        self.problems.push(Problem {
            path: path.to_string(),
            line,
            column,
            error,
        });
    }

    /// Records that `v` (at `path`) is not `expected` (e.g. "an integer").
    pub(super) fn wrong_type(&mut self, path: &str, v: &Value, expected: &'static str) {
        let found = v.kind_name();
        self.err(path, v.span, Error::WrongType { expected, found });
    }

    pub(super) fn fields<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<Fields<'v>> {
        let Kind::Object(members) = &v.kind else {
            self.wrong_type(path, v, "an object");
            return None;
        };
        let mut items: Vec<(&'v str, &'v Value)> = Vec::with_capacity(members.len());
        for m in members {
            let p = child(path, &m.key);
            if items.iter().any(|(k, _)| *k == m.key) {
                self.err(&p, m.key_span, Error::DuplicateKey(m.key.clone()));
            } else if !allowed.contains(&m.key.as_str()) {
                self.err(
                    &p,
                    m.key_span,
                    Error::UnknownField {
                        field: m.key.clone(),
                        expected: allowed,
                    },
                );
            } else {
                items.push((&m.key, &m.value));
            }
        }
        Some(Fields {
            items,
            span: v.span,
        })
    }

    pub(super) fn required<'v>(
        &mut self,
        f: &Fields<'v>,
        path: &str,
        k: &'static str,
    ) -> Option<&'v Value> {
        let v = f.get(k);
        if v.is_none() {
            self.err(path, f.span, Error::MissingField(k));
        }
        v
    }

    pub(super) fn string<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v str> {
        match &v.kind {
            Kind::String(s) => Some(s),
            _ => {
                self.wrong_type(path, v, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.wrong_type(path, v, "true or false");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, v: &Value, path: &str, min: u64, max: u64) -> Option<u64> {
        match (&v.kind, v.as_u64()) {
            (_, Some(n)) if (min..=max).contains(&n) => Some(n),
            (Kind::Number(_), _) => {
                self.err(path, v.span, Error::OutOfRange { min, max });
                None
            }
            _ => {
                self.wrong_type(path, v, "an integer");
                None
            }
        }
    }

    pub(super) fn array<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v [Value]> {
        match &v.kind {
            Kind::Array(a) => Some(a),
            _ => {
                self.wrong_type(path, v, "a list");
                None
            }
        }
    }

    /// An optional field with a default: what `read` makes of it when
    /// present, `default` when absent, `None` when present but invalid (the
    /// problem is recorded).
    pub(super) fn or_default<'v, T>(
        &mut self,
        v: Option<&'v Value>,
        default: T,
        read: impl FnOnce(&mut Self, &'v Value) -> Option<T>,
    ) -> Option<T> {
        match v {
            Some(v) => read(self, v),
            None => Some(default),
        }
    }

    /// An optional section, kept as an `Option` in the model: `Ok(None)`
    /// when absent, `Err(Reported)` when present but invalid (the problem is
    /// recorded).
    pub(super) fn section<'v, T>(
        &mut self,
        v: Option<&'v Value>,
        read: impl FnOnce(&mut Self, &'v Value) -> Option<T>,
    ) -> Result<Option<T>, Reported> {
        match v {
            Some(v) => read(self, v).map(Some).ok_or(Reported),
            None => Ok(None),
        }
    }

    /// One of `T`'s words, in any case.
    pub(super) fn word<T: Words>(&mut self, v: &Value, path: &str) -> Option<T> {
        let s = self.string(v, path)?;
        let found = T::ALL
            .iter()
            .copied()
            .find(|t| t.as_word().eq_ignore_ascii_case(s));
        if found.is_none() {
            self.err(
                path,
                v.span,
                Error::NotOneOf {
                    found: s.to_string(),
                    expected: T::WORDS,
                },
            );
        }
        found
    }

    pub(super) fn status(
        &mut self,
        v: Option<&Value>,
        path: &str,
        default: u16,
        allowed: &'static [u16],
        desc: &'static str,
    ) -> Option<u16> {
        let Some(v) = v else { return Some(default) };
        let n = match &v.kind {
            Kind::Number(_) => v.as_u64(),
            _ => {
                self.wrong_type(path, v, "an integer");
                return None;
            }
        };
        match n.and_then(|n| u16::try_from(n).ok()) {
            Some(s) if (allowed.is_empty() && (400..=599).contains(&s)) || allowed.contains(&s) => {
                Some(s)
            }
            _ => {
                self.err(path, v.span, Error::BadStatus { allowed: desc });
                None
            }
        }
    }
}
