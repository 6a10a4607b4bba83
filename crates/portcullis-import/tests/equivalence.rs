//! The layered-security NSG, imported from the ARM template and from the
//! `az` output, decides exactly like `policy-samples/layered-security.json`:
//! same verdict, status, step, client and deciding rule (by priority, since
//! NSG names the rules differently) on every case of the sample's test file
//! and on the request of every case in the shared corpus.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a failure should stop the test loudly

use std::path::{Path, PathBuf};

use portcullis_core::Policy;
use portcullis_harness::native::run_core;
use portcullis_harness::{corpus, Case, Suite};
use portcullis_import::{nsg, Options};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn imported(file: &str) -> Policy {
    let text = std::fs::read_to_string(root().join("tests/import").join(file)).unwrap();
    let mut o = Options::new("layered-security");
    o.strict = true;
    let out = nsg::import(&text, &o);
    let policy = out
        .policy
        .unwrap_or_else(|| panic!("{file}: {}", out.report));
    Policy::parse(policy.as_bytes()).unwrap()
}

/// Every case of the corpus (the one discovery every engine uses; the
/// sample's own test file among them).
fn cases() -> Vec<(String, Case)> {
    let mut out = Vec::new();
    for f in corpus::files(&root()) {
        let suite = Suite::read(&f).unwrap_or_else(|e| panic!("{e}"));
        for c in suite.file.cases {
            out.push((
                format!("{}: {}", f.file_name().unwrap().to_string_lossy(), c.name),
                c,
            ));
        }
    }
    out
}

/// What a decision is, rule named by its priority.
fn decide(p: &Policy, c: &Case) -> (String, u16, String, String, String) {
    let o = run_core(p, c);
    let rule = match &p.network {
        Some(n) => n
            .rules
            .iter()
            .find(|r| r.name == o.rule)
            .map_or_else(|| o.rule.clone(), |r| r.priority.to_string()),
        None => o.rule.clone(),
    };
    (
        o.verdict.as_str().to_string(),
        o.status,
        o.step.as_str().to_string(),
        o.client_ip,
        rule,
    )
}

#[test]
fn imported_layered_security_decides_like_the_sample() {
    let text =
        std::fs::read_to_string(root().join("policy-samples/layered-security.json")).unwrap();
    let sample = Policy::parse(text.as_bytes()).unwrap();
    let all = cases();
    let sample_cases = all
        .iter()
        .filter(|(n, _)| n.starts_with("layered-security.tests.json"))
        .count();
    assert!(sample_cases >= 10, "{sample_cases}");
    assert!(all.len() > 200, "the corpus has {} cases", all.len());
    for file in ["layered-security.arm.json", "layered-security.az.json"] {
        let p = imported(file);
        let mut differ = Vec::new();
        let mut forwarded = 0;
        for (name, c) in &all {
            let (a, b) = (decide(&sample, c), decide(&p, c));
            if a.0 == "forward" {
                forwarded += 1;
            }
            if a != b {
                differ.push(format!("{name}: sample {a:?}, imported {b:?}"));
            }
        }
        assert!(differ.is_empty(), "{file}:\n{}", differ.join("\n"));
        // Both verdicts occur, so the comparison can tell policies apart.
        assert!(forwarded > 5 && forwarded < all.len(), "{forwarded}");
    }
}

#[test]
fn a_changed_rule_is_caught() {
    // The comparison is not vacuous: the same import with fe2ase's address
    // changed decides differently on the sample's own cases.
    let text = std::fs::read_to_string(root().join("tests/import/layered-security.az.json"))
        .unwrap()
        .replace("191.238.20.30", "191.238.20.31");
    let out = nsg::import(&text, &Options::new("layered-security"));
    let p = Policy::parse(out.policy.unwrap().as_bytes()).unwrap();
    let s = std::fs::read_to_string(root().join("policy-samples/layered-security.json")).unwrap();
    let sample = Policy::parse(s.as_bytes()).unwrap();
    let differ = cases()
        .iter()
        .filter(|(_, c)| decide(&sample, c) != decide(&p, c))
        .count();
    assert!(differ > 0);
}
