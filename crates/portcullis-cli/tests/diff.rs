//! `portcullis diff`, driven as a user would: the expected reports in
//! `tests/diff/*.txt` (their first line is the command), the JSON form and
//! the `--fail-on` exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

mod common;

use common::{portcullis, root};

const PARTNERS: [&str; 2] = [
    "tests/diff/partners.old.json",
    "tests/diff/partners.new.json",
];
const LAYERED: &str = "policy-samples/layered-security.json";
/// The two-apis sample with its key inline (no environment needed).
const TWO_APIS: &str = "tests/diff/two-apis.old.json";

#[test]
fn prints_the_expected_reports() {
    let mut n = 0;
    for e in std::fs::read_dir(root().join("tests/diff")).unwrap() {
        let f = e.unwrap().path();
        if f.extension().is_none_or(|x| x != "txt") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let (head, expected) = text.split_once('\n').unwrap();
        let cmd = head.strip_prefix("# portcullis ").unwrap();
        let args: Vec<&str> = cmd.split(' ').collect();
        let o = portcullis(&args);
        assert_eq!(o.status.code(), Some(0), "{}", f.display());
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            expected,
            "{}",
            f.display()
        );
        n += 1;
    }
    assert!(n >= 6, "{n} reports");
}

#[test]
fn fail_on_fires_only_for_its_kind() {
    let run = |extra: &[&str], pair: [&str; 2]| {
        let mut a = vec!["diff", pair[0], pair[1]];
        a.extend_from_slice(extra);
        portcullis(&a).status.code()
    };
    assert_eq!(run(&["--fail-on", "newly-allowed"], PARTNERS), Some(1));
    assert_eq!(run(&["--fail-on", "newly-denied"], PARTNERS), Some(1));
    assert_eq!(run(&["--fail-on", "any"], PARTNERS), Some(1));
    let widen = [LAYERED, "tests/diff/layered-security.fe1ase-443-455.json"];
    assert_eq!(run(&["--fail-on", "newly-allowed"], widen), Some(1));
    assert_eq!(run(&["--fail-on", "newly-denied"], widen), Some(0));
    let same = [
        LAYERED,
        "tests/diff/layered-security.mgmt-priority-1000.json",
    ];
    for kind in ["newly-allowed", "newly-denied", "any"] {
        assert_eq!(run(&["--fail-on", kind], same), Some(0), "{kind}");
    }
    assert_eq!(run(&["--fail-on", "sometimes"], same), Some(2));
    // Changes inside scopes only (the top levels are equal): widening the
    // admin scope's network, then dropping that scope.
    let admin = [TWO_APIS, "tests/diff/two-apis.admin-wider.json"];
    assert_eq!(run(&["--fail-on", "newly-allowed"], admin), Some(1));
    assert_eq!(run(&["--fail-on", "newly-denied"], admin), Some(0));
    assert_eq!(run(&["--fail-on", "any"], admin), Some(1));
    let dropped = [TWO_APIS, "tests/diff/two-apis.new.json"];
    for kind in ["newly-allowed", "newly-denied", "any"] {
        assert_eq!(run(&["--fail-on", kind], dropped), Some(1), "{kind}");
    }
    // The same policy: nothing fires.
    for kind in ["newly-allowed", "newly-denied", "any"] {
        assert_eq!(
            run(&["--fail-on", kind], [TWO_APIS, TWO_APIS]),
            Some(0),
            "{kind}"
        );
    }
    assert_eq!(run(&[], ["tests/diff/missing.json", LAYERED]), Some(1));
}

#[test]
fn json_form() {
    let o = portcullis(&["diff", PARTNERS[0], PARTNERS[1], "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"]["status"], "exact");
    let changes = v["network"]["changes"].as_array().unwrap();
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["newly-allowed", "newly-allowed", "newly-denied"]);
    assert_eq!(changes[1]["old"]["rule"], "block-lab");
    assert_eq!(changes[1]["new"]["priority"], 200);
    assert_eq!(changes[1]["flows"][0]["source"][0], "10.1.0.0/16");
    assert_eq!(changes[1]["flows"][0]["protocol"], "tcp");
    let o = portcullis(&["diff", LAYERED, LAYERED, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["network"]["changes"].as_array().unwrap().len(), 0);
    assert_eq!(v["settings"].as_array().unwrap().len(), 0);
}

#[test]
fn json_form_with_scopes() {
    let o = portcullis(&[
        "diff",
        TWO_APIS,
        "tests/diff/two-apis.new.json",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let expected =
        std::fs::read_to_string(root().join("tests/diff/two-apis.new.report.json")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), expected);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let g = &v["scopes"]["groups"][0];
    assert_eq!(g["old"]["scope"], "orders-admin");
    assert_eq!(g["new"], "top-level");
    assert_eq!(g["moved"], true);
    assert_eq!(g["network"]["changes"][0]["kind"], "newly-allowed");
    // Policies without scopes keep the old form: no `scopes` key.
    let o = portcullis(&["diff", LAYERED, LAYERED, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("scopes").is_none());
}
