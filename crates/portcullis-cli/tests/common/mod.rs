//! Helpers shared by the integration tests: the binary run as a user runs
//! it, the workspace and scratch directories, the shipped filter, output
//! as text.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `bin` as a user runs it: from `dir`, no colour, the samples' key in
/// `FUNCTION_KEY` (they read it with `value_from`), the module cache in
/// `cache`, no `PORTCULLIS_FILTER` from the caller's environment.
pub fn user_command(bin: &Path, dir: &Path, cache: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("FUNCTION_KEY", "K-test")
        .env("PORTCULLIS_CACHE_DIR", cache)
        .env_remove("PORTCULLIS_FILTER");
    c
}

/// The `portcullis` under test, run from the workspace root with its cache
/// in `target/cli-test/cache`.
pub fn command() -> Command {
    let root = root();
    user_command(
        Path::new(env!("CARGO_BIN_EXE_portcullis")),
        &root,
        &root.join("target/cli-test/cache"),
    )
}

/// `portcullis args…` (see [`command`]), run to the end.
pub fn portcullis(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

/// The shipped filter, `dist/portcullis_filter.wasm` (the test fails if
/// it was not built).
pub fn filter() -> PathBuf {
    let f = root().join("dist/portcullis_filter.wasm");
    assert!(
        f.exists(),
        "{} is missing: run ./build.sh build first",
        f.display()
    );
    f
}

/// A fresh directory under the system's temporary directory (outside the
/// repository), unique to this process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("portcullis-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// stdout then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", out(o), err(o))
}

/// stdout.
pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
