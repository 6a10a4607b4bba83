//! Where Envoy gets the filter module, and what its VM is given: the
//! `vm_config` of the Wasm filter ([`Module::render_vm_config`]).
//!
//! - [`Code::Local`]: `code.local.filename`, a file on Envoy's host;
//! - [`Code::Remote`]: `code.remote`, fetched over HTTP(S) at start-up from
//!   an Envoy cluster and verified against its `sha256` (Envoy refuses a
//!   module whose digest differs);
//! - [`VmEnv`]: `environment_variables`, the variables the VM sees
//!   (`host_env_keys`: copied from Envoy's own environment; `key_values`:
//!   given inline).
//!
//! `allow_precompiled` is never written: it stays at Envoy's default
//! (false), so Envoy compiles the module itself and ignores any precompiled
//! section in it (see docs/deploy.md). This module does not fetch or
//! verify anything itself ([`crate::artifacts`] serves a module for the
//! tests).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::yaml_str;

/// The module fetched over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The module's URL (`http_uri.uri`).
    pub uri: String,
    /// The Envoy cluster that reaches the URL's host (`http_uri.cluster`).
    pub cluster: String,
    /// Where that cluster points, when the bootstrap should define it
    /// (STATIC, plain HTTP: the tests' loopback module server); `None` when
    /// the operator defines the cluster (with TLS, by DNS).
    pub server: Option<SocketAddr>,
    /// The module's SHA-256, lowercase hex (`sha256`).
    pub sha256: String,
    /// How long one fetch may take, in seconds (`http_uri.timeout`).
    pub timeout_s: u32,
    /// Fetch retries (`retry_policy.num_retries`).
    pub retries: u32,
}

/// Where the module's bytes come from (`vm_config.code`), or the native
/// module instead of the wasm filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    /// A local file.
    Local(PathBuf),
    /// Fetched over HTTP and verified by its SHA-256.
    Remote(Remote),
    /// Not the wasm filter: the native module `lib<name>.so` at this path,
    /// loaded by `envoy.filters.http.dynamic_modules` from its directory
    /// (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`, see [`Module::native_search_path`]).
    /// Its environment is Envoy's own: [`VmEnv`] does not apply.
    Native(PathBuf),
}

/// Environment variables of the VM (`vm_config.environment_variables`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmEnv {
    /// Names whose values the VM reads from Envoy's own environment.
    pub host_env_keys: Vec<String>,
    /// Names and values given inline.
    pub key_values: Vec<(String, String)>,
}

impl VmEnv {
    /// No variables (the section is not written).
    pub fn is_empty(&self) -> bool {
        self.host_env_keys.is_empty() && self.key_values.is_empty()
    }
}

/// The module and its VM's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Where the bytes come from.
    pub code: Code,
    /// The VM's environment variables.
    pub env: VmEnv,
}

impl Module {
    /// A local file, no environment variables.
    pub fn local(path: impl Into<PathBuf>) -> Module {
        Module {
            code: Code::Local(path.into()),
            env: VmEnv::default(),
        }
    }

    /// The native module at `path` (`.../lib<name>.so`).
    pub fn native(path: impl Into<PathBuf>) -> Module {
        Module {
            code: Code::Native(path.into()),
            env: VmEnv::default(),
        }
    }

    /// The local file, if the code is one.
    pub fn local_path(&self) -> Option<&PathBuf> {
        match &self.code {
            Code::Local(p) => Some(p),
            Code::Remote(_) | Code::Native(_) => None,
        }
    }

    /// Whether this is the native module.
    pub fn is_native(&self) -> bool {
        matches!(self.code, Code::Native(_))
    }

    /// The native module's name (`lib<name>.so`) and the directory Envoy
    /// must find it in (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
    pub fn native_search_path(&self) -> Option<(String, PathBuf)> {
        let Code::Native(p) = &self.code else {
            return None;
        };
        let file = p.file_name()?.to_string_lossy();
        let name = file.strip_prefix("lib")?.strip_suffix(".so")?.to_owned();
        Some((name, p.parent()?.to_path_buf()))
    }

    /// The `vm_config` mapping body (YAML, unindented): vm id, V8, the code,
    /// the environment variables when there are any.
    ///
    /// ```
    /// use portcullis_e2e::module::{Module, VmEnv};
    ///
    /// let mut m = Module::local("/etc/envoy/portcullis_filter.wasm");
    /// m.env = VmEnv { host_env_keys: vec!["BACKEND_KEY".into()], key_values: vec![] };
    /// let yaml = m.render_vm_config();
    /// assert!(yaml.contains("filename: \"/etc/envoy/portcullis_filter.wasm\""));
    /// assert!(yaml.contains("host_env_keys: [\"BACKEND_KEY\"]"));
    /// assert!(!yaml.contains("allow_precompiled"));
    /// ```
    pub fn render_vm_config(&self) -> String {
        let mut out = String::from("vm_id: portcullis\nruntime: envoy.wasm.runtime.v8\ncode:\n");
        match &self.code {
            Code::Local(path) => {
                let _ = writeln!(
                    out,
                    "  local:\n    filename: {}",
                    yaml_str(&path.to_string_lossy())
                );
            }
            Code::Native(path) => {
                let _ = writeln!(out, "  # not a wasm module: {}", path.to_string_lossy());
            }
            Code::Remote(r) => {
                let _ = write!(
                    out,
                    "  remote:\n    http_uri:\n      uri: {}\n      cluster: {}\n      timeout: {}s\n    # Envoy refuses a module whose SHA-256 differs.\n    sha256: {}\n    retry_policy:\n      num_retries: {}\n",
                    yaml_str(&r.uri),
                    yaml_str(&r.cluster),
                    r.timeout_s,
                    yaml_str(&r.sha256),
                    r.retries
                );
            }
        }
        if !self.env.is_empty() {
            out.push_str("environment_variables:\n");
            if !self.env.host_env_keys.is_empty() {
                let keys: Vec<String> =
                    self.env.host_env_keys.iter().map(|k| yaml_str(k)).collect();
                let _ = writeln!(out, "  host_env_keys: [{}]", keys.join(", "));
            }
            if !self.env.key_values.is_empty() {
                out.push_str("  key_values:\n");
                for (k, v) in &self.env.key_values {
                    let _ = writeln!(out, "    {}: {}", yaml_str(k), yaml_str(v));
                }
            }
        }
        out
    }

    /// The cluster the bootstrap must define for a remote module with a
    /// [`Remote::server`] (YAML list item, unindented).
    pub fn render_cluster(&self) -> Option<String> {
        let Code::Remote(r) = &self.code else {
            return None;
        };
        let a = r.server?;
        Some(format!(
            r#"- name: {name}
  # The module server: Envoy fetches the filter from here at start-up.
  type: STATIC
  connect_timeout: 2s
  load_assignment:
    cluster_name: {name}
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            socket_address: {{ address: {ip}, port_value: {port} }}
"#,
            name = yaml_str(&r.cluster),
            ip = yaml_str(&a.ip().to_string()),
            port = a.port()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_code_carries_its_digest_and_cluster() {
        let m = Module {
            code: Code::Remote(Remote {
                uri: "http://127.0.0.1:20001/portcullis_filter.wasm".into(),
                cluster: "artifacts".into(),
                server: Some(SocketAddr::from(([127, 0, 0, 1], 20001))),
                sha256: "ab".repeat(32),
                timeout_s: 10,
                retries: 3,
            }),
            env: VmEnv {
                host_env_keys: vec!["K1".into(), "K2".into()],
                key_values: vec![("MODE".into(), "test".into())],
            },
        };
        let y = m.render_vm_config();
        for want in [
            "  remote:\n    http_uri:\n      uri: \"http://127.0.0.1:20001/portcullis_filter.wasm\"\n      cluster: \"artifacts\"\n      timeout: 10s\n",
            &format!("    sha256: \"{}\"\n", "ab".repeat(32)),
            "      num_retries: 3\n",
            "environment_variables:\n  host_env_keys: [\"K1\", \"K2\"]\n  key_values:\n    \"MODE\": \"test\"\n",
        ] {
            assert!(y.contains(want), "{want:?} not in\n{y}");
        }
        let c = m.render_cluster().unwrap_or_default();
        assert!(
            c.contains("socket_address: { address: \"127.0.0.1\", port_value: 20001 }"),
            "{c}"
        );
        assert_eq!(Module::local("/x.wasm").render_cluster(), None);
        assert!(!Module::local("/x.wasm")
            .render_vm_config()
            .contains("environment_variables"));
    }
}
