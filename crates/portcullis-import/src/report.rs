//! The import report: every input item, what became of it, and why.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What became of one input item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemKind {
    /// It is in the policy, with the same meaning.
    Mapped,
    /// Left out because it cannot affect inbound HTTP requests at this
    /// gateway (an Outbound NSG rule, an ICMP rule, `<base/>`, NSG defaults
    /// for the virtual network's own plane). Never an error, even `--strict`.
    Skipped,
    /// It has a meaning policy-v1 cannot express; it is not in the policy
    /// (or only the expressible part is, as the reason says). `--strict`
    /// makes it an error.
    Unsupported,
    /// The input cannot be imported safely; no policy is produced.
    Error,
}

impl ItemKind {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Mapped => "mapped",
            ItemKind::Skipped => "skipped",
            ItemKind::Unsupported => "unsupported",
            ItemKind::Error => "error",
        }
    }

    /// The kind named by a report word.
    pub fn from_word(s: &str) -> Option<ItemKind> {
        [
            ItemKind::Mapped,
            ItemKind::Skipped,
            ItemKind::Unsupported,
            ItemKind::Error,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for ItemKind {
    /// As its report word ([`ItemKind::as_str`]).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One input item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Item {
    /// 1-based line in the input (0: the document as a whole).
    pub line: u32,
    /// 1-based column in characters (0: the document as a whole).
    pub column: u32,
    /// What became of it.
    pub kind: ItemKind,
    /// The item: an element name, an NSG rule name, a JSON path.
    pub what: String,
    /// Why, and what it became.
    pub reason: String,
}

/// Everything an import says about its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Report {
    /// The items, in input order (problems found by the final check last).
    pub items: Vec<Item>,
    /// Environment variables the policy reads (`value_from`), sorted, once each.
    pub variables: Vec<String>,
}

impl Report {
    pub(crate) fn add(
        &mut self,
        (line, column): (u32, u32),
        kind: ItemKind,
        what: &str,
        reason: String,
    ) {
        self.items.push(Item {
            line,
            column,
            kind,
            what: String::from(what),
            reason,
        });
    }

    /// How many items are of this kind.
    pub fn count(&self, kind: ItemKind) -> usize {
        self.items.iter().filter(|i| i.kind == kind).count()
    }
}

impl fmt::Display for Report {
    /// One line per item, `line:col: kind: what: reason`, then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in &self.items {
            writeln!(
                f,
                "{}:{}: {}: {}: {}",
                i.line,
                i.column,
                i.kind.as_str(),
                i.what,
                i.reason
            )?;
        }
        if !self.variables.is_empty() {
            writeln!(
                f,
                "environment variables read: {}",
                self.variables.join(", ")
            )?;
        }
        write!(
            f,
            "{} mapped, {} skipped, {} unsupported, {} errors",
            self.count(ItemKind::Mapped),
            self.count(ItemKind::Skipped),
            self.count(ItemKind::Unsupported),
            self.count(ItemKind::Error)
        )
    }
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Outcome {
    /// The policy-v1 document (pretty JSON, ending with a newline); `None`
    /// when the report holds an error.
    pub policy: Option<String>,
    /// What became of every input item.
    pub report: Report,
}

impl Outcome {
    /// The outcome of an input that could not be read at all.
    pub(crate) fn fatal(pos: (u32, u32), what: &str, reason: String) -> Outcome {
        let mut report = Report::default();
        report.add(pos, ItemKind::Error, what, reason);
        Outcome {
            policy: None,
            report,
        }
    }

    /// The fatal outcome for a document over [`crate::MAX_INPUT_BYTES`],
    /// or `None` when `text` is within it.
    pub(crate) fn too_big(text: &str) -> Option<Outcome> {
        let limit = crate::MAX_INPUT_BYTES;
        (text.len() > limit).then(|| {
            Outcome::fatal(
                (0, 0),
                "input",
                alloc::format!(
                    "the document is {} bytes; the limit is {limit} bytes (1 MiB)",
                    text.len()
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for k in [
            ItemKind::Mapped,
            ItemKind::Skipped,
            ItemKind::Unsupported,
            ItemKind::Error,
        ] {
            assert_eq!(ItemKind::from_word(k.as_str()), Some(k));
        }
        assert_eq!(ItemKind::from_word("ok"), None);
    }
}
