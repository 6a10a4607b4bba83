//! The functions the host exposes to the filter (`env.proxy_*`, and the few
//! `wasi_snapshot_preview1` functions a `wasm32-wasip1` build imports).
//!
//! Why one file over 800 lines: one function per ABI call, each short, kept
//! beside the linking code and the list of calls it must match.
//!
//! Conventions: pointers and sizes are wasm32 `i32`s read as unsigned; a
//! pointer outside linear memory or a malformed serialized map makes the
//! call trap with [`HostError::Misuse`]; calls Portcullis does not implement
//! trap with [`HostError::Unsupported`]. Other failures return a
//! `proxy_status_t` and leave a note that is shown if the filter then traps.

use wasmtime::{Caller, Linker};

use crate::headers::{self, HeaderMap};
use crate::state::{HostState, Stage};
use crate::{properties, HostError, LocalReply, LogLevel, Metric, MetricKind, Phase};

type C<'a> = Caller<'a, HostState>;
type R = wasmtime::Result<i32>;

// proxy_status_t
pub(crate) const OK: i32 = 0;
pub(crate) const NOT_FOUND: i32 = 1;
pub(crate) const BAD_ARGUMENT: i32 = 2;
pub(crate) const CAS_MISMATCH: i32 = 8;
pub(crate) const UNIMPLEMENTED: i32 = 12;

// wasi errno
const WASI_SUCCESS: i32 = 0;
const WASI_BADF: i32 = 8;
const WASI_INVAL: i32 = 28;
const WASI_NOTSUP: i32 = 58;

fn status_name(code: i32) -> &'static str {
    match code {
        OK => "Ok",
        NOT_FOUND => "NotFound",
        BAD_ARGUMENT => "BadArgument",
        CAS_MISMATCH => "CasMismatch",
        UNIMPLEMENTED => "Unimplemented",
        _ => "an error status",
    }
}

/// Records `error` (unless an earlier one is pending) and returns the trap.
fn fail(c: &mut C<'_>, error: HostError) -> wasmtime::Error {
    let msg = error.to_string();
    let st = c.data_mut();
    if st.error.is_none() {
        st.error = Some(error);
    }
    wasmtime::Error::msg(msg)
}

fn misuse(c: &mut C<'_>, call: &str, detail: impl Into<String>) -> wasmtime::Error {
    let error = HostError::Misuse {
        call: call.to_string(),
        detail: detail.into(),
    };
    fail(c, error)
}

fn unsupported(c: &mut C<'_>, call: &str) -> wasmtime::Error {
    let error = HostError::Unsupported {
        call: call.to_string(),
    };
    fail(c, error)
}

/// Returns a non-OK status, remembering why.
fn refuse(c: &mut C<'_>, call: &str, code: i32, why: impl std::fmt::Display) -> R {
    c.data_mut().note = Some(format!("{call} returned {}: {why}", status_name(code)));
    Ok(code)
}

fn uarg(v: i32) -> usize {
    // wasm32 pointers and sizes are unsigned 32-bit values.
    v as u32 as usize
}

fn memory(c: &mut C<'_>, call: &str) -> wasmtime::Result<wasmtime::Memory> {
    match c.data().memory {
        Some(m) => Ok(m),
        None => Err(misuse(
            c,
            call,
            "called before the module's memory was set up",
        )),
    }
}

/// Copies `len` bytes at `ptr` out of guest memory.
fn read(c: &mut C<'_>, call: &str, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(c, call)?;
    let (p, l) = (uarg(ptr), uarg(len));
    let data = mem.data(&*c);
    let size = data.len();
    match p.checked_add(l).and_then(|end| data.get(p..end)) {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(misuse(
            c,
            call,
            format!("guest range {p:#x}+{l} is outside linear memory ({size} bytes)"),
        )),
    }
}

fn write(c: &mut C<'_>, call: &str, ptr: i32, bytes: &[u8]) -> wasmtime::Result<()> {
    let mem = memory(c, call)?;
    let p = uarg(ptr);
    let data = mem.data_mut(&mut *c);
    let size = data.len();
    match p
        .checked_add(bytes.len())
        .and_then(|end| data.get_mut(p..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            Ok(())
        }
        None => Err(misuse(
            c,
            call,
            format!(
                "return pointer {p:#x}+{} is outside linear memory ({size} bytes)",
                bytes.len()
            ),
        )),
    }
}

fn write_u32(c: &mut C<'_>, call: &str, ptr: i32, v: u32) -> wasmtime::Result<()> {
    write(c, call, ptr, &v.to_le_bytes())
}

fn write_u64(c: &mut C<'_>, call: &str, ptr: i32, v: u64) -> wasmtime::Result<()> {
    write(c, call, ptr, &v.to_le_bytes())
}

/// Hands `data` to the guest: allocates it with the guest's allocator, copies
/// it in, and writes the pointer and size. Empty data is returned as
/// (NULL, 0), as Envoy does; the SDK reads that as "no value"/"empty".
fn give(c: &mut C<'_>, call: &str, data: &[u8], ptr_ptr: i32, size_ptr: i32) -> R {
    if data.is_empty() {
        write_u32(c, call, ptr_ptr, 0)?;
        write_u32(c, call, size_ptr, 0)?;
        return Ok(OK);
    }
    let Ok(len) = i32::try_from(data.len()) else {
        return Err(misuse(c, call, "value larger than 2 GiB"));
    };
    let Some(alloc) = c.data().alloc.clone() else {
        return Err(misuse(
            c,
            call,
            "the module exports no proxy_on_memory_allocate or malloc",
        ));
    };
    let p = alloc.call(&mut *c, len)?;
    if p == 0 {
        return Err(misuse(
            c,
            call,
            format!("the guest allocator returned NULL for {len} bytes"),
        ));
    }
    write(c, call, p, data)?;
    write_u32(c, call, ptr_ptr, p as u32)?;
    write_u32(c, call, size_ptr, len as u32)?;
    Ok(OK)
}

// ---------------------------------------------------------------- logging

fn proxy_log(c: &mut C<'_>, level: i32, ptr: i32, len: i32) -> R {
    const CALL: &str = "proxy_log";
    let msg = read(c, CALL, ptr, len)?;
    let Some(level) = LogLevel::from_raw(level) else {
        return refuse(c, CALL, BAD_ARGUMENT, format!("unknown log level {level}"));
    };
    c.data_mut()
        .log(level, String::from_utf8_lossy(&msg).into_owned());
    Ok(OK)
}

fn proxy_get_log_level(c: &mut C<'_>, ret: i32) -> R {
    let level = c.data().opts.log_level as u32;
    write_u32(c, "proxy_get_log_level", ret, level)?;
    Ok(OK)
}

fn proxy_get_current_time_nanoseconds(c: &mut C<'_>, ret: i32) -> R {
    let now = c.data().now_nanos();
    write_u64(c, "proxy_get_current_time_nanoseconds", ret, now)?;
    Ok(OK)
}

fn proxy_set_tick_period_milliseconds(c: &mut C<'_>, period: i32) -> R {
    c.data_mut().tick_ms = period as u32;
    Ok(OK)
}

// ---------------------------------------------------------------- buffers

/// The buffer `kind`, or the status to return.
fn buffer(st: &HostState, kind: i32) -> Result<Vec<u8>, (i32, &'static str)> {
    match kind {
        0 => st
            .http()
            .and_then(|ex| ex.body.clone())
            .filter(|_| st.stage == Stage::RequestBody)
            .ok_or((
                NOT_FOUND,
                "the request body is only available in proxy_on_request_body",
            )),
        1 => Err((NOT_FOUND, "upstream responses have no body in this host")),
        2..=5 | 8 => Err((
            NOT_FOUND,
            "buffer type not available in an HTTP filter host",
        )),
        6 if st.stage == Stage::VmStart => Ok(Vec::new()),
        6 => Err((
            NOT_FOUND,
            "the VM configuration is only available in proxy_on_vm_start",
        )),
        7 if st.stage == Stage::Configure => Ok(st.plugin_config.clone()),
        7 => Err((
            NOT_FOUND,
            "the plugin configuration is only available in proxy_on_configure",
        )),
        _ => Err((BAD_ARGUMENT, "unknown buffer type")),
    }
}

fn proxy_get_buffer_bytes(
    c: &mut C<'_>,
    kind: i32,
    start: i32,
    max: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> R {
    const CALL: &str = "proxy_get_buffer_bytes";
    let data = match buffer(c.data(), kind) {
        Ok(d) => d,
        Err((code, why)) => return refuse(c, CALL, code, format!("buffer {kind}: {why}")),
    };
    let start = uarg(start);
    if start > data.len() {
        return refuse(c, CALL, BAD_ARGUMENT, "start beyond the end of the buffer");
    }
    let end = start.saturating_add(uarg(max)).min(data.len());
    let slice = data.get(start..end).unwrap_or_default().to_vec();
    give(c, CALL, &slice, ptr_ptr, size_ptr)
}

fn proxy_set_buffer_bytes(
    c: &mut C<'_>,
    kind: i32,
    start: i32,
    size: i32,
    ptr: i32,
    len: i32,
) -> R {
    const CALL: &str = "proxy_set_buffer_bytes";
    let value = read(c, CALL, ptr, len)?;
    if !(0..=8).contains(&kind) {
        return refuse(c, CALL, BAD_ARGUMENT, "unknown buffer type");
    }
    let stage = c.data().stage;
    let body = match c.data_mut().http_mut().and_then(|ex| ex.body.as_mut()) {
        Some(body) if kind == 0 && stage == Stage::RequestBody => body,
        _ => {
            return refuse(
                c,
                CALL,
                NOT_FOUND,
                "only the request body can be set, in proxy_on_request_body",
            )
        }
    };
    let start = uarg(start).min(body.len());
    let end = start.saturating_add(uarg(size)).min(body.len());
    body.splice(start..end, value);
    Ok(OK)
}

fn proxy_get_buffer_status(c: &mut C<'_>, kind: i32, size_ptr: i32, flags_ptr: i32) -> R {
    const CALL: &str = "proxy_get_buffer_status";
    let len = match buffer(c.data(), kind) {
        Ok(d) => d.len(),
        Err((code, why)) => return refuse(c, CALL, code, format!("buffer {kind}: {why}")),
    };
    write_u32(c, CALL, size_ptr, u32::try_from(len).unwrap_or(u32::MAX))?;
    write_u32(c, CALL, flags_ptr, 0)?;
    Ok(OK)
}

// ---------------------------------------------------------------- header maps

fn map_unavailable(st: &HostState, kind: i32) -> Option<&'static str> {
    let ex = match st.http() {
        Some(ex) => ex,
        None => return Some("header maps exist only in an HTTP context"),
    };
    match kind {
        0 | 1 => None,
        2 | 3 if ex.resp_headers.is_some() => None,
        2 | 3 => Some("response headers are not available before proxy_on_response_headers"),
        4..=7 => Some("gRPC and HTTP-call maps are not supported by this host"),
        _ => Some("unknown map type"),
    }
}

/// In `proxy_on_log`, Envoy answers reads of a missing response map (the
/// stream was reset) with NotFound / an empty map instead of BadArgument.
fn missing_in_log(st: &HostState, kind: i32) -> bool {
    matches!(st.stage, Stage::Log | Stage::Done)
        && matches!(kind, 2 | 3)
        && st.http().is_some_and(|ex| ex.resp_headers.is_none())
}

fn map_ref(st: &HostState, kind: i32) -> Option<&HeaderMap> {
    let ex = st.http()?;
    match kind {
        0 => Some(&ex.req_headers),
        1 => Some(&ex.req_trailers),
        2 => ex.resp_headers.as_ref(),
        3 => ex.resp_headers.as_ref().map(|_| &ex.resp_trailers),
        _ => None,
    }
}

fn map_mut(st: &mut HostState, kind: i32) -> Option<&mut HeaderMap> {
    let ex = st.http_mut()?;
    match kind {
        0 => Some(&mut ex.req_headers),
        1 => Some(&mut ex.req_trailers),
        2 => ex.resp_headers.as_mut(),
        3 if ex.resp_headers.is_some() => Some(&mut ex.resp_trailers),
        _ => None,
    }
}

/// Runs `f` on map `kind`, or refuses with BadArgument.
fn with_map<T>(
    c: &mut C<'_>,
    call: &str,
    kind: i32,
    f: impl FnOnce(&mut HeaderMap) -> T,
) -> wasmtime::Result<Result<T, i32>> {
    if let Some(why) = map_unavailable(c.data(), kind) {
        return refuse(c, call, BAD_ARGUMENT, format!("map {kind}: {why}")).map(Err);
    }
    match map_mut(c.data_mut(), kind) {
        Some(map) => Ok(Ok(f(map))),
        None => refuse(c, call, BAD_ARGUMENT, format!("map {kind} unavailable")).map(Err),
    }
}

fn proxy_get_header_map_size(c: &mut C<'_>, kind: i32, ret: i32) -> R {
    const CALL: &str = "proxy_get_header_map_size";
    if missing_in_log(c.data(), kind) {
        write_u32(c, CALL, ret, 0)?;
        return Ok(OK);
    }
    let size = match with_map(c, CALL, kind, |m| m.serialize().len())? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    write_u32(c, CALL, ret, u32::try_from(size).unwrap_or(u32::MAX))?;
    Ok(OK)
}

fn proxy_get_header_map_pairs(c: &mut C<'_>, kind: i32, ptr_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "proxy_get_header_map_pairs";
    if missing_in_log(c.data(), kind) {
        return give(c, CALL, &[], ptr_ptr, size_ptr);
    }
    let bytes = match with_map(c, CALL, kind, |m| (m.len() > 0).then(|| m.serialize()))? {
        Ok(b) => b.unwrap_or_default(),
        Err(code) => return Ok(code),
    };
    give(c, CALL, &bytes, ptr_ptr, size_ptr)
}

fn proxy_set_header_map_pairs(c: &mut C<'_>, kind: i32, ptr: i32, len: i32) -> R {
    const CALL: &str = "proxy_set_header_map_pairs";
    let bytes = read(c, CALL, ptr, len)?;
    let pairs = match headers::deserialize(&bytes) {
        Ok(p) => p,
        Err(e) => return Err(misuse(c, CALL, e)),
    };
    match with_map(c, CALL, kind, |m| m.set_all(pairs))? {
        Ok(()) => Ok(OK),
        Err(code) => Ok(code),
    }
}

fn proxy_get_header_map_value(
    c: &mut C<'_>,
    kind: i32,
    kptr: i32,
    klen: i32,
    ptr_ptr: i32,
    size_ptr: i32,
) -> R {
    const CALL: &str = "proxy_get_header_map_value";
    let key = read(c, CALL, kptr, klen)?;
    if missing_in_log(c.data(), kind) {
        return Ok(NOT_FOUND);
    }
    let value = match map_unavailable(c.data(), kind) {
        Some(why) => return refuse(c, CALL, BAD_ARGUMENT, format!("map {kind}: {why}")),
        None => map_ref(c.data(), kind).and_then(|m| m.get(&key).map(<[u8]>::to_vec)),
    };
    match value {
        Some(v) => give(c, CALL, &v, ptr_ptr, size_ptr),
        None => Ok(NOT_FOUND),
    }
}

fn proxy_add_header_map_value(c: &mut C<'_>, kind: i32, kp: i32, kl: i32, vp: i32, vl: i32) -> R {
    const CALL: &str = "proxy_add_header_map_value";
    let key = read(c, CALL, kp, kl)?;
    let value = read(c, CALL, vp, vl)?;
    Ok(with_map(c, CALL, kind, |m| m.add(&key, &value))?.map_or_else(|code| code, |()| OK))
}

fn proxy_replace_header_map_value(
    c: &mut C<'_>,
    kind: i32,
    kp: i32,
    kl: i32,
    vp: i32,
    vl: i32,
) -> R {
    const CALL: &str = "proxy_replace_header_map_value";
    let key = read(c, CALL, kp, kl)?;
    let value = read(c, CALL, vp, vl)?;
    Ok(with_map(c, CALL, kind, |m| m.replace(&key, &value))?.map_or_else(|code| code, |()| OK))
}

fn proxy_remove_header_map_value(c: &mut C<'_>, kind: i32, kp: i32, kl: i32) -> R {
    const CALL: &str = "proxy_remove_header_map_value";
    let key = read(c, CALL, kp, kl)?;
    Ok(with_map(c, CALL, kind, |m| m.remove(&key))?.map_or_else(|code| code, |()| OK))
}

// ---------------------------------------------------------------- properties

fn proxy_get_property(c: &mut C<'_>, pp: i32, pl: i32, ptr_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "proxy_get_property";
    let path = read(c, CALL, pp, pl)?;
    let shown = properties::display_path(&path);
    let value = properties::lookup(c.data(), &path);
    if let Some(ex) = c.data_mut().http_mut() {
        ex.properties_read.push(shown.clone());
    }
    match value {
        Some(v) => give(c, CALL, &v, ptr_ptr, size_ptr),
        None if !path.contains(&0) && shown.contains('.') && properties::is_known(&path) => refuse(
            c,
            CALL,
            NOT_FOUND,
            format!(
                "{shown:?} is one segment; Envoy splits paths on NUL (use one segment per part)"
            ),
        ),
        None => refuse(c, CALL, NOT_FOUND, format!("property {shown} is not set")),
    }
}

fn proxy_set_property(c: &mut C<'_>, pp: i32, pl: i32, vp: i32, vl: i32) -> R {
    const CALL: &str = "proxy_set_property";
    let path = read(c, CALL, pp, pl)?;
    let value = read(c, CALL, vp, vl)?;
    let st = c.data_mut();
    match st.http_mut() {
        Some(ex) => {
            ex.properties_set
                .push((properties::display_path(&path), value.clone()));
            ex.props_set.push((path, value));
        }
        None => st.root_props.push((path, value)),
    }
    Ok(OK)
}

// ---------------------------------------------------------------- shared data

fn proxy_get_shared_data(
    c: &mut C<'_>,
    kp: i32,
    kl: i32,
    ptr_ptr: i32,
    size_ptr: i32,
    cas_ptr: i32,
) -> R {
    const CALL: &str = "proxy_get_shared_data";
    let key = read(c, CALL, kp, kl)?;
    let Some((value, cas)) = c.data().carried.shared.get(&key).cloned() else {
        return Ok(NOT_FOUND);
    };
    let status = give(c, CALL, &value, ptr_ptr, size_ptr)?;
    write_u32(c, CALL, cas_ptr, cas)?;
    Ok(status)
}

fn proxy_set_shared_data(c: &mut C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32) -> R {
    const CALL: &str = "proxy_set_shared_data";
    let key = read(c, CALL, kp, kl)?;
    let value = read(c, CALL, vp, vl)?;
    let current = c.data().carried.shared.get(&key).map_or(0, |(_, cas)| *cas);
    if cas != 0 && cas as u32 != current {
        return refuse(
            c,
            CALL,
            CAS_MISMATCH,
            "compare-and-swap value does not match",
        );
    }
    let next = current.wrapping_add(1).max(1);
    c.data_mut().carried.shared.insert(key, (value, next));
    Ok(OK)
}

// ---------------------------------------------------------------- streams

fn proxy_continue_stream(c: &mut C<'_>, kind: i32) -> R {
    const CALL: &str = "proxy_continue_stream";
    let stage = c.data().stage;
    if c.data().http().is_none() {
        return refuse(c, CALL, BAD_ARGUMENT, "not in an HTTP context");
    }
    match (kind, stage) {
        (0, Stage::RequestHeaders | Stage::RequestBody) | (1, Stage::ResponseHeaders) => {
            if let Some(ex) = c.data_mut().http_mut() {
                ex.continued = true;
            }
            Ok(OK)
        }
        // Resuming a direction that is not paused is a no-op.
        (0 | 1, _) => Ok(OK),
        (2 | 3, _) => refuse(c, CALL, UNIMPLEMENTED, "TCP streams in an HTTP context"),
        _ => refuse(c, CALL, BAD_ARGUMENT, "unknown stream type"),
    }
}

fn proxy_close_stream(c: &mut C<'_>, kind: i32) -> R {
    const CALL: &str = "proxy_close_stream";
    if c.data().http().is_none() {
        return refuse(c, CALL, BAD_ARGUMENT, "not in an HTTP context");
    }
    match kind {
        0 | 1 => {
            if let Some(ex) = c.data_mut().http_mut() {
                ex.reset = true;
            }
            Ok(OK)
        }
        2 | 3 => refuse(c, CALL, UNIMPLEMENTED, "TCP streams in an HTTP context"),
        _ => refuse(c, CALL, BAD_ARGUMENT, "unknown stream type"),
    }
}

#[allow(clippy::too_many_arguments)]
fn proxy_send_local_response(
    c: &mut C<'_>,
    status: i32,
    dp: i32,
    dl: i32,
    bp: i32,
    bl: i32,
    hp: i32,
    hl: i32,
    grpc_status: i32,
) -> R {
    const CALL: &str = "proxy_send_local_response";
    let details = read(c, CALL, dp, dl)?;
    let body = read(c, CALL, bp, bl)?;
    let raw_headers = read(c, CALL, hp, hl)?;
    let pairs = match headers::deserialize(&raw_headers) {
        Ok(p) => p,
        Err(e) => return Err(misuse(c, CALL, format!("headers: {e}"))),
    };
    let phase = match c.data().stage {
        Stage::RequestHeaders => Phase::RequestHeaders,
        Stage::RequestBody => Phase::RequestBody,
        Stage::ResponseHeaders => Phase::ResponseHeaders,
        other => {
            return Err(misuse(
                c,
                CALL,
                format!("called in {other:?}: a local reply is only possible before the response headers go downstream"),
            ))
        }
    };
    let Some(status) = u16::try_from(status)
        .ok()
        .filter(|s| (100..=999).contains(s))
    else {
        return Err(misuse(
            c,
            CALL,
            format!("invalid HTTP status {}", status as u32),
        ));
    };
    let first = match c.data().http() {
        None => return Err(misuse(c, CALL, "not in an HTTP context")),
        Some(ex) => ex.local_reply.as_ref().map(|r| r.status),
    };
    if let Some(first) = first {
        return Err(misuse(
            c,
            CALL,
            format!("a second local reply ({status}) after the first ({first})"),
        ));
    }
    let Some(ex) = c.data_mut().http_mut() else {
        return Err(misuse(c, CALL, "not in an HTTP context"));
    };
    let mut map = HeaderMap::default();
    map.set_all(pairs);
    ex.local_reply = Some(LocalReply {
        status,
        headers: map.into_pairs(),
        body,
        details: String::from_utf8_lossy(&details).into_owned(),
        grpc_status: (grpc_status >= 0).then_some(grpc_status),
        phase,
    });
    Ok(OK)
}

// ---------------------------------------------------------------- contexts

fn proxy_set_effective_context(c: &mut C<'_>, id: i32) -> R {
    let id = id as u32;
    let st = c.data_mut();
    if id == st.root_id || st.ex.as_ref().is_some_and(|ex| ex.id == id) {
        st.effective = id;
        Ok(OK)
    } else {
        refuse(
            c,
            "proxy_set_effective_context",
            BAD_ARGUMENT,
            format!("unknown context {id}"),
        )
    }
}

fn proxy_done(c: &mut C<'_>) -> R {
    refuse(
        c,
        "proxy_done",
        NOT_FOUND,
        "no context is pending finalization",
    )
}

// ---------------------------------------------------------------- metrics

fn proxy_define_metric(c: &mut C<'_>, kind: i32, np: i32, nl: i32, ret: i32) -> R {
    const CALL: &str = "proxy_define_metric";
    let name = read(c, CALL, np, nl)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return refuse(c, CALL, BAD_ARGUMENT, format!("unknown metric type {kind}")),
    };
    let metrics = &mut c.data_mut().carried.metrics;
    let index = match metrics.iter().position(|m| m.name == name) {
        Some(i) if metrics[i].kind == kind => i,
        Some(i) => {
            let was = metrics[i].kind;
            return refuse(
                c,
                CALL,
                BAD_ARGUMENT,
                format!("metric {name:?} already defined as a {was:?}"),
            );
        }
        None => {
            metrics.push(Metric {
                name,
                kind,
                value: 0,
                samples: Vec::new(),
            });
            metrics.len() - 1
        }
    };
    write_u32(c, CALL, ret, u32::try_from(index + 1).unwrap_or(u32::MAX))?;
    Ok(OK)
}

fn metric_index(st: &HostState, id: i32) -> Option<usize> {
    let i = uarg(id).checked_sub(1)?;
    (i < st.carried.metrics.len()).then_some(i)
}

fn proxy_increment_metric(c: &mut C<'_>, id: i32, delta: i64) -> R {
    const CALL: &str = "proxy_increment_metric";
    let Some(i) = metric_index(c.data(), id) else {
        return refuse(c, CALL, NOT_FOUND, format!("unknown metric id {id}"));
    };
    match c.data().carried.metrics[i].kind {
        MetricKind::Counter if delta < 0 => {
            refuse(c, CALL, BAD_ARGUMENT, "a counter cannot be decremented")
        }
        MetricKind::Counter | MetricKind::Gauge => {
            let m = &mut c.data_mut().carried.metrics[i];
            m.value = m.value.saturating_add(delta);
            Ok(OK)
        }
        MetricKind::Histogram => refuse(
            c,
            CALL,
            BAD_ARGUMENT,
            "histograms are recorded, not incremented",
        ),
    }
}

fn proxy_record_metric(c: &mut C<'_>, id: i32, value: i64) -> R {
    const CALL: &str = "proxy_record_metric";
    let Some(i) = metric_index(c.data(), id) else {
        return refuse(c, CALL, NOT_FOUND, format!("unknown metric id {id}"));
    };
    let m = &mut c.data_mut().carried.metrics[i];
    let value_u = value as u64;
    match m.kind {
        // Envoy adds the value to a counter, sets a gauge, records a sample.
        MetricKind::Counter => {
            m.value = m
                .value
                .saturating_add(i64::try_from(value_u).unwrap_or(i64::MAX))
        }
        MetricKind::Gauge => m.value = value,
        MetricKind::Histogram => m.samples.push(value_u),
    }
    Ok(OK)
}

fn proxy_get_metric(c: &mut C<'_>, id: i32, ret: i32) -> R {
    const CALL: &str = "proxy_get_metric";
    let Some(i) = metric_index(c.data(), id) else {
        return refuse(c, CALL, NOT_FOUND, format!("unknown metric id {id}"));
    };
    let m = &c.data().carried.metrics[i];
    if m.kind == MetricKind::Histogram {
        return refuse(c, CALL, BAD_ARGUMENT, "histograms cannot be read");
    }
    let value = m.value as u64;
    write_u64(c, CALL, ret, value)?;
    Ok(OK)
}

// ---------------------------------------------------------------- WASI

fn fd_write(c: &mut C<'_>, fd: i32, iovs: i32, iovs_len: i32, written_ptr: i32) -> R {
    const CALL: &str = "wasi_snapshot_preview1.fd_write";
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Ok(WASI_BADF),
    };
    let Some(table_len) = uarg(iovs_len)
        .checked_mul(8)
        .and_then(|n| i32::try_from(n).ok())
    else {
        return Err(misuse(c, CALL, "iovec count too large"));
    };
    let table = read(c, CALL, iovs, table_len)?;
    let mut out = Vec::new();
    for iov in table.chunks_exact(8) {
        let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
        let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
        out.extend(read(c, CALL, ptr, len)?);
    }
    let n = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let text = String::from_utf8_lossy(&out);
    let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
    c.data_mut().log(level, text);
    write_u32(c, CALL, written_ptr, n)?;
    Ok(WASI_SUCCESS)
}

fn clock_time_get(c: &mut C<'_>, id: i32, _precision: i64, ret: i32) -> R {
    if !(0..=1).contains(&id) {
        return Ok(WASI_NOTSUP);
    }
    let now = c.data().now_nanos();
    write_u64(c, "wasi_snapshot_preview1.clock_time_get", ret, now)?;
    Ok(WASI_SUCCESS)
}

fn random_get(c: &mut C<'_>, ptr: i32, len: i32) -> R {
    if uarg(len) > 1 << 20 {
        return Ok(WASI_INVAL);
    }
    let mut bytes = Vec::with_capacity(uarg(len) + 8);
    while bytes.len() < uarg(len) {
        let r = c.data_mut().next_random();
        bytes.extend_from_slice(&r.to_le_bytes());
    }
    bytes.truncate(uarg(len));
    write(c, "wasi_snapshot_preview1.random_get", ptr, &bytes)?;
    Ok(WASI_SUCCESS)
}

/// The environment as WASI hands it over: `NAME=VALUE\0` per variable.
fn environ_entries(c: &C<'_>) -> Vec<Vec<u8>> {
    c.data()
        .opts
        .environment
        .iter()
        .map(|(k, v)| {
            let mut e = Vec::with_capacity(k.len() + v.len() + 2);
            e.extend_from_slice(k.as_bytes());
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e.push(0);
            e
        })
        .collect()
}

/// `environ_sizes_get(count_ptr, buf_size_ptr)`: what Envoy answers from
/// `vm_config.environment_variables`.
fn environ_sizes_get(c: &mut C<'_>, count_ptr: i32, size_ptr: i32) -> R {
    const CALL: &str = "wasi_snapshot_preview1.environ_sizes_get";
    let entries = environ_entries(c);
    let size: usize = entries.iter().map(Vec::len).sum();
    let (Ok(count), Ok(size)) = (u32::try_from(entries.len()), u32::try_from(size)) else {
        return Ok(WASI_INVAL);
    };
    write_u32(c, CALL, count_ptr, count)?;
    write_u32(c, CALL, size_ptr, size)?;
    Ok(WASI_SUCCESS)
}

/// `environ_get(environ_ptr, buf_ptr)`: one pointer per variable into
/// `environ`, the `NAME=VALUE\0` strings back to back into `buf`.
fn environ_get(c: &mut C<'_>, environ: i32, buf: i32) -> R {
    const CALL: &str = "wasi_snapshot_preview1.environ_get";
    // wasm32 addresses: u32 arithmetic, refused on overflow.
    let mut slot = environ as u32;
    let mut at = buf as u32;
    for e in environ_entries(c) {
        write_u32(c, CALL, slot as i32, at)?;
        write(c, CALL, at as i32, &e)?;
        let (Some(next_slot), Some(next_at)) = (
            slot.checked_add(4),
            u32::try_from(e.len()).ok().and_then(|l| at.checked_add(l)),
        ) else {
            return Ok(WASI_INVAL);
        };
        slot = next_slot;
        at = next_at;
    }
    Ok(WASI_SUCCESS)
}

fn two_zeros(c: &mut C<'_>, call: &str, a: i32, b: i32) -> R {
    write_u32(c, call, a, 0)?;
    write_u32(c, call, b, 0)?;
    Ok(WASI_SUCCESS)
}

// ---------------------------------------------------------------- linking

/// Names of every `env` function [`define`] provides.
pub(crate) const ENV_CALLS: &[&str] = &[
    "proxy_log",
    "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds",
    "proxy_set_tick_period_milliseconds",
    "proxy_get_buffer_bytes",
    "proxy_set_buffer_bytes",
    "proxy_get_buffer_status",
    "proxy_get_header_map_size",
    "proxy_get_header_map_pairs",
    "proxy_set_header_map_pairs",
    "proxy_get_header_map_value",
    "proxy_add_header_map_value",
    "proxy_replace_header_map_value",
    "proxy_remove_header_map_value",
    "proxy_get_property",
    "proxy_set_property",
    "proxy_get_shared_data",
    "proxy_set_shared_data",
    "proxy_continue_stream",
    "proxy_close_stream",
    "proxy_send_local_response",
    "proxy_set_effective_context",
    "proxy_done",
    "proxy_define_metric",
    "proxy_increment_metric",
    "proxy_record_metric",
    "proxy_get_metric",
    // Defined, but trap with HostError::Unsupported.
    "proxy_http_call",
    "proxy_grpc_call",
    "proxy_grpc_stream",
    "proxy_grpc_send",
    "proxy_grpc_cancel",
    "proxy_grpc_close",
    "proxy_get_status",
    "proxy_register_shared_queue",
    "proxy_resolve_shared_queue",
    "proxy_enqueue_shared_queue",
    "proxy_dequeue_shared_queue",
    "proxy_call_foreign_function",
];

/// `wasi_snapshot_preview1` functions with a real implementation; other
/// WASI imports are linked to stubs that trap with `Unsupported`.
pub(crate) const WASI_CALLS: &[&str] = &[
    "fd_write",
    "clock_time_get",
    "random_get",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "proc_exit",
    "sched_yield",
];

macro_rules! wrap {
    ($linker:ident, $module:literal, $name:literal, $f:expr, ($($a:ident : $t:ty),*)) => {
        $linker.func_wrap(
            $module,
            $name,
            |mut caller: Caller<'_, HostState>, $($a: $t),*| -> wasmtime::Result<i32> {
                if let Some(ex) = caller.data_mut().ex.as_mut() {
                    ex.calls.push($name);
                }
                ($f)(&mut caller, $($a),*)
            },
        )?
    };
}

macro_rules! stub {
    ($linker:ident, $name:literal, ($($a:ident),*)) => {
        $linker.func_wrap(
            "env",
            $name,
            |mut caller: Caller<'_, HostState>, $($a: i32),*| -> wasmtime::Result<i32> {
                let _ = ($($a,)*);
                Err(unsupported(&mut caller, $name))
            },
        )?
    };
}

/// Defines every host function on `linker`.
pub(crate) fn define(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wrap!(linker, "env", "proxy_log", proxy_log, (a: i32, b: i32, d: i32));
    wrap!(linker, "env", "proxy_get_log_level", proxy_get_log_level, (a: i32));
    wrap!(linker, "env", "proxy_get_current_time_nanoseconds", proxy_get_current_time_nanoseconds, (a: i32));
    wrap!(linker, "env", "proxy_set_tick_period_milliseconds", proxy_set_tick_period_milliseconds, (a: i32));
    wrap!(linker, "env", "proxy_get_buffer_bytes", proxy_get_buffer_bytes, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_set_buffer_bytes", proxy_set_buffer_bytes, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_get_buffer_status", proxy_get_buffer_status, (a: i32, b: i32, d: i32));
    wrap!(linker, "env", "proxy_get_header_map_size", proxy_get_header_map_size, (a: i32, b: i32));
    wrap!(linker, "env", "proxy_get_header_map_pairs", proxy_get_header_map_pairs, (a: i32, b: i32, d: i32));
    wrap!(linker, "env", "proxy_set_header_map_pairs", proxy_set_header_map_pairs, (a: i32, b: i32, d: i32));
    wrap!(linker, "env", "proxy_get_header_map_value", proxy_get_header_map_value, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_add_header_map_value", proxy_add_header_map_value, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_replace_header_map_value", proxy_replace_header_map_value, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_remove_header_map_value", proxy_remove_header_map_value, (a: i32, b: i32, d: i32));
    wrap!(linker, "env", "proxy_get_property", proxy_get_property, (a: i32, b: i32, d: i32, e: i32));
    wrap!(linker, "env", "proxy_set_property", proxy_set_property, (a: i32, b: i32, d: i32, e: i32));
    wrap!(linker, "env", "proxy_get_shared_data", proxy_get_shared_data, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_set_shared_data", proxy_set_shared_data, (a: i32, b: i32, d: i32, e: i32, g: i32));
    wrap!(linker, "env", "proxy_continue_stream", proxy_continue_stream, (a: i32));
    wrap!(linker, "env", "proxy_close_stream", proxy_close_stream, (a: i32));
    wrap!(linker, "env", "proxy_send_local_response", proxy_send_local_response,
        (a: i32, b: i32, d: i32, e: i32, g: i32, h: i32, i: i32, j: i32));
    wrap!(linker, "env", "proxy_set_effective_context", proxy_set_effective_context, (a: i32));
    wrap!(linker, "env", "proxy_done", proxy_done, ());
    wrap!(linker, "env", "proxy_define_metric", proxy_define_metric, (a: i32, b: i32, d: i32, e: i32));
    wrap!(linker, "env", "proxy_increment_metric", proxy_increment_metric, (a: i32, b: i64));
    wrap!(linker, "env", "proxy_record_metric", proxy_record_metric, (a: i32, b: i64));
    wrap!(linker, "env", "proxy_get_metric", proxy_get_metric, (a: i32, b: i32));

    stub!(linker, "proxy_http_call", (a, b, d, e, g, h, i, j, k, l));
    stub!(
        linker,
        "proxy_grpc_call",
        (a, b, d, e, g, h, i, j, k, l, m, n)
    );
    stub!(linker, "proxy_grpc_stream", (a, b, d, e, g, h, i, j, k));
    stub!(linker, "proxy_grpc_send", (a, b, d, e));
    stub!(linker, "proxy_grpc_cancel", (a));
    stub!(linker, "proxy_grpc_close", (a));
    stub!(linker, "proxy_get_status", (a, b, d));
    stub!(linker, "proxy_register_shared_queue", (a, b, d));
    stub!(linker, "proxy_resolve_shared_queue", (a, b, d, e, g));
    stub!(linker, "proxy_enqueue_shared_queue", (a, b, d));
    stub!(linker, "proxy_dequeue_shared_queue", (a, b, d));
    stub!(linker, "proxy_call_foreign_function", (a, b, d, e, g, h));

    wrap!(linker, "wasi_snapshot_preview1", "fd_write", fd_write, (a: i32, b: i32, d: i32, e: i32));
    wrap!(linker, "wasi_snapshot_preview1", "clock_time_get", clock_time_get, (a: i32, b: i64, d: i32));
    wrap!(linker, "wasi_snapshot_preview1", "random_get", random_get, (a: i32, b: i32));
    wrap!(linker, "wasi_snapshot_preview1", "environ_sizes_get", environ_sizes_get, (a: i32, b: i32));
    wrap!(linker, "wasi_snapshot_preview1", "args_sizes_get",
        |c: &mut C<'_>, a, b| two_zeros(c, "wasi_snapshot_preview1.args_sizes_get", a, b), (a: i32, b: i32));
    wrap!(linker, "wasi_snapshot_preview1", "environ_get", environ_get, (a: i32, b: i32));
    wrap!(linker, "wasi_snapshot_preview1", "args_get",
        |_: &mut C<'_>, _: i32, _: i32| Ok(WASI_SUCCESS), (a: i32, b: i32));
    wrap!(
        linker,
        "wasi_snapshot_preview1",
        "sched_yield",
        |_: &mut C<'_>| Ok(WASI_SUCCESS),
        ()
    );
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "proc_exit",
        |mut caller: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
            Err(misuse(
                &mut caller,
                "wasi_snapshot_preview1.proc_exit",
                format!("the filter exited with code {code}"),
            ))
        },
    )?;
    Ok(())
}

/// Links an import this host does not implement (only used for WASI) to a
/// function that traps with `Unsupported`.
pub(crate) fn define_unsupported(
    linker: &mut Linker<HostState>,
    module: &str,
    name: &str,
    ty: wasmtime::FuncType,
) -> wasmtime::Result<()> {
    let call = format!("{module}.{name}");
    linker.func_new(module, name, ty, move |mut caller, _params, _results| {
        Err(unsupported(&mut caller, &call))
    })?;
    Ok(())
}
