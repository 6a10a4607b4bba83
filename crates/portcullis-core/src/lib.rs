//! The Portcullis policy engine.
//!
//! A policy document (policy-v1, JSON) says who may call an API and how its
//! traffic is hardened: NSG-style prioritized allow/deny rules on the client
//! address, ports and protocol; HTTPS-only; HSTS; header rewriting both ways;
//! APIM-style required headers. This crate reads such a document, rejects a
//! bad one with every problem at once ([`Policy::parse`]), and decides any
//! request ([`Policy::decide`]), returning the decision with its trace, the
//! header edits for the request and the response, and hardened local replies.
//! Policy test files (policy-tests-v1) are read and run by
//! `portcullis-harness`, which calls this crate as one of its engines.
//!
//! Where things live:
//! - [`policy`]: the compiled model ([`Policy`] and its sections), its
//!   validation (`policy/validate/`, one file per section) and the syntax of
//!   names, ports and hosts ([`policy::syntax`]); scopes and their
//!   effective policies, compiled once at load ([`policy::scope`]);
//! - [`rule`]: one network rule and the [`Flow`] it is matched against;
//!   [`matcher`]: the compiled rule table;
//! - [`decide`]: [`Request`], [`Headers`], the steps of [`Policy::decide`],
//!   the [`Decision`] and its one-line [`Trace`]; client address resolution,
//!   the choice of scope (host and path normalization) and HTTPS checks in
//!   their own files;
//! - [`edits`] (header edits and [`apply_edits`]), [`reply`] (local
//!   replies), [`explain`] (scope by scope and rule by rule, in words),
//!   [`lint`];
//! - [`addr`], [`json`]: addresses and the position-keeping JSON reader.
//!
//! What this crate does *not* do:
//! - no I/O, no clock, no logging, no globals: hosts feed it requests and
//!   apply the edits it returns;
//! - no TLS or HTTP parsing: the host says whether a connection is TLS and
//!   hands over header bytes as it has them;
//! - no std: `#![no_std]` + `alloc`, with no dependencies at all, so it builds
//!   for `wasm32v1-none` and `x86_64-unknown-none`;
//! - nothing on the request path panics, and nothing there assumes header
//!   bytes are UTF-8. Clippy enforces it: the whole crate (tests aside)
//!   denies `unwrap`, `expect`, `panic!` and indexing or slicing that can
//!   fail (`clippy::indexing_slicing`); the request path also denies
//!   arithmetic that can overflow (`clippy::arithmetic_side_effects`):
//!   the modules [`decide`] (with client address resolution), [`edits`],
//!   [`reply`], [`rule`] and [`explain`], and the request-time functions of
//!   [`matcher`], [`addr`] and [`policy::syntax`] (each marked with the
//!   lint). Loading a policy (the JSON reader, the validator, building the
//!   matcher) is not linted for overflow: its arithmetic is on positions,
//!   depths and counts bounded by the document's size (at most
//!   [`policy::MAX_POLICY_BYTES`]) and the matcher's
//!   [`matcher::MAX_ENTRIES`].
#![no_std]
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

extern crate alloc;

pub mod act;
pub mod addr;
pub mod decide;
pub mod edits;
mod env;
mod error;
pub mod explain;
mod inputs;
pub mod json;
pub mod lint;
pub mod matcher;
pub mod names;
pub mod policy;
mod provenance;
pub mod reply;
pub mod rule;
mod words;

pub use act::{Action, Forward, ResponsePlan};
pub use decide::{
    header_miss, Client, ClientSource, Decision, HeaderMiss, Headers, Reason, Request, Step, Trace,
    Verdict, Would, NO_SCOPE, WOULD_PREFIX,
};
pub use edits::{apply_edits, Edit, EditOp, HeaderEntry};
pub use env::{Env, NoEnv};
pub use error::{EnvProblem, Error, Problem, Problems, RuleRef};
pub use explain::{Field, RuleCheck, ScopeCheck, Shown};
pub use inputs::Inputs;
pub use policy::Policy;
pub use reply::LocalReply;
pub use rule::{Flow, Transport};
