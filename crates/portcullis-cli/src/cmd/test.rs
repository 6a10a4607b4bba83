//! `portcullis test`: run policy test files on the filter under wasmtime or
//! on the core.

use std::path::PathBuf;
use std::time::Instant;

use portcullis_cli::filter::{default_cache_dir, wasm_engine, Filter};
use portcullis_cli::{collect, describe_failure, run_file, CaseResult, Engine};
use portcullis_host::{CacheOutcome, ModuleCache};
use serde::Serialize;

use crate::style::Style;
use crate::Outcome;

/// The test files run when none are given (when they exist here): the
/// corpus folders, as every engine finds them.
const DEFAULT_PATHS: [&str; 2] = portcullis_harness::corpus::FOLDERS;

/// Run policy test files (policy-tests-v1) against the shipping filter under
/// wasmtime (default) or the native core.
///
/// The filter is --filter FILE, else $PORTCULLIS_FILTER, else the one
/// embedded in this binary (`portcullis --version` names its sha256). Its
/// compiled form is cached in --cache-dir.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The engine that runs the cases.
    #[arg(long, value_enum, default_value_t = EngineName::Wasm)]
    engine: EngineName,
    /// The filter module to run instead of the embedded one.
    #[arg(long, value_name = "FILE.wasm", env = "PORTCULLIS_FILTER")]
    filter: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Where compiled modules are cached [default: $XDG_CACHE_HOME/portcullis
    /// or ~/.cache/portcullis].
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the filter without reading or writing the cache.
    #[arg(long)]
    no_cache: bool,
    /// Test files, or directories of them [default: tests/corpus and
    /// policy-samples, those that exist in the current directory].
    #[arg(value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineName {
    /// The shipping filter under wasmtime, as Envoy runs it.
    Wasm,
    /// The native core.
    Core,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Failures with a diff, then a summary.
    Text,
    /// One JSON document with every case.
    Json,
}

/// `--format json`.
#[derive(Serialize)]
struct Report<'a> {
    engine: &'static str,
    /// The filter run (the wasm engine only).
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<FilterReport>,
    files: usize,
    passed: usize,
    failed: usize,
    compile_ms: f64,
    run_ms: f64,
    cases: Vec<CaseReport<'a>>,
}

#[derive(Serialize)]
struct FilterReport {
    sha256: String,
    /// `embedded` or the file.
    source: String,
    /// `hit`, `stored`, `replaced`, `not-stored`, or null without a cache.
    cache: Option<&'static str>,
}

#[derive(Serialize)]
struct CaseReport<'a> {
    file: String,
    line: u32,
    name: &'a str,
    pass: bool,
    error: Option<&'a str>,
    mismatches: Vec<MismatchReport<'a>>,
    trace: &'a str,
}

#[derive(Serialize)]
struct MismatchReport<'a> {
    field: &'a str,
    expected: &'a str,
    seen: &'a str,
}

impl<'a> CaseReport<'a> {
    fn new(r: &'a CaseResult) -> CaseReport<'a> {
        CaseReport {
            file: r.file.display().to_string(),
            line: r.line,
            name: &r.name,
            pass: r.passed(),
            error: r.error.as_deref(),
            mismatches: r
                .mismatches
                .iter()
                .map(|m| MismatchReport {
                    field: &m.field,
                    expected: &m.expected,
                    seen: &m.seen,
                })
                .collect(),
            trace: &r.trace,
        }
    }
}

/// Milliseconds to one decimal.
fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

pub(crate) fn run(args: Args, style: &Style) -> Outcome {
    let paths = if args.paths.is_empty() {
        let here: Vec<PathBuf> = DEFAULT_PATHS
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect();
        if here.is_empty() {
            return Err(format!(
                "no test files given, and neither {} is in this directory",
                DEFAULT_PATHS.join(" nor ")
            ));
        }
        here
    } else {
        args.paths
    };
    let t0 = Instant::now();
    let (engine, filter) = match args.engine {
        EngineName::Core => (Engine::Core, None),
        EngineName::Wasm => {
            let filter = Filter::resolve(args.filter.as_deref())?;
            let cache = if args.no_cache {
                None
            } else {
                args.cache_dir
                    .or_else(default_cache_dir)
                    .map(ModuleCache::new)
            };
            let (engine, outcome) = wasm_engine(&filter, cache.as_ref())?;
            (engine, Some((filter, outcome)))
        }
    };
    let compile = t0.elapsed();
    let files = collect(&paths)?;
    let t1 = Instant::now();
    let mut results = Vec::new();
    for f in &files {
        results.extend(run_file(&engine, f));
    }
    let run = t1.elapsed();
    let failed = results.iter().filter(|r| !r.passed()).count();
    let passed = results.len() - failed;
    if args.format == Format::Json {
        let report = Report {
            engine: engine.name(),
            filter: filter.as_ref().map(|(f, o)| FilterReport {
                sha256: f.sha256.clone(),
                source: f.origin.describe(),
                cache: o.as_ref().map(CacheOutcome::as_str),
            }),
            files: files.len(),
            passed,
            failed,
            compile_ms: ms(compile),
            run_ms: ms(run),
            cases: results.iter().map(CaseReport::new).collect(),
        };
        let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        for r in results.iter().filter(|r| !r.passed()) {
            print!(
                "{}",
                describe_failure(r).replacen("FAIL", &style.red("FAIL"), 1)
            );
        }
        if let Some((f, outcome)) = &filter {
            println!(
                "filter sha256:{} ({}), {} in {:.0} ms",
                f.sha256,
                f.origin.describe(),
                outcome
                    .as_ref()
                    .map_or_else(|| "compiled (no cache)".to_string(), ToString::to_string),
                compile.as_secs_f64() * 1e3
            );
        }
        println!(
            "engine {}: {} files, cases ran in {:.0} ms",
            engine.name(),
            files.len(),
            run.as_secs_f64() * 1e3
        );
        println!("{passed} passed, {failed} failed");
    }
    Ok(failed == 0)
}
