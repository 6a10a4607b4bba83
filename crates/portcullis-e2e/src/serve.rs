//! The one loopback HTTP/1.1 server loop the stand-ins share
//! ([`crate::backend`], [`crate::artifacts`]): an accept thread, a thread
//! per connection, keep-alive requests read through [`crate::http1`] until
//! EOF, garbage, `connection: close` or the server is dropped; what to
//! answer is the caller's.
//!
//! Not a general server: no TLS, no pipelining, no `100 Continue`, bodies
//! are read and dropped.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::http1::{Framing, Headers, Reader};

/// Most headers a request may carry before the connection is dropped.
const MAX_HEADERS: usize = 500;

/// One request as the server read it (its body dropped).
#[derive(Debug)]
pub(crate) struct Request {
    /// Method.
    pub(crate) method: String,
    /// Request target.
    pub(crate) path: Vec<u8>,
    /// Headers in order.
    pub(crate) headers: Headers,
    /// Whether it asked for `connection: close` (the answer must say so,
    /// and the connection ends after it).
    pub(crate) close: bool,
}

/// The running loop; dropping it stops accepting connections and answering.
#[derive(Debug)]
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Listens on `addr` (port 0 picks one). Threads are named
    /// `{name}-accept` and `{name}-conn`; an idle connection is dropped after
    /// `idle`. `answer` gives the bytes written back for each request (see
    /// [`crate::http1::response`]).
    pub(crate) fn start<S: Send + Sync + 'static>(
        addr: SocketAddr,
        name: &str,
        idle: Duration,
        state: Arc<S>,
        answer: fn(&S, Request) -> Vec<u8>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let conn_name = format!("{name}-conn");
        thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, stop) = (Arc::clone(&state), Arc::clone(&stop2));
                    let _ = thread::Builder::new()
                        .name(conn_name.clone())
                        .spawn(move || serve(conn, idle, &stop, &*state, answer));
                }
            })?;
        Ok(Server { addr, stop })
    }

    /// The listening address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Reads one request (head and body, the body dropped); `None` at EOF or
/// on garbage.
fn read_request(r: &mut Reader<TcpStream>) -> Option<Request> {
    let head = r.read_head().ok()??;
    if head.headers.len() > MAX_HEADERS {
        return None;
    }
    let (method, path) = head.request_line().ok()?;
    r.read_body(Framing::of_request(&head).ok()?).ok()?;
    let close = head.is("connection", "close");
    Some(Request {
        method,
        path,
        headers: head.headers,
        close,
    })
}

fn serve<S>(
    conn: TcpStream,
    idle: Duration,
    stop: &AtomicBool,
    state: &S,
    answer: fn(&S, Request) -> Vec<u8>,
) {
    let _ = conn.set_read_timeout(Some(idle));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut r = Reader::new(conn);
    while let Some(req) = read_request(&mut r) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let close = req.close;
        if out.write_all(&answer(state, req)).is_err() || close {
            break;
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}
