//! The whole policy test corpus (`tests/corpus/*.json`,
//! `policy-samples/*.tests.json`) through real Envoy: one Envoy holds a
//! listener set per file, each with that file's policy moved onto loopback
//! (see `portcullis_e2e::translate`). Files whose policy must be rejected
//! are each given to an Envoy of their own, which must refuse to start and
//! name every expected JSON path in its log.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use portcullis_core::Policy;
use portcullis_e2e::envoy::expect_refused;
use portcullis_e2e::paths;
use portcullis_e2e::runner::{prepare, require_tools, run_files, Harness, Prepared};

fn corpus_files() -> Vec<PathBuf> {
    let root = paths::workspace();
    let mut files = Vec::new();
    for (dir, suffix) in [("tests/corpus", ".json"), ("policy-samples", ".tests.json")] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
            {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn corpus_through_envoy() {
    require_tools();
    let files = corpus_files();
    assert!(
        !files.is_empty(),
        "no test files found under tests/corpus or policy-samples"
    );
    let mut broken = Vec::new();
    let mut prepared: Vec<Prepared> = Vec::new();
    for f in &files {
        match prepare(f) {
            Ok(p) => prepared.push(p),
            Err(e) => broken.push(e),
        }
    }
    // Files with cases whose policy the core accepts run together.
    let (runnable, rest): (Vec<&Prepared>, Vec<&Prepared>) = prepared
        .iter()
        .partition(|p| p.translation.is_some() && Policy::parse(p.policy.as_bytes()).is_ok());
    for p in &rest {
        if p.file.expect_policy_error.is_none() {
            broken.push(format!(
                "{}: the core rejects its policy but the file expects cases to run",
                p.name
            ));
        }
    }
    let h = Harness::start("corpus", &runnable, None).unwrap_or_else(|e| panic!("{e}"));
    let (counts, mut failures) = run_files(&h, &runnable);
    let bad_stats = h.wasm_failures().unwrap_or_else(|e| panic!("{e}"));
    drop(h);
    failures.extend(broken);
    println!(
        "corpus through Envoy: {} files, {} cases run, {} skipped, {} failed",
        runnable.len(),
        counts.run,
        counts.skipped,
        counts.failed
    );
    assert!(
        bad_stats.is_empty(),
        "wasm failure stats after the corpus: {bad_stats:?}"
    );
    assert!(counts.run > 0, "no corpus case could run through Envoy");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Every rejected-policy file: Envoy refuses the configuration, exits
/// non-zero, and its log names each JSON path the file expects.
#[test]
fn corpus_rejected_policies_are_refused_by_envoy() {
    let (_, wasm) = require_tools();
    let files: Vec<Prepared> = corpus_files()
        .iter()
        .filter_map(|f| prepare(f).ok())
        .filter(|p| p.file.expect_policy_error.is_some())
        .collect();
    // Two Envoys at a time (one per core); each must refuse and exit.
    let results: Vec<(bool, Vec<String>)> = std::thread::scope(|s| {
        let chunks: Vec<Vec<&Prepared>> = vec![
            files.iter().step_by(2).collect(),
            files.iter().skip(1).step_by(2).collect(),
        ];
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let wasm = wasm.clone();
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|p| check_refused(&wasm, p))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let refused = results.iter().filter(|(r, _)| *r).count();
    let failures: Vec<String> = results.into_iter().flat_map(|(_, f)| f).collect();
    println!("rejected policies refused by Envoy: {refused}");
    assert!(refused > 0, "no rejected-policy file in the corpus");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs one rejected-policy file: (Envoy refused it, problems found).
fn check_refused(wasm: &std::path::Path, p: &Prepared) -> (bool, Vec<String>) {
    let mut failures = Vec::new();
    let paths_expected = p.file.expect_policy_error.clone().unwrap_or_default();
    let dir = paths::scratch("refused");
    let config = portcullis_e2e::config::EnvoyConfig {
        admin: portcullis_e2e::net::any_port(),
        listeners: vec![portcullis_e2e::config::Listener {
            name: "plain".into(),
            address: portcullis_e2e::net::any_port(),
            tls: None,
            filter: portcullis_e2e::config::Filter::Inline {
                policy: p.policy.clone(),
            },
        }],
        upstream: portcullis_e2e::config::Upstream::Static(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))),
        module: portcullis_e2e::module::Module::local(wasm),
        access_log: portcullis_e2e::config::AccessLog::Stdout,
    };
    let err = match expect_refused(&dir, &config.render()) {
        Err(e) => return (false, vec![format!("{}: {e}", p.name)]),
        Ok(err) => err,
    };
    if err.exit_code == Some(0) {
        failures.push(format!("{}: Envoy exited 0", p.name));
    }
    for want in &paths_expected {
        // The core prints the document root's empty path as `(document)`.
        let shown = if want.is_empty() {
            "(document)"
        } else {
            want.as_str()
        };
        let needle = format!(": {shown}: ");
        if !err
            .log
            .lines()
            .any(|l| l.contains("rejected:") && l.contains(&needle))
        {
            failures.push(format!(
                "{}: Envoy's log does not name {want}:\n{}",
                p.name, err
            ));
        }
    }
    (true, failures)
}
