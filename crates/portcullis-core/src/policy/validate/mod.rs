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
use crate::env::Env;
use crate::error::{Error, Problem, Problems};
use crate::json::{LineIndex, Value};

use super::syntax::is_name;
use super::{ClientFrom, ClientIp, Mode, Policy, TraceWhen};

mod addresses;
mod client_ip;
mod headers;
mod https;
mod network;
mod read;
mod scopes;

pub use read::address_list;

impl Policy {
    /// Every check but the matcher's own bound.
    pub(super) fn validate(
        value: &Value,
        text: &str,
        env: &dyn Env,
        texts: bool,
    ) -> Result<Policy, Problems> {
        let mut v = Validator {
            env,
            inline_credentials: Vec::new(),
            texts,
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

fn child(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    // Without `format!` for the common forms: a large policy builds a few
    // of these per rule.
    match (path.is_empty(), simple) {
        (true, true) => key.to_string(),
        (false, true) => {
            let mut p = String::with_capacity(path.len() + 1 + key.len());
            p.push_str(path);
            p.push('.');
            p.push_str(key);
            p
        }
        (_, false) => alloc::format!("{path}[{key:?}]"),
    }
}

fn index(path: &str, i: usize) -> String {
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            // n % 10 < 10: the cast is exact.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    let digits = digits.get(at..).unwrap_or(&[]);
    let mut p = String::with_capacity(path.len() + digits.len() + 2);
    p.push_str(path);
    p.push('[');
    p.push_str(core::str::from_utf8(digits).unwrap_or("0"));
    p.push(']');
    p
}

struct Validator<'t> {
    /// Where `value_from` / `values_from` variables are read.
    env: &'t dyn Env,
    /// Inline values of credential-looking headers (path, line).
    inline_credentials: Vec<(String, u32)>,
    /// Whether rules keep their source specs as written (`Rule::source_text`).
    texts: bool,
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
    "provenance",
    "mode",
    "trace_json",
    "scopes",
    "trace",
    "$schema",
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
        // `$schema`: where editors find the JSON Schema; a string, ignored.
        if let Some(s) = f.get("$schema") {
            self.string(s, &child("", "$schema"));
        }
        let groups = self.or_default(f.get("address_groups"), BTreeMap::new(), Self::groups);
        let groups_ok = groups.is_some();
        let groups = groups.unwrap_or_default();
        let peer = ClientIp {
            from: ClientFrom::Peer,
            trusted_proxies: AddrSet::default(),
            header: None,
        };
        // The optional `provenance` object (importers; see provenance.rs).
        for (path, span, e) in f.get("provenance").map_or_else(Vec::new, |p| {
            crate::provenance::check(p, &self.declared_groups)
        }) {
            self.err(&path, span, e);
        }
        let client_ip = self.or_default(f.get("client_ip"), peer, |s, c| s.client_ip(c, &groups));
        let network = self.section(f.get("network"), |s, n| s.network(n, &groups));
        let https_only = self.section(f.get("https_only"), Self::https_only);
        if let (Ok(Some(h)), Some(c)) = (&https_only, &client_ip) {
            if h.trust_forwarded_proto && c.trusted_proxies.is_empty() {
                let span = f.get("https_only").map(|v| v.span).unwrap_or_default();
                self.err(
                    "https_only.trust_forwarded_proto",
                    span,
                    Error::Conflict("trust_forwarded_proto needs client_ip.trusted_proxies"),
                );
            }
        }
        let require_headers =
            self.or_default(f.get("require_headers"), Vec::new(), Self::require_headers);
        let request_headers = self.or_default(f.get("request_headers"), Vec::new(), |s, r| {
            s.header_ops(r, "request_headers")
        });
        let response_headers = self.or_default(f.get("response_headers"), Vec::new(), |s, r| {
            s.header_ops(r, "response_headers")
        });
        let hsts = self.section(f.get("hsts"), Self::hsts);
        let mode = self.or_default(f.get("mode"), Mode::Enforce, |s, m| {
            s.word::<Mode>(m, "mode")
        });
        let trace_json = self.or_default(f.get("trace_json"), false, |s, t| {
            s.boolean(t, "trace_json")
        });
        let scopes = self.or_default(f.get("scopes"), Vec::new(), |s, v| {
            s.scopes(v, &groups, client_ip.as_ref())
        });
        let trace = match f.get("trace") {
            Some(t) => self.word::<TraceWhen>(t, "trace"),
            None => Some(TraceWhen::All),
        };
        Some(Policy {
            trace: trace?,
            mode: mode?,
            trace_json: trace_json?,
            scopes: scopes?,
            name: name?,
            client_ip: client_ip?,
            network: network.ok()?,
            https_only: https_only.ok()?,
            require_headers: require_headers?,
            request_headers: request_headers?,
            response_headers: response_headers?,
            hsts: hsts.ok()?,
            address_groups: if groups_ok { groups } else { return None },
            inline_credentials: core::mem::take(&mut self.inline_credentials),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths() {
        for i in [0usize, 7, 10, 99, 3996, usize::MAX] {
            assert_eq!(super::index("a.b", i), alloc::format!("a.b[{i}]"));
        }
        assert_eq!(super::child("a", "b-c_1"), "a.b-c_1");
        assert_eq!(super::child("", "b"), "b");
        assert_eq!(super::child("a", "b c"), "a[\"b c\"]");
    }
}
