//! Runs the shared policy test corpus on the native engine.
//!
//! The corpus is every `*.json` under `tests/corpus/` and every
//! `*.tests.json` under `policy-samples/` (format: policy-tests-v1). The same
//! files run through the filter under wasmtime (`portcullis test`), real
//! Envoy (`portcullis-e2e`) and the playground (browser test).

use std::path::{Path, PathBuf};

use portcullis_core::testfile::{check, missing_policy_errors, run_core, PolicySource, TestFile};
use portcullis_core::Policy;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every test file of the corpus, sorted.
fn corpus_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (dir, suffix) in [("tests/corpus", ".json"), ("policy-samples", ".tests.json")] {
        let Ok(rd) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.to_string_lossy().ends_with(suffix) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn corpus_passes_on_the_core() {
    let files = corpus_files();
    assert!(!files.is_empty(), "no corpus files found");
    let (mut cases, mut failures, mut rejections) = (0usize, Vec::new(), 0usize);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let tf = TestFile::parse(&text).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        let policy_text = match &tf.policy {
            PolicySource::Inline(t) => t.clone(),
            PolicySource::Path(p) => std::fs::read_to_string(f.parent().unwrap().join(p)).unwrap(),
        };
        let parsed = Policy::parse(policy_text.as_bytes());
        if let Some(want) = &tf.expect_policy_error {
            rejections += 1;
            match parsed {
                Ok(_) => failures.push(format!(
                    "{}: policy accepted, expected errors at {want:?}",
                    f.display()
                )),
                Err(problems) => {
                    let missing = missing_policy_errors(want, &problems);
                    if !missing.is_empty() {
                        failures.push(format!(
                            "{}: no error at {missing:?}; errors were:\n{problems}",
                            f.display()
                        ));
                    }
                }
            }
            continue;
        }
        let policy = parsed.unwrap_or_else(|e| panic!("{}: policy rejected:\n{e}", f.display()));
        for case in &tf.cases {
            cases += 1;
            let outcome = run_core(&policy, case);
            let mismatches = check(&case.expect, &outcome);
            if !mismatches.is_empty() {
                let lines: Vec<String> = mismatches.iter().map(|m| format!("    {m}")).collect();
                failures.push(format!(
                    "{}:{}: {}\n{}\n    trace: {}",
                    f.display(),
                    case.line,
                    case.name,
                    lines.join("\n"),
                    outcome.trace
                ));
            }
        }
    }
    println!(
        "corpus: {} files, {cases} cases, {rejections} rejected-policy files, {} failures",
        files.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
