//! The wasm floor for `scripts/bench.sh`.
//!
//! With no plugin configuration (variant `d`) this is an empty proxy-wasm
//! HTTP filter: the cost of merely having a wasm filter in Envoy's chain (VM
//! entry per callback, context creation and teardown), with no host calls.
//!
//! With a configuration (attribution variants), it makes, per request, some
//! of the host calls the Portcullis filter makes with the bench policy, with
//! constant values and no decision. The configuration is a comma-separated
//! list of call groups:
//!
//! - `peer`: read `source.address`;
//! - `trace`: set the `portcullis.trace` property;
//! - `counters`: increment two counters (what the filter did per request
//!   before its counters were kept in the VM);
//! - `edits`: on the response, remove `X-Powered-By`, `X-AspNet-Version`,
//!   `Server` and set `Strict-Transport-Security`, one call each;
//! - `batch`: the same result in 2 calls: read the response map
//!   (`proxy_get_header_map_pairs`) and write it back edited
//!   (`proxy_set_header_map_pairs`).
//!
//! `host-calls` is `peer,trace,counters,edits` (the filter's 8 calls before
//! the counters moved into the VM). The gap between `d` and a variant is what
//! those host calls cost in Envoy; the gap between a variant with the
//! filter's calls and the Portcullis filter is the filter's own guest work.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { calls: None }) });
}}

/// Which call groups run, and the counter ids.
#[derive(Clone, Copy, Default)]
struct Calls {
    peer: bool,
    trace: bool,
    counters: Option<(u32, u32)>,
    edits: bool,
    batch: bool,
}

struct Root {
    calls: Option<Calls>,
}

impl Context for Root {}

fn parse(config: &str) -> Option<Calls> {
    let config = if config == "host-calls" {
        "peer,trace,counters,edits"
    } else {
        config
    };
    let mut c = Calls::default();
    for group in config.split(',') {
        match group {
            "peer" => c.peer = true,
            "trace" => c.trace = true,
            "counters" => {
                let allowed = hostcalls::define_metric(MetricType::Counter, "bench.allowed").ok()?;
                let rule =
                    hostcalls::define_metric(MetricType::Counter, "bench.rule.allow-list").ok()?;
                c.counters = Some((allowed, rule));
            }
            "edits" => c.edits = true,
            "batch" => c.batch = true,
            _ => return None,
        }
    }
    Some(c)
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.calls = None;
        if config.is_empty() {
            return true;
        }
        let Ok(text) = std::str::from_utf8(&config) else {
            return false;
        };
        self.calls = parse(text);
        self.calls.is_some()
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

const FINGERPRINTS: [&str; 3] = ["x-powered-by", "x-aspnet-version", "server"];
const HSTS: (&str, &str) = (
    "strict-transport-security",
    "max-age=31536000; includeSubDomains",
);

impl HttpContext for Http {
    // Explicit, so the request and response header callbacks exist exactly
    // as in the Portcullis filter; both continue.
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(c) = self.calls {
            if c.peer {
                let _peer = self.get_property(vec!["source", "address"]);
            }
            if c.trace {
                self.set_property(
                    vec!["portcullis", "trace"],
                    Some(b"forward 0 forward peer 127.0.0.1 allow-list"),
                );
            }
            if let Some((allowed, rule)) = c.counters {
                let _ = hostcalls::increment_metric(allowed, 1);
                let _ = hostcalls::increment_metric(rule, 1);
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(c) = self.calls else {
            return Action::Continue;
        };
        if c.edits {
            for name in FINGERPRINTS {
                self.set_http_response_header(name, None);
            }
            self.set_http_response_header(HSTS.0, Some(HSTS.1));
        }
        if c.batch {
            let mut pairs = self.get_http_response_headers_bytes();
            pairs.retain(|(n, _)| !FINGERPRINTS.contains(&n.as_str()));
            pairs.retain(|(n, _)| n != HSTS.0);
            pairs.push((HSTS.0.to_string(), HSTS.1.as_bytes().to_vec()));
            let refs: Vec<(&str, &[u8])> =
                pairs.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            self.set_http_response_headers_bytes(refs);
        }
        Action::Continue
    }
}
