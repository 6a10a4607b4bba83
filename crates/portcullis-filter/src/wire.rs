//! The proxy-wasm header-map wire format, read and written without panics.
//!
//! The SDK's own `get_map_bytes` builds a `String` from every header name
//! and unwraps, so a non-UTF-8 name (or a truncated buffer) would trap the
//! VM. This module parses the host's buffer in place instead: names and
//! values stay bytes, and a malformed buffer yields the pairs that were
//! whole plus a flag, never a panic.
//!
//! Layout (little-endian): `u32 count`, then `count` pairs of
//! `u32 name_len, u32 value_len`, then for each pair `name \0 value \0`.

use core::ops::Range;

use portcullis_core::Headers;

/// Header pairs that borrow from the host's serialized buffer.
#[derive(Debug, Default)]
pub struct HeaderMap {
    buf: Vec<u8>,
    pairs: Vec<(Range<usize>, Range<usize>)>,
    malformed: bool,
}

fn read_u32(buf: &[u8], at: usize) -> Option<usize> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = buf.get(at..end)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(b)).ok()
}

impl HeaderMap {
    /// Parses a serialized map. A buffer that is cut short or inconsistent
    /// keeps the pairs that were complete and sets [`HeaderMap::malformed`].
    pub fn parse(buf: Vec<u8>) -> HeaderMap {
        let mut map = HeaderMap {
            buf: Vec::new(),
            pairs: Vec::new(),
            malformed: false,
        };
        if buf.is_empty() {
            map.buf = buf;
            return map;
        }
        map.malformed = !map.fill(&buf);
        map.buf = buf;
        map
    }

    /// Reads the pairs; false when the buffer is malformed.
    fn fill(&mut self, buf: &[u8]) -> bool {
        let Some(count) = read_u32(buf, 0) else {
            return false;
        };
        // Each pair needs 8 bytes of sizes and 2 terminators: a count larger
        // than the buffer allows is a lie, and must not drive an allocation.
        if count > buf.len() / 10 {
            return false;
        }
        let Some(mut data) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
            return false;
        };
        self.pairs.reserve(count);
        for i in 0..count {
            let sizes = 4 + i * 8;
            let (Some(nlen), Some(vlen)) = (read_u32(buf, sizes), read_u32(buf, sizes + 4)) else {
                return false;
            };
            let Some(name) = span(buf, data, nlen) else {
                return false;
            };
            let Some(value) = span(buf, name.end + 1, vlen) else {
                return false;
            };
            data = value.end + 1;
            self.pairs.push((name, value));
        }
        true
    }

    /// Whether the host's buffer was malformed (the complete pairs are kept).
    pub fn malformed(&self) -> bool {
        self.malformed
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Every pair, in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.pairs.iter().map(|(n, v)| {
            (
                self.buf.get(n.clone()).unwrap_or_default(),
                self.buf.get(v.clone()).unwrap_or_default(),
            )
        })
    }

    /// The first value of `name` (matched case-insensitively), e.g. `:path`.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// `len` bytes at `start`, followed by a NUL terminator, inside `buf`.
fn span(buf: &[u8], start: usize, len: usize) -> Option<Range<usize>> {
    let end = start.checked_add(len)?;
    match buf.get(end) {
        Some(0) => Some(start..end),
        _ => None,
    }
}

impl Headers for HeaderMap {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self.iter() {
            if n.eq_ignore_ascii_case(name.as_bytes()) {
                f(v);
            }
        }
    }

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        for (n, _) in self.iter() {
            f(n);
        }
    }
}

/// Serializes pairs in the same layout, for `proxy_send_local_response`.
/// Returns `None` if a length does not fit the format's `u32`.
pub fn serialize<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Option<Vec<u8>> {
    let mut size: usize = 4;
    for (n, v) in pairs {
        size = size
            .checked_add(n.as_ref().len())?
            .checked_add(v.as_ref().len())?
            .checked_add(10)?;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&u32::try_from(pairs.len()).ok()?.to_le_bytes());
    for (n, v) in pairs {
        out.extend_from_slice(&u32::try_from(n.as_ref().len()).ok()?.to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.as_ref().len()).ok()?.to_le_bytes());
    }
    for (n, v) in pairs {
        out.extend_from_slice(n.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs(m: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
        m.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn round_trip_with_non_utf8_names_and_values() {
        let input: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b"x-\xff-name", b"\xfe\x00inner-nul"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"x-forwarded-for", b"5.6.7.8, 9.9.9.9"),
            (b"empty", b""),
        ];
        let buf = serialize(&input).unwrap();
        let m = HeaderMap::parse(buf);
        assert!(!m.malformed());
        // The lengths are authoritative: a NUL inside a value stays in it.
        let got = pairs(&m);
        let want: Vec<(Vec<u8>, Vec<u8>)> = input
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(m.first(":METHOD"), Some(&b"GET"[..]));
        let mut xff = Vec::new();
        m.each_value("x-forwarded-for", &mut |v| xff.push(v.to_vec()));
        assert_eq!(xff, vec![b"1.2.3.4".to_vec(), b"5.6.7.8, 9.9.9.9".to_vec()]);
    }

    #[test]
    fn empty_buffer_is_an_empty_map() {
        let m = HeaderMap::parse(Vec::new());
        assert!(m.is_empty());
        assert!(!m.malformed());
        let m = HeaderMap::parse(serialize::<&[u8], &[u8]>(&[]).unwrap());
        assert!(m.is_empty());
        assert!(!m.malformed());
    }

    #[test]
    fn every_truncation_is_handled_without_panic() {
        let input: Vec<(&[u8], &[u8])> = vec![
            (b"a", b"1"),
            (b"bb", b"22"),
            (b"x-forwarded-for", b"10.0.0.1"),
        ];
        let buf = serialize(&input).unwrap();
        for cut in 0..buf.len() {
            let m = HeaderMap::parse(buf[..cut].to_vec());
            assert!(cut == 0 || m.malformed(), "cut at {cut} not flagged");
            assert!(m.len() <= input.len());
            // Whatever was kept is a prefix of the real pairs.
            for (i, (n, v)) in m.iter().enumerate() {
                assert_eq!((n, v), input[i]);
            }
        }
    }

    #[test]
    fn lying_sizes_and_counts_are_malformed() {
        // Count says a billion pairs.
        let mut buf = serialize(&[(b"a".as_slice(), b"1".as_slice())]).unwrap();
        buf[..4].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        let m = HeaderMap::parse(buf);
        assert!(m.malformed());
        assert!(m.is_empty());
        // Name length runs past the end.
        let mut buf = serialize(&[(b"a".as_slice(), b"1".as_slice())]).unwrap();
        buf[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::parse(buf).malformed());
        // Missing terminator.
        let mut buf = serialize(&[(b"a".as_slice(), b"1".as_slice())]).unwrap();
        let at = buf.len() - 3;
        buf[at] = b'!';
        assert!(HeaderMap::parse(buf).malformed());
    }

    #[test]
    fn serialize_layout_is_the_proxy_wasm_one() {
        let buf = serialize(&[("ab", b"c".to_vec())]).unwrap();
        assert_eq!(
            buf,
            [
                &1u32.to_le_bytes()[..],
                &2u32.to_le_bytes(),
                &1u32.to_le_bytes(),
                b"ab\0c\0"
            ]
            .concat()
        );
    }
}
