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
        for &b in buf {
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
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match stack.last_mut() {
        Some(Frame::Obj { expect_key, tuples }) if *expect_key => {
            *expect_key = false;
            *tuples = s == b"flowTuples";
            ControlFlow::Continue(())
        }
        Some(Frame::Arr { tuples: true }) => f(line, tuple(s)),
        _ => ControlFlow::Continue(()),
    }
}

/// One flow tuple.
pub fn tuple(s: &[u8]) -> Item<'static> {
    let Ok(s) = std::str::from_utf8(s) else {
        return Item::Malformed("flow tuple is not UTF-8".into());
    };
    let fields: Vec<&str> = s.split(',').collect();
    let [epoch, src, dst, sport, dport, proto, dir, state, ..] = fields.as_slice() else {
        return Item::Malformed(format!(
            "flow tuple has {} fields, at least 8 expected",
            fields.len()
        ));
    };
    let Ok(epoch) = epoch.parse::<i64>() else {
        return Item::Malformed("flow tuple: bad time".into());
    };
    let (Ok(sport), Ok(dport)) = (sport.parse::<u16>(), dport.parse::<u16>()) else {
        return Item::Malformed("flow tuple: bad port".into());
    };
    // NSG: T|U and A|D, seconds; VNet: a protocol number and B|C|E|D,
    // milliseconds.
    let (transport, time, allowed) = match *proto {
        "T" | "U" => {
            let allowed = match *state {
                "A" => true,
                "D" => false,
                _ => return Item::Malformed("flow tuple: decision is not A or D".into()),
            };
            let t = if *proto == "T" {
                Some(Transport::Tcp)
            } else {
                Some(Transport::Udp)
            };
            (t, epoch, allowed)
        }
        p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            let allowed = match *state {
                "B" | "C" | "E" => true,
                "D" => false,
                _ => return Item::Malformed("flow tuple: state is not B, C, E or D".into()),
            };
            let t = match p {
                "6" => Some(Transport::Tcp),
                "17" => Some(Transport::Udp),
                _ => None,
            };
            (t, epoch.div_euclid(1000), allowed)
        }
        _ => return Item::Malformed("flow tuple: protocol is not T, U or a number".into()),
    };
    match *dir {
        "I" => {}
        "O" => return Item::Skip(Unjudged::Outbound),
        _ => return Item::Malformed("flow tuple: direction is not I or O".into()),
    }
    let (Ok(src), Ok(dst)) = (src.parse::<IpAddr>(), dst.parse::<IpAddr>()) else {
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
