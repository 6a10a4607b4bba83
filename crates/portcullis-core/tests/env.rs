//! `value_from` / `values_from`: values read from the host environment when
//! the policy is loaded; errors name the path and the variable, never a value.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_core::lint::LintKind;
use portcullis_core::policy::HeaderOp;
use portcullis_core::{EnvProblem, Error, Policy};

const SET: &str = r#"{"name": "p", "request_headers": [
  {"set": "x-functions-key", "value_from": {"env": "FUNCTION_KEY"}}]}"#;

fn problems(doc: &str, env: &[(&str, &str)]) -> Vec<(String, Error)> {
    Policy::parse_with_env(doc.as_bytes(), &env.to_vec())
        .unwrap_err()
        .0
        .into_iter()
        .map(|p| (p.path, p.error))
        .collect()
}

#[test]
fn a_set_value_comes_from_the_environment() {
    let p = Policy::parse_with_env(SET.as_bytes(), &[("FUNCTION_KEY", "K-1")]).unwrap();
    match &p.request_headers[0] {
        HeaderOp::Set {
            value, from_env, ..
        } => {
            assert_eq!(value, "K-1");
            assert_eq!(from_env.as_deref(), Some("FUNCTION_KEY"));
        }
        op => panic!("{op:?}"),
    }
    // Debug output never shows a value read from the environment.
    let debug = format!("{:?}", p.request_headers);
    assert!(!debug.contains("K-1"), "{debug}");
    assert!(debug.contains("FUNCTION_KEY"), "{debug}");
    // A value from the environment is not an inline credential.
    assert!(p.lints().is_empty(), "{:?}", p.lints());
}

#[test]
fn missing_empty_and_unusable_variables_reject_the_policy() {
    let path = "request_headers[0].value_from.env".to_string();
    for (env, problem) in [
        (&[][..], EnvProblem::Missing),
        (&[("OTHER", "x")][..], EnvProblem::Missing),
        (&[("FUNCTION_KEY", "")][..], EnvProblem::Empty),
        (
            &[("FUNCTION_KEY", "a\r\nx-evil: 1")][..],
            EnvProblem::BadValue,
        ),
        (&[("FUNCTION_KEY", "a\0b")][..], EnvProblem::BadValue),
    ] {
        let got = problems(SET, env);
        let want = Error::Env {
            var: "FUNCTION_KEY".into(),
            problem,
        };
        assert_eq!(got, vec![(path.clone(), want.clone())], "{env:?}");
        let text = want.to_string();
        assert!(text.contains("\"FUNCTION_KEY\""), "{text}");
        assert!(!text.contains("evil"), "{text}");
    }
    // Without any environment (plain `parse`), too.
    let err = Policy::parse(SET.as_bytes()).unwrap_err();
    assert_eq!(err.0[0].path, path);
    assert_eq!((err.0[0].line, err.0[0].column), (2, 52));
}

#[test]
fn value_from_is_checked_like_any_field() {
    let with = |op: &str| format!(r#"{{"name": "p", "request_headers": [{op}]}}"#);
    let env = [("K", "v")];
    let paths =
        |doc: &str| -> Vec<String> { problems(doc, &env).into_iter().map(|(p, _)| p).collect() };
    assert_eq!(
        paths(&with(
            r#"{"set": "a", "value": "x", "value_from": {"env": "K"}}"#
        )),
        ["request_headers[0]"]
    );
    assert_eq!(
        paths(&with(r#"{"remove": "a", "value_from": {"env": "K"}}"#)),
        ["request_headers[0]"]
    );
    assert_eq!(
        paths(&with(r#"{"set": "a", "value_from": {"env": "1BAD"}}"#)),
        ["request_headers[0].value_from.env"]
    );
    assert_eq!(
        paths(&with(
            r#"{"set": "a", "value_from": {"env": "K", "default": "x"}}"#
        )),
        ["request_headers[0].value_from.default"]
    );
    assert_eq!(
        paths(&with(r#"{"set": "a", "value_from": {}}"#)),
        ["request_headers[0].value_from"]
    );
    assert_eq!(
        paths(&with(r#"{"set": "a", "value_from": "K"}"#)),
        ["request_headers[0].value_from"]
    );
}

#[test]
fn values_from_beside_or_instead_of_values() {
    let doc = |fields: &str| {
        format!(r#"{{"name": "p", "require_headers": [{{"name": "x-api-key", {fields}}}]}}"#)
    };
    let env = [("OLD", "old-key"), ("NEW", "new-key")];
    let p = Policy::parse_with_env(
        doc(r#""values_from": [{"env": "OLD"}, {"env": "NEW"}]"#).as_bytes(),
        &env,
    )
    .unwrap();
    let r = &p.require_headers[0];
    assert_eq!(r.values, [b"old-key".to_vec(), b"new-key".to_vec()]);
    assert_eq!(r.env, ["OLD", "NEW"]);
    assert!(!format!("{r:?}").contains("old-key"), "{r:?}");

    let p = Policy::parse_with_env(
        doc(r#""values": ["inline"], "values_from": [{"env": "NEW"}]"#).as_bytes(),
        &env,
    )
    .unwrap();
    assert_eq!(
        p.require_headers[0].values,
        [b"inline".to_vec(), b"new-key".to_vec()]
    );
    // An inline value of a credential-looking header is a lint warning.
    assert!(p
        .lints()
        .iter()
        .any(|l| l.kind == LintKind::InlineCredential && l.path == "require_headers[0].values"));

    let bad = |fields: &str| -> Vec<String> {
        problems(&doc(fields), &env)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    assert_eq!(bad(r#""status": 401"#), ["require_headers[0]"]);
    assert_eq!(
        bad(r#""values_from": []"#),
        ["require_headers[0].values_from"]
    );
    assert_eq!(
        bad(r#""values_from": [{"env": "NEW"}, {"env": "GONE"}]"#),
        ["require_headers[0].values_from[1].env"]
    );
}

#[test]
fn inline_credentials_are_linted() {
    for (name, credential) in [
        ("x-functions-key", true),
        ("Ocp-Apim-Subscription-Key", true),
        ("authorization", true),
        ("x-auth-token", true),
        ("x-client-secret", true),
        ("x-content-type-options", false),
        ("x-keyboard", false),
    ] {
        let doc =
            format!(r#"{{"name": "p", "request_headers": [{{"set": "{name}", "value": "v"}}]}}"#);
        let lints = Policy::parse(doc.as_bytes()).unwrap().lints();
        let found = lints
            .iter()
            .any(|l| l.kind == LintKind::InlineCredential && l.path == "request_headers[0].value");
        assert_eq!(found, credential, "{name}: {lints:?}");
    }
    // Inside a scope the lint's path names the scope.
    let doc = br#"{"name": "p", "request_headers": [{"set": "x-api-key", "value": "top"}],
      "scopes": [{"name": "a", "match": {"paths": ["/a"]},
        "request_headers": [{"set": "x-functions-key", "value": "v"}],
        "require_headers": [{"name": "x-client-key", "values": ["k"]}]}]}"#;
    let mut paths: Vec<String> = Policy::parse(doc)
        .unwrap()
        .lints()
        .into_iter()
        .filter(|l| l.kind == LintKind::InlineCredential)
        .map(|l| l.path)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "request_headers[0].value",
            "scopes[0].request_headers[0].value",
            "scopes[0].require_headers[0].values"
        ]
    );
}

#[test]
fn values_from_the_environment_are_shown_by_their_variable() {
    use portcullis_core::Shown;
    let doc = r#"{"name": "p",
      "request_headers": [{"set": "x-functions-key", "value_from": {"env": "FUNCTION_KEY"}},
                          {"set": "x-tier", "value": "gold"}],
      "require_headers": [{"name": "x-client-key", "values": ["inline-1"],
                           "values_from": [{"env": "KEY_OLD"}, {"env": "KEY_NEW"}]}],
      "scopes": [{"name": "admin", "match": {"paths": ["/admin/*"]},
                  "response_headers": [{"set": "x-admin-tag", "value_from": {"env": "ADMIN_TAG"}}]}]}"#;
    let env = [
        ("FUNCTION_KEY", "K-fn"),
        ("KEY_OLD", "K-old"),
        ("KEY_NEW", "K-new"),
        ("ADMIN_TAG", "K-admin"),
    ];
    let p = Policy::parse_with_env(doc.as_bytes(), &env).unwrap();
    for (name, value, var) in [
        ("x-functions-key", "K-fn", "FUNCTION_KEY"),
        ("X-Functions-Key", "K-fn", "FUNCTION_KEY"),
        ("x-client-key", "K-old", "KEY_OLD"),
        ("x-client-key", "K-new", "KEY_NEW"),
        // Only in a scope's effective policy.
        ("x-admin-tag", "K-admin", "ADMIN_TAG"),
    ] {
        assert_eq!(p.env_source(name, value.as_bytes()), Some(var), "{name}");
        let shown = p.shown(name, value.as_bytes());
        assert_eq!(shown, Shown::FromEnv(var));
        assert_eq!(shown.to_string(), format!("(from env {var})"));
    }
    // Inline values, other headers and other values are shown as they are.
    for (name, value) in [
        ("x-tier", "gold"),
        ("x-client-key", "inline-1"),
        ("x-functions-key", "K-other"),
        ("x-tier", "K-fn"),
    ] {
        assert_eq!(p.env_source(name, value.as_bytes()), None, "{name}");
        assert_eq!(p.shown(name, value.as_bytes()).to_string(), value);
    }
    // Bytes that are not UTF-8 are shown with U+FFFD, never panicking.
    assert_eq!(p.shown("x-tier", b"a\xffb").to_string(), "a\u{FFFD}b");
}
