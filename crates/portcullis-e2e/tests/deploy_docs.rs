//! docs/deploy.md's Envoy and Istio snippets are the code's: every block
//! marked `<!-- generated: NAME -->` must equal what
//! `portcullis_e2e::deploy::snippets` renders from `Deployment::docs()`
//! (`PORTCULLIS_BLESS=1 cargo test -p portcullis-e2e --test deploy_docs`
//! rewrites them). The Envoy snippets are validated by Envoy inside a full
//! bootstrap; the Istio `WasmPlugin` (Istio cannot run here) is read back
//! from the docs' text and checked field by field.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use portcullis_core::Policy;
use portcullis_e2e::deploy::{
    check_wasm_plugin, istio_manifest, rewrite_docs, snippets, Deployment, ISTIO_MANIFEST,
};
use portcullis_e2e::envoy;
use portcullis_e2e::module::Module;
use portcullis_e2e::runner::require_tools;
use portcullis_e2e::{net, paths};
use serde_json::{Map, Value};

fn docs_path() -> std::path::PathBuf {
    paths::workspace().join("docs").join("deploy.md")
}

#[test]
fn deploy_md_snippets_are_the_generated_ones() {
    let d = Deployment::docs().unwrap_or_else(|e| panic!("{e}"));
    let have = std::fs::read_to_string(docs_path()).unwrap();
    let want = rewrite_docs(&have, &snippets(&d)).unwrap_or_else(|e| panic!("{e}"));
    let manifest = paths::workspace().join(ISTIO_MANIFEST);
    let want_manifest = istio_manifest(&d);
    if std::env::var_os("PORTCULLIS_BLESS").is_some() {
        std::fs::write(docs_path(), &want).unwrap();
        std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
        std::fs::write(&manifest, &want_manifest).unwrap();
        return;
    }
    assert!(
        have == want,
        "docs/deploy.md's generated snippets are stale: run\n  PORTCULLIS_BLESS=1 cargo test -p portcullis-e2e --test deploy_docs"
    );
    let have_manifest = std::fs::read_to_string(&manifest).unwrap_or_default();
    assert!(
        have_manifest == want_manifest,
        "{ISTIO_MANIFEST} is stale: run\n  PORTCULLIS_BLESS=1 cargo test -p portcullis-e2e --test deploy_docs"
    );
    // The manifest file reads back as the same WasmPlugin.
    assert_eq!(read_yaml(&have_manifest), d.wasm_plugin());
}

/// The text of the fenced block after `<!-- generated: name`.
fn block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- generated: {name} ");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} block"));
    let rest = &doc[at..];
    let open = rest.find("```").unwrap();
    let body = &rest[open..];
    let start = body.find('\n').unwrap() + 1;
    let end = body[start..].find("```").unwrap();
    body[start..start + end].to_owned()
}

// --- a reader for the block YAML the generator writes (mappings,
// sequences, plain and double-quoted scalars), to read the docs back.

fn lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| (l.len() - l.trim_start().len(), l.trim_start().to_owned()))
        .collect()
}

fn scalar(s: &str) -> Value {
    let s = s.trim();
    if s.starts_with('"') {
        return serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    match s {
        "null" | "~" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "[]" => Value::Array(Vec::new()),
        "{}" => Value::Object(Map::new()),
        _ => serde_json::from_str::<serde_json::Number>(s)
            .map(Value::Number)
            .unwrap_or_else(|_| Value::String(s.to_owned())),
    }
}

/// Splits `key: value` (a plain or double-quoted key).
fn key_value(s: &str) -> (String, String) {
    if s.starts_with('"') {
        let mut it = serde_json::Deserializer::from_str(s).into_iter::<String>();
        let k = it.next().unwrap().unwrap();
        let rest = &s[it.byte_offset()..];
        let v = rest
            .strip_prefix(':')
            .unwrap_or_else(|| panic!("no colon: {s}"));
        return (k, v.trim().to_owned());
    }
    let (k, v) = s.split_once(':').unwrap_or_else(|| panic!("no colon: {s}"));
    (k.to_owned(), v.trim().to_owned())
}

fn parse(ls: &mut Vec<(usize, String)>, i: &mut usize, indent: usize) -> Value {
    if ls[*i].1.starts_with("- ") {
        let mut items = Vec::new();
        while *i < ls.len() && ls[*i].0 == indent && ls[*i].1.starts_with("- ") {
            let rest = ls[*i].1[2..].to_owned();
            if rest.starts_with('"') || !rest.contains(": ") && !rest.ends_with(':') {
                items.push(scalar(&rest));
                *i += 1;
            } else {
                ls[*i] = (indent + 2, rest);
                items.push(parse(ls, i, indent + 2));
            }
        }
        return Value::Array(items);
    }
    let mut map = Map::new();
    while *i < ls.len() && ls[*i].0 == indent && !ls[*i].1.starts_with("- ") {
        let (k, v) = key_value(&ls[*i].1.clone());
        *i += 1;
        let value = if v.is_empty() {
            let child = ls[*i].0;
            assert!(
                child > indent || ls[*i].1.starts_with("- "),
                "empty value for {k}"
            );
            parse(ls, i, child)
        } else {
            scalar(&v)
        };
        map.insert(k, value);
    }
    Value::Object(map)
}

fn read_yaml(text: &str) -> Value {
    let mut ls = lines(text);
    let mut i = 0;
    let v = parse(&mut ls, &mut i, 0);
    assert_eq!(i, ls.len(), "unread YAML from line {:?}", ls.get(i));
    v
}

#[test]
fn the_documented_wasm_plugin_is_sound_and_carries_a_policy_the_core_accepts() {
    let d = Deployment::docs().unwrap_or_else(|e| panic!("{e}"));
    let doc = std::fs::read_to_string(docs_path()).unwrap();
    let plugin = read_yaml(&block(&doc, "istio-wasmplugin"));
    // The text in the docs reads back as exactly the generated manifest.
    assert_eq!(plugin, d.wasm_plugin());
    assert_eq!(check_wasm_plugin(&plugin, &d), Vec::<String>::new());
    // What Istio hands the module as its configuration is a valid policy.
    let config = plugin.pointer("/spec/pluginConfig").unwrap().to_string();
    // (its key read from the host, as the WasmPlugin's vmConfig.env says).
    let env = [(portcullis_e2e::deploy::BACKEND_KEY_ENV, "from-the-host")];
    Policy::parse_with_env(config.as_bytes(), &env)
        .unwrap_or_else(|p| panic!("pluginConfig rejected:\n{p}"));
    // The backend key comes from the host, the same variable Envoy's
    // remote snippet hands the VM.
    let remote = block(&doc, "envoy-remote");
    for k in &d.host_env_keys {
        assert!(
            remote.contains(&format!("host_env_keys: [\"{k}\"]")),
            "{remote}"
        );
    }
}

#[test]
fn the_documented_envoy_snippets_validate_in_a_bootstrap() {
    let (_, wasm) = require_tools();
    let d = Deployment::docs().unwrap_or_else(|e| panic!("{e}"));
    let cert = portcullis_e2e::tls::test_cert().unwrap();
    let mut cfg = portcullis_e2e::config::deploy_example(&d.policy_text());
    for l in &mut cfg.listeners {
        if l.tls.is_some() {
            l.tls = Some(cert.clone());
        }
    }
    let dir = paths::scratch("docs-validate");
    // Local file (the docs' path pointed at this checkout's module), then
    // remote (its cluster on loopback; validate mode fetches nothing).
    // The sample reads its key from Envoy's environment (host_env_keys): the
    // validating Envoy inherits this process's.
    std::env::set_var(portcullis_e2e::deploy::BACKEND_KEY_ENV, "validate-only");
    cfg.module = Module {
        env: cfg.module.env.clone(),
        ..Module::local(&wasm)
    };
    envoy::validate(&dir, &cfg.render()).unwrap_or_else(|e| panic!("{e}"));
    cfg.module = d.module(Some(net::localhost(9)));
    envoy::validate(&dir, &cfg.render()).unwrap_or_else(|e| panic!("{e}"));
}
