//! The wasm floor for `scripts/bench.sh`.
//!
//! With no plugin configuration (variant `d`) this is an empty proxy-wasm
//! HTTP filter: the cost of merely having a wasm filter in Envoy's chain (VM
//! entry per callback, context creation and teardown), with no host calls.
//!
//! With the configuration `host-calls` (variant `dH`) it makes, per request,
//! the same host calls as the Portcullis filter with the bench policy, with
//! constant values and no decision: read `source.address`, set the
//! `portcullis.trace` property, increment two counters; on the response,
//! remove `X-Powered-By`, `X-AspNet-Version`, `Server` and set
//! `Strict-Transport-Security`. The gap between `d` and `dH` is what those
//! host calls cost in Envoy; the gap between `dH` and the Portcullis filter
//! is the filter's own guest work.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { calls: None }) });
}}

/// Counter ids, when the host calls are on.
#[derive(Clone, Copy)]
struct Calls {
    allowed: u32,
    rule: u32,
}

struct Root {
    calls: Option<Calls>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.calls = None;
        match config.as_slice() {
            b"" => true,
            b"host-calls" => {
                let allowed = hostcalls::define_metric(MetricType::Counter, "bench.allowed");
                let rule = hostcalls::define_metric(MetricType::Counter, "bench.rule.allow-list");
                match (allowed, rule) {
                    (Ok(allowed), Ok(rule)) => {
                        self.calls = Some(Calls { allowed, rule });
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { calls: self.calls }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    calls: Option<Calls>,
}

impl Context for Http {}

impl HttpContext for Http {
    // Explicit, so the request and response header callbacks exist exactly
    // as in the Portcullis filter; both continue.
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(c) = self.calls {
            let _peer = self.get_property(vec!["source", "address"]);
            self.set_property(
                vec!["portcullis", "trace"],
                Some(b"forward 0 forward peer 127.0.0.1 allow-list"),
            );
            let _ = hostcalls::increment_metric(c.allowed, 1);
            let _ = hostcalls::increment_metric(c.rule, 1);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.calls.is_some() {
            self.set_http_response_header("x-powered-by", None);
            self.set_http_response_header("x-aspnet-version", None);
            self.set_http_response_header("server", None);
            self.set_http_response_header(
                "strict-transport-security",
                Some("max-age=31536000; includeSubDomains"),
            );
        }
        Action::Continue
    }
}
