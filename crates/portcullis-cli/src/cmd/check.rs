//! `portcullis check POLICY...`.

use std::path::PathBuf;

use crate::style::Style;
use crate::Outcome;

/// Validate policies: every error as file:line:col: path: message, then
/// warnings (rules that can never match, allow/deny overlaps, ...).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Policy documents (policy-v1 JSON).
    #[arg(required = true, value_name = "POLICY")]
    policies: Vec<PathBuf>,
    /// A newer service tags snapshot: list, for every address group imported
    /// from a service tag, the prefixes it gained and lost (exit 1 when any
    /// group is out of date).
    #[arg(long, value_name = "NEWER.json")]
    service_tags: Option<PathBuf>,
}

pub(crate) fn run(args: Args, style: &Style) -> Outcome {
    let mut ok = true;
    for path in &args.policies {
        let f = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("{f}: {e}"))?;
        match super::parse_policy(&bytes) {
            Ok(p) => {
                let lints = p.lints();
                for l in &lints {
                    println!(
                        "{}:{}: {}: {}: {l}",
                        f,
                        l.line,
                        style.yellow("warning"),
                        l.path
                    );
                }
                let rules = p.network.as_ref().map_or(0, |n| n.rules.len());
                let scopes = match p.scopes.len() {
                    0 => String::new(),
                    n => format!(", {n} scopes"),
                };
                println!(
                    "{f}: {} policy {:?}, {rules} rules{scopes}, {} warnings",
                    style.green("ok"),
                    p.name,
                    lints.len()
                );
            }
            Err(problems) => {
                ok = false;
                for p in &problems.0 {
                    let path = if p.path.is_empty() {
                        "(document)"
                    } else {
                        &p.path
                    };
                    println!(
                        "{f}:{}:{}: {}: {}: {}",
                        p.line,
                        p.column,
                        style.red("error"),
                        style.bold(path),
                        p.error
                    );
                }
                println!("{f}: {} error(s)", problems.0.len());
            }
        }
    }
    if let (true, Some(newer)) = (ok, &args.service_tags) {
        ok = super::import::drift(&args.policies, newer)?;
    }
    Ok(ok)
}
