//! An on-disk cache of compiled modules, so that a tool that loads the same
//! filter again (a second `portcullis test`) skips cranelift.
//!
//! An entry is `<dir>/<key>.cwasm`, where the key is the sha256 of the
//! module's bytes and a hash of everything wasmtime says decides whether
//! compiled code can be reused: its version, the target and CPU flags, and
//! the engine configuration ([`wasmtime::Engine::precompile_compatibility_hash`]).
//! The file is a magic line, the sha256 of the payload, and the payload
//! ([`wasmtime::Module::serialize`]). On load the magic and the checksum are
//! verified before wasmtime sees the bytes, and wasmtime checks its own
//! header again; anything wrong (truncated, corrupt, written by another
//! wasmtime) is reported as [`CacheOutcome::Replaced`], the module is
//! compiled from source and the entry rewritten (through a temporary file
//! and a rename, so readers never see half an entry).
//!
//! What it does NOT do: protect against someone who can write to the cache
//! directory. An entry is machine code that runs in this process; the
//! directory is created private to the user (mode 0700 on Unix) and must stay
//! so, as for any compiled-code cache. It never evicts old entries either
//! (one entry per filter build, a few MiB each).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Module;

use crate::error::HostError;

const MAGIC: &[u8] = b"portcullis compiled module v1\n";

/// Where compiled modules are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleCache {
    dir: PathBuf,
}

/// How a module was obtained through a [`ModuleCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// Loaded from the cache: nothing was compiled.
    Hit,
    /// Compiled (there was no entry) and stored.
    Stored,
    /// Compiled because the entry was unusable (the reason), and stored again.
    Replaced(String),
    /// Compiled, but the entry could not be written (the reason): the next
    /// load compiles again.
    NotStored(String),
}

impl CacheOutcome {
    /// Whether the module came from the cache without compiling.
    pub fn is_hit(&self) -> bool {
        matches!(self, CacheOutcome::Hit)
    }

    /// One word for reports: `hit`, `stored`, `replaced`, `not-stored`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::Stored => "stored",
            CacheOutcome::Replaced(_) => "replaced",
            CacheOutcome::NotStored(_) => "not-stored",
        }
    }
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheOutcome::Hit => f.write_str("loaded from the cache"),
            CacheOutcome::Stored => f.write_str("compiled and cached"),
            CacheOutcome::Replaced(why) => write!(f, "compiled (cache entry unusable: {why})"),
            CacheOutcome::NotStored(why) => write!(f, "compiled (not cached: {why})"),
        }
    }
}

/// A [`Hasher`] over sha256, so that wasmtime's compatibility hash is
/// stable and wide enough for a file name.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let d = self.0.clone().finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        u64::from_le_bytes(b)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl ModuleCache {
    /// A cache in `dir` (created when the first entry is written).
    pub fn new(dir: impl Into<PathBuf>) -> ModuleCache {
        ModuleCache { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for `wasm` compiled by `engine`.
    pub fn entry(&self, engine: &wasmtime::Engine, wasm: &[u8]) -> PathBuf {
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        std::env::consts::ARCH.hash(&mut h);
        std::env::consts::OS.hash(&mut h);
        let compat = h.0.finalize();
        let module = Sha256::digest(wasm);
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex(&module),
            hex(compat.get(..8).unwrap_or(&[]))
        ))
    }

    /// Loads `wasm` compiled for `engine` from the cache, or compiles it and
    /// stores it. Fails only when compiling fails.
    pub(crate) fn load(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
    ) -> Result<(Module, CacheOutcome), HostError> {
        let path = self.entry(engine, wasm);
        let why = match std::fs::read(&path) {
            Ok(bytes) => match Self::read_entry(engine, &bytes) {
                Ok(module) => return Ok((module, CacheOutcome::Hit)),
                Err(why) => Some(why),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        };
        let module = Module::new(engine, wasm).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        let outcome = match self.store(&path, &module) {
            Err(e) => CacheOutcome::NotStored(e),
            Ok(()) => match why {
                Some(why) => CacheOutcome::Replaced(why),
                None => CacheOutcome::Stored,
            },
        };
        Ok((module, outcome))
    }

    fn read_entry(engine: &wasmtime::Engine, bytes: &[u8]) -> Result<Module, String> {
        let rest = bytes.strip_prefix(MAGIC).ok_or("not a cache entry")?;
        if rest.len() < 32 {
            return Err("truncated".into());
        }
        let (sum, payload) = rest.split_at(32);
        if Sha256::digest(payload).as_slice() != sum {
            return Err("checksum mismatch".into());
        }
        // SAFETY: the payload is byte for byte what `Module::serialize`
        // wrote into this user's private cache (checksum verified above);
        // wasmtime rejects output of another version or configuration.
        unsafe { Module::deserialize(engine, payload) }.map_err(|e| format!("{e:#}"))
    }

    fn store(&self, path: &Path, module: &Module) -> Result<(), String> {
        let payload = module.serialize().map_err(|e| format!("{e:#}"))?;
        create_private_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + 32 + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = path.with_extension(format!("tmp{}-{nanos}", std::process::id()));
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("{}: {e}", path.display())
            })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}
