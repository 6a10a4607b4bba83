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
//! - [`http2`]: the HTTP/2 share's client (the `h2` crate);
//! - [`swap`]: the controller that swaps the policy every N % of the run;
//! - [`judge`] and [`summary`]: the checks of a run, its figures and JSON;
//! - [`run`]: the orchestration ([`run::run`]).
//!
//! It speaks HTTP/1.1 through `portcullis_e2e::http1` (the harness's one
//! HTTP/1.1 client) and HTTP/2 through [`http2`], and takes its ports and
//! client addresses from `portcullis_e2e::net`.
//!
//! ## The HTTP/2 share
//!
//! A share of the mix (`SOAK_H2_SHARE`, `scripts/soak.sh --h2-share N`,
//! default [`config::DEFAULT_H2_SHARE`] %) goes over HTTP/2: prior-knowledge
//! h2c on the plain listener, ALPN `h2` on the TLS one (the listeners have
//! `codec_type: AUTO` and offer `h2, http/1.1`). Which requests is a pure
//! function of `(seed, i)` ([`workload::h2_picked`]), independent of the
//! class, so every class is in the share. The same checks judge both
//! protocols; the figures and the JSON summary (`"http2"`) give the share
//! asked and carried and the requests, mismatches, swap violations,
//! hardening failures, I/O errors and statuses per protocol, and the run
//! checks Envoy's own `downstream_rq_http2_total` against the client's count.
//! Every class is carried: non-UTF-8 values, repeated headers,
//! `content-length: 0` POSTs, an upper-case `:authority` with a port and the
//! near-limit headers go over HTTP/2 byte for byte. The requests over
//! Envoy's header limits (size or count), which HTTP/1.1 gets Envoy's 431
//! for, get a stream reset (`RST_STREAM`, Envoy 1.40 says `INTERNAL_ERROR`)
//! over HTTP/2, and the run checks exactly that (and that the filter
//! counted no decision for them). What HTTP/2 cannot express is not in the
//! share: the `Host` header itself (HTTP/2 sends `:authority`), a request
//! line or framing of HTTP/1.1 (chunking, `Connection`); the mix uses none
//! of these tricks. The probes that fence a swap stay HTTP/1.1.
//!
//! A default run (1,000,000 requests, 4 load threads, Envoy 1.40
//! `--concurrency 1`, 2 shared cores) took 164.9 s: 799,679 over HTTP/1.1
//! and 200,321 over HTTP/2 (20.0 %; 165,728 ALPN h2, 34,593 h2c; Envoy's
//! `downstream_rq_http2_total` 200,321), 0 mismatches, 0 swap violations,
//! 0 I/O errors on both; 12,462 431s (HTTP/1.1) and 3,084 stream resets
//! (HTTP/2) exactly for the over-limit requests; Envoy RSS +0.96 %.
//!
//! It does not run in `./build.sh test` (it is long), does not multiplex
//! concurrent streams on one connection (one request at a time per load
//! thread), and does not speak HTTP/3.
//!
//! Run it with `scripts/soak.sh` (`./build.sh soak`); see docs/robustness.md.

pub mod check;
pub mod config;
pub mod http2;
pub mod judge;
pub mod load;
pub mod rig;
pub mod run;
pub mod summary;
pub mod swap;
pub mod tally;
pub mod workload;
