//! The reader: positions, defaults, typed fields, and linear work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: fail loudly

use portcullis_core::json::{self, LineIndex};
use portcullis_core::{Step, Transport};
use portcullis_harness::read::read;
use portcullis_harness::{defaults, HeaderExpect, TestFile};

fn case_json(i: usize) -> String {
    format!(
        "    {{\"name\": \"c{i}\", \"request\": {{\"peer\": \"10.0.{}.{}:5000\"}}, \"expect\": {{\"verdict\": \"forward\"}}}}",
        i / 250,
        i % 250
    )
}

fn file_of(n: usize, sep: &str) -> String {
    let cases: Vec<String> = (0..n).map(case_json).collect();
    format!(
        "{{\"policy\": \"p.json\",{sep}\"cases\": [{sep}{}{sep}]}}",
        cases.join(&format!(",{sep}"))
    )
}

/// 8,000 cases, on 8,000 lines or on one: the positioning work stays
/// within a small multiple of the file's size (the old reader rescanned
/// the file from the start for every case: about n²/2 lines).
#[test]
fn eight_thousand_cases_read_in_linear_work() {
    for sep in ["\n", " "] {
        let text = file_of(8000, sep);
        let (tf, work) = read(&text);
        let tf = tf.unwrap();
        assert_eq!(tf.cases.len(), 8000);
        assert!(work.positions >= 8000, "{work:?}");
        assert!(
            work.position_bytes <= 3 * text.len(),
            "{} bytes scanned for a {}-byte file ({sep:?})",
            work.position_bytes,
            text.len()
        );
        if sep == "\n" {
            assert_eq!(tf.cases[7999].line, 8002);
        }
        // Doubling the cases doubles the work, give or take.
        let (_, w2) = read(&file_of(16000, sep));
        assert!(
            w2.position_bytes <= 3 * work.position_bytes,
            "{w2:?} vs {work:?}"
        );
    }
}

/// The index gives the same line:col as the core's scan, in any order.
#[test]
fn line_index_agrees_with_the_core() {
    let text = "{\n  \"é\": [1,\n\t2],\r\n \"ü😀\": \"x\"\n}\n\n";
    let mut idx = LineIndex::new(text);
    let offsets: Vec<usize> = (0..=text.len() + 2).collect();
    for &o in offsets
        .iter()
        .chain(offsets.iter().rev())
        .chain([3, 30, 1, 17].iter())
    {
        assert_eq!(idx.line_col(o), json::line_col(text, o), "offset {o}");
    }
}

#[test]
fn defaults_are_filled_in_once() {
    let tf = TestFile::parse(
        r#"{"policy": "p.json", "cases": [
          {"request": {"peer": "[2001:db8::1]:7"}},
          {"request": {"peer": "10.0.0.1:7", "tls": false, "protocol": "udp"},
           "expect": {"step": "https_only",
                      "response_headers": {"a": null, "b": "x", "c": ["1", "2"]}}}]}"#,
    )
    .unwrap();
    let a = &tf.cases[0];
    assert_eq!(a.name, "case at line 2");
    assert_eq!(a.request.local, defaults::local(true));
    assert_eq!(a.request.method, defaults::METHOD);
    assert_eq!(a.request.authority, defaults::AUTHORITY);
    assert_eq!(a.request.path, defaults::PATH);
    assert_eq!(a.request.transport, Transport::Tcp);
    assert_eq!(a.upstream.status, defaults::UPSTREAM_STATUS);
    let b = &tf.cases[1];
    assert_eq!(b.request.local.to_string(), "127.0.0.1:80");
    assert_eq!(b.request.transport, Transport::Udp);
    assert_eq!(b.expect.step, Some(Step::HttpsOnly));
    assert_eq!(
        b.expect.response_headers,
        [
            ("a".into(), HeaderExpect::Absent),
            ("b".into(), HeaderExpect::One("x".into())),
            ("c".into(), HeaderExpect::Many(vec!["1".into(), "2".into()])),
        ]
    );
}

fn problems(text: &str) -> Vec<String> {
    TestFile::parse(text)
        .unwrap_err()
        .0
        .iter()
        .map(|p| format!("{}:{} {} {}", p.line, p.column, p.path, p.error))
        .collect()
}

#[test]
fn errors_name_the_path_and_position() {
    let p = problems(
        "{\"policy\": \"p.json\", \"cases\": [\n  {\"request\": {\"peer\": \"10.0.0.1:1\"}, \"expect\": {\"step\": \"nope\"}},\n  {\"request\": {\"peer\": \"10.0.0.1\", \"tls\": 1}},\n  {\"request\": {\"peer\": \"10.0.0.1:1\", \"protocol\": \"sctp\"}}, {\"x\": 1}]}",
    );
    assert_eq!(
        p,
        [
            "2:58 cases[0].expect.step \"nope\" is not one of \"client_ip\", \"scope\", \"network\", \"https_only\", \"require_headers\", \"forward\"",
            "3:24 cases[1].request.peer expected address:port ([v6]:port for IPv6)",
            "4:50 cases[2].request.protocol \"sctp\" is not one of \"tcp\", \"udp\"",
            "4:66 cases[3].x unknown field \"x\", expected one of \"name\", \"request\", \"upstream\", \"expect\", \"description\", \"env\"",
            "4:60 cases[3] missing required field \"request\"",
        ]
    );
    let p = problems(
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1",
            "headers": [["a", {"hex": "+f"}], ["b", {"hex": "zz"}]]}}]}"#,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("cases[0].request.headers[0] \"hex\" must be pairs"),
        "{p:?}"
    );
    let p = problems(
        r#"{"policy": {"name": "x"}, "expect_policy_error": ["a"], "cases": [{"request": {"peer": "1.2.3.4:5"}}]}"#,
    );
    assert_eq!(
        p,
        ["1:1 cases a file with expect_policy_error has no cases"]
    );
    assert_eq!(
        problems("{\n  \"policy\": ,"),
        ["2:13  invalid JSON: expected a value"]
    );
}

#[test]
fn hex_values_are_bytes() {
    let tf = TestFile::parse(
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1",
            "headers": [["x", {"hex": "c3 28 ff"}]]}}]}"#,
    )
    .unwrap();
    assert_eq!(tf.cases[0].request.headers[0].1, b"\xc3\x28\xff");
}
