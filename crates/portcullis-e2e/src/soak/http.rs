//! A small HTTP/1.1 keep-alive client for the soak load generator: raw
//! bytes over a `TcpStream` bound to a chosen loopback source address before
//! it connects (socket2), optionally inside TLS (rustls, the test
//! certificate pinned byte for byte).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use socket2::{Domain, Socket, Type};

/// How long one read or write may block before the exchange counts as
/// failed (a hang guard, not a performance threshold).
const IO_DEADLINE: Duration = Duration::from_secs(60);

/// Accepts exactly one certificate: the test certificate Envoy serves.
#[derive(Debug)]
struct Pinned {
    cert: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the pinned test certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client configuration (HTTP/1.1 by ALPN) that trusts exactly the
/// certificate in `cert_pem`.
pub fn tls_config(cert_pem: &Path) -> Result<Arc<ClientConfig>, String> {
    let cert = CertificateDer::from_pem_file(cert_pem)
        .map_err(|e| format!("{}: {e}", cert_pem.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            cert: cert.as_ref().to_vec(),
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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

/// One keep-alive connection.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// The client side of the connection (the peer Envoy sees).
    pub local: SocketAddr,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("local", &self.local).finish()
    }
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, values with surrounding blanks trimmed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
    /// The server will close the connection after this response.
    pub close: bool,
}

impl Response {
    /// Every value of header `name` (lowercase), in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
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

/// Header names (lowercase) and values.
pub type HeaderList = Vec<(String, Vec<u8>)>;

/// Parses a response head (status line and headers, without the final
/// empty line).
pub fn parse_head(head: &[u8]) -> io::Result<(u16, HeaderList)> {
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or_else(|| bad("empty response"))?;
    if !status_line.starts_with(b"HTTP/1.") {
        return Err(bad(format!(
            "not an HTTP/1 status line: {:?}",
            String::from_utf8_lossy(status_line)
        )));
    }
    let status = status_line
        .split(|b| *b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no status code"))?;
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
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        headers.push((name, trim(value.get(1..).unwrap_or_default()).to_vec()));
    }
    Ok((status, headers))
}

impl Conn {
    /// Connects from `source` (port chosen by the OS) to `to`, in TLS when
    /// `tls` is given (SNI `localhost`).
    pub fn connect(
        source: SocketAddr,
        to: SocketAddr,
        tls: Option<&Arc<ClientConfig>>,
    ) -> io::Result<Conn> {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
        socket.bind(&source.into())?;
        socket.connect_timeout(&to.into(), IO_DEADLINE)?;
        let tcp: TcpStream = socket.into();
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(IO_DEADLINE))?;
        tcp.set_write_timeout(Some(IO_DEADLINE))?;
        let local = tcp.local_addr()?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = ServerName::try_from("localhost").map_err(|e| bad(e.to_string()))?;
                let conn = ClientConnection::new(Arc::clone(config), name)
                    .map_err(|e| bad(e.to_string()))?;
                let mut s = StreamOwned::new(conn, tcp);
                // Complete the handshake now, so a TLS failure shows here.
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock)?;
                }
                Stream::Tls(Box::new(s))
            }
        };
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            local,
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }

    /// Takes `n` bytes from the front of the buffer, reading as needed.
    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
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
            self.fill()?;
        }
    }

    /// Sends one request (complete bytes) and reads its response. A response
    /// without a body length is read to the end of the connection.
    pub fn exchange(&mut self, request: &[u8], head_request: bool) -> io::Result<Response> {
        self.stream.write_all(request)?;
        self.stream.flush()?;
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.buf.len() > 1 << 20 {
                return Err(bad("response head over 1 MiB"));
            }
            self.fill()?;
        };
        let head = self.take(end + 4)?;
        let (status, headers) = parse_head(head.get(..end).unwrap_or_default())?;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
        let chunked = header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with(b"chunked"));
        let no_body = head_request || status == 204 || status == 304 || status < 200;
        let has_length = header("content-length").is_some();
        let body = if no_body {
            Vec::new()
        } else if chunked {
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
                    break;
                }
                body.extend(self.take(size)?);
                if !self.take(2)?.eq(b"\r\n") {
                    return Err(bad("chunk not followed by CRLF"));
                }
            }
            body
        } else if let Some(cl) = header("content-length") {
            let n: usize = String::from_utf8_lossy(&cl)
                .trim()
                .parse()
                .map_err(|_| bad("bad content-length"))?;
            self.take(n)?
        } else {
            // Delimited by the end of the connection.
            loop {
                match self.fill() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            std::mem::take(&mut self.buf)
        };
        Ok(Response {
            status,
            headers,
            body,
            close: close || (!no_body && !chunked && !has_length),
        })
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_with_bytes_and_repeats() {
        let head = b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://a/\xff\r\nX-A: 1\r\nx-a:  2 \r\ncontent-length: 0";
        let (status, headers) = parse_head(head).unwrap_or((0, Vec::new()));
        assert_eq!(status, 301);
        assert_eq!(
            headers,
            vec![
                ("location".to_owned(), b"https://a/\xff".to_vec()),
                ("x-a".to_owned(), b"1".to_vec()),
                ("x-a".to_owned(), b"2".to_vec()),
                ("content-length".to_owned(), b"0".to_vec()),
            ]
        );
        assert!(parse_head(b"SSH-2.0 hello").is_err());
        assert!(parse_head(b"HTTP/1.1 abc OK").is_err());
    }

    #[test]
    fn exchanges_over_plain_tcp_with_lengths_and_chunks() {
        use std::net::TcpListener;
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let addr = listener
            .local_addr()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let server = std::thread::spawn(move || {
            let Ok((mut s, peer)) = listener.accept() else {
                return None;
            };
            let mut buf = [0u8; 4096];
            let mut answers: Vec<&[u8]> = vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            ];
            answers.reverse();
            while let Some(a) = answers.pop() {
                let _ = s.read(&mut buf);
                let _ = s.write_all(a);
            }
            Some(peer)
        });
        let mut c = match Conn::connect(SocketAddr::from(([127, 0, 0, 3], 0)), addr, None) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let r1 = c.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
        let r2 = c.exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
        assert_eq!(r1.map(|r| r.body).ok(), Some(b"hello".to_vec()));
        assert_eq!(r2.map(|r| r.body).ok(), Some(b"abcde".to_vec()));
        let peer = server.join().ok().flatten();
        assert_eq!(peer, Some(c.local));
        assert_eq!(c.local.ip(), std::net::IpAddr::from([127, 0, 0, 3]));
    }
}
