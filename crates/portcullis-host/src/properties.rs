//! Properties served to `proxy_get_property`, encoded as Envoy encodes them.
//!
//! A path is a sequence of segments separated by NUL bytes (the Rust SDK's
//! `get_property(vec!["source", "address"])` sends `source\0address`). Like
//! Envoy, a dotted single segment (`"source.address"`) is *not* split: it is
//! looked up as a filter-set property and is normally not found.
//!
//! Encodings: strings as their bytes, integers as 8-byte little-endian
//! two's complement, booleans as one byte, timestamps as i64 nanoseconds
//! since the epoch, maps as serialized header maps.

use crate::headers::HeaderMap;
use crate::state::HostState;

/// How a path is shown in `Exchange::properties_read`/`properties_set`.
pub(crate) fn display_path(path: &[u8]) -> String {
    path.split(|b| *b == 0)
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(".")
}

fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Looks a property up. `None` means NotFound.
pub(crate) fn lookup(st: &HostState, path: &[u8]) -> Option<Vec<u8>> {
    // Values set by the filter shadow everything else (Envoy keeps them in
    // the stream's filter state and finds them by the same path).
    if let Some(ex) = st.http() {
        if let Some((_, v)) = ex.props_set.iter().rev().find(|(k, _)| k == path) {
            return Some(v.clone());
        }
    }
    if let Some((_, v)) = st.root_props.iter().rev().find(|(k, _)| k == path) {
        return Some(v.clone());
    }
    let segs: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    match segs.as_slice() {
        [b"plugin_name"] => return Some(st.opts.plugin_name.as_bytes().to_vec()),
        [b"plugin_root_id"] => return Some(st.opts.plugin_root_id.as_bytes().to_vec()),
        [b"plugin_vm_id"] => return Some(st.opts.plugin_vm_id.as_bytes().to_vec()),
        _ => {}
    }
    let ex = st.http()?;
    let req = &ex.req_headers;
    // Response data exists from the response phase on, or after a local reply.
    let resp = ex.resp_headers.as_ref();
    match segs.as_slice() {
        [b"source", b"address"] => Some(ex.peer.to_string().into_bytes()),
        [b"source", b"port"] => Some(int(i64::from(ex.peer.port()))),
        [b"destination", b"address"] => Some(ex.local.to_string().into_bytes()),
        [b"destination", b"port"] => Some(int(i64::from(ex.local.port()))),
        [b"connection", b"tls_version"] => ex.tls.then(|| b"TLSv1.3".to_vec()),
        [b"connection", b"mtls"] => Some(vec![0]),
        [b"connection", b"id"] => Some(u64::from(ex.id).to_le_bytes().to_vec()),
        [b"request", b"protocol"] => Some(ex.protocol.as_bytes().to_vec()),
        [b"request", b"time"] => Some(int(i64::try_from(ex.start_nanos).unwrap_or(i64::MAX))),
        [b"request", b"method"] => req.get(b":method").map(<[u8]>::to_vec),
        [b"request", b"path"] => req.get(b":path").map(<[u8]>::to_vec),
        [b"request", b"url_path"] => req.get(b":path").map(|p| split_query(p).0.to_vec()),
        [b"request", b"query"] => req.get(b":path").map(|p| split_query(p).1.to_vec()),
        [b"request", b"host"] => req.get(b":authority").map(<[u8]>::to_vec),
        [b"request", b"scheme"] => req.get(b":scheme").map(<[u8]>::to_vec),
        [b"request", b"useragent"] => req.get(b"user-agent").map(<[u8]>::to_vec),
        [b"request", b"referer"] => req.get(b"referer").map(<[u8]>::to_vec),
        [b"request", b"id"] => req.get(b"x-request-id").map(<[u8]>::to_vec),
        [b"request", b"headers"] => Some(req.serialize()),
        [b"request", b"headers", name] => joined(req, name),
        [b"response", b"code"] => resp.and_then(status_code).map(int),
        [b"response", b"headers"] => resp.map(HeaderMap::serialize),
        [b"response", b"headers", name] => resp.and_then(|m| joined(m, name)),
        _ => None,
    }
}

/// Envoy joins repeated headers with commas when one is read as a property.
fn joined(map: &HeaderMap, name: &[u8]) -> Option<Vec<u8>> {
    let mut values = map.get_all(name).peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(&b","[..]))
}

fn split_query(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().position(|b| *b == b'?') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, &[]),
    }
}

fn status_code(map: &HeaderMap) -> Option<i64> {
    std::str::from_utf8(map.get(b":status")?).ok()?.parse().ok()
}

/// Whether a path names something this host knows about (for hints only).
pub(crate) fn is_known(path: &[u8]) -> bool {
    let first = path.split(|b| *b == 0).next().unwrap_or_default();
    matches!(
        first,
        b"plugin_name"
            | b"plugin_root_id"
            | b"plugin_vm_id"
            | b"source"
            | b"destination"
            | b"connection"
            | b"request"
            | b"response"
    )
}
