//! The deployment docs/deploy.md shows, rendered by the same code the
//! end-to-end tests run, so the two cannot drift.
//!
//! A [`Deployment`] is one description of a rollout — the policy, the
//! module's URL and SHA-256, the variables the VM takes from its host. From
//! it come the Envoy `vm_config` with remote code ([`Deployment::module`],
//! which `tests/envoy_remote.rs` runs against a loopback module server) and
//! the Istio `WasmPlugin` ([`Deployment::wasm_plugin`], checked by
//! [`check_wasm_plugin`]: Istio cannot run here). [`snippets`] renders every
//! fenced block of docs/deploy.md that is marked `<!-- generated: NAME -->`;
//! `tests/deploy_docs.rs` compares them with the file
//! (`PORTCULLIS_BLESS=1` rewrites it).
//!
//! Not here: fetching, OCI images, Kubernetes (the `WasmPlugin` is only
//! rendered and checked, never applied).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::{deploy_example, local_reply_config, yaml_str, Filter, DEPLOY_POLICY};
use crate::module::{Code, Module, Remote, VmEnv};
use crate::paths;

/// The variable the VM takes from its host for the backend key (Envoy
/// `host_env_keys`, Istio `vmConfig.env` with `valueFrom: HOST`).
pub const BACKEND_KEY_ENV: &str = "FUNCTION_KEY";
/// The Envoy cluster that reaches the module server.
pub const MODULE_CLUSTER: &str = "artifacts";
/// Where the module file sits on an Envoy host.
pub const LOCAL_MODULE: &str = "/etc/envoy/portcullis_filter.wasm";

/// Where docs/deploy.md puts the native module (its directory is
/// `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
pub const NATIVE_MODULE: &str = "/etc/envoy/modules/libportcullis_envoy.so";
/// What the Envoy snippets put where the policy's JSON text goes.
pub const POLICY_PLACEHOLDER: &str = "<the policy document, as one JSON string>";
/// The Istio `phase`: before Istio's own authorization filters.
pub const ISTIO_PHASE: &str = "AUTHN";
/// The Istio `failStrategy`: a module that cannot load denies.
pub const ISTIO_FAIL_STRATEGY: &str = "FAIL_CLOSE";

/// One rollout of the filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// The policy document.
    pub policy: Value,
    /// The module's URL.
    pub url: String,
    /// The module's SHA-256 (lowercase hex; a placeholder in the docs).
    pub sha256: String,
    /// Variables the VM reads from its host's environment.
    pub host_env_keys: Vec<String>,
}

impl Deployment {
    /// What docs/deploy.md shows: the Functions-behind-APIM sample policy,
    /// an example URL, a placeholder digest, the backend key from the host.
    pub fn docs() -> Result<Deployment, String> {
        let p = paths::workspace().join(DEPLOY_POLICY);
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let policy = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Deployment {
            policy,
            url: "https://artifacts.example.com/portcullis/0.1.0/portcullis_filter.wasm".into(),
            sha256: "<sha256sum of dist/portcullis_filter.wasm>".into(),
            host_env_keys: vec![BACKEND_KEY_ENV.into()],
        })
    }

    /// The policy as one line of JSON (Envoy's `StringValue`).
    pub fn policy_text(&self) -> String {
        self.policy.to_string()
    }

    /// The Envoy module: fetched from [`Deployment::url`] through
    /// [`MODULE_CLUSTER`] (defined by the bootstrap when `server` is given)
    /// and verified against [`Deployment::sha256`]; the host keys handed to
    /// the VM.
    pub fn module(&self, server: Option<SocketAddr>) -> Module {
        Module {
            code: Code::Remote(Remote {
                uri: self.url.clone(),
                cluster: MODULE_CLUSTER.into(),
                server,
                sha256: self.sha256.clone(),
                timeout_s: 10,
                retries: 3,
            }),
            env: VmEnv {
                host_env_keys: self.host_env_keys.clone(),
                key_values: Vec::new(),
            },
        }
    }

    /// The Istio `WasmPlugin` for the ingress gateway.
    pub fn wasm_plugin(&self) -> Value {
        let env: Vec<Value> = self
            .host_env_keys
            .iter()
            .map(|k| json!({ "name": k, "valueFrom": "HOST" }))
            .collect();
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": { "name": "portcullis", "namespace": "istio-system" },
            "spec": {
                "selector": { "matchLabels": { "istio": "ingressgateway" } },
                "url": self.url,
                "sha256": self.sha256,
                "imagePullPolicy": "IfNotPresent",
                "phase": ISTIO_PHASE,
                "failStrategy": ISTIO_FAIL_STRATEGY,
                "vmConfig": { "env": env },
                "pluginConfig": self.policy,
            }
        })
    }
}

/// What is wrong with `plugin` as the `WasmPlugin` of `d`: the fields
/// Istio requires and the promises the docs make (the module pinned by
/// `d.sha256`, failing closed, in the AUTHN phase, the policy itself as
/// `pluginConfig`, every host key as `valueFrom: HOST`). Empty when sound.
pub fn check_wasm_plugin(plugin: &Value, d: &Deployment) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |path: &str, ok: bool, what: &str| {
        if !ok {
            problems.push(format!("{path}: {what}"));
        }
    };
    let at = |p: &str| plugin.pointer(p);
    let s = |p: &str| at(p).and_then(Value::as_str);
    want(
        "apiVersion",
        s("/apiVersion") == Some("extensions.istio.io/v1alpha1"),
        "must be extensions.istio.io/v1alpha1",
    );
    want(
        "kind",
        s("/kind") == Some("WasmPlugin"),
        "must be WasmPlugin",
    );
    want(
        "metadata.name",
        s("/metadata/name").is_some_and(|n| !n.is_empty()),
        "required",
    );
    let url = s("/spec/url").unwrap_or("");
    want(
        "spec.url",
        ["oci://", "https://", "http://", "file://"]
            .iter()
            .any(|p| url.starts_with(p)),
        "required, oci://, http(s):// or file://",
    );
    want("spec.url", url == d.url, "not the deployment's URL");
    want(
        "spec.sha256",
        s("/spec/sha256") == Some(d.sha256.as_str()),
        "must pin the module's SHA-256",
    );
    want(
        "spec.failStrategy",
        s("/spec/failStrategy") == Some(ISTIO_FAIL_STRATEGY),
        "must be FAIL_CLOSE",
    );
    want(
        "spec.phase",
        s("/spec/phase") == Some(ISTIO_PHASE),
        "must be AUTHN",
    );
    want(
        "spec.pluginConfig",
        at("/spec/pluginConfig") == Some(&d.policy),
        "must be the policy document",
    );
    let env = at("/spec/vmConfig/env").and_then(Value::as_array);
    for k in &d.host_env_keys {
        let found = env.is_some_and(|e| {
            e.iter().any(|v| {
                v.get("name").and_then(Value::as_str) == Some(k)
                    && v.get("valueFrom").and_then(Value::as_str) == Some("HOST")
            })
        });
        want(
            "spec.vmConfig.env",
            found,
            &format!("{k} must come from the host (valueFrom: HOST)"),
        );
    }
    if let Some(e) = env {
        for v in e {
            let from = v
                .get("valueFrom")
                .and_then(Value::as_str)
                .unwrap_or("INLINE");
            want(
                "spec.vmConfig.env",
                from == "HOST" || from == "INLINE",
                "valueFrom is HOST or INLINE",
            );
            want(
                "spec.vmConfig.env",
                v.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty()),
                "every entry needs a name",
            );
        }
    }
    problems
}

fn plain_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b))
        && !s.starts_with(['-', '.'])
        && s.parse::<f64>().is_err()
        && ![
            "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
        ]
        .contains(&s.to_ascii_lowercase().as_str())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if plain_ok(s) => Some(s.clone()),
        Value::String(s) => Some(yaml_str(s)),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        _ => None,
    }
}

fn emit(v: &Value, indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                let key = scalar(&Value::String(k.clone())).unwrap_or_default();
                match scalar(val) {
                    Some(s) => out.push(format!("{pad}{key}: {s}")),
                    None => {
                        out.push(format!("{pad}{key}:"));
                        // A sequence sits at its key's indentation
                        // (`key:\n- item`), the style of Kubernetes manifests.
                        let inner = if val.is_array() { indent } else { indent + 2 };
                        emit(val, inner, out);
                    }
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                match scalar(item) {
                    Some(s) => out.push(format!("{pad}- {s}")),
                    None => {
                        let start = out.len();
                        emit(item, indent + 2, out);
                        if let Some(first) = out.get_mut(start) {
                            *first = format!("{pad}- {}", first.trim_start());
                        }
                    }
                }
            }
        }
        other => out.push(format!("{pad}{}", scalar(other).unwrap_or_default())),
    }
}

/// `v` as block YAML: mappings and sequences in block style, strings plain
/// when YAML reads them back as the same string, else double-quoted.
///
/// ```
/// let v = serde_json::json!({"a": {"b": ["x", "80", 80]}, "c": [{"d": true, "e": null}]});
/// assert_eq!(
///     portcullis_e2e::deploy::to_yaml(&v),
///     "a:\n  b:\n  - x\n  - \"80\"\n  - 80\nc:\n- d: true\n  e: null\n"
/// );
/// ```
pub fn to_yaml(v: &Value) -> String {
    let mut lines = Vec::new();
    match scalar(v) {
        Some(s) => lines.push(s),
        None => emit(v, 0, &mut lines),
    }
    let mut out = String::new();
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// Where the operator's Istio manifest is kept, relative to the workspace.
pub const ISTIO_MANIFEST: &str = "deploy/istio/wasmplugin.yaml";

/// `deploy/istio/wasmplugin.yaml`: a header, then the `WasmPlugin` of `d`
/// (the same text as docs/deploy.md's block).
pub fn istio_manifest(d: &Deployment) -> String {
    format!(
        "# GENERATED: do not edit by hand. Regenerate with\n#   PORTCULLIS_BLESS=1 cargo test -p portcullis-e2e --test deploy_docs\n# (crates/portcullis-e2e/src/deploy.rs; the test fails when this file is stale).\n#\n# Portcullis as an Istio WasmPlugin on the ingress gateway. Before use: set\n# url and sha256 (sha256sum dist/portcullis_filter.wasm), put your policy\n# under pluginConfig, and {BACKEND_KEY_ENV} in the gateway's environment\n# (from a Secret). See docs/deploy.md.\n{}",
        to_yaml(&d.wasm_plugin())
    )
}

/// One generated fenced block of docs/deploy.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The marker's name (`<!-- generated: NAME -->`).
    pub name: &'static str,
    /// The block's text (without the fences).
    pub text: String,
}

/// Every generated block of docs/deploy.md, rendered from `d`
/// ([`Deployment::docs`] for the docs).
pub fn snippets(d: &Deployment) -> Vec<Snippet> {
    let mut local = deploy_example(&d.policy_text());
    local.module = Module::local(LOCAL_MODULE);
    let mut remote = local.clone();
    remote.module = d.module(None);
    let mut native = local.clone();
    native.module = Module::native(NATIVE_MODULE);
    let inline = Filter::Inline {
        policy: POLICY_PLACEHOLDER.into(),
    };
    let ecds = Filter::Discovered {
        name: "portcullis".into(),
        path: PathBuf::from("/etc/envoy/ecds/portcullis.yaml"),
    };
    vec![
        Snippet {
            name: "envoy-local",
            text: format!("http_filters:\n{}", local.render_http_filter(&inline)),
        },
        Snippet {
            name: "envoy-local-reply",
            text: Filter::Inline {
                policy: d.policy_text(),
            }
            .listener_hsts()
            .map(|h| local_reply_config(&h))
            .unwrap_or_default(),
        },
        Snippet {
            name: "envoy-native",
            text: format!("http_filters:\n{}", native.render_http_filter(&inline)),
        },
        Snippet {
            name: "envoy-remote",
            text: format!("vm_config:\n{}", indent2(&remote.module.render_vm_config())),
        },
        Snippet {
            name: "envoy-ecds-filter",
            text: format!("http_filters:\n{}", local.render_http_filter(&ecds)),
        },
        Snippet {
            name: "envoy-ecds-resource",
            text: local.render_ecds_resource("portcullis", POLICY_PLACEHOLDER),
        },
        Snippet {
            name: "istio-wasmplugin",
            text: to_yaml(&d.wasm_plugin()),
        },
    ]
}

fn indent2(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
}

/// `text` with the generated blocks replaced by `snippets`: the fenced
/// block right after each `<!-- generated: NAME ... -->` line. `Err` names
/// a marker without a block, or a snippet without a marker.
pub fn rewrite_docs(text: &str, snippets: &[Snippet]) -> Result<String, String> {
    let mut out = String::new();
    let mut lines = text.split_inclusive('\n').peekable();
    let mut used = Vec::new();
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- generated: ")
            .and_then(|r| r.split_whitespace().next())
        else {
            continue;
        };
        let snippet = snippets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("docs marker {name:?} has no generated snippet"))?;
        let open = lines
            .next()
            .filter(|l| l.starts_with("```"))
            .ok_or_else(|| format!("docs marker {name:?} is not followed by a fenced block"))?;
        out.push_str(open);
        let mut closed = false;
        for l in lines.by_ref() {
            if l.starts_with("```") {
                out.push_str(&snippet.text);
                out.push_str(l);
                closed = true;
                break;
            }
        }
        if !closed {
            return Err(format!("docs block {name:?} is not closed"));
        }
        used.push(name);
    }
    for s in snippets {
        if !used.contains(&s.name) {
            return Err(format!(
                "no `<!-- generated: {} -->` block in the docs",
                s.name
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manifests_put_sequences_at_the_key_indentation() {
        let v = json!({"spec": {"env": [{"name": "K", "valueFrom": "HOST"}], "o": {"m": ["a"]}}});
        assert_eq!(
            to_yaml(&v),
            "spec:\n  env:\n  - name: K\n    valueFrom: HOST\n  o:\n    m:\n    - a\n"
        );
        // Strings YAML would read as something else are quoted.
        let q = json!({"a": ["80", "true", "-x", "a b", "40.112.72.205", "x-functions-key"]});
        assert_eq!(
            to_yaml(&q),
            "a:\n- \"80\"\n- \"true\"\n- \"-x\"\n- \"a b\"\n- 40.112.72.205\n- x-functions-key\n"
        );
    }

    #[test]
    fn docs_blocks_are_replaced_and_markers_checked() {
        let s = [Snippet {
            name: "a",
            text: "new: 1\n".into(),
        }];
        let doc = "x\n<!-- generated: a (see src) -->\n```yaml\nold: 0\n```\ny\n";
        assert_eq!(
            rewrite_docs(doc, &s).unwrap(),
            "x\n<!-- generated: a (see src) -->\n```yaml\nnew: 1\n```\ny\n"
        );
        assert!(rewrite_docs("x\n", &s)
            .unwrap_err()
            .contains("no `<!-- generated: a"));
        assert!(rewrite_docs("<!-- generated: b -->\n```\n```\n", &s).is_err());
        assert!(rewrite_docs("<!-- generated: a -->\n```\nopen\n", &s).is_err());
    }

    #[test]
    fn a_plugin_that_fails_open_or_drops_the_digest_is_caught() {
        let d = Deployment {
            policy: json!({"name": "p"}),
            url: "https://h/m.wasm".into(),
            sha256: "ab".repeat(32),
            host_env_keys: vec![BACKEND_KEY_ENV.into()],
        };
        let good = d.wasm_plugin();
        assert_eq!(check_wasm_plugin(&good, &d), Vec::<String>::new());
        for (ptr, bad) in [
            ("/spec/failStrategy", json!("FAIL_OPEN")),
            ("/spec/sha256", json!("")),
            ("/spec/phase", json!("STATS")),
            ("/spec/pluginConfig", json!({"name": "other"})),
            (
                "/spec/vmConfig/env",
                json!([{"name": BACKEND_KEY_ENV, "value": "inline!"}]),
            ),
            ("/spec/url", json!("ftp://h/m.wasm")),
        ] {
            let mut p = good.clone();
            *p.pointer_mut(ptr).unwrap() = bad;
            assert!(!check_wasm_plugin(&p, &d).is_empty(), "{ptr} not caught");
        }
    }
}
