//! Azure NSG flow logs (versions 1 and 2) and VNet flow logs
//! (`flowLogVersion` 4), streamed: a small JSON scanner keeps only the
//! stack of open containers and the string at hand, and every string of
//! an array under a `flowTuples` key is a record.
//!
//! Tuples: NSG `epoch,src,dst,sport,dport,T|U,I|O,A|D[,B|C|E,packets and
//! bytes...]` (epoch in seconds); VNet `epoch,src,dst,sport,dport,protocol
//! number,I|O,B|C|E|D[,encryption,packets and bytes...]` (epoch in
//! milliseconds, `D`: denied). Told apart by the protocol field. Only
//! inbound flows are judged, at layer 4.

use std::io::BufRead;
use std::net::IpAddr;
use std::ops::ControlFlow;

use portcullis_core::Transport;

use super::{Item, ReadError, MAX_LINE};
use crate::{FlowSeen, Observed, Record, Unjudged};

/// Deepest nesting read.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy)]
enum Frame {
    /// An object: whether the next string is a key, whether the current
    /// key is `flowTuples`.
    Obj { expect_key: bool, tuples: bool },
    /// An array: whether its strings are flow tuples.
    Arr { tuples: bool },
}

/// Reads a flow-log document.
pub fn read(
    r: &mut dyn BufRead,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    scan(r, &mut |line, s| f(line, tuple(s)))
}

/// Scans a flow-log document, handing every flow tuple string (not yet
/// parsed, see [`tuple()`]) to `f` with its line.
pub fn scan(
    r: &mut dyn BufRead,
    f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let mut stack: Vec<Frame> = Vec::with_capacity(MAX_DEPTH);
    let mut line: u64 = 1;
    let mut in_string = false;
    let mut escape = false;
    let mut s: Vec<u8> = Vec::new();
    let mut s_line = 1u64;
    let mut seen_root = false;
    let err = |line: u64, m: &str| ReadError {
        line,
        message: m.to_string(),
    };
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(line, &e.to_string())),
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        let mut i = 0usize;
        while let Some(&b) = buf.get(i) {
            // Inside a string, take the run of plain bytes at once.
            if in_string && !escape {
                let rest = buf.get(i..).unwrap_or_default();
                let k = rest
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c == b'\n')
                    .unwrap_or(rest.len());
                // A whole string in this buffer: handed over without a copy.
                if s.is_empty() && rest.get(k) == Some(&b'"') {
                    let whole = rest.get(..k).unwrap_or_default();
                    if k > MAX_LINE {
                        return Err(err(s_line, "string longer than 1 MiB"));
                    }
                    in_string = false;
                    i += k + 1;
                    if let ControlFlow::Break(()) = string_done(&mut stack, whole, s_line, f) {
                        return Ok(());
                    }
                    continue;
                }
                if k > 0 {
                    if s.len().saturating_add(k) > MAX_LINE {
                        return Err(err(s_line, "string longer than 1 MiB"));
                    }
                    s.extend_from_slice(rest.get(..k).unwrap_or_default());
                    i += k;
                    continue;
                }
            }
            i += 1;
            if in_string {
                if escape {
                    escape = false;
                    s.push(b);
                } else if b == b'\\' {
                    escape = true;
                    s.push(b);
                } else if b == b'"' {
                    in_string = false;
                    if let ControlFlow::Break(()) = string_done(&mut stack, &s, s_line, f) {
                        return Ok(());
                    }
                } else if b == b'\n' {
                    return Err(err(line, "unterminated string"));
                } else {
                    if s.len() >= MAX_LINE {
                        return Err(err(s_line, "string longer than 1 MiB"));
                    }
                    s.push(b);
                }
                continue;
            }
            match b {
                b'\n' => line += 1,
                b' ' | b'\t' | b'\r' => {}
                b'"' => {
                    in_string = true;
                    s.clear();
                    s_line = line;
                }
                b'{' | b'[' => {
                    if stack.is_empty() && seen_root {
                        return Err(err(line, "more than one JSON document"));
                    }
                    seen_root = true;
                    if stack.len() >= MAX_DEPTH {
                        return Err(err(line, "nested too deep"));
                    }
                    let frame = if b == b'{' {
                        Frame::Obj {
                            expect_key: true,
                            tuples: false,
                        }
                    } else {
                        let tuples = matches!(
                            stack.last(),
                            Some(Frame::Obj {
                                expect_key: false,
                                tuples: true
                            })
                        );
                        Frame::Arr { tuples }
                    };
                    stack.push(frame);
                }
                b'}' => match stack.pop() {
                    Some(Frame::Obj { .. }) => {}
                    _ => return Err(err(line, "unexpected '}'")),
                },
                b']' => match stack.pop() {
                    Some(Frame::Arr { .. }) => {}
                    _ => return Err(err(line, "unexpected ']'")),
                },
                b',' => {
                    if let Some(Frame::Obj { expect_key, tuples }) = stack.last_mut() {
                        *expect_key = true;
                        *tuples = false;
                    }
                }
                b':' => {}
                b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' => {
                    if stack.is_empty() {
                        return Err(err(line, "not a JSON document"));
                    }
                }
                _ => return Err(err(line, "not JSON")),
            }
        }
        r.consume(n);
    }
    if in_string || !stack.is_empty() {
        return Err(err(line, "unexpected end of the document"));
    }
    Ok(())
}

fn string_done(
    stack: &mut [Frame],
    s: &[u8],
    line: u64,
    f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match stack.last_mut() {
        Some(Frame::Obj { expect_key, tuples }) if *expect_key => {
            *expect_key = false;
            *tuples = s == b"flowTuples";
            ControlFlow::Continue(())
        }
        Some(Frame::Arr { tuples: true }) => f(line, s),
        _ => ControlFlow::Continue(()),
    }
}

/// An address as `str::parse` reads it, IPv4 without the general parser:
/// four decimal octets of at most three digits, no leading zero, each at
/// most 255.
fn ip(b: &[u8]) -> Option<IpAddr> {
    if b.len() <= 15 && !b.contains(&b':') {
        let mut o = [0u8; 4];
        let mut k = 0usize;
        let mut v = 0u32;
        let mut digits = 0u32;
        let mut lead_zero = false;
        for &c in b {
            match c {
                b'0'..=b'9' => {
                    if digits == 0 {
                        lead_zero = c == b'0';
                    } else if lead_zero {
                        return None;
                    }
                    v = v * 10 + u32::from(c - b'0');
                    digits += 1;
                    if digits > 3 || v > 255 {
                        return None;
                    }
                }
                b'.' => {
                    if digits == 0 {
                        return None;
                    }
                    *o.get_mut(k)? = u8::try_from(v).ok()?;
                    k += 1;
                    v = 0;
                    digits = 0;
                }
                _ => return None,
            }
        }
        if digits == 0 || k != 3 {
            return None;
        }
        *o.get_mut(3)? = u8::try_from(v).ok()?;
        return Some(IpAddr::from(o));
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Decimal digits only (no sign), as a number that fits.
fn number<T: TryFrom<u64>>(b: &[u8]) -> Option<T> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    T::try_from(n).ok()
}

/// One flow tuple.
pub fn tuple(s: &[u8]) -> Item<'static> {
    let mut fields: [&[u8]; 8] = [&[]; 8];
    let mut rest = s;
    let mut count = 0usize;
    for slot in &mut fields {
        match rest.iter().position(|&c| c == b',') {
            Some(i) => {
                *slot = rest.get(..i).unwrap_or_default();
                rest = rest.get(i + 1..).unwrap_or_default();
                count += 1;
            }
            None => {
                *slot = rest;
                count += 1;
                break;
            }
        }
    }
    if count < 8 {
        return Item::Malformed(format!(
            "flow tuple has {count} fields, at least 8 expected"
        ));
    }
    let [epoch, src, dst, sport, dport, proto, dir, state] = fields;
    let Some(epoch) = number::<i64>(epoch) else {
        return Item::Malformed("flow tuple: bad time".into());
    };
    let (Some(sport), Some(dport)) = (number::<u16>(sport), number::<u16>(dport)) else {
        return Item::Malformed("flow tuple: bad port".into());
    };
    // NSG: T|U and A|D, seconds; VNet: a protocol number and B|C|E|D,
    // milliseconds.
    let (transport, time, allowed) = match proto {
        [p @ (b'T' | b'U')] => {
            let allowed = match state {
                [b'A'] => true,
                [b'D'] => false,
                _ => return Item::Malformed("flow tuple: decision is not A or D".into()),
            };
            let t = if *p == b'T' {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            (Some(t), epoch, allowed)
        }
        p if !p.is_empty() && p.iter().all(u8::is_ascii_digit) => {
            let allowed = match state {
                [b'B' | b'C' | b'E'] => true,
                [b'D'] => false,
                _ => return Item::Malformed("flow tuple: state is not B, C, E or D".into()),
            };
            let t = match p {
                b"6" => Some(Transport::Tcp),
                b"17" => Some(Transport::Udp),
                _ => None,
            };
            (t, epoch.div_euclid(1000), allowed)
        }
        _ => return Item::Malformed("flow tuple: protocol is not T, U or a number".into()),
    };
    match dir {
        [b'I'] => {}
        [b'O'] => return Item::Skip(Unjudged::Outbound),
        _ => return Item::Malformed("flow tuple: direction is not I or O".into()),
    }
    let (Some(src), Some(dst)) = (ip(src), ip(dst)) else {
        return Item::Skip(Unjudged::MalformedAddress);
    };
    let Some(transport) = transport else {
        return Item::Skip(Unjudged::Protocol);
    };
    Item::Record(Record {
        time: Some(time),
        recorded: Some(allowed),
        observed: Observed::Flow(FlowSeen {
            src,
            sport,
            dst,
            dport,
            transport,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::ip;

    #[test]
    fn ipv4_is_read_as_std_reads_it() {
        for s in [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..3.4",
            "",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.04",
            "10.0.1.4",
            "::1",
            "2001:db8::5",
            "::ffff:1.2.3.4",
            "1.2.3.-4",
            "999.1.1.1",
            "1.2.3.4a",
        ] {
            assert_eq!(ip(s.as_bytes()), s.parse().ok(), "{s:?}");
        }
        for a in 0..=255u32 {
            let s = format!("{a}.{}.{}.{}", 255 - a, a / 2, (a * 7) % 256);
            assert_eq!(ip(s.as_bytes()), s.parse().ok(), "{s}");
        }
    }
}
