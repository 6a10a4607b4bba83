//! Errors returned by the host.

use std::fmt;

use crate::LogLevel;

/// Something went wrong loading, instantiating or running the filter.
///
/// Every variant names the host call or callback involved, so that a test
/// runner can print a useful one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The bytes are not a valid WebAssembly module, or cranelift failed.
    Compile(String),
    /// The module is valid WebAssembly but not a proxy-wasm 0.2.x filter
    /// (no ABI marker, no exported memory or allocator, wrong callback types).
    NotProxyWasm(String),
    /// The module imports a function this host does not provide at all
    /// (Envoy refuses to load such a module too).
    UnknownImport {
        /// Import module, e.g. `env`.
        module: String,
        /// Import name, e.g. `proxy_continue_request` (ABI 0.1.0).
        name: String,
    },
    /// Instantiation (linking, memory allocation, start function) failed.
    Instantiate(String),
    /// The filter trapped (a Rust panic becomes `unreachable` after the SDK
    /// logged the panic message at `Critical`).
    Trap {
        /// The callback that was running, e.g. `proxy_on_request_headers`.
        callback: String,
        /// wasmtime's description of the trap.
        message: String,
        /// The last `Critical` log line written during the callback: with the
        /// proxy-wasm Rust SDK this is the panic message.
        panic: Option<String>,
        /// Why the host last returned a non-OK status during the callback,
        /// if it did (the SDK panics on most unexpected statuses).
        hint: Option<String>,
    },
    /// The filter used up its fuel (instruction budget) before returning.
    OutOfFuel {
        /// The callback that was running.
        callback: String,
        /// The fuel budget of the exchange (or of `configure`).
        limit: u64,
    },
    /// The filter called a host function Portcullis does not implement
    /// (HTTP/gRPC callouts, shared queues, foreign functions, unknown WASI).
    Unsupported {
        /// The host call, e.g. `proxy_http_call`.
        call: String,
    },
    /// The filter called a host function wrongly: a pointer out of bounds,
    /// a malformed serialized map, a second local reply, ...
    Misuse {
        /// The host call, e.g. `proxy_get_header_map_value`.
        call: String,
        /// What was wrong.
        detail: String,
    },
    /// The filter paused the stream (returned `Pause`) and never resumed it:
    /// Envoy would hold the request until a timeout.
    Stalled {
        /// The callback that returned `Pause`.
        callback: String,
    },
    /// The exchange given to [`crate::Plugin::play`] is not one a proxy could
    /// see (e.g. an upstream status outside 100..=599): the caller's mistake,
    /// not the filter's.
    BadExchange(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Compile(m) => write!(f, "cannot compile the module: {m}"),
            HostError::NotProxyWasm(m) => write!(f, "not a proxy-wasm 0.2.x filter: {m}"),
            HostError::UnknownImport { module, name } => {
                write!(
                    f,
                    "the module imports {module}.{name}, which this host does not provide"
                )
            }
            HostError::Instantiate(m) => write!(f, "cannot instantiate the module: {m}"),
            HostError::Trap {
                callback,
                message,
                panic,
                hint,
            } => {
                write!(f, "the filter trapped in {callback}: {message}")?;
                if let Some(p) = panic {
                    write!(f, " (filter log: {p})")?;
                }
                if let Some(h) = hint {
                    write!(f, " (host: {h})")?;
                }
                Ok(())
            }
            HostError::OutOfFuel { callback, limit } => write!(
                f,
                "the filter ran out of fuel in {callback} (limit {limit} units): runaway loop?"
            ),
            HostError::Unsupported { call } => {
                write!(
                    f,
                    "the filter called {call}, which Portcullis's host does not support"
                )
            }
            HostError::Misuse { call, detail } => write!(f, "the filter misused {call}: {detail}"),
            HostError::BadExchange(m) => write!(f, "invalid exchange: {m}"),
            HostError::Stalled { callback } => write!(
                f,
                "the filter returned Pause from {callback} and never resumed the stream \
                 (Envoy would hold the request until a timeout)"
            ),
        }
    }
}

impl std::error::Error for HostError {}

/// `Engine::configure` failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigureError {
    /// `proxy_on_configure` returned false: the filter rejected its plugin
    /// configuration. `logs` holds everything it logged (it logs each policy
    /// error), in order.
    Rejected {
        /// Root-context log lines written before and during `proxy_on_configure`.
        logs: Vec<(LogLevel, String)>,
    },
    /// `proxy_on_vm_start` returned false.
    VmStartRejected {
        /// Root-context log lines written so far.
        logs: Vec<(LogLevel, String)>,
    },
    /// Instantiation or a callback failed (trap, fuel, misuse, ...).
    Host(HostError),
}

impl ConfigureError {
    /// The filter's log lines, when it returned false (empty for `Host`).
    pub fn logs(&self) -> &[(LogLevel, String)] {
        match self {
            ConfigureError::Rejected { logs } | ConfigureError::VmStartRejected { logs } => logs,
            ConfigureError::Host(_) => &[],
        }
    }
}

impl fmt::Display for ConfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, logs) = match self {
            ConfigureError::Host(e) => return write!(f, "{e}"),
            ConfigureError::Rejected { logs } => ("the filter rejected its configuration", logs),
            ConfigureError::VmStartRejected { logs } => ("proxy_on_vm_start returned false", logs),
        };
        f.write_str(what)?;
        // Show what the filter said, most severe lines being the useful ones.
        let mut first = true;
        for (level, line) in logs.iter().filter(|(l, _)| *l >= LogLevel::Warn) {
            f.write_str(if first { ": " } else { "; " })?;
            write!(f, "[{level}] {line}")?;
            first = false;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigureError::Host(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HostError> for ConfigureError {
    fn from(e: HostError) -> Self {
        ConfigureError::Host(e)
    }
}
