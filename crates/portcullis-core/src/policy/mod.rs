//! The policy document: its compiled model, and how it is read.
//!
//! [`Policy::parse`] reads a policy-v1 document, checks every rule of the
//! spec (in `validate`) and either returns a compiled [`Policy`] or every
//! problem found, each with its JSON path, line and column. Nothing is
//! half-applied. The syntax of ports, hosts, names and tokens is in
//! [`syntax`]; the network rule itself in [`crate::rule`].

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::addr::AddrSet;
use crate::env::{Env, NoEnv};
use crate::error::{Error, Problem, Problems};
use crate::json;
use crate::matcher::Table;
use crate::words::words;

pub mod scope;
pub mod syntax;
mod validate;

pub use validate::address_list;

pub use scope::{HostPattern, PathPattern, Restated, Scope};

pub use crate::rule::{Access, PortSet, Protocol, Rule};
use syntax::is_name;
pub use syntax::parse_port_spec;

/// Largest policy document accepted, in bytes.
pub const MAX_POLICY_BYTES: usize = 8 << 20;

/// The `network` section.
#[derive(Debug, Clone)]
pub struct Network {
    /// Rules in priority order (lowest number first).
    pub rules: Vec<Rule>,
    /// What happens when no rule matches.
    pub default_access: Access,
    /// Status of the deny reply.
    pub deny_status: u16,
    /// Body of the deny reply.
    pub deny_body: String,
    /// The compiled matcher.
    pub table: Table,
    /// Line and column of `network.rules`, for errors found compiling it.
    rules_at: (u32, u32),
}

words! {
    /// Where the client address comes from: the policy's `client_ip.from`,
    /// and, in a decision, where it came from
    /// ([`ClientSource`](crate::ClientSource) is this type).
    pub enum ClientFrom {
        /// The TCP peer.
        Peer = "peer",
        /// X-Forwarded-For, from trusted proxies only.
        XForwardedFor = "x-forwarded-for",
        /// RFC 7239 `Forwarded`, from trusted proxies only.
        Forwarded = "forwarded",
        /// One header a trusted proxy sets (`client_ip.header`).
        Header = "header",
    }
}

words! {
    /// `mode`: whether the policy stops requests (`enforce`) or only says
    /// what it would have done (`report`, spec "Report mode").
    pub enum Mode {
        /// Deny, redirect and reject as decided.
        Enforce = "enforce",
        /// Decide and record everything, forward every request.
        Report = "report",
    }
}

words! {
    /// `trace` (an extension of policy-v1): which decisions a host publishes
    /// as its trace property (Envoy: filter state for the access log). Every
    /// decision still has a trace ([`Policy::trace`]); this only says which
    /// ones are worth a host call to hand over.
    pub enum TraceWhen {
        /// Every request (the default).
        All = "all",
        /// Requests the policy stops (deny, redirect, reject) or, in report
        /// mode, would have stopped: the ones an operator looks into.
        /// Forwarded requests cost no trace call.
        Deny = "deny",
        /// None: no trace property at all.
        Off = "none",
    }
}

impl TraceWhen {
    /// Whether a decision's trace is published under this setting.
    pub fn selects(self, d: &crate::Decision) -> bool {
        match self {
            TraceWhen::All => true,
            // In report mode: also what the policy would have stopped.
            TraceWhen::Deny => d.verdict != crate::Verdict::Forward || d.would.is_some(),
            TraceWhen::Off => false,
        }
    }
}

/// The `client_ip` section.
#[derive(Debug, Clone)]
pub struct ClientIp {
    /// Source of the address.
    pub from: ClientFrom,
    /// Proxies whose X-Forwarded-For, `Forwarded` or client header (and
    /// X-Forwarded-Proto) are believed.
    pub trusted_proxies: AddrSet,
    /// With `from: header`: the header's lowercased name.
    pub header: Option<String>,
}

words! {
    /// What to do with a plain request.
    pub enum HttpsAction {
        /// Redirect to `https://`.
        Redirect = "redirect",
        /// Refuse it.
        Reject = "reject",
    }
}

/// A host a `Location` may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// The host without port, lowercased, for matching `:authority`.
    pub host: String,
    /// What goes after `https://` (port kept unless 443).
    pub location: String,
}

/// The `https_only` section.
#[derive(Debug, Clone)]
pub struct HttpsOnly {
    /// Redirect or reject.
    pub action: HttpsAction,
    /// Status of a redirect of GET/HEAD.
    pub redirect_status: u16,
    /// Hosts a redirect may name.
    pub hosts: Vec<AllowedHost>,
    /// Status of a reject.
    pub reject_status: u16,
    /// Believe `X-Forwarded-Proto: https` from trusted proxies.
    pub trust_forwarded_proto: bool,
}

/// One `require_headers` entry.
#[derive(Clone)]
pub struct RequiredHeader {
    /// Lowercased name.
    pub name: String,
    /// Accepted values: the inline `values`, then those of `values_from`.
    pub values: Vec<Vec<u8>>,
    /// The environment variables of `values_from`, in order (their values
    /// are the last `env.len()` entries of `values`).
    pub env: Vec<String>,
    /// Status when missing or wrong.
    pub status: u16,
}

impl core::fmt::Debug for RequiredHeader {
    // Values are secrets: never printed, not even in debug output.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RequiredHeader")
            .field("name", &self.name)
            .field(
                "values",
                &alloc::format!("<{} redacted>", self.values.len()),
            )
            .field("env", &self.env)
            .field("status", &self.status)
            .finish()
    }
}

words! {
    /// `exists` of a set op.
    pub enum Exists {
        /// Replace all existing values.
        Override = "override",
        /// Keep an existing header untouched.
        Skip = "skip",
        /// Add one more value.
        Append = "append",
    }
}

/// A header op.
#[derive(Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Remove every value of the (lowercased) name.
    Remove(String),
    /// Set the (lowercased) name.
    Set {
        /// Lowercased name.
        name: String,
        /// Value.
        value: String,
        /// What to do when it exists.
        exists: Exists,
        /// The environment variable the value was read from
        /// (`value_from`), if it was not inline.
        from_env: Option<String>,
    },
}

impl core::fmt::Debug for HeaderOp {
    // A value read from the environment is a secret: never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderOp::Remove(n) => f.debug_tuple("Remove").field(n).finish(),
            HeaderOp::Set {
                name,
                value,
                exists,
                from_env,
            } => {
                let mut d = f.debug_struct("Set");
                d.field("name", name);
                match from_env {
                    Some(var) => d.field("value", &alloc::format!("<from env {var}>")),
                    None => d.field("value", value),
                };
                d.field("exists", exists).finish()
            }
        }
    }
}

impl HeaderOp {
    /// The header the op touches.
    pub fn name(&self) -> &str {
        match self {
            HeaderOp::Remove(n) | HeaderOp::Set { name: n, .. } => n,
        }
    }
}

/// The `hsts` section.
#[derive(Debug, Clone)]
pub struct Hsts {
    /// `max-age` in seconds.
    pub max_age: u64,
    /// `includeSubDomains`.
    pub include_subdomains: bool,
    /// `preload`.
    pub preload: bool,
    /// The rendered header value.
    pub value: String,
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The policy's name.
    pub name: String,
    /// Client address resolution.
    pub client_ip: ClientIp,
    /// Network rules, if any.
    pub network: Option<Network>,
    /// HTTPS enforcement, if any.
    pub https_only: Option<HttpsOnly>,
    /// APIM `check-header`s.
    pub require_headers: Vec<RequiredHeader>,
    /// Ops on the forwarded request.
    pub request_headers: Vec<HeaderOp>,
    /// Ops on every response.
    pub response_headers: Vec<HeaderOp>,
    /// HSTS, if any.
    pub hsts: Option<Hsts>,
    /// Address groups by name, resolved.
    pub address_groups: BTreeMap<String, AddrSet>,
    /// `enforce` (default) or `report`.
    pub mode: Mode,
    /// `trace_json: true` (an extension): hosts also publish the JSON form
    /// of the trace ([`Policy::trace_json`]) for access logs.
    pub trace_json: bool,
    /// Scopes in document order, each with its effective policy (empty in
    /// an effective policy itself).
    pub scopes: Vec<Scope>,
    /// Where a header that looks like a credential is given an inline value
    /// (path and line), for the `inline-credential` lint.
    pub inline_credentials: Vec<(String, u32)>,
    /// Which decisions hosts publish as a trace property (`trace`, default
    /// `all`).
    pub trace: TraceWhen,
}

impl Policy {
    /// Parses and validates a policy document with no host environment
    /// (a `value_from` or `values_from` is then reported as missing).
    ///
    /// A document that breaks any rule of the spec is rejected as a whole,
    /// with every problem, each with its JSON path, line and column:
    ///
    /// ```
    /// use portcullis_core::Policy;
    ///
    /// let policy = Policy::parse(br#"{
    ///   "name": "orders-api",
    ///   "network": { "rules": [
    ///     { "name": "office", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"] }
    ///   ] }
    /// }"#)
    /// .expect("a valid policy");
    /// assert_eq!(policy.name, "orders-api");
    ///
    /// let problems = Policy::parse(br#"{
    ///   "name": "orders-api",
    ///   "network": { "rules": [
    ///     { "name": "office", "priority": 99, "access": "allow", "source": ["10.0.0.1/8"] }
    ///   ] }
    /// }"#)
    /// .unwrap_err();
    /// let found: Vec<String> = problems.0.iter().map(|p| p.to_string()).collect();
    /// assert_eq!(found, [
    ///     "4:37: network.rules[0].priority: must be an integer from 100 to 4096",
    ///     "4:71: network.rules[0].source[0]: invalid address \"10.0.0.1/8\": \
    ///      host bits are set; did you mean 10.0.0.0/8?",
    /// ]);
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<Policy, Problems> {
        Policy::parse_with(bytes, &NoEnv, true)
    }

    /// Parses and validates a policy document, reading `value_from` and
    /// `values_from` variables from `env` (see [`Env`]).
    pub fn parse_with_env(bytes: &[u8], env: &dyn Env) -> Result<Policy, Problems> {
        Policy::parse_with(bytes, env, true)
    }

    /// [`Policy::parse_with_env`] for a host that only decides: the same
    /// checks and decisions, but rules do not keep their source specs as
    /// written ([`Rule::source_text`] stays empty; only `explain` shows
    /// them), which saves a copy of every address string in the document.
    /// The Envoy filter loads policies this way.
    ///
    /// Once the rule table is built, rules' [`Rule::source`] and the
    /// resolved [`Policy::address_groups`] are emptied too: deciding reads
    /// the table only, and at 10,000 prefixes they are a sizeable share of
    /// the policy's memory.
    pub fn parse_for_decisions(bytes: &[u8], env: &dyn Env) -> Result<Policy, Problems> {
        Policy::read(bytes, env, false)?
            .compile()
            .map(Policy::for_decisions)
    }

    /// [`Policy::parse_for_decisions`] that takes the document and frees it
    /// before the rule table is built, so the two are never in memory
    /// together: a wasm VM's memory only grows, so its high-water mark is
    /// what every worker keeps. The Envoy filter loads policies this way.
    pub fn parse_owned_for_decisions(bytes: Vec<u8>, env: &dyn Env) -> Result<Policy, Problems> {
        let policy = Policy::read(&bytes, env, false)?;
        drop(bytes);
        policy.compile().map(Policy::for_decisions)
    }

    /// Empties what only explanations read (see
    /// [`Policy::parse_for_decisions`]).
    fn for_decisions(mut self) -> Policy {
        fn forget(p: &mut Policy) {
            if let Some(net) = &mut p.network {
                for r in &mut net.rules {
                    r.source = AddrSet::default();
                }
            }
            p.address_groups = BTreeMap::new();
        }
        forget(&mut self);
        for s in &mut self.scopes {
            forget(&mut s.policy);
        }
        self
    }

    fn parse_with(bytes: &[u8], env: &dyn Env, texts: bool) -> Result<Policy, Problems> {
        Policy::read(bytes, env, texts)?.compile()
    }

    /// Checks a document and builds the policy without its rule tables.
    fn read(bytes: &[u8], env: &dyn Env, texts: bool) -> Result<Policy, Problems> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(Problems(alloc::vec![Problem {
                path: String::new(),
                line: 1,
                column: 1,
                error: Error::TooLarge {
                    limit: MAX_POLICY_BYTES
                },
            }]));
        }
        let text = match core::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let ok = bytes.get(..e.valid_up_to()).unwrap_or(&[]);
                let (line, column) =
                    json::line_col(core::str::from_utf8(ok).unwrap_or(""), ok.len());
                return Err(Problems(alloc::vec![Problem {
                    path: String::new(),
                    line,
                    column,
                    error: Error::NotUtf8,
                }]));
            }
        };
        // Address lists stay text in the tree: one value per element would
        // be most of a large policy's load time and memory.
        let value = json::parse_lean(text, validate::address_list)
            .map_err(|e| Problems::syntax(text, &e))?;
        let policy = Policy::validate(&value, text, env, texts)?;
        drop(value);
        Ok(policy)
    }

    /// Compiles the network rules into the matcher (the top level's and
    /// each scope's own), then works out each scope's effective policy.
    fn compile(mut self) -> Result<Policy, Problems> {
        fn build(net: &mut Network, path: String, problems: &mut Vec<Problem>) {
            match Table::build(&net.rules) {
                Ok(t) => net.table = t,
                Err(error) => problems.push(Problem {
                    path,
                    line: net.rules_at.0,
                    column: net.rules_at.1,
                    error,
                }),
            }
        }
        let mut problems = Vec::new();
        if let Some(net) = &mut self.network {
            build(net, String::from("network.rules"), &mut problems);
        }
        for (i, s) in self.scopes.iter_mut().enumerate() {
            if let Some(net) = &mut s.policy.network {
                let path = alloc::format!("scopes[{i}].network.rules");
                build(net, path, &mut problems);
            }
        }
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        self.merge_scopes();
        Ok(self)
    }

    /// The `name` of a document, when it is JSON with a well-formed name,
    /// valid or not otherwise: hosts use it to label a rejected policy.
    pub fn name_of(bytes: &[u8]) -> Option<String> {
        let text = core::str::from_utf8(bytes).ok()?;
        let value = json::parse(text).ok()?;
        let name = value.get("name")?.as_str()?;
        is_name(name, 64).then(|| name.to_string())
    }

    /// Name of a rule by index, or `default`.
    pub fn rule_name(&self, rule: Option<usize>) -> &str {
        match (rule, &self.network) {
            (Some(i), Some(n)) => n.rules.get(i).map_or("default", |r| r.name.as_str()),
            _ => "default",
        }
    }

    /// Whether deciding a request needs any request header (beyond the
    /// pseudo-headers used for redirects). Lets hosts skip reading them.
    pub fn reads_request_headers(&self) -> bool {
        self.client_ip.from != ClientFrom::Peer
            || self.guarded_names().next().is_some()
            || self
                .https_only
                .as_ref()
                .is_some_and(|h| h.trust_forwarded_proto)
            || !self.require_headers.is_empty()
            || self.request_headers.iter().any(|op| {
                matches!(
                    op,
                    HeaderOp::Set {
                        exists: Exists::Skip,
                        ..
                    }
                )
            })
    }

    /// The headers the policy sets on requests, requires, or names in a
    /// rule's `headers`, whose `_`
    /// twins (`x_functions_key` beside `x-functions-key`) are removed from
    /// requests (see [`Policy::request_edits`]). May repeat a name.
    pub fn guarded_names(&self) -> impl Iterator<Item = &str> {
        let sets = self.request_headers.iter().filter_map(|op| match op {
            HeaderOp::Set { name, .. } => Some(name.as_str()),
            HeaderOp::Remove(_) => None,
        });
        let rules = self.network.iter().flat_map(|n| {
            n.rules
                .iter()
                .flat_map(|r| r.headers.iter().map(|h| h.name.as_str()))
        });
        sets.chain(self.require_headers.iter().map(|r| r.name.as_str()))
            .chain(rules)
    }

    /// Whether response edits depend on the response's headers (a `skip`
    /// op), so hosts must pass them.
    pub fn reads_response_headers(&self) -> bool {
        self.response_headers.iter().any(|op| {
            matches!(
                op,
                HeaderOp::Set {
                    exists: Exists::Skip,
                    ..
                }
            )
        })
    }
}
