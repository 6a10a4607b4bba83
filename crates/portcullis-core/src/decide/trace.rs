//! The trace of a decision as one line, and reading it back; and its JSON
//! form for access logs.

use alloc::string::String;
use core::net::IpAddr;

use crate::policy::Policy;

use super::{Decision, Step, Verdict};

impl Policy {
    /// The trace of a decision as one line: `verdict status step source
    /// client scope rule`, e.g. `deny 403 network peer 10.0.0.9 - default`
    /// (`-`: no scope applied). The rule name comes last since it may
    /// contain spaces. [`Trace::parse`] reads it.
    /// In report mode a request that would have been stopped is traced with
    /// `would_deny` / `would_redirect` and the status and step it would
    /// have had: `would_deny 403 network peer 10.0.0.9 - default`.
    ///
    /// A client taken from an entry names its index in the walk after the
    /// source (`x-forwarded-for[1]`: the second entry from the right); an
    /// unknown client says why after the word (`unknown:no-entry`,
    /// `unknown:malformed:"65.52.10.20:99999"`; see [`crate::decide::Unknown`]),
    /// never with a space.
    pub fn trace(&self, d: &Decision) -> String {
        let mut s = String::new();
        self.trace_into(d, &mut s);
        s
    }

    /// [`Policy::trace`] into a caller's buffer (cleared first), without
    /// `core::fmt` on the common IPv4 path: hosts write one per request.
    pub fn trace_into(&self, d: &Decision, s: &mut String) {
        s.clear();
        let (status, step) = match &d.would {
            Some(w) => {
                s.push_str(WOULD_PREFIX);
                s.push_str(w.verdict.as_str());
                (w.status, w.reason.step())
            }
            None => {
                s.push_str(d.verdict.as_str());
                (d.status, d.reason.step())
            }
        };
        s.push(' ');
        push_u32(s, u32::from(status));
        s.push(' ');
        s.push_str(step.as_str());
        s.push(' ');
        s.push_str(d.client.source.as_str());
        if let Some(i) = d.client.entry {
            s.push('[');
            push_u32(s, i);
            s.push(']');
        }
        s.push(' ');
        match d.client.ip {
            Some(IpAddr::V4(a)) => {
                for (i, o) in a.octets().into_iter().enumerate() {
                    if i > 0 {
                        s.push('.');
                    }
                    push_u32(s, u32::from(o));
                }
            }
            Some(ip @ IpAddr::V6(_)) => {
                use core::fmt::Write;
                // Writing to a String cannot fail.
                let _ = write!(s, "{ip}");
            }
            None => {
                use core::fmt::Write;
                s.push_str("unknown");
                if let Some(why) = &d.client.why {
                    // Writing to a String cannot fail.
                    let _ = write!(s, ":{why}");
                }
            }
        }
        s.push(' ');
        s.push_str(self.scope_name(d.scope).unwrap_or(NO_SCOPE));
        s.push(' ');
        s.push_str(self.scoped(d.scope).rule_name(d.rule));
    }

    /// The host property a filter sets to the text trace:
    /// `portcullis.<name>.trace` (Envoy keeps it as filter state
    /// `wasm.portcullis.<name>.trace`), so that two policies on one listener
    /// keep their own.
    pub fn trace_property(&self) -> String {
        alloc::format!("portcullis.{}.trace", self.name)
    }

    /// The host property for the JSON trace: `portcullis.<name>.trace_json`.
    pub fn json_trace_property(&self) -> String {
        alloc::format!("portcullis.{}.trace_json", self.name)
    }

    /// The JSON form of the trace, one object on one line, for access logs
    /// (hosts publish it when the policy says `trace_json: true`):
    /// `{"policy":"p","mode":"report","verdict":"forward","would_verdict":"deny",
    /// "status":403,"step":"network","scope":null,"rule":"default",
    /// "client":"10.0.0.9","source":"peer"}` (`scope`: the scope's name, or
    /// `null`; `mode` is the mode that applied, the scope's own).
    /// `would_verdict` is what enforce mode does (the
    /// verdict itself in enforce mode); `status` and `step` are those of
    /// `would_verdict`, as in the text trace. No header value, no secret.
    pub fn json_trace(&self, d: &Decision) -> String {
        let mut s = String::new();
        self.json_trace_into(d, &mut s);
        s
    }

    /// [`Policy::json_trace`] into a caller's buffer (cleared first).
    pub fn json_trace_into(&self, d: &Decision, s: &mut String) {
        use core::fmt::Write;
        let (would, status, step) = match &d.would {
            Some(w) => (w.verdict, w.status, w.reason.step()),
            None => (d.verdict, d.status, d.reason.step()),
        };
        s.clear();
        s.push_str("{\"policy\":");
        json_str(s, &self.name);
        s.push_str(",\"mode\":\"");
        s.push_str(self.scoped(d.scope).mode.as_str());
        s.push_str("\",\"verdict\":\"");
        s.push_str(d.verdict.as_str());
        s.push_str("\",\"would_verdict\":\"");
        s.push_str(would.as_str());
        s.push_str("\",\"status\":");
        push_u32(s, u32::from(status));
        s.push_str(",\"step\":\"");
        s.push_str(step.as_str());
        s.push_str("\",\"scope\":");
        match self.scope_name(d.scope) {
            Some(n) => json_str(s, n),
            None => s.push_str("null"),
        }
        s.push_str(",\"rule\":");
        json_str(s, self.scoped(d.scope).rule_name(d.rule));
        s.push_str(",\"client\":");
        match d.client.ip {
            // Writing to a String cannot fail.
            Some(ip) => {
                let _ = write!(s, "\"{ip}\"");
            }
            None => s.push_str("null"),
        }
        s.push_str(",\"source\":\"");
        s.push_str(d.client.source.as_str());
        s.push_str("\"}");
    }
}

/// How a report-mode trace line marks a would-be verdict: `would_deny`.
pub const WOULD_PREFIX: &str = "would_";

/// Appends a JSON string literal.
fn json_str(s: &mut String, v: &str) {
    use core::fmt::Write;
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// The trace's word for "no scope applied" (never a scope's name).
pub const NO_SCOPE: &str = "-";

/// Appends a number in decimal.
fn push_u32(s: &mut String, mut n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    loop {
        i = i.saturating_sub(1);
        if let Some(b) = buf.get_mut(i) {
            // n % 10 < 10, so the digit is ASCII.
            *b = char::from_digit(n % 10, 10).map_or(b'0', |c| c as u8);
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for &b in buf.get(i..).unwrap_or(&[]) {
        s.push(char::from(b));
    }
}

/// A decision as read back from a trace line (see [`Policy::trace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Verdict (`forward` for a report-mode `would_*` line).
    pub verdict: Verdict,
    /// Report mode: the verdict of a `would_deny` / `would_redirect` line.
    pub would: Option<Verdict>,
    /// Local reply status (the would-be one on a `would_*` line), 0 when
    /// forwarded.
    pub status: u16,
    /// Step.
    pub step: Step,
    /// Where the client came from: `peer`, `x-forwarded-for`, `forwarded`
    /// or `header`.
    pub source: String,
    /// The index in the walk of the entry taken (or of the one that left
    /// the client unknown), if any.
    pub entry: Option<u32>,
    /// Client address or `unknown`.
    pub client_ip: String,
    /// Why the client is unknown (`malformed:"..."`), or empty.
    pub why: String,
    /// Scope name, or [`NO_SCOPE`].
    pub scope: String,
    /// Rule name or `default`.
    pub rule: String,
}

impl Trace {
    /// Parses a trace line.
    pub fn parse(s: &str) -> Option<Trace> {
        let mut it = s.splitn(7, ' ');
        let word = it.next()?;
        let (verdict, would) = match word.strip_prefix(WOULD_PREFIX) {
            Some(w) => match Verdict::from_word(w)? {
                Verdict::Forward => return None,
                v => (Verdict::Forward, Some(v)),
            },
            None => (Verdict::from_word(word)?, None),
        };
        let status = it.next()?.parse().ok()?;
        let step = Step::from_word(it.next()?)?;
        let src = it.next()?;
        let (source, entry) = match src.split_once('[') {
            Some((src, i)) => (src, Some(i.strip_suffix(']')?.parse().ok()?)),
            None => (src, None),
        };
        let client = it.next()?;
        let (client_ip, why) = match client.strip_prefix("unknown:") {
            Some(why) => ("unknown", why),
            None => (client, ""),
        };
        Some(Trace {
            verdict,
            would,
            status,
            step,
            source: String::from(source),
            entry,
            client_ip: String::from(client_ip),
            why: String::from(why),
            scope: String::from(it.next()?),
            rule: String::from(it.next()?),
        })
    }

    /// What enforce mode does: on a report-mode `would_*` line, the would-be
    /// verdict and status; otherwise this line's verdict and `seen`, the
    /// status the client saw (a forwarded request's comes from upstream).
    ///
    /// ```
    /// use portcullis_core::{Trace, Verdict};
    /// let t = Trace::parse("would_deny 403 network peer 127.0.0.8 - deny-batch").unwrap();
    /// assert_eq!(t.enforced(200), (Verdict::Deny, 403));
    /// let t = Trace::parse("forward 0 forward peer 10.0.0.9 - lan").unwrap();
    /// assert_eq!(t.enforced(200), (Verdict::Forward, 200));
    /// ```
    pub fn enforced(&self, seen: u16) -> (Verdict, u16) {
        match self.would {
            Some(v) => (v, self.status),
            None => (self.verdict, seen),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Policy, Request, Transport, Verdict};

    const CANDIDATE: &str = r#"{"name":"cand.v2","mode":"report","trace_json":true,
        "network":{"default_access":"allow","rules":[{"name":"say \"hi\"\\now","priority":100,"access":"deny",
        "source":["10.0.0.0/8"]}]},
        "require_headers":[{"name":"x-key","values":["SECRET-K"],"status":401}]}"#;

    fn decide(p: &Policy, peer: &str, headers: &[(&str, &str)]) -> crate::Decision {
        let headers: alloc::vec::Vec<(&str, &str)> = headers.to_vec();
        p.decide(&Request {
            peer: peer.parse().unwrap(),
            local: "127.0.0.1:443".parse().unwrap(),
            tls: true,
            transport: Transport::Tcp,
            method: b"GET",
            authority: b"a",
            path: b"/",
            headers: &headers,
        })
    }

    #[test]
    fn report_mode_traces_the_would_be_verdict() {
        let p = Policy::parse(CANDIDATE.as_bytes()).unwrap();
        let d = decide(&p, "10.1.2.3:5", &[]);
        assert_eq!((d.verdict, d.status), (Verdict::Forward, 0));
        assert_eq!(p.local_reply(&d), None);
        let line = p.trace(&d);
        assert_eq!(
            line,
            "would_deny 403 network peer 10.1.2.3 - say \"hi\"\\now"
        );
        let t = super::Trace::parse(&line).unwrap();
        assert_eq!(
            (t.verdict, t.would, t.status),
            (Verdict::Forward, Some(Verdict::Deny), 403)
        );
        assert_eq!(t.rule, "say \"hi\"\\now");
        assert_eq!(
            p.json_trace(&d),
            r#"{"policy":"cand.v2","mode":"report","verdict":"forward","would_verdict":"deny","status":403,"step":"network","scope":null,"rule":"say \"hi\"\\now","client":"10.1.2.3","source":"peer"}"#
        );
        assert_eq!(p.trace_property(), "portcullis.cand.v2.trace");
        assert_eq!(p.json_trace_property(), "portcullis.cand.v2.trace_json");
        // A wrong key: the would-be deny at require_headers; the value is
        // never in either trace.
        let d = decide(&p, "[2001:db8::1]:5", &[("x-key", "SECRET-X")]);
        let (line, json) = (p.trace(&d), p.json_trace(&d));
        assert_eq!(
            line,
            "would_deny 401 require_headers peer 2001:db8::1 - default"
        );
        assert!(json.contains(r#""would_verdict":"deny","status":401,"step":"require_headers","scope":null,"rule":"default","client":"2001:db8::1""#), "{json}");
        assert!(!line.contains("SECRET") && !json.contains("SECRET"));
        // Nothing would have stopped it: a plain forward line.
        let d = decide(&p, "8.8.8.8:5", &[("x-key", "SECRET-K")]);
        assert_eq!(p.trace(&d), "forward 0 forward peer 8.8.8.8 - default");
        assert!(p
            .json_trace(&d)
            .contains(r#""verdict":"forward","would_verdict":"forward","status":0"#));
        assert_eq!(
            super::Trace::parse("would_forward 0 forward peer 1.2.3.4 - x"),
            None
        );
    }

    #[test]
    fn enforce_mode_json_trace() {
        let p = Policy::parse(br#"{"name":"cur","client_ip":{"from":"x-forwarded-for","trusted_proxies":["127.0.0.1"]}}"#).unwrap();
        let d = decide(&p, "127.0.0.1:5", &[]);
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(
            p.json_trace(&d),
            r#"{"policy":"cur","mode":"enforce","verdict":"deny","would_verdict":"deny","status":403,"step":"client_ip","scope":null,"rule":"default","client":null,"source":"x-forwarded-for"}"#
        );
    }
}
