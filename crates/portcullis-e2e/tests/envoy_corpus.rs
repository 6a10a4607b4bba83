//! The whole policy test corpus (`tests/corpus/*.json`,
//! `policy-samples/*.tests.json`) through real Envoy: one Envoy holds a
//! listener set per file, each with that file's policy moved onto loopback
//! (see `portcullis_e2e::translate`). Files whose policy must be rejected
//! are each given to an Envoy of their own, which must refuse to start and
//! name every expected JSON path in its log.
//!
//! Both engines run the whole corpus: the wasm filter and the native module
//! (`Engine::Native`, `dist/libportcullis_envoy.so`).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use portcullis_core::Policy;
use portcullis_e2e::envoy::expect_refused;
use portcullis_e2e::module::Module;
use portcullis_e2e::paths;
use portcullis_e2e::runner::{
    prepare, require_tools, run_files, Counts, Engine, Harness, Prepared,
};
use portcullis_harness::{corpus, run_file, CaseRun, FileReport, Loaded, Rejection, Suite, Tally};

/// The corpus, as every engine finds it.
fn corpus_files() -> Vec<PathBuf> {
    corpus::files(&paths::workspace())
}

/// The corpus on the wasm filter, then on the native module, which must
/// run as many cases and skip no more.
#[test]
fn corpus_through_envoy() {
    let wasm = corpus_on(Engine::Wasm);
    let native = corpus_on(Engine::Native);
    assert!(
        native.skipped <= wasm.skipped && native.run >= wasm.run,
        "native module: {native:?}; wasm filter: {wasm:?}"
    );
}

fn corpus_on(engine: Engine) -> Counts {
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
    let (runnable, rest): (Vec<&Prepared>, Vec<&Prepared>) = prepared.iter().partition(|p| {
        p.translation.is_some() && Policy::parse_with_env(p.policy.as_bytes(), &p.file.env).is_ok()
    });
    for p in &rest {
        if p.file.expect_policy_error.is_none() {
            broken.push(format!(
                "{}: the core rejects its policy but the file expects cases to run",
                p.name
            ));
        }
    }
    let h = Harness::start_on(engine, "corpus", &runnable, None).unwrap_or_else(|e| panic!("{e}"));
    let (counts, mut failures) = run_files(&h, &runnable);
    let bad_stats = h.wasm_failures().unwrap_or_else(|e| panic!("{e}"));
    drop(h);
    failures.extend(broken);
    println!(
        "corpus through Envoy ({engine:?}): {} files, {} cases run, {} skipped, {} failed",
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
    counts
}

/// Every rejected-policy file: Envoy refuses the configuration, exits
/// non-zero, and its log names each JSON path the file expects (checked by
/// the one runner, with Envoy as the engine that loads the policy).
#[test]
fn corpus_rejected_policies_are_refused_by_envoy() {
    rejected_on(Engine::Wasm);
}

#[test]
fn corpus_rejected_policies_are_refused_by_envoy_native_module() {
    rejected_on(Engine::Native);
}

fn rejected_on(engine: Engine) {
    let module = engine.module();
    let files: Vec<Suite> = corpus_files()
        .iter()
        .filter_map(|f| Suite::read(f).ok())
        .filter(|s| s.file.expect_policy_error.is_some())
        .collect();
    // Two Envoys at a time (one per core); each must refuse and exit.
    let reports: Vec<FileReport> = std::thread::scope(|s| {
        let chunks: Vec<Vec<&Suite>> = vec![
            files.iter().step_by(2).collect(),
            files.iter().skip(1).step_by(2).collect(),
        ];
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let module = module.clone();
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|suite| {
                            run_file(
                                suite,
                                |policy| load_refused(&module, policy.text),
                                |_: &mut (), _, _| CaseRun::Error("no cases".into()),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let tally = Tally::of(&reports);
    let failures: Vec<String> = reports.iter().flat_map(FileReport::failures).collect();
    println!("rejected policies refused by Envoy ({engine:?}): {tally}");
    assert!(
        tally.rejections > 0,
        "no rejected-policy file in the corpus"
    );
    assert_eq!(tally.rejections, files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Envoy as the engine that loads a policy: one Envoy with one listener
/// holding it, which must refuse to start; the problems are read back from
/// its log (`... rejected: LINE:COL: PATH: message`).
fn load_refused(module: &Module, policy: &str) -> Loaded<()> {
    let dir = paths::scratch("refused");
    let config = portcullis_e2e::config::EnvoyConfig {
        admin: portcullis_e2e::net::any_port(),
        listeners: vec![portcullis_e2e::config::Listener {
            name: "plain".into(),
            address: portcullis_e2e::net::any_port(),
            tls: None,
            filter: portcullis_e2e::config::Filter::Inline {
                policy: policy.to_owned(),
            },
        }],
        upstream: portcullis_e2e::config::Upstream::Static(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            9,
        ))),
        module: module.clone(),
        access_log: portcullis_e2e::config::AccessLog::Stdout,
    };
    match expect_refused(&dir, &config.render()) {
        Err(e) => Loaded::Failed(e),
        Ok(err) if err.exit_code == Some(0) => Loaded::Failed(format!("Envoy exited 0:\n{err}")),
        Ok(err) => {
            let lines: Vec<&str> = err.log.lines().collect();
            Loaded::Rejected(Rejection::from_log(&lines, "rejected: "))
        }
    }
}
