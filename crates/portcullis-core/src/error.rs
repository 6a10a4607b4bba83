//! Why a policy document (or test file) was rejected.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::addr::AddrProblem;

/// One problem with a document, where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON path, e.g. `network.rules[2].source[0]` (empty for the root).
    pub path: String,
    /// 1-based line of the offending text.
    pub line: u32,
    /// 1-based column (in characters) of the offending text.
    pub column: u32,
    /// What is wrong.
    pub error: Error,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        write!(f, "{}:{}: {}: {}", self.line, self.column, path, self.error)
    }
}

/// Every problem found in a rejected document, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// The one problem of a document that is not JSON at all.
    pub(crate) fn syntax(text: &str, e: &crate::json::SyntaxError) -> Problems {
        let (line, column) = crate::json::line_col(text, e.offset);
        Problems(alloc::vec![Problem {
            path: String::new(),
            line,
            column,
            error: Error::Syntax(e.message),
        }])
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A rule named in an error: its name (when it has a readable one) and its
/// JSON path. Displays as `"allow-web" (network.rules[0])`, or the path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// The rule's `name`, if it is a string.
    pub name: Option<String>,
    /// The rule's JSON path, e.g. `network.rules[0]`.
    pub path: String,
}

impl RuleRef {
    pub(crate) fn new(name: Option<&str>, path: &str) -> RuleRef {
        RuleRef {
            name: name.map(String::from),
            path: String::from(path),
        }
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n:?} ({})", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// What can be wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The text is not JSON.
    Syntax(&'static str),
    /// The document is larger than the engine accepts.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A key appears twice in one object.
    DuplicateKey(String),
    /// A key this object does not have.
    UnknownField {
        /// The key found.
        field: String,
        /// The keys allowed here.
        expected: &'static [&'static str],
    },
    /// A required key is missing.
    MissingField(&'static str),
    /// None of several keys is given, and one of them is required (e.g.
    /// `values` / `values_from` of a `require_headers` entry).
    MissingOneOf(&'static [&'static str]),
    /// The value has the wrong JSON type.
    WrongType {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A string that is not one of the allowed words.
    NotOneOf {
        /// What was found.
        found: String,
        /// The words allowed.
        expected: &'static [&'static str],
    },
    /// A number outside its range.
    OutOfRange {
        /// Lowest legal value.
        min: u64,
        /// Highest legal value.
        max: u64,
    },
    /// A status code that is not allowed here.
    BadStatus {
        /// The codes allowed, described.
        allowed: &'static str,
    },
    /// A name that does not fit its pattern.
    BadName {
        /// The pattern.
        pattern: &'static str,
    },
    /// An address spec that is not valid.
    BadAddress {
        /// The text.
        text: String,
        /// Why.
        problem: AddrProblem,
    },
    /// An address spec that names no tag and no group.
    UnknownGroup(String),
    /// Address groups that refer to each other in a cycle.
    GroupCycle(String),
    /// An address group named like a built-in tag.
    GroupShadowsTag(String),
    /// A port spec that is not valid.
    BadPort(String),
    /// A list that must not be empty is.
    Empty,
    /// Two rules share a name.
    DuplicateRuleName {
        /// The name.
        name: String,
        /// The path of the first rule with it.
        first: String,
        /// The path of the later rule (where the error is reported).
        second: String,
    },
    /// Two rules share a priority.
    DuplicatePriority {
        /// The priority.
        priority: u64,
        /// The first rule with it.
        first: RuleRef,
        /// The later rule (where the error is reported).
        second: RuleRef,
    },
    /// Not an HTTP token.
    BadHeaderName,
    /// A header the policy may not touch.
    ForbiddenHeader {
        /// The name, lowercased.
        name: String,
        /// Why.
        why: &'static str,
    },
    /// A header value with CR, LF or NUL.
    BadHeaderValue,
    /// A header op with both or neither of `remove` and `set`.
    BadHeaderOp,
    /// A field that makes no sense next to another.
    Conflict(&'static str),
    /// HSTS `preload` without its prerequisites.
    PreloadPrerequisites,
    /// `https_only.action: redirect` without `hosts`.
    RedirectWithoutHosts,
    /// A host name that is not valid in `hosts`.
    BadHost(String),
    /// A list or map longer than the spec allows (a rule's `headers`: at
    /// most 8 names, 8 values each).
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// The most allowed.
        max: usize,
    },
    /// The compiled rule table would exceed the engine's bound.
    TooComplex {
        /// Entries the table would need.
        entries: usize,
        /// The bound.
        limit: usize,
    },
    /// A `value_from` / `values_from` variable that cannot be used. Names
    /// the variable, never its value.
    Env {
        /// The variable's name.
        var: String,
        /// What is wrong with it.
        problem: EnvProblem,
    },
    /// A test-file field whose value is wrong for a reason given.
    Invalid(&'static str),
    /// A `scopes[].match.hosts` entry that is not a host pattern.
    BadHostPattern {
        /// The text.
        text: String,
        /// Why.
        why: &'static str,
    },
    /// A `scopes[].match.paths` entry that is not a path pattern.
    BadPathPattern {
        /// The text.
        text: String,
        /// Why.
        why: &'static str,
    },
    /// A `scopes[].match.methods` entry that is not an HTTP token.
    BadMethod(String),
    /// Two scopes share a name.
    DuplicateScopeName {
        /// The name.
        name: String,
        /// The path of the first scope with it.
        first: String,
        /// The path of the later scope (where the error is reported).
        second: String,
    },
}

/// What is wrong with an environment variable a policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvProblem {
    /// The host environment does not define it.
    Missing,
    /// It is defined but empty.
    Empty,
    /// Its value holds CR, LF or NUL, so it cannot be a header value.
    BadValue,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotUtf8 => f.write_str("the document is not valid UTF-8"),
            Error::Syntax(m) => write!(f, "invalid JSON: {m}"),
            Error::TooLarge { limit } => {
                write!(f, "the document is larger than the limit of {limit} bytes")
            }
            Error::DuplicateKey(k) => write!(f, "duplicate key {k:?}"),
            Error::UnknownField { field, expected } => {
                write!(f, "unknown field {field:?}, expected one of ")?;
                list(f, expected)
            }
            Error::MissingField(k) => write!(f, "missing required field {k:?}"),
            Error::MissingOneOf(keys) => {
                f.write_str("one of ")?;
                list(f, keys)?;
                f.write_str(" is required")
            }
            Error::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            Error::NotOneOf { found, expected } => {
                write!(f, "{found:?} is not one of ")?;
                list(f, expected)
            }
            Error::OutOfRange { min, max } => write!(f, "must be an integer from {min} to {max}"),
            Error::BadStatus { allowed } => write!(f, "status must be {allowed}"),
            Error::BadName { pattern } => write!(f, "name must match {pattern}"),
            Error::BadAddress { text, problem } => {
                write!(f, "invalid address {text:?}: ")?;
                match problem {
                    AddrProblem::Unrecognized => f.write_str(
                        "not an address, CIDR prefix, range, tag (*, Internet, Private, Loopback) or group",
                    ),
                    AddrProblem::LeadingZeros => {
                        f.write_str("leading zeros are not allowed (some parsers read them as octal)")
                    }
                    AddrProblem::ZoneId => f.write_str("zone ids (%...) are not allowed"),
                    AddrProblem::Port => f.write_str("ports belong in the *_ports fields"),
                    AddrProblem::PrefixTooLong { max } => {
                        write!(f, "prefix length must be at most {max}")
                    }
                    AddrProblem::HostBits { network } => {
                        write!(f, "host bits are set; did you mean {network}?")
                    }
                    AddrProblem::MixedRange => f.write_str("range ends are of different families"),
                    AddrProblem::ReversedRange => f.write_str("range start is above its end"),
                }
            }
            Error::UnknownGroup(g) => {
                write!(f, "{g:?} is not an address, tag or address_groups entry")
            }
            Error::GroupCycle(g) => write!(f, "address group {g:?} refers to itself"),
            Error::GroupShadowsTag(g) => write!(f, "address group {g:?} has the name of a tag"),
            Error::BadPort(p) => write!(
                f,
                "invalid port spec {p:?}: expected \"*\", a port 0-65535 or a range \"low-high\""
            ),
            Error::Empty => f.write_str("must not be empty"),
            Error::DuplicateRuleName {
                name,
                first,
                second,
            } => write!(f, "rules {first} and {second} are both named {name:?}"),
            Error::DuplicatePriority {
                priority,
                first,
                second,
            } => write!(f, "rules {first} and {second} both have priority {priority}"),
            Error::BadHeaderName => f.write_str("header name must be an HTTP token"),
            Error::ForbiddenHeader { name, why } => write!(f, "header {name:?} cannot be touched: {why}"),
            Error::BadHeaderValue => f.write_str("header value must not contain CR, LF or NUL"),
            Error::BadHeaderOp => {
                f.write_str("a header op has exactly one of \"remove\" or \"set\" (with \"value\")")
            }
            Error::Conflict(m) => f.write_str(m),
            Error::PreloadPrerequisites => f.write_str(
                "preload needs max_age >= 31536000 and include_subdomains (hstspreload.org)",
            ),
            Error::RedirectWithoutHosts => {
                f.write_str("action \"redirect\" needs \"hosts\", the hosts a Location may name")
            }
            Error::BadHost(h) => write!(f, "invalid host {h:?}: expected a DNS name or address, optionally with :port"),
            Error::TooMany { what, max } => write!(f, "at most {max} {what}"),
            Error::TooComplex { entries, limit } => write!(
                f,
                "the rules need {entries} match-table entries, above the limit of {limit}; merge overlapping rules"
            ),
            Error::Env { var, problem } => match problem {
                EnvProblem::Missing => write!(
                    f,
                    "environment variable {var:?} is not set in the host environment"
                ),
                EnvProblem::Empty => write!(f, "environment variable {var:?} is empty"),
                EnvProblem::BadValue => write!(
                    f,
                    "environment variable {var:?} holds CR, LF or NUL, so it cannot be a header value"
                ),
            },
            Error::Invalid(m) => f.write_str(m),
            Error::BadHostPattern { text, why } => {
                write!(f, "invalid host pattern {text:?}: {why}")
            }
            Error::BadPathPattern { text, why } => {
                write!(f, "invalid path pattern {text:?}: {why}")
            }
            Error::BadMethod(m) => write!(f, "method {m:?} is not an HTTP token"),
            Error::DuplicateScopeName {
                name,
                first,
                second,
            } => write!(f, "{first} and {second} are both named {name:?}"),
        }
    }
}

fn list(f: &mut fmt::Formatter<'_>, items: &[&str]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e:?}")?;
    }
    Ok(())
}
