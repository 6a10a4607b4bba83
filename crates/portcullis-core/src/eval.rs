//! The former home of the decision types, kept as a path so code written
//! against `portcullis_core::eval::…` keeps compiling. New code names them
//! from the crate root; they live in [`crate::decide`], [`crate::edits`],
//! [`crate::reply`], [`crate::explain`] and [`crate::rule`].

pub use crate::decide::{Client, ClientSource, Decision, Headers, Request, Step, Trace, Verdict};
pub use crate::edits::{apply_edits, Edit, EditOp};
pub use crate::explain::{Field, RuleCheck};
pub use crate::reply::LocalReply;
pub use crate::rule::{Flow, Transport};
