//! Prints the playground's manifest (`www/pkg/manifest.json`): the sample
//! policies with the test files that name them, and the whole corpus, as
//! URLs relative to `www/` (`base` is `../`, the repository root).
//!
//! The lists come from `portcullis_harness::corpus`, the discovery every
//! engine uses, so the page runs exactly the files the other engines run.
//!
//! Usage: `cargo run -p portcullis-web --example manifest [REPO_ROOT]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portcullis_harness::corpus;
use serde::Serialize;

#[derive(Serialize)]
struct Sample {
    name: String,
    policy: String,
    tests: Vec<String>,
}

#[derive(Serialize)]
struct Manifest {
    base: &'static str,
    samples: Vec<Sample>,
    corpus: Vec<String>,
}

fn main() -> ExitCode {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let m = corpus::manifest(&root);
    let out = Manifest {
        base: "../",
        samples: m
            .samples
            .into_iter()
            .map(|s| Sample {
                name: s.name,
                policy: s.policy,
                tests: s.tests,
            })
            .collect(),
        corpus: m.corpus,
    };
    match serde_json::to_string_pretty(&out) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
