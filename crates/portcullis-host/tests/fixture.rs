//! Plays exchanges through `tests/fixture-filter`, a real proxy-wasm 0.2.5
//! SDK filter built for wasm32-unknown-unknown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::*;
use portcullis_host::{
    ConfigureError, HostError, HttpRequest, HttpResponse, LogLevel, MetricKind, Phase,
};

fn has_log(logs: &[(LogLevel, String)], level: LogLevel, needle: &str) -> bool {
    logs.iter().any(|(l, m)| *l == level && m.contains(needle))
}

#[test]
fn configure_serves_the_plugin_configuration() {
    let mut plugin = engine().configure(b"hello").unwrap();
    assert!(has_log(
        plugin.logs(),
        LogLevel::Info,
        "configuring with 5 bytes"
    ));
    let ex = plugin.play(&get("/", &[]), &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert_eq!(text(&up, "x-config"), "hello");
    // Root logs do not receive the exchange's lines.
    assert!(!has_log(plugin.logs(), LogLevel::Info, "request to"));
}

#[test]
fn configure_rejection_carries_the_filter_logs() {
    let err = engine().configure(b"bad").unwrap_err();
    let ConfigureError::Rejected { logs } = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    let errors: Vec<&str> = logs
        .iter()
        .filter(|(l, _)| *l == LogLevel::Error)
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "policy error: rule 1: unknown action \"bad\"",
            "policy error: 1 error(s), refusing the configuration"
        ]
    );
    assert_eq!(err.logs().len(), logs.len());
    let shown = err.to_string();
    assert!(
        shown.starts_with("the filter rejected its configuration"),
        "{shown}"
    );
    assert!(shown.contains("unknown action"), "{shown}");
}

#[test]
fn empty_configuration_is_accepted() {
    let mut plugin = engine().configure(b"").unwrap();
    let ex = plugin.play(&get("/", &[]), &ok()).unwrap();
    assert_eq!(
        header(&ex.upstream_request_headers.unwrap(), "x-config"),
        None
    );
}

#[test]
fn connection_properties_ipv4_plaintext() {
    let mut plugin = engine().configure(b"").unwrap();
    let ex = plugin.play(&get("/", &[]), &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert_eq!(text(&up, "x-source"), "10.0.0.1:5555");
    assert_eq!(text(&up, "x-destination"), "10.0.0.2:8080");
    assert_eq!(text(&up, "x-tls"), "none", "no tls_version on plaintext");
    assert_eq!(text(&up, "x-protocol"), "HTTP/1.1");
    assert_eq!(text(&up, "x-source-port"), "5555");
    // Envoy does not split a dotted single segment.
    assert_eq!(text(&up, "x-dotted"), "none");
    for p in [
        "source.address",
        "destination.address",
        "connection.tls_version",
        "request.protocol",
        "source.port",
    ] {
        assert!(
            ex.properties_read.iter().any(|r| r == p),
            "{p} not in {:?}",
            ex.properties_read
        );
    }
}

#[test]
fn connection_properties_ipv6_tls() {
    let mut plugin = engine().configure(b"").unwrap();
    let mut req = get("/", &[]);
    req.peer = addr("[2001:db8::7]:40000");
    req.local = addr("[::1]:443");
    req.tls = true;
    req.protocol = "HTTP/2".into();
    let ex = plugin.play(&req, &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert_eq!(text(&up, "x-source"), "[2001:db8::7]:40000");
    assert_eq!(text(&up, "x-destination"), "[::1]:443");
    assert_eq!(text(&up, "x-tls"), "TLSv1.3");
    assert_eq!(text(&up, "x-protocol"), "HTTP/2");
}

#[test]
fn headers_are_bytes_names_lowercased_values_verbatim() {
    let mut plugin = engine().configure(b"").unwrap();
    let raw: &[u8] = &[0xff, 0xfe, b'a', 0x80, b' '];
    let req = get("/bin", &[("X-Binary", raw), ("Accept", b"*/*")]);
    let ex = plugin.play(&req, &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert_eq!(text(&up, "x-binary-hex"), "fffe618020");
    assert_eq!(header(&up, "x-binary"), Some(raw));
    assert_eq!(header(&up, "x-binary-copy"), Some(raw));
    assert_eq!(
        text(&up, "x-header-names"),
        ":method,:authority,:path,:scheme,x-binary,accept"
    );
    assert_eq!(text(&up, "x-header-count"), "6");
    // Pseudo-headers stay first and in order.
    let names: Vec<&[u8]> = up.iter().take(4).map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        names,
        [&b":method"[..], b":authority", b":path", b":scheme"]
    );
}

#[test]
fn repeated_header_names() {
    let mut plugin = engine().configure(b"").unwrap();
    let req = get(
        "/",
        &[("x-repeat", b"a"), ("X-Repeat", b"b"), ("x-other", b"o")],
    );
    let ex = plugin.play(&req, &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert_eq!(text(&up, "x-repeat-count"), "2");
    assert_eq!(
        text(&up, "x-repeat-first"),
        "a",
        "get returns the first value"
    );
    assert_eq!(values(&up, "x-repeat"), ["a", "b"]);
}

#[test]
fn request_header_edits_remove_replace_add() {
    let mut plugin = engine().configure(b"").unwrap();
    let req = get(
        "/",
        &[
            ("x-remove-me", b"1"),
            ("x-replace-me", b"old1"),
            ("x-keep", b"k"),
            ("x-remove-me", b"2"),
            ("X-Replace-Me", b"old2"),
            ("x-added", b"0"),
        ],
    );
    let ex = plugin.play(&req, &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert!(
        values(&up, "x-remove-me").is_empty(),
        "remove removes all values"
    );
    assert_eq!(
        values(&up, "x-replace-me"),
        ["replaced"],
        "replace replaces all values"
    );
    let pos = |name: &str| up.iter().position(|(k, _)| k.as_slice() == name.as_bytes());
    assert!(
        pos("x-replace-me") < pos("x-keep"),
        "replaced in place of the first"
    );
    assert_eq!(values(&up, "x-added"), ["0", "1"], "add appends");
}

#[test]
fn response_header_edits_and_final_status() {
    let mut plugin = engine().configure(b"").unwrap();
    let upstream = HttpResponse {
        status: 201,
        headers: vec![
            (b"Server".to_vec(), b"nginx".to_vec()),
            (b"x-resp-replace".to_vec(), b"a".to_vec()),
            (b"x-resp-replace".to_vec(), b"b".to_vec()),
            (b"content-type".to_vec(), b"text/html".to_vec()),
        ],
    };
    let ex = plugin.play(&get("/", &[]), &upstream).unwrap();
    assert_eq!(ex.status, 201);
    assert!(ex.local_reply.is_none());
    let h = &ex.response_headers;
    assert_eq!(header(h, "server"), None);
    assert_eq!(header(h, ":status"), None, "no :status in response_headers");
    assert_eq!(values(h, "x-resp-replace"), ["replaced"]);
    assert_eq!(text(h, "x-resp-added"), "yes");
    assert_eq!(text(h, "x-upstream-status"), "201");
    assert_eq!(text(h, "content-type"), "text/html");
    assert!(has_log(&ex.logs, LogLevel::Info, "log: status=201"));

    // The filter may rewrite :status.
    let ex = plugin
        .play(
            &get("/", &[]),
            &HttpResponse {
                status: 299,
                headers: vec![],
            },
        )
        .unwrap();
    assert_eq!(ex.status, 200);
}

#[test]
fn local_reply_in_request_headers_stops_the_exchange() {
    let mut plugin = engine().configure(b"").unwrap();
    let ex = plugin
        .play(&get("/admin", &[("x-deny", b"1")]), &ok())
        .unwrap();
    let reply = ex.local_reply.as_ref().expect("local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, b"denied");
    assert_eq!(reply.phase, Phase::RequestHeaders);
    assert_eq!(reply.grpc_status, None);
    assert_eq!(reply.details, "");
    assert_eq!(
        reply.headers,
        vec![
            (b"x-denied-by".to_vec(), b"fixture".to_vec()),
            (b"content-type".to_vec(), b"text/plain".to_vec()),
        ]
    );
    assert_eq!(ex.status, 403);
    assert_eq!(ex.response_headers, reply.headers);
    assert_eq!(ex.upstream_request_headers, None, "nothing went upstream");
    // proxy_on_response_headers did not run over the local reply...
    assert_eq!(header(&ex.response_headers, "x-resp-added"), None);
    // ...but proxy_on_log saw it as the response.
    assert!(has_log(&ex.logs, LogLevel::Warn, "denying"));
    assert!(has_log(&ex.logs, LogLevel::Info, "log: status=403"));
}

#[test]
fn local_reply_in_response_headers_replaces_the_upstream_response() {
    let mut plugin = engine().configure(b"").unwrap();
    let upstream = HttpResponse {
        status: 500,
        headers: vec![(b"x-stack".to_vec(), b"trace".to_vec())],
    };
    let ex = plugin.play(&get("/", &[]), &upstream).unwrap();
    let reply = ex.local_reply.as_ref().expect("local reply");
    assert_eq!(reply.phase, Phase::ResponseHeaders);
    assert_eq!(ex.status, 502);
    assert_eq!(
        ex.response_headers,
        vec![(b"x-masked".to_vec(), b"1".to_vec())]
    );
    assert_eq!(reply.body, b"bad gateway");
    assert!(
        ex.upstream_request_headers.is_some(),
        "the request did go upstream"
    );
}

#[test]
fn request_body_is_served_and_can_be_replaced() {
    let mut plugin = engine().configure(b"").unwrap();
    let mut req = get("/upload", &[("x-rewrite-body", b"1")]);
    req.body = Some(b"original body".to_vec());
    let ex = plugin.play(&req, &ok()).unwrap();
    assert_eq!(ex.upstream_request_body.as_deref(), Some(&b"rewritten"[..]));
    // Headers went upstream after proxy_on_request_headers: the body
    // callback's header edit came too late.
    assert_eq!(
        header(ex.upstream_request_headers.as_ref().unwrap(), "x-body-len"),
        None
    );

    // When the filter holds the headers back, edits made with the body count.
    let mut req = get("/upload", &[("x-buffer", b"1")]);
    req.body = Some(b"12345".to_vec());
    let ex = plugin.play(&req, &ok()).unwrap();
    let up = ex.upstream_request_headers.unwrap();
    assert_eq!(text(&up, "x-body-len"), "5");
    assert_eq!(ex.upstream_request_body.as_deref(), Some(&b"12345"[..]));
    assert!(has_log(
        &ex.logs,
        LogLevel::Debug,
        "released buffered request"
    ));
}

#[test]
fn local_reply_from_the_body_callback() {
    let mut plugin = engine().configure(b"").unwrap();
    let mut req = get("/upload", &[("x-buffer", b"1")]);
    req.body = Some(b"this is forbidden".to_vec());
    let ex = plugin.play(&req, &ok()).unwrap();
    let reply = ex.local_reply.unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.phase, Phase::RequestBody);
    assert!(reply.body.is_empty());
    assert_eq!(ex.upstream_request_headers, None);
    assert_eq!(ex.upstream_request_body, None);
}

#[test]
fn pausing_without_resuming_is_reported_as_stalled() {
    let mut plugin = engine().configure(b"").unwrap();
    let err = plugin
        .play(&get("/", &[("x-pause", b"1")]), &ok())
        .unwrap_err();
    assert_eq!(
        err,
        HostError::Stalled {
            callback: "proxy_on_request_headers".into()
        }
    );
    assert!(has_log(
        plugin.last_failure_logs(),
        LogLevel::Info,
        "request to /"
    ));
    let mut req = get("/", &[("x-pause-body", b"1")]);
    req.body = Some(b"x".to_vec());
    let err = plugin.play(&req, &ok()).unwrap_err();
    assert!(
        matches!(err, HostError::Stalled { ref callback } if callback == "proxy_on_request_body")
    );
    // Not a trap: the same instance goes on.
    plugin.play(&get("/", &[]), &ok()).unwrap();
    assert_eq!(plugin.restarts(), 0);
}

#[test]
fn close_stream_resets_the_exchange() {
    let mut plugin = engine().configure(b"").unwrap();
    let ex = plugin.play(&get("/", &[("x-reset", b"1")]), &ok()).unwrap();
    assert!(ex.reset);
    assert_eq!(ex.status, 0);
    assert_eq!(ex.upstream_request_headers, None);
    assert!(ex.response_headers.is_empty());
    // proxy_on_log found no response headers (NotFound, not a panic).
    assert!(has_log(&ex.logs, LogLevel::Info, "log: status="));
}

#[test]
fn set_property_is_recorded_and_read_back() {
    let mut plugin = engine().configure(b"").unwrap();
    let ex = plugin.play(&get("/", &[]), &ok()).unwrap();
    assert_eq!(
        ex.properties_set,
        vec![("portcullis.decision".to_string(), b"allow".to_vec())]
    );
    assert_eq!(
        text(
            ex.upstream_request_headers.as_ref().unwrap(),
            "x-prop-readback"
        ),
        "allow"
    );
    assert!(ex
        .properties_read
        .iter()
        .any(|p| p == "portcullis.decision"));
}

#[test]
fn metrics_counters_gauges_histograms() {
    let mut plugin = engine().configure(b"").unwrap();
    for _ in 0..3 {
        plugin.play(&get("/", &[("x-a", b"1")]), &ok()).unwrap();
    }
    plugin.play(&get("/", &[("x-deny", b"1")]), &ok()).unwrap();
    let names: Vec<_> = plugin
        .metrics()
        .iter()
        .map(|m| (m.name.as_str(), m.kind))
        .collect();
    assert_eq!(
        names,
        [
            ("fixture_requests_total", MetricKind::Counter),
            ("fixture_in_flight", MetricKind::Gauge),
            ("fixture_request_headers", MetricKind::Histogram),
        ]
    );
    assert_eq!(plugin.metric("fixture_requests_total").unwrap().value, 4);
    // The denied request never reached proxy_on_response_headers.
    assert_eq!(plugin.metric("fixture_in_flight").unwrap().value, 1);
    assert_eq!(
        plugin.metric("fixture_request_headers").unwrap().samples,
        vec![5, 5, 5, 5]
    );
}

#[test]
fn logs_are_per_exchange() {
    let mut plugin = engine().configure(b"").unwrap();
    let ex = plugin.play(&get("/one?x=1", &[]), &ok()).unwrap();
    assert!(has_log(&ex.logs, LogLevel::Info, "request to /one?x=1"));
    let ex = plugin.play(&get("/two", &[]), &ok()).unwrap();
    assert!(!has_log(&ex.logs, LogLevel::Info, "request to /one"));
    assert!(has_log(&ex.logs, LogLevel::Info, "request to /two"));
}

#[test]
fn runaway_filter_runs_out_of_fuel_and_the_plugin_recovers() {
    let mut plugin = engine().configure(b"").unwrap();
    plugin.set_fuel_limit(20_000_000);
    plugin.play(&get("/", &[]), &ok()).unwrap();
    let err = plugin
        .play(&get("/", &[("x-loop", b"1")]), &ok())
        .unwrap_err();
    assert_eq!(
        err,
        HostError::OutOfFuel {
            callback: "proxy_on_request_headers".into(),
            limit: 20_000_000
        }
    );
    assert!(err.to_string().contains("ran out of fuel"));
    // The next exchange runs in a fresh instance; metrics carried over.
    let ex = plugin.play(&get("/", &[]), &ok()).unwrap();
    assert_eq!(ex.status, 200);
    assert_eq!(plugin.restarts(), 1);
    assert_eq!(plugin.metric("fixture_requests_total").unwrap().value, 3);
}

#[test]
fn filter_panic_is_a_trap_with_the_panic_message() {
    let mut plugin = engine().configure(b"").unwrap();
    let err = plugin
        .play(&get("/", &[("x-panic", b"1")]), &ok())
        .unwrap_err();
    let HostError::Trap {
        callback, panic, ..
    } = &err
    else {
        panic!("expected a trap, got {err:?}");
    };
    assert_eq!(callback, "proxy_on_request_headers");
    assert!(
        panic
            .as_deref()
            .unwrap_or("")
            .contains("fixture panic: asked to by x-panic"),
        "{err}"
    );
    assert!(err.to_string().contains("fixture panic"), "{err}");
}

#[test]
fn unsupported_host_call_is_named() {
    let mut plugin = engine().configure(b"").unwrap();
    let err = plugin
        .play(&get("/", &[("x-http-call", b"1")]), &ok())
        .unwrap_err();
    assert_eq!(
        err,
        HostError::Unsupported {
            call: "proxy_http_call".into()
        }
    );
    assert!(err.to_string().contains("proxy_http_call"));
}

#[test]
fn reading_response_headers_too_early_explains_the_sdk_panic() {
    let mut plugin = engine().configure(b"").unwrap();
    let err = plugin
        .play(&get("/", &[("x-read-response", b"1")]), &ok())
        .unwrap_err();
    let HostError::Trap { hint, panic, .. } = &err else {
        panic!("expected a trap, got {err:?}");
    };
    assert!(
        hint.as_deref()
            .unwrap_or("")
            .contains("response headers are not available"),
        "{err}"
    );
    assert!(
        panic.as_deref().unwrap_or("").contains("unexpected status"),
        "{err}"
    );
}

#[test]
fn host_calls_and_fuel_are_counted_deterministically() {
    let mut plugin = engine().configure(b"").unwrap();
    plugin.set_clock(Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    let a = plugin.play(&get("/", &[("x-a", b"1")]), &ok()).unwrap();
    let b = plugin.play(&get("/", &[("x-a", b"1")]), &ok()).unwrap();
    assert!(a.host_calls > 20, "{}", a.host_calls);
    assert_eq!(a.host_calls, b.host_calls);
    assert!(a.fuel_used > 0);
    let denied = plugin.play(&get("/", &[("x-deny", b"1")]), &ok()).unwrap();
    assert_ne!(denied.host_calls, a.host_calls);
}

#[test]
fn tick_period_and_tick() {
    let mut plugin = engine().configure(b"tick").unwrap();
    assert_eq!(plugin.tick_period(), Some(Duration::from_secs(1)));
    plugin.tick().unwrap();
    assert!(has_log(plugin.logs(), LogLevel::Debug, "tick"));
    let plain = engine().configure(b"").unwrap();
    assert_eq!(plain.tick_period(), None);
}

#[test]
fn many_plugins_share_one_engine() {
    let mut a = engine().configure(b"a").unwrap();
    let mut b = engine().configure(b"b").unwrap();
    let ea = a.play(&get("/", &[]), &ok()).unwrap();
    let eb = b.play(&get("/", &[]), &ok()).unwrap();
    assert_eq!(text(&ea.upstream_request_headers.unwrap(), "x-config"), "a");
    assert_eq!(text(&eb.upstream_request_headers.unwrap(), "x-config"), "b");
}

/// Arbitrary header bytes never make the host panic: every outcome is an
/// exchange or a `HostError`.
#[test]
fn arbitrary_header_values_never_panic_the_host() {
    let mut plugin = engine().configure(b"").unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..50 {
        let n = (next() % 6) as usize;
        let mut req: HttpRequest = get("/", &[]);
        for i in 0..n {
            let len = (next() % 40) as usize;
            let value: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            req.headers.push((format!("x-f{i}").into_bytes(), value));
        }
        if next() % 3 == 0 {
            req.body = Some((0..(next() % 100)).map(|_| next() as u8).collect());
        }
        match plugin.play(&req, &ok()) {
            Ok(ex) => assert_eq!(ex.status, 200),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}
