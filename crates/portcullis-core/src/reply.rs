//! Local replies: the hardened answer to a request the policy stops.

// The request path: arithmetic that could overflow is denied here (see
// the crate docs).
#![deny(clippy::arithmetic_side_effects)]

use alloc::string::String;
use alloc::vec::Vec;

use crate::decide::{Decision, Reason};
use crate::edits::apply_edits;
use crate::policy::Policy;

/// A local reply, hardened: response ops and HSTS already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// Status code.
    pub status: u16,
    /// Headers (lowercase names).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Policy {
    /// The local reply for a decision that stops the request, with the
    /// response ops and HSTS of the decision's scope applied; `None` when
    /// it is forwarded.
    ///
    /// ```
    /// use portcullis_core::{Policy, Request, Transport};
    ///
    /// let policy = Policy::parse(br#"{
    ///   "name": "orders-api",
    ///   "network": { "rules": [], "deny": { "status": 404, "body": "Not here\n" } },
    ///   "response_headers": [ { "set": "x-content-type-options", "value": "nosniff" } ],
    ///   "hsts": { "max_age": 31536000 }
    /// }"#)
    /// .unwrap();
    /// let none: [(&str, &str); 0] = [];
    /// let req = Request {
    ///     peer: "192.0.2.7:50000".parse().unwrap(),
    ///     local: "10.0.0.4:443".parse().unwrap(),
    ///     tls: true,
    ///     transport: Transport::Tcp,
    ///     method: b"GET",
    ///     authority: b"api.example.com",
    ///     path: b"/",
    ///     headers: &none,
    /// };
    /// let reply = policy.local_reply(&policy.decide(&req)).expect("denied");
    /// assert_eq!(reply.status, 404);
    /// assert_eq!(reply.body, b"Not here\n");
    /// let header = |name: &str| {
    ///     reply.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    /// };
    /// assert_eq!(header("content-type"), Some(&b"text/plain; charset=utf-8"[..]));
    /// assert_eq!(header("x-content-type-options"), Some(&b"nosniff"[..]));
    /// // A secure request: the reply carries HSTS too.
    /// assert_eq!(header("strict-transport-security"), Some(&b"max-age=31536000"[..]));
    /// ```
    pub fn local_reply(&self, d: &Decision) -> Option<LocalReply> {
        let p = self.scoped(d.scope);
        let body: &[u8] = match d.reason {
            Reason::Passed => return None,
            Reason::RedirectToHttps => b"",
            Reason::AmbiguousPath => b"Bad Request: ambiguous path\n",
            Reason::UnreadableAuthority => b"Bad Request: unreadable authority\n",
            Reason::UnknownClient | Reason::NetworkDenied => p
                .network
                .as_ref()
                .map_or(b"Forbidden\n".as_slice(), |n| n.deny_body.as_bytes()),
            Reason::HostNotAllowed => b"Bad Request: host not allowed\n",
            Reason::HttpsRequired => b"HTTPS Required\n",
            Reason::RequiredHeader(_) => b"Unauthorized\n",
        };
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(loc) = &d.location {
            headers.push((String::from("location"), loc.clone()));
        }
        if !body.is_empty() {
            headers.push((
                String::from("content-type"),
                b"text/plain; charset=utf-8".to_vec(),
            ));
        }
        let mut edits = Vec::new();
        p.response_edits(d.secure, &headers, &mut edits);
        apply_edits(&mut headers, &edits);
        Some(LocalReply {
            status: d.status,
            headers,
            body: body.to_vec(),
        })
    }
}
