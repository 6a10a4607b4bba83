//! One filter configuration (the compiled policy and its counters) and one
//! stream: what the hooks in `lib.rs` call.

use core::cell::RefCell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use portcullis_core::edits::is_twin;
use portcullis_core::names::CounterSet;
use portcullis_core::{
    Action, Decision, Edit, EditOp, Env, Headers, Inputs, Policy, ResponsePlan, Transport,
};

use crate::abi;
use crate::counters::{self, Counter};
use crate::host::{self, Map, Stream};

/// `value_from` variables: Envoy's own process environment, read once
/// when a configuration is loaded.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A counter Envoy defined (`None`: it refused).
type C = Option<Counter>;

/// One filter configuration.
#[derive(Debug)]
pub struct Config {
    policy: Policy,
    needs: Inputs,
    /// The policy's counters ([`CounterSet::hits`]).
    set: CounterSet<C>,
    /// The counters of replaced policies, kept in `/stats`.
    /// (Held for their lifetime: dropping them hands their tallies over.)
    _retired: Vec<C>,
    /// Filter state key of the trace (`portcullis.<policy>.trace`).
    trace_key: String,
    /// The JSON trace's key, when the policy asks for it.
    json_key: Option<String>,
    /// Whether debug logs are on (read once per configuration).
    debug: bool,
}

thread_local! {
    /// The trace line, reused from request to request on each worker.
    static TRACE: RefCell<String> = RefCell::new(String::with_capacity(128));
}

impl Config {
    /// Parses `bytes` (the policy JSON) and defines the counters, or logs
    /// every problem and returns `None` (Envoy then refuses the config).
    pub fn load(envoy: abi::ConfigEnvoyPtr, bytes: &[u8]) -> Option<Config> {
        let policy = match Policy::parse_for_decisions(bytes, &ProcessEnv) {
            Ok(p) => p,
            Err(problems) => {
                let name =
                    Policy::name_of(bytes).unwrap_or_else(|| String::from("(filter_config)"));
                for p in &problems.0 {
                    host::log(
                        abi::LOG_ERROR,
                        &format!("portcullis: policy \"{name}\" rejected: {p}"),
                    );
                }
                return None;
            }
        };
        let own: RefCell<Vec<String>> = RefCell::new(Vec::new());
        let define = |name: String| -> C {
            if let Ok(mut own) = own.try_borrow_mut() {
                own.push(name.clone());
            }
            let Some(id) = host::define_counter(envoy, &name) else {
                host::log(
                    abi::LOG_WARN,
                    &format!("portcullis: cannot define counter {name}"),
                );
                return None;
            };
            let (c, carry) = Counter::define(&name, id);
            if carry > 0 && !host::config_count(envoy, id, carry) {
                host::log(
                    abi::LOG_WARN,
                    &format!("portcullis: cannot carry counter {name} over"),
                );
            }
            Some(c)
        };
        let set = CounterSet::define(&policy, &define);
        let others = counters::others(&own.borrow());
        let retired = others.into_iter().map(&define).collect();
        host::log(
            abi::LOG_INFO,
            &format!("portcullis: policy \"{}\" loaded", policy.name),
        );
        Some(Config {
            needs: policy.inputs(),
            set,
            _retired: retired,
            trace_key: policy.trace_property(),
            json_key: policy.trace_json.then(|| policy.json_trace_property()),
            debug: host::log_enabled(abi::LOG_DEBUG),
            policy,
        })
    }

    /// Counts a decision (same counters as the wasm filter).
    fn count(&self, s: Stream<'_>, d: &Decision) {
        let add = |c: Option<&Counter>| {
            if let Some(c) = c {
                s.count(c.id);
                c.add();
            }
        };
        self.set.hits(d, |c| add(c.as_ref()));
    }
}

/// What to do with the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Respond {
    /// The filter never decided the request (Envoy answered it itself):
    /// harden it anyway, secure when the connection is TLS.
    Undecided,
    /// Nothing: our own local reply, already hardened by the core.
    No,
    /// Apply the response plan of a forwarded request.
    Edit(ResponsePlan),
    /// Envoy answered a forwarded request itself (a router 404, a 503:
    /// the local-reply hook saw it): the plan's edits for a host reply.
    HostReply(ResponsePlan),
}

/// One stream.
#[derive(Debug)]
pub struct Filter {
    /// The configuration; Envoy destroys it only after its last stream.
    pub config: *const Config,
    /// What the response hook does.
    pub respond: Respond,
}

const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

fn tls(s: Stream<'_>) -> bool {
    s.attribute(abi::ATTR_CONNECTION_TLS_VERSION)
        .is_some_and(|v| !v.is_empty())
}

impl Filter {
    /// Decides the request; returns whether to continue (forward).
    pub fn request_headers(&mut self, config: &Config, s: Stream<'_>) -> bool {
        #[cfg(feature = "test-panic")]
        #[allow(clippy::panic)]
        if s.headers(abi::REQUEST_HEADER)
            .first("x-portcullis-test-panic")
            .is_some()
        {
            panic!("test-panic: x-portcullis-test-panic");
        }
        let policy = &config.policy;
        let needs = &config.needs;
        let peer = s.socket(abi::ATTR_SOURCE_ADDRESS);
        let local = if needs.local {
            s.socket(abi::ATTR_DESTINATION_ADDRESS)
        } else {
            Some(UNSPECIFIED)
        };
        let tls = needs.tls && tls(s);
        let transport = if needs.protocol
            && s.attribute(abi::ATTR_REQUEST_PROTOCOL) == Some(b"HTTP/3".as_slice())
        {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let headers = s.headers(abi::REQUEST_HEADER);
        if peer.is_none() || local.is_none() {
            host::log(
                abi::LOG_WARN,
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
                (
                    headers.first(":method").unwrap_or_default(),
                    headers.first(":authority").unwrap_or_default(),
                    headers.first(":path").unwrap_or_default(),
                )
            },
            &headers,
        );
        let publish = policy.trace.selects(&d);
        if publish || config.debug {
            TRACE.with(|t| {
                if let Ok(mut trace) = t.try_borrow_mut() {
                    policy.trace_into(&d, &mut trace);
                    if publish && !s.set_filter_state(&config.trace_key, trace.as_bytes()) {
                        host::log(
                            abi::LOG_WARN,
                            "portcullis: cannot set the trace filter state",
                        );
                    }
                    if config.debug {
                        host::log(abi::LOG_DEBUG, &format!("portcullis: {trace}"));
                    }
                    if let (true, Some(k)) = (publish, &config.json_key) {
                        policy.json_trace_into(&d, &mut trace);
                        s.set_filter_state(k, trace.as_bytes());
                    }
                }
            });
        }
        config.count(s, &d);
        match policy.act(&d) {
            Action::Reply(reply) => {
                self.respond = Respond::No;
                s.send_response(reply.status, &reply.headers, &reply.body, reply.details);
                false
            }
            Action::Forward(forward) => {
                let mut edits = Vec::new();
                forward.request_edits(&headers, &mut edits);
                apply(&headers, &edits);
                self.respond = Respond::Edit(forward.response());
                true
            }
        }
    }

    /// Envoy is about to send a local reply on this stream: one of ours
    /// (already hardened), or its own (`details` not `portcullis_*`).
    pub fn local_reply(&mut self, details: &[u8]) {
        if let Respond::Edit(plan) = self.respond {
            if !details.starts_with(b"portcullis_") {
                self.respond = Respond::HostReply(plan);
            }
        }
    }

    /// Applies the response plan.
    pub fn response_headers(&mut self, config: &Config, s: Stream<'_>) {
        #[cfg(feature = "test-panic")]
        #[allow(clippy::panic)]
        if s.headers(abi::RESPONSE_HEADER)
            .first("x-portcullis-test-panic")
            .is_some()
        {
            panic!("test-panic: x-portcullis-test-panic in the response");
        }
        let headers = s.headers(abi::RESPONSE_HEADER);
        let mut edits = Vec::new();
        match self.respond {
            Respond::No => return,
            Respond::Edit(plan) => plan.edits(&config.policy, &headers, &mut edits),
            Respond::HostReply(plan) => {
                plan.host_reply_edits(&config.policy, &headers, &mut edits);
            }
            Respond::Undecided => ResponsePlan::undecided(config.needs.tls && tls(s)).edits(
                &config.policy,
                &headers,
                &mut edits,
            ),
        }
        apply(&headers, &edits);
    }
}

/// Applies edits to a header map, in order.
fn apply(map: &Map, edits: &[Edit<'_>]) {
    for e in edits {
        let ok = match e.op {
            EditOp::Remove => map.remove(e.name),
            EditOp::Replace => map.set(e.name, e.value),
            EditOp::Append => map.add(e.name, e.value),
            EditOp::RemoveTwins => {
                let mut twins: Vec<Vec<u8>> = Vec::new();
                map.each_name(&mut |n| {
                    let lower = n.to_ascii_lowercase();
                    if is_twin(&lower, e.name) && !twins.contains(&lower) {
                        twins.push(lower);
                    }
                });
                twins
                    .iter()
                    .all(|t| core::str::from_utf8(t).is_ok_and(|t| map.remove(t)))
            }
        };
        if !ok {
            host::log(
                abi::LOG_WARN,
                &format!("portcullis: header edit on {} failed", e.name),
            );
        }
    }
}

/// Answers a stream that cannot be decided (no configuration, a panic):
/// 500, never forwarded.
pub fn fail_closed(s: Stream<'_>, details: &str) {
    let headers = [(
        String::from("content-type"),
        b"text/plain; charset=utf-8".to_vec(),
    )];
    s.send_response(500, &headers, b"Internal Server Error\n", details);
}

/// Envoy shares one configuration between its worker threads: it must be
/// `Sync` (no interior mutability; the trace buffer is per thread).
const _: fn() = || {
    fn shared_between_workers<T: Sync + Send>() {}
    shared_between_workers::<Config>();
};
