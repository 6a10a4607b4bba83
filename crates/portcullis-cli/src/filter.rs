//! Which filter module `portcullis test` runs, and where compiled modules
//! are cached.
//!
//! The module is, in order: `--filter FILE`, `$PORTCULLIS_FILTER`, or the
//! one embedded at build time (see `build.rs`: `dist/portcullis_filter.wasm`
//! of the checkout the binary was built from). Reports name it by sha256.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use portcullis_host::{CacheOutcome, ModuleCache};
use sha2::{Digest, Sha256};

use crate::Engine;

include!(concat!(env!("OUT_DIR"), "/embedded_filter.rs"));

/// `--version`: the crate version and the embedded filter's sha256.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (filter ",
    env!("PORTCULLIS_EMBEDDED_FILTER"),
    ")"
);

/// Where a filter module came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// Embedded in this binary at build time.
    Embedded,
    /// Read from a file (`--filter` or `$PORTCULLIS_FILTER`).
    File(PathBuf),
}

impl Origin {
    /// `embedded` or the file's path, for reports.
    pub fn describe(&self) -> String {
        match self {
            Origin::Embedded => "embedded".to_string(),
            Origin::File(p) => p.display().to_string(),
        }
    }
}

/// A filter module's bytes, origin and sha256.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The module.
    pub bytes: Cow<'static, [u8]>,
    /// Where it came from.
    pub origin: Origin,
    /// sha256 of the bytes, lowercase hex.
    pub sha256: String,
}

impl Filter {
    /// `flag` (`--filter`), else `$PORTCULLIS_FILTER`, else the embedded one.
    pub fn resolve(flag: Option<&Path>) -> Result<Filter, String> {
        let env = std::env::var_os("PORTCULLIS_FILTER").map(PathBuf::from);
        match flag.map(Path::to_path_buf).or(env) {
            Some(path) => Filter::from_file(&path),
            None => Filter::embedded().ok_or_else(|| {
                "this portcullis was built without an embedded filter (dist/portcullis_filter.wasm \
                 was missing and could not be built): run scripts/build-filter.sh (or ./build.sh \
                 build) and rebuild or reinstall it, or pass --filter FILE.wasm"
                    .to_string()
            }),
        }
    }

    /// The filter embedded at build time, if any.
    pub fn embedded() -> Option<Filter> {
        let bytes = EMBEDDED?;
        Some(Filter {
            bytes: Cow::Borrowed(bytes),
            origin: Origin::Embedded,
            sha256: sha256_hex(bytes),
        })
    }

    /// A module read from `path`.
    pub fn from_file(path: &Path) -> Result<Filter, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read the filter {}: {e}", path.display()))?;
        Ok(Filter {
            sha256: sha256_hex(&bytes),
            bytes: Cow::Owned(bytes),
            origin: Origin::File(path.to_path_buf()),
        })
    }
}

/// sha256 as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The compiled-module cache directory: `$PORTCULLIS_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/portcullis` (if absolute), else `~/.cache/portcullis`;
/// `None` when there is no home directory either.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = var("PORTCULLIS_CACHE_DIR") {
        return Some(d);
    }
    if let Some(x) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(x.join("portcullis"));
    }
    var("HOME").map(|h| h.join(".cache/portcullis"))
}

/// Compiles `filter` for [`Engine::Wasm`], through `cache` when given (the
/// outcome says whether it was compiled).
pub fn wasm_engine(
    filter: &Filter,
    cache: Option<&ModuleCache>,
) -> Result<(Engine, Option<CacheOutcome>), String> {
    let opts = crate::wasm_options();
    let label = || {
        format!(
            "filter {} (sha256:{})",
            filter.origin.describe(),
            filter.sha256
        )
    };
    match cache {
        Some(c) => portcullis_host::Engine::with_cache(&filter.bytes, opts, c)
            .map(|(e, o)| (Engine::Wasm(e), Some(o))),
        None => portcullis_host::Engine::with_options(&filter.bytes, opts)
            .map(|e| (Engine::Wasm(e), None)),
    }
    .map_err(|e| format!("{}: {e}", label()))
}
