//! The real inputs of `tests/import/` against their golden outputs.
//!
//! Every import's policy (`golden/NAME.policy.json`) and report
//! (`golden/NAME.report.txt`) must match byte for byte. After an intended
//! change, re-bless with `PORTCULLIS_BLESS=1 cargo test -p portcullis-import
//! --test goldens` and review the diff.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use std::path::{Path, PathBuf};

use portcullis_import::{apim, appsvc, nsg, tags, ItemKind, Options, Outcome};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/import")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bless() -> bool {
    std::env::var_os("PORTCULLIS_BLESS").is_some_and(|v| v == "1")
}

fn compare(golden: &str, got: &str, failures: &mut Vec<String>) {
    let path = dir().join("golden").join(golden);
    if bless() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!(
            "{golden} differs (PORTCULLIS_BLESS=1 to re-bless)\n--- want\n{want}\n--- got\n{got}"
        )),
        Err(e) => failures.push(format!("{golden}: {e} (PORTCULLIS_BLESS=1 to create it)")),
    }
}

enum Kind {
    Apim,
    Nsg,
    AppService,
}

struct Case {
    golden: &'static str,
    input: &'static str,
    kind: Kind,
    name: &'static str,
    tags: Option<&'static str>,
    strict: bool,
}

const CASES: &[Case] = &[
    Case {
        golden: "layered-security.arm",
        input: "layered-security.arm.json",
        kind: Kind::Nsg,
        name: "layered-security",
        tags: None,
        strict: true,
    },
    Case {
        golden: "layered-security.az",
        input: "layered-security.az.json",
        kind: Kind::Nsg,
        name: "layered-security",
        tags: None,
        strict: true,
    },
    Case {
        golden: "gateway-nsg.rest",
        input: "gateway-nsg.rest.json",
        kind: Kind::Nsg,
        name: "gateway-nsg",
        tags: Some("ServiceTags_Public_20261123.json"),
        strict: false,
    },
    Case {
        golden: "functions-behind-apim",
        input: "functions-behind-apim.xml",
        kind: Kind::Apim,
        name: "functions-behind-apim",
        tags: None,
        strict: false,
    },
    Case {
        golden: "apim-reported",
        input: "apim-reported.xml",
        kind: Kind::Apim,
        name: "apim-reported",
        tags: None,
        strict: false,
    },
    Case {
        golden: "apim-reported.strict",
        input: "apim-reported.xml",
        kind: Kind::Apim,
        name: "apim-reported",
        tags: None,
        strict: true,
    },
    Case {
        golden: "apim-mixed-values",
        input: "apim-mixed-values.xml",
        kind: Kind::Apim,
        name: "apim-mixed-values",
        tags: None,
        strict: true,
    },
    Case {
        golden: "orders-func.az",
        input: "orders-func.az.json",
        kind: Kind::AppService,
        name: "orders-func",
        tags: Some("ServiceTags_Public_20261123.json"),
        strict: false,
    },
    Case {
        golden: "orders-func.az.strict",
        input: "orders-func.az.json",
        kind: Kind::AppService,
        name: "orders-func",
        tags: Some("ServiceTags_Public_20261123.json"),
        strict: true,
    },
    Case {
        golden: "orders-func.arm",
        input: "orders-func.arm.json",
        kind: Kind::AppService,
        name: "orders-func",
        tags: None,
        strict: false,
    },
];

fn run(c: &Case) -> Outcome {
    let text = read(c.input);
    let snap = c.tags.map(|t| tags::Snapshot::parse(&read(t)).unwrap());
    let mut o = Options::new(c.name);
    o.strict = c.strict;
    o.service_tags = snap.as_ref();
    o.source = c.input.to_string();
    match c.kind {
        Kind::Apim => apim::import(&text, &o),
        Kind::Nsg => nsg::import(&text, &o),
        Kind::AppService => appsvc::import(&text, &o),
    }
}

#[test]
fn imports_match_the_goldens() {
    let mut failures = Vec::new();
    for c in CASES {
        let out = run(c);
        compare(
            &format!("{}.report.txt", c.golden),
            &format!("{}\n", out.report),
            &mut failures,
        );
        match &out.policy {
            Some(p) => compare(&format!("{}.policy.json", c.golden), p, &mut failures),
            None => assert!(
                out.report.items.iter().any(|i| i.kind == ItemKind::Error),
                "{}: no policy but no error",
                c.golden
            ),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn which_imports_produce_a_policy() {
    let produced: Vec<(&str, bool)> = CASES
        .iter()
        .map(|c| (c.golden, run(c).policy.is_some()))
        .collect();
    assert_eq!(
        produced,
        [
            ("layered-security.arm", true),
            ("layered-security.az", true),
            ("gateway-nsg.rest", true),
            ("functions-behind-apim", true),
            ("apim-reported", true),
            ("apim-reported.strict", false),
            ("apim-mixed-values", true),
            ("orders-func.az", true),
            ("orders-func.az.strict", false),
            ("orders-func.arm", true),
        ]
    );
}

#[test]
fn the_arm_and_az_shapes_give_the_same_rules() {
    let arm = run(&CASES[0]).policy.unwrap();
    let az = run(&CASES[1]).policy.unwrap();
    // The same document but for the descriptions (line numbers, file names).
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.trim_start().starts_with("\"description\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&arm), strip(&az));
}

#[test]
fn drift_against_the_newer_snapshot() {
    let policy = run(&CASES[2]).policy.unwrap();
    let newer = tags::Snapshot::parse(&read("ServiceTags_Discovery_20261130.json")).unwrap();
    let d = tags::drift(&policy, &newer).unwrap();
    let text: String = d.iter().map(|d| format!("{d}\n")).collect();
    let mut failures = Vec::new();
    compare("gateway-nsg.drift.txt", &text, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let apim = d
        .iter()
        .find(|d| d.tag == "ApiManagement.WestEurope")
        .unwrap();
    assert_eq!(apim.gained, ["20.103.252.0/28"]);
    assert_eq!(apim.lost, ["13.69.66.144/28"]);
}
