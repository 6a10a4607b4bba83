//! Finding test files: the one rule every engine, the fuzz checks and the
//! playground's manifest use.
//!
//! The corpus is the test files of `tests/corpus/` and `policy-samples/`.
//! In a directory, a test file is a `*.json` file that ends in
//! `.tests.json`, or whose top-level object has `cases` or
//! `expect_policy_error`, or that is not JSON at all (so a broken test file
//! is reported, not silently dropped). Policy documents next to their tests
//! are therefore left out without any naming convention.

use std::path::{Component, Path, PathBuf};

use portcullis_core::json::{self, Kind};

use crate::file::PolicySource;
use crate::read;

/// The corpus folders, relative to the repository root.
pub const FOLDERS: [&str; 2] = ["tests/corpus", "policy-samples"];

/// The repository this crate was built in (for tests and tools run from it).
pub fn root() -> PathBuf {
    normalize(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Whether a file's name and text make it a test file (see the module docs).
pub fn is_test_file(name: &str, text: &str) -> bool {
    if !name.ends_with(".json") {
        return false;
    }
    if name.ends_with(".tests.json") {
        return true;
    }
    match json::parse(text) {
        Ok(v) => {
            matches!(v.kind, Kind::Object(_))
                && (v.get("cases").is_some() || v.get("expect_policy_error").is_some())
        }
        Err(_) => true,
    }
}

/// The test files of one directory, sorted by name.
pub fn in_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.is_file())
        .filter(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json")
                && std::fs::read_to_string(f).is_ok_and(|t| is_test_file(name, &t))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Expands files and directories into test files: a file is taken as
/// given, a directory gives its test files ([`in_dir`]).
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(in_dir(p)?);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(out)
}

/// Every test file of the corpus under `root`, folder by folder, sorted
/// (a missing folder gives none).
pub fn files(root: &Path) -> Vec<PathBuf> {
    FOLDERS
        .iter()
        .flat_map(|d| in_dir(&root.join(d)).unwrap_or_default())
        .collect()
}

/// The sample policies: the `policy-samples/*.json` that are not test files.
pub fn sample_policies(root: &Path) -> Vec<PathBuf> {
    let dir = root.join("policy-samples");
    let tests = in_dir(&dir).unwrap_or_default();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json") && !tests.contains(p))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// One sample policy and the test files that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Its file name without `.json`.
    pub name: String,
    /// Its path relative to the root.
    pub policy: String,
    /// The corpus files whose `policy` is this file, relative to the root.
    pub tests: Vec<String>,
}

/// What the playground lists: the samples and the whole corpus, as paths
/// relative to the root (with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The sample policies.
    pub samples: Vec<Sample>,
    /// Every corpus test file.
    pub corpus: Vec<String>,
}

/// The playground's manifest of the corpus under `root`.
pub fn manifest(root: &Path) -> Manifest {
    let root = &normalize(root);
    let rel = |p: &Path| -> String {
        let p = p.strip_prefix(root).unwrap_or(p);
        let parts: Vec<String> = p
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.join("/")
    };
    let tests = files(root);
    // Which policy file each test file names (inline policies name none).
    let policy_of: Vec<(String, Option<String>)> = tests
        .iter()
        .map(|t| {
            let named = std::fs::read_to_string(t).ok().and_then(|text| {
                match read::read(&text).0.ok()?.policy {
                    PolicySource::Path(p) => Some(rel(&normalize(&t.parent()?.join(p)))),
                    PolicySource::Inline(_) => None,
                }
            });
            (rel(t), named)
        })
        .collect();
    let samples = sample_policies(root)
        .iter()
        .map(|p| {
            let policy = rel(p);
            Sample {
                name: p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                tests: policy_of
                    .iter()
                    .filter(|(_, n)| n.as_deref() == Some(policy.as_str()))
                    .map(|(t, _)| t.clone())
                    .collect(),
                policy,
            }
        })
        .collect();
    Manifest {
        samples,
        corpus: policy_of.into_iter().map(|(t, _)| t).collect(),
    }
}

/// `a/b/../c` as `a/c` (lexically: test files name policies by relative path).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
