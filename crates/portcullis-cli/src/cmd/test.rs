//! `portcullis test`: run policy test files on the filter under wasmtime or
//! on the core.

use std::path::PathBuf;
use std::time::Instant;

use portcullis_cli::{collect, default_filter, describe_failure, json_str, run_file, Engine};

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
        let items: Vec<String> = results
            .iter()
            .map(|r| {
                let mm: Vec<String> = r
                    .mismatches
                    .iter()
                    .map(|m| format!("{{\"field\":{},\"expected\":{},\"seen\":{}}}", json_str(&m.field), json_str(&m.expected), json_str(&m.seen)))
                    .collect();
                format!(
                    "{{\"file\":{},\"line\":{},\"name\":{},\"pass\":{},\"error\":{},\"mismatches\":[{}],\"trace\":{}}}",
                    json_str(&r.file.display().to_string()),
                    r.line,
                    json_str(&r.name),
                    r.passed(),
                    r.error.as_deref().map_or("null".into(), json_str),
                    mm.join(","),
                    json_str(&r.trace)
                )
            })
            .collect();
        println!(
            "{{\"engine\":\"{}\",\"files\":{},\"passed\":{passed},\"failed\":{failed},\"compile_ms\":{:.1},\"run_ms\":{:.1},\"cases\":[{}]}}",
            engine.name(),
            files.len(),
            compile.as_secs_f64() * 1e3,
            run.as_secs_f64() * 1e3,
            items.join(",")
        );
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
