//! Runs the shared policy test corpus on the native engine, through the one
//! runner (`portcullis-harness`).
//!
//! The corpus is what `portcullis_harness::corpus::files` finds under
//! `tests/corpus/` and `policy-samples/` (format: policy-tests-v1). The same
//! files run through the filter under wasmtime (`portcullis test`), real
//! Envoy (`portcullis-e2e`) and the playground (browser test).

use portcullis_harness::{corpus, native, Suite, Tally};

#[test]
fn corpus_passes_on_the_core() {
    let files = corpus::files(&corpus::root());
    assert!(!files.is_empty(), "no corpus files found");
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for f in &files {
        let suite = Suite::read(f).unwrap_or_else(|e| panic!("{e}"));
        let report = native::run_suite(&suite);
        tally.add(&report);
        failures.extend(report.failures());
    }
    println!("corpus on the core: {tally}");
    assert_eq!(tally.skipped, 0, "the core skips nothing");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
