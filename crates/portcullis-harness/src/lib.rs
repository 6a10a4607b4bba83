//! The one runner of policy test files (policy-tests-v1) for every engine.
//!
//! Each engine (the core natively, the filter under wasmtime, real Envoy,
//! the browser playground) supplies two closures, one to load a policy and
//! one to run a case, and [`run_file`] does the rest: it reads nothing
//! itself but the [`Suite`] it is given, holds a rejected policy to the
//! file's `expect_policy_error`, runs each case, [`check()`]s what the engine
//! saw against the case's expectations, and returns a [`FileReport`] in
//! which a skipped case (one an engine cannot express) is a result of its
//! own, with its reason. [`Tally`] counts reports.
//!
//! - [`read`]: the reader (JSON text to a [`TestFile`], or every problem
//!   with its JSON path and line:col), linear in the file's size;
//! - [`file`](mod@file): the data a test file holds, and the request [`defaults`];
//! - [`check`](mod@check): [`Outcome`], [`check()`], [`Rejection`];
//! - [`run`]: [`Suite`], [`run_file`], the reports;
//! - [`native`]: the core as an engine;
//! - [`corpus`]: which files are test files, the corpus, the playground's
//!   manifest.
//!
//! What this crate does *not* do:
//! - decide anything: decisions, replies and edits are the core's;
//! - talk to a filter, wasmtime or Envoy: each engine's closures live with
//!   the engine (`portcullis-cli`, `portcullis-e2e`, `portcullis-web`);
//! - read files while running: [`Suite::read`] and [`corpus`] touch the
//!   disk, [`run_file`] never does (so it runs in the browser too);
//! - print: reports are data, front-ends format them.
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod check;
pub mod corpus;
pub mod file;
pub mod native;
pub mod read;
pub mod run;

pub use check::{check, show_bytes, Mismatch, Outcome, Rejection};
pub use file::{
    defaults, Case, CaseRequest, Expect, HeaderExpect, HeaderList, PolicySource, TestFile, Upstream,
};
pub use run::{
    run_file, CaseReport, CaseRun, CaseStatus, FileError, FileReport, LoadError, Loaded,
    PolicyLoad, RejectionCheck, Suite, Tally,
};
