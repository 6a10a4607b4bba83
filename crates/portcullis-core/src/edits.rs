//! Header edits: the request ops (step 5), the response ops and HSTS
//! (step 6) as a list of [`Edit`]s for a host to apply, and
//! [`apply_edits`], which applies them the way a proxy does.

// The request path: arithmetic that could overflow is denied here (see
// the crate docs).
#![deny(clippy::arithmetic_side_effects)]

use alloc::vec::Vec;

use crate::decide::Headers;
use crate::policy::{Exists, HeaderOp, Policy};

/// How an edit changes a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    /// Remove every value.
    Remove,
    /// Replace every value with this one.
    Replace,
    /// Add one more value.
    Append,
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
    /// Header edits for the request forwarded upstream (step 5).
    pub fn request_edits<'p>(&'p self, headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
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

/// Applies edits to a header list the way a proxy does (names compared
/// case-insensitively). Used by the native engine, the playground and tests.
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
pub fn apply_edits<N>(list: &mut Vec<(N, Vec<u8>)>, edits: &[Edit<'_>])
where
    N: AsRef<[u8]> + for<'a> From<&'a str>,
{
    for e in edits {
        match e.op {
            EditOp::Remove => {
                list.retain(|(n, _)| !n.as_ref().eq_ignore_ascii_case(e.name.as_bytes()))
            }
            EditOp::Replace => {
                let mut first = true;
                list.retain_mut(|(n, v)| {
                    if !n.as_ref().eq_ignore_ascii_case(e.name.as_bytes()) {
                        return true;
                    }
                    if first {
                        first = false;
                        *v = e.value.to_vec();
                        true
                    } else {
                        false
                    }
                });
                if first {
                    list.push((N::from(e.name), e.value.to_vec()));
                }
            }
            EditOp::Append => list.push((N::from(e.name), e.value.to_vec())),
        }
    }
}
