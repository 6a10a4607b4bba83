//! `portcullis import {apim|nsg|app-service} FILE`: turn an APIM policy, NSG
//! rules or App Service access restrictions into
//! a policy-v1 document (stdout or `-o FILE`), with the import report on
//! stderr (`--format json` for machines). And `portcullis check POLICY
//! --service-tags NEWER.json`: what each imported service tag gained and
//! lost since the policy was made. The mapping itself lives in
//! `portcullis-import`; this module only reads files and prints.

use std::path::{Path, PathBuf};

use portcullis_import::{
    apim, appsvc, nsg, tags, Options, Report, MAX_INPUT_BYTES, MAX_SERVICE_TAGS_BYTES,
};

/// What the input is.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// An Azure API Management policy document (XML).
    Apim,
    /// NSG security rules (JSON: ARM template, REST GET, `az` output).
    Nsg,
    /// App Service access restrictions (JSON: `az webapp config
    /// access-restriction show` output, siteConfig, ARM template).
    AppService,
}

/// How the report is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `FILE:line:col: kind: item: reason` lines and a summary.
    Text,
    /// One JSON object: `{"input", "ok", "items", "variables"}`.
    Json,
}

/// `portcullis import`.
#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// What the input is: apim (policy XML), nsg (security rules JSON) or
    /// app-service (access restrictions JSON).
    #[arg(value_enum)]
    pub source: Source,
    /// The input file (at most 1 MiB).
    pub file: PathBuf,
    /// A service tags snapshot (the weekly ServiceTags_*.json download or the
    /// Discovery API's answer, at most 64 MiB) to resolve service tags with.
    #[arg(long, value_name = "FILE.json")]
    pub service_tags: Option<PathBuf>,
    /// Make every unsupported item an error: no policy unless all of the
    /// input maps.
    #[arg(long)]
    pub strict: bool,
    /// The report's format (it goes to stderr).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the policy here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The policy's name (default: the input file's stem).
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(serde::Serialize)]
struct JsonReport<'a> {
    input: String,
    ok: bool,
    #[serde(flatten)]
    report: &'a Report,
}

/// Reads a file of at most `limit` bytes as UTF-8, with a clear error.
fn read_limited(path: &Path, limit: usize, what: &str) -> Result<String, String> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .len();
    if len > limit as u64 {
        return Err(format!(
            "{shown}: {len} bytes; {what} is read up to {limit} bytes ({} MiB)",
            limit >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    String::from_utf8(bytes)
        .map_err(|e| format!("{shown}: not UTF-8 (byte {})", e.utf8_error().valid_up_to()))
}

fn snapshot(path: &Path) -> Result<tags::Snapshot, String> {
    let text = read_limited(path, MAX_SERVICE_TAGS_BYTES, "a service tags file")?;
    tags::Snapshot::parse(&text).map_err(|e| format!("{}:{e}", path.display()))
}

/// Runs one import. `Ok(false)`: the report holds errors, no policy written.
pub(crate) fn run(a: &ImportArgs) -> Result<bool, String> {
    let text = read_limited(&a.file, MAX_INPUT_BYTES, "an import input")?;
    let snap = a.service_tags.as_deref().map(snapshot).transpose()?;
    let shown = a.file.display().to_string();
    let file_name = a
        .file
        .file_name()
        .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
    let mut o = Options::new(
        &a.name
            .clone()
            .unwrap_or_else(|| portcullis_import::policy_name_from(&file_name)),
    );
    o.strict = a.strict;
    o.service_tags = snap.as_ref();
    o.source = file_name;
    if snap.is_some() && a.source == Source::Apim {
        return Err("--service-tags only applies to nsg and app-service".into());
    }
    let out = match a.source {
        Source::Apim => apim::import(&text, &o),
        Source::Nsg => nsg::import(&text, &o),
        Source::AppService => appsvc::import(&text, &o),
    };
    let ok = out.policy.is_some();
    match a.format {
        Format::Json => {
            let j = JsonReport {
                input: shown.clone(),
                ok,
                report: &out.report,
            };
            eprintln!(
                "{}",
                serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?
            );
        }
        Format::Text => {
            for i in &out.report.items {
                eprintln!(
                    "{shown}:{}:{}: {}: {}: {}",
                    i.line,
                    i.column,
                    i.kind.as_str(),
                    i.what,
                    i.reason
                );
            }
            if !out.report.variables.is_empty() {
                eprintln!(
                    "{shown}: the policy reads these environment variables when it is loaded: {}",
                    out.report.variables.join(", ")
                );
            }
            let summary = out.report.to_string();
            eprintln!("{shown}: {}", summary.lines().last().unwrap_or(""));
        }
    }
    if let Some(policy) = &out.policy {
        match &a.output {
            Some(p) => std::fs::write(p, policy).map_err(|e| format!("{}: {e}", p.display()))?,
            None => print!("{policy}"),
        }
    }
    Ok(ok)
}

/// `check POLICY... --service-tags NEWER.json`: prints, for every address
/// group imported from a service tag, the prefixes gained and lost. `Ok(false)`
/// when any group is out of date.
pub(crate) fn drift(policies: &[PathBuf], newer: &Path) -> Result<bool, String> {
    let snap = snapshot(newer)?;
    let mut current = true;
    for path in policies {
        let f = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("{f}: {e}"))?;
        let d = tags::drift(&text, &snap).map_err(|e| format!("{f}: {e}"))?;
        if d.is_empty() {
            println!("{f}: no address group was imported from a service tag");
        }
        for g in &d {
            if g.missing || !g.gained.is_empty() || !g.lost.is_empty() {
                current = false;
            }
            println!("{f}: {g}");
        }
    }
    println!(
        "service tags {} (cloud {}, changeNumber {}): {}",
        newer.display(),
        if snap.cloud.is_empty() {
            "?"
        } else {
            &snap.cloud
        },
        if snap.change_number.is_empty() {
            "?"
        } else {
            &snap.change_number
        },
        if current {
            "every imported tag is current"
        } else {
            "re-import to pick up the changes"
        }
    );
    Ok(current)
}
