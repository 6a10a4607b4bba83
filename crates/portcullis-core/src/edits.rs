//! Header edits: the request ops (step 5), the response ops and HSTS
//! (step 6) as a list of [`Edit`]s for a host to apply, and
//! [`apply_edits`], which applies them the way a proxy does.
//!
//! The request edits start with the removal of `_` twins: when the policy
//! sets or requires a header (`x-functions-key`), a request header whose
//! name holds a `_` and equals that name once each `_` is read as `-`
//! (`x_functions_key`, `X_Functions-Key`) is removed before forwarding, since
//! some backends (CGI/WSGI-style stacks) read both names as one. The core
//! emits [`EditOp::RemoveTwins`] only when the headers it is handed hold such
//! a twin, so hosts that apply it must hand over header names
//! ([`Headers::each_name`]). Step 4 compares names exactly and so never sees
//! a twin as the required header.

// The request path: arithmetic that could overflow is denied here (see
// the crate docs).
#![deny(clippy::arithmetic_side_effects)]

use alloc::vec::Vec;

use crate::decide::Headers;
use crate::policy::{Exists, HeaderOp, Policy};
use crate::words::words;

words! {
    /// How an edit changes a header.
    pub enum EditOp {
        /// Remove every value.
        Remove = "remove",
        /// Replace every value with this one.
        Replace = "replace",
        /// Add one more value.
        Append = "append",
        /// Remove every header whose name holds a `_` and equals `name` once
        /// each `_` is read as `-` (case-insensitively); see [`is_twin`].
        RemoveTwins = "remove_twins",
    }
}

/// Whether a request header `name` is a `_` twin of `of` (a lowercase name):
/// it holds a `_`, and reading each `_` as `-` gives `of`, in any case.
///
/// ```
/// use portcullis_core::edits::is_twin;
/// assert!(is_twin(b"x_functions_key", "x-functions-key"));
/// assert!(is_twin(b"X_Functions-KEY", "x-functions-key"));
/// assert!(!is_twin(b"x-functions-key", "x-functions-key"));
/// assert!(!is_twin(b"x__functions-key", "x-functions-key"));
/// ```
pub fn is_twin(name: &[u8], of: &str) -> bool {
    name.len() == of.len()
        && name.contains(&b'_')
        && name.iter().zip(of.as_bytes()).all(|(&a, &b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

/// One header edit for a host to apply, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit<'p> {
    /// What to do.
    pub op: EditOp,
    /// Lowercased header name.
    pub name: &'p str,
    /// Value (empty for `Remove`).
    pub value: &'p [u8],
}

impl Policy {
    /// Header edits for the request forwarded upstream (step 5): first a
    /// [`EditOp::RemoveTwins`] for each header the policy sets or requires
    /// whose `_` twin is among `headers`, then the request ops.
    pub fn request_edits<'p>(&'p self, headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
        let start = out.len();
        for g in self.guarded_names() {
            if out.iter().skip(start).any(|e| e.name == g) {
                continue;
            }
            let mut twin = false;
            headers.each_name(&mut |n| twin |= is_twin(n, g));
            if twin {
                out.push(Edit {
                    op: EditOp::RemoveTwins,
                    name: g,
                    value: b"",
                });
            }
        }
        ops_to_edits(&self.request_headers, headers, out);
    }

    /// Header edits for a response sent downstream (step 6): the response
    /// ops, then HSTS on secure requests (and no HSTS on plain ones).
    /// `headers` is only consulted for `exists: skip` ops.
    pub fn response_edits<'p>(
        &'p self,
        secure: bool,
        headers: &dyn Headers,
        out: &mut Vec<Edit<'p>>,
    ) {
        ops_to_edits(&self.response_headers, headers, out);
        if let Some(h) = &self.hsts {
            out.push(Edit {
                op: if secure {
                    EditOp::Replace
                } else {
                    EditOp::Remove
                },
                name: "strict-transport-security",
                value: if secure { h.value.as_bytes() } else { b"" },
            });
        }
    }
}

fn ops_to_edits<'p>(ops: &'p [HeaderOp], headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
    for (i, op) in ops.iter().enumerate() {
        match op {
            HeaderOp::Remove(name) => out.push(Edit {
                op: EditOp::Remove,
                name,
                value: b"",
            }),
            HeaderOp::Set {
                name,
                value,
                exists,
                ..
            } => {
                let op = match exists {
                    Exists::Override => EditOp::Replace,
                    Exists::Append => EditOp::Append,
                    Exists::Skip => {
                        // Present now = the last earlier op on this name
                        // decides, else the incoming headers do.
                        let earlier = ops.get(..i).unwrap_or(&[]);
                        let present = match earlier.iter().rev().find(|o| o.name() == name) {
                            Some(HeaderOp::Remove(_)) => false,
                            Some(HeaderOp::Set { .. }) => true,
                            None => headers.has(name),
                        };
                        if present {
                            continue;
                        }
                        EditOp::Append
                    }
                };
                out.push(Edit {
                    op,
                    name,
                    value: value.as_bytes(),
                });
            }
        }
    }
}

/// One entry of a header list [`apply_edits`] can edit: owned pairs
/// (`(Vec<u8>, Vec<u8>)`, `(String, Vec<u8>)`) or pairs borrowed from a
/// host's buffer and from the edits (`(&[u8], &[u8])`), so a host can edit a
/// map it read without copying every header.
pub trait HeaderEntry<'e> {
    /// The entry's name.
    fn name(&self) -> &[u8];
    /// Gives the entry an edit's value.
    fn set_value(&mut self, value: &'e [u8]);
    /// A new entry from an edit.
    fn from_edit(name: &'e str, value: &'e [u8]) -> Self;
}

impl<'e, N: AsRef<[u8]> + From<&'e str>> HeaderEntry<'e> for (N, Vec<u8>) {
    fn name(&self) -> &[u8] {
        self.0.as_ref()
    }
    fn set_value(&mut self, value: &'e [u8]) {
        self.1 = value.to_vec();
    }
    fn from_edit(name: &'e str, value: &'e [u8]) -> Self {
        (N::from(name), value.to_vec())
    }
}

impl<'e> HeaderEntry<'e> for (&'e [u8], &'e [u8]) {
    fn name(&self) -> &[u8] {
        self.0
    }
    fn set_value(&mut self, value: &'e [u8]) {
        self.1 = value;
    }
    fn from_edit(name: &'e str, value: &'e [u8]) -> Self {
        (name.as_bytes(), value)
    }
}

/// Applies edits to a header list the way a proxy does (names compared
/// case-insensitively): `Remove` drops every entry of the name, `Replace`
/// gives the first entry the value and drops the others (or appends one),
/// `Append` adds an entry. Used by the native engine, the playground, the
/// filter (on borrowed pairs) and tests.
///
/// ```
/// use portcullis_core::{apply_edits, Edit, EditOp};
/// let mut h: Vec<(&[u8], &[u8])> = vec![(b"server", b"IIS"), (b"a", b"1")];
/// apply_edits(&mut h, &[Edit { op: EditOp::Remove, name: "Server", value: b"" },
///                       Edit { op: EditOp::Replace, name: "b", value: b"2" }]);
/// assert_eq!(h, [(&b"a"[..], &b"1"[..]), (b"b", b"2")]);
/// ```
///
/// ```
/// use portcullis_core::{apply_edits, Policy};
///
/// let policy = Policy::parse(br#"{
///   "name": "orders-api",
///   "request_headers": [
///     { "remove": "X-Debug" },
///     { "set": "x-functions-key", "value": "K-1" },
///     { "set": "x-request-source", "value": "gateway", "exists": "skip" }
///   ]
/// }"#)
/// .unwrap();
/// let mut headers: Vec<(String, Vec<u8>)> = vec![
///     ("x-debug".into(), b"1".to_vec()),
///     ("X-Functions-Key".into(), b"forged".to_vec()),
///     ("x-request-source".into(), b"mobile".to_vec()),
/// ];
/// let mut edits = Vec::new();
/// policy.request_edits(&headers, &mut edits);
/// apply_edits(&mut headers, &edits);
/// assert_eq!(headers, [
///     ("X-Functions-Key".to_string(), b"K-1".to_vec()),
///     ("x-request-source".to_string(), b"mobile".to_vec()),
/// ]);
/// ```
pub fn apply_edits<'e, E: HeaderEntry<'e>>(list: &mut Vec<E>, edits: &[Edit<'e>]) {
    for e in edits {
        let name = e.name.as_bytes();
        match e.op {
            EditOp::Remove => list.retain(|h| !h.name().eq_ignore_ascii_case(name)),
            EditOp::Replace => {
                let mut first = true;
                list.retain_mut(|h| {
                    if !h.name().eq_ignore_ascii_case(name) {
                        return true;
                    }
                    if first {
                        first = false;
                        h.set_value(e.value);
                        true
                    } else {
                        false
                    }
                });
                if first {
                    list.push(E::from_edit(e.name, e.value));
                }
            }
            EditOp::Append => list.push(E::from_edit(e.name, e.value)),
            EditOp::RemoveTwins => list.retain(|h| !is_twin(h.name(), e.name)),
        }
    }
}
