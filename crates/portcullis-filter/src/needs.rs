//! What a policy needs from the host, so the filter makes no host call whose
//! answer cannot change the decision or the edits. Host calls are the main
//! per-request cost of a proxy-wasm filter.

use portcullis_core::policy::Protocol;
use portcullis_core::Policy;

/// The request inputs a policy reads, worked out once per configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `destination.address`: some rule looks at the destination address or port.
    pub local: bool,
    /// `connection.tls_version`: `https_only` or `hsts` depend on whether
    /// the request is secure (nothing else does).
    pub tls: bool,
    /// `request.protocol`: some rule is limited to `tcp` or `udp` (HTTP/3).
    pub protocol: bool,
    /// Whether deciding or editing may consult request headers at all
    /// (`client_ip` from X-Forwarded-For, `trust_forwarded_proto`,
    /// `require_headers`, or a request op with `exists: skip`). The filter
    /// reads the map lazily, the first time the core asks for a header, so
    /// a request stopped earlier (e.g. by a network rule) never reads it; the
    /// map is read up front only for the pseudo-headers of a plain request
    /// under `https_only` (see [`Needs::pseudo_headers`]).
    pub request_headers: bool,
    /// The response header map (a response op with `exists: skip`).
    pub response_headers: bool,
}

impl Needs {
    /// Works out the inputs `policy` reads.
    pub fn of(policy: &Policy) -> Needs {
        let rules = policy.network.as_ref().map_or(&[][..], |n| &n.rules[..]);
        Needs {
            local: rules
                .iter()
                .any(|r| !r.destination.is_any() || !r.destination_ports.is_any()),
            tls: policy.https_only.is_some() || policy.hsts.is_some(),
            protocol: rules.iter().any(|r| r.protocol != Protocol::Any),
            request_headers: policy.reads_request_headers(),
            response_headers: policy.reads_response_headers(),
        }
    }

    /// Whether the pseudo-headers (`:method`, `:authority`, `:path`) must be
    /// read before deciding: only a plain request can be redirected.
    pub fn pseudo_headers(&self, policy: &Policy, tls: bool) -> bool {
        policy.https_only.is_some() && !tls
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn needs(json: &str) -> Needs {
        Needs::of(&Policy::parse(json.as_bytes()).unwrap())
    }

    #[test]
    fn samples() {
        let apim = needs(include_str!(
            "../../../policy-samples/functions-behind-apim.json"
        ));
        assert_eq!(
            apim,
            Needs {
                local: true,
                tls: true,
                protocol: true,
                request_headers: true,
                response_headers: false,
            }
        );
        let layered = needs(include_str!(
            "../../../policy-samples/layered-security.json"
        ));
        assert_eq!(
            layered,
            Needs {
                local: true,
                tls: false,
                protocol: true,
                request_headers: false,
                response_headers: false,
            }
        );
    }

    #[test]
    fn source_only_rules_need_neither_local_nor_protocol() {
        let n = needs(
            r#"{"name":"p","network":{"rules":[
                {"name":"a","priority":100,"access":"allow","source":["10.0.0.0/8"]}]}}"#,
        );
        assert!(!n.local && !n.protocol && !n.tls && !n.request_headers);
        let n = needs(
            r#"{"name":"p","network":{"rules":[
                {"name":"a","priority":100,"access":"allow","source":["*"],"destination":["10.0.0.1"]}]}}"#,
        );
        assert!(n.local && !n.protocol);
        let n = needs(
            r#"{"name":"p","network":{"rules":[
                {"name":"a","priority":100,"access":"allow","source":["*"],"protocol":"udp"}]},
                "hsts":{"max_age":0}}"#,
        );
        assert!(!n.local && n.protocol && n.tls);
    }

    #[test]
    fn pseudo_headers_only_for_plain_requests_under_https_only() {
        let p = Policy::parse(
            br#"{"name":"p","https_only":{"action":"redirect","hosts":["a.example"]}}"#,
        )
        .unwrap();
        let n = Needs::of(&p);
        assert!(n.pseudo_headers(&p, false));
        assert!(!n.pseudo_headers(&p, true));
        let q = Policy::parse(br#"{"name":"p"}"#).unwrap();
        assert!(!Needs::of(&q).pseudo_headers(&q, false));
    }
}
