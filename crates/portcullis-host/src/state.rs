//! Per-instance host state: what the host calls read and write.

use std::collections::HashMap;
use std::net::SocketAddr;

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::headers::{HeaderMap, Headers};
use crate::{HostError, LocalReply, LogLevel, Metric, Options};

/// Where the host is in the plugin's life; decides what is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `_initialize`/`_start`, `proxy_on_context_create` of the root.
    Start,
    VmStart,
    Configure,
    /// Root context outside configuration (`proxy_on_tick`).
    Root,
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    /// `proxy_on_log` (maps readable).
    Log,
    /// `proxy_on_done` / `proxy_on_delete`.
    Done,
}

/// Everything one HTTP exchange reads or writes.
#[derive(Debug)]
pub(crate) struct ExchangeState {
    pub id: u32,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    pub protocol: String,
    pub start_nanos: u64,
    pub req_headers: HeaderMap,
    pub req_trailers: HeaderMap,
    /// `Some` once the response phase started (or a local reply was sent).
    pub resp_headers: Option<HeaderMap>,
    pub resp_trailers: HeaderMap,
    /// The request body, while `proxy_on_request_body` may see it.
    pub body: Option<Vec<u8>>,
    pub local_reply: Option<LocalReply>,
    /// `proxy_continue_stream` was called for the current direction.
    pub continued: bool,
    /// `proxy_close_stream` was called: Envoy resets the stream.
    pub reset: bool,
    /// Raw (NUL-separated) path -> value, set by the filter.
    pub props_set: Vec<(Vec<u8>, Vec<u8>)>,
    pub properties_set: Vec<(String, Vec<u8>)>,
    pub properties_read: Vec<String>,
    pub logs: Vec<(LogLevel, String)>,
    /// The host functions called, in order.
    pub calls: Vec<&'static str>,
}

impl ExchangeState {
    pub(crate) fn new(id: u32, req: &crate::HttpRequest, start_nanos: u64) -> Self {
        ExchangeState {
            id,
            peer: req.peer,
            local: req.local,
            tls: req.tls,
            protocol: req.protocol.clone(),
            start_nanos,
            req_headers: HeaderMap::from_pairs(
                req.headers
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.as_slice())),
            ),
            req_trailers: HeaderMap::default(),
            resp_headers: None,
            resp_trailers: HeaderMap::default(),
            body: None,
            local_reply: None,
            continued: false,
            reset: false,
            props_set: Vec::new(),
            properties_set: Vec::new(),
            properties_read: Vec::new(),
            logs: Vec::new(),
            calls: Vec::new(),
        }
    }
}

/// State kept across exchanges and carried over when a trapped instance is
/// replaced (Envoy keeps stats and shared data outside the VM too).
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub metrics: Vec<Metric>,
    pub shared: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    pub root_logs: Vec<(LogLevel, String)>,
}

pub(crate) struct HostState {
    pub limits: StoreLimits,
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    pub opts: Options,
    pub stage: Stage,
    pub root_id: u32,
    pub effective: u32,
    pub plugin_config: Vec<u8>,
    pub carried: Carried,
    pub ex: Option<ExchangeState>,
    pub root_props: Vec<(Vec<u8>, Vec<u8>)>,
    pub tick_ms: u32,
    pub clock: Option<u64>,
    /// The error that made a host call trap (reported instead of the trap).
    pub error: Option<HostError>,
    /// Why the host last returned a non-OK status (shown with traps).
    pub note: Option<String>,
    pub last_critical: Option<String>,
    pub rng: u64,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("stage", &self.stage)
            .field("effective", &self.effective)
            .finish_non_exhaustive()
    }
}

impl HostState {
    pub(crate) fn new(opts: Options, plugin_config: Vec<u8>, carried: Carried) -> Self {
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(opts.memory_limit)
            .instances(1)
            .build();
        HostState {
            limits,
            memory: None,
            alloc: None,
            opts,
            stage: Stage::Start,
            root_id: crate::ROOT_ID,
            effective: crate::ROOT_ID,
            plugin_config,
            carried,
            ex: None,
            root_props: Vec::new(),
            tick_ms: 0,
            clock: None,
            error: None,
            note: None,
            last_critical: None,
            rng: 0x853c_49e6_748f_ea9b,
        }
    }

    /// The current HTTP exchange, if an HTTP context is the effective one.
    pub(crate) fn http(&self) -> Option<&ExchangeState> {
        self.ex.as_ref().filter(|ex| ex.id == self.effective)
    }

    pub(crate) fn http_mut(&mut self) -> Option<&mut ExchangeState> {
        let effective = self.effective;
        self.ex.as_mut().filter(|ex| ex.id == effective)
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if level == LogLevel::Critical {
            self.last_critical = Some(message.clone());
        }
        if level < self.opts.log_level {
            return;
        }
        match self.http_mut() {
            Some(ex) => ex.logs.push((level, message)),
            None => self.carried.root_logs.push((level, message)),
        }
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.clock.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        })
    }

    /// Deterministic pseudo-random bytes (xorshift64*), for `random_get`:
    /// tests must replay identically.
    pub(crate) fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Header pairs of a response map without `:status`.
pub(crate) fn without_status(map: &HeaderMap) -> Headers {
    map.pairs()
        .iter()
        .filter(|(k, _)| k.as_slice() != b":status")
        .cloned()
        .collect()
}
