//! The sections that are not about flows, compared as plain before/after.
//!
//! Secrets are never rendered: `require_headers` shows names, statuses and
//! how many values; a header op shows its name and `exists`, and says
//! "new value" when only the value changed.

use alloc::string::String;
use alloc::vec::Vec;

use portcullis_core::policy::{HeaderOp, HttpsAction, Policy};

use crate::render::{interval_specs, join};

/// One section that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Setting {
    /// The policy field, e.g. `https_only`.
    pub field: &'static str,
    /// Before (`none` when absent).
    pub old: String,
    /// After.
    pub new: String,
}

fn client_ip(p: &Policy) -> String {
    let from = match &p.client_ip.header {
        Some(h) => alloc::format!("{} {h}", p.client_ip.from.as_str()),
        None => String::from(p.client_ip.from.as_str()),
    };
    let mut ivs = Vec::new();
    let t = &p.client_ip.trusted_proxies;
    ivs.extend(
        t.v4.iter()
            .map(|&(l, h)| ((0u8, u128::from(l)), (0u8, u128::from(h)))),
    );
    ivs.extend(t.v6.iter().map(|&(l, h)| ((1u8, l), (1u8, h))));
    if ivs.is_empty() {
        from
    } else {
        alloc::format!(
            "{from}, trusted_proxies {}",
            join(interval_specs(&ivs), ", ")
        )
    }
}

fn https_only(p: &Policy) -> String {
    let Some(h) = &p.https_only else {
        return String::from("none");
    };
    let mut s = match h.action {
        HttpsAction::Redirect => alloc::format!(
            "redirect {} to {}",
            h.redirect_status,
            join(h.hosts.iter().map(|a| a.location.as_str()), ", ")
        ),
        HttpsAction::Reject => alloc::format!("reject {}", h.reject_status),
    };
    if h.trust_forwarded_proto {
        s.push_str(", trust_forwarded_proto");
    }
    s
}

fn require_headers(p: &Policy) -> String {
    if p.require_headers.is_empty() {
        return String::from("none");
    }
    join(
        p.require_headers.iter().map(|r| {
            let n = r.values.len();
            alloc::format!(
                "{} ({}, {n} value{})",
                r.name,
                r.status,
                if n == 1 { "" } else { "s" }
            )
        }),
        "; ",
    )
}

fn op(o: &HeaderOp) -> String {
    match o {
        HeaderOp::Remove(n) => alloc::format!("remove {n}"),
        HeaderOp::Set { name, exists, .. } => alloc::format!("set {name} {}", exists.as_str()),
    }
}

/// Both lists rendered; the new one marks ops whose text is unchanged but
/// whose value is not.
fn ops(old: &[HeaderOp], new: &[HeaderOp]) -> Option<(String, String)> {
    if old == new {
        return None;
    }
    let render = |l: &[HeaderOp], other: &[HeaderOp]| {
        if l.is_empty() {
            return String::from("none");
        }
        join(
            l.iter().enumerate().map(|(i, o)| {
                let mut s = op(o);
                if let Some(x) = other.get(i) {
                    if op(x) == s && x != o {
                        s.push_str(" (new value)");
                    }
                }
                s
            }),
            "; ",
        )
    };
    Some((render(old, &[]), render(new, old)))
}

fn hsts(p: &Policy) -> String {
    p.hsts
        .as_ref()
        .map_or_else(|| String::from("none"), |h| h.value.clone())
}

fn deny(p: &Policy) -> String {
    match &p.network {
        Some(n) => alloc::format!("{} {:?}", n.deny_status, n.deny_body),
        None => String::from("none"),
    }
}

pub(crate) fn compare(old: &Policy, new: &Policy) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut push = |field: &'static str, a: String, b: String| {
        if a != b {
            out.push(Setting {
                field,
                old: a,
                new: b,
            });
        }
    };
    push("name", old.name.clone(), new.name.clone());
    push("mode", old.mode.as_str().into(), new.mode.as_str().into());
    push(
        "trace_json",
        alloc::format!("{}", old.trace_json),
        alloc::format!("{}", new.trace_json),
    );
    push("client_ip", client_ip(old), client_ip(new));
    push("network.deny", deny(old), deny(new));
    push("https_only", https_only(old), https_only(new));
    let (ro, rn) = (require_headers(old), require_headers(new));
    let secrets_changed = ro == rn
        && old
            .require_headers
            .iter()
            .zip(&new.require_headers)
            .any(|(a, b)| a.values != b.values);
    if secrets_changed {
        push("require_headers", ro, alloc::format!("{rn} (new values)"));
    } else {
        push("require_headers", ro, rn);
    }
    for (field, a, b) in [
        (
            "request_headers",
            &old.request_headers,
            &new.request_headers,
        ),
        (
            "response_headers",
            &old.response_headers,
            &new.response_headers,
        ),
    ] {
        if let Some((x, y)) = ops(a, b) {
            push(field, x, y);
        }
    }
    push("hsts", hsts(old), hsts(new));
    out
}
