//! The check behind the `replay_logs` fuzz target, included by path both by
//! that target and by `crates/portcullis-replay/tests/fuzz_replay.rs`, which
//! replays the committed inputs under `cargo test`.
//!
//! Invariants, on any bytes (as a log, and gzipped):
//! - nothing panics, and reading twice gives the same items;
//! - every item's line lies inside the input;
//! - every record read is judged by two policies and counted, and the
//!   report's groups, unchanged and not-judged counts add up to the records.

use std::ops::ControlFlow;

use portcullis_core::Policy;
use portcullis_replay::read::{self, Item};
use portcullis_replay::{Loc, Side, Tally};

const OLD: &str = r#"{"name":"old","client_ip":{"from":"x-forwarded-for","trusted_proxies":["147.243.0.0/16"]},
 "network":{"rules":[{"name":"fe","priority":100,"access":"allow","source":["65.52.10.20"],"destination_ports":["443"]},
 {"name":"lan","priority":200,"access":"allow","source":["10.0.0.0/8"]}],"default_access":"deny"}}"#;
const NEW: &str = r#"{"name":"new","network":{"rules":[{"name":"lan","priority":100,"access":"allow","source":["10.0.0.0/8"]}],"default_access":"deny"},
 "https_only":{"action":"reject"},"require_headers":[{"name":"x-azure-fdid","values":["fd"]}],
 "scopes":[{"name":"api","match":{"hosts":["api.example.com"],"paths":["/orders/*"]},"network":{"rules":[{"name":"any","priority":100,"access":"allow","source":["*"]}]}}]}"#;

fn items(data: &[u8]) -> Result<(Vec<String>, Tally, Tally), String> {
    let (Ok(old), Ok(new)) = (Policy::parse(OLD.as_bytes()), Policy::parse(NEW.as_bytes())) else {
        return Err("the check's policies do not parse".into());
    };
    let lines = u64::try_from(data.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u64::MAX) + 1;
    let mut seen = Vec::new();
    let mut pair = Tally::default();
    let mut recorded = Tally::default();
    let mut bad = None;
    let result = read::read_bytes(data, &mut |line, item| {
        if line == 0 || line > lines {
            bad = Some(format!("line {line} outside {lines} lines"));
        }
        let at = Loc { file: 0, line };
        match &item {
            Item::Record(r) => {
                pair.add(Side::Policy(&old), &new, r, at);
                recorded.add(Side::Recorded, &new, r, at);
            }
            Item::Skip(u) => {
                pair.skipped(*u);
                recorded.skipped(*u);
            }
            Item::Malformed(_) => {}
        }
        seen.push(format!("{line} {item:?}"));
        ControlFlow::Continue(())
    });
    if let Some(b) = bad {
        return Err(b);
    }
    if let Err(e) = result {
        if e.line > lines {
            return Err(format!("error at line {} outside {lines} lines", e.line));
        }
        seen.push(format!("error {e}"));
    }
    for (t, side) in [(&pair, Side::Policy(&old)), (&recorded, Side::Recorded)] {
        let r = t.report(&["log".to_string()], side, &new);
        let not_judged: u64 = r.not_judged.iter().map(|u| u.records).sum();
        let total = r.newly_denied_records() + r.newly_allowed_records() + r.unchanged + not_judged;
        if total != r.records {
            return Err(format!(
                "groups add up to {total}, not {} records",
                r.records
            ));
        }
    }
    // Split record by record over three workers: the same tally.
    let parts = read::read_parallel_in(&mut &data[..], 3, 1, &Tally::default, &|t, line, item| {
        match &item {
            Item::Record(r) => t.add(Side::Policy(&old), &new, r, Loc { file: 0, line }),
            Item::Skip(u) => t.skipped(*u),
            Item::Malformed(_) => {}
        }
        ControlFlow::Continue(())
    });
    if let Ok(parts) = parts {
        let mut merged = Tally::default();
        for p in &parts {
            merged.merge(p);
        }
        if merged != pair {
            return Err("three workers tally otherwise than one".into());
        }
    } else if result_ok(data) {
        return Err("the parallel read failed where the plain one did not".into());
    }
    Ok((seen, pair, recorded))
}

fn result_ok(data: &[u8]) -> bool {
    read::read_bytes(data, &mut |_, _| ControlFlow::Continue(())).is_ok()
}

/// The check: any bytes as a log, then the same bytes gzipped.
pub fn check_log(data: &[u8]) -> Result<(), String> {
    let (a, ta, ra) = items(data)?;
    let (b, tb, rb) = items(data)?;
    if a != b || ta != tb || ra != rb {
        return Err("two reads differ".into());
    }
    // Gzipped, through the same opener the CLI uses: the same items.
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(data).map_err(|e| e.to_string())?;
        e.finish().map_err(|e| e.to_string())?;
    }
    let mut r = read::from_reader(Box::new(std::io::Cursor::new(gz))).map_err(|e| e.to_string())?;
    let mut n = 0usize;
    let _ = read::read(&mut *r, &mut |_, _| {
        n += 1;
        ControlFlow::Continue(())
    });
    let plain = a.iter().filter(|s| !s.starts_with("error ")).count();
    if n != plain {
        return Err(format!("gzipped: {n} items, plain: {plain}"));
    }
    Ok(())
}
