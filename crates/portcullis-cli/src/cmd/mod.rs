//! One module per subcommand: its `Args` and its `run`.

pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod diff;
pub(crate) mod explain;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod package;
pub(crate) mod replay;
pub(crate) mod test;

/// Parses a policy for `check`, `explain` and `diff`: `value_from` and
/// `values_from` read this process's environment (`portcullis test` reads
/// the test file's `env` instead, so tests do not depend on the machine).
pub(crate) fn parse_policy(
    bytes: &[u8],
) -> Result<portcullis_core::Policy, portcullis_core::Problems> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    portcullis_core::Policy::parse_with_env(bytes, &env)
}
