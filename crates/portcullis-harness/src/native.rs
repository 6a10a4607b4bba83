//! The native engine: `portcullis-core` itself, as a pair of runner
//! closures ([`load`], [`run`]) and as [`run_core`] for front-ends that
//! show one decision (the playground's evaluator).

use portcullis_core::{apply_edits, Action, Policy};

use crate::check::{Outcome, Rejection};
use crate::file::Case;
use crate::run::{run_file, CaseRun, FileReport, Loaded, PolicyLoad, Suite};

/// Loads a policy on the core.
pub fn load(policy: PolicyLoad<'_>) -> Loaded<Policy> {
    match Policy::parse_with_env(policy.text.as_bytes(), &policy.env) {
        Ok(p) => Loaded::Policy(p),
        Err(e) => Loaded::Rejected(Rejection::from_problems(&e)),
    }
}

/// Runs a case on a policy the core loaded.
pub fn run(policy: &mut Policy, _index: usize, case: &Case) -> CaseRun {
    CaseRun::Ran(run_core(policy, case))
}

/// Runs a whole test file on the core.
pub fn run_suite(suite: &Suite) -> FileReport {
    run_file(suite, load, run)
}

/// What the core does with a case's request: the decision, and either the
/// local reply or the request and response after the policy's edits.
pub fn run_core(policy: &Policy, case: &Case) -> Outcome {
    let req = case.request.as_request();
    let d = policy.decide(&req);
    let trace = policy.trace(&d);
    let client_ip = d
        .client
        .ip
        .map_or_else(|| String::from("unknown"), |ip| ip.to_string());
    let mut o = Outcome {
        verdict: d.verdict,
        status: d.status,
        rule: policy.rule_of(&d).to_owned(),
        client_ip,
        step: d.deciding_step(),
        would_verdict: d.enforced_verdict(),
        would_status: 0,
        trace,
        location: None,
        upstream_headers: None,
        response_headers: Vec::new(),
        body: Vec::new(),
    };
    match policy.act(&d) {
        Action::Reply(reply) => {
            o.status = reply.status;
            o.location = reply
                .headers
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
            o.response_headers = reply.headers;
            o.body = reply.body;
        }
        Action::Forward(forward) => {
            let mut up = case.request.headers.clone();
            let mut edits = Vec::new();
            forward.request_edits(&case.request.headers, &mut edits);
            apply_edits(&mut up, &edits);
            o.upstream_headers = Some(up);
            let mut resp = case.upstream.headers.clone();
            edits.clear();
            forward
                .response()
                .edits(policy, &case.upstream.headers, &mut edits);
            apply_edits(&mut resp, &edits);
            o.status = case.upstream.status;
            o.response_headers = resp;
        }
    }
    o.would_status = d.would.as_ref().map_or(o.status, |w| w.status);
    o
}
