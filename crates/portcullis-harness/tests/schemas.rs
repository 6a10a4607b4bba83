//! schemas/*.schema.json say what the engines accept.
//!
//! The JSON Schemas are for editors (docs/editors.md); these tests keep
//! them true, the way the reference-docs tests keep docs/reference true:
//!
//! - the fields of every kind of object are the ones the core (for a
//!   policy) and the reader (for a test file) accept, read back from their
//!   `UnknownField` errors, and every object in the schemas is probed;
//! - every policy in the corpus, the samples and the golden imports that
//!   the core accepts validates against the policy schema;
//! - every corpus policy the core rejects for a structural reason (an
//!   unknown field, a wrong type, a missing field, a word or number out of
//!   its set, an empty list) is rejected by the schema too;
//! - every test file validates against the tests schema.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use portcullis_core::{Env, Error, Policy};
use portcullis_harness::{corpus, TestFile};
use serde_json::Value;

fn root() -> PathBuf {
    corpus::root()
}

fn schema_dir() -> PathBuf {
    root().join("schemas")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema(name: &str) -> Value {
    load(&schema_dir().join(name))
}

/// Resolves `$ref`s between the two schemas from the schemas folder, and
/// nothing else (no network, no other files).
struct Local;

impl jsonschema::Retrieve for Local {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.path().as_str().rsplit('/').next().unwrap_or("");
        if !name.ends_with(".schema.json") || uri.scheme().as_str() != "file" {
            return Err(format!("not a local schema: {uri}").into());
        }
        Ok(schema(name))
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let s = schema(name);
    jsonschema::meta::validate(&s).unwrap_or_else(|e| panic!("{name} is not a valid schema: {e}"));
    let base = format!("file://{}", schema_dir().join(name).display());
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_base_uri(base)
        .with_retriever(Local)
        .build(&s)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every variable is set: `value_from` never makes a policy fail here.
struct AnyEnv;

impl Env for AnyEnv {
    fn var(&self, _: &str) -> Option<String> {
        Some("v".into())
    }
}

// ---------------------------------------------------------------------------
// Fields: the schemas' objects and the engines' objects name the same keys.

/// (what, probe document, JSON pointer of the object's schema). `PROBE`
/// marks where an unknown key goes.
const POLICY_OBJECTS: &[(&str, &str, &str)] = &[
    ("top level", r#"{"name": "p", PROBE}"#, ""),
    (
        "client_ip",
        r#"{"name": "p", "client_ip": {PROBE}}"#,
        "/$defs/clientIp",
    ),
    (
        "network",
        r#"{"name": "p", "network": {"rules": [], PROBE}}"#,
        "/$defs/network",
    ),
    (
        "network.deny",
        r#"{"name": "p", "network": {"rules": [], "deny": {PROBE}}}"#,
        "/$defs/network/properties/deny",
    ),
    (
        "a rule",
        r#"{"name": "p", "network": {"rules": [{PROBE}]}}"#,
        "/$defs/rule",
    ),
    (
        "https_only",
        r#"{"name": "p", "https_only": {PROBE}}"#,
        "/$defs/httpsOnly",
    ),
    (
        "require_headers[]",
        r#"{"name": "p", "require_headers": [{PROBE}]}"#,
        "/$defs/requiredHeader",
    ),
    (
        "values_from[]",
        r#"{"name": "p", "require_headers": [{"name": "a", "values_from": [{PROBE}]}]}"#,
        "/$defs/envRef",
    ),
    (
        "a header op",
        r#"{"name": "p", "request_headers": [{PROBE}]}"#,
        "/$defs/headerOp",
    ),
    (
        "value_from",
        r#"{"name": "p", "request_headers": [{"set": "a", "value_from": {PROBE}}]}"#,
        "/$defs/envRef",
    ),
    ("hsts", r#"{"name": "p", "hsts": {PROBE}}"#, "/$defs/hsts"),
    (
        "a scope",
        r#"{"name": "p", "scopes": [{"name": "s", "match": {"paths": ["/a"]}, PROBE}]}"#,
        "/$defs/scope",
    ),
    (
        "a scope's match",
        r#"{"name": "p", "scopes": [{"name": "s", "match": {"paths": ["/a"], PROBE}}]}"#,
        "/$defs/scope/properties/match",
    ),
    (
        "provenance",
        r#"{"name": "p", "provenance": {PROBE}}"#,
        "/$defs/provenance",
    ),
    (
        "provenance.address_groups.*",
        r#"{"name": "p", "address_groups": {"g": ["10.0.0.1"]},
            "provenance": {"address_groups": {"g": {PROBE}}}}"#,
        "/$defs/provenance/properties/address_groups/additionalProperties",
    ),
    (
        "provenance service_tag",
        r#"{"name": "p", "address_groups": {"g": ["10.0.0.1"]},
            "provenance": {"address_groups": {"g": {"service_tag": {PROBE}}}}}"#,
        "/$defs/provenance/properties/address_groups/additionalProperties/properties/service_tag",
    ),
];

const TEST_OBJECTS: &[(&str, &str, &str)] = &[
    (
        "the file",
        r#"{"policy": "p.json", "cases": [], PROBE}"#,
        "",
    ),
    (
        "a case",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1"}, PROBE}]}"#,
        "/$defs/case",
    ),
    (
        "request",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1", PROBE}}]}"#,
        "/$defs/request",
    ),
    (
        "upstream",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1"}, "upstream": {PROBE}}]}"#,
        "/$defs/upstream",
    ),
    (
        "expect",
        r#"{"policy": "p.json", "cases": [{"request": {"peer": "10.0.0.1:1"}, "expect": {PROBE}}]}"#,
        "/$defs/expect",
    ),
];

/// Objects of the tests schema that no `UnknownField` error describes: the
/// reader takes `{"hex": ...}` as a header value only when it is the one key
/// (reader.rs holds that).
const TEST_OBJECTS_OTHERWISE: &[&str] = &["/$defs/headerValue/anyOf/1"];

/// Fields the spec has added that the schema states before the core reads
/// them (none today). A field the core accepts must leave this list: the
/// test says so.
const PENDING: &[(&str, &str)] = &[];

/// The keys an object accepts, from the `UnknownField` error of a probe.
fn accepted(doc: &str, parse: impl Fn(&str) -> Vec<Error>) -> Vec<String> {
    let text = doc.replace("PROBE", r#""zz_not_a_field": 1"#);
    let lists: Vec<Vec<String>> = parse(&text)
        .into_iter()
        .filter_map(|e| match e {
            Error::UnknownField { field, expected } if field == "zz_not_a_field" => {
                Some(expected.iter().map(|s| s.to_string()).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(lists.len(), 1, "{text}: one UnknownField error expected");
    let mut keys = lists.into_iter().next().unwrap();
    keys.sort();
    keys
}

fn policy_problems(text: &str) -> Vec<Error> {
    match Policy::parse_with_env(text.as_bytes(), &AnyEnv) {
        Ok(_) => panic!("the probe was accepted: {text}"),
        Err(p) => p.0.into_iter().map(|p| p.error).collect(),
    }
}

fn test_file_problems(text: &str) -> Vec<Error> {
    match TestFile::parse(text) {
        Ok(_) => panic!("the probe was accepted: {text}"),
        Err(p) => p.0.into_iter().map(|p| p.error).collect(),
    }
}

/// The `properties` keys of the object schema at `pointer`, which must
/// refuse other keys.
fn schema_keys(schema: &Value, pointer: &str) -> Vec<String> {
    let o = schema
        .pointer(pointer)
        .unwrap_or_else(|| panic!("no schema at {pointer:?}"));
    assert_eq!(
        o.get("additionalProperties"),
        Some(&Value::Bool(false)),
        "{pointer}: unknown fields are errors, so additionalProperties must be false"
    );
    let mut keys: Vec<String> = o["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{pointer}: no properties"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// The JSON pointers of every object schema with fields in `v` (maps, whose
/// keys are names, have none).
fn object_schemas(v: &Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            // A conditional's `properties` (in `if`, `then`, `else`) only
            // narrows an object schema stated elsewhere.
            if m.get("type") == Some(&Value::from("object")) && m.contains_key("properties") {
                out.push(at.to_string());
            }
            for (k, x) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                // The names inside `properties` are field names, not schemas.
                if k == "properties" {
                    if let Value::Object(props) = x {
                        for (name, p) in props {
                            object_schemas(p, &format!("{at}/properties/{name}"), out);
                        }
                    }
                } else {
                    object_schemas(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                object_schemas(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn same_fields(
    schema_name: &str,
    objects: &[(&str, &str, &str)],
    otherwise: &[&str],
    parse: impl Fn(&str) -> Vec<Error>,
) -> usize {
    let s = schema(schema_name);
    let mut wrong = Vec::new();
    let mut count = 0;
    for (what, probe, pointer) in objects {
        let engine = accepted(probe, &parse);
        let stated = schema_keys(&s, pointer);
        count += engine.len();
        for k in &engine {
            if !stated.contains(k) {
                wrong.push(format!(
                    "{what}: the engine accepts `{k}`, {pointer} does not"
                ));
            }
        }
        for k in &stated {
            let pending = PENDING.contains(&(*what, k.as_str()));
            if pending && engine.contains(k) {
                wrong.push(format!(
                    "{what}: the engine now accepts `{k}`: take it off PENDING"
                ));
            } else if !pending && !engine.contains(k) {
                wrong.push(format!(
                    "{what}: {pointer} has `{k}`, the engine refuses it"
                ));
            }
        }
    }
    let mut all = Vec::new();
    object_schemas(&s, "", &mut all);
    for p in &all {
        if !objects.iter().any(|(_, _, q)| q == p) && !otherwise.contains(&p.as_str()) {
            wrong.push(format!("{schema_name}: the object at {p} is not probed"));
        }
    }
    assert!(wrong.is_empty(), "{schema_name}:\n  {}", wrong.join("\n  "));
    count
}

#[test]
fn the_policy_schema_has_the_fields_the_core_accepts() {
    let n = same_fields(
        "policy-v1.schema.json",
        POLICY_OBJECTS,
        &[],
        policy_problems,
    );
    assert!(n > 40, "only {n} fields found: the probes are broken");
}

#[test]
fn the_tests_schema_has_the_fields_the_reader_accepts() {
    let n = same_fields(
        "policy-tests-v1.schema.json",
        TEST_OBJECTS,
        TEST_OBJECTS_OTHERWISE,
        test_file_problems,
    );
    assert!(n > 25, "only {n} fields found: the probes are broken");
}

// ---------------------------------------------------------------------------
// Documents: the corpus, the samples and the golden imports.

/// Every policy document of the corpus: (where, the document).
fn corpus_policies() -> Vec<(String, Value)> {
    let root = root();
    let mut out = Vec::new();
    for f in corpus::files(&root) {
        let tf = load(&f);
        let at = f.strip_prefix(&root).unwrap_or(&f).display().to_string();
        match &tf["policy"] {
            Value::String(p) => {
                let path = f.parent().unwrap().join(p);
                out.push((format!("{at} -> {p}"), load(&path)));
            }
            p => out.push((at, p.clone())),
        }
    }
    for p in corpus::sample_policies(&root) {
        let at = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
        out.push((at, load(&p)));
    }
    let golden = root.join("tests/import/golden");
    let mut imports: Vec<PathBuf> = std::fs::read_dir(&golden)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".policy.json"))
        .collect();
    imports.sort();
    assert!(
        !imports.is_empty(),
        "no golden imports in {}",
        golden.display()
    );
    for p in imports {
        let at = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
        out.push((at, load(&p)));
    }
    out
}

/// Problems a JSON Schema states: a policy the core rejects with one of
/// these must be rejected by the schema. Duplicate keys are not among them
/// (a JSON value has none), nor address syntax, names, conflicts between
/// fields and the other checks only the engines make.
fn structural(e: &Error) -> bool {
    matches!(
        e,
        Error::UnknownField { .. }
            | Error::MissingField(_)
            | Error::MissingOneOf(_)
            | Error::WrongType { .. }
            | Error::NotOneOf { .. }
            | Error::OutOfRange { .. }
            | Error::BadStatus { .. }
            | Error::BadHeaderOp
            | Error::Empty
    )
}

#[test]
fn the_policy_schema_agrees_with_the_core_on_the_corpus() {
    let v = validator("policy-v1.schema.json");
    let (mut accepted, mut rejected, mut other) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (at, doc) in corpus_policies() {
        let text = serde_json::to_string(&doc).unwrap();
        let seen = errors(&v, &doc);
        match Policy::parse_with_env(text.as_bytes(), &AnyEnv) {
            Ok(_) => {
                accepted += 1;
                if !seen.is_empty() {
                    wrong.push(format!(
                        "{at}: the core accepts it, the schema says\n    {}",
                        seen.join("\n    ")
                    ));
                }
            }
            Err(problems) if problems.0.iter().any(|p| structural(&p.error)) => {
                rejected += 1;
                if seen.is_empty() {
                    wrong.push(format!(
                        "{at}: the core rejects it ({problems}), the schema accepts it"
                    ));
                }
            }
            Err(_) => other += 1,
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The corpus holds well over these; fewer means the walk is broken.
    assert!(accepted > 50, "only {accepted} accepted policies");
    assert!(
        rejected > 15,
        "only {rejected} structurally rejected policies"
    );
    println!(
        "{accepted} accepted, {rejected} rejected by both, {other} rejected by the core alone"
    );
}

#[test]
fn every_test_file_validates_against_the_tests_schema() {
    let v = validator("policy-tests-v1.schema.json");
    let files = corpus::files(&root());
    assert!(files.len() > 100, "only {} test files", files.len());
    let mut wrong = Vec::new();
    for f in &files {
        let seen = errors(&v, &load(f));
        if !seen.is_empty() {
            wrong.push(format!("{}:\n    {}", f.display(), seen.join("\n    ")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_tests_schema_checks_an_inline_policy_unless_it_is_meant_to_fail() {
    let v = validator("policy-tests-v1.schema.json");
    let bad_policy = serde_json::json!({"name": "p", "mode": "sometimes"});
    let case = serde_json::json!([{"request": {"peer": "10.0.0.1:1"}}]);
    let ok = serde_json::json!({"policy": {"name": "p"}, "cases": case});
    assert!(errors(&v, &ok).is_empty(), "{:?}", errors(&v, &ok));
    let run = serde_json::json!({"policy": bad_policy, "cases": case});
    assert!(!errors(&v, &run).is_empty());
    let rejecting = serde_json::json!({"policy": bad_policy, "expect_policy_error": ["mode"]});
    assert!(
        errors(&v, &rejecting).is_empty(),
        "{:?}",
        errors(&v, &rejecting)
    );
    let both = serde_json::json!({"policy": "p.json", "cases": case, "expect_policy_error": []});
    assert!(!errors(&v, &both).is_empty());
}

/// Documents on which the schema must say what the core says: words in
/// any case, and the conditions between fields that the schema states.
const AGREE: &[&str] = &[
    r#"{"name": "p", "mode": "Report"}"#,
    r#"{"name": "p", "mode": "reports"}"#,
    r#"{"name": "p", "trace": "NONE"}"#,
    r#"{"name": "p", "client_ip": {"from": "X-Forwarded-For", "trusted_proxies": ["10.0.0.1"]}}"#,
    r#"{"name": "p", "client_ip": {"from": "x-forwarded"}}"#,
    r#"{"name": "p", "client_ip": {"from": "Peer"}}"#,
    r#"{"name": "p", "client_ip": {"from": "forwarded"}}"#,
    r#"{"name": "p", "client_ip": {"from": "Header", "trusted_proxies": ["10.0.0.1"]}}"#,
    r#"{"name": "p", "client_ip": {"from": "header", "header": "x-azure-clientip", "trusted_proxies": ["10.0.0.1"]}}"#,
    r#"{"name": "p", "client_ip": {"header": "x-azure-clientip", "trusted_proxies": ["10.0.0.1"]}}"#,
    r#"{"name": "p", "client_ip": {"from": "peer", "header": "x-azure-clientip"}}"#,
    r#"{"name": "p", "network": {"rules": [{"name": "r", "priority": 100, "access": "ALLOW", "source": ["*"], "protocol": "*"}]}}"#,
    r#"{"name": "p", "network": {"rules": [{"name": "r", "priority": 100, "access": "allowed", "source": ["*"]}]}}"#,
    r#"{"name": "p", "network": {"rules": [{"name": "r", "priority": 100, "access": "allow", "source": ["*"], "source_ports": [443, "454-455", "*"]}]}}"#,
    r#"{"name": "p", "network": {"rules": [{"name": "r", "priority": 100, "access": "allow", "source": ["*"], "source_ports": ["0443"]}]}}"#,
    r#"{"name": "p", "network": {"rules": [{"name": "r", "priority": 100, "access": "allow", "source": ["*"], "destination_ports": [65536]}]}}"#,
    r#"{"name": "p", "https_only": {"action": "Redirect", "hosts": ["a.example"]}}"#,
    r#"{"name": "p", "https_only": {"action": "redirect"}}"#,
    r#"{"name": "p", "https_only": {"action": "redirect", "hosts": []}}"#,
    r#"{"name": "p", "https_only": {"action": "reject", "hosts": []}}"#,
    r#"{"name": "p", "https_only": {"action": "reject", "reject_status": 399}}"#,
    r#"{"name": "p", "https_only": {"action": "reject", "redirect_status": 303}}"#,
    r#"{"name": "p", "hsts": {"max_age": 31536000, "include_subdomains": true, "preload": true}}"#,
    r#"{"name": "p", "hsts": {"max_age": 31536000, "preload": true}}"#,
    r#"{"name": "p", "hsts": {"max_age": 600, "include_subdomains": true, "preload": true}}"#,
    r#"{"name": "p", "hsts": {"max_age": 600, "preload": false}}"#,
    r#"{"name": "p", "request_headers": [{"set": "X-A", "value": "1", "exists": "Append"}]}"#,
    r#"{"name": "p", "request_headers": [{"set": "Content-Length", "value": "1"}]}"#,
    r#"{"name": "p", "request_headers": [{"remove": "TE"}]}"#,
    r#"{"name": "p", "request_headers": [{"remove": "Host"}]}"#,
    r#"{"name": "p", "response_headers": [{"remove": "x-tee"}]}"#,
    r#"{"name": "p", "request_headers": [{"set": "x-a", "value": "1", "value_from": {"env": "A"}}]}"#,
    r#"{"name": "p", "request_headers": [{"set": "x-a"}]}"#,
    r#"{"name": "p", "request_headers": [{"remove": "x-a", "exists": "skip"}]}"#,
    r#"{"name": "p", "request_headers": [{"remove": "x-a", "set": "x-b", "value": "1"}]}"#,
    r#"{"name": "p", "request_headers": [{"set": "x-a", "value_from": {"env": "A"}}]}"#,
    r#"{"name": "p", "require_headers": [{"name": "x-key", "values_from": [{"env": "KEY"}], "status": 401}]}"#,
    r#"{"name": "p", "require_headers": [{"name": "x-key"}]}"#,
    r#"{"name": "p", "require_headers": [{"name": "x-key", "values": [""]}]}"#,
    r#"{"name": "p", "scopes": [{"name": "s", "match": {}}]}"#,
    r#"{"name": "p", "scopes": [{"name": "s", "match": {"methods": ["GET"]}, "inherit": false, "mode": "report"}]}"#,
    r#"{"name": "p", "scopes": [{"name": "-s", "match": {"methods": ["GET"]}}]}"#,
];

#[test]
fn the_schema_says_what_the_core_says_on_words_and_conditions() {
    let v = validator("policy-v1.schema.json");
    let mut wrong = Vec::new();
    let (mut yes, mut no) = (0, 0);
    for doc in AGREE {
        let core = Policy::parse_with_env(doc.as_bytes(), &AnyEnv);
        let json: Value = serde_json::from_str(doc).unwrap();
        let seen = errors(&v, &json);
        if core.is_ok() {
            yes += 1;
        } else {
            no += 1;
        }
        match (&core, seen.is_empty()) {
            (Ok(_), false) => wrong.push(format!("{doc}\n  core accepts, schema: {seen:?}")),
            (Err(p), true) => wrong.push(format!("{doc}\n  core rejects ({p}), schema accepts")),
            _ => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Both sides of each condition are exercised.
    assert!(yes >= 15 && no >= 20, "{yes} accepted, {no} rejected");
}

#[test]
fn a_rule_headers_map_is_held_to_the_spec_limits() {
    let v = validator("policy-v1.schema.json");
    let rule = |headers: Value| {
        serde_json::json!({"name": "p", "network": {"rules": [
            {"name": "r", "priority": 100, "access": "allow", "source": ["*"], "headers": headers}
        ]}})
    };
    let nine: serde_json::Map<String, Value> = (0..9)
        .map(|i| (format!("x-h{i}"), serde_json::json!(["a"])))
        .collect();
    let eight: serde_json::Map<String, Value> = nine.clone().into_iter().take(8).collect();
    for (headers, ok) in [
        (serde_json::json!({"x-azure-fdid": ["0f1e2d3c"]}), true),
        (Value::Object(eight), true),
        (Value::Object(nine), false),
        (serde_json::json!({"x-azure-fdid": []}), false),
        (serde_json::json!({"x-azure-fdid": [""]}), false),
        (serde_json::json!({"x-azure-fdid": ["a\r\nb"]}), false),
        (
            serde_json::json!({"x-azure-fdid": ["1","2","3","4","5","6","7","8","9"]}),
            false,
        ),
        (serde_json::json!({"x azure": ["a"]}), false),
        (serde_json::json!({"x-azure-fdid": "a"}), false),
    ] {
        let doc = rule(headers.clone());
        assert_eq!(errors(&v, &doc).is_empty(), ok, "{headers}");
    }
}
