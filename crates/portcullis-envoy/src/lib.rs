//! Portcullis as a native Envoy module: `envoy.filters.http.dynamic_modules`
//! (Envoy 1.40, dynamic-module ABI v0.2.0), over the same core as the wasm
//! filter.
//!
//! Envoy loads `libportcullis_envoy.so` from `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`
//! (`dynamic_module_config: {name: portcullis_envoy}`), with `filter_name:
//! portcullis` and the policy JSON as a `google.protobuf.StringValue`
//! `filter_config`: the same document the wasm filter takes.
//!
//! - Load: `envoy_dynamic_module_on_program_init` checks the ABI version of
//!   the Envoy that loads it ([`version`]) and refuses another one unless
//!   `PORTCULLIS_ENVOY_ABI_OVERRIDE=1`; the module is linked with `-z now`,
//!   so a callback this Envoy lacks refuses it at load too.
//! - Configuration: the policy is parsed once per filter configuration;
//!   `value_from` reads Envoy's process environment. A rejected policy logs
//!   every problem (`portcullis: policy "<name>" rejected: <line>:<col>:
//!   <path>: <message>`) and refuses the configuration.
//! - Request headers: the core decides; a stopped request gets the core's
//!   hardened local reply through Envoy's `sendLocalReply`, with response
//!   code details `portcullis_<step>`; a forwarded one gets the request
//!   edits. Response headers: the response edits and HSTS of the decision's
//!   scope (Envoy's own local replies included, as for the wasm filter).
//! - The trace line is the filter state `portcullis.<policy>.trace` (access
//!   logs: `%FILTER_STATE(portcullis.<policy>.trace:PLAIN)%`), the JSON trace
//!   `portcullis.<policy>.trace_json` when asked for; counters are native
//!   Envoy counters with the wasm filter's names.
//! - Every hook catches panics and fails closed: a 500 local reply with
//!   details `portcullis_panic`, never a forwarded request.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
// The hooks are the module's entry points: Envoy calls them with the
// pointers the ABI describes (this module's own, and Envoy's for the
// duration of the hook); they cannot be `unsafe fn` for Envoy.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod abi;
mod counters;
mod filter;
mod host;
pub mod version;

use core::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi::{ConfigEnvoyPtr, ConfigModulePtr, EnvoyBuffer, FilterEnvoyPtr, FilterModulePtr};
use filter::{Config, Filter, Respond};
use host::Stream;

/// Runs `f`, turning a panic into `None` (logged).
fn guard<T>(hook: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            // Logging itself must not unwind out of the hook.
            let _ = catch_unwind(|| {
                host::log(
                    abi::LOG_ERROR,
                    &format!("portcullis: panic in {hook}; failing closed"),
                );
            });
            None
        }
    }
}

/// Loads the module: checks Envoy's ABI version.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    let ok = guard("program init", || {
        #[cfg(feature = "test-missing-callback")]
        // SAFETY: never reached: Envoy refuses to load this variant.
        unsafe {
            abi::envoy_dynamic_module_callback_portcullis_no_such_callback();
        }
        match version::check(abi::ABI_VERSION) {
            version::Check::Matched => true,
            version::Check::Mismatch(why) if version::overridden() => {
                host::log(
                    abi::LOG_WARN,
                    &format!(
                        "portcullis: {why}; loading anyway ({}=1)",
                        version::OVERRIDE_ENV
                    ),
                );
                true
            }
            version::Check::Mismatch(why) => {
                host::log(
                    abi::LOG_ERROR,
                    &format!(
                        "portcullis: refusing to load: {why} (set {}=1 in Envoy's environment to load anyway)",
                        version::OVERRIDE_ENV
                    ),
                );
                false
            }
        }
    });
    if ok == Some(true) {
        abi::ABI_VERSION_C.as_ptr().cast()
    } else {
        core::ptr::null()
    }
}

/// A new filter configuration: parses the policy.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> ConfigModulePtr {
    if cfg!(feature = "bench-empty") {
        return EMPTY.as_ptr().cast();
    }
    guard("config", || {
        // SAFETY: Envoy keeps the configuration bytes valid during the hook.
        let bytes = unsafe { config.bytes() };
        match Config::load(envoy, bytes) {
            Some(c) => Box::into_raw(Box::new(c)).cast_const().cast::<c_void>(),
            None => core::ptr::null(),
        }
    })
    .unwrap_or(core::ptr::null())
}

/// The bench-empty variant's configuration and streams (never dereferenced).
static EMPTY: [u8; 1] = [0];

/// A configuration is gone (after its last stream).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: ConfigModulePtr) {
    if config.is_null() || cfg!(feature = "bench-empty") {
        return;
    }
    // SAFETY: `config` came from `Box::into_raw` in config_new and Envoy
    // destroys it once.
    let _ = guard("config destroy", || unsafe {
        drop(Box::from_raw(config.cast::<Config>().cast_mut()));
    });
}

/// Per-route configuration is not supported: refused.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    let _ = guard("per-route config", || {
        host::log(
            abi::LOG_ERROR,
            "portcullis: per-route configuration is not supported; use one filter per policy",
        );
    });
    core::ptr::null()
}

/// Never called (no per-route configuration is ever accepted).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(_c: *const c_void) {}

/// A new stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: ConfigModulePtr,
    _envoy: FilterEnvoyPtr,
) -> FilterModulePtr {
    if cfg!(feature = "bench-empty") {
        return EMPTY.as_ptr().cast();
    }
    guard("stream", || {
        let f = Filter {
            config: config.cast::<Config>(),
            respond: Respond::Undecided,
        };
        Box::into_raw(Box::new(f)).cast_const().cast::<c_void>()
    })
    .unwrap_or(core::ptr::null())
}

/// The module's stream and its configuration.
///
/// # Safety
/// `f` must be a pointer from [`envoy_dynamic_module_on_http_filter_new`]
/// not yet destroyed (Envoy guarantees it in every stream hook).
unsafe fn stream<'a>(f: FilterModulePtr) -> Option<(&'a mut Filter, &'a Config)> {
    // SAFETY: as the caller promises; Envoy calls one hook of a stream at a time.
    let filter = unsafe { f.cast::<Filter>().cast_mut().as_mut() }?;
    // SAFETY: the configuration outlives its streams.
    let config = unsafe { filter.config.as_ref() }?;
    Some((filter, config))
}

/// Request headers: the decision.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    _end_of_stream: bool,
) -> u32 {
    if cfg!(feature = "bench-empty") {
        return abi::REQUEST_HEADERS_CONTINUE;
    }
    // SAFETY: `envoy` is the filter pointer of this hook; `s` lives in it.
    let s = unsafe { Stream::new(envoy) };
    let forward = guard("request headers", || {
        // SAFETY: `module` is this stream's filter.
        match unsafe { stream(module) } {
            Some((f, c)) => f.request_headers(c, s),
            None => {
                host::log(abi::LOG_ERROR, "portcullis: no configuration; denying");
                filter::fail_closed(s, "portcullis_no_policy");
                false
            }
        }
    });
    match forward {
        Some(true) => abi::REQUEST_HEADERS_CONTINUE,
        Some(false) => abi::REQUEST_HEADERS_STOP,
        None => {
            // SAFETY: `module` is this stream's filter.
            if let Some((f, _)) = unsafe { stream(module) } {
                f.respond = Respond::No;
            }
            let _ = guard("fail closed", || filter::fail_closed(s, "portcullis_panic"));
            abi::REQUEST_HEADERS_STOP
        }
    }
}

/// Response headers: the response plan.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy: FilterEnvoyPtr,
    module: FilterModulePtr,
    _end_of_stream: bool,
) -> u32 {
    if cfg!(feature = "bench-empty") {
        return abi::CONTINUE;
    }
    // SAFETY: `envoy` is the filter pointer of this hook; `s` lives in it.
    let s = unsafe { Stream::new(envoy) };
    let done = guard("response headers", || {
        // SAFETY: `module` is this stream's filter.
        if let Some((f, c)) = unsafe { stream(module) } {
            f.response_headers(c, s);
        }
    });
    if done.is_some() {
        return abi::CONTINUE;
    }
    // SAFETY: `module` is this stream's filter.
    if let Some((f, _)) = unsafe { stream(module) } {
        f.respond = Respond::No;
    }
    let _ = guard("fail closed", || filter::fail_closed(s, "portcullis_panic"));
    abi::RESPONSE_HEADERS_STOP
}

/// The stream is gone.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: FilterModulePtr) {
    if module.is_null() || cfg!(feature = "bench-empty") {
        return;
    }
    // SAFETY: from `Box::into_raw` in filter_new; Envoy destroys it once.
    let _ = guard("stream destroy", || unsafe {
        drop(Box::from_raw(module.cast::<Filter>().cast_mut()));
    });
}

/// Bodies and trailers pass untouched.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

/// Bodies and trailers pass untouched.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
) -> u32 {
    abi::CONTINUE
}

/// Bodies and trailers pass untouched.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

/// Bodies and trailers pass untouched.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
) -> u32 {
    abi::CONTINUE
}

/// Nothing to do when a stream completes.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
) {
}

/// Local replies (ours and Envoy's) go out; their response headers reach
/// [`envoy_dynamic_module_on_http_filter_response_headers`]. Envoy's own
/// reply to a request the filter forwarded is noted, so its headers get the
/// edits of a host reply ([`portcullis_core::ResponsePlan::host_reply_edits`]).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _e: FilterEnvoyPtr,
    module: FilterModulePtr,
    _status: u32,
    details: EnvoyBuffer,
    _reset_imminent: bool,
) -> u32 {
    if cfg!(feature = "bench-empty") {
        return abi::LOCAL_REPLY_CONTINUE;
    }
    let _ = guard("local reply", || {
        // SAFETY: `module` is this stream's filter; `details` is Envoy's
        // buffer for the duration of this hook.
        if let Some((f, _)) = unsafe { stream(module) } {
            f.local_reply(unsafe { details.bytes() });
        }
    });
    abi::LOCAL_REPLY_CONTINUE
}

/// Unused: the module schedules nothing.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _event: u64,
) {
}

/// Unused: the module schedules nothing.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _event: u64,
) {
}

/// Unused: the module makes no callouts.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _id: u64,
    _result: u32,
    _headers: *mut abi::EnvoyHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}

/// Unused: the module makes no callouts.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _id: u64,
    _result: u32,
    _headers: *mut abi::EnvoyHeader,
    _headers_size: usize,
    _body: *mut EnvoyBuffer,
    _body_size: usize,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _stream: u64,
    _headers: *mut abi::EnvoyHeader,
    _headers_size: usize,
    _end: bool,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _stream: u64,
    _data: *const EnvoyBuffer,
    _count: usize,
    _end: bool,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _stream: u64,
    _trailers: *mut abi::EnvoyHeader,
    _size: usize,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _stream: u64,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
    _stream: u64,
    _reason: u32,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _stream: u64,
    _headers: *mut abi::EnvoyHeader,
    _headers_size: usize,
    _end: bool,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _stream: u64,
    _data: *const EnvoyBuffer,
    _count: usize,
    _end: bool,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _stream: u64,
    _trailers: *mut abi::EnvoyHeader,
    _size: usize,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _stream: u64,
) {
}

/// Unused: the module opens no streams.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _e: ConfigEnvoyPtr,
    _m: ConfigModulePtr,
    _stream: u64,
    _reason: u32,
) {
}

/// Unused: the module is not a terminal filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
) {
}

/// Unused: the module is not a terminal filter.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _e: FilterEnvoyPtr,
    _m: FilterModulePtr,
) {
}
