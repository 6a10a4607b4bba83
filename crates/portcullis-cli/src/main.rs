//! `portcullis`: check policies, run policy tests, explain decisions.
//!
//! Each subcommand is one variant of [`Command`] and one module in `cmd/`
//! with its `Args` (clap derive) and a `run` function.

mod cmd;
mod style;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use style::Style;

const EXIT_STATUS: &str = "\
Exit status: 0 on success, 1 when a policy is invalid or a test fails, 2 on usage errors.";

/// The Portcullis policy tool: check policies, run policy tests against the
/// shipping filter, explain decisions.
#[derive(Debug, Parser)]
#[command(
    name = "portcullis",
    version = portcullis_cli::VERSION,
    after_help = EXIT_STATUS,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(cmd::check::Args),
    Test(cmd::test::Args),
    Explain(cmd::explain::Args),
    /// Compare two policies: the exact flows whose network decision changes,
    /// grouped by the rule deciding them in OLD and in NEW, and the other
    /// sections before/after; with scopes, region by region of requests.
    Diff(cmd::diff::DiffArgs),
    /// Import an APIM policy (XML), NSG rules or App Service access
    /// restrictions (JSON) as a policy-v1 document; the report of what was
    /// mapped, skipped or unsupported goes to stderr.
    Import(cmd::import::ImportArgs),
    /// Export a policy's network rules to a native enforcer (app-service:
    /// the siteConfig access restrictions); what the target cannot express
    /// exactly is refused, or listed with --approximate.
    Export(cmd::export::ExportArgs),
    /// Replay recorded traffic (flow logs, access logs, traces) against a
    /// candidate: who NEW would cut off or let in among the callers the log
    /// saw, per rule of NEW the records it decided, what could not be judged.
    Replay(cmd::replay::ReplayArgs),
    Package(cmd::package::Args),
    Completions(cmd::completions::Args),
}

/// What a command returns: `Ok(true)` exits 0, `Ok(false)` 1 (an invalid
/// policy, a failing test), `Err` is printed and exits 2.
pub(crate) type Outcome = Result<bool, String>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; every usage
            // error exits 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let style = Style::detect();
    let result = match cli.command {
        Command::Check(a) => cmd::check::run(a, &style),
        Command::Test(a) => cmd::test::run(a, &style),
        Command::Explain(a) => cmd::explain::run(a, &style),
        Command::Import(a) => cmd::import::run(&a),
        Command::Export(a) => cmd::export::run(&a),
        Command::Diff(a) => cmd::diff::run(&a),
        Command::Replay(a) => cmd::replay::run(&a),
        Command::Package(a) => cmd::package::run(a),
        Command::Completions(a) => cmd::completions::run(a, Cli::command()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("portcullis: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
