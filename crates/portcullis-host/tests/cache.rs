//! The compiled-module cache: a second load is a hit, and a broken entry is
//! never used but replaced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use portcullis_host::{CacheOutcome, Engine, ModuleCache, Options};

/// A minimal proxy-wasm module (WAT: the tests enable wasmtime's `wat`);
/// `tag` makes distinct modules.
fn module(tag: u32) -> String {
    common::module(
        "",
        &format!(
            r#"(func (export "tag") (result i32) i32.const {tag})
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)"#
        ),
    )
}

/// A fresh directory under the system's temporary directory.
fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "portcullis-host-cache-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn load(wasm: &str, cache: &ModuleCache) -> CacheOutcome {
    let (engine, outcome) = Engine::with_cache(wasm.as_bytes(), Options::default(), cache).unwrap();
    // Whatever the path, the engine works.
    engine.configure(b"{}").unwrap();
    outcome
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn the_second_load_comes_from_the_cache_and_each_module_has_its_entry() {
    let dir = scratch("second");
    let cache = ModuleCache::new(dir.as_path().join("nested/cache"));
    assert_eq!(load(&module(1), &cache), CacheOutcome::Stored);
    assert_eq!(load(&module(1), &cache), CacheOutcome::Hit);
    assert_eq!(load(&module(2), &cache), CacheOutcome::Stored);
    assert_eq!(load(&module(2), &cache), CacheOutcome::Hit);
    let files = entries(cache.dir());
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        // <sha256 of the module>-<compatibility hash>.cwasm
        assert!(
            name.ends_with(".cwasm") && name.len() == 64 + 1 + 16 + 6,
            "{name}"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_or_truncated_entry_is_recompiled_and_replaced() {
    let dir = scratch("corrupt");
    let cache = ModuleCache::new(dir.as_path());
    let wasm = module(3);
    assert_eq!(load(&wasm, &cache), CacheOutcome::Stored);
    let entry = entries(dir.as_path()).pop().unwrap();
    let good = std::fs::read(&entry).unwrap();

    // One flipped byte in the compiled code.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    std::fs::write(&entry, &bad).unwrap();
    assert_eq!(
        load(&wasm, &cache),
        CacheOutcome::Replaced("checksum mismatch".into())
    );
    assert_eq!(std::fs::read(&entry).unwrap(), good, "entry rewritten");
    assert_eq!(load(&wasm, &cache), CacheOutcome::Hit);

    // Cut short, and not an entry at all.
    for (bytes, why) in [
        (&good[..40], "truncated"),
        (&b"garbage"[..], "not a cache entry"),
    ] {
        std::fs::write(&entry, bytes).unwrap();
        assert_eq!(load(&wasm, &cache), CacheOutcome::Replaced(why.into()));
        assert_eq!(load(&wasm, &cache), CacheOutcome::Hit);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_cache_still_loads_the_module() {
    let dir = scratch("unwritable");
    // A file where the directory should be.
    let blocker = dir.as_path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = ModuleCache::new(blocker.join("cache"));
    for _ in 0..2 {
        assert!(matches!(
            load(&module(4), &cache),
            CacheOutcome::NotStored(_)
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_module_that_does_not_compile_is_an_error_not_a_cache_problem() {
    let dir = scratch("compile");
    let cache = ModuleCache::new(dir.as_path());
    let e = Engine::with_cache(b"\0asm\x01\0\0\0\xff", Options::default(), &cache).unwrap_err();
    assert!(matches!(e, portcullis_host::HostError::Compile(_)), "{e:?}");
    assert!(entries(dir.as_path()).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
