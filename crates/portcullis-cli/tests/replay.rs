//! `portcullis replay`, driven as a user would: the corpus of small logs of
//! every format in `tests/replay/` with their expected reports (`*.txt`,
//! whose first line is the command), the JSON form, the `--fail-on` exit
//! codes, the file:line error for a
//! malformed record and `--keep-going`. `PORTCULLIS_BLESS=1` rewrites the
//! expected reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

mod common;

use common::{portcullis, root};

const LAYERED: &str = "policy-samples/layered-security.json";
const NO_FE1ASE: &str = "tests/replay/layered-security.no-fe1ase.json";
const NSG_V2: &str = "tests/replay/layered-security.nsg-v2.json";

fn bless() -> bool {
    std::env::var_os("PORTCULLIS_BLESS").is_some_and(|v| v == "1")
}

#[test]
fn prints_the_expected_reports() {
    let mut n = 0;
    let mut failures = Vec::new();
    let mut formats = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(root().join("tests/replay")).unwrap() {
        let f = e.unwrap().path();
        if f.extension().is_none_or(|x| x != "txt") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let (head, expected) = text.split_once('\n').unwrap();
        let cmd = head.strip_prefix("# portcullis ").unwrap();
        let args: Vec<&str> = cmd.split(' ').collect();
        for a in &args {
            for ext in [
                ".nsg-v1.json.gz",
                ".nsg-v2.json",
                ".vnet.json",
                ".envoy.jsonl",
                ".trace.jsonl",
                ".appservice.jsonl",
            ] {
                if a.ends_with(ext) {
                    formats.insert(ext);
                }
            }
        }
        let o = portcullis(&args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let got = String::from_utf8_lossy(&o.stdout);
        if got != expected {
            if bless() {
                std::fs::write(&f, format!("{head}\n{got}")).unwrap();
            } else {
                failures.push(format!(
                    "{} differs (PORTCULLIS_BLESS=1 to re-bless)\n--- want\n{expected}\n--- got\n{got}",
                    f.display()
                ));
            }
        }
        n += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(n >= 6, "{n} reports");
    assert_eq!(formats.len(), 6, "every format has a report: {formats:?}");
}

#[test]
fn the_json_form_adds_up() {
    let o = portcullis(&["replay", LAYERED, NO_FE1ASE, NSG_V2, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["old"], "layered-security");
    let denied = v["newly_denied"].as_array().unwrap();
    assert_eq!(denied[0]["old"]["rule"], "allow-https-fe1ase");
    assert_eq!(denied[0]["new"]["rule"], "default");
    assert_eq!(denied[0]["clients"][0]["client"], "65.52.10.20");
    assert_eq!(denied[0]["clients"][0]["example"], format!("{NSG_V2}:19"));
    let sum = |k: &str| -> u64 {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|g| g["records"].as_u64().unwrap())
            .sum()
    };
    let not_judged: u64 = v["not_judged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["records"].as_u64().unwrap())
        .sum();
    assert_eq!(
        sum("newly_denied") + sum("newly_allowed") + v["unchanged"].as_u64().unwrap() + not_judged,
        v["records"].as_u64().unwrap()
    );
    let never: Vec<&str> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["records"] == 0)
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(never.contains(&"allow-http-fe3ase"), "{never:?}");
}

#[test]
fn fail_on_fires_only_for_its_kind() {
    let run = |extra: &[&str], args: &[&str]| {
        let mut a = vec!["replay"];
        a.extend_from_slice(args);
        a.extend_from_slice(extra);
        portcullis(&a).status.code()
    };
    let cut = [LAYERED, NO_FE1ASE, NSG_V2];
    assert_eq!(run(&["--fail-on", "observed-newly-denied"], &cut), Some(1));
    assert_eq!(run(&["--fail-on", "observed-newly-allowed"], &cut), Some(0));
    assert_eq!(run(&["--fail-on", "any"], &cut), Some(1));
    assert_eq!(run(&[], &cut), Some(0));
    let back = [NO_FE1ASE, LAYERED, NSG_V2];
    assert_eq!(
        run(&["--fail-on", "observed-newly-allowed"], &back),
        Some(1)
    );
    assert_eq!(run(&["--fail-on", "observed-newly-denied"], &back), Some(0));
    let same = [LAYERED, LAYERED, NSG_V2];
    assert_eq!(run(&["--fail-on", "any"], &same), Some(0));
    // The window: fe1ase's last call is at 11:00; after 10:30 only it.
    assert_eq!(
        run(
            &["--fail-on", "any", "--until", "2026-11-30T09:59:59Z"],
            &cut
        ),
        Some(0)
    );
    assert_eq!(
        run(
            &["--fail-on", "any", "--since", "2026-11-30T10:30:00Z"],
            &cut
        ),
        Some(1)
    );
    assert_eq!(run(&["--since", "yesterday"], &cut), Some(2));
    assert_eq!(run(&["--fail-on", "sometimes"], &cut), Some(2));
    assert_eq!(run(&[], &[LAYERED, NO_FE1ASE]), Some(2));
    assert_eq!(
        run(&[], &[LAYERED, NO_FE1ASE, "tests/replay/missing.json"]),
        Some(1)
    );
}

#[test]
fn a_malformed_record_is_named_by_file_and_line() {
    let dir = root().join("target/cli-test/replay");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("bad.nsg.json");
    std::fs::write(
        &log,
        "{\"records\": [{\"properties\": {\"flows\": [{\"flows\": [{\"flowTuples\": [\n\
         \"1796032800,65.52.10.20,10.0.1.4,50100,443,T,I,A\",\n\
         \"1796032801,65.52.10.20,10.0.1.4,99999,443,T,I,A\",\n\
         \"1796032802,65.52.10.20,10.0.1.4,50102,443,T,I,A\"\n\
         ]}]}]}}]}\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let o = portcullis(&["replay", LAYERED, NO_FE1ASE, log]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{log}:3: flow tuple: bad port")),
        "{err}"
    );
    assert!(o.stdout.is_empty());
    let o = portcullis(&[
        "replay",
        LAYERED,
        NO_FE1ASE,
        log,
        "--keep-going",
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["records"], 3);
    assert_eq!(v["not_judged"][0]["reason"], "malformed");
    assert_eq!(v["newly_denied"][0]["records"], 2);
    // A JSON-lines log: the line of the bad record.
    let log = dir.join("bad.envoy.jsonl");
    std::fs::write(
        &log,
        "{\"portcullis_log\":1,\"downstream_remote_address\":\"65.52.10.20:1\",\"downstream_local_address\":\"10.0.1.4:443\"}\n\n{\"portcullis_log\":1,\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let o = portcullis(&["replay", LAYERED, NO_FE1ASE, log]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{log}:3: not JSON (truncated)")),
        "{err}"
    );
}

#[test]
fn reads_stdin_and_never_prints_header_values() {
    use std::io::Write;
    use std::process::Stdio;
    let secret = "3b1d4e02-7f7c-4c5e-9a1f-5d2c8e6b9f40";
    let log = std::fs::read(root().join("tests/replay/front-door.appservice.jsonl")).unwrap();
    let mut c = common::command()
        .args([
            "replay",
            "--policy",
            "tests/replay/front-door.xff.json",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&log).unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("newly denied: 2 records"), "{out}");
    assert!(out.contains("e.g. -:2"), "{out}");
    assert!(!out.contains(secret) && !String::from_utf8_lossy(&o.stderr).contains(secret));
}

#[test]
fn the_rollout_guide_shows_the_report_it_gets() {
    let o = portcullis(&[
        "replay",
        LAYERED,
        NO_FE1ASE,
        NSG_V2,
        "--fail-on",
        "observed-newly-denied",
    ]);
    assert_eq!(o.status.code(), Some(1), "fe1ase is still calling");
    let doc = std::fs::read_to_string(root().join("docs/rollout.md")).unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        doc.contains(out.as_ref()),
        "docs/rollout.md's replay example is stale; it should show:\n{out}"
    );
}
