//! Report mode decides exactly as enforce mode and stops nothing.
//!
//! The reference is the same policy with `"mode": "enforce"`: for random
//! requests (addresses, ports, TLS, methods, hosts, keys, X-Forwarded-For)
//! the report-mode decision forwards with no local reply, names the same
//! rule and client, and its `would` is the enforce decision's verdict,
//! status, reason and location (none when enforce forwards); the request
//! edits are the enforce ones and the response edits those of a forwarded
//! request.
#![allow(clippy::unwrap_used)] // tests

use std::net::SocketAddr;

use portcullis_core::{Policy, Request, Transport, Verdict};
use proptest::prelude::*;

const POLICY: &str = r#"{
  "name": "p", "mode": "MODE",
  "client_ip": { "from": "x-forwarded-for", "trusted_proxies": ["10.0.0.0/24"] },
  "network": { "rules": [
    { "name": "deny-lab", "priority": 100, "access": "deny", "source": ["192.168.50.0/24"] },
    { "name": "web", "priority": 200, "access": "allow", "source": ["Internet", "10.0.0.0/8"], "destination_ports": ["443", "80"] }
  ], "deny": { "status": 451 } },
  "https_only": { "action": "redirect", "hosts": ["api.contoso.net"] },
  "require_headers": [ { "name": "x-key", "values": ["K1", "K2"], "status": 401 } ],
  "request_headers": [ { "set": "x-seen", "value": "1" } ],
  "response_headers": [ { "remove": "server" } ],
  "hsts": { "max_age": 60 }
}"#;

fn peer() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("65.52.10.20".to_string()),
        Just("192.168.50.3".to_string()),
        Just("10.0.0.5".to_string()),
        Just("172.16.0.1".to_string()),
        Just("[2001:db8::1]".to_string()),
        Just("[2603:1000::1]".to_string()),
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
    ]
}

proptest! {
    #[test]
    fn report_is_enforce_without_stopping(
        peer in peer(),
        sport in any::<u16>(),
        dport in prop_oneof![Just(443u16), Just(80), Just(8443)],
        tls in any::<bool>(),
        post in any::<bool>(),
        host in prop_oneof![Just("api.contoso.net"), Just("other.example")],
        key in prop_oneof![Just(None), Just(Some("K1")), Just(Some("K2")), Just(Some("bad"))],
        xff in prop_oneof![Just(None), Just(Some("192.168.50.9")), Just(Some("65.52.1.1")), Just(Some("garbage"))],
    ) {
        let enforce = Policy::parse(POLICY.replace("MODE", "enforce").as_bytes()).unwrap();
        let report = Policy::parse(POLICY.replace("MODE", "report").as_bytes()).unwrap();
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(k) = key { headers.push(("x-key", k)); }
        if let Some(x) = xff { headers.push(("x-forwarded-for", x)); }
        let peer: SocketAddr = format!("{peer}:{sport}").parse().unwrap();
        let req = Request {
            peer,
            local: format!("10.0.0.4:{dport}").parse().unwrap(),
            tls,
            transport: Transport::Tcp,
            method: if post { b"POST" } else { b"GET" },
            authority: host.as_bytes(),
            path: b"/a?b",
            headers: &headers,
        };
        let e = enforce.decide(&req);
        let r = report.decide(&req);
        prop_assert_eq!(r.verdict, Verdict::Forward);
        prop_assert_eq!(r.status, 0);
        prop_assert!(report.local_reply(&r).is_none());
        prop_assert_eq!(r.rule, e.rule);
        prop_assert_eq!(r.client, e.client);
        prop_assert_eq!(r.secure, e.secure);
        prop_assert_eq!(r.enforced_verdict(), e.verdict);
        prop_assert_eq!(r.deciding_step(), e.step);
        match &r.would {
            None => prop_assert_eq!(e.verdict, Verdict::Forward),
            Some(w) => {
                prop_assert_ne!(e.verdict, Verdict::Forward);
                prop_assert_eq!((w.verdict, w.status, w.reason, &w.location), (e.verdict, e.status, e.reason, &e.location));
            }
        }
        // The text trace is enforce's with `would_` before a stopping verdict.
        let (te, tr) = (enforce.trace(&e), report.trace(&r));
        if e.verdict == Verdict::Forward {
            prop_assert_eq!(&tr, &te);
        } else {
            prop_assert_eq!(tr, format!("would_{te}"));
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enforce.request_edits(&headers, &mut a);
        report.request_edits(&headers, &mut b);
        prop_assert_eq!(a, b);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enforce.response_edits(e.secure, &headers, &mut a);
        report.response_edits(r.secure, &headers, &mut b);
        prop_assert_eq!(a, b);
    }
}
