//! End-to-end proof of the Portcullis filter in real Envoy.
//!
//! - [`config`]: the Envoy bootstrap template for a hardened deployment
//!   (TLS 1.2+ with forward-secret AEAD suites, client address from the TCP
//!   peer, no `server: envoy`, no `x-envoy-*`, the wasm filter with the policy
//!   inline or via ECDS, the decision trace in the access log, admin on
//!   loopback). `deploy/envoy/envoy.yaml` is rendered from it.
//! - [`module`]: where Envoy gets the module (a local file, or fetched by
//!   URL and verified by its SHA-256) and the VM's environment variables.
//! - [`artifacts`]: a loopback server Envoy fetches the module from, and
//!   the SHA-256 it checks.
//! - [`deploy`]: one description of a rollout rendered as the Envoy and
//!   Istio (`WasmPlugin`) snippets of docs/deploy.md, and their checks.
//! - [`envoy`]: starts Envoy (one worker), waits on admin `/ready`, reads
//!   `/stats`, kills it on drop; `envoy --mode validate`.
//! - [`backend`]: a loopback stand-in for Azure Functions (IIS/ASP.NET
//!   headers, `x-functions-key` check, canned answers per test case,
//!   recording what it received).
//! - [`tls`]: a self-signed certificate made with `openssl` at test time.
//! - [`client`]: curl as the client (`--interface 127.x.y.z` picks the peer).
//! - [`http1`]: the one HTTP/1.1 writer and reader every other piece uses
//!   (admin client, backend, curl's head dump, the soak's keep-alive client).
//! - `serve`: the one loopback accept-and-answer loop of the backend and
//!   the module server.
//! - [`net`]: loopback client addresses, free ports below the ephemeral
//!   range, connecting from a chosen source address.
//! - [`translate`]: moves a policy and its test cases onto loopback.
//! - [`runner`]: Envoy as an engine of the one policy-tests runner
//!   (`portcullis_harness::run_file`): [`runner::run_case_envoy`] plays a
//!   case, the harness compares and reports (cases that cannot be expressed
//!   on loopback are skips).
//!
//! The integration tests (`cargo test -p portcullis-e2e`) need Envoy
//! (`./build.sh setup`) and the filter (`./build.sh build`); they fail, not
//! skip, when either is missing.
//!
//! Not here: the soak load generator (`crates/portcullis-soak`, built on
//! this crate), and any traffic off loopback.

pub mod artifacts;
pub mod backend;
pub mod client;
pub mod config;
pub mod deploy;
pub mod envoy;
pub mod http1;
pub mod module;
pub mod net;
pub mod paths;
pub mod runner;
mod serve;
pub mod tls;
pub mod translate;
