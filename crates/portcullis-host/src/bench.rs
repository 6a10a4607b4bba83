//! The exchange the Envoy bench (`scripts/bench/envoy_bench.py`) sends, for
//! the host-call budget test of the filter and `bench/hostcalls`, so that
//! both count the calls of the very request Envoy is measured with: `GET
//! /bench` over plain HTTP/1.1 from wrk, and an IIS/ASP.NET upstream answer
//! whose fingerprints a bench policy removes.

use std::net::SocketAddr;

use crate::{HttpRequest, HttpResponse};

/// The bench's request from `peer` to the bench listener `127.0.0.1:10000`.
pub fn request(peer: SocketAddr) -> HttpRequest {
    HttpRequest {
        peer,
        local: SocketAddr::from(([127, 0, 0, 1], 10000)),
        tls: false,
        protocol: "HTTP/1.1".into(),
        headers: vec![
            (b":method".to_vec(), b"GET".to_vec()),
            (b":authority".to_vec(), b"127.0.0.1:10000".to_vec()),
            (b":path".to_vec(), b"/bench".to_vec()),
            (b":scheme".to_vec(), b"http".to_vec()),
            (b"user-agent".to_vec(), b"wrk".to_vec()),
        ],
        body: None,
    }
}

/// The bench upstream's answer: an IIS/ASP.NET fingerprint.
pub fn upstream() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![
            (b"server".to_vec(), b"Microsoft-IIS/10.0".to_vec()),
            (b"x-powered-by".to_vec(), b"ASP.NET".to_vec()),
            (b"x-aspnet-version".to_vec(), b"4.0.30319".to_vec()),
            (
                b"content-type".to_vec(),
                b"text/plain; charset=utf-8".to_vec(),
            ),
            (b"content-length".to_vec(), b"33".to_vec()),
        ],
    }
}
