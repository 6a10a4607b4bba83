//! Runs the whole policy test corpus through the playground's `run_tests`,
//! natively, and prints `{"<repo path>": <run_tests result>, ...}`.
//!
//! The browser test runs the same files through the same function compiled
//! to wasm, in the page, and requires the two outputs to be identical.
//!
//! Usage: `cargo run -p portcullis-web --example corpus [REPO_ROOT]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Every test file of the corpus (same selection as the core's corpus test
/// and scripts/web-manifest.mjs), as repo-relative paths, sorted per folder.
fn corpus_files(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for (dir, suffix) in [("tests/corpus", ".json"), ("policy-samples", ".tests.json")] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(suffix))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| format!("{dir}/{n}")));
    }
    files
}

fn main() -> ExitCode {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let mut out: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for f in corpus_files(&root) {
        let path = root.join(&f);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{f}: {e}");
                return ExitCode::FAILURE;
            }
        };
        // The page does the same: a policy named by path is read next to the
        // test file and handed over under the name the file uses.
        let mut policies = BTreeMap::new();
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&text) {
            if let Some(serde_json::Value::String(p)) = m.get("policy") {
                let dir = path.parent().unwrap_or(&root);
                if let Ok(t) = std::fs::read_to_string(dir.join(p)) {
                    policies.insert(p.clone(), t);
                }
            }
        }
        let policies_json = serde_json::to_string(&policies).unwrap_or_default();
        let result = portcullis_web::run_tests(&text, &policies_json);
        match serde_json::from_str(&result) {
            Ok(v) => {
                out.insert(f, v);
            }
            Err(e) => {
                eprintln!("{f}: run_tests returned bad JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
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
