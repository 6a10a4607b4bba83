//! The trace of a decision as one line, and reading it back.

use alloc::string::String;
use core::net::IpAddr;

use crate::policy::Policy;

use super::{Decision, Step, Verdict};

impl Policy {
    /// The trace of a decision as one line: `verdict status step source
    /// client scope rule`, e.g. `deny 403 network peer 10.0.0.9 - default`
    /// (`-`: no scope applied). The rule name comes last since it may
    /// contain spaces. [`Trace::parse`] reads it.
    pub fn trace(&self, d: &Decision) -> String {
        let mut s = String::new();
        self.trace_into(d, &mut s);
        s
    }

    /// [`Policy::trace`] into a caller's buffer (cleared first), without
    /// `core::fmt` on the common IPv4 path: hosts write one per request.
    pub fn trace_into(&self, d: &Decision, s: &mut String) {
        s.clear();
        s.push_str(d.verdict.as_str());
        s.push(' ');
        push_u32(s, u32::from(d.status));
        s.push(' ');
        s.push_str(d.reason.step().as_str());
        s.push(' ');
        s.push_str(d.client.source.as_str());
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
            None => s.push_str("unknown"),
        }
        s.push(' ');
        s.push_str(self.scope_name(d.scope).unwrap_or(NO_SCOPE));
        s.push(' ');
        s.push_str(self.scoped(d.scope).rule_name(d.rule));
    }
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
    /// Verdict.
    pub verdict: Verdict,
    /// Local reply status, 0 when forwarded.
    pub status: u16,
    /// Step.
    pub step: Step,
    /// `peer` or `x-forwarded-for`.
    pub source: String,
    /// Client address or `unknown`.
    pub client_ip: String,
    /// Scope name, or [`NO_SCOPE`].
    pub scope: String,
    /// Rule name or `default`.
    pub rule: String,
}

impl Trace {
    /// Parses a trace line.
    pub fn parse(s: &str) -> Option<Trace> {
        let mut it = s.splitn(7, ' ');
        Some(Trace {
            verdict: Verdict::from_word(it.next()?)?,
            status: it.next()?.parse().ok()?,
            step: Step::from_word(it.next()?)?,
            source: String::from(it.next()?),
            client_ip: String::from(it.next()?),
            scope: String::from(it.next()?),
            rule: String::from(it.next()?),
        })
    }
}
