//! Safe rollout in real Envoy (docs/rollout.md): a report-mode candidate
//! and the enforcing policy as two filter instances on one listener.
//!
//! The candidate (`docs/rollout/candidate.json`, `"mode": "report"`) runs
//! first and forwards every request; the enforcing policy
//! (`docs/rollout/current.json`) decides. For a spread of loopback clients
//! and headers the test checks that the client gets exactly the enforcing
//! policy's decision (the core's, for the same request), that the access
//! log carries each instance's own trace (text, and the candidate's JSON
//! trace) equal to the core's, and that the candidate's counters
//! (`would_deny`, per deciding rule) and the enforcing policy's counters
//! count exactly the core's decisions. The rendered config is the one
//! docs/rollout.md shows.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use portcullis_core::{Policy, Request, Transport, Verdict};
use portcullis_e2e::backend::Backend;
use portcullis_e2e::client::{send, ClientRequest};
use portcullis_e2e::config::{rollout_example, AccessLog, Filter, Upstream, CASE_HEADER};
use portcullis_e2e::envoy::Envoy;
use portcullis_e2e::net::free_port;
use portcullis_e2e::paths;
use portcullis_e2e::runner::{require_tools, Engine};

fn read(rel: &str) -> String {
    std::fs::read_to_string(paths::workspace().join(rel)).unwrap()
}

/// The access-log entry of a request, by its case id.
fn log_entry(path: &Path, id: &str) -> serde_json::Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if v["case"] == id {
                        return v;
                    }
                }
            }
        }
        assert!(Instant::now() < end, "no access-log line for {id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_report_mode_candidate_records_the_would_be_decisions_beside_the_enforcing_policy() {
    rollout_on(Engine::Wasm);
}

#[test]
fn a_report_mode_candidate_beside_the_enforcing_policy_on_the_native_module() {
    rollout_on(Engine::Native);
}

fn rollout_on(engine: Engine) {
    require_tools();
    let prefix = format!("{}portcullis.", engine.counter_prefix());
    let dir = paths::scratch("rollout");
    let backend = Backend::start(SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port(&[Ipv4Addr::LOCALHOST]).unwrap()));
    let (current_text, candidate_text) = (
        read("docs/rollout/current.json"),
        read("docs/rollout/candidate.json"),
    );
    let current = Policy::parse(current_text.as_bytes()).unwrap();
    let candidate = Policy::parse(candidate_text.as_bytes()).unwrap();
    let log = dir.join("access.jsonl");
    // The example of docs/rollout.md, on loopback: same filter chain, with
    // this test's listener address, backend, filter file and access log.
    let mut cfg = rollout_example(&current_text, &candidate_text);
    cfg.admin = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.listeners[0].address = listen;
    cfg.upstream = Upstream::Static(backend.addr());
    cfg.module = engine.module();
    cfg.access_log = AccessLog::JsonFile(log.clone());
    assert!(matches!(&cfg.listeners[0].filter, Filter::Chain { policies } if policies.len() == 2));
    let mut envoy = Envoy::start(&dir, &cfg.render()).unwrap_or_else(|e| panic!("{e}"));

    // (client, x-team header)
    let clients: [(u8, Option<&[u8]>); 8] = [
        (7, Some(b"orders")),
        (7, None),
        (7, Some(b"billing")),
        (8, Some(b"orders")),
        (8, None),
        (9, Some(b"orders")),
        (5, Some(b"orders")),
        (5, None),
    ];
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut bump = |k: String| *want.entry(k).or_default() += 1;
    for (i, (last, team)) in clients.iter().enumerate() {
        let from = Ipv4Addr::new(127, 0, 0, *last);
        let id = format!("rollout-{i}");
        let mut req =
            ClientRequest::get(from, listen, false, "localhost").header(CASE_HEADER, id.as_bytes());
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        if let Some(t) = team {
            req = req.header("x-team", t);
            headers.push(("x-team", t));
        }
        let resp = send(&dir, &req).unwrap_or_else(|e| panic!("{e}"));
        // The core on the same request (the client port is not in any rule).
        let core_req = Request {
            peer: SocketAddr::new(IpAddr::V4(from), 40000),
            local: listen,
            tls: false,
            transport: Transport::Tcp,
            method: b"GET",
            authority: b"localhost",
            path: b"/",
            headers: &headers,
        };
        let (e, c) = (current.decide(&core_req), candidate.decide(&core_req));
        assert_eq!(c.verdict, Verdict::Forward, "report mode never stops");
        let expected_status = match e.verdict {
            Verdict::Forward => 200,
            _ => e.status,
        };
        assert_eq!(
            resp.status,
            expected_status,
            "{id} from {from}: {}",
            current.trace(&e)
        );
        assert_eq!(resp.one("server"), None, "{id}: response ops apply");
        let entry = log_entry(&log, &id);
        assert_eq!(
            entry["trace.orders-candidate"],
            candidate.trace(&c),
            "{id}: {entry}"
        );
        assert_eq!(
            entry["trace.orders-current"],
            current.trace(&e),
            "{id}: {entry}"
        );
        let json: serde_json::Value =
            serde_json::from_str(entry["trace_json.orders-candidate"].as_str().unwrap()).unwrap();
        let core_json: serde_json::Value = serde_json::from_str(&candidate.json_trace(&c)).unwrap();
        assert_eq!(json, core_json, "{id}");
        assert_eq!(json["client"], from.to_string());
        println!(
            "{id} {from}: {} | {}",
            current.trace(&e),
            candidate.trace(&c)
        );
        // What the counters must say.
        let word = |v: Verdict| match v {
            Verdict::Forward => "allowed",
            Verdict::Deny => "denied",
            Verdict::Redirect => "redirected",
        };
        bump(format!("orders-current.{}", word(e.verdict)));
        bump(format!("orders-current.rule.{}", current.rule_name(e.rule)));
        bump(format!("orders-candidate.{}", word(c.verdict)));
        bump(format!(
            "orders-candidate.rule.{}",
            candidate.rule_name(c.rule)
        ));
        if let Some(w) = &c.would {
            let w = format!("would_{}", w.verdict.as_str());
            bump(format!("orders-candidate.{w}"));
            bump(format!(
                "orders-candidate.{w}.rule.{}",
                candidate.rule_name(c.rule)
            ));
        }
    }
    // The spread covers what rollout is about: the candidate would deny
    // some traffic the current policy lets in, by a rule and by its
    // required header, and would let in some the current policy denies.
    assert!(
        want.contains_key("orders-candidate.would_deny.rule.deny-batch"),
        "{want:?}"
    );
    assert!(
        want.contains_key("orders-candidate.would_deny.rule.allow-gateways"),
        "{want:?}"
    );
    assert!(want.contains_key("orders-current.denied"), "{want:?}");
    // Counters reach Envoy on the filter's tick: wait for them.
    envoy.settle_counters().unwrap();
    let stats: BTreeMap<String, u64> = envoy.stats_matching(&prefix).unwrap().into_iter().collect();
    for (k, v) in &want {
        assert_eq!(
            stats.get(&format!("{prefix}{k}")),
            Some(v),
            "{k}: {stats:?}"
        );
    }
    // Nothing else counted: every non-zero counter is one the core predicts.
    for (k, v) in &stats {
        let short = k.trim_start_matches(prefix.as_str());
        if *v > 0 {
            assert_eq!(want.get(short), Some(v), "{k}");
        }
    }
    assert_eq!(
        stats.get(&format!("{prefix}orders-candidate.denied")),
        Some(&0)
    );
    println!("rollout counters: {want:?}");
    assert!(envoy.running());

    // docs/rollout.md shows the config this example renders.
    let doc = read("docs/rollout.md");
    let example = rollout_example(&current_text, &candidate_text).render();
    assert!(
        doc.contains(&example),
        "docs/rollout.md does not hold the rendered example; regenerate it with\n  \
         cargo run -q -p portcullis-e2e --bin portcullis-envoy-config -- rollout \
         docs/rollout/current.json docs/rollout/candidate.json\n{example}"
    );
    envoy.stop();
}
