//! Header maps with Envoy's semantics, and the proxy-wasm map serialization.

/// Header name/value pairs, names and values as bytes.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// An ordered multimap of headers. Names are stored lowercased (Envoy keeps
/// `LowerCaseString` keys), values verbatim (they need not be UTF-8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HeaderMap {
    pairs: Headers,
}

impl HeaderMap {
    pub(crate) fn from_pairs<'a, I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut map = HeaderMap::default();
        for (k, v) in pairs {
            map.add(k, v);
        }
        map
    }

    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
    }

    pub(crate) fn pairs(&self) -> &Headers {
        &self.pairs
    }

    pub(crate) fn into_pairs(self) -> Headers {
        self.pairs
    }

    /// First value of `name` (case-insensitive), like Envoy's
    /// `getHeaderMapValue`.
    pub(crate) fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// All values of `name`, in order.
    pub(crate) fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Appends a new entry (never merges with an existing one).
    pub(crate) fn add(&mut self, name: &[u8], value: &[u8]) {
        self.pairs.push((name.to_ascii_lowercase(), value.to_vec()));
    }

    /// Sets the value of `name`: the first entry is overwritten in place, the
    /// others are removed; appended when absent.
    pub(crate) fn replace(&mut self, name: &[u8], value: &[u8]) {
        let mut seen = false;
        self.pairs.retain_mut(|(k, v)| {
            if !k.eq_ignore_ascii_case(name) {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            *v = value.to_vec();
            true
        });
        if !seen {
            self.add(name, value);
        }
    }

    /// Removes every entry of `name`.
    pub(crate) fn remove(&mut self, name: &[u8]) {
        self.pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    /// Replaces the whole map.
    pub(crate) fn set_all(&mut self, pairs: Headers) {
        self.pairs.clear();
        for (k, v) in pairs {
            self.pairs.push((k.to_ascii_lowercase(), v));
        }
    }

    pub(crate) fn serialize(&self) -> Vec<u8> {
        serialize(&self.pairs)
    }
}

/// Serializes pairs as proxy-wasm does: a u32 count, then a (name length,
/// value length) u32 pair per entry, then each name and value followed by
/// a NUL byte. All integers little-endian.
pub(crate) fn serialize(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()).to_le_bytes());
        out.extend_from_slice(&len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    // Lengths come from guest memory (< 4 GiB) or test inputs; saturate
    // rather than wrap if a caller ever builds something larger.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Parses a serialized map. Accepts the empty encodings the spec allows
/// (zero bytes, a single NUL byte). Never panics on malformed input.
pub(crate) fn deserialize(bytes: &[u8]) -> Result<Headers, String> {
    if bytes.is_empty() || bytes == [0] {
        return Ok(Vec::new());
    }
    let count = read_u32(bytes, 0).ok_or("serialized map shorter than its 4-byte count")? as usize;
    let table_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            format!(
                "serialized map claims {count} entries but has only {} bytes",
                bytes.len()
            )
        })?;
    let mut pairs = Vec::with_capacity(count);
    let mut p = table_end;
    for i in 0..count {
        let at = 4 + i * 8;
        let klen = read_u32(bytes, at).ok_or("truncated size table")? as usize;
        let vlen = read_u32(bytes, at + 4).ok_or("truncated size table")? as usize;
        let key =
            take(bytes, &mut p, klen).ok_or_else(|| format!("entry {i}: name out of bounds"))?;
        let value =
            take(bytes, &mut p, vlen).ok_or_else(|| format!("entry {i}: value out of bounds"))?;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    Ok(pairs)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Takes `len` bytes at `*p` plus their NUL terminator (which must be
/// present; its value is not checked, as hosts do not check it either).
fn take<'a>(bytes: &'a [u8], p: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = p.checked_add(len)?;
    let out = bytes.get(*p..end)?;
    bytes.get(end)?;
    *p = end + 1;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        HeaderMap::from_pairs(pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
    }

    fn strs(m: &HeaderMap) -> Vec<(String, String)> {
        m.pairs()
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn names_are_lowercased_and_lookup_is_case_insensitive() {
        let m = map(&[("X-Foo", "1"), ("x-foo", "2")]);
        assert_eq!(m.get(b"X-FOO"), Some(&b"1"[..]));
        assert_eq!(m.get_all(b"x-foo").count(), 2);
        assert_eq!(m.pairs()[0].0, b"x-foo");
    }

    #[test]
    fn replace_keeps_position_of_first_and_drops_the_rest() {
        let mut m = map(&[("a", "1"), ("b", "x"), ("c", "3"), ("B", "y")]);
        m.replace(b"B", b"z");
        assert_eq!(
            strs(&m),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "z".into()),
                ("c".into(), "3".into())
            ]
        );
        m.replace(b"new", b"v");
        assert_eq!(m.get(b"new"), Some(&b"v"[..]));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn remove_removes_all() {
        let mut m = map(&[("a", "1"), ("A", "2"), ("b", "3")]);
        m.remove(b"a");
        assert_eq!(strs(&m), vec![("b".into(), "3".into())]);
    }

    #[test]
    fn serialization_round_trips_and_matches_the_spec_example() {
        let pairs = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"22".to_vec()),
        ];
        let bytes = serialize(&pairs);
        assert_eq!(
            bytes,
            [
                2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'1', 0, b'b',
                0, b'2', b'2', 0
            ]
        );
        assert_eq!(deserialize(&bytes), Ok(pairs));
        assert_eq!(deserialize(&[]), Ok(vec![]));
        assert_eq!(deserialize(&[0]), Ok(vec![]));
        assert_eq!(deserialize(&[0, 0, 0, 0]), Ok(vec![]));
    }

    #[test]
    fn malformed_maps_are_errors() {
        assert!(deserialize(&[1, 0]).is_err());
        assert!(deserialize(&[255, 255, 255, 255]).is_err());
        let mut bytes = serialize(&[(b"k".to_vec(), b"v".to_vec())]);
        bytes.pop(); // missing final NUL
        assert!(deserialize(&bytes).is_err());
        // Length claims far beyond the buffer.
        let bytes = [1, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, b'x', 0];
        assert!(deserialize(&bytes).is_err());
    }
}
