//! What a host must do with a decision: one call, [`Policy::act`], for
//! every front-end (the proxy-wasm filter, the native Envoy module, the
//! test harness, `explain`, the soak's checker), so none of them assembles
//! "a local reply, else the scope's request edits and, later, the response
//! edits" by hand.
//!
//! A decision becomes either an [`Action::Reply`] (send this local reply,
//! response edits and HSTS already applied) or an [`Action::Forward`]: the
//! request edits to make now, and a [`ResponsePlan`], a small `Copy` value
//! the host keeps until the response headers arrive and then turns into the
//! response edits.
//!
//! What this module does *not* do: it performs no I/O and keeps no state
//! between calls; the host applies the edits in order, to its own header
//! maps, and sends the reply itself.
//!
//! ```
//! use portcullis_core::{Action, Policy, Request, Transport};
//!
//! let policy = Policy::parse(br#"{
//!   "name": "p",
//!   "network": { "rules": [
//!     { "name": "office", "priority": 100, "access": "allow", "source": ["10.0.0.0/8"] }
//!   ] },
//!   "request_headers": [ { "set": "x-from-gateway", "value": "1" } ],
//!   "hsts": { "max_age": 600 }
//! }"#).unwrap();
//! let none: [(&str, &str); 0] = [];
//! let req = Request {
//!     peer: "10.1.2.3:50000".parse().unwrap(),
//!     local: "10.0.0.4:443".parse().unwrap(),
//!     tls: true,
//!     transport: Transport::Tcp,
//!     method: b"GET",
//!     authority: b"api.example.com",
//!     path: b"/",
//!     headers: &none,
//! };
//! let Action::Forward(fwd) = policy.act(&policy.decide(&req)) else { panic!("denied") };
//! let mut edits = Vec::new();
//! fwd.request_edits(&none, &mut edits);
//! assert_eq!(edits[0].name, "x-from-gateway");
//! // Later, on the response: the plan is all the host keeps.
//! let plan = fwd.response();
//! edits.clear();
//! plan.edits(&policy, &none, &mut edits);
//! assert_eq!(edits[0].value, b"max-age=600");
//!
//! let outsider = Request { peer: "192.0.2.7:50000".parse().unwrap(), ..req };
//! let Action::Reply(reply) = policy.act(&policy.decide(&outsider)) else { panic!("forwarded") };
//! assert_eq!((reply.status, reply.details), (403, "portcullis_network"));
//! ```

use alloc::vec::Vec;

use crate::decide::{Decision, Headers, Step};
use crate::edits::Edit;
use crate::policy::Policy;
use crate::reply::LocalReply;

/// What a host does with a request, from [`Policy::act`].
#[derive(Debug)]
pub enum Action<'p> {
    /// Answer locally with this reply (its response edits and HSTS are
    /// applied already); the request goes no further.
    Reply(LocalReply),
    /// Forward the request after [`Forward::request_edits`]; keep
    /// [`Forward::response`] for the response.
    Forward(Forward<'p>),
}

/// A forwarded request: the policy that applies to it (its scope's) and
/// what to do with its response.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'p> {
    policy: &'p Policy,
    plan: ResponsePlan,
}

impl<'p> Forward<'p> {
    /// The edits to make on the request before it goes upstream (step 5):
    /// `_` twins of the headers the policy sets or requires, then the
    /// `request_headers` ops (the top level's, then the scope's).
    pub fn request_edits(&self, headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
        self.policy.request_edits(headers, out);
    }

    /// What to do with the response, when it comes.
    pub fn response(&self) -> ResponsePlan {
        self.plan
    }
}

/// What to do with a response (step 6): a plain value a host keeps between
/// the request and the response callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePlan {
    scope: Option<usize>,
    secure: bool,
}

impl ResponsePlan {
    /// The plan for a response whose request no decision covered (a host
    /// that saw the response but not the request): the top level's
    /// response edits, HSTS when the connection itself is secure.
    pub fn undecided(secure: bool) -> ResponsePlan {
        ResponsePlan {
            scope: None,
            secure,
        }
    }

    /// Whether the request counted as secure (HSTS is sent).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The edits to make on the response headers: the `response_headers`
    /// ops of the request's scope, then HSTS (or its removal on a plain
    /// request). `policy` is the whole policy the plan came from;
    /// `headers` is only read for `exists: skip` ops.
    pub fn edits<'p>(&self, policy: &'p Policy, headers: &dyn Headers, out: &mut Vec<Edit<'p>>) {
        policy
            .scoped(self.scope)
            .response_edits(self.secure, headers, out);
    }
}

impl ResponsePlan {
    /// Whether a reply the host wrote itself for this forwarded request (a
    /// router 404, a 503) needs other edits than an upstream response:
    /// when the request's scope has no `hsts` while the top level has one,
    /// the HSTS a TLS listener's `local_reply_config` adds to the host's own
    /// replies (the top level's, `docs/filter.md`) must go again. Hosts ask
    /// whether the reply is their own only when this says so.
    pub fn host_reply_differs(&self, policy: &Policy) -> bool {
        self.secure
            && self.scope.is_some()
            && policy.scoped(self.scope).hsts.is_none()
            && policy.hsts.is_some()
    }

    /// The edits for a reply the host wrote itself: [`ResponsePlan::edits`],
    /// then, when [`ResponsePlan::host_reply_differs`], the removal of the
    /// listener's HSTS. An upstream's own header is never touched: use
    /// [`ResponsePlan::edits`] for upstream responses.
    pub fn host_reply_edits<'p>(
        &self,
        policy: &'p Policy,
        headers: &dyn Headers,
        out: &mut Vec<Edit<'p>>,
    ) {
        self.edits(policy, headers, out);
        if self.host_reply_differs(policy) {
            out.push(Edit {
                op: crate::edits::EditOp::Remove,
                name: "strict-transport-security",
                value: b"",
            });
        }
    }
}

impl Step {
    /// The response code details a host gives a local reply at this step
    /// (`portcullis_network`...), for access logs.
    pub const fn details(self) -> &'static str {
        match self {
            Step::ClientIp => "portcullis_client_ip",
            Step::Scope => "portcullis_scope",
            Step::Network => "portcullis_network",
            Step::HttpsOnly => "portcullis_https_only",
            Step::RequireHeaders => "portcullis_require_headers",
            Step::Forward => "portcullis_forward",
        }
    }
}

impl Policy {
    /// What a host must do with a decision of this policy: send a local
    /// reply, or forward with the request edits and a response plan. The
    /// one place that turns a [`Decision`] into host actions.
    pub fn act(&self, d: &Decision) -> Action<'_> {
        match self.local_reply(d) {
            Some(reply) => Action::Reply(reply),
            None => Action::Forward(Forward {
                policy: self.scoped(d.scope),
                plan: ResponsePlan {
                    scope: d.scope,
                    secure: d.secure,
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_reply_in_a_scope_without_hsts_loses_the_listener_hsts() {
        let p = Policy::parse(
            br#"{"name": "p", "hsts": {"max_age": 60}, "scopes": [
              {"name": "bare", "match": {"paths": ["/bare"]}, "inherit": false},
              {"name": "own", "match": {"paths": ["/own"]}, "hsts": {"max_age": 5}}]}"#,
        )
        .unwrap();
        let none: [(&str, &str); 0] = [];
        let plan = |scope, secure| ResponsePlan { scope, secure };
        let names = |pl: ResponsePlan| {
            let mut e = Vec::new();
            pl.host_reply_edits(&p, &none, &mut e);
            e.iter()
                .map(|e| (e.op, e.name, e.value.to_vec()))
                .collect::<Vec<_>>()
        };
        assert!(plan(Some(0), true).host_reply_differs(&p));
        assert_eq!(
            names(plan(Some(0), true)),
            [(
                crate::edits::EditOp::Remove,
                "strict-transport-security",
                Vec::new()
            )]
        );
        // Plain requests, the top level and a scope with its own HSTS: the
        // same edits as for an upstream response.
        for pl in [plan(Some(0), false), plan(None, true), plan(Some(1), true)] {
            assert!(!pl.host_reply_differs(&p), "{pl:?}");
            let mut e = Vec::new();
            pl.edits(&p, &none, &mut e);
            assert_eq!(names(pl).len(), e.len());
        }
    }

    #[test]
    fn details_name_the_step() {
        for s in [
            Step::ClientIp,
            Step::Scope,
            Step::Network,
            Step::HttpsOnly,
            Step::RequireHeaders,
            Step::Forward,
        ] {
            assert_eq!(
                s.details().strip_prefix("portcullis_"),
                Some(s.as_str()),
                "{s:?}"
            );
        }
    }
}
