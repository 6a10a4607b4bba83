//! The checks behind the importer fuzz targets (`import_apim`, `import_nsg`,
//! `import_service_tags`, `import_app_service`), included by path both by those targets and by
//! `crates/portcullis-import/tests/fuzz_replay.rs`, which replays the
//! committed inputs under `cargo test`.
//!
//! Invariants, on any bytes:
//! - nothing panics; the output is the same when run twice;
//! - a policy is produced exactly when the report holds no error, and it is
//!   JSON the core accepts (named values set, as a loader would);
//! - every item's position lies inside the input;
//! - `--strict` never produces a policy the lenient run does not, and then
//!   the same one;
//! - a service tags snapshot that reads, imported through an NSG that names
//!   its tags, gives groups that `drift` finds unchanged against it;
//! - an App Service import that gives a policy exports back
//!   (`export app-service --approximate`) to a configuration that imports
//!   again without an error.

use portcullis_import::{apim, appsvc, nsg, tags, ItemKind, Options, Outcome};

fn check_outcome(text: &str, out: &Outcome) -> Result<(), String> {
    let errors = out.report.count(ItemKind::Error);
    if out.policy.is_some() == (errors > 0) {
        return Err(format!(
            "policy {} with {errors} errors",
            out.policy.is_some()
        ));
    }
    let lines = u32::try_from(text.split('\n').count()).unwrap_or(u32::MAX);
    for i in &out.report.items {
        if i.line > lines || (i.line == 0) != (i.column == 0) {
            return Err(format!(
                "item at {}:{} outside {lines} lines: {i:?}",
                i.line, i.column
            ));
        }
    }
    if let Some(p) = &out.policy {
        portcullis_core::json::parse(p)
            .map_err(|e| format!("policy is not JSON: {}", e.message))?;
        // `value_from` / `values_from` name host variables (APIM named
        // values): loaded with every variable set, as a gateway would.
        portcullis_core::Policy::parse_with_env(p.as_bytes(), &EveryVar)
            .map_err(|e| format!("core refuses the import: {e}\n{p}"))?;
    }
    Ok(())
}

/// A host environment in which every variable is set.
struct EveryVar;

impl portcullis_core::Env for EveryVar {
    fn var(&self, _: &str) -> Option<String> {
        Some(String::from("set-by-the-host"))
    }
}

fn both(
    text: &str,
    f: fn(&str, &Options<'_>) -> Outcome,
    snap: Option<&tags::Snapshot>,
) -> Result<Outcome, String> {
    let mut o = Options::new("fuzz");
    o.service_tags = snap;
    let a = f(text, &o);
    if f(text, &o) != a {
        return Err("two runs differ".into());
    }
    check_outcome(text, &a)?;
    o.strict = true;
    let s = f(text, &o);
    check_outcome(text, &s)?;
    if let Some(sp) = &s.policy {
        if a.policy.as_ref() != Some(sp) {
            return Err("strict produced a policy the lenient run did not".into());
        }
    }
    Ok(a)
}

/// `import_apim`.
pub fn check_apim(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    both(text, apim::import, None).map(|_| ())
}

/// `import_nsg`.
pub fn check_nsg(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    both(text, nsg::import, None).map(|_| ())
}

/// The snapshot the App Service target resolves `tag: ServiceTag` with.
const APP_SERVICE_TAGS: &str = r#"{"changeNumber": 7, "cloud": "Public", "values": [
  {"name": "AzureFrontDoor.Backend", "id": "AzureFrontDoor.Backend",
   "properties": {"changeNumber": 3, "addressPrefixes": ["147.243.0.0/16", "2a01:111:2050::/44"]}},
  {"name": "ApiManagement", "id": "ApiManagement",
   "properties": {"changeNumber": 2, "addressPrefixes": ["20.86.92.252/32"]}}]}"#;

/// `import_app_service`.
pub fn check_app_service(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let snap = tags::Snapshot::parse(APP_SERVICE_TAGS).map_err(|e| e.to_string())?;
    let out = both(text, appsvc::import, Some(&snap))?;
    let Some(policy) = out.policy else {
        return Ok(());
    };
    let exported = appsvc::export::export(&policy, true)
        .map_err(|e| format!("the import does not export: {e}\n{policy}"))?;
    let Some(config) = exported.config else {
        // Only App Service's own limits refuse an approximate export.
        return if exported.notes.iter().any(|n| n.reason.contains("at most")) {
            Ok(())
        } else {
            Err(format!("approximate export refused: {exported}\n{policy}"))
        };
    };
    let again = appsvc::import(&config, &Options::new("fuzz"));
    if again.policy.is_none() {
        return Err(format!(
            "the export does not import again: {}\n{config}",
            again.report
        ));
    }
    Ok(())
}

/// `import_service_tags`.
pub fn check_service_tags(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(snap) = tags::Snapshot::parse(text) else {
        return Ok(());
    };
    // An NSG allowing the first few tags whose names look like service tags.
    let names: Vec<&str> = snap
        .tags
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| {
            n.len() <= 64
                && n.starts_with(|c: char| c.is_ascii_alphabetic())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
                && ![
                    "internet",
                    "virtualnetwork",
                    "azureloadbalancer",
                    "private",
                    "loopback",
                ]
                .contains(&n.to_ascii_lowercase().as_str())
        })
        .take(4)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let rules: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                r#"{{"name":"r{i}","priority":{},"access":"Allow","direction":"Inbound","protocol":"Tcp","sourceAddressPrefix":{},"sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"443"}}"#,
                100 + i,
                json_str(n)
            )
        })
        .collect();
    let nsg_text = format!("[{}]", rules.join(","));
    let out = both(&nsg_text, nsg::import, Some(&snap))?;
    let Some(policy) = out.policy else {
        return Ok(()); // e.g. a prefix the core refuses: reported, not imported
    };
    let d = tags::drift(&policy, &snap)?;
    for g in &d {
        if g.missing || !g.gained.is_empty() || !g.lost.is_empty() {
            return Err(format!("drift against the same snapshot: {g}"));
        }
    }
    Ok(())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
