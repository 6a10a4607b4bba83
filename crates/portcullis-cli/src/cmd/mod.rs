//! One module per subcommand: its `Args` and its `run`.

pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod diff;
pub(crate) mod explain;
pub(crate) mod import;
pub(crate) mod package;
pub(crate) mod test;
