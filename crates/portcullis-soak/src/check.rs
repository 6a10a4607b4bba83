//! What a response must look like, according to the core.
//!
//! [`expected`] asks `portcullis-core` for the decision on the exact request
//! that was sent (peer and local address of the connection, TLS or not,
//! method, Host, path, every header) and turns it into the response the
//! client must get, from `Policy::act`: the core's local reply (status,
//! hardened headers, body) or, when forwarded, the stand-in backend's answer
//! with the response plan's edits applied (`ResponsePlan::edits` +
//! `apply_edits`). [`compare`] checks a response against it on the status,
//! the body and every header the policy or the backend touch.
//! [`hardening`] checks the policy's promises directly, independent of the
//! core: no `Server`, no `X-Powered-By`, and `Strict-Transport-Security`
//! exactly once on secure responses, never on plain ones.

use std::net::SocketAddr;

use portcullis_core::{apply_edits, Action, Policy, Request, Transport, Verdict};

use portcullis_e2e::backend::{azure_headers, OK_BODY};
use portcullis_e2e::http1::Response;

/// Headers compared between the expected and the received response: every
/// header the policies or the backend set or remove.
pub const CHECKED: &[&str] = &[
    "location",
    "strict-transport-security",
    "server",
    "x-powered-by",
    "x-aspnet-version",
    "x-content-type-options",
    "x-portcullis-policy",
    "content-type",
];

/// The request as sent.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// The client side of the connection.
    pub peer: SocketAddr,
    /// The listener.
    pub local: SocketAddr,
    /// TLS or plain.
    pub tls: bool,
    /// Method.
    pub method: &'a [u8],
    /// Host header.
    pub authority: &'a [u8],
    /// Path and query.
    pub path: &'a [u8],
    /// Every header but Host.
    pub headers: &'a Vec<(String, Vec<u8>)>,
}

/// The response the client must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The verdict.
    pub verdict: Verdict,
    /// Status.
    pub status: u16,
    /// Headers (any case).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

/// The core's answer for `sent` under `policy`.
pub fn expected(policy: &Policy, sent: &Sent<'_>) -> Expected {
    let d = policy.decide(&Request {
        peer: sent.peer,
        local: sent.local,
        tls: sent.tls,
        transport: Transport::Tcp,
        method: sent.method,
        authority: sent.authority,
        path: sent.path,
        headers: sent.headers,
    });
    match policy.act(&d) {
        Action::Reply(r) => Expected {
            verdict: d.verdict,
            status: r.status,
            headers: r.headers,
            body: r.body,
        },
        Action::Forward(forward) => {
            let mut h = azure_headers();
            let mut edits = Vec::new();
            forward.response().edits(policy, &h, &mut edits);
            apply_edits(&mut h, &edits);
            Expected {
                verdict: Verdict::Forward,
                status: 200,
                headers: h,
                body: OK_BODY.to_vec(),
            }
        }
    }
}

fn show(v: &[&[u8]]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|b| format!("{:?}", String::from_utf8_lossy(b)))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Checks a response against the expectation; the first difference.
pub fn compare(want: &Expected, got: &Response) -> Result<(), String> {
    if got.status != want.status {
        return Err(format!("status {} instead of {}", got.status, want.status));
    }
    for name in CHECKED {
        let w: Vec<&[u8]> = want
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect();
        let g = got.values(name);
        if w != g {
            return Err(format!("{name}: {} instead of {}", show(&g), show(&w)));
        }
    }
    if got.body != want.body {
        return Err(format!(
            "body {:?} instead of {:?}",
            String::from_utf8_lossy(&got.body),
            String::from_utf8_lossy(&want.body)
        ));
    }
    Ok(())
}

/// The policy's promises on a response the filter handled: no `Server`,
/// no `X-Powered-By`, HSTS exactly once when `secure` and `hsts`, never
/// otherwise. For a response Envoy made before any filter ran (431),
/// pass `filter_ran: false`: then only `Server` and `X-Powered-By` are
/// checked (Envoy adds neither in this configuration).
pub fn hardening(got: &Response, secure: bool, hsts: bool, filter_ran: bool) -> Result<(), String> {
    for name in ["server", "x-powered-by"] {
        if !got.values(name).is_empty() {
            return Err(format!("{name} present: {}", show(&got.values(name))));
        }
    }
    if filter_ran {
        let n = got.values("strict-transport-security").len();
        let want = usize::from(secure && hsts);
        if n != want {
            return Err(format!(
                "strict-transport-security {n} times instead of {want} (secure: {secure})"
            ));
        }
    }
    Ok(())
}

/// Checks Envoy's own rejection of oversized headers: 431, and no sign of
/// the filter (it never saw the request).
///
/// The wasm filter never sees Envoy's 431 (sent while parsing the request
/// head); Envoy does run the native module on it (`native`), which applies
/// the policy's response ops as on any reply it did not decide.
pub fn envoy_431(got: &Response, native: bool) -> Result<(), String> {
    if got.status != 431 {
        return Err(format!("status {} instead of Envoy's 431", got.status));
    }
    let ran = !got.values("x-portcullis-policy").is_empty();
    if ran && !native {
        return Err("a 431 carries x-portcullis-policy: the filter ran".into());
    }
    if !ran && native {
        return Err("a 431 lacks x-portcullis-policy: the native module did not harden it".into());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::workload::{policy_json, HOST, KEY};

    fn policy(k: usize) -> Policy {
        Policy::parse(policy_json(k).as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn response(e: &Expected) -> Response {
        Response::new(
            e.status,
            "HTTP/1.1".into(),
            e.headers
                .iter()
                .cloned()
                .chain([("date".into(), b"now".to_vec())])
                .collect(),
            e.body.clone(),
            false,
        )
    }

    fn sent<'a>(peer: [u8; 4], tls: bool, headers: &'a Vec<(String, Vec<u8>)>) -> Sent<'a> {
        Sent {
            peer: SocketAddr::from((peer, 40000)),
            local: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls,
            method: b"GET",
            authority: HOST.as_bytes(),
            path: b"/x?y=1",
            headers,
        }
    }

    #[test]
    fn the_two_policies_decide_the_swapped_callers_differently() {
        let (a, b) = (policy(0), policy(1));
        let h = vec![("x-functions-key".to_owned(), KEY.to_vec())];
        let only_a = sent([127, 10, 1, 1], true, &h);
        let ea = expected(&a, &only_a);
        let eb = expected(&b, &only_a);
        assert_eq!((ea.verdict, ea.status), (Verdict::Forward, 200));
        assert_eq!((eb.verdict, eb.status), (Verdict::Deny, 403));
        assert!(compare(&ea, &response(&ea)).is_ok());
        assert!(compare(&ea, &response(&eb)).is_err());
        // Same status, other policy: still told apart (policy header, body).
        let neither = sent([127, 40, 1, 1], true, &h);
        let (na, nb) = (expected(&a, &neither), expected(&b, &neither));
        assert_eq!((na.status, nb.status), (403, 403));
        assert!(compare(&na, &response(&nb)).is_err());
        // Plain: redirect with the location.
        let plain = expected(&a, &sent([127, 30, 1, 1], false, &h));
        assert_eq!((plain.verdict, plain.status), (Verdict::Redirect, 301));
        let got = response(&plain);
        assert_eq!(
            got.values("location"),
            vec![b"https://api.soak.test/x?y=1".as_slice()]
        );
        let mut moved = got.clone();
        moved.headers.retain(|(n, _)| n != "location");
        assert!(compare(&plain, &moved).unwrap_err().starts_with("location"));
    }

    #[test]
    fn hardening_catches_leaks_and_hsts_counts() {
        let a = policy(0);
        let h = vec![("x-functions-key".to_owned(), KEY.to_vec())];
        let ok = response(&expected(&a, &sent([127, 30, 1, 1], true, &h)));
        assert!(hardening(&ok, true, true, true).is_ok());
        assert!(hardening(&ok, false, true, true).is_err());
        let mut leak = ok.clone();
        leak.headers
            .push(("x-powered-by".into(), b"ASP.NET".to_vec()));
        assert!(hardening(&leak, true, true, true).is_err());
        let mut twice = ok.clone();
        twice
            .headers
            .push(("strict-transport-security".into(), b"max-age=1".to_vec()));
        assert!(hardening(&twice, true, true, true).is_err());
        let plain = response(&expected(&a, &sent([127, 30, 1, 1], false, &h)));
        assert!(hardening(&plain, false, true, true).is_ok());
        // The backend's own headers never pass.
        let raw = Response::new(
            200,
            "HTTP/1.1".into(),
            azure_headers(),
            OK_BODY.to_vec(),
            false,
        );
        assert!(hardening(&raw, false, true, true).is_err());
    }
}
