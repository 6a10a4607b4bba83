//! How the filter applies a list of header edits.
//!
//! The proxy-wasm ABI edits a header map one call per edit
//! (`proxy_remove_header_map_value`, `proxy_replace_header_map_value`,
//! `proxy_add_header_map_value`) or replaces it whole
//! (`proxy_set_header_map_pairs`). The filter makes one call per edit: in
//! Envoy a whole-map read and rewrite costs more CPU than several small calls
//! (docs/performance.md). Once a map has been read anyway,
//! [`without_absent_removes`] drops the removals of headers that are not there.
//!
//! [`plan`] is the other way, kept for the `edits-batch` build the bench
//! measures: drop absent removals and, when more than one edit is left,
//! rewrite the map in one call (the core's [`apply_edits`] on the pairs read,
//! serialized): read + rewrite is 2 host calls for any number of edits.
//!
//! This module only plans; the filter makes the calls. It does not decide
//! which edits to make (the core does).

use portcullis_core::{apply_edits, Edit, EditOp, Headers};

use crate::wire::{self, HeaderMap};

/// What to do with a header map.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan<'e> {
    /// No edit changes it.
    Nothing,
    /// These edits, one host call each.
    Each(Vec<Edit<'e>>),
    /// Replace the whole map with these serialized pairs (one host call).
    Rewrite(Vec<u8>),
}

/// Drops the removals of headers that are absent from `map` and that no
/// earlier edit in the list adds.
pub fn without_absent_removes<'e>(map: &HeaderMap, edits: &[Edit<'e>]) -> Vec<Edit<'e>> {
    let mut kept: Vec<Edit<'e>> = Vec::with_capacity(edits.len());
    for (i, e) in edits.iter().enumerate() {
        if e.op == EditOp::Remove {
            let added_before = edits
                .get(..i)
                .unwrap_or_default()
                .iter()
                .any(|x| x.op != EditOp::Remove && x.name.eq_ignore_ascii_case(e.name));
            if !added_before && !map.has(e.name) {
                continue;
            }
        }
        kept.push(*e);
    }
    kept
}

/// Plans `edits` on a map already read: nothing, one edit, or a rewrite.
pub fn plan<'e>(map: &HeaderMap, edits: &[Edit<'e>]) -> Plan<'e> {
    let edits = without_absent_removes(map, edits);
    if edits.is_empty() {
        return Plan::Nothing;
    }
    if edits.len() == 1 || map.malformed() {
        // One call either way; a map we could not read whole is never
        // rewritten from the part we have.
        return Plan::Each(edits);
    }
    // Borrowed from the host's buffer and the policy: no copy per header.
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(map.len() + edits.len());
    pairs.extend(map.iter());
    apply_edits(&mut pairs, &edits);
    match wire::serialize(&pairs) {
        Some(buf) => Plan::Rewrite(buf),
        None => Plan::Each(edits),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::parse(wire::serialize(pairs).unwrap())
    }

    fn pairs(m: &HeaderMap) -> Pairs {
        m.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }

    fn edit<'a>(op: EditOp, name: &'a str, value: &'a str) -> Edit<'a> {
        Edit {
            op,
            name,
            value: value.as_bytes(),
        }
    }

    const UPSTREAM: &[(&str, &str)] = &[
        (":status", "200"),
        ("server", "Microsoft-IIS/10.0"),
        ("x-powered-by", "ASP.NET"),
        ("x-aspnet-version", "4.0.30319"),
        ("content-type", "text/plain"),
    ];

    #[test]
    fn the_bench_edits_are_one_rewrite_equal_to_the_cores_apply() {
        let m = map(UPSTREAM);
        let edits = [
            edit(EditOp::Remove, "X-Powered-By", ""),
            edit(EditOp::Remove, "X-AspNet-Version", ""),
            edit(EditOp::Remove, "Server", ""),
            edit(EditOp::Replace, "Strict-Transport-Security", "max-age=1"),
        ];
        let Plan::Rewrite(buf) = plan(&m, &edits) else {
            panic!("{:?}", plan(&m, &edits));
        };
        let mut want = pairs(&m);
        apply_edits(&mut want, &edits);
        assert_eq!(pairs(&HeaderMap::parse(buf)), want);
        assert_eq!(want.len(), 3);
    }

    #[test]
    fn absent_removals_are_dropped_and_a_single_edit_stays_a_call() {
        let m = map(&[(":status", "200"), ("content-type", "text/plain")]);
        let removes = [
            edit(EditOp::Remove, "server", ""),
            edit(EditOp::Remove, "x-powered-by", ""),
        ];
        assert_eq!(plan(&m, &removes), Plan::Nothing);
        let mut with_set = removes.to_vec();
        with_set.push(edit(EditOp::Replace, "x-a", "1"));
        assert_eq!(
            plan(&m, &with_set),
            Plan::Each(vec![edit(EditOp::Replace, "x-a", "1")])
        );
        // A header an earlier edit adds is removed even though the map
        // did not have it.
        let set_then_remove = [
            edit(EditOp::Append, "x-a", "1"),
            edit(EditOp::Remove, "X-A", ""),
        ];
        assert_eq!(without_absent_removes(&m, &set_then_remove).len(), 2);
    }

    #[test]
    fn a_malformed_map_is_never_rewritten() {
        let mut buf = wire::serialize(UPSTREAM).unwrap();
        buf.truncate(buf.len() - 3);
        let m = HeaderMap::parse(buf);
        assert!(m.malformed());
        let edits = [
            edit(EditOp::Remove, "server", ""),
            edit(EditOp::Replace, "x-a", "1"),
        ];
        assert!(matches!(plan(&m, &edits), Plan::Each(_)));
    }

    #[test]
    fn rewrites_match_the_core_on_every_edit_mix() {
        // Every sequence of up to 3 edits over a few names, against the
        // core's own apply_edits on the whole map.
        let names = ["server", "x-new", "Content-Type"];
        let ops = [EditOp::Remove, EditOp::Replace, EditOp::Append];
        let m = map(&[
            (":status", "200"),
            ("server", "a"),
            ("content-type", "b"),
            ("server", "c"),
        ]);
        let one: Vec<Edit<'_>> = names
            .iter()
            .flat_map(|n| ops.map(|op| edit(op, n, "v")))
            .collect();
        let mut all: Vec<Vec<Edit<'_>>> = vec![Vec::new()];
        let mut last = all.clone();
        for _ in 0..3 {
            last = last
                .iter()
                .flat_map(|s| {
                    one.iter().map(move |e| {
                        let mut s = s.clone();
                        s.push(*e);
                        s
                    })
                })
                .collect();
            all.extend(last.iter().cloned());
        }
        assert_eq!(all.len(), 1 + 9 + 81 + 729);
        for edits in &all {
            let mut want = pairs(&m);
            apply_edits(&mut want, edits);
            let got = match plan(&m, edits) {
                Plan::Nothing => pairs(&m),
                Plan::Each(each) => {
                    let mut p = pairs(&m);
                    apply_edits(&mut p, &each);
                    p
                }
                Plan::Rewrite(buf) => pairs(&HeaderMap::parse(buf)),
            };
            assert_eq!(got, want, "{edits:?}");
        }
    }
}
