//! The soak: a long run of real Envoy with the Portcullis filter, every
//! response checked against the core, policies swapped through ECDS while
//! the load runs, Envoy's memory and wasm stats watched.
//!
//! - [`workload`]: policies A and B and the request mix;
//! - [`http`]: the HTTP/1.1 keep-alive client (plain and TLS, source
//!   addresses bound before connect);
//! - [`check`]: the expected response from the core, and the hardening check;
//! - [`run`]: the orchestration ([`run::run`]) and the summary.
//!
//! Run it with `scripts/soak.sh` (`./build.sh soak`); see docs/robustness.md.

pub mod check;
pub mod http;
pub mod run;
pub mod workload;
