//! `portcullis diff OLD NEW`: which flows a policy change lets in or locks
//! out, exactly (computed by `portcullis-diff` from the compiled rules), and
//! the other sections before and after.

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis_core::Policy;
use portcullis_diff::{Kind, Report};

/// Arguments of `portcullis diff`.
#[derive(Debug, clap::Args)]
#[command(about = "Compare two policies: the exact flows whose network decision changes")]
pub struct DiffArgs {
    /// The current policy.
    pub old: PathBuf,
    /// The candidate.
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit with status 1 when the report holds a change of this kind
    /// (`any`: any flow change or any other section that differs).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The report as text.
    Text,
    /// The report as JSON (one object).
    Json,
}

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Some flow denied by OLD is allowed by NEW.
    NewlyAllowed,
    /// Some flow allowed by OLD is denied by NEW.
    NewlyDenied,
    /// Any change at all.
    Any,
}

impl FailOn {
    /// Whether the report trips it.
    pub fn fires(self, r: &Report) -> bool {
        match self {
            FailOn::NewlyAllowed => r.has(Kind::NewlyAllowed),
            FailOn::NewlyDenied => r.has(Kind::NewlyDenied),
            FailOn::Any => r.network_changed() || !r.settings.is_empty(),
        }
    }
}

// Stand-alone parser until the command tree is clap throughout.
#[derive(Debug, clap::Parser)]
#[command(
    name = "portcullis diff",
    about = "Compare two policies: the exact flows whose network decision changes"
)]
struct Standalone {
    #[command(flatten)]
    args: DiffArgs,
}

/// `portcullis diff ARGS...` from the hand-written dispatcher.
pub fn main(args: &[String]) -> ExitCode {
    use clap::Parser;
    let argv = std::iter::once("portcullis diff".to_string()).chain(args.iter().cloned());
    match Standalone::try_parse_from(argv) {
        Ok(s) => run(&s.args),
        Err(e) => {
            let _ = e.print();
            ExitCode::from(if e.use_stderr() { 2 } else { 0 })
        }
    }
}

fn load(path: &PathBuf) -> Result<Policy, String> {
    let f = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{f}: {e}"))?;
    Policy::parse(&bytes).map_err(|problems| {
        let mut s = format!("{f}: not a valid policy (run `portcullis check {f}`):");
        for p in &problems.0 {
            s.push_str(&format!(
                "\n{f}:{}:{}: {}: {}",
                p.line, p.column, p.path, p.error
            ));
        }
        s
    })
}

/// Runs the command: 0 when nothing fires, 1 when `--fail-on` fires or a
/// policy is invalid, 2 when a file cannot be read.
pub fn run(a: &DiffArgs) -> ExitCode {
    let (old, new) = match (load(&a.old), load(&a.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("portcullis diff: {e}");
            return ExitCode::from(1);
        }
    };
    let report = portcullis_diff::diff(&old, &new);
    let text = match a.format {
        Format::Text => report.to_string(),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("portcullis diff: {e}");
                return ExitCode::from(2);
            }
        },
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    match a.fail_on {
        Some(f) if f.fires(&report) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}
