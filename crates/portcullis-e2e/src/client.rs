//! The client: `curl` as a subprocess.
//!
//! `--interface 127.x.y.z` picks the client address (every 127/8 address is a
//! distinct peer on loopback), header values are passed as raw bytes (they
//! need not be UTF-8), `-k` accepts the self-signed test certificate, and
//! `--noproxy '*'` keeps proxies out of loopback traffic. curl's head dump
//! is read by [`crate::http1::parse_head`], and the response is an
//! [`http1::Response`] like every other client's in the harness.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Command;

use crate::http1;

/// The HTTP version a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// curl's choice: HTTP/1.1 in plain, HTTP/2 over TLS when ALPN agrees.
    Auto,
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (h2c with prior knowledge in plain).
    Http2,
}

/// One request.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// Client (source) address, on loopback.
    pub from: IpAddr,
    /// Client port, when it matters (else the OS picks one).
    pub from_port: Option<u16>,
    /// Listener to connect to.
    pub to: SocketAddr,
    /// TLS or plain.
    pub tls: bool,
    /// HTTP version to use.
    pub version: Version,
    /// Method.
    pub method: String,
    /// Host header / `:authority`.
    pub authority: String,
    /// Path and query, sent as is.
    pub path: String,
    /// Other headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ClientRequest {
    /// A GET of `/` from `from` to `to`.
    pub fn get(
        from: impl Into<IpAddr>,
        to: SocketAddr,
        tls: bool,
        authority: &str,
    ) -> ClientRequest {
        ClientRequest {
            from: from.into(),
            from_port: None,
            to,
            tls,
            version: Version::Auto,
            method: "GET".into(),
            authority: authority.into(),
            path: "/".into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &[u8]) -> ClientRequest {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }
}

/// What the client saw (status, `HTTP/1.1` or `HTTP/2`, headers with names
/// lowercased, body).
pub type ClientResponse = http1::Response;

fn header_arg(name: &str, value: &[u8]) -> OsString {
    let mut b = name.as_bytes().to_vec();
    if value.is_empty() {
        // `Name;` is curl's way to send a header with an empty value.
        b.push(b';');
    } else {
        b.extend_from_slice(b": ");
        b.extend_from_slice(value);
    }
    OsString::from_vec(b)
}

/// Parses the head dump of `curl -D`: the last response block wins
/// (skipping `100 Continue` and the like).
fn parse_dump(dump: &[u8]) -> Option<http1::Head> {
    let mut starts: Vec<usize> = Vec::new();
    let mut at = 0;
    for line in dump.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"HTTP/") {
            starts.push(at);
        }
        at += line.len();
    }
    let last = dump.get(*starts.last()?..)?;
    http1::parse_head(last).ok()
}

/// Sends a request with curl; scratch files go to `dir`.
pub fn send(dir: &Path, req: &ClientRequest) -> Result<ClientResponse, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let head = dir.join(format!("curl-{n}.head"));
    let body = dir.join(format!("curl-{n}.body"));
    let scheme = if req.tls { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", req.to, req.path);
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--path-as-is", "--noproxy", "*", "-k"])
        .args(["--max-time", "30", "--connect-timeout", "10"])
        .arg("--interface")
        .arg(req.from.to_string());
    if let Some(p) = req.from_port {
        cmd.arg("--local-port").arg(p.to_string());
    }
    match (req.version, req.tls) {
        (Version::Auto, _) => {}
        (Version::Http1, _) => {
            cmd.arg("--http1.1");
        }
        (Version::Http2, true) => {
            cmd.arg("--http2");
        }
        (Version::Http2, false) => {
            // h2c with prior knowledge; Envoy's AUTO codec detects the preface.
            cmd.arg("--http2-prior-knowledge");
        }
    }
    if req.method == "HEAD" {
        cmd.arg("--head");
    } else if req.method != "GET" {
        cmd.arg("-X").arg(&req.method);
    }
    // No curl defaults: only the headers the case lists (plus Host).
    cmd.arg("-H").arg("User-Agent:").arg("-H").arg("Accept:");
    cmd.arg("-H")
        .arg(header_arg("Host", req.authority.as_bytes()));
    for (name, value) in &req.headers {
        cmd.arg("-H").arg(header_arg(name, value));
    }
    cmd.arg("-D").arg(&head).arg("-o").arg(&body).arg(&url);
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run curl: {e} (apt-get install curl)"))?;
    let dump = std::fs::read(&head).unwrap_or_default();
    let data = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_file(&head);
    let _ = std::fs::remove_file(&body);
    if !out.status.success() {
        return Err(format!(
            "curl {url} from {} failed ({}): {}",
            req.from,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let head = parse_dump(&dump).ok_or_else(|| format!("curl {url}: no response head"))?;
    let (version, status) = head.status().map_err(|e| format!("curl {url}: {e}"))?;
    Ok(http1::Response::new(
        status,
        version,
        head.headers,
        data,
        false,
    ))
}
