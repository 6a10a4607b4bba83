//! The HTTP/2 share's client: the `h2` crate on a current-thread tokio
//! runtime owned by one load thread, one connection per (listener, source
//! address), kept open and reused stream after stream.
//!
//! On the plain listener it speaks HTTP/2 with prior knowledge (h2c: Envoy's
//! `codec_type: AUTO` sees the connection preface); on the TLS listener it
//! offers only `h2` by ALPN and refuses a connection that negotiates anything
//! else. Sources are bound before connect (`TcpSocket::bind`), like the
//! HTTP/1.1 client, so the filter sees the caller address the mix chose.
//!
//! One request at a time per load thread (the phase is read before and after
//! each exchange, as for HTTP/1.1): this measures correctness, not HTTP/2
//! throughput, and it does not multiplex streams concurrently, push, send
//! request bodies or trailers.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderName, HeaderValue, Method, Request};
use portcullis_e2e::http1::{Response, TlsClient};
use rustls::pki_types::ServerName;
use tokio::net::TcpSocket;
use tokio::runtime::Runtime;
use tokio_rustls::TlsConnector;

use crate::workload::Spec;

/// How long one connect or exchange may take (a hang guard).
pub const DEADLINE: Duration = Duration::from_secs(30);

fn bad(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// `tls` (the HTTP/1.1 client's configuration) offering only `h2` by ALPN.
pub fn h2_tls(tls: &TlsClient) -> TlsClient {
    let mut config = (**tls).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

struct H2Conn {
    send: SendRequest<Bytes>,
    local: SocketAddr,
}

/// A load thread's HTTP/2 client: its runtime and open connections.
pub struct Client {
    rt: Runtime,
    tls: TlsConnector,
    conns: BTreeMap<(bool, Ipv4Addr), H2Conn>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("conns", &self.conns.len())
            .finish()
    }
}

async fn connect(
    source: Ipv4Addr,
    to: SocketAddr,
    tls: Option<TlsConnector>,
) -> io::Result<H2Conn> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let tcp = socket.connect(to).await?;
    tcp.set_nodelay(true)?;
    let local = tcp.local_addr()?;
    let send = match tls {
        None => {
            let (send, conn) = h2::client::handshake(tcp).await.map_err(bad)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            send
        }
        Some(tls) => {
            let name = ServerName::try_from("localhost").map_err(bad)?;
            let stream = tls.connect(name, tcp).await?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            if alpn.as_deref() != Some(b"h2".as_slice()) {
                return Err(bad(format!(
                    "TLS listener negotiated {:?}, not h2",
                    alpn.map(|a| String::from_utf8_lossy(&a).into_owned())
                )));
            }
            let (send, conn) = h2::client::handshake(stream).await.map_err(bad)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            send
        }
    };
    Ok(H2Conn { send, local })
}

/// The request of `spec` as HTTP/2 headers (`:authority` from the spec's
/// Host, every other header as sent, in order; no body).
pub fn request(spec: &Spec) -> io::Result<Request<()>> {
    let scheme = if spec.tls { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", spec.authority, spec.path);
    let mut req = Request::builder()
        .method(Method::from_bytes(spec.method.as_bytes()).map_err(bad)?)
        .uri(uri)
        .body(())
        .map_err(bad)?;
    let headers = req.headers_mut();
    for (n, v) in &spec.headers {
        headers.append(
            HeaderName::from_bytes(n.as_bytes()).map_err(bad)?,
            HeaderValue::from_bytes(v).map_err(bad)?,
        );
    }
    Ok(req)
}

/// What came back for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A response.
    Response(Response),
    /// Envoy reset the stream (`RST_STREAM`) with this reason instead of
    /// answering: what it does over HTTP/2 with requests over its header
    /// limits, where HTTP/1.1 gets a 431.
    Reset(h2::Reason),
}

async fn exchange(send: &mut SendRequest<Bytes>, req: Request<()>) -> io::Result<Answer> {
    let mut ready = send.clone().ready().await.map_err(bad)?;
    let (resp, _) = ready.send_request(req, true).map_err(bad)?;
    let resp = match resp.await {
        Ok(r) => r,
        Err(e) if e.is_reset() && e.is_remote() && !e.is_go_away() => {
            *send = ready;
            return Ok(Answer::Reset(e.reason().unwrap_or(h2::Reason::NO_ERROR)));
        }
        Err(e) => return Err(bad(e)),
    };
    let (parts, mut body) = resp.into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(bad)?;
        bytes.extend_from_slice(&chunk);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    *send = ready;
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    Ok(Answer::Response(Response::new(
        parts.status.as_u16(),
        "HTTP/2".into(),
        headers,
        bytes,
        false,
    )))
}

impl Client {
    /// A client with its own current-thread runtime.
    pub fn new(tls: &TlsClient) -> io::Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(Client {
            rt,
            tls: TlsConnector::from(h2_tls(tls)),
            conns: BTreeMap::new(),
        })
    }

    /// Sends `spec` to `to` over HTTP/2 from the spec's source (on the open
    /// connection of that listener and source, else a new one) and returns
    /// the answer and the client side of the connection. A stream reset
    /// keeps the connection; a connection that fails is dropped (the next
    /// request opens a new one).
    pub fn exchange(&mut self, spec: &Spec, to: SocketAddr) -> io::Result<(Answer, SocketAddr)> {
        let req = request(spec)?;
        let slot = (spec.tls, spec.source);
        let tls = spec.tls.then(|| self.tls.clone());
        let conns = &mut self.conns;
        let result = self.rt.block_on(async {
            let run = async {
                let c = match conns.entry(slot) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => {
                        v.insert(connect(spec.source, to, tls).await?)
                    }
                };
                let local = c.local;
                exchange(&mut c.send, req).await.map(|r| (r, local))
            };
            match tokio::time::timeout(DEADLINE, run).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP/2 exchange timed out",
                )),
            }
        });
        if result.is_err() {
            self.conns.remove(&slot);
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::workload::{build, Class};

    #[test]
    fn every_carried_request_becomes_h2_headers_byte_for_byte() {
        for i in 0..2_000 {
            let spec = build(3, i, 0);
            let req = request(&spec).unwrap_or_else(|e| panic!("{:?}: {e}", spec.class));
            assert_eq!(req.method().as_str(), spec.method);
            assert_eq!(
                req.uri().authority().map(|a| a.as_str()),
                Some(spec.authority.as_str())
            );
            let sent: Vec<(String, Vec<u8>)> = req
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect();
            // Same multiset per name, same order within a name.
            for (name, _) in &spec.headers {
                let want: Vec<&Vec<u8>> = spec
                    .headers
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .collect();
                let got: Vec<&Vec<u8>> = sent
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .collect();
                assert_eq!(got, want, "{:?} {name}", spec.class);
            }
            assert_eq!(sent.len(), spec.headers.len());
            if spec.class == Class::NonUtf8 {
                assert!(sent.iter().any(|(_, v)| std::str::from_utf8(v).is_err()));
            }
        }
    }
}
