//! docs/reference/tests.md names every field the test-file reader accepts.
//!
//! As for the policy reference (crates/portcullis-core/tests/reference_docs.rs),
//! the field lists come from the reader itself: each probe puts an unknown
//! key into one kind of object and reads the accepted keys back from the
//! `UnknownField` error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_core::Error;
use portcullis_harness::TestFile;

const PROBES: &[(&str, &str)] = &[
    ("the file", r#"{"policy": "p.json", "cases": [], PROBE}"#),
    (
        "a case",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1"}, PROBE}]}"#,
    ),
    (
        "request",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1", PROBE}}]}"#,
    ),
    (
        "upstream",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1"}, "upstream": {PROBE}}]}"#,
    ),
    (
        "expect",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1"}, "expect": {PROBE}}]}"#,
    ),
];

#[test]
fn the_tests_reference_names_every_field_the_reader_accepts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reference/tests.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    for (object, probe) in PROBES {
        let text = probe.replace("PROBE", r#""zz_not_a_field": 1"#);
        let problems = TestFile::parse(&text).expect_err(&text);
        let lists: Vec<&[&str]> = problems
            .0
            .iter()
            .filter_map(|p| match &p.error {
                Error::UnknownField { field, expected } if field == "zz_not_a_field" => {
                    Some(*expected)
                }
                _ => None,
            })
            .collect();
        assert_eq!(lists.len(), 1, "{text}: {problems}");
        for field in lists[0] {
            count += 1;
            if !doc.contains(&format!("`{field}`")) && !doc.contains(&format!("`{field}.")) {
                missing.push(format!("{object}: `{field}`"));
            }
        }
    }
    assert!(
        count > 25,
        "only {count} fields found: the probes are broken"
    );
    assert!(
        missing.is_empty(),
        "docs/reference/tests.md does not mention:\n  {}",
        missing.join("\n  ")
    );
}
