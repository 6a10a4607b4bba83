//! The policy-tests-v1 reader: JSON text to a [`TestFile`], or every
//! problem with its JSON path and line:col.
//!
//! It uses the core's position-keeping JSON reader ([`portcullis_core::json`])
//! and the core's error words ([`portcullis_core::Error`]), so a test file's
//! errors read like a policy's.
//!
//! Positions come from the core's [`LineIndex`], built once per file:
//! finding a line is a binary search and a column counts only from the last
//! position on the same line, so reading a file is linear in its size
//! however many cases it has.
//!
//! ## Adding a field
//!
//! Each object is read by one method of the (private) reader (`file`,
//! `case`, `request`, `upstream`, `expect`) that
//! lists its allowed keys once in `object` and reads each key with
//! a typed helper (`opt_string`, `opt_bool`, `opt_word`, `opt_status`,
//! `opt_socket`, `headers`, `header_expects`, `string_list`). A new field is
//! its key in that list, one helper call, and its place in the data types of
//! [`crate::file`]; a new kind of value is one more helper next to these.

use std::net::SocketAddr;

use portcullis_core::json::{self, Kind, LineIndex, Value};
use portcullis_core::{Error, Problem, Problems, Step, Transport, Verdict};

use crate::file::{
    defaults, Case, CaseRequest, Expect, HeaderExpect, HeaderList, PolicySource, TestFile, Upstream,
};

impl TestFile {
    /// Reads a test file.
    ///
    /// ```
    /// use portcullis_harness::{PolicySource, TestFile};
    ///
    /// let tf = TestFile::parse(r#"{"policy": "p.json",
    ///   "cases": [{"name": "a", "request": {"peer": "10.0.0.1:5000"}}]}"#).unwrap();
    /// assert_eq!(tf.policy, PolicySource::Path("p.json".into()));
    /// assert_eq!(tf.cases[0].request.local.to_string(), "127.0.0.1:443");
    ///
    /// let err = TestFile::parse(r#"{"policy": "p.json", "cases": [{"request": {}}]}"#).unwrap_err();
    /// assert_eq!(err.0[0].path, "cases[0].request");
    /// ```
    pub fn parse(text: &str) -> Result<TestFile, Problems> {
        read(text).0
    }
}

/// How much work a read did, for tests that hold the reader to linear time
/// by counting instead of by the clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadWork {
    /// Bytes of the text scanned to compute line:col positions (building
    /// the line index included).
    pub position_bytes: usize,
    /// Positions computed.
    pub positions: usize,
}

/// The reader's line index, counting the positions it computes.
struct Positions<'t> {
    index: LineIndex<'t>,
    positions: usize,
}

impl<'t> Positions<'t> {
    fn new(text: &'t str) -> Self {
        Positions {
            index: LineIndex::new(text),
            positions: 0,
        }
    }
    fn line_col(&mut self, offset: usize) -> (u32, u32) {
        self.positions += 1;
        self.index.line_col(offset)
    }
    fn work(&self) -> ReadWork {
        ReadWork {
            position_bytes: self.index.scanned(),
            positions: self.positions,
        }
    }
}

/// Reads a test file and says how much positioning work it took.
pub fn read(text: &str) -> (Result<TestFile, Problems>, ReadWork) {
    let mut lines = Positions::new(text);
    let value = match json::parse(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = lines.line_col(e.offset);
            let p = Problems(vec![Problem {
                path: String::new(),
                line,
                column,
                error: Error::Syntax(e.message),
            }]);
            return (Err(p), lines.work());
        }
    };
    let mut r = Reader {
        text,
        lines,
        problems: Vec::new(),
    };
    let tf = r.file(&value);
    let result = match tf {
        Some(tf) if r.problems.is_empty() => Ok(tf),
        _ => Err(Problems(r.problems)),
    };
    (result, r.lines.work())
}

/// An object being read: its value and its JSON path.
struct Obj<'v> {
    v: &'v Value,
    path: String,
}

impl<'v> Obj<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.v.get(key)
    }

    /// The path of one of its keys.
    fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The reader: the text, its line index and the problems found so far.
/// Each method returns `None` after recording why.
struct Reader<'t> {
    text: &'t str,
    lines: Positions<'t>,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn err(&mut self, path: &str, v: &Value, error: Error) {
        let (line, column) = self.lines.line_col(v.span.start);
        self.problems.push(Problem {
            path: path.to_owned(),
            line,
            column,
            error,
        });
    }

    fn wrong_type(&mut self, path: &str, v: &Value, expected: &'static str) {
        let found = v.kind_name();
        self.err(path, v, Error::WrongType { expected, found });
    }

    /// An object with only `allowed` keys, each once.
    fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<Obj<'v>> {
        let Kind::Object(m) = &v.kind else {
            self.wrong_type(path, v, "an object");
            return None;
        };
        for (i, mem) in m.iter().enumerate() {
            let p = join(path, &mem.key);
            if !allowed.contains(&mem.key.as_str()) {
                let field = mem.key.clone();
                self.err(
                    &p,
                    &mem.value,
                    Error::UnknownField {
                        field,
                        expected: allowed,
                    },
                );
            } else if m.iter().take(i).any(|o| o.key == mem.key) {
                self.err(&p, &mem.value, Error::DuplicateKey(mem.key.clone()));
            }
        }
        Some(Obj {
            v,
            path: path.to_owned(),
        })
    }

    fn string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(path, v, "a string");
                None
            }
        }
    }

    /// `Some(None)` when absent, `None` when wrong.
    fn opt_string(&mut self, o: &Obj<'_>, key: &str) -> Option<Option<String>> {
        match o.get(key) {
            Some(x) => self.string(x, &o.at(key)).map(Some),
            None => Some(None),
        }
    }

    fn opt_bool(&mut self, o: &Obj<'_>, key: &str) -> Option<Option<bool>> {
        match o.get(key) {
            Some(Value {
                kind: Kind::Bool(b),
                ..
            }) => Some(Some(*b)),
            Some(x) => {
                self.wrong_type(&o.at(key), x, "true or false");
                None
            }
            None => Some(None),
        }
    }

    /// A string that must be one of an enum's words (the core's
    /// `from_word` and `WORDS`, so the words are written once).
    fn opt_word<T>(
        &mut self,
        o: &Obj<'_>,
        key: &str,
        from_word: fn(&str) -> Option<T>,
        words: &'static [&'static str],
    ) -> Option<Option<T>> {
        let Some(w) = self.opt_string(o, key)? else {
            return Some(None);
        };
        match from_word(&w) {
            Some(t) => Some(Some(t)),
            None => {
                let x = o.get(key).unwrap_or(o.v);
                let e = Error::NotOneOf {
                    found: w,
                    expected: words,
                };
                self.err(&o.at(key), x, e);
                None
            }
        }
    }

    /// A status code; `strict` holds it to 100..=599 (else any u16).
    fn opt_status(&mut self, o: &Obj<'_>, key: &str, strict: bool) -> Option<Option<u16>> {
        let Some(s) = o.get(key) else {
            return Some(None);
        };
        match s.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(n) if !strict || (100..=599).contains(&n) => Some(Some(n)),
            _ => {
                self.err(&o.at(key), s, Error::OutOfRange { min: 100, max: 599 });
                None
            }
        }
    }

    fn opt_socket(&mut self, o: &Obj<'_>, key: &str) -> Option<Option<SocketAddr>> {
        let Some(x) = o.get(key) else {
            return Some(None);
        };
        let p = o.at(key);
        let s = self.string(x, &p)?;
        match portcullis_core::addr::parse_socket(&s) {
            Some((ip, port)) => Some(Some(SocketAddr::new(ip, port))),
            None => {
                let e = Error::Invalid("expected address:port ([v6]:port for IPv6)");
                self.err(&p, x, e);
                None
            }
        }
    }

    /// A list of strings (`None` when absent or wrong; wrong is recorded).
    /// `env`: an object of variable name -> string value.
    fn env(&mut self, o: &Obj<'_>) -> Option<Option<crate::file::Env>> {
        let Some(e) = o.get("env") else {
            return Some(None);
        };
        let path = o.at("env");
        let Kind::Object(members) = &e.kind else {
            self.wrong_type(&path, e, "an object of variable name -> value");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, m) in members.iter().enumerate() {
            let p = join(&path, &m.key);
            if members.iter().take(i).any(|x| x.key == m.key) {
                self.err(&p, &m.value, Error::DuplicateKey(m.key.clone()));
                ok = false;
            } else if let Some(v) = self.string(&m.value, &p) {
                out.push((m.key.clone(), v));
            } else {
                ok = false;
            }
        }
        ok.then_some(Some(out))
    }

    fn string_list(&mut self, o: &Obj<'_>, key: &str) -> Option<Vec<String>> {
        let e = o.get(key)?;
        let Kind::Array(items) = &e.kind else {
            self.wrong_type(&o.at(key), e, "a list");
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            if let Some(s) = self.string(it, &format!("{}[{i}]", o.at(key))) {
                out.push(s);
            }
        }
        Some(out)
    }

    /// An ordered list of `[name, value]` pairs; a value is a string or
    /// `{"hex": "..."}` for bytes that are not UTF-8. Absent: empty.
    fn headers(&mut self, o: &Obj<'_>, key: &str) -> Option<HeaderList> {
        let Some(v) = o.get(key) else {
            return Some(Vec::new());
        };
        let path = o.at(key);
        let Kind::Array(items) = &v.kind else {
            self.wrong_type(&path, v, "a list of [name, value] pairs");
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let (n, val) = match &it.kind {
                Kind::Array(pair) => match pair.as_slice() {
                    [n, val] => (n, val),
                    _ => {
                        self.wrong_type(&p, it, "a [name, value] pair");
                        return None;
                    }
                },
                _ => {
                    self.wrong_type(&p, it, "a [name, value] pair");
                    return None;
                }
            };
            let name = self.string(n, &p)?;
            let value = match (&val.kind, val.get("hex")) {
                (Kind::String(s), _) => s.as_bytes().to_vec(),
                (Kind::Object(m), Some(h)) if m.len() == 1 => match h.as_str().and_then(hex) {
                    Some(b) => b,
                    None => {
                        let e = Error::Invalid("\"hex\" must be pairs of hex digits");
                        self.err(&p, val, e);
                        return None;
                    }
                },
                _ => {
                    self.wrong_type(&p, val, "a string or {\"hex\": ...}");
                    return None;
                }
            };
            out.push((name, value));
        }
        Some(out)
    }

    /// name -> a value, `null` (absent) or a list of values.
    fn header_expects(&mut self, o: &Obj<'_>, key: &str) -> Option<Vec<(String, HeaderExpect)>> {
        let Some(h) = o.get(key) else {
            return Some(Vec::new());
        };
        let hp = o.at(key);
        let Kind::Object(members) = &h.kind else {
            self.wrong_type(&hp, h, "an object");
            return None;
        };
        let mut out = Vec::new();
        for m in members {
            let mp = format!("{hp}.{}", m.key);
            let he = match &m.value.kind {
                Kind::Null => HeaderExpect::Absent,
                Kind::String(s) => HeaderExpect::One(s.clone()),
                Kind::Array(items) => {
                    let mut vs = Vec::new();
                    for it in items {
                        vs.push(self.string(it, &mp)?);
                    }
                    HeaderExpect::Many(vs)
                }
                _ => {
                    self.wrong_type(&mp, &m.value, "a string, null or a list");
                    return None;
                }
            };
            out.push((m.key.clone(), he));
        }
        Some(out)
    }

    fn file(&mut self, v: &Value) -> Option<TestFile> {
        let o = self.object(
            v,
            "",
            &[
                "policy",
                "cases",
                "expect_policy_error",
                "description",
                "env",
                "$schema",
            ],
        )?;
        // `$schema`: where editors find the JSON Schema; a string, ignored.
        let _ = self.opt_string(&o, "$schema");
        let policy = match o.get("policy") {
            Some(
                p @ Value {
                    kind: Kind::Object(_),
                    ..
                },
            ) => {
                let text = self.text.get(p.span.start..p.span.end).unwrap_or("");
                Some(PolicySource::Inline(text.to_owned()))
            }
            Some(p) => self.string(p, "policy").map(PolicySource::Path),
            None => {
                self.err("", v, Error::MissingField("policy"));
                None
            }
        };
        let expect_policy_error = self.string_list(&o, "expect_policy_error");
        let rejecting = o.get("expect_policy_error").is_some();
        let mut cases = Vec::new();
        match o.get("cases") {
            Some(Value {
                kind: Kind::Array(items),
                ..
            }) => {
                for (i, c) in items.iter().enumerate() {
                    if let Some(c) = self.case(c, &format!("cases[{i}]")) {
                        cases.push(c);
                    }
                }
            }
            Some(c) => self.wrong_type("cases", c, "a list"),
            None if !rejecting => self.err("", v, Error::MissingField("cases")),
            None => {}
        }
        if rejecting && !cases.is_empty() {
            let e = Error::Invalid("a file with expect_policy_error has no cases");
            self.err("cases", v, e);
        }
        let env = self.env(&o)?.unwrap_or_default();
        Some(TestFile {
            policy: policy?,
            cases,
            expect_policy_error,
            env,
        })
    }

    fn case(&mut self, v: &Value, path: &str) -> Option<Case> {
        let o = self.object(
            v,
            path,
            &[
                "name",
                "request",
                "upstream",
                "expect",
                "description",
                "env",
            ],
        )?;
        let (line, _) = self.lines.line_col(v.span.start);
        let name = self
            .opt_string(&o, "name")?
            .unwrap_or_else(|| format!("case at line {line}"));
        let Some(rv) = o.get("request") else {
            self.err(path, v, Error::MissingField("request"));
            return None;
        };
        let request = self.request(rv, &o.at("request"))?;
        let upstream = match o.get("upstream") {
            Some(u) => self.upstream(u, &o.at("upstream"))?,
            None => Upstream::default(),
        };
        let expect = match o.get("expect") {
            Some(e) => self.expect(e, &o.at("expect"))?,
            None => Expect::default(),
        };
        let env = self.env(&o)?;
        Some(Case {
            name,
            line,
            request,
            upstream,
            expect,
            env,
        })
    }

    fn request(&mut self, v: &Value, path: &str) -> Option<CaseRequest> {
        let o = self.object(
            v,
            path,
            &[
                "peer",
                "local",
                "tls",
                "method",
                "authority",
                "path",
                "headers",
                "protocol",
            ],
        )?;
        let Some(peer) = self.opt_socket(&o, "peer")? else {
            self.err(path, v, Error::MissingField("peer"));
            return None;
        };
        let mut r = CaseRequest::from_peer(peer);
        if let Some(tls) = self.opt_bool(&o, "tls")? {
            r.tls = tls;
        }
        r.local = self
            .opt_socket(&o, "local")?
            .unwrap_or_else(|| defaults::local(r.tls));
        if let Some(m) = self.opt_string(&o, "method")? {
            r.method = m;
        }
        if let Some(a) = self.opt_string(&o, "authority")? {
            r.authority = a;
        }
        if let Some(p) = self.opt_string(&o, "path")? {
            r.path = p;
        }
        if let Some(t) = self.opt_word(&o, "protocol", Transport::from_word, Transport::WORDS)? {
            r.transport = t;
        }
        r.headers = self.headers(&o, "headers")?;
        Some(r)
    }

    fn upstream(&mut self, v: &Value, path: &str) -> Option<Upstream> {
        let o = self.object(v, path, &["status", "headers"])?;
        let mut u = Upstream::default();
        if let Some(s) = self.opt_status(&o, "status", true)? {
            u.status = s;
        }
        u.headers = self.headers(&o, "headers")?;
        Some(u)
    }

    fn expect(&mut self, v: &Value, path: &str) -> Option<Expect> {
        let o = self.object(
            v,
            path,
            &[
                "verdict",
                "status",
                "rule",
                "client_ip",
                "client_from",
                "client_why",
                "scope",
                "location",
                "step",
                "would_verdict",
                "would_status",
                "body_contains",
                "upstream_headers",
                "response_headers",
            ],
        )?;
        Some(Expect {
            verdict: self.opt_word(&o, "verdict", Verdict::from_word, Verdict::WORDS)?,
            status: self.opt_status(&o, "status", false)?,
            rule: self.opt_string(&o, "rule")?,
            client_ip: self.opt_string(&o, "client_ip")?,
            client_from: self.opt_string(&o, "client_from")?,
            client_why: self.opt_string(&o, "client_why")?,
            scope: match o.get("scope") {
                Some(Value {
                    kind: Kind::Null, ..
                }) => Some(String::from(portcullis_core::NO_SCOPE)),
                _ => self.opt_string(&o, "scope")?,
            },
            location: self.opt_string(&o, "location")?,
            step: self.opt_word(&o, "step", Step::from_word, Step::WORDS)?,
            would_verdict: self.opt_word(
                &o,
                "would_verdict",
                Verdict::from_word,
                Verdict::WORDS,
            )?,
            would_status: self.opt_status(&o, "would_status", false)?,
            body_contains: self.opt_string(&o, "body_contains")?,
            upstream_headers: self.header_expects(&o, "upstream_headers")?,
            response_headers: self.header_expects(&o, "response_headers")?,
        })
    }
}

/// Pairs of hex digits (whitespace between them ignored) as bytes.
fn hex(s: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|p| match p {
            [a, b] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()
            }
            _ => None,
        })
        .collect()
}
