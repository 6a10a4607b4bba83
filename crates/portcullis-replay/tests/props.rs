//! Property tests: random policy pairs and random records of every format,
//! written as log text and read back through the readers.
//!
//! - A record whose fields are all recorded (flow tuples, the Envoy replay
//!   format) is judged exactly as the core decides it: the test builds the
//!   [`Request`] (or the [`Flow`]) itself and calls `decide` / `match_rule`.
//! - A record that lacks fields (App Service logs, traces) is judged only
//!   when every completion of what it lacks gets the same verdict from
//!   `decide`: checked on random completions.
//! - The report's groups add up to the records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests

use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;

use portcullis_core::policy::ClientFrom;
use portcullis_core::{addr, Flow, Policy, Request, Transport, Verdict};
use portcullis_replay::read::{read_bytes, Item};
use portcullis_replay::{judge, Loc, Side, Tally, Unjudged};
use proptest::prelude::*;

const SOURCES: &[&str] = &[
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.0.2.0/24",
    "*",
    "65.52.10.20",
    "2001:db8::/32",
];
const CLIENTS: &[&str] = &[
    "10.1.2.3",
    "10.200.0.1",
    "192.0.2.7",
    "65.52.10.20",
    "203.0.113.9",
    "2001:db8::5",
];

fn rule(i: usize) -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::sample::select(SOURCES),
        prop::option::of(prop::sample::select(&["443", "80", "454-455"][..])),
        prop::option::of(prop::sample::select(&["tcp", "udp"][..])),
        prop::option::of(Just("1024-65535")),
        prop::option::of(Just("10.0.1.0/24")),
    )
        .prop_map(move |(allow, src, dport, proto, sport, dst)| {
            let mut s = format!(
                r#"{{"name":"r{i}","priority":{},"access":"{}","source":["{src}"]"#,
                100 + i * 10,
                if allow { "allow" } else { "deny" }
            );
            if let Some(p) = dport {
                s += &format!(r#","destination_ports":["{p}"]"#);
            }
            if let Some(p) = proto {
                s += &format!(r#","protocol":"{p}""#);
            }
            if let Some(p) = sport {
                s += &format!(r#","source_ports":["{p}"]"#);
            }
            if let Some(d) = dst {
                s += &format!(r#","destination":["{d}"]"#);
            }
            s + "}"
        })
}

fn network() -> impl Strategy<Value = String> {
    (
        (0usize..4).prop_flat_map(|n| (0..n).map(rule).collect::<Vec<_>>()),
        any::<bool>(),
    )
        .prop_map(|(rules, allow)| {
            format!(
                r#"{{"rules":[{}],"default_access":"{}"}}"#,
                rules.join(","),
                if allow { "allow" } else { "deny" }
            )
        })
}

/// A random policy; `http` adds the sections only HTTP records can show.
fn policy(http: bool) -> impl Strategy<Value = Policy> {
    (
        network(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(network()),
    )
        .prop_map(move |(net, xff, https, fdid, scope)| {
            let mut s = format!(r#"{{"name":"p","network":{net}"#);
            if xff {
                s += r#","client_ip":{"from":"x-forwarded-for","trusted_proxies":["10.0.0.0/8"]}"#;
            }
            if http && https {
                // Behind a trusted proxy, sometimes its X-Forwarded-Proto is believed.
                if xff && fdid {
                    s += r#","https_only":{"action":"reject","trust_forwarded_proto":true}"#;
                } else {
                    s += r#","https_only":{"action":"reject"}"#;
                }
            }
            if http && fdid {
                s += r#","require_headers":[{"name":"x-azure-fdid","values":["fd-1"]}]"#;
            }
            if let Some(n) = scope {
                s += &format!(
                    r#","scopes":[{{"name":"api","match":{{"hosts":["api.example.com"]}},"network":{n}}}]"#
                );
            }
            s += "}";
            Policy::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e:?}"))
        })
}

fn client() -> impl Strategy<Value = IpAddr> {
    prop::sample::select(CLIENTS).prop_map(|c| c.parse().unwrap())
}

fn enforced(p: &Policy, req: &Request<'_>) -> (bool, Option<usize>) {
    let d = p.decide(req);
    (d.enforced_verdict() == Verdict::Forward, d.rule)
}

/// Reads `text` and judges its one record in `p`.
fn judged_one(p: &Policy, text: &str) -> Result<portcullis_replay::Judged, Unjudged> {
    let mut out = None;
    read_bytes(text.as_bytes(), &mut |_, item| {
        out = Some(match item {
            Item::Record(r) => judge(p, &r),
            Item::Skip(u) => Err(u),
            Item::Malformed(m) => panic!("{text}: {m}"),
        });
        ControlFlow::Continue(())
    })
    .unwrap();
    out.expect("one record")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Flow tuples (NSG and VNet): the network step on the flow, as the
    /// core's matcher decides it, in the top level and every scope alike.
    #[test]
    fn flow_tuples_are_decided_by_the_matcher(
        p in policy(false),
        src in client(),
        sport in prop::sample::select(&[80u16, 5000, 50000][..]),
        dport in prop::sample::select(&[80u16, 443, 454, 8080][..]),
        udp in any::<bool>(),
        vnet in any::<bool>(),
    ) {
        let dst: IpAddr = "10.0.1.4".parse().unwrap();
        let tuple = if vnet {
            format!("1764583200000,{src},{dst},{sport},{dport},{},I,B,NX,0,0,0,0", if udp { 17 } else { 6 })
        } else {
            format!("1764583200,{src},{dst},{sport},{dport},{},I,A,B,,,,", if udp { "U" } else { "T" })
        };
        let text = format!(r#"{{"records":[{{"properties":{{"flows":[{{"flows":[{{"flowTuples":["{tuple}"]}}]}}]}}}}]}}"#);
        let got = judged_one(&p, &text);
        let transport = if udp { Transport::Udp } else { Transport::Tcp };
        let flow = Flow { src: addr::key(src), sport, dst: addr::key(dst), dport, transport };
        let trusted = p.client_ip.from != ClientFrom::Peer
            && p.client_ip.trusted_proxies.contains(addr::key(src));
        let allows = |q: &Policy| match &q.network {
            None => true,
            Some(n) => q.match_rule(&flow).and_then(|i| n.rules.get(i)).map_or(n.default_access, |r| r.access)
                == portcullis_core::policy::Access::Allow,
        };
        let top = allows(&p);
        let agree = (0..p.scopes.len()).all(|i| allows(p.scoped(Some(i))) == top);
        match got {
            Err(Unjudged::ClientInHeader) => prop_assert!(trusted),
            Err(Unjudged::ScopeNotRecorded) => prop_assert!(!trusted && !agree),
            Err(e) => prop_assert!(false, "{e:?}"),
            Ok(j) => {
                prop_assert!(!trusted && agree);
                prop_assert_eq!(j.decider.allowed, top);
                prop_assert_eq!(j.decider.rule.map(|r| r as usize), p.match_rule(&flow));
            }
        }
    }

    /// The Envoy replay format records everything: judged as `decide`
    /// decides the same request.
    #[test]
    fn envoy_records_are_decided_by_decide(
        p in policy(true),
        peer in client(),
        xff in prop::option::of(client()),
        tls in any::<bool>(),
        fdid in prop::option::of(prop::sample::select(&["fd-1", "fd-2"][..])),
        host in prop::sample::select(&["api.example.com", "other.example.com"][..]),
        xfp in prop::option::of(prop::option::of(prop::sample::select(&["https", "http"][..]))),
    ) {
        let mut headers = serde_json::Map::new();
        // None: not carried; Some(None): carried, absent.
        if let Some(v) = xfp {
            headers.insert("x-forwarded-proto".into(), v.map_or(serde_json::Value::Null, Into::into));
        }
        headers.insert("x-forwarded-for".into(), xff.map_or(serde_json::Value::Null, |x| x.to_string().into()));
        headers.insert("x-azure-fdid".into(), fdid.map_or(serde_json::Value::Null, Into::into));
        let peer_sa = SocketAddr::new(peer, 50000);
        let line = serde_json::json!({
            "portcullis_log": 1,
            "start_time": "2026-12-01T10:00:00.000Z",
            "downstream_remote_address": peer_sa.to_string(),
            "downstream_local_address": "10.0.1.4:443",
            "protocol": "HTTP/1.1",
            "tls": if tls { "TLSv1.3" } else { "-" },
            "method": "GET",
            "authority": host,
            "path": "/orders",
            "headers": headers,
        })
        .to_string();
        let got = judged_one(&p, &line);
        let mut h: Vec<(&str, String)> = Vec::new();
        if let Some(x) = xff {
            h.push(("x-forwarded-for", x.to_string()));
        }
        if let Some(f) = fdid {
            h.push(("x-azure-fdid", f.to_string()));
        }
        if let Some(Some(v)) = xfp {
            h.push(("x-forwarded-proto", v.to_string()));
        }
        let trusts_xfp = p.https_only.as_ref().is_some_and(|x| x.trust_forwarded_proto)
            && p.client_ip.trusted_proxies.contains(addr::key(peer));
        let got = match got {
            Err(Unjudged::TlsNotRecorded) => {
                // Only when the proxy's X-Forwarded-Proto matters and is not carried.
                prop_assert!(trusts_xfp && xfp.is_none() && !tls);
                return Ok(());
            }
            other => other.unwrap(),
        };
        let req = Request {
            peer: peer_sa,
            local: "10.0.1.4:443".parse().unwrap(),
            tls,
            transport: Transport::Tcp,
            method: b"GET",
            authority: host.as_bytes(),
            path: b"/orders",
            headers: &h,
        };
        let (allowed, rule) = enforced(&p, &req);
        prop_assert_eq!(got.decider.allowed, allowed);
        if xfp.is_none() {
            // Not carried: the request may have had any; judged only when
            // that cannot matter.
            let mut with = h.clone();
            with.push(("x-forwarded-proto", "https".to_string()));
            let req = Request { headers: &with, ..req };
            prop_assert_eq!(got.decider.allowed, enforced(&p, &req).0);
        }
        prop_assert_eq!(got.decider.rule.map(|r| r as usize), rule);
        prop_assert_eq!(got.decider.scope.map(|s| s as usize), p.decide(&req).scope);
    }

    /// App Service IPSec audit records lack ports, the local address, TLS,
    /// the method and the path: when judged, every completion is decided
    /// alike by `decide`.
    #[test]
    fn app_service_records_are_judged_only_when_the_gaps_do_not_matter(
        p in policy(true),
        peer in client(),
        xff in prop::option::of(client()),
        fdid in prop::option::of(prop::sample::select(&["fd-1", "fd-2"][..])),
        completions in prop::collection::vec((any::<u16>(), prop::sample::select(&[80u16, 443, 454, 8080][..]), any::<bool>(), prop::sample::select(&["10.0.1.4", "10.9.9.9"][..])), 8),
    ) {
        let line = serde_json::json!({
            "TimeGenerated": "2026-12-01T10:00:00Z",
            "Category": "AppServiceIPSecAuditLogs",
            "CIp": peer.to_string(),
            "CsHost": "api.example.com",
            "XForwardedFor": xff.map(|x| x.to_string()).unwrap_or_default(),
            "XAzureFDID": fdid.unwrap_or_default(),
            "Result": "Allowed",
        })
        .to_string();
        let Ok(got) = judged_one(&p, &line) else { return Ok(()) };
        let mut h: Vec<(&str, String)> = Vec::new();
        if let Some(x) = xff {
            h.push(("x-forwarded-for", x.to_string()));
        }
        if let Some(f) = fdid {
            h.push(("x-azure-fdid", f.to_string()));
        }
        for (sport, dport, tls, local) in completions {
            let req = Request {
                peer: SocketAddr::new(peer, sport),
                local: SocketAddr::new(local.parse().unwrap(), dport),
                tls,
                transport: Transport::Tcp,
                method: b"POST",
                authority: b"api.example.com",
                path: b"/x",
                headers: &h,
            };
            prop_assert_eq!(got.decider.allowed, enforced(&p, &req).0);
        }
    }

    /// Portcullis traces name the resolved client only: judged when the
    /// rules that may decide look at nothing else.
    #[test]
    fn traces_are_judged_on_the_client_alone(
        p in policy(false),
        c in client(),
        completions in prop::collection::vec((any::<u16>(), prop::sample::select(&[80u16, 443, 454, 8080][..]), any::<bool>()), 8),
    ) {
        let line = format!(r#"{{"policy":"x","mode":"enforce","verdict":"forward","would_verdict":"forward","status":0,"step":"forward","scope":null,"rule":"r0","client":"{c}","source":"peer"}}"#);
        let Ok(got) = judged_one(&p, &line) else { return Ok(()) };
        for (sport, dport, udp) in completions {
            let flow = Flow {
                src: addr::key(c),
                sport,
                dst: addr::key("10.0.1.4".parse().unwrap()),
                dport,
                transport: if udp { Transport::Udp } else { Transport::Tcp },
            };
            let allowed = match &p.network {
                None => true,
                Some(n) => p.match_rule(&flow).and_then(|i| n.rules.get(i)).map_or(n.default_access, |r| r.access)
                    == portcullis_core::policy::Access::Allow,
            };
            prop_assert_eq!(got.decider.allowed, allowed);
        }
    }

    /// The report's groups, unchanged and not-judged counts add up to the
    /// records, for a random flow log and a random pair.
    #[test]
    fn groups_add_up_to_the_records(
        old in policy(false),
        new in policy(false),
        tuples in prop::collection::vec((client(), prop::sample::select(&[80u16, 443, 454][..]), any::<bool>(), prop::sample::select(&["I", "O"][..])), 1..60),
    ) {
        let list: Vec<String> = tuples
            .iter()
            .enumerate()
            .map(|(i, (src, dport, allowed, dir))| format!(
                "\"{},{src},10.0.1.4,5000,{dport},T,{dir},{},B,,,,\"",
                1764583200 + i as i64,
                if *allowed { "A" } else { "D" }
            ))
            .collect();
        let text = format!("{{\"records\":[{{\"properties\":{{\"flows\":[{{\"flows\":[{{\"flowTuples\":[\n{}\n]}}]}}]}}}}]}}", list.join(",\n"));
        for side in [Side::Policy(&old), Side::Recorded] {
            let mut tally = Tally::default();
            let mut denied_by_new = 0u64;
            read_bytes(text.as_bytes(), &mut |line, item| {
                match item {
                    Item::Record(r) => {
                        let old_judged = match side {
                            Side::Policy(o) => judge(o, &r).is_ok(),
                            Side::Recorded => r.recorded.is_some(),
                        };
                        if let (Ok(n), true) = (judge(&new, &r), old_judged) {
                            denied_by_new += u64::from(!n.decider.allowed);
                        }
                        tally.add(side, &new, &r, Loc { file: 0, line })
                    }
                    Item::Skip(u) => tally.skipped(u),
                    Item::Malformed(m) => panic!("{m}"),
                }
                ControlFlow::Continue(())
            })
            .unwrap();
            let report = tally.report(&["log".to_string()], side, &new);
            prop_assert_eq!(report.records, tuples.len() as u64);
            let not_judged: u64 = report.not_judged.iter().map(|u| u.records).sum();
            prop_assert_eq!(
                report.newly_denied_records() + report.newly_allowed_records() + report.unchanged + not_judged,
                report.records
            );
            for g in report.newly_denied.iter().chain(&report.newly_allowed) {
                prop_assert_eq!(g.clients.iter().map(|c| c.records).sum::<u64>(), g.records);
            }
            let hits: u64 = report.rules.iter().map(|r| r.records).sum();
            if new.network.is_some() {
                prop_assert_eq!(hits, report.judged);
            }
            let over_time: u64 = report.denied_over_time.iter().map(|b| b.1).sum();
            prop_assert_eq!(over_time, denied_by_new);
            let outbound = tuples.iter().filter(|t| t.3 == "O").count() as u64;
            prop_assert_eq!(tally.not_judged_for(Unjudged::Outbound), outbound);
        }
    }
}
