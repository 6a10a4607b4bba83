//! The `portcullis` binary, driven as a user would.
#![allow(clippy::unwrap_used)] // test helpers: a failure should stop the test loudly

mod common;

use common::{command, filter, portcullis, root, sha256, text};

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
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["engine"], "wasm");
    assert_eq!(v["failed"], 1, "{v}");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(v["passed"].as_u64().unwrap() + 1, cases.len() as u64);
    let bad: Vec<_> = cases.iter().filter(|c| c["pass"] == false).collect();
    assert_eq!(bad.len(), 1);
    let m = &bad[0]["mismatches"][0];
    assert_eq!(m["field"], "response_headers.strict-transport-security");
    assert_eq!(m["expected"], "\"max-age=60\"");
    assert_eq!(m["seen"], "\"max-age=31536000; includeSubDomains\"");
    assert!(bad[0]["trace"].as_str().unwrap().starts_with("forward "));
    assert!(bad[0]["error"].is_null());
    assert!(bad[0]["line"].as_u64().unwrap() > 0);
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

/// `portcullis explain args…`: it succeeds and its output holds every line
/// of `wants`; the output, for more checks.
fn explain(args: &[&str], wants: &[&str]) -> String {
    let o = portcullis(&[&["explain"], args].concat());
    let t = text(&o);
    println!("{t}");
    assert!(o.status.success(), "{args:?}:\n{t}");
    for want in wants {
        assert!(t.contains(want), "{args:?}: missing {want:?} in\n{t}");
    }
    t
}

#[test]
fn explain_reproduces_the_sample_decisions() {
    explain(
        &[
            "policy-samples/layered-security.json",
            "--peer",
            "191.238.20.30:40000",
            "--local",
            "10.0.0.4:80",
            "--plain",
        ],
        &[
            "allow-http-fe2ase",
            "MATCH every field matches: this rule decides (allow)",
            "no    client 191.238.20.30 is not in source [fe1ase]",
            "trace    forward 0 forward peer 191.238.20.30 - allow-http-fe2ase",
        ],
    );
    explain(
        &[
            "policy-samples/functions-behind-apim.json",
            "--peer",
            "203.0.113.50:1234",
            "-H",
            "x-functions-key: K-test",
        ],
        &[
            "client 203.0.113.50 is not in source [apim-gateway]",
            "no rule matched: default_access is deny",
            "trace    deny 403 network peer 203.0.113.50 - default",
            "strict-transport-security: max-age=31536000; includeSubDomains",
        ],
    );
    let t = explain(
        &[
            "policy-samples/functions-behind-apim.json",
            "--peer",
            "40.112.72.205:1234",
            "--plain",
            "--authority",
            "func-orders.azurewebsites.net",
            "--path",
            "/api/orders?id=7",
        ],
        &[
            "redirect",
            "location: https://func-orders.azurewebsites.net/api/orders?id=7",
        ],
    );
    assert!(!t.contains("strict-transport-security"), "{t}");
}

#[test]
fn explain_never_shows_a_value_from_the_environment() {
    const SECRET: &str = "s3cret-function-key-0a9f";
    let dir = common::scratch("explain-env");
    // A local reply carries the response ops: one of them from the
    // environment too.
    let denying = dir.join("denying.json");
    std::fs::write(
        &denying,
        r#"{"name": "denying",
  "network": {"rules": [{"name": "none", "priority": 100, "access": "allow", "source": ["192.0.2.1"]}],
              "default_access": "deny"},
  "response_headers": [{"set": "x-reply-tag", "value_from": {"env": "FUNCTION_KEY"}}]}"#,
    )
    .unwrap();
    let gateway = root().join("policy-samples/functions-behind-apim.gateway.json");
    let forward = [
        gateway.to_str().unwrap(),
        "--peer",
        "20.30.40.50:1234",
        "--authority",
        "api.contoso.net",
    ];
    let deny = [denying.to_str().unwrap(), "--peer", "20.30.40.50:1234"];
    let run = |args: &[&str], format: &str| {
        let o = command()
            .env("FUNCTION_KEY", SECRET)
            .args([&["explain", "--format", format], args].concat())
            .output()
            .unwrap();
        let t = text(&o);
        println!("{t}");
        assert!(o.status.success(), "{t}");
        assert!(!t.contains(SECRET), "the secret is shown:\n{t}");
        t
    };
    let t = run(&forward, "text");
    assert!(
        t.contains("    = x-functions-key: (from env FUNCTION_KEY)\n"),
        "{t}"
    );
    let t = run(&deny, "text");
    assert!(t.contains("local reply 403 with headers:"), "{t}");
    assert!(
        t.contains("    x-reply-tag: (from env FUNCTION_KEY)\n"),
        "{t}"
    );

    let v: serde_json::Value = serde_json::from_str(&run(&forward, "json")).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["decision"]["verdict"], "forward");
    let edit = v["request_edits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "x-functions-key")
        .unwrap();
    assert_eq!(edit["op"], "replace");
    assert_eq!(edit["value"], "(from env FUNCTION_KEY)");
    assert_eq!(edit["from_env"], "FUNCTION_KEY");
    // Inline values are shown as they are.
    let hsts = v["response_edits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "strict-transport-security")
        .unwrap();
    assert_eq!(hsts["value"], "max-age=31536000; includeSubDomains");
    assert_eq!(hsts["from_env"], serde_json::Value::Null);
    let v: serde_json::Value = serde_json::from_str(&run(&deny, "json")).unwrap();
    assert_eq!(v["local_reply"]["status"], 403);
    let tag = v["local_reply"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "x-reply-tag")
        .unwrap();
    assert_eq!(tag["value"], "(from env FUNCTION_KEY)");
    assert_eq!(tag["from_env"], "FUNCTION_KEY");
}

#[test]
fn explain_json_says_what_the_text_says() {
    let o = portcullis(&[
        "explain",
        "--format",
        "json",
        "policy-samples/layered-security.json",
        "--peer",
        "191.238.20.30:40000",
        "--local",
        "10.0.0.4:80",
        "--plain",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["client"]["ip"], "191.238.20.30");
    assert_eq!(v["client"]["source"], "peer");
    assert_eq!(v["decision"]["rule"], "allow-http-fe2ase");
    assert_eq!(v["decision"]["step"], "forward");
    assert_eq!(
        v["trace"],
        "forward 0 forward peer 191.238.20.30 - allow-http-fe2ase"
    );
    let rules = v["rules"].as_array().unwrap();
    let decided: Vec<_> = rules.iter().filter(|r| r["decided"] == true).collect();
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["name"], "allow-http-fe2ase");
    assert_eq!(
        decided[0]["why"],
        "every field matches: this rule decides (allow)"
    );
    // An invalid policy: ok false and every error with its position.
    let dir = common::scratch("explain-json-bad");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"name\": \"b\", \"mode\": \"loud\"}").unwrap();
    let o = portcullis(&[
        "explain",
        "--format",
        "json",
        bad.to_str().unwrap(),
        "--peer",
        "10.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["path"], "mode");
    assert_eq!(v["errors"][0]["line"], 1);
}

#[test]
fn every_command_has_help_and_usage_errors_exit_2() {
    let o = portcullis(&["--help"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for c in ["check", "test", "explain", "completions", "Exit status: 0"] {
        assert!(t.contains(c), "{c} missing from\n{t}");
    }
    for (cmd, flag) in [
        ("check", "<POLICY>..."),
        ("test", "--engine <ENGINE>"),
        ("explain", "--peer <ADDR:PORT>"),
        ("completions", "<SHELL>"),
    ] {
        let o = portcullis(&[cmd, "--help"]);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help:\n{t}");
        assert!(t.contains(flag), "{cmd} --help lacks {flag}:\n{t}");
    }
    let o = portcullis(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o).starts_with(&format!("portcullis {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        text(&o)
    );
    for bad in [
        &[][..],
        &["frobnicate"],
        &["check"],
        &["test", "--engine", "v8"],
        &["test", "--format", "yaml"],
        &["test", "--nope"],
        &["explain", "policy-samples/layered-security.json"],
        &[
            "explain",
            "policy-samples/layered-security.json",
            "--peer",
            "10.0.0.1",
        ],
        &[
            "explain",
            "policy-samples/layered-security.json",
            "--peer",
            "10.0.0.1:1",
            "-H",
            "no-colon",
        ],
        &["completions", "tcsh"],
    ] {
        let o = portcullis(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}:\n{}", text(&o));
        assert!(!o.stderr.is_empty(), "{bad:?}: no message");
    }
}

#[test]
fn explain_plain_and_tls_override_each_other() {
    let run = |flags: &[&str]| {
        let mut args = vec![
            "explain",
            "policy-samples/layered-security.json",
            "--peer",
            "191.238.20.30:40000",
        ];
        args.extend_from_slice(flags);
        text(&portcullis(&args))
    };
    assert!(run(&[]).contains(" tcp tls GET "), "{}", run(&[]));
    assert!(run(&["--plain"]).contains(" tcp plain GET "));
    assert!(run(&["--plain", "--tls"]).contains(" tcp tls GET "));
    assert!(run(&["--tls", "--plain", "--udp"]).contains(" udp plain GET "));
}

#[test]
fn completions_are_generated_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _portcullis"),
        ("zsh", "#compdef portcullis"),
        ("fish", "complete -c portcullis"),
        ("elvish", "portcullis"),
        ("powershell", "portcullis"),
    ] {
        let o = portcullis(&["completions", shell]);
        let t = text(&o);
        assert!(o.status.success(), "{shell}: {t}");
        assert!(t.contains(marker), "{shell}: no {marker:?} in\n{t}");
        assert!(
            t.contains("explain") && t.contains("engine"),
            "{shell}:\n{t}"
        );
    }
}

#[test]
fn version_and_test_name_the_embedded_filter_by_sha256() {
    let sha = sha256(&std::fs::read(filter()).unwrap());
    let o = portcullis(&["--version"]);
    assert_eq!(
        text(&o),
        format!(
            "portcullis {} (filter sha256:{sha})\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let o = portcullis(&["test", "tests/corpus/client-ip-peer.json"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!("filter sha256:{sha} (embedded), ")),
        "{t}"
    );
    let o = portcullis(&[
        "test",
        "--format",
        "json",
        "tests/corpus/client-ip-peer.json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["filter"]["sha256"], sha.as_str());
    assert_eq!(v["filter"]["source"], "embedded");
    assert_eq!(v["filter"]["cache"], "hit", "{v}");
    // The core engine names no filter.
    let o = portcullis(&[
        "test",
        "--engine",
        "core",
        "--format",
        "json",
        "tests/corpus",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.get("filter").is_none(), "{v}");
}

#[test]
fn filter_overrides_the_embedded_module_and_the_cache_survives_corruption() {
    let dir = root().join("target/cli-test/override");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The shipping filter plus a custom section: another module, same code.
    let mut wasm = std::fs::read(filter()).unwrap();
    wasm.extend_from_slice(&[0, 4, 3, b'n', b'o', b't']);
    let other = dir.join("other.wasm");
    std::fs::write(&other, &wasm).unwrap();
    let sha = sha256(&wasm);
    let cache = dir.join("cache");
    let run = || {
        let o = command()
            .args(["test", "--filter"])
            .arg(&other)
            .arg("tests/corpus/client-ip-peer.json")
            .env("PORTCULLIS_CACHE_DIR", &cache)
            .output()
            .unwrap();
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(
            t.contains(&format!("filter sha256:{sha} ({}), ", other.display())),
            "{t}"
        );
        t
    };
    assert!(run().contains("compiled and cached in"));
    assert!(run().contains("loaded from the cache in"));
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(&sha));
    // A damaged entry is never run: recompiled, replaced, then a hit again.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&entries[0], &bytes).unwrap();
    assert!(run().contains("compiled (cache entry unusable: checksum mismatch)"));
    assert!(run().contains("loaded from the cache in"));
    // A missing --filter file is a usage error naming it.
    let o = portcullis(&["test", "--filter", "/nonexistent/x.wasm", "tests/corpus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read the filter /nonexistent/x.wasm"));
}

#[test]
fn explain_shows_what_a_report_mode_policy_would_do() {
    explain(
        &["docs/rollout/candidate.json", "--peer", "127.0.0.8:5000"],
        &[
            "decision forward at step forward (rule deny-batch)",
            "would    report mode: enforce would deny at step network, status 403",
            "trace    would_deny 403 network peer 127.0.0.8 - deny-batch",
        ],
    );
}

#[test]
fn explain_says_where_the_client_came_from_and_why_it_is_unknown() {
    explain(
        &[
            "policy-samples/behind-app-gateway.json",
            "--peer",
            "10.20.1.5:50000",
            "-H",
            "x-forwarded-for: 65.52.10.20:51234, 10.20.1.6:80",
        ],
        &[
            "client  65.52.10.20 from x-forwarded-for entry 1 (0 is the rightmost)",
            "forward 0 forward x-forwarded-for[1] 65.52.10.20",
        ],
    );
    explain(
        &[
            "policy-samples/behind-app-gateway.json",
            "--peer",
            "10.20.1.5:50000",
            "-H",
            "x-forwarded-for: 65.52.10.20:70000",
        ],
        &[
            "client  unknown: x-forwarded-for entry 0 (the rightmost) is malformed: \"65.52.10.20:70000\"",
            "not evaluated: the client is unknown",
        ],
    );
    explain(
        &[
            "policy-samples/behind-front-door.json",
            "--peer",
            "147.243.12.34:40000",
        ],
        &[
            "unknown: the trusted peer sent no header",
            "deny 403 client_ip header[0] unknown:no-entry - default",
        ],
    );
}
