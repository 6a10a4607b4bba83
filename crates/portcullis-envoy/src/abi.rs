//! The part of Envoy's dynamic-module ABI this module uses, written by hand
//! from Envoy's documented C header (`source/extensions/dynamic_modules/abi/abi.h`)
//! for ABI **v0.2.0**, the version Envoy 1.40 reports ("Dynamic module ABI
//! version v0.2.0 matched").
//!
//! Everything that crosses the boundary is declared here and nowhere else:
//! the types, the callbacks Envoy exports (the `extern "C"` block) and, as
//! documentation, the shape of the event hooks the module exports (they are
//! defined in `lib.rs` with exactly these signatures). The module is linked
//! with `-z now` (see `build.rs`), so a callback declared here that the
//! loading Envoy does not export refuses the module at load.
//!
//! Upgrading Envoy: check that the new release still reports v0.2.0 and
//! still exports every callback below with the same signature; the module
//! refuses another ABI version at load (see [`crate::version`]).

use core::ffi::{c_char, c_void};

/// The ABI version this module is written against.
#[cfg(not(feature = "test-other-abi"))]
pub const ABI_VERSION: &str = "v0.2.0";

/// Test variant: a module pinned to a version no Envoy has; it must be refused.
#[cfg(feature = "test-other-abi")]
pub const ABI_VERSION: &str = "v0.99.0";

/// The same, NUL-terminated, as `envoy_dynamic_module_on_program_init` returns it.
#[cfg(not(feature = "test-other-abi"))]
pub const ABI_VERSION_C: &[u8] = b"v0.2.0\0";

/// Test variant (see [`ABI_VERSION`]).
#[cfg(feature = "test-other-abi")]
pub const ABI_VERSION_C: &[u8] = b"v0.99.0\0";

/// Envoy's `HttpFilterConfig` (owned by Envoy).
pub type ConfigEnvoyPtr = *mut c_void;
/// The module's per-configuration object (owned by the module).
pub type ConfigModulePtr = *const c_void;
/// Envoy's per-stream `HttpFilter` (owned by Envoy, valid until the
/// module's destroy hook).
pub type FilterEnvoyPtr = *mut c_void;
/// The module's per-stream object (owned by the module).
pub type FilterModulePtr = *const c_void;

/// Bytes owned by Envoy, valid for the current hook (until a setter runs).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    /// Start (may be null when `length` is 0).
    pub ptr: *const c_char,
    /// Length in bytes.
    pub length: usize,
}

impl EnvoyBuffer {
    /// An empty buffer for Envoy to fill.
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: core::ptr::null(),
        length: 0,
    };

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point to `length` readable bytes that stay valid for `'a`
    /// (Envoy guarantees this until the end of the current hook).
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            return &[];
        }
        // SAFETY: as the caller promises.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>(), self.length) }
    }
}

/// Bytes owned by the module, read by Envoy during the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    /// Start (null for "no value").
    pub ptr: *const c_char,
    /// Length in bytes.
    pub length: usize,
}

impl ModuleBuffer {
    /// A view of `b` (which must outlive the call it is passed to).
    pub fn of(b: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: b.as_ptr().cast::<c_char>(),
            length: b.len(),
        }
    }

    /// The null buffer (`set_header` with it removes the header).
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: core::ptr::null(),
        length: 0,
    };
}

/// A header owned by the module (local replies).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHeader {
    /// Name.
    pub key_ptr: *const c_char,
    /// Name length.
    pub key_length: usize,
    /// Value.
    pub value_ptr: *const c_char,
    /// Value length.
    pub value_length: usize,
}

/// A header owned by Envoy (a header map read).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHeader {
    /// Name.
    pub key_ptr: *const c_char,
    /// Name length.
    pub key_length: usize,
    /// Value.
    pub value_ptr: *const c_char,
    /// Value length.
    pub value_length: usize,
}

impl EnvoyHeader {
    /// An empty slot for Envoy to fill.
    pub const EMPTY: EnvoyHeader = EnvoyHeader {
        key_ptr: core::ptr::null(),
        key_length: 0,
        value_ptr: core::ptr::null(),
        value_length: 0,
    };
}

/// `envoy_dynamic_module_type_http_header_type`.
pub type HeaderType = u32;
/// Request headers.
pub const REQUEST_HEADER: HeaderType = 0;
/// Response headers.
pub const RESPONSE_HEADER: HeaderType = 2;

/// `envoy_dynamic_module_type_log_level`.
pub type LogLevel = u32;
/// Debug.
pub const LOG_DEBUG: LogLevel = 1;
/// Info.
pub const LOG_INFO: LogLevel = 2;
/// Warn.
pub const LOG_WARN: LogLevel = 3;
/// Error.
pub const LOG_ERROR: LogLevel = 4;

/// `envoy_dynamic_module_type_metrics_result`: success.
pub const METRICS_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_attribute_id` (only the ones used).
pub type AttributeId = u32;
/// `request.protocol`.
pub const ATTR_REQUEST_PROTOCOL: AttributeId = 10;
/// `source.address` (the downstream remote address, `ip:port`).
pub const ATTR_SOURCE_ADDRESS: AttributeId = 24;
/// `destination.address` (the downstream local address, `ip:port`).
pub const ATTR_DESTINATION_ADDRESS: AttributeId = 26;
/// `connection.tls_version` (empty or absent without TLS).
pub const ATTR_CONNECTION_TLS_VERSION: AttributeId = 31;

/// Return of the request-headers hook: `Continue`.
pub const REQUEST_HEADERS_CONTINUE: u32 = 0;
/// Return of the request-headers hook: `StopIteration` (after a local reply).
pub const REQUEST_HEADERS_STOP: u32 = 1;
/// Return of the body, trailers and response-headers hooks: `Continue`.
pub const CONTINUE: u32 = 0;
/// Return of the response-headers hook: `StopIteration` (after a local reply).
pub const RESPONSE_HEADERS_STOP: u32 = 1;
/// Return of the local-reply hook: let the reply go out.
pub const LOCAL_REPLY_CONTINUE: u32 = 0;

extern "C" {
    /// Logs `message` at `level` under Envoy's `dynamic_modules` logger.
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);

    /// Whether `level` is enabled for the `dynamic_modules` logger.
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    /// Defines a counter named `name` (no labels here) for the filter
    /// configuration; its id goes to `*counter_id`.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;

    /// Adds `value` to a counter defined by the stream's configuration.
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    /// Adds `value` to a counter from the configuration (no stream needed).
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;

    /// The `index`-th value of header `key` in map `header_type`; the
    /// number of values goes to `*optional_size` when it is not null.
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;

    /// The number of headers in map `header_type`.
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
    ) -> usize;

    /// Every header of map `header_type` into `result` (room for
    /// [`envoy_dynamic_module_callback_http_get_headers_size`] entries).
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        result: *mut EnvoyHeader,
    ) -> bool;

    /// Appends a value to header `key` of map `header_type`.
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// Replaces every value of header `key` by `value`; a null `value`
    /// removes the header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// Sends a local reply (Envoy's `sendLocalReply`) with `details` as the
    /// response code details.
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHeader,
        headers_length: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    /// Stores `value` as the stream's filter state `key` (a string object
    /// an access log prints with `%FILTER_STATE(key:PLAIN)%`).
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// A string attribute of the stream (addresses, TLS version, protocol).
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;

    /// Test variant only: a callback no Envoy exports. With `-z now` the
    /// module must be refused at load.
    #[cfg(feature = "test-missing-callback")]
    pub fn envoy_dynamic_module_callback_portcullis_no_such_callback() -> bool;
}
