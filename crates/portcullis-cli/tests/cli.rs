//! The `portcullis` binary, driven as a user would.
#![allow(clippy::unwrap_used)] // test helpers: a failure should stop the test loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn filter() -> PathBuf {
    let f = root().join("dist/portcullis_filter.wasm");
    assert!(
        f.exists(),
        "{} is missing: run ./build.sh build first",
        f.display()
    );
    f
}

#[test]
fn the_whole_corpus_passes_on_the_filter_under_wasmtime_and_on_the_core() {
    filter();
    for engine in ["wasm", "core"] {
        let o = portcullis(&["test", "--engine", engine]);
        let t = text(&o);
        println!("{t}");
        assert!(o.status.success(), "{engine}:\n{t}");
        let summary = t.lines().find(|l| l.ends_with(" failed")).unwrap();
        let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
        assert!(passed >= 80, "{summary}");
        assert!(summary.ends_with(" 0 failed"), "{summary}");
    }
}

#[test]
fn a_broken_sample_test_fails_with_a_readable_diff() {
    filter();
    let src =
        std::fs::read_to_string(root().join("policy-samples/functions-behind-apim.tests.json"))
            .unwrap();
    // Expect the wrong HSTS value: the filter's real header must show up.
    assert!(src.contains("max-age=31536000; includeSubDomains"));
    let broken = src.replacen("max-age=31536000; includeSubDomains", "max-age=60", 1);
    let dir = root().join("target/cli-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root().join("policy-samples/functions-behind-apim.json"),
        dir.join("functions-behind-apim.json"),
    )
    .unwrap();
    let file = dir.join("broken.tests.json");
    std::fs::write(&file, broken).unwrap();
    let o = portcullis(&["test", file.to_str().unwrap()]);
    let t = text(&o);
    println!("{t}");
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL "), "{t}");
    assert!(
        t.contains("response_headers.strict-transport-security:"),
        "{t}"
    );
    assert!(t.contains("expected \"max-age=60\""), "{t}");
    assert!(
        t.contains("seen     \"max-age=31536000; includeSubDomains\""),
        "{t}"
    );
    assert!(t.contains("trace: forward "), "{t}");
    assert!(t.contains(" 1 failed"), "{t}");
    // JSON output says the same.
    let o = portcullis(&["test", "--format", "json", file.to_str().unwrap()]);
    let t = text(&o);
    assert!(
        t.contains("\"failed\":1") && t.contains("\"pass\":false"),
        "{t}"
    );
}

#[test]
fn check_lists_every_mistake_with_its_position() {
    let dir = root().join("target/cli-test");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("mistakes.json");
    std::fs::write(
        &f,
        r#"{
  "name": "mistakes",
  "network": { "rules": [
    { "name": "a", "priority": 99, "access": "allow", "source": ["10.0.0.1/8"] },
    { "name": "a", "priority": 200, "access": "allow", "source": ["Intranet"] }
  ] },
  "hsts": { "max_age": 10, "preload": true }
}"#,
    )
    .unwrap();
    let o = portcullis(&[
        "check",
        f.to_str().unwrap(),
        "policy-samples/layered-security.json",
    ]);
    let t = text(&o);
    println!("{t}");
    assert_eq!(o.status.code(), Some(1));
    for want in [
        "mistakes.json:4:32: error: network.rules[0].priority: must be an integer from 100 to 4096",
        "mistakes.json:4:66: error: network.rules[0].source[0]: invalid address \"10.0.0.1/8\": host bits are set; did you mean 10.0.0.0/8?",
        "mistakes.json:5:15: error: network.rules[1].name: rules network.rules[0] and network.rules[1] are both named \"a\"",
        "mistakes.json:5:67: error: network.rules[1].source[0]: \"Intranet\" is not an address, tag or address_groups entry",
        "mistakes.json:7:39: error: hsts.preload: preload needs",
        "mistakes.json: 5 error(s)",
        "layered-security.json: ok policy \"layered-security\", 9 rules, 0 warnings",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
}

#[test]
fn explain_reproduces_the_sample_decisions() {
    let o = portcullis(&[
        "explain",
        "policy-samples/layered-security.json",
        "--peer",
        "191.238.20.30:40000",
        "--local",
        "10.0.0.4:80",
        "--plain",
    ]);
    let t = text(&o);
    println!("{t}");
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("allow-http-fe2ase")
            && t.contains("MATCH every field matches: this rule decides (allow)"),
        "{t}"
    );
    assert!(
        t.contains("no    client 191.238.20.30 is not in source [fe1ase]"),
        "{t}"
    );
    assert!(
        t.contains("trace    forward 0 forward peer 191.238.20.30 - allow-http-fe2ase"),
        "{t}"
    );

    let o = portcullis(&[
        "explain",
        "policy-samples/functions-behind-apim.json",
        "--peer",
        "203.0.113.50:1234",
        "-H",
        "x-functions-key: K-test",
    ]);
    let t = text(&o);
    println!("{t}");
    assert!(
        t.contains("client 203.0.113.50 is not in source [apim-gateway]"),
        "{t}"
    );
    assert!(t.contains("no rule matched: default_access is deny"), "{t}");
    assert!(
        t.contains("trace    deny 403 network peer 203.0.113.50 - default"),
        "{t}"
    );
    assert!(
        t.contains("strict-transport-security: max-age=31536000; includeSubDomains"),
        "{t}"
    );

    let o = portcullis(&[
        "explain",
        "policy-samples/functions-behind-apim.json",
        "--peer",
        "40.112.72.205:1234",
        "--plain",
        "--authority",
        "func-orders.azurewebsites.net",
        "--path",
        "/api/orders?id=7",
    ]);
    let t = text(&o);
    println!("{t}");
    assert!(t.contains("redirect"), "{t}");
    assert!(
        t.contains("location: https://func-orders.azurewebsites.net/api/orders?id=7"),
        "{t}"
    );
    assert!(!t.contains("strict-transport-security"), "{t}");
}
