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

use portcullis_harness::{corpus, PolicySource, TestFile};

fn main() -> ExitCode {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let mut out: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    // The one discovery every engine uses, as repo-relative paths.
    for f in corpus::manifest(&root).corpus {
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
        if let Ok(TestFile {
            policy: PolicySource::Path(p),
            ..
        }) = TestFile::parse(&text)
        {
            let dir = path.parent().unwrap_or(&root);
            if let Ok(t) = std::fs::read_to_string(dir.join(&p)) {
                policies.insert(p, t);
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
