//! The optional top-level `provenance` object: where a document came from.
//!
//! Importers (`portcullis import`) record the source of a document and of
//! each address group built from an Azure service tag, so that a later run
//! can compare the groups with a newer service tags snapshot:
//!
//! ```json
//! "provenance": {
//!   "description": "imported by portcullis import nsg from nsg.json",
//!   "address_groups": {
//!     "AzureFrontDoor.Backend": {
//!       "description": "Azure service tag AzureFrontDoor.Backend",
//!       "service_tag": { "tag": "AzureFrontDoor.Backend", "cloud": "Public",
//!                        "change_number": "12", "snapshot_change_number": "330" }
//!     }
//!   }
//! }
//! ```
//!
//! It never changes a decision. This module only checks its shape (every
//! key known, strings where strings belong, each group declared in
//! `address_groups`); it is kept apart from the validator proper so the hook
//! there stays one call.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;
use crate::json::{Kind, Span, Value};

const TOP: &[&str] = &["description", "address_groups"];
const GROUP: &[&str] = &["description", "service_tag"];
const TAG: &[&str] = &["tag", "cloud", "change_number", "snapshot_change_number"];

/// Every problem of a `provenance` value, as (path, span, error).
pub(crate) fn check(v: &Value, declared_groups: &[String]) -> Vec<(String, Span, Error)> {
    let mut out = Vec::new();
    let path = String::from("provenance");
    for (k, val, p) in members(v, &path, TOP, &mut out) {
        match k {
            "description" => string(val, &p, &mut out),
            _ => {
                let Kind::Object(groups) = &val.kind else {
                    wrong(val, &p, "an object", &mut out);
                    continue;
                };
                let mut seen: Vec<&str> = Vec::new();
                for g in groups {
                    let gp = alloc::format!("{p}.{}", g.key);
                    if seen.contains(&g.key.as_str()) {
                        out.push((gp, g.key_span, Error::DuplicateKey(g.key.clone())));
                        continue;
                    }
                    seen.push(&g.key);
                    if !declared_groups.contains(&g.key) {
                        out.push((gp.clone(), g.key_span, Error::UnknownGroup(g.key.clone())));
                    }
                    for (gk, gv, gpp) in members(&g.value, &gp, GROUP, &mut out) {
                        if gk == "description" {
                            string(gv, &gpp, &mut out);
                            continue;
                        }
                        let fields = members(gv, &gpp, TAG, &mut out);
                        if !fields.iter().any(|(k, _, _)| *k == "tag")
                            && matches!(gv.kind, Kind::Object(_))
                        {
                            out.push((gpp.clone(), gv.span, Error::MissingField("tag")));
                        }
                        for (_, tv, tp) in fields {
                            string(tv, &tp, &mut out);
                        }
                    }
                }
            }
        }
    }
    out
}

fn wrong(v: &Value, path: &str, expected: &'static str, out: &mut Vec<(String, Span, Error)>) {
    out.push((
        String::from(path),
        v.span,
        Error::WrongType {
            expected,
            found: v.kind_name(),
        },
    ));
}

fn string(v: &Value, path: &str, out: &mut Vec<(String, Span, Error)>) {
    if v.as_str().is_none() {
        wrong(v, path, "a string", out);
    }
}

/// The first occurrences of the allowed keys of an object, with their paths.
fn members<'v>(
    v: &'v Value,
    path: &str,
    allowed: &'static [&'static str],
    out: &mut Vec<(String, Span, Error)>,
) -> Vec<(&'static str, &'v Value, String)> {
    let Kind::Object(ms) = &v.kind else {
        wrong(v, path, "an object", out);
        return Vec::new();
    };
    let mut items: Vec<(&'static str, &'v Value, String)> = Vec::new();
    for m in ms {
        let p = alloc::format!("{path}.{}", m.key);
        match allowed.iter().find(|a| **a == m.key) {
            _ if items.iter().any(|(k, _, _)| *k == m.key) => {
                out.push((p, m.key_span, Error::DuplicateKey(m.key.clone())));
            }
            Some(k) => items.push((k, &m.value, p)),
            None => out.push((
                p,
                m.key_span,
                Error::UnknownField {
                    field: m.key.clone(),
                    expected: allowed,
                },
            )),
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use crate::Policy;

    fn paths(doc: &str) -> alloc::vec::Vec<alloc::string::String> {
        match Policy::parse(doc.as_bytes()) {
            Ok(_) => alloc::vec::Vec::new(),
            Err(p) => p.0.into_iter().map(|p| p.path).collect(),
        }
    }

    #[test]
    fn accepted_and_checked() {
        let ok = r#"{"name":"p","address_groups":{"t.x":["10.0.0.0/8"]},
          "provenance":{"description":"d","address_groups":{"t.x":{"description":"e",
          "service_tag":{"tag":"T.X","cloud":"Public","change_number":"3","snapshot_change_number":"9"}}}}}"#;
        assert!(paths(ok).is_empty(), "{:?}", paths(ok));
        let bad = r#"{"name":"p","address_groups":{"g":["10.0.0.0/8"]},
          "provenance":{"description":1,"x":2,"address_groups":{"nope":{},"g":{"service_tag":{"cloud":3},"y":1}}}}"#;
        let got = paths(bad);
        for want in [
            "provenance.description",
            "provenance.x",
            "provenance.address_groups.nope",
            "provenance.address_groups.g.service_tag",
            "provenance.address_groups.g.service_tag.cloud",
            "provenance.address_groups.g.y",
        ] {
            assert!(got.iter().any(|g| g == want), "{want} not in {got:?}");
        }
        assert!(paths(r#"{"name":"p","provenance":[]}"#) == ["provenance"]);
    }
}
