//! The proxy-wasm root and HTTP contexts.

use core::cell::OnceCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;

use portcullis_core::addr::parse_socket;
use portcullis_core::edits::is_twin;
use portcullis_core::names::CounterSet;
use portcullis_core::{Decision, EditOp, Headers, Inputs, Policy, ResponsePlan, Transport};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

use crate::edit;
use crate::host::{self, level};
use crate::stats;
use crate::wire::{self, HeaderMap};

/// Property paths (segments separated by NUL, as the ABI wants them).
const SOURCE_ADDRESS: &[u8] = b"source\0address";
const DESTINATION_ADDRESS: &[u8] = b"destination\0address";
const TLS_VERSION: &[u8] = b"connection\0tls_version";
const PROTOCOL: &[u8] = b"request\0protocol";
const PLUGIN_NAME: &[u8] = b"plugin_name";
const CODE_DETAILS: &[u8] = b"response\0code_details";

/// How often the counters kept in the VM are handed to the host.
pub const FLUSH_PERIOD_MS: u32 = 1000;

/// Everything the HTTP contexts share: the compiled policy and its counters.
struct Shared {
    policy: Policy,
    needs: Inputs,
    /// Every counter, accumulated in the VM (see [`stats::Counters`]).
    counters: stats::Counters,
    /// Which counter is which ([`CounterSet::hits`]).
    set: CounterSet<stats::Counter>,
    /// The host has no tick: hand the counts over after every request.
    flush_each_request: bool,
    /// `portcullis.<policy>.trace` (filter state `wasm.portcullis.<policy>.trace`).
    trace_property: String,
    /// `portcullis.<policy>.trace_json`, when the policy asks for it.
    json_property: Option<String>,
    /// Whether the host wants debug logs (read once per configuration).
    debug: bool,
    /// The trace line, reused from request to request (one VM thread).
    trace: core::cell::RefCell<String>,
}

impl Shared {
    fn new(policy: Policy, debug: bool, flush_each_request: bool) -> Shared {
        let mut counters = stats::Counters::default();
        let define = |name: String| {
            counters.define(&name, |name| {
                let id = host::define_counter(name);
                if id.is_none() {
                    host::log(
                        level::WARN,
                        &format!("portcullis: cannot define counter {name}"),
                    );
                }
                id
            })
        };
        let set = CounterSet::define(&policy, define);
        Shared {
            needs: policy.inputs(),
            counters,
            set,
            flush_each_request,
            trace_property: policy.trace_property(),
            json_property: policy.trace_json.then(|| policy.json_trace_property()),
            policy,
            debug,
            trace: core::cell::RefCell::new(String::with_capacity(128)),
        }
    }

    /// Counts a decision, in the VM.
    fn count(&self, d: &Decision) {
        self.set.hits(d, |&c| self.counters.add(c));
        if self.flush_each_request {
            self.flush();
        }
    }

    /// Hands the pending counts to the host.
    fn flush(&self) {
        self.counters.flush(host::increment);
    }
}

/// The root context: owns the policy of the current configuration.
#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    /// Earlier configurations still used by streams that started under them:
    /// flushed on every tick until the last stream is gone.
    retired: Vec<Rc<Shared>>,
    /// Whether the tick is set (the first configuration sets it).
    ticking: Option<bool>,
}

impl Root {
    /// Flushes every configuration's counts and forgets the retired ones no
    /// stream uses any more.
    fn flush_all(&mut self) {
        if let Some(s) = &self.shared {
            s.flush();
        }
        self.retired.retain(|s| {
            s.flush();
            Rc::strong_count(s) > 1
        });
    }
}

impl Context for Root {
    /// The plugin is going away (drain, or its configuration was removed):
    /// the last counts go to the host now.
    fn on_done(&mut self) -> bool {
        self.flush_all();
        true
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        // A failed reconfiguration leaves no policy behind: contexts created
        // from now on deny until a valid one is configured. The old
        // configuration's counts are flushed now and, while streams still
        // use it, on every tick.
        if let Some(old) = self.shared.take() {
            old.flush();
            if Rc::strong_count(&old) > 1 {
                self.retired.push(old);
            }
        }
        let ticking = *self
            .ticking
            .get_or_insert_with(|| host::set_tick_period(FLUSH_PERIOD_MS));
        let Some(bytes) = host::plugin_configuration(size) else {
            host::log(
                level::ERROR,
                "portcullis: policy rejected: the plugin configuration could not be read",
            );
            return false;
        };
        // `value_from` variables: Envoy's `vm_config.environment_variables`,
        // read once here, never per request.
        let env = host::environment().unwrap_or_default();
        // The document is freed before the rule table is built (the VM's
        // memory only grows); a rejected one is read again for its name.
        match Policy::parse_owned_for_decisions(bytes, &env) {
            Ok(policy) => {
                let debug = host::log_level().is_some_and(|l| l <= level::DEBUG);
                host::log(
                    level::INFO,
                    &format!("portcullis: policy \"{}\" loaded", policy.name),
                );
                if !ticking {
                    host::log(
                        level::WARN,
                        "portcullis: the host refused a tick; counters are sent per request",
                    );
                }
                self.shared = Some(Rc::new(Shared::new(policy, debug, !ticking)));
                true
            }
            Err(problems) => {
                let bytes = host::plugin_configuration(size).unwrap_or_default();
                let name = policy_label(&bytes);
                for p in &problems.0 {
                    host::log(
                        level::ERROR,
                        &format!("portcullis: policy \"{name}\" rejected: {p}"),
                    );
                }
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.flush_all();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            shared: self.shared.clone(),
            respond: Respond::Undecided,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// How to name a rejected policy in logs: its `name` when the JSON is
/// readable and the name is well formed, else Envoy's plugin name.
fn policy_label(bytes: &[u8]) -> String {
    if let Some(name) = Policy::name_of(bytes) {
        return name;
    }
    host::property(PLUGIN_NAME)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|s| !s.is_empty() && !s.contains(['"', '\n', '\r']))
        .unwrap_or_else(|| String::from("(plugin configuration)"))
}

/// What to do with the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Respond {
    /// The filter never decided the request (Envoy answered it itself, e.g.
    /// a 400 or 404 of its own, before or without our request hook): harden
    /// it anyway, secure when the connection is TLS.
    Undecided,
    /// Nothing: our own local reply, already hardened by the core.
    No,
    /// Apply the response plan of a forwarded request.
    Edit(ResponsePlan),
}

/// One HTTP stream.
pub struct Http {
    shared: Option<Rc<Shared>>,
    respond: Respond,
}

impl Context for Http {}

/// Request headers read from the host at most once, and only if the core
/// asks for one (or the pseudo-headers are needed up front).
struct LazyHeaders(OnceCell<HeaderMap>);

impl LazyHeaders {
    fn get(&self) -> &HeaderMap {
        self.0.get_or_init(|| {
            let map = HeaderMap::parse(host::header_map(host::REQUEST_HEADERS).unwrap_or_default());
            if map.malformed() {
                host::log(
                    level::WARN,
                    "portcullis: malformed request header map from the host",
                );
            }
            map
        })
    }
}

impl Headers for LazyHeaders {
    fn each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.get().each_value(name, f);
    }

    fn each_name(&self, f: &mut dyn FnMut(&[u8])) {
        self.get().each_name(f);
    }
}

/// A socket address property, `ip:port` or `[v6]:port`.
fn socket_property(path: &[u8]) -> Option<SocketAddr> {
    let bytes = host::property(path)?;
    let s = core::str::from_utf8(&bytes).ok()?;
    let (ip, port) = parse_socket(s)?;
    Some(SocketAddr::new(ip, port))
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

impl Http {
    fn deny_without_policy(&mut self) -> Action {
        host::log(
            level::ERROR,
            "portcullis: no valid policy is configured; denying the request",
        );
        let headers = wire::serialize(&[("content-type", "text/plain; charset=utf-8")]);
        let sent = headers.is_some_and(|h| {
            host::send_local_response(500, "portcullis_no_policy", &h, b"Internal Server Error\n")
        });
        self.respond = Respond::No;
        if !sent {
            host::log(level::ERROR, "portcullis: local reply failed");
        }
        Action::Pause
    }

    fn decide(&mut self, shared: &Shared) -> Action {
        let policy = &shared.policy;
        let needs = &shared.needs;
        let peer = socket_property(SOURCE_ADDRESS);
        let local = if needs.local {
            socket_property(DESTINATION_ADDRESS)
        } else {
            Some(UNSPECIFIED)
        };
        let tls = needs.tls && host::property(TLS_VERSION).is_some_and(|v| !v.is_empty());
        let transport = if needs.protocol
            && host::property(PROTOCOL).is_some_and(|p| p.as_slice() == b"HTTP/3")
        {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let headers = LazyHeaders(OnceCell::new());
        if peer.is_none() || local.is_none() {
            // The host could not say who is calling (or where): the core
            // fails closed with the policy's deny reply.
            host::log(
                level::WARN,
                "portcullis: source or destination address unavailable; denying",
            );
        }
        let d = policy.decide_from_host(
            needs,
            peer,
            local,
            tls,
            transport,
            || {
                let map = headers.get();
                (
                    map.first(":method").unwrap_or_default(),
                    map.first(":authority").unwrap_or_default(),
                    map.first(":path").unwrap_or_default(),
                )
            },
            &headers,
        );
        // The trace line: set as a property only for the decisions the
        // policy's `trace` selects; logged whenever debug logging is on.
        let publish = policy.trace.selects(&d);
        if publish || shared.debug {
            if let Ok(mut trace) = shared.trace.try_borrow_mut() {
                policy.trace_into(&d, &mut trace);
                if publish {
                    host::set_property(shared.trace_property.as_bytes(), trace.as_bytes());
                }
                if shared.debug {
                    host::log(level::DEBUG, &format!("portcullis: {trace}"));
                }
                // The JSON form for the same decisions, when asked for.
                if let (true, Some(p)) = (publish, &shared.json_property) {
                    policy.json_trace_into(&d, &mut trace);
                    host::set_property(p.as_bytes(), trace.as_bytes());
                }
            }
        }
        shared.count(&d);
        match policy.act(&d) {
            portcullis_core::Action::Reply(reply) => {
                self.respond = Respond::No;
                let sent = wire::serialize(&reply.headers).is_some_and(|h| {
                    host::send_local_response(reply.status, reply.details, &h, &reply.body)
                });
                if !sent {
                    // Never forward what the policy stopped.
                    host::log(level::ERROR, "portcullis: local reply failed");
                }
                Action::Pause
            }
            portcullis_core::Action::Forward(forward) => {
                let mut edits = Vec::new();
                forward.request_edits(&headers, &mut edits);
                // Removing a header the map read for the decision does not
                // have is a wasted host call.
                let edits = match headers.0.get() {
                    Some(map) => edit::without_absent_removes(map, &edits),
                    None => edits,
                };
                apply(host::REQUEST_HEADERS, &edits, Some(&headers));
                self.respond = Respond::Edit(forward.response());
                Action::Continue
            }
        }
    }
}

/// Makes `edits` on a header map read as `headers` with one
/// `proxy_set_header_map_pairs` (the `edits-batch` build).
fn rewrite(map: u32, headers: &HeaderMap, edits: &[portcullis_core::Edit<'_>]) {
    match edit::plan(headers, edits) {
        edit::Plan::Nothing => {}
        edit::Plan::Each(each) => apply(map, &each, Some(headers)),
        edit::Plan::Rewrite(pairs) => {
            if !host::set_header_map(map, &pairs) {
                host::log(
                    level::WARN,
                    "portcullis: header rewrite failed; editing one by one",
                );
                apply(map, edits, Some(headers));
            }
        }
    }
}

/// Applies edits to a header map, in order. `names` holds the map's
/// headers as read before the edits, for [`EditOp::RemoveTwins`] (which the
/// core only returns after reading them).
fn apply(map: u32, edits: &[portcullis_core::Edit<'_>], names: Option<&dyn Headers>) {
    for e in edits {
        let ok = match e.op {
            EditOp::Remove => host::remove_header(map, e.name),
            EditOp::Replace => host::replace_header(map, e.name, e.value),
            EditOp::Append => host::add_header(map, e.name, e.value),
            EditOp::RemoveTwins => {
                let mut twins: Vec<Vec<u8>> = Vec::new();
                if let Some(h) = names {
                    h.each_name(&mut |n| {
                        let lower = n.to_ascii_lowercase();
                        if is_twin(&lower, e.name) && !twins.contains(&lower) {
                            twins.push(lower);
                        }
                    });
                }
                // Names from the host are tokens; a name that is not UTF-8
                // cannot be one, and cannot be removed by name either.
                twins
                    .iter()
                    .all(|t| core::str::from_utf8(t).is_ok_and(|t| host::remove_header(map, t)))
            }
        };
        if !ok {
            host::log(
                level::WARN,
                &format!("portcullis: header edit on {} failed", e.name),
            );
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.shared.clone() {
            Some(shared) => self.decide(&shared),
            None => self.deny_without_policy(),
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.as_ref() else {
            return Action::Continue;
        };
        let plan = match self.respond {
            Respond::No => return Action::Continue,
            Respond::Edit(plan) => plan,
            // Only the connection can say: a proxy's X-Forwarded-Proto was
            // never weighed by the policy for this request.
            Respond::Undecided => ResponsePlan::undecided(
                shared.needs.tls && host::property(TLS_VERSION).is_some_and(|v| !v.is_empty()),
            ),
        };
        let read = shared.needs.response_headers;
        let read_map =
            || HeaderMap::parse(host::header_map(host::RESPONSE_HEADERS).unwrap_or_default());
        let headers = if read {
            read_map()
        } else {
            HeaderMap::default()
        };
        let mut edits = Vec::new();
        // A TLS listener's local_reply_config adds the top level's HSTS to
        // Envoy's own replies (docs/filter.md); the core says when a reply
        // Envoy wrote for this request (a router 404, a 503) must lose it
        // again. Only then is the reply's origin read.
        if plan.host_reply_differs(&shared.policy)
            && host::property(CODE_DETAILS).is_some_and(|d| d.as_slice() != b"via_upstream")
        {
            plan.host_reply_edits(&shared.policy, &headers, &mut edits);
        } else {
            plan.edits(&shared.policy, &headers, &mut edits);
        }
        if cfg!(feature = "edits-batch") && edits.len() > 1 {
            // Bench attribution only: several edits as one map read (if the
            // core did not already need it) and one rewrite.
            let headers = if read { headers } else { read_map() };
            rewrite(host::RESPONSE_HEADERS, &headers, &edits);
            return Action::Continue;
        }
        // One call per edit: in Envoy 1.40 a call is ~3,000 instructions,
        // a read + rewrite of a small map ~45,000 (docs/performance.md), so
        // the batch would only pay from about 15 edits. A map the core read
        // anyway skips the removal of headers it does not have.
        if read {
            let edits = edit::without_absent_removes(&headers, &edits);
            apply(host::RESPONSE_HEADERS, &edits, Some(&headers));
        } else {
            apply(host::RESPONSE_HEADERS, &edits, None);
        }
        Action::Continue
    }
}
