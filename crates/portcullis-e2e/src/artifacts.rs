//! A loopback module server: serves one file's bytes at one path over plain
//! HTTP/1.1 (through [`crate::http1`]), `404` for anything else, and counts
//! the fetches. Envoy fetches the filter from it in the remote-code tests
//! ([`crate::module::Code::Remote`]).
//!
//! Also [`sha256_hex`], the digest Envoy checks. Not an artefact registry:
//! no TLS, no OCI, no ranges or caching headers.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::http1::{self, Framing, Reader};

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
    stop: AtomicBool,
}

/// The running server; dropping it stops accepting connections.
#[derive(Debug)]
pub struct ModuleServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ModuleServer {
    /// Serves `body` at `path` (e.g. `/portcullis_filter.wasm`) on `addr`
    /// (port 0 picks one).
    pub fn start(addr: SocketAddr, path: &str, body: Vec<u8>) -> std::io::Result<ModuleServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            body,
            fetches: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s2 = Arc::clone(&shared);
        thread::Builder::new()
            .name("module-server".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s2.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let s3 = Arc::clone(&s2);
                    let _ = thread::Builder::new()
                        .name("module-conn".into())
                        .spawn(move || serve(conn, &s3));
                }
            })?;
        Ok(ModuleServer { addr, shared })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The module's URL.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.path)
    }

    /// Requests for the module answered so far.
    pub fn fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for ModuleServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn serve(conn: TcpStream, shared: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = Reader::new(conn);
    while let Ok(Some(head)) = r.read_head() {
        let Ok((method, path)) = head.request_line() else {
            break;
        };
        if Framing::of_request(&head)
            .and_then(|f| r.read_body(f))
            .is_err()
        {
            break;
        }
        let close = head.is("connection", "close");
        let found = path == shared.path.as_bytes() && (method == "GET" || method == "HEAD");
        let msg = if found {
            shared.fetches.fetch_add(1, Ordering::SeqCst);
            let h = vec![("content-type".to_owned(), b"application/wasm".to_vec())];
            http1::response(200, &h, &shared.body, method == "HEAD", close)
        } else {
            http1::response(404, &[], b"not found\n", method == "HEAD", close)
        };
        if out.write_all(&msg).is_err() || close {
            break;
        }
    }
    let _ = out.shutdown(Shutdown::Both);
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
