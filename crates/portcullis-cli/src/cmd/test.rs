//! `portcullis test`: run policy test files on the filter under wasmtime or
//! on the core.

use std::path::PathBuf;
use std::time::Instant;

use portcullis_cli::{collect, default_filter, describe_failure, run_file, CaseResult, Engine};
use serde::Serialize;

use crate::style::Style;
use crate::Outcome;

/// Run policy test files (policy-tests-v1) against the shipping filter under
/// wasmtime (default) or the native core.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The engine that runs the cases.
    #[arg(long, value_enum, default_value_t = EngineName::Wasm)]
    engine: EngineName,
    /// The filter module to run instead of the default one.
    #[arg(long, value_name = "FILE.wasm")]
    filter: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Test files, or directories of them [default: tests/corpus and
    /// policy-samples].
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
    files: usize,
    passed: usize,
    failed: usize,
    compile_ms: f64,
    run_ms: f64,
    cases: Vec<CaseReport<'a>>,
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
        vec![
            PathBuf::from("tests/corpus"),
            PathBuf::from("policy-samples"),
        ]
    } else {
        args.paths
    };
    let t0 = Instant::now();
    let engine = match args.engine {
        EngineName::Core => Engine::Core,
        EngineName::Wasm => Engine::wasm(&args.filter.unwrap_or_else(default_filter))?,
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
        println!(
            "engine {}: {} files, module compiled in {:.0} ms, cases ran in {:.0} ms",
            engine.name(),
            files.len(),
            compile.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3
        );
        println!("{passed} passed, {failed} failed");
    }
    Ok(failed == 0)
}
