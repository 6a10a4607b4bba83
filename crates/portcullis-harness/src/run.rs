//! The one loop over a test file: load its policy on an engine, then either
//! hold the engine's rejection to `expect_policy_error` or run every case
//! and [`check`] it; the result is a [`FileReport`] with first-class skips.
//!
//! An engine is two closures: `load` (a [`PolicyLoad`] to a loaded policy,
//! a [`Rejection`], or an engine failure) and `run` (one case on the loaded
//! policy to a [`CaseRun`]). The engine never compares anything itself.

use std::fmt::{self, Write as _};
use std::path::Path;

use portcullis_core::Problems;

use crate::check::{check, Mismatch, Outcome, Rejection};
use crate::file::{Case, PolicySource, TestFile};

/// A test file with its policy text, ready to run on any engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suite {
    /// Its name in reports (usually its path).
    pub name: String,
    /// What it says.
    pub file: TestFile,
    /// The policy's text (read from its path, or cut from the file).
    pub policy: String,
}

/// Why a test file could not be made into a [`Suite`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// The test file could not be read.
    Read {
        /// The file.
        name: String,
        /// Why.
        error: String,
    },
    /// The test file is not a valid policy-tests-v1 file.
    Invalid {
        /// The file.
        name: String,
        /// Every problem, with its path and line:col.
        problems: Problems,
    },
    /// The policy file it names could not be had.
    Policy {
        /// The policy path as resolved (or as named, when not on disk).
        path: String,
        /// Why.
        error: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read { name, error } => write!(f, "{name}: {error}"),
            LoadError::Invalid { name, problems } => {
                for (i, p) in problems.0.iter().enumerate() {
                    if i > 0 {
                        f.write_str("\n")?;
                    }
                    write!(f, "{name}:{p}")?;
                }
                Ok(())
            }
            LoadError::Policy { path, error } => write!(f, "{path}: {error}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl Suite {
    /// Reads a test file from disk; a policy path is relative to the file.
    pub fn read(path: &Path) -> Result<Suite, LoadError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
            name: name.clone(),
            error: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Suite::from_text(&name, &text, |p| {
            let pp = base.join(p);
            std::fs::read_to_string(&pp).map_err(|e| (pp.display().to_string(), e.to_string()))
        })
    }

    /// A test file given as text; `policy_file` turns a policy path into
    /// its text, or into (the path as resolved, why not).
    pub fn from_text(
        name: &str,
        text: &str,
        policy_file: impl FnOnce(&str) -> Result<String, (String, String)>,
    ) -> Result<Suite, LoadError> {
        let file = TestFile::parse(text).map_err(|problems| LoadError::Invalid {
            name: name.to_owned(),
            problems,
        })?;
        let policy = match &file.policy {
            PolicySource::Inline(t) => t.clone(),
            PolicySource::Path(p) => {
                policy_file(p).map_err(|(path, error)| LoadError::Policy { path, error })?
            }
        };
        Ok(Suite {
            name: name.to_owned(),
            file,
            policy,
        })
    }
}

/// What an engine is asked to load for a test file: the policy's text and,
/// as the format grows, what the policy is loaded with. Only the harness
/// makes one (it is `non_exhaustive`), so a new field is not a breaking
/// change for engines that do not use it yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyLoad<'a> {
    /// The policy document's text.
    pub text: &'a str,
    /// The host environment to load it with (`value_from`, `values_from`):
    /// the file's `env`, with a case's own `env` over it.
    pub env: &'a [(String, String)],
}

/// What an engine made of a policy.
#[derive(Debug)]
pub enum Loaded<P> {
    /// Loaded: cases can run on it.
    Policy(P),
    /// Refused, naming these problems.
    Rejected(Rejection),
    /// The engine itself failed (not a verdict on the policy).
    Failed(String),
}

/// What an engine made of one case.
#[derive(Debug)]
pub enum CaseRun {
    /// It ran and saw this.
    Ran(Outcome),
    /// It ran; the outcome was normalized for a known, harmless difference
    /// of this engine, which the note names (it is reported, not hidden).
    Normalized(Outcome, String),
    /// This engine cannot express the case (not a failure).
    Skip(String),
    /// The engine failed to run it (a failure).
    Error(String),
}

/// How one case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseStatus {
    /// Every expectation met.
    Passed,
    /// These expectations not met.
    Failed(Vec<Mismatch>),
    /// The engine could not run it.
    Error(String),
    /// The engine cannot express it.
    Skipped(String),
}

/// One case's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    /// Its index in the file.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its line in the file.
    pub line: u32,
    /// How it went.
    pub status: CaseStatus,
    /// The decision trace (empty if it did not run).
    pub trace: String,
    /// A note from the engine (see [`CaseRun::Normalized`]).
    pub note: Option<String>,
}

impl CaseReport {
    /// Whether it passed (skips did not).
    pub fn passed(&self) -> bool {
        self.status == CaseStatus::Passed
    }
    /// Whether it failed (skips did not).
    pub fn failed(&self) -> bool {
        matches!(self.status, CaseStatus::Failed(_) | CaseStatus::Error(_))
    }
}

/// The check of an `expect_policy_error` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionCheck {
    /// The paths the file expects.
    pub expected: Vec<String>,
    /// The engine's rejection, or `None` when it accepted the policy.
    pub rejection: Option<Rejection>,
    /// Expected paths the rejection does not name (all when accepted).
    pub missing: Vec<String>,
}

impl RejectionCheck {
    /// Rejected, naming every expected path.
    pub fn passed(&self) -> bool {
        self.rejection.is_some() && self.missing.is_empty()
    }
}

/// Why a file's cases could not run at all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileError {
    /// The engine rejected a policy the file expects to run.
    PolicyRejected(Rejection),
    /// The engine failed to load the policy.
    Engine(String),
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::PolicyRejected(r) => write!(f, "policy rejected:\n{}", r.text),
            FileError::Engine(e) => f.write_str(e),
        }
    }
}

/// What running one test file on one engine gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file's name.
    pub name: String,
    /// Set when nothing could run.
    pub error: Option<FileError>,
    /// Set for an `expect_policy_error` file.
    pub rejection: Option<RejectionCheck>,
    /// Every case, in file order (skipped ones included).
    pub cases: Vec<CaseReport>,
}

impl FileReport {
    /// Nothing failed (skips are not failures).
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && self.rejection.as_ref().is_none_or(RejectionCheck::passed)
            && !self.cases.iter().any(CaseReport::failed)
    }

    /// Each failure as text: where, what was expected and seen, the trace.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(e) = &self.error {
            out.push(format!("{}: {e}", self.name));
        }
        if let Some(r) = self.rejection.as_ref().filter(|r| !r.passed()) {
            out.push(match &r.rejection {
                None => format!(
                    "{}: policy accepted, expected errors at {:?}",
                    self.name, r.expected
                ),
                Some(rej) => format!(
                    "{}: no error at {:?}; errors were:\n{}",
                    self.name, r.missing, rej.text
                ),
            });
        }
        for c in self.cases.iter().filter(|c| c.failed()) {
            let mut s = format!("{}:{}: {}", self.name, c.line, c.name);
            match &c.status {
                CaseStatus::Failed(ms) => {
                    for m in ms {
                        let _ = write!(s, "\n    {m}");
                    }
                }
                CaseStatus::Error(e) => {
                    let _ = write!(s, "\n    error: {e}");
                }
                CaseStatus::Passed | CaseStatus::Skipped(_) => {}
            }
            if !c.trace.is_empty() {
                let _ = write!(s, "\n    trace: {}", c.trace);
            }
            out.push(s);
        }
        out
    }
}

/// Runs one test file on one engine.
///
/// ```
/// use portcullis_harness::{native, run_file, Suite};
///
/// let text = r#"{"policy": {"name": "p", "network": {"rules": [
///     {"name": "all", "priority": 100, "access": "allow", "source": ["*"]}]}},
///   "cases": [{"name": "in", "request": {"peer": "10.0.0.1:5000"},
///              "expect": {"verdict": "forward", "rule": "all"}}]}"#;
/// let suite = Suite::from_text("inline", text, |p| Err((p.into(), "no files".into()))).unwrap();
/// let report = run_file(&suite, native::load, native::run);
/// assert!(report.passed());
/// assert_eq!(report.cases.len(), 1);
/// ```
pub fn run_file<P>(
    suite: &Suite,
    mut load: impl FnMut(PolicyLoad<'_>) -> Loaded<P>,
    mut run: impl FnMut(&mut P, usize, &Case) -> CaseRun,
) -> FileReport {
    let mut report = FileReport {
        name: suite.name.clone(),
        error: None,
        rejection: None,
        cases: Vec::new(),
    };
    let loaded = load(PolicyLoad {
        text: &suite.policy,
        env: &suite.file.env,
    });
    if let Some(want) = &suite.file.expect_policy_error {
        match loaded {
            Loaded::Failed(e) => report.error = Some(FileError::Engine(e)),
            Loaded::Policy(_) => {
                report.rejection = Some(RejectionCheck {
                    expected: want.clone(),
                    rejection: None,
                    missing: want.clone(),
                });
            }
            Loaded::Rejected(r) => {
                let missing = r.missing(want).into_iter().map(String::from).collect();
                report.rejection = Some(RejectionCheck {
                    expected: want.clone(),
                    rejection: Some(r),
                    missing,
                });
            }
        }
        return report;
    }
    let mut policy = match loaded {
        Loaded::Policy(p) => p,
        Loaded::Rejected(r) => {
            report.error = Some(FileError::PolicyRejected(r));
            return report;
        }
        Loaded::Failed(e) => {
            report.error = Some(FileError::Engine(e));
            return report;
        }
    };
    for (index, case) in suite.file.cases.iter().enumerate() {
        // A case with its own `env` runs on the policy loaded with it.
        let mut own = None;
        if let Some(vars) = &case.env {
            let mut env = suite.file.env.clone();
            env.retain(|(k, _)| !vars.iter().any(|(n, _)| n == k));
            env.extend(vars.iter().cloned());
            own = Some(load(PolicyLoad {
                text: &suite.policy,
                env: &env,
            }));
        }
        let outcome = match &mut own {
            None => run(&mut policy, index, case),
            Some(Loaded::Policy(p)) => run(p, index, case),
            Some(Loaded::Rejected(r)) => CaseRun::Error(format!(
                "the policy is rejected with this case's env: {}",
                r.text
            )),
            Some(Loaded::Failed(e)) => CaseRun::Error(e.clone()),
        };
        let (status, trace, note) = match outcome {
            CaseRun::Ran(o) => (status_of(&case.expect, &o), o.trace, None),
            CaseRun::Normalized(o, note) => (status_of(&case.expect, &o), o.trace, Some(note)),
            CaseRun::Skip(why) => (CaseStatus::Skipped(why), String::new(), None),
            CaseRun::Error(e) => (CaseStatus::Error(e), String::new(), None),
        };
        report.cases.push(CaseReport {
            index,
            name: case.name.clone(),
            line: case.line,
            status,
            trace,
            note,
        });
    }
    report
}

fn status_of(expect: &crate::file::Expect, o: &Outcome) -> CaseStatus {
    let m = check(expect, o);
    if m.is_empty() {
        CaseStatus::Passed
    } else {
        CaseStatus::Failed(m)
    }
}

/// Counts over any number of file reports.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Files.
    pub files: usize,
    /// Cases that ran (passed or failed).
    pub cases: usize,
    /// Cases skipped.
    pub skipped: usize,
    /// `expect_policy_error` files checked.
    pub rejections: usize,
    /// Cases, rejection checks and files that failed.
    pub failed: usize,
    /// Cases that passed after a noted normalization.
    pub normalized: usize,
}

impl Tally {
    /// Adds one file's report.
    pub fn add(&mut self, r: &FileReport) {
        self.files += 1;
        if r.error.is_some() {
            self.failed += 1;
        }
        if let Some(rc) = &r.rejection {
            self.rejections += 1;
            if !rc.passed() {
                self.failed += 1;
            }
        }
        for c in &r.cases {
            match c.status {
                CaseStatus::Skipped(_) => self.skipped += 1,
                _ => {
                    self.cases += 1;
                    if c.failed() {
                        self.failed += 1;
                    } else if c.note.is_some() {
                        self.normalized += 1;
                    }
                }
            }
        }
    }

    /// The tally of some reports.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a FileReport>) -> Tally {
        let mut t = Tally::default();
        for r in reports {
            t.add(r);
        }
        t
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files, {} cases, {} rejected policies, {} skipped, {} failed",
            self.files, self.cases, self.rejections, self.skipped, self.failed
        )
    }
}
