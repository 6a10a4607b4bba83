//! End-to-end proof of the Portcullis filter in real Envoy.
//!
//! - [`config`]: the Envoy bootstrap template for a hardened deployment
//!   (TLS 1.2+ with forward-secret AEAD suites, client address from the TCP
//!   peer, no `server: envoy`, no `x-envoy-*`, the wasm filter with the policy
//!   inline or via ECDS, the decision trace in the access log, admin on
//!   loopback). `deploy/envoy/envoy.yaml` is rendered from it.
//! - [`envoy`]: starts Envoy (one worker), waits on admin `/ready`, reads
//!   `/stats`, kills it on drop.
//! - [`backend`]: a loopback stand-in for Azure Functions (IIS/ASP.NET
//!   headers, `x-functions-key` check, canned answers per test case,
//!   recording what it received).
//! - [`tls`]: a self-signed certificate made with `openssl` at test time.
//! - [`client`]: curl as the client (`--interface 127.x.y.z` picks the peer).
//! - [`translate`]: moves a policy and its test cases onto loopback.
//! - [`soak`]: the soak load generator and checker (`portcullis-soak`,
//!   `scripts/soak.sh`).
//! - [`runner`]: Envoy as an engine of the one policy-tests runner
//!   (`portcullis_harness::run_file`): [`runner::run_case_envoy`] plays a
//!   case, the harness compares and reports (cases that cannot be expressed
//!   on loopback are skips).
//!
//! The integration tests (`cargo test -p portcullis-e2e`) need Envoy
//! (`./build.sh setup`) and the filter (`./build.sh build`); they fail, not
//! skip, when either is missing.

pub mod backend;
pub mod client;
pub mod config;
pub mod envoy;
pub mod paths;
pub mod runner;
pub mod soak;
pub mod tls;
pub mod translate;
