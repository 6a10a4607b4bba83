//! The log readers (`std` feature): the input opened (a file, or `-` for
//! stdin; gzip detected from its first bytes), its format detected from
//! its content, and each record handed to a callback with its line.
//!
//! - a JSON document with `records` (Azure NSG flow logs v1/v2, VNet flow
//!   logs): streamed by [`flowlog`], every `flowTuples` string a record;
//! - otherwise JSON lines ([`lines`]), each line detected on its own: the
//!   Envoy replay format (`portcullis_log`), Portcullis's JSON trace
//!   (`would_verdict`), App Service logs (`CIp`).
//!
//! Memory is bounded whatever the input's size: one line (at most
//! [`MAX_LINE`] bytes) or one string of a flow log at a time.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::ControlFlow;

use crate::{Record, Unjudged};

pub mod flowlog;
pub mod lines;

/// The longest JSON line (and flow-log string) read.
pub const MAX_LINE: usize = 1 << 20;

/// How far into a file the format is looked for.
const SNIFF: usize = 64 * 1024;

/// What a reader hands over for one record.
#[derive(Debug)]
pub enum Item<'a> {
    /// A record to judge.
    Record(Record<'a>),
    /// A record that cannot be judged (outbound, another protocol, a
    /// malformed address).
    Skip(Unjudged),
    /// A malformed record: what is wrong (never a header value).
    Malformed(String),
}

/// An input that cannot be read on (I/O, or a broken document).
#[derive(Debug)]
pub struct ReadError {
    /// The line where reading stopped (0: before any).
    pub line: u64,
    /// What happened.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

impl std::error::Error for ReadError {}

/// The formats a file can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A flow-log document (NSG v1/v2, VNet).
    FlowLog,
    /// JSON lines of any of the line formats.
    Lines,
}

/// Opens `path` (`-`: stdin), ungzipping when it starts with gzip's magic
/// bytes.
pub fn open(path: &str) -> io::Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(std::fs::File::open(path)?)
    };
    from_reader(raw)
}

/// [`open`] for any reader.
pub fn from_reader(raw: Box<dyn Read + Send>) -> io::Result<Box<dyn BufRead + Send>> {
    let mut r = BufReader::with_capacity(SNIFF, raw);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    if gz {
        let d = flate2::bufread::MultiGzDecoder::new(r);
        Ok(Box::new(BufReader::with_capacity(SNIFF, d)))
    } else {
        Ok(Box::new(r))
    }
}

/// The format of an input, from its first bytes: a flow log names
/// `records` (and `flowTuples` or `flowRecords`) near its start.
pub fn detect(r: &mut dyn BufRead) -> io::Result<Format> {
    let head = r.fill_buf()?;
    let named = |w: &[u8]| head.windows(w.len()).any(|x| x == w);
    Ok(
        if named(b"\"records\"") && !head.starts_with(b"{\"portcullis_log\"") {
            Format::FlowLog
        } else {
            Format::Lines
        },
    )
}

/// Reads every record of an input (format detected), calling `f` with its
/// line (1-based) and what was found; `f` stops the reading with
/// `ControlFlow::Break`.
pub fn read(
    r: &mut dyn BufRead,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let format = detect(r).map_err(|e| ReadError {
        line: 0,
        message: e.to_string(),
    })?;
    match format {
        Format::FlowLog => flowlog::read(r, f),
        Format::Lines => lines::read(r, f),
    }
}

/// Reads a whole input held in memory (the playground, fuzzing).
pub fn read_bytes(
    bytes: &[u8],
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let mut r = bytes;
    read(&mut r, f)
}

/// Records per batch handed to a worker by [`read_parallel`].
const BATCH: usize = 4096;

/// Raw records (flow tuple strings or JSON lines) and their lines.
struct Batch {
    data: Vec<u8>,
    /// (end offset in `data`, line) of each record.
    units: Vec<(usize, u64)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            data: Vec::with_capacity(BATCH * 64),
            units: Vec::with_capacity(BATCH),
        }
    }
}

/// [`read`] on `threads` threads: this thread scans the input (format
/// detected) into batches of raw records, the workers parse them and call
/// `f` on their own state (made by `make`), which is returned, one per
/// worker, for the caller to merge. The records a worker sees are in input
/// order, but which worker sees which is not fixed: `f`'s state must merge
/// to the same result whatever the split (a [`crate::Tally`] does). `f`
/// stops the reading with `ControlFlow::Break` (other workers may have
/// handled later records by then).
pub fn read_parallel<T: Send>(
    r: &mut dyn BufRead,
    threads: usize,
    make: &(dyn Fn() -> T + Sync),
    f: &(dyn Fn(&mut T, u64, Item<'_>) -> ControlFlow<()> + Sync),
) -> Result<Vec<T>, ReadError> {
    read_parallel_in(r, threads, BATCH, make, f)
}

/// [`read_parallel`] with `batch` records per batch (tests split small
/// inputs with a batch of 1).
pub fn read_parallel_in<T: Send>(
    r: &mut dyn BufRead,
    threads: usize,
    batch: usize,
    make: &(dyn Fn() -> T + Sync),
    f: &(dyn Fn(&mut T, u64, Item<'_>) -> ControlFlow<()> + Sync),
) -> Result<Vec<T>, ReadError> {
    let per_batch = batch.max(1);
    if threads <= 1 {
        // One core: no copies, no channels.
        let mut state = make();
        read(r, &mut |line, item| f(&mut state, line, item))?;
        return Ok(vec![state]);
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::sync_channel;

    let format = detect(r).map_err(|e| ReadError {
        line: 0,
        message: e.to_string(),
    })?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(threads);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let (tx, rx) = sync_channel::<Batch>(2);
            senders.push(tx);
            let stop = &stop;
            workers.push(scope.spawn(move || {
                let mut state = make();
                for b in rx {
                    let mut start = 0usize;
                    for &(end, line) in &b.units {
                        let bytes = b.data.get(start..end).unwrap_or_default();
                        start = end;
                        let flow = match format {
                            Format::FlowLog => f(&mut state, line, flowlog::tuple(bytes)),
                            Format::Lines => {
                                lines::one(bytes, line, &mut |l, item| f(&mut state, l, item))
                            }
                        };
                        if flow.is_break() {
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                state
            }));
        }
        let mut batch = Batch::new();
        let mut next = 0usize;
        let mut send = |batch: &mut Batch| -> ControlFlow<()> {
            let full = std::mem::replace(batch, Batch::new());
            let to = senders.get(next % senders.len());
            next = next.wrapping_add(1);
            match to.map(|s| s.send(full)) {
                Some(Ok(())) if !stop.load(Ordering::Relaxed) => ControlFlow::Continue(()),
                _ => ControlFlow::Break(()),
            }
        };
        let mut unit = |line: u64, bytes: &[u8]| -> ControlFlow<()> {
            batch.data.extend_from_slice(bytes);
            batch.units.push((batch.data.len(), line));
            if batch.units.len() >= per_batch {
                return send(&mut batch);
            }
            ControlFlow::Continue(())
        };
        let scanned = match format {
            Format::FlowLog => flowlog::scan(r, &mut unit),
            Format::Lines => lines::scan(r, &mut unit),
        };
        if !batch.units.is_empty() {
            let _ = send(&mut batch);
        }
        drop(senders);
        let states: Vec<T> = workers.into_iter().filter_map(|w| w.join().ok()).collect();
        scanned.map(|()| states)
    })
}
