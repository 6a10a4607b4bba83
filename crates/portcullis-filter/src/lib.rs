//! Portcullis as a proxy-wasm HTTP filter, for Envoy's `envoy.filters.http.wasm`.
//!
//! The plugin configuration is a policy-v1 JSON document. It is parsed once,
//! in `on_configure`; a rejected document logs every problem at error level
//! (`portcullis: policy "<name>" rejected: <line>:<col>: <path>: <message>`)
//! and fails the configuration, so Envoy refuses it. A stream that starts
//! without a valid policy is answered `500`, never forwarded.
//!
//! Per request the filter reads only what the policy needs (see
//! [`portcullis_core::Inputs`]): `source.address` always; `destination.address`,
//! `connection.tls_version` and `request.protocol` only when some rule or
//! section depends on them; the request header map in one host call, only
//! when the core asks for a header or a plain request may be redirected.
//! Then it asks the core for the decision, and either sends the core's
//! hardened local reply or applies the request edits and forwards. Response
//! edits (and HSTS) are applied to the responses of forwarded requests; the
//! filter's own local replies already carry them. In a scope without `hsts`
//! the HSTS a TLS listener's `local_reply_config` put on one of Envoy's own
//! replies is removed (docs/filter.md, "Envoy's own replies").
//!
//! Observability:
//! - the trace line (`verdict status step source client scope rule`) is set as the
//!   property `portcullis.<policy>.trace` (the policy's `name`), which Envoy
//!   keeps as filter state `wasm.portcullis.<policy>.trace`: an access log
//!   prints it with `%FILTER_STATE(wasm.portcullis.<policy>.trace:PLAIN)%`,
//!   and two instances on one listener (an enforcing policy and a
//!   report-mode candidate) keep their own. The policy's `trace` says for
//!   which requests (`all`, the default; `deny`: only those it stops or, in
//!   report mode, would stop; `none`); the same line is logged at
//!   debug level when the host's log level for the plugin is debug or lower
//!   at configuration time. With `trace_json: true` the JSON form
//!   ([`portcullis_core::Policy::json_trace`]) is also set, as
//!   `portcullis.<policy>.trace_json` (one more host call per request);
//! - counters `portcullis.<policy>.allowed|denied|redirected` and
//!   `portcullis.<policy>.rule.<rule>` (`default` when no rule decided),
//!   accumulated in the VM and handed to the host once a second (see
//!   [`stats::Counters`]);
//!   in report mode (`"mode": "report"`: every request is forwarded) also
//!   `portcullis.<policy>.would_deny|would_redirect` and
//!   `portcullis.<policy>.would_deny|would_redirect.rule.<rule>`; for a
//!   request in a scope also
//!   `portcullis.<policy>.scope.<scope>.allowed|denied|redirected` (a scope
//!   with its own `network` counts its rules as
//!   `portcullis.<policy>.scope.<scope>.rule.<rule>` instead of the top
//!   level's); names sanitized by [`stats::segment`]. Envoy lists them in `/stats`
//!   under its custom namespace (see `docs/filter.md`).
//!
//! Only the modules that do not touch the host build natively, so
//! `cargo test` covers them; the contexts build for `wasm32` only.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod edit;
pub mod stats;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::<filter::Root>::default()
    });
}}
