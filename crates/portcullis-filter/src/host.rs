//! The proxy-wasm ABI 0.2.1 host calls the filter makes, without panics.
//!
//! The SDK's wrappers `panic!` on any status they do not expect and unwrap
//! UTF-8 conversions of header names; a panic here is a trap, and a trapped
//! VM stops serving. These wrappers declare the same imports with plain
//! integer types (so an unknown status is just a number, never an invalid
//! enum value), turn every failure into `None`/`false`, and leave the
//! decision of what to do to the caller, which always fails closed.

// The SDK declares these imports too, with its `#[repr(u32)]` enums in place
// of `u32`: the ABI is identical.
#![allow(clashing_extern_declarations)]

use core::ptr::{null, null_mut};

/// `MapType::HttpRequestHeaders`.
pub const REQUEST_HEADERS: u32 = 0;
/// `MapType::HttpResponseHeaders`.
pub const RESPONSE_HEADERS: u32 = 2;
/// `BufferType::PluginConfiguration`.
const PLUGIN_CONFIGURATION: u32 = 7;
/// `MetricType::Counter`.
const COUNTER: u32 = 0;
const OK: u32 = 0;

/// Log levels of the ABI.
pub mod level {
    /// Debug.
    pub const DEBUG: u32 = 1;
    /// Info.
    pub const INFO: u32 = 2;
    /// Warn.
    pub const WARN: u32 = 3;
    /// Error.
    pub const ERROR: u32 = 4;
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_set_header_map_pairs(map_type: u32, map_data: *const u8, map_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
}

// Envoy hands `vm_config.environment_variables` to a module through these
// two WASI calls (it provides them to every module, WASI build or not).
#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    fn environ_sizes_get(count: *mut usize, buf_size: *mut usize) -> u16;
    fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> u16;
}

/// Most bytes of environment the filter reads (names, values and
/// separators); a host that offers more gets none of it read.
const MAX_ENVIRONMENT: usize = 1 << 20;

/// The VM's environment as `(name, value)` pairs (Envoy:
/// `vm_config.environment_variables`, `host_env_keys` and `key_values`).
/// Entries that are not `NAME=VALUE` in UTF-8 are skipped; `None` when the
/// host refuses or offers more than [`MAX_ENVIRONMENT`] bytes.
pub fn environment() -> Option<Vec<(String, String)>> {
    let (mut count, mut size) = (0usize, 0usize);
    // SAFETY: valid out pointers.
    if unsafe { environ_sizes_get(&mut count, &mut size) } != 0 {
        return None;
    }
    if size > MAX_ENVIRONMENT || count > size {
        return None;
    }
    let mut ptrs: Vec<*mut u8> = vec![null_mut(); count];
    let mut buf: Vec<u8> = vec![0u8; size];
    // SAFETY: `ptrs` has room for `count` pointers and `buf` for `size`
    // bytes, the sizes the host just reported.
    if unsafe { environ_get(ptrs.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return None;
    }
    // The host wrote NUL-terminated `NAME=VALUE` strings back to back into
    // `buf`; read them from the buffer itself rather than through the
    // pointers, so a bad pointer cannot make us read outside it.
    let mut out = Vec::with_capacity(count);
    for entry in buf.split(|&b| b == 0).take(count) {
        let Ok(text) = core::str::from_utf8(entry) else {
            continue;
        };
        if let Some((k, v)) = text.split_once('=') {
            out.push((k.into(), v.into()));
        }
    }
    Some(out)
}

/// Takes ownership of a buffer the host allocated through the SDK's
/// `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes).
///
/// # Safety
/// `data` must be null or come from `proxy_on_memory_allocate(size)`.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: per the caller, `data` is a live allocation of `size` bytes
    // made by the SDK allocator with capacity `size`, now owned by us.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Logs a message; failures are ignored (there is nowhere to report them).
pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length of a live str.
    unsafe {
        proxy_log(level, message.as_ptr(), message.len());
    }
}

/// The host's log level for this plugin, if it says.
pub fn log_level() -> Option<u32> {
    let mut level = 0u32;
    // SAFETY: `level` is a valid out pointer.
    let status = unsafe { proxy_get_log_level(&mut level) };
    (status == OK).then_some(level)
}

/// The plugin configuration bytes (up to `size`).
pub fn plugin_configuration(size: usize) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut len = 0usize;
    // SAFETY: valid out pointers; on success the host hands us the buffer.
    unsafe {
        let status = proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, &mut data, &mut len);
        let bytes = take(data, len);
        (status == OK).then_some(bytes)
    }
}

/// A property by path (segments separated by NUL, e.g. `b"source\0address"`).
/// `None` when the host has no such property or fails.
pub fn property(path: &[u8]) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut len = 0usize;
    // SAFETY: valid path slice and out pointers.
    unsafe {
        let status = proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut len);
        let bytes = take(data, len);
        (status == OK && !data.is_null()).then_some(bytes)
    }
}

/// Sets a property (Envoy: filter state `wasm.<path>`). False on failure.
pub fn set_property(path: &[u8], value: &[u8]) -> bool {
    // SAFETY: valid slices.
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) == OK }
}

/// A whole header map in the wire format (see [`crate::wire`]).
pub fn header_map(map: u32) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut len = 0usize;
    // SAFETY: valid out pointers.
    unsafe {
        let status = proxy_get_header_map_pairs(map, &mut data, &mut len);
        let bytes = take(data, len);
        (status == OK).then_some(bytes)
    }
}

/// Replaces a whole header map with serialized pairs (see [`crate::wire`]).
/// False on failure.
pub fn set_header_map(map: u32, pairs: &[u8]) -> bool {
    // SAFETY: valid slice.
    unsafe { proxy_set_header_map_pairs(map, pairs.as_ptr(), pairs.len()) == OK }
}

/// Adds one more value of a header. False on failure.
pub fn add_header(map: u32, name: &str, value: &[u8]) -> bool {
    // SAFETY: valid slices.
    unsafe {
        proxy_add_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
            == OK
    }
}

/// Replaces every value of a header with one. False on failure.
pub fn replace_header(map: u32, name: &str, value: &[u8]) -> bool {
    // SAFETY: valid slices.
    unsafe {
        proxy_replace_header_map_value(map, name.as_ptr(), name.len(), value.as_ptr(), value.len())
            == OK
    }
}

/// Removes every value of a header. False on failure.
pub fn remove_header(map: u32, name: &str) -> bool {
    // SAFETY: valid slice.
    unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) == OK }
}

/// Sends a local reply; `headers` is a serialized map. False on failure.
pub fn send_local_response(status: u16, details: &str, headers: &[u8], body: &[u8]) -> bool {
    // SAFETY: valid slices; the body pointer is only read for `body.len()` bytes.
    unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            if body.is_empty() {
                null()
            } else {
                body.as_ptr()
            },
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        ) == OK
    }
}

/// Defines (or finds) a counter by name.
pub fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: valid slice and out pointer.
    let status = unsafe { proxy_define_metric(COUNTER, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
}

/// Adds `n` to a counter; failures are ignored.
pub fn increment(id: u32, n: u64) {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    // SAFETY: no pointers.
    unsafe {
        proxy_increment_metric(id, n);
    }
}

/// Asks for `proxy_on_tick` every `ms` milliseconds. False if refused.
pub fn set_tick_period(ms: u32) -> bool {
    // SAFETY: no pointers.
    unsafe { proxy_set_tick_period_milliseconds(ms) == OK }
}
