//! Which request inputs a policy reads, so hosts ask for nothing whose answer
//! cannot change the decision or the edits (host calls are the main
//! per-request cost of a proxy-wasm filter).

use crate::rule::Protocol;
use crate::Policy;

/// The inputs a policy depends on, worked out once per configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    /// The local address or port: some rule looks at `destination` or
    /// `destination_ports`. When false, hosts may pass any local address.
    pub local: bool,
    /// Whether the connection is TLS: `https_only` or `hsts` depend on it
    /// (nothing else does). When false, hosts may pass `tls: false`.
    pub tls: bool,
    /// The transport: some rule is limited to `tcp` or `udp` (HTTP/3).
    pub protocol: bool,
    /// Request headers (`client_ip` from X-Forwarded-For, `Forwarded` or a
    /// header, `trust_forwarded_proto`, `require_headers`, a request `set`
    /// op: the `_` twins of set or required headers are looked for among
    /// the names). Hosts should read them lazily, on the first
    /// [`crate::Headers::each_value`] call.
    pub request_headers: bool,
    /// Response headers (a response op with `exists: skip`).
    pub response_headers: bool,
    /// Whether plain requests are redirected or rejected (so `:method`,
    /// `:authority` and `:path` matter for them), here or in some scope.
    pub https_only: bool,
    /// Some scope matches on `hosts` (so `:authority` matters always).
    pub scope_hosts: bool,
    /// Some scope matches on `paths` (so `:path` matters always).
    pub scope_paths: bool,
    /// Some scope matches on `methods` (so `:method` matters always).
    pub scope_methods: bool,
}

impl Inputs {
    /// Whether `:method`, `:authority` and `:path` must be read before
    /// deciding a request: only a plain request can be redirected, and
    /// scopes match on them. A policy without scopes on a TLS connection
    /// reads none of them.
    pub fn pseudo_headers(&self, tls: bool) -> bool {
        (self.https_only && !tls) || self.scope_hosts || self.scope_paths || self.scope_methods
    }

    fn or(self, o: Inputs) -> Inputs {
        Inputs {
            local: self.local || o.local,
            tls: self.tls || o.tls,
            protocol: self.protocol || o.protocol,
            request_headers: self.request_headers || o.request_headers,
            response_headers: self.response_headers || o.response_headers,
            https_only: self.https_only || o.https_only,
            scope_hosts: self.scope_hosts || o.scope_hosts,
            scope_paths: self.scope_paths || o.scope_paths,
            scope_methods: self.scope_methods || o.scope_methods,
        }
    }
}

impl Policy {
    /// The inputs this policy reads: its own, and those of every scope's
    /// effective policy.
    pub fn inputs(&self) -> Inputs {
        let rules = self.network.as_ref().map_or(&[][..], |n| &n.rules[..]);
        let own = Inputs {
            local: rules
                .iter()
                .any(|r| !r.destination.is_any() || !r.destination_ports.is_any()),
            tls: self.https_only.is_some() || self.hsts.is_some(),
            protocol: rules.iter().any(|r| r.protocol != Protocol::Any),
            request_headers: self.reads_request_headers(),
            response_headers: self.reads_response_headers(),
            https_only: self.https_only.is_some(),
            scope_hosts: self.scopes.iter().any(|s| !s.hosts.is_empty()),
            scope_paths: self.scopes_read_paths(),
            scope_methods: self.scopes.iter().any(|s| !s.methods.is_empty()),
        };
        self.scopes
            .iter()
            .fold(own, |acc, s| acc.or(s.policy.inputs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(json: &str) -> Inputs {
        // The samples read their key with value_from.
        Policy::parse_with_env(json.as_bytes(), &[("FUNCTION_KEY", "k")])
            .unwrap()
            .inputs()
    }

    #[test]
    fn samples() {
        let apim = inputs(include_str!(
            "../../../policy-samples/functions-behind-apim.json"
        ));
        assert_eq!(
            apim,
            Inputs {
                local: true,
                tls: true,
                protocol: true,
                request_headers: true,
                response_headers: false,
                https_only: true,
                scope_hosts: false,
                scope_paths: false,
                scope_methods: false,
            }
        );
        let layered = inputs(include_str!(
            "../../../policy-samples/layered-security.json"
        ));
        assert_eq!(
            layered,
            Inputs {
                local: true,
                tls: false,
                protocol: true,
                request_headers: false,
                response_headers: false,
                https_only: false,
                scope_hosts: false,
                scope_paths: false,
                scope_methods: false,
            }
        );
    }

    #[test]
    fn source_only_rules_need_neither_local_nor_protocol() {
        let n = inputs(
            r#"{"name":"p","network":{"rules":[{"name":"a","priority":100,"access":"allow","source":["10.0.0.0/8"]}]}}"#,
        );
        assert!(!n.local && !n.protocol && !n.tls && !n.request_headers);
        let n = inputs(
            r#"{"name":"p","network":{"rules":[{"name":"a","priority":100,"access":"allow","source":["*"],"destination":["10.0.0.1"]}]}}"#,
        );
        assert!(n.local && !n.protocol);
        let n = inputs(
            r#"{"name":"p","network":{"rules":[{"name":"a","priority":100,"access":"allow","source":["*"],"protocol":"udp"}]},"hsts":{"max_age":0}}"#,
        );
        assert!(!n.local && n.protocol && n.tls);
    }

    #[test]
    fn pseudo_headers_only_for_plain_requests_under_https_only() {
        let n = inputs(r#"{"name":"p","https_only":{"action":"redirect","hosts":["a.example"]}}"#);
        assert!(n.pseudo_headers(false));
        assert!(!n.pseudo_headers(true));
        assert!(!inputs(r#"{"name":"p"}"#).pseudo_headers(false));
    }

    #[test]
    fn scopes_add_their_inputs() {
        let n = inputs(
            r#"{"name":"p","scopes":[{"name":"a","match":{"paths":["/a/*"]},"hsts":{"max_age":0}},{"name":"b","match":{"methods":["GET"]},"require_headers":[{"name":"k","values":["v"]}]}]}"#,
        );
        assert!(n.scope_paths && n.scope_methods && !n.scope_hosts);
        assert!(n.tls && n.request_headers && !n.https_only);
        assert!(n.pseudo_headers(true));
        let n = inputs(r#"{"name":"p","scopes":[{"name":"a","match":{"hosts":["a.example"]}}]}"#);
        assert!(n.scope_hosts && !n.scope_paths && n.pseudo_headers(true));
    }
}
