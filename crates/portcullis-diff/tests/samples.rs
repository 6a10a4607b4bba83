//! Printed reports of known pairs: `tests/diff/*.txt` holds, for each
//! `OLD NEW` pair named in its first line, the exact text `portcullis diff`
//! prints (the CLI's tests run the same files through the binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::path::{Path, PathBuf};

use portcullis_core::Policy;
use portcullis_diff::{diff, diff_with, Applies, Flows, Kind, Limits, Part, Scoped};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(rel: &str) -> Policy {
    let bytes = std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    Policy::parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e:?}"))
}

fn policy(text: &str) -> Policy {
    Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

#[test]
fn expected_reports() {
    let mut n = 0;
    let mut files: Vec<_> = std::fs::read_dir(root().join("tests/diff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let (head, expected) = text.split_once('\n').unwrap();
        let args: Vec<&str> = head
            .trim_start_matches("# portcullis diff ")
            .split(' ')
            .collect();
        let report = diff(&load(args[0]), &load(args[1]));
        assert_eq!(report.to_string(), expected, "{}", f.display());
        n += 1;
    }
    assert!(n >= 5, "only {n} expected reports");
}

#[test]
fn layered_security_against_itself() {
    let p = load("policy-samples/layered-security.json");
    let r = diff(&p, &p);
    assert!(r.changes().is_empty() && r.settings.is_empty());
    assert_eq!(r.to_string(), "no change in who may call\n");
}

#[test]
fn ipv6_deny_all_never_touches_ipv4() {
    let old = policy(r#"{"name":"a","network":{"default_access":"allow","rules":[]}}"#);
    let new = policy(
        r#"{"name":"a","network":{"default_access":"allow","rules":[
        {"name":"no-v6","priority":100,"access":"deny","source":["::/0"]}]}}"#,
    );
    assert_eq!(
        diff(&old, &new).to_string(),
        "newly denied:\n  old default (allow), new no-v6 (priority 100, deny):\n    source ::/0\n"
    );
    // A mapped prefix is IPv4.
    let mapped = policy(
        r#"{"name":"a","network":{"default_access":"allow","rules":[
        {"name":"m","priority":100,"access":"deny","source":["::ffff:10.0.0.0/104"]}]}}"#,
    );
    assert!(diff(&old, &mapped)
        .to_string()
        .contains("    source 10.0.0.0/8\n"));
}

#[test]
fn no_network_section_against_a_default_deny() {
    let old = policy(r#"{"name":"a"}"#);
    let new = policy(
        r#"{"name":"a","network":{"rules":[
        {"name":"lan","priority":100,"access":"allow","source":["10.0.0.0/8"],"protocol":"udp"}]}}"#,
    );
    let r = diff(&old, &new);
    let text = r.to_string();
    assert!(r.has(Kind::NewlyDenied) && r.has(Kind::OtherRule), "{text}");
    assert!(!r.has(Kind::NewlyAllowed), "{text}");
    assert!(
        text.contains("old no network section (allow), new default (deny)"),
        "{text}"
    );
    assert!(
        text.contains("    source 10.0.0.0/8  protocol tcp\n"),
        "{text}"
    );
    assert!(
        text.contains("    source 0.0.0.0-9.255.255.255, 11.0.0.0-255.255.255.255, ::/0\n"),
        "{text}"
    );
}

#[test]
fn bounds_say_too_many_ranges() {
    let old = load("policy-samples/layered-security.json");
    let new = load("tests/diff/layered-security.fe1ase-http-8080.json");
    let r = diff_with(
        &old,
        &new,
        Limits {
            cells: 1_000_000,
            ranges: 1,
            ..Limits::default()
        },
    );
    let Flows::TooManyRanges {
        ranges,
        limit,
        changes,
    } = &r.network
    else {
        panic!("{r}")
    };
    assert_eq!((*ranges, *limit, changes.len()), (6, 1, 2));
    assert!(changes.iter().all(|c| c.flows.is_empty()));
    assert!(r
        .to_string()
        .starts_with("too many ranges: 6 (the report lists at most 1); per group:\n"));
    let r = diff_with(
        &old,
        &new,
        Limits {
            cells: 3,
            ranges: 100,
            ..Limits::default()
        },
    );
    assert!(matches!(r.network, Flows::TooComplex { limit: 3 }), "{r}");
    assert!(r.has(Kind::NewlyAllowed) && r.network_changed());
    assert!(r
        .to_string()
        .starts_with("too many ranges: the comparison stopped after 3 cells"));
}

#[test]
fn settings_before_and_after_without_secrets() {
    let old = policy(
        r#"{"name":"a","require_headers":[{"name":"x-key","values":["SECRET-ONE"],"status":401}],
        "response_headers":[{"set":"x-frame-options","value":"DENY"}],
        "hsts":{"max_age":300}}"#,
    );
    let new = policy(
        r#"{"name":"b","require_headers":[{"name":"x-key","values":["SECRET-TWO"],"status":401}],
        "response_headers":[{"set":"x-frame-options","value":"SAMEORIGIN"},{"remove":"server"}],
        "https_only":{"action":"reject"},"mode":"report"}"#,
    );
    let text = diff(&old, &new).to_string();
    assert_eq!(
        text,
        "no change in who may call\nsettings:\n  name: a -> b\n  mode: enforce -> report\n  https_only: none -> reject 403\n  \
         require_headers: x-key (401, 1 value) -> x-key (401, 1 value) (new values)\n  \
         response_headers: set x-frame-options override -> set x-frame-options override (new value); remove server\n  \
         hsts: max-age=300 -> none\n"
    );
    for secret in ["SECRET", "DENY", "SAMEORIGIN"] {
        assert!(!text.contains(secret), "{text}");
    }
}

#[test]
fn scoped_pair_json_and_bounds() {
    let old = load("tests/diff/two-apis.old.json");
    let new = load("tests/diff/two-apis.new.json");
    let r = diff(&old, &new);
    assert!(r.any_change() && r.has(Kind::NewlyAllowed) && r.has(Kind::NewlyDenied));
    // The top level alone does not change: only the scopes do.
    assert!(r.changes().is_empty() && r.settings.is_empty(), "{r}");
    let Some(Scoped::Exact { groups, scopes }) = &r.scopes else {
        panic!("{r}")
    };
    let admin = groups
        .iter()
        .find(|g| g.old == Applies::Scope("orders-admin".into()))
        .unwrap();
    assert!(admin.moved && admin.new == Applies::TopLevel, "{r}");
    assert_eq!(
        admin.regions[0].host,
        Part::Like("orders.contoso.net".into())
    );
    assert!(scopes
        .iter()
        .any(|s| s.name == "orders-admin" && s.new_position.is_none()));
    // The key's value is never printed, only that it changed.
    let text = r.to_string();
    assert!(
        !text.contains("orders-test-key") && text.contains("(new values)"),
        "{text}"
    );
    let json = std::fs::read_to_string(root().join("tests/diff/two-apis.new.report.json")).unwrap();
    assert!(!json.contains("orders-test-key"));
    // A bound on the cut into regions: a clear outcome, assumed changed.
    let tight = diff_with(
        &old,
        &new,
        Limits {
            regions: 5,
            ..Limits::default()
        },
    );
    assert!(
        matches!(tight.scopes, Some(Scoped::TooManyRegions { limit: 5, .. })),
        "{tight}"
    );
    assert!(tight.network_changed() && tight.has(Kind::NewlyAllowed) && tight.any_change());
    assert!(tight.to_string().contains("too many regions"), "{tight}");
    // Against itself: nothing.
    let same = diff(&old, &old);
    assert!(!same.any_change(), "{same}");
}

#[test]
fn a_renamed_scope_moves_its_requests_and_nothing_else() {
    let old = load("tests/diff/two-apis.old.json");
    let text = std::fs::read_to_string(root().join("tests/diff/two-apis.old.json")).unwrap();
    let new = policy(&text.replace("\"catalog-api\"", "\"catalog\""));
    let r = diff(&old, &new);
    // Same sections, same flows: only the scope's name (traces, counters).
    assert!(!r.network_changed(), "{r}");
    assert!(r.any_change(), "{r}");
    let groups = r.scopes.as_ref().unwrap().groups();
    assert_eq!(groups.len(), 1, "{r}");
    let g = &groups[0];
    assert!(g.moved && g.changes().is_empty() && g.settings.is_empty());
    assert_eq!(
        (g.old.clone(), g.new.clone()),
        (
            Applies::Scope("catalog-api".into()),
            Applies::Scope("catalog".into())
        )
    );
    let text = r.to_string();
    assert!(
        text.contains("  old scope catalog-api, new scope catalog (moved):\n"),
        "{text}"
    );
    assert!(text.contains("  catalog-api: removed from position 3: hosts catalog.contoso.net, *.catalog.contoso.net\n"), "{text}");
}

#[test]
fn pairs_of_scopes_share_one_bound() {
    let old = load("tests/diff/two-apis.old.json");
    let new = load("tests/diff/two-apis.new.json");
    let r = diff_with(
        &old,
        &new,
        Limits {
            cells: 3,
            ..Limits::default()
        },
    );
    let groups = r.scopes.as_ref().unwrap().groups();
    assert!(groups
        .iter()
        .any(|g| matches!(g.network, Flows::TooComplex { limit: 3 })));
    assert!(r.has(Kind::NewlyAllowed) && r.has(Kind::NewlyDenied) && r.network_changed());
    assert!(r
        .to_string()
        .contains("    too many ranges: the comparison stopped after 3 cells"));
}
