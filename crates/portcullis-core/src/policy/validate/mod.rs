//! Validation: the JSON tree of a policy document to a [`Policy`], or every
//! problem with its path, line and column.
//!
//! One [`Validator`] walks the document; its readers of JSON values are in
//! `read`, and each section of the document has its own file:
//! `addresses` (address groups and address specs), `client_ip`, `network`
//! (rules, ports, the deny reply), `https` (`https_only`, `hsts`) and
//! `headers` (header ops and `require_headers`), `scopes`. The top level
//! is here.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::addr::AddrSet;
use crate::error::{Error, Problem, Problems};
use crate::json::Value;

use super::syntax::is_name;
use super::{ClientFrom, ClientIp, Policy};

mod addresses;
mod client_ip;
mod headers;
mod https;
mod network;
mod read;
mod scopes;

impl Policy {
    /// Every check but the matcher's own bound.
    pub(super) fn validate(value: &Value, text: &str) -> Result<Policy, Problems> {
        let mut v = Validator {
            lines: LineIndex::new(text),
            problems: Vec::new(),
            declared_groups: Vec::new(),
        };
        let policy = v.policy(value);
        match policy {
            Some(p) if v.problems.is_empty() => Ok(p),
            _ => {
                v.problems.sort_by_key(|p| (p.line, p.column));
                Err(Problems(v.problems))
            }
        }
    }
}

/// Byte offset to line and column, in O(log n).
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> Self {
        let mut starts = alloc::vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                starts.push(i + 1);
            }
        }
        LineIndex { text, starts }
    }
    fn at(&self, off: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= off).max(1);
        let ls = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(ls..off.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        (
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }
}

fn child(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => alloc::format!("{path}.{key}"),
        (_, false) => alloc::format!("{path}[{key:?}]"),
    }
}

fn index(path: &str, i: usize) -> String {
    alloc::format!("{path}[{i}]")
}

struct Validator<'t> {
    lines: LineIndex<'t>,
    problems: Vec<Problem>,
    /// Every address group name declared, resolved or not: a reference to a
    /// broken group is not also reported as unknown.
    declared_groups: Vec<String>,
}

const TOP: &[&str] = &[
    "name",
    "client_ip",
    "address_groups",
    "network",
    "https_only",
    "require_headers",
    "request_headers",
    "response_headers",
    "hsts",
    "scopes",
];

impl<'t> Validator<'t> {
    fn policy(&mut self, v: &Value) -> Option<Policy> {
        let f = self.fields(v, "", TOP)?;
        let name = self.required(&f, "", "name").and_then(|n| {
            let s = self.string(n, "name")?;
            if is_name(s, 64) {
                Some(s.to_string())
            } else {
                self.err(
                    "name",
                    n.span,
                    Error::BadName {
                        pattern: "[A-Za-z0-9._-]{1,64}",
                    },
                );
                None
            }
        });
        let groups = match f.get("address_groups") {
            Some(g) => self.groups(g),
            None => Some(BTreeMap::new()),
        };
        let groups_ok = groups.is_some();
        let groups = groups.unwrap_or_default();
        let client_ip = match f.get("client_ip") {
            Some(c) => self.client_ip(c, &groups),
            None => Some(ClientIp {
                from: ClientFrom::Peer,
                trusted_proxies: AddrSet::default(),
            }),
        };
        let network = match f.get("network") {
            Some(n) => self.network(n, &groups).map(Some),
            None => Some(None),
        };
        let https_only = match f.get("https_only") {
            Some(h) => self.https_only(h).map(Some),
            None => Some(None),
        };
        if let (Some(Some(h)), Some(c)) = (&https_only, &client_ip) {
            if h.trust_forwarded_proto && c.trusted_proxies.is_empty() {
                let span = f.get("https_only").map(|v| v.span).unwrap_or_default();
                self.err(
                    "https_only.trust_forwarded_proto",
                    span,
                    Error::Conflict("trust_forwarded_proto needs client_ip.trusted_proxies"),
                );
            }
        }
        let require_headers = match f.get("require_headers") {
            Some(r) => self.require_headers(r),
            None => Some(Vec::new()),
        };
        let request_headers = match f.get("request_headers") {
            Some(r) => self.header_ops(r, "request_headers"),
            None => Some(Vec::new()),
        };
        let response_headers = match f.get("response_headers") {
            Some(r) => self.header_ops(r, "response_headers"),
            None => Some(Vec::new()),
        };
        let hsts = match f.get("hsts") {
            Some(h) => self.hsts(h).map(Some),
            None => Some(None),
        };
        let scopes = match f.get("scopes") {
            Some(s) => self.scopes(s, &groups, client_ip.as_ref(), &f),
            None => Some(Vec::new()),
        };
        Some(Policy {
            scopes: scopes?,
            name: name?,
            client_ip: client_ip?,
            network: network?,
            https_only: https_only?,
            require_headers: require_headers?,
            request_headers: request_headers?,
            response_headers: response_headers?,
            hsts: hsts?,
            address_groups: if groups_ok { groups } else { return None },
        })
    }
}
