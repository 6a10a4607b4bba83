//! `portcullis export TARGET POLICY`: a policy's network rules in a native
//! enforcer's own configuration (stdout or `-o FILE`), with what the target
//! cannot express listed on stderr. The mapping lives in
//! `portcullis-import` (`appsvc::export`); this module only reads and prints.

use std::path::PathBuf;

use portcullis_import::appsvc::export;

/// The enforcer to export to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Azure App Service access restrictions (siteConfig JSON:
    /// ipSecurityRestrictions and the scm twins).
    AppService,
}

/// How the notes are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `POLICY:line: path: kind: reason` lines and a summary.
    Text,
    /// One JSON object: `{"policy", "ok", "notes"}`.
    Json,
}

/// `portcullis export`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// The target: app-service.
    #[arg(value_enum)]
    pub target: Target,
    /// The policy-v1 document (JSON).
    pub policy: PathBuf,
    /// Export even what the target cannot express exactly, listing each
    /// difference on stderr (without it such a policy is refused).
    #[arg(long)]
    pub approximate: bool,
    /// The notes' format (they go to stderr).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the configuration here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct JsonNotes<'a> {
    policy: String,
    ok: bool,
    notes: &'a [export::Note],
}

/// Runs one export. `Ok(false)`: refused, nothing written.
pub(crate) fn run(a: &ExportArgs) -> Result<bool, String> {
    let shown = a.policy.display().to_string();
    let text = std::fs::read_to_string(&a.policy).map_err(|e| format!("{shown}: {e}"))?;
    let out = match a.target {
        Target::AppService => export::export(&text, a.approximate),
    }
    .map_err(|e| format!("{shown}: {e}"))?;
    let ok = out.config.is_some();
    match a.format {
        Format::Json => {
            let j = JsonNotes {
                policy: shown.clone(),
                ok,
                notes: &out.notes,
            };
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?
            );
        }
        Format::Text => {
            for n in &out.notes {
                eprintln!(
                    "{shown}:{}: {}: {}: {}",
                    n.line,
                    n.path,
                    n.kind.as_str(),
                    n.reason
                );
            }
            let summary = out.to_string();
            eprintln!("{shown}: {}", summary.lines().last().unwrap_or(""));
        }
    }
    if let Some(config) = &out.config {
        match &a.output {
            Some(p) => std::fs::write(p, config).map_err(|e| format!("{}: {e}", p.display()))?,
            None => print!("{config}"),
        }
    }
    Ok(ok)
}
