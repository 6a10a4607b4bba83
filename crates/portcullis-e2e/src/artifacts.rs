//! A loopback module server: serves one file's bytes at one path over plain
//! HTTP/1.1 (the loop of `crate::serve`), `404` for anything else, and counts
//! the fetches. Envoy fetches the filter from it in the remote-code tests
//! ([`crate::module::Code::Remote`]).
//!
//! Also [`sha256_hex`], the digest Envoy checks. Not an artefact registry:
//! no TLS, no OCI, no ranges or caching headers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::http1;
use crate::serve::{Request, Server};

/// The SHA-256 of `bytes` in lowercase hex, as Envoy's `sha256` wants it.
///
/// ```
/// assert_eq!(
///     portcullis_e2e::artifacts::sha256_hex(b"abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
struct Shared {
    path: String,
    body: Vec<u8>,
    fetches: AtomicU64,
}

/// The running server; dropping it stops accepting connections.
#[derive(Debug)]
pub struct ModuleServer {
    server: Server,
    shared: Arc<Shared>,
}

impl ModuleServer {
    /// Serves `body` at `path` (e.g. `/portcullis_filter.wasm`) on `addr`
    /// (port 0 picks one).
    pub fn start(addr: SocketAddr, path: &str, body: Vec<u8>) -> std::io::Result<ModuleServer> {
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            body,
            fetches: AtomicU64::new(0),
        });
        let server = Server::start(
            addr,
            "module",
            Duration::from_secs(60),
            Arc::clone(&shared),
            answer,
        )?;
        Ok(ModuleServer { server, shared })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The module's URL.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr(), self.shared.path)
    }

    /// Requests for the module answered so far.
    pub fn fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

fn answer(shared: &Shared, req: Request) -> Vec<u8> {
    let head = req.method == "HEAD";
    let found = req.path == shared.path.as_bytes() && (head || req.method == "GET");
    if found {
        shared.fetches.fetch_add(1, Ordering::SeqCst);
        let h = vec![("content-type".to_owned(), b"application/wasm".to_vec())];
        http1::response(200, &h, &shared.body, head, req.close)
    } else {
        http1::response(404, &[], b"not found\n", head, req.close)
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::net;

    #[test]
    fn serves_the_module_at_its_path_only() {
        let s = ModuleServer::start(net::any_port(), "/m.wasm", b"\0asm\x01".to_vec()).unwrap();
        let ok = http1::get(s.addr(), "/m.wasm", "artifacts").unwrap();
        assert_eq!(
            (ok.status, ok.body.as_slice()),
            (200, b"\0asm\x01".as_slice())
        );
        assert_eq!(ok.one("content-type").as_deref(), Some("application/wasm"));
        assert_eq!(
            http1::get(s.addr(), "/other", "artifacts").unwrap().status,
            404
        );
        assert_eq!(s.fetches(), 1);
        assert!(s.url().ends_with("/m.wasm"));
    }
}
