//! Comparing what an engine saw ([`Outcome`]) with what a case expects
//! ([`Expect`]), and a rejected policy ([`Rejection`]) with what
//! `expect_policy_error` asks for. Every engine's results go through these
//! two comparisons, so a case means the same thing everywhere.

use std::fmt;

use portcullis_core::{Headers, Problems, Step, Verdict};

use crate::file::{Expect, HeaderExpect, HeaderList};

/// What an engine saw when it ran a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Verdict.
    pub verdict: Verdict,
    /// Status the client saw.
    pub status: u16,
    /// Deciding rule or `default`.
    pub rule: String,
    /// Resolved client or `unknown`.
    pub client_ip: String,
    /// Step that decided (in report mode, the step that would have
    /// stopped the request, as the trace says).
    pub step: Step,
    /// The verdict enforce mode gives.
    pub would_verdict: Verdict,
    /// The status enforce mode gives the client.
    pub would_status: u16,
    /// The whole trace line, for failure reports.
    pub trace: String,
    /// `Location` the client saw.
    pub location: Option<String>,
    /// Headers the upstream saw, if forwarded.
    pub upstream_headers: Option<HeaderList>,
    /// Headers the client saw.
    pub response_headers: HeaderList,
    /// Body of a local reply.
    pub body: Vec<u8>,
}

/// One expectation not met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field, e.g. `status` or `response_headers.server`.
    pub field: String,
    /// Expected, as text.
    pub expected: String,
    /// Seen, as text.
    pub seen: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, seen {}",
            self.field, self.expected, self.seen
        )
    }
}

/// Shows bytes as a JSON-ish string, escaping what is not printable UTF-8.
///
/// ```
/// assert_eq!(portcullis_harness::show_bytes(b"a\"\xff"), r#""a\"\xff""#);
/// ```
pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => s.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => s.push(c),
            }
        }
        for x in chunk.invalid() {
            s.push_str(&format!("\\x{x:02x}"));
        }
    }
    s.push('"');
    s
}

fn values_of(list: &HeaderList, name: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    list.each_value(name, &mut |v| out.push(v.to_vec()));
    out
}

fn show_values(v: &[Vec<u8>]) -> String {
    match v {
        [] => String::from("absent"),
        [one] => show_bytes(one),
        many => {
            let parts: Vec<String> = many.iter().map(|x| show_bytes(x)).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

fn check_headers(
    what: &str,
    expect: &[(String, HeaderExpect)],
    seen: Option<&HeaderList>,
    out: &mut Vec<Mismatch>,
) {
    for (name, e) in expect {
        let lname = name.to_ascii_lowercase();
        let got = seen.map(|l| values_of(l, &lname)).unwrap_or_default();
        let (ok, expected) = match e {
            HeaderExpect::Absent => (got.is_empty(), String::from("absent")),
            HeaderExpect::One(v) => (
                got.len() == 1 && got.first().map(Vec::as_slice) == Some(v.as_bytes()),
                show_bytes(v.as_bytes()),
            ),
            HeaderExpect::Many(vs) => {
                let want: Vec<Vec<u8>> = vs.iter().map(|v| v.as_bytes().to_vec()).collect();
                (got == want, show_values(&want))
            }
        };
        if !ok {
            let seen = match seen {
                None => String::from("(request not forwarded)"),
                Some(_) => show_values(&got),
            };
            out.push(Mismatch {
                field: format!("{what}.{lname}"),
                expected,
                seen,
            });
        }
    }
}

/// Compares an outcome with a case's expectations.
pub fn check(expect: &Expect, o: &Outcome) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut field = |name: &str, want: Option<&str>, seen: &str| {
        if let Some(w) = want {
            if w != seen {
                out.push(Mismatch {
                    field: name.to_owned(),
                    expected: w.to_owned(),
                    seen: seen.to_owned(),
                });
            }
        }
    };
    field(
        "verdict",
        expect.verdict.map(Verdict::as_str),
        o.verdict.as_str(),
    );
    field(
        "status",
        expect.status.map(|s| s.to_string()).as_deref(),
        &o.status.to_string(),
    );
    field("rule", expect.rule.as_deref(), &o.rule);
    field("client_ip", expect.client_ip.as_deref(), &o.client_ip);
    field("step", expect.step.map(Step::as_str), o.step.as_str());
    if expect.client_from.is_some() || expect.client_why.is_some() || expect.scope.is_some() {
        let t = portcullis_core::Trace::parse(&o.trace);
        let scope = t
            .as_ref()
            .map_or_else(|| String::from("(unreadable trace)"), |t| t.scope.clone());
        field("scope", expect.scope.as_deref(), &scope);
        let from = t.as_ref().map_or_else(
            || String::from("(unreadable trace)"),
            |t| match t.entry {
                Some(i) => format!("{}[{i}]", t.source),
                None => t.source.clone(),
            },
        );
        let why = t.map_or_else(|| String::from("(unreadable trace)"), |t| t.why);
        field("client_from", expect.client_from.as_deref(), &from);
        field("client_why", expect.client_why.as_deref(), &why);
    }
    field(
        "would_verdict",
        expect.would_verdict.map(Verdict::as_str),
        o.would_verdict.as_str(),
    );
    field(
        "would_status",
        expect.would_status.map(|s| s.to_string()).as_deref(),
        &o.would_status.to_string(),
    );
    field(
        "location",
        expect.location.as_deref(),
        o.location.as_deref().unwrap_or("(none)"),
    );
    if let Some(b) = &expect.body_contains {
        let body = String::from_utf8_lossy(&o.body);
        if !body.contains(b.as_str()) {
            out.push(Mismatch {
                field: String::from("body_contains"),
                expected: show_bytes(b.as_bytes()),
                seen: show_bytes(&o.body),
            });
        }
    }
    check_headers(
        "upstream_headers",
        &expect.upstream_headers,
        o.upstream_headers.as_ref(),
        &mut out,
    );
    check_headers(
        "response_headers",
        &expect.response_headers,
        Some(&o.response_headers),
        &mut out,
    );
    out
}

/// An engine's refusal of a policy: what it said, and which JSON paths that
/// names. [`crate::run_file`] holds it to a file's `expect_policy_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The JSON paths the engine's errors name (`""` for the document).
    pub paths: Vec<String>,
    /// What the engine said, for reports (one problem per line).
    pub text: String,
    /// The problems themselves, when the engine is the core.
    pub problems: Option<Problems>,
}

impl Rejection {
    /// The core's own problems.
    pub fn from_problems(p: &Problems) -> Rejection {
        Rejection {
            paths: p.0.iter().map(|p| p.path.clone()).collect(),
            text: p.to_string(),
            problems: Some(p.clone()),
        }
    }

    /// Log lines that carry the core's problems as they print
    /// (`LINE:COL: PATH: message`, `(document)` for the root) right after
    /// `marker`, such as the filter's `... policy "x" rejected: ` (`""`:
    /// the problem starts the line). Other lines are kept for the report only.
    pub fn from_log<S: AsRef<str>>(lines: &[S], marker: &str) -> Rejection {
        let mut paths = Vec::new();
        let mut text = Vec::new();
        for l in lines.iter().map(AsRef::as_ref) {
            text.push(l.to_owned());
            let problem = match l.find(marker) {
                Some(i) => l.get(i + marker.len()..),
                None => None,
            };
            if let Some(p) = problem.and_then(problem_path) {
                paths.push(p);
            }
        }
        Rejection {
            paths,
            text: text.join("\n"),
            problems: None,
        }
    }

    /// The expected paths this rejection does not name. A problem names a
    /// path when it is at that path or inside it (`request_headers[0]` is
    /// named by a problem at `request_headers[0].value_from.env`).
    pub fn missing<'a>(&self, expected: &'a [String]) -> Vec<&'a str> {
        expected
            .iter()
            .filter(|want| !self.paths.iter().any(|p| names(p, want)))
            .map(String::as_str)
            .collect()
    }
}

/// Whether a problem at `path` names `want`: the same path, or one inside
/// it (the rest starts a child: `.key` or `[index]`). The document (`""`)
/// is named only by a problem at the document.
fn names(path: &str, want: &str) -> bool {
    match path.strip_prefix(want) {
        Some("") => true,
        Some(rest) => !want.is_empty() && (rest.starts_with('.') || rest.starts_with('[')),
        None => false,
    }
}

/// The path of a printed problem `L:C: PATH: message`.
fn problem_path(problem: &str) -> Option<String> {
    let (line, rest) = problem.split_once(':')?;
    let (col, rest) = rest.split_once(": ")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(line) || !digits(col) {
        return None;
    }
    let path = rest.split_once(": ").map_or(rest, |(p, _)| p);
    Some(if path == "(document)" {
        String::new()
    } else {
        path.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_paths_are_read_back_from_log_lines() {
        let lines = [
            "[07:10:43.1][wasm] portcullis: policy rejected: 3:5: network.rules[0].priority: out of range",
            "portcullis: policy \"x\" rejected: 1:1: (document): missing required field \"name\"",
            "an unrelated line: 1:2: nope",
            "rejected: the plugin configuration could not be read",
        ];
        let r = Rejection::from_log(&lines, "rejected: ");
        assert_eq!(r.paths, ["network.rules[0].priority", ""]);
        assert_eq!(r.text.lines().count(), 4);
        let own = Rejection::from_log(&["12:40: hsts.max_age: expected a number"], "");
        assert_eq!(own.paths, ["hsts.max_age"]);
        assert_eq!(own.missing(&["hsts.max_age".into(), "tls".into()]), ["tls"]);
    }
}
