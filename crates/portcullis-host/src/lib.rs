//! A small [proxy-wasm] host (ABI 0.2.1) on [wasmtime], for running a
//! proxy-wasm HTTP filter — the exact `.wasm` that ships to Envoy — outside
//! Envoy: in unit tests of policies (`portcullis test`) and in fuzzing.
//!
//! Why one file over 800 lines: the ABI's call sequence (configure, play an
//! exchange, ticks, restarts) is one state machine, and its doc comments
//! are the host's user documentation.
//!
//! [proxy-wasm]: https://github.com/proxy-wasm/spec
//!
//! # What it does
//!
//! * [`Engine::new`] compiles a module once (cranelift) and checks that it is
//!   a proxy-wasm 0.2.x module whose every import this host provides.
//! * [`Engine::with_cache`] does the same through a [`ModuleCache`], an
//!   on-disk cache of compiled modules (a second load skips cranelift).
//! * [`Engine::configure`] instantiates it and runs the start-up sequence
//!   Envoy runs: `_initialize` (then `main` if exported) or `_start`,
//!   `proxy_on_context_create(root, 0)`, `proxy_on_vm_start(root, 0)` (empty
//!   VM configuration), `proxy_on_configure(root, size)` with the plugin
//!   configuration served as buffer `PluginConfiguration` (7). If the filter
//!   returns false, [`ConfigureError::Rejected`] carries what it logged.
//! * [`Plugin::play`] plays one HTTP exchange through a new HTTP context and
//!   returns an [`Exchange`]: what the upstream would have received, what the
//!   client gets, properties read and set, logs, host-call and fuel counts.
//!
//! # The exchange
//!
//! 1. `proxy_on_context_create(ctx, root)`.
//! 2. `proxy_on_request_headers(ctx, n, end_of_stream = body.is_none())`.
//! 3. If the request has a body: `proxy_on_request_body(ctx, len, true)`.
//!    The body can be read and replaced (`HttpRequestBody`, 0) there.
//! 4. The request headers as they are once the filter let them go are the
//!    [`Exchange::upstream_request_headers`].
//! 5. The response map is set to `:status` + the upstream headers and
//!    `proxy_on_response_headers(ctx, n, true)` runs (responses have no body).
//!    The map afterwards, without `:status`, is [`Exchange::response_headers`].
//! 6. `proxy_on_log`, `proxy_on_done`, `proxy_on_delete` (also after a local
//!    reply, a reset or a stall; a `false` from `proxy_on_done` is ignored).
//!
//! Everything the filter logged during the exchange is in [`Exchange::logs`];
//! when `play` fails, the same lines are in [`Plugin::last_failure_logs`].
//!
//! **Local replies.** If the filter calls `proxy_send_local_response` in a
//! request callback, the exchange stops there: nothing goes upstream, the
//! reply's status, headers (names lowercased) and body are the response, and
//! `proxy_on_response_headers` is *not* run over it (Envoy does not run the
//! sending filter's encode path for its own local reply). A local reply sent
//! from `proxy_on_response_headers` replaces the upstream response. Only the
//! filter's own headers are recorded: Envoy would add `content-length`,
//! `content-type`, `date` and `server` itself. A second local reply in one
//! exchange, or one sent from `proxy_on_log`, is a [`HostError::Misuse`].
//!
//! **Pause.** Returning `Pause` is fine while more of the request is coming
//! (headers with a body); if the last callback of a direction pauses and
//! nothing called `proxy_continue_stream`, the exchange fails with
//! [`HostError::Stalled`] (Envoy would hold the request until a timeout).
//! `proxy_close_stream` resets the stream: [`Exchange::reset`] is set,
//! nothing more is forwarded and `status` is 0.
//!
//! # Host calls
//!
//! Every `env` import of ABI 0.2.1 is defined. Implemented:
//! `proxy_log`, `proxy_get_log_level`, `proxy_get_current_time_nanoseconds`,
//! `proxy_set_tick_period_milliseconds` (recorded; see [`Plugin::tick`] and
//! [`Plugin::done`]),
//! `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`,
//! `proxy_get_buffer_status`, all seven header-map calls,
//! `proxy_get_property`, `proxy_set_property`, `proxy_get_shared_data`,
//! `proxy_set_shared_data` (in-memory, per plugin), `proxy_continue_stream`,
//! `proxy_close_stream`, `proxy_send_local_response`,
//! `proxy_set_effective_context`, `proxy_done` (always NotFound),
//! `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`,
//! `proxy_get_metric`; and from `wasi_snapshot_preview1`: `fd_write` (logs),
//! `clock_time_get`, `random_get` (deterministic), `environ_sizes_get` and
//! `environ_get` ([`Options::environment`], as Envoy's
//! `vm_config.environment_variables`), `args_*` (empty), `sched_yield`,
//! `proc_exit` (an error).
//!
//! Not supported — calling them fails the exchange with
//! [`HostError::Unsupported`] naming the call: `proxy_http_call`, the gRPC
//! calls, `proxy_get_status`, the shared-queue calls,
//! `proxy_call_foreign_function`, and any other WASI function. A module
//! importing anything else (e.g. ABI 0.1.0's `proxy_continue_request`) is
//! rejected by [`Engine::new`] with [`HostError::UnknownImport`].
//!
//! Header maps follow Envoy: names are case-insensitive and stored
//! lowercased; `get` returns the first value; `replace` overwrites the first
//! entry and drops the others (adds if absent); `add` appends a new entry
//! (Envoy merges some well-known headers into one comma-separated entry
//! instead — this host never does); `remove` removes all entries. Maps:
//! request headers (0), request trailers (1, empty), response headers (2)
//! and trailers (3, empty) — the response maps only from
//! `proxy_on_response_headers` on; other maps give `BadArgument`.
//!
//! # Properties
//!
//! Paths are NUL-separated segments (as the Rust SDK sends them). Served:
//! `source.address`, `destination.address` (`"ip:port"`, IPv6 as
//! `"[::1]:443"`), `source.port`, `destination.port` (i64),
//! `connection.tls_version` (`"TLSv1.3"` when [`HttpRequest::tls`], NotFound
//! otherwise), `connection.mtls` (false), `connection.id` (u64),
//! `request.protocol`, `request.method`, `request.path`, `request.url_path`,
//! `request.query`, `request.host`, `request.scheme`, `request.useragent`,
//! `request.referer`, `request.id`, `request.time` (i64 ns),
//! `request.headers` (serialized map) and `request.headers.<name>` (values
//! joined by `,`), `response.code`, `response.headers[.<name>]`,
//! `plugin_name`, `plugin_root_id`, `plugin_vm_id`. Integers are 8-byte
//! little-endian, booleans one byte, strings their bytes. A property set
//! with `proxy_set_property` is read back by the same path. Everything else
//! is NotFound.
//!
//! # What it is not
//!
//! Not an Envoy: no routing, no upstream, no body streaming (one request
//! body chunk, no response body), no trailers, no timers firing on their
//! own, no HTTP or gRPC callouts. Errors are strict where Envoy would be
//! vague: bad guest pointers, malformed serialized maps and unsupported
//! calls trap and name the call. A runaway filter is stopped by fuel
//! ([`Options::fuel_limit`], per `configure` and per exchange) and reported
//! as [`HostError::OutOfFuel`]. After any trap the instance is discarded and
//! the next [`Plugin::play`] starts a fresh one with the same configuration
//! (metrics, shared data and root logs carry over; see [`Plugin::restarts`]).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bench;
mod cache;
mod error;
mod headers;
mod hostcalls;
mod properties;
mod state;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{
    ExternType, Func, Instance, InstancePre, Linker, Module, Store, Trap, Val, ValType,
};

pub use cache::{CacheOutcome, ModuleCache};
pub use error::{ConfigureError, HostError};
pub use headers::Headers;

use state::{Carried, ExchangeState, HostState, Stage};

/// Context id of the root (plugin) context; HTTP contexts count up from 2.
pub(crate) const ROOT_ID: u32 = 1;

/// Log levels of `proxy_log` (`proxy_log_level_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// 0
    Trace = 0,
    /// 1
    Debug = 1,
    /// 2
    Info = 2,
    /// 3
    Warn = 3,
    /// 4
    Error = 4,
    /// 5 (the Rust SDK logs panics at this level)
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_raw(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
        })
    }
}

/// A request as the filter sees it when Envoy received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The client's address (`source.address`).
    pub peer: SocketAddr,
    /// The listener's address (`destination.address`).
    pub local: SocketAddr,
    /// Whether the downstream connection is TLS (`connection.tls_version`).
    pub tls: bool,
    /// `request.protocol`: `"HTTP/1.0"`, `"HTTP/1.1"`, `"HTTP/2"`, `"HTTP/3"`.
    pub protocol: String,
    /// Headers in order, pseudo-headers (`:method`, `:authority`, `:path`,
    /// `:scheme`) first. Names are lowercased on the way in.
    pub headers: Headers,
    /// The request body, delivered in one `proxy_on_request_body` call.
    pub body: Option<Vec<u8>>,
}

/// What the upstream answers if the request gets there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Becomes the `:status` pseudo-header.
    pub status: u16,
    /// Response headers (without `:status`).
    pub headers: Headers,
}

/// Where a local reply was sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `proxy_on_request_headers`
    RequestHeaders,
    /// `proxy_on_request_body`
    RequestBody,
    /// `proxy_on_response_headers`
    ResponseHeaders,
}

/// A response sent by the filter with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Headers the filter added (names lowercased), in order.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
    /// Envoy's "response code details" (empty when the SDK sends none).
    pub details: String,
    /// gRPC status, `None` when the filter passed -1.
    pub grpc_status: Option<i32>,
    /// The callback that sent it.
    pub phase: Phase,
}

/// Everything one exchange did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The filter answered by itself.
    pub local_reply: Option<LocalReply>,
    /// The request headers the upstream receives (pseudo-headers included);
    /// `None` if the request never went upstream.
    pub upstream_request_headers: Option<Headers>,
    /// The request body the upstream receives, if the request had one and
    /// went upstream.
    pub upstream_request_body: Option<Vec<u8>>,
    /// The final response headers to the client, without `:status`.
    pub response_headers: Headers,
    /// The final status to the client (0 when the stream was reset).
    pub status: u16,
    /// `proxy_set_property` calls: path (segments joined with `.`), value.
    pub properties_set: Vec<(String, Vec<u8>)>,
    /// `proxy_get_property` calls, in order (segments joined with `.`),
    /// including the ones that were not found.
    pub properties_read: Vec<String>,
    /// What the filter logged during the exchange (at or above
    /// [`Options::log_level`]).
    pub logs: Vec<(LogLevel, String)>,
    /// Host calls made during the exchange (`calls.len()`).
    pub host_calls: u64,
    /// The proxy-wasm and WASI functions the exchange called, in order
    /// (`proxy_get_property`, ...).
    pub calls: Vec<&'static str>,
    /// Fuel (roughly, wasm instructions) the exchange consumed.
    pub fuel_used: u64,
    /// The filter called `proxy_close_stream`: Envoy resets the stream.
    pub reset: bool,
}

/// Kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down, or is set.
    Gauge,
    /// A list of recorded samples.
    Histogram,
}

/// A metric the filter defined with `proxy_define_metric`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// Name as the filter gave it.
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Current value of a counter or gauge (0 for histograms).
    pub value: i64,
    /// Recorded samples of a histogram (empty otherwise).
    pub samples: Vec<u64>,
}

/// Extra fuel `configure` gets per byte of plugin configuration: generous
/// for any policy (1 MiB of rules needs a few 10^9), still bounded.
pub const CONFIGURE_FUEL_PER_BYTE: u64 = 100_000;

/// Host settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Fuel for each exchange (≈ wasm instructions), and the base of the
    /// budget for `configure`, which also gets
    /// [`CONFIGURE_FUEL_PER_BYTE`] per byte of configuration (compiling a
    /// large policy is real work, and Envoy sets no limit on it).
    /// Default 1 000 000 000, ~1 s of a runaway loop.
    pub fuel_limit: u64,
    /// Maximum linear memory, bytes. Default 256 MiB.
    pub memory_limit: usize,
    /// Host log level: returned by `proxy_get_log_level`; lower levels are
    /// dropped. Default `Trace` (keep everything).
    pub log_level: LogLevel,
    /// `plugin_name` property. Default `"portcullis"`.
    pub plugin_name: String,
    /// `plugin_root_id` property. Default empty.
    pub plugin_root_id: String,
    /// `plugin_vm_id` property. Default empty.
    pub plugin_vm_id: String,
    /// The VM's environment, as Envoy's `vm_config.environment_variables`
    /// gives it (WASI `environ_get`). Default empty.
    pub environment: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fuel_limit: 1_000_000_000,
            memory_limit: 256 << 20,
            log_level: LogLevel::Trace,
            plugin_name: "portcullis".to_string(),
            plugin_root_id: String::new(),
            plugin_vm_id: String::new(),
            environment: Vec::new(),
        }
    }
}

/// Callbacks the host may call: name, number of i32 params, returns i32.
const CALLBACKS: &[(&str, usize, bool)] = &[
    ("_initialize", 0, false),
    ("_start", 0, false),
    ("main", 2, true),
    ("proxy_on_context_create", 2, false),
    ("proxy_on_vm_start", 2, true),
    ("proxy_on_configure", 2, true),
    ("proxy_on_tick", 1, false),
    ("proxy_on_request_headers", 3, true),
    ("proxy_on_request_body", 3, true),
    ("proxy_on_response_headers", 3, true),
    ("proxy_on_log", 1, false),
    ("proxy_on_done", 1, true),
    ("proxy_on_delete", 1, false),
];

/// A compiled filter. Cheap to clone; configure it as many times as needed.
#[derive(Clone)]
pub struct Engine {
    module: Module,
    pre: InstancePre<HostState>,
    options: Options,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Compiles `wasm` with the default [`Options`].
    pub fn new(wasm: &[u8]) -> Result<Engine, HostError> {
        Engine::with_options(wasm, Options::default())
    }

    /// Compiles `wasm` and checks its imports and exports.
    pub fn with_options(wasm: &[u8], options: Options) -> Result<Engine, HostError> {
        let engine = wasmtime_engine()?;
        let module =
            Module::new(&engine, wasm).map_err(|e| HostError::Compile(format!("{e:#}")))?;
        Engine::from_module(module, options)
    }

    /// As [`Engine::with_options`], but takes the compiled module from
    /// `cache` when it holds this module compiled by this wasmtime with this
    /// configuration, and stores it there otherwise (see [`ModuleCache`]).
    /// The outcome says which; a cache problem never fails the load.
    pub fn with_cache(
        wasm: &[u8],
        options: Options,
        cache: &ModuleCache,
    ) -> Result<(Engine, CacheOutcome), HostError> {
        let engine = wasmtime_engine()?;
        let (module, outcome) = cache.load(&engine, wasm)?;
        Ok((Engine::from_module(module, options)?, outcome))
    }

    /// Checks a compiled module's exports and imports and links it.
    fn from_module(module: Module, options: Options) -> Result<Engine, HostError> {
        check_exports(&module)?;
        let engine = module.engine().clone();

        let mut linker = Linker::new(&engine);
        hostcalls::define(&mut linker).map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        for import in module.imports() {
            let (m, n) = (import.module(), import.name());
            let known = match m {
                "env" => hostcalls::ENV_CALLS.contains(&n),
                "wasi_snapshot_preview1" => {
                    if !hostcalls::WASI_CALLS.contains(&n) {
                        if let ExternType::Func(ty) = import.ty() {
                            hostcalls::define_unsupported(&mut linker, m, n, ty)
                                .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
                        }
                    }
                    true
                }
                _ => false,
            };
            if !known {
                return Err(HostError::UnknownImport {
                    module: m.to_string(),
                    name: n.to_string(),
                });
            }
        }
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        Ok(Engine {
            module,
            pre,
            options,
        })
    }

    /// The options plugins get.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Instantiates the filter and configures it with `plugin_config`
    /// (see the crate docs for the exact sequence).
    pub fn configure(&self, plugin_config: &[u8]) -> Result<Plugin, ConfigureError> {
        self.start(plugin_config.to_vec(), Carried::default(), 0)
    }

    /// The same compiled filter with another VM environment (what Envoy's
    /// `vm_config.environment_variables` sets); cheap, nothing is compiled.
    pub fn with_environment(&self, environment: Vec<(String, String)>) -> Engine {
        let mut e = self.clone();
        e.options.environment = environment;
        e
    }

    fn start(
        &self,
        config: Vec<u8>,
        carried: Carried,
        restarts: u32,
    ) -> Result<Plugin, ConfigureError> {
        let engine = self.module.engine();
        let state = HostState::new(self.options.clone(), config.clone(), carried);
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        let fuel = self.options.fuel_limit;
        let configure_fuel = fuel.saturating_add(
            u64::try_from(config.len())
                .unwrap_or(u64::MAX)
                .saturating_mul(CONFIGURE_FUEL_PER_BYTE),
        );
        store
            .set_fuel(configure_fuel)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| HostError::NotProxyWasm("no exported memory".into()))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .map_err(|_| {
                HostError::NotProxyWasm("no proxy_on_memory_allocate or malloc (i32) -> i32".into())
            })?;
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = Some(alloc);
        let callbacks = CALLBACKS
            .iter()
            .filter_map(|(name, _, _)| instance.get_func(&mut store, name).map(|f| (*name, f)))
            .collect();
        let mut plugin = Plugin {
            engine: self.clone(),
            store,
            instance,
            callbacks,
            config,
            next_id: ROOT_ID + 1,
            fuel_limit: fuel,
            poisoned: false,
            restarts,
            last_failure_logs: Vec::new(),
            host_reply: false,
            configure_fuel: 0,
        };
        plugin.boot()?;
        let left = plugin.store.get_fuel().unwrap_or(0);
        plugin.configure_fuel = configure_fuel.saturating_sub(left);
        Ok(plugin)
    }
}

/// The wasmtime engine every module is compiled for (fuel metering on).
fn wasmtime_engine() -> Result<wasmtime::Engine, HostError> {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    wasmtime::Engine::new(&config).map_err(|e| HostError::Compile(format!("{e:#}")))
}

fn check_exports(module: &Module) -> Result<(), HostError> {
    let exports: HashMap<&str, ExternType> = module.exports().map(|e| (e.name(), e.ty())).collect();
    if !exports.contains_key("proxy_abi_version_0_2_1")
        && !exports.contains_key("proxy_abi_version_0_2_0")
    {
        return Err(HostError::NotProxyWasm(
            "no proxy_abi_version_0_2_1 (or 0_2_0) export: not built with a 0.2.x SDK".into(),
        ));
    }
    if !matches!(exports.get("memory"), Some(ExternType::Memory(_))) {
        return Err(HostError::NotProxyWasm("no exported memory".into()));
    }
    let i32_to_i32 = |name: &str| match exports.get(name) {
        Some(ExternType::Func(t)) => {
            t.params().len() == 1
                && t.params().all(|p| matches!(p, ValType::I32))
                && t.results().len() == 1
                && t.results().all(|p| matches!(p, ValType::I32))
        }
        _ => false,
    };
    if !i32_to_i32("proxy_on_memory_allocate") && !i32_to_i32("malloc") {
        return Err(HostError::NotProxyWasm(
            "no proxy_on_memory_allocate or malloc of type (i32) -> i32".into(),
        ));
    }
    for (name, params, returns) in CALLBACKS {
        let Some(ty) = exports.get(*name) else {
            continue;
        };
        let ok = match ty {
            ExternType::Func(t) => {
                t.params().len() == *params
                    && t.params().all(|p| matches!(p, ValType::I32))
                    && t.results().len() == usize::from(*returns)
                    && t.results().all(|p| matches!(p, ValType::I32))
            }
            _ => false,
        };
        if !ok {
            return Err(HostError::NotProxyWasm(format!(
                "export {name} does not have the ABI 0.2.1 type ({params} i32 params{})",
                if *returns {
                    ", i32 result"
                } else {
                    ", no result"
                }
            )));
        }
    }
    Ok(())
}

/// A configured filter instance: plays exchanges one after the other.
pub struct Plugin {
    engine: Engine,
    store: Store<HostState>,
    #[allow(dead_code)]
    instance: Instance,
    callbacks: HashMap<&'static str, Func>,
    config: Vec<u8>,
    next_id: u32,
    fuel_limit: u64,
    poisoned: bool,
    restarts: u32,
    last_failure_logs: Vec<(LogLevel, String)>,
    /// Set by [`Plugin::play_host_reply`]: the request hooks are skipped.
    host_reply: bool,
    /// Fuel the start-up and `proxy_on_configure` used.
    configure_fuel: u64,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("config_len", &self.config.len())
            .field("fuel_limit", &self.fuel_limit)
            .field("poisoned", &self.poisoned)
            .field("restarts", &self.restarts)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Start-up: initialize, root context, VM start, configure.
    fn boot(&mut self) -> Result<(), ConfigureError> {
        if self.callbacks.contains_key("_initialize") {
            self.call("_initialize", &[])?;
            if self.callbacks.contains_key("main") {
                self.call("main", &[0, 0])?;
            }
        } else if self.callbacks.contains_key("_start") {
            self.call("_start", &[])?;
        }
        let root = ROOT_ID as i32;
        self.call("proxy_on_context_create", &[root, 0])?;
        self.store.data_mut().stage = Stage::VmStart;
        if self.call("proxy_on_vm_start", &[root, 0])? == Some(0) {
            return Err(ConfigureError::VmStartRejected {
                logs: self.store.data().carried.root_logs.clone(),
            });
        }
        self.store.data_mut().stage = Stage::Configure;
        let size = i32::try_from(self.config.len()).unwrap_or(i32::MAX);
        let ok = self.call("proxy_on_configure", &[root, size])?;
        self.store.data_mut().stage = Stage::Root;
        if ok == Some(0) {
            return Err(ConfigureError::Rejected {
                logs: self.store.data().carried.root_logs.clone(),
            });
        }
        Ok(())
    }

    /// Calls an exported callback if the module has it. `Ok(None)` when it
    /// is absent or returns nothing.
    fn call(&mut self, name: &'static str, args: &[i32]) -> Result<Option<i32>, HostError> {
        let Some(func) = self.callbacks.get(name).copied() else {
            return Ok(None);
        };
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = vec![Val::I32(0); func.ty(&self.store).results().len()];
        {
            let st = self.store.data_mut();
            st.error = None;
            st.note = None;
            st.last_critical = None;
        }
        match func.call(&mut self.store, &params, &mut results) {
            Ok(()) => Ok(results.first().and_then(Val::i32)),
            Err(e) => {
                self.poisoned = true;
                Err(self.trap_error(name, e))
            }
        }
    }

    fn trap_error(&mut self, callback: &str, e: wasmtime::Error) -> HostError {
        let st = self.store.data_mut();
        if let Some(err) = st.error.take() {
            return err;
        }
        let trap = e.downcast_ref::<Trap>().copied();
        if trap == Some(Trap::OutOfFuel) {
            return HostError::OutOfFuel {
                callback: callback.to_string(),
                limit: self.fuel_limit,
            };
        }
        HostError::Trap {
            callback: callback.to_string(),
            message: match trap {
                Some(t) => t.to_string(),
                None => format!("{e}"),
            },
            panic: st.last_critical.take(),
            hint: st.note.take(),
        }
    }

    /// Plays one exchange. See the crate docs for the sequence.
    pub fn play(
        &mut self,
        req: &HttpRequest,
        upstream: &HttpResponse,
    ) -> Result<Exchange, HostError> {
        if !(100..=599).contains(&upstream.status) {
            return Err(HostError::BadExchange(format!(
                "upstream status {} is outside 100..=599",
                upstream.status
            )));
        }
        if self.poisoned {
            self.restart()?;
        }
        let id = self.next_id;
        self.next_id = match self.next_id.wrapping_add(1) {
            n if n <= ROOT_ID => ROOT_ID + 1,
            n => n,
        };
        let now = self.store.data().now_nanos();
        {
            let st = self.store.data_mut();
            st.ex = Some(ExchangeState::new(id, req, now));
            st.effective = id;
        }
        self.set_fuel()?;
        let result = self.run(id, req, upstream);
        let fuel_left = self.store.get_fuel().unwrap_or(0);
        let st = self.store.data_mut();
        let ex = st.ex.take();
        st.effective = st.root_id;
        st.stage = Stage::Root;
        self.last_failure_logs.clear();
        let (mut exchange, ex) = match (result, ex) {
            (Ok(x), Some(ex)) => (x, ex),
            (Err(e), ex) => {
                self.last_failure_logs = ex.map(|ex| ex.logs).unwrap_or_default();
                return Err(e);
            }
            (Ok(_), None) => {
                return Err(HostError::Misuse {
                    call: "play".into(),
                    detail: "exchange state vanished".into(),
                })
            }
        };
        exchange.properties_set = ex.properties_set;
        exchange.properties_read = ex.properties_read;
        exchange.logs = ex.logs;
        // Every host function that returns records its name; one that traps
        // ends the exchange with an error instead.
        exchange.host_calls = ex.calls.len() as u64;
        exchange.calls = ex.calls;
        exchange.fuel_used = self.fuel_limit.saturating_sub(fuel_left);
        Ok(exchange)
    }

    /// Plays a stream the host answers itself after the filter chain exists
    /// but before the filter's request hooks run (as Envoy does for some of
    /// its own replies): the request hooks are not called, and `reply` goes
    /// through `proxy_on_response_headers` as the response.
    pub fn play_host_reply(
        &mut self,
        req: &HttpRequest,
        reply: &HttpResponse,
    ) -> Result<Exchange, HostError> {
        self.host_reply = true;
        let r = self.play(req, reply);
        self.host_reply = false;
        r
    }

    fn set_fuel(&mut self) -> Result<(), HostError> {
        let fuel = self.fuel_limit;
        self.store
            .set_fuel(fuel)
            .map_err(|e| HostError::Instantiate(format!("{e:#}")))
    }

    // `play` installs the exchange state before `run` and takes it back
    // after; no host call can remove it, so it is always there in between.
    #[allow(clippy::expect_used)]
    fn ex(&mut self) -> &mut ExchangeState {
        self.store
            .data_mut()
            .ex
            .as_mut()
            .expect("exchange state present during play")
    }

    fn stage(&mut self, stage: Stage) {
        let st = self.store.data_mut();
        st.stage = stage;
        if let Some(ex) = st.ex.as_mut() {
            ex.continued = false;
        }
    }

    /// Runs the callbacks; returns the exchange without the recorded lists.
    fn run(
        &mut self,
        id: u32,
        req: &HttpRequest,
        upstream: &HttpResponse,
    ) -> Result<Exchange, HostError> {
        let ctx = id as i32;
        let mut out = Exchange {
            local_reply: None,
            upstream_request_headers: None,
            upstream_request_body: None,
            response_headers: Vec::new(),
            status: 0,
            properties_set: Vec::new(),
            properties_read: Vec::new(),
            logs: Vec::new(),
            host_calls: 0,
            calls: Vec::new(),
            fuel_used: 0,
            reset: false,
        };
        self.stage(Stage::Start);
        self.call("proxy_on_context_create", &[ctx, ROOT_ID as i32])?;

        let outcome = self.run_phases(ctx, req, upstream, &mut out);
        if let Err(e) = &outcome {
            if self.poisoned {
                // The instance trapped: nothing more can run in it.
                return Err(e.clone());
            }
        }
        // proxy_on_log sees the final response.
        self.stage(Stage::Log);
        self.call("proxy_on_log", &[ctx])?;
        self.stage(Stage::Done);
        self.call("proxy_on_done", &[ctx])?;
        self.call("proxy_on_delete", &[ctx])?;
        outcome.map(|()| out)
    }

    fn run_phases(
        &mut self,
        ctx: i32,
        req: &HttpRequest,
        upstream: &HttpResponse,
        out: &mut Exchange,
    ) -> Result<(), HostError> {
        if !self.host_reply {
            self.request_phases(ctx, req, out)?;
            if out.local_reply.is_some() || out.reset {
                return Ok(());
            }
        }
        self.response_phases(ctx, upstream, out)
    }

    /// Request headers and body. Leaves `out.local_reply` / `out.reset` set
    /// when the filter stopped the stream.
    fn request_phases(
        &mut self,
        ctx: i32,
        req: &HttpRequest,
        out: &mut Exchange,
    ) -> Result<(), HostError> {
        const PAUSE: Option<i32> = Some(1);
        // Request headers.
        self.stage(Stage::RequestHeaders);
        let n = len_i32(self.ex().req_headers.len());
        let eos = i32::from(req.body.is_none());
        let action = self.call("proxy_on_request_headers", &[ctx, n, eos])?;
        if self.stopped(out) {
            return Ok(());
        }
        let forwarded = action != PAUSE || self.ex().continued;
        if forwarded {
            out.upstream_request_headers = Some(self.ex().req_headers.pairs().clone());
        } else if req.body.is_none() {
            return Err(HostError::Stalled {
                callback: "proxy_on_request_headers".into(),
            });
        }

        // Request body, in one chunk.
        if let Some(body) = &req.body {
            self.stage(Stage::RequestBody);
            self.ex().body = Some(body.clone());
            let action = self.call("proxy_on_request_body", &[ctx, len_i32(body.len()), 1])?;
            let body = self.ex().body.take();
            if self.stopped(out) {
                return Ok(());
            }
            if action == PAUSE && !self.ex().continued {
                return Err(HostError::Stalled {
                    callback: "proxy_on_request_body".into(),
                });
            }
            if !forwarded {
                out.upstream_request_headers = Some(self.ex().req_headers.pairs().clone());
            }
            out.upstream_request_body = body;
        }
        Ok(())
    }

    /// Response headers.
    fn response_phases(
        &mut self,
        ctx: i32,
        upstream: &HttpResponse,
        out: &mut Exchange,
    ) -> Result<(), HostError> {
        const PAUSE: Option<i32> = Some(1);
        self.stage(Stage::ResponseHeaders);
        let mut map = headers::HeaderMap::default();
        map.add(b":status", upstream.status.to_string().as_bytes());
        for (k, v) in &upstream.headers {
            map.add(k, v);
        }
        let n = len_i32(map.len());
        self.ex().resp_headers = Some(map);
        let action = self.call("proxy_on_response_headers", &[ctx, n, 1])?;
        if self.stopped(out) {
            return Ok(());
        }
        if action == PAUSE && !self.ex().continued {
            return Err(HostError::Stalled {
                callback: "proxy_on_response_headers".into(),
            });
        }
        let map = self.ex().resp_headers.clone().unwrap_or_default();
        out.status = std::str::from_utf8(map.get(b":status").unwrap_or_default())
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..=999).contains(s))
            .ok_or_else(|| HostError::Misuse {
                call: "proxy_on_response_headers".into(),
                detail: "the filter left the response without a valid :status".into(),
            })?;
        out.response_headers = state::without_status(&map);
        Ok(())
    }

    /// After a callback: did it end the exchange (local reply or reset)?
    fn stopped(&mut self, out: &mut Exchange) -> bool {
        let ex = self.ex();
        if ex.reset {
            out.reset = true;
            out.status = 0;
            out.response_headers.clear();
            return true;
        }
        let Some(reply) = ex.local_reply.clone() else {
            return false;
        };
        // proxy_on_log sees the local reply as the response.
        let mut map = headers::HeaderMap::default();
        map.add(b":status", reply.status.to_string().as_bytes());
        for (k, v) in &reply.headers {
            map.add(k, v);
        }
        ex.resp_headers = Some(map);
        out.status = reply.status;
        out.response_headers = reply.headers.clone();
        out.local_reply = Some(reply);
        true
    }

    fn restart(&mut self) -> Result<(), HostError> {
        let carried = std::mem::take(&mut self.store.data_mut().carried);
        let fuel = self.fuel_limit;
        let clock = self.store.data().clock;
        let fresh = self
            .engine
            .start(self.config.clone(), carried, self.restarts + 1)
            .map_err(|e| {
                HostError::Instantiate(format!("restarting the filter after a trap failed: {e}"))
            })?;
        *self = fresh;
        self.fuel_limit = fuel;
        self.store.data_mut().clock = clock;
        Ok(())
    }

    /// Calls `proxy_on_tick` on the root context once (this host never
    /// fires timers by itself).
    pub fn tick(&mut self) -> Result<(), HostError> {
        if self.poisoned {
            self.restart()?;
        }
        self.set_fuel()?;
        self.store.data_mut().stage = Stage::Root;
        self.call("proxy_on_tick", &[ROOT_ID as i32]).map(|_| ())
    }

    /// Calls `proxy_on_done` on the root context, as Envoy does when it
    /// drains the plugin (its configuration is removed or replaced); returns
    /// the filter's answer (`false`: it wants to finish asynchronously with
    /// `proxy_done`, which this host never waits for). The plugin stays
    /// usable afterwards, so a test can still play and read metrics.
    pub fn done(&mut self) -> Result<bool, HostError> {
        if self.poisoned {
            self.restart()?;
        }
        self.set_fuel()?;
        self.store.data_mut().stage = Stage::Root;
        self.call("proxy_on_done", &[ROOT_ID as i32])
            .map(|r| r.is_none_or(|v| v != 0))
    }

    /// The period the filter asked for with
    /// `proxy_set_tick_period_milliseconds`, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        let ms = self.store.data().tick_ms;
        (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
    }

    /// The guest's linear memory now, in bytes. Wasm memory only grows, so
    /// after `configure` this is the configuration's high-water mark, which
    /// stays resident in every Envoy worker's VM (Envoy reports the same
    /// figure as the VM's memory size).
    pub fn memory_size(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    /// Fuel (about one unit per wasm instruction) that starting the VM and
    /// configuring it used: the guest's cost of loading the policy, a count
    /// that does not depend on the machine's load.
    pub fn configure_fuel_used(&self) -> u64 {
        self.configure_fuel
    }

    /// Root-context log lines (start-up, configuration, ticks), in order.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.store.data().carried.root_logs
    }

    /// What the filter logged during the last exchange, when [`Plugin::play`]
    /// returned an error (empty after a successful exchange, whose logs are
    /// in [`Exchange::logs`]).
    pub fn last_failure_logs(&self) -> &[(LogLevel, String)] {
        &self.last_failure_logs
    }

    /// Metrics the filter defined, in definition order.
    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().carried.metrics
    }

    /// The metric named `name`.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics().iter().find(|m| m.name == name)
    }

    /// A value the filter stored with `proxy_set_shared_data`.
    pub fn shared_data(&self, key: &[u8]) -> Option<&[u8]> {
        self.store
            .data()
            .carried
            .shared
            .get(key)
            .map(|(v, _)| v.as_slice())
    }

    /// Fuel budget of each following exchange.
    pub fn set_fuel_limit(&mut self, fuel: u64) {
        self.fuel_limit = fuel;
    }

    /// Freezes the clock the filter sees (`proxy_get_current_time_nanoseconds`,
    /// `request.time`); `None` goes back to the system clock.
    pub fn set_clock(&mut self, time: Option<SystemTime>) {
        self.store.data_mut().clock = time.map(|t| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        });
    }

    /// How many times the instance was replaced after a trap.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The plugin configuration this plugin was configured with.
    pub fn config(&self) -> &[u8] {
        &self.config
    }
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn engine_is_send_sync_and_plugin_is_send() {
        send_sync::<Engine>();
        send::<Plugin>();
        send_sync::<HostError>();
        send_sync::<ConfigureError>();
    }

    #[test]
    fn errors_display_one_line_naming_the_call() {
        let e = HostError::Unsupported {
            call: "proxy_http_call".into(),
        };
        assert_eq!(
            e.to_string(),
            "the filter called proxy_http_call, which Portcullis's host does not support"
        );
        let e = ConfigureError::Rejected {
            logs: vec![
                (LogLevel::Info, "configuring".into()),
                (LogLevel::Error, "rule 1: bad".into()),
                (LogLevel::Error, "rule 2: worse".into()),
            ],
        };
        assert_eq!(
            e.to_string(),
            "the filter rejected its configuration: [error] rule 1: bad; [error] rule 2: worse"
        );
    }
}
