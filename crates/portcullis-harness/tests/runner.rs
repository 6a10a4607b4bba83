//! The runner with engines written here: skips, notes, failures,
//! rejections; and corpus discovery on a folder made here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: fail loudly

use std::path::PathBuf;

use portcullis_core::{Policy, Step, Verdict};
use portcullis_harness::{
    corpus, native, run_file, CaseRun, CaseStatus, FileError, Loaded, Outcome, Rejection, Suite,
    Tally,
};

const POLICY: &str = r#"{"name": "p", "network": {"rules": [
  {"name": "ten", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"]}]}}"#;

fn suite(cases: &str) -> Suite {
    let text = format!(r#"{{"policy": "p.json", "cases": [{cases}]}}"#);
    Suite::from_text("t.json", &text, |p| {
        assert_eq!(p, "p.json");
        Ok(POLICY.to_owned())
    })
    .unwrap()
}

const THREE: &str = r#"
  {"name": "in", "request": {"peer": "10.0.0.1:1"}, "expect": {"verdict": "forward", "step": "forward"}},
  {"name": "out", "request": {"peer": "192.0.2.1:1"}, "expect": {"verdict": "forward", "rule": "ten"}},
  {"name": "v6", "request": {"peer": "[2001:db8::1]:1"}, "expect": {"verdict": "deny"}}"#;

#[test]
fn the_core_passes_and_fails_cases_with_their_mismatches() {
    let r = run_file(&suite(THREE), native::load, native::run);
    assert!(!r.passed());
    assert_eq!(r.cases[0].status, CaseStatus::Passed);
    let CaseStatus::Failed(m) = &r.cases[1].status else {
        panic!("{:?}", r.cases[1]);
    };
    assert_eq!(
        m.iter().map(|m| m.field.as_str()).collect::<Vec<_>>(),
        ["verdict", "rule"]
    );
    assert_eq!(
        r.cases[1].trace,
        "deny 403 network peer 192.0.2.1 - default"
    );
    let t = Tally::of([&r]);
    assert_eq!((t.files, t.cases, t.failed, t.skipped), (1, 3, 1, 0));
    let f = r.failures();
    assert_eq!(f.len(), 1);
    assert!(
        f[0].starts_with("t.json:3: out\n    verdict: expected forward, seen deny"),
        "{f:?}"
    );
}

/// An engine that skips IPv6, notes what it normalized, and fails on one.
#[test]
fn skips_notes_and_engine_errors_are_reported_apart() {
    let mut seen = Vec::new();
    let r = run_file(&suite(THREE), native::load, |p: &mut Policy, i, c| {
        seen.push(i);
        if c.request.peer.is_ipv6() {
            return CaseRun::Skip("no IPv6 here".into());
        }
        let o = native::run_core(p, c);
        if c.name == "out" {
            return CaseRun::Error("the engine fell over".into());
        }
        CaseRun::Normalized(o, "joined header lines".into())
    });
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(r.cases[0].note.as_deref(), Some("joined header lines"));
    assert_eq!(
        r.cases[1].status,
        CaseStatus::Error("the engine fell over".into())
    );
    assert_eq!(
        r.cases[2].status,
        CaseStatus::Skipped("no IPv6 here".into())
    );
    let t = Tally::of([&r]);
    assert_eq!((t.cases, t.skipped, t.failed, t.normalized), (2, 1, 1, 1));
    assert_eq!(
        t.to_string(),
        "1 files, 2 cases, 0 rejected policies, 1 skipped, 1 failed"
    );
}

#[test]
fn policies_that_must_be_rejected() {
    let text = r#"{"policy": {"name": "x", "network": {"rules": [
        {"name": "a", "priority": 5, "access": "allow", "source": ["*"]}]}},
      "expect_policy_error": ["network.rules[0].priority"]}"#;
    let s = Suite::from_text("r.json", text, |_| unreachable!()).unwrap();
    let r = run_file(&s, native::load, native::run);
    assert!(r.passed(), "{:?}", r.failures());
    assert_eq!(Tally::of([&r]).rejections, 1);

    // An engine that accepts it fails; one that names another path fails.
    let accepts = run_file(&s, |_| Loaded::Policy(()), |_, _, _| unreachable!());
    assert!(!accepts.passed());
    assert!(accepts.failures()[0].contains("policy accepted"));
    let log = ["portcullis: policy \"x\" rejected: 2:9: network.rules[0].source: nope"];
    let other = run_file(
        &s,
        |_| Loaded::<()>::Rejected(Rejection::from_log(&log, "rejected: ")),
        |_, _, _| unreachable!(),
    );
    assert_eq!(
        other.rejection.unwrap().missing,
        ["network.rules[0].priority"]
    );

    // A file that expects cases to run, on an engine that rejects its policy.
    let r = run_file(
        &suite(THREE),
        |_| Loaded::<()>::Rejected(Rejection::from_log(&["1:1: (document): no"], "")),
        |_, _, _| unreachable!(),
    );
    assert!(matches!(r.error, Some(FileError::PolicyRejected(_))));
    assert_eq!(Tally::of([&r]).failed, 1);
    let r = run_file(
        &suite(THREE),
        |_| Loaded::<()>::Failed("no VM".into()),
        |_, _, _| unreachable!(),
    );
    assert_eq!(r.failures(), ["t.json: no VM"]);
}

#[test]
fn outcomes_from_elsewhere_are_checked_the_same_way() {
    let r = run_file(
        &suite(THREE),
        |_| Loaded::Policy(()),
        |_, _, c| {
            CaseRun::Ran(Outcome {
                verdict: Verdict::Forward,
                status: 200,
                rule: "ten".into(),
                client_ip: c.request.peer.ip().to_string(),
                step: Step::Forward,
                would_verdict: Verdict::Forward,
                would_status: 200,
                trace: String::new(),
                location: None,
                upstream_headers: Some(Vec::new()),
                response_headers: Vec::new(),
                body: Vec::new(),
            })
        },
    );
    let passed: Vec<bool> = r.cases.iter().map(|c| c.passed()).collect();
    assert_eq!(passed, [true, true, false]);
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portcullis-harness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("tests/corpus")).unwrap();
    std::fs::create_dir_all(d.join("policy-samples")).unwrap();
    d
}

#[test]
fn discovery_finds_test_files_by_content_and_name() {
    let d = scratch("discovery");
    let w = |p: &str, t: &str| std::fs::write(d.join(p), t).unwrap();
    w("policy-samples/api.json", POLICY);
    w(
        "policy-samples/api.tests.json",
        r#"{"policy": "api.json", "cases": []}"#,
    );
    w("policy-samples/notes.md", "# not json");
    w(
        "tests/corpus/b.json",
        r#"{"policy": "../../policy-samples/api.json", "cases": []}"#,
    );
    w(
        "tests/corpus/a.json",
        r#"{"policy": {"name": "x"}, "expect_policy_error": [""]}"#,
    );
    w("tests/corpus/broken.json", "{\"policy\": ");
    w("tests/corpus/README.md", "#");
    let rel: Vec<String> = corpus::files(&d)
        .iter()
        .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "tests/corpus/a.json",
            "tests/corpus/b.json",
            "tests/corpus/broken.json",
            "policy-samples/api.tests.json"
        ]
    );
    assert_eq!(
        corpus::sample_policies(&d),
        [d.join("policy-samples/api.json")]
    );
    let m = corpus::manifest(&d);
    assert_eq!(m.corpus.len(), 4);
    assert_eq!(m.samples.len(), 1);
    assert_eq!(m.samples[0].name, "api");
    assert_eq!(m.samples[0].policy, "policy-samples/api.json");
    assert_eq!(
        m.samples[0].tests,
        ["tests/corpus/b.json", "policy-samples/api.tests.json"]
    );
    // A directory given on the command line uses the same rule.
    let c = corpus::collect(&[d.join("policy-samples"), d.join("tests/corpus/a.json")]).unwrap();
    assert_eq!(c.len(), 2);
    assert!(corpus::collect(&[d.join("nope")]).is_err());
    let _ = std::fs::remove_dir_all(&d);
}

/// The repository's own corpus: what every engine runs.
#[test]
fn the_repository_corpus_is_found() {
    let files = corpus::files(&corpus::root());
    assert!(files.len() >= 72, "{}", files.len());
    let m = corpus::manifest(&corpus::root());
    assert_eq!(m.corpus.len(), files.len());
    assert!(m.samples.iter().any(|s| !s.tests.is_empty()));
}
