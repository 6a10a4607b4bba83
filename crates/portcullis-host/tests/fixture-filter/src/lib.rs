//! Test fixture for portcullis-host: a proxy-wasm filter whose behaviour is
//! driven by request headers, so each host feature can be exercised.
//!
//! Plugin configuration: `bad` is rejected (after logging two errors),
//! `tick` asks for a 1 s tick period, anything else is accepted and echoed
//! upstream as `x-config`.

use std::cell::Cell;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

#[derive(Clone, Copy, Default)]
struct Ids {
    requests: u32,
    in_flight: u32,
    header_count: u32,
}

#[derive(Default)]
struct Root {
    config: String,
    ids: Ids,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        log(
            LogLevel::Info,
            &format!("configuring with {} bytes", config.len()),
        );
        if config == "bad" {
            log(
                LogLevel::Error,
                "policy error: rule 1: unknown action \"bad\"",
            );
            log(
                LogLevel::Error,
                "policy error: 1 error(s), refusing the configuration",
            );
            return false;
        }
        if config == "tick" {
            self.set_tick_period(Duration::from_secs(1));
        }
        let define = |kind, name| hostcalls::define_metric(kind, name).unwrap_or(0);
        self.ids = Ids {
            requests: define(MetricType::Counter, "fixture_requests_total"),
            in_flight: define(MetricType::Gauge, "fixture_in_flight"),
            header_count: define(MetricType::Histogram, "fixture_request_headers"),
        };
        self.config = config;
        true
    }

    fn on_tick(&mut self) {
        log(LogLevel::Debug, "tick");
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            config: self.config.clone(),
            ids: self.ids,
            buffering: false,
        }))
    }
}

struct Filter {
    config: String,
    ids: Ids,
    buffering: bool,
}

impl Context for Filter {}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn prop(ctx: &dyn Context, path: Vec<&str>) -> String {
    match ctx.get_property(path) {
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
        None => "none".to_string(),
    }
}

thread_local! {
    static SPIN: Cell<u64> = const { Cell::new(0) };
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let headers = self.get_http_request_headers_bytes();
        let has = |name: &str| headers.iter().any(|(k, _)| k == name);
        let _ = hostcalls::increment_metric(self.ids.requests, 1);
        let _ = hostcalls::increment_metric(self.ids.in_flight, 1);
        let _ = hostcalls::record_metric(self.ids.header_count, headers.len() as u64);

        if has("x-loop") {
            loop {
                SPIN.with(|s| s.set(std::hint::black_box(s.get().wrapping_add(1))));
            }
        }
        if has("x-panic") {
            panic!("fixture panic: asked to by x-panic");
        }
        if has("x-http-call") {
            let _ = self.dispatch_http_call(
                "upstream",
                vec![(":method", "GET"), (":path", "/"), (":authority", "x")],
                None,
                vec![],
                Duration::from_secs(1),
            );
        }
        if has("x-read-response") {
            // Response headers do not exist yet: the host answers BadArgument
            // and the SDK panics.
            let _ = self.get_http_response_header(":status");
        }

        // Connection properties.
        let source = prop(self, vec!["source", "address"]);
        let destination = prop(self, vec!["destination", "address"]);
        let tls = prop(self, vec!["connection", "tls_version"]);
        let protocol = prop(self, vec!["request", "protocol"]);
        let dotted = prop(self, vec!["source.address"]);
        let port = self
            .get_property(vec!["source", "port"])
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(i64::from_le_bytes)
            .unwrap_or(-1);
        self.add_http_request_header("x-source", &source);
        self.add_http_request_header("x-destination", &destination);
        self.add_http_request_header("x-tls", &tls);
        self.add_http_request_header("x-protocol", &protocol);
        self.add_http_request_header("x-dotted", &dotted);
        self.add_http_request_header("x-source-port", &port.to_string());

        // All headers, as bytes.
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        self.add_http_request_header("x-header-names", &names.join(","));
        self.add_http_request_header("x-header-count", &headers.len().to_string());
        if let Some(v) = self.get_http_request_header_bytes("x-binary") {
            self.add_http_request_header("x-binary-hex", &hex(&v));
            self.set_http_request_header_bytes("x-binary-copy", Some(&v));
        }
        let repeats = headers.iter().filter(|(k, _)| k == "x-repeat").count();
        if repeats > 0 {
            self.add_http_request_header("x-repeat-count", &repeats.to_string());
            let first = self.get_http_request_header("x-repeat").unwrap_or_default();
            self.add_http_request_header("x-repeat-first", &first);
        }

        // Edits.
        self.set_http_request_header("x-remove-me", None);
        self.set_http_request_header("x-replace-me", Some("replaced"));
        self.add_http_request_header("x-added", "1");
        if !self.config.is_empty() {
            self.add_http_request_header("x-config", &self.config.clone());
        }

        self.set_property(vec!["portcullis", "decision"], Some(b"allow"));
        let back = prop(self, vec!["portcullis", "decision"]);
        self.add_http_request_header("x-prop-readback", &back);

        let path = self.get_http_request_header(":path").unwrap_or_default();
        log(LogLevel::Info, &format!("request to {path}"));

        if has("x-deny") {
            log(LogLevel::Warn, "denying");
            self.send_http_response(
                403,
                vec![("x-denied-by", "fixture"), ("Content-Type", "text/plain")],
                Some(b"denied"),
            );
            return Action::Pause;
        }
        if has("x-reset") {
            self.reset_http_request();
            return Action::Pause;
        }
        if has("x-pause") {
            return Action::Pause;
        }
        if has("x-buffer") && !end_of_stream {
            self.buffering = true;
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        if body.windows(9).any(|w| w == b"forbidden") {
            self.send_http_response(413, vec![("x-body-rejected", "1")], None);
            return Action::Pause;
        }
        // Visible upstream only if the headers were held back (x-buffer).
        self.add_http_request_header("x-body-len", &body.len().to_string());
        if self.get_http_request_header("x-rewrite-body").is_some() {
            self.set_http_request_body(0, size, b"rewritten");
        }
        if self.get_http_request_header("x-pause-body").is_some() {
            return Action::Pause;
        }
        if self.buffering {
            log(LogLevel::Debug, "released buffered request");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let _ = hostcalls::increment_metric(self.ids.in_flight, -1);
        let status = self.get_http_response_header(":status").unwrap_or_default();
        self.set_http_response_header("server", None);
        self.set_http_response_header("x-resp-replace", Some("replaced"));
        self.add_http_response_header("x-resp-added", "yes");
        self.add_http_response_header("x-upstream-status", &status);
        if status == "500" {
            self.send_http_response(502, vec![("x-masked", "1")], Some(b"bad gateway"));
            return Action::Pause;
        }
        if status == "299" {
            self.set_http_response_header(":status", Some("200"));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log(LogLevel::Info, &format!("log: status={status}"));
    }
}
