//! A loopback stand-in for an Azure Functions app (plain HTTP/1.1 through
//! [`crate::http1`]).
//!
//! By default it answers like Functions does: `Server: Microsoft-IIS/10.0`,
//! `X-Powered-By: ASP.NET`, `X-AspNet-Version: 4.0.30319`, and, when built
//! with a function key, `401` unless the request carries
//! `x-functions-key: <key>`. A test can instead register a canned answer
//! (status and exact headers) under a case id; a request carrying
//! [`CASE_HEADER`] with that id gets it. Every request's headers are
//! recorded (by case id, and in arrival order).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::CASE_HEADER;
use crate::http1;
use crate::serve::{Request, Server};

/// Header list: names as received, values as bytes.
pub use crate::http1::Headers;

/// What the backend saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Request target.
    pub path: Vec<u8>,
    /// Headers in order.
    pub headers: Headers,
}

/// A canned answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers, sent exactly (plus `content-length`).
    pub headers: Headers,
}

#[derive(Debug, Default)]
struct State {
    answers: HashMap<String, Answer>,
    by_case: HashMap<String, Seen>,
    log: Vec<Seen>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    key: Option<Vec<u8>>,
    /// Whether requests are recorded (off for long soak runs).
    record: bool,
}

/// The running backend; dropping it stops accepting connections.
#[derive(Debug)]
pub struct Backend {
    server: Server,
    shared: Arc<Shared>,
}

/// The body of the default `200` answer.
pub const OK_BODY: &[u8] = b"Hello from the stand-in function\n";

/// The headers an Azure Functions (IIS/ASP.NET) front end sends.
pub fn azure_headers() -> Headers {
    vec![
        ("Server".into(), b"Microsoft-IIS/10.0".to_vec()),
        ("X-Powered-By".into(), b"ASP.NET".to_vec()),
        ("X-AspNet-Version".into(), b"4.0.30319".to_vec()),
        ("Content-Type".into(), b"text/plain; charset=utf-8".to_vec()),
    ]
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Backend {
    /// Starts on `addr` (port 0 picks one). `key`: the function key to
    /// require on requests without a canned answer (`None`: no check).
    pub fn start(addr: SocketAddr, key: Option<&[u8]>) -> std::io::Result<Backend> {
        Backend::start_with(addr, key, true)
    }

    /// Like [`Backend::start`], but records nothing (canned answers still
    /// work): for soak runs of millions of requests, where a record of every
    /// request would be the leak.
    pub fn start_unrecorded(addr: SocketAddr, key: Option<&[u8]>) -> std::io::Result<Backend> {
        Backend::start_with(addr, key, false)
    }

    fn start_with(addr: SocketAddr, key: Option<&[u8]>, record: bool) -> std::io::Result<Backend> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            key: key.map(<[u8]>::to_vec),
            record,
        });
        let server = Server::start(
            addr,
            "backend",
            Duration::from_secs(120),
            Arc::clone(&shared),
            answer,
        )?;
        Ok(Backend { server, shared })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Registers the answer for requests carrying `CASE_HEADER: id`.
    pub fn answer(&self, id: &str, answer: Answer) {
        lock(&self.shared).answers.insert(id.to_owned(), answer);
    }

    /// What the request with case id `id` looked like, if it arrived.
    pub fn seen(&self, id: &str) -> Option<Seen> {
        lock(&self.shared).by_case.get(id).cloned()
    }

    /// Waits (up to `deadline`) for the request with case id `id`.
    pub fn wait_seen(&self, id: &str, deadline: Duration) -> Option<Seen> {
        let end = Instant::now() + deadline;
        let mut st = lock(&self.shared);
        loop {
            if let Some(s) = st.by_case.get(id) {
                return Some(s.clone());
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = match self.shared.changed.wait_timeout(st, end - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared).log.clone()
    }
}

fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a [u8]> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

fn answer(shared: &Shared, req: Request) -> Vec<u8> {
    let close = req.close;
    let seen = Seen {
        method: req.method,
        path: req.path,
        headers: req.headers,
    };
    let case = header(&seen.headers, CASE_HEADER).map(|v| String::from_utf8_lossy(v).into_owned());
    let head = seen.method == "HEAD";
    let canned = {
        let mut st = lock(shared);
        let canned = case.as_ref().and_then(|c| st.answers.get(c).cloned());
        if shared.record {
            st.log.push(seen.clone());
            if let Some(c) = &case {
                st.by_case.insert(c.clone(), seen.clone());
            }
        }
        canned
    };
    if shared.record {
        shared.changed.notify_all();
    }
    let (status, headers, body): (u16, Headers, Vec<u8>) = match canned {
        Some(a) => (a.status, a.headers, b"stand-in backend\n".to_vec()),
        None => {
            let ok = match &shared.key {
                None => true,
                Some(k) => header(&seen.headers, "x-functions-key") == Some(k.as_slice()),
            };
            if ok {
                (200, azure_headers(), OK_BODY.to_vec())
            } else {
                (
                    401,
                    azure_headers(),
                    b"Unauthorized: missing or wrong x-functions-key\n".to_vec(),
                )
            }
        }
    };
    http1::response(status, &headers, &body, head, close)
}
