//! The host environment a policy is loaded with.
//!
//! A `set` op may take its value from the environment
//! (`"value_from": {"env": "FUNCTION_KEY"}`) and a `require_headers` entry
//! its accepted values (`"values_from": [{"env": "KEY_OLD"}, {"env": "KEY_NEW"}]`),
//! so a backend key lives in the host (Envoy's
//! `vm_config.environment_variables`, the CLI's environment, a test file's
//! `env`) instead of inline in every copy of the policy. Variables are read
//! once, when the policy is loaded; a missing or empty one rejects the
//! policy, naming the path and the variable but never a value.
//!
//! This module does not read any process environment itself (the core has
//! no std): each host hands over its own through [`Env`].

use alloc::string::String;

/// A source of environment variables.
///
/// ```
/// use portcullis_core::{Env, Policy};
///
/// let policy = br#"{"name": "p", "request_headers": [
///     {"set": "x-functions-key", "value_from": {"env": "FUNCTION_KEY"}}]}"#;
/// let env = [("FUNCTION_KEY", "K-123")];
/// let p = Policy::parse_with_env(policy, &env).unwrap();
/// assert_eq!(p.request_headers.len(), 1);
///
/// // Without the variable, the policy is rejected, naming path and variable.
/// let err = Policy::parse(policy).unwrap_err();
/// assert_eq!(err.0[0].path, "request_headers[0].value_from.env");
/// assert!(err.0[0].to_string().contains("FUNCTION_KEY"));
/// ```
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// No environment at all: every `value_from` is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for [(K, V)] {
    fn var(&self, name: &str) -> Option<String> {
        // The last definition wins, as in a shell.
        self.iter()
            .rev()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| String::from(v.as_ref()))
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for &[(K, V)] {
    fn var(&self, name: &str) -> Option<String> {
        (**self).var(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Env for [(K, V); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Env for alloc::vec::Vec<(K, V)> {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl<K: AsRef<str> + Ord, V: AsRef<str>> Env for alloc::collections::BTreeMap<K, V> {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| String::from(v.as_ref()))
    }
}

/// Whether `name` can be an environment variable name:
/// `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes.
pub(crate) fn is_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 128
}
