//! Importers: bring rules that already exist into a policy-v1 document.
//!
//! - [`apim::import`]: an Azure API Management policy document (XML):
//!   `ip-filter`, `set-header`, `check-header`, named values;
//! - [`nsg::import`]: NSG security rules (JSON) in the ARM template / resource
//!   shape, the REST GET shape or the flat `az network nsg rule list` shape;
//! - [`appsvc::import`]: Azure App Service access restrictions (JSON: `az
//!   webapp config access-restriction show`, `siteConfig`, ARM), the scm
//!   site's rules as a scope; and [`appsvc::export::export`], the way back;
//! - [`tags::Snapshot::parse`]: an Azure service tags file (the weekly
//!   download or the Discovery API), used by the NSG importer to resolve
//!   service tags into address groups, and by [`tags::drift`] to list what
//!   each imported tag gained and lost in a newer snapshot.
//!
//! Every importer returns an [`Outcome`]: the policy as deterministic, pretty
//! JSON text, and a [`Report`] that lists every input item with its line and
//! column, whether it was mapped, skipped or unsupported, and why. Nothing is
//! dropped silently. With [`Options::strict`] every unsupported item is an
//! error. The finished document is checked with the core's validator
//! ([`portcullis_core::Policy::parse_with_env`], every variable set) before
//! it is handed out.
//!
//! What this crate does *not* do:
//! - no I/O: callers read files and write the results (the `portcullis
//!   import` command, the playground's Import view);
//! - no entity expansion, no DTDs: the XML reader ([`xml`]) refuses them;
//! - no evaluation of APIM policy expressions (`@(...)`, `@{...}`) or ARM
//!   template expressions (`[parameters('x')]`): they are reported;
//! - it is not part of the request path: the Envoy filter never links it.
//!
//! ```
//! let xml = r#"<policies><inbound>
//!   <ip-filter action="allow"><address>203.0.113.7</address></ip-filter>
//! </inbound></policies>"#;
//! let out = portcullis_import::apim::import(xml, &portcullis_import::Options::new("orders"));
//! let policy = out.policy.unwrap();
//! assert!(policy.contains("\"203.0.113.7\""));
//! assert!(out.report.items.iter().any(|i| i.what == "ip-filter"));
//! ```
#![no_std]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

extern crate alloc;

pub mod apim;
pub mod appsvc;
mod lines;
pub mod nsg;
pub mod out;
pub mod report;
pub mod tags;
pub mod xml;

pub use report::{Item, ItemKind, Outcome, Report};

use alloc::string::{String, ToString};

/// Largest APIM policy, NSG or App Service document accepted, in bytes (1 MiB). Real ones
/// are a few kilobytes; the bound keeps a hostile paste from eating memory.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Largest service tags file accepted, in bytes (64 MiB). The public cloud's
/// weekly download is a few megabytes.
pub const MAX_SERVICE_TAGS_BYTES: usize = 64 << 20;

/// What every importer is told.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// The policy's `name` (`[A-Za-z0-9._-]{1,64}`).
    pub name: String,
    /// Make every unsupported item an error (no policy is produced then).
    pub strict: bool,
    /// A service tags snapshot to resolve service tags with (NSG, App Service).
    pub service_tags: Option<&'a tags::Snapshot>,
    /// The input's name as the user knows it (a file name), for descriptions.
    pub source: String,
}

impl<'a> Options<'a> {
    /// Options with a policy name, not strict, no snapshot.
    pub fn new(name: &str) -> Options<'a> {
        Options {
            name: name.to_string(),
            strict: false,
            service_tags: None,
            source: String::new(),
        }
    }
}

impl Options<'_> {
    /// The `description` of an imported rule: `what` (e.g. `NSG rule "x"
    /// (priority 100)`), where it was (`at line N of FILE`), then the
    /// input's own description when it has one.
    pub(crate) fn rule_description(&self, what: &str, line: u32, own: Option<&str>) -> String {
        let mut d = alloc::format!("{what} at line {line}");
        if !self.source.is_empty() {
            d.push_str(" of ");
            d.push_str(&self.source);
        }
        if let Some(own) = own.filter(|o| !o.is_empty()) {
            d.push_str(": ");
            d.push_str(own);
        }
        d
    }
}

/// Turns a file name into a policy name: its stem, with every character
/// outside `[A-Za-z0-9._-]` replaced by `-`, at most 64 characters.
///
/// ```
/// assert_eq!(portcullis_import::policy_name_from("dir/My NSG.arm.json"), "My-NSG.arm");
/// ```
pub fn policy_name_from(file: &str) -> String {
    let base = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let stem = match base.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => base,
    };
    let mut name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        name.push_str("imported");
    }
    name
}

/// Checks a finished document with the core's validator and either hands it
/// out or turns the core's problems into error items. `value_from` objects
/// are checked as if their variable were set (the environment belongs to the
/// host that loads the policy, not to the importer).
///
/// `origins` says where each piece of the document came from (its JSON path,
/// the input position, the item), so a problem the core finds is reported
/// at the input's line and column.
pub(crate) fn finish(
    doc: &out::J,
    mut report: Report,
    strict: bool,
    origins: &[(String, (u32, u32), String)],
) -> Outcome {
    if strict {
        for it in &mut report.items {
            if it.kind == ItemKind::Unsupported {
                it.kind = ItemKind::Error;
                it.reason.insert_str(0, "--strict: ");
            }
        }
    }
    let text = doc.pretty();
    if let Err(problems) = portcullis_core::Policy::parse_with_env(text.as_bytes(), &EveryVarSet) {
        for p in problems.0 {
            let origin = origins
                .iter()
                .filter(|(path, _, _)| {
                    p.path == *path
                        || p.path
                            .strip_prefix(path.as_str())
                            .is_some_and(|rest| rest.starts_with(['.', '[']))
                })
                .max_by_key(|(path, _, _)| path.len());
            let ((line, column), what) = match origin {
                Some((_, pos, what)) => (*pos, what.clone()),
                None => ((0, 0), String::from("policy")),
            };
            report.items.push(Item {
                line,
                column,
                kind: ItemKind::Error,
                what,
                reason: alloc::format!("not valid policy-v1 at {}: {}", p.path, p.error),
            });
        }
    }
    // Input order: a policy's own item before the items inside it.
    report.items.sort_by_key(|i| (i.line, i.column));
    let failed = report.items.iter().any(|i| i.kind == ItemKind::Error);
    Outcome {
        policy: if failed { None } else { Some(text) },
        report,
    }
}

/// The environment the structural check loads an import with: every
/// variable is set (to a placeholder), as the host that loads the policy will
/// have to set them. The core still checks every `value_from` /
/// `values_from` itself (its shape, the variable's name, `values` beside
/// `values_from`).
struct EveryVarSet;

impl portcullis_core::Env for EveryVarSet {
    fn var(&self, _: &str) -> Option<String> {
        Some(String::from("imported"))
    }
}
