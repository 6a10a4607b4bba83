//! Safe wrappers over the callbacks of [`crate::abi`]: the only place that
//! calls into Envoy.

use core::marker::PhantomData;
use core::net::SocketAddr;

use portcullis_core::addr::parse_socket;
use portcullis_core::Headers;

use crate::abi::{self, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, HeaderType, ModuleBuffer};

/// Logs `message` at `level`.
pub fn log(level: abi::LogLevel, message: &str) {
    // SAFETY: the buffer is read during the call only.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Whether `level` is logged.
pub fn log_enabled(level: abi::LogLevel) -> bool {
    // SAFETY: no pointers.
    unsafe { abi::envoy_dynamic_module_callback_log_enabled(level) }
}

/// Defines a counter for a filter configuration.
pub fn define_counter(config: abi::ConfigEnvoyPtr, name: &str) -> Option<usize> {
    let mut id = 0usize;
    // SAFETY: `config` is the pointer Envoy passed to the config hook that
    // calls this; the name is read during the call; no labels.
    let r = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
            config,
            ModuleBuffer::of(name.as_bytes()),
            core::ptr::null_mut(),
            0,
            &mut id,
        )
    };
    (r == abi::METRICS_SUCCESS).then_some(id)
}

/// Adds `value` to a counter of a configuration being set up.
pub fn config_count(config: abi::ConfigEnvoyPtr, id: usize, value: u64) -> bool {
    // SAFETY: `config` is the pointer Envoy passed to the config hook that
    // calls this; no labels.
    let r = unsafe {
        abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
            config,
            id,
            core::ptr::null_mut(),
            0,
            value,
        )
    };
    r == abi::METRICS_SUCCESS
}

/// One stream during one hook, as the module sees it: Envoy's filter
/// pointer, valid for `'h`, the hook that received it. What Envoy hands
/// back (header values, attributes) borrows for `'h` too; Envoy keeps it
/// valid until the hook returns, unless a setter changes that header map
/// (every read here is used before the edits).
#[derive(Debug, Clone, Copy)]
pub struct Stream<'h> {
    ptr: FilterEnvoyPtr,
    hook: PhantomData<&'h ()>,
}

impl<'h> Stream<'h> {
    /// The stream Envoy passed to the running hook.
    ///
    /// # Safety
    /// `ptr` must be the filter pointer Envoy passed to the hook that is
    /// running, and `'h` must not outlive that hook.
    pub unsafe fn new(ptr: FilterEnvoyPtr) -> Stream<'h> {
        Stream {
            ptr,
            hook: PhantomData,
        }
    }

    /// Adds one to a counter.
    pub fn count(self, id: usize) {
        // SAFETY: `self.ptr` is the live stream; no labels.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                id,
                core::ptr::null_mut(),
                0,
                1,
            );
        }
    }

    /// A string attribute, if Envoy has it.
    pub fn attribute(self, id: abi::AttributeId) -> Option<&'h [u8]> {
        let mut b = EnvoyBuffer::EMPTY;
        // SAFETY: `self.ptr` is the live stream; `b` is written by Envoy.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.ptr, id, &mut b,
            )
        };
        // SAFETY: Envoy keeps the bytes valid until the hook returns ('h).
        ok.then(|| unsafe { b.bytes() })
    }

    /// A socket-address attribute (`ip:port`).
    pub fn socket(self, id: abi::AttributeId) -> Option<SocketAddr> {
        let s = core::str::from_utf8(self.attribute(id)?).ok()?;
        let (ip, port) = parse_socket(s)?;
        Some(SocketAddr::new(ip, port))
    }

    /// The headers of map `kind`.
    pub fn headers(self, kind: HeaderType) -> Map<'h> {
        Map { stream: self, kind }
    }

    /// Sends a local reply.
    pub fn send_response(
        self,
        status: u16,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
        details: &str,
    ) {
        let mut h: Vec<abi::ModuleHeader> = headers
            .iter()
            .map(|(n, v)| abi::ModuleHeader {
                key_ptr: n.as_ptr().cast(),
                key_length: n.len(),
                value_ptr: v.as_ptr().cast(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: every buffer lives until the call returns; Envoy copies them.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(status),
                h.as_mut_ptr(),
                h.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            );
        }
    }

    /// Sets filter state `key` to `value`.
    pub fn set_filter_state(self, key: &str, value: &[u8]) -> bool {
        // SAFETY: buffers are read during the call only.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.ptr,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }
}

/// One header map of a stream, read through Envoy on demand (implements
/// the core's [`Headers`]).
#[derive(Debug, Clone, Copy)]
pub struct Map<'h> {
    stream: Stream<'h>,
    kind: HeaderType,
}

impl<'h> Map<'h> {
    /// The first value of `name` (lowercase), if any.
    pub fn first(&self, name: &str) -> Option<&'h [u8]> {
        let mut b = EnvoyBuffer::EMPTY;
        // SAFETY: live stream; `b` written by Envoy; key read during the call.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                self.stream.ptr,
                self.kind,
                ModuleBuffer::of(name.as_bytes()),
                &mut b,
                0,
                core::ptr::null_mut(),
            )
        };
        // SAFETY: valid until the hook returns or a setter runs; callers
        // read it before editing the map.
        (ok && !b.ptr.is_null()).then(|| unsafe { b.bytes() })
    }

    /// Appends a value.
    pub fn add(&self, name: &str, value: &[u8]) -> bool {
        let value = non_empty(value);
        // SAFETY: buffers read during the call only.
        unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.stream.ptr,
                self.kind,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Replaces every value.
    pub fn set(&self, name: &str, value: &[u8]) -> bool {
        let value = non_empty(value);
        // SAFETY: buffers read during the call only.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.stream.ptr,
                self.kind,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Removes the header.
    pub fn remove(&self, name: &str) -> bool {
        // SAFETY: the key is read during the call; a null value removes.
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.stream.ptr,
                self.kind,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::NULL,
            )
        }
    }
}

/// ABI v0.2.0 cannot write an empty header value: Envoy's `set_header`
/// takes an empty value for a removal and `add_header` refuses one. The
/// module writes one space instead, optional whitespace that is not part of
/// the field value (RFC 9110, 5.5): an HTTP/1.1 peer reads the empty value.
/// Over HTTP/2 and HTTP/3 the space is sent as is (docs/deploy.md).
fn non_empty(value: &[u8]) -> &[u8] {
    if value.is_empty() {
        b" "
    } else {
        value
    }
}

impl Headers for Map<'_> {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        let mut count = 0usize;
        let mut index = 0usize;
        loop {
            let mut b = EnvoyBuffer::EMPTY;
            // SAFETY: live stream; `b` and `count` written by Envoy.
            let ok = unsafe {
                abi::envoy_dynamic_module_callback_http_get_header(
                    self.stream.ptr,
                    self.kind,
                    ModuleBuffer::of(name.as_bytes()),
                    &mut b,
                    index,
                    &mut count,
                )
            };
            if !ok || index >= count || b.ptr.is_null() {
                return;
            }
            // SAFETY: valid for this hook, used right away.
            f(unsafe { b.bytes() });
            index += 1;
        }
    }

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        // SAFETY: live stream.
        let n = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers_size(self.stream.ptr, self.kind)
        };
        let mut all = vec![EnvoyHeader::EMPTY; n];
        // SAFETY: `all` has room for the `n` headers Envoy reported.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.stream.ptr,
                self.kind,
                all.as_mut_ptr(),
            )
        };
        if !ok {
            return;
        }
        for h in &all {
            let name = EnvoyBuffer {
                ptr: h.key_ptr,
                length: h.key_length,
            };
            // SAFETY: valid for this hook, used right away.
            f(unsafe { name.bytes() });
        }
    }
}
