//! `portcullis diff OLD NEW`: which flows a policy change lets in or locks
//! out, exactly (computed by `portcullis-diff` from the compiled rules), and
//! the other sections before and after; with scopes, for every region of
//! requests whose scope or effective policy changes.

use std::path::PathBuf;

use portcullis_core::Policy;
use portcullis_diff::{Kind, Report};

/// Arguments of `portcullis diff`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Compare two policies: the exact flows whose network decision changes (scope by scope)"
)]
pub(crate) struct DiffArgs {
    /// The current policy.
    pub old: PathBuf,
    /// The candidate.
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Exit with status 1 when the report holds a change of this kind, at
    /// the top level or in any region of the scopes (`any`: any flow
    /// change, any other section that differs, a scope added, removed or
    /// changed, or requests moving to another scope).
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
    /// Any change at all (scopes included).
    Any,
}

impl FailOn {
    /// Whether the report trips it.
    pub fn fires(self, r: &Report) -> bool {
        match self {
            FailOn::NewlyAllowed => r.has(Kind::NewlyAllowed),
            FailOn::NewlyDenied => r.has(Kind::NewlyDenied),
            FailOn::Any => r.any_change(),
        }
    }
}

/// Reads and checks one policy; the message says what is wrong (an
/// unreadable file, or every problem of an invalid policy).
pub(crate) fn load(path: &PathBuf) -> Result<Policy, String> {
    let f = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{f}: {e}"))?;
    super::parse_policy(&bytes).map_err(|problems| {
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
/// policy cannot be read or is invalid (2 is clap's, for usage errors).
pub(crate) fn run(a: &DiffArgs) -> crate::Outcome {
    let (old, new) = match (load(&a.old), load(&a.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("portcullis diff: {e}");
            return Ok(false);
        }
    };
    let report = portcullis_diff::diff(&old, &new);
    let text = match a.format {
        Format::Text => report.to_string(),
        Format::Json => serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n",
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(!matches!(a.fail_on, Some(f) if f.fires(&report)))
}
