//! JSON-lines logs, each line detected on its own:
//!
//! - the Envoy replay format (`"portcullis_log": 1`, docs/replay.md);
//! - Portcullis's JSON trace (`policy` and `would_verdict`, docs/filter.md);
//! - Azure App Service logs exported as JSON lines: `AppServiceIPSecAuditLogs`
//!   and `AppServiceHTTPLogs`, fields at the top level (Log Analytics) or
//!   under `properties` (diagnostic settings).
//!
//! Blank lines are skipped. A line that is not a JSON object, or one of no
//! known format, is malformed; an address that does not parse leaves the
//! record unjudged ([`Unjudged::MalformedAddress`]).

use std::io::{BufRead, Read};
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;

use portcullis_core::Transport;
use serde_json::{Map, Value};

use super::{Item, ReadError, MAX_LINE};
use crate::time::parse_rfc3339;
use crate::{HttpSeen, Observed, Record, Unjudged};

/// Reads JSON lines.
pub fn read(
    r: &mut dyn BufRead,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    scan(r, &mut |line, bytes| one(bytes, line, f))
}

/// Scans JSON lines, handing every line that is not blank (not yet parsed,
/// see [`one`]) to `f` with its number.
pub fn scan(
    r: &mut dyn BufRead,
    f: &mut dyn FnMut(u64, &[u8]) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        line += 1;
        buf.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        let n = (&mut *r)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ReadError {
                line,
                message: e.to_string(),
            })?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_LINE {
            return Err(ReadError {
                line,
                message: "line longer than 1 MiB".into(),
            });
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let ControlFlow::Break(()) = f(line, &buf) {
            return Ok(());
        }
    }
}

/// Reads one line and hands its record to `f`.
pub fn one(
    bytes: &[u8],
    line: u64,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let v: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            // serde_json's message names the column; never the content.
            let msg = format!("not JSON ({})", e.classify_word());
            return f(line, Item::Malformed(column(msg, e.column())));
        }
    };
    let Some(o) = v.as_object() else {
        return f(line, Item::Malformed("not a JSON object".into()));
    };
    if o.contains_key("portcullis_log") {
        return envoy(o, line, f);
    }
    if o.contains_key("would_verdict") && o.contains_key("policy") {
        return trace(o, line, f);
    }
    let props = o.get("properties").and_then(Value::as_object);
    let field = |k: &str| o.get(k).or_else(|| props.and_then(|p| p.get(k)));
    if field("CIp").is_some() {
        return app_service(&field, line, f);
    }
    f(
        line,
        Item::Malformed(
            "no known record format (Envoy replay format, Portcullis trace, App Service log)"
                .into(),
        ),
    )
}

fn column(msg: String, c: usize) -> String {
    format!("{msg} at column {c}")
}

trait Classify {
    fn classify_word(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_word(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// A string field; `null`, `""` and `-` (Envoy's "no value") are absent.
fn text(v: Option<&Value>) -> Option<&str> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s != "-" => Some(s),
        _ => None,
    }
}

/// An address with or without a port (`1.2.3.4`, `1.2.3.4:5`, `[::1]:5`,
/// `::1`).
fn address(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    s.parse::<IpAddr>().ok().map(|ip| (ip, None))
}

fn time_of(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::String(s)) => parse_rfc3339(s),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// The Envoy replay format, version 1.
fn envoy(
    o: &Map<String, Value>,
    line: u64,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if o.get("portcullis_log").and_then(Value::as_u64) != Some(1) {
        return f(line, Item::Malformed("portcullis_log is not 1".into()));
    }
    let Some(remote) = text(o.get("downstream_remote_address")) else {
        return f(
            line,
            Item::Malformed("downstream_remote_address is missing".into()),
        );
    };
    let Some((peer, peer_port)) = address(remote) else {
        return f(line, Item::Skip(Unjudged::MalformedAddress));
    };
    let (local, local_port) = match text(o.get("downstream_local_address")) {
        Some(s) => match address(s) {
            Some((ip, port)) => (Some(ip), port),
            None => return f(line, Item::Skip(Unjudged::MalformedAddress)),
        },
        None => (None, None),
    };
    let transport = match text(o.get("protocol")) {
        Some("HTTP/3") => Transport::Udp,
        _ => Transport::Tcp,
    };
    // Present: TLS when it names a version; `-` or null: plain.
    let tls = o.get("tls").map(|v| text(Some(v)).is_some());
    // A field that is present but empty is an empty value; a field that
    // is missing is not recorded.
    let field = |k: &str| {
        o.get(k)
            .map(|v| text(Some(v)).map_or(&b""[..], str::as_bytes))
    };
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    let mut carried: Vec<&str> = Vec::new();
    if let Some(h) = o.get("headers") {
        let Some(h) = h.as_object() else {
            return f(line, Item::Malformed("headers is not an object".into()));
        };
        for (k, v) in h {
            carried.push(k.as_str());
            match v {
                Value::Array(vs) => {
                    for v in vs {
                        if let Some(s) = text(Some(v)) {
                            headers.push((k.as_str(), s.as_bytes()));
                        }
                    }
                }
                v => {
                    if let Some(s) = text(Some(v)) {
                        headers.push((k.as_str(), s.as_bytes()));
                    }
                }
            }
        }
    }
    if carried
        .iter()
        .any(|k| k.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return f(
            line,
            Item::Malformed("header names must be lowercase".into()),
        );
    }
    let recorded = text(o.get("portcullis")).and_then(recorded_of_trace);
    let rec = Record {
        time: time_of(o.get("start_time")),
        recorded,
        observed: Observed::Http(HttpSeen {
            peer,
            peer_port,
            local,
            local_port,
            tls,
            transport,
            method: field("method"),
            authority: field("authority"),
            path: field("path"),
            headers: &headers,
            carried: &carried,
        }),
    };
    f(line, Item::Record(rec))
}

/// What a text trace says happened: forwarded (also a report-mode
/// `would_...`) or not.
fn recorded_of_trace(t: &str) -> Option<bool> {
    let word = t.split(' ').next()?;
    match word {
        "forward" => Some(true),
        "deny" | "redirect" => Some(false),
        w if w.starts_with(portcullis_core::WOULD_PREFIX) => Some(true),
        _ => None,
    }
}

/// Portcullis's JSON trace: the client and the verdict.
fn trace(
    o: &Map<String, Value>,
    line: u64,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let recorded = match text(o.get("verdict")) {
        Some("forward") => true,
        Some("deny" | "redirect") => false,
        _ => {
            return f(
                line,
                Item::Malformed("trace: verdict is not forward, deny or redirect".into()),
            )
        }
    };
    let Some(client) = text(o.get("client")) else {
        return f(line, Item::Skip(Unjudged::ClientNotRecorded));
    };
    let Ok(ip) = client.parse::<IpAddr>() else {
        return f(line, Item::Skip(Unjudged::MalformedAddress));
    };
    let time = ["time", "start_time", "timestamp"]
        .iter()
        .find_map(|k| time_of(o.get(*k)));
    f(
        line,
        Item::Record(Record {
            time,
            recorded: Some(recorded),
            observed: Observed::Client(ip),
        }),
    )
}

/// The App Service headers an IPSec audit record carries.
const IPSEC_HEADERS: [(&str, &str); 4] = [
    ("XForwardedFor", "x-forwarded-for"),
    ("XForwardedHost", "x-forwarded-host"),
    ("XAzureFDID", "x-azure-fdid"),
    ("XFDHealthProbe", "x-fd-healthprobe"),
];

fn app_service<'v>(
    field: &dyn Fn(&str) -> Option<&'v Value>,
    line: u64,
    f: &mut dyn FnMut(u64, Item<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let category = ["Category", "category", "Type"]
        .iter()
        .find_map(|k| text(field(k)));
    let ipsec = match category {
        Some("AppServiceIPSecAuditLogs") => true,
        Some("AppServiceHTTPLogs") => false,
        _ => field("Result").is_some(),
    };
    let Some(cip) = text(field("CIp")) else {
        return f(line, Item::Skip(Unjudged::ClientNotRecorded));
    };
    let Some((peer, peer_port)) = address(cip) else {
        return f(line, Item::Skip(Unjudged::MalformedAddress));
    };
    let time = ["TimeGenerated", "time"]
        .iter()
        .find_map(|k| time_of(field(k)));
    let authority = text(field("CsHost")).map(str::as_bytes);
    if ipsec {
        let recorded = match text(field("Result")) {
            Some(r) if r.eq_ignore_ascii_case("allowed") => Some(true),
            Some(r) if r.eq_ignore_ascii_case("denied") => Some(false),
            _ => None,
        };
        let mut headers: Vec<(&str, &[u8])> = Vec::new();
        for (k, name) in IPSEC_HEADERS {
            if let Some(v) = text(field(k)) {
                headers.push((name, v.as_bytes()));
            }
        }
        let carried: Vec<&str> = IPSEC_HEADERS.iter().map(|(_, n)| *n).collect();
        let rec = Record {
            time,
            recorded,
            observed: Observed::Http(HttpSeen {
                peer,
                peer_port,
                local: None,
                local_port: None,
                tls: None,
                transport: Transport::Tcp,
                method: None,
                authority,
                path: None,
                headers: &headers,
                carried: &carried,
            }),
        };
        return f(line, Item::Record(rec));
    }
    let sport = match field("SPort") {
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(s)) => s.parse::<u16>().ok(),
        _ => None,
    };
    let status = match field("ScStatus") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        _ => None,
    };
    let rec = Record {
        time,
        // App Service's access restrictions answer 403.
        recorded: status.map(|s| s != 403),
        observed: Observed::Http(HttpSeen {
            peer,
            peer_port,
            local: None,
            local_port: sport,
            tls: match sport {
                Some(443) => Some(true),
                Some(80) => Some(false),
                _ => None,
            },
            transport: Transport::Tcp,
            method: text(field("CsMethod")).map(str::as_bytes),
            authority,
            path: text(field("CsUriStem")).map(str::as_bytes),
            headers: &[],
            carried: &[],
        }),
    };
    f(line, Item::Record(rec))
}
