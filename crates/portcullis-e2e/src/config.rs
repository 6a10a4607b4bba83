//! Envoy configuration for a hardened Portcullis deployment, as a Rust template.
//!
//! [`EnvoyConfig::render`] writes one Envoy bootstrap (YAML) with:
//!
//! - one or more listeners, each plain HTTP or TLS (TLS 1.2 minimum, TLS 1.2
//!   restricted to forward-secret AEAD suites: ECDHE-ECDSA/RSA with AES-GCM or
//!   CHACHA20-POLY1305; TLS 1.3 suites are AEAD by construction);
//! - an HTTP connection manager that takes the client address from the TCP
//!   peer (`use_remote_address: true`, `xff_num_trusted_hops: 0`: a forged
//!   `X-Forwarded-For` never becomes the peer), that passes the upstream's
//!   `Server` header through instead of adding `server: envoy`
//!   (`server_header_transformation: PASS_THROUGH`; the policy removes it), and
//!   a router that adds no `x-envoy-*` headers (`suppress_envoy_headers`);
//! - the Portcullis filter (`envoy.filters.http.wasm`, V8, the `.wasm` from a
//!   local file or fetched by URL with its SHA-256, see [`crate::module`]), with the policy JSON inline as its plugin configuration (a
//!   `google.protobuf.StringValue`), or discovered from a file (ECDS,
//!   [`Filter::Discovered`]) so it can be replaced without a restart;
//! - an access log line per request carrying the filter's decision trace
//!   (filter state `wasm.portcullis.<policy>.trace`, see [`trace_format`]);
//!   with [`Filter::Chain`] one trace per instance (a report-mode candidate
//!   beside the enforcing policy, see `docs/rollout.md`);
//! - the admin interface on loopback only.
//!
//! `deploy/envoy/envoy.yaml` is this template rendered by the
//! `portcullis-envoy-config` binary (see that file's header for the command);
//! a test keeps it in step with the template.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::module::Module;

/// The access-log command operator that prints the trace line of the
/// filter instance running policy `name` (`verdict status step source
/// client scope rule`, see `portcullis_core::Trace`).
pub fn trace_format(name: &str) -> String {
    format!("%FILTER_STATE(wasm.portcullis.{name}.trace:PLAIN)%")
}

/// The same for the JSON trace (policies with `trace_json: true`).
pub fn json_trace_format(name: &str) -> String {
    format!("%FILTER_STATE(wasm.portcullis.{name}.trace_json:PLAIN)%")
}

/// [`trace_format`] for the native module, which sets the filter state
/// `portcullis.<policy>.trace` itself (no `wasm.` prefix).
pub fn native_trace_format(name: &str) -> String {
    format!("%FILTER_STATE(portcullis.{name}.trace:PLAIN)%")
}

/// [`json_trace_format`] for the native module.
pub fn native_json_trace_format(name: &str) -> String {
    format!("%FILTER_STATE(portcullis.{name}.trace_json:PLAIN)%")
}

/// The type URL of the native module's filter configuration.
pub const DYNAMIC_MODULE_FILTER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";

/// The type URL of the wasm filter's configuration.
pub const WASM_FILTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";

/// The request header the tests use to find a request's access-log line and
/// the backend's canned answer. Deployments do not log it.
pub const CASE_HEADER: &str = "x-portcullis-e2e-case";

/// TLS 1.2 suites allowed on TLS listeners: forward secret (ECDHE) and AEAD only.
pub const TLS12_CIPHERS: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// Certificate and key files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How a listener gets its Portcullis filter configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The policy JSON inline in the bootstrap.
    Inline {
        /// Policy document text.
        policy: String,
    },
    /// Extension config discovery (ECDS) from a file that holds a
    /// `TypedExtensionConfig` named `name` (render it with
    /// [`EnvoyConfig::render_ecds_resource`]). Replacing the file by an
    /// atomic rename updates the policy without restarting Envoy.
    Discovered {
        /// Resource name (also the filter name; the access log prints the
        /// trace of the policy of this name).
        name: String,
        /// The watched file.
        path: PathBuf,
    },
    /// Several Portcullis instances on the listener, in this order, each
    /// with its policy inline (e.g. a report-mode candidate, then the
    /// enforcing policy: the candidate forwards every request, so the
    /// enforcing one sees them all).
    Chain {
        /// Policy documents, in filter order.
        policies: Vec<String>,
    },
}

impl Filter {
    /// The names of the policies whose traces the access log prints.
    pub fn policy_names(&self) -> Vec<String> {
        let name = |p: &str| {
            portcullis_core::Policy::name_of(p.as_bytes())
                .unwrap_or_else(|| String::from("portcullis"))
        };
        match self {
            Filter::Inline { policy } => vec![name(policy)],
            Filter::Discovered { name, .. } => vec![name.clone()],
            Filter::Chain { policies } => policies.iter().map(|p| name(p)).collect(),
        }
    }
}

/// An environment that answers every variable (with a placeholder): the
/// policy is read at render time only for its HSTS, and its `value_from`
/// keys are the VM's business, not the renderer's.
struct AnyEnv;

impl portcullis_core::Env for AnyEnv {
    fn var(&self, _: &str) -> Option<String> {
        Some(String::from("render-time-placeholder"))
    }
}

/// The top level's rendered HSTS value of a policy document (the core
/// renders it: `hsts.value`), if it is valid and has one.
pub fn policy_hsts(policy: &str) -> Option<String> {
    portcullis_core::Policy::parse_with_env(policy.as_bytes(), &AnyEnv)
        .ok()?
        .hsts
        .map(|h| h.value)
}

impl Filter {
    /// The HSTS value a TLS listener's `local_reply_config` adds to the
    /// replies Envoy writes before any HTTP filter runs (see
    /// [`local_reply_config`]): the top level's, as no scope is chosen for
    /// those requests. With a chain, the first policy in filter order that
    /// has one: on a response every instance sees, each sets its HSTS and
    /// the first instance's response hook runs last. `None` with ECDS (the
    /// policy is not in the bootstrap and can change without it), and for
    /// a policy without `hsts` or one Envoy will refuse anyway.
    pub fn listener_hsts(&self) -> Option<String> {
        match self {
            Filter::Inline { policy } => policy_hsts(policy),
            Filter::Chain { policies } => policies.iter().find_map(|p| policy_hsts(p)),
            Filter::Discovered { .. } => None,
        }
    }
}

/// The CEL expression of the [`local_reply_config`] mapper: every local
/// reply except the filter's own (response code details `portcullis_*`).
pub const LOCAL_REPLY_FILTER: &str = "!response.code_details.startsWith('portcullis_')";

/// The HTTP connection manager's `local_reply_config` that puts `hsts`
/// (a rendered `Strict-Transport-Security` value) on Envoy's own local
/// replies, exactly once.
///
/// Envoy applies `local_reply_config` to every local reply, those it
/// writes while still parsing the request head (no HTTP filter exists yet)
/// included, after the replying filter's own headers and before the reply
/// passes the encoder filters. So:
/// - the filter's own replies (details `portcullis_<step>`) are left
///   alone: they carry the HSTS of their scope, or none when the scope has
///   none (the CEL filter);
/// - replies no filter sees (a malformed head, an `_` header name, no
///   `Host`, HTTP/1.0, a refused upgrade) get `hsts`;
/// - replies that pass the filter's response hook afterwards (a router
///   404, a 503) get it too, and the hook then replaces it with the value
///   of the request's scope (or, in a scope without `hsts`, removes it);
/// - `ADD_IF_ABSENT` never adds a second one.
pub fn local_reply_config(hsts: &str) -> String {
    // headers_to_add values are format strings: a literal `%` is `%%`.
    let value = hsts.replace('%', "%%");
    format!(
        r#"# Envoy's own replies that no HTTP filter sees (a malformed request head,
# an "_" header name, no Host, ...) get the policy's HSTS here; the
# filter's own replies (details portcullis_*) keep what the policy gave
# them (docs/filter.md).
local_reply_config:
  mappers:
  - filter:
      extension_filter:
        name: envoy.access_loggers.extension_filters.cel
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter
          expression: {expr}
    headers_to_add:
    - header: {{ key: strict-transport-security, value: {value} }}
      append_action: ADD_IF_ABSENT
"#,
        expr = yaml_str(LOCAL_REPLY_FILTER),
        value = yaml_str(&value),
    )
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Name (unique in the config; shown in stats as `listener.<addr>`).
    pub name: String,
    /// Bind address.
    pub address: SocketAddr,
    /// TLS files, or `None` for plain HTTP.
    pub tls: Option<TlsFiles>,
    /// The Portcullis filter's configuration.
    pub filter: Filter,
}

/// Where requests that the policy forwards go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A fixed address over plain HTTP/1.1 (the tests' stand-in backend).
    Static(SocketAddr),
    /// A DNS name over TLS with SNI (e.g. `func-orders.azurewebsites.net:443`).
    DnsTls {
        /// Host name (also the SNI and the certificate name checked).
        host: String,
        /// Port.
        port: u16,
    },
}

/// The access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// A human-readable line on Envoy's stdout.
    Stdout,
    /// JSON lines in a file, with the test case id (see [`CASE_HEADER`]).
    JsonFile(PathBuf),
    /// No access log (soak runs: a line per request would fill the disk).
    Off,
}

/// A whole Envoy bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyConfig {
    /// Admin listener (keep it on loopback; port 0 picks one, see
    /// `--admin-address-path`).
    pub admin: SocketAddr,
    /// Listeners.
    pub listeners: Vec<Listener>,
    /// Upstream.
    pub upstream: Upstream,
    /// The filter module (a local file or fetched by URL with its SHA-256)
    /// and its VM's environment variables.
    pub module: Module,
    /// Access log.
    pub access_log: AccessLog,
}

/// How the HTTP connection manager treats client addresses and header
/// names: the parts of the bootstrap that depend on where Envoy sits.
/// [`EnvoyConfig::render`] uses the default (an edge proxy).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpOptions {
    /// Where Envoy sits.
    pub position: Position,
    /// `headers_with_underscores_action`.
    pub underscores: Underscores,
}

/// Where Envoy sits in front of the backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Position {
    /// Clients connect to Envoy directly: the peer is the client
    /// (`use_remote_address: true`, no trusted hops), and Envoy sets
    /// `X-Forwarded-Proto` from its own connection.
    #[default]
    Edge,
    /// Behind a TLS-terminating proxy: `use_remote_address: false`, so Envoy
    /// keeps the proxy's `X-Forwarded-Proto` (and
    /// `https_only.trust_forwarded_proto` can work), with Envoy's XFF
    /// original-IP detection trusting only `detection_cidrs`. Envoy replaces
    /// `source.address` with the client it detects from a peer inside them,
    /// which hides the proxy from the policy (its `trusted_proxies` and
    /// `trust_forwarded_proto` then see the client as the peer): the shipped
    /// behind-a-proxy file trusts no peer here ([`TRUST_NO_PEER`]), so
    /// `source.address` stays the TCP peer and the policy's
    /// `trusted_proxies` decide (docs/filter.md).
    BehindProxy {
        /// `a.b.c.d/n` or `v6/n` strings for `xff_trusted_cidrs`.
        detection_cidrs: Vec<String>,
    },
}

/// The `detection_cidrs` of the shipped behind-a-proxy configuration: an
/// address no TCP peer can have, so Envoy's detection never replaces the
/// peer.
pub const TRUST_NO_PEER: &str = "255.255.255.255/32";

/// `headers_with_underscores_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Underscores {
    /// Refuse a request whose header names hold `_` with a 400 (Envoy's
    /// edge recommendation, and the shipped stand; see docs/filter.md).
    #[default]
    RejectRequest,
    /// Pass such headers to the filter (which removes the `_` twins of the
    /// headers its policy sets or requires): the corpus runs this way, to
    /// prove the filter's own guard.
    Allow,
}

impl Underscores {
    fn word(self) -> &'static str {
        match self {
            Underscores::RejectRequest => "REJECT_REQUEST",
            Underscores::Allow => "ALLOW",
        }
    }
}

/// Splits `a.b.c.d/n` into Envoy's `CidrRange` fields.
fn cidr(c: &str) -> String {
    let (ip, len) = c
        .split_once('/')
        .unwrap_or((c, if c.contains(':') { "128" } else { "32" }));
    format!(
        "{{ address_prefix: {}, prefix_len: {} }}",
        yaml_str(ip),
        len.parse::<u32>().unwrap_or(0)
    )
}

/// Quotes a string as a YAML double-quoted scalar. JSON string escapes are a
/// subset of YAML's, so a JSON-encoded string is a valid YAML scalar.
pub fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    let mut out = String::new();
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
    out
}

fn socket(a: &SocketAddr) -> String {
    format!(
        "socket_address: {{ address: {}, port_value: {} }}",
        yaml_str(&a.ip().to_string()),
        a.port()
    )
}

impl EnvoyConfig {
    /// The `envoy.extensions.filters.http.wasm.v3.Wasm` message (YAML
    /// mapping body) for a policy.
    pub fn wasm_filter_config(&self, policy: &str) -> String {
        self.named_wasm_filter_config("portcullis", policy)
    }

    /// [`EnvoyConfig::wasm_filter_config`] with another plugin name (one
    /// per instance when a listener runs several). With the native module
    /// ([`crate::module::Code::Native`]) the
    /// `envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter`
    /// message instead, the policy as its `filter_config`.
    pub fn named_wasm_filter_config(&self, plugin: &str, policy: &str) -> String {
        if let Some((name, _)) = self.module.native_search_path() {
            return format!(
                r#""@type": {DYNAMIC_MODULE_FILTER_TYPE}
# lib{file}.so, found in ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
dynamic_module_config: {{ name: {name} }}
filter_name: portcullis
filter_config:
  "@type": type.googleapis.com/google.protobuf.StringValue
  value: {policy}
"#,
                file = name,
                name = yaml_str(&name),
                policy = yaml_str(policy),
            );
        }
        format!(
            r#""@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
config:
  name: {plugin}
  root_id: portcullis
  # A crashed VM fails closed: requests get a 503, never an unchecked pass.
  failure_policy: FAIL_CLOSED
  vm_config:
{vm}  configuration:
    "@type": type.googleapis.com/google.protobuf.StringValue
    value: {policy}
"#,
            plugin = yaml_str(plugin),
            vm = indent(&self.module.render_vm_config(), 4),
            policy = yaml_str(policy),
        )
    }

    /// The ECDS resource file for [`Filter::Discovered`]: a
    /// `TypedExtensionConfig` named `name` holding the wasm filter with `policy`.
    pub fn render_ecds_resource(&self, name: &str, policy: &str) -> String {
        format!(
            "resources:\n- \"@type\": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig\n  name: {}\n  typed_config:\n{}",
            yaml_str(name),
            indent(&self.wasm_filter_config(policy), 4)
        )
    }

    /// The access-log operator printing policy `name`'s trace (wasm filter
    /// or native module).
    pub fn trace_op(&self, name: &str) -> String {
        if self.module.is_native() {
            native_trace_format(name)
        } else {
            trace_format(name)
        }
    }

    /// The same for the JSON trace.
    pub fn json_trace_op(&self, name: &str) -> String {
        if self.module.is_native() {
            native_json_trace_format(name)
        } else {
            json_trace_format(name)
        }
    }

    fn access_log(&self, names: &[String]) -> String {
        let first = names.first().map_or("portcullis", String::as_str);
        let trace_format = |n: &str| self.trace_op(n);
        let json_trace_format = |n: &str| self.json_trace_op(n);
        let many = names.len() > 1;
        match &self.access_log {
            AccessLog::Stdout => {
                // One instance: `portcullis="..."`; several: each by name.
                let traces = if many {
                    let each = names
                        .iter()
                        .map(|n| format!("portcullis.{n}=\"{}\"", trace_format(n)));
                    each.collect::<Vec<_>>().join(" ")
                } else {
                    format!("portcullis=\"{}\"", trace_format(first))
                };
                format!(
                    r#"- name: envoy.access_loggers.stdout
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
    log_format:
      text_format_source:
        inline_string: {}
"#,
                    yaml_str(&format!(
                        "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:AUTHORITY)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% {traces}\n"
                    ))
                )
            }
            AccessLog::JsonFile(path) => {
                // Several instances: each trace under its policy's name too.
                let mut more = String::new();
                for n in names.iter().filter(|_| many) {
                    let _ = write!(
                        more,
                        "        {}: {}\n        {}: {}\n",
                        yaml_str(&format!("trace.{n}")),
                        yaml_str(&trace_format(n)),
                        yaml_str(&format!("trace_json.{n}")),
                        yaml_str(&json_trace_format(n)),
                    );
                }
                format!(
                    r#"- name: envoy.access_loggers.file
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
    path: {}
    log_format:
      json_format:
        case: "%REQ({})%"
        trace: "{}"
{more}        status: "%RESPONSE_CODE%"
        peer: "%DOWNSTREAM_REMOTE_ADDRESS%"
        local: "%DOWNSTREAM_LOCAL_ADDRESS%"
        flags: "%RESPONSE_FLAGS%"
        details: "%RESPONSE_CODE_DETAILS%"
"#,
                    yaml_str(&path.to_string_lossy()),
                    CASE_HEADER.to_ascii_uppercase(),
                    trace_format(first)
                )
            }
            AccessLog::Off => String::from("[]\n"),
        }
    }

    /// One `http_filters` entry (YAML list item, unindented): the Wasm
    /// filter inline, or its ECDS `config_discovery` stanza.
    pub fn render_http_filter(&self, filter: &Filter) -> String {
        match filter {
            Filter::Inline { policy } => format!(
                "- name: portcullis\n  typed_config:\n{}",
                indent(&self.wasm_filter_config(policy), 4)
            ),
            Filter::Chain { policies } => {
                let mut out = String::new();
                for (p, n) in policies.iter().zip(filter.policy_names()) {
                    let plugin = format!("portcullis.{n}");
                    let _ = write!(
                        out,
                        "- name: {}\n  typed_config:\n{}",
                        yaml_str(&plugin),
                        indent(&self.named_wasm_filter_config(&plugin, p), 4)
                    );
                }
                out
            }
            Filter::Discovered { name, path } => {
                let dir = path
                    .parent()
                    .map(|d| d.to_string_lossy().into_owned())
                    .unwrap_or_else(|| String::from("."));
                format!(
                    r#"- name: {name}
  # ECDS: the filter config is read from a file and re-read when a new file
  # is renamed over it; Envoy keeps serving with the old policy until the new
  # one is accepted (a rejected policy is not applied).
  config_discovery:
    config_source:
      path_config_source:
        path: {path}
        watched_directory: {{ path: {dir} }}
    type_urls: [{type_url}]
"#,
                    type_url = yaml_str(if self.module.is_native() {
                        DYNAMIC_MODULE_FILTER_TYPE
                    } else {
                        WASM_FILTER_TYPE
                    }),
                    name = yaml_str(name),
                    path = yaml_str(&path.to_string_lossy()),
                    dir = yaml_str(&dir),
                )
            }
        }
    }

    fn listener(&self, l: &Listener, opts: &HttpOptions) -> String {
        let filter = self.render_http_filter(&l.filter);
        let tls = match &l.tls {
            None => String::new(),
            Some(files) => format!(
                r#"    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
        common_tls_context:
          tls_params:
            tls_minimum_protocol_version: TLSv1_2
            tls_maximum_protocol_version: TLSv1_3
            cipher_suites: [{ciphers}]
            ecdh_curves: [X25519, P-256]
          alpn_protocols: [h2, http/1.1]
          tls_certificates:
          - certificate_chain: {{ filename: {cert} }}
            private_key: {{ filename: {key} }}
"#,
                ciphers = TLS12_CIPHERS.join(", "),
                cert = yaml_str(&files.cert.to_string_lossy()),
                key = yaml_str(&files.key.to_string_lossy()),
            ),
        };
        let scheme = if l.tls.is_some() { "https" } else { "http" };
        // HSTS on Envoy's own early replies: TLS listeners only (never on a
        // response to a plain request).
        let local_reply = l
            .tls
            .as_ref()
            .and_then(|_| l.filter.listener_hsts())
            .map(|v| indent(&local_reply_config(&v), 8))
            .unwrap_or_default();
        format!(
            r#"- name: {name}
  address:
    {addr}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: {stat}
        codec_type: AUTO
{position}        # Envoy never appends to X-Forwarded-For: the policy walks what the client
        # or proxy sent (docs/filter.md).
        skip_xff_append: true
        # Header names with "_" (x_functions_key beside x-functions-key) are
        # read as "-" by some backends: refuse them (docs/filter.md).
        common_http_protocol_options:
          headers_with_underscores_action: {underscores}
        # Do not add "server: envoy"; pass the upstream's through (the policy removes it).
        server_header_transformation: PASS_THROUGH
{local_reply}        access_log:
{log}        route_config:
          name: portcullis
          virtual_hosts:
          - name: backend
            domains: ["*"]
            routes:
            - match: {{ prefix: "/" }}
              route: {{ cluster: backend }}
        http_filters:
{filter}        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
            suppress_envoy_headers: true
{tls}"#,
            name = yaml_str(&l.name),
            addr = socket(&l.address),
            stat = yaml_str(&format!("{}_{}", scheme, l.name)),
            log = indent(&self.access_log(&l.filter.policy_names()), 8),
            filter = indent(&filter, 8),
            tls = tls,
            position = indent(&position(&opts.position), 8),
            underscores = opts.underscores.word(),
            local_reply = local_reply,
        )
    }

    fn cluster(&self) -> String {
        match &self.upstream {
            Upstream::Static(a) => format!(
                r#"- name: backend
  type: STATIC
  connect_timeout: 2s
  load_assignment:
    cluster_name: backend
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            {}
"#,
                socket(a)
            ),
            Upstream::DnsTls { host, port } => format!(
                r#"- name: backend
  type: LOGICAL_DNS
  dns_lookup_family: V4_PREFERRED
  connect_timeout: 5s
  load_assignment:
    cluster_name: backend
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            socket_address: {{ address: {h}, port_value: {port} }}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
      sni: {h}
      common_tls_context:
        validation_context:
          trusted_ca: {{ filename: /etc/ssl/certs/ca-certificates.crt }}
          match_typed_subject_alt_names:
          - san_type: DNS
            matcher: {{ exact: {h} }}
"#,
                h = yaml_str(host),
            ),
        }
    }

    /// Renders the bootstrap as YAML, for an edge proxy.
    pub fn render(&self) -> String {
        self.render_with(&HttpOptions::default())
    }

    /// Renders the bootstrap as YAML with these connection-manager options.
    pub fn render_with(&self, opts: &HttpOptions) -> String {
        let mut out = String::from(
            "# Envoy bootstrap for Portcullis, rendered by portcullis-e2e (src/config.rs).\n",
        );
        let admin_ip = match self.admin.ip() {
            IpAddr::V4(a) if a.is_loopback() => "",
            IpAddr::V6(a) if a.is_loopback() => "",
            _ => "# WARNING: the admin interface is not on loopback.\n",
        };
        let _ = write!(
            out,
            "node:\n  id: portcullis\n  cluster: portcullis\n{admin_ip}admin:\n  address:\n    {}\nstatic_resources:\n  listeners:\n",
            socket(&self.admin)
        );
        for l in &self.listeners {
            out.push_str(&indent(&self.listener(l, opts), 2));
        }
        out.push_str("  clusters:\n");
        out.push_str(&indent(&self.cluster(), 2));
        if let Some(c) = self.module.render_cluster() {
            out.push_str(&indent(&c, 2));
        }
        out
    }
}

/// The connection manager's client-address settings.
fn position(p: &Position) -> String {
    match p {
        Position::Edge => String::from(
            "# The client is the TCP peer; X-Forwarded-For from clients is never trusted.\n\
             use_remote_address: true\n\
             xff_num_trusted_hops: 0\n",
        ),
        Position::BehindProxy { detection_cidrs } => {
            let mut out = String::from(
                "# Behind a trusted proxy: Envoy keeps the proxy's X-Forwarded-Proto\n\
                 # (use_remote_address: false) and the policy's trusted_proxies judge\n\
                 # it. Envoy's own XFF detection trusts no peer, so source.address\n\
                 # stays the TCP peer (docs/filter.md).\n\
                 use_remote_address: false\n\
                 original_ip_detection_extensions:\n\
                 - name: envoy.extensions.http.original_ip_detection.xff\n  \
                 typed_config:\n    \
                 \"@type\": type.googleapis.com/envoy.extensions.http.original_ip_detection.xff.v3.XffConfig\n    \
                 skip_xff_append: true\n    \
                 xff_trusted_cidrs:\n      \
                 cidrs:\n",
            );
            for c in detection_cidrs {
                let _ = writeln!(out, "      - {}", cidr(c));
            }
            out
        }
    }
}

/// The sample policy `deploy/envoy/envoy.yaml` is rendered with.
pub const DEPLOY_POLICY: &str = "policy-samples/functions-behind-apim.json";

/// The operator's starting point, `deploy/envoy/envoy.yaml`: the
/// Functions-behind-APIM sample on ports 80 and 443 of every interface,
/// the filter and certificate under `/etc/envoy/`, admin on
/// `127.0.0.1:9901`, the function app over TLS as the upstream, the access
/// log on stdout. Regenerate with
/// `cargo run -p portcullis-e2e --bin portcullis-envoy-config -- deploy > deploy/envoy/envoy.yaml`.
pub fn deploy_example(policy: &str) -> EnvoyConfig {
    let tls = TlsFiles {
        cert: PathBuf::from("/etc/envoy/tls/cert.pem"),
        key: PathBuf::from("/etc/envoy/tls/key.pem"),
    };
    EnvoyConfig {
        admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
        listeners: vec![
            Listener {
                name: "http".into(),
                address: SocketAddr::from(([0, 0, 0, 0], 80)),
                tls: None,
                filter: Filter::Inline {
                    policy: policy.to_owned(),
                },
            },
            Listener {
                name: "https".into(),
                address: SocketAddr::from(([0, 0, 0, 0], 443)),
                tls: Some(tls),
                filter: Filter::Inline {
                    policy: policy.to_owned(),
                },
            },
        ],
        upstream: Upstream::DnsTls {
            host: "func-orders.azurewebsites.net".into(),
            port: 443,
        },
        module: Module {
            // The sample reads the function key with value_from: Envoy hands
            // its own FUNCTION_KEY to the VM (never inline in this file).
            env: crate::module::VmEnv {
                host_env_keys: vec![crate::deploy::BACKEND_KEY_ENV.into()],
                key_values: Vec::new(),
            },
            ..Module::local("/etc/envoy/portcullis_filter.wasm")
        },
        access_log: AccessLog::Stdout,
    }
}

/// The rollout example of `docs/rollout.md`: one listener with a
/// report-mode `candidate` first (it forwards every request and records
/// what it would have done) and the enforcing `current` policy second (it
/// decides), otherwise as [`deploy_example`]'s plain listener. The Envoy
/// test `envoy_rollout` runs this very filter chain, with loopback
/// addresses, the test backend and a JSON access log swapped in. Print it
/// with `cargo run -p portcullis-e2e --bin portcullis-envoy-config --
/// rollout CURRENT CANDIDATE`.
pub fn rollout_example(current: &str, candidate: &str) -> EnvoyConfig {
    let mut cfg = deploy_example(current);
    cfg.listeners.truncate(1);
    if let Some(l) = cfg.listeners.first_mut() {
        l.filter = Filter::Chain {
            policies: vec![candidate.to_owned(), current.to_owned()],
        };
    }
    cfg
}

/// The operator's starting point behind a TLS-terminating proxy,
/// `deploy/envoy/envoy-behind-proxy.yaml`: the Application Gateway sample
/// (`policy-samples/behind-app-gateway.json`) on the same listeners as
/// [`deploy_example`], rendered with [`Position::BehindProxy`] trusting no
/// peer in Envoy's own detection ([`TRUST_NO_PEER`]).
pub fn deploy_behind_proxy(policy: &str) -> String {
    let opts = HttpOptions {
        position: Position::BehindProxy {
            detection_cidrs: vec![TRUST_NO_PEER.into()],
        },
        underscores: Underscores::RejectRequest,
    };
    format!(
        "{DEPLOY_BEHIND_PROXY_HEADER}{}",
        deploy_example(policy).render_with(&opts)
    )
}

/// The sample policy `deploy/envoy/envoy-behind-proxy.yaml` is rendered with.
pub const DEPLOY_BEHIND_PROXY_POLICY: &str = "policy-samples/behind-app-gateway.json";

/// The comment block at the top of `deploy/envoy/envoy-behind-proxy.yaml`.
pub const DEPLOY_BEHIND_PROXY_HEADER: &str = "\
# GENERATED: do not edit by hand. Regenerate with
#   cargo run -q -p portcullis-e2e --bin portcullis-envoy-config -- deploy-behind-proxy > deploy/envoy/envoy-behind-proxy.yaml
# (crates/portcullis-e2e/tests/envoy_front_doors.rs fails when this file is stale).
#
# Portcullis in Envoy behind a TLS-terminating proxy (e.g. Azure Application
# Gateway): policy-samples/behind-app-gateway.json inline. Envoy keeps the
# proxy's X-Forwarded-Proto and X-Forwarded-For; the policy's
# client_ip.trusted_proxies decide whom to believe. Only the proxy should be
# able to reach these listeners. See docs/filter.md.
";

/// The comment block at the top of `deploy/envoy/envoy.yaml`.
pub const DEPLOY_HEADER: &str = "\
# GENERATED: do not edit by hand. Regenerate with
#   cargo run -q -p portcullis-e2e --bin portcullis-envoy-config -- deploy > deploy/envoy/envoy.yaml
# (a test in crates/portcullis-e2e fails when this file is stale).
#
# Portcullis in Envoy 1.40: policy-samples/functions-behind-apim.json inline.
# Before use: put the filter (dist/portcullis_filter.wasm) at
# /etc/envoy/portcullis_filter.wasm, your certificate and key under
# /etc/envoy/tls/, replace the inline policy (the StringValue `value`), and
# the upstream host. See docs/deploy.md (remote fetch with sha256, Istio,
# hot policy updates with ECDS, the access-log trace, stats).
";

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    const WITH: &str = r#"{"name": "a", "hsts": {"max_age": 600, "include_subdomains": true}}"#;
    const WITHOUT: &str = r#"{"name": "b"}"#;

    fn two_listeners(filter: Filter) -> String {
        let mut cfg = deploy_example(WITHOUT);
        for l in &mut cfg.listeners {
            l.filter = filter.clone();
        }
        cfg.render()
    }

    #[test]
    fn the_tls_listener_alone_gets_the_policy_hsts_on_envoy_replies() {
        let inline = |p: &str| Filter::Inline { policy: p.into() };
        let yaml = two_listeners(inline(WITH));
        assert_eq!(yaml.matches("local_reply_config:").count(), 1);
        let (plain, tls) = yaml.split_once("- name: \"https\"").unwrap();
        assert!(!plain.contains("local_reply_config"));
        assert!(tls.contains(
            "- header: { key: strict-transport-security, value: \"max-age=600; includeSubDomains\" }"
        ));
        assert!(tls.contains("append_action: ADD_IF_ABSENT"));
        assert!(tls.contains(&yaml_str(LOCAL_REPLY_FILTER)));
        // No top-level hsts, an invalid policy, ECDS: no mapper.
        for f in [
            inline(WITHOUT),
            inline(r#"{"name": "x", "hsts": {"max_age": -1}}"#),
            Filter::Discovered {
                name: "p".into(),
                path: PathBuf::from("/e/p.yaml"),
            },
        ] {
            assert!(
                !two_listeners(f.clone()).contains("local_reply_config"),
                "{f:?}"
            );
        }
        // A chain: the first policy that has one.
        let chain = Filter::Chain {
            policies: vec![WITHOUT.into(), WITH.into()],
        };
        assert_eq!(
            chain.listener_hsts().as_deref(),
            Some("max-age=600; includeSubDomains")
        );
        // value_from keys do not stop the render (the sample reads one).
        let keyed = r#"{"name": "k", "hsts": {"max_age": 1},
          "require_headers": [{"name": "x-k", "values_from": [{"env": "UNSET_HERE"}]}]}"#;
        assert_eq!(policy_hsts(keyed).as_deref(), Some("max-age=1"));
    }
}
