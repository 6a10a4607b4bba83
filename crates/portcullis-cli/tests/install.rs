//! `cargo install` the CLI and run the installed binary from a directory
//! outside the repository, as a user would: nothing may depend on the
//! checkout (the filter is embedded, the cache lives in its own directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Output};
use std::time::Instant;

use common::{root, scratch, sha256, text, user_command};

#[test]
fn the_installed_binary_works_from_any_directory() {
    let root = root();
    let wasm = std::fs::read(root.join("dist/portcullis_filter.wasm"))
        .expect("dist/portcullis_filter.wasm: run scripts/build-filter.sh (./build.sh build)");
    let tmp = scratch("install");
    assert!(
        !tmp.starts_with(&root),
        "{} is inside the repository",
        tmp.display()
    );

    // The workspace target dir: the install reuses the debug build.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let t0 = Instant::now();
    let o = Command::new(cargo)
        .args(["install", "--quiet", "--debug", "--locked", "--path"])
        .arg(root.join("crates/portcullis-cli"))
        .arg("--root")
        .arg(tmp.join("prefix"))
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&tmp)
        .output()
        .unwrap();
    assert!(o.status.success(), "cargo install failed:\n{}", text(&o));
    println!("cargo install took {:.1} s", t0.elapsed().as_secs_f64());
    let bin = tmp.join("prefix/bin/portcullis");
    assert!(bin.is_file(), "{} missing", bin.display());

    // A policy and its tests, copied out of the repository.
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).unwrap();
    for f in [
        "functions-behind-apim.json",
        "functions-behind-apim.tests.json",
    ] {
        std::fs::copy(root.join("policy-samples").join(f), work.join(f)).unwrap();
    }
    let cache = tmp.join("cache");
    let run = |args: &[&str]| -> Output {
        user_command(&bin, &work, &cache)
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| -> String {
        let o = run(args);
        let t = text(&o);
        assert!(o.status.success(), "portcullis {args:?}:\n{t}");
        t
    };

    let sha = sha256(&wasm);
    let v = ok(&["--version"]);
    assert_eq!(
        v,
        format!(
            "portcullis {} (filter sha256:{sha})\n",
            env!("CARGO_PKG_VERSION")
        )
    );

    let help = ok(&["--help"]);
    for c in [
        "check",
        "test",
        "explain",
        "package",
        "completions",
        "Exit status",
    ] {
        assert!(help.contains(c), "{c} missing from\n{help}");
    }
    assert!(ok(&["test", "--help"]).contains("--engine <ENGINE>"));

    let t = ok(&["check", "functions-behind-apim.json"]);
    assert!(t.contains("functions-behind-apim.json: ok policy"), "{t}");

    // The embedded filter, compiled once, then from the cache.
    let first = ok(&["test", "functions-behind-apim.tests.json"]);
    assert!(
        first.contains(&format!("filter sha256:{sha} (embedded)")),
        "{first}"
    );
    assert!(first.contains("compiled and cached"), "{first}");
    assert!(first.contains(" 0 failed"), "{first}");
    let second = ok(&["test", "functions-behind-apim.tests.json"]);
    assert!(second.contains("loaded from the cache"), "{second}");
    assert_eq!(
        first.lines().last(),
        second.lines().last(),
        "same cases, same result"
    );
    let t = ok(&[
        "test",
        "--engine",
        "core",
        "functions-behind-apim.tests.json",
    ]);
    assert!(t.contains(" 0 failed"), "{t}");

    let bash = ok(&["completions", "bash"]);
    assert!(
        bash.contains("_portcullis()") && bash.contains("complete -F"),
        "{bash}"
    );
    assert!(bash.contains("--engine"), "{bash}");

    // Without paths and outside the repository: a usage error that says so.
    let o = run(&["test"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no test files given"), "{}", text(&o));

    let _ = std::fs::remove_dir_all(&tmp);
}
