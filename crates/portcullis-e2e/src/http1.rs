//! The harness's one HTTP/1.1 implementation: what goes on the wire and how
//! it is read back, for every piece that speaks HTTP itself — the admin
//! client of [`crate::envoy`], the stand-in [`crate::backend`] (requests in,
//! responses out), the head dump of curl in [`crate::client`], and the
//! soak's keep-alive load (`portcullis-soak`).
//!
//! - writing: [`request`] and [`response`] (raw bytes: header values need not
//!   be UTF-8);
//! - reading: [`parse_head`] (a status or request line and header lines),
//!   [`Reader`] (a buffered byte stream: one head, then a body framed by
//!   `content-length`, `transfer-encoding: chunked` or the end of the
//!   connection);
//! - a client: [`Conn`] (one keep-alive connection from a chosen loopback
//!   source address, plain or TLS) and [`get`] (one request on a fresh
//!   connection).
//!
//! It is a test tool, not a general HTTP library: no pipelining, no
//! `100 Continue`, no HTTP/2 (curl does that for the harness), heads of at
//! most 1 MiB, and it trusts only the test certificate
//! ([`crate::tls::pinned_client`]).
//!
//! ```
//! use portcullis_e2e::http1::{parse_head, request};
//!
//! let bytes = request("GET", "/x", b"api.test", &[("x-a".into(), b"1".to_vec())]);
//! assert_eq!(bytes, b"GET /x HTTP/1.1\r\nhost: api.test\r\nx-a: 1\r\n\r\n");
//! let head = parse_head(b"HTTP/1.1 204 No Content\r\nX-A:  2 ").unwrap();
//! assert_eq!(head.status().unwrap(), ("HTTP/1.1".to_owned(), 204));
//! assert_eq!(head.get("x-a"), Some(b"2".as_slice()));
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::net;

/// A TLS client configuration for [`Conn::connect`] (see
/// [`crate::tls::pinned_client`]).
pub type TlsClient = Arc<ClientConfig>;

/// Header list: names (as received, or lowercased where a type says so) and
/// values as bytes.
pub type Headers = Vec<(String, Vec<u8>)>;

/// How long one read or write may block before the exchange counts as
/// failed (a hang guard, not a performance threshold).
pub const IO_DEADLINE: Duration = Duration::from_secs(60);

/// The largest head [`Reader::read_head`] accepts.
pub const MAX_HEAD: usize = 1 << 20;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A request head as bytes: `METHOD target HTTP/1.1`, `host`, the headers
/// in order, the empty line. Any body is the caller's (with its
/// `content-length` among `headers`).
pub fn request(method: &str, target: &str, host: &[u8], headers: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(64 + target.len() + host.len() + size);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(&mut out, "host", host);
    for (n, v) in headers {
        put_header(&mut out, n, v);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The reason phrase written for a status.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Whether a response with this status never has a body.
pub fn bodiless(status: u16) -> bool {
    status == 204 || status == 304 || status < 200
}

/// A whole response as bytes: the status line, `headers` (any
/// `content-length` or `connection` among them dropped), a
/// `content-length` unless the status is [`bodiless`], `connection: close`
/// when `close`, and `body` unless the request was a `HEAD` (`head`).
pub fn response(
    status: u16,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
    head: bool,
    close: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("connection") {
            continue;
        }
        put_header(&mut out, n, v);
    }
    if !bodiless(status) {
        put_header(
            &mut out,
            "content-length",
            body.len().to_string().as_bytes(),
        );
    }
    if close {
        put_header(&mut out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head && !bodiless(status) {
        out.extend_from_slice(body);
    }
    out
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |e| e + 1);
    b.get(start..end.max(start)).unwrap_or_default()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A message head: its first line and its headers (names as received,
/// values with surrounding blanks trimmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status line or request line.
    pub start: Vec<u8>,
    /// Headers in order.
    pub headers: Headers,
}

impl Head {
    /// The first value of a header (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a header's value is `word` (any case).
    pub fn is(&self, name: &str, word: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case(word.as_bytes()))
    }

    /// The version and status of a status line (`HTTP/1.1 200 OK`; curl's
    /// dumps also give `HTTP/2 200`).
    pub fn status(&self) -> io::Result<(String, u16)> {
        let mut parts = self.start.split(|b| *b == b' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with(b"HTTP/") {
            return Err(bad(format!(
                "not a status line: {:?}",
                String::from_utf8_lossy(&self.start)
            )));
        }
        let status = parts
            .next()
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad("no status code"))?;
        Ok((String::from_utf8_lossy(version).into_owned(), status))
    }

    /// The method and target of a request line (`GET /x HTTP/1.1`).
    pub fn request_line(&self) -> io::Result<(String, Vec<u8>)> {
        let mut parts = self.start.split(|b| *b == b' ');
        let method = parts.next().filter(|m| !m.is_empty());
        let target = parts.next().filter(|t| !t.is_empty());
        match (method, target, parts.next()) {
            (Some(m), Some(t), Some(v)) if v.starts_with(b"HTTP/1.") => {
                Ok((String::from_utf8_lossy(m).into_owned(), t.to_vec()))
            }
            _ => Err(bad(format!(
                "not a request line: {:?}",
                String::from_utf8_lossy(&self.start)
            ))),
        }
    }
}

/// Parses a head (the first line and header lines, CRLF or LF, without or
/// with the final empty line).
pub fn parse_head(head: &[u8]) -> io::Result<Head> {
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines
        .next()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("empty head"))?
        .to_vec();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let colon = line
            .iter()
            .position(|b| *b == b':')
            .ok_or_else(|| bad("header line without a colon"))?;
        let (name, value) = line.split_at(colon);
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            trim(value.get(1..).unwrap_or_default()).to_vec(),
        ));
    }
    Ok(Head { start, headers })
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `content-length` bytes.
    Length(usize),
    /// `transfer-encoding: chunked` (trailers read and dropped).
    Chunked,
    /// Up to the end of the connection (a response without a length).
    ToEnd,
}

impl Framing {
    fn declared(head: &Head) -> io::Result<Option<Framing>> {
        let chunked = head
            .get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with(b"chunked"));
        if chunked {
            return Ok(Some(Framing::Chunked));
        }
        match head.get("content-length") {
            None => Ok(None),
            Some(v) => String::from_utf8_lossy(v)
                .trim()
                .parse()
                .map(|n| Some(Framing::Length(n)))
                .map_err(|_| bad("bad content-length")),
        }
    }

    /// The body of a request: chunked, a length, or none.
    pub fn of_request(head: &Head) -> io::Result<Framing> {
        Ok(Framing::declared(head)?.unwrap_or(Framing::Empty))
    }

    /// The body of a response with `status` to a request that was a `HEAD`
    /// or not.
    pub fn of_response(head: &Head, status: u16, head_request: bool) -> io::Result<Framing> {
        if head_request || bodiless(status) {
            return Ok(Framing::Empty);
        }
        Ok(Framing::declared(head)?.unwrap_or(Framing::ToEnd))
    }
}

/// A buffered byte stream read as HTTP/1.1 messages.
#[derive(Debug)]
pub struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// Wraps a stream.
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The stream (to write to it).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads more; `Ok(false)` at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16384];
        let n = self.inner.read(&mut chunk)?;
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n > 0)
    }

    fn fill_or_eof(&mut self) -> io::Result<()> {
        if self.fill()? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-message",
            ))
        }
    }

    /// Takes `n` bytes from the front of the buffer, reading as needed.
    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill_or_eof()?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let mut l = self.take(i + 2)?;
                l.truncate(i);
                return Ok(l);
            }
            self.fill_or_eof()?;
        }
    }

    /// Reads one head; `Ok(None)` when the stream ends before its first byte.
    pub fn read_head(&mut self) -> io::Result<Option<Head>> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("head over 1 MiB"));
            }
            if !self.fill()? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed mid-head",
                ));
            }
        };
        let head = self.take(end + 4)?;
        parse_head(head.get(..end).unwrap_or_default()).map(Some)
    }

    /// Reads a body framed as `framing` (de-chunked).
    pub fn read_body(&mut self, framing: Framing) -> io::Result<Vec<u8>> {
        match framing {
            Framing::Empty => Ok(Vec::new()),
            Framing::Length(n) => self.take(n),
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let size_line = self.line()?;
                    let size_text = String::from_utf8_lossy(&size_line);
                    let size_hex = size_text.split(';').next().unwrap_or("").trim();
                    let size =
                        usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
                    if size == 0 {
                        // Trailers up to the empty line.
                        while !self.line()?.is_empty() {}
                        return Ok(body);
                    }
                    body.extend(self.take(size)?);
                    if !self.take(2)?.eq(b"\r\n") {
                        return Err(bad("chunk not followed by CRLF"));
                    }
                }
            }
            Framing::ToEnd => {
                while self.fill()? {}
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }

    /// Reads one response to a request that was a `HEAD` or not.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let head = self.read_head()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            )
        })?;
        let (version, status) = head.status()?;
        let framing = Framing::of_response(&head, status, head_request)?;
        let body = self.read_body(framing)?;
        let close = head.is("connection", "close") || framing == Framing::ToEnd;
        Ok(Response::new(status, version, head.headers, body, close))
    }
}

/// A response as a client saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Status.
    pub status: u16,
    /// `HTTP/1.1` (or `HTTP/2` from curl).
    pub version: String,
    /// Headers, names lowercased, values with surrounding blanks trimmed.
    pub headers: Headers,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// The server closes the connection after this response.
    pub close: bool,
}

impl Response {
    /// A response; header names are lowercased.
    pub fn new(
        status: u16,
        version: String,
        headers: Headers,
        body: Vec<u8>,
        close: bool,
    ) -> Response {
        Response {
            status,
            version,
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v))
                .collect(),
            body,
            close,
        }
    }

    /// Every value of a header (name lowercase), in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The only value of a header, as text.
    pub fn one(&self, name: &str) -> Option<String> {
        match self.values(name).as_slice() {
            [v] => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        }
    }
}

/// The byte stream of a connection.
#[allow(clippy::large_enum_variant)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One keep-alive client connection.
pub struct Conn {
    reader: Reader<Stream>,
    /// The client side of the connection (the peer the server sees).
    pub local: SocketAddr,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("local", &self.local).finish()
    }
}

impl Conn {
    /// Connects from `source` (port 0: the OS picks one) to `to`, in TLS
    /// when `tls` is given (SNI `localhost`; the handshake completes here, so
    /// a TLS failure shows here).
    pub fn connect(
        source: SocketAddr,
        to: SocketAddr,
        tls: Option<&TlsClient>,
    ) -> io::Result<Conn> {
        let tcp = net::connect_from(source, to, IO_DEADLINE)?;
        let local = tcp.local_addr()?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from("localhost").map_err(|e| bad(e.to_string()))?;
                let conn = ClientConnection::new(Arc::clone(config), name)
                    .map_err(|e| bad(e.to_string()))?;
                let mut s = StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Stream::Tls(Box::new(s))
            }
        };
        Ok(Conn {
            reader: Reader::new(stream),
            local,
        })
    }

    /// Sends one request (complete bytes, e.g. from [`request`]) and reads
    /// its response. A response without a body length is read to the end of
    /// the connection (and says [`Response::close`]).
    pub fn exchange(&mut self, request: &[u8], head_request: bool) -> io::Result<Response> {
        let s = self.reader.get_mut();
        s.write_all(request)?;
        s.flush()?;
        self.reader.read_response(head_request)
    }
}

/// One `GET` on a fresh plain connection from `127.0.0.1` with
/// `connection: close` (Envoy's admin interface, the module server).
pub fn get(to: SocketAddr, path: &str, host: &str) -> io::Result<Response> {
    let mut c = Conn::connect(net::any_port(), to, None)?;
    c.exchange(
        &request(
            "GET",
            path,
            host.as_bytes(),
            &[("connection".into(), b"close".to_vec())],
        ),
        false,
    )
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn heads_parse_with_bytes_and_repeats() {
        let head = parse_head(b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://a/\xff\r\nX-A: 1\r\nx-a:  2 \r\ncontent-length: 0").unwrap();
        assert_eq!(head.status().unwrap(), ("HTTP/1.1".to_owned(), 301));
        let r = Response::new(301, "HTTP/1.1".into(), head.headers, Vec::new(), false);
        assert_eq!(
            r.headers,
            vec![
                ("location".to_owned(), b"https://a/\xff".to_vec()),
                ("x-a".to_owned(), b"1".to_vec()),
                ("x-a".to_owned(), b"2".to_vec()),
                ("content-length".to_owned(), b"0".to_vec()),
            ]
        );
        assert!(parse_head(b"SSH-2.0 hello").unwrap().status().is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK").unwrap().status().is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon").is_err());
        let req = parse_head(b"POST /a?b HTTP/1.1\nHost: x").unwrap();
        assert_eq!(
            req.request_line().unwrap(),
            ("POST".to_owned(), b"/a?b".to_vec())
        );
        assert!(parse_head(b"POST /a").unwrap().request_line().is_err());
    }

    #[test]
    fn responses_are_written_with_their_length() {
        let h = vec![
            ("Content-Length".to_owned(), b"99".to_vec()),
            ("X".to_owned(), b"\xe9".to_vec()),
        ];
        assert_eq!(
            response(200, &h, b"hi", false, true),
            b"HTTP/1.1 200 OK\r\nX: \xe9\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi"
        );
        assert_eq!(
            response(200, &h, b"hi", true, false),
            b"HTTP/1.1 200 OK\r\nX: \xe9\r\ncontent-length: 2\r\n\r\n"
        );
        assert_eq!(
            response(204, &[], b"hi", false, false),
            b"HTTP/1.1 204 No Content\r\n\r\n"
        );
    }

    #[test]
    fn exchanges_over_plain_tcp_with_lengths_chunks_and_eof() {
        let listener = TcpListener::bind(net::any_port()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, peer) = listener.accept().ok()?;
            let mut r = Reader::new(s);
            let answers: [&[u8]; 3] = [
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\n\r\nto the end",
            ];
            let mut seen = Vec::new();
            for a in answers {
                let head = r.read_head().ok()??;
                let body = r.read_body(Framing::of_request(&head).ok()?).ok()?;
                seen.push((head.request_line().ok()?, body));
                r.get_mut().write_all(a).ok()?;
            }
            Some((peer, seen))
        });
        let mut c = Conn::connect(SocketAddr::from((net::client(0, 0, 3), 0)), addr, None).unwrap();
        let r1 = c
            .exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false)
            .unwrap();
        let post = request(
            "POST",
            "/p",
            b"x",
            &[("content-length".into(), b"3".to_vec())],
        );
        let r2 = c
            .exchange(&[post, b"abc".to_vec()].concat(), false)
            .unwrap();
        let r3 = c
            .exchange(b"GET /e HTTP/1.1\r\nHost: x\r\n\r\n", false)
            .unwrap();
        assert_eq!((r1.body.as_slice(), r1.close), (b"hello".as_slice(), false));
        assert_eq!(r2.body, b"abcde");
        assert_eq!(
            (r3.body.as_slice(), r3.close),
            (b"to the end".as_slice(), true)
        );
        let (peer, seen) = server.join().ok().flatten().unwrap();
        assert_eq!(peer, c.local);
        assert_eq!(
            seen[1],
            (("POST".to_owned(), b"/p".to_vec()), b"abc".to_vec())
        );
        assert_eq!(c.local.ip(), std::net::IpAddr::from([127, 0, 0, 3]));
    }
}
