//! Embeds the shipping filter in the binary, so that an installed
//! `portcullis` runs `portcullis test` from any directory.
//!
//! The module embedded is, in order:
//! 1. `$PORTCULLIS_EMBED_FILTER` if set (it must exist);
//! 2. `dist/portcullis_filter.wasm` of this checkout, what
//!    `scripts/build-filter.sh` (`./build.sh build`) writes: the release
//!    module, wasm-opt'ed, byte for byte what ships to Envoy;
//! 3. on a fresh clone without `dist/`: the filter built here with cargo
//!    (`--profile wasm`, into OUT_DIR) without wasm-opt, with a warning
//!    (same code, larger module; `--version` names its sha256 either way);
//! 4. if that build fails too (no `wasm32-unknown-unknown` target): nothing,
//!    with a warning; `portcullis test --engine wasm` then says to run
//!    `scripts/build-filter.sh` and reinstall, or to pass `--filter`.
//!
//! It writes `$OUT_DIR/embedded_filter.rs` (included by `src/filter.rs`).
//! Cargo reruns it when the module's mtime changes: `scripts/build-filter.sh`
//! always writes a new file; one copied back with an old mtime needs a
//! `touch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let root = manifest.join("../..");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PORTCULLIS_EMBED_FILTER");

    let generated = match std::env::var_os("PORTCULLIS_EMBED_FILTER") {
        Some(p) => {
            let p = PathBuf::from(p);
            println!("cargo:rerun-if-changed={}", p.display());
            match std::fs::read(&p) {
                Ok(bytes) => embedded(&out, &bytes, "PORTCULLIS_EMBED_FILTER"),
                Err(e) => {
                    // An explicit request that cannot be honoured is an error.
                    eprintln!("error: PORTCULLIS_EMBED_FILTER={}: {e}", p.display());
                    std::process::exit(1);
                }
            }
        }
        None => {
            let dist = root.join("dist/portcullis_filter.wasm");
            println!("cargo:rerun-if-changed={}", dist.display());
            match std::fs::read(&dist) {
                Ok(bytes) => embedded(&out, &bytes, "dist/portcullis_filter.wasm"),
                Err(_) => match build_filter(&root, &out) {
                    Ok(bytes) => {
                        println!(
                            "cargo:warning=dist/portcullis_filter.wasm not found: embedded a filter \
                             built without wasm-opt; run scripts/build-filter.sh (or ./build.sh build) \
                             and rebuild for the release module"
                        );
                        embedded(&out, &bytes, "cargo build (no wasm-opt)")
                    }
                    Err(why) => {
                        println!(
                            "cargo:warning=no filter embedded: dist/portcullis_filter.wasm not found \
                             and building it failed ({why}); run scripts/build-filter.sh (or \
                             ./build.sh build) and rebuild"
                        );
                        missing()
                    }
                },
            }
        }
    };
    if let Err(e) = std::fs::write(out.join("embedded_filter.rs"), generated) {
        eprintln!("error: cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn embedded(out: &Path, bytes: &[u8], origin: &str) -> String {
    let copy = out.join("portcullis_filter.wasm");
    if let Err(e) = std::fs::write(&copy, bytes) {
        eprintln!("error: cannot write {}: {e}", copy.display());
        std::process::exit(1);
    }
    let sha = hex(&Sha256::digest(bytes));
    println!("cargo:rustc-env=PORTCULLIS_EMBEDDED_FILTER=sha256:{sha}");
    format!(
        "/// The filter module embedded at build time.\n\
         pub const EMBEDDED: Option<&[u8]> = Some(include_bytes!({copy:?}));\n\
         /// Its sha256 (hex).\n\
         pub const EMBEDDED_SHA256: Option<&str> = Some({sha:?});\n\
         /// Where the build took it from.\n\
         pub const EMBEDDED_ORIGIN: &str = {origin:?};\n"
    )
}

fn missing() -> String {
    println!("cargo:rustc-env=PORTCULLIS_EMBEDDED_FILTER=none embedded");
    "/// No filter was embedded (see build.rs).\n\
     pub const EMBEDDED: Option<&[u8]> = None;\n\
     /// No filter, no sha256.\n\
     pub const EMBEDDED_SHA256: Option<&str> = None;\n\
     /// Why there is none.\n\
     pub const EMBEDDED_ORIGIN: &str = \"none\";\n"
        .to_string()
}

/// Builds the filter with cargo into OUT_DIR (its own target directory: the
/// outer build holds the lock of the main one).
fn build_filter(root: &Path, out: &Path) -> Result<Vec<u8>, String> {
    let target_dir = out.join("filter-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--locked",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm",
            "-p",
            "portcullis-filter",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // Host flags must not leak into a wasm build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build -p portcullis-filter --target wasm32-unknown-unknown: {status} \
             (rustup target add wasm32-unknown-unknown)"
        ));
    }
    let wasm = target_dir.join("wasm32-unknown-unknown/wasm/portcullis_filter.wasm");
    std::fs::read(&wasm).map_err(|e| format!("{}: {e}", wasm.display()))
}
