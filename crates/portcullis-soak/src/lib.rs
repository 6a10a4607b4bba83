//! The soak: a long run of real Envoy with the Portcullis filter, every
//! response checked against the core, policies swapped through ECDS while
//! the load runs, Envoy's memory and wasm stats watched.
//!
//! - [`config`]: what to run (`SOAK_*` environment variables);
//! - [`workload`]: policies A and B and the request mix;
//! - [`check`]: the expected response from the core, and the hardening check;
//! - [`rig`]: the stand-in backend and Envoy (two listeners, the filter
//!   through ECDS) and the policy file swaps;
//! - [`tally`]: the counts each load thread keeps;
//! - [`load`]: the load threads and the probes that fence a swap;
//! - [`swap`]: the controller that swaps the policy every N % of the run;
//! - [`judge`] and [`summary`]: the checks of a run, its figures and JSON;
//! - [`run`]: the orchestration ([`run::run`]).
//!
//! It speaks HTTP through `portcullis_e2e::http1` (the harness's one
//! HTTP/1.1 client) and takes its ports and client addresses from
//! `portcullis_e2e::net`. It does not run in `./build.sh test` (it is long),
//! and it does not speak HTTP/2 or HTTP/3.
//!
//! Run it with `scripts/soak.sh` (`./build.sh soak`); see docs/robustness.md.

pub mod check;
pub mod config;
pub mod judge;
pub mod load;
pub mod rig;
pub mod run;
pub mod summary;
pub mod swap;
pub mod tally;
pub mod workload;
