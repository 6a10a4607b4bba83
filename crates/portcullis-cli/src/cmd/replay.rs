//! `portcullis replay OLD NEW LOG...` (or `--policy NEW LOG...`): recorded
//! requests and flows decided by both policies (or NEW and the log's own
//! decisions) through the core; the judgement, the readers and the report
//! are `portcullis-replay`'s, this module opens files, shows progress and
//! prints.

use std::io::{IsTerminal as _, Read};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::Policy;
use portcullis_replay::read::{self, Item};
use portcullis_replay::{time, Loc, Report, Side, Tally, Unjudged, Window};

use super::diff::{load, Format};

/// Arguments of `portcullis replay`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Replay recorded traffic (flow logs, access logs, traces) against a candidate policy",
    after_help = "Logs: Azure NSG flow logs (v1, v2), VNet flow logs, the Envoy replay format, \
Portcullis JSON traces, App Service logs (JSON lines); gzip and `-` (stdin) accepted. See docs/replay.md."
)]
pub(crate) struct ReplayArgs {
    /// OLD NEW LOG... (with --policy: LOG...).
    #[arg(required = true, value_name = "OLD NEW LOG")]
    pub args: Vec<String>,
    /// Compare NEW with the decision each record says was taken, instead
    /// of with an OLD policy.
    #[arg(long, value_name = "NEW")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit with status 1 when the replay observed a change of this kind.
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// Leave out records before this time (RFC 3339, or seconds since the epoch).
    #[arg(long)]
    pub since: Option<String>,
    /// Leave out records after this time.
    #[arg(long)]
    pub until: Option<String>,
    /// Skip and count malformed records instead of stopping at the first.
    #[arg(long)]
    pub keep_going: bool,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Some observed flow allowed by OLD is denied by NEW.
    ObservedNewlyDenied,
    /// Some observed flow denied by OLD is allowed by NEW.
    ObservedNewlyAllowed,
    /// Either.
    Any,
}

impl FailOn {
    /// Whether the report trips it.
    pub fn fires(self, r: &Report) -> bool {
        let (d, a) = (!r.newly_denied.is_empty(), !r.newly_allowed.is_empty());
        match self {
            FailOn::ObservedNewlyDenied => d,
            FailOn::ObservedNewlyAllowed => a,
            FailOn::Any => d || a,
        }
    }
}

/// Counts the bytes read from a file, for progress.
struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

/// Progress on stderr (MiB read), only when it is a terminal.
struct Progress {
    on: bool,
}

impl Progress {
    fn done(&self) {
        if self.on {
            eprint!("\r{:60}\r", "");
        }
    }
}

fn bound(s: &Option<String>, flag: &str) -> Result<Option<i64>, String> {
    match s {
        None => Ok(None),
        Some(t) => time::parse_bound(t).map(Some).ok_or_else(|| {
            format!("{flag} {t:?}: not a time (RFC 3339, e.g. 2026-12-01T10:00:00Z, or seconds since the epoch)")
        }),
    }
}

/// Runs the command: 0 when nothing fires, 1 when `--fail-on` fires, a
/// policy is invalid, a log cannot be read or holds a malformed record
/// (without `--keep-going`); 2 for usage errors.
pub(crate) fn run(a: &ReplayArgs) -> crate::Outcome {
    let window = Window {
        since: bound(&a.since, "--since")?,
        until: bound(&a.until, "--until")?,
    };
    let (old_path, new_path, logs): (Option<PathBuf>, PathBuf, &[String]) = match &a.policy {
        Some(p) => (None, p.clone(), &a.args),
        None => match a.args.as_slice() {
            [old, new, logs @ ..] if !logs.is_empty() => {
                (Some(PathBuf::from(old)), PathBuf::from(new), logs)
            }
            _ => return Err("replay needs OLD NEW LOG... (or --policy NEW LOG...)".to_string()),
        },
    };
    let new = match load(&new_path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("portcullis replay: {e}");
            return Ok(false);
        }
    };
    let old: Option<Policy> = match old_path.as_ref().map(load).transpose() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("portcullis replay: {e}");
            return Ok(false);
        }
    };
    let side = match &old {
        Some(p) => Side::Policy(p),
        None => Side::Recorded,
    };
    let mut tally = Tally::default();
    let bytes = Arc::new(AtomicU64::new(0));
    let progress = Progress {
        on: std::io::stderr().is_terminal(),
    };
    for (i, name) in logs.iter().enumerate() {
        let file = u32::try_from(i).unwrap_or(u32::MAX);
        let raw: Box<dyn Read + Send> = if name == "-" {
            Box::new(Counting {
                inner: std::io::stdin(),
                n: bytes.clone(),
            })
        } else {
            match std::fs::File::open(name) {
                Ok(f) => Box::new(Counting {
                    inner: f,
                    n: bytes.clone(),
                }),
                Err(e) => {
                    eprintln!("portcullis replay: {name}: {e}");
                    return Ok(false);
                }
            }
        };
        let mut input = match read::from_reader(raw) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("portcullis replay: {name}: {e}");
                return Ok(false);
            }
        };
        // This thread scans; the workers parse and judge (all cores).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let keep_going = a.keep_going;
        let new = &new;
        let done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            if progress.on {
                let (done, bytes) = (&done, &bytes);
                scope.spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(200));
                        let mib = bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
                        eprint!("\rreplay: {name}: {mib:.1} MiB read   ");
                    }
                });
            }
            let r = read::read_parallel(
                &mut *input,
                threads,
                &|| (Tally::default(), None::<(u64, String)>),
                &|(tally, stop), line, item| {
                    match item {
                        Item::Record(r) if !window.holds(r.time) => tally.outside(),
                        Item::Record(r) => tally.add(side, new, &r, Loc { file, line }),
                        Item::Skip(why) => tally.skipped(why),
                        Item::Malformed(_) if keep_going => tally.skipped(Unjudged::Malformed),
                        Item::Malformed(m) => {
                            *stop = Some((line, m));
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                },
            );
            done.store(true, Ordering::Relaxed);
            r
        });
        progress.done();
        let states = match result {
            Ok(s) => s,
            Err(e) => {
                eprintln!("portcullis replay: {name}:{e}");
                if !a.keep_going {
                    return Ok(false);
                }
                tally.skipped(Unjudged::Malformed);
                continue;
            }
        };
        // The first malformed record, in input order.
        if let Some((line, m)) = states
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .min_by_key(|s| s.0)
        {
            eprintln!(
                "portcullis replay: {name}:{line}: {m} (--keep-going skips and counts malformed records)"
            );
            return Ok(false);
        }
        for (t, _) in &states {
            tally.merge(t);
        }
    }
    let report = tally.report(logs, side, &new);
    let text = match a.format {
        Format::Text => report.to_string(),
        Format::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(!matches!(a.fail_on, Some(f) if f.fires(&report)))
}
